package agent

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/zonewarden/zonewarden/internal/bridgeport"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/inventory/dockerapi"
)

// hostView is the agent's copy of the host, kept current by reading only
// what events say changed.
type hostView struct {
	docker     *dockerapi.Client
	log        *slog.Logger        // debug timings; nil logs nothing
	reader     *endpointReader     // reads networks' endpoints off the loop; nil: none
	daemon     *inventory.Snapshot // the snapshot's header: version and source
	networks   []inventory.Network
	containers map[string]inventory.Container // by id

	// pending holds, per container id and network name, the endpoint
	// the network's inspect showed (asked by a connect event or a new
	// bridge port): the container's list shows it only once its start is
	// done, which under a storm of starts comes seconds after its
	// process runs.
	pending map[string]map[string]inventory.Endpoint

	// ports binds each endpoint ("container id/network") to its bridge
	// port once found, and keeps it while the port lives: a forger that
	// copies the MAC later does not take it over (bridgeport.Match).
	ports    map[string]int
	portSeen map[int]time.Time // when each bridge port was first seen
	macs     bridgeport.Cache
	unbound  []string // endpoints of running containers without a port, and why
	portsErr string
}

// timing logs, at debug level, how long one read of Docker took.
func (h *hostView) timing(what string, start time.Time, args ...any) {
	if h.log != nil {
		h.log.Debug("read Docker", append([]any{"what", what, "ms", ms(time.Since(start))}, args...)...)
	}
}

func newHostView(d *dockerapi.Client) *hostView {
	return &hostView{docker: d, containers: map[string]inventory.Container{}, pending: map[string]map[string]inventory.Endpoint{},
		ports: map[string]int{}, macs: bridgeport.Cache{}, portSeen: map[int]time.Time{}}
}

// refresh reads what d marks as changed (everything on the first call
// or when d.full) and returns the host as it is now. Containers are read
// from the container list, which does not wait for containers that are
// starting (inspect does, for seconds on a busy daemon); many changed
// containers are read with one list of all.
func (h *hostView) refresh(ctx context.Context, d dirty) (*inventory.Snapshot, error) {
	full := h.daemon == nil || d.full
	if h.daemon == nil {
		// Binding and compiling need no daemon settings: not asking for
		// them (/info) keeps the agent within what a read-only socket
		// proxy that allows containers, networks and events serves.
		h.daemon = &inventory.Snapshot{Version: inventory.SchemaVersion, Source: inventory.Source{Kind: "docker", Detail: h.docker.Host()}}
	}
	if full || d.networks {
		nets, err := h.docker.Networks(ctx)
		if err != nil {
			return nil, err
		}
		h.networks = nets
		if h.reader != nil {
			m := make(map[string]string, len(nets))
			for _, n := range nets {
				if n.Bridge != "" && n.ID != "" {
					m[n.Bridge] = n.ID
				}
			}
			h.reader.bridges.Store(&m)
		}
	}
	switch {
	case full || len(d.containers) > listAllAbove:
		all, err := h.docker.ListContainers(ctx, nil)
		if err != nil {
			return nil, err
		}
		clear(h.containers)
		for _, c := range all {
			h.containers[c.ID] = c
		}
	case len(d.containers) > 0:
		ids := slices.Collect(maps.Keys(d.containers))
		start := time.Now()
		found, err := h.docker.ListContainers(ctx, ids)
		if err != nil {
			return nil, err
		}
		h.timing("container list", start, "ids", len(ids))
		for _, id := range ids {
			delete(h.containers, id) // removed unless found again
		}
		for _, c := range found {
			h.containers[c.ID] = c
		}
	}
	if err := h.readEndpoints(ctx, d); err != nil {
		return nil, err
	}
	snap := h.snapshot()
	h.bindPorts(snap)
	return snap, nil
}

// readEndpoints takes the endpoints the reader read (of the networks that
// connect events named and of the bridges that gained a port), asks it
// for the bridges it could not place before the networks were read
// again, and keeps the endpoints the container list does not show yet in
// pending until it does. An endpoint of a container the view does not know yet
// (its create event not taken) relists every container.
func (h *hostView) readEndpoints(ctx context.Context, d dirty) error {
	if h.reader == nil {
		return nil
	}
	// Bridges the reader could not place: the networks were read again
	// (d.networks), so it can now.
	for b := range d.bridges {
		h.reader.requestBridge(b)
	}
	found := h.reader.take()
	if len(found) == 0 {
		return nil
	}
	byName := make(map[string]string, len(h.containers))
	for id, c := range h.containers {
		byName[c.Name] = id
	}
	resolve := func(e dockerapi.NetworkEndpoint) string {
		if e.ContainerID != "" {
			if _, ok := h.containers[e.ContainerID]; ok {
				return e.ContainerID
			}
			return ""
		}
		return byName[e.Name]
	}
	for _, e := range found {
		if resolve(e) == "" {
			start := time.Now()
			all, err := h.docker.ListContainers(ctx, nil)
			h.timing("container list (an endpoint of an unknown container)", start, "containers", len(all))
			if err != nil {
				return err
			}
			clear(h.containers)
			clear(byName)
			for _, c := range all {
				h.containers[c.ID] = c
				byName[c.Name] = c.ID
			}
			break
		}
	}
	for _, e := range found {
		cid := resolve(e)
		if cid == "" || !e.Endpoint.IPv4.IsValid() && !e.Endpoint.IPv6.IsValid() {
			continue
		}
		if c := h.containers[cid]; c.State == "running" && hasAddress(c, e.Endpoint.Network) {
			continue // the list has it
		}
		if h.pending[cid] == nil {
			h.pending[cid] = map[string]inventory.Endpoint{}
		}
		h.pending[cid][e.Endpoint.Network] = e.Endpoint
	}
	return nil
}

