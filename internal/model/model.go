// Package model answers questions on a policy: Compile indexes it for
// decisions between workloads, zones and addresses (Eval, AllowedPorts,
// the policy's own tests), and Bind applies it to a host — which workload
// selects each container (Matches), the zones each must join, the fenced,
// the strays, and the decision for any pair of containers. It is pure: the
// schema, decode and validation stay in policy; drafting is in draft.
package model

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/policy"
)

// Model is a policy compiled for questions: which flows connect which
// workloads, and may A open a connection to B on a port. Build it with
// Compile from a valid policy; it does not follow later changes.
type Model struct {
	p  *policy.Policy
	ix policy.Index
	// flows maps a (from, to) pair of endpoint ids to the flows between
	// them, in policy order. A workload's id is its index, a zone's is
	// len(Workloads) plus its index.
	flows map[uint64][]int32
}

// Compile indexes a policy. References that name nothing (in a policy
// that did not pass Validate) match nothing.
func Compile(p *policy.Policy) *Model {
	m := &Model{p: p, ix: policy.NewIndex(p), flows: make(map[uint64][]int32, len(p.Flows))}
	for i := range p.Flows {
		f := &p.Flows[i]
		from, ok1 := m.endpoint(f.From)
		to, ok2 := m.endpoint(f.To)
		if ok1 && ok2 {
			k := pairKey(from, to)
			m.flows[k] = append(m.flows[k], int32(i))
		}
	}
	return m
}

// workloadID returns the id of a workload the policy declares.
func (m *Model) workloadID(name string) int32 {
	w, _ := m.ix.Workload(name)
	return w
}

// Policy returns the policy the model was compiled from.
func (m *Model) Policy() *policy.Policy { return m.p }

func pairKey(from, to int32) uint64 { return uint64(uint32(from))<<32 | uint64(uint32(to)) }

// endpoint returns the id of a workload or zone reference.
func (m *Model) endpoint(r policy.Ref) (int32, bool) {
	switch r.Kind {
	case policy.RefWorkload:
		w, ok := m.ix.Workload(r.Name)
		return w, ok
	case policy.RefZone:
		z, ok := m.ix.Zone(r.Name)
		return int32(len(m.p.Workloads)) + z, ok
	}
	return 0, false
}

// ids returns the endpoint ids a reference is reached by: a workload's own
// and its zones', or the zone's.
func (m *Model) ids(r policy.Ref) []int32 {
	id, ok := m.endpoint(r)
	if !ok {
		return nil
	}
	if r.Kind == policy.RefZone {
		return []int32{id}
	}
	zs := m.ix.WorkloadZones(id)
	out := make([]int32, 0, 1+len(zs))
	out = append(out, id)
	for _, z := range zs {
		out = append(out, int32(len(m.p.Workloads))+z)
	}
	return out
}

// zonesOf returns the zones of a workload or zone reference.
func (m *Model) zonesOf(r policy.Ref) []int32 {
	switch r.Kind {
	case policy.RefWorkload:
		if w, ok := m.ix.Workload(r.Name); ok {
			return m.ix.WorkloadZones(w)
		}
	case policy.RefZone:
		if z, ok := m.ix.Zone(r.Name); ok {
			return []int32{z}
		}
	}
	return nil
}

// Members returns the workloads a reference stands for: the workload
// itself, or every workload that joins the zone.
func (m *Model) Members(r policy.Ref) []*policy.Workload {
	var idx []int32
	switch r.Kind {
	case policy.RefWorkload:
		if w, ok := m.ix.Workload(r.Name); ok {
			idx = []int32{w}
		}
	case policy.RefZone:
		if z, ok := m.ix.Zone(r.Name); ok {
			idx = m.ix.Members(z)
		}
	}
	out := make([]*policy.Workload, len(idx))
	for i, w := range idx {
		out[i] = &m.p.Workloads[w]
	}
	return out
}

// Decision is the policy's answer to "may A open a connection to B".
type Decision struct {
	Allow bool
	// Flow is the index in Policy.Flows of the flow that allows the
	// connection, or -1.
	Flow int
	// Zone names the default: allow zone both ends join when that allows
	// the connection, or the zone whose default: deny applies; "" else.
	Zone string
	// Reason explains the decision in one line for people.
	Reason string
}

