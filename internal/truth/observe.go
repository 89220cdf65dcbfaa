package truth

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/probe"
	"github.com/zonewarden/zonewarden/internal/reach"
)

// Key is one question: does From reach To on Port?
type Key struct {
	From, To string
	Port     l4.Port
}

func (k Key) String() string { return k.From + " -> " + k.To + ":" + k.Port.String() }

func compareKeys(a, b Key) int {
	return cmp.Or(strings.Compare(a.From, b.From), strings.Compare(a.To, b.To),
		strings.Compare(a.Port.Proto, b.Port.Proto), int(a.Port.Number)-int(b.Port.Number))
}

// Attempt is one probe made to answer a Key.
type Attempt struct {
	// Via names the path the probe tried, in the model's words:
	// "network:app" (the target's address on app), "published:0.0.0.0:8443"
	// (a published port, through a gateway or host address),
	// "gateway:app" (the host, through app's gateway), "host-network",
	// "namespace:api", "egress", or "host-address" (the host through the
	// scenario's host address).
	Via    string
	Result probe.Result
	// Reached is true when the listener of the target's namespace answered.
	Reached bool
}

func (a Attempt) String() string {
	s := a.Via + " " + a.Result.To.String() + " " + a.Result.Status.String()
	if len(a.Result.Reply) > 0 {
		b, _ := probe.FromBanner(a.Result.Reply)
		s += " (" + b + ")"
	}
	return s
}

// Observation is what the packets did for one Key.
type Observation struct {
	Key
	// Reached is true when any attempt reached the target.
	Reached bool
	// Via lists the paths of the attempts that reached it, sorted.
	Via      []string
	Attempts []Attempt
}

// Matrix is the observed reachability of a scenario: one Observation per
// ordered pair of peers and port listening at the target.
type Matrix struct {
	obs   []Observation // sorted by Key
	index map[Key]int
}

// Observations returns every observation, sorted by source, target, port.
func (m *Matrix) Observations() []Observation { return m.obs }

// Get returns the observation of one Key.
func (m *Matrix) Get(from, to string, port l4.Port) (Observation, bool) {
	i, ok := m.index[Key{from, to, port}]
	if !ok {
		return Observation{}, false
	}
	return m.obs[i], true
}

// Reached reports whether from reached to on port (false when not probed).
func (m *Matrix) Reached(from, to string, port l4.Port) bool {
	o, _ := m.Get(from, to, port)
	return o.Reached
}

// Model answers what should happen: *reach.Analysis is one; a test of
// enforcement can wrap one to say what its rules allow.
type Model interface {
	Eval(from, to string, port l4.Port) (bool, reach.Edge)
}

