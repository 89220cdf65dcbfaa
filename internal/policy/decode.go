package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v4"

	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/suggest"
)

// Options tune Parse and Validate.
type Options struct {
	// MaxProblems stops collecting problems after this many; 0 reports
	// them all.
	MaxProblems int
}

// Parse reads a policy file strictly and validates it. file names the
// policy in positions. On failure the error is an *Error listing every
// problem as file:line:col: message, in file order, and the policy is nil.
func Parse(file string, data []byte, opts Options) (*Policy, error) {
	ps := &problems{file: file, limit: opts.MaxProblems}
	p := decode(file, data, ps)
	if p != nil && !ps.full() {
		validate(p, ps)
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return p, nil
}

// Validate checks a policy built in code (or decoded and then changed)
// the way Parse does: references, port overlaps, published ports, paths
// of flows. Problems carry the positions the policy holds.
func Validate(p *Policy, opts Options) error {
	ps := &problems{file: p.File, limit: opts.MaxProblems}
	if p.Version != Version {
		ps.add(Pos{}, fmt.Sprintf("version %d is not supported: this zonewarden reads version %d", p.Version, Version))
	}
	validate(p, ps)
	return ps.err()
}

// Keys of each mapping of the format.
var (
	policyKeys   = []string{"version", "zones", "workloads", "flows", "tests", "unmanaged", "mode"}
	zoneKeys     = []string{"internal", "default", "mode", "encrypted"}
	workloadKeys = []string{"match", "zones", "publish", "ingress", "egress"}
	matchKeys    = []string{"name", "image", "label", "compose"}
	composeKeys  = []string{"project", "service"}
	egressKeys   = []string{"to", "ports"}
	flowKeys     = []string{"from", "to", "ports"}
	testKeys     = []string{"from", "to", "port", "expect"}
)

// decoder turns YAML nodes into a Policy, reporting what it cannot read.
type decoder struct {
	ps *problems
	// budget bounds the nodes visited, so that aliases cannot make a small
	// file expand without limit.
	budget int
}

func decode(file string, data []byte, ps *problems) *Policy {
	root, pre, ok := load(data, ps)
	if !ok {
		return nil
	}
	d := &decoder{ps: ps, budget: 4*len(data) + 1024}
	p := &Policy{File: file, Unmanaged: UnmanagedWarn}
	if root.HeadComment != "" {
		p.Comments.Head = uncomment(root.HeadComment)
	}
	top := d.node(root.Content[0])
	if top == nil {
		return nil
	}
	if top.Kind != yaml.MappingNode {
		d.errf(top, "a policy is a mapping that starts with version: %d (see docs/policy.md)", Version)
		return nil
	}
	var sawVersion bool
	d.fields(top, "the policy", policyKeys, func(i int, k, v *yaml.Node) {
		comment := uncomment(k.HeadComment)
		switch policyKeys[i] {
		case "version":
			sawVersion = true
			if comment != "" {
				p.Comments.Head = joinComments(p.Comments.Head, comment)
			}
			d.version(v, p)
		case "zones":
			p.Comments.Zones = comment
			d.zones(v, p)
		case "workloads":
			p.Comments.Workloads = comment
			d.workloads(v, p)
		case "flows":
			p.Comments.Flows = comment
			if r := pre[k.Line]; r != nil {
				p.Flows = append(p.Flows, r.flows...)
				d.addProblems(r.probs)
			} else {
				d.flows(v, p)
			}
		case "tests":
			p.Comments.Tests = comment
			if r := pre[k.Line]; r != nil {
				p.Tests = append(p.Tests, r.tests...)
				d.addProblems(r.probs)
			} else {
				d.tests(v, p)
			}
		case "unmanaged":
			p.Comments.Unmanaged = comment
			if s, ok := d.scalar(v, "unmanaged"); ok {
				switch u := Unmanaged(strings.ToLower(s)); u {
				case UnmanagedAllow, UnmanagedWarn, UnmanagedDeny:
					p.Unmanaged = u
				default:
					d.errf(v, "unmanaged must be allow, warn or deny, not %q", s)
				}
			}
		case "mode":
			p.Comments.Mode = comment
			p.Mode = d.mode(v)
		}
	})
	if !sawVersion {
		d.errf(top, "no version: a policy starts with version: %d", Version)
	}
	return p
}

// workers is how many pieces of a large file are parsed at once (a
// variable for tests).
var workers = func() int { return runtime.GOMAXPROCS(0) }

// load parses data into one YAML document node. The flows and tests of a
// large file may come decoded already, in pre by the line of their key.
func load(data []byte, ps *problems) (*yaml.Node, map[int]*decoded, bool) {
	if doc, pre, ok := loadChunked(data, workers()); ok {
		return doc, pre, true
	}
	doc, ok := loadWhole(data, ps)
	return doc, nil, ok
}

// addProblems adds the problems a piece's decoder found.
func (d *decoder) addProblems(list []Problem) {
	for _, pr := range list {
		d.ps.add(Pos{Line: pr.Line, Col: pr.Col}, pr.Msg)
	}
}

// loadWhole parses data as one YAML stream of one document.
func loadWhole(data []byte, ps *problems) (*yaml.Node, bool) {
	l, err := yaml.NewLoader(bytes.NewReader(data), yaml.WithUniqueKeys(false))
	if err != nil {
		ps.add(Pos{Line: 1, Col: 1}, err.Error())
		return nil, false
	}
	var doc yaml.Node
	if err := l.Load(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			ps.add(Pos{Line: 1, Col: 1}, fmt.Sprintf("the policy is empty: it starts with version: %d (zonewarden init writes a starter policy)", Version))
		} else {
			pos, msg := yamlError(err)
			ps.add(pos, msg)
		}
		return nil, false
	}
	var next yaml.Node
	switch err := l.Load(&next); {
	case err == nil:
		ps.add(Pos{Line: next.Line, Col: next.Column}, "a second YAML document: a policy file holds one (remove the --- line)")
		return nil, false
	case !errors.Is(err, io.EOF):
		pos, msg := yamlError(err)
		ps.add(pos, msg)
		return nil, false
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		ps.add(Pos{Line: 1, Col: 1}, fmt.Sprintf("the policy is empty: it starts with version: %d", Version))
		return nil, false
	}
	return &doc, true
}

