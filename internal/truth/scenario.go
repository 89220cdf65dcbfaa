// Package truth is the project's ground truth: it builds real Docker hosts
// from scenarios, sends real packets between every pair of peers on every
// port that listens, and compares what the packets did with what a model
// (the reachability engine, or a policy) says they should do.
//
// A [Scenario] describes networks and containers. [Build] creates them on
// the Docker engine under the test's run label (with internal/testenv),
// adds a host address and an outside namespace of its own, and starts
// listeners in every network namespace with internal/probe (no tool is
// needed in the containers). [Env.Observe] probes every ordered pair ×
// port from inside the source's namespace, over every address by which the
// target could be reached, and returns the observed [Matrix];
// [Env.Check] compares it with a [Model] and reports each disagreement as
//
//	A -> B:5432/tcp model=yes real=no (network:app)
//
// Later work reuses an Env: apply firewall rules, Observe again, and
// Compare the new matrix with the model those rules should produce.
//
// The package is for tests only (it imports testing and the Docker SDK
// through testenv). Its traffic goes only to the containers, namespaces and
// addresses it made.
package truth

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/inventory/dockerapi"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/probe"
	"github.com/zonewarden/zonewarden/internal/reach"
	"github.com/zonewarden/zonewarden/internal/testenv"
	"github.com/zonewarden/zonewarden/internal/verify"
)

// Scenario is a host to build: networks and containers, named without the
// run prefix.
type Scenario struct {
	Networks   []Network
	Containers []Container
}

// Network is a user-defined bridge network. "bridge" (Docker's default
// bridge) needs no entry.
type Network struct {
	Name       string
	Internal   bool // --internal
	DisableICC bool // com.docker.network.bridge.enable_icc=false
	IPv6       bool // --ipv6, with a ULA /64
	// Macvlan makes it a macvlan network (bridge mode) over the host side
	// of the scenario's own veth to the outside namespace: outside is a
	// machine of its segment, holding its gateway address (.1), so that
	// members' egress reaches "internet" through it.
	Macvlan bool
	// GatewayMode is the bridge's gateway mode for both families
	// (com.docker.network.bridge.gateway_mode_ipv4/6, Docker 27+): "" for
	// the default nat, "routed", "nat-unprotected" or "isolated" (with
	// Internal).
	GatewayMode string
}

// network returns the scenario's network called name (the zero Network
// for Docker's default bridge).
func (sc Scenario) network(name string) Network {
	for _, n := range sc.Networks {
		if n.Name == name {
			return n
		}
	}
	return Network{}
}

// hostless reports whether the host neither reaches nor routes to the
// network's members: a bridge without an address (gateway mode isolated)
// or a macvlan.
func (n Network) hostless() bool { return n.GatewayMode == inventory.GatewayIsolated || n.Macvlan }

// Container is one container of the test image (busybox, sleeping).
type Container struct {
	Name string
	// Networks are the networks it joins: the first at creation, the
	// others before it starts. "bridge" is Docker's default bridge.
	Networks []string
	// Mode is "" (its Networks), "host", "none" or "container:<name>".
	Mode string
	// Publish are its -p options.
	Publish []Publish
	// Labels are added to its labels (com.docker.compose.project, ...).
	Labels map[string]string
}

// Publish is one -p option.
type Publish struct {
	// HostIP is "" (every address), [HostAddress] (the scenario's own
	// host address) or [Gateway](network) (that network's gateway).
	HostIP string
	// HostPort is the port on the host; use ports no other test uses.
	HostPort uint16
	// Port is the container port; Proto "tcp" (default) or "udp".
	Port  uint16
	Proto string
}

// HostAddress, as a Publish.HostIP, is the scenario's own host address
// (on an interface of its own).
const HostAddress = "host-address"

// Gateway, as a Publish.HostIP, is the IPv4 gateway address of a network
// of the scenario.
func Gateway(network string) string { return "gateway:" + network }

// ContainerPorts are the ports every container namespace listens on, next
// to the container ports it publishes.
var ContainerPorts = []l4.Port{{Proto: "tcp", Number: 80}, {Proto: "tcp", Number: 5432}, {Proto: "udp", Number: 53}}

