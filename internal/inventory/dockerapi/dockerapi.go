// Package dockerapi reads a live Docker host into an inventory.Snapshot.
//
// It is the only package that imports the Docker SDK: Docker's types are
// converted to zonewarden's own at this boundary and never leak further.
// It negotiates the API version, so it works against Engine API 1.41
// (Docker 20.10) as well as current engines.
//
// The cost of one snapshot is fixed: /version, /info, one network list and
// one container list, plus one inspect per container (run concurrently) for
// the fields the list does not carry. No call is made per rule or per pair.
package dockerapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
)

// DefaultHost is the Engine API endpoint used when neither --docker-host nor
// DOCKER_HOST is set.
const DefaultHost = "unix:///var/run/docker.sock"

// inspectWorkers bounds the concurrent container inspects.
const inspectWorkers = 16

// Client reads snapshots from one Docker daemon.
type Client struct {
	api      *client.Client
	host     string
	requests *requestCounter
}

// ResolveHost returns the endpoint to use: host if set, else DOCKER_HOST,
// else the local socket.
func ResolveHost(host string) string {
	if host != "" {
		return host
	}
	if env := os.Getenv("DOCKER_HOST"); env != "" {
		return env
	}
	return DefaultHost
}

// New returns a client for the daemon at host (see ResolveHost). It does not
// contact the daemon.
func New(host string) (*Client, error) {
	host = ResolveHost(host)
	hc := &http.Client{Transport: &http.Transport{}}
	api, err := client.NewClientWithOpts(
		client.WithHTTPClient(hc),
		client.WithHost(host),
		client.WithAPIVersionNegotiation(),
		client.WithTLSClientConfigFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("invalid Docker host %q: %w (use unix:///path/to/docker.sock or tcp://HOST:PORT)", host, err)
	}
	// The client keeps hc; wrapping its (already configured) transport
	// counts every request it makes.
	counter := &requestCounter{base: hc.Transport}
	hc.Transport = counter
	return &Client{api: api, host: host, requests: counter}, nil
}

// Requests returns how many Engine API requests this client has made, by
// "METHOD /path" with ids and the version prefix folded ("GET /containers/{id}/json").
func (c *Client) Requests() map[string]int { return c.requests.snapshot() }

// requestCounter counts requests, to prove the cost of a snapshot in tests
// and benchmarks.
type requestCounter struct {
	base http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func (rc *requestCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	key := r.Method + " " + foldPath(r.URL.Path)
	rc.mu.Lock()
	if rc.n == nil {
		rc.n = map[string]int{}
	}
	rc.n[key]++
	rc.mu.Unlock()
	return rc.base.RoundTrip(r)
}

func (rc *requestCounter) snapshot() map[string]int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make(map[string]int, len(rc.n))
	for k, v := range rc.n {
		out[k] = v
	}
	return out
}

// foldPath turns /v1.41/containers/4f1c.../json into /containers/{id}/json.
func foldPath(p string) string {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(parts) > 0 && strings.HasPrefix(parts[0], "v1.") {
		parts = parts[1:]
	}
	if len(parts) == 3 && (parts[0] == "containers" || parts[0] == "networks" || parts[0] == "images") {
		parts[1] = "{id}"
	}
	return "/" + strings.Join(parts, "/")
}

// Host returns the endpoint this client talks to.
func (c *Client) Host() string { return c.host }

// API returns the underlying SDK client, for the adapters that act on the
// host (apply, demo); analysis code must use Snapshot.
func (c *Client) API() *client.Client { return c.api }

// Close releases the client's connections.
func (c *Client) Close() error { return c.api.Close() }

// Ping checks that the daemon answers, and negotiates the API version.
func (c *Client) Ping(ctx context.Context) error {
	ping, err := c.api.Ping(ctx)
	if err != nil {
		return c.explain(err)
	}
	// The SDK negotiates on the first other request otherwise, racing
	// with any request already running (the events' goroutine reads the
	// version unlocked).
	c.api.NegotiateAPIVersionPing(ping)
	return nil
}

// Snapshot reads the whole host: daemon, networks and every container in
// any state.
func (c *Client) Snapshot(ctx context.Context) (*inventory.Snapshot, error) {
	snap, err := c.Daemon(ctx)
	if err != nil {
		return nil, err
	}
	if snap.Networks, err = c.Networks(ctx); err != nil {
		return nil, err
	}
	list, err := c.api.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return nil, c.explain(err)
	}
	ids := make([]string, len(list))
	for i, s := range list {
		ids[i] = s.ID
	}
	if snap.Containers, err = c.Containers(ctx, ids); err != nil {
		return nil, err
	}
	if err := c.readSwarm(ctx, snap); err != nil {
		return nil, err
	}
	Assemble(snap)
	return snap, nil
}

