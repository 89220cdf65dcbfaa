package enforce

import (
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
)

// reporter is what the semantic checks report to: a *testing.T, or the
// mutation test's recorder.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// mutation changes a ruleset's chains before they are traced; nil leaves
// them as compiled.
type mutation func([]Chain) []Chain

// trace follows p through r's chains, mutated.
func trace(r *Ruleset, mutate mutation, p Packet) Verdict {
	if mutate == nil {
		return r.Trace(p)
	}
	return r.traceChains(mutate(r.ChainRules()), p)
}

// TestRepliesPass: the packets of connections the policy allowed pass
// both hooks, whatever the sets say about their reversed addresses and
// ports.
func TestRepliesPass(t *testing.T) { checkReplies(t, nil) }

func checkReplies(t reporter, mutate mutation) {
	t.Helper()
	r := Compile(bind(t, threeTierPolicy, threeTier()), Options{})
	api, frontend := netip.MustParseAddr("10.20.2.13"), netip.MustParseAddr("10.20.2.12")
	for _, p := range []Packet{
		{Hook: Forward, Src: api, Dst: frontend, Proto: "tcp", Port: 40000, Established: true},                                                     // frontend -> api:8080's reply, on a default: deny zone
		{Hook: Input, Src: netip.MustParseAddr("10.20.1.11"), Dst: netip.MustParseAddr("10.20.1.1"), Proto: "tcp", Port: 40000, Established: true}, // lb answering docker-proxy
	} {
		if v := trace(r, mutate, p); v.Drop {
			t.Errorf("an established connection's packet %s -> %s:%d (%s): %+v, want it to pass", p.Src, p.Dst, p.Port, p.Hook, v)
		}
	}
}

// specTrace is the decision order of internal/enforce/README.md, written
// out by hand as the specification that the chains must implement: an
// independent statement of the same intent (TestTraceFollowsSpec holds
// the chains to it packet by packet). A change to the chains that changes
// a verdict needs a change here too.
//
// Monitor mode: a drop that no zone in enforce mode is party to (the
// source or destination on one; at the input hook the source, or the
// published port's container) is let through as "would deny".
func specTrace(r *Ruleset, p Packet) Verdict {
	v := specEnforce(r, p)
	if !v.Drop || !r.monitor {
		return v
	}
	s := familyOf(p.Src).suffix
	enforced := r.containsAddr("enforced"+s, p.Src)
	switch {
	case p.Hook == Forward:
		enforced = enforced || r.containsAddr("enforced"+s, p.Dst)
	case v.Rule == DropPublished.Comment:
		enforced = enforced || r.containsKey("enforcedpub", []string{p.Proto, fmt.Sprint(p.Port)})
	}
	if enforced {
		return v
	}
	for _, d := range dropRules {
		if d.Comment == v.Rule {
			return Verdict{WouldDrop: true, Rule: d.WouldComment()}
		}
	}
	panic("no drop rule " + v.Rule)
}

