package reach

import (
	"slices"
	"strconv"
	"strings"
)

// Reached is one container an attacker reaches from the source.
type Reached struct {
	Name string   `json:"name"`
	Hops int      `json:"hops"`
	Path []string `json:"path"` // source first, Name last
	// Ports are the ports of the first hop's edge (source -> path[1]).
	Ports []string `json:"ports"`
	// Data is the kind of data service Name runs, or "".
	Data string `json:"data_service,omitempty"`
}

// Radius is the blast radius of one container: everything an attacker who
// controls it reaches, directly (hop 1) and by pivoting through every
// container reached (hop 2 and on).
type Radius struct {
	Source    string    `json:"source"`
	Reachable []Reached `json:"reachable"`
	// Host and Internet tell whether the source reaches the host's own
	// services and the internet directly.
	Host     bool `json:"host"`
	Internet bool `json:"internet"`
}

// Direct counts the containers reached in one hop.
func (r *Radius) Direct() int {
	n := 0
	for _, x := range r.Reachable {
		if x.Hops == 1 {
			n++
		}
	}
	return n
}

// DataServices returns the data services reached.
func (r *Radius) DataServices() []Reached {
	var out []Reached
	for _, x := range r.Reachable {
		if x.Data != "" {
			out = append(out, x)
		}
	}
	return out
}

// BlastRadius computes the blast radius of the named container, up to
// maxHops (0: no limit). Pivoting assumes that an attacker who can open a
// connection to a container can take it over.
func (a *Analysis) BlastRadius(name string, maxHops int) (*Radius, error) {
	i, ok := a.byName[name]
	if !ok {
		return nil, a.CheckPeer(name)
	}
	if a.narrow != nil {
		return a.narrowedRadius(i, maxHops, newEdgeSet(len(a.cs))), nil
	}
	b := newSearch(a)
	b.run(a.owner[i])
	r := &Radius{Source: name, Reachable: []Reached{}, Host: b.host, Internet: b.inet}
	for _, t32 := range b.queue {
		t := int(t32)
		hops := int(b.hop[t])
		if t == i {
			continue
		}
		if maxHops > 0 && hops > maxHops {
			break
		}
		path := []string{a.cs[t].Name}
		for p := b.parent[t]; p >= 0; p = b.parent[p] {
			path = append(path, a.cs[p].Name)
		}
		path = append(path, name)
		slices.Reverse(path)
		first := a.byName[path[1]]
		r.Reachable = append(r.Reachable, Reached{Name: a.cs[t].Name, Hops: hops, Path: path,
			Ports: a.portsBetween(i, first).Strings(), Data: a.data[t]})
	}
	slices.SortFunc(r.Reachable, func(x, y Reached) int {
		if x.Hops != y.Hops {
			return x.Hops - y.Hops
		}
		return strings.Compare(x.Name, y.Name)
	})
	return r, nil
}

// Summary is the size of one container's blast radius.
type Summary struct {
	Source string `json:"source"`
	// Reached counts the containers reached at any hop; Direct those
	// reached in one hop; Data the data services among them; MaxHops the
	// longest shortest path.
	Reached  int  `json:"reached"`
	Direct   int  `json:"direct"`
	Data     int  `json:"data_services"`
	MaxHops  int  `json:"max_hops"`
	Host     bool `json:"host"`
	Internet bool `json:"internet"`
}

// blastRadiiBFS is BlastRadii by one container-level search per position
// (containers in the same position have the same neighbours): simple, and
// the reference the hub search is tested against.
func (a *Analysis) blastRadiiBFS() []Summary {
	b := newSearch(a)
	return a.radiiByPosition(func(o int) (Summary, func(int) int) {
		b.run(o)
		sum := Summary{Reached: len(b.queue)}
		for _, t := range b.queue {
			if b.hop[t] == 1 {
				sum.Direct++
			}
			if a.data[t] != "" {
				sum.Data++
			}
			sum.MaxHops = max(sum.MaxHops, int(b.hop[t]))
		}
		return sum, func(i int) int { return max(int(b.hop[i]), 0) }
	})
}

// position identifies what an owner's namespace is connected to: owners
// in the same position have the same neighbours. An owner whose namespace
// others share is a position of its own (its followers are neighbours of
// no one else).
func (a *Analysis) position(o int) string {
	if len(a.followers[o]) > 1 {
		return "ns:" + strconv.Itoa(o)
	}
	if a.hostNet[o] {
		return "host"
	}
	var sb strings.Builder
	if a.routed[o] {
		sb.WriteByte('r')
	}
	if a.routed6[o] {
		sb.WriteByte('6')
	}
	for _, ni := range a.nets[o] {
		sb.WriteByte(',')
		sb.WriteString(strconv.Itoa(ni))
	}
	return sb.String()
}