// hasAddress reports whether the container's endpoint on network has an
// address.
func hasAddress(c inventory.Container, network string) bool {
	for _, e := range c.Endpoints {
		if e.Network == network && (e.IPv4.IsValid() || e.IPv6.IsValid()) {
			return true
		}
	}
	return false
}

// withPending returns c with the endpoints its connect events announced
// and its list does not show yet; a container still "created" in the
// list but with such an endpoint is starting, and counts as running.
// Entries the list has caught up with, and those of containers no longer
// starting or running, are dropped.
func (h *hostView) withPending(c inventory.Container) inventory.Container {
	pend := h.pending[c.ID]
	if len(pend) == 0 {
		return c
	}
	if c.State != "created" && c.State != "running" {
		delete(h.pending, c.ID)
		return c
	}
	eps := slices.Clone(c.Endpoints)
	for name, pe := range pend {
		i := slices.IndexFunc(eps, func(e inventory.Endpoint) bool { return e.Network == name })
		switch {
		case i >= 0 && (eps[i].IPv4.IsValid() || eps[i].IPv6.IsValid()) && c.State == "running":
			delete(pend, name) // the list has it now
		case i >= 0:
			eps[i].IPv4, eps[i].IPv6, eps[i].MAC = pe.IPv4, pe.IPv6, pe.MAC
		default:
			eps = append(eps, pe)
		}
	}
	if len(pend) == 0 {
		delete(h.pending, c.ID)
	}
	slices.SortFunc(eps, func(a, b inventory.Endpoint) int { return strings.Compare(a.Network, b.Network) })
	c.Endpoints = eps
	if c.State == "created" {
		c.State = "running" // starting: its process may run already
	}
	return c
}

// bindPorts sets the bridge port of each endpoint of snap: the one it had,
// while that port lives, else the one whose peer has its MAC.
func (h *hostView) bindPorts(snap *inventory.Snapshot) {
	ports, err := bridgeport.ListCached(h.macs)
	if err != nil {
		h.portsErr = err.Error()
		return
	}
	h.portsErr = ""
	key := func(c *inventory.Container, e *inventory.Endpoint) string { return c.ID + "/" + e.Network }
	for i := range snap.Containers {
		c := &snap.Containers[i]
		for j := range c.Endpoints {
			c.Endpoints[j].BridgePort = h.ports[key(c, &c.Endpoints[j])]
		}
	}
	h.unbound = bridgeport.Match(snap, ports)
	clear(h.ports)
	byIndex := make(map[int]bridgeport.Port, len(ports))
	for _, p := range ports {
		byIndex[p.Index] = p
	}
	used := map[int]bool{}
	for i := range snap.Containers {
		c := &snap.Containers[i]
		for j := range c.Endpoints {
			e := &c.Endpoints[j]
			if e.BridgePort > 0 {
				used[e.BridgePort] = true
				h.ports[key(c, e)] = e.BridgePort
				if p, ok := byIndex[e.BridgePort]; ok && p.PeerMAC != nil {
					h.macs[e.BridgePort] = p.PeerMAC
				}
			}
		}
	}
	// A port that serves no endpoint the view knows is, most likely, a
	// container starting: read its network's endpoints again (Docker
	// stores the endpoint a little after it creates the veth) until it
	// shows, for newPortWindow.
	now := time.Now()
	for _, p := range ports {
		first, seen := h.portSeen[p.Index]
		if !seen {
			first = now
			h.portSeen[p.Index] = now
		}
		if !used[p.Index] && now.Sub(first) < newPortWindow && h.reader != nil {
			h.reader.requestBridge(p.Bridge)
		}
	}
	for index := range h.portSeen {
		if _, ok := byIndex[index]; !ok {
			delete(h.portSeen, index)
		}
	}
}

// newPortWindow is how long after a bridge port appears the agent keeps
// reading its network for the endpoint it serves.
const newPortWindow = 2 * time.Second

// listAllAbove: more changed containers than this are read with one list
// of all containers rather than a list filtered by their ids.
const listAllAbove = 100

// snapshot assembles the view into a snapshot of its own: the analysis
// may keep pointers into it.
func (h *hostView) snapshot() *inventory.Snapshot {
	snap := *h.daemon
	snap.TakenAt = time.Now().UTC().Truncate(time.Second)
	snap.Networks = slices.Clone(h.networks)
	snap.Containers = make([]inventory.Container, 0, len(h.containers))
	for _, c := range h.containers {
		snap.Containers = append(snap.Containers, h.withPending(c))
	}
	for id := range h.pending {
		if _, ok := h.containers[id]; !ok {
			delete(h.pending, id) // removed
		}
	}
	dockerapi.Assemble(&snap)
	return &snap
}
