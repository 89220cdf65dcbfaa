package policy

import (
	"bytes"
	"slices"
	"strconv"
	"strings"

	"github.com/zonewarden/zonewarden/internal/l4"
	yaml "go.yaml.in/yaml/v4"
)

// Format writes p as canonical YAML: sections in a fixed order, zones,
// workloads, flows and tests in the policy's order, fixed keys in each,
// ports normalised ("80/tcp", ranges merged), comments before what they
// describe. Parse(Format(p)) gives p back, positions aside.
func Format(p *Policy) []byte {
	top := mapping(false)
	version := strconv.Itoa(p.Version)
	if p.Version == 0 {
		version = strconv.Itoa(Version)
	}
	add(top, key("version", p.Comments.Head), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: version})

	zones := mapping(false)
	for _, z := range p.Zones {
		v := mapping(true)
		if z.Internal {
			add(v, str("internal"), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
		}
		def := z.Default
		if def == "" {
			def = Allow
		}
		add(v, str("default"), str(string(def)))
		if z.Mode != "" {
			add(v, str("mode"), str(string(z.Mode)))
		}
		if z.Encrypted != nil {
			add(v, str("encrypted"), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(*z.Encrypted)})
		}
		add(zones, key(z.Name, z.Comment), v)
	}
	add(top, key("zones", p.Comments.Zones), zones)

	workloads := mapping(false)
	for i := range p.Workloads {
		w := &p.Workloads[i]
		add(workloads, key(w.Name, w.Comment), formatWorkload(w))
	}
	add(top, key("workloads", p.Comments.Workloads), workloads)

	var b bytes.Buffer
	b.Write(dump(top))
	// Flows and tests, the bulk of a large policy, are written line by
	// line: the YAML emitter keeps every event of a document and slows
	// down on hundreds of thousands of them.
	if len(p.Flows) > 0 || p.Comments.Flows != "" {
		writeComment(&b, "", p.Comments.Flows)
		if len(p.Flows) == 0 {
			b.WriteString("flows: []\n")
		} else {
			b.WriteString("flows:\n")
		}
		for _, f := range p.Flows {
			writeComment(&b, "  ", f.Comment)
			b.WriteString("  - {from: ")
			writeScalar(&b, f.From.String())
			b.WriteString(", to: ")
			writeScalar(&b, f.To.String())
			b.WriteString(", ports: ")
			writePorts(&b, f.Ports)
			b.WriteString("}\n")
		}
	}
	if len(p.Tests) > 0 || p.Comments.Tests != "" {
		writeComment(&b, "", p.Comments.Tests)
		if len(p.Tests) == 0 {
			b.WriteString("tests: []\n")
		} else {
			b.WriteString("tests:\n")
		}
		for _, t := range p.Tests {
			writeComment(&b, "  ", t.Comment)
			b.WriteString("  - {from: ")
			writeScalar(&b, t.From.String())
			b.WriteString(", to: ")
			writeScalar(&b, t.To.String())
			if t.Port.Proto != "" {
				b.WriteString(", port: ")
				writeScalar(&b, t.Port.String())
			}
			b.WriteString(", expect: ")
			writeScalar(&b, string(t.Expect))
			b.WriteString("}\n")
		}
	}
	tail := mapping(false)
	add(tail, key("unmanaged", p.Comments.Unmanaged), str(string(p.UnmanagedMode())))
	if p.Mode != "" {
		add(tail, key("mode", p.Comments.Mode), str(string(p.Mode)))
	}
	b.Write(dump(tail))
	return spaceSections(b.Bytes())
}

func dump(m *yaml.Node) []byte {
	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{m}}
	out, err := yaml.Dump(doc, yaml.WithIndent(2), yaml.WithCompactSeqIndent(false), yaml.WithLineWidth(-1), yaml.WithQuotePreference(yaml.QuoteDouble))
	if err != nil {
		// The tree holds only strings, lists and mappings built above.
		panic("policy: formatting: " + err.Error())
	}
	return out
}

// writeComment writes text as comment lines at indent.
func writeComment(b *bytes.Buffer, indent, text string) {
	if text == "" {
		return
	}
	for _, l := range strings.Split(text, "\n") {
		b.WriteString(indent)
		if l == "" {
			b.WriteString("#\n")
			continue
		}
		b.WriteString("# ")
		b.WriteString(l)
		b.WriteByte('\n')
	}
}

func writePorts(b *bytes.Buffer, l l4.List) {
	b.WriteByte('[')
	for i, r := range l {
		if i > 0 {
			b.WriteString(", ")
		}
		writeScalar(b, r.String())
	}
	b.WriteByte(']')
}

