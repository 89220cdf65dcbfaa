// Package inventory owns the host snapshot: the containers, networks and
// daemon settings of one Docker host, as plain data.
//
// Every source (the Docker Engine API, compose files, a snapshot file)
// produces a *Snapshot; every analysis (audit, reachability, policy binding)
// reads one. The package is pure: it never imports the Docker SDK, netlink or
// os/exec. The JSON form is versioned and documented in docs/snapshot.md.
package inventory

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zonewarden/zonewarden/internal/l4"
)

// SchemaVersion is the version of the snapshot JSON written by this build.
// Decode accepts this version only.
const SchemaVersion = 1

// Snapshot is everything zonewarden knows about one Docker host.
// The zero value is an empty host.
type Snapshot struct {
	Version    int         `json:"version"`
	Source     Source      `json:"source"`
	TakenAt    time.Time   `json:"taken_at,omitzero"`
	Daemon     Daemon      `json:"daemon"`
	Networks   []Network   `json:"networks"`
	Containers []Container `json:"containers"`
	// Swarm is the Swarm the daemon is a manager of, nil when none: its
	// nodes and services. Its tasks are among Containers, each with the
	// Node it runs on, and its overlay networks among Networks.
	Swarm *Swarm `json:"swarm,omitempty"`
}

// Source says where a snapshot came from.
type Source struct {
	// Kind is "docker" (a live Engine API), "compose" (compose files, as
	// docker compose would create them) or "snapshot" (a file).
	Kind string `json:"kind"`
	// Detail names the endpoint or files: "unix:///var/run/docker.sock",
	// "compose.yaml,compose.prod.yaml".
	Detail string `json:"detail,omitempty"`
}

// Daemon holds the settings of the Docker daemon that matter for isolation,
// where the Engine API shows them. Unknown values are left at their zero
// value and flagged by the *Known fields.
type Daemon struct {
	Version    string `json:"version,omitempty"`
	APIVersion string `json:"api_version,omitempty"`
	OS         string `json:"os,omitempty"`
	Kernel     string `json:"kernel,omitempty"`
	// BridgeNfIptables reports net.bridge.bridge-nf-call-iptables, which
	// decides whether traffic inside one bridge network passes iptables.
	BridgeNfIptables  *bool `json:"bridge_nf_iptables,omitempty"`
	BridgeNfIP6tables *bool `json:"bridge_nf_ip6tables,omitempty"`
	IPv4Forwarding    *bool `json:"ipv4_forwarding,omitempty"`
	// IP6Tables reports whether Docker filters IPv6 (the daemon option
	// ip6tables). When false, Docker installs no ip6tables rules: over IPv6
	// nothing isolates networks from each other, enforces enable_icc=false
	// or --internal, or stops other machines that route to a container's
	// IPv6 subnet. Docker turns it on by default from 27.0; the Engine API
	// does not show it, so the Docker source infers it from the version.
	// Nil when unknown, which the analysis takes as on.
	IP6Tables   *bool `json:"ip6tables,omitempty"`
	LiveRestore bool  `json:"live_restore,omitempty"`
	Rootless    bool  `json:"rootless,omitempty"`
	// BrNetfilter reports whether the br_netfilter module is loaded (its
	// sysctls exist). Without it no bridged frame passes the inet hooks,
	// whatever BridgeNfIptables says; Docker loads it since 27.3 only
	// when icc=false or userland-proxy=false (moby#48492). Nil when
	// unknown (a remote daemon, a snapshot file).
	BrNetfilter *bool `json:"br_netfilter,omitempty"`
	// FirewallBackend is the daemon's firewall: "iptables" or "nftables"
	// (Docker 29's option). /info reports it from API 1.49; older
	// engines have only iptables. Empty when unknown.
	FirewallBackend string `json:"firewall_backend,omitempty"`
	// UserlandProxy reports the daemon option userland-proxy (on by
	// default). Off, or on Docker 29, a container reaches another
	// network's published port by DNAT in the kernel, not through
	// docker-proxy. Nil when unknown.
	UserlandProxy *bool `json:"userland_proxy,omitempty"`
	// AllowDirectRouting is the daemon option allow-direct-routing
	// (Docker 28+): remote hosts with a route to a container network
	// reach published ports on container addresses directly.
	AllowDirectRouting bool `json:"allow_direct_routing,omitempty"`
	// SwarmRole is "manager" or "worker" when the daemon is a node of a
	// Swarm, "" otherwise; SwarmNodeID is its node's id.
	SwarmRole   string `json:"swarm_role,omitempty"`
	SwarmNodeID string `json:"swarm_node_id,omitempty"`
	// SecurityOptions as reported by /info ("name=seccomp,profile=builtin").
	SecurityOptions []string `json:"security_options,omitempty"`
}

