package reach

import (
	"slices"
	"strconv"
	"strings"
)

// BlastRadii summarises the blast radius of every container, the largest
// first (then by name). Use BlastRadius for the paths.
//
// The search runs over hubs, not containers. A hub is a set of containers
// that become reachable together: a network with ICC on, the publishers
// (every container with a route to the host reaches them), the host's
// namespace (reached through any gateway), everything (reached from the
// host's namespace) and each shared namespace. Containers reach the hubs
// they access; reaching a hub reaches its members, which access further
// hubs. Three hubs are shared by almost every position, so their distances
// are computed once (per combination of offsets) as a base; the search of
// one position then only explores the hubs it reaches sooner than the base
// does, and corrects the base's counts for their members. The cost is
// close to linear in containers plus endpoints, instead of one full search
// per position.
func (a *Analysis) BlastRadii() []Summary {
	if a.narrow != nil {
		return a.narrowedRadii()
	}
	s := newHubSearch(a, a.hubs())
	return a.radiiByPosition(func(o int) (Summary, func(int) int) {
		s.run(o)
		return Summary{Reached: s.reached, Direct: s.hist[1], Data: s.data, MaxHops: s.maxHop()}, s.hop
	})
}

// radiiByPosition runs search once per position — containers in the same
// position (the same networks and routes) have the same neighbours — and
// summarises each of its members, the largest radius first (then by
// name). search returns the position's counts and each container's hop in
// that search (0: not reached).
func (a *Analysis) radiiByPosition(search func(owner int) (Summary, func(int) int)) []Summary {
	groups := map[string][]int{}
	var keys []string
	for i := range a.cs {
		k := a.position(a.owner[i])
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], i)
	}
	out := make([]Summary, 0, len(a.cs))
	for _, k := range keys {
		members := groups[k]
		o := a.owner[members[0]]
		base, hopOf := search(o)
		base.Host = a.hostNet[o] || len(a.gwVia[o]) > 0
		base.Internet = a.hostNet[o] || a.routed[o] || a.routed6[o]
		for _, i := range members {
			sum := base
			sum.Source = a.cs[i].Name
			if hop := hopOf(i); hop > 0 { // a container is not in its own blast radius
				sum.Reached--
				if hop == 1 {
					sum.Direct--
				}
				if a.data[i] != "" {
					sum.Data--
				}
				if sum.Reached == 0 {
					sum.MaxHops = 0
				}
			}
			out = append(out, sum)
		}
	}
	sortSummaries(out)
	return out
}

// sortSummaries puts the largest blast radius first, then by name.
func sortSummaries(out []Summary) {
	slices.SortFunc(out, func(x, y Summary) int {
		if x.Reached != y.Reached {
			return y.Reached - x.Reached
		}
		return strings.Compare(x.Source, y.Source)
	})
}

// The shared hubs, by index after the networks.
const (
	hubPub  = iota // the publishers
	hubHost        // the containers in the host's namespace
	hubAll         // every container with a network
	nShared
)

// hubGraph is the graph of hubs of one analysis.
type hubGraph struct {
	members  [][]int32 // hub -> containers
	memberOf [][]int32 // container -> hubs
	next     [][]int32 // hub -> hubs its members access
	access   [][]int32 // owner -> hubs it accesses
	shared   int32     // index of the first shared hub
	nsHub    []int32   // owner -> its namespace hub, or -1
	pub6     int32     // the publishers listening on IPv6, or -1
}

