package graph

import (
	"cmp"
	"math"
	"slices"
	"strings"
)

// The SVG layout is this package's own, made for the shape these graphs
// have rather than for any graph: columns from left to right for the
// world outside, the published ports, the zones (packed into as many
// columns as keep them about square) and the host's namespace with
// the internet. Zones that share a gateway container are placed next to
// each other. Nodes sit in a grid inside their cluster; edges are cubic
// curves between the sides of the boxes they join, their ends spread
// along each side. Everything is linear in nodes plus edges (sorting
// aside), so a thousand containers lay out in milliseconds.

const (
	charW      = 6.4  // average advance of the 11px sans-serif text
	boldCharW  = 7.3  // of the 12px bold first line
	lineH      = 14.0 // text line height
	nodePadX   = 10.0
	nodePadY   = 8.0
	gridGapX   = 16.0
	gridGapY   = 14.0
	clusterPad = 12.0
	columnGap  = 110.0
	stackGap   = 36.0
	margin     = 24.0
	minNodeW   = 120.0
	maxNodeW   = 210.0
)

type rect struct{ x, y, w, h float64 }

func (r rect) cx() float64 { return r.x + r.w/2 }
func (r rect) cy() float64 { return r.y + r.h/2 }

// placed is a drawn edge: a cubic curve and where its label goes.
type placed struct {
	edge           *Edge
	x0, y0, x1, y1 float64 // ends
	c0x, c0y       float64 // control points
	c1x, c1y       float64
	lx, ly         float64 // label position
}

type layout struct {
	nodes    map[string]rect // by node ID
	clusters map[string]rect // by cluster ID
	edges    []placed
	width    float64
	height   float64
	top      float64 // height of the caption
	nodeW    float64
	maxChars int // of a node's text line
}

// block is a column item: a cluster or a lone node.
type block struct {
	cluster *Cluster
	node    *Node
	cols    int
	w, h    float64
}

func layOut(g *Graph) *layout {
	l := &layout{nodes: map[string]rect{}, clusters: map[string]rect{}}
	// One width for every node: the widest label, within bounds.
	longest := 0.0
	maxLines := 1
	for i := range g.Nodes {
		n := &g.Nodes[i]
		for j, line := range n.Lines {
			w := float64(len([]rune(line))) * charW
			if j == 0 {
				w = float64(len([]rune(line))) * boldCharW
			}
			longest = max(longest, w)
		}
		maxLines = max(maxLines, len(n.Lines))
	}
	l.nodeW = min(max(longest+2*nodePadX, minNodeW), maxNodeW)
	l.maxChars = int((l.nodeW - 2*nodePadX) / charW)
	nodeH := float64(maxLines)*lineH + 2*nodePadY
	sizeOf := func(n *Node) (float64, float64) {
		switch n.Kind {
		case NodePort:
			return l.nodeW, lineH + 2*nodePadY
		case NodeOutside, NodeInternet, NodeHost:
			return l.nodeW, float64(len(n.Lines))*lineH + 2*nodePadY
		}
		return l.nodeW, nodeH
	}

	l.top = margin + float64(len(caption(g)))*18 + 8

	mk := func(c *Cluster, cols int) *block {
		b := &block{cluster: c, cols: cols}
		n := len(c.Nodes)
		rows := 0
		if n > 0 {
			b.cols = min(cols, n)
			rows = (n + b.cols - 1) / b.cols
		}
		cellH := nodeH
		if n > 0 {
			_, cellH = sizeOf(g.Node(c.Nodes[0]))
			for _, id := range c.Nodes {
				_, h := sizeOf(g.Node(id))
				cellH = max(cellH, h)
			}
		}
		header := float64(len(c.Label()))*lineH + 8
		labelW := 0.0
		for i, line := range c.Label() {
			cw := charW
			if i == 0 {
				cw = boldCharW
			}
			labelW = max(labelW, float64(len([]rune(line)))*cw)
		}
		b.w = max(float64(b.cols)*l.nodeW+float64(max(b.cols-1, 0))*gridGapX, labelW, 140) + 2*clusterPad
		b.h = header + float64(rows)*cellH + float64(max(rows-1, 0))*gridGapY + 2*clusterPad
		if n == 0 {
			b.h = header + 2*clusterPad
		}
		return b
	}
	lone := func(n *Node) *block {
		w, h := sizeOf(n)
		return &block{node: n, w: w, h: h}
	}

	var columns [][]*block
	var outside, internet *Node
	for i := range g.Nodes {
		switch n := &g.Nodes[i]; {
		case n.Cluster != "":
		case n.Kind == NodeOutside:
			outside = n
		case n.Kind == NodeInternet:
			internet = n
		default: // nodes outside any cluster: none today
			columns = append(columns, []*block{lone(n)})
		}
	}
	if outside != nil {
		columns = append(columns, []*block{lone(outside)})
	}
	var zones []*Cluster
	var right []*block
	for i := range g.Clusters {
		c := &g.Clusters[i]
		switch c.Kind {
		case ClusterPublished:
			columns = append(columns, []*block{mk(c, 1)})
		case ClusterZone:
			zones = append(zones, c)
		default:
			right = append(right, mk(c, 1))
		}
	}
	if internet != nil {
		right = append(right, lone(internet))
	}
	columns = append(columns, packZones(g, zones, mk)...)
	if len(right) > 0 {
		columns = append(columns, right)
	}

	// Place the columns, each centred vertically on the tallest.
	tallest := 0.0
	for _, col := range columns {
		tallest = max(tallest, columnHeight(col))
	}
	x := margin
	for _, col := range columns {
		w := 0.0
		for _, b := range col {
			w = max(w, b.w)
		}
		y := l.top + (tallest-columnHeight(col))/2
		for _, b := range col {
			bx := x
			if b.node != nil || len(col) == 1 {
				bx += (w - b.w) / 2
			}
			if b.node != nil {
				l.nodes[b.node.ID] = rect{bx, y, b.w, b.h}
			} else {
				l.placeCluster(g, b, bx, y, sizeOf)
			}
			y += b.h + stackGap
		}
		x += w + columnGap
	}
	l.width = max(x-columnGap+margin, 480)
	l.height = l.top + tallest + margin
	l.route(g)
	return l
}

