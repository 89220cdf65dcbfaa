package truth

import (
	"os/exec"
	"strings"
	"testing"
)

// EmulateDocker29 makes this engine treat the scenario's networks as
// Docker 29 does, for the path of a container to another network's
// published port:
//
//   - The nat rules `DOCKER -i <bridge> -j RETURN` are deleted (moby
//     1ad9599da7 removed them; any engine run with userland-proxy=false
//     has none): a container that dials a host address and published port
//     is DNATed in prerouting, and reaches the publisher on the forward
//     hook, on the container port, instead of docker-proxy on the input
//     hook.
//   - A DNATed connection between two of the scenario's bridges is
//     accepted in DOCKER-USER: Docker 29's nftables backend accepts a
//     published port in the publisher's filter-forward-in chain before
//     its drop of other bridges (moby's nftablesdoc, usernet-portmap),
//     where the iptables chains of Docker 20-28 run their isolation first
//     and drop it. zonewarden's own table is a base chain of its own: it
//     still sees the packet, which is what the emulation is for.
//
// The snapshot then reports engine 29.0.0 with the nftables backend, so
// that the model predicts that path. Everything is put back when t ends.
// It reports how many nat rules it removed; none (an engine that never
// had them) fails t.
func (e *Env) EmulateDocker29(t *testing.T) int {
	t.Helper()
	var bridges []string
	for _, n := range e.Scenario.Networks {
		if nw := e.ix.Network(n.Name); nw != nil && nw.Bridge != "" {
			bridges = append(bridges, nw.Bridge)
		}
	}
	removed := 0
	for _, tool := range []string{"iptables", "ip6tables"} {
		for _, br := range bridges {
			rule := []string{"-t", "nat", "DOCKER", "-i", br, "-j", "RETURN"}
			if !iptablesHas(tool, rule) {
				continue // not there (ip6tables off, or already gone)
			}
			iptablesRun(t, tool, "-D", rule)
			removed++
			// Docker's own place for it: the top of its DOCKER chain.
			t.Cleanup(func() { iptablesUndo(t, tool, "-I", rule) })
		}
		for _, in := range bridges {
			for _, out := range bridges {
				if in == out {
					continue
				}
				rule := []string{"-t", "filter", "DOCKER-USER", "-i", in, "-o", out, "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"}
				if !iptablesHas(tool, []string{"-t", "filter", "DOCKER-USER"}) {
					continue
				}
				iptablesRun(t, tool, "-I", rule)
				t.Cleanup(func() { iptablesUndo(t, tool, "-D", rule) })
			}
		}
	}
	if removed == 0 {
		t.Fatalf("no nat rule DOCKER -i <bridge> -j RETURN for the networks of run %s: this engine already DNATs in the kernel, or its chains are not where Docker 20-28 put them", e.RunID)
	}
	e.snap.Daemon.Version = "29.0.0"
	e.snap.Daemon.FirewallBackend = "nftables"
	return removed
}

// iptablesHas reports whether rule ("-t TABLE CHAIN match...") exists; a
// rule of the chain alone asks whether the chain exists.
func iptablesHas(tool string, rule []string) bool {
	args := []string{"-w", rule[0], rule[1]}
	if len(rule) == 3 {
		args = append(args, "-L", rule[2], "-n")
	} else {
		args = append(append(args, "-C", rule[2]), rule[3:]...)
	}
	return exec.Command(tool, args...).Run() == nil
}

func iptablesCmd(tool, op string, rule []string) ([]byte, error) {
	args := append([]string{"-w", rule[0], rule[1], op, rule[2]}, rule[3:]...)
	return exec.Command(tool, args...).CombinedOutput()
}

func iptablesRun(t *testing.T, tool, op string, rule []string) {
	t.Helper()
	if out, err := iptablesCmd(tool, op, rule); err != nil {
		t.Fatalf("%s %s %s: %v: %s", tool, op, strings.Join(rule, " "), err, out)
	}
}

func iptablesUndo(t *testing.T, tool, op string, rule []string) {
	if out, err := iptablesCmd(tool, op, rule); err != nil {
		t.Errorf("restoring Docker's rules: %s %s %s: %v: %s", tool, op, strings.Join(rule, " "), err, out)
	}
}
