package enforce

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
)

// Ruleset is zonewarden's table: fixed chains, and sets whose elements
// carry the policy. Two rulesets with the same chains differ only in set
// elements, which an update changes one by one.
type Ruleset struct {
	opts Options
	// family is the table's: inet for the policy (Compile), bridge for
	// the endpoint binding (CompilePorts).
	family string
	defs   []setDef
	// elems maps a set name to its elements, each with a comment (the
	// workloads or containers it stands for).
	elems map[string]map[string]string
	// unmanagedFree: containers no workload selects are left to Docker.
	unmanagedFree bool
	// monitor: some zone is in monitor mode; each drop of the inet
	// table has a twin before it that lets through, logged as "would
	// deny", what no enforced zone is party to.
	monitor bool
	// traced holds ChainRules by name for Trace, made at its first call
	// (the chains do not change after Compile; only set elements do).
	traced     map[string]Chain
	tracedOnce sync.Once
}

// setDef is the declaration of one set.
type setDef struct {
	name, typ string
	interval  bool
	counter   bool
	comment   string
	// typeof: typ is an nft typeof expression (raw payload keys), not
	// a type.
	typeof bool
	// elements every ruleset holds (constants), with their comment.
	fixed [][2]string
}

// setDefs are the sets of the table, per family where the name ends in
// 4 or 6. Flow sets count their hits per element.
func setDefs() []setDef {
	var out []setDef
	for _, f := range families {
		a := f.addr
		out = append(out,
			def("local"+f.suffix, a, true, false, "subnets of every Docker bridge network"),
			def("zones"+f.suffix, a, true, false, "subnets of the policy's zones: traffic from or to them is managed"),
			def("denyzones"+f.suffix, a, true, false, "subnets of the default: deny zones: their members reach the host only by declared flows to published ports"),
			def("admitted"+f.suffix, a, false, false, "containers zonewarden admitted; others in a zone are dropped (fail closed)"),
			def("free"+f.suffix, a, false, false, "containers no workload selects, left to Docker (unmanaged: allow or warn) except toward default: deny zones"),
			def("denyhosts"+f.suffix, a, false, false, "containers on a default: deny zone: never left to Docker with an unmanaged peer"),
			def("allow"+f.suffix, a+" . "+a+" . inet_proto . inet_service", false, true, "declared flows on one port: source . destination . protocol . port"),
			def("allowrange"+f.suffix, a+" . "+a+" . inet_proto . inet_service", true, true, "declared flows on port ranges, icmp or all: source . destination . protocol . ports"),
			def("allowzone"+f.suffix, a+" . "+a, true, false, "zones with default: allow: members reach each other"),
			def("egress"+f.suffix, a+" . "+a+" . inet_proto . inet_service", true, true, "egress beyond the host: container . destination . protocol . port"),
			def("ingress"+f.suffix, a+" . "+a+" . inet_proto . inet_service", true, true, "ingress to published ports: source . container . protocol . port"),
			def("pubin"+f.suffix, a+" . inet_proto . inet_service", true, true, "flows to published host ports through the userland proxy: source . protocol . host port"),
		)
	}
	out = append(out,
		def("pubports", "inet_proto . inet_service", false, false, "host ports published by managed containers: reached from containers by a flow only"),
		def("denypub", "inet_proto . inet_service", false, false, "host ports published by containers on a default: deny zone: unmanaged containers do not reach them"),
	)
	return out
}

// monitorSetDefs are the sets a policy with a zone in monitor mode adds.
func monitorSetDefs() []setDef {
	var out []setDef
	for _, f := range families {
		out = append(out, def("enforced"+f.suffix, f.addr, true, false, "subnets of the zones in enforce mode: what they are party to is dropped, not monitored"))
	}
	return append(out, def("enforcedpub", "inet_proto . inet_service", false, false, "host ports published by containers on a zone in enforce mode"))
}

// def declares a set of the inet table.
func def(name, typ string, interval, counter bool, comment string) setDef {
	return setDef{name: name, typ: typ, interval: interval, counter: counter, comment: comment}
}

func newRuleset(opts Options, family string, defs []setDef) *Ruleset {
	r := &Ruleset{opts: opts, family: family, defs: defs, elems: map[string]map[string]string{}}
	for _, d := range defs {
		r.elems[d.name] = map[string]string{}
		for _, e := range d.fixed {
			r.elems[d.name][e[0]] = e[1]
		}
	}
	return r
}

func (r *Ruleset) add(set, elem, comment string) {
	m := r.elems[set]
	if m == nil {
		panic("enforce: no set " + set)
	}
	old, ok := m[elem]
	switch {
	case !ok:
		m[elem] = comment
	case old == comment || len(old) > 120 || strings.Contains(old, comment):
	default:
		m[elem] = old + "; " + comment
	}
}

