package reach

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Port is one destination port and protocol. ICMP has no number.
type Port struct {
	Proto  string // tcp, udp, sctp or icmp
	Number uint16 // 0 for icmp
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

// Range is a range of ports of one protocol, as a policy allows them:
// "8000-8100/tcp", or every ICMP message ("icmp").
type Range struct {
	Proto       string
	First, Last uint16 // 0 for icmp
}

func (r Range) contains(p Port) bool {
	return p.Proto == r.Proto && (r.Proto == "icmp" || r.First <= p.Number && p.Number <= r.Last)
}

func (r Range) String() string {
	if r.Proto == "icmp" {
		return "icmp"
	}
	if r.First == r.Last {
		return Port{Proto: r.Proto, Number: r.First}.String()
	}
	return strconv.Itoa(int(r.First)) + "-" + strconv.Itoa(int(r.Last)) + "/" + r.Proto
}

// PortSet is a set of destination ports: every port, or single ports and
// ranges. The zero value is the empty set.
type PortSet struct {
	all    bool
	ports  []Port  // sorted, unique; nil when all
	ranges []Range // each wider than one port; nil when all
}

// AllPorts is the set of every port of every protocol.
func AllPorts() PortSet { return PortSet{all: true} }

// Ports returns the set of the given ports.
func Ports(ps ...Port) PortSet {
	var s PortSet
	for _, p := range ps {
		s = s.Add(p)
	}
	return s
}

// All reports whether the set holds every port.
func (s PortSet) All() bool { return s.all }

// Empty reports whether the set holds no port.
func (s PortSet) Empty() bool { return !s.all && len(s.ports) == 0 && len(s.ranges) == 0 }

// List returns the single ports of a set that is not All.
func (s PortSet) List() []Port { return s.ports }

// Contains reports whether p is in the set.
func (s PortSet) Contains(p Port) bool {
	if s.all {
		return true
	}
	if _, found := slices.BinarySearchFunc(s.ports, p, comparePort); found {
		return true
	}
	return slices.ContainsFunc(s.ranges, func(r Range) bool { return r.contains(p) })
}

// AddRange returns the set with r added.
func (s PortSet) AddRange(r Range) PortSet {
	if s.all {
		return s
	}
	if r.Proto != "icmp" && r.First == r.Last {
		return s.Add(Port{Proto: r.Proto, Number: r.First})
	}
	if slices.Contains(s.ranges, r) {
		return s
	}
	return PortSet{ports: s.ports, ranges: append(slices.Clip(s.ranges), r)}
}

// Intersect returns the ports in both s and o: an edge narrowed to what a
// policy allows.
func (s PortSet) Intersect(o PortSet) PortSet {
	switch {
	case s.all:
		return o
	case o.all:
		return s
	}
	var out PortSet
	for _, p := range s.ports {
		if o.Contains(p) {
			out = out.Add(p)
		}
	}
	for _, p := range o.ports {
		if s.Contains(p) {
			out = out.Add(p)
		}
	}
	for _, a := range s.ranges {
		for _, b := range o.ranges {
			if a.Proto != b.Proto {
				continue
			}
			if a.Proto == "icmp" {
				out = out.AddRange(a)
				continue
			}
			if lo, hi := max(a.First, b.First), min(a.Last, b.Last); lo <= hi {
				out = out.AddRange(Range{Proto: a.Proto, First: lo, Last: hi})
			}
		}
	}
	return out
}

// Add returns the set with p added.
func (s PortSet) Add(p Port) PortSet {
	if s.all {
		return s
	}
	i, found := slices.BinarySearchFunc(s.ports, p, comparePort)
	if found {
		return s
	}
	ports := make([]Port, 0, len(s.ports)+1)
	ports = append(ports, s.ports[:i]...)
	ports = append(ports, p)
	ports = append(ports, s.ports[i:]...)
	return PortSet{ports: ports}
}

// Union returns the ports in s or o.
func (s PortSet) Union(o PortSet) PortSet {
	if s.all || o.all {
		return AllPorts()
	}
	for _, p := range o.ports {
		s = s.Add(p)
	}
	for _, r := range o.ranges {
		s = s.AddRange(r)
	}
	return s
}

// Strings renders the set as ["all"] or ["80/tcp", "5432/tcp"].
func (s PortSet) Strings() []string {
	if s.all {
		return []string{"all"}
	}
	out := make([]string, 0, len(s.ports)+len(s.ranges))
	for _, p := range s.ports {
		out = append(out, p.String())
	}
	for _, r := range s.ranges {
		out = append(out, r.String())
	}
	return out
}

// Describe renders the set for people: "all ports" or "80/tcp, 443/tcp".
func (s PortSet) Describe() string {
	if s.all {
		return "all ports"
	}
	if s.Empty() {
		return "no port"
	}
	return strings.Join(s.Strings(), ", ")
}

func comparePort(a, b Port) int {
	if c := strings.Compare(a.Proto, b.Proto); c != 0 {
		return c
	}
	return int(a.Number) - int(b.Number)
}
