package draft

import (
	"fmt"
	"slices"
	"strings"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/learn"
	"github.com/zonewarden/zonewarden/internal/policy"
)

// FromFlows proposes the least-privilege policy for a host that
// keeps exactly the flows recorded on it (zonewarden learn) and nothing
// else: FromHost's zones and workloads, every zone default: deny, a flow per
// pair of workloads that connected, on the ports they used, each with
// its count in a comment; and tests that every pair sharing a zone with a
// data service that never connected to it stays denied. Flows to and
// from beyond the host are listed in comments, not restricted.
// flowsFile names the records' file in comments.
func FromFlows(snap *inventory.Snapshot, recs []learn.Record, flowsFile string) *policy.Policy {
	d := newDrafter(snap)
	d.observed = recs
	d.draftZones()
	d.draftWorkloads()
	d.draftObservedFlows(flowsFile)
	d.draftTests()
	d.draftUnobservedTests()
	d.finish()
	d.finishObserved(flowsFile)
	return d.p
}

// workloadOf returns the workload of a recorded peer: by container name,
// else by compose project and service (a container recreated since), or
// -1.
func (d *drafter) workloadOf(p learn.Peer) int {
	if p.Kind != learn.KindContainer {
		return -1
	}
	for i, g := range d.groups {
		for _, c := range g {
			if c.Name == p.Container {
				return i
			}
		}
	}
	if p.Project != "" && p.Service != "" {
		for i, w := range d.p.Workloads {
			if w.Match.Compose == (policy.ComposeMatch{Project: p.Project, Service: p.Service}) {
				return i
			}
		}
	}
	return -1
}

// observedPorts is what one workload pair was seen to use.
type observedPorts struct {
	ports     l4.List
	counts    []string // "5432/tcp x120"
	published bool     // some connection went through a published port
}

func (d *drafter) draftObservedFlows(flowsFile string) {
	pairs := map[[2]int]*observedPorts{}
	var order [][2]int
	for _, r := range d.observed {
		a, b := d.workloadOf(r.From), d.workloadOf(r.To)
		switch {
		case r.From.Kind == learn.KindHost || r.To.Kind == learn.KindHost:
			continue // the host's own traffic: not the policy's
		case r.From.Kind == learn.KindContainer && r.To.Kind == learn.KindOutside:
			d.beyond = append(d.beyond, r.String())
			continue
		case r.From.Kind == learn.KindOutside && r.To.Kind == learn.KindContainer:
			d.beyond = append(d.beyond, r.String())
			continue
		case r.From.Kind == learn.KindUnknown || r.To.Kind == learn.KindUnknown:
			d.unnamed = append(d.unnamed, r.String())
			continue
		case r.Answered == 0:
			d.unanswered = append(d.unanswered, fmt.Sprintf("%s (%d tries)", r, r.Count))
			continue
		case a < 0 || b < 0 || a == b:
			if r.From.Kind == learn.KindContainer && r.To.Kind == learn.KindContainer && a != b {
				d.unmatchedFlows = append(d.unmatchedFlows, r.String()+" (no workload selects the container today)")
			}
			continue
		}
		pr, ok := observedRange(r)
		if !ok {
			continue
		}
		k := [2]int{a, b}
		o := pairs[k]
		if o == nil {
			o = &observedPorts{}
			pairs[k] = o
			order = append(order, k)
		}
		o.ports = append(o.ports, pr)
		o.counts = append(o.counts, fmt.Sprintf("%s x%d", r.PortString(), max(r.Count, r.Answered)))
		o.published = o.published || r.Via != ""
	}
	for _, k := range order {
		o := pairs[k]
		from, to := &d.p.Workloads[k[0]], &d.p.Workloads[k[1]]
		shared := slices.ContainsFunc(from.Zones, func(z string) bool { return slices.Contains(to.Zones, z) })
		if !shared && !o.published {
			d.unmatchedFlows = append(d.unmatchedFlows, fmt.Sprintf("%s -> %s (they share no zone today)", from.Name, to.Name))
			continue
		}
		slices.Sort(o.counts)
		f := policy.Flow{From: policy.WorkloadRef(from.Name), To: policy.WorkloadRef(to.Name), Ports: l4.List(nil).Union(o.ports),
			Comment: "observed: " + strings.Join(slices.Compact(o.counts), ", ")}
		_, _, toData := inventory.DataService(d.groups[k[1]][0])
		reason, untrusted := inventory.Untrusted(d.groups[k[0]][0])
		switch kind, _, fromData := inventory.DataService(d.groups[k[0]][0]); {
		case toData && untrusted:
			f.Comment = fmt.Sprintf("decide: %s is untrusted (%s), yet it connected to %s\n%s", from.Name, reason, to.Name, f.Comment)
		case fromData && !toData:
			f.Comment = fmt.Sprintf("decide: %s is %s, which seldom opens connections: was it its own?\n%s", from.Name, dataKind(kind), f.Comment)
		}
		d.p.Flows = append(d.p.Flows, f)
	}
	for i := range d.p.Zones {
		d.p.Zones[i].Default = policy.Deny
	}
}

