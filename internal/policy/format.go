package policy

import (
	"slices"
	"strconv"
	"strings"

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
		add(zones, key(z.Name, z.Comment), v)
	}
	add(top, key("zones", p.Comments.Zones), zones)

	workloads := mapping(false)
	for i := range p.Workloads {
		w := &p.Workloads[i]
		add(workloads, key(w.Name, w.Comment), formatWorkload(w))
	}
	add(top, key("workloads", p.Comments.Workloads), workloads)

	if len(p.Flows) > 0 || p.Comments.Flows != "" {
		flows := sequence(len(p.Flows) == 0)
		for _, f := range p.Flows {
			v := mapping(true)
			add(v, str("from"), str(f.From.String()))
			add(v, str("to"), str(f.To.String()))
			add(v, str("ports"), ports(f.Ports))
			v.HeadComment = comment(f.Comment)
			flows.Content = append(flows.Content, v)
		}
		add(top, key("flows", p.Comments.Flows), flows)
	}
	if len(p.Tests) > 0 || p.Comments.Tests != "" {
		tests := sequence(len(p.Tests) == 0)
		for _, t := range p.Tests {
			v := mapping(true)
			add(v, str("from"), str(t.From.String()))
			add(v, str("to"), str(t.To.String()))
			if t.Port.Proto != "" {
				add(v, str("port"), str(t.Port.String()))
			}
			add(v, str("expect"), str(string(t.Expect)))
			v.HeadComment = comment(t.Comment)
			tests.Content = append(tests.Content, v)
		}
		add(top, key("tests", p.Comments.Tests), tests)
	}
	add(top, key("unmanaged", p.Comments.Unmanaged), str(string(p.UnmanagedMode())))

	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{top}}
	out, err := yaml.Dump(doc, yaml.WithIndent(2), yaml.WithCompactSeqIndent(false), yaml.WithLineWidth(-1), yaml.WithQuotePreference(yaml.QuoteDouble))
	if err != nil {
		// The tree holds only strings, lists and mappings built above.
		panic("policy: formatting: " + err.Error())
	}
	return spaceSections(out)
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

func ports(l PortList) *yaml.Node {
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
