package verify

import (
	"net/netip"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/reach"
)

// Narrower narrows edges to what the bound policy allows, the way
// zonewarden's ruleset filters them: traffic of the host's namespace is
// not filtered; between containers, the flows and default: allow zones of
// their workloads; to the internet, the workload's egress; from outside,
// the ports the workload may publish.
func Narrower(b *model.Binding) func(from, to string, ports reach.PortSet) reach.PortSet {
	ix := inventory.NewIndex(b.Snapshot)
	hostNS := func(name string) bool {
		c := ix.Container(name)
		return c != nil && c.UsesHostNetwork()
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
		for _, m := range []*model.Member{mf, mt} {
			switch {
			case m == nil:
			case len(m.Matches) > 1:
				return reach.PortSet{} // conflicted: not admitted
			case b.LeftToDocker(m):
				return ports // left to Docker
			case len(m.Matches) == 0:
				return reach.PortSet{}
			}
		}
		switch {
		case from == reach.Outside && mt != nil:
			var allowed reach.PortSet
			for _, pb := range ix.PublishedPorts(mt.Container) {
				if b.PublishAllowed(to, pb) {
					allowed = allowed.Add(l4.Port{Proto: pb.ContainerPort.Proto, Number: pb.ContainerPort.Number})
				}
			}
			return ports.Intersect(allowed)
		case to == reach.Internet && mf != nil:
			w := mf.Workload
			if len(w.Egress) == 0 {
				if d := b.Model.Eval(policy.WorkloadRef(w.Name), policy.Ref{Kind: policy.RefAddress, Addr: publicAddr}, l4.Port{}); !d.Allow {
					return reach.PortSet{}
				}
				return ports
			}
			var allowed reach.PortSet
			for _, e := range w.Egress {
				allowed = allowed.Union(portSet(e.Ports))
			}
			return ports.Intersect(allowed)
		case mf != nil && mt != nil:
			return ports.Intersect(portSet(b.Model.AllowedPorts(policy.WorkloadRef(mf.Workload.Name), policy.WorkloadRef(mt.Workload.Name))))
		}
		return ports
	}
}

// publicAddr stands for "somewhere on the internet" when asking whether a
// workload with no egress list may leave the host.
var publicAddr = netip.MustParseAddr("192.0.2.1")

// portSet converts a policy's port list.
func portSet(l l4.List) reach.PortSet {
	var s reach.PortSet
	for _, r := range l {
		if r.Proto == l4.ProtoAll {
			return reach.AllPorts()
		}
		s = s.AddRange(l4.Range{Proto: r.Proto, First: r.First, Last: r.Last})
	}
	return s
}
