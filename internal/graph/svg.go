package graph

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// SVG writes g as a standalone SVG document, laid out by this package (no
// Graphviz needed). Every element carries what a script or a test needs:
// nodes are <g class="node ..." data-node data-entity data-container
// data-hops>, clusters <g class="cluster ..." data-cluster>, edges
// <g class="edge KIND" data-from data-to>; the drawing sits in
// <g class="zw-viewport"> so that a viewer can pan and zoom it.
func SVG(w io.Writer, g *Graph) error {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	writeSVG(&b, g, layOut(g))
	_, err := io.WriteString(w, b.String())
	return err
}

const svgFont = `-apple-system, "Segoe UI", Helvetica, Arial, sans-serif`

func writeSVG(b *strings.Builder, g *Graph, l *layout) {
	legend := legendItems(g)
	legendH := legendHeight(legend)
	width, height := l.width, l.height+legendH
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" class="zw-graph" width="%s" height="%s" viewBox="0 0 %s %s" data-containers="%d" font-family="%s" font-size="11">`+"\n",
		num(width), num(height), num(width), num(height), g.Containers, xmlEscape(svgFont))
	fmt.Fprintf(b, "<title>%s</title>\n", xmlEscape(firstNonEmpty(g.Title, "zonewarden graph")))
	b.WriteString(svgStyle)
	b.WriteString("<defs>\n")
	for _, k := range kinds {
		s := styleOf(k)
		fmt.Fprintf(b, `<marker id="zw-arrow-%s" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="%s"/></marker>`+"\n", k, s.color)
	}
	b.WriteString("</defs>\n")
	fmt.Fprintf(b, `<rect class="zw-background" x="0" y="0" width="%s" height="%s" fill="#ffffff"/>`+"\n", num(width), num(height))
	b.WriteString(`<g class="zw-viewport">` + "\n")
	for i, line := range caption(g) {
		weight := ""
		if i == 0 {
			weight = ` font-weight="bold" font-size="15"`
		}
		fmt.Fprintf(b, `<text class="zw-caption" x="%s" y="%s"%s fill="#212529">%s</text>`+"\n",
			num(margin), num(margin+14+float64(i)*18), weight, xmlEscape(line))
	}
	for i := range g.Clusters {
		svgCluster(b, &g.Clusters[i], l.clusters[g.Clusters[i].ID])
	}
	b.WriteString(`<g class="zw-edges">` + "\n")
	for i := range l.edges {
		if l.edges[i].edge.Kind != KindPath {
			svgEdge(b, &l.edges[i], i)
		}
	}
	b.WriteString("</g>\n")
	b.WriteString(`<g class="zw-nodes">` + "\n")
	for i := range g.Nodes {
		svgNode(b, g, &g.Nodes[i], l.nodes[g.Nodes[i].ID], l.maxChars)
	}
	b.WriteString("</g>\n")
	b.WriteString(`<g class="zw-paths">` + "\n")
	for i := range l.edges {
		if l.edges[i].edge.Kind == KindPath {
			svgEdge(b, &l.edges[i], i)
		}
	}
	b.WriteString("</g>\n")
	b.WriteString(`<g class="zw-edge-labels">` + "\n")
	for i := range l.edges {
		svgEdgeLabel(b, &l.edges[i])
	}
	b.WriteString("</g>\n")
	svgLegend(b, legend, margin, l.height)
	b.WriteString("</g>\n</svg>\n")
}

// svgStyle holds what presentation attributes cannot say: the classes a
// viewer's script sets to highlight a blast radius.
const svgStyle = `<style>
.zw-graph text { pointer-events: none; }
.zw-graph .node { cursor: pointer; }
.zw-graph .zw-dim { opacity: 0.25; }
.zw-graph .node.zw-hop-0 .zw-shape { fill: #c2255c; }
.zw-graph .node.zw-hop-0 text { fill: #ffffff; }
.zw-graph .node.zw-hop-1 .zw-shape { fill: #f783ac; }
.zw-graph .node.zw-hop-2 .zw-shape { fill: #fcc2d7; }
.zw-graph .node.zw-hop-3 .zw-shape { fill: #ffdeeb; }
.zw-graph .edge.zw-on-path path { stroke: #c2255c; stroke-width: 3; opacity: 1; }
</style>
`

