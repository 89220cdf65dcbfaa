// Package enforce compiles a policy bound to a host into an nftables
// ruleset that zonewarden alone owns, and renders it as one nft script
// (a full sync) or as the set elements that changed (an incremental
// update). See README.md for the hooks, chains and sets.
//
// It is pure: it reads a model.Binding and writes text; the applier in
// the CLI loads that text with one `nft -f` transaction.
package enforce

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy"
)

// Table is the name of zonewarden's table (family inet).
const Table = "zonewarden"

// Options tune the compiled ruleset.
type Options struct {
	// Table names the table; the default is Table. Tests use their own.
	Table string
	// Priority of zonewarden's base chains on their hooks; lower runs
	// earlier. The default, -5, runs before Docker's filter chains (0):
	// a drop there is final, an accept is not.
	Priority int
	// LogGroup is the nflog group of the drop rules; the default is
	// LogGroup.
	LogGroup uint16
}

func (opts Options) withDefaults() Options {
	if opts.Priority == 0 {
		opts.Priority = -5
	}
	if opts.Table == "" {
		opts.Table = Table
	}
	if opts.LogGroup == 0 {
		opts.LogGroup = LogGroup
	}
	return opts
}

// family is one IP family's names and types.
type family struct {
	suffix   string // "4" or "6"
	ip       string // nft payload keyword: "ip" or "ip6"
	addr     string // set type: "ipv4_addr" or "ipv6_addr"
	icmp     string // ICMP protocol name
	anywhere netip.Prefix
	is       func(netip.Addr) bool
}

// fields returns the family's source and destination address fields.
func (f family) fields() (src, dst Field) {
	if f.suffix == "6" {
		return Src6, Dst6
	}
	return Src4, Dst4
}

// nfproto is the match of the family's packets.
func (f family) nfproto() Match {
	if f.suffix == "6" {
		return Match{Kind: Family, Value: "ipv6"}
	}
	return Match{Kind: Family, Value: "ipv4"}
}

var families = []family{
	{"4", "ip", "ipv4_addr", "icmp", netip.MustParsePrefix("0.0.0.0/0"), netip.Addr.Is4},
	{"6", "ip6", "ipv6_addr", "ipv6-icmp", netip.MustParsePrefix("::/0"), func(a netip.Addr) bool { return a.Is6() && !a.Is4In6() }},
}