// A YAML error as go.yaml.in/yaml/v4 formats it: "yaml: [CONTEXT at
// MARK: ][MARK: ]PROBLEM", a MARK being "line N[, column M]" or
// "<unknown position>".
var (
	yamlMessage = regexp.MustCompile(`^(?:(while [^:]*?) at (line \d+(?:, column \d+)?|<unknown position>): )?(?:(line \d+(?:, column \d+)?): )?(.+)$`)
	yamlMark    = regexp.MustCompile(`^line (\d+)(?:, column (\d+))?$`)
)

// yamlError reads the position out of a YAML syntax error. The parser of
// v4.0.0-rc.4 (unlike its scanner) prints 0-based lines for the problems
// it reports inside a "while parsing" context and for a few others, as
// internal/inventory/compose found; TestSyntaxErrors pins the positions.
func yamlError(err error) (Pos, string) {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	rest, _ := strings.CutPrefix(msg, "yaml: ")
	m := yamlMessage.FindStringSubmatch(rest)
	if m == nil {
		return Pos{Line: 1, Col: 1}, rest
	}
	context, contextMark, problemMark, problem := m[1], m[2], m[3], m[4]
	if problemMark == "" {
		problemMark = contextMark
	}
	pos := Pos{Line: 1, Col: 1}
	if mm := yamlMark.FindStringSubmatch(problemMark); mm != nil {
		pos.Line, _ = strconv.Atoi(mm[1])
		if mm[2] != "" {
			pos.Col, _ = strconv.Atoi(mm[2])
		}
	}
	zeroBased := map[string]bool{
		"did not find expected <stream-start>":   true,
		"did not find expected <document start>": true,
		"did not find expected node content":     true,
		"found duplicate %YAML directive":        true,
		"found incompatible YAML document":       true,
		"found duplicate %TAG directive":         true,
	}[problem]
	if context != "" {
		zeroBased = strings.HasPrefix(context, "while parsing a ") &&
			!strings.HasPrefix(context, "while parsing a tag") &&
			!strings.HasPrefix(context, "while parsing a %TAG")
	}
	if zeroBased {
		pos.Line++
	}
	if strings.HasPrefix(problem, "unknown anchor") && pos.Col > 1 {
		pos.Col--
	}
	return pos, "YAML syntax: " + problem + " (check the indentation and quoting)"
}

