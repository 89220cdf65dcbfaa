package graph

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/reach"
)

// DefaultFoldAbove is the number of containers above which zones are
// folded when Options.FoldAbove is 0.
const DefaultFoldAbove = 150

// Options tune the building of a graph. The zero value draws every
// container, folding zones when more than DefaultFoldAbove containers are
// drawn, and highlights nothing.
type Options struct {
	// Title names the drawing ("zonewarden: compose compose.yaml").
	Title string
	// Radius is a blast radius to highlight (reach.Analysis.BlastRadius),
	// or nil. Its source is drawn even when no edge mentions it.
	Radius *reach.Radius
	// FoldAbove folds the ordinary containers of each zone into one node
	// when more than FoldAbove containers are drawn. 0 means
	// DefaultFoldAbove; a negative value never folds.
	FoldAbove int
}

// Host draws the whole host: every container and network of snap, and
// every edge of a (the analysis of snap), collapsed as the package
// documentation says.
func Host(snap *inventory.Snapshot, a *reach.Analysis, opts Options) *Graph {
	b := newBuilder(snap, opts)
	names := a.Containers()
	b.fold(names)
	for _, n := range names {
		b.peer(n)
	}
	b.allZones = true
	a.Edges(func(e reach.Edge) bool {
		b.addEdge(e)
		return true
	})
	return b.finish()
}

// FromEdges draws the given edges (a filtered list from reach, say), with
// the containers at their ends placed in their zones as snap describes
// them. Only the zones, ports and pseudo-peers the edges touch are drawn.
func FromEdges(snap *inventory.Snapshot, edges []reach.Edge, opts Options) *Graph {
	b := newBuilder(snap, opts)
	seen := map[string]bool{}
	var names []string
	add := func(n string) {
		if !seen[n] && n != reach.Host && n != reach.Internet && n != reach.Outside {
			seen[n] = true
			names = append(names, n)
		}
	}
	for _, e := range edges {
		add(e.From)
		add(e.To)
	}
	if opts.Radius != nil {
		add(opts.Radius.Source)
	}
	slices.Sort(names)
	b.fold(names)
	for _, n := range names {
		b.peer(n)
	}
	for _, e := range edges {
		b.addEdge(e)
	}
	return b.finish()
}

// entity is what one or more nodes stand for: a container, a folded group
// of containers, a published port or a pseudo-peer.
type entity struct {
	id   int32  // index in builder.list
	key  string // "c:<name>", "f:<zone>", "p:<hostaddr>|<owner>", "x:<pseudo>"
	kind NodeKind
	name string
	peer string
	// group is the key of the container whose network namespace the
	// entity is (or belongs to): a container does not reach its own
	// namespace through a zone or a published port.
	group  string
	zones  []string // zone names, the primary first
	hostNS bool     // in the host's network namespace
	c      *inventory.Container
	ports  string                 // port: the container ports behind it
	folded []*inventory.Container // folded: the containers
	hops   int

	clusters []*cluster
	nodes    []int // indices into Graph.Nodes, primary first
	nodeZone []string
}

func (e *entity) in(c *cluster) bool { return slices.Contains(e.clusters, c) }

// nodeIn returns the node drawing e in zone, else the one in its primary
// zone (a routed one if it has one).
func (e *entity) nodeIn(zone string) int {
	if zone != "" {
		if i := slices.Index(e.nodeZone, zone); i >= 0 {
			return e.nodes[i]
		}
	}
	if len(e.zones) > 0 {
		if i := slices.Index(e.nodeZone, e.zones[0]); i >= 0 {
			return e.nodes[i]
		}
	}
	return e.nodes[0]
}

type cluster struct {
	key     string
	kind    ClusterKind
	name    string
	net     *inventory.Network
	members []*entity
	clique  bool
	index   int
}

func (c *cluster) has(e *entity) bool { return e != nil && e.in(c) }

// link is an edge between entities or clusters (unit keys), before it is
// drawn. reason is the zone of a network or gateway edge.
type link struct {
	from, to      string
	kind          Kind
	reason, label string
}

// rawTarget is the target side of links as the edges are read, keyed by
// small numbers; its sources are a bit set over entity ids. A host's
// edges can number millions before they are deduplicated.
type rawTarget struct {
	to            int32 // entity id
	kind          uint8 // index in kinds
	reason, label int32 // interned strings
}