// specEnforce is specTrace in enforce mode.
func specEnforce(r *Ruleset, p Packet) Verdict {
	f := familyOf(p.Src)
	s := f.suffix
	in := func(set string, a netip.Addr) bool { return r.containsAddr(set+s, a) }
	key := func(set string, parts ...string) bool { return r.containsKey(set, parts) }
	proto, port := p.Proto, fmt.Sprint(p.Port)
	if p.Established {
		return Verdict{Rule: ""}
	}
	if p.Hook == Input {
		if !in("zones", p.Src) || !key("pubports", proto, port) {
			switch {
			case r.unmanagedFree && in("free", p.Src):
				return Verdict{Rule: commentUnmanaged}
			case in("denyzones", p.Src):
				return Verdict{Drop: true, Rule: DropHost.Comment}
			}
			return Verdict{Rule: "not managed"}
		}
		switch {
		case r.unmanagedFree && in("free", p.Src) && !key("denypub", proto, port):
			return Verdict{Rule: commentUnmanaged}
		case key("pubin"+s, p.Src.String(), proto, port):
			return Verdict{Rule: "declared flows to published ports"}
		}
		return Verdict{Drop: true, Rule: DropPublished.Comment}
	}
	src, dst := p.Src.String(), p.Dst.String()
	switch {
	case key("allow"+s, src, dst, proto, port):
		return Verdict{Rule: "declared flows"}
	case key("allowrange"+s, src, dst, proto, port):
		return Verdict{Rule: "declared flows on port ranges"}
	case in("zones", p.Src) && !in("admitted", p.Src):
		return Verdict{Drop: true, Rule: DropUnadmittedSrc.Comment}
	case in("zones", p.Dst) && !in("admitted", p.Dst):
		return Verdict{Drop: true, Rule: DropUnadmittedDst.Comment}
	case r.unmanagedFree && in("free", p.Src) && !in("denyhosts", p.Dst),
		r.unmanagedFree && in("free", p.Dst) && !in("denyhosts", p.Src):
		return Verdict{Rule: commentUnmanaged}
	case r.unmanagedFree && (in("free", p.Src) || in("free", p.Dst)):
		// with a member of a default: deny zone, whatever zones they
		// share
		return Verdict{Drop: true, Rule: DropUnmanaged.Comment}
	case key("allowzone"+s, src, dst):
		return Verdict{Rule: "zones with default: allow"}
	case !in("local", p.Dst) && key("egress"+s, src, dst, proto, port):
		return Verdict{Rule: "egress"}
	case !in("local", p.Src) && key("ingress"+s, src, dst, proto, port):
		return Verdict{Rule: "ingress to published ports"}
	case in("zones", p.Src):
		return Verdict{Drop: true, Rule: DropFromZone.Comment}
	case in("zones", p.Dst):
		return Verdict{Drop: true, Rule: DropToZone.Comment}
	}
	return Verdict{Rule: "not managed"}
}

// specHost is the three tiers with IPv6 on every network and two
// containers no workload selects that the policy leaves to Docker: tool
// on the database tier (a zone with default: allow) and legacy on the
// default bridge (outside the policy); the database tier is not
// internal, and cache publishes 16379->6379 there.
// Address plan: as
// enforcetest.Host, IPv6 fd20:N::x on network N (fd20:0:: the bridge).
func specHost() *inventory.Snapshot {
	snap := threeTier()
	for i := range snap.Networks {
		n := &snap.Networks[i]
		n.Internal = false // so that cache's port is published
		if !n.HasIPv6() {
			n.EnableIPv6 = true
			n.Subnets = append(n.Subnets, inventory.Subnet{Prefix: netip.MustParsePrefix(fmt.Sprintf("fd20:%d::/64", i))})
		}
	}
	for i := range snap.Containers {
		for j := range snap.Containers[i].Endpoints {
			e := &snap.Containers[i].Endpoints[j]
			if !e.IPv6.IsValid() {
				v4 := e.IPv4.As4()
				e.IPv6 = netip.MustParseAddr(fmt.Sprintf("fd20:%d::%d", v4[2], v4[3]))
			}
		}
	}
	for i := range snap.Containers {
		if snap.Containers[i].Name == "cache" { // on a zone with default: allow
			snap.Containers[i].Ports = []inventory.PortBinding{{ContainerPort: l4.Port{Number: 6379, Proto: "tcp"}, HostPort: 16379}}
		}
	}
	snap.Containers = append(snap.Containers,
		inventory.Container{Name: "tool", State: "running", NetworkMode: "database-tier", Endpoints: []inventory.Endpoint{
			{Network: "database-tier", IPv4: netip.MustParseAddr("10.20.3.60"), IPv6: netip.MustParseAddr("fd20:3::60")}}},
		inventory.Container{Name: "legacy", State: "running", NetworkMode: "bridge", Endpoints: []inventory.Endpoint{
			{Network: "bridge", IPv4: netip.MustParseAddr("10.20.0.60"), IPv6: netip.MustParseAddr("fd20:0::60")}}},
	)
	return snap
}