// observedRange is a record's port as a policy port.
func observedRange(r learn.Record) (l4.Range, bool) {
	switch r.Proto {
	case l4.ProtoTCP, l4.ProtoUDP, l4.ProtoSCTP:
		if r.Port == 0 {
			return l4.Range{}, false
		}
		return l4.Range{Proto: r.Proto, First: r.Port, Last: r.Port}, true
	case "icmp", "ipv6-icmp":
		return l4.Range{Proto: l4.ProtoICMP}, true
	}
	return l4.Range{}, false
}

// draftUnobservedTests adds, for every data service, a deny test from
// each workload sharing a zone with it that never connected to it.
func (d *drafter) draftUnobservedTests() {
	d.denyTests(func(a, b int, kind string) string {
		shared := slices.ContainsFunc(d.p.Workloads[a].Zones, func(z string) bool { return slices.Contains(d.p.Workloads[b].Zones, z) })
		if !shared || d.dataPort(b) == (l4.Port{}) {
			return ""
		}
		return fmt.Sprintf("%s never connected to %s (%s) while learning", d.p.Workloads[a].Name, d.p.Workloads[b].Name, dataKind(kind))
	})
}

// finishObserved rewrites the comments that describe the draft's source.
func (d *drafter) finishObserved(flowsFile string) {
	d.p.Comments.Head = strings.Replace(d.p.Comments.Head, "to keep what works today.",
		fmt.Sprintf("and the flows recorded in %s\n(zonewarden learn): it keeps exactly those, nothing else. To rehearse it on live traffic\n"+
			"first, add mode: monitor: nothing is dropped, and 'zonewarden flows' shows what would be.", flowsFile), 1)
	d.p.Comments.Zones += "\nEvery zone is default: deny: members reach each other only by the observed flows below."
	d.p.Comments.Flows = fmt.Sprintf("The connections observed between workloads (zonewarden learn, %s), on the ports used, with\n"+
		"how many new connections each saw. A flow that was not observed is not here: learn longer, or add it.", flowsFile)
	if len(d.beyond) > 0 {
		d.p.Comments.Flows += "\nSeen beyond the host (egress and ingress are not narrowed by this draft):\n  " + strings.Join(capList(d.beyond, 20), "\n  ")
	}
	if len(d.unnamed) > 0 {
		d.p.Comments.Flows += "\ndecide: flows of an address no container had while learning (one started meanwhile?):\n  " + strings.Join(capList(d.unnamed, 20), "\n  ")
	}
	if len(d.unanswered) > 0 {
		d.p.Comments.Flows += "\nTried but never answered (a closed or filtered port, a scan, a forged address): not proposed:\n  " + strings.Join(capList(d.unanswered, 20), "\n  ")
	}
	if len(d.unmatchedFlows) > 0 {
		d.p.Comments.Flows += "\ndecide: observed, but no flow can keep them:\n  " + strings.Join(capList(d.unmatchedFlows, 20), "\n  ")
	}
	if len(d.p.Tests) > 0 {
		d.p.Comments.Tests = "What must never happen; 'zonewarden check' proves it on every change. The denials of data\n" +
			"services no one reached while learning are here too."
	}
}

// capList keeps the first n items and counts the rest.
func capList(l []string, n int) []string {
	l = slices.Compact(slices.Sorted(slices.Values(l)))
	if len(l) <= n {
		return l
	}
	return append(l[:n:n], fmt.Sprintf("... and %d more", len(l)-n))
}
