package reach

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/suggest"
)

// Pseudo-peers: the parts of the world that are not containers.
const (
	// Host is the host's own network namespace: its processes, and every
	// container that runs with --network host.
	Host = "host"
	// Internet is everything beyond the host that containers connect out
	// to (egress).
	Internet = "internet"
	// Outside is a remote client connecting in to the host's published
	// ports.
	Outside = "outside"
)

// Reasons (the Via of an edge) name the path a connection takes.
const (
	ViaNetwork     = "network:"     // + network name: both are members, ICC on
	ViaPublished   = "published:"   // + host address: a published port, DNATed by the host
	ViaHostNetwork = "host-network" // one side is in the host's namespace
	ViaGateway     = "gateway:"     // + network name: to the host through a network's gateway address
	ViaEgress      = "egress"       // routed out of the host (NAT)
	ViaNamespace   = "namespace:"   // + container: --network container:X, the same stack
	// ViaIPv6Unfiltered: both have IPv6 addresses and Docker does not
	// filter IPv6 (daemon option ip6tables off, the default before Docker
	// 27): the host routes IPv6 between every network, internal and ICC-off
	// ones included, and from other machines.
	ViaIPv6Unfiltered = "ipv6-unfiltered"
	// ViaRouted + network name: B is on a routed gateway-mode network
	// and publishes the port: it is open on B's own address (the host
	// port is not used), to containers of other networks and to remote
	// hosts that route to it.
	ViaRouted = "routed:"
	// ViaDirect + network name: B is on a nat-unprotected network: every
	// port is open to remote hosts that route to the network.
	ViaDirect = "direct:"
	// ViaSegment + network name: a macvlan or ipvlan network, whose
	// members sit on the parent interface's segment beside the host: its
	// machines reach them and they reach out, and no rule of the host
	// sees that traffic.
	ViaSegment = "segment:"
	// ViaLoopbackLAN + host address: B publishes the port on a loopback
	// address of the host, and Docker before 28 DNATs packets that a
	// machine of the host's segment sends to 127.0.0.1 (moby#45610).
	ViaLoopbackLAN = "loopback-lan:"
)

// Edge says that From can open connections to To on Ports, and why.
type Edge struct {
	From  string
	To    string
	Ports PortSet
	Via   []Reason // sorted reasons
}

// Analysis answers who reaches whom on one host snapshot. Build it with
// Analyze; it is read-only afterwards and safe for concurrent use.
//
// Containers are indexed in name order, so sorting indices sorts names.
type Analysis struct {
	snap   *inventory.Snapshot
	ix     *inventory.Index
	cs     []*inventory.Container // container peers, by name
	byName map[string]int

	owner     []int   // index of the container whose network namespace c uses
	followers [][]int // owner -> containers using its namespace (itself included)
	nets      [][]int // owner -> indices of its networks (container drivers only)
	netNames  []string
	netICC    []bool
	netVia    [][]Reason // network -> {"network:<name>"}
	attached  [][]int    // network -> containers on it, followers included
	routed    []bool     // owner has a route to the host's published ports
	gwVia     [][]Reason // owner -> {"gateway:<net>", ...} of its bridge networks
	hostNet   []bool     // owner runs in the host's namespace
	// hostMembers are the containers in the host's namespace; networked
	// those with any network stack (not --network none).
	hostMembers, networked []int
	publishers             []int      // owners with bindings reachable from other hosts or containers
	pubPorts               []PortSet  // owner -> container ports of those bindings
	pubVia                 [][]Reason // owner -> {"published:<hostip>:<port>", ...}
	data                   []string   // data service kind, "" if none
	// hostSees is false for an owner that the host's namespace cannot
	// reach: only on isolated gateway-mode or macvlan/ipvlan networks.
	hostSees []bool
	// direct, segment and outsideVia are the reasons outside reaches an
	// owner on all ports (nat-unprotected networks; macvlan segments),
	// and outsidePorts/outsidePortVia the published ports it reaches
	// otherwise than through a host address (loopback before Docker 28).
	direct, segment []([]Reason)
	outsidePorts    []PortSet
	outsidePortVia  [][]Reason
	// routedPub: an owner whose bridge networks are all routed publishes
	// its container ports on its own address (pubPorts, pubVia routed:).
	routedPub []bool
	// dnatIsolated: containers reach other networks' published ports by
	// kernel DNAT, which Docker's own isolation drops (Daemon.IsolatesDNAT).
	dnatIsolated bool
	narrow       func(e Edge) PortSet

	// With IPv6 unfiltered (Daemon.IP6Tables false), the containers with
	// IPv6 are members of one more network, v6net (-1 otherwise), named
	// ViaIPv6Unfiltered; internal-only ones among them are routed6: over
	// IPv6 they reach the internet and the publishers6, which hold the
	// bindings that listen on IPv6 (pub6Ports, pub6Via).
	v6net       int
	routed6     []bool
	publishers6 []int
	pub6Ports   []PortSet
	pub6Via     [][]Reason
}

