package model

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/policy"
)

// Binding is a policy bound to a host: which workload selects each
// container, the zones each container must join and those it is on now.
//
// A container belongs to at most one workload. When the matches of two or
// more workloads select the same container, Bind reports the conflict and
// the container belongs to none of them: it is treated as denied
// (fail closed) until the policy is fixed. There is no precedence between
// workloads, because a silent one would let a renamed or relabelled
// container slip into a more trusted workload.
type Binding struct {
	Model    *Model
	Snapshot *inventory.Snapshot
	// Containers has one entry per container of the snapshot, in snapshot
	// order.
	Containers []Member
	byName     map[string]int
	members    [][]int // per workload: indexes in Containers
}

// Member is one container of the host as the policy sees it.
type Member struct {
	Container *inventory.Container
	// Workload selects the container; nil when no workload or several do.
	Workload *policy.Workload
	// Matches lists every workload whose match selects the container, in
	// policy order; more than one is a conflict.
	Matches []*policy.Workload
	// Zones are the zones the container must join: its workload's.
	Zones []string
	// Attached are the zone networks the container is on now.
	Attached []string
}

// Conflicted reports whether several workloads select the container.
func (m *Member) Conflicted() bool { return len(m.Matches) > 1 }

// Bind selects each container of snap by the workloads of p. It returns
// the binding in every case; the error, an *Error, lists the containers
// that several workloads select, positioned at the later workload.
//
// Matching is indexed: a workload with a literal name, compose project,
// label value or image repository is only tried on the containers that
// carry it; only workloads whose every criterion is a glob are tried on
// every container.
func Bind(p *policy.Policy, snap *inventory.Snapshot) (*Binding, error) {
	m := Compile(p)
	b := &Binding{
		Model:      m,
		Snapshot:   snap,
		Containers: make([]Member, len(snap.Containers)),
		byName:     make(map[string]int, len(snap.Containers)),
		members:    make([][]int, len(p.Workloads)),
	}
	mi := newMatchIndex(p)
	var problems []policy.Problem
	var cand []int32
	for i := range snap.Containers {
		c := &snap.Containers[i]
		b.byName[c.Name] = i
		mem := Member{Container: c}
		img := parseImage(c.Image)
		cand = mi.candidates(c, img, cand[:0])
		for _, w := range cand {
			if matches(&p.Workloads[w].Match, c, &img) {
				mem.Matches = append(mem.Matches, &p.Workloads[w])
			}
		}
		if len(mem.Matches) > 1 {
			slices.SortFunc(mem.Matches, func(a, b *policy.Workload) int { return int(m.workloadID(a.Name) - m.workloadID(b.Name)) })
			names := make([]string, len(mem.Matches))
			for j, w := range mem.Matches {
				names[j] = w.Name + " (" + p.Position(w.Pos) + ")"
			}
			last := mem.Matches[len(mem.Matches)-1]
			pos := last.MatchPos()
			problems = append(problems, policy.Problem{File: p.File, Line: pos.Line, Col: pos.Col, Msg: fmt.Sprintf("container %s is selected by workloads %s: a container belongs to one workload, so it is denied until the matches are narrowed", c.Name, strings.Join(names, " and "))})
		}
		if len(mem.Matches) == 1 {
			w := mem.Matches[0]
			mem.Workload = w
			mem.Zones = w.Zones
			wi := m.workloadID(w.Name)
			b.members[wi] = append(b.members[wi], i)
		}
		for _, e := range c.Endpoints {
			if _, ok := m.ix.Zone(e.Network); ok {
				mem.Attached = append(mem.Attached, e.Network)
			}
		}
		b.Containers[i] = mem
	}
	return b, policy.NewError(problems)
}

// matchIndex narrows the workloads worth trying on a container.
type matchIndex struct {
	name, project, image, imageLast map[string][]int32
	// namePrefix indexes name globs by the literal text before their
	// first metacharacter ("web-*" under "web-").
	namePrefix     map[string][]int32
	service, label map[[2]string][]int32
	rest           []int32
}

