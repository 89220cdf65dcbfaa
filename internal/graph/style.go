package graph

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// The look shared by every renderer: one colour and line style per edge
// kind, per cluster kind and per highlight hop.

type edgeStyle struct {
	color string
	dash  string // "", "dashed" or "dotted"
	width float64
	arrow bool
	what  string // for the legend
}

var edgeStyles = map[Kind]edgeStyle{
	KindPublished:   {"#e03131", "", 1.8, true, "to a published port, and on to its container (bypasses network isolation)"},
	KindNetwork:     {"#1c7ed6", "", 1.2, true, "over a shared network"},
	KindGateway:     {"#f08c00", "dashed", 1.2, true, "to the host through a network's gateway address"},
	KindHostNetwork: {"#7048e8", "dashed", 1.8, true, "from or to the host's network namespace"},
	KindEgress:      {"#868e96", "dotted", 1.2, true, "out to the internet"},
	KindNamespace:   {"#0ca678", "", 2.2, true, "shared network namespace (--network container:X)"},
	KindSame:        {"#adb5bd", "dotted", 1.2, false, "the same container, drawn in each of its zones"},
	KindPath:        {"#c2255c", "", 3, true, "blast radius: how the attacker gets there"},
	KindOther:       {"#495057", "", 1, true, "other"},
}

func styleOf(k Kind) edgeStyle {
	if s, ok := edgeStyles[k]; ok {
		return s
	}
	return edgeStyles[KindOther]
}

type boxStyle struct {
	fill, stroke string
	dashed       bool
}

// clusterStyle returns the look of a cluster.
func clusterStyle(c *Cluster) boxStyle {
	switch c.Kind {
	case ClusterPublished:
		return boxStyle{"#fff5f5", "#e03131", false}
	case ClusterHost:
		return boxStyle{"#f3f0ff", "#7048e8", false}
	case ClusterIsolated:
		return boxStyle{"#f8f9fa", "#adb5bd", true}
	}
	s := boxStyle{"#f1f6fd", "#4c78a8", c.ICCOff}
	switch {
	case c.DefaultBridge:
		s.fill, s.stroke = "#fff4e6", "#e8590c"
	case c.Internal:
		s.fill, s.stroke = "#ebfbee", "#2f9e44"
	}
	return s
}

// nodeStyle returns the look of a node, before any highlight.
func nodeStyle(n *Node) boxStyle {
	s := boxStyle{"#ffffff", "#495057", false}
	switch n.Kind {
	case NodePort:
		return boxStyle{"#ffe3e3", "#e03131", false}
	case NodeOutside:
		return boxStyle{"#f8f9fa", "#495057", false}
	case NodeInternet:
		return boxStyle{"#e7f5ff", "#1971c2", false}
	case NodeHost:
		return boxStyle{"#e5dbff", "#7048e8", false}
	case NodeFolded:
		s.fill = "#e9ecef"
	}
	if n.HasClass("data") {
		s.fill = "#fff3bf"
	}
	if n.HasClass("stopped") {
		s.fill = "#f1f3f5"
	}
	switch {
	case n.HasClass("privileged"):
		s.stroke = "#c92a2a"
	case n.HasClass("untrusted"):
		s.stroke, s.dashed = "#e8590c", true
	case n.HasClass("gateway"):
		s.stroke = "#1c7ed6"
	}
	return s
}

// hopFill is the fill of a node reached in hops (0: the source).
func hopFill(hops int) (fill, text string) {
	switch {
	case hops == 0:
		return "#c2255c", "#ffffff"
	case hops == 1:
		return "#f783ac", "#212529"
	case hops == 2:
		return "#fcc2d7", "#212529"
	case hops > 2:
		return "#ffdeeb", "#212529"
	}
	return "#f8f9fa", "#adb5bd"
}

// clean makes a name safe to print in any format: control characters
// (a terminal escape sequence in a container name, say) become U+FFFD.
func clean(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '\uFFFD'
		}
		return r
	}, s)
}
