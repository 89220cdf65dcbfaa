package policy

import (
	yaml "go.yaml.in/yaml/v4"
)

// Most of a large policy is lines like
//
//	  - {from: web, to: api, ports: [8080/tcp]}
//
// which the YAML parser reads at about 100 ns a byte. fastItems reads a
// run of such lines ten times faster into the same nodes, for loadChunked:
// each line one flow mapping of plain scalars (letters, digits, _ . / : -)
// or quoted ones without escapes, and flow lists of them. Anything else —
// escapes, comments, nesting,
// spaces inside a value, a word YAML reads as null or bool, a number that
// might be a float or a date — makes it give up, and the YAML parser reads
// the piece. FuzzFastItems checks that both give the same nodes.

// fastScanner hands out nodes from slabs, which is cheaper than one
// allocation per node, and interns values. With reuse, each item's nodes
// overwrite the last item's: for a caller that keeps no node.
type fastScanner struct {
	nodes  []yaml.Node
	ptrs   []*yaml.Node
	intern map[string]string
	reuse  bool
	slab   [256]yaml.Node
	pslab  [256]*yaml.Node
}

func (fs *fastScanner) startItem() {
	if fs.reuse {
		fs.nodes, fs.ptrs = fs.slab[:], fs.pslab[:]
	}
}

func (fs *fastScanner) node(kind yaml.Kind, tag, value string, line, col int) *yaml.Node {
	if len(fs.nodes) == 0 {
		fs.nodes = make([]yaml.Node, 4096)
	}
	n := &fs.nodes[0]
	fs.nodes = fs.nodes[1:]
	*n = yaml.Node{Kind: kind, Tag: tag, Value: value, Line: line, Column: col}
	return n
}

// content returns an empty slice with room for k pointers.
func (fs *fastScanner) content(k int) []*yaml.Node {
	if len(fs.ptrs) < k {
		fs.ptrs = make([]*yaml.Node, max(4096, k))
	}
	s := fs.ptrs[:0:k]
	fs.ptrs = fs.ptrs[k:]
	return s
}

func (fs *fastScanner) str(b []byte) string {
	if s, ok := fs.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	fs.intern[s] = s
	return s
}

// fastItems reads lines [first, end) as the items of a block sequence at
// indent, or reports false. Blank lines are skipped; anything else must be
// a one-line flow mapping.
func fastItems(line func(int) []byte, first, end, indent int) ([]*yaml.Node, bool) {
	items := make([]*yaml.Node, 0, end-first)
	ok := fastEach(&fastScanner{intern: map[string]string{}}, line, first, end, indent, func(n *yaml.Node) {
		items = append(items, n)
	})
	return items, ok
}

// fastEach hands each item of lines [first, end) to fn, or reports false
// as soon as a line is not a one-line flow mapping (fn may have seen some
// items by then).
func fastEach(fs *fastScanner, line func(int) []byte, first, end, indent int, fn func(*yaml.Node)) bool {
	for i := first; i < end; i++ {
		l := line(i)
		if isBlank(l) {
			continue
		}
		fs.startItem()
		n, ok := fs.item(l, i+1, indent)
		if !ok {
			return false
		}
		fn(n)
	}
	return true
}