// Elements returns a set's elements, sorted.
func (r *Ruleset) Elements(set string) []string {
	return slices.Sorted(maps.Keys(r.elems[set]))
}

// Size counts the elements of every set.
func (r *Ruleset) Size() int {
	n := 0
	for _, m := range r.elems {
		n += len(m)
	}
	return n
}

// ChainRules returns the table's chains as objects, in the order nft
// lists them; Chains renders them, Trace runs them. See README.md for the
// decision order.
func (r *Ruleset) ChainRules() []Chain {
	if r.family == "bridge" {
		return r.portChains()
	}
	prio := fmt.Sprintf("filter %+d", r.opts.Priority)
	prio = strings.Replace(prio, "+", "+ ", 1)
	prio = strings.Replace(prio, "-", "- ", 1)
	established := Rule{Match: []Match{{Kind: CtState, Value: "established,related"}}, Action: Accept}
	forward := Chain{Name: "forward", Hook: "forward", Priority: prio, Rules: []Rule{established}}
	input := Chain{Name: "input", Hook: "input", Priority: prio, Rules: []Rule{established}}
	for _, f := range families {
		src, _ := f.fields()
		forward.Rules = append(forward.Rules, Rule{Match: []Match{f.nfproto()}, Action: Jump, Target: "forward" + f.suffix})
		input.Rules = append(input.Rules, Rule{Match: []Match{f.nfproto(), in("zones"+f.suffix, src), in("pubports", L4Proto, DstPort)}, Action: Jump, Target: "published" + f.suffix})
	}
	if r.unmanagedFree {
		for _, f := range families {
			src, _ := f.fields()
			input.Rules = append(input.Rules, Rule{Match: []Match{f.nfproto(), in("free"+f.suffix, src)}, Action: Accept, Comment: commentUnmanaged})
		}
	}
	for _, f := range families {
		src, _ := f.fields()
		input.Rules = append(input.Rules, r.drop(DropHost, []Match{f.nfproto(), in("denyzones"+f.suffix, src)}, notIn("enforced"+f.suffix, src))...)
	}
	out := []Chain{forward, input}
	for _, f := range families {
		s := f.suffix
		src, dst := f.fields()
		flow := []Field{src, dst, L4Proto, DstPort}
		fw := Chain{Name: "forward" + s}
		add := func(a Action, comment string, d DropRule, m ...Match) {
			if a == Drop {
				fw.Rules = append(fw.Rules, r.drop(d, m, notIn("enforced"+s, src), notIn("enforced"+s, dst))...)
				return
			}
			fw.Rules = append(fw.Rules, Rule{Match: m, Action: a, Comment: comment, Drop: d})
		}
		// Declared flows first: their sets hold admitted addresses only
		// (compile.go, admittedEndpoints), so accepting them before the
		// fail-closed checks decides the same and costs an allowed new
		// connection one hash lookup instead of up to eleven.
		add(Accept, "declared flows", DropRule{}, in("allow"+s, flow...))
		add(Accept, "declared flows on port ranges", DropRule{}, in("allowrange"+s, flow...))
		add(Drop, "", DropUnadmittedSrc, in("zones"+s, src), notIn("admitted"+s, src))
		add(Drop, "", DropUnadmittedDst, in("zones"+s, dst), notIn("admitted"+s, dst))
		if r.unmanagedFree {
			// Never with a container on a default: deny zone: such a
			// zone denies the unknown too.
			add(Accept, commentUnmanaged, DropRule{}, in("free"+s, src), notIn("denyhosts"+s, dst))
			add(Accept, commentUnmanaged, DropRule{}, in("free"+s, dst), notIn("denyhosts"+s, src))
			// What is left of such a container's traffic is with a
			// member of a default: deny zone: never allowed, not even
			// inside a default: allow zone both are on (below).
			add(Drop, "", DropUnmanaged, in("free"+s, src))
			add(Drop, "", DropUnmanaged, in("free"+s, dst))
		}
		add(Accept, "zones with default: allow", DropRule{}, in("allowzone"+s, src, dst))
		add(Accept, "egress", DropRule{}, notIn("local"+s, dst), in("egress"+s, flow...))
		add(Accept, "ingress to published ports", DropRule{}, notIn("local"+s, src), in("ingress"+s, flow...))
		add(Drop, "", DropFromZone, in("zones"+s, src))
		add(Drop, "", DropToZone, in("zones"+s, dst))
		pub := Chain{Name: "published" + s}
		if r.unmanagedFree {
			pub.Rules = append(pub.Rules, Rule{Match: []Match{in("free"+s, src), notIn("denypub", L4Proto, DstPort)}, Action: Accept, Comment: commentUnmanaged})
		}
		pub.Rules = append(pub.Rules,
			Rule{Match: []Match{in("pubin"+s, src, L4Proto, DstPort)}, Action: Accept, Comment: "declared flows to published ports"},
		)
		pub.Rules = append(pub.Rules, r.drop(DropPublished, nil, notIn("enforced"+s, src), notIn("enforcedpub", L4Proto, DstPort))...)
		out = append(out, fw, pub)
	}
	return out
}

