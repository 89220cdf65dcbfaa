package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
)

// index resolves the names of a policy. It keeps the first of two entries
// with the same name (validate reports the second).
type index struct {
	p        *Policy
	zone     map[string]int32
	workload map[string]int32
	// wzones are the known zones of each workload, sorted, unique.
	wzones [][]int32
	// members are the workloads of each zone, in policy order.
	members [][]int32
	// inInternal reports whether a workload joins an internal zone.
	inInternal []bool
}

// Index resolves the names of a policy to the positions of its zones and
// workloads, as int32 ids: for packages that answer questions on a
// policy. The first of two entries with the same name wins.
type Index struct{ ix *index }

// NewIndex indexes p.
func NewIndex(p *Policy) Index { return Index{newIndex(p)} }

// Workload returns the position of a workload in Policy.Workloads.
func (x Index) Workload(name string) (int32, bool) {
	w, ok := x.ix.workload[name]
	return w, ok
}

// Zone returns the position of a zone in Policy.Zones.
func (x Index) Zone(name string) (int32, bool) {
	z, ok := x.ix.zone[name]
	return z, ok
}

// WorkloadZones returns the zones workload w joins, sorted, unique.
func (x Index) WorkloadZones(w int32) []int32 { return x.ix.wzones[w] }

// Members returns the workloads of zone z, in policy order.
func (x Index) Members(z int32) []int32 { return x.ix.members[z] }

func newIndex(p *Policy) *index {
	ix := &index{
		p:          p,
		zone:       make(map[string]int32, len(p.Zones)),
		workload:   make(map[string]int32, len(p.Workloads)),
		wzones:     make([][]int32, len(p.Workloads)),
		members:    make([][]int32, len(p.Zones)),
		inInternal: make([]bool, len(p.Workloads)),
	}
	for i, z := range p.Zones {
		if _, dup := ix.zone[z.Name]; !dup {
			ix.zone[z.Name] = int32(i)
		}
	}
	for i := range p.Workloads {
		w := &p.Workloads[i]
		if _, dup := ix.workload[w.Name]; !dup {
			ix.workload[w.Name] = int32(i)
		}
		zs := make([]int32, 0, len(w.Zones))
		for _, name := range w.Zones {
			if z, ok := ix.zone[name]; ok {
				zs = append(zs, z)
			}
		}
		slices.Sort(zs)
		zs = slices.Compact(zs)
		ix.wzones[i] = zs
		for _, z := range zs {
			ix.members[z] = append(ix.members[z], int32(i))
			if p.Zones[z].Internal {
				ix.inInternal[i] = true
			}
		}
	}
	return ix
}