// item reads "<indent>- {k: v, k: [v, v]}".
func (fs *fastScanner) item(l []byte, ln, indent int) (*yaml.Node, bool) {
	if indentOf(l) != indent || len(l) < indent+3 || l[indent] != '-' || l[indent+1] != ' ' {
		return nil, false
	}
	i := skipSpaces(l, indent+2)
	if i >= len(l) || l[i] != '{' {
		return nil, false
	}
	m := fs.node(yaml.MappingNode, "!!map", "", ln, i+1)
	m.Style = yaml.FlowStyle
	var pairs [16]*yaml.Node
	np := 0
	i = skipSpaces(l, i+1)
	for i < len(l) && l[i] != '}' {
		// key
		start := i
		for i < len(l) && (l[i] >= 'a' && l[i] <= 'z' || l[i] >= 'A' && l[i] <= 'Z' || l[i] == '_') {
			i++
		}
		if i == start || i+1 >= len(l) || l[i] != ':' || l[i+1] != ' ' || np+2 > len(pairs) {
			return nil, false
		}
		if special(l[start:i]) {
			return nil, false
		}
		key := fs.node(yaml.ScalarNode, "!!str", fs.str(l[start:i]), ln, start+1)
		i = skipSpaces(l, i+1)
		// value
		var v *yaml.Node
		if i < len(l) && l[i] == '[' {
			v = fs.node(yaml.SequenceNode, "!!seq", "", ln, i+1)
			v.Style = yaml.FlowStyle
			var elems [16]*yaml.Node
			ne := 0
			i = skipSpaces(l, i+1)
			for i < len(l) && l[i] != ']' {
				var e *yaml.Node
				var ok bool
				if e, i, ok = fs.scalar(l, i, ln); !ok || ne == len(elems) {
					return nil, false
				}
				elems[ne] = e
				ne++
				i = skipSpaces(l, i)
				if i < len(l) && l[i] == ',' {
					i = skipSpaces(l, i+1)
					if i < len(l) && l[i] == ']' {
						return nil, false // a trailing comma: leave it to YAML
					}
				} else if i >= len(l) || l[i] != ']' {
					return nil, false
				}
			}
			if i >= len(l) {
				return nil, false
			}
			i++ // ]
			v.Content = append(fs.content(ne), elems[:ne]...)
		} else {
			var ok bool
			if v, i, ok = fs.scalar(l, i, ln); !ok {
				return nil, false
			}
		}
		pairs[np], pairs[np+1] = key, v
		np += 2
		i = skipSpaces(l, i)
		if i < len(l) && l[i] == ',' {
			i = skipSpaces(l, i+1)
			if i < len(l) && l[i] == '}' {
				return nil, false
			}
		} else if i >= len(l) || l[i] != '}' {
			return nil, false
		}
	}
	if i >= len(l) || skipSpaces(l, i+1) != len(l) {
		return nil, false // no closing brace, or something after it
	}
	m.Content = append(fs.content(np), pairs[:np]...)
	return m, true
}

// scalar reads a scalar whose tag is certain into a node.
func (fs *fastScanner) scalar(l []byte, i, ln int) (*yaml.Node, int, bool) {
	tag, style, from, to, next, ok := scanScalar(l, i)
	if !ok {
		return nil, next, false
	}
	n := fs.node(yaml.ScalarNode, tag, fs.str(l[from:to]), ln, i+1)
	n.Style = style
	return n, next, true
}

// scanScalar reads the scalar at l[i:]: a quoted string without escapes on
// one line, a decimal integer, or a plain string that YAML cannot read as
// anything else. It returns the tag, the style, the value's bounds and
// where the scalar ends.
func scanScalar(l []byte, i int) (tag string, style yaml.Style, from, to, next int, ok bool) {
	start := i
	if i < len(l) && (l[i] == '"' || l[i] == '\'') {
		q := l[i]
		i++
		for i < len(l) && l[i] != q {
			if l[i] == '\\' || l[i] < ' ' || l[i] >= 0x7f {
				return "", 0, 0, 0, i, false
			}
			i++
		}
		if i >= len(l) || i+1 < len(l) && l[i+1] == q {
			return "", 0, 0, 0, i, false // unterminated, or '' inside single quotes
		}
		style = yaml.DoubleQuotedStyle
		if q == '\'' {
			style = yaml.SingleQuotedStyle
		}
		return "!!str", style, start + 1, i, i + 1, true
	}
	digits, slash, colon := true, false, false
scan:
	for i < len(l) {
		c := l[i]
		switch {
		case c >= '0' && c <= '9':
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == '.', c == '-':
			digits = false
		case c == '/':
			digits, slash = false, true
		case c == ':':
			digits, colon = false, true
		default:
			break scan
		}
		i++
	}
	s := l[start:i]
	if len(s) == 0 || s[0] == '-' || s[0] == '.' || s[0] == ':' || s[0] == '/' || s[len(s)-1] == ':' {
		return "", 0, 0, 0, i, false
	}
	tag = "!!str"
	switch {
	case digits:
		if len(s) > 18 || len(s) > 1 && s[0] == '0' {
			return "", 0, 0, 0, i, false
		}
		tag = "!!int"
	case s[0] >= '0' && s[0] <= '9':
		// 8080/tcp is a string; 1e3, 1.5, 2001-12-14 or 1:30 might not be.
		if !slash || colon {
			return "", 0, 0, 0, i, false
		}
	case special(s):
		return "", 0, 0, 0, i, false
	}
	return tag, 0, start, i, i, true
}

// special reports the words YAML 1.1 or 1.2 reads as a bool or null.
func special(s []byte) bool {
	switch string(s) {
	case "true", "True", "TRUE", "false", "False", "FALSE", "null", "Null", "NULL",
		"y", "Y", "n", "N", "yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF":
		return true
	}
	return false
}

func skipSpaces(l []byte, i int) int {
	for i < len(l) && l[i] == ' ' {
		i++
	}
	return i
}