func (d *decoder) errf(n *yaml.Node, format string, args ...any) {
	d.ps.add(Pos{Line: n.Line, Col: n.Column}, fmt.Sprintf(format, args...))
}

func at(n *yaml.Node) Pos { return Pos{Line: n.Line, Col: n.Column} }

// node follows aliases and charges the budget; nil when it is spent.
func (d *decoder) node(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.budget--
	if d.budget < 0 {
		if d.budget == -1 && n != nil {
			d.errf(n, "the policy expands to too many values (aliases that repeat large parts?)")
		}
		return nil
	}
	return n
}

// fields walks the mapping n, whose keys must be among known (at most 8),
// calling fn once per key. It reports keys that are unknown, repeated or
// not names.
func (d *decoder) fields(n *yaml.Node, what string, known []string, fn func(i int, k, v *yaml.Node)) {
	n = d.node(n)
	if n == nil || d.isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errf(n, "%s must be a mapping with the keys %s", what, strings.Join(known, ", "))
		return
	}
	var seen [8]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := d.node(n.Content[i])
		if k == nil {
			return
		}
		key, ok := d.key(k)
		if !ok {
			continue
		}
		idx := slices.Index(known, key)
		switch {
		case idx < 0:
			d.errf(k, "unknown field %q in %s (known: %s)%s", key, what, strings.Join(known, ", "), didYouMean(key, known))
		case seen[idx] != nil:
			d.errf(k, "duplicate key %q in %s (first at %d:%d)", key, what, seen[idx].Line, seen[idx].Column)
		default:
			seen[idx] = k
			fn(idx, k, n.Content[i+1])
		}
	}
}

// entries walks a mapping of names (zones, workloads, labels), reporting
// repeated names; fn sees each name once.
func (d *decoder) entries(n *yaml.Node, what string, fn func(name string, k, v *yaml.Node)) {
	n = d.node(n)
	if n == nil || d.isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errf(n, "%s must be a mapping of names to settings", what)
		return
	}
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := d.node(n.Content[i])
		if k == nil {
			return
		}
		name, ok := d.key(k)
		if !ok {
			continue
		}
		if first := seen[name]; first != nil {
			d.errf(k, "duplicate key %q in %s (first at %d:%d)", name, what, first.Line, first.Column)
			continue
		}
		seen[name] = k
		fn(name, k, n.Content[i+1])
	}
}

func (d *decoder) key(k *yaml.Node) (string, bool) {
	if k.Kind != yaml.ScalarNode {
		d.errf(k, "a key must be a plain name, not a %s", kindName(k))
		return "", false
	}
	if k.ShortTag() == "!!merge" {
		d.errf(k, "merge keys (<<) are not supported in a policy: write the fields out")
		return "", false
	}
	return k.Value, true
}