// validate reports the problems that need the whole policy: names,
// references, published ports, and whether each flow has a path.
func validate(p *Policy, ps *problems) {
	ix := newIndex(p)
	for i, z := range p.Zones {
		switch {
		case ix.zone[z.Name] != int32(i):
			ps.add(z.Pos, fmt.Sprintf("zone %s is declared twice", z.Name))
		case z.Name == inventory.DefaultBridge || z.Name == inventory.HostNetwork || z.Name == inventory.NoneNetwork:
			ps.add(z.Pos, fmt.Sprintf("zone %s: Docker's own %q network cannot be a zone; name a network of your own", z.Name, z.Name))
		case !validName(z.Name, false):
			ps.add(z.Pos, fmt.Sprintf("zone name %q: a zone is a Docker network, named with letters, digits, '_', '.' and '-', starting with a letter or digit", z.Name))
		}
		if z.Default != "" && z.Default != Allow && z.Default != Deny {
			ps.add(z.Pos, fmt.Sprintf("zone %s: default must be allow or deny, not %q", z.Name, z.Default))
		}
	}
	for i := range p.Workloads {
		validateWorkload(ix, i, ps)
	}
	validatePublished(p, ps)
	if p.Unmanaged != "" && p.Unmanaged != UnmanagedAllow && p.Unmanaged != UnmanagedWarn && p.Unmanaged != UnmanagedDeny {
		ps.add(Pos{}, fmt.Sprintf("unmanaged must be allow, warn or deny, not %q", p.Unmanaged))
	}
	pc := newPathChecker(ix)
	for i := range p.Flows {
		if ps.full() {
			return
		}
		f := &p.Flows[i]
		okFrom := checkRef(ix, f.From, f.fromPos, f.Pos, "from", false, ps)
		okTo := checkRef(ix, f.To, f.toPos, f.Pos, "to", false, ps)
		if len(f.Ports) == 0 && f.portsPos == (Pos{}) {
			ps.add(f.Pos, "a flow needs ports: a list, like [8080/tcp], or [all]")
		}
		if okFrom && okTo && len(f.Ports) > 0 && !incomplete(ix, f.From, badZones) && !incomplete(ix, f.To, badZones|badPublish) {
			if msg := pc.check(f); msg != "" {
				ps.add(f.Pos, msg)
			}
		}
	}
	for i := range p.Tests {
		if ps.full() {
			return
		}
		t := &p.Tests[i]
		okFrom := checkRef(ix, t.From, t.fromPos, t.Pos, "from", true, ps)
		okTo := checkRef(ix, t.To, t.toPos, t.Pos, "to", true, ps)
		if !okFrom || !okTo {
			continue
		}
		switch {
		case t.From.Kind == RefAddress && t.To.Kind == RefAddress:
			ps.add(t.Pos, "a test between two addresses says nothing about the host: test a workload against an address")
		case t.From.Kind == RefAddress && t.To.Kind == RefZone, t.To.Kind == RefAddress && t.From.Kind == RefZone:
			ps.add(t.Pos, "test an address against a workload, not a zone: ingress and egress belong to workloads")
		}
		if t.Expect != Allow && t.Expect != Deny {
			ps.add(t.Pos, "a test needs expect: allow or deny")
		}
	}
}

func validateWorkload(ix *index, i int, ps *problems) {
	p := ix.p
	w := &p.Workloads[i]
	if ix.workload[w.Name] != int32(i) {
		ps.add(w.Pos, fmt.Sprintf("workload %s is declared twice", w.Name))
	}
	if !validName(w.Name, true) {
		ps.add(w.Pos, fmt.Sprintf("workload name %q: use letters, digits, '_', '.' and '-', starting with a letter", w.Name))
	}
	if w.Match.IsZero() && w.bad&badMatch == 0 {
		ps.add(w.matchPos, fmt.Sprintf("workload %s has no match: say which containers it selects (name, image, label or compose)", w.Name))
	}
	for _, g := range []string{w.Match.Name, w.Match.Image, w.Match.Compose.Project, w.Match.Compose.Service} {
		if g != "" && !validGlob(g) {
			ps.add(w.matchPos, fmt.Sprintf("workload %s: %q is not a valid glob", w.Name, g))
		}
	}
	if len(w.Zones) == 0 && w.bad&badZones == 0 {
		ps.add(w.Pos, fmt.Sprintf("workload %s joins no zone: list at least one in zones (a container outside every zone is unmanaged)", w.Name))
	}
	seen := make(map[string]bool, len(w.Zones))
	for j, name := range w.Zones {
		pos := posAt(w.zonePos, j, w.Pos)
		switch _, known := ix.zone[name]; {
		case !known:
			ps.add(pos, fmt.Sprintf("workload %s joins zone %q, which zones does not declare%s", w.Name, name, suggestName(name, p.Zones, func(z Zone) string { return z.Name })))
		case seen[name]:
			ps.add(pos, fmt.Sprintf("workload %s lists zone %s twice", w.Name, name))
		}
		seen[name] = true
	}
	allInternal := len(ix.wzones[i]) > 0 && len(ix.wzones[i]) == len(w.Zones)
	for _, z := range ix.wzones[i] {
		allInternal = allInternal && p.Zones[z].Internal
	}
	if allInternal && len(w.Publish) > 0 {
		ps.add(posAt(w.publishPos, 0, w.Pos), fmt.Sprintf("workload %s publishes ports, but every zone it joins is internal: Docker publishes no port of such a container (join a zone that is not internal, or drop publish)", w.Name))
	}
	if allInternal && len(w.Egress) > 0 {
		ps.add(w.Egress[0].Pos, fmt.Sprintf("workload %s lists egress, but every zone it joins is internal: it has no route out of the host (join a zone that is not internal, or drop egress)", w.Name))
	}
	if len(w.Ingress) > 0 && len(w.Publish) == 0 && w.bad&badPublish == 0 {
		ps.add(posAt(w.ingressPos, 0, w.Pos), fmt.Sprintf("workload %s lists ingress but publishes no port: ingress says who may reach published ports", w.Name))
	}
	for j := range w.Egress {
		if len(w.Egress[j].Ports) == 0 {
			ps.add(w.Egress[j].Pos, "an egress rule needs ports: a list, like [443/tcp], or [all]")
		}
	}
}

