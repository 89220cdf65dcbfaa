// Package policy owns zonewarden's policy file: the zones of a Docker host,
// the workloads that join them, the flows allowed between them, and the
// tests the policy must pass.
//
// It reads the file strictly (Parse: version required, unknown fields,
// duplicate keys and dangling references rejected, every problem reported
// as file:line:col) and writes it back canonically (Format). Questions on a
// policy (may A reach B?) and its binding to a host are internal/model's;
// drafting a policy from a host is internal/draft's.
//
// The package is pure: it never imports the Docker SDK, netlink or os/exec,
// and it reads no file itself; the CLI hands it bytes. The format is
// described in docs/policy.md.
package policy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
)

// Version is the policy format version this build reads and writes.
const Version = 1

// Pos is a 1-based line and column in the policy file. The zero Pos means
// unknown (a policy built in code).
type Pos struct{ Line, Col int }

// Action is what a zone does by default, or what a test expects.
type Action string

// Actions.
const (
	Allow Action = "allow"
	Deny  Action = "deny"
)

// Unmanaged says what happens to containers that no workload matches.
type Unmanaged string

// Unmanaged modes. Warn is the default.
const (
	// UnmanagedAllow leaves containers that no workload matches to Docker.
	UnmanagedAllow Unmanaged = "allow"
	// UnmanagedWarn does the same and reports them (plan, agent).
	UnmanagedWarn Unmanaged = "warn"
	// UnmanagedDeny cuts them off from every zone.
	UnmanagedDeny Unmanaged = "deny"
)

// Mode says whether a zone's drops are enforced or only logged.
type Mode string

// Modes. Enforce is the default.
const (
	// Enforce drops what no flow allows.
	Enforce Mode = "enforce"
	// Monitor loads the same rules but lets through what they would
	// drop, logging each as "would deny": the rehearsal before Enforce.
	Monitor Mode = "monitor"
)

// Policy is one policy file. Zones, workloads, flows and tests keep the
// order of the file.
type Policy struct {
	// File names the policy in positions ("policy.yaml"); "" for a policy
	// built in code.
	File      string
	Version   int
	Zones     []Zone
	Workloads []Workload
	Flows     []Flow
	Tests     []Test
	Unmanaged Unmanaged
	// Mode is every zone's mode unless the zone names its own; "" is
	// Enforce.
	Mode Mode
	// Comments are written by Format and read back by Parse where they
	// stand before a section.
	Comments Comments
}

// Comments are free comments of a policy file, without the leading "# ".
// Lines are separated by "\n".
type Comments struct {
	Head, Zones, Workloads, Flows, Tests, Unmanaged, Mode string
}

// Zone is a trust boundary, realised as the Docker network of the same
// name.
type Zone struct {
	Name string
	// Internal zones have no route out of the host (docker network create
	// --internal).
	Internal bool
	// Default decides traffic between members that no flow covers: Allow
	// (Docker's own behaviour, the default) or Deny.
	Default Action
	// Mode is the zone's own mode; "" takes the policy's.
	Mode Mode
	// Encrypted, on a Docker Swarm, asks for the zone's overlay to be
	// encrypted (IPsec ESP between nodes); nil means yes. A single host
	// has no traffic between nodes to encrypt and ignores it.
	Encrypted *bool
	Pos       Pos
	Comment   string
}

// WantsEncryption reports whether the zone's overlay must be encrypted on
// a Swarm: unless the policy says encrypted: false.
func (z *Zone) WantsEncryption() bool { return z.Encrypted == nil || *z.Encrypted }

// Workload is the set of containers that Match selects.
type Workload struct {
	Name  string
	Match Match
	// Zones the workload's containers join, and no other network.
	Zones []string
	// Publish lists the ports its containers may publish on the host.
	Publish []Publish
	// Ingress lists the sources that may reach the published ports; empty
	// means anyone.
	Ingress []netip.Prefix
	// Egress lists what the workload may reach beyond the host. Empty
	// means nothing for members of an internal zone and anything
	// otherwise.
	Egress  []Egress
	Pos     Pos
	Comment string

	zonePos    []Pos
	publishPos []Pos
	ingressPos []Pos
	matchPos   Pos
	bad        badFields // parts decoding reported problems in: checks that would repeat them skip them
}

// MatchPos is the position of the workload's match, for problems of what
// it selects.
func (w *Workload) MatchPos() Pos { return w.matchPos }

// Match selects containers. Every criterion given must hold; at least one
// must be given. Globs use path.Match syntax (*, ?, [a-z]).
type Match struct {
	// Name is a glob on the container name.
	Name string
	// Image is a glob on the image reference. Without a "/" it is matched
	// against the last path element ("postgres:*" matches
	// "docker.io/library/postgres:16"); without a ":" or "@" against the
	// repository whatever the tag.
	Image string
	// Labels maps label keys to value globs ("*": the label is set).
	Labels map[string]string
	// Compose matches the compose project and service labels.
	Compose ComposeMatch
}