// Options tune the analysis. The zero value models Docker as it behaves.
type Options struct {
	// Narrow, when set, narrows each edge to the ports an enforced policy
	// allows between its ends (an empty result removes the edge): the
	// host as it is with zonewarden's firewall in force. The edge's
	// reasons say which paths it takes.
	Narrow func(e Edge) PortSet
}

var (
	viaHostNetwork = []Reason{{Kind: KindHostNetwork}}
	viaEgress      = []Reason{{Kind: KindEgress}}
)

// Analyze prepares the reachability of every peer of the snapshot. Its
// cost grows with containers plus endpoints, not with pairs. In a Swarm,
// the tasks of every node are peers and an overlay joins them across
// nodes, except where an encrypted overlay cannot: see splitOverlays.
func Analyze(snap *inventory.Snapshot, opts Options) *Analysis {
	snap = splitOverlays(snap)
	ix := inventory.NewIndex(snap)
	n := len(snap.Containers)
	a := &Analysis{snap: snap, ix: ix, cs: make([]*inventory.Container, n), byName: make(map[string]int, n), narrow: opts.Narrow}
	for i := range snap.Containers {
		a.cs[i] = &snap.Containers[i]
	}
	slices.SortFunc(a.cs, func(x, y *inventory.Container) int { return strings.Compare(x.Name, y.Name) })
	for i, c := range a.cs {
		a.byName[c.Name] = i
	}
	a.owner = make([]int, n)
	a.followers = make([][]int, n)
	for i, c := range a.cs {
		a.owner[i] = a.resolveOwner(i, c)
	}
	for i := range a.cs {
		a.followers[a.owner[i]] = append(a.followers[a.owner[i]], i)
	}

	netIndex := make(map[string]int, len(snap.Networks))
	for i := range snap.Networks {
		nw := &snap.Networks[i]
		netIndex[nw.Name] = i
		a.netNames = append(a.netNames, nw.Name)
		a.netICC = append(a.netICC, nw.ICC)
		a.netVia = append(a.netVia, []Reason{onNetwork(KindNetwork, nw.Name)})
	}
	a.v6net = -1
	if d := snap.Daemon.IP6Tables; d != nil && !*d {
		a.v6net = len(a.netNames)
		a.netNames = append(a.netNames, ViaIPv6Unfiltered)
		a.netICC = append(a.netICC, true)
		a.netVia = append(a.netVia, []Reason{{Kind: KindIPv6Unfiltered}})
	}
	a.routed6 = make([]bool, n)
	a.pub6Ports = make([]PortSet, n)
	a.pub6Via = make([][]Reason, n)
	a.attached = make([][]int, len(a.netNames))
	a.nets = make([][]int, n)
	a.gwVia = make([][]Reason, n)
	a.routed = make([]bool, n)
	a.hostNet = make([]bool, n)
	a.pubPorts = make([]PortSet, n)
	a.pubVia = make([][]Reason, n)
	a.data = make([]string, n)
	a.hostSees = make([]bool, n)
	a.direct = make([][]Reason, n)
	a.segment = make([][]Reason, n)
	a.outsidePorts = make([]PortSet, n)
	a.outsidePortVia = make([][]Reason, n)
	a.routedPub = make([]bool, n)
	d := &snap.Daemon
	a.dnatIsolated = d.IsolatesDNAT()
	// Without br_netfilter's iptables hook, Docker's enable_icc=false rule
	// never sees a frame bridged inside the network.
	iccEnforced := d.BridgeNfIptables == nil || *d.BridgeNfIptables
	if !iccEnforced {
		for ni := range snap.Networks {
			a.netICC[ni] = true
		}
	}
	loopbackLAN := d.Major() > 0 && d.Major() < 28
	for i, c := range a.cs {
		a.hostSees[i] = true
		if kind, _, ok := inventory.DataService(c); ok {
			a.data[i] = kind
		}
		if a.owner[i] != i {
			continue
		}
		a.hostNet[i] = c.UsesHostNetwork()
		if a.hostNet[i] {
			a.hostMembers = append(a.hostMembers, a.followers[i]...)
		}
		if !c.NoNetwork() {
			a.networked = append(a.networked, a.followers[i]...)
		}
		if c.NoNetwork() || a.hostNet[i] {
			continue
		}
		v6 := false
		seen, hidden := 0, 0 // endpoints; those the host does not reach
		bridges, routedNets := 0, 0
		var hostBinding netip.Addr // the first network's default -p address
		for _, e := range c.Endpoints {
			ni, ok := netIndex[e.Network]
			if !ok {
				continue
			}
			nw := &snap.Networks[ni]
			if nw.Driver == "host" || nw.Driver == "null" {
				continue
			}
			seen++
			a.nets[i] = append(a.nets[i], ni)
			a.attached[ni] = append(a.attached[ni], a.followers[i]...)
			switch nw.Driver {
			case "bridge":
				bridges++
				if !hostBinding.IsValid() {
					hostBinding = nw.HostBinding
				}
				if isolated(nw) {
					hidden++ // no address on the bridge: no gateway
				} else {
					a.gwVia[i] = append(a.gwVia[i], onNetwork(KindGateway, nw.Name))
				}
				if !nw.Internal {
					a.routed[i] = true
				}
				if nw.HasIPv6() || e.IPv6.IsValid() {
					v6 = true
				}
				switch nw.GatewayMode(false) {
				case inventory.GatewayNATUnprotected:
					a.direct[i] = append(a.direct[i], onNetwork(KindDirect, nw.Name))
				case inventory.GatewayRouted:
					routedNets++
				}
			case "macvlan", "ipvlan":
				hidden++
				a.segment[i] = append(a.segment[i], onNetwork(KindSegment, nw.Name))
			}
		}
		a.hostSees[i] = seen == 0 || hidden < seen
		a.routedPub[i] = bridges > 0 && routedNets == bridges
		if v6 && a.v6net >= 0 {
			a.nets[i] = append(a.nets[i], a.v6net)
			a.attached[a.v6net] = append(a.attached[a.v6net], a.followers[i]...)
			a.routed6[i] = !a.routed[i]
		}
		slices.Sort(a.nets[i])
		slices.SortFunc(a.gwVia[i], Reason.Compare)
		for _, b := range ix.PublishedPorts(c) {
			if !b.HostIP.IsValid() && hostBinding.IsValid() {
				b.HostIP = hostBinding // the network's default address
			}
			port := l4.Port{Proto: b.ContainerPort.Proto, Number: b.ContainerPort.Number}
			if b.HostIP.IsValid() && b.HostIP.IsLoopback() {
				// Reachable from the host only, but for Docker < 28.
				if loopbackLAN && b.HostIP.Is4() && !a.routedPub[i] {
					a.outsidePorts[i] = a.outsidePorts[i].Add(port)
					a.outsidePortVia[i] = appendNew(a.outsidePortVia[i], viaBinding(KindLoopbackLAN, b.HostAddress()))
				}
				continue
			}
			via := viaBinding(KindPublished, b.HostAddress())
			if a.routedPub[i] {
				// No host port: the container port on its own address.
				for _, ni := range a.nets[i] {
					if ni < len(snap.Networks) && snap.Networks[ni].Driver == "bridge" {
						via = onNetwork(KindRouted, snap.Networks[ni].Name)
						break
					}
				}
			}
			a.pubPorts[i] = a.pubPorts[i].Add(port)
			if !slices.Contains(a.pubVia[i], via) {
				a.pubVia[i] = append(a.pubVia[i], via)
			}
			// Listening on IPv6: every address ("-p 8080:80" gives Docker
			// 0.0.0.0 and ::), ::, or one IPv6 address; not 0.0.0.0.
			if a.v6net >= 0 && (!b.HostIP.IsValid() || b.HostIP.Is6() && !b.HostIP.Is4In6()) {
				a.pub6Ports[i] = a.pub6Ports[i].Add(port)
				if !slices.Contains(a.pub6Via[i], via) {
					a.pub6Via[i] = append(a.pub6Via[i], via)
				}
			}
		}
		if len(a.pubVia[i]) > 0 {
			slices.SortFunc(a.pubVia[i], Reason.Compare)
			a.pubVia[i] = slices.Clip(a.pubVia[i])
			a.publishers = append(a.publishers, i)
		}
		if len(a.pub6Via[i]) > 0 {
			slices.SortFunc(a.pub6Via[i], Reason.Compare)
			a.pub6Via[i] = slices.Clip(a.pub6Via[i])
			a.publishers6 = append(a.publishers6, i)
		}
	}
	slices.Sort(a.hostMembers)
	slices.Sort(a.networked)
	return a
}