func (d *decoder) isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// scalar reads a non-empty scalar as text.
func (d *decoder) scalar(n *yaml.Node, what string) (string, bool) {
	n = d.node(n)
	if n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		d.errf(n, "%s must be a single value, not a %s", what, kindName(n))
		return "", false
	}
	switch n.ShortTag() {
	case "!!str", "!!int", "!!float", "!!bool":
	case "!!null":
		d.errf(n, "%s is empty", what)
		return "", false
	default:
		d.errf(n, "%s: the tag %s is not supported here", what, n.Tag)
		return "", false
	}
	if n.Value == "" {
		d.errf(n, "%s is empty", what)
		return "", false
	}
	return n.Value, true
}

// seq walks a sequence; null is an empty sequence.
func (d *decoder) seq(n *yaml.Node, what, example string, fn func(item *yaml.Node)) (*yaml.Node, bool) {
	n = d.node(n)
	if n == nil {
		return nil, false
	}
	if d.isNull(n) {
		return n, true
	}
	if n.Kind != yaml.SequenceNode {
		d.errf(n, "%s must be a list, like %s", what, example)
		return n, false
	}
	for _, item := range n.Content {
		if d.budget < 0 {
			return n, false
		}
		fn(item)
	}
	return n, true
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	}
	return "YAML node"
}

func (d *decoder) version(v *yaml.Node, p *Policy) {
	v = d.node(v)
	if v == nil {
		return
	}
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" {
		d.errf(v, "version must be the number %d", Version)
		return
	}
	n, err := strconv.Atoi(v.Value)
	if err != nil || n != Version {
		d.errf(v, "version %s is not supported: this zonewarden reads version %d", v.Value, Version)
		return
	}
	p.Version = n
}

func (d *decoder) zones(n *yaml.Node, p *Policy) {
	d.entries(n, "zones", func(name string, k, v *yaml.Node) {
		z := Zone{Name: name, Default: Allow, Pos: at(k), Comment: uncomment(k.HeadComment)}
		d.fields(v, "zone "+name, zoneKeys, func(i int, _, v *yaml.Node) {
			switch zoneKeys[i] {
			case "internal":
				z.Internal = d.boolean(v, "internal")
			case "default":
				if s, ok := d.scalar(v, "default"); ok {
					switch a := Action(strings.ToLower(s)); a {
					case Allow, Deny:
						z.Default = a
					default:
						d.errf(v, "default must be allow or deny, not %q", s)
					}
				}
			case "mode":
				z.Mode = d.mode(v)
			case "encrypted":
				e := d.boolean(v, "encrypted")
				z.Encrypted = &e
			}
		})
		p.Zones = append(p.Zones, z)
	})
}

// mode reads enforce or monitor.
func (d *decoder) mode(v *yaml.Node) Mode {
	s, ok := d.scalar(v, "mode")
	if !ok {
		return ""
	}
	switch m := Mode(strings.ToLower(s)); m {
	case Enforce, Monitor:
		return m
	}
	d.errf(v, "mode must be enforce (drop what no flow allows) or monitor (log it as would deny, let it through), not %q", s)
	return ""
}

func (d *decoder) boolean(n *yaml.Node, what string) bool {
	n = d.node(n)
	if n == nil {
		return false
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		if b, err := strconv.ParseBool(strings.ToLower(n.Value)); err == nil {
			return b
		}
	}
	d.errf(n, "%s must be true or false", what)
	return false
}

