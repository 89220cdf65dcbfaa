package verify

import (
	"net/netip"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/reach"
)

// Enforced is the host's expected reachability once the policy bound in
// a Binding is enforced, the way zonewarden's ruleset filters it: the
// host's own namespace (and containers in it) is not filtered; the
// host's addresses are reached only by clients beyond the host and by
// containers the policy lets reach the host (ReachesHost); a client
// beyond the host reaches the container ports behind the bindings the
// policy lets the container publish, when the workload's ingress admits
// it; the internet is reached by egress; between containers,
// Binding.Ports (the flows and default: allow zones of their workloads,
// containers left to Docker, the fenced and the conflicted). cli verify,
// the demo and the truth harness all expect it.
type Enforced struct {
	b      *model.Binding
	ix     *inventory.Index
	zones  map[string]bool // the policy's zones
	hostNS func(name string) bool
	// client and internet are the addresses of reach.Outside and
	// reach.Internet; invalid: any address (some client, some
	// destination).
	client, internet netip.Addr
}

// EnforcedOptions say what the anonymous ends of reach stand for.
type EnforcedOptions struct {
	// HostNS reports, besides containers on the host network, whether a
	// name stands for the host's namespace (a test's stand-in for it).
	HostNS func(name string) bool
	// Client is the address of reach.Outside, the client of published
	// ports beyond the host, and Internet the address of reach.Internet.
	// Unset, they stand for some client (whom a workload's ingress may
	// admit) and some destination (that its egress may name).
	Client, Internet netip.Addr
}

// NewEnforced builds the model of b's host under its policy.
func NewEnforced(b *model.Binding, opts EnforcedOptions) *Enforced {
	e := &Enforced{b: b, ix: inventory.NewIndex(b.Snapshot), zones: map[string]bool{}, hostNS: opts.HostNS, client: opts.Client, internet: opts.Internet}
	for _, z := range b.Model.Policy().Zones {
		e.zones[z.Name] = true
	}
	return e
}

func (e *Enforced) inHostNS(name string) bool {
	if name == reach.Host || e.hostNS != nil && e.hostNS(name) {
		return true
	}
	c := e.ix.Container(name)
	return c != nil && c.UsesHostNetwork()
}

// Ports returns what the enforced policy lets through an edge: every
// port it has (open), or ports only.
//
// Between containers, zonewarden's rules filter the addresses of the
// zones: traffic over a network that is no zone of the policy (a network
// reason), and whatever a container no workload selects sends from no
// zone, never meet them; Docker decides it, whatever the policy says of
// the two containers.
func (e *Enforced) Ports(edge reach.Edge) (open bool, ports reach.PortSet) {
	from, to := edge.From, edge.To
	switch {
	case e.inHostNS(from):
		return true, ports // the host's namespace is not filtered
	case e.inHostNS(to):
		return from == reach.Outside || e.b.ReachesHost(from), ports
	case from == reach.Outside:
		return e.ingress(to)
	case to == reach.Internet:
		return e.egress(from)
	}
	if e.b.Member(from) == nil || e.b.Member(to) == nil {
		return true, ports // not a container of the host: nothing decides
	}
	for _, r := range edge.Via {
		if r.Kind == reach.KindNetwork && !e.zones[r.Network] {
			return true, ports
		}
	}
	if m := e.b.Member(from); m.Workload == nil && len(m.Attached) == 0 && e.b.LeftToDocker(m) {
		// A container no workload selects, on no zone: its addresses are
		// in no zone, so zonewarden's rules never meet what it sends
		// (published ports it reaches through docker-proxy included).
		return true, ports
	}
	open, list := e.b.Ports(from, to)
	return open, portSet(list)
}

// ingress: a client beyond the host reaches the container ports behind
// the bindings the policy lets to publish, when to's ingress admits it.
func (e *Enforced) ingress(to string) (bool, reach.PortSet) {
	var allowed reach.PortSet
	m := e.b.Member(to)
	switch {
	case m == nil || e.b.LeftToDocker(m):
		return true, allowed // no workload selects it: Docker decides
	case m.Workload == nil:
		return false, allowed
	case e.client.IsValid() && !e.b.Decide(e.client.String(), to, l4.Port{}).Allow:
		return false, allowed // its ingress does not admit the client
	}
	for _, pb := range e.ix.PublishedPorts(m.Container) {
		if e.b.PublishAllowed(to, pb) {
			allowed = allowed.Add(pb.ContainerPort)
		}
	}
	return false, allowed
}

// egress: from reaches the internet by its workload's egress list, or,
// with none, unless one of its zones is internal.
func (e *Enforced) egress(from string) (bool, reach.PortSet) {
	var allowed reach.PortSet
	m := e.b.Member(from)
	if m == nil {
		return true, allowed
	}
	if w := m.Workload; w != nil && len(w.Egress) > 0 {
		for _, eg := range w.Egress {
			if !e.internet.IsValid() || eg.To.Contains(e.internet) {
				allowed = allowed.Union(portSet(eg.Ports))
			}
		}
		return false, allowed
	}
	internet := e.internet
	if !internet.IsValid() {
		internet = publicAddr
	}
	return e.b.Decide(from, internet.String(), l4.Port{}).Allow, allowed
}

// Narrow narrows an edge's ports to what the enforced policy lets
// through: reach.Options.Narrow.
func (e *Enforced) Narrow(edge reach.Edge) reach.PortSet {
	open, allowed := e.Ports(edge)
	if open {
		return edge.Ports
	}
	return edge.Ports.Intersect(allowed)
}

// Allows reports whether the enforced policy lets a connection on port
// through an edge that has it.
func (e *Enforced) Allows(edge reach.Edge, port l4.Port) bool {
	open, allowed := e.Ports(edge)
	return open || allowed.Contains(port)
}

// Narrower is NewEnforced(b, EnforcedOptions{}).Narrow.
func Narrower(b *model.Binding) func(reach.Edge) reach.PortSet {
	return NewEnforced(b, EnforcedOptions{}).Narrow
}

// publicAddr stands for "somewhere on the internet" when asking whether a
// workload with no egress list may leave the host: an address no policy
// names (documentation space).
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
