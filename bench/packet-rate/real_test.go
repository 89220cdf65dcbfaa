package main

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/policy"
)

// The benchmark's zone is 198.18.0.0/16: clients 198.18.1.8-11, the
// server 198.18.2.2, 198.18.1.2 in the zone but not admitted (real.go).

// TestRealRulesetDecides traces the compiled ruleset for the packets the
// benchmark's checks send: the flow on 8080 passes, 8081 and the
// non-admitted source are dropped.
func TestRealRulesetDecides(t *testing.T) {
	for _, mode := range []policy.Unmanaged{policy.UnmanagedWarn, policy.UnmanagedDeny} {
		for _, n := range []int{10, 2000} {
			c, err := realRuleset(n, mode)
			if err != nil {
				t.Fatal(err)
			}
			if c.flows != n {
				t.Errorf("%s %d: %d declared flows", mode, n, c.flows)
			}
			for _, ch := range []struct {
				src  netip.Addr
				port uint16
				drop bool
			}{
				{sources()[0], allowedPort, false},
				{sources()[3], allowedPort, false},
				{sources()[0], deniedPort, true},
				{clientPrimary, allowedPort, true},
			} {
				v := c.rs.Trace(enforce.Packet{Hook: enforce.Forward, Src: ch.src, Dst: serverAddr, Proto: "tcp", Port: ch.port})
				if v.Drop != ch.drop {
					t.Errorf("%s %d flows: %s -> %s:%d: %+v, want drop=%v", mode, n, ch.src, serverAddr, ch.port, v, ch.drop)
				}
			}
			// The benchmark's flow is one port: a hash set element.
			want := "198.18.1.8 . 198.18.2.2 . tcp . 8080"
			if !slices.Contains(c.rs.Elements("allow4"), want) {
				t.Errorf("%s %d: allow4 lacks %q", mode, n, want)
			}
			// Filler: mostly single ports, some ranges.
			single, ranges := len(c.rs.Elements("allow4")), len(c.rs.Elements("allowrange4"))
			if n >= 2000 && (ranges == 0 || single < 5*ranges) {
				t.Errorf("%s %d: %d single-port and %d range elements", mode, n, single, ranges)
			}
		}
	}
}

func TestExperimentsEditForward4(t *testing.T) {
	c, err := realRuleset(10, policy.UnmanagedWarn)
	if err != nil {
		t.Fatal(err)
	}
	script := c.rs.Script()
	rulesOf := func(s string) []string {
		var out []string
		_ = must(editChain(s, "forward4", func(r []string) ([]string, error) { out = r; return r, nil }))
		return out
	}
	orig := rulesOf(script)

	af := rulesOf(must(allowFirst(script)))
	if len(af) != len(orig) || !strings.Contains(af[0], "@allow4 accept") || !strings.Contains(af[1], "@allowrange4 accept") {
		t.Errorf("allowFirst: forward4 is\n%s", strings.Join(af, ""))
	}
	hf := rulesOf(must(hashFirst(script)))
	if len(hf) != len(orig) || !slices.ContainsFunc(hf, func(r string) bool {
		return strings.HasPrefix(strings.TrimSpace(r), "ip saddr != @admitted4 ip saddr @zones4 counter")
	}) {
		t.Errorf("hashFirst: forward4 is\n%s", strings.Join(hf, ""))
	}
	nc := must(noFlowCounters(script))
	if got, want := strings.Count(nc, "\t\tcounter\n"), strings.Count(script, "\t\tcounter\n")-2; got != want {
		t.Errorf("noFlowCounters: %d counter flags, want %d", got, want)
	}
	if !strings.Contains(nc, "set egress4 {\n\t\ttype ipv4_addr . ipv4_addr . inet_proto . inet_service\n\t\tflags interval\n\t\tcounter\n") {
		t.Errorf("noFlowCounters removed egress4's counter")
	}
	// Everything but forward4 and the two sets stays.
	if rest := strings.Replace(must(allowFirst(script)), strings.Join(af, ""), strings.Join(orig, ""), 1); rest != script {
		t.Errorf("allowFirst changed more than forward4")
	}
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}