type builder struct {
	snap     *inventory.Snapshot
	ix       *inventory.Index
	opts     Options
	allZones bool

	ents   map[string]*entity
	list   []*entity
	byPeer map[string]*entity   // reach peer name -> entity
	ports  map[[2]int32]*entity // {reason, target} -> port entity
	vias   map[reach.Reason]parsedVia
	// lastFrom caches the source of the last edge: edges come grouped
	// by source.
	lastFrom     *entity
	lastFromName string
	strs         map[string]int32
	strList      []string
	clusters     map[string]*cluster
	raw          map[rawTarget]int // -> index in sources
	sources      [][]uint64        // bit sets of entity ids
	links        map[link]struct{}
	paths        map[[2]*entity]int
	folds        map[string]string // container name -> fold key
	foldedIn     map[string]bool   // containers counted in their fold
	nFolded      int
	groupLen     map[string]int // namespace owner name -> containers sharing it
}

func newBuilder(snap *inventory.Snapshot, opts Options) *builder {
	b := &builder{
		snap:     snap,
		ix:       inventory.NewIndex(snap),
		opts:     opts,
		ents:     map[string]*entity{},
		byPeer:   map[string]*entity{},
		ports:    map[[2]int32]*entity{},
		vias:     map[reach.Reason]parsedVia{},
		strs:     map[string]int32{},
		clusters: map[string]*cluster{},
		raw:      map[rawTarget]int{},
		links:    map[link]struct{}{},
		paths:    map[[2]*entity]int{},
		folds:    map[string]string{},
		foldedIn: map[string]bool{},
		groupLen: map[string]int{},
	}
	for i := range snap.Containers {
		b.groupLen[b.owner(&snap.Containers[i]).Name]++
	}
	return b
}

// owner follows --network container:X to the container whose namespace c
// uses (bounded, as reach does).
func (b *builder) owner(c *inventory.Container) *inventory.Container {
	for range 8 {
		name := c.SharedNamespaceWith()
		if name == "" {
			return c
		}
		next := b.ix.Container(name)
		if next == nil {
			return c
		}
		c = next
	}
	return c
}

// zonesOf returns the zones of c's namespace: its networks that reach
// models (not host or null), the routed ones first, each part by name.
func (b *builder) zonesOf(c *inventory.Container) []string {
	o := b.owner(c)
	if o.UsesHostNetwork() || o.NoNetwork() {
		return nil
	}
	var out []string
	for _, e := range o.Endpoints {
		n := b.ix.Network(e.Network)
		if n == nil || n.Driver == "host" || n.Driver == "null" || slices.Contains(out, n.Name) {
			continue
		}
		out = append(out, n.Name)
	}
	slices.SortFunc(out, func(x, y string) int {
		return cmp.Or(cmp.Compare(b2i(b.ix.Network(x).Internal), b2i(b.ix.Network(y).Internal)), strings.Compare(x, y))
	})
	return out
}

// fold decides which containers are folded: when more than FoldAbove are
// drawn, those of a zone that are no gateway, publish nothing, share no
// namespace and are not the highlighted source, if a zone has two or more.
func (b *builder) fold(names []string) {
	limit := b.opts.FoldAbove
	if limit == 0 {
		limit = DefaultFoldAbove
	}
	if limit < 0 || len(names) <= limit {
		return
	}
	count := map[string]int{}
	for _, n := range names {
		c := b.ix.Container(n)
		if c == nil || (b.opts.Radius != nil && b.opts.Radius.Source == n) || b.groupLen[b.owner(c).Name] > 1 ||
			c.UsesHostNetwork() || len(b.ix.PublishedPorts(c)) > 0 {
			continue
		}
		zones := b.zonesOf(c)
		if len(zones) > 1 {
			continue
		}
		key := "f:"
		if len(zones) == 1 {
			key += zones[0]
		}
		b.folds[n] = key
		count[key]++
	}
	for n, key := range b.folds {
		if count[key] < 2 {
			delete(b.folds, n)
		}
	}
	b.nFolded = len(b.folds)
}

// peer returns the entity of a reach peer name.
func (b *builder) peer(name string) *entity {
	if e, ok := b.byPeer[name]; ok {
		return e
	}
	e := b.newPeer(name)
	b.byPeer[name] = e
	return e
}