// specPackets are the packets TestTraceFollowsSpec traces: between every
// two addresses of one family among the three tiers' containers (the
// unmanaged stray too), an unadmitted address in a zone, a container of a
// network outside the policy, gateways, clients beyond the host and the
// internet, on the ports the policy names and others, at both hooks, new
// and established.
func specPackets(r *Ruleset, snap *inventory.Snapshot) []Packet {
	var addrs []netip.Addr
	for _, c := range snap.Containers {
		for _, e := range c.Endpoints {
			for _, a := range []netip.Addr{e.IPv4, e.IPv6} {
				if a.IsValid() {
					addrs = append(addrs, a)
				}
			}
		}
	}
	for _, a := range []string{"10.20.3.99", "10.20.1.1", "10.20.2.1", "10.20.3.1", "203.0.113.7", "192.0.2.7", "198.51.100.9", "fd20:1::99", "fd20:1::1", "2001:db8::7", "2001:db9::7"} {
		addrs = append(addrs, netip.MustParseAddr(a))
	}
	ports := []l4.Port{{Proto: "tcp", Number: 443}, {Proto: "tcp", Number: 8080}, {Proto: "tcp", Number: 5432}, {Proto: "tcp", Number: 6379},
		{Proto: "udp", Number: 9050}, {Proto: "udp", Number: 53}, {Proto: "icmp"}, {Proto: "tcp", Number: 22}, {Proto: "tcp", Number: 16379}}
	var out []Packet
	for _, src := range addrs {
		for _, dst := range addrs {
			if src == dst || src.Is4() != dst.Is4() {
				continue
			}
			for _, port := range ports {
				proto := port.Proto
				if proto == "icmp" && src.Is6() {
					proto = "ipv6-icmp"
				}
				for _, hook := range []Hook{Forward, Input} {
					p := Packet{Hook: hook, Src: src, Dst: dst, Proto: proto, Port: port.Number}
					out = append(out, p)
					if port.Number == 443 {
						p.Established = true
						out = append(out, p)
					}
				}
			}
		}
	}
	return out
}

// specCase is one ruleset of the specification test with its packets
// and their verdicts by specTrace.
type specCase struct {
	r       *Ruleset
	packets []Packet
	want    []Verdict
}

var (
	specOnce  sync.Once
	specCache []specCase
)

// specCases compiles the spec host under unmanaged warn and deny, once.
func specCases(t reporter) []specCase {
	t.Helper()
	specOnce.Do(func() {
		for _, doc := range []string{
			threeTierPolicy,
			strings.Replace(threeTierPolicy, "unmanaged: warn", "unmanaged: deny", 1),
			// lb open to every client beyond the host (no ingress list),
			// cache allowed to publish.
			strings.NewReplacer(`, ingress: ["203.0.113.0/24", "2001:db8::/32"]`, "",
				"zones: [database-tier]}\nflows", "zones: [database-tier], publish: [\"16379:6379/tcp\"]}\nflows",
				"database-tier:    {internal: true}", "database-tier:    {}").Replace(threeTierPolicy),
		} {
			specCache = append(specCache, newSpecCase(t, doc))
		}
	})
	return specCache
}

// newSpecCase compiles doc on the spec host.
func newSpecCase(t reporter, doc string) specCase {
	snap := specHost()
	c := specCase{r: Compile(bind(t, doc, snap), Options{})}
	c.packets = specPackets(c.r, snap)
	for _, p := range c.packets {
		c.want = append(c.want, specTrace(c.r, p))
	}
	return c
}