// incomplete reports whether a workload reference lost one of the given
// parts to a decoding problem.
func incomplete(ix *index, r Ref, parts badFields) bool {
	if r.Kind != RefWorkload {
		return false
	}
	return ix.p.Workloads[ix.workload[r.Name]].bad&parts != 0
}

func posAt(list []Pos, i int, def Pos) Pos {
	if i < len(list) {
		return list[i]
	}
	return def
}

// validatePublished reports host ports that two publish entries claim.
func validatePublished(p *Policy, ps *problems) {
	type entry struct {
		w, j int
		pub  Publish
		pos  Pos
	}
	var all []entry
	for i := range p.Workloads {
		w := &p.Workloads[i]
		for j, pub := range w.Publish {
			if pub.Host.First != 0 {
				all = append(all, entry{i, j, pub, posAt(w.publishPos, j, w.Pos)})
			}
		}
	}
	slices.SortFunc(all, func(a, b entry) int { return a.pub.Host.Compare(b.pub.Host) })
	reported := map[[2]int]bool{}
	for a := range all {
		for b := a + 1; b < len(all) && all[b].pub.Host.Proto == all[a].pub.Host.Proto && all[b].pub.Host.First <= all[a].pub.Host.Last; b++ {
			x, y := all[a], all[b]
			if !x.pub.AllInterfaces() && !y.pub.AllInterfaces() && x.pub.HostIP != y.pub.HostIP {
				continue
			}
			if before(x.pos, y.pos) {
				x, y = y, x
			}
			if reported[[2]int{x.w, x.j}] {
				continue
			}
			reported[[2]int{x.w, x.j}] = true
			owner := "workload " + p.Workloads[y.w].Name
			if x.w == y.w {
				owner = "the same workload"
			}
			ps.add(x.pos, fmt.Sprintf("workload %s publishes %s, but %s already publishes host port %s at %d:%d: one host port serves one container", p.Workloads[x.w].Name, x.pub, owner, y.pub.Host, y.pos.Line, y.pos.Col))
		}
	}
}

// checkRef reports a reference that names nothing.
func checkRef(ix *index, r Ref, pos, def Pos, field string, addrOK bool, ps *problems) bool {
	if pos == (Pos{}) {
		pos = def
	}
	switch r.Kind {
	case RefAddress:
		if !addrOK {
			ps.add(pos, fmt.Sprintf("%s: %s is an address; flows connect workloads and zones (list addresses beyond the host in a workload's egress, clients of published ports in its ingress)", field, r.Addr))
			return false
		}
		return true
	case RefZone:
		if _, ok := ix.zone[r.Name]; !ok {
			ps.add(pos, fmt.Sprintf("%s: unknown zone %q%s", field, r.Name, suggestName(r.Name, ix.p.Zones, func(z Zone) string { return z.Name })))
			return false
		}
		return true
	}
	if _, ok := ix.workload[r.Name]; !ok {
		hint := suggestName(r.Name, ix.p.Workloads, func(w Workload) string { return w.Name })
		if _, isZone := ix.zone[r.Name]; isZone && hint == "" {
			hint = fmt.Sprintf("; for every member of zone %s write zone:%s", r.Name, r.Name)
		}
		ps.add(pos, fmt.Sprintf("%s: unknown workload %q%s", field, r.Name, hint))
		return false
	}
	return true
}

