// Package draft proposes policies: from a host as it is (FromHost), or
// from the flows recorded on it (FromFlows). A draft passes
// policy.Validate and its own tests; a person reviews it.
package draft

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/learn"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy"
)

// LegacyBridgeZone is the zone FromHost proposes for the containers on
// Docker's default bridge, which cannot be a zone.
const LegacyBridgeZone = "legacy-bridge"

// FromHost proposes a starter policy for a host that keeps what works today:
//
//   - one zone per user-defined bridge network, with its internal flag;
//     default: deny for the zones that hold a data service, allow else;
//     the containers on Docker's default bridge get a new zone,
//     legacy-bridge;
//   - one workload per compose service (matched by project and service)
//     or per container (matched by name), joining the zones of the
//     networks it is on and publishing what it publishes today;
//   - a flow between every two workloads that share a network, on the
//     ports the destination exposes or publishes; pairs whose destination
//     has no known port get a comment instead;
//   - tests that untrusted workloads cannot reach the data services that
//     no flow lets them reach;
//   - comments that start with "decide:" wherever a person must choose.
//
// Containers that cannot join a zone (host network, none, another
// container's namespace) stay unmanaged, named in a comment. The draft
// passes Validate and its own tests.
func FromHost(snap *inventory.Snapshot) *policy.Policy {
	d := newDrafter(snap)
	d.draftZones()
	d.draftWorkloads()
	d.draftFlows()
	d.draftTests()
	d.finish()
	return d.p
}

func newDrafter(snap *inventory.Snapshot) *drafter {
	return &drafter{
		snap:  snap,
		ix:    inventory.NewIndex(snap),
		p:     &policy.Policy{Version: policy.Version, Unmanaged: policy.UnmanagedWarn},
		zones: map[string]*policy.Zone{},
		names: map[string]bool{},
	}
}

type drafter struct {
	snap  *inventory.Snapshot
	ix    *inventory.Index
	p     *policy.Policy
	zones map[string]*policy.Zone
	// groups are the containers of each workload, in policy order.
	groups [][]*inventory.Container
	names  map[string]bool
	// notes for the flows and unmanaged sections.
	legacy       string // the zone for the default bridge's containers, or ""
	unknownPorts []string
	// noEvidence lists the pairs of a compose project that share a zone
	// but whose configuration names no connection between them.
	noEvidence  []string
	unmanaged   []string
	skippedNets []string
	// DraftFromFlows: the records, and those no flow keeps (beyond the
	// host; an address no container had; no workload or zone for them).
	observed                                    []learn.Record
	beyond, unnamed, unmatchedFlows, unanswered []string
}

func (d *drafter) draftZones() {
	for i := range d.snap.Networks {
		n := &d.snap.Networks[i]
		if n.IsBuiltin() {
			continue
		}
		if n.Driver != "bridge" {
			d.skippedNets = append(d.skippedNets, fmt.Sprintf("%s (driver %s)", n.Name, n.Driver))
			continue
		}
		if !policy.ValidZoneName(n.Name) {
			d.skippedNets = append(d.skippedNets, fmt.Sprintf("%q (not a name zonewarden accepts)", n.Name))
			continue
		}
		d.p.Zones = append(d.p.Zones, policy.Zone{Name: n.Name, Internal: n.Internal, Default: policy.Allow})
	}
	for _, c := range d.snap.Containers {
		if d.onDefaultBridge(&c) {
			name := LegacyBridgeZone
			for i := 2; d.ix.Network(name) != nil; i++ {
				name = fmt.Sprintf("%s-%d", LegacyBridgeZone, i)
			}
			d.legacy = name
			d.p.Zones = append(d.p.Zones, policy.Zone{Name: name, Default: policy.Allow,
				Comment: "A new network for the containers now on Docker's default bridge, which cannot be a zone\n" +
					"(it has no DNS and does not isolate projects): plan creates it and moves them.\n" +
					"decide: give each project its own zone instead."})
			break
		}
	}
	for i := range d.p.Zones {
		d.zones[d.p.Zones[i].Name] = &d.p.Zones[i]
	}
}