func (d *decoder) workloads(n *yaml.Node, p *Policy) {
	d.entries(n, "workloads", func(name string, k, v *yaml.Node) {
		w := Workload{Name: name, Pos: at(k), Comment: uncomment(k.HeadComment), matchPos: at(k)}
		what := "workload " + name
		d.fields(v, what, workloadKeys, func(i int, key, v *yaml.Node) {
			before := len(d.ps.list)
			defer func() {
				if len(d.ps.list) > before {
					w.bad |= badFields(1) << i // workloadKeys and badFields share their order
				}
			}()
			switch workloadKeys[i] {
			case "match":
				w.matchPos = at(key)
				d.match(v, what, &w.Match)
			case "zones":
				d.seq(v, "zones", "[application-tier]", func(item *yaml.Node) {
					if s, ok := d.scalar(item, "a zone name"); ok {
						w.Zones = append(w.Zones, s)
						w.zonePos = append(w.zonePos, at(item))
					}
				})
			case "publish":
				d.seq(v, "publish", `["443:443/tcp"]`, func(item *yaml.Node) {
					if s, ok := d.scalar(item, "a published port"); ok {
						pub, err := ParsePublish(s)
						if err != nil {
							d.errf(item, "%v", err)
							return
						}
						w.Publish = append(w.Publish, pub)
						w.publishPos = append(w.publishPos, at(item))
					}
				})
			case "ingress":
				d.seq(v, "ingress", `["0.0.0.0/0"]`, func(item *yaml.Node) {
					if pfx, ok := d.prefix(item, "ingress"); ok {
						w.Ingress = append(w.Ingress, pfx)
						w.ingressPos = append(w.ingressPos, at(item))
					}
				})
			case "egress":
				d.seq(v, "egress", `[{to: 203.0.113.0/24, ports: [443/tcp]}]`, func(item *yaml.Node) {
					e := Egress{Pos: at(item)}
					var sawTo, sawPorts bool
					d.fields(item, "an egress rule", egressKeys, func(i int, _, v *yaml.Node) {
						switch egressKeys[i] {
						case "to":
							sawTo = true
							e.To, sawTo = d.prefix(v, "egress to")
						case "ports":
							sawPorts = true
							e.Ports = d.ports(v, "egress ports")
						}
					})
					if d.node(item) != nil && d.node(item).Kind == yaml.MappingNode {
						if !hasKey(item, "to") {
							d.errf(item, "an egress rule needs to: a CIDR, like 203.0.113.0/24")
						}
						if !hasKey(item, "ports") {
							d.errf(item, "an egress rule needs ports: a list, like [443/tcp], or [all]")
						}
					}
					if sawTo && sawPorts && len(e.Ports) > 0 {
						w.Egress = append(w.Egress, e)
					}
				})
			}
		})
		p.Workloads = append(p.Workloads, w)
	})
}

func hasKey(n *yaml.Node, key string) bool {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.Value == key {
			return true
		}
	}
	return false
}

func (d *decoder) match(n *yaml.Node, what string, m *Match) {
	d.fields(n, "the match of "+what, matchKeys, func(i int, _, v *yaml.Node) {
		switch matchKeys[i] {
		case "name":
			m.Name, _ = d.glob(v, "match name")
		case "image":
			m.Image, _ = d.glob(v, "match image")
		case "label":
			d.entries(v, "match label", func(key string, k, v *yaml.Node) {
				if key == "" {
					d.errf(k, "a label key is empty")
					return
				}
				if s, ok := d.glob(v, "the value of label "+key); ok {
					if m.Labels == nil {
						m.Labels = map[string]string{}
					}
					m.Labels[key] = s
				}
			})
		case "compose":
			d.fields(v, "match compose", composeKeys, func(i int, _, v *yaml.Node) {
				switch composeKeys[i] {
				case "project":
					m.Compose.Project, _ = d.glob(v, "compose project")
				case "service":
					m.Compose.Service, _ = d.glob(v, "compose service")
				}
			})
		}
	})
}

func (d *decoder) glob(n *yaml.Node, what string) (string, bool) {
	s, ok := d.scalar(n, what)
	if !ok {
		return "", false
	}
	if !validGlob(s) {
		d.errf(d.node(n), "%s %q is not a valid glob (use *, ? and [a-z]; close every [)", what, s)
		return "", false
	}
	return s, true
}