// Daemon reads the daemon's description: a snapshot with no networks or
// containers yet.
func (c *Client) Daemon(ctx context.Context) (*inventory.Snapshot, error) {
	ver, err := c.api.ServerVersion(ctx)
	if err != nil {
		return nil, c.explain(err)
	}
	info, err := c.api.Info(ctx)
	if err != nil {
		return nil, c.explain(err)
	}
	snap := &inventory.Snapshot{
		Version: inventory.SchemaVersion,
		Source:  inventory.Source{Kind: "docker", Detail: c.host},
		TakenAt: time.Now().UTC().Truncate(time.Second),
		Daemon: inventory.Daemon{
			Version:         ver.Version,
			APIVersion:      c.api.ClientVersion(),
			OS:              info.OperatingSystem,
			Kernel:          info.KernelVersion,
			IPv4Forwarding:  ptr(info.IPv4Forwarding),
			LiveRestore:     info.LiveRestoreEnabled,
			SecurityOptions: info.SecurityOptions,
		},
	}
	snap.Daemon.BridgeNfIptables, snap.Daemon.BridgeNfIP6tables = bridgeNf(info.OSType, info.Warnings)
	snap.Daemon.SwarmNodeID = info.Swarm.NodeID
	switch {
	case info.Swarm.ControlAvailable:
		snap.Daemon.SwarmRole = "manager"
	case info.Swarm.NodeID != "":
		snap.Daemon.SwarmRole = "worker"
	}
	snap.Daemon.IP6Tables = ip6tablesDefault(ver.Version)
	switch {
	case info.FirewallBackend != nil && info.FirewallBackend.Driver != "":
		snap.Daemon.FirewallBackend = info.FirewallBackend.Driver
	case info.OSType == "" || info.OSType == "linux":
		snap.Daemon.FirewallBackend = "iptables" // the only one before API 1.49
	}
	if c.local() {
		readLocal(&snap.Daemon, c.host)
	}
	for _, o := range info.SecurityOptions {
		if strings.Contains(o, "rootless") {
			snap.Daemon.Rootless = true
		}
	}
	return snap, nil
}

// Networks lists the host's networks.
func (c *Client) Networks(ctx context.Context) ([]inventory.Network, error) {
	nets, err := c.api.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return nil, c.explain(err)
	}
	out := make([]inventory.Network, len(nets))
	for i, n := range nets {
		out[i] = convertNetwork(n)
	}
	return out, nil
}

// NetworkEndpoint is one endpoint of a network, as the network's inspect
// shows it.
type NetworkEndpoint struct {
	// ContainerID is the container's id; empty while the endpoint has
	// joined no container's sandbox yet (Docker shows it then as
	// "ep-<id>"), when Name alone tells the container.
	ContainerID string
	// Name is the endpoint's name: its container's name.
	Name     string
	Endpoint inventory.Endpoint
}

// NetworkEndpoints reads the endpoints of one network: the addresses and
// MAC Docker gave each container there. Docker sets them when it creates
// the endpoint, before the container's process starts, and the network's
// inspect does not wait for the container (its list and inspect show the
// addresses only once the start is done, which under a storm of starts
// comes seconds later): this is how the agent admits a new container
// before its first packet. A network removed meanwhile has no endpoints.
func (c *Client) NetworkEndpoints(ctx context.Context, id string) ([]NetworkEndpoint, error) {
	n, err := c.api.NetworkInspect(ctx, id, network.InspectOptions{})
	switch {
	case errdefsNotFound(err):
		return nil, nil // removed meanwhile
	case err != nil:
		return nil, c.explain(err)
	}
	out := make([]NetworkEndpoint, 0, len(n.Containers))
	for key, ep := range n.Containers {
		e := inventory.Endpoint{Network: n.Name, MAC: ep.MacAddress}
		if p, err := netip.ParsePrefix(ep.IPv4Address); err == nil {
			e.IPv4 = p.Addr()
		}
		if p, err := netip.ParsePrefix(ep.IPv6Address); err == nil {
			e.IPv6 = p.Addr()
		}
		ne := NetworkEndpoint{Name: strings.TrimPrefix(ep.Name, "/"), Endpoint: e}
		if !strings.HasPrefix(key, "ep-") {
			ne.ContainerID = key
		}
		out = append(out, ne)
	}
	return out, nil
}