// onDefaultBridge reports whether c uses Docker's default bridge.
func (d *drafter) onDefaultBridge(c *inventory.Container) bool {
	if c.UsesHostNetwork() || c.NoNetwork() || c.SharedNamespaceWith() != "" {
		return false
	}
	if len(c.Endpoints) == 0 {
		return c.NetworkMode == "" || c.NetworkMode == "default" || c.NetworkMode == inventory.DefaultBridge
	}
	return c.OnNetwork(inventory.DefaultBridge)
}

// containerZones returns the zones c is on today.
func (d *drafter) containerZones(c *inventory.Container) []string {
	var out []string
	for _, e := range c.Endpoints {
		if _, ok := d.zones[e.Network]; ok {
			out = append(out, e.Network)
		}
	}
	if len(c.Endpoints) == 0 {
		if _, ok := d.zones[c.NetworkMode]; ok {
			out = append(out, c.NetworkMode)
		}
	}
	if d.onDefaultBridge(c) {
		out = append(out, d.legacy)
	}
	return out
}

func (d *drafter) draftWorkloads() {
	type key struct{ project, service, name string }
	at := map[key]int{}
	projects := map[string]map[string]bool{} // compose service name -> projects that have it
	for _, c := range d.snap.Containers {
		if svc := c.ComposeService(); c.ComposeProject() != "" && svc != "" {
			if projects[svc] == nil {
				projects[svc] = map[string]bool{}
			}
			projects[svc][c.ComposeProject()] = true
		}
	}
	for i := range d.snap.Containers {
		c := &d.snap.Containers[i]
		switch {
		case c.UsesHostNetwork():
			d.unmanaged = append(d.unmanaged, c.Name+" (uses the host's network namespace)")
			continue
		case c.NoNetwork():
			d.unmanaged = append(d.unmanaged, c.Name+" (has no network)")
			continue
		case c.SharedNamespaceWith() != "":
			d.unmanaged = append(d.unmanaged, fmt.Sprintf("%s (shares the network namespace of %s, and so its zones)", c.Name, c.SharedNamespaceWith()))
			continue
		}
		zones := d.containerZones(c)
		if len(zones) == 0 {
			d.unmanaged = append(d.unmanaged, c.Name+" (on no network zonewarden can make a zone)")
			continue
		}
		k := key{name: c.Name}
		if c.ComposeProject() != "" && c.ComposeService() != "" {
			k = key{project: c.ComposeProject(), service: c.ComposeService()}
		}
		w, ok := at[k]
		if !ok {
			w = len(d.p.Workloads)
			at[k] = w
			wl := policy.Workload{}
			if k.service != "" {
				base := k.service
				switch {
				case d.replicas(k.project, k.service) == 1 && !composeName(c.Name, k.project, k.service):
					base = c.Name // a container named by hand: people know it by that name
				case len(projects[k.service]) > 1 || d.names[base]:
					base = k.project + "-" + k.service
				}
				wl.Name = d.uniqueName(base)
				wl.Match.Compose = policy.ComposeMatch{Project: k.project, Service: k.service}
			} else {
				wl.Name = d.uniqueName(c.Name)
				wl.Match.Name = c.Name
			}
			d.p.Workloads = append(d.p.Workloads, wl)
			d.groups = append(d.groups, nil)
		}
		d.groups[w] = append(d.groups[w], c)
		wl := &d.p.Workloads[w]
		for _, z := range zones {
			if !slices.Contains(wl.Zones, z) {
				wl.Zones = append(wl.Zones, z)
			}
		}
	}
	var claimed []claim
	for i := range d.p.Workloads {
		claimed = d.describeWorkload(i, claimed)
	}
}

// dataKind names a data service for a sentence: "a data service
// (PostgreSQL)", or "a data service" for one marked by label.
func dataKind(kind string) string {
	if kind == "" || kind == "data service" {
		return "a data service"
	}
	return "a data service (" + kind + ")"
}

// replicas counts the containers of a compose service.
func (d *drafter) replicas(project, service string) int {
	n := 0
	for i := range d.snap.Containers {
		if c := &d.snap.Containers[i]; c.ComposeProject() == project && c.ComposeService() == service {
			n++
		}
	}
	return n
}