func svgCluster(b *strings.Builder, c *Cluster, r rect) {
	s := clusterStyle(c)
	classes := "cluster " + string(c.Kind)
	if c.Internal {
		classes += " internal"
	}
	if c.ICCOff {
		classes += " icc-off"
	}
	if c.DefaultBridge {
		classes += " default-bridge"
	}
	dash := ""
	if s.dashed {
		dash = ` stroke-dasharray="6 4"`
	}
	fmt.Fprintf(b, `<g class="%s" id="%s" data-cluster="%s" data-kind="%s" data-internal="%t" data-icc="%t">`,
		classes, c.ID, xmlEscape(c.Name), c.Kind, c.Internal, !c.ICCOff)
	fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="%s" rx="10" fill="%s" stroke="%s" stroke-width="1.5"%s/>`,
		num(r.x), num(r.y), num(r.w), num(r.h), s.fill, s.stroke, dash)
	for i, line := range c.Label() {
		weight, color := ` font-weight="bold" font-size="12"`, s.stroke
		if i > 0 {
			weight, color = "", "#495057"
		}
		fmt.Fprintf(b, `<text x="%s" y="%s"%s fill="%s">%s</text>`,
			num(r.x+clusterPad), num(r.y+clusterPad+10+float64(i)*lineH), weight, color, xmlEscape(line))
	}
	b.WriteString("</g>\n")
}

func svgNode(b *strings.Builder, g *Graph, n *Node, r rect, maxChars int) {
	s := nodeStyle(n)
	fill, text := s.fill, "#212529"
	stroke := s.stroke
	classes := "node " + string(n.Kind)
	for _, c := range n.Classes {
		classes += " " + c
	}
	if g.Highlight != nil && n.Kind != NodePort {
		fill, text = hopFill(n.Hops)
		if n.Hops < 0 {
			stroke = "#ced4da"
			classes += " unreached"
		} else {
			classes += " reached"
		}
	}
	fmt.Fprintf(b, `<g class="%s" id="%s" data-node="%s" data-entity="%s" data-kind="%s"`,
		classes, n.ID, n.ID, xmlEscape(n.Entity), n.Kind)
	if n.Kind == NodeContainer {
		fmt.Fprintf(b, ` data-container="%s"`, xmlEscape(n.Name))
	}
	if n.Peer != "" {
		fmt.Fprintf(b, ` data-peer="%s"`, xmlEscape(n.Peer))
	}
	if n.Cluster != "" {
		fmt.Fprintf(b, ` data-in="%s"`, n.Cluster)
	}
	if g.Highlight != nil {
		fmt.Fprintf(b, ` data-hops="%d"`, n.Hops)
	}
	b.WriteString(">")
	fmt.Fprintf(b, "<title>%s</title>", xmlEscape(strings.Join(n.Lines, "\n")))
	width := "1.2"
	if n.HasClass("privileged") || n.HasClass("gateway") || (g.Highlight != nil && n.Hops == 0) {
		width = "2.2"
	}
	dash := ""
	if s.dashed {
		dash = ` stroke-dasharray="5 3"`
	}
	paint := fmt.Sprintf(`fill="%s" stroke="%s" stroke-width="%s"%s`, fill, stroke, width, dash)
	switch n.Kind {
	case NodePort:
		tip := r.h / 2
		fmt.Fprintf(b, `<path class="zw-shape" d="M%s,%s H%s L%s,%s L%s,%s H%s Z" %s/>`,
			num(r.x), num(r.y), num(r.x+r.w-tip), num(r.x+r.w), num(r.y+r.h/2), num(r.x+r.w-tip), num(r.y+r.h), num(r.x), paint)
	case NodeOutside, NodeInternet:
		fmt.Fprintf(b, `<rect class="zw-shape" x="%s" y="%s" width="%s" height="%s" rx="%s" %s/>`,
			num(r.x), num(r.y), num(r.w), num(r.h), num(r.h/2), paint)
	case NodeFolded:
		fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="%s" rx="6" fill="#dee2e6" stroke="%s"/>`,
			num(r.x+5), num(r.y-5), num(r.w), num(r.h), stroke)
		fmt.Fprintf(b, `<rect class="zw-shape" x="%s" y="%s" width="%s" height="%s" rx="6" %s/>`,
			num(r.x), num(r.y), num(r.w), num(r.h), paint)
	case NodeHost:
		fmt.Fprintf(b, `<rect class="zw-shape" x="%s" y="%s" width="%s" height="%s" rx="2" %s/>`,
			num(r.x), num(r.y), num(r.w), num(r.h), paint)
		fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="%s" rx="1" fill="none" stroke="%s"/>`,
			num(r.x+3), num(r.y+3), num(r.w-6), num(r.h-6), stroke)
	default:
		fmt.Fprintf(b, `<rect class="zw-shape" x="%s" y="%s" width="%s" height="%s" rx="6" %s/>`,
			num(r.x), num(r.y), num(r.w), num(r.h), paint)
	}
	top := r.cy() - float64(len(n.Lines))*lineH/2 + 10
	for i, line := range n.Lines {
		attrs := fmt.Sprintf(`fill="%s"`, text)
		limit := maxChars
		if i == 0 {
			attrs += ` font-weight="bold" font-size="12"`
			limit = int(float64(maxChars) * charW / boldCharW)
		} else if text == "#212529" {
			attrs = `fill="#495057"`
		}
		fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle" %s>%s</text>`,
			num(r.cx()), num(top+float64(i)*lineH), attrs, xmlEscape(truncate(line, limit)))
	}
	b.WriteString("</g>\n")
}

// dashAttr renders an edge style's dash as an SVG attribute.
func dashAttr(dash string) string {
	switch dash {
	case "dashed":
		return ` stroke-dasharray="7 4"`
	case "dotted":
		return ` stroke-dasharray="2 3"`
	}
	return ""
}

