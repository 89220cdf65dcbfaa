package enforce

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/reach"
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

// chains renders the fixed chains. See README.md for the decision order.
func (r *Ruleset) chains() string {
	if r.family == "bridge" {
		return r.portChains()
	}
	var b strings.Builder
	freeInput := ""
	if r.unmanagedFree {
		freeInput = "\t\tmeta nfproto ipv4 ip saddr @free4 accept comment \"unmanaged container: Docker decides\"\n" +
			"\t\tmeta nfproto ipv6 ip6 saddr @free6 accept comment \"unmanaged container: Docker decides\"\n"
	}
	prio := fmt.Sprintf("filter %+d", r.opts.Priority)
	prio = strings.Replace(prio, "+", "+ ", 1)
	prio = strings.Replace(prio, "-", "- ", 1)
	fmt.Fprintf(&b, `	chain forward {
		type filter hook forward priority %s; policy accept;
		ct state established,related accept
		meta nfproto ipv4 jump forward4
		meta nfproto ipv6 jump forward6
	}
	chain input {
		type filter hook input priority %s; policy accept;
		ct state established,related accept
		meta nfproto ipv4 ip saddr @zones4 meta l4proto . th dport @pubports jump published4
		meta nfproto ipv6 ip6 saddr @zones6 meta l4proto . th dport @pubports jump published6
%s		meta nfproto ipv4 ip saddr @denyzones4 %s
		meta nfproto ipv6 ip6 saddr @denyzones6 %s
	}
`, prio, prio, freeInput, r.drop(DropHost), r.drop(DropHost))
	for _, f := range families {
		s, ip := f.suffix, f.ip
		fmt.Fprintf(&b, "\tchain forward%s {\n", s)
		// Declared flows first: their sets hold admitted addresses only
		// (compile.go, admittedEndpoints), so accepting them before the
		// fail-closed checks decides the same and costs an allowed new
		// connection one hash lookup instead of up to eleven.
		fmt.Fprintf(&b, "\t\t%s saddr . %s daddr . meta l4proto . th dport @allow%s accept comment \"declared flows\"\n", ip, ip, s)
		fmt.Fprintf(&b, "\t\t%s saddr . %s daddr . meta l4proto . th dport @allowrange%s accept comment \"declared flows on port ranges\"\n", ip, ip, s)
		fmt.Fprintf(&b, "\t\t%s saddr @zones%s %s saddr != @admitted%s %s\n", ip, s, ip, s, r.drop(DropUnadmittedSrc))
		fmt.Fprintf(&b, "\t\t%s daddr @zones%s %s daddr != @admitted%s %s\n", ip, s, ip, s, r.drop(DropUnadmittedDst))
		if r.unmanagedFree {
			// Never with a container on a default: deny zone: such a
			// zone denies the unknown too.
			fmt.Fprintf(&b, "\t\t%s saddr @free%s %s daddr != @denyhosts%s accept comment \"unmanaged container: Docker decides\"\n", ip, s, ip, s)
			fmt.Fprintf(&b, "\t\t%s daddr @free%s %s saddr != @denyhosts%s accept comment \"unmanaged container: Docker decides\"\n", ip, s, ip, s)
		}
		fmt.Fprintf(&b, "\t\t%s saddr . %s daddr @allowzone%s accept comment \"zones with default: allow\"\n", ip, ip, s)
		fmt.Fprintf(&b, "\t\t%s daddr != @local%s %s saddr . %s daddr . meta l4proto . th dport @egress%s accept comment \"egress\"\n", ip, s, ip, ip, s)
		fmt.Fprintf(&b, "\t\t%s saddr != @local%s %s saddr . %s daddr . meta l4proto . th dport @ingress%s accept comment \"ingress to published ports\"\n", ip, s, ip, ip, s)
		fmt.Fprintf(&b, "\t\t%s saddr @zones%s %s\n", ip, s, r.drop(DropFromZone))
		fmt.Fprintf(&b, "\t\t%s daddr @zones%s %s\n", ip, s, r.drop(DropToZone))
		b.WriteString("\t}\n")
		fmt.Fprintf(&b, "\tchain published%s {\n", s)
		if r.unmanagedFree {
			fmt.Fprintf(&b, "\t\t%s saddr @free%s meta l4proto . th dport != @denypub accept comment \"unmanaged container: Docker decides\"\n", ip, s)
		}
		fmt.Fprintf(&b, "\t\t%s saddr . meta l4proto . th dport @pubin%s accept comment \"declared flows to published ports\"\n", ip, s)
		fmt.Fprintf(&b, "\t\t%s\n", r.drop(DropPublished))
		b.WriteString("\t}\n")
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

func reachPort(b inventory.PortBinding) reach.Port {
	return reach.Port{Proto: b.ContainerPort.Protocol, Number: b.ContainerPort.Number}
}