// composeName reports whether name is one docker compose generates:
// project-service-N (or with underscores, as compose v1 did).
func composeName(name, project, service string) bool {
	for _, sep := range []string{"-", "_"} {
		if rest, ok := strings.CutPrefix(name, project+sep+service+sep); ok {
			if rest != "" && strings.Trim(rest, "0123456789") == "" {
				return true
			}
		}
	}
	return false
}

// uniqueName turns s into a workload name no other workload has.
func (d *drafter) uniqueName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			b[i] = '-'
		}
	}
	name := string(b)
	if name == "" || !(name[0] >= 'a' && name[0] <= 'z' || name[0] >= 'A' && name[0] <= 'Z') {
		name = "c-" + name
	}
	base := name
	for i := 2; d.names[name]; i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	d.names[name] = true
	return name
}

// describeWorkload fills publish and egress, and the comment that says
// what a person should look at.
func (d *drafter) describeWorkload(i int, claimed []claim) []claim {
	w := &d.p.Workloads[i]
	cs := d.groups[i]
	var notes []string
	names := make([]string, len(cs))
	for j, c := range cs {
		names[j] = c.Name
	}
	if w.Match.Name == "" && (len(names) > 1 || names[0] != w.Name) {
		notes = append(notes, "containers: "+strings.Join(names, ", "))
	}
	if kind, reason, ok := inventory.DataService(cs[0]); ok {
		notes = append(notes, fmt.Sprintf("%s (%s)", dataKind(kind), reason))
	}
	if reason, ok := inventory.Untrusted(cs[0]); ok {
		notes = append(notes, fmt.Sprintf("untrusted (%s)", reason))
	}
	var ignored []string
	seen := map[string]bool{}
	for _, c := range cs {
		published := d.ix.PublishedPorts(c)
		if len(published) == 0 && len(c.Ports) > 0 {
			for _, b := range c.Ports {
				ignored = append(ignored, b.String())
			}
		}
		for _, b := range published {
			pub := policy.Publish{
				Container: l4.Range{Proto: b.ContainerPort.Proto, First: b.ContainerPort.Number, Last: b.ContainerPort.Number},
				Host:      l4.Range{Proto: b.ContainerPort.Proto},
			}
			if b.HostIP.IsValid() && b.HostIP != netip.IPv4Unspecified() {
				pub.HostIP = b.HostIP.Unmap() // [::] stays: Docker binds IPv6 alone there
			}
			if b.HostPort != 0 {
				pub.Host.First, pub.Host.Last = b.HostPort, b.HostPort
			}
			switch pub.Container.Proto {
			case l4.ProtoTCP, l4.ProtoUDP, l4.ProtoSCTP:
			default:
				continue
			}
			s := pub.String()
			if seen[s] {
				continue
			}
			seen[s] = true
			if owner := claimedBy(claimed, pub); owner != "" {
				notes = append(notes, fmt.Sprintf("decide: it also publishes %s, but %s publishes that host port too; only one of them can run", s, owner))
				continue
			}
			if pub.Host.First != 0 {
				claimed = append(claimed, claim{pub, w.Name})
			}
			w.Publish = append(w.Publish, pub)
			if svc := inventory.DataPort(b.ContainerPort); svc != "" && pub.AllInterfaces() {
				notes = append(notes, fmt.Sprintf("decide: it publishes %s (%s) on every host address; every container and remote client reaches it (drop it, or bind 127.0.0.1)", s, svc))
			}
		}
	}
	if len(ignored) > 0 {
		notes = append(notes, fmt.Sprintf("Docker ignores its -p %s: every network it is on is internal", strings.Join(ignored, ", ")))
	}
	if len(w.Publish) > 0 {
		notes = append(notes, "decide: ingress: [CIDRs] narrows who may reach the published ports (default: anyone)")
	}
	var internal, open bool
	var internalZone string
	for _, z := range w.Zones {
		if d.zones[z].Internal {
			internal, internalZone = true, z
		} else {
			open = true
		}
	}
	if internal && open {
		w.Egress = []policy.Egress{
			{To: netip.MustParsePrefix("0.0.0.0/0"), Ports: l4.AllPorts()},
			{To: netip.MustParsePrefix("::/0"), Ports: l4.AllPorts()},
		}
		notes = append(notes, fmt.Sprintf("decide: narrow egress to what it needs; as a member of internal zone %s it would reach nothing beyond the host without it", internalZone))
	}
	w.Comment = strings.Join(notes, "\n")
	return claimed
}

