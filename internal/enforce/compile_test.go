package enforce

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/enforce/enforcetest"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy"
)

// threeTier is the shared three-tier host.
func threeTier() *inventory.Snapshot { return enforcetest.Host() }

const threeTierPolicy = enforcetest.Policy

func bind(t reporter, doc string, snap *inventory.Snapshot) *model.Binding {
	t.Helper()
	p, err := policy.Parse("zones.yaml", []byte(doc), policy.Options{})
	if err != nil {
		t.Fatalf("%v", err)
	}
	b, err := model.Bind(p, snap)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return b
}

// TestTraceAgreesWithPolicy: on every network two containers share, for
// every port the policy names and some it does not, the tracer's verdict
// over the compiled ruleset is the policy's decision. The real-packet test
// (internal/truth TestEnforcedThreeTier) holds the same ruleset to the
// kernel.
func TestTraceAgreesWithPolicy(t *testing.T) { checkPolicyAgreement(t, nil) }

func checkPolicyAgreement(t reporter, mutate mutation) {
	t.Helper()
	snap := threeTier()
	b := bind(t, threeTierPolicy, snap)
	r := Compile(b, Options{})
	ports := []l4.Port{{Proto: "tcp", Number: 8080}, {Proto: "tcp", Number: 5432}, {Proto: "tcp", Number: 6379},
		{Proto: "udp", Number: 9050}, {Proto: "udp", Number: 53}, {Proto: "icmp"}, {Proto: "tcp", Number: 443}, {Proto: "tcp", Number: 22}}
	checked := 0
	for _, from := range snap.Containers {
		for _, to := range snap.Containers {
			if from.Name == to.Name {
				continue
			}
			for _, fe := range from.Endpoints {
				for _, te := range to.Endpoints {
					if fe.Network != te.Network {
						continue
					}
					for _, port := range ports {
						want := b.Decide(from.Name, to.Name, port)
						for _, pair := range [][2]netip.Addr{{fe.IPv4, te.IPv4}, {fe.IPv6, te.IPv6}} {
							if !pair[0].IsValid() || !pair[1].IsValid() {
								continue
							}
							proto := port.Proto
							if proto == "icmp" && pair[0].Is6() {
								proto = "ipv6-icmp"
							}
							v := trace(r, mutate, Packet{Hook: Forward, Src: pair[0], Dst: pair[1], Proto: proto, Port: port.Number})
							checked++
							if v.Drop == want.Allow {
								t.Errorf("%s %s -> %s %s %s: tracer drop=%v (%s), policy allow=%v (%s)",
									from.Name, pair[0], to.Name, pair[1], port, v.Drop, v.Rule, want.Allow, want.Reason)
							}
						}
					}
				}
			}
		}
	}
	if checked < 100 {
		t.Fatalf("only %d packets traced", checked)
	}
	// Published ports through the userland proxy (input hook): frontend
	// has a flow to lb on 443, api has none.
	gw := netip.MustParseAddr("10.20.1.1")
	if v := trace(r, mutate, Packet{Hook: Input, Src: netip.MustParseAddr("10.20.2.12"), Dst: gw, Proto: "tcp", Port: 443}); v.Drop {
		t.Errorf("frontend -> lb's published 443: %+v", v)
	}
	if v := trace(r, mutate, Packet{Hook: Input, Src: netip.MustParseAddr("10.20.2.13"), Dst: gw, Proto: "tcp", Port: 443}); !v.Drop {
		t.Errorf("api -> lb's published 443 (no flow): %+v", v)
	}
	// Outside: ingress admits 203.0.113.0/24 only; egress of api to
	// 198.51.100.0/24 on 443 only; a new container's address is dropped.
	for _, tc := range []struct {
		p    Packet
		drop bool
	}{
		{Packet{Hook: Forward, Src: netip.MustParseAddr("203.0.113.7"), Dst: netip.MustParseAddr("10.20.1.11"), Proto: "tcp", Port: 443}, false},
		{Packet{Hook: Forward, Src: netip.MustParseAddr("192.0.2.7"), Dst: netip.MustParseAddr("10.20.1.11"), Proto: "tcp", Port: 443}, true},
		{Packet{Hook: Forward, Src: netip.MustParseAddr("2001:db8::7"), Dst: netip.MustParseAddr("fd20:1::11"), Proto: "tcp", Port: 443}, false},
		{Packet{Hook: Forward, Src: netip.MustParseAddr("10.20.2.13"), Dst: netip.MustParseAddr("198.51.100.9"), Proto: "tcp", Port: 443}, false},
		{Packet{Hook: Forward, Src: netip.MustParseAddr("10.20.2.13"), Dst: netip.MustParseAddr("198.51.100.9"), Proto: "tcp", Port: 80}, true},
		{Packet{Hook: Forward, Src: netip.MustParseAddr("10.20.1.11"), Dst: netip.MustParseAddr("192.0.2.1"), Proto: "udp", Port: 53}, false},
		{Packet{Hook: Forward, Src: netip.MustParseAddr("10.20.3.99"), Dst: netip.MustParseAddr("10.20.3.14"), Proto: "tcp", Port: 5432}, true},
		{Packet{Hook: Forward, Src: netip.MustParseAddr("10.20.2.13"), Dst: netip.MustParseAddr("10.20.3.99"), Proto: "tcp", Port: 5432}, true},
	} {
		if v := trace(r, mutate, tc.p); v.Drop != tc.drop {
			t.Errorf("%+v: %+v, want drop=%v", tc.p, v, tc.drop)
		}
	}
}