// TestMonitorTraceFollowsSpec: in monitor mode, of one zone and of every
// zone, the chains decide every packet of specPackets as the
// specification does: what enforce mode drops and no zone in enforce mode
// is party to passes as "would deny"; the rest as in enforce mode.
func TestMonitorTraceFollowsSpec(t *testing.T) {
	for _, doc := range []string{
		strings.Replace(threeTierPolicy, "application-tier: {default: deny}", "application-tier: {default: deny, mode: monitor}", 1),
		strings.Replace(threeTierPolicy, "unmanaged: warn", "unmanaged: deny\nmode: monitor", 1),
	} {
		c := newSpecCase(t, doc)
		c.check(t, nil)
		would, dropped := 0, 0
		for _, v := range c.want {
			if v.WouldDrop {
				would++
			}
			if v.Drop {
				dropped++
			}
		}
		t.Logf("%d packets: %d would be denied, %d dropped", len(c.packets), would, dropped)
		if would == 0 {
			t.Errorf("no packet is let through as would deny: the case does not test monitor mode")
		}
		if strings.Contains(doc, "\nmode: monitor") && dropped > 0 {
			t.Errorf("every zone monitors, yet %d packets are dropped", dropped)
		}
		if !strings.Contains(doc, "\nmode: monitor") && dropped == 0 {
			t.Errorf("the public DMZ and database tiers enforce, yet no packet is dropped")
		}
	}
}

// TestTraceFollowsSpec: the chains, traced rule by rule, decide every
// packet of specPackets as the specification does, with the same rule.
func TestTraceFollowsSpec(t *testing.T) {
	checkSpec(t, nil)
	n := 0
	for _, c := range specCases(t) {
		n += len(c.packets)
	}
	t.Logf("%d packets under %d policies", n, len(specCases(t)))
}

func checkSpec(t reporter, mutate mutation) {
	t.Helper()
	for _, c := range specCases(t) {
		c.check(t, mutate)
	}
}

// check traces c's packets through the chains of c's ruleset, mutated,
// and reports those (five at most, then a count) that the chains decide
// otherwise than the specification.
func (c specCase) check(t reporter, mutate mutation) {
	t.Helper()
	chains := c.r.ChainRules()
	if mutate != nil {
		chains = mutate(chains)
	}
	index := indexChains(chains)
	bad := 0
	for i, p := range c.packets {
		if got := c.r.traceIndexed(index, p); got != c.want[i] {
			if bad++; bad <= 5 {
				t.Errorf("%+v: the chains say %+v, the specification %+v", p, got, c.want[i])
			}
		}
	}
	if bad > 5 {
		t.Errorf("... %d disagreements of %d packets", bad, len(c.packets))
	}
}

// recorder is a reporter that remembers whether anything failed.
type recorder struct{ failed bool }

func (r *recorder) Helper()               {}
func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true; runtime.Goexit() }

// semanticChecks are the tests of what the chains decide, by the test
// that runs each.
var semanticChecks = []struct {
	test string
	run  func(reporter, mutation)
}{
	{"TestTraceFollowsSpec", checkSpec},
	{"TestTraceAgreesWithPolicy", checkPolicyAgreement},
	{"TestAcceptsOnlyAdmitted", checkAdmitted},
	{"TestUnallowedPublishedPortIsGuarded", checkUnallowedPublished},
	{"TestOutsideNetworksDoNotReachZones", checkOutsideNetworks},
	{"TestRepliesPass", checkReplies},
	{"TestPortsTraceFollowsSpec", checkPortsSpec},
}

// catches returns the tests among semanticChecks that fail under m.
func catches(m mutation) []string {
	var out []string
	for _, c := range semanticChecks {
		rec := &recorder{}
		done := make(chan struct{})
		go func() { defer close(done); c.run(rec, m) }()
		<-done
		if rec.failed {
			out = append(out, c.test)
		}
	}
	return out
}

// mutant is one change to one rule of the inet table.
type mutant struct {
	name string // "forward4 #3 (drop from-zone): removed"
	m    mutation
}

