package enforce

import (
	"net/netip"
	"strconv"
	"strings"
)

// Hook is where a packet meets zonewarden's table.
type Hook string

const (
	// Forward: container to container (bridged or routed), container to
	// the internet, outside client to a container (after DNAT).
	Forward Hook = "forward"
	// Input: to an address of the host itself — a published port served
	// by Docker's userland proxy, or the host's own services.
	Input Hook = "input"
)

// Packet is the first packet of a connection, as the hook sees it.
type Packet struct {
	Hook     Hook
	Src, Dst netip.Addr
	Proto    string // tcp, udp, sctp, icmp, ipv6-icmp
	Port     uint16 // destination port (0 for icmp)
}

// Verdict is what the table does with a packet: Drop, or let it go on to
// the other chains of the hook (Docker's), with the rule that decided.
type Verdict struct {
	Drop bool
	Rule string // the comment of the deciding rule, or "not managed"
}

// Trace follows a new connection's first packet through the ruleset's
// chains, as the kernel would: the same sets, the same order. Tests hold
// it to real packets and to the reachability model.
func (r *Ruleset) Trace(p Packet) Verdict {
	f := familyOf(p.Src)
	s := f.suffix
	in := func(set string, a netip.Addr) bool { return r.containsAddr(set+s, a) }
	key := func(set string, parts ...string) bool { return r.containsKey(set, parts) }
	proto, port := p.Proto, strconv.Itoa(int(p.Port))
	if p.Hook == Input {
		if !in("zones", p.Src) || !key("pubports", proto, port) {
			if in("denyzones", p.Src) && !(r.unmanagedFree && in("free", p.Src)) {
				return Verdict{Drop: true, Rule: DropHost.Comment}
			}
			return Verdict{Rule: "not managed"}
		}
		switch {
		case r.unmanagedFree && in("free", p.Src) && !key("denypub", proto, port):
			return Verdict{Rule: "unmanaged container: Docker decides"}
		case key("pubin"+s, p.Src.String(), proto, port):
			return Verdict{Rule: "declared flows to published ports"}
		}
		return Verdict{Drop: true, Rule: DropPublished.Comment}
	}
	src, dst := p.Src.String(), p.Dst.String()
	switch {
	case key("allow"+s, src, dst, proto, port):
		return Verdict{Rule: "declared flows"}
	case key("allowrange"+s, src, dst, proto, port):
		return Verdict{Rule: "declared flows on port ranges"}
	case in("zones", p.Src) && !in("admitted", p.Src):
		return Verdict{Drop: true, Rule: DropUnadmittedSrc.Comment}
	case in("zones", p.Dst) && !in("admitted", p.Dst):
		return Verdict{Drop: true, Rule: DropUnadmittedDst.Comment}
	case r.unmanagedFree && in("free", p.Src) && !in("denyhosts", p.Dst),
		r.unmanagedFree && in("free", p.Dst) && !in("denyhosts", p.Src):
		return Verdict{Rule: "unmanaged container: Docker decides"}
	case key("allowzone"+s, src, dst):
		return Verdict{Rule: "zones with default: allow"}
	case !in("local", p.Dst) && key("egress"+s, src, dst, proto, port):
		return Verdict{Rule: "egress"}
	case !in("local", p.Src) && key("ingress"+s, src, dst, proto, port):
		return Verdict{Rule: "ingress to published ports"}
	case in("zones", p.Src):
		return Verdict{Drop: true, Rule: DropFromZone.Comment}
	case in("zones", p.Dst):
		return Verdict{Drop: true, Rule: DropToZone.Comment}
	}
	return Verdict{Rule: "not managed"}
}

// containsAddr reports whether a set of addresses or prefixes holds a.
func (r *Ruleset) containsAddr(set string, a netip.Addr) bool {
	for e := range r.elems[set] {
		if fieldMatches(e, a.String()) {
			return true
		}
	}
	return false
}

// containsKey reports whether a set of concatenated keys holds the key
// whose fields are parts (addresses, protocol names, port numbers).
func (r *Ruleset) containsKey(set string, parts []string) bool {
	for e := range r.elems[set] {
		fields := strings.Split(e, " . ")
		if len(fields) != len(parts) {
			continue
		}
		ok := true
		for i, f := range fields {
			if !fieldMatches(f, parts[i]) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// protoNumbers are the protocols the compiler writes by name.
var protoNumbers = map[string]int{"icmp": 1, "tcp": 6, "udp": 17, "ipv6-icmp": 58, "sctp": 132}

// fieldMatches reports whether one field of an element (an address, a
// prefix, a protocol, a number or a range N-M) holds value.
func fieldMatches(field, value string) bool {
	if field == value {
		return true
	}
	if strings.Contains(field, "/") {
		pfx, err1 := netip.ParsePrefix(field)
		a, err2 := netip.ParseAddr(value)
		return err1 == nil && err2 == nil && pfx.Contains(a)
	}
	lo, hi, isRange := strings.Cut(field, "-")
	if !isRange || strings.Contains(field, ":") { // "ipv6-icmp" is a name, not a range
		return false
	}
	v, ok := number(value)
	if !ok {
		return false
	}
	l, ok1 := number(lo)
	h, ok2 := number(hi)
	return ok1 && ok2 && l <= v && v <= h
}

func number(s string) (int, bool) {
	if n, ok := protoNumbers[s]; ok {
		return n, true
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// Forbids tells whether the ruleset would have dropped the first packet of
// a connection the kernel tracks, so that tightening a policy can end the
// connections it no longer allows. dst and port are the destination after
// DNAT, dialled and dialledPort before. A connection to an address of a
// Docker network that is no container's (a gateway: Docker's userland
// proxy serves published ports there) met the input hook; any other, the
// forward hook.
func (r *Ruleset) Forbids(src, dst, dialled netip.Addr, proto string, port, dialledPort uint16) (bool, string) {
	s := familyOf(src).suffix
	if dst == dialled && r.containsAddr("local"+s, dst) && !r.containsAddr("admitted"+s, dst) {
		v := r.Trace(Packet{Hook: Input, Src: src, Dst: dst, Proto: proto, Port: dialledPort})
		return v.Drop, v.Rule
	}
	v := r.Trace(Packet{Hook: Forward, Src: src, Dst: dst, Proto: proto, Port: port})
	return v.Drop, v.Rule
}