// claim is a host port a drafted workload publishes.
type claim struct {
	pub   policy.Publish
	owner string
}

// claimedBy returns the workload that publishes a host port pub needs too.
func claimedBy(claimed []claim, pub policy.Publish) string {
	for _, c := range claimed {
		if pub.Host.First != 0 && c.pub.Host.Overlaps(pub.Host) &&
			(c.pub.AllInterfaces() || pub.AllInterfaces() || c.pub.HostIP == pub.HostIP) {
			return c.owner
		}
	}
	return ""
}

// destinationPorts are the ports a workload's containers listen on, as far
// as the host shows: exposed and published container ports.
func (d *drafter) destinationPorts(i int) l4.List {
	var l l4.List
	for _, c := range d.groups[i] {
		for _, p := range c.ExposedPorts {
			if r, ok := portRangeOf(p); ok {
				l = append(l, r)
			}
		}
		for _, b := range c.Ports {
			if r, ok := portRangeOf(b.ContainerPort); ok {
				l = append(l, r)
			}
		}
	}
	if len(l) == 0 {
		return nil
	}
	return l4.List(nil).Union(l)
}

// evidence says what in workload a's configuration names workload b (a
// compose service): its depends_on and environment references
// (inventory.Ref), as "evidence: depends_on; environment DATABASE_URL
// (db:5432)", and the ports those references name.
func (d *drafter) evidence(a, b int) (string, l4.List) {
	to := d.groups[b][0].Labels[inventory.LabelComposeService]
	project := d.groups[b][0].Labels[inventory.LabelComposeProject]
	if to == "" {
		return "", nil
	}
	var says []string
	var ports l4.List
	for _, c := range d.groups[a] {
		if c.Labels[inventory.LabelComposeProject] != project {
			continue
		}
		for _, r := range c.Refs {
			if r.Service != to {
				continue
			}
			s := r.Via
			if r.Port != 0 {
				s += fmt.Sprintf(" (%s:%d)", to, r.Port)
				ports = append(ports, l4.Range{Proto: l4.ProtoTCP, First: r.Port, Last: r.Port})
			}
			if !slices.Contains(says, s) {
				says = append(says, s)
			}
		}
	}
	if len(says) == 0 {
		return "", nil
	}
	return "evidence: " + strings.Join(says, "; "), ports
}

// listenPorts are the ports a workload listens on: destinationPorts, or,
// for a data service that declares none (a compose service without
// expose: or ports:, say), its kind's default port, with a note that
// says so.
func (d *drafter) listenPorts(i int) (l4.List, string) {
	if l := d.destinationPorts(i); len(l) > 0 {
		return l, ""
	}
	kind, _, ok := inventory.DataService(d.groups[i][0])
	if !ok {
		return nil, ""
	}
	p, ok := inventory.DefaultPort(kind)
	if !ok {
		return nil, ""
	}
	r, _ := portRangeOf(p)
	return l4.List{r}, fmt.Sprintf("%s: %s's default port (%s declares none)", p, kind, d.p.Workloads[i].Name)
}

func portRangeOf(p l4.Port) (l4.Range, bool) {
	switch p.Proto {
	case l4.ProtoTCP, l4.ProtoUDP, l4.ProtoSCTP:
		if p.Number == 0 {
			return l4.Range{}, false
		}
		return l4.Range{Proto: p.Proto, First: p.Number, Last: p.Number}, true
	}
	return l4.Range{}, false
}