// Eval decides whether from may open a connection to to on port. from and
// to are workloads or zones (zone:NAME stands for any member of the zone
// that has no other zone); an address stands for a client beyond the host
// (to a workload's published host port) or a destination beyond it (of a
// workload's egress). The zero port asks about any port.
//
// Between workloads and zones: a flow that covers the port allows; else
// sharing a zone whose default is allow allows; else deny.
func (m *Model) Eval(from, to policy.Ref, port l4.Port) Decision {
	for _, r := range []policy.Ref{from, to} {
		if r.Kind != policy.RefAddress {
			if _, ok := m.endpoint(r); !ok {
				return Decision{Flow: -1, Reason: fmt.Sprintf("%s is not in the policy", r)}
			}
		}
	}
	switch {
	case from.Kind == policy.RefAddress && to.Kind == policy.RefWorkload:
		return m.ingress(from.Addr, to.Name, port)
	case to.Kind == policy.RefAddress && from.Kind != policy.RefAddress:
		return m.egress(from, to.Addr, port)
	case from.Kind == policy.RefAddress || to.Kind == policy.RefAddress:
		return Decision{Flow: -1, Reason: "only a workload can be tested against an address"}
	}
	return m.between(from, to, port)
}

func (m *Model) between(from, to policy.Ref, port l4.Port) Decision {
	any := port == (l4.Port{})
	on := " on " + port.String()
	if any {
		on = ""
	}
	best, near := -1, -1
	for _, f := range m.ids(from) {
		for _, t := range m.ids(to) {
			for _, i := range m.flows[pairKey(f, t)] {
				if any || m.p.Flows[i].Ports.Contains(port) {
					if best < 0 || int(i) < best {
						best = int(i)
					}
				} else if near < 0 || int(i) < near {
					near = int(i)
				}
			}
		}
	}
	if best >= 0 {
		f := &m.p.Flows[best]
		return Decision{Allow: true, Flow: best, Reason: fmt.Sprintf("flow at %s allows %s -> %s on %s", m.p.Position(f.Pos), f.From, f.To, f.Ports)}
	}
	var denying []string
	for _, z := range intersect(m.zonesOf(from), m.zonesOf(to)) {
		zone := &m.p.Zones[z]
		if zone.Default != policy.Deny {
			return Decision{Allow: true, Flow: -1, Zone: zone.Name, Reason: fmt.Sprintf("%s and %s both join zone %s, which is default: allow", from, to, zone.Name)}
		}
		denying = append(denying, zone.Name)
	}
	d := Decision{Flow: -1}
	var b strings.Builder
	fmt.Fprintf(&b, "no flow from %s to %s%s", from, to, on)
	switch len(denying) {
	case 0:
		b.WriteString(", and they share no zone")
	case 1:
		d.Zone = denying[0]
		fmt.Fprintf(&b, "; zone %s is default: deny", denying[0])
	default:
		d.Zone = denying[0]
		fmt.Fprintf(&b, "; zones %s are default: deny", strings.Join(denying, ", "))
	}
	if near >= 0 {
		f := &m.p.Flows[near]
		fmt.Fprintf(&b, " (flow at %s allows %s -> %s on %s only)", m.p.Position(f.Pos), f.From, f.To, f.Ports)
	}
	d.Reason = b.String()
	return d
}

// AllowedPorts returns every port from may open to to, merged.
func (m *Model) AllowedPorts(from, to policy.Ref) l4.List {
	for _, z := range intersect(m.zonesOf(from), m.zonesOf(to)) {
		if m.p.Zones[z].Default != policy.Deny {
			return l4.AllPorts()
		}
	}
	var out l4.List
	for _, f := range m.ids(from) {
		for _, t := range m.ids(to) {
			for _, i := range m.flows[pairKey(f, t)] {
				out = out.Union(m.p.Flows[i].Ports)
			}
		}
	}
	return out
}

func intersect(a, b []int32) []int32 {
	var out []int32
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] == b[j]:
			out = append(out, a[i])
			i++
			j++
		case a[i] < b[j]:
			i++
		default:
			j++
		}
	}
	return out
}

// ingress decides whether a client at addr beyond the host reaches
// workload w on host port port (any published port when zero).
func (m *Model) ingress(addr netip.Addr, name string, port l4.Port) Decision {
	w := &m.p.Workloads[m.workloadID(name)]
	var pub *policy.Publish
	for i := range w.Publish {
		p := &w.Publish[i]
		if port == (l4.Port{}) || p.HostPort(port.Proto, port.Number) {
			pub = p
			break
		}
	}
	if pub == nil {
		what := "no port"
		if port != (l4.Port{}) {
			what = "no host port " + port.String()
		}
		return Decision{Flow: -1, Reason: fmt.Sprintf("%s publishes %s", name, what)}
	}
	if len(w.Ingress) == 0 {
		return Decision{Allow: true, Flow: -1, Reason: fmt.Sprintf("%s publishes %s to anyone (it lists no ingress)", name, pub)}
	}
	for _, pfx := range w.Ingress {
		if pfx.Contains(addr) {
			return Decision{Allow: true, Flow: -1, Reason: fmt.Sprintf("%s publishes %s and its ingress %s admits %s", name, pub, pfx, addr)}
		}
	}
	return Decision{Flow: -1, Reason: fmt.Sprintf("%s publishes %s, but its ingress does not admit %s", name, pub, addr)}
}