// Containers inspects the containers with these ids, concurrently; one
// removed meanwhile is left out. A container that shares another's
// network namespace names it by id until Assemble.
func (c *Client) Containers(ctx context.Context, ids []string) ([]inventory.Container, error) {
	found, err := c.inspectAll(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]inventory.Container, len(found))
	for i, ct := range found {
		out[i] = convertContainer(ct)
	}
	return out, nil
}

// Assemble finishes a snapshot built from Daemon, Networks and
// Containers: "container:<id>" network modes name the container, and
// everything is sorted.
func Assemble(snap *inventory.Snapshot) {
	nameByID := make(map[string]string, len(snap.Containers))
	for _, ct := range snap.Containers {
		nameByID[ct.ID] = ct.Name
	}
	for i := range snap.Containers {
		ct := &snap.Containers[i]
		if id, ok := strings.CutPrefix(ct.NetworkMode, "container:"); ok {
			if name, ok := nameByID[id]; ok {
				ct.NetworkMode = "container:" + name
			}
		}
	}
	inventory.Sort(snap)
}

// inspectAll inspects every listed container with bounded concurrency. A
// container removed between list and inspect is skipped.
func (c *Client) inspectAll(ctx context.Context, list []string) ([]container.InspectResponse, error) {
	out := make([]container.InspectResponse, len(list))
	found := make([]bool, len(list))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
		next     = make(chan int)
	)
	for range min(inspectWorkers, len(list)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				resp, err := c.api.ContainerInspect(ctx, list[i])
				switch {
				case err == nil:
					out[i], found[i] = resp, true
				case errdefsNotFound(err):
				default:
					once.Do(func() { firstErr = c.explain(err); cancel() })
				}
			}
		}()
	}
feed:
	for i := range list {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	kept := out[:0]
	for i, r := range out {
		if found[i] {
			kept = append(kept, r)
		}
	}
	return kept, nil
}

func errdefsNotFound(err error) bool {
	return cerrdefs.IsNotFound(err)
}

func convertNetwork(n network.Summary) inventory.Network {
	out := inventory.Network{
		ID:         n.ID,
		Name:       n.Name,
		Driver:     n.Driver,
		Scope:      n.Scope,
		Internal:   n.Internal,
		Attachable: n.Attachable,
		Ingress:    n.Ingress,
		EnableIPv6: n.EnableIPv6,
		ICC:        true,
		Options:    n.Options,
		Labels:     n.Labels,
	}
	if v, ok := n.Options["com.docker.network.bridge.enable_icc"]; ok {
		if b, err := strconv.ParseBool(v); err == nil {
			out.ICC = b
		}
	}
	if n.Driver == "bridge" {
		out.Bridge = n.Options["com.docker.network.bridge.name"]
		if out.Bridge == "" && len(n.ID) >= 12 {
			out.Bridge = "br-" + n.ID[:12]
		}
		bridgeOptions(&out, n.Options)
	}
	for _, cfg := range n.IPAM.Config {
		p, err := netip.ParsePrefix(cfg.Subnet)
		if err != nil {
			continue
		}
		s := inventory.Subnet{Prefix: p}
		if gw, err := netip.ParseAddr(cfg.Gateway); err == nil {
			s.Gateway = gw
		}
		out.Subnets = append(out.Subnets, s)
	}
	return out
}