// search is a breadth-first search over the containers, reused from one
// source to the next. A container's neighbours are its namespace, the
// members of its networks with ICC on, the publishers (when it has a route
// to the host; over IPv6 only, those listening on IPv6), the host's
// namespace (through a gateway) and everything (from the host's namespace). Each network, the publishers and the host
// are expanded once per search, so one search costs containers plus
// endpoints, whatever the number of edges.
type search struct {
	a           *Analysis
	hop, parent []int32 // hop -1: not reached; parent -1: the source
	queue       []int32
	netDone     []bool
	netsTouched []int
	pubDone     bool
	pub6Done    bool
	allDone     bool
	hostDone    bool
	host, inet  bool
}

func newSearch(a *Analysis) *search {
	b := &search{a: a, hop: make([]int32, len(a.cs)), parent: make([]int32, len(a.cs)), netDone: make([]bool, len(a.attached))}
	for i := range b.hop {
		b.hop[i] = -1
	}
	return b
}

// run searches from the namespace owner o, after clearing the last search.
func (b *search) run(o int) {
	a := b.a
	for _, t := range b.queue {
		b.hop[t] = -1
	}
	for _, ni := range b.netsTouched {
		b.netDone[ni] = false
	}
	b.queue, b.netsTouched = b.queue[:0], b.netsTouched[:0]
	b.pubDone, b.pub6Done, b.allDone, b.hostDone = false, false, false, false
	b.host = a.hostNet[o] || len(a.gwVia[o]) > 0
	b.inet = a.hostNet[o] || a.routed[o] || a.routed6[o]
	b.expand(o, 1, -1, len(a.followers[o]) > 1)
	for head := 0; head < len(b.queue); head++ {
		x := int(b.queue[head])
		if a.owner[x] == x { // followers add nothing their owner does not
			b.expand(x, b.hop[x]+1, int32(x), true)
		}
	}
}

func (b *search) visit(t int, hop, parent int32) {
	if b.hop[t] >= 0 {
		return
	}
	b.hop[t], b.parent[t] = hop, parent
	b.queue = append(b.queue, int32(t))
}

// expand visits the neighbours of owner x at the given hop; its own
// namespace too when ns is set. The source's namespace is visited only
// when others share it, so that containers in the same position can
// share the search.
func (b *search) expand(x int, hop, parent int32, ns bool) {
	a := b.a
	if ns {
		for _, f := range a.followers[x] {
			b.visit(f, hop, parent)
		}
	}
	if a.hostNet[x] {
		if !b.allDone {
			b.allDone = true
			for _, t := range a.networked {
				b.visit(t, hop, parent)
			}
		}
		return
	}
	for _, ni := range a.nets[x] {
		if !a.netICC[ni] || b.netDone[ni] {
			continue
		}
		b.netDone[ni] = true
		b.netsTouched = append(b.netsTouched, ni)
		for _, t := range a.attached[ni] {
			b.visit(t, hop, parent)
		}
	}
	if a.routed[x] && !b.pubDone {
		b.pubDone = true
		for _, p := range a.publishers {
			for _, t := range a.followers[p] {
				b.visit(t, hop, parent)
			}
		}
	}
	if a.routed6[x] && !b.pub6Done {
		b.pub6Done = true
		for _, p := range a.publishers6 {
			for _, t := range a.followers[p] {
				b.visit(t, hop, parent)
			}
		}
	}
	if len(a.gwVia[x]) > 0 && !b.hostDone {
		b.hostDone = true
		for _, t := range a.hostMembers {
			b.visit(t, hop, parent)
		}
	}
}

// portsBetween returns the ports container i reaches on container t, the
// same as the Ports of Edge(i, t) without building every edge of i.
func (a *Analysis) portsBetween(i, t int) PortSet {
	o, d := a.owner[i], a.owner[t]
	switch {
	case o == d, a.hostNet[o] && !a.cs[d].NoNetwork(), a.hostNet[d] && len(a.gwVia[o]) > 0:
		return AllPorts()
	case a.cs[o].NoNetwork(), a.cs[d].NoNetwork(), a.hostNet[o]:
		return PortSet{}
	}
	for _, ni := range a.nets[o] {
		if a.netICC[ni] {
			if _, found := slices.BinarySearch(a.nets[d], ni); found {
				return AllPorts()
			}
		}
	}
	if a.routed[o] {
		return a.pubPorts[d]
	}
	if a.routed6[o] {
		return a.pub6Ports[d]
	}
	return PortSet{}
}