// Major returns the engine's major version (20 for "20.10.24+dfsg1"),
// 0 when unknown.
func (d *Daemon) Major() int {
	major, _, _ := strings.Cut(d.Version, ".")
	n, err := strconv.Atoi(major)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// KernelDNAT reports whether a container reaches another network's
// published port by DNAT in the kernel (the forward hook) rather than
// through docker-proxy (the input hook): on Docker 29 (moby 1ad9599da7
// removed the nat rules that sent it to the proxy) and on any engine run
// with userland-proxy=false.
func (d *Daemon) KernelDNAT() bool {
	return d.Major() >= 29 || d.UserlandProxy != nil && !*d.UserlandProxy
}

// IsolatesDNAT reports whether Docker's own network isolation drops such
// a DNATed connection between two networks: on engines before 29, whose
// DOCKER-ISOLATION-STAGE-2 drops every packet between two bridges,
// published port or not (checked on 20.10 and 28.5). Docker 29 accepts
// published ports from other interfaces in its DOCKER chain instead.
func (d *Daemon) IsolatesDNAT() bool {
	return d.KernelDNAT() && d.Major() < 29
}

// Network is one Docker network.
type Network struct {
	ID     string `json:"id,omitempty"`
	Name   string `json:"name"`
	Driver string `json:"driver"` // bridge, host, null, overlay, macvlan, ...
	Scope  string `json:"scope,omitempty"`
	// Internal networks have no route out of the host and publish no ports.
	Internal bool `json:"internal,omitempty"`
	// Attachable overlays (Swarm) let any container of any node join them
	// with docker run --network, not only services' tasks.
	Attachable bool `json:"attachable,omitempty"`
	// Ingress is the Swarm's routing-mesh overlay.
	Ingress bool `json:"ingress,omitempty"`
	// ICC is false when com.docker.network.bridge.enable_icc=false: members
	// of the network cannot reach each other.
	ICC        bool              `json:"icc"`
	EnableIPv6 bool              `json:"enable_ipv6,omitempty"`
	Subnets    []Subnet          `json:"subnets,omitempty"`
	Options    map[string]string `json:"options,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	// Bridge is the host-side bridge interface (docker0, br-1a2b3c4d5e6f).
	Bridge string `json:"bridge,omitempty"`
	// External is set by the compose source for networks the project uses
	// but does not create.
	External bool `json:"external,omitempty"`
	// GatewayMode4 and GatewayMode6 are the bridge's gateway modes
	// (com.docker.network.bridge.gateway_mode_ipv4/6, Docker 27+): empty
	// for the default, nat. See GatewayMode.
	GatewayMode4 string `json:"gateway_mode_ipv4,omitempty"`
	GatewayMode6 string `json:"gateway_mode_ipv6,omitempty"`
	// InhibitIPv4 (com.docker.network.bridge.inhibit_ipv4): the bridge
	// has no IPv4 address, so its members have no IPv4 gateway.
	InhibitIPv4 bool `json:"inhibit_ipv4,omitempty"`
	// NoMasquerade (com.docker.network.bridge.enable_ip_masquerade=false):
	// egress leaves with the container's own address.
	NoMasquerade bool `json:"no_masquerade,omitempty"`
	// HostBinding (com.docker.network.bridge.host_binding_ipv4) is the
	// host address of a -p with none; zero for every address.
	HostBinding netip.Addr `json:"host_binding,omitzero"`
	// TrustedHostInterfaces
	// (com.docker.network.bridge.trusted_host_interfaces, Docker 28+):
	// host interfaces from which remote hosts reach published ports on
	// container addresses directly.
	TrustedHostInterfaces []string `json:"trusted_host_interfaces,omitempty"`
}

// Gateway modes of a bridge network (Docker 27+): how the host routes
// between the network and everything else.
const (
	// GatewayNAT, the default: published ports are DNATed from host
	// addresses, egress is masqueraded, and (from Docker 28) no one
	// reaches a container address directly from outside the host.
	GatewayNAT = "nat"
	// GatewayNATUnprotected: as nat, and every port of every member is
	// open to whoever routes to the network (no port filtering).
	GatewayNATUnprotected = "nat-unprotected"
	// GatewayRouted: no NAT; the published container ports (never a host
	// port) are open on container addresses, to remote hosts that route
	// to the network and to containers of other networks.
	GatewayRouted = "routed"
	// GatewayIsolated (internal networks only): the bridge has no
	// address; the host neither reaches the members nor routes to them.
	GatewayIsolated = "isolated"
)

// GatewayMode returns the network's gateway mode for one family: one of
// the Gateway* constants (GatewayNAT when none is set).
func (n *Network) GatewayMode(v6 bool) string {
	m := n.GatewayMode4
	if v6 {
		m = n.GatewayMode6
	}
	if m == "" {
		return GatewayNAT
	}
	return m
}

// Subnet is one IPAM pool of a network.
type Subnet struct {
	Prefix  netip.Prefix `json:"prefix"`
	Gateway netip.Addr   `json:"gateway,omitzero"`
}

// Builtin network names that Docker creates on every host.
const (
	DefaultBridge = "bridge"
	HostNetwork   = "host"
	NoneNetwork   = "none"
)

// IsDefaultBridge reports whether n is Docker's default bridge network
// (docker0), which has no embedded DNS and does not isolate projects.
func (n *Network) IsDefaultBridge() bool {
	return n.Name == DefaultBridge && n.Driver == "bridge"
}

// IsBuiltin reports whether n is one of the networks Docker creates itself.
func (n *Network) IsBuiltin() bool {
	return n.Name == DefaultBridge || n.Name == HostNetwork || n.Name == NoneNetwork
}

// HasIPv6 reports whether the network carries IPv6 addresses.
func (n *Network) HasIPv6() bool {
	if n.EnableIPv6 {
		return true
	}
	for _, s := range n.Subnets {
		if s.Prefix.Addr().Is6() {
			return true
		}
	}
	return false
}

// Container is one container in any state, or one service replica that a
// compose file would create.
type Container struct {
	ID    string `json:"id,omitempty"`
	Name  string `json:"name"` // without the leading slash
	Image string `json:"image,omitempty"`
	// State is Docker's state (running, created, exited, paused,
	// restarting, dead) or "defined" for a compose service not yet created.
	State  string            `json:"state"`
	Labels map[string]string `json:"labels,omitempty"`
	// Pid is the main process of a running container (its network
	// namespace is /proc/PID/ns/net), 0 otherwise; live hosts only.
	Pid int `json:"pid,omitempty"`
	// NetworkMode is HostConfig.NetworkMode: "bridge", "host", "none",
	// "container:<name or id>", or a network name.
	NetworkMode string     `json:"network_mode,omitempty"`
	Endpoints   []Endpoint `json:"endpoints,omitempty"`
	// Ports are the port bindings requested at creation (HostConfig), which
	// Docker applies whenever the container runs. Docker ignores them for a
	// container whose only networks are internal; see PublishedPorts.
	Ports []PortBinding `json:"ports,omitempty"`
	// Node is the Swarm node (its hostname) the container runs on; empty
	// outside a Swarm.
	Node string `json:"node,omitempty"`
	// ExposedPorts are the image's and the container's EXPOSE ports.
	ExposedPorts []l4.Port `json:"exposed_ports,omitempty"`

	Privileged     bool     `json:"privileged,omitempty"`
	ReadOnlyRootfs bool     `json:"read_only_rootfs,omitempty"`
	CapAdd         []string `json:"cap_add,omitempty"`
	CapDrop        []string `json:"cap_drop,omitempty"`
	SecurityOpt    []string `json:"security_opt,omitempty"`
	PidMode        string   `json:"pid_mode,omitempty"`
	IpcMode        string   `json:"ipc_mode,omitempty"`
	UTSMode        string   `json:"uts_mode,omitempty"`
	User           string   `json:"user,omitempty"`
	Mounts         []Mount  `json:"mounts,omitempty"`
	// Refs is what the container's configuration says it connects to:
	// compose's depends_on, and the services its environment values name
	// (URLs, DSNs, HOST=name). The compose source sets them; the values
	// themselves, secrets among them, are not kept.
	Refs []Ref `json:"refs,omitempty"`
}

// Ref is one piece of evidence that a container connects to a service.
type Ref struct {
	// Service is the compose service named.
	Service string `json:"service"`
	// Port is the port named with it ("db:5432"), 0 when none.
	Port uint16 `json:"port,omitempty"`
	// Via says where: "depends_on", "environment DATABASE_URL".
	Via string `json:"via"`
}

// Endpoint is a container's attachment to one network.
type Endpoint struct {
	Network string     `json:"network"`
	IPv4    netip.Addr `json:"ipv4,omitzero"`
	IPv6    netip.Addr `json:"ipv6,omitzero"`
	MAC     string     `json:"mac,omitempty"`
	Aliases []string   `json:"aliases,omitempty"`
	// BridgePort is the ifindex of the endpoint's bridge port (the
	// host-side veth) on a live host, 0 when unknown (a snapshot file, a
	// compose file, or a port not found yet). zonewarden binds the
	// endpoint's addresses to it.
	BridgePort int `json:"bridge_port,omitempty"`
}

// PortBinding publishes a container port on the host.
type PortBinding struct {
	ContainerPort l4.Port `json:"container_port"`
	// HostIP is the address bound on the host; the zero Addr, 0.0.0.0 and
	// :: all mean every interface.
	HostIP netip.Addr `json:"host_ip,omitzero"`
	// HostPort is the host port; 0 means Docker picks one when the
	// container starts.
	HostPort uint16 `json:"host_port"`
}

// Compare orders bindings by container port, host address, host port.
func (b PortBinding) Compare(o PortBinding) int {
	if c := b.ContainerPort.Compare(o.ContainerPort); c != 0 {
		return c
	}
	if c := b.HostIP.Compare(o.HostIP); c != 0 {
		return c
	}
	return int(b.HostPort) - int(o.HostPort)
}

// AllInterfaces reports whether the binding listens on every host address.
func (b PortBinding) AllInterfaces() bool {
	return !b.HostIP.IsValid() || b.HostIP.IsUnspecified()
}

// String renders the binding as Docker shows it: "0.0.0.0:8080->80/tcp".
func (b PortBinding) String() string { return b.HostAddress() + "->" + b.ContainerPort.String() }

// HostAddress renders the host side as "0.0.0.0:8443" or "[::]:8443".
func (b PortBinding) HostAddress() string {
	ip := b.HostIP
	if !ip.IsValid() {
		ip = netip.IPv4Unspecified()
	}
	return netip.AddrPortFrom(ip, b.HostPort).String()
}

// Mount is a volume or bind mount.
type Mount struct {
	Type        string `json:"type"` // bind, volume, tmpfs, npipe
	Source      string `json:"source,omitempty"`
	Destination string `json:"destination"`
	ReadOnly    bool   `json:"read_only,omitempty"`
}

// Compose labels set by docker compose on the containers it creates.
const (
	LabelComposeProject = "com.docker.compose.project"
	LabelComposeService = "com.docker.compose.service"
)

// ComposeProject returns the compose project that created the container, or "".
func (c *Container) ComposeProject() string { return c.Labels[LabelComposeProject] }

// ComposeService returns the compose service of the container, or "".
func (c *Container) ComposeService() string { return c.Labels[LabelComposeService] }

// Running reports whether the container's processes are running now.
func (c *Container) Running() bool {
	return c.State == "running" || c.State == "paused" || c.State == "restarting"
}

// UsesHostNetwork reports whether the container shares the host's network
// namespace.
func (c *Container) UsesHostNetwork() bool { return c.NetworkMode == HostNetwork }

// NoNetwork reports whether the container has no network at all.
func (c *Container) NoNetwork() bool { return c.NetworkMode == NoneNetwork }

// SharedNamespaceWith returns the container whose network namespace c
// joins (--network container:X), or "".
func (c *Container) SharedNamespaceWith() string {
	name, ok := strings.CutPrefix(c.NetworkMode, "container:")
	if !ok {
		return ""
	}
	return name
}

// NetworkNames returns the names of the networks c is attached to, sorted.
func (c *Container) NetworkNames() []string {
	names := make([]string, 0, len(c.Endpoints))
	for _, e := range c.Endpoints {
		names = append(names, e.Network)
	}
	slices.Sort(names)
	return names
}

// OnNetwork reports whether c has an endpoint on the named network.
func (c *Container) OnNetwork(name string) bool {
	for _, e := range c.Endpoints {
		if e.Network == name {
			return true
		}
	}
	return false
}

// HasCapAdded reports whether cap (without the CAP_ prefix) is in CapAdd,
// or ALL is.
func (c *Container) HasCapAdded(cap string) bool {
	for _, a := range c.CapAdd {
		a = NormalizeCap(a)
		if a == cap || a == "ALL" {
			return true
		}
	}
	return false
}

// DropsAllCaps reports whether the container was started with --cap-drop ALL.
func (c *Container) DropsAllCaps() bool {
	for _, d := range c.CapDrop {
		if NormalizeCap(d) == "ALL" {
			return true
		}
	}
	return false
}

// NormalizeCap upper-cases a capability name and strips the CAP_ prefix.
func NormalizeCap(s string) string {
	s = strings.ToUpper(strings.TrimSpace(s))
	return strings.TrimPrefix(s, "CAP_")
}

// Index gives constant-time lookups into a snapshot. Build one with
// NewIndex after the snapshot is complete; it does not follow later changes.
type Index struct {
	Snap       *Snapshot
	networks   map[string]*Network
	containers map[string]*Container
	// members maps a network name to the containers attached to it, in
	// snapshot order.
	members map[string][]*Container
}

// NewIndex indexes s by network and container name (and by id and short id
// for containers, so that "container:<id>" resolves).
func NewIndex(s *Snapshot) *Index {
	ix := &Index{
		Snap:       s,
		networks:   make(map[string]*Network, len(s.Networks)),
		containers: make(map[string]*Container, 2*len(s.Containers)),
		members:    make(map[string][]*Container, len(s.Networks)),
	}
	for i := range s.Networks {
		n := &s.Networks[i]
		ix.networks[n.Name] = n
		if n.ID != "" {
			ix.networks[n.ID] = n
		}
	}
	for i := range s.Containers {
		c := &s.Containers[i]
		if c.ID != "" {
			ix.containers[c.ID] = c
			if len(c.ID) > 12 {
				ix.containers[c.ID[:12]] = c
			}
		}
		ix.containers[c.Name] = c // names win over id prefixes
		for _, e := range c.Endpoints {
			ix.members[e.Network] = append(ix.members[e.Network], c)
		}
	}
	return ix
}

// Network returns the network with the given name or id, or nil.
func (ix *Index) Network(name string) *Network { return ix.networks[name] }

// Container returns the container with the given name or id, or nil.
func (ix *Index) Container(name string) *Container { return ix.containers[name] }

// Members returns the containers attached to the named network.
func (ix *Index) Members(network string) []*Container { return ix.members[network] }

// PublishedPorts returns the bindings Docker really publishes for c: none
// when c uses the host's or another container's namespace, has no network,
// or is attached only to internal networks (Docker ignores -p there).
func (ix *Index) PublishedPorts(c *Container) []PortBinding {
	if len(c.Ports) == 0 || !ix.CanPublish(c) {
		return nil
	}
	return c.Ports
}

// CanPublish reports whether Docker would publish ports for c.
func (ix *Index) CanPublish(c *Container) bool {
	if c.UsesHostNetwork() || c.NoNetwork() || c.SharedNamespaceWith() != "" {
		return false
	}
	if len(c.Endpoints) == 0 {
		// Not attached (a created container of a compose project whose
		// network is unknown): assume Docker's default behaviour.
		return true
	}
	for _, e := range c.Endpoints {
		n := ix.Network(e.Network)
		if n == nil || !n.Internal {
			return true
		}
	}
	return false
}

// OnlyLabelled returns a copy of s with only the containers whose label
// key is value, and the networks that carry the label or that they are on
// (builtin ones too): a part of a shared host, such as one compose
// project.
func (s *Snapshot) OnlyLabelled(key, value string) *Snapshot {
	out := *s
	out.Containers = nil
	used := map[string]bool{}
	for _, c := range s.Containers {
		if c.Labels[key] != value {
			continue
		}
		out.Containers = append(out.Containers, c)
		for _, e := range c.Endpoints {
			used[e.Network] = true
		}
	}
	out.Networks = nil
	for _, n := range s.Networks {
		if used[n.Name] || n.Labels[key] == value {
			out.Networks = append(out.Networks, n)
		}
	}
	return &out
}
