package verify

import (
	"net/netip"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/reach"
)

// Narrower narrows edges to what the bound policy allows, the way
// zonewarden's ruleset filters them: traffic of the host's namespace is
// not filtered; between containers, what Binding.Decide answers (flows
// and default: allow zones of their workloads; a container no workload
// selects left to Docker unless its peer is on a default: deny zone); to
// the internet, the workload's egress; from outside, the ports the
// workload may publish.
func Narrower(b *policy.Binding) func(from, to string, ports reach.PortSet) reach.PortSet {
	return NarrowerFor(b, netip.Addr{})
}

// NarrowerFor is Narrower for a host whose "internet" and "outside" peers
// are one address (a test harness's): egress and ingress are then
// decided for that address, not for somewhere beyond the host.
func NarrowerFor(b *policy.Binding, internet netip.Addr) func(from, to string, ports reach.PortSet) reach.PortSet {
	ix := inventory.NewIndex(b.Snapshot)
	hostNS := func(name string) bool {
		c := ix.Container(name)
		return c != nil && c.UsesHostNetwork()
	}
	somewhere := internet
	if !somewhere.IsValid() {
		somewhere = publicAddr
	}
	return func(from, to string, ports reach.PortSet) reach.PortSet {
		switch {
		case from == reach.Host || hostNS(from):
			return ports // the host's namespace is not filtered
		case to == reach.Host || hostNS(to):
			if from == reach.Outside || b.ReachesHost(from) {
				return ports
			}
			return reach.PortSet{}
		}
		mf, mt := b.Member(from), b.Member(to)
		switch {
		case from == reach.Outside && mt != nil:
			if internet.IsValid() && !b.Decide(internet.String(), to, reach.Port{}).Allow {
				return reach.PortSet{} // ingress does not admit the address
			}
			if mt.Workload == nil {
				return onlyIf(b.Decide(somewhere.String(), to, reach.Port{}).Allow, ports)
			}
			var allowed reach.PortSet
			for _, pb := range ix.PublishedPorts(mt.Container) {
				if b.PublishAllowed(to, pb) {
					allowed = allowed.Add(reach.Port{Proto: pb.ContainerPort.Protocol, Number: pb.ContainerPort.Number})
				}
			}
			return ports.Intersect(allowed)
		case to == reach.Internet && mf != nil:
			w := mf.Workload
			if w == nil || len(w.Egress) == 0 {
				return onlyIf(b.Decide(from, somewhere.String(), reach.Port{}).Allow, ports)
			}
			var allowed reach.PortSet
			for _, e := range w.Egress {
				if !internet.IsValid() || e.To.Contains(internet) {
					allowed = allowed.Union(portSet(e.Ports))
				}
			}
			return ports.Intersect(allowed)
		case mf != nil && mt != nil && mf.Workload != nil && mt.Workload != nil:
			return ports.Intersect(portSet(b.Model.AllowedPorts(policy.WorkloadRef(mf.Workload.Name), policy.WorkloadRef(mt.Workload.Name))))
		case mf != nil && mt != nil:
			// A container no workload selects, or several: decided
			// the same on every port.
			return onlyIf(b.Decide(from, to, reach.Port{}).Allow, ports)
		}
		return ports
	}
}

// onlyIf returns ports when ok, else none.
func onlyIf(ok bool, ports reach.PortSet) reach.PortSet {
	if ok {
		return ports
	}
	return reach.PortSet{}
}

// publicAddr stands for "somewhere on the internet" when asking whether a
// workload with no egress list may leave the host.
var publicAddr = netip.MustParseAddr("192.0.2.1")

// portSet converts a policy's port list.
func portSet(l policy.PortList) reach.PortSet {
	var s reach.PortSet
	for _, r := range l {
		if r.Proto == policy.ProtoAll {
			return reach.AllPorts()
		}
		s = s.AddRange(reach.Range{Proto: r.Proto, First: r.First, Last: r.Last})
	}
	return s
}