func (d *decoder) prefix(n *yaml.Node, what string) (netip.Prefix, bool) {
	s, ok := d.scalar(n, what)
	if !ok {
		return netip.Prefix{}, false
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		if a, aerr := netip.ParseAddr(s); aerr == nil {
			d.errf(d.node(n), "%s %q is an address, not a CIDR: write %s for this address alone", what, s, netip.PrefixFrom(a, a.BitLen()))
		} else {
			d.errf(d.node(n), "%s %q is not a CIDR, like 203.0.113.0/24 or 2001:db8::/32", what, s)
		}
		return netip.Prefix{}, false
	}
	if m := pfx.Masked(); m != pfx {
		d.errf(d.node(n), "%s %q has bits set beyond its prefix length: write %s", what, s, m)
		return netip.Prefix{}, false
	}
	return pfx, true
}

// ports reads a list of port ranges, reporting overlaps at the later
// entry, and returns it sorted.
func (d *decoder) ports(n *yaml.Node, what string) l4.List {
	var list l4.List
	var pos []Pos
	seqNode, ok := d.seq(n, what, "[8080/tcp, 53/udp]", func(item *yaml.Node) {
		s, ok := d.scalar(item, "a port")
		if !ok {
			return
		}
		r, err := l4.ParseRange(s)
		if err != nil {
			d.errf(d.node(item), "%v", err)
			return
		}
		list = append(list, r)
		pos = append(pos, at(d.node(item)))
	})
	if !ok {
		return nil
	}
	if len(list) == 0 {
		if seqNode != nil && (len(seqNode.Content) == 0 || d.isNull(seqNode)) {
			d.errf(seqNode, "%s is empty: list at least one port, or all", what)
		}
		return nil
	}
	if len(list) == 1 {
		return list
	}
	for _, c := range overlaps(list, pos) {
		d.ps.add(pos[c.later], fmt.Sprintf("port %s overlaps %s (at %d:%d): list each port once", list[c.later], list[c.earlier], pos[c.earlier].Line, pos[c.earlier].Col))
	}
	return l4.Normalize(list)
}

type overlap struct{ earlier, later int }

// overlaps finds ranges of list that share a port with another, pairing
// each with one it overlaps; earlier/later follow positions.
func overlaps(list l4.List, pos []Pos) []overlap {
	idx := make([]int, len(list))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return list[a].Compare(list[b]) })
	var out []overlap
	prev := -1 // the range reaching furthest so far in its protocol
	for _, i := range idx {
		if prev >= 0 && list[prev].Overlaps(list[i]) {
			o := overlap{earlier: prev, later: i}
			if before(pos[i], pos[prev]) {
				o = overlap{earlier: i, later: prev}
			}
			out = append(out, o)
			if list[prev].Proto != l4.ProtoAll && list[i].Last > list[prev].Last {
				prev = i
			}
			continue
		}
		prev = i
	}
	return out
}

func before(a, b Pos) bool { return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col }

func (d *decoder) ref(n *yaml.Node, what string) (Ref, Pos, bool) {
	s, ok := d.scalar(n, what)
	if !ok {
		return Ref{}, Pos{}, false
	}
	return ParseRef(s), at(d.node(n)), true
}

func (d *decoder) flows(n *yaml.Node, p *Policy) {
	d.seq(n, "flows", "[{from: frontend, to: api, ports: [8080/tcp]}]", func(item *yaml.Node) {
		if f, ok := d.flow(item); ok {
			p.Flows = append(p.Flows, f)
		}
	})
}