// isolated reports whether a bridge network has no address on its bridge
// (gateway mode isolated, for every family it has): the host neither
// reaches its members nor routes to them.
func isolated(nw *inventory.Network) bool {
	return nw.GatewayMode(false) == inventory.GatewayIsolated &&
		(!nw.HasIPv6() || nw.GatewayMode(true) == inventory.GatewayIsolated)
}

// appendNew appends v to a sorted list unless it holds it.
func appendNew(list []Reason, v Reason) []Reason {
	if i, found := slices.BinarySearchFunc(list, v, Reason.Compare); !found {
		return slices.Insert(list, i, v)
	}
	return list
}

// sharesNetwork reports whether two owners have a network in common on
// which their members reach each other.
func (a *Analysis) sharesNetwork(o, p int) bool {
	for _, ni := range a.nets[o] {
		if a.netICC[ni] && slices.Contains(a.nets[p], ni) {
			return true
		}
	}
	return false
}

// resolveOwner follows --network container:X to the container whose
// namespace c uses (bounded, in case of a cycle in a hand-made snapshot).
func (a *Analysis) resolveOwner(i int, c *inventory.Container) int {
	for range 8 {
		name := c.SharedNamespaceWith()
		if name == "" {
			return i
		}
		next := a.ix.Container(name)
		if next == nil {
			return i
		}
		i, c = a.byName[next.Name], next
	}
	return i
}

