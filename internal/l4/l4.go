// Package l4 is the one vocabulary of layer-4 ports: a Port (5432/tcp,
// icmp), a Range of ports of one protocol (8000-8100/tcp, icmp, all), a
// List of ranges (what a flow allows), with their parsers. The host
// model, the reachability engine, the policy and the compilers all speak
// it. Pure: no imports beyond the standard library.
package l4

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Port is one destination port and protocol. ICMP has no number.
type Port struct {
	Proto  string `json:"protocol"` // tcp, udp, sctp or icmp
	Number uint16 `json:"port"`     // 0 for icmp
}

// Compare orders ports by protocol, then number.
func (p Port) Compare(q Port) int {
	if c := strings.Compare(p.Proto, q.Proto); c != 0 {
		return c
	}
	return int(p.Number) - int(q.Number)
}

func (p Port) String() string {
	if p.Proto == "icmp" {
		return "icmp"
	}
	return strconv.Itoa(int(p.Number)) + "/" + p.Proto
}

// ParsePort reads "5432/tcp", "53/udp", "5432" (tcp) or "icmp".
func ParsePort(s string) (Port, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "icmp" {
		return Port{Proto: "icmp"}, nil
	}
	num, proto, found := strings.Cut(s, "/")
	if !found {
		proto = "tcp"
	}
	switch proto {
	case "tcp", "udp", "sctp":
	default:
		return Port{}, fmt.Errorf("port %q: protocol must be tcp, udp, sctp or icmp", s)
	}
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil || n == 0 {
		return Port{}, fmt.Errorf("port %q: want a number from 1 to 65535, like 5432/tcp", s)
	}
	return Port{Proto: proto, Number: uint16(n)}, nil
}

// Protocols a port range can name. ProtoAll covers every port of every
// protocol, ICMP included.
const (
	ProtoTCP  = "tcp"
	ProtoUDP  = "udp"
	ProtoSCTP = "sctp"
	ProtoICMP = "icmp"
	ProtoAll  = "all"
)

// Range is a range of destination ports of one protocol ("8080/tcp",
// "8000-8100/tcp"), every ICMP message ("icmp"), or everything ("all").
// First and Last are 0 for icmp and all. The zero value is not a valid
// range.
type Range struct {
	Proto       string
	First, Last uint16
}

// ParseRange reads "5432/tcp", "53/udp", "8000-8100/tcp", "5432" (tcp),
// "icmp" or "all".
func ParseRange(s string) (Range, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch s {
	case ProtoICMP, ProtoAll:
		return Range{Proto: s}, nil
	case "":
		return Range{}, fmt.Errorf("empty port: want N/tcp, N/udp, N-M/tcp, icmp or all")
	}
	nums, proto, found := strings.Cut(s, "/")
	if !found {
		proto = ProtoTCP
	}
	switch proto {
	case ProtoTCP, ProtoUDP, ProtoSCTP:
	default:
		return Range{}, fmt.Errorf("port %q: the protocol must be tcp, udp or sctp (or write icmp or all alone)", s)
	}
	first, last, isRange := strings.Cut(nums, "-")
	a, okA := portNumber(first)
	b := a
	okB := okA
	if isRange {
		b, okB = portNumber(last)
	}
	if !okA || !okB {
		return Range{}, fmt.Errorf("port %q: want a number from 1 to 65535 or a range N-M, like 5432/tcp or 8000-8100/tcp", s)
	}
	if b < a {
		return Range{}, fmt.Errorf("port range %q is empty: its first port is above its last", s)
	}
	return Range{Proto: proto, First: a, Last: b}, nil
}

