package graph

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Mermaid writes g as a Mermaid flowchart (left to right): a subgraph per
// cluster, edges to a subgraph where an edge holds for the whole cluster.
// It renders in GitHub and GitLab Markdown inside a ```mermaid block.
func Mermaid(w io.Writer, g *Graph) error {
	var b strings.Builder
	for _, l := range caption(g) {
		fmt.Fprintf(&b, "%%%% %s\n", clean(l))
	}
	b.WriteString("flowchart LR\n")
	inCluster := map[string]bool{}
	for _, c := range g.Clusters {
		for _, id := range c.Nodes {
			inCluster[id] = true
		}
	}
	var styles []string
	node := func(indent string, n *Node) {
		b.WriteString(indent + n.ID + mermaidShape(n) + "\n")
		s := nodeStyle(n)
		fill, text, stroke := s.fill, "", s.stroke
		if g.Highlight != nil && n.Kind != NodePort {
			fill, text = hopFill(n.Hops)
			if n.Hops < 0 {
				stroke = "#ced4da"
			}
		}
		st := "fill:" + fill + ",stroke:" + stroke
		if text != "" {
			st += ",color:" + text
		}
		if s.dashed {
			st += ",stroke-dasharray:4 3"
		}
		if n.HasClass("privileged") || n.HasClass("gateway") || (g.Highlight != nil && n.Hops == 0) {
			st += ",stroke-width:2px"
		}
		styles = append(styles, "style "+n.ID+" "+st)
	}
	for i := range g.Nodes {
		if n := &g.Nodes[i]; !inCluster[n.ID] {
			node("  ", n)
		}
	}
	for i := range g.Clusters {
		c := &g.Clusters[i]
		fmt.Fprintf(&b, "  subgraph %s[%s]\n", c.ID, mermaidText(strings.Join(c.Label(), "\n")))
		for _, id := range c.Nodes {
			node("    ", g.Node(id))
		}
		b.WriteString("  end\n")
		s := clusterStyle(c)
		st := "style " + c.ID + " fill:" + s.fill + ",stroke:" + s.stroke
		if s.dashed {
			st += ",stroke-dasharray:4 3"
		}
		styles = append(styles, st)
	}
	byKind := map[Kind][]string{}
	for i, e := range g.Edges {
		s := styleOf(e.Kind)
		arrow := "-->"
		switch {
		case !s.arrow && s.dash != "":
			arrow = "-.-"
		case !s.arrow:
			arrow = "---"
		case s.dash != "" && e.Both:
			arrow = "<-.->"
		case s.dash != "":
			arrow = "-.->"
		case e.Kind == KindPath:
			arrow = "==>"
		case e.Both:
			arrow = "<-->"
		}
		label := e.Label
		if e.Kind == KindPath {
			label = "hop " + strconv.Itoa(e.Hop)
		}
		if label != "" {
			arrow += "|" + mermaidText(label) + "|"
		}
		fmt.Fprintf(&b, "  %s %s %s\n", e.From, arrow, e.To)
		byKind[e.Kind] = append(byKind[e.Kind], strconv.Itoa(i))
	}
	for _, st := range styles {
		b.WriteString("  " + st + "\n")
	}
	for _, k := range kinds {
		idx := byKind[k]
		if len(idx) == 0 {
			continue
		}
		s := styleOf(k)
		st := fmt.Sprintf("stroke:%s,stroke-width:%spx", s.color, strconv.FormatFloat(s.width, 'f', -1, 64))
		switch s.dash {
		case "dashed":
			st += ",stroke-dasharray:6 4"
		case "dotted":
			st += ",stroke-dasharray:2 3"
		}
		fmt.Fprintf(&b, "  linkStyle %s %s\n", strings.Join(idx, ","), st)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mermaidShape(n *Node) string {
	t := mermaidText(strings.Join(n.Lines, "\n"))
	switch n.Kind {
	case NodePort:
		return ">" + t + "]"
	case NodeOutside, NodeInternet:
		return "([" + t + "])"
	case NodeHost:
		return "{{" + t + "}}"
	case NodeFolded:
		return "[[" + t + "]]"
	}
	if n.HasClass("data") {
		return "[(" + t + ")]"
	}
	return "(" + t + ")"
}

// mermaidText quotes a label: Mermaid reads entity codes (#quot;) in
// quoted text and HTML in labels, so both are escaped; lines break with
// <br/>.
func mermaidText(s string) string {
	esc := strings.NewReplacer("#", "#35;", `"`, "#quot;", "<", "#lt;", ">", "#gt;", "&", "#amp;",
		"`", "#96;", "|", "#124;", "[", "#91;", "]", "#93;", "{", "#123;", "}", "#125;")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = esc.Replace(clean(l))
	}
	return `"` + strings.Join(lines, "<br/>") + `"`
}