func TestUpdateTouchesElementsOnly(t *testing.T) {
	snap := threeTier()
	old := Compile(bind(t, threeTierPolicy, snap), Options{})
	snap.Containers[3].Endpoints[0].IPv4 = netip.MustParseAddr("10.20.3.77") // postgres restarted
	now := Compile(bind(t, threeTierPolicy, snap), Options{})
	up := now.Update(old)
	if strings.Contains(up, "table") && !strings.Contains(up, "element") || strings.Contains(up, "chain") {
		t.Fatalf("update re-creates the table:\n%s", up)
	}
	for _, want := range []string{"delete element inet zonewarden admitted4 { 10.20.3.14 }", "add element inet zonewarden admitted4 { 10.20.3.77 comment \"postgres\" }",
		"10.20.3.13 . 10.20.3.77 . tcp . 5432"} {
		if !strings.Contains(up, want) {
			t.Errorf("update lacks %q:\n%s", want, up)
		}
	}
	if now.Update(now) != "" {
		t.Errorf("no change should update nothing")
	}
}

var update = flag.Bool("update", false, "rewrite testdata/*.nft")

// TestGoldenRulesets compares whole generated rulesets, line by line in
// any order, for combinations of settings: default deny and allow,
// internal zones, IPv6, ingress CIDRs, egress, unmanaged modes.
func TestGoldenRulesets(t *testing.T) {
	for name, doc := range map[string]string{
		"three-tier":     threeTierPolicy,
		"allow-zones":    strings.ReplaceAll(threeTierPolicy, "{default: deny}", "{}"),
		"unmanaged-deny": strings.Replace(threeTierPolicy, "unmanaged: warn", "unmanaged: deny", 1),
	} {
		t.Run(name, func(t *testing.T) {
			got := Compile(bind(t, doc, threeTier()), Options{}).Script()
			path := filepath.Join("testdata", name+".nft")
			if *update {
				os.MkdirAll("testdata", 0o755)
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test ./internal/enforce -update writes it)", err)
			}
			if d := goldenDiff(got, string(want)); d != "" {
				t.Errorf("%s differs from %s: %s; -update rewrites it:\n%s", name, path, d, got)
			}
		})
	}
}

// goldenDiff compares a script with its golden file: every chain rule by
// rule in order (the kernel runs them in order), the sets' declarations
// and elements as sets (Script sorts them, nft lists them as it likes).
// It returns "" when they agree, else the first difference.
func goldenDiff(got, want string) string {
	gs, gc := splitScript(got)
	ws, wc := splitScript(want)
	if !slices.Equal(gs, ws) {
		return "the sets differ"
	}
	for i := range max(len(gc), len(wc)) {
		switch {
		case i >= len(gc):
			return fmt.Sprintf("a line is missing at chain line %d: %q", i+1, wc[i])
		case i >= len(wc):
			return fmt.Sprintf("an extra line at chain line %d: %q", i+1, gc[i])
		case gc[i] != wc[i]:
			return fmt.Sprintf("chain line %d is %q, want %q", i+1, gc[i], wc[i])
		}
	}
	return ""
}

// splitScript returns a script's set lines, sorted, and its chain lines
// in order.
func splitScript(s string) (sets, chains []string) {
	inChains := false
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "chain ") {
			inChains = true
		}
		if inChains {
			chains = append(chains, l)
		} else {
			sets = append(sets, strings.TrimSuffix(l, ","))
		}
	}
	slices.Sort(sets)
	return sets, chains
}