// flow decodes one item of flows; it keeps no node.
func (d *decoder) flow(item *yaml.Node) (Flow, bool) {
	it := d.node(item)
	if it == nil {
		return Flow{}, false
	}
	f := Flow{Pos: at(it), Comment: uncomment(it.HeadComment)}
	ok := true
	d.fields(it, "a flow", flowKeys, func(i int, _, v *yaml.Node) {
		switch flowKeys[i] {
		case "from":
			var good bool
			f.From, f.fromPos, good = d.ref(v, "from")
			ok = ok && good
		case "to":
			var good bool
			f.To, f.toPos, good = d.ref(v, "to")
			ok = ok && good
		case "ports":
			if vv := d.node(v); vv != nil {
				f.portsPos = at(vv)
			}
			f.Ports = d.ports(v, "ports")
			ok = ok && len(f.Ports) > 0
		}
	})
	if it.Kind != yaml.MappingNode {
		return Flow{}, false
	}
	for _, key := range flowKeys {
		if !hasKey(it, key) {
			ok = false
			d.errf(it, "a flow needs %s", map[string]string{
				"from":  "from: a workload, or zone:NAME",
				"to":    "to: a workload, or zone:NAME",
				"ports": "ports: a list, like [8080/tcp], or [all]"}[key])
		}
	}
	return f, ok
}

func (d *decoder) tests(n *yaml.Node, p *Policy) {
	d.seq(n, "tests", "[{from: frontend, to: postgres, port: 5432/tcp, expect: deny}]", func(item *yaml.Node) {
		if t, ok := d.test(item); ok {
			p.Tests = append(p.Tests, t)
		}
	})
}

// test decodes one item of tests; it keeps no node.
func (d *decoder) test(item *yaml.Node) (Test, bool) {
	it := d.node(item)
	if it == nil {
		return Test{}, false
	}
	t := Test{Pos: at(it), Comment: uncomment(it.HeadComment)}
	ok := true
	d.fields(it, "a test", testKeys, func(i int, _, v *yaml.Node) {
		switch testKeys[i] {
		case "from":
			var good bool
			t.From, t.fromPos, good = d.ref(v, "from")
			ok = ok && good
		case "to":
			var good bool
			t.To, t.toPos, good = d.ref(v, "to")
			ok = ok && good
		case "port":
			s, good := d.scalar(v, "port")
			if !good {
				ok = false
				return
			}
			port, err := l4.ParsePort(s)
			if err != nil {
				if r, rerr := l4.ParseRange(s); rerr == nil && r.Proto != l4.ProtoAll {
					d.errf(d.node(v), "a test checks one port, not the range %s: write one port, like %d/%s", s, r.First, r.Proto)
				} else {
					d.errf(d.node(v), "port %q: want one port, like 5432/tcp, 53/udp or icmp (leave port out to test every port)", s)
				}
				ok = false
				return
			}
			t.Port = port
		case "expect":
			s, good := d.scalar(v, "expect")
			if !good {
				ok = false
				return
			}
			switch a := Action(strings.ToLower(s)); a {
			case Allow, Deny:
				t.Expect = a
			default:
				d.errf(d.node(v), "expect must be allow or deny, not %q", s)
				ok = false
			}
		}
	})
	if it.Kind != yaml.MappingNode {
		return Test{}, false
	}
	for _, key := range []string{"from", "to", "expect"} {
		if !hasKey(it, key) {
			ok = false
			d.errf(it, "a test needs %s", map[string]string{
				"from":   "from: a workload, zone:NAME or an address",
				"to":     "to: a workload, zone:NAME or an address",
				"expect": "expect: allow or deny"}[key])
		}
	}
	return t, ok
}

// uncomment strips the "# " of each line of a YAML comment.
func uncomment(c string) string {
	if c == "" {
		return ""
	}
	lines := strings.Split(c, "\n")
	for i, l := range lines {
		l = strings.TrimPrefix(l, "#")
		l = strings.TrimPrefix(l, " ")
		lines[i] = strings.TrimRight(l, " \t")
	}
	return strings.Trim(strings.Join(lines, "\n"), "\n")
}

func joinComments(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "\n\n" + b
}

// didYouMean proposes the known key closest to a misspelt one.
func didYouMean(key string, known []string) string {
	best, dist := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), k); d < dist {
			best, dist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

func editDistance(a, b string) int {
	if len(a) > 32 || len(b) > 32 {
		return 99
	}
	return suggest.Distance(a, b)
}