// Compile turns a binding into a ruleset. The binding's problems (several
// workloads selecting one container) do not stop it: such a container is
// not admitted, so its traffic in managed zones is dropped.
func Compile(b *model.Binding, opts Options) *Ruleset {
	opts = opts.withDefaults()
	p := b.Model.Policy()
	defs := setDefs()
	monitor := p.Monitors()
	if monitor {
		defs = append(defs, monitorSetDefs()...)
	}
	r := newRuleset(opts, "inet", defs)
	r.monitor = monitor
	ix := inventory.NewIndex(b.Snapshot)
	unmanagedFree := p.UnmanagedMode() != policy.UnmanagedDeny

	zoneNames := map[string]*policy.Zone{}
	for i := range p.Zones {
		zoneNames[p.Zones[i].Name] = &p.Zones[i]
	}
	// Subnets: every bridge network's (local), the zones' (zones), and
	// the default: allow zones' pairs. An overlay's are there too: in its
	// own namespace on each node, where the agent loads this ruleset
	// (agent.RunOverlays), it is a bridge (br0) with a port to the other
	// nodes (vxlan0); no host's forward hook sees its traffic.
	for _, n := range b.Snapshot.Networks {
		if n.Driver != "bridge" && n.Driver != "overlay" {
			continue
		}
		z := zoneNames[n.Name]
		for _, s := range n.Subnets {
			f := familyOf(s.Prefix.Addr())
			r.add("local"+f.suffix, s.Prefix.String(), n.Name)
			if z == nil {
				continue
			}
			r.add("zones"+f.suffix, s.Prefix.String(), z.Name)
			if monitor && p.ZoneMode(z) == policy.Enforce {
				r.add("enforced"+f.suffix, s.Prefix.String(), z.Name)
			}
			if z.Default == policy.Deny {
				r.add("denyzones"+f.suffix, s.Prefix.String(), z.Name)
			}
			if z.Default != policy.Deny {
				r.add("allowzone"+f.suffix, s.Prefix.String()+" . "+s.Prefix.String(), "zone "+z.Name+" default: allow")
			}
		}
	}

	// Admission: the addresses of the containers one workload selects,
	// and of those none selects when the policy leaves them to Docker.
	for i := range b.Containers {
		m := &b.Containers[i]
		addrs := addresses(ix, m.Container)
		if m.Workload != nil {
			addrs = endpointAddrs(admittedEndpoints(ix, zoneNames, m.Container, m.Zones))
		}
		switch {
		case m.Workload != nil:
			for _, a := range addrs {
				r.add("admitted"+familyOf(a).suffix, a.String(), m.Container.Name)
			}
		case len(m.Attached) > 0 && b.LeftToDocker(m):
			// Only where it shares a zone does admission matter. One on
			// a default: deny zone is fenced: none of its addresses is
			// admitted (Binding.Fenced).
			for _, a := range addrs {
				f := familyOf(a)
				r.add("admitted"+f.suffix, a.String(), m.Container.Name)
				r.add("free"+f.suffix, a.String(), m.Container.Name+" (unmanaged)")
			}
		}
		if len(b.DenyZonesOf(m)) > 0 {
			for _, a := range addresses(ix, m.Container) {
				r.add("denyhosts"+familyOf(a).suffix, a.String(), m.Container.Name)
			}
			for _, pb := range ix.PublishedPorts(m.Container) {
				r.add("denypub", pb.ContainerPort.Proto+" . "+fmt.Sprint(pb.HostPort), m.Container.Name+" "+pb.String())
			}
		}
		if m.Workload == nil {
			continue
		}
		w := m.Workload
		// Egress beyond the host.
		egress := w.Egress
		if len(egress) == 0 && !inInternalZone(p, w) {
			egress = []policy.Egress{{Ports: l4.AllPorts()}}
		}
		for _, a := range addrs {
			f := familyOf(a)
			for _, e := range egress {
				to := e.To
				if !to.IsValid() {
					to = f.anywhere
				}
				if familyOf(to.Addr()).suffix != f.suffix {
					continue
				}
				for _, pr := range e.Ports {
					r.add("egress"+f.suffix, fmt.Sprintf("%s . %s . %s", a, to, portKey(pr, f)), w.Name+" egress")
				}
			}
		}
		// Ingress to the ports it publishes, from outside the host.
		for _, pb := range ix.PublishedPorts(m.Container) {
			// Every host port a managed container publishes is guarded
			// on the input hook (containers reach it only by a flow);
			// outside clients reach only the ports the policy lets it
			// publish.
			if pb.HostPort != 0 { // 0: a routed network's, no host port
				r.add("pubports", pb.ContainerPort.Proto+" . "+fmt.Sprint(pb.HostPort), m.Container.Name+" "+pb.String())
				if monitor && enforcedOn(p, zoneNames, m.Attached) {
					r.add("enforcedpub", pb.ContainerPort.Proto+" . "+fmt.Sprint(pb.HostPort), m.Container.Name+" "+pb.String())
				}
			}
			if !b.PublishAllowed(m.Container.Name, pb) {
				continue
			}
			sources := w.Ingress
			if len(sources) == 0 {
				sources = []netip.Prefix{families[0].anywhere, families[1].anywhere}
			}
			for _, a := range addrs {
				f := familyOf(a)
				for _, src := range sources {
					if familyOf(src.Addr()).suffix == f.suffix {
						r.add("ingress"+f.suffix, fmt.Sprintf("%s . %s . %s . %d", src, a, pb.ContainerPort.Proto, pb.ContainerPort.Number), w.Name+" ingress "+pb.String())
					}
				}
			}
		}
	}

	// Flows: between members of the source and destination workloads,
	// address to address on each network they share (Docker routes
	// nothing else between containers), on the ports; and from every
	// address of the source to the destination's published host ports
	// that map to those ports (reached through the userland proxy on the
	// input hook).
	for _, wf := range b.Model.WorkloadFlows() {
		from, to := b.Members(wf.From.Name), b.Members(wf.To.Name)
		note := wf.From.Name + " -> " + wf.To.Name
		keys := make([]string, len(wf.Ports))
		for _, src := range from {
			srcEps := admittedEndpoints(ix, zoneNames, src, wf.From.Zones)
			for _, dst := range to {
				if dst == src {
					continue
				}
				dstEps := admittedEndpoints(ix, zoneNames, dst, wf.To.Zones)
				for _, se := range srcEps {
					for _, de := range dstEps {
						if se.Network != de.Network {
							continue
						}
						for _, pair := range [2][2]netip.Addr{{se.IPv4, de.IPv4}, {se.IPv6, de.IPv6}} {
							if !pair[0].IsValid() || !pair[1].IsValid() {
								continue
							}
							f := familyOf(pair[0])
							prefix := pair[0].String() + " . " + pair[1].String() + " . "
							for i, pr := range wf.Ports {
								keys[i] = prefix + portKey(pr, f)
								set := "allow" // one port: a hash lookup
								if pr.Proto == l4.ProtoAll || pr.Proto == l4.ProtoICMP || pr.First != pr.Last {
									set = "allowrange" // ranges: an interval lookup
								}
								r.add(set+f.suffix, keys[i], note)
							}
						}
					}
				}
				for _, pb := range ix.PublishedPorts(dst) {
					if !wf.Ports.Contains(reachPort(pb)) {
						continue
					}
					via := note + " via " + pb.String()
					suffix := " . " + pb.ContainerPort.Proto + " . " + strconv.Itoa(int(pb.HostPort))
					srcAddrs := endpointAddrs(srcEps)
					for _, sa := range srcAddrs {
						if pb.HostPort != 0 { // 0: a routed network's, no host port
							r.add("pubin"+familyOf(sa).suffix, sa.String()+suffix, via)
						}
					}
					// The kernel path to the same port: Docker 29, and
					// any engine with userland-proxy=false, DNATs a
					// connection from another network to the host port
					// in prerouting (no docker-proxy), so the forward
					// hook sees source -> container on the container
					// port; a routed-mode network is reached there
					// directly. Docker alone decides the DNAT, so the
					// destination is the publisher.
					port := " . " + pb.ContainerPort.Proto + " . " + strconv.Itoa(int(pb.ContainerPort.Number))
					for _, sa := range srcAddrs {
						for _, da := range endpointAddrs(dstEps) {
							if familyOf(sa).suffix == familyOf(da).suffix {
								r.add("allow"+familyOf(sa).suffix, sa.String()+" . "+da.String()+port, via)
							}
						}
					}
				}
			}
		}
	}
	r.unmanagedFree = unmanagedFree
	return r
}