func (b *builder) newPeer(name string) *entity {
	switch name {
	case reach.Host, reach.Internet, reach.Outside:
		key := "x:" + name
		if e, ok := b.ents[key]; ok {
			return e
		}
		kind := map[string]NodeKind{reach.Host: NodeHost, reach.Internet: NodeInternet, reach.Outside: NodeOutside}[name]
		e := &entity{key: key, kind: kind, name: name, peer: name, group: key, hostNS: name == reach.Host, hops: -1}
		b.add(e)
		return e
	}
	if fk, ok := b.folds[name]; ok {
		if e, ok := b.ents[fk]; ok {
			if !b.foldedIn[name] {
				b.foldedIn[name] = true
				e.folded = append(e.folded, b.ix.Container(name))
			}
			return e
		}
		b.foldedIn[name] = true
		zone := strings.TrimPrefix(fk, "f:")
		e := &entity{key: fk, kind: NodeFolded, name: zone, group: fk, hops: -1,
			folded: []*inventory.Container{b.ix.Container(name)}}
		if zone != "" {
			e.zones = []string{zone}
		}
		b.add(e)
		return e
	}
	key := "c:" + name
	if e, ok := b.ents[key]; ok {
		return e
	}
	e := &entity{key: key, kind: NodeContainer, name: name, peer: name, group: key, hops: -1}
	if c := b.ix.Container(name); c != nil {
		e.c = c
		e.group = "c:" + b.owner(c).Name
		e.zones = b.zonesOf(c)
		e.hostNS = b.owner(c).UsesHostNetwork()
	}
	b.add(e)
	return e
}

// port returns the entity of a published host address whose connections
// go to the namespace of container to.
func (b *builder) port(addr, to string) *entity {
	owner := to
	var oc *inventory.Container
	if c := b.ix.Container(to); c != nil {
		oc = b.owner(c)
		owner = oc.Name
	}
	key := "p:" + addr + "|" + owner
	if e, ok := b.ents[key]; ok {
		return e
	}
	e := &entity{key: key, kind: NodePort, name: addr, group: "c:" + owner, hops: -1}
	if oc != nil {
		var ports []string
		for _, pb := range b.ix.PublishedPorts(oc) {
			if pb.HostAddress() == addr && !slices.Contains(ports, pb.ContainerPort.String()) {
				ports = append(ports, pb.ContainerPort.String())
			}
		}
		e.ports = strings.Join(ports, ", ")
	}
	b.add(e)
	return e
}

// add registers e and puts it in its clusters.
func (b *builder) add(e *entity) {
	e.id = int32(len(b.list))
	b.list = append(b.list, e)
	b.ents[e.key] = e
	switch {
	case e.kind == NodePort:
		b.join(e, "P", ClusterPublished, "")
	case e.hostNS:
		b.join(e, "H", ClusterHost, "")
	case e.kind == NodeContainer || e.kind == NodeFolded:
		if len(e.zones) == 0 {
			b.join(e, "I", ClusterIsolated, "")
		}
		for _, z := range e.zones {
			b.join(e, "Z:"+z, ClusterZone, z)
		}
	}
}

func (b *builder) cluster(key string, kind ClusterKind, name string) *cluster {
	c, ok := b.clusters[key]
	if !ok {
		c = &cluster{key: key, kind: kind, name: name}
		if kind == ClusterZone {
			c.net = b.ix.Network(name)
		}
		b.clusters[key] = c
	}
	return c
}

func (b *builder) join(e *entity, key string, kind ClusterKind, name string) {
	c := b.cluster(key, kind, name)
	c.members = append(c.members, e)
	e.clusters = append(e.clusters, c)
}

// parsedVia is one reason of reach's, read once.
type parsedVia struct {
	kind   Kind
	reason int32 // the zone of a network or gateway reason
	label  int32 // the reason itself, for KindOther
	addr   string
	id     int32
}

// via reads a reason of reach's (they are few: one per network and
// published address, and the constants).
func (b *builder) via(r reach.Reason) parsedVia {
	if v, ok := b.vias[r]; ok {
		return v
	}
	v := parsedVia{kind: KindOther, reason: b.intern(""), label: b.intern(""), id: b.intern(r.String())}
	switch r.Kind {
	case reach.KindNetwork:
		v.kind, v.reason = KindNetwork, b.intern(r.Network)
	case reach.KindPublished:
		v.kind, v.addr = KindPublished, r.Binding
	case reach.KindHostNetwork:
		v.kind = KindHostNetwork
	case reach.KindGateway:
		v.kind, v.reason = KindGateway, b.intern(r.Network)
	case reach.KindEgress:
		v.kind = KindEgress
	case reach.KindNamespace:
		v.kind = KindNamespace
	default:
		v.label = v.id
	}
	b.vias[r] = v
	return v
}