// mutants lists, for every rule of the chains, the rule removed, moved
// to the top and to the bottom of its chain, each of its matches removed
// (the rule weakened: an accept or a drop of more), and its verdict
// turned (an accept into a drop, a drop or a jump into an accept).
func mutants(chains []Chain) []mutant {
	var out []mutant
	for _, c := range chains {
		for ri, rule := range c.Rules {
			label := fmt.Sprintf("%s #%d (%s)", c.Name, ri+1, ruleLabel(rule))
			id := rule.render(0)
			// edit finds the rule by chain and text (the chains of
			// another unmanaged setting may lack it: left alone then).
			edit := func(what string, f func(rules []Rule, i int) []Rule) {
				out = append(out, mutant{label + ": " + what, func(in []Chain) []Chain {
					cs := slices.Clone(in)
					for k := range cs {
						if cs[k].Name != c.Name {
							continue
						}
						for i, r := range cs[k].Rules {
							if r.render(0) == id {
								cs[k].Rules = f(slices.Clone(cs[k].Rules), i)
								return cs
							}
						}
					}
					return cs
				}})
			}
			edit("removed", func(rs []Rule, i int) []Rule { return slices.Delete(rs, i, i+1) })
			if ri > 0 {
				edit("moved to the top", func(rs []Rule, i int) []Rule { return slices.Insert(slices.Delete(rs, i, i+1), 0, rule) })
			}
			if ri < len(c.Rules)-1 {
				edit("moved to the bottom", func(rs []Rule, i int) []Rule { return append(slices.Delete(rs, i, i+1), rule) })
			}
			for mi, m := range rule.Match {
				edit("without its match "+m.String(), func(rs []Rule, i int) []Rule {
					rs[i].Match = slices.Delete(slices.Clone(rule.Match), mi, mi+1)
					return rs
				})
			}
			edit("its verdict turned", func(rs []Rule, i int) []Rule {
				if rule.Action == Accept {
					rs[i].Action, rs[i].Drop = Drop, DropFromZone
				} else {
					rs[i].Action, rs[i].Comment = Accept, "mutant"
				}
				return rs
			})
		}
	}
	return out
}

// equivalent says why a mutant decides every packet as the chains do, if
// it does: such a mutant is not a hole in the tests.
func equivalent(name string) (string, bool) {
	switch {
	case strings.Contains(name, "without its match meta nfproto"):
		return "nft gives every ip or ip6 match the same family dependency: the match is there for the reader and to skip the rule early", true
	case strings.HasPrefix(name, "forward #2 (jump forward4): moved to the bottom"),
		strings.HasPrefix(name, "input #6 (drop host): moved to the bottom"):
		return "it changes places with the same rule of the other family: no packet meets both", true
	case strings.HasPrefix(name, "input #4 ") && strings.HasSuffix(name, "moved to the bottom"),
		strings.HasPrefix(name, "input #5 ") && strings.HasSuffix(name, "moved to the bottom"):
		return "no unmanaged container left to Docker is on a default: deny zone (it would be fenced), so the host drops below never meet its packets", true
	case strings.Contains(name, "(accept: declared flows on port ranges): moved to the top"),
		strings.Contains(name, "(accept: declared flows to published ports): moved to the top"):
		return "it moves above accepts only: the verdict is the same", true
	case strings.Contains(name, "(drop unadmitted-src): moved to the top"),
		strings.Contains(name, "(accept: egress): moved to the top"),
		strings.Contains(name, "(accept: ingress to published ports): moved to the top"):
		return "the accepting sets hold admitted addresses only (TestAcceptsOnlyAdmitted), so the fail-closed drops and the accepts never meet the same packet", true
	// The endpoint binding's chain: its IPv4 (#1-3), ARP (#4-6) and IPv6
	// (#7-10) rules never meet the same frame.
	case strings.HasPrefix(name, "prerouting #2 ") && strings.HasSuffix(name, "moved to the bottom"),
		strings.HasPrefix(name, "prerouting #5 ") && strings.HasSuffix(name, "moved to the bottom"),
		strings.HasPrefix(name, "prerouting #9 ") && strings.HasSuffix(name, "moved to the bottom"):
		return "a spoof drop of claimed addresses below the port's own drop: that drop takes the same frames from a zone member's port with the same verdict and rule, and it still takes the others", true
	case strings.HasPrefix(name, "prerouting #3 ") && strings.Contains(name, "moved to the"),
		strings.HasPrefix(name, "prerouting #6 ") && strings.Contains(name, "moved to the"),
		strings.HasPrefix(name, "prerouting #4 ") && strings.HasSuffix(name, "moved to the top"),
		strings.HasPrefix(name, "prerouting #7 ") && strings.HasSuffix(name, "moved to the top"):
		return "it moves among rules of other frames (IPv4, ARP, IPv6) or past a rule it excludes (its own address)", true
	case strings.HasPrefix(name, "prerouting #7 ") && strings.Contains(name, "without its match icmpv6 type"):
		return "the tracer knows a target only in an advertisement; in the kernel, another packet's transport bytes 8-23 would have to equal a claimed address", true
	case strings.HasPrefix(name, "prerouting #10 ") && strings.Contains(name, "without its match meta iif . ip6 saddr != @bound6"):
		return "the accept of the port's own addresses above it already takes those frames", true
	}
	return "", false
}