// enforcedOn reports whether one of the zones is in enforce mode.
func enforcedOn(p *policy.Policy, zones map[string]*policy.Zone, names []string) bool {
	for _, n := range names {
		if z := zones[n]; z != nil && p.ZoneMode(z) == policy.Enforce {
			return true
		}
	}
	return false
}

// endpoints returns the container's endpoints, those of its namespace's
// owner for --network container:X.
func endpoints(ix *inventory.Index, c *inventory.Container) []inventory.Endpoint {
	for range 8 {
		x := c.SharedNamespaceWith()
		if x == "" || ix.Container(x) == nil {
			break
		}
		c = ix.Container(x)
	}
	return c.Endpoints
}

// addresses returns the container's addresses (of its namespace's owner
// for --network container:X).
func addresses(ix *inventory.Index, c *inventory.Container) []netip.Addr {
	return endpointAddrs(endpoints(ix, c))
}

// admittedEndpoints returns the endpoints of a member of a workload with
// these zones that zonewarden admits: all but those on a zone the
// workload may not join (a stray membership, Binding.Strays), where the
// container stays unadmitted (fail closed). Every set that accepts a
// workload's traffic is built from these, so no accept reaches past the
// fail-closed rules.
func admittedEndpoints(ix *inventory.Index, zones map[string]*policy.Zone, c *inventory.Container, workloadZones []string) []inventory.Endpoint {
	var out []inventory.Endpoint
	for _, e := range endpoints(ix, c) {
		if zones[e.Network] == nil || slices.Contains(workloadZones, e.Network) {
			out = append(out, e)
		}
	}
	return out
}

// endpointAddrs returns the distinct addresses of endpoints.
func endpointAddrs(eps []inventory.Endpoint) []netip.Addr {
	var out []netip.Addr
	for _, e := range eps {
		for _, a := range []netip.Addr{e.IPv4, e.IPv6} {
			if a.IsValid() && !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

func familyOf(a netip.Addr) family {
	if a.Is4() || a.Is4In6() {
		return families[0]
	}
	return families[1]
}

// portKey renders a port range as the "proto . port" part of a key.
func portKey(pr l4.Range, f family) string {
	switch pr.Proto {
	case l4.ProtoAll:
		return "0-255 . 0-65535"
	case l4.ProtoICMP:
		return f.icmp + " . 0-65535"
	}
	if pr.First == pr.Last {
		return pr.Proto + " . " + strconv.Itoa(int(pr.First))
	}
	return pr.Proto + " . " + strconv.Itoa(int(pr.First)) + "-" + strconv.Itoa(int(pr.Last))
}

func inInternalZone(p *policy.Policy, w *policy.Workload) bool {
	for _, z := range w.Zones {
		if zz := p.Zone(z); zz != nil && zz.Internal {
			return true
		}
	}
	return false
}