func (d *drafter) draftFlows() {
	members := map[string][]int{}
	for i, w := range d.p.Workloads {
		for _, z := range w.Zones {
			members[z] = append(members[z], i)
		}
	}
	dataZones := map[string][]string{}
	seen := map[[2]int]bool{}
	for _, z := range d.p.Zones {
		for _, b := range members[z.Name] {
			if kind, _, ok := inventory.DataService(d.groups[b][0]); ok {
				dataZones[z.Name] = append(dataZones[z.Name], fmt.Sprintf("%s (%s)", d.p.Workloads[b].Name, kind))
			}
		}
		for _, a := range members[z.Name] {
			for _, b := range members[z.Name] {
				if a == b || seen[[2]int{a, b}] {
					continue
				}
				seen[[2]int{a, b}] = true
				from, to := &d.p.Workloads[a], &d.p.Workloads[b]
				ports, note := d.listenPorts(b)
				evidence, named := d.evidence(a, b)
				if len(named) > 0 {
					ports = l4.List(nil).Union(append(slices.Clone(ports), named...))
				}
				if evidence == "" && d.snap.Source.Kind == "compose" {
					// Compose files say whom a service talks to; a
					// pair they do not name is not proposed.
					d.noEvidence = append(d.noEvidence, fmt.Sprintf("%s -> %s (zone %s)", from.Name, to.Name, z.Name))
					continue
				}
				if len(ports) == 0 {
					d.unknownPorts = append(d.unknownPorts, fmt.Sprintf("%s -> %s (zone %s)", from.Name, to.Name, z.Name))
					continue
				}
				f := policy.Flow{From: policy.WorkloadRef(from.Name), To: policy.WorkloadRef(to.Name), Ports: ports}
				_, _, toData := inventory.DataService(d.groups[b][0])
				reason, untrusted := inventory.Untrusted(d.groups[a][0])
				switch kind, _, fromData := inventory.DataService(d.groups[a][0]); {
				case toData && untrusted:
					f.Comment = fmt.Sprintf("decide: %s is untrusted (%s); does it need %s?", from.Name, reason, to.Name)
				case fromData && !toData:
					f.Comment = fmt.Sprintf("decide: %s is %s, which seldom opens connections; remove this unless it must", from.Name, dataKind(kind))
				}
				for _, n := range []string{evidence, note} {
					if n != "" {
						f.Comment = strings.TrimPrefix(f.Comment+"\n"+n, "\n")
					}
				}
				d.p.Flows = append(d.p.Flows, f)
			}
		}
	}
	for i := range d.p.Zones {
		z := &d.p.Zones[i]
		var notes []string
		if z.Comment != "" {
			notes = append(notes, z.Comment)
		}
		if data := dataZones[z.Name]; len(data) > 0 {
			z.Default = policy.Deny
			notes = append(notes, fmt.Sprintf("Holds %s: default: deny proposed, so that only the flows below reach it.", strings.Join(data, ", ")))
		} else if len(members[z.Name]) > 1 {
			notes = append(notes, "decide: default: deny would let only the flows below through between its members.")
		}
		if len(members[z.Name]) == 0 {
			notes = append(notes, "decide: no workload uses it today; remove the zone unless one should.")
		}
		if n := d.ix.Network(z.Name); n != nil && n.External {
			notes = append(notes, "Declared external by compose: it must exist before the project starts.")
		}
		z.Comment = strings.Join(notes, "\n")
	}
}

func (d *drafter) draftTests() {
	d.denyTests(func(a, b int, kind string) string {
		reason, untrusted := inventory.Untrusted(d.groups[a][0])
		if !untrusted {
			return ""
		}
		return fmt.Sprintf("%s is untrusted (%s); %s is %s", d.p.Workloads[a].Name, reason, d.p.Workloads[b].Name, dataKind(kind))
	})
}