func (a *Analysis) hubs() *hubGraph {
	nNets := len(a.attached)
	h := &hubGraph{shared: int32(nNets), nsHub: make([]int32, len(a.cs))}
	h.members = make([][]int32, nNets+nShared)
	for ni, list := range a.attached {
		if a.netICC[ni] {
			h.members[ni] = toInt32(list)
		}
	}
	for _, p := range a.publishers {
		h.members[h.shared+hubPub] = append(h.members[h.shared+hubPub], toInt32(a.followers[p])...)
	}
	h.members[h.shared+hubHost] = toInt32(a.hostMembers)
	h.members[h.shared+hubAll] = toInt32(a.networked)
	for o := range a.cs {
		h.nsHub[o] = -1
		if a.owner[o] == o && len(a.followers[o]) > 1 {
			h.nsHub[o] = int32(len(h.members))
			h.members = append(h.members, toInt32(a.followers[o]))
		}
	}
	// Reached over IPv6 only, by internal-only containers with IPv6 when
	// Docker does not filter it.
	h.pub6 = -1
	if len(a.publishers6) > 0 {
		h.pub6 = int32(len(h.members))
		var list []int32
		for _, p := range a.publishers6 {
			list = append(list, toInt32(a.followers[p])...)
		}
		h.members = append(h.members, list)
	}
	h.access = make([][]int32, len(a.cs))
	for o := range a.cs {
		if a.owner[o] != o {
			continue
		}
		var acc []int32
		if a.hostNet[o] {
			acc = append(acc, h.shared+hubAll)
		} else {
			for _, ni := range a.nets[o] {
				if a.netICC[ni] {
					acc = append(acc, int32(ni))
				}
			}
			if a.routed[o] {
				acc = append(acc, h.shared+hubPub)
			}
			if a.routed6[o] && h.pub6 >= 0 {
				acc = append(acc, h.pub6)
			}
			if len(a.gwVia[o]) > 0 {
				acc = append(acc, h.shared+hubHost)
			}
		}
		if h.nsHub[o] >= 0 {
			acc = append(acc, h.nsHub[o])
		}
		h.access[o] = acc
	}
	h.memberOf = make([][]int32, len(a.cs))
	for hub, list := range h.members {
		for _, t := range list {
			h.memberOf[t] = append(h.memberOf[t], int32(hub))
		}
	}
	// next[hub]: the hubs the members of hub access, without repeats.
	h.next = make([][]int32, len(h.members))
	seen := make([]int32, len(h.members))
	for i := range seen {
		seen[i] = -1
	}
	for hub, list := range h.members {
		for _, t := range list {
			for _, x := range h.access[a.owner[t]] {
				if seen[x] != int32(hub) {
					seen[x] = int32(hub)
					h.next[hub] = append(h.next[hub], x)
				}
			}
		}
	}
	return h
}

func toInt32(xs []int) []int32 {
	out := make([]int32, len(xs))
	for i, x := range xs {
		out[i] = int32(x)
	}
	return out
}

const unreached = int32(1 << 30)

// base holds the search from the shared hubs at given offsets: hub
// distances, and what they mean for the containers.
type base struct {
	dist    []int32 // hub -> distance (unreached if none)
	hop     []int32 // container -> hop (unreached if none); built on demand
	hist    []int   // hop -> containers
	reached int
	data    int
}

// hubSearch runs the per-position searches, reusing its buffers.
type hubSearch struct {
	a     *Analysis
	h     *hubGraph
	bases map[string]*base
	cur   *base // the base of the last run

	local   []int32 // hub -> distance found by this position's search
	touched []int32 // hubs with a local distance
	queue   []int32
	mark    []bool  // container visited while correcting
	newHop  []int32 // container -> corrected hop
	fixed   []int32 // containers with a corrected hop

	hist    []int
	reached int
	data    int
}

func newHubSearch(a *Analysis, h *hubGraph) *hubSearch {
	s := &hubSearch{a: a, h: h, bases: map[string]*base{},
		local: make([]int32, len(h.members)), mark: make([]bool, len(a.cs)), newHop: make([]int32, len(a.cs))}
	for i := range s.local {
		s.local[i] = unreached
	}
	return s
}

// baseFor returns the base for shared-hub offsets off (unreached: the hub
// is not a source), computing its hub distances on first use.
func (s *hubSearch) baseFor(off [nShared]int32) *base {
	var kb strings.Builder
	for _, o := range off {
		kb.WriteString(strconv.Itoa(int(o)))
		kb.WriteByte(',')
	}
	key := kb.String()
	if b, ok := s.bases[key]; ok {
		return b
	}
	h := s.h
	b := &base{dist: make([]int32, len(h.members))}
	for i := range b.dist {
		b.dist[i] = unreached
	}
	// A BFS with sources at different offsets: process offsets in order.
	type src struct{ hub, d int32 }
	var srcs []src
	for k, o := range off {
		if o < unreached {
			srcs = append(srcs, src{h.shared + int32(k), o})
		}
	}
	slices.SortFunc(srcs, func(x, y src) int { return int(x.d - y.d) })
	var queue []int32
	si := 0
	for head := 0; head < len(queue) || si < len(srcs); {
		// Enter the sources whose offset is due before the next hub.
		if si < len(srcs) && (head == len(queue) || srcs[si].d <= b.dist[queue[head]]) {
			if srcs[si].d < b.dist[srcs[si].hub] {
				b.dist[srcs[si].hub] = srcs[si].d
				queue = append(queue, srcs[si].hub)
			}
			si++
			continue
		}
		x := queue[head]
		head++
		for _, y := range h.next[x] {
			if b.dist[x]+1 < b.dist[y] {
				b.dist[y] = b.dist[x] + 1
				queue = append(queue, y)
			}
		}
	}
	s.bases[key] = b
	return b
}

