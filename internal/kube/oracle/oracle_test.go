package oracle_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/kube"
	"github.com/zonewarden/zonewarden/internal/kube/oracle"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy"
)

func load(t testing.TB, file string) *policy.Policy {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Parse(file, data, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// samples are the addresses beyond the host the comparison asks about:
// fixed ones, and the edges of every prefix the policy names and the
// addresses just outside them.
func samples(p *policy.Policy) []netip.Addr {
	out := []netip.Addr{
		netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("192.0.2.1"),
		netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.255"),
	}
	edges := func(pfx netip.Prefix) {
		if !pfx.Addr().Is4() {
			return
		}
		first := pfx.Masked().Addr()
		last := first
		for a := first; a.IsValid() && pfx.Contains(a); a = a.Next() {
			last = a
			if a.Compare(first) > 0 && pfx.Bits() < 24 { // a wide prefix: its first two addresses will do, with its end below
				break
			}
		}
		if pfx.Bits() < 24 {
			b := first.As4()
			host := uint32(1)<<(32-pfx.Bits()) - 1
			v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
			last = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		}
		for _, a := range []netip.Addr{first, last, first.Prev(), last.Next()} {
			if a.IsValid() {
				out = append(out, a)
			}
		}
	}
	for _, w := range p.Workloads {
		for _, pfx := range w.Ingress {
			edges(pfx)
		}
		for _, e := range w.Egress {
			edges(e.To)
		}
	}
	return out
}

// probePorts are the ports asked of connections to addresses: fixed ones
// and the ends of every egress range.
func probePorts(p *policy.Policy) []l4.Port {
	out := []l4.Port{{Proto: "tcp", Number: 443}, {Proto: "udp", Number: 53}, {Proto: "tcp", Number: 5432}, {Proto: "sctp", Number: 9}, {Proto: "tcp", Number: 1}, {Proto: "udp", Number: 65535}}
	for _, w := range p.Workloads {
		for _, e := range w.Egress {
			for _, r := range e.Ports {
				if r.Proto == l4.ProtoTCP || r.Proto == l4.ProtoUDP || r.Proto == l4.ProtoSCTP {
					out = append(out, l4.Port{Proto: r.Proto, Number: r.First}, l4.Port{Proto: r.Proto, Number: r.Last})
					if r.Last < 65535 {
						out = append(out, l4.Port{Proto: r.Proto, Number: r.Last + 1})
					}
				}
			}
		}
	}
	return out
}

// disagreements holds the analyzer's reading of the export to
// zonewarden's model: every ordered pair of workloads on every TCP, UDP
// and SCTP port, clients at each sample address on every published port,
// and each workload's egress to each sample address on the probe ports.
// With twins, c was run with a twin of every workload and each workload
// is compared with itself too.
func disagreements(p *policy.Policy, c *oracle.Conns, twins bool) []string {
	m := model.Compile(p)
	var out []string
	for _, a := range p.Workloads {
		for _, b := range p.Workloads {
			if a.Name == b.Name && !twins {
				continue
			}
			want := oracle.Narrow(m.AllowedPorts(policy.WorkloadRef(a.Name), policy.WorkloadRef(b.Name)))
			if got := c.Between(a.Name, b.Name); got.String() != want.String() {
				out = append(out, fmt.Sprintf("%s -> %s: zonewarden allows %s, Kubernetes %s", a.Name, b.Name, want, got))
			}
		}
	}
	addrs, probes := samples(p), probePorts(p)
	for _, w := range p.Workloads {
		for _, addr := range addrs {
			var want l4.List
			for _, pub := range w.Publish {
				port := l4.Port{}
				if pub.Host.First != 0 {
					port = l4.Port{Proto: pub.Host.Proto, Number: pub.Host.First}
				}
				if m.Eval(policy.Ref{Kind: policy.RefAddress, Addr: addr}, policy.WorkloadRef(w.Name), port).Allow {
					want = want.Union(l4.List{pub.Container})
				}
			}
			if got := c.FromAddr(addr, w.Name); got.String() != want.String() {
				out = append(out, fmt.Sprintf("%s -> %s: zonewarden admits %s, Kubernetes %s", addr, w.Name, want, got))
			}
			got := c.ToAddr(w.Name, addr)
			for _, port := range probes {
				d := m.Eval(policy.WorkloadRef(w.Name), policy.Ref{Kind: policy.RefAddress, Addr: addr}, port)
				if d.Allow != got.Contains(port) {
					out = append(out, fmt.Sprintf("%s -> %s %s: zonewarden allow=%v (%s), Kubernetes allows %s", w.Name, addr, port, d.Allow, d.Reason, got))
				}
			}
		}
	}
	return out
}

func names(p *policy.Policy) []string {
	out := make([]string, len(p.Workloads))
	for i, w := range p.Workloads {
		out[i] = w.Name
	}
	return out
}

func agree(t *testing.T, p *policy.Policy, opts kube.Options) {
	t.Helper()
	x := kube.Build(p, opts)
	c, err := oracle.Run(x, names(p)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range disagreements(p, c, true) {
		t.Error(d)
	}
}

func TestExportAgreesOnThreeTiers(t *testing.T) {
	p := load(t, "../../policy/testdata/threetier.yaml")
	for _, s := range kube.Schemes {
		t.Run(string(s), func(t *testing.T) { agree(t, p, kube.Options{Namespace: "shop", Scheme: s}) })
	}
}

func TestExportAgreesOnTheDemo(t *testing.T) {
	p := load(t, "../../demo/policy.yaml")
	for _, s := range kube.Schemes {
		t.Run(string(s), func(t *testing.T) { agree(t, p, kube.Options{Scheme: s}) })
	}
}

// TestDisagreementIsCaught: the comparison fails when the export is
// wrong: one ingress rule dropped, one port widened at both ends.
func TestDisagreementIsCaught(t *testing.T) {
	p := load(t, "../../policy/testdata/threetier.yaml")
	x := kube.Build(p, kube.Options{Scheme: kube.Own})
	api := x.Policies[2] // api: its ingress from frontend on 8080
	if api.Annotations["zonewarden.io/workload"] != "api" || len(api.Spec.Ingress) == 0 {
		t.Fatalf("policy 2 is not api's or has no ingress: %+v", api.ObjectMeta)
	}
	x.Policies[2].Spec.Ingress = nil
	end := int32(5440)
	x.Policies[2].Spec.Egress[0].Ports[0].EndPort = &end  // api -> postgres
	x.Policies[3].Spec.Ingress[0].Ports[0].EndPort = &end // postgres <- api
	c, err := oracle.Run(x)
	if err != nil {
		t.Fatal(err)
	}
	got := disagreements(p, c, false)
	want := []string{
		"frontend -> api: zonewarden allows 8080/tcp, Kubernetes no port",
		"api -> postgres: zonewarden allows 5432/tcp, Kubernetes 5432-5440/tcp",
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			t.Errorf("the comparison missed %q; it found %q", w, got)
		}
	}
}

// TestExportAgreesOnRandomPolicies is the property: for random valid
// policies (fixed seed), the analyzer's connectivity of the export is
// zonewarden's own on every pair and port.
func TestExportAgreesOnRandomPolicies(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 2026))
	n := 40
	if testing.Short() {
		n = 8
	}
	allowed := 0
	for i := range n {
		p := randomPolicy(r)
		if err := policy.Validate(p, policy.Options{}); err != nil {
			t.Fatalf("policy %d: the generator made an invalid policy: %v\n%s", i, err, policy.Format(p))
		}
		s := kube.Schemes[i%len(kube.Schemes)]
		x := kube.Build(p, kube.Options{Scheme: s})
		c, err := oracle.Run(x, names(p)...)
		if err != nil {
			t.Fatal(err)
		}
		if d := disagreements(p, c, true); len(d) > 0 {
			t.Errorf("policy %d (labels %s) disagrees in %d places, first %q:\n%s", i, s, len(d), d[0], policy.Format(p))
		}
		allowed += len(c.Connected())
	}
	// The property says something only if the policies allow enough.
	if allowed < 5*n {
		t.Errorf("the %d random policies allow %d pairs of workloads in all: too few to test the export", n, allowed)
	}
	t.Logf("%d policies, %d connected pairs", n, allowed)
}