func columnHeight(col []*block) float64 {
	h := 0.0
	for i, b := range col {
		if i > 0 {
			h += stackGap
		}
		h += b.h
	}
	return h
}

func (l *layout) placeCluster(g *Graph, b *block, x, y float64, sizeOf func(*Node) (float64, float64)) {
	c := b.cluster
	l.clusters[c.ID] = rect{x, y, b.w, b.h}
	header := float64(len(c.Label()))*lineH + 8
	cellH := 0.0
	for _, id := range c.Nodes {
		_, h := sizeOf(g.Node(id))
		cellH = max(cellH, h)
	}
	for i, id := range c.Nodes {
		w, h := sizeOf(g.Node(id))
		col, row := i%b.cols, i/b.cols
		nx := x + clusterPad + float64(col)*(l.nodeW+gridGapX)
		ny := y + clusterPad + header + float64(row)*(cellH+gridGapY) + (cellH-h)/2
		l.nodes[id] = rect{nx, ny, w, h}
	}
}

// packZones orders the zones so that zones sharing a gateway container
// are neighbours, then fills columns to keep the drawing about 16:10.
func packZones(g *Graph, zones []*Cluster, mk func(*Cluster, int) *block) [][]*block {
	if len(zones) == 0 {
		return nil
	}
	clusterOf := map[string]string{}
	for _, c := range zones {
		for _, id := range c.Nodes {
			clusterOf[id] = c.ID
		}
	}
	adj := map[string][]string{}
	for _, e := range g.Edges {
		if e.Kind != KindSame && e.Kind != KindNamespace && e.Kind != KindNetwork {
			continue
		}
		a, b := clusterOf[e.From], clusterOf[e.To]
		if a != "" && b != "" && a != b {
			adj[a] = append(adj[a], b)
			adj[b] = append(adj[b], a)
		}
	}
	byID := map[string]*Cluster{}
	for _, c := range zones {
		byID[c.ID] = c
	}
	// Depth-first from each unvisited zone, busiest neighbours first.
	var order []*Cluster
	seen := map[string]bool{}
	var visit func(id string)
	visit = func(id string) {
		if seen[id] {
			return
		}
		seen[id] = true
		order = append(order, byID[id])
		next := slices.Clone(adj[id])
		slices.SortFunc(next, func(x, y string) int { return cmp.Compare(len(adj[y]), len(adj[x])) })
		for _, n := range slices.Compact(next) {
			visit(n)
		}
	}
	for _, c := range zones {
		visit(c.ID)
	}

	blocks := make([]*block, len(order))
	area, width := 0.0, 0.0
	for i, c := range order {
		n := len(c.Nodes)
		cols := max(1, int(math.Ceil(math.Sqrt(float64(n)))))
		if n > 12 {
			cols = max(cols, int(math.Ceil(math.Sqrt(float64(n)*1.6))))
		}
		blocks[i] = mk(c, cols)
		area += (blocks[i].w + columnGap) * (blocks[i].h + stackGap)
		width += blocks[i].w
	}
	// k columns of the average width w hold the area A in a square when
	// k·w = A/(k·w): the columns beside the zones make the whole wider.
	avgW := width/float64(len(blocks)) + columnGap
	k := max(1, math.Round(math.Sqrt(area)/avgW))
	target := area / (k * avgW)
	var cols [][]*block
	var cur []*block
	for _, b := range blocks {
		if len(cur) > 0 && columnHeight(cur)+stackGap+b.h > target {
			cols = append(cols, cur)
			cur = nil
		}
		cur = append(cur, b)
	}
	return append(cols, cur)
}

