package reach

import (
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/zonewarden/zonewarden/internal/l4"
)

// Filter selects edges: by source, destination and port. Zero fields
// select everything.
type Filter struct {
	From, To string
	Port     *l4.Port
}

// Select yields the edges that pass f, grouped by source as Edges does.
// With a port, each edge is narrowed to that port.
func (a *Analysis) Select(f Filter) iter.Seq[Edge] {
	return func(yield func(Edge) bool) {
		keep := func(e Edge) bool {
			if f.To != "" && e.To != f.To {
				return true
			}
			if f.Port != nil {
				if !e.Ports.Contains(*f.Port) {
					return true
				}
				e.Ports = Ports(*f.Port)
			}
			return yield(e)
		}
		if f.From != "" {
			a.from(f.From, newEdgeSet(len(a.cs)), keep)
			return
		}
		a.Edges(keep)
	}
}

// Filtered returns the edges that pass f.
func (a *Analysis) Filtered(f Filter) []Edge {
	var out []Edge
	for e := range a.Select(f) {
		out = append(out, e)
	}
	return out
}

// WhyNot explains, for people, why from opens no connection to to.
func (a *Analysis) WhyNot(from, to string) string {
	i, fromIsContainer := a.byName[from]
	j, toIsContainer := a.byName[to]
	switch {
	case from == Internet:
		return "the internet opens no connection in; use outside for remote clients of published ports"
	case to == Outside:
		return "outside stands for remote clients, which accept no connection; use internet for egress"
	case from == to:
		return "a peer does not connect to itself here"
	}
	if fromIsContainer && a.cs[a.owner[i]].NoNetwork() {
		return from + " runs with --network none: it has no network"
	}
	if toIsContainer && a.cs[a.owner[j]].NoNetwork() {
		return to + " runs with --network none: nothing reaches it"
	}
	if !fromIsContainer || !toIsContainer {
		if fromIsContainer && (to == Internet || to == Host) {
			return fmt.Sprintf("%s is only on internal networks (%s): no route out of them", from, a.netList(a.owner[i]))
		}
		if toIsContainer && from == Outside {
			return to + " publishes no port on a host address reachable from other machines"
		}
		return "no path between them"
	}
	o, d := a.owner[i], a.owner[j]
	for _, ni := range a.nets[o] {
		for _, nj := range a.nets[d] {
			if ni == nj && !a.netICC[ni] {
				return fmt.Sprintf("they share network %s, but inter-container communication is off on it (enable_icc=false)", a.netNames[ni])
			}
		}
	}
	why := fmt.Sprintf("they share no network (%s: %s; %s: %s)", from, a.netList(o), to, a.netList(d))
	switch {
	case len(a.pubVia[d]) == 0:
		return why + ", and " + to + " publishes no port reachable from containers"
	case a.routed6[o] && len(a.pub6Via[d]) == 0:
		return why + ", and " + from + " is only on internal networks: over IPv6 it reaches the host's published ports, but " + to + " publishes none on IPv6"
	case !a.routed[o] && !a.routed6[o]:
		return why + ", and " + from + " is only on internal networks: it has no route to the host's published ports"
	}
	return why
}

func (a *Analysis) netList(o int) string {
	names := make([]string, 0, len(a.nets[o]))
	for _, ni := range a.nets[o] {
		if ni != a.v6net { // not a network of Docker's
			names = append(names, a.netNames[ni])
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// DirectData returns the data services the named container opens
// connections to directly (hop 1), as "name (kind)", sorted. Its cost is
// the container's degree, not a search.
func (a *Analysis) DirectData(name string) []string {
	i, ok := a.byName[name]
	if !ok {
		return nil
	}
	o := a.owner[i]
	seen := map[int]bool{}
	var out []string
	add := func(ts []int) {
		for _, t := range ts {
			if a.data[t] != "" && t != i && !seen[t] {
				seen[t] = true
				out = append(out, a.cs[t].Name+" ("+a.data[t]+")")
			}
		}
	}
	if len(a.followers[o]) > 1 {
		add(a.followers[o])
	}
	if a.hostNet[o] {
		add(a.networked)
	}
	for _, ni := range a.nets[o] {
		if a.netICC[ni] {
			add(a.attached[ni])
		}
	}
	if a.routed[o] {
		for _, p := range a.publishers {
			add(a.followers[p])
		}
	} else if a.routed6[o] {
		for _, p := range a.publishers6 {
			add(a.followers[p])
		}
	}
	if len(a.gwVia[o]) > 0 {
		add(a.hostMembers)
	}
	slices.Sort(out)
	return out
}
