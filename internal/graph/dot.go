package graph

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// DOT writes g as a Graphviz digraph: clusters for the zones, compound
// edges (lhead/ltail) for the edges that start or end at a zone. Render it
// with "dot -Tsvg" or any Graphviz viewer.
func DOT(w io.Writer, g *Graph) error {
	var b strings.Builder
	const font = `fontname="Helvetica,Arial,sans-serif"`
	fmt.Fprintf(&b, "// %s\n", clean(firstNonEmpty(g.Title, "zonewarden graph")))
	b.WriteString("digraph zonewarden {\n")
	fmt.Fprintf(&b, "  graph [rankdir=LR, compound=true, newrank=true, nodesep=0.25, ranksep=0.7, %s, fontsize=12, labelloc=t, label=%s];\n",
		font, dotQuote(strings.Join(caption(g), "\n")))
	fmt.Fprintf(&b, "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", color=\"#495057\", %s, fontsize=10];\n", font)
	fmt.Fprintf(&b, "  edge [%s, fontsize=9, arrowsize=0.7];\n", font)

	inCluster := map[string]bool{}
	for _, c := range g.Clusters {
		for _, id := range c.Nodes {
			inCluster[id] = true
		}
	}
	for i := range g.Nodes {
		if n := &g.Nodes[i]; !inCluster[n.ID] {
			b.WriteString("  " + dotNode(g, n) + "\n")
		}
	}
	for i := range g.Clusters {
		c := &g.Clusters[i]
		s := clusterStyle(c)
		style := "rounded,filled"
		if s.dashed {
			style += ",dashed"
		}
		fmt.Fprintf(&b, "  subgraph cluster_%s {\n", c.ID)
		fmt.Fprintf(&b, "    label=%s; style=%q; fillcolor=%q; color=%q; fontsize=11;\n",
			dotQuote(strings.Join(c.Label(), "\n")), style, s.fill, s.stroke)
		if len(c.Nodes) == 0 {
			// An empty subgraph is not drawn: give it an invisible point.
			fmt.Fprintf(&b, "    %s_empty [shape=point, style=invis, label=\"\"];\n", c.ID)
		}
		for _, id := range c.Nodes {
			b.WriteString("    " + dotNode(g, g.Node(id)) + "\n")
		}
		b.WriteString("  }\n")
	}
	for _, e := range g.Edges {
		b.WriteString("  " + dotEdge(g, &e) + "\n")
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func dotNode(g *Graph, n *Node) string {
	s := nodeStyle(n)
	attrs := []string{"label=" + dotQuote(strings.Join(n.Lines, "\n"))}
	switch n.Kind {
	case NodePort:
		attrs = append(attrs, "shape=cds", `style="filled"`)
	case NodeOutside, NodeInternet:
		attrs = append(attrs, "shape=ellipse", `style="filled"`)
	case NodeHost:
		attrs = append(attrs, "shape=component", `style="filled"`)
	case NodeFolded:
		attrs = append(attrs, "shape=box3d", `style="filled"`)
	default:
		if s.dashed {
			attrs = append(attrs, `style="rounded,filled,dashed"`)
		}
	}
	fill, text := s.fill, ""
	stroke := s.stroke
	if g.Highlight != nil && n.Kind != NodePort {
		fill, text = hopFill(n.Hops)
		if n.Hops < 0 {
			stroke = "#ced4da"
		}
	}
	if fill != "#ffffff" {
		attrs = append(attrs, "fillcolor="+strconv.Quote(fill))
	}
	if stroke != "#495057" {
		attrs = append(attrs, "color="+strconv.Quote(stroke))
	}
	if text != "" && text != "#212529" {
		attrs = append(attrs, "fontcolor="+strconv.Quote(text))
	}
	if n.HasClass("privileged") || n.HasClass("gateway") || (g.Highlight != nil && n.Hops == 0) {
		attrs = append(attrs, "penwidth=2")
	}
	if n.Peer != "" && n.Kind == NodeContainer {
		attrs = append(attrs, "tooltip="+dotQuote(n.Peer))
	}
	return n.ID + " [" + strings.Join(attrs, ", ") + "];"
}

func dotEdge(g *Graph, e *Edge) string {
	s := styleOf(e.Kind)
	from, ltail := dotEnd(g, e.From)
	to, lhead := dotEnd(g, e.To)
	attrs := []string{"color=" + strconv.Quote(s.color)}
	if s.dash != "" {
		attrs = append(attrs, "style="+s.dash)
	}
	if s.width != 1 {
		attrs = append(attrs, "penwidth="+strconv.FormatFloat(s.width, 'f', -1, 64))
	}
	switch {
	case !s.arrow:
		attrs = append(attrs, "dir=none")
	case e.Both:
		attrs = append(attrs, "dir=both")
	}
	label := e.Label
	if e.Kind == KindPath {
		label = "hop " + strconv.Itoa(e.Hop)
		attrs = append(attrs, "constraint=false")
	}
	if label != "" {
		attrs = append(attrs, "label="+dotQuote(label), "fontcolor="+strconv.Quote(s.color))
	}
	if ltail != "" {
		attrs = append(attrs, "ltail="+ltail)
	}
	if lhead != "" {
		attrs = append(attrs, "lhead="+lhead)
	}
	attrs = append(attrs, "class="+strconv.Quote(string(e.Kind)))
	return from + " -> " + to + " [" + strings.Join(attrs, ", ") + "];"
}

// dotEnd returns the node an edge is attached to and, for a cluster end,
// the cluster's name for lhead/ltail.
func dotEnd(g *Graph, id string) (node, cluster string) {
	if c := g.Cluster(id); c != nil {
		if len(c.Nodes) == 0 {
			return c.ID + "_empty", "cluster_" + c.ID
		}
		return c.Nodes[0], "cluster_" + c.ID
	}
	return id, ""
}

// dotQuote quotes s as a DOT string: quotes and backslashes escaped,
// newlines as \n (centred lines).
func dotQuote(s string) string {
	lines := strings.Split(s, "\n")
	esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	for i, l := range lines {
		lines[i] = esc.Replace(clean(l))
	}
	return `"` + strings.Join(lines, `\n`) + `"`
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// caption returns the lines under the title of a drawing.
func caption(g *Graph) []string {
	lines := []string{firstNonEmpty(g.Title, "zonewarden graph")}
	if g.Highlight != nil {
		lines = append(lines, g.Highlight.Describe())
	}
	if g.Folded > 0 {
		lines = append(lines, fmt.Sprintf("%d ordinary containers folded into one node per zone", g.Folded))
	}
	return lines
}