// side of a box an edge leaves or enters by.
type side int

const (
	sideRight side = iota
	sideLeft
	sideBottom
	sideTop
)

type attach struct {
	box   string // node or cluster ID
	side  side
	edge  int  // index into l.edges
	start bool // the edge's start, else its end
	other float64
}

// route draws each edge as a curve from a side of one box to a side of
// the other, the ends on one side spread out in the order of the boxes
// they lead to.
func (l *layout) route(g *Graph) {
	box := func(id string) rect {
		if r, ok := l.nodes[id]; ok {
			return r
		}
		return l.clusters[id]
	}
	var ats []attach
	for i := range g.Edges {
		e := &g.Edges[i]
		a, b := box(e.From), box(e.To)
		var sa, sb side
		switch {
		case b.x >= a.x+a.w:
			sa, sb = sideRight, sideLeft
		case a.x >= b.x+b.w:
			sa, sb = sideLeft, sideRight
		case b.y >= a.y+a.h:
			sa, sb = sideBottom, sideTop
		case a.y >= b.y+b.h:
			sa, sb = sideTop, sideBottom
		default: // overlapping boxes: loop out to the right
			sa, sb = sideRight, sideRight
		}
		l.edges = append(l.edges, placed{edge: e})
		ats = append(ats,
			attach{e.From, sa, i, true, along(sa, b)},
			attach{e.To, sb, i, false, along(sb, a)})
	}
	slices.SortStableFunc(ats, func(x, y attach) int {
		return cmp.Or(strings.Compare(x.box, y.box), cmp.Compare(x.side, y.side), cmp.Compare(x.other, y.other))
	})
	for i := 0; i < len(ats); {
		j := i
		for j < len(ats) && ats[j].box == ats[i].box && ats[j].side == ats[i].side {
			j++
		}
		r := box(ats[i].box)
		n := j - i
		for k := i; k < j; k++ {
			f := float64(k-i+1) / float64(n+1)
			var x, y, dx, dy float64
			switch ats[k].side {
			case sideRight:
				x, y, dx = r.x+r.w, r.y+r.h*(0.15+0.7*f), 1
			case sideLeft:
				x, y, dx = r.x, r.y+r.h*(0.15+0.7*f), -1
			case sideBottom:
				x, y, dy = r.x+r.w*(0.15+0.7*f), r.y+r.h, 1
			case sideTop:
				x, y, dy = r.x+r.w*(0.15+0.7*f), r.y, -1
			}
			p := &l.edges[ats[k].edge]
			if ats[k].start {
				p.x0, p.y0, p.c0x, p.c0y = x, y, dx, dy
			} else {
				p.x1, p.y1, p.c1x, p.c1y = x, y, dx, dy
			}
		}
		i = j
	}
	for i := range l.edges {
		p := &l.edges[i]
		d := math.Hypot(p.x1-p.x0, p.y1-p.y0)
		reach := min(max(d*0.4, 30), 180)
		p.c0x, p.c0y = p.x0+p.c0x*reach, p.y0+p.c0y*reach
		p.c1x, p.c1y = p.x1+p.c1x*reach, p.y1+p.c1y*reach
		// The curve's midpoint: B(0.5) = (P0 + 3 C0 + 3 C1 + P1) / 8.
		p.lx = (p.x0 + 3*p.c0x + 3*p.c1x + p.x1) / 8
		p.ly = (p.y0 + 3*p.c0y + 3*p.c1y + p.y1) / 8
	}
}

// along returns where box r lies along a side's direction: the order in
// which the ends on that side are spread.
func along(s side, r rect) float64 {
	if s == sideLeft || s == sideRight {
		return r.cy()
	}
	return r.cx()
}