// InternetPorts are the ports the "internet" (the outside namespace)
// listens on.
var InternetPorts = []l4.Port{{Proto: "tcp", Number: 80}, {Proto: "udp", Number: 53}}

// Banners name the listener of each kind of namespace; a container
// namespace's is "ns:<owner>".
const (
	bannerHost     = "host"
	bannerInternet = "internet"
)

// Env is a built scenario: its containers run, listeners answer in every
// namespace, and its snapshot is taken. Use it from the test that built
// it; everything is removed when that test ends.
type Env struct {
	Scenario Scenario
	RunID    string

	cli    *client.Client
	ids    map[string]string // container -> Docker id
	netIDs map[string]string // network -> Docker id ("bridge" -> "bridge")
	gw4    map[string]netip.Addr
	gw6    map[string]netip.Addr
	plumb  *plumbing

	snap *inventory.Snapshot
	ix   *inventory.Index

	// owner maps each container to the container whose namespace it uses
	// (itself, or X for container:X); "host" for host-network ones.
	owner map[string]string
	ns    map[string]*probe.Namespace // owner -> namespace
	// ports are the ports listening in each owner's namespace ("host" too).
	ports     map[string][]l4.Port
	listeners []*probe.Listener
}

// Build creates sc on the Docker engine and returns it running, with
// listeners in every namespace. It fails t on any error and removes
// everything when t ends (pass or fail).
func Build(t *testing.T, sc Scenario) *Env {
	t.Helper()
	if err := sc.validate(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cli, runID := testenv.Setup(t)
	for _, n := range sc.Networks {
		if n.GatewayMode != "" {
			testenv.RequireEngine(t, cli, 27, "a network of gateway mode "+n.GatewayMode)
		}
	}
	testenv.Image(t, cli) // build before the clock of container starts matters
	e := &Env{Scenario: sc, RunID: runID, cli: cli,
		ids: map[string]string{}, netIDs: map[string]string{}, gw4: map[string]netip.Addr{}, gw6: map[string]netip.Addr{},
		owner: map[string]string{}, ns: map[string]*probe.Namespace{}, ports: map[string][]l4.Port{}}
	t.Cleanup(func() {
		for _, l := range e.listeners {
			l.Close()
		}
		for name, ns := range e.ns {
			if name != bannerHost {
				ns.Close()
			}
		}
	})
	e.plumb = newPlumbing(t, runID)
	e.createNetworks(t)
	e.runContainers(t)
	e.takeSnapshot(t)
	e.segmentRoutes(t)
	e.listen(t)
	e.waitReady(t)
	t.Logf("scenario built in %v: %d networks, %d containers (run %s)", time.Since(start).Round(time.Millisecond), len(sc.Networks), len(sc.Containers), runID)
	return e
}

func (sc *Scenario) validate() error {
	nets := map[string]bool{inventory.DefaultBridge: true}
	for _, n := range sc.Networks {
		if n.Name == "" || nets[n.Name] || n.Name == inventory.HostNetwork || n.Name == inventory.NoneNetwork {
			return fmt.Errorf("scenario network %q: want a unique name other than bridge, host and none", n.Name)
		}
		nets[n.Name] = true
	}
	seen := map[string]bool{}
	for _, c := range sc.Containers {
		if c.Name == "" || seen[c.Name] || c.Name == reach.Host || c.Name == reach.Outside || c.Name == reach.Internet {
			return fmt.Errorf("scenario container %q: want a unique name other than host, outside and internet", c.Name)
		}
		for _, n := range c.Networks {
			if !nets[n] {
				return fmt.Errorf("container %s: no network %q in the scenario", c.Name, n)
			}
		}
		switch {
		case c.Mode == "":
			if len(c.Networks) == 0 {
				return fmt.Errorf("container %s: give it networks or a mode", c.Name)
			}
		case c.Mode == "host", c.Mode == "none":
		case strings.HasPrefix(c.Mode, "container:"):
			if !seen[strings.TrimPrefix(c.Mode, "container:")] {
				return fmt.Errorf("container %s: mode %s must name a container listed before it", c.Name, c.Mode)
			}
		default:
			return fmt.Errorf("container %s: mode %q: want host, none or container:<name>", c.Name, c.Mode)
		}
		if c.Mode != "" && (len(c.Networks) > 0 || len(c.Publish) > 0) {
			return fmt.Errorf("container %s: mode %s takes no networks and no published ports", c.Name, c.Mode)
		}
		for _, p := range c.Publish {
			if p.HostPort == 0 || p.Port == 0 || p.Proto != "" && p.Proto != "tcp" && p.Proto != "udp" {
				return fmt.Errorf("container %s: publish %+v: want a host port, a container port and tcp or udp", c.Name, p)
			}
			if gw, ok := strings.CutPrefix(p.HostIP, "gateway:"); ok && !nets[gw] {
				return fmt.Errorf("container %s: publish on the gateway of unknown network %q", c.Name, gw)
			}
		}
		seen[c.Name] = true
	}
	return nil
}

// subnet returns the IPv4 subnet of the i-th network on the given attempt:
// a /24 in 10.128.0.0/9 derived from the run id, so that concurrent runs
// rarely collide (and retry when they do).
func subnet(runID string, i, attempt int) string {
	r, _ := hex.DecodeString(runID)
	x := 128 + int(r[2]^byte(attempt*37))&0x7f
	y := (int(r[3]) + 16*i + attempt*101) & 0xff
	return fmt.Sprintf("10.%d.%d.0/24", x, y)
}

// segmentRoutes gives each member of a macvlan network an on-link route to
// the internet address (outside's), out of its macvlan: its default
// route's next hop is outside, a router in a namespace the probe guard
// does not follow (it would skip the probe), and what is under test is
// that the segment carries the packet, past the host.
func (e *Env) segmentRoutes(t *testing.T) {
	t.Helper()
	for _, c := range e.snap.Containers {
		for _, ep := range c.Endpoints {
			if !e.Scenario.network(ep.Network).Macvlan || !ep.IPv4.IsValid() {
				continue
			}
			pid := testenv.Pid(t, e.cli, e.ids[c.Name])
			script := fmt.Sprintf("ip route add %s/32 dev $(ip -o -4 addr show to %s | awk '{print $2}')", e.plumb.ext4, ep.IPv4)
			if out, err := exec.Command("nsenter", "-t", strconv.Itoa(pid), "-n", "sh", "-c", script).CombinedOutput(); err != nil {
				t.Fatalf("route to the internet address in %s: %v: %s", c.Name, err, out)
			}
		}
	}
}

// gatewayOf returns the first address of a /24 ("10.1.2.0/24" -> "10.1.2.1").
func gatewayOf(subnet string) string {
	return netip.MustParsePrefix(subnet).Addr().Next().String()
}

func (e *Env) createNetworks(t *testing.T) {
	t.Helper()
	for i, n := range e.Scenario.Networks {
		opts := testenv.NetworkOpts{Internal: n.Internal, DisableICC: n.DisableICC, IPv6: n.IPv6}
		if n.GatewayMode != "" {
			opts.Options = map[string]string{
				"com.docker.network.bridge.gateway_mode_ipv4": n.GatewayMode,
				"com.docker.network.bridge.gateway_mode_ipv6": n.GatewayMode,
			}
		}
		if n.Macvlan {
			opts.Driver = "macvlan"
			opts.Options = map[string]string{"parent": e.plumb.veth, "macvlan_mode": "bridge"}
		}
		var err error
		for attempt := range 8 {
			opts.Subnet = subnet(e.RunID, i, attempt)
			if n.Macvlan {
				opts.Gateway = gatewayOf(opts.Subnet)
			}
			var id string
			if id, err = testenv.TryCreateNetwork(t, e.cli, e.RunID, n.Name, opts); err == nil {
				e.netIDs[n.Name] = id
				break
			}
			if !strings.Contains(err.Error(), "overlap") {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		if n.Macvlan {
			// The segment's router: outside, on the parent's far end.
			if err := ip("-n", e.plumb.netns, "addr", "add", opts.Gateway+"/24", "dev", "eth0"); err != nil {
				t.Fatal(err)
			}
		}
	}
	used := map[string]bool{}
	for _, c := range e.Scenario.Containers {
		for _, n := range c.Networks {
			used[n] = true
		}
	}
	if used[inventory.DefaultBridge] {
		e.netIDs[inventory.DefaultBridge] = inventory.DefaultBridge
	}
	ctx := context.Background()
	for name, id := range e.netIDs {
		if e.Scenario.network(name).hostless() {
			continue // no address on the bridge: no gateway
		}
		info, err := e.cli.NetworkInspect(ctx, id, network.InspectOptions{})
		if err != nil {
			t.Fatalf("inspecting network %s: %v", name, err)
		}
		for _, c := range info.IPAM.Config {
			p, err := netip.ParsePrefix(c.Subnet)
			if err != nil {
				continue
			}
			gw, err := netip.ParseAddr(c.Gateway)
			if err != nil {
				gw = p.Masked().Addr().Next() // Docker's choice when none is given
			}
			if gw.Is4() {
				e.gw4[name] = gw
			} else {
				e.gw6[name] = gw
			}
		}
	}
}

func (e *Env) runContainers(t *testing.T) {
	t.Helper()
	for _, c := range e.Scenario.Containers {
		spec := testenv.ContainerSpec{Name: c.Name, Start: true, Labels: c.Labels}
		switch {
		case c.Mode == "host" || c.Mode == "none":
			spec.NetworkMode = c.Mode
		case strings.HasPrefix(c.Mode, "container:"):
			spec.NetworkMode = "container:" + e.ids[strings.TrimPrefix(c.Mode, "container:")]
		default:
			spec.Network = e.netIDs[c.Networks[0]]
			for _, n := range c.Networks[1:] {
				spec.ExtraNetworks = append(spec.ExtraNetworks, e.netIDs[n])
			}
		}
		for _, p := range c.Publish {
			spec.Ports = append(spec.Ports, e.portSpec(t, p))
		}
		e.ids[c.Name] = testenv.RunContainer(t, e.cli, e.RunID, spec)
	}
}

// portSpec renders p as docker run -p does: "[ip:]host:container/proto".
func (e *Env) portSpec(t *testing.T, p Publish) string {
	t.Helper()
	s := strconv.Itoa(int(p.HostPort)) + ":" + strconv.Itoa(int(p.Port)) + "/" + cmp.Or(p.Proto, "tcp")
	switch gw, isGW := strings.CutPrefix(p.HostIP, "gateway:"); {
	case p.HostIP == "":
		return s
	case p.HostIP == HostAddress:
		return e.plumb.host4.String() + ":" + s
	case isGW:
		return e.gw4[gw].String() + ":" + s
	default:
		t.Fatalf("publish host IP %q: want \"\", HostAddress or Gateway(network)", p.HostIP)
		return ""
	}
}

// takeSnapshot reads the host through dockerapi, keeps the run's own
// containers and networks (and Docker's builtin ones), and strips the run
// prefix from names, so that the model speaks the scenario's names.
func (e *Env) takeSnapshot(t *testing.T) {
	t.Helper()
	dc, err := dockerapi.New("")
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	snap, err := dc.Snapshot(ctx)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	e.snap = Filter(snap, e.RunID)
	e.ix = inventory.NewIndex(e.snap)
	for _, c := range e.Scenario.Containers {
		if e.ix.Container(c.Name) == nil {
			t.Fatalf("the snapshot lacks container %s", c.Name)
		}
	}
}

// Filter returns the part of snap that belongs to run runID (containers
// and networks labelled testenv.Label=runID, and Docker's builtin
// networks), with the run prefix stripped from every name.
func Filter(snap *inventory.Snapshot, runID string) *inventory.Snapshot {
	prefix := testenv.Prefixed(runID, "")
	strip := func(s string) string { return strings.TrimPrefix(s, prefix) }
	out := *snap
	out.Networks, out.Containers = nil, nil
	for _, n := range snap.Networks {
		if n.Labels[testenv.Label] == runID || n.IsBuiltin() {
			n.Name = strip(n.Name)
			out.Networks = append(out.Networks, n)
		}
	}
	for _, c := range snap.Containers {
		if c.Labels[testenv.Label] != runID {
			continue
		}
		c.Name = strip(c.Name)
		if x := c.SharedNamespaceWith(); x != "" {
			c.NetworkMode = "container:" + strip(x)
		} else {
			c.NetworkMode = strip(c.NetworkMode)
		}
		c.Endpoints = slices.Clone(c.Endpoints)
		for i := range c.Endpoints {
			c.Endpoints[i].Network = strip(c.Endpoints[i].Network)
		}
		out.Containers = append(out.Containers, c)
	}
	inventory.Sort(&out)
	return &out
}

// Snapshot returns the scenario's snapshot, as dockerapi read it after the
// containers started, filtered to the run and with scenario names. Do not
// modify it.
func (e *Env) Snapshot() *inventory.Snapshot { return e.snap }

// Model returns the reachability engine's analysis of the snapshot.
func (e *Env) Model() *reach.Analysis { return reach.Analyze(e.snap, reach.Options{}) }

// HostAddrs returns the scenario's own host addresses (IPv4, IPv6).
func (e *Env) HostAddrs() (netip.Addr, netip.Addr) { return e.plumb.host4, e.plumb.host6 }

// ID returns the Docker id of a scenario container.
func (e *Env) ID(name string) string { return e.ids[name] }

// NetworkID returns the Docker id of a scenario network.
func (e *Env) NetworkID(name string) string { return e.netIDs[name] }

// Client returns the Docker client of the run.
func (e *Env) Client() *client.Client { return e.cli }

// Ports returns the ports listening in the namespace of a peer: a
// container, "host" (also that of host-network containers) or "internet".
func (e *Env) Ports(peer string) []l4.Port {
	if peer == reach.Internet {
		return InternetPorts
	}
	return e.ports[e.ownerOf(peer)]
}

// ownerOf returns the owner of a peer's namespace: the container itself,
// X for container:X, "host" for host-network containers and the host.
func (e *Env) ownerOf(peer string) string {
	if o, ok := e.owner[peer]; ok {
		return o
	}
	return peer
}

// listen opens the namespaces and starts the listeners: every container
// namespace listens on ContainerPorts and its published container ports
// (all addresses); the host namespace on one free TCP and one free UDP
// port, on the scenario's gateway and host addresses only; the outside
// namespace on InternetPorts.
func (e *Env) listen(t *testing.T) {
	t.Helper()
	e.ns[bannerHost] = probe.Host()
	for _, c := range e.snap.Containers {
		o := c.Name
		for x := c.SharedNamespaceWith(); x != ""; x = e.ix.Container(x).SharedNamespaceWith() {
			o = x
		}
		if e.ix.Container(o).UsesHostNetwork() {
			o = bannerHost
		}
		e.owner[c.Name] = o
	}
	for _, c := range e.Scenario.Containers {
		o := e.owner[c.Name]
		if o == bannerHost {
			continue
		}
		for _, p := range ContainerPorts {
			e.ports[o] = addPort(e.ports[o], p)
		}
		for _, p := range c.Publish {
			e.ports[o] = addPort(e.ports[o], l4.Port{Proto: cmp.Or(p.Proto, "tcp"), Number: p.Port})
		}
		if o != c.Name {
			continue
		}
		ns, err := probe.OpenPID(testenv.Pid(t, e.cli, e.ids[c.Name]))
		if err != nil {
			t.Fatal(err)
		}
		e.ns[o] = ns
	}
	for o, ports := range e.ports {
		tcp, udp := split(ports)
		l, err := probe.Listen(e.ns[o], probe.ListenConfig{TCP: tcp, UDP: udp, Banner: "ns:" + o})
		if err != nil {
			t.Fatalf("listeners of %s: %v", o, err)
		}
		e.listeners = append(e.listeners, l)
	}

	l, err := probe.Listen(e.plumb.ext, probe.ListenConfig{TCP: []uint16{80}, UDP: []uint16{53}, Banner: bannerInternet})
	if err != nil {
		t.Fatalf("listeners of the outside namespace: %v", err)
	}
	e.listeners = append(e.listeners, l)

	addrs := []netip.Addr{e.plumb.host4, e.plumb.host6}
	for _, gws := range []map[string]netip.Addr{e.gw4, e.gw6} {
		for _, gw := range gws {
			addrs = append(addrs, gw)
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	// Two free ports of the host: the namespace is shared with everything
	// else on the machine, so try random ones until both bind.
	r, _ := hex.DecodeString(e.RunID)
	for attempt := range 20 {
		seed := int(r[0])<<8 | int(r[1])
		base := 20000 + (seed+attempt*7919)%10000
		tcp, udp := uint16(base), uint16(base+1)
		l, err := probe.Listen(probe.Host(), probe.ListenConfig{Addrs: addrs, TCP: []uint16{tcp}, UDP: []uint16{udp}, Banner: bannerHost, FreeBind: true})
		if err != nil {
			if attempt == 19 {
				t.Fatalf("listeners of the host namespace: %v", err)
			}
			continue
		}
		e.listeners = append(e.listeners, l)
		e.ports[bannerHost] = []l4.Port{{Proto: "tcp", Number: tcp}, {Proto: "udp", Number: udp}}
		break
	}
}

func addPort(ps []l4.Port, p l4.Port) []l4.Port {
	if slices.Contains(ps, p) {
		return ps
	}
	ps = append(ps, p)
	slices.SortFunc(ps, func(a, b l4.Port) int {
		return cmp.Or(strings.Compare(a.Proto, b.Proto), int(a.Number)-int(b.Number))
	})
	return ps
}

func split(ps []l4.Port) (tcp, udp []uint16) {
	for _, p := range ps {
		if p.Proto == "udp" {
			udp = append(udp, p.Number)
		} else {
			tcp = append(tcp, p.Number)
		}
	}
	return tcp, udp
}

// Refresh takes the snapshot again after the test changed the host (apply
// connected containers to new networks, say), so that Observe probes the
// addresses containers have now. Networks the test created must carry the
// run's label (testenv.Label=RunID) to be seen; their gateways become
// probe paths. The host's listeners stay on the addresses they bound at
// Build.
func (e *Env) Refresh(t *testing.T) {
	t.Helper()
	e.takeSnapshot(t)
	for _, n := range e.snap.Networks {
		if _, known := e.gw4[n.Name]; known || n.IsBuiltin() {
			continue
		}
		for _, s := range n.Subnets {
			gw := s.Gateway
			if !gw.IsValid() {
				gw = s.Prefix.Masked().Addr().Next()
			}
			if gw.Is4() {
				e.gw4[n.Name] = gw
			} else {
				e.gw6[n.Name] = gw
			}
		}
	}
}

// InternetAddrs returns the addresses of the namespace that plays both
// "internet" (the destination of egress) and "outside" (the client of
// published ports): IPv4 and IPv6.
func (e *Env) InternetAddrs() (netip.Addr, netip.Addr) { return e.plumb.ext4, e.plumb.ext6 }

// EnforcedModel is the host's expected reachability once the policy bound
// in b is enforced: the engine's edges, narrowed by verify.Enforced, the
// model cli verify expects too. The scenario's host namespace stands for
// the host's; its outside namespace is both the client beyond the host
// and the internet.
func (e *Env) EnforcedModel(b *model.Binding) Model {
	an := e.Model()
	ext4, _ := e.InternetAddrs()
	enf := verify.NewEnforced(b, verify.EnforcedOptions{
		HostNS: func(name string) bool { return e.ownerOf(name) == bannerHost },
		Client: ext4, Internet: ext4,
	})
	return ModelFunc(func(from, to string, port l4.Port) (bool, reach.Edge) {
		ok, edge := an.Eval(from, to, port)
		return ok && enf.Allows(edge, port), edge
	})
}
