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
	// Prerouting: every frame that enters a Docker bridge, at the
	// endpoint binding's bridge table (CompilePorts).
	Prerouting Hook = "prerouting"
)

// Packet is the first packet of a connection, as the hook sees it; at
// Prerouting, a frame.
type Packet struct {
	Hook     Hook
	Src, Dst netip.Addr
	Proto    string // tcp, udp, sctp, icmp, ipv6-icmp
	Port     uint16 // destination port (0 for icmp)
	// Established marks a packet of a connection conntrack already
	// tracks (a reply, say); the zero value is a connection's first
	// packet.
	Established bool
	// InPort is the bridge port (the host-side veth's ifindex) a frame
	// comes in by, at Prerouting.
	InPort int
	// ARP makes the frame an ARP message whose sender address is Src.
	ARP bool
	// NDTarget makes the packet an IPv6 neighbour advertisement for that
	// target address.
	NDTarget netip.Addr
}

// Verdict is what the table does with a packet: Drop, or let it go on to
// the other chains of the hook (Docker's), with the rule that decided.
type Verdict struct {
	Drop bool
	// WouldDrop: a zone in monitor mode let through what Drop would
	// have dropped (Rule is the monitor twin's comment).
	WouldDrop bool
	Rule      string // the comment of the deciding rule, or "not managed"
}

// Trace follows a packet (a new connection's first, unless Established)
// through the ruleset's chains (ChainRules), rule by rule in order, as the kernel runs them:
// it has no rules of its own. Tests hold it to real packets and to the
// reachability model.
func (r *Ruleset) Trace(p Packet) Verdict {
	r.tracedOnce.Do(func() { r.traced = indexChains(r.ChainRules()) })
	return r.traceIndexed(r.traced, p)
}

// traceChains follows p through chains, with r's sets.
func (r *Ruleset) traceChains(list []Chain, p Packet) Verdict {
	return r.traceIndexed(indexChains(list), p)
}

// indexChains maps chains by name.
func indexChains(list []Chain) map[string]Chain {
	chains := make(map[string]Chain, len(list))
	for _, c := range list {
		chains[c.Name] = c
	}
	return chains
}

func (r *Ruleset) traceIndexed(chains map[string]Chain, p Packet) Verdict {
	if v, done := r.run(chains, string(p.Hook), p, 0); done {
		return v
	}
	return Verdict{Rule: "not managed"} // the base chain's policy: accept
}

// run evaluates chain name for p: the verdict of the first rule that
// decides, or done=false when p falls off the chain's end.
func (r *Ruleset) run(chains map[string]Chain, name string, p Packet, depth int) (v Verdict, done bool) {
	if depth > len(chains) {
		panic("enforce: a jump loop in the chains at " + name)
	}
	for _, rule := range chains[name].Rules {
		if !r.matchesAll(rule.Match, p) {
			continue
		}
		switch rule.Action {
		case Accept:
			return Verdict{Rule: rule.Comment}, true
		case Drop:
			return Verdict{Drop: true, Rule: rule.Drop.Comment}, true
		case Monitor:
			return Verdict{WouldDrop: true, Rule: rule.Drop.WouldComment()}, true
		case Jump:
			if v, done := r.run(chains, rule.Target, p, depth+1); done {
				return v, true
			}
		}
	}
	return Verdict{}, false
}

func (r *Ruleset) matchesAll(ms []Match, p Packet) bool {
	for _, m := range ms {
		if !r.matches(m, p) {
			return false
		}
	}
	return true
}

// matches reports whether p meets m.
func (r *Ruleset) matches(m Match, p Packet) bool {
	switch m.Kind {
	case Family:
		return m.Value == map[string]string{"4": "ipv4", "6": "ipv6"}[familyOf(p.Src).suffix]
	case CtState:
		return p.Established && m.Value == "established,related"
	case ICMPv6Type:
		return m.Value == "nd-neighbor-advert" && p.NDTarget.IsValid()
	}
	parts := make([]string, len(m.Fields))
	for i, f := range m.Fields {
		v, ok := p.field(f)
		if !ok {
			// nft loads a field only from a packet that has it (ip
			// saddr: an IPv4 packet): the rule does not match.
			return false
		}
		parts[i] = v
	}
	return r.containsKey(m.Set, parts) != m.Not
}

// field returns the value of f in p, false when p has none.
func (p Packet) field(f Field) (string, bool) {
	v4 := familyOf(p.Src).suffix == "4"
	switch f {
	case Src4, Src6:
		return p.Src.String(), !p.ARP && v4 == (f == Src4)
	case Dst4, Dst6:
		return p.Dst.String(), !p.ARP && v4 == (f == Dst4)
	case L4Proto:
		return p.Proto, !p.ARP
	case DstPort:
		return strconv.Itoa(int(p.Port)), !p.ARP
	case InPort:
		return strconv.Itoa(p.InPort), p.InPort > 0
	case ARPSrc:
		return p.Src.String(), p.ARP && v4
	case NDTarget:
		return rawAddr(p.NDTarget), p.NDTarget.IsValid()
	}
	return "", false
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