// addEdge turns one reach edge into links, one per reason. A host's
// edges can number millions (every container with a route reaches every
// published port), so this is kept to a few lookups by number.
func (b *builder) addEdge(e reach.Edge) {
	if b.lastFrom == nil || b.lastFromName != e.From {
		b.lastFrom, b.lastFromName = b.peer(e.From), e.From
	}
	from, to := b.lastFrom, b.peer(e.To)
	none := b.intern("")
	for _, s := range e.Via {
		v := b.via(s)
		switch v.kind {
		case KindPublished:
			key := [2]int32{v.id, to.id}
			p, ok := b.ports[key]
			if !ok {
				p = b.port(v.addr, e.To)
				b.ports[key] = p
			}
			b.link(from, p, KindPublished, none, none)
			b.link(p, to, KindPublished, none, b.intern(p.ports))
		case KindHostNetwork:
			if !(from.hostNS && to.hostNS) { // one namespace: the cluster says it
				b.link(from, to, KindHostNetwork, none, none)
			}
		default:
			b.link(from, to, v.kind, v.reason, v.label)
		}
	}
}

func (b *builder) link(from, to *entity, kind Kind, reason, label int32) {
	if from == to {
		return
	}
	k := rawTarget{to: to.id, kind: uint8(kindRank(kind)), reason: reason, label: label}
	i, ok := b.raw[k]
	if !ok {
		i = len(b.sources)
		b.raw[k] = i
		b.sources = append(b.sources, nil)
	}
	set := b.sources[i]
	if w := int(from.id / 64); w >= len(set) {
		set = append(set, make([]uint64, w+1-len(set))...)
		b.sources[i] = set
	}
	set[from.id/64] |= 1 << (from.id % 64)
}

func (b *builder) intern(s string) int32 {
	if i, ok := b.strs[s]; ok {
		return i
	}
	i := int32(len(b.strList))
	b.strs[s] = i
	b.strList = append(b.strList, s)
	return i
}

// unit resolves a link end: an entity or a cluster.
func (b *builder) unit(key string) (*entity, *cluster) {
	if e, ok := b.ents[key]; ok {
		return e, nil
	}
	return nil, b.clusters[key]
}

// finish collapses the links and lays the graph out as data.
func (b *builder) finish() *Graph {
	if b.allZones {
		for i := range b.snap.Networks {
			n := &b.snap.Networks[i]
			if n.Driver != "host" && n.Driver != "null" {
				b.cluster("Z:"+n.Name, ClusterZone, n.Name)
			}
		}
	}
	if r := b.opts.Radius; r != nil {
		b.highlight(r)
	}
	for r, i := range b.raw {
		to := b.list[r.to].key
		for w, set := range b.sources[i] {
			for ; set != 0; set &= set - 1 {
				from := b.list[w*64+bits.TrailingZeros64(set)]
				b.links[link{from: from.key, to: to, kind: kinds[r.kind], reason: b.strList[r.reason], label: b.strList[r.label]}] = struct{}{}
			}
		}
	}
	links := b.collapseCliques()
	links = b.collapseTargets(links)
	links = b.collapseSources(links)
	return b.draw(links)
}

// highlight marks the hops of the blast radius and records its paths.
func (b *builder) highlight(r *reach.Radius) {
	src := b.peer(r.Source)
	src.hops = 0
	for _, x := range r.Reachable {
		e := b.peer(x.Name)
		if e.hops < 0 || x.Hops < e.hops {
			e.hops = x.Hops
		}
		for i := 0; i+1 < len(x.Path); i++ {
			p, q := b.peer(x.Path[i]), b.peer(x.Path[i+1])
			if p == q {
				continue
			}
			k := [2]*entity{p, q}
			if h, ok := b.paths[k]; !ok || i+1 < h {
				b.paths[k] = i + 1
			}
		}
	}
	for name, on := range map[string]bool{reach.Host: r.Host, reach.Internet: r.Internet} {
		if e, ok := b.ents["x:"+name]; ok && on {
			e.hops = 1
		}
	}
}

