package reach

import (
	"slices"
	"strings"
)

// With a policy enforced, zones no longer behave as sets whose members all
// reach each other: the blast radius follows the narrowed edges one by
// one, a breadth-first search per source over the edges each container
// opens. Enforced hosts are sparse (their edges are the declared flows),
// so this stays cheap where it is used.

// narrowedRadius is BlastRadius over the narrowed edges.
func (a *Analysis) narrowedRadius(i, maxHops int, s *edgeSet) *Radius {
	r := &Radius{Source: a.cs[i].Name, Reachable: []Reached{}}
	hop := map[int]int{i: 0}
	parent := map[int]int{}
	firstPorts := map[int]PortSet{}
	queue := []int{i}
	for head := 0; head < len(queue); head++ {
		x := queue[head]
		if maxHops > 0 && hop[x] >= maxHops {
			continue
		}
		a.from(a.cs[x].Name, s, func(e Edge) bool {
			switch e.To {
			case Host:
				r.Host = r.Host || x == i
				return true
			case Internet:
				r.Internet = r.Internet || x == i
				return true
			}
			t := a.byName[e.To]
			if _, seen := hop[t]; seen {
				return true
			}
			hop[t], parent[t] = hop[x]+1, x
			if x == i {
				firstPorts[t] = e.Ports
			}
			queue = append(queue, t)
			return true
		})
	}
	for _, t := range queue[1:] {
		path := []string{a.cs[t].Name}
		first := t
		for p := parent[t]; p != i; p = parent[p] {
			path = append(path, a.cs[p].Name)
			first = p
		}
		path = append(path, r.Source)
		slices.Reverse(path)
		r.Reachable = append(r.Reachable, Reached{Name: a.cs[t].Name, Hops: hop[t], Path: path,
			Ports: firstPorts[first].Strings(), Data: a.data[t]})
	}
	slices.SortFunc(r.Reachable, func(x, y Reached) int {
		if x.Hops != y.Hops {
			return x.Hops - y.Hops
		}
		return strings.Compare(x.Name, y.Name)
	})
	return r
}

// narrowedRadii is BlastRadii over the narrowed edges.
func (a *Analysis) narrowedRadii() []Summary {
	s := newEdgeSet(len(a.cs))
	out := make([]Summary, 0, len(a.cs))
	for i := range a.cs {
		r := a.narrowedRadius(i, 0, s)
		sum := Summary{Source: r.Source, Reached: len(r.Reachable), Direct: r.Direct(), Data: len(r.DataServices()), Host: r.Host, Internet: r.Internet}
		for _, x := range r.Reachable {
			sum.MaxHops = max(sum.MaxHops, x.Hops)
		}
		out = append(out, sum)
	}
	sortSummaries(out)
	return out
}