var randomPorts = []string{"80/tcp", "443/tcp", "8000-8100/tcp", "53/udp", "5000-5010/udp", "9/sctp", "icmp", "all", "1-65535/tcp", "5432/tcp"}

// randomPolicy builds a valid policy of 2 to 10 workloads on 1 to 5 zones,
// with flows between members of a zone (workload or zone references),
// published ports with and without ingress, and egress lists.
func randomPolicy(r *rand.Rand) *policy.Policy {
	p := &policy.Policy{Version: policy.Version}
	nz := 1 + r.IntN(5)
	for i := range nz {
		z := policy.Zone{Name: fmt.Sprintf("z%d", i), Default: policy.Deny}
		if r.IntN(3) == 0 {
			z.Default = policy.Allow
		}
		z.Internal = r.IntN(4) == 0
		p.Zones = append(p.Zones, z)
	}
	members := make([][]string, nz)
	nw := 2 + r.IntN(9)
	for i := range nw {
		w := policy.Workload{Name: fmt.Sprintf("w%d", i)}
		if r.IntN(2) == 0 {
			w.Match.Compose = policy.ComposeMatch{Project: "p", Service: fmt.Sprintf("svc%d", i)}
		} else {
			w.Match.Name = w.Name
		}
		for _, z := range r.Perm(nz)[:1+r.IntN(min(nz, 3))] {
			w.Zones = append(w.Zones, p.Zones[z].Name)
			members[z] = append(members[z], w.Name)
		}
		open := false
		for _, z := range w.Zones {
			open = open || !p.Zone(z).Internal
		}
		if open && r.IntN(2) == 0 {
			host := uint16(20000 + i*10)
			ctr := l4.Range{Proto: "tcp", First: 8080, Last: 8080}
			if r.IntN(3) == 0 {
				ctr = l4.Range{Proto: "udp", First: 5000, Last: 5002}
			}
			w.Publish = []policy.Publish{{Host: l4.Range{Proto: ctr.Proto, First: host, Last: host + ctr.Last - ctr.First}, Container: ctr}}
			if r.IntN(2) == 0 {
				w.Ingress = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8::/32")}
			}
		}
		if open && r.IntN(2) == 0 {
			w.Egress = []policy.Egress{{To: netip.MustParsePrefix("192.0.2.0/28"), Ports: randomList(r)}}
			if r.IntN(2) == 0 {
				w.Egress = append(w.Egress, policy.Egress{To: netip.MustParsePrefix("10.0.0.0/8"), Ports: l4.List{{Proto: "udp", First: 53, Last: 53}}})
			}
		}
		p.Workloads = append(p.Workloads, w)
	}
	ref := func(z int) policy.Ref {
		if r.IntN(4) == 0 {
			return policy.ZoneRef(p.Zones[z].Name)
		}
		return policy.WorkloadRef(members[z][r.IntN(len(members[z]))])
	}
	for range r.IntN(2 * nw) {
		z := r.IntN(nz)
		if len(members[z]) == 0 {
			continue
		}
		p.Flows = append(p.Flows, policy.Flow{From: ref(z), To: ref(z), Ports: randomList(r)})
	}
	testPorts := []l4.Port{{}, {Proto: "tcp", Number: 80}, {Proto: "tcp", Number: 8050}, {Proto: "udp", Number: 53}, {Proto: "sctp", Number: 9}, {Proto: "tcp", Number: 5432}}
	anyRef := func() policy.Ref {
		if r.IntN(3) == 0 {
			return policy.ZoneRef(p.Zones[r.IntN(nz)].Name)
		}
		return policy.WorkloadRef(p.Workloads[r.IntN(nw)].Name)
	}
	for range 3 + r.IntN(6) {
		t := policy.Test{From: anyRef(), To: anyRef(), Port: testPorts[r.IntN(len(testPorts))], Expect: policy.Deny}
		switch r.IntN(5) {
		case 0:
			w := p.Workloads[r.IntN(nw)]
			t.From, t.To = policy.Ref{Kind: policy.RefAddress, Addr: netip.MustParseAddr("198.51.100.9")}, policy.WorkloadRef(w.Name)
			if len(w.Publish) > 0 && r.IntN(2) == 0 {
				t.Port = l4.Port{Proto: w.Publish[0].Host.Proto, Number: w.Publish[0].Host.First}
			}
		case 1:
			t.From = policy.WorkloadRef(p.Workloads[r.IntN(nw)].Name)
			t.To = policy.Ref{Kind: policy.RefAddress, Addr: netip.MustParseAddr("192.0.2.3")}
		}
		p.Tests = append(p.Tests, t)
	}
	return p
}