// Mismatch is a Key where the model and the packets disagree.
type Mismatch struct {
	Key
	Model, Real bool
	// Via is the model edge's reasons when the model says yes, else the
	// paths the packets took.
	Via         []string
	Observation Observation
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// String renders the mismatch as "A -> B:5432/tcp model=yes real=no (network:app)".
func (m Mismatch) String() string {
	return fmt.Sprintf("%s model=%s real=%s (%s)", m.Key, yesNo(m.Model), yesNo(m.Real), strings.Join(m.Via, ", "))
}

// Compare returns the keys of m where model disagrees with the packets.
func Compare(m *Matrix, model Model) []Mismatch {
	var out []Mismatch
	for _, o := range m.obs {
		ok, edge := model.Eval(o.From, o.To, o.Port)
		if ok == o.Reached {
			continue
		}
		via := o.Via
		if ok {
			via = reach.Reasons(edge.Via)
		}
		out = append(out, Mismatch{Key: o.Key, Model: ok, Real: o.Reached, Via: via, Observation: o})
	}
	return out
}

// Check observes the scenario and reports every disagreement with model
// with t.Errorf, in the format of [Mismatch.String], followed by the
// probes behind it (t.Logf). It returns the observed matrix.
func (e *Env) Check(t *testing.T, model Model) *Matrix {
	t.Helper()
	m := e.Observe(t)
	for _, mm := range Compare(m, model) {
		t.Errorf("%s", mm)
		for _, a := range mm.Observation.Attempts {
			t.Logf("    probe %s", a)
		}
	}
	return m
}

// Peers returns the sources the matrix probes from: the containers, sorted,
// then host and outside.
func (e *Env) Peers() []string {
	var out []string
	for _, c := range e.snap.Containers {
		out = append(out, c.Name)
	}
	slices.Sort(out)
	return append(out, reach.Host, reach.Outside)
}

// targets are the peers probed: the containers, host and internet.
func (e *Env) targets() []string {
	out := e.Peers()
	return append(out[:len(out)-1], reach.Internet)
}

// source is where a peer's probes start from.
type source struct {
	ns *probe.Namespace
	// gws are the gateways of the container's bridge networks, with the
	// network's name; none for the host, outside and none-mode peers.
	gws []namedAddr
	// kind is "container", "host" or "outside".
	kind string
	// owner is the namespace owner ("host" for the host namespace).
	owner string
}

type namedAddr struct {
	net  string
	addr netip.Addr
}

func (e *Env) sourceOf(peer string) source {
	switch peer {
	case reach.Host:
		return source{ns: probe.Host(), kind: "host", owner: bannerHost}
	case reach.Outside:
		return source{ns: e.plumb.ext, kind: "outside", owner: reach.Outside}
	}
	o := e.ownerOf(peer)
	if o == bannerHost {
		return source{ns: probe.Host(), kind: "host", owner: bannerHost}
	}
	s := source{ns: e.ns[o], kind: "container", owner: o}
	c := e.ix.Container(o)
	for _, ep := range c.Endpoints {
		if g, ok := e.gw4[ep.Network]; ok {
			s.gws = append(s.gws, namedAddr{ep.Network, g})
		}
		if g, ok := e.gw6[ep.Network]; ok && ep.IPv6.IsValid() {
			s.gws = append(s.gws, namedAddr{ep.Network, g})
		}
	}
	return s
}

// candidate is one address to try for a Key, with the path it stands for.
type candidate struct {
	via  string
	addr netip.AddrPort
}

// candidates lists every address by which src could reach target on
// port: the target's own addresses, its published ports through the
// source's gateways and the host address, the host namespace through the
// same, and the outside namespace's addresses for internet.
func (e *Env) candidates(src source, target string, port l4.Port) []candidate {
	var out []candidate
	add := func(via string, a netip.Addr, p uint16) {
		if a.IsValid() {
			out = append(out, candidate{via, netip.AddrPortFrom(a, p)})
		}
	}
	hostAddrs := func(p uint16) {
		for _, g := range src.gws {
			add(reach.ViaGateway+g.net, g.addr, p)
		}
		via := "host-address"
		if src.kind != "container" {
			via = reach.ViaHostNetwork
		}
		add(via, e.plumb.host4, p)
		add(via, e.plumb.host6, p)
	}
	if target == reach.Internet {
		add(reach.ViaEgress, e.plumb.ext4, port.Number)
		add(reach.ViaEgress, e.plumb.ext6, port.Number)
		return out
	}
	to := e.ownerOf(target)
	if to == bannerHost {
		hostAddrs(port.Number)
		return out
	}
	c := e.ix.Container(to)
	for _, ep := range c.Endpoints {
		via := reach.ViaNetwork + ep.Network
		switch {
		case src.owner == to:
			via = reach.ViaNamespace + to
		case src.kind == "host":
			via = reach.ViaHostNetwork
		}
		add(via, ep.IPv4, port.Number)
		add(via, ep.IPv6, port.Number)
	}
	for _, b := range c.Ports {
		if b.ContainerPort.Number != port.Number || b.ContainerPort.Proto != port.Proto || b.HostPort == 0 {
			continue
		}
		via := reach.ViaPublished + b.HostAddress()
		switch {
		case b.AllInterfaces():
			for _, g := range src.gws {
				if g.addr.Is4() == b.HostIP.Is4() || !b.HostIP.IsValid() {
					add(via, g.addr, b.HostPort)
				}
			}
			if !b.HostIP.IsValid() || b.HostIP.Is4() {
				add(via, e.plumb.host4, b.HostPort)
			}
			if !b.HostIP.IsValid() || b.HostIP.Is6() {
				add(via, e.plumb.host6, b.HostPort)
			}
		case !b.HostIP.IsLoopback():
			// Never loopback: from a container that is its own.
			add(via, b.HostIP, b.HostPort)
		}
	}
	return out
}

// banner returns the banner of the listener in a target's namespace.
func (e *Env) banner(target string) string {
	switch o := e.ownerOf(target); o {
	case reach.Internet:
		return bannerInternet
	case bannerHost:
		return bannerHost
	default:
		return "ns:" + o
	}
}

type jobKey struct {
	ns   *probe.Namespace
	addr netip.AddrPort
	udp  bool
}

// Observe probes every ordered pair of peers (containers, host, outside ->
// containers, host, internet) on every port listening at the target, over
// every candidate address, and returns what the packets did. Probes that
// could not be made at all fail t.
func (e *Env) Observe(t *testing.T) *Matrix {
	t.Helper()
	start := time.Now()
	type plan struct {
		key   Key
		tries []candidate
		jobs  []int
	}
	var plans []plan
	var jobs []probe.Job
	jobIndex := map[jobKey]int{}
	for _, from := range e.Peers() {
		src := e.sourceOf(from)
		for _, to := range e.targets() {
			if to == from || from == reach.Outside && to == reach.Internet {
				continue
			}
			for _, port := range e.Ports(to) {
				p := plan{key: Key{from, to, port}, tries: e.candidates(src, to, port)}
				for _, c := range p.tries {
					jk := jobKey{src.ns, c.addr, port.Proto == "udp"}
					i, ok := jobIndex[jk]
					if !ok {
						i = len(jobs)
						jobIndex[jk] = i
						jobs = append(jobs, probe.Job{From: src.ns, To: probe.Target{Proto: port.Proto, Addr: c.addr}})
					}
					p.jobs = append(p.jobs, i)
				}
				plans = append(plans, p)
			}
		}
	}
	pr := &probe.Prober{ReadReply: true, Workers: 256}
	results := pr.Run(context.Background(), jobs)

	m := &Matrix{index: make(map[Key]int, len(plans))}
	failed := 0
	for _, p := range plans {
		o := Observation{Key: p.key}
		want := e.banner(p.key.To)
		for i, c := range p.tries {
			r := results[p.jobs[i]]
			got, _ := probe.FromBanner(r.Reply)
			a := Attempt{Via: c.via, Result: r, Reached: r.Status == probe.Open && got == want}
			if r.Status == probe.Failed {
				failed++
				if failed <= 5 {
					t.Errorf("probe %s for %s could not be made: %v", r.To, p.key, r.Err)
				}
			}
			if r.Status == probe.Open && got != want && got != "" {
				t.Errorf("probe %s for %s was answered by %q, want %q: addresses are not what the snapshot says", r.To, p.key, got, want)
			}
			if a.Reached {
				o.Reached = true
				if !slices.Contains(o.Via, c.via) {
					o.Via = append(o.Via, c.via)
				}
			}
			o.Attempts = append(o.Attempts, a)
		}
		slices.Sort(o.Via)
		m.obs = append(m.obs, o)
	}
	slices.SortFunc(m.obs, func(a, b Observation) int { return compareKeys(a.Key, b.Key) })
	for i, o := range m.obs {
		m.index[o.Key] = i
	}
	if failed > 5 {
		t.Errorf("... %d probes in all could not be made", failed)
	}
	t.Logf("observed %d keys with %d probes in %v", len(m.obs), len(jobs), time.Since(start).Round(time.Millisecond))
	return m
}

// waitReady polls until every container answers from the host on each of
// its addresses, every IPv6 container reaches its gateways, and the
// outside namespace answers: new links (IPv6 above all) take a moment.
func (e *Env) waitReady(t *testing.T) {
	t.Helper()
	var jobs []probe.Job
	var want []string
	hostTCP := e.ports[bannerHost][0].Number
	for _, c := range e.snap.Containers {
		if e.owner[c.Name] != c.Name {
			continue
		}
		for _, ep := range c.Endpoints {
			from := probe.Host()
			if e.Scenario.network(ep.Network).hostless() {
				from = e.ns[c.Name] // the host has no route there
			}
			for _, a := range []netip.Addr{ep.IPv4, ep.IPv6} {
				if a.IsValid() {
					jobs = append(jobs, probe.Job{From: from, To: probe.Target{Proto: probe.TCP, Addr: netip.AddrPortFrom(a, 80)}})
					want = append(want, "ns:"+c.Name)
				}
			}
			if g, ok := e.gw6[ep.Network]; ok && ep.IPv6.IsValid() {
				jobs = append(jobs, probe.Job{From: e.ns[c.Name], To: probe.Target{Proto: probe.TCP, Addr: netip.AddrPortFrom(g, hostTCP)}})
				want = append(want, bannerHost)
			}
		}
	}
	for _, a := range []netip.Addr{e.plumb.ext4, e.plumb.ext6} {
		jobs = append(jobs, probe.Job{From: probe.Host(), To: probe.Target{Proto: probe.TCP, Addr: netip.AddrPortFrom(a, 80)}})
		want = append(want, bannerInternet)
	}
	pr := &probe.Prober{ReadReply: true, Timeout: 200 * time.Millisecond}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var pending []probe.Job
		var pendingWant []string
		var last []probe.Result
		for i, r := range pr.Run(context.Background(), jobs) {
			if b, _ := probe.FromBanner(r.Reply); r.Status != probe.Open || b != want[i] {
				pending, pendingWant, last = append(pending, jobs[i]), append(pendingWant, want[i]), append(last, r)
			}
		}
		if len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("scenario not ready after 20 s: %d probes still fail, first %v", len(pending), last[0])
		}
		jobs, want = pending, pendingWant
		time.Sleep(50 * time.Millisecond) // between polls, under the deadline
	}
}