func convertContainer(ct container.InspectResponse) inventory.Container {
	out := inventory.Container{
		ID:   ct.ID,
		Name: strings.TrimPrefix(ct.Name, "/"),
	}
	if ct.State != nil {
		out.State = string(ct.State.Status)
		out.Pid = ct.State.Pid
	}
	if cfg := ct.Config; cfg != nil {
		out.Image = cfg.Image
		out.Labels = cfg.Labels
		out.User = cfg.User
		for p := range cfg.ExposedPorts {
			out.ExposedPorts = append(out.ExposedPorts, convertPort(p))
		}
		slices.SortFunc(out.ExposedPorts, l4.Port.Compare)
	}
	if hc := ct.HostConfig; hc != nil {
		out.NetworkMode = string(hc.NetworkMode)
		out.Privileged = hc.Privileged
		out.ReadOnlyRootfs = hc.ReadonlyRootfs
		out.CapAdd = slices.Clone([]string(hc.CapAdd))
		out.CapDrop = slices.Clone([]string(hc.CapDrop))
		out.SecurityOpt = hc.SecurityOpt
		out.PidMode = string(hc.PidMode)
		out.IpcMode = string(hc.IpcMode)
		out.UTSMode = string(hc.UTSMode)
		for p, bindings := range hc.PortBindings {
			cp := convertPort(p)
			for _, b := range bindings {
				out.Ports = append(out.Ports, convertBinding(cp, b))
			}
		}
	}
	// Where the container runs, the bindings Docker actually made carry
	// the host ports it picked for "-p 80" (host port 0).
	if ns := ct.NetworkSettings; ns != nil && len(ns.Ports) > 0 {
		var live []inventory.PortBinding
		for p, bindings := range ns.Ports {
			cp := convertPort(p)
			for _, b := range bindings {
				live = append(live, convertBinding(cp, b))
			}
		}
		if len(live) > 0 {
			out.Ports = live
		}
	}
	slices.SortFunc(out.Ports, inventory.PortBinding.Compare)
	out.Ports = slices.Compact(out.Ports)

	if ns := ct.NetworkSettings; ns != nil {
		out.Endpoints = convertEndpoints(ns.Networks)
	}
	for _, m := range ct.Mounts {
		out.Mounts = append(out.Mounts, inventory.Mount{
			Type:        string(m.Type),
			Source:      m.Source,
			Destination: m.Destination,
			ReadOnly:    !m.RW,
		})
	}
	return out
}

func convertPort(p nat.Port) l4.Port {
	n, _ := strconv.ParseUint(p.Port(), 10, 16)
	return l4.Port{Number: uint16(n), Proto: p.Proto()}
}

func convertBinding(cp l4.Port, b nat.PortBinding) inventory.PortBinding {
	pb := inventory.PortBinding{ContainerPort: cp}
	if ip, err := netip.ParseAddr(strings.Trim(b.HostIP, "[]")); err == nil {
		pb.HostIP = ip
	}
	if hp, err := strconv.ParseUint(b.HostPort, 10, 16); err == nil {
		pb.HostPort = uint16(hp)
	}
	return pb
}

// Bridge driver options that change who reaches a network's members.
const (
	optGatewayMode4  = "com.docker.network.bridge.gateway_mode_ipv4"
	optGatewayMode6  = "com.docker.network.bridge.gateway_mode_ipv6"
	optInhibitIPv4   = "com.docker.network.bridge.inhibit_ipv4"
	optMasquerade    = "com.docker.network.bridge.enable_ip_masquerade"
	optHostBinding   = "com.docker.network.bridge.host_binding_ipv4"
	optTrustedIfaces = "com.docker.network.bridge.trusted_host_interfaces"
)

// bridgeOptions reads the bridge driver's options into n. A value Docker
// would refuse is kept as given for the gateway modes (the audit names
// it) and ignored for the others.
func bridgeOptions(n *inventory.Network, o map[string]string) {
	n.GatewayMode4 = strings.TrimSpace(o[optGatewayMode4])
	n.GatewayMode6 = strings.TrimSpace(o[optGatewayMode6])
	if b, err := strconv.ParseBool(o[optInhibitIPv4]); err == nil {
		n.InhibitIPv4 = b
	}
	if b, err := strconv.ParseBool(o[optMasquerade]); err == nil {
		n.NoMasquerade = !b
	}
	if a, err := netip.ParseAddr(o[optHostBinding]); err == nil && !a.IsUnspecified() {
		n.HostBinding = a
	}
	for _, f := range strings.Split(o[optTrustedIfaces], ":") {
		if f = strings.TrimSpace(f); f != "" {
			n.TrustedHostInterfaces = append(n.TrustedHostInterfaces, f)
		}
	}
}

// bridgeNf derives the bridge-nf-call-ip(6)tables sysctls from the daemon's
// warnings: Docker warns when either is disabled. Not known off Linux.
func bridgeNf(osType string, warnings []string) (v4, v6 *bool) {
	if osType != "" && osType != "linux" {
		return nil, nil
	}
	on4, on6 := true, true
	for _, w := range warnings {
		if strings.Contains(w, "bridge-nf-call-iptables is disabled") {
			on4 = false
		}
		if strings.Contains(w, "bridge-nf-call-ip6tables is disabled") {
			on6 = false
		}
	}
	return &on4, &on6
}