func randomList(r *rand.Rand) l4.List {
	var l l4.List
	for range 1 + r.IntN(2) {
		pr, err := l4.ParseRange(randomPorts[r.IntN(len(randomPorts))])
		if err != nil {
			panic(err)
		}
		l = append(l, pr)
	}
	return l
}

// TestCheckAgreesOnRandomPolicies: `check --k8s` gives each test the
// model's answer, zone tests and address tests included.
func TestCheckAgreesOnRandomPolicies(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 2026))
	checked := 0
	for i := range 30 {
		p := randomPolicy(r)
		m := model.Compile(p)
		results, err := oracle.Check(p, kube.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, res := range results {
			if !res.Checked {
				continue
			}
			checked++
			if d := m.Run(res.Test); d.Decision.Allow != res.Allow {
				t.Errorf("policy %d: test %s -> %s on %s: zonewarden allow=%v (%s), Kubernetes allow=%v (%s)\n%s",
					i, res.Test.From, res.Test.To, res.Test.Port, d.Decision.Allow, d.Decision.Reason, res.Allow, res.Why, policy.Format(p))
			}
		}
	}
	if checked < 100 {
		t.Errorf("only %d tests were checked", checked)
	}
}

func TestCheckRunsTheThreeTierTests(t *testing.T) {
	p := load(t, "../../policy/testdata/threetier.yaml")
	p.Tests = append(p.Tests,
		policy.Test{From: policy.ZoneRef("dev"), To: policy.WorkloadRef("postgres"), Port: l4.Port{Proto: "tcp", Number: 5432}, Expect: policy.Deny},
		policy.Test{From: policy.ParseRef("198.51.100.1"), To: policy.WorkloadRef("lb"), Port: l4.Port{Proto: "tcp", Number: 443}, Expect: policy.Allow},
		policy.Test{From: policy.WorkloadRef("api"), To: policy.ParseRef("203.0.113.5"), Port: l4.Port{Proto: "tcp", Number: 443}, Expect: policy.Allow},
		policy.Test{From: policy.WorkloadRef("api"), To: policy.ParseRef("203.0.113.5"), Port: l4.Port{Proto: "tcp", Number: 80}, Expect: policy.Allow}, // fails
		policy.Test{From: policy.WorkloadRef("api"), To: policy.ParseRef("2001:db8::1"), Port: l4.Port{Proto: "tcp", Number: 80}, Expect: policy.Deny},
	)
	results, err := oracle.Check(p, kube.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range results {
		got = append(got, fmt.Sprintf("%s->%s %s checked=%v pass=%v", r.Test.From, r.Test.To, r.Test.Port, r.Checked, r.Pass))
	}
	want := []string{
		"frontend->postgres 5432/tcp checked=true pass=true",
		"api->postgres 5432/tcp checked=true pass=true",
		"zone:dev->postgres 5432/tcp checked=true pass=true",
		"198.51.100.1->lb 443/tcp checked=true pass=true",
		"api->203.0.113.5 443/tcp checked=true pass=true",
		"api->203.0.113.5 80/tcp checked=true pass=false",
		"api->2001:db8::1 80/tcp checked=false pass=false",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