// portNumber parses 1..65535 without allocating.
func portNumber(s string) (uint16, bool) {
	if s == "" || len(s) > 5 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

// Single returns the range that holds p alone.
func Single(p Port) Range {
	if p.Proto == ProtoICMP {
		return Range{Proto: ProtoICMP}
	}
	return Range{Proto: p.Proto, First: p.Number, Last: p.Number}
}

func (r Range) String() string {
	switch {
	case r.Proto == ProtoICMP || r.Proto == ProtoAll:
		return r.Proto
	case r.First == r.Last:
		return strconv.Itoa(int(r.First)) + "/" + r.Proto
	}
	return strconv.Itoa(int(r.First)) + "-" + strconv.Itoa(int(r.Last)) + "/" + r.Proto
}

// Contains reports whether p is in the range.
func (r Range) Contains(p Port) bool {
	if p.Proto == r.Proto {
		return r.Proto == ProtoICMP || r.First <= p.Number && p.Number <= r.Last
	}
	return r.Proto == ProtoAll
}

// Covers reports whether every port of o is in r.
func (r Range) Covers(o Range) bool {
	switch {
	case r.Proto == ProtoAll:
		return true
	case o.Proto == ProtoAll:
		return false
	case r.Proto == ProtoICMP || o.Proto == ProtoICMP:
		return r.Proto == o.Proto
	}
	return r.Proto == o.Proto && r.First <= o.First && o.Last <= r.Last
}

// Overlaps reports whether r and o share a port.
func (r Range) Overlaps(o Range) bool {
	switch {
	case r.Proto == ProtoAll || o.Proto == ProtoAll:
		return true
	case r.Proto != o.Proto:
		return false
	case r.Proto == ProtoICMP:
		return true
	}
	return r.First <= o.Last && o.First <= r.Last
}

// protoRank orders protocols as people list them: tcp, udp, sctp, icmp.
func protoRank(p string) int {
	switch p {
	case ProtoTCP:
		return 0
	case ProtoUDP:
		return 1
	case ProtoSCTP:
		return 2
	case ProtoICMP:
		return 3
	}
	return 4
}

// Compare orders ranges: all first, then tcp, udp, sctp, icmp, then by
// first port.
func (r Range) Compare(o Range) int {
	ra, oa := r.Proto == ProtoAll, o.Proto == ProtoAll
	switch {
	case ra && oa:
		return 0
	case ra:
		return -1
	case oa:
		return 1
	}
	if c := protoRank(r.Proto) - protoRank(o.Proto); c != 0 {
		return c
	}
	if c := strings.Compare(r.Proto, o.Proto); c != 0 {
		return c
	}
	if c := int(r.First) - int(o.First); c != 0 {
		return c
	}
	return int(r.Last) - int(o.Last)
}

// List is a set of port ranges, sorted by Compare, none overlapping
// another. A nil list holds no port.
type List []Range

// AllPorts is the list that holds every port.
func AllPorts() List { return List{{Proto: ProtoAll}} }

// Contains reports whether p is in the list.
func (l List) Contains(p Port) bool {
	for _, r := range l {
		if r.Contains(p) {
			return true
		}
	}
	return false
}

// Covers reports whether every port of r is in one range of the list.
func (l List) Covers(r Range) bool {
	for _, x := range l {
		if x.Covers(r) {
			return true
		}
	}
	return false
}

// All reports whether the list holds every port.
func (l List) All() bool { return len(l) > 0 && l[0].Proto == ProtoAll }

// Union returns the ports in l or o, merging ranges that overlap or touch.
func (l List) Union(o List) List {
	if l.All() || o.All() {
		return AllPorts()
	}
	if len(o) == 0 {
		return l
	}
	all := make(List, 0, len(l)+len(o))
	all = append(all, l...)
	all = append(all, o...)
	return Normalize(all)
}

// Normalize sorts ranges and merges those that overlap or touch.
func Normalize(l List) List {
	slices.SortFunc(l, Range.Compare)
	out := l[:0]
	for _, r := range l {
		if r.Proto == ProtoAll {
			return AllPorts()
		}
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.Proto == r.Proto && (r.Proto == ProtoICMP || int(r.First) <= int(last.Last)+1) {
				if r.Last > last.Last {
					last.Last = r.Last
				}
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// Strings renders the list as ["80/tcp", "8000-8100/tcp"].
func (l List) Strings() []string {
	out := make([]string, len(l))
	for i, r := range l {
		out[i] = r.String()
	}
	return out
}

func (l List) String() string {
	if len(l) == 0 {
		return "no port"
	}
	return strings.Join(l.Strings(), ", ")
}