// egress decides whether a workload (or a member of a zone with no other
// zone) reaches addr beyond the host on port.
func (m *Model) egress(from policy.Ref, addr netip.Addr, port l4.Port) Decision {
	on := " on " + port.String()
	if port == (l4.Port{}) {
		on = ""
	}
	var internal string
	for _, z := range m.zonesOf(from) {
		if m.p.Zones[z].Internal {
			internal = m.p.Zones[z].Name
			break
		}
	}
	if from.Kind == policy.RefWorkload {
		w := &m.p.Workloads[m.workloadID(from.Name)]
		if len(w.Egress) > 0 {
			for _, e := range w.Egress {
				if e.To.Contains(addr) && (port == (l4.Port{}) || e.Ports.Contains(port)) {
					return Decision{Allow: true, Flow: -1, Reason: fmt.Sprintf("egress of %s at %s allows %s on %s", w.Name, m.p.Position(e.Pos), e.To, e.Ports)}
				}
			}
			return Decision{Flow: -1, Reason: fmt.Sprintf("the egress of %s does not list %s%s", w.Name, addr, on)}
		}
	}
	if internal != "" {
		return Decision{Flow: -1, Zone: internal, Reason: fmt.Sprintf("%s joins internal zone %s and lists no egress: it reaches nothing beyond the host", from, internal)}
	}
	return Decision{Allow: true, Flow: -1, Reason: fmt.Sprintf("%s joins no internal zone and lists no egress: it may reach anything beyond the host", from)}
}

// TestResult is the outcome of one policy test.
type TestResult struct {
	Test     *policy.Test
	Decision Decision
	Pass     bool
}

// Run evaluates one test.
func (m *Model) Run(t *policy.Test) TestResult {
	d := m.Eval(t.From, t.To, t.Port)
	if t.Port == (l4.Port{}) && t.From.Kind != policy.RefAddress && t.To.Kind != policy.RefAddress && !d.Allow {
		d.Reason = strings.Replace(d.Reason, "no flow from", "no flow on any port from", 1)
	}
	return TestResult{Test: t, Decision: d, Pass: d.Allow == (t.Expect == policy.Allow)}
}

// RunTests evaluates every test of the policy, in order.
func (m *Model) RunTests() []TestResult {
	out := make([]TestResult, len(m.p.Tests))
	for i := range m.p.Tests {
		out[i] = m.Run(&m.p.Tests[i])
	}
	return out
}

// Failed returns the results that did not pass.
func Failed(results []TestResult) []TestResult {
	var out []TestResult
	for _, r := range results {
		if !r.Pass {
			out = append(out, r)
		}
	}
	return out
}

// WorkloadFlow is the ports one workload may open to another, with the
// flows that allow them: the policy's flows with zone:NAME expanded to
// the zone's members.
type WorkloadFlow struct {
	From, To *policy.Workload
	Ports    l4.List
	Flows    []int // indexes in Policy.Flows
}

// WorkloadFlows expands the flows to workload pairs, merged per pair, in
// the order pairs first appear. Traffic that a default: allow zone lets
// through is not listed (see Zone.Default); a compiler adds it per zone.
// A flow between two large zones expands to the product of their members.
func (m *Model) WorkloadFlows() []WorkloadFlow {
	var out []WorkloadFlow
	at := map[uint64]int{}
	for i := range m.p.Flows {
		f := &m.p.Flows[i]
		for _, a := range m.Members(f.From) {
			for _, b := range m.Members(f.To) {
				k := pairKey(m.workloadID(a.Name), m.workloadID(b.Name))
				j, ok := at[k]
				if !ok {
					j = len(out)
					at[k] = j
					out = append(out, WorkloadFlow{From: a, To: b})
				}
				out[j].Ports = out[j].Ports.Union(f.Ports)
				out[j].Flows = append(out[j].Flows, i)
			}
		}
	}
	return out
}