// collapseCliques drops the network links of each zone whose members all
// reach each other over it, and marks the zone a clique. It returns the
// other links.
func (b *builder) collapseCliques() []link {
	count := map[string]int{}
	for l := range b.links {
		if l.kind == KindNetwork {
			count[l.reason]++
		}
	}
	for _, c := range b.clusters {
		if c.kind == ClusterHost {
			// One network namespace: its members reach each other (the
			// builder drew no link between them).
			c.clique = len(c.members) > 1
			continue
		}
		if c.kind != ClusterZone || c.net == nil || !c.net.ICC {
			continue
		}
		groups := map[string]int{}
		for _, m := range c.members {
			groups[m.group]++
		}
		n := len(c.members)
		pairs := n * (n - 1)
		for _, g := range groups {
			pairs -= g * (g - 1)
		}
		c.clique = pairs > 0 && count[c.name] == pairs
	}
	out := make([]link, 0, len(b.links))
	for l := range b.links {
		if l.kind == KindNetwork {
			if c := b.clusters["Z:"+l.reason]; c != nil && c.clique {
				continue
			}
		}
		out = append(out, l)
	}
	return out
}

type linkClass struct {
	end           string
	kind          Kind
	reason, label string
}

// collapseTargets replaces, for each source, the targets that make up a
// whole cluster (but the source's own namespace) by the cluster.
func (b *builder) collapseTargets(links []link) []link {
	groups := map[linkClass][]*entity{}
	var out []link
	for _, l := range links {
		if l.kind == KindNetwork || l.kind == KindOther {
			out = append(out, l)
			continue
		}
		to, _ := b.unit(l.to)
		k := linkClass{l.from, l.kind, l.reason, l.label}
		groups[k] = append(groups[k], to)
	}
	for k, targets := range groups {
		from, _ := b.unit(k.end)
		chosen := b.covering(targets, func(c *cluster) bool { return !c.has(from) },
			func(m *entity) bool { return m.group != from.group })
		for _, c := range chosen {
			out = append(out, link{from: k.end, to: c.key, kind: k.kind, reason: k.reason, label: k.label})
		}
		for _, t := range targets {
			if !inAny(t, chosen) {
				out = append(out, link{from: k.end, to: t.key, kind: k.kind, reason: k.reason, label: k.label})
			}
		}
	}
	return out
}

// collapseSources replaces, for each target, the sources that make up a
// whole cluster by the cluster.
func (b *builder) collapseSources(links []link) []link {
	groups := map[linkClass][]*entity{}
	var out []link
	for _, l := range links {
		from, _ := b.unit(l.from)
		if l.kind == KindNetwork || l.kind == KindOther || from == nil {
			out = append(out, l)
			continue
		}
		k := linkClass{l.to, l.kind, l.reason, l.label}
		groups[k] = append(groups[k], from)
	}
	for k, sources := range groups {
		toE, toC := b.unit(k.end)
		usable := func(c *cluster) bool {
			if toC == c || c.has(toE) {
				return false
			}
			// A link through a zone's gateway is drawn from that zone only.
			return k.kind != KindGateway || (c.kind == ClusterZone && c.name == k.reason)
		}
		need := func(m *entity) bool { return toE == nil || m.group != toE.group }
		chosen := b.covering(sources, usable, need)
		for _, c := range chosen {
			out = append(out, link{from: c.key, to: k.end, kind: k.kind, reason: k.reason, label: k.label})
		}
		for _, s := range sources {
			if !inAny(s, chosen) {
				out = append(out, link{from: s.key, to: k.end, kind: k.kind, reason: k.reason, label: k.label})
			}
		}
	}
	return out
}

// covering returns the usable clusters of two or more members, at least
// one of them needed, whose needed members are all in set.
func (b *builder) covering(set []*entity, usable func(*cluster) bool, need func(*entity) bool) []*cluster {
	in := make(map[*entity]bool, len(set))
	var cands []*cluster
	for _, e := range set {
		in[e] = true
		for _, c := range e.clusters {
			if !slices.Contains(cands, c) {
				cands = append(cands, c)
			}
		}
	}
	var chosen []*cluster
	for _, c := range cands {
		if len(c.members) < 2 || !usable(c) {
			continue
		}
		needed, ok := 0, true
		for _, m := range c.members {
			if !need(m) {
				continue
			}
			needed++
			if !in[m] {
				ok = false
				break
			}
		}
		if ok && needed > 0 {
			chosen = append(chosen, c)
		}
	}
	return chosen
}

