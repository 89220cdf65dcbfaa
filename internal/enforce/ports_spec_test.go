package enforce

import (
	"net/netip"
	"strconv"
	"sync"
	"testing"

	"github.com/zonewarden/zonewarden/internal/inventory"
)

// specPortTrace is the endpoint binding's decision order (README, "The
// endpoint binding"), written out by hand: a frame carrying its own
// port's address passes; one carrying an address bound to another port,
// or a gateway's, is a spoof; from a zone member's port, any address not
// its own is a spoof (IPv6 link-local and :: aside); a neighbour
// advertisement for another port's address is a spoof whatever its
// source. Everything else is not the table's business.
func specPortTrace(r *Ruleset, p Packet) Verdict {
	key := func(set string, parts ...string) bool { return r.containsKey(set, parts) }
	port := strconv.Itoa(p.InPort)
	src := p.Src.String()
	if p.Src.Is4() { // an IPv4 packet, or an ARP message
		drop := DropSpoof
		if p.ARP {
			drop = DropSpoofARP
		}
		switch {
		case key("bound4", port, src):
			return Verdict{Rule: "its own address"}
		case key("claimed4", src), key("ports", port):
			return Verdict{Drop: true, Rule: drop.Comment}
		}
		return Verdict{Rule: "not managed"}
	}
	if t := p.NDTarget; t.IsValid() && key("ndclaimed6", rawAddr(t)) && !key("ndbound6", port, rawAddr(t)) {
		return Verdict{Drop: true, Rule: DropSpoofND.Comment}
	}
	switch {
	case key("bound6", port, src):
		return Verdict{Rule: "its own address"}
	case key("claimed6", src), key("ports", port) && !key("unbound6", src):
		return Verdict{Drop: true, Rule: DropSpoof.Comment}
	}
	return Verdict{Rule: "not managed"}
}

// portsSpecPackets are frames from every bridge port of the host (and one
// of no zone, 999) with every address of the host's endpoints and
// gateways, an unclaimed one of each family, link-local and ::, as IP
// packets and ARP messages; and neighbour advertisements for each IPv6
// address from each port, with each IPv6 source.
func portsSpecPackets(snap *inventory.Snapshot) []Packet {
	ports := []int{999}
	addrs := []netip.Addr{netip.MustParseAddr("10.20.2.99"), netip.MustParseAddr("fd20:1::99"), netip.MustParseAddr("fe80::1"), netip.IPv6Unspecified()}
	for _, n := range snap.Networks {
		for _, s := range n.Subnets {
			if s.Gateway.IsValid() {
				addrs = append(addrs, s.Gateway)
			}
		}
	}
	for _, c := range snap.Containers {
		for _, e := range c.Endpoints {
			if e.BridgePort > 0 {
				ports = append(ports, e.BridgePort)
			}
			for _, a := range []netip.Addr{e.IPv4, e.IPv6} {
				if a.IsValid() {
					addrs = append(addrs, a)
				}
			}
		}
	}
	var out []Packet
	for _, port := range ports {
		for _, a := range addrs {
			out = append(out, Packet{Hook: Prerouting, InPort: port, Src: a, Proto: "tcp", Port: 80})
			if a.Is4() {
				out = append(out, Packet{Hook: Prerouting, InPort: port, Src: a, ARP: true})
				continue
			}
			for _, src := range addrs {
				if src.Is6() {
					out = append(out, Packet{Hook: Prerouting, InPort: port, Src: src, Proto: "ipv6-icmp", NDTarget: a})
				}
			}
		}
	}
	return out
}

var (
	portsSpecOnce  sync.Once
	portsSpecCache specCase
)

func portsSpecCase(t reporter) specCase {
	t.Helper()
	portsSpecOnce.Do(func() {
		snap := hostWithPorts()
		c := specCase{r: CompilePorts(bind(t, threeTierPolicy, snap), Options{})}
		c.packets = portsSpecPackets(snap)
		for _, p := range c.packets {
			c.want = append(c.want, specPortTrace(c.r, p))
		}
		portsSpecCache = c
	})
	return portsSpecCache
}

// TestPortsTraceFollowsSpec: the bridge table's chain, traced rule by
// rule, decides every frame of portsSpecPackets as the specification
// does, with the same rule.
func TestPortsTraceFollowsSpec(t *testing.T) {
	checkPortsSpec(t, nil)
	t.Logf("%d frames", len(portsSpecCase(t).packets))
}

func checkPortsSpec(t reporter, mutate mutation) {
	t.Helper()
	portsSpecCase(t).check(t, mutate)
}