func TestDiffAgainstAnInstalledScript(t *testing.T) {
	snap := threeTier()
	old := Compile(bind(t, threeTierPolicy, snap), Options{})
	if c := old.Diff(old.Script()); !c.Empty() {
		t.Fatalf("a ruleset differs from its own script: %+v", c)
	}
	snap.Containers[3].Endpoints[0].IPv4 = netip.MustParseAddr("10.20.3.77")
	now := Compile(bind(t, threeTierPolicy, snap), Options{})
	c := now.Diff(old.Script())
	added, removed := c.Count()
	if c.Chains || added != 2 || removed != 2 || c.Added["admitted4"][0] != "10.20.3.77" {
		t.Errorf("diff = %+v (added %d, removed %d)", c, added, removed)
	}
	deny := Compile(bind(t, strings.Replace(threeTierPolicy, "unmanaged: warn", "unmanaged: deny", 1), snap), Options{})
	if !deny.Diff(old.Script()).Chains {
		t.Error("unmanaged: deny changes the chains")
	}
}

// TestUnallowedPublishedPortIsGuarded: a managed container publishing a
// port its workload may not publish is reached neither from outside nor,
// through the userland proxy, from other containers without a flow.
func TestUnallowedPublishedPortIsGuarded(t *testing.T) { checkUnallowedPublished(t, nil) }

func checkUnallowedPublished(t reporter, mutate mutation) {
	t.Helper()
	snap := threeTier()
	// frontend publishes 18080 -> 8080, which its workload may not.
	snap.Containers[1].Ports = []inventory.PortBinding{{ContainerPort: l4.Port{Number: 8080, Proto: "tcp"}, HostPort: 18080}}
	r := Compile(bind(t, threeTierPolicy, snap), Options{})
	gw := netip.MustParseAddr("10.20.2.1")
	for _, tc := range []struct {
		p    Packet
		drop bool
	}{
		{Packet{Hook: Input, Src: netip.MustParseAddr("10.20.1.11"), Dst: gw, Proto: "tcp", Port: 18080}, false}, // lb: flow on 8080
		{Packet{Hook: Input, Src: netip.MustParseAddr("10.20.2.13"), Dst: gw, Proto: "tcp", Port: 18080}, true},  // api: no flow
		{Packet{Hook: Forward, Src: netip.MustParseAddr("203.0.113.9"), Dst: netip.MustParseAddr("10.20.2.12"), Proto: "tcp", Port: 8080}, true},
	} {
		if v := trace(r, mutate, tc.p); v.Drop != tc.drop {
			t.Errorf("%+v: %+v, want drop=%v", tc.p, v, tc.drop)
		}
	}
}

// TestAcceptsOnlyAdmitted: the flow sets, checked before the fail-closed
// rules, hold admitted addresses only; a container connected to a zone its
// workload may not join (frontend on database-tier) is admitted on its own
// zones and not there, and its packets from that address are dropped
// even towards a flow's destination.
func TestAcceptsOnlyAdmitted(t *testing.T) { checkAdmitted(t, nil) }

func checkAdmitted(t reporter, mutate mutation) {
	t.Helper()
	snap := threeTier()
	for i := range snap.Containers {
		if c := &snap.Containers[i]; c.Name == "frontend" {
			c.Endpoints = append(c.Endpoints, inventory.Endpoint{Network: "database-tier", IPv4: netip.MustParseAddr("10.20.3.99")})
		}
	}
	b := bind(t, threeTierPolicy, snap)
	if len(b.Strays()) != 1 {
		t.Fatalf("strays: %+v", b.Strays())
	}
	r := Compile(b, Options{})
	for _, f := range families {
		admitted := map[string]bool{}
		for _, a := range r.Elements("admitted" + f.suffix) {
			admitted[a] = true
		}
		// The fields of each accepting set that are container addresses:
		// all admitted, so that accepting before the fail-closed drops
		// (or moving those drops first) decides the same.
		for set, fields := range map[string][]int{"allow": {0, 1}, "allowrange": {0, 1}, "pubin": {0}, "egress": {0}, "ingress": {1}} {
			for _, e := range r.Elements(set + f.suffix) {
				parts := strings.Split(e, " . ")
				for _, i := range fields {
					if !admitted[parts[i]] {
						t.Errorf("%s%s: %s accepts an address zonewarden does not admit", set, f.suffix, e)
					}
				}
			}
		}
	}
	stray := netip.MustParseAddr("10.20.3.99")
	api := netip.MustParseAddr("10.20.3.13") // api on database-tier
	if v := trace(r, mutate, Packet{Hook: Forward, Src: stray, Dst: api, Proto: "tcp", Port: 8080}); !v.Drop || v.Rule != DropUnadmittedSrc.Comment {
		t.Errorf("frontend from its stray address to api:8080: %+v, want dropped as not admitted", v)
	}
	if v := trace(r, mutate, Packet{Hook: Forward, Src: netip.MustParseAddr("10.20.2.12"), Dst: netip.MustParseAddr("10.20.2.13"), Proto: "tcp", Port: 8080}); v.Drop {
		t.Errorf("frontend to api:8080 on application-tier: %+v, want accepted", v)
	}
}