func svgEdge(b *strings.Builder, p *placed, index int) {
	e := p.edge
	s := styleOf(e.Kind)
	dash := dashAttr(s.dash)
	markers := ""
	if s.arrow {
		markers = fmt.Sprintf(` marker-end="url(#zw-arrow-%s)"`, e.Kind)
		if e.Both {
			markers += fmt.Sprintf(` marker-start="url(#zw-arrow-%s)"`, e.Kind)
		}
	}
	fmt.Fprintf(b, `<g class="edge %s" data-edge="%d" data-from="%s" data-to="%s" data-kind="%s" data-both="%t">`, e.Kind, index, e.From, e.To, e.Kind, e.Both)
	fmt.Fprintf(b, `<path d="M%s,%s C%s,%s %s,%s %s,%s" fill="none" stroke="%s" stroke-width="%s"%s%s/>`,
		num(p.x0), num(p.y0), num(p.c0x), num(p.c0y), num(p.c1x), num(p.c1y), num(p.x1), num(p.y1),
		s.color, strconv.FormatFloat(s.width, 'f', -1, 64), dash, markers)
	b.WriteString("</g>\n")
}

// svgEdgeLabel writes an edge's label, above the nodes so that none hides
// it.
func svgEdgeLabel(b *strings.Builder, p *placed) {
	e := p.edge
	label := e.Label
	if e.Kind == KindPath {
		label = "hop " + strconv.Itoa(e.Hop)
	}
	if label == "" {
		return
	}
	fmt.Fprintf(b, `<text class="zw-edge-label %s" data-from="%s" data-to="%s" x="%s" y="%s" text-anchor="middle" font-size="10" fill="%s" stroke="#ffffff" stroke-width="3" paint-order="stroke">%s</text>`+"\n",
		e.Kind, e.From, e.To, num(p.lx), num(p.ly-3), styleOf(e.Kind).color, xmlEscape(label))
}

type legendItem struct {
	edge       Kind
	fill, line string
	dashed     bool
	text       string
}

func legendItems(g *Graph) []legendItem {
	present := map[Kind]bool{}
	for _, e := range g.Edges {
		present[e.Kind] = true
	}
	var out []legendItem
	for _, k := range kinds {
		if present[k] {
			out = append(out, legendItem{edge: k, text: string(k) + ": " + styleOf(k).what})
		}
	}
	out = append(out,
		legendItem{fill: "#fff3bf", line: "#495057", text: "data service"},
		legendItem{fill: "#ffffff", line: "#1c7ed6", text: "gateway: in several zones"},
		legendItem{fill: "#ffffff", line: "#e8590c", dashed: true, text: "untrusted (dev, staging, third-party)"},
		legendItem{fill: "#ffffff", line: "#c92a2a", text: "privileged"},
		legendItem{fill: "#f1f3f5", line: "#495057", text: "not running"},
	)
	if g.Highlight != nil {
		for _, h := range []int{0, 1, 2, 3} {
			fill, _ := hopFill(h)
			text := fmt.Sprintf("reached in %d hops", h)
			switch h {
			case 0:
				text = "the compromised container"
			case 1:
				text = "reached directly"
			case 3:
				text = "reached in 3 or more hops"
			}
			out = append(out, legendItem{fill: fill, line: "#495057", text: text})
		}
	}
	return out
}

func legendHeight(items []legendItem) float64 { return float64(len(items))*18 + 40 }

func svgLegend(b *strings.Builder, items []legendItem, x, y float64) {
	b.WriteString(`<g class="zw-legend">`)
	fmt.Fprintf(b, `<text x="%s" y="%s" font-weight="bold" fill="#212529">Legend</text>`, num(x), num(y+10))
	for i, it := range items {
		iy := y + 30 + float64(i)*18
		if it.edge != "" {
			s := styleOf(it.edge)
			dash := dashAttr(s.dash)
			marker := ""
			if s.arrow {
				marker = fmt.Sprintf(` marker-end="url(#zw-arrow-%s)"`, it.edge)
			}
			fmt.Fprintf(b, `<path d="M%s,%s H%s" stroke="%s" stroke-width="%s" fill="none"%s%s/>`,
				num(x), num(iy-4), num(x+40), s.color, strconv.FormatFloat(s.width, 'f', -1, 64), dash, marker)
		} else {
			dash := ""
			if it.dashed {
				dash = ` stroke-dasharray="4 2"`
			}
			fmt.Fprintf(b, `<rect x="%s" y="%s" width="40" height="12" rx="3" fill="%s" stroke="%s"%s/>`,
				num(x), num(iy-10), it.fill, it.line, dash)
		}
		fmt.Fprintf(b, `<text x="%s" y="%s" fill="#343a40">%s</text>`, num(x+50), num(iy), xmlEscape(it.text))
	}
	b.WriteString("</g>\n")
}

// truncate shortens s to n runes, ending in an ellipsis.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n || n < 2 {
		return s
	}
	return string(r[:n-1]) + "…"
}

// num formats a coordinate with at most one decimal.
func num(f float64) string { return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64) }

// xmlEscape makes s safe as XML text or a quoted attribute value.
func xmlEscape(s string) string {
	return xmlEscaper.Replace(clean(s))
}

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;")
