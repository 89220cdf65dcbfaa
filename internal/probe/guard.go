package probe

// The guard keeps every probe on this machine. Before a socket is made,
// Probe asks the kernel of the source namespace where a packet to the
// target would go (RTM_GETROUTE, as `ip route get` does), and follows it
// while it stays on links whose far end is on this host:
//
//   - a local route (the namespace's own address, loopback): delivered
//     where it is sent from. Sent.
//   - on-link out of a veth: the frame reaches the peer, in a namespace of
//     this host. Sent, unless the peer is a port of a bridge that is not
//     local (below).
//   - on-link out of a bridge: sent only when every port of the bridge is
//     a veth. A physical NIC, a vxlan, a tap or anything else enslaved
//     takes frames off the machine.
//   - on-link out of a macvlan: sent only in bridge mode over a parent
//     that is itself local (a veth, a local bridge).
//   - via a gateway out of a veth whose peer is in the host namespace, the
//     gateway being one of the host's own addresses: the host routes it
//     next, so the lookup is repeated there, as the host would make it for
//     a packet from the source arriving on that link (iif and source
//     address). Any other gateway is a router zonewarden cannot follow:
//     not sent.
//   - anything else (a physical device, vxlan, geneve, tun/tap, gre,
//     wireguard, ipvlan, ...), a route of the host via a gateway, or no
//     route in the host: not sent.
//
// No route in the source namespace itself is the kernel's refusal to send
// at all; the probe reports it as the socket would (unreachable), without
// making one.
//
// The reasons read "the host would send it out of eth0, a physical device,
// via 192.168.1.1".
//
// judge is the decision over a kernelView; netlinkView (routes.go) reads
// the view over rtnetlink, the tests fake it.

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Bounds of the guard's walk.
const (
	// maxHops bounds the namespaces a packet is followed through.
	maxHops = 4
	// maxLinkDepth bounds links followed to their peer or parent (a
	// macvlan over a veth whose peer is a bridge port, say).
	maxLinkDepth = 4
)

// sameNS is the peerNS of a link whose peer or parent is in the link's
// own namespace (no IFLA_LINK_NETNSID).
const sameNS = -1

// Modes of a macvlan (linux/if_link.h, IFLA_MACVLAN_MODE).
const (
	macvlanPrivate  = 1
	macvlanVEPA     = 2
	macvlanBridge   = 4
	macvlanPassthru = 8
	macvlanSource   = 16
)

// link is what the guard reads of one network interface.
type link struct {
	index int
	name  string
	// kind is IFLA_INFO_KIND: "veth", "bridge", "macvlan", "vxlan", ...;
	// empty for a physical device.
	kind string
	// master is the ifindex of the device it is enslaved to (a bridge's
	// port); 0 when none.
	master int
	// peer is IFLA_LINK: a veth's peer, a macvlan's parent, as an ifindex
	// of the namespace peerNS names; 0 when none.
	peer int
	// peerNS is IFLA_LINK_NETNSID, the id of the peer's namespace as the
	// reading namespace numbers it; sameNS when the peer is in the link's
	// own namespace.
	peerNS      int32
	loopback    bool
	macvlanMode uint32
}

// ifAddr is one address of a namespace, on the link index.
type ifAddr struct {
	index int
	addr  netip.Addr
}

// route is the kernel's answer to a route lookup.
type route struct {
	// refused is the kernel's error when it has no route (ENETUNREACH,
	// EHOSTUNREACH) or one that refuses (EACCES for prohibit, EINVAL for
	// a blackhole); the rest is then empty.
	refused unix.Errno
	typ     uint8 // RTN_UNICAST, RTN_LOCAL, ...
	oif     int
	gw      netip.Addr // the next hop; invalid when on-link
	prefsrc netip.Addr // the source address the namespace would use
}

// routeQuery is one route lookup.
type routeQuery struct {
	dst netip.Addr
	// src and iif make it the lookup of a router: for a packet from src
	// that arrived on link iif. Zero for a packet the namespace sends.
	src netip.Addr
	iif int
	// oif is the link a scoped (link-local) destination names.
	oif int
}

// nsRef names a namespace for the guard. One it holds a handle on (a
// source, the host) is its inode with nsid sameNS. A namespace it only
// sees through another one (a veth's peer in a container) is the inode
// of that other namespace with the id it gives it (IFLA_LINK_NETNSID).
type nsRef struct {
	inode uint64
	nsid  int32
}

// kernelView is what the guard reads of the kernel. Every method may be
// called from many goroutines at once.
type kernelView interface {
	// route looks dst up in ns, a namespace with a handle.
	route(ns nsRef, q routeQuery) (route, error)
	// links returns the links of ns by ifindex.
	links(ns nsRef) (map[int]link, error)
	// addrs returns the addresses of ns, a namespace with a handle.
	addrs(ns nsRef) ([]ifAddr, error)
	// resolve returns the namespace a link of ns names by its peerNS
	// (sameNS: ns itself); the host's nsRef when it is the host.
	resolve(ns nsRef, nsid int32) (nsRef, error)
	// name names ns in messages.
	name(ns nsRef) string
}