// Containers returns the names of the container peers, sorted.
func (a *Analysis) Containers() []string {
	out := make([]string, len(a.cs))
	for i, c := range a.cs {
		out[i] = c.Name
	}
	return out
}

// Container returns the snapshot's container of a peer name, or nil.
func (a *Analysis) Container(name string) *inventory.Container {
	if i, ok := a.byName[name]; ok {
		return a.cs[i]
	}
	return nil
}

// DataService returns the kind of data service a container runs, or "".
func (a *Analysis) DataService(name string) string {
	if i, ok := a.byName[name]; ok {
		return a.data[i]
	}
	return ""
}

// IsPeer reports whether name is a container or a pseudo-peer.
func (a *Analysis) IsPeer(name string) bool {
	_, ok := a.byName[name]
	return ok || name == Host || name == Internet || name == Outside
}

// UnknownPeerError says a name is not a peer, with the closest names.
type UnknownPeerError struct {
	Name    string
	Similar []string
}

func (e *UnknownPeerError) Error() string {
	msg := fmt.Sprintf("no container %q on this host", e.Name)
	if len(e.Similar) > 0 {
		msg += "; did you mean " + strings.Join(e.Similar, ", ") + "?"
	} else {
		msg += " ('zonewarden reach' lists the peers)"
	}
	return msg
}

// CheckPeer returns nil when name is a peer, else an *UnknownPeerError
// listing close matches.
func (a *Analysis) CheckPeer(name string) error {
	if a.IsPeer(name) {
		return nil
	}
	candidates := append(a.Containers(), Host, Internet, Outside)
	return &UnknownPeerError{Name: name, Similar: suggest.Closest(name, candidates, 3)}
}