func b2i(v bool) int {
	if v {
		return 1
	}
	return 0
}

func inAny(e *entity, cs []*cluster) bool {
	for _, c := range cs {
		if c.has(e) {
			return true
		}
	}
	return false
}

// draw assigns IDs and builds the Graph.
func (b *builder) draw(links []link) *Graph {
	g := &Graph{Title: b.opts.Title, Folded: b.nFolded}
	// Clusters: published ports, zones by name, host, isolated.
	var cls []*cluster
	for _, c := range b.clusters {
		cls = append(cls, c)
	}
	rank := map[ClusterKind]int{ClusterPublished: 0, ClusterZone: 1, ClusterHost: 2, ClusterIsolated: 3}
	slices.SortFunc(cls, func(x, y *cluster) int {
		return cmp.Or(cmp.Compare(rank[x.kind], rank[y.kind]), strings.Compare(x.name, y.name))
	})
	addNode := func(e *entity, c *cluster) {
		i := len(g.Nodes)
		n := Node{ID: "n" + strconv.Itoa(i+1), Kind: e.kind, Name: e.name, Peer: e.peer, Entity: e.key, Hops: e.hops}
		zone := ""
		if c != nil {
			n.Cluster = c.key // replaced by the cluster's ID below
			if c.kind == ClusterZone {
				zone = c.name
			}
		}
		n.Lines, n.Classes, n.Count = b.describe(e, zone)
		g.Nodes = append(g.Nodes, n)
		e.nodes = append(e.nodes, i)
		e.nodeZone = append(e.nodeZone, zone)
	}
	if e, ok := b.ents["x:"+reach.Outside]; ok {
		addNode(e, nil)
	}
	for i, c := range cls {
		c.index = i
		members := slices.Clone(c.members)
		slices.SortFunc(members, func(x, y *entity) int {
			return cmp.Or(cmp.Compare(memberRank(x), memberRank(y)), strings.Compare(x.name, y.name), strings.Compare(x.key, y.key))
		})
		gc := Cluster{ID: "c" + strconv.Itoa(i+1), Kind: c.kind, Name: c.name, Clique: c.clique}
		if c.net != nil {
			gc.Internal, gc.ICCOff, gc.DefaultBridge = c.net.Internal, !c.net.ICC, c.net.IsDefaultBridge()
		}
		for _, m := range members {
			addNode(m, c)
			gc.Nodes = append(gc.Nodes, g.Nodes[len(g.Nodes)-1].ID)
		}
		g.Clusters = append(g.Clusters, gc)
	}
	if e, ok := b.ents["x:"+reach.Internet]; ok {
		addNode(e, nil)
	}
	for i := range g.Nodes {
		if c := b.clusters[g.Nodes[i].Cluster]; c != nil {
			g.Nodes[i].Cluster = g.Clusters[c.index].ID
		}
	}
	for _, e := range b.ents {
		if e.kind == NodeContainer {
			g.Containers++
		} else if e.kind == NodeFolded {
			g.Containers += len(e.folded)
		}
	}

	// Edges.
	type ekey struct {
		from, to string
		kind     Kind
		label    string
	}
	edges := map[ekey]int{} // -> hop (path edges), 0 otherwise
	end := func(key, zone, otherKey string) string {
		e, c := b.unit(key)
		if c != nil {
			return g.Clusters[c.index].ID
		}
		if o, _ := b.unit(otherKey); o != nil && zone == "" {
			zone = commonZone(e, o)
		}
		return g.Nodes[e.nodeIn(zone)].ID
	}
	for _, l := range links {
		k := ekey{end(l.from, l.reason, l.to), end(l.to, l.reason, l.from), l.kind, l.label}
		edges[k] = 0
	}
	for pair, hop := range b.paths {
		z := commonZone(pair[0], pair[1])
		k := ekey{g.Nodes[pair[0].nodeIn(z)].ID, g.Nodes[pair[1].nodeIn(z)].ID, KindPath, ""}
		edges[k] = hop
	}
	for k, hop := range edges {
		rev := ekey{k.to, k.from, k.kind, k.label}
		if k.kind != KindPath {
			if _, ok := edges[rev]; ok {
				if idLess(k.to, k.from) {
					continue // drawn once, from the other end
				}
				g.Edges = append(g.Edges, Edge{From: k.from, To: k.to, Kind: k.kind, Label: k.label, Both: true})
				continue
			}
		}
		g.Edges = append(g.Edges, Edge{From: k.from, To: k.to, Kind: k.kind, Label: k.label, Hop: hop})
	}
	for _, e := range b.ents {
		primary := e.nodeIn("")
		for _, n := range e.nodes {
			if n != primary {
				g.Edges = append(g.Edges, Edge{From: g.Nodes[primary].ID, To: g.Nodes[n].ID, Kind: KindSame, Both: true})
			}
		}
	}
	slices.SortFunc(g.Edges, func(x, y Edge) int {
		return cmp.Or(cmp.Compare(kindRank(x.Kind), kindRank(y.Kind)), idCompare(x.From, y.From), idCompare(x.To, y.To),
			strings.Compare(x.Label, y.Label))
	})

	if r := b.opts.Radius; r != nil {
		h := &Highlight{Source: r.Source, Reached: len(r.Reachable), Data: len(r.DataServices()), Host: r.Host, Internet: r.Internet}
		for _, x := range r.Reachable {
			h.MaxHops = max(h.MaxHops, x.Hops)
		}
		g.Highlight = h
	}
	return g
}