// verdict is the guard's judgement of one destination from one source.
type verdict struct {
	// send: every hop of the packet stays on this host.
	send bool
	// refused, when set, is the source namespace's own refusal: it has no
	// route to the destination, so it would not send anything.
	refused error
	// why says, when the packet is neither sent nor refused, where it
	// would go instead: "the host would send it out of eth0, a physical
	// device, via 192.168.1.1".
	why string
}

// judge follows a packet to dst from namespace src, with host as the
// namespace that routes what a source sends to its gateway. With overlay,
// a bridge with a vxlan port (a Docker overlay's namespace) counts as
// staying: the caller vouches that dst is a task of its own Swarm, which
// the overlay carries to the node that runs it. The error is one of
// reading the kernel: nothing could be judged.
func judge(k kernelView, src, host nsRef, dst netip.Addr, overlay bool) (verdict, error) {
	q := routeQuery{dst: dst.WithZone("")}
	if z := dst.Zone(); z != "" {
		ls, err := k.links(src)
		if err != nil {
			return verdict{}, err
		}
		if q.oif = linkByName(ls, z); q.oif == 0 {
			return verdict{why: k.name(src) + " has no link " + strconv.Quote(z) + " (the address's zone)"}, nil
		}
	}
	ns := src
	for hop := 0; hop < maxHops; hop++ {
		who := "namespace " + k.name(ns)
		if ns == host {
			who = "the host"
		}
		rt, err := k.route(ns, q)
		if err != nil {
			return verdict{}, err
		}
		switch rt.typ {
		case unix.RTN_UNREACHABLE:
			rt.refused = unix.EHOSTUNREACH
		case unix.RTN_PROHIBIT:
			rt.refused = unix.EACCES
		case unix.RTN_BLACKHOLE:
			rt.refused = unix.EINVAL
		}
		if rt.refused != 0 {
			if hop == 0 {
				return verdict{refused: fmt.Errorf("%s has no route to %s: %w", who, q.dst, rt.refused)}, nil
			}
			return verdict{why: who + " has no route to it (" + rt.refused.Error() + ")"}, nil
		}
		switch rt.typ {
		case unix.RTN_LOCAL:
			return verdict{send: true}, nil
		case unix.RTN_UNICAST, unix.RTN_BROADCAST, unix.RTN_MULTICAST, unix.RTN_ANYCAST:
		default:
			return verdict{why: who + " has a route of type " + strconv.Itoa(int(rt.typ)) + " to it"}, nil
		}
		ls, err := k.links(ns)
		if err != nil {
			return verdict{}, err
		}
		out, ok := ls[rt.oif]
		if !ok {
			return verdict{}, fmt.Errorf("%s routes %s out of link %d, which it does not list", who, q.dst, rt.oif)
		}
		if out.loopback {
			return verdict{send: true}, nil
		}
		stays, what, err := linkStays(k, ns, out, 0, overlay)
		if err != nil {
			return verdict{}, err
		}
		leaves := func(more string) verdict {
			s := who + " would send it out of " + out.name + ", " + what
			if rt.gw.IsValid() {
				s += ", via " + rt.gw.String()
			}
			return verdict{why: s + more}
		}
		if !rt.gw.IsValid() {
			if stays {
				return verdict{send: true}, nil
			}
			return leaves(""), nil
		}
		// Via a gateway: followed only into the host, when the gateway is
		// the host's own address behind a veth whose peer is there (a
		// container's default route to its Docker bridge). Whether the
		// veth's far side is local does not matter then: the frame goes
		// to the host's own MAC.
		if out.kind != "veth" || ns == host {
			if stays {
				return leaves(": a router zonewarden cannot follow"), nil
			}
			return leaves(""), nil
		}
		next, err := k.resolve(ns, out.peerNS)
		if err != nil {
			return verdict{}, err
		}
		if next != host {
			return leaves(": a router in another namespace, which zonewarden cannot follow"), nil
		}
		hl, err := k.links(host)
		if err != nil {
			return verdict{}, err
		}
		in, ok := hl[out.peer]
		if !ok {
			return leaves(": its peer is not among the host's links"), nil
		}
		if in.master != 0 {
			m, ok := hl[in.master]
			if !ok || m.kind != "bridge" {
				return leaves(": it enters the host through " + in.name + ", enslaved to " + describe(m) + ", which zonewarden cannot follow"), nil
			}
			in = m
		}
		addrs, err := k.addrs(host)
		if err != nil {
			return verdict{}, err
		}
		if !hostOwns(addrs, rt.gw, in.index) {
			return leaves(", which is not an address of the host: a router zonewarden cannot follow"), nil
		}
		ns, q = host, routeQuery{dst: q.dst, src: rt.prefsrc, iif: in.index}
		if !rt.prefsrc.IsValid() || rt.prefsrc.Is4() != q.dst.Is4() {
			q.src, q.iif = netip.Addr{}, 0
		}
	}
	return verdict{why: "it crosses more than " + strconv.Itoa(maxHops) + " routing namespaces"}, nil
}