// suggestName proposes the closest of a few thousand names.
func suggestName[T any](name string, list []T, get func(T) string) string {
	if len(list) > 5000 {
		return ""
	}
	best, dist := "", 3
	for _, x := range list {
		n := get(x)
		if d := editDistance(name, n); d < dist {
			best, dist = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %s?", best)
}

// pathChecker answers whether a flow can happen at all: its ends share a
// zone, or the destination publishes the ports (then the source reaches
// them through the host).
type pathChecker struct {
	ix *index
	// cover caches, per zone, the zones its members join (as a bitset).
	cover map[int32][]uint64
	// pub caches the container ports that each workload publishes.
	pub []l4.List
}

func newPathChecker(ix *index) *pathChecker {
	pc := &pathChecker{ix: ix, cover: map[int32][]uint64{}, pub: make([]l4.List, len(ix.p.Workloads))}
	for i, w := range ix.p.Workloads {
		var l l4.List
		for _, pub := range w.Publish {
			l = append(l, pub.Container)
		}
		if len(l) > 0 {
			pc.pub[i] = l4.Normalize(l)
		}
	}
	return pc
}

// members returns the workloads a resolved reference stands for.
func (pc *pathChecker) members(r Ref) []int32 {
	if r.Kind == RefZone {
		return pc.ix.members[pc.ix.zone[r.Name]]
	}
	return []int32{pc.ix.workload[r.Name]}
}

// zoneCover returns the zones the members of zone z join.
func (pc *pathChecker) zoneCover(z int32) []uint64 {
	if c, ok := pc.cover[z]; ok {
		return c
	}
	c := make([]uint64, (len(pc.ix.p.Zones)+63)/64)
	for _, w := range pc.ix.members[z] {
		for _, wz := range pc.ix.wzones[w] {
			c[wz/64] |= 1 << (wz % 64)
		}
	}
	pc.cover[z] = c
	return c
}

func (pc *pathChecker) shareZone(from, to Ref) bool {
	ix := pc.ix
	if from.Kind == RefWorkload && to.Kind == RefWorkload {
		a, b := ix.wzones[ix.workload[from.Name]], ix.wzones[ix.workload[to.Name]]
		for i, j := 0, 0; i < len(a) && j < len(b); {
			switch {
			case a[i] == b[j]:
				return true
			case a[i] < b[j]:
				i++
			default:
				j++
			}
		}
		return false
	}
	if from.Kind == RefWorkload {
		from, to = to, from
	}
	// from is a zone now.
	cover := pc.zoneCover(ix.zone[from.Name])
	var other []int32
	if to.Kind == RefZone {
		c := pc.zoneCover(ix.zone[to.Name])
		for i := range c {
			if c[i]&cover[i] != 0 {
				return true
			}
		}
		return false
	}
	other = ix.wzones[ix.workload[to.Name]]
	for _, z := range other {
		if cover[z/64]&(1<<(z%64)) != 0 {
			return true
		}
	}
	return false
}

// check returns why flow f cannot happen, or "".
func (pc *pathChecker) check(f *Flow) string {
	from, to := pc.members(f.From), pc.members(f.To)
	if len(from) == 0 || len(to) == 0 {
		return "" // an empty zone: nothing to check until it has members
	}
	if f.From == f.To || pc.shareZone(f.From, f.To) {
		return ""
	}
	var missing l4.List
	for _, r := range f.Ports {
		covered := false
		for _, w := range to {
			if pc.pub[w].Covers(r) {
				covered = true
				break
			}
		}
		if !covered {
			missing = append(missing, r)
		}
	}
	if len(missing) == 0 {
		return ""
	}
	subject := fmt.Sprintf("%s and %s share no zone", f.From, f.To)
	if f.From.Kind == RefZone || f.To.Kind == RefZone {
		subject = fmt.Sprintf("no member of %s shares a zone with a member of %s", f.From, f.To)
	}
	publisher := f.To.String() + " publishes"
	if f.To.Kind == RefZone {
		publisher = "no member of " + f.To.String() + " publishes"
	}
	verb := "none of"
	if f.To.Kind == RefZone {
		verb = "any of"
	}
	return fmt.Sprintf("flow from %s to %s on %s cannot happen: %s, and %s %s %s (add a zone both join, or publish the port)",
		f.From, f.To, f.Ports, subject, publisher, verb, strings.Join(missing.Strings(), ", "))
}