// withHops fills the per-container hops and counts of a base.
func (s *hubSearch) withHops(b *base) {
	if b.hop != nil {
		return
	}
	b.hop = make([]int32, len(s.a.cs))
	for t := range b.hop {
		best := unreached
		for _, hub := range s.h.memberOf[t] {
			best = min(best, b.dist[hub])
		}
		if best < unreached {
			best++
			b.reached++
			if s.a.data[t] != "" {
				b.data++
			}
			for int(best) >= len(b.hist) {
				b.hist = append(b.hist, 0)
			}
			b.hist[best]++
		}
		b.hop[t] = best
	}
}

// run searches from owner o: the hubs it reaches sooner than the base,
// then the counts corrected for their members.
func (s *hubSearch) run(o int) {
	h := s.h
	for _, hub := range s.touched {
		s.local[hub] = unreached
	}
	for _, t := range s.fixed {
		s.mark[t] = false
	}
	s.touched, s.fixed, s.queue = s.touched[:0], s.fixed[:0], s.queue[:0]

	var off [nShared]int32
	for k := range off {
		off[k] = unreached
	}
	for _, x := range h.access[o] {
		if x >= h.shared && x < h.shared+nShared {
			off[x-h.shared] = 0
		}
	}
	b := s.baseFor(off)
	push := func(x, d int32) {
		if d >= s.local[x] || d >= b.dist[x] {
			return // the base reaches it as soon: nothing beyond it improves
		}
		if x >= h.shared && x < h.shared+nShared {
			// A shared hub reached: it becomes a source of the base.
			off[x-h.shared] = d
			b = s.baseFor(off)
		}
		if s.local[x] == unreached {
			s.touched = append(s.touched, x)
		}
		s.local[x] = d
		s.queue = append(s.queue, x)
	}
	for _, x := range h.access[o] {
		push(x, 0)
	}
	for head := 0; head < len(s.queue); head++ {
		x := s.queue[head]
		d := s.local[x]
		if d >= b.dist[x] {
			continue // overtaken by a base found later
		}
		for _, y := range h.next[x] {
			push(y, d+1)
		}
	}
	s.withHops(b)
	s.cur = b
	s.hist = append(s.hist[:0], b.hist...)
	s.reached, s.data = b.reached, b.data
	for _, hub := range s.touched {
		if s.local[hub] >= b.dist[hub] {
			continue
		}
		for _, t := range h.members[hub] {
			if s.mark[t] {
				continue
			}
			s.mark[t] = true
			s.fixed = append(s.fixed, t)
			best := unreached
			for _, m := range h.memberOf[t] {
				best = min(best, b.dist[m], s.local[m])
			}
			best++
			s.newHop[t] = best
			old := b.hop[t]
			if best >= old {
				s.newHop[t] = old
				continue
			}
			if old < unreached {
				s.hist[old]--
			} else {
				s.reached++
				if s.a.data[t] != "" {
					s.data++
				}
			}
			for int(best) >= len(s.hist) {
				s.hist = append(s.hist, 0)
			}
			s.hist[best]++
		}
	}
	for len(s.hist) < 2 {
		s.hist = append(s.hist, 0)
	}
}

// hop returns container t's hop in the last run, 0 if not reached.
func (s *hubSearch) hop(t int) int {
	v := s.cur.hop[t]
	if s.mark[t] {
		v = s.newHop[t]
	}
	if v >= unreached {
		return 0
	}
	return int(v)
}

func (s *hubSearch) maxHop() int {
	for i := len(s.hist) - 1; i > 0; i-- {
		if s.hist[i] > 0 {
			return i
		}
	}
	return 0
}