// String renders the matrix one key per line, "A -> B:80/tcp yes
// (network:app)" or "A -> B:80/tcp no [probe outcomes]", for logs.
func (m *Matrix) String() string {
	var sb strings.Builder
	for _, o := range m.obs {
		sb.WriteString(o.Key.String())
		if o.Reached {
			sb.WriteString(" yes (" + strings.Join(o.Via, ", ") + ")\n")
			continue
		}
		sb.WriteString(" no [")
		for i, a := range o.Attempts {
			if i > 0 {
				sb.WriteString("; ")
			}
			sb.WriteString(a.String())
		}
		sb.WriteString("]\n")
	}
	return sb.String()
}

// ModelFunc adapts a function to a [Model]: a test of enforcement can say
// what its rules allow, with its own reasons in the Edge's Via.
type ModelFunc func(from, to string, port l4.Port) (bool, reach.Edge)

// Eval calls f.
func (f ModelFunc) Eval(from, to string, port l4.Port) (bool, reach.Edge) {
	return f(from, to, port)
}

// Connect makes one connection from peer from to container to on port,
// to its address on each network they share (scripted traffic: what
// learn should see), and reports whether one reached it.
func (e *Env) Connect(t *testing.T, from, to string, port l4.Port) bool {
	t.Helper()
	src := e.sourceOf(from)
	var jobs []probe.Job
	for _, c := range e.candidates(src, to, port) {
		if strings.HasPrefix(c.via, reach.ViaNetwork) {
			jobs = append(jobs, probe.Job{From: src.ns, To: probe.Target{Proto: port.Proto, Addr: c.addr}})
		}
	}
	if len(jobs) == 0 {
		t.Fatalf("%s and %s share no network", from, to)
	}
	pr := &probe.Prober{ReadReply: true, Timeout: time.Second}
	want := e.banner(to)
	for _, r := range pr.Run(context.Background(), jobs) {
		if got, _ := probe.FromBanner(r.Reply); r.Status == probe.Open && got == want {
			return true
		}
	}
	return false
}