func newMatchIndex(p *policy.Policy) *matchIndex {
	mi := &matchIndex{
		name: map[string][]int32{}, namePrefix: map[string][]int32{}, project: map[string][]int32{}, image: map[string][]int32{}, imageLast: map[string][]int32{},
		service: map[[2]string][]int32{}, label: map[[2]string][]int32{},
	}
	for i := range p.Workloads {
		m := &p.Workloads[i].Match
		w := int32(i)
		if m.IsZero() {
			continue // matches nothing
		}
		switch {
		case m.Name != "" && !policy.IsGlob(m.Name):
			mi.name[m.Name] = append(mi.name[m.Name], w)
		case m.Compose.Project != "" && !policy.IsGlob(m.Compose.Project) && m.Compose.Service != "" && !policy.IsGlob(m.Compose.Service):
			k := [2]string{m.Compose.Project, m.Compose.Service}
			mi.service[k] = append(mi.service[k], w)
		case m.Compose.Project != "" && !policy.IsGlob(m.Compose.Project):
			mi.project[m.Compose.Project] = append(mi.project[m.Compose.Project], w)
		case literalLabel(m.Labels) != [2]string{}:
			k := literalLabel(m.Labels)
			mi.label[k] = append(mi.label[k], w)
		case m.Image != "" && !policy.IsGlob(parseImagePattern(m.Image).repo):
			repo := parseImagePattern(m.Image).repo
			if strings.Contains(repo, "/") {
				mi.image[repo] = append(mi.image[repo], w)
			} else {
				mi.imageLast[repo] = append(mi.imageLast[repo], w)
			}
		case m.Name != "" && globPrefix(m.Name) != "":
			pre := globPrefix(m.Name)
			mi.namePrefix[pre] = append(mi.namePrefix[pre], w)
		default:
			mi.rest = append(mi.rest, w)
		}
	}
	return mi
}

