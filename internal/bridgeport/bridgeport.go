// Package bridgeport finds the bridge port of each container endpoint: the
// host-side veth through which every frame of the endpoint enters its
// Docker bridge. zonewarden binds a container's addresses to that port
// (internal/enforce, the bridge table): a frame that carries the address
// from any other port is a spoof, whatever its MAC or IP header says,
// because a container cannot choose the port its frames arrive on.
//
// The ports are read from the host's own network namespace over rtnetlink,
// without entering any container: every veth enslaved to a bridge names
// its peer (IFLA_LINK, in the namespace IFLA_LINK_NETNSID), and the peer's
// MAC is read through that namespace id (IFLA_TARGET_NETNSID, Linux 4.20).
// Docker reports each endpoint's MAC, so the peer's MAC and the bridge
// tell which endpoint a port serves.
//
// List touches the kernel; Match is pure.
package bridgeport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/zonewarden/zonewarden/internal/inventory"
)

// Port is one bridge port whose peer lives in another network namespace:
// a container's veth.
type Port struct {
	Index  int    // the host-side veth's ifindex
	Name   string // its name (vethXXXXXXX)
	Bridge string // the bridge it is enslaved to (docker0, br-1a2b3c4d5e6f)
	// PeerMAC is the MAC of the container side; nil when it cannot be
	// read (the peer is being moved).
	PeerMAC net.HardwareAddr
}

// rtnetlink attributes (linux/if_link.h).
const (
	iflaAddress      = 1
	iflaIfname       = 3
	iflaLink         = 5
	iflaMaster       = 10
	iflaLinkinfo     = 18
	iflaInfoKind     = 1
	iflaLinkNetnsid  = 37
	iflaTargetNetnsd = 46
)

// link is what List reads of one interface.
type link struct {
	index, master, peer, nsid int
	name, kind                string
	mac                       net.HardwareAddr
}

// List returns the bridge ports of the host whose peer is in another
// network namespace, with their peers' MACs. It needs CAP_NET_ADMIN only
// to read peers in other namespaces (root on a Docker host).
func List() ([]Port, error) { return ListCached(nil) }

// Cache holds the peer MACs of ports already matched to an endpoint, by
// port ifindex: ListCached does not read them again. A port's identity
// is its ifindex, so a cached MAC stays right for as long as the port
// exists (a peer that changes its MAC later does not move its binding).
type Cache map[int]net.HardwareAddr

// ListCached is List, reading the peer MAC of the ports cache lacks only.
// It removes from cache the ports that are gone.
func ListCached(cache Cache) ([]Port, error) { return listIn(nil, cache) }

// ListIn is ListCached in the network namespace whose file descriptor is
// netns (a Swarm overlay's, where a task's veth is a port of br0). It
// also returns, with no peer MAC, the bridge ports that are VXLAN links:
// an overlay's port to the other nodes (vxlan0).
func ListIn(netns int, cache Cache) ([]Port, error) {
	return listIn(&netlink.Config{NetNS: netns}, cache)
}

func listIn(cfg *netlink.Config, cache Cache) ([]Port, error) {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, cfg)
	if err != nil {
		return nil, fmt.Errorf("bridge ports: cannot open rtnetlink: %w", err)
	}
	defer c.Close()
	links, err := dumpLinks(c)
	if err != nil {
		return nil, fmt.Errorf("bridge ports: listing links: %w", err)
	}
	byIndex := make(map[int]*link, len(links))
	for i := range links {
		byIndex[links[i].index] = &links[i]
	}
	var out []Port
	for _, l := range links {
		br := byIndex[l.master]
		if cfg != nil && l.kind == "vxlan" && br != nil && br.kind == "bridge" {
			out = append(out, Port{Index: l.index, Name: l.name, Bridge: br.name})
			continue
		}
		if l.kind != "veth" || br == nil || br.kind != "bridge" || l.nsid < 0 {
			continue
		}
		p := Port{Index: l.index, Name: l.name, Bridge: br.name}
		if mac, ok := cache[l.index]; ok {
			p.PeerMAC = mac
		} else if peer, err := getLink(c, l.peer, l.nsid); err == nil {
			p.PeerMAC = peer.mac
		}
		out = append(out, p)
	}
	for index := range cache {
		if l := byIndex[index]; l == nil || l.kind != "veth" {
			delete(cache, index)
		}
	}
	return out, nil
}

// ifinfomsg is struct ifinfomsg for index (0: any), family unspecified.
func ifinfomsg(index int) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(b[4:], uint32(int32(index)))
	return b
}

