package reach

import (
	"slices"
	"strings"

	"github.com/zonewarden/zonewarden/internal/l4"
)

// PortSet is a set of destination ports: every port, or single ports and
// ranges. The zero value is the empty set.
type PortSet struct {
	all    bool
	ports  []l4.Port  // sorted, unique; nil when all
	ranges []l4.Range // each wider than one port; nil when all
}

// AllPorts is the set of every port of every protocol.
func AllPorts() PortSet { return PortSet{all: true} }

// Ports returns the set of the given ports.
func Ports(ps ...l4.Port) PortSet {
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
func (s PortSet) List() []l4.Port { return s.ports }

// Contains reports whether p is in the set.
func (s PortSet) Contains(p l4.Port) bool {
	if s.all {
		return true
	}
	if _, found := slices.BinarySearchFunc(s.ports, p, l4.Port.Compare); found {
		return true
	}
	return slices.ContainsFunc(s.ranges, func(r l4.Range) bool { return r.Contains(p) })
}

// AddRange returns the set with r added.
func (s PortSet) AddRange(r l4.Range) PortSet {
	if s.all {
		return s
	}
	if r.Proto != "icmp" && r.First == r.Last {
		return s.Add(l4.Port{Proto: r.Proto, Number: r.First})
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
				out = out.AddRange(l4.Range{Proto: a.Proto, First: lo, Last: hi})
			}
		}
	}
	return out
}

// Add returns the set with p added.
func (s PortSet) Add(p l4.Port) PortSet {
	if s.all {
		return s
	}
	i, found := slices.BinarySearchFunc(s.ports, p, l4.Port.Compare)
	if found {
		return s
	}
	ports := make([]l4.Port, 0, len(s.ports)+1)
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