// edgeSet accumulates the edges from one source, indexed by target. The
// port sets and reason lists it is given are shared and never modified:
// merging two makes a new one.
type edgeSet struct {
	ports []PortSet
	via   [][]Reason
	seen  []bool
	order []int
	// host and inet are the pseudo-peer targets.
	host, inet pseudoEdge
}

type pseudoEdge struct {
	ports PortSet
	via   []Reason
}

func newEdgeSet(n int) *edgeSet {
	return &edgeSet{ports: make([]PortSet, n), via: make([][]Reason, n), seen: make([]bool, n)}
}

func (s *edgeSet) reset() {
	for _, t := range s.order {
		s.ports[t], s.via[t], s.seen[t] = PortSet{}, nil, false
	}
	s.order = s.order[:0]
	s.host, s.inet = pseudoEdge{}, pseudoEdge{}
}

func (s *edgeSet) add(t int, ports PortSet, via []Reason) {
	if !s.seen[t] {
		s.seen[t] = true
		s.order = append(s.order, t)
		s.ports[t], s.via[t] = ports, via
		return
	}
	s.ports[t] = s.ports[t].Union(ports)
	s.via[t] = mergeVia(s.via[t], via)
}

func (e *pseudoEdge) add(ports PortSet, via []Reason) {
	e.ports = e.ports.Union(ports)
	e.via = mergeVia(e.via, via)
}