// linkStays reports whether frames sent out of l (a link of ns) stay on
// this host, and says what l is: "a veth", "a physical device", "a
// macvlan in vepa mode", "a bridge with eth1 (a physical device) as a
// port".
func linkStays(k kernelView, ns nsRef, l link, depth int, overlay bool) (bool, string, error) {
	if depth >= maxLinkDepth {
		return false, "links nested too deep to follow", nil
	}
	switch {
	case l.loopback:
		return true, "loopback", nil
	case l.kind == "bridge":
		return bridgeStays(k, ns, l, overlay)
	case l.kind == "veth":
		p, pns, pl, problem, err := peerOf(k, ns, l, "a veth whose peer")
		switch {
		case problem != "" || err != nil:
			return false, problem, err
		case p.master == 0:
			return true, "a veth", nil
		}
		m, ok := pl[p.master]
		if !ok || m.kind != "bridge" {
			return false, "a veth whose peer " + p.name + " is enslaved to " + describe(m), nil
		}
		if ok, what, err := bridgeStays(k, pns, m, overlay); !ok || err != nil {
			return false, "a veth whose peer is a port of " + m.name + ", " + what, err
		}
		return true, "a veth", nil
	case l.kind == "macvlan":
		if l.macvlanMode != macvlanBridge {
			return false, "a macvlan in " + macvlanModeName(l.macvlanMode) + " mode, which sends frames out of its parent", nil
		}
		p, pns, _, problem, err := peerOf(k, ns, l, "a macvlan whose parent")
		if problem != "" || err != nil {
			return false, problem, err
		}
		stays, what, err := linkStays(k, pns, p, depth+1, overlay)
		if !stays || err != nil {
			return false, "a macvlan over " + p.name + ", " + what, err
		}
		return true, "a macvlan over " + p.name, nil
	}
	return false, kindName(l), nil
}

// peerOf reads the link l (of ns) names as its peer or parent, with the
// namespace it is in and that namespace's links. When there is none, or
// it cannot be read, problem says so, starting with what ("a veth whose
// peer").
func peerOf(k kernelView, ns nsRef, l link, what string) (p link, pns nsRef, pl map[int]link, problem string, err error) {
	if l.peer == 0 {
		return p, pns, nil, what + " is unknown", nil
	}
	if pns, err = k.resolve(ns, l.peerNS); err != nil {
		return p, pns, nil, "", err
	}
	if pl, err = k.links(pns); err != nil {
		return p, pns, nil, "", err
	}
	p, ok := pl[l.peer]
	if !ok {
		return p, pns, pl, what + " cannot be read", nil
	}
	return p, pns, pl, "", nil
}

// bridgeStays reports whether every port of bridge br (of ns) is a veth
// (or, with overlay, a vxlan). The veths' own peers are not followed: each
// is in a namespace of this host.
func bridgeStays(k kernelView, ns nsRef, br link, overlay bool) (bool, string, error) {
	ls, err := k.links(ns)
	if err != nil {
		return false, "", err
	}
	var ports []link
	for _, l := range ls {
		if l.master == br.index && l.index != br.index {
			ports = append(ports, l)
		}
	}
	slices.SortFunc(ports, func(a, b link) int { return cmp.Compare(a.index, b.index) })
	for _, p := range ports {
		if p.kind != "veth" && (p.kind != "vxlan" || !overlay) {
			return false, "a bridge with " + describe(p) + " as a port", nil
		}
	}
	return true, "a bridge", nil
}

// describe renders l as "eth1 (a physical device)".
func describe(l link) string {
	if l.name == "" {
		return "an unknown device"
	}
	return l.name + " (" + kindName(l) + ")"
}

// kindName says what kind of link l is.
func kindName(l link) string {
	switch l.kind {
	case "":
		return "a physical device"
	case "veth":
		return "a veth"
	}
	if strings.ContainsRune("aeiou", rune(l.kind[0])) {
		return "an " + l.kind + " link"
	}
	return "a " + l.kind + " link"
}

func macvlanModeName(m uint32) string {
	switch m {
	case macvlanPrivate:
		return "private"
	case macvlanVEPA:
		return "vepa"
	case macvlanBridge:
		return "bridge"
	case macvlanPassthru:
		return "passthru"
	case macvlanSource:
		return "source"
	}
	return "an unknown (" + strconv.Itoa(int(m)) + ")"
}

// linkByName returns the index of the link named (or numbered) name.
func linkByName(ls map[int]link, name string) int {
	for _, l := range ls {
		if l.name == name {
			return l.index
		}
	}
	if i, err := strconv.Atoi(name); err == nil {
		if _, ok := ls[i]; ok {
			return i
		}
	}
	return 0
}

// hostOwns reports whether gw is one of addrs: a link-local gateway must
// be on link iif, any other may be on any link (Linux answers ARP and
// neighbour discovery for all its addresses on every link).
func hostOwns(addrs []ifAddr, gw netip.Addr, iif int) bool {
	gw = gw.Unmap()
	return slices.ContainsFunc(addrs, func(a ifAddr) bool {
		return a.addr.WithZone("") == gw.WithZone("") && (!gw.IsLinkLocalUnicast() || a.index == iif)
	})
}