// ComposeMatch selects the containers docker compose created for a
// project and service (globs; empty matches any).
type ComposeMatch struct {
	Project, Service string
}

// IsZero reports whether no compose criterion is given.
func (c ComposeMatch) IsZero() bool { return c.Project == "" && c.Service == "" }

// IsZero reports whether the match has no criterion.
func (m Match) IsZero() bool {
	return m.Name == "" && m.Image == "" && len(m.Labels) == 0 && m.Compose.IsZero()
}

// Publish is one port a workload may publish:
// "[hostip:]hostport:containerport/proto", or "containerport/proto" for a
// host port that Docker picks.
type Publish struct {
	// HostIP is the host address; the zero Addr (and 0.0.0.0, ::) means
	// every interface.
	HostIP netip.Addr
	// Host is the host port range; First is 0 when Docker picks.
	Host l4.Range
	// Container is the container port range, as long as Host when given.
	Container l4.Range
}

// ParsePublish reads "443:443/tcp", "127.0.0.1:5432:5432/tcp",
// "[::1]:2222:22/tcp", "9000-9001:9000-9001/tcp" or "7000/tcp".
func ParsePublish(s string) (Publish, error) {
	spec := strings.TrimSpace(s)
	proto := l4.ProtoTCP
	if i := strings.LastIndexByte(spec, '/'); i >= 0 {
		proto = strings.ToLower(spec[i+1:])
		spec = spec[:i]
	}
	switch proto {
	case l4.ProtoTCP, l4.ProtoUDP, l4.ProtoSCTP:
	default:
		return Publish{}, fmt.Errorf("publish %q: the protocol must be tcp, udp or sctp", s)
	}
	var p Publish
	var hostIP, hostPort, ctrPort string
	if rest, ok := strings.CutPrefix(spec, "["); ok {
		ip, after, ok := strings.Cut(rest, "]:")
		if !ok {
			return Publish{}, fmt.Errorf("publish %q: write an IPv6 host address in brackets, like [::1]:8443:443/tcp", s)
		}
		hostIP = ip
		hostPort, ctrPort, ok = strings.Cut(after, ":")
		if !ok {
			return Publish{}, fmt.Errorf("publish %q: want [hostip]:hostport:containerport/proto", s)
		}
	} else {
		parts := strings.Split(spec, ":")
		switch len(parts) {
		case 1:
			ctrPort = parts[0]
		case 2:
			hostPort, ctrPort = parts[0], parts[1]
		case 3:
			hostIP, hostPort, ctrPort = parts[0], parts[1], parts[2]
		default:
			return Publish{}, fmt.Errorf("publish %q: want [hostip:]hostport:containerport/proto (write an IPv6 host address in brackets)", s)
		}
	}
	if hostIP != "" {
		ip, err := netip.ParseAddr(hostIP)
		if err != nil || ip.Zone() != "" {
			return Publish{}, fmt.Errorf("publish %q: %q is not an IP address", s, hostIP)
		}
		p.HostIP = ip.Unmap()
	}
	c, err := l4.ParseRange(ctrPort + "/" + proto)
	if err != nil {
		return Publish{}, fmt.Errorf("publish %q: container port: %v", s, err)
	}
	p.Container = c
	if hostPort != "" {
		h, err := l4.ParseRange(hostPort + "/" + proto)
		if err != nil {
			return Publish{}, fmt.Errorf("publish %q: host port: %v", s, err)
		}
		if h.Last-h.First != c.Last-c.First {
			return Publish{}, fmt.Errorf("publish %q: the host range %s and the container range %s differ in length", s, h, c)
		}
		p.Host = h
	} else {
		p.Host = l4.Range{Proto: proto}
	}
	return p, nil
}

func (p Publish) String() string {
	var b strings.Builder
	if p.HostIP.IsValid() {
		if p.HostIP.Is6() {
			b.WriteString("[" + p.HostIP.String() + "]:")
		} else {
			b.WriteString(p.HostIP.String() + ":")
		}
	}
	if p.Host.First != 0 {
		b.WriteString(portNumbers(p.Host) + ":")
	} else if p.HostIP.IsValid() {
		b.WriteString(":")
	}
	b.WriteString(p.Container.String())
	return b.String()
}

func portNumbers(r l4.Range) string {
	if r.First == r.Last {
		return strconv.Itoa(int(r.First))
	}
	return strconv.Itoa(int(r.First)) + "-" + strconv.Itoa(int(r.Last))
}

// AllInterfaces reports whether the port is published on every host
// address.
func (p Publish) AllInterfaces() bool { return !p.HostIP.IsValid() || p.HostIP.IsUnspecified() }