// globPrefix returns the literal text before the first metacharacter.
func globPrefix(pattern string) string {
	if i := strings.IndexAny(pattern, `*?[\`); i >= 0 {
		return pattern[:i]
	}
	return pattern
}

// literalLabel returns the first label (by key) whose value is no glob.
func literalLabel(labels map[string]string) [2]string {
	var best [2]string
	for k, v := range labels {
		if !policy.IsGlob(v) && (best[0] == "" || k < best[0]) {
			best = [2]string{k, v}
		}
	}
	return best
}

// candidates appends the workloads that may select c to out, in policy
// order.
func (mi *matchIndex) candidates(c *inventory.Container, img imageRef, out []int32) []int32 {
	out = append(out, mi.name[c.Name]...)
	if len(mi.namePrefix) > 0 {
		for i := 1; i <= len(c.Name); i++ {
			out = append(out, mi.namePrefix[c.Name[:i]]...)
		}
	}
	if proj := c.ComposeProject(); proj != "" {
		out = append(out, mi.service[[2]string{proj, c.ComposeService()}]...)
		out = append(out, mi.project[proj]...)
	}
	if len(mi.label) > 0 {
		for k, v := range c.Labels {
			out = append(out, mi.label[[2]string{k, v}]...)
		}
	}
	if c.Image != "" {
		out = append(out, mi.image[img.repo]...)
		out = append(out, mi.imageLast[img.last]...)
	}
	out = append(out, mi.rest...)
	slices.Sort(out)
	return out
}

// Member returns the binding of the named container, or nil.
func (b *Binding) Member(container string) *Member {
	i, ok := b.byName[container]
	if !ok {
		return nil
	}
	return &b.Containers[i]
}

// Members returns the containers a workload selects, in snapshot order.
func (b *Binding) Members(workload string) []*inventory.Container {
	w, ok := b.Model.ix.Workload(workload)
	if !ok {
		return nil
	}
	out := make([]*inventory.Container, len(b.members[w]))
	for i, c := range b.members[w] {
		out[i] = b.Containers[c].Container
	}
	return out
}

// Unmatched returns the names of the containers no workload selects.
func (b *Binding) Unmatched() []string {
	var out []string
	for _, m := range b.Containers {
		if len(m.Matches) == 0 {
			out = append(out, m.Container.Name)
		}
	}
	return out
}

// LeftToDocker reports whether the policy leaves a container's traffic
// to Docker: no workload selects it, unmanaged is not deny, and it is on
// no default: deny zone. A container that no workload selects on a
// default: deny zone is fenced instead (see Fenced), whatever unmanaged
// says: a zone that denies by default denies the unknown too.
func (b *Binding) LeftToDocker(m *Member) bool {
	return len(m.Matches) == 0 && b.Model.p.UnmanagedMode() != policy.UnmanagedDeny && len(b.DenyZonesOf(m)) == 0
}

// DenyZonesOf returns the default: deny zones the container is on now.
func (b *Binding) DenyZonesOf(m *Member) []string {
	var out []string
	for _, n := range m.Attached {
		if z := b.Model.p.Zone(n); z != nil && z.Default == policy.Deny {
			out = append(out, n)
		}
	}
	return out
}

// Fence is a container that no workload selects, on default: deny zones.
type Fence struct {
	Container string
	Zones     []string // the default: deny zones it is on
}

func (f Fence) String() string {
	return f.Container + " (on default: deny zone " + strings.Join(f.Zones, ", ") + ")"
}

// Fenced returns the containers that no workload selects and that are on
// a default: deny zone, in container order. zonewarden admits none of
// their addresses: they get no flow into, out of or inside any zone
// (fail closed), whatever unmanaged says. Only their traffic on networks
// outside the policy is left to Docker.
func (b *Binding) Fenced() []Fence {
	var out []Fence
	for i := range b.Containers {
		if m := &b.Containers[i]; b.IsFenced(m) {
			out = append(out, Fence{Container: m.Container.Name, Zones: b.DenyZonesOf(m)})
		}
	}
	return out
}

// IsFenced reports whether no workload selects the container and it is
// on a default: deny zone (see Fenced).
func (b *Binding) IsFenced(m *Member) bool {
	return len(m.Matches) == 0 && len(b.DenyZonesOf(m)) > 0
}

// Conflicts returns the containers several workloads select.
func (b *Binding) Conflicts() []*Member {
	var out []*Member
	for i := range b.Containers {
		if b.Containers[i].Conflicted() {
			out = append(out, &b.Containers[i])
		}
	}
	return out
}

// Stray is a container on a zone network its workload may not join.
type Stray struct {
	Member  *Member
	Network string
}

// Strays returns the memberships the policy forbids: containers a
// workload selects that are on a zone network outside its zones, in
// container order. zonewarden does not admit them there (fail closed).
func (b *Binding) Strays() []Stray {
	var out []Stray
	for i := range b.Containers {
		m := &b.Containers[i]
		if m.Workload == nil {
			continue
		}
		for _, n := range m.Attached {
			if !slices.Contains(m.Zones, n) {
				out = append(out, Stray{Member: m, Network: n})
			}
		}
	}
	return out
}

// MemberZones maps each container that exactly one workload selects to
// the zones it must join.
func (b *Binding) MemberZones() map[string][]string {
	out := make(map[string][]string, len(b.Containers))
	for _, m := range b.Containers {
		if m.Workload != nil {
			out[m.Container.Name] = m.Zones
		}
	}
	return out
}

// PublishAllowed reports whether the policy lets container publish pb:
// one of its workload's publish entries allows it. A container that no
// workload selects may publish unless unmanaged is deny; a conflicted one
// may not.
func (b *Binding) PublishAllowed(container string, pb inventory.PortBinding) bool {
	m := b.Member(container)
	switch {
	case m == nil:
		return false
	case len(m.Matches) == 0:
		return b.LeftToDocker(m)
	case m.Workload == nil:
		return false
	}
	for _, p := range m.Workload.Publish {
		if p.Allows(pb) {
			return true
		}
	}
	return false
}

// Decide answers whether from may open a connection to to on port, where
// each is a container name or, for a client or destination beyond the
// host, an IP address. Containers that one workload selects are decided by
// Model.Eval on their workloads. A container that several workloads select
// is denied. One that no workload selects is denied when unmanaged is
// deny; otherwise the policy leaves its traffic to Docker and Decide
// allows it — unless it is on a default: deny zone, where it is denied
// (Fenced).
func (b *Binding) Decide(from, to string, port l4.Port) Decision {
	var refs [2]policy.Ref
	var members [2]*Member
	for i, name := range []string{from, to} {
		if m := b.Member(name); m != nil {
			members[i] = m
			switch {
			case m.Workload != nil:
				refs[i] = policy.WorkloadRef(m.Workload.Name)
				continue
			case len(m.Matches) > 1:
				return Decision{Flow: -1, Reason: fmt.Sprintf("%s is selected by several workloads: denied until the policy is fixed", name)}
			case b.Model.p.UnmanagedMode() == policy.UnmanagedDeny:
				return Decision{Flow: -1, Reason: fmt.Sprintf("no workload selects %s, and unmanaged is deny", name)}
			case !b.LeftToDocker(m):
				return Decision{Flow: -1, Reason: fmt.Sprintf("no workload selects %s, and it is on default: deny zone %s: denied (fail closed)", name, strings.Join(b.DenyZonesOf(m), ", "))}
			}
			continue
		}
		a, err := netip.ParseAddr(name)
		if err != nil {
			return Decision{Flow: -1, Reason: fmt.Sprintf("%s is neither a container of the host nor an address", name)}
		}
		refs[i] = policy.Ref{Kind: policy.RefAddress, Addr: a.Unmap()}
	}
	for i, m := range members {
		if m == nil || m.Workload != nil {
			continue
		}
		// Left to Docker, unless the peer is on a default: deny zone.
		if o := members[1-i]; o != nil {
			if zs := b.DenyZonesOf(o); len(zs) > 0 {
				return Decision{Flow: -1, Reason: fmt.Sprintf("no workload selects %s, and %s is on default: deny zone %s: denied", m.Container.Name, o.Container.Name, strings.Join(zs, ", "))}
			}
		}
		return Decision{Allow: true, Flow: -1, Reason: fmt.Sprintf("no workload selects %s; unmanaged: %s leaves its traffic to Docker", m.Container.Name, b.Model.p.UnmanagedMode())}
	}
	return b.Model.Eval(refs[0], refs[1], port)
}

// Ports is Decide over every port: whether from may reach to on every
// port its path has (open: no workload decides, the policy leaves it to
// Docker), or on ports only (nil: on none). from and to are container
// names; Decide answers for addresses.
func (b *Binding) Ports(from, to string) (open bool, ports l4.List) {
	var members [2]*Member
	for i, name := range []string{from, to} {
		m := b.Member(name)
		if m == nil {
			return false, nil
		}
		members[i] = m
		if m.Workload != nil {
			continue
		}
		if len(m.Matches) > 1 || b.Model.p.UnmanagedMode() == policy.UnmanagedDeny || !b.LeftToDocker(m) {
			return false, nil
		}
	}
	for i, m := range members {
		if m.Workload == nil {
			return len(b.DenyZonesOf(members[1-i])) == 0, nil
		}
	}
	return false, b.Model.AllowedPorts(policy.WorkloadRef(members[0].Workload.Name), policy.WorkloadRef(members[1].Workload.Name))
}

// ReachesHost reports whether a container may open connections to the
// host's own addresses (its services, and containers in the host's
// network namespace) beyond the published ports: members of default:
// deny zones may not, unless they are also on a network that is not such
// a zone, or the policy leaves them to Docker (LeftToDocker).
func (b *Binding) ReachesHost(container string) bool {
	m := b.Member(container)
	if m == nil {
		return true
	}
	if b.LeftToDocker(m) {
		return true
	}
	if len(m.Container.Endpoints) == 0 {
		return true // host, none or another's namespace: not filtered here
	}
	for _, e := range m.Container.Endpoints {
		z := b.Model.p.Zone(e.Network)
		if z == nil || z.Default != policy.Deny {
			return true
		}
	}
	return false
}