// drop returns the rule dropping what meets m as d, with, when a zone is
// in monitor mode, its twin before it: what also meets unenforced (no
// zone in enforce mode is party to the packet) is logged as "would deny"
// and let through.
func (r *Ruleset) drop(d DropRule, m []Match, unenforced ...Match) []Rule {
	rule := Rule{Match: m, Action: Drop, Drop: d}
	if !r.monitor {
		return []Rule{rule}
	}
	twin := Rule{Match: append(slices.Clone(m), unenforced...), Action: Monitor, Drop: d}
	return []Rule{twin, rule}
}

// commentUnmanaged is the comment of the rules that leave a container no
// workload selects to Docker.
const commentUnmanaged = "unmanaged container: Docker decides"

// chains renders the chains as nft text.
func (r *Ruleset) chains() string {
	var b strings.Builder
	for _, c := range r.ChainRules() {
		b.WriteString(c.render(r.opts.LogGroup))
	}
	return b.String()
}

// TableName is the name of the ruleset's table.
func (r *Ruleset) TableName() string { return r.opts.Table }

// Family is the family of the ruleset's table: inet or bridge.
func (r *Ruleset) Family() string { return r.family }

// Script renders a full sync: one nft transaction that replaces
// zonewarden's table with this ruleset (creating it the first time).
// Nothing else on the host is touched.
func (r *Ruleset) Script() string {
	var b strings.Builder
	t, fam := r.opts.Table, r.family
	fmt.Fprintf(&b, "add table %s %s\ndelete table %s %s\n", fam, t, fam, t)
	fmt.Fprintf(&b, "table %s %s {\n\tcomment \"zonewarden: security zones; do not edit, run zonewarden apply\"\n", fam, t)
	for _, d := range r.defs {
		kw := "type"
		if d.typeof {
			kw = "typeof"
		}
		fmt.Fprintf(&b, "\tset %s {\n\t\t%s %s\n", d.name, kw, d.typ)
		if d.interval {
			b.WriteString("\t\tflags interval\n")
		}
		if d.counter {
			b.WriteString("\t\tcounter\n")
		}
		fmt.Fprintf(&b, "\t\tcomment %q\n", d.comment)
		if els := r.Elements(d.name); len(els) > 0 {
			b.WriteString("\t\telements = {\n")
			for i, e := range els {
				sep := ","
				if i == len(els)-1 {
					sep = ""
				}
				fmt.Fprintf(&b, "\t\t\t%s comment %s%s\n", e, quote(r.elems[d.name][e]), sep)
			}
			b.WriteString("\t\t}\n")
		}
		b.WriteString("\t}\n")
	}
	b.WriteString(r.chains())
	b.WriteString("}\n")
	return b.String()
}

// Update renders the change from old to r as one nft transaction. When the
// chains are the same, only set elements change; otherwise it is a full
// sync. An empty string means nothing changes.
func (r *Ruleset) Update(old *Ruleset) string {
	if old == nil || old.chains() != r.chains() {
		return r.Script()
	}
	var b strings.Builder
	removed, added := r.ElementChanges(old)
	for _, d := range r.defs {
		if del := removed[d.name]; len(del) > 0 {
			fmt.Fprintf(&b, "delete element %s %s %s { %s }\n", r.family, r.opts.Table, d.name, strings.Join(del, ", "))
		}
		if add := added[d.name]; len(add) > 0 {
			items := make([]string, len(add))
			for i, e := range add {
				items[i] = e + " comment " + quote(r.elems[d.name][e])
			}
			fmt.Fprintf(&b, "add element %s %s %s { %s }\n", r.family, r.opts.Table, d.name, strings.Join(items, ", "))
		}
	}
	return b.String()
}

// quote renders a comment for nft: double-quoted, at most 128 bytes, no
// quotes or newlines inside.
func quote(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < ' ' {
			return '_'
		}
		return r
	}, s)
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return `"` + s + `"`
}

func reachPort(b inventory.PortBinding) l4.Port {
	return l4.Port{Proto: b.ContainerPort.Proto, Number: b.ContainerPort.Number}
}
