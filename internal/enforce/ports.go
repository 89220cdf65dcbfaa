package enforce

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/model"
)

// PortPriority is the bridge table's prerouting priority: before every
// other bridge-family chain (filter is -200), so that a spoofed frame
// meets nothing else.
const PortPriority = -300

// CompilePorts builds the endpoint binding: the bridge-family table
// (named like the inet one) that ties each container's addresses to its
// bridge port, the host-side veth its frames enter the bridge through
// (inventory.Endpoint.BridgePort). A bridge table sees every frame that
// enters a Docker bridge, bridged inside a network or routed beyond it,
// whatever br_netfilter does, and needs no conntrack: a binding of
// address to port holds per frame.
//
// A frame is dropped, counted and logged when
//   - it carries (IPv4, IPv6 or an ARP sender address) an address bound to
//     another port, or a network's gateway address (claimed4/6);
//   - it enters through the port of a container on a zone and carries an
//     address that is not the port's own (IPv6 link-local and the
//     unspecified address aside): a zone member speaks only as itself;
//   - it is a neighbour advertisement for a claimed IPv6 address from
//     another port.
//
// An element names the port by ifindex, which the kernel does not reuse
// soon (it allocates them cyclically): when a container goes, its port
// goes, and its elements match nothing, even while no agent removes
// them. A new container given the freed address speaks from a new port,
// and its frames are dropped until zonewarden binds it.
//
// Endpoints whose port is unknown (a snapshot file, a port not found
// yet) are not bound: their addresses are left to the inet table alone.
func CompilePorts(b *model.Binding, opts Options) *Ruleset {
	opts = opts.withDefaults()
	r := newRuleset(opts, "bridge", portSetDefs())
	zones := map[string]bool{}
	for _, z := range b.Model.Policy().Zones {
		zones[z.Name] = true
	}
	for _, n := range b.Snapshot.Networks {
		if n.Driver != "bridge" {
			continue
		}
		for _, s := range n.Subnets {
			if g := s.Gateway; g.IsValid() {
				r.claim(g, "gateway of "+n.Name)
			}
		}
	}
	for i := range b.Snapshot.Containers {
		c := &b.Snapshot.Containers[i]
		if !c.Running() {
			continue
		}
		for _, e := range c.Endpoints {
			if e.BridgePort <= 0 {
				continue
			}
			port := strconv.Itoa(e.BridgePort)
			note := c.Name + " on " + e.Network
			if zones[e.Network] {
				r.add("ports", port, note)
			}
			for _, a := range []netip.Addr{e.IPv4, e.IPv6} {
				if !a.IsValid() {
					continue
				}
				f := familyOf(a)
				r.add("bound"+f.suffix, port+" . "+a.String(), note)
				r.claim(a, note)
				if f.suffix == "6" {
					r.add("ndbound6", port+" . "+rawAddr(a), note)
				}
			}
		}
	}
	return r
}

// claim records that an address belongs to one port (or to the host).
func (r *Ruleset) claim(a netip.Addr, note string) {
	f := familyOf(a)
	r.add("claimed"+f.suffix, a.String(), note)
	if f.suffix == "6" {
		r.add("ndclaimed6", rawAddr(a), note)
	}
}

// rawAddr renders an IPv6 address as the 128-bit integer a raw payload
// key (@th,64,128) takes.
func rawAddr(a netip.Addr) string {
	b := a.As16()
	return "0x" + hex.EncodeToString(b[:])
}

// ndTarget is the target address of a neighbour advertisement: bits 64 to
// 191 of the ICMPv6 message. nft 1.0.6 has no name for it.
const ndTarget = "@th,64,128"

func portSetDefs() []setDef {
	return []setDef{
		{name: "ports", typ: "iface_index", comment: "bridge ports of containers on zones: their frames carry their own addresses only"},
		{name: "bound4", typ: "iface_index . ipv4_addr", comment: "each bridge port's own IPv4 addresses"},
		{name: "claimed4", typ: "ipv4_addr", comment: "IPv4 addresses bound to a port, and gateways: no other port may use them"},
		{name: "bound6", typ: "iface_index . ipv6_addr", comment: "each bridge port's own IPv6 addresses"},
		{name: "claimed6", typ: "ipv6_addr", comment: "IPv6 addresses bound to a port, and gateways: no other port may use them"},
		{name: "unbound6", typ: "ipv6_addr", interval: true, comment: "IPv6 sources any port may use: link-local and unspecified",
			fixed: [][2]string{{"::", "unspecified (duplicate address detection)"}, {"fe80::/10", "link-local"}}},
		{name: "ndbound6", typ: "meta iif . " + ndTarget, typeof: true, comment: "each bridge port's own IPv6 addresses, as neighbour advertisement targets"},
		{name: "ndclaimed6", typ: ndTarget, typeof: true, comment: "claimed6, as neighbour advertisement targets"},
	}
}

// portChains renders the bridge table's one chain. A frame that carries
// its own port's address is accepted at once (one lookup: accept ends
// this chain only, the frame goes on to every other); the rest is
// dropped when it claims another port's address, or when it comes from
// a zone member's port. A neighbour advertisement is checked before
// IPv6's fast path: its target, not its source, is what it claims.
func (r *Ruleset) portChains() []Chain {
	own := "its own address"
	return []Chain{{Name: "prerouting", Hook: "prerouting", Priority: fmt.Sprint(PortPriority), Rules: []Rule{
		{Match: []Match{in("bound4", InPort, Src4)}, Action: Accept, Comment: own},
		{Match: []Match{in("claimed4", Src4)}, Action: Drop, Drop: DropSpoof},
		{Match: []Match{in("ports", InPort), notIn("bound4", InPort, Src4)}, Action: Drop, Drop: DropSpoof},
		{Match: []Match{in("bound4", InPort, ARPSrc)}, Action: Accept, Comment: own},
		{Match: []Match{in("claimed4", ARPSrc)}, Action: Drop, Drop: DropSpoofARP},
		{Match: []Match{in("ports", InPort), notIn("bound4", InPort, ARPSrc)}, Action: Drop, Drop: DropSpoofARP},
		{Match: []Match{{Kind: ICMPv6Type, Value: "nd-neighbor-advert"}, in("ndclaimed6", NDTarget), notIn("ndbound6", InPort, NDTarget)}, Action: Drop, Drop: DropSpoofND},
		{Match: []Match{in("bound6", InPort, Src6)}, Action: Accept, Comment: own},
		{Match: []Match{in("claimed6", Src6)}, Action: Drop, Drop: DropSpoof},
		{Match: []Match{in("ports", InPort), notIn("unbound6", Src6), notIn("bound6", InPort, Src6)}, Action: Drop, Drop: DropSpoof},
	}}}
}

// BoundPorts counts the endpoints with a bridge port in the snapshot,
// and those on zones without one (not bound), for reports.
func BoundPorts(snap *inventory.Snapshot) (bound, unbound int) {
	for _, c := range snap.Containers {
		if !c.Running() {
			continue
		}
		for _, e := range c.Endpoints {
			if e.BridgePort > 0 {
				bound++
			} else if e.IPv4.IsValid() || e.IPv6.IsValid() {
				unbound++
			}
		}
	}
	return bound, unbound
}