// writeScalar writes s plain when the fast reader takes it plain and it
// has no ':', in double quotes when it needs no escape, and as the YAML
// emitter writes it otherwise.
func writeScalar(b *bytes.Buffer, s string) {
	if tag, style, _, _, end, ok := scanScalar([]byte(s), 0); ok && end == len(s) && tag == "!!str" && style == 0 && !strings.Contains(s, ":") {
		b.WriteString(s)
		return
	}
	simple := s != ""
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c >= 0x7f || c == '"' || c == '\\' {
			simple = false
			break
		}
	}
	if simple {
		b.WriteByte('"')
		b.WriteString(s)
		b.WriteByte('"')
		return
	}
	seq := sequence(true)
	seq.Content = append(seq.Content, str(s))
	out := strings.TrimSpace(string(dump2(seq)))
	b.WriteString(strings.TrimSuffix(strings.TrimPrefix(out, "["), "]"))
}

func dump2(n *yaml.Node) []byte {
	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{n}}
	out, err := yaml.Dump(doc, yaml.WithLineWidth(-1), yaml.WithQuotePreference(yaml.QuoteDouble))
	if err != nil {
		panic("policy: formatting: " + err.Error())
	}
	return out
}

func formatWorkload(w *Workload) *yaml.Node {
	v := mapping(false)
	m := mapping(true)
	if w.Match.Name != "" {
		add(m, str("name"), str(w.Match.Name))
	}
	if w.Match.Image != "" {
		add(m, str("image"), str(w.Match.Image))
	}
	if len(w.Match.Labels) > 0 {
		labels := mapping(true)
		keys := make([]string, 0, len(w.Match.Labels))
		for k := range w.Match.Labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			add(labels, str(k), str(w.Match.Labels[k]))
		}
		add(m, str("label"), labels)
	}
	if !w.Match.Compose.IsZero() {
		c := mapping(true)
		if w.Match.Compose.Project != "" {
			add(c, str("project"), str(w.Match.Compose.Project))
		}
		if w.Match.Compose.Service != "" {
			add(c, str("service"), str(w.Match.Compose.Service))
		}
		add(m, str("compose"), c)
	}
	add(v, str("match"), m)
	zones := sequence(true)
	for _, z := range w.Zones {
		zones.Content = append(zones.Content, str(z))
	}
	add(v, str("zones"), zones)
	if len(w.Publish) > 0 {
		s := sequence(true)
		for _, p := range w.Publish {
			s.Content = append(s.Content, str(p.String()))
		}
		add(v, str("publish"), s)
	}
	if len(w.Ingress) > 0 {
		s := sequence(true)
		for _, pfx := range w.Ingress {
			s.Content = append(s.Content, str(pfx.String()))
		}
		add(v, str("ingress"), s)
	}
	if len(w.Egress) > 0 {
		s := sequence(true)
		for _, e := range w.Egress {
			r := mapping(true)
			add(r, str("to"), str(e.To.String()))
			add(r, str("ports"), ports(e.Ports))
			s.Content = append(s.Content, r)
		}
		add(v, str("egress"), s)
	}
	return v
}

func mapping(flow bool) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	if flow {
		n.Style = yaml.FlowStyle
	}
	return n
}

func sequence(flow bool) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	if flow {
		n.Style = yaml.FlowStyle
	}
	return n
}

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func key(s, c string) *yaml.Node {
	n := str(s)
	n.HeadComment = comment(c)
	return n
}

func add(m, k, v *yaml.Node) { m.Content = append(m.Content, k, v) }

func ports(l l4.List) *yaml.Node {
	s := sequence(true)
	for _, r := range l {
		s.Content = append(s.Content, str(r.String()))
	}
	return s
}

// comment turns text into YAML comment lines.
func comment(text string) string {
	if text == "" {
		return ""
	}
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if l == "" {
			lines[i] = "#"
		} else {
			lines[i] = "# " + l
		}
	}
	return strings.Join(lines, "\n")
}

// spaceSections puts an empty line before each top-level key after the
// first, above the comment that introduces it.
func spaceSections(out []byte) []byte {
	lines := strings.Split(string(out), "\n")
	res := make([]string, 0, len(lines)+8)
	for i, l := range lines {
		if i > 0 && l != "" && l[0] != ' ' && l[0] != '#' && l[0] != '-' && !strings.HasPrefix(l, "version:") {
			j := len(res)
			for j > 0 && strings.HasPrefix(res[j-1], "#") {
				j--
			}
			if j > 0 && res[j-1] != "" {
				res = slices.Insert(res, j, "")
			}
		}
		res = append(res, l)
	}
	return []byte(strings.Join(res, "\n"))
}