// denyTests adds, for every data service b, a deny test from each other
// workload a that why gives a reason for (the test's comment), unless
// the policy allows the connection (a flow with a "decide:" comment says
// so already) or the pair has a test.
func (d *drafter) denyTests(why func(a, b int, kind string) string) {
	m := model.Compile(d.p)
	for b := range d.p.Workloads {
		kind, _, ok := inventory.DataService(d.groups[b][0])
		if !ok {
			continue
		}
		port := d.dataPort(b)
		for a := range d.p.Workloads {
			if a == b {
				continue
			}
			comment := why(a, b, kind)
			if comment == "" {
				continue
			}
			t := policy.Test{From: policy.WorkloadRef(d.p.Workloads[a].Name), To: policy.WorkloadRef(d.p.Workloads[b].Name), Port: port, Expect: policy.Deny, Comment: comment}
			if m.Eval(t.From, t.To, t.Port).Allow || slices.ContainsFunc(d.p.Tests, func(o policy.Test) bool { return o.From == t.From && o.To == t.To }) {
				continue
			}
			d.p.Tests = append(d.p.Tests, t)
		}
	}
}

// dataPort picks the port a data service listens on: a well-known data
// port it exposes, else its first port, else any port.
func (d *drafter) dataPort(i int) l4.Port {
	ports, _ := d.listenPorts(i)
	for _, r := range ports {
		if inventory.DataPort(l4.Port{Number: r.First, Proto: r.Proto}) != "" {
			return l4.Port{Proto: r.Proto, Number: r.First}
		}
	}
	if len(ports) > 0 {
		return l4.Port{Proto: ports[0].Proto, Number: ports[0].First}
	}
	return l4.Port{}
}

func (d *drafter) finish() {
	src := d.snap.Source.Kind
	if d.snap.Source.Detail != "" {
		src += " " + d.snap.Source.Detail
	}
	d.p.Comments.Head = "zonewarden policy: zones, the workloads that join them and the flows allowed between them.\n" +
		"Drafted by 'zonewarden init' from " + src + " to keep what works today.\n" +
		"Review every \"decide:\" comment, then run 'zonewarden check' and 'zonewarden plan' on this file.\n" +
		"Format: docs/policy.md."
	d.p.Comments.Zones = "A zone is the Docker network of the same name; internal: true means no route out of the host.\n" +
		"default: deny lets only declared flows through between members; allow is Docker's own behaviour."
	if len(d.skippedNets) > 0 {
		d.p.Comments.Zones += "\nNot zones (zonewarden manages bridge networks): " + strings.Join(d.skippedNets, ", ") + "."
	}
	d.p.Comments.Workloads = "Each workload selects containers (match) and lists the zones they join and the ports they publish.\n" +
		"Egress (beyond the host) defaults to nothing for members of an internal zone, anything otherwise."
	d.p.Comments.Flows = "Connections that work today between members of a network, narrowed to the ports the destination\n" +
		"exposes or publishes. In a default: allow zone they are what default: deny would keep."
	if d.snap.Source.Kind == "compose" {
		d.p.Comments.Flows = "Connections the compose files declare: depends_on, and the services named in each service's\n" +
			"environment (URLs, DSNs, HOST=name), on the ports named there, or the ones the destination exposes,\n" +
			"publishes or its image listens on by default. Each flow's comment gives its evidence."
	}
	if len(d.noEvidence) > 0 {
		d.p.Comments.Flows += "\ndecide: these share a network, but nothing in the compose files says that one connects to the\n" +
			"other, so no flow is proposed (add one if it is needed):\n  " + strings.Join(d.noEvidence, "\n  ")
	}
	if len(d.unknownPorts) > 0 {
		d.p.Comments.Flows += "\ndecide: these share a network, but the destination exposes no port, so no flow keeps them\n" +
			"connected once the zone is default: deny (add one with the port if it is needed):\n  " +
			strings.Join(d.unknownPorts, "\n  ")
	}
	if len(d.p.Tests) > 0 {
		d.p.Comments.Tests = "What must never happen; 'zonewarden check' proves it on every change."
	}
	d.p.Comments.Unmanaged = "Containers no workload selects: allow leaves them to Docker, warn also reports them, deny cuts them off."
	if len(d.unmanaged) > 0 {
		d.p.Comments.Unmanaged += "\ndecide: these cannot join a zone and stay unmanaged:\n  " + strings.Join(d.unmanaged, "\n  ")
	}
}