// TestOutsideNetworksDoNotReachZones: between a network outside the
// policy and a zone, the table drops what no egress or ingress allows,
// whatever Docker's own rules do at that moment (Docker re-arranges its
// FORWARD jumps when a network is created, and containers of different
// networks reach each other meanwhile). Between outside networks, Docker
// decides.
func TestOutsideNetworksDoNotReachZones(t *testing.T) { checkOutsideNetworks(t, nil) }

func checkOutsideNetworks(t reporter, mutate mutation) {
	t.Helper()
	r := Compile(bind(t, threeTierPolicy, threeTier()), Options{})
	onBridge, other := netip.MustParseAddr("10.20.0.50"), netip.MustParseAddr("10.20.0.51")
	frontend := netip.MustParseAddr("10.20.2.12")
	for _, p := range []Packet{
		{Hook: Forward, Src: onBridge, Dst: frontend, Proto: "tcp", Port: 8080},
		{Hook: Forward, Src: frontend, Dst: onBridge, Proto: "tcp", Port: 80},
	} {
		if v := trace(r, mutate, p); !v.Drop {
			t.Errorf("%s -> %s:%d: %+v, want dropped", p.Src, p.Dst, p.Port, v)
		}
	}
	if v := trace(r, mutate, Packet{Hook: Forward, Src: onBridge, Dst: other, Proto: "tcp", Port: 80}); v.Drop {
		t.Errorf("between two containers of the default bridge: %+v, want left to Docker", v)
	}
}

// TestUnmanagedNeverReachesDenyZoneMembers: a container no workload
// selects, on a default: allow zone, reaches the zone's other members as
// Docker lets it, except one that is also on a default: deny zone: that
// member neither reaches it nor is reached by it, over the allow zone
// they share either (the zone's own accept comes after). The chains
// decide every such packet as the policy model does.
func TestUnmanagedNeverReachesDenyZoneMembers(t *testing.T) {
	snap := threeTier()
	stray := &snap.Containers[len(snap.Containers)-1]
	if stray.Name != "stray" {
		t.Fatalf("the host's last container is %s, not stray", stray.Name)
	}
	stray.Endpoints[0].Network = "database-tier"
	stray.Endpoints[0].IPv4 = netip.MustParseAddr("10.20.3.16")
	b := bind(t, threeTierPolicy, snap)
	r := Compile(b, Options{})
	ix := inventory.NewIndex(snap)
	dropped := 0
	for _, peer := range []string{"api", "postgres", "cache"} {
		var addr netip.Addr
		for _, e := range ix.Container(peer).Endpoints {
			if e.Network == "database-tier" {
				addr = e.IPv4
			}
		}
		for _, port := range []l4.Port{{Proto: "tcp", Number: 5432}, {Proto: "tcp", Number: 22}} {
			for _, dir := range [][2]string{{"stray", peer}, {peer, "stray"}} {
				src, dst := stray.Endpoints[0].IPv4, addr
				if dir[0] != "stray" {
					src, dst = dst, src
				}
				v := r.Trace(Packet{Hook: Forward, Src: src, Dst: dst, Proto: port.Proto, Port: port.Number})
				d := b.Decide(dir[0], dir[1], port)
				if v.Drop == d.Allow {
					t.Errorf("%s -> %s %s: the chains say %+v, the policy %v (%s)", dir[0], dir[1], port, v, d.Allow, d.Reason)
				}
				if v.Drop {
					dropped++
					if v.Rule != DropUnmanaged.Comment {
						t.Errorf("%s -> %s %s dropped by %q, want %q", dir[0], dir[1], port, v.Rule, DropUnmanaged.Comment)
					}
				}
			}
		}
	}
	if dropped != 4 {
		t.Errorf("%d packets dropped, want the 4 between stray and api", dropped)
	}
}
