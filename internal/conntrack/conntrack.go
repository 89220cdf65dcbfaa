// Package conntrack ends tracked connections that a tightened policy no
// longer allows. A firewall rule that matches only new connections leaves
// established ones alive: without this, an attacker's open session would
// outlive the rule that forbids it. It is the only package that talks
// netlink conntrack.
package conntrack

import (
	"fmt"
	"net/netip"

	ct "github.com/ti-mo/conntrack"
)

// Conn is one tracked connection as the policy sees it: the client, the
// destination after DNAT (the container behind a published port) and
// before (the address and port the client dialled).
type Conn struct {
	Src       netip.Addr
	Dst       netip.Addr // after DNAT: the reply's source
	Port      uint16     // after DNAT
	Dialled   netip.Addr // before DNAT
	DialledTo uint16
	Proto     string // tcp, udp, sctp, icmp, ipv6-icmp, or the number
}

var protoNames = map[uint8]string{1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp"}

// Kill deletes every tracked connection for which forbidden returns true,
// and returns how many it deleted.
func Kill(forbidden func(Conn) bool) (int, error) {
	c, err := ct.Dial(nil)
	if err != nil {
		return 0, fmt.Errorf("conntrack: %w (needs CAP_NET_ADMIN)", err)
	}
	defer c.Close()
	flows, err := c.Dump(nil)
	if err != nil {
		return 0, fmt.Errorf("conntrack: listing connections: %w", err)
	}
	killed := 0
	for _, f := range flows {
		o, r := f.TupleOrig, f.TupleReply
		proto, ok := protoNames[o.Proto.Protocol]
		if !ok {
			proto = fmt.Sprint(o.Proto.Protocol)
		}
		conn := Conn{Src: o.IP.SourceAddress.Unmap(), Dst: r.IP.SourceAddress.Unmap(), Port: r.Proto.SourcePort,
			Dialled: o.IP.DestinationAddress.Unmap(), DialledTo: o.Proto.DestinationPort, Proto: proto}
		if proto == "icmp" || proto == "ipv6-icmp" {
			conn.Port, conn.DialledTo = 0, 0
		}
		if !forbidden(conn) {
			continue
		}
		if err := c.Delete(f); err != nil {
			continue // gone meanwhile
		}
		killed++
	}
	return killed, nil
}