// dumpLinks dumps the links of the host's namespace.
func dumpLinks(c *netlink.Conn) ([]link, error) {
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETLINK, Flags: netlink.Request | netlink.Dump},
		Data:   ifinfomsg(0),
	})
	if err != nil {
		return nil, err
	}
	out := make([]link, 0, len(msgs))
	for _, m := range msgs {
		l, err := parseLink(m.Data)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// getLink reads one link of the namespace with id nsid.
func getLink(c *netlink.Conn, index, nsid int) (link, error) {
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETLINK, Flags: netlink.Request},
		Data:   append(ifinfomsg(index), targetNetnsid(nsid)...),
	})
	if err != nil {
		return link{}, err
	}
	if len(msgs) != 1 {
		return link{}, fmt.Errorf("link %d in namespace %d: %d answers", index, nsid, len(msgs))
	}
	return parseLink(msgs[0].Data)
}

// targetNetnsid is the attribute that points a request at the namespace
// with id nsid; none for -1, our own.
func targetNetnsid(nsid int) []byte {
	if nsid < 0 {
		return nil
	}
	ae := netlink.NewAttributeEncoder()
	ae.Int32(iflaTargetNetnsd, int32(nsid))
	b, _ := ae.Encode()
	return b
}

// parseLink reads an RTM_NEWLINK message's body.
func parseLink(b []byte) (link, error) {
	if len(b) < unix.SizeofIfInfomsg {
		return link{}, errors.New("short ifinfomsg")
	}
	l := link{index: int(int32(binary.NativeEndian.Uint32(b[4:8]))), nsid: -1}
	ad, err := netlink.NewAttributeDecoder(b[unix.SizeofIfInfomsg:])
	if err != nil {
		return link{}, err
	}
	for ad.Next() {
		switch ad.Type() {
		case iflaAddress:
			l.mac = net.HardwareAddr(ad.Bytes())
		case iflaIfname:
			l.name = ad.String()
		case iflaLink:
			l.peer = int(ad.Int32())
		case iflaMaster:
			l.master = int(ad.Uint32())
		case iflaLinkNetnsid:
			l.nsid = int(ad.Int32())
		case iflaLinkinfo:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					if nad.Type() == iflaInfoKind {
						l.kind = nad.String()
					}
				}
				return nil
			})
		}
	}
	return l, ad.Err()
}

// Match sets the BridgePort of every endpoint of snap's containers whose
// MAC is the peer MAC of exactly one port of its network's bridge. It
// returns what it could not match for a running container: an endpoint
// whose MAC two ports share (one of them forges it) is left unbound, as
// is one with no port yet. Endpoints already bound keep their port when
// that port still serves their MAC.
func Match(snap *inventory.Snapshot, ports []Port) []string {
	type key struct{ bridge, mac string }
	byKey := make(map[key][]int, len(ports))
	for _, p := range ports {
		if p.PeerMAC != nil {
			k := key{p.Bridge, p.PeerMAC.String()}
			byKey[k] = append(byKey[k], p.Index)
		}
	}
	bridges := make(map[string]string, len(snap.Networks))
	for _, n := range snap.Networks {
		// An overlay has a bridge in its own namespace only (br0), which
		// the caller names when it matches that namespace's ports.
		if (n.Driver == "bridge" || n.Driver == "overlay") && n.Bridge != "" {
			bridges[n.Name] = n.Bridge
		}
	}
	var problems []string
	for i := range snap.Containers {
		c := &snap.Containers[i]
		for j := range c.Endpoints {
			e := &c.Endpoints[j]
			br, ok := bridges[e.Network]
			if !ok || e.MAC == "" {
				continue
			}
			mac, err := net.ParseMAC(e.MAC)
			if err != nil {
				continue
			}
			cands := byKey[key{br, mac.String()}]
			switch {
			case len(cands) == 1:
				e.BridgePort = cands[0]
			case slices.Contains(cands, e.BridgePort):
				// Keep the binding it had: a second port claiming its
				// MAC is the forger.
			case len(cands) > 1:
				e.BridgePort = 0
				problems = append(problems, fmt.Sprintf("%s on %s: %d ports of %s carry its MAC %s (one forges it): its addresses are not bound", c.Name, e.Network, len(cands), br, e.MAC))
			default:
				e.BridgePort = 0
				if c.Running() {
					problems = append(problems, fmt.Sprintf("%s on %s: no port of %s has its MAC %s yet", c.Name, e.Network, br, e.MAC))
				}
			}
		}
	}
	return problems
}