func ptr[T any](v T) *T { return &v }

// ip6tablesDefault returns Docker's default for the daemon option ip6tables
// by engine version: on from 27.0, off (and experimental) before. The API
// does not report the option, so a daemon.json that changes it is not
// seen. Nil when the version does not parse.
func ip6tablesDefault(version string) *bool {
	major, _, _ := strings.Cut(version, ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		return nil
	}
	return ptr(n >= 27)
}

// explain turns a transport error into one line that names the endpoint and
// says what to do.
func (c *Client) explain(err error) error {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("the Docker daemon at %s did not answer in time: %w", c.host, err)
	case errors.Is(err, syscall.EACCES), errors.Is(err, os.ErrPermission):
		return &HostError{Host: c.host, Err: err, Hint: "permission denied: run as root or as a member of the docker group"}
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED), client.IsErrConnectionFailed(err):
		return &HostError{Host: c.host, Err: err, Hint: "is dockerd running? start it (systemctl start docker) or point --docker-host / DOCKER_HOST at the right socket"}
	}
	return &HostError{Host: c.host, Err: err}
}

// HostError is a failure to talk to the Docker daemon.
type HostError struct {
	Host string
	Err  error
	Hint string
}

func (e *HostError) Error() string {
	msg := fmt.Sprintf("cannot read Docker host %s", e.Host)
	if e.Hint != "" {
		return msg + ": " + e.Hint
	}
	return msg + ": " + firstLine(e.Err.Error())
}

func (e *HostError) Unwrap() error { return e.Err }

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// ListContainers reads the containers with these ids (every container
// when ids is nil) from one container list. The list answers from the
// daemon's lock-free view of its containers: unlike inspect, it does not
// wait for a container that is starting, and one call serves any number
// of containers. It carries what a policy binds by and the firewall needs
// (name, image, labels, state, addresses, published ports, network mode)
// but not the settings audit reads (user, capabilities, mounts' modes,
// exposed ports): use Containers for those.
func (c *Client) ListContainers(ctx context.Context, ids []string) ([]inventory.Container, error) {
	if ids != nil && len(ids) == 0 {
		return nil, nil
	}
	opts := container.ListOptions{All: true}
	if ids != nil {
		opts.Filters = filters.NewArgs()
		for _, id := range ids {
			opts.Filters.Add("id", id)
		}
	}
	list, err := c.api.ContainerList(ctx, opts)
	if err != nil {
		return nil, c.explain(err)
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := make([]inventory.Container, 0, len(list))
	for _, s := range list {
		if ids != nil && !want[s.ID] {
			continue // the id filter matches prefixes
		}
		out = append(out, convertSummary(s))
	}
	return out, nil
}

func convertSummary(s container.Summary) inventory.Container {
	out := inventory.Container{ID: s.ID, Image: s.Image, Labels: s.Labels, State: string(s.State), NetworkMode: s.HostConfig.NetworkMode}
	if len(s.Names) > 0 {
		out.Name = strings.TrimPrefix(s.Names[0], "/")
	}
	for _, p := range s.Ports {
		if p.PublicPort == 0 {
			continue
		}
		pb := inventory.PortBinding{ContainerPort: l4.Port{Number: p.PrivatePort, Proto: p.Type}, HostPort: p.PublicPort}
		if ip, err := netip.ParseAddr(p.IP); err == nil {
			pb.HostIP = ip
		}
		out.Ports = append(out.Ports, pb)
	}
	slices.SortFunc(out.Ports, inventory.PortBinding.Compare)
	out.Ports = slices.Compact(out.Ports)
	if ns := s.NetworkSettings; ns != nil {
		out.Endpoints = convertEndpoints(ns.Networks)
	}
	return out
}

// convertEndpoints converts a container's networks, sorted by name.
func convertEndpoints(nets map[string]*network.EndpointSettings) []inventory.Endpoint {
	var out []inventory.Endpoint
	for name, ep := range nets {
		if ep == nil {
			continue
		}
		e := inventory.Endpoint{Network: name, MAC: ep.MacAddress, Aliases: ep.Aliases}
		if a, err := netip.ParseAddr(ep.IPAddress); err == nil {
			e.IPv4 = a
		}
		if a, err := netip.ParseAddr(ep.GlobalIPv6Address); err == nil {
			e.IPv6 = a
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b inventory.Endpoint) int { return strings.Compare(a.Network, b.Network) })
	return out
}