// Allows reports whether the policy entry allows the binding b: same
// protocol, the container port in range, the host port at the same offset
// (any when Docker picks), and the binding's host address the entry's (any
// when the entry publishes on every interface).
func (p Publish) Allows(b inventory.PortBinding) bool {
	cp := b.ContainerPort
	if cp.Proto != p.Container.Proto || cp.Number < p.Container.First || cp.Number > p.Container.Last {
		return false
	}
	// HostPort 0: no host port at all (a network in gateway mode routed
	// opens the container port on the container's own address), so the
	// entry's host port has nothing to hold to.
	if p.Host.First != 0 && b.HostPort != 0 && b.HostPort != p.Host.First+(cp.Number-p.Container.First) {
		return false
	}
	if p.AllInterfaces() {
		return true
	}
	return b.HostIP.IsValid() && b.HostIP.Unmap() == p.HostIP
}

// HostPort reports whether the entry publishes host port n of proto.
func (p Publish) HostPort(proto string, n uint16) bool {
	return p.Host.First != 0 && p.Host.Proto == proto && p.Host.First <= n && n <= p.Host.Last
}

// badFields marks the parts of a workload that did not decode.
type badFields uint8

const (
	badMatch badFields = 1 << iota
	badZones
	badPublish
	badIngress
	badEgress
)

// Egress is one destination a workload may reach beyond the host.
type Egress struct {
	To    netip.Prefix
	Ports l4.List
	Pos   Pos
}

// Flow allows connections from one workload or zone to another on ports.
type Flow struct {
	From, To Ref
	Ports    l4.List
	Pos      Pos
	Comment  string

	fromPos, toPos, portsPos Pos
}

// Test is an assertion the policy must satisfy, checked by model.Model.Run.
type Test struct {
	From, To Ref
	// Port is the port tested; the zero Port means "any port": expect
	// allow passes when some port is allowed, expect deny when none is.
	// For a test from an address, Port is the host port the client dials.
	Port    l4.Port
	Expect  Action
	Pos     Pos
	Comment string

	fromPos, toPos Pos
}

// RefKind says what a Ref names.
type RefKind uint8

// Kinds of references.
const (
	RefWorkload RefKind = iota
	RefZone
	// RefAddress is an address beyond the host (tests only): a client of
	// published ports, or a destination of egress.
	RefAddress
)

// Ref is a flow or test endpoint: a workload ("api"), every member of a
// zone ("zone:dev"), or, in tests, an address ("203.0.113.7").
type Ref struct {
	Kind RefKind
	Name string     // workload or zone name
	Addr netip.Addr // RefAddress only
}

// ParseRef reads "zone:NAME", an IP address, or a workload name.
func ParseRef(s string) Ref {
	if z, ok := strings.CutPrefix(s, "zone:"); ok {
		return Ref{Kind: RefZone, Name: z}
	}
	if strings.ContainsAny(s, ".:") {
		if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
			return Ref{Kind: RefAddress, Addr: a.Unmap()}
		}
	}
	return Ref{Kind: RefWorkload, Name: s}
}

// WorkloadRef and ZoneRef build references.
func WorkloadRef(name string) Ref { return Ref{Kind: RefWorkload, Name: name} }

// ZoneRef refers to every member of a zone.
func ZoneRef(name string) Ref { return Ref{Kind: RefZone, Name: name} }

func (r Ref) String() string {
	switch r.Kind {
	case RefZone:
		return "zone:" + r.Name
	case RefAddress:
		return r.Addr.String()
	}
	return r.Name
}

// Zone returns the zone with the given name, or nil.
func (p *Policy) Zone(name string) *Zone {
	for i := range p.Zones {
		if p.Zones[i].Name == name {
			return &p.Zones[i]
		}
	}
	return nil
}

// Workload returns the workload with the given name, or nil.
func (p *Policy) Workload(name string) *Workload {
	for i := range p.Workloads {
		if p.Workloads[i].Name == name {
			return &p.Workloads[i]
		}
	}
	return nil
}

// UnmanagedMode returns Unmanaged, or the default UnmanagedWarn.
func (p *Policy) UnmanagedMode() Unmanaged {
	if p.Unmanaged == "" {
		return UnmanagedWarn
	}
	return p.Unmanaged
}

// ZoneMode is the mode zone z runs in: its own, else the policy's, else
// Enforce.
func (p *Policy) ZoneMode(z *Zone) Mode {
	switch {
	case z.Mode != "":
		return z.Mode
	case p.Mode != "":
		return p.Mode
	}
	return Enforce
}

// Monitors reports whether any zone runs in monitor mode.
func (p *Policy) Monitors() bool { return len(p.MonitoredZones()) > 0 }

// MonitoredZones names the zones in monitor mode, in the policy's order.
func (p *Policy) MonitoredZones() []string {
	var out []string
	for i := range p.Zones {
		if p.ZoneMode(&p.Zones[i]) == Monitor {
			out = append(out, p.Zones[i].Name)
		}
	}
	return out
}

// Position renders pos as "file:line:col" for messages that point at
// another place of the policy.
func (p *Policy) Position(pos Pos) string {
	if pos.Line == 0 {
		return p.File
	}
	s := strconv.Itoa(pos.Line) + ":" + strconv.Itoa(pos.Col)
	if p.File != "" {
		s = p.File + ":" + s
	}
	return s
}