// memberRank orders the nodes of a cluster: the host first, then
// containers, then folded nodes.
func memberRank(e *entity) int {
	switch e.kind {
	case NodeHost:
		return 0
	case NodeFolded:
		return 2
	}
	return 1
}

// commonZone returns a zone both entities are drawn in, or "".
func commonZone(x, y *entity) string {
	for _, z := range x.nodeZone {
		if z != "" && slices.Contains(y.nodeZone, z) {
			return z
		}
	}
	return ""
}

// idCompare orders "n2" before "n10", and nodes before clusters.
func idCompare(x, y string) int {
	if c := strings.Compare(y[:1], x[:1]); c != 0 { // 'n' before 'c'
		return c
	}
	xi, _ := strconv.Atoi(x[1:])
	yi, _ := strconv.Atoi(y[1:])
	return xi - yi
}

func idLess(x, y string) bool { return idCompare(x, y) < 0 }

// describe returns the label lines, classes and container count of the
// node drawing e in zone.
func (b *builder) describe(e *entity, zone string) (lines, classes []string, count int) {
	switch e.kind {
	case NodeOutside:
		return []string{"outside", "remote clients"}, nil, 0
	case NodeInternet:
		return []string{"internet"}, nil, 0
	case NodeHost:
		return []string{"host", "its own services"}, nil, 0
	case NodePort:
		return []string{e.name}, nil, 0
	case NodeFolded:
		data := 0
		for _, c := range e.folded {
			if _, _, ok := inventory.DataService(c); ok {
				data++
			}
		}
		lines = []string{fmt.Sprintf("+%d containers", len(e.folded))}
		if data > 0 {
			lines = append(lines, fmt.Sprintf("%d data services", data))
			classes = append(classes, "data")
		}
		return lines, append(classes, "folded"), len(e.folded)
	}
	lines = []string{e.name}
	c := e.c
	if c == nil {
		return lines, nil, 1
	}
	var detail []string
	if c.Image != "" {
		img := c.Image
		if i := strings.LastIndexByte(img, '/'); i >= 0 {
			img = img[i+1:]
		}
		detail = append(detail, img)
	}
	if kind, _, ok := inventory.DataService(c); ok {
		detail = append(detail, kind)
		classes = append(classes, "data")
	}
	if len(detail) > 0 {
		lines = append(lines, strings.Join(detail, " · "))
	}
	var notes []string
	if !c.Running() {
		notes = append(notes, c.State)
		classes = append(classes, "stopped")
	}
	if c.Privileged {
		notes = append(notes, "privileged")
		classes = append(classes, "privileged")
	}
	if _, ok := inventory.Untrusted(c); ok {
		classes = append(classes, "untrusted")
	}
	if e.hostNS {
		notes = append(notes, "host network")
	}
	if owner := b.owner(c); owner != c {
		notes = append(notes, "in "+owner.Name+"'s namespace")
	}
	if len(e.zones) > 1 {
		classes = append(classes, "gateway")
		var others []string
		for _, z := range e.zones {
			if z != zone {
				others = append(others, z)
			}
		}
		notes = append(notes, "also in "+strings.Join(others, ", "))
	}
	if len(notes) > 0 {
		lines = append(lines, strings.Join(notes, " · "))
	}
	return lines, classes, 1
}