func ruleLabel(r Rule) string {
	switch r.Action {
	case Drop:
		return "drop " + r.Drop.ID
	case Jump:
		return "jump " + r.Target
	}
	if r.Comment == "" {
		return "accept"
	}
	return "accept: " + r.Comment
}

// TestMutations: every change to a rule of the tables' chains (the inet
// table's and the endpoint binding's) — a
// rule removed, moved, weakened or turned — fails at least one of the
// semantic tests (semanticChecks), which trace packets through the chains
// the way the kernel runs them. (TestGoldenRulesets catches every one too,
// by text; this test asks that the meaning be tested.) With -v it prints
// which tests catch each mutant.
func TestMutations(t *testing.T) {
	chains := append(Compile(bind(t, threeTierPolicy, threeTier()), Options{}).ChainRules(),
		CompilePorts(bind(t, threeTierPolicy, hostWithPorts()), Options{}).ChainRules()...)
	all := mutants(chains)
	if len(all) < 100 {
		t.Fatalf("only %d mutants of %d chains", len(all), len(chains))
	}
	caughtBy := make([][]string, len(all))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	specCases(t) // compiled once, before the workers share them
	portsSpecCase(t)
	for i, mu := range all {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			caughtBy[i] = catches(mu.m)
		}()
	}
	wg.Wait()
	byTest := map[string]int{}
	for i, mu := range all {
		caught := caughtBy[i]
		for _, c := range caught {
			byTest[c]++
		}
		if why, ok := equivalent(mu.name); ok {
			if len(caught) > 0 {
				t.Errorf("mutant %s is listed as equivalent (%s), but %s fail: take it off the list", mu.name, why, strings.Join(caught, ", "))
			}
			continue
		}
		if len(caught) == 0 {
			t.Errorf("mutant %s: no test fails", mu.name)
			continue
		}
		if testing.Verbose() {
			t.Logf("%s: caught by %s", mu.name, strings.Join(caught, ", "))
		}
	}
	names := make([]string, 0, len(byTest))
	for n := range byTest {
		names = append(names, n)
	}
	sort.Strings(names)
	var sum []string
	for _, n := range names {
		sum = append(sum, fmt.Sprintf("%s %d", n, byTest[n]))
	}
	t.Logf("%d mutants of %d rules; caught by: %s", len(all), countRules(chains), strings.Join(sum, ", "))
}

func countRules(cs []Chain) int {
	n := 0
	for _, c := range cs {
		n += len(c.Rules)
	}
	return n
}