// mergeVia returns the sorted union of two sorted reason lists, sharing
// neither unless one holds the other.
func mergeVia(x, y []Reason) []Reason {
	missing := false
	for _, v := range y {
		if _, found := slices.BinarySearchFunc(x, v, Reason.Compare); !found {
			missing = true
			break
		}
	}
	if !missing {
		return x
	}
	out := make([]Reason, 0, len(x)+len(y))
	out = append(out, x...)
	for _, v := range y {
		if !slices.Contains(x, v) {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, Reason.Compare)
	return slices.Compact(out)
}

// fromContainer collects the edges out of container i into s.
func (a *Analysis) fromContainer(i int, s *edgeSet) {
	o := a.owner[i]
	if len(a.followers[o]) > 1 {
		via := []Reason{{Kind: KindNamespace, Container: a.cs[o].Name}}
		for _, f := range a.followers[o] {
			if f != i {
				s.add(f, AllPorts(), via)
			}
		}
	}
	if a.hostNet[o] {
		for _, t := range a.networked {
			if t != i {
				s.add(t, AllPorts(), viaHostNetwork)
			}
		}
		s.host.add(AllPorts(), viaHostNetwork)
		s.inet.add(AllPorts(), viaEgress)
		return
	}
	for _, ni := range a.nets[o] {
		if !a.netICC[ni] {
			continue
		}
		for _, t := range a.attached[ni] {
			if a.owner[t] != o {
				s.add(t, AllPorts(), a.netVia[ni])
			}
		}
	}
	if len(a.segment[o]) > 0 {
		s.inet.add(AllPorts(), a.segment[o])
	}
	if a.routed[o] {
		for _, p := range a.publishers {
			if p == o || a.dnatIsolated && !a.routedPub[p] && !a.sharesNetwork(o, p) {
				// Kernel DNAT that Docker's isolation drops; a
				// routed-mode publisher is reached directly.
				continue
			}
			for _, t := range a.followers[p] {
				s.add(t, a.pubPorts[p], a.pubVia[p])
			}
		}
		s.inet.add(AllPorts(), viaEgress)
	} else if a.routed6[o] && !a.dnatIsolated {
		// IPv6 unfiltered has no ip6tables DNAT: only docker-proxy
		// serves these ports, and with it off nothing does.
		for _, p := range a.publishers6 {
			if p == o {
				continue
			}
			for _, t := range a.followers[p] {
				s.add(t, a.pub6Ports[p], a.pub6Via[p])
			}
		}
		s.inet.add(AllPorts(), viaEgress)
	}
	if gw := a.gwVia[o]; len(gw) > 0 {
		s.host.add(AllPorts(), gw)
		for _, t := range a.hostMembers {
			s.add(t, AllPorts(), gw)
		}
	}
}

// fromPseudo collects the edges out of host or outside into s.
func (a *Analysis) fromPseudo(name string, s *edgeSet) {
	if name == Host {
		for _, t := range a.networked {
			if a.hostSees[a.owner[t]] {
				s.add(t, AllPorts(), viaHostNetwork)
			}
		}
		s.inet.add(AllPorts(), viaEgress)
		return
	}
	// Outside: remote machines reach the host's own services, and with
	// IPv6 unfiltered every container with IPv6 (given a route to its
	// subnet through the host, which a machine on the LAN can add).
	s.host.add(AllPorts(), viaHostNetwork)
	for _, t := range a.hostMembers {
		s.add(t, AllPorts(), viaHostNetwork)
	}
	if a.v6net >= 0 {
		for _, t := range a.attached[a.v6net] {
			s.add(t, AllPorts(), a.netVia[a.v6net])
		}
	}
	for _, p := range a.publishers {
		for _, t := range a.followers[p] {
			s.add(t, a.pubPorts[p], a.pubVia[p])
		}
	}
	for o := range a.cs {
		if a.owner[o] != o {
			continue
		}
		for _, via := range [][]Reason{a.direct[o], a.segment[o]} {
			if len(via) > 0 {
				for _, t := range a.followers[o] {
					s.add(t, AllPorts(), via)
				}
			}
		}
		if len(a.outsidePortVia[o]) > 0 {
			for _, t := range a.followers[o] {
				s.add(t, a.outsidePorts[o], a.outsidePortVia[o])
			}
		}
	}
}

// collect calls yield with the edges of s from source: containers by
// name, then host and internet.
func (a *Analysis) collect(from string, s *edgeSet, yield func(Edge) bool) bool {
	if a.narrow != nil {
		inner := yield
		yield = func(e Edge) bool {
			if e.Ports = a.narrow(e); e.Ports.Empty() {
				return true
			}
			return inner(e)
		}
	}
	slices.Sort(s.order)
	for _, t := range s.order {
		if !yield(Edge{From: from, To: a.cs[t].Name, Ports: s.ports[t], Via: s.via[t]}) {
			return false
		}
	}
	for _, pe := range []struct {
		to string
		e  pseudoEdge
	}{{Host, s.host}, {Internet, s.inet}} {
		if len(pe.e.via) > 0 && !yield(Edge{From: from, To: pe.to, Ports: pe.e.ports, Via: pe.e.via}) {
			return false
		}
	}
	return true
}

// From returns every edge out of the peer name (a container, Host or
// Outside): containers by name, then host and internet. Internet
// initiates nothing.
func (a *Analysis) From(name string) []Edge {
	var out []Edge
	a.from(name, newEdgeSet(len(a.cs)), func(e Edge) bool { out = append(out, e); return true })
	return out
}

func (a *Analysis) from(name string, s *edgeSet, yield func(Edge) bool) bool {
	s.reset()
	if i, ok := a.byName[name]; ok {
		a.fromContainer(i, s)
	} else if name == Host || name == Outside {
		a.fromPseudo(name, s)
	}
	return a.collect(name, s, yield)
}

// Edges calls yield for every edge of the host, grouped by source
// (containers by name, then host and outside), until yield returns false.
// The Ports and Via of the edges are shared: do not modify them.
func (a *Analysis) Edges(yield func(Edge) bool) {
	s := newEdgeSet(len(a.cs))
	for _, c := range a.cs {
		if !a.from(c.Name, s, yield) {
			return
		}
	}
	for _, from := range []string{Host, Outside} {
		if !a.from(from, s, yield) {
			return
		}
	}
}

// Edge returns the edge from one peer to another, if there is one.
func (a *Analysis) Edge(from, to string) (Edge, bool) {
	for _, e := range a.From(from) {
		if e.To == to {
			return e, true
		}
	}
	return Edge{From: from, To: to}, false
}

// Eval answers whether from can open a connection to to on port, with the
// edge that allows it.
func (a *Analysis) Eval(from, to string, port l4.Port) (bool, Edge) {
	e, ok := a.Edge(from, to)
	if !ok || !e.Ports.Contains(port) {
		return false, e
	}
	return true, e
}
