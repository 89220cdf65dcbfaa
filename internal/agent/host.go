package agent

import (
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/zonewarden/zonewarden/internal/bridgeport"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/inventory/dockerapi"
)

// hostView is the agent's copy of the host, kept current by reading only
// what events say changed.
type hostView struct {
	docker *dockerapi.Client
	log    *slog.Logger    // debug timings; nil logs nothing
	reader *endpointReader // reads networks' endpoints off the loop; nil: none
	// containerReader reads changed containers off the loop; nil: the
	// reconcile reads them itself.
	containerReader *containerReader
	admitter        *kernelAdmitter     // admits starting containers from the kernel; nil: none
	daemon          *inventory.Snapshot // the snapshot's header: version and source
	networks        []inventory.Network
	containers      map[string]inventory.Container // by id

	// pending holds, per container id and network name, the endpoint
	// the network's inspect showed (asked by a connect event or a new
	// bridge port): the container's list shows it only once its start is
	// done, which under a storm of starts comes seconds after its
	// process runs.
	pending map[string]map[string]inventory.Endpoint

	// ports binds each endpoint ("container id/network") to its bridge
	// port once found, and keeps it while the port lives: a forger that
	// copies the MAC later does not take it over (bridgeport.Match).
	ports map[string]int
	// table holds the host's bridge ports, kept by the link watcher; nil
	// while it does not run (the ports are then dumped on every read).
	table    atomic.Pointer[bridgeport.Table]
	portSeen map[int]time.Time // when each bridge port was first seen
	macs     bridgeport.Cache
	unbound  []string // endpoints of running containers without a port, and why
	// fullAt is when the last read of every container began.
	fullAt time.Time
	// unknown holds endpoints whose container the view did not know yet,
	// while the container reader reads it (with containerReader).
	unknown       []dockerapi.NetworkEndpoint
	unknownKernel []kernelEndpoint
	unknownSince  time.Time
	portsErr      string
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
//
// With a container reader (the agent's), changed containers are read off
// the loop and taken when read: a reconcile waits for Docker only to
// read everything.
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
			m := make(map[string]inventory.Network, len(nets))
			for _, n := range nets {
				if n.Bridge != "" && n.ID != "" {
					m[n.Bridge] = n
				}
			}
			h.reader.bridges.Store(&m)
		}
	}
	switch {
	case full || h.containerReader == nil && len(d.containers) > listAllAbove:
		h.fullAt = time.Now()
		all, err := h.docker.ListContainers(ctx, nil)
		if err != nil {
			return nil, err
		}
		clear(h.containers)
		for _, c := range all {
			h.containers[c.ID] = c
		}
	case h.containerReader != nil && len(d.containers) > 0:
		h.containerReader.request(slices.Collect(maps.Keys(d.containers)))
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
	if h.containerReader != nil {
		for _, r := range h.containerReader.take() {
			h.apply(r)
		}
	}
	if err := h.readEndpoints(ctx, d); err != nil {
		return nil, err
	}
	snap := h.snapshot()
	h.bindPorts(snap)
	if h.admitter != nil {
		settled := make(map[string]bool, len(h.containers))
		for id, c := range h.containers {
			if c.State == "running" || c.State == "paused" {
				settled[id] = true
			}
		}
		h.admitter.settled.Store(&settled)
	}
	return snap, nil
}

// apply takes one read of the container reader. A read that began before
// the last read of everything is older than what the view has.
func (h *hostView) apply(r containerRead) {
	if r.at.Before(h.fullAt) {
		return
	}
	if r.ids == nil {
		clear(h.containers)
	}
	for _, id := range r.ids {
		delete(h.containers, id) // removed unless found again
	}
	for _, c := range r.found {
		h.containers[c.ID] = c
	}
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
	found, kernel := h.reader.take()
	found, kernel = append(h.unknown, found...), append(h.unknownKernel, kernel...)
	h.unknown, h.unknownKernel = nil, nil
	if len(found) == 0 && len(kernel) == 0 {
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
	knownKernel := func(e kernelEndpoint) bool { _, ok := h.containers[e.ContainerID]; return ok }
	unknown := slices.ContainsFunc(found, func(e dockerapi.NetworkEndpoint) bool { return resolve(e) == "" }) ||
		!every(kernel, knownKernel)
	switch {
	case unknown && h.containerReader != nil:
		// Read those containers off the loop; their endpoints wait here
		// (for unknownLife at most: a container removed meanwhile).
		if h.unknownSince.IsZero() {
			h.unknownSince = time.Now()
		}
		keep := time.Since(h.unknownSince) < unknownLife
		var ids []string
		byNameOnly := false
		found = slices.DeleteFunc(found, func(e dockerapi.NetworkEndpoint) bool {
			if resolve(e) != "" {
				return false
			}
			if e.ContainerID == "" {
				byNameOnly = true
			} else {
				ids = append(ids, e.ContainerID)
			}
			if keep {
				h.unknown = append(h.unknown, e)
			}
			return true
		})
		kernel = slices.DeleteFunc(kernel, func(e kernelEndpoint) bool {
			if knownKernel(e) {
				return false
			}
			ids = append(ids, e.ContainerID)
			if keep {
				h.unknownKernel = append(h.unknownKernel, e)
			}
			return true
		})
		if byNameOnly {
			ids = nil // all
		}
		h.containerReader.request(ids)
	case unknown:
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
	}
	if len(h.unknown) == 0 && len(h.unknownKernel) == 0 {
		h.unknownSince = time.Time{}
	}
	for _, e := range found {
		cid := resolve(e)
		if cid == "" || !e.Endpoint.IPv4.IsValid() && !e.Endpoint.IPv6.IsValid() {
			continue
		}
		if c := h.containers[cid]; c.State == "running" && hasAddress(c, e.Endpoint.Network) {
			continue // the list has it
		}
		h.setPending(cid, e.Endpoint)
	}
	if len(kernel) > 0 {
		held := h.addressesHeld()
		for _, e := range kernel {
			if why := h.refuseKernel(e, held); why != "" {
				if h.log != nil {
					h.log.Debug("not admitted from the kernel; Docker's view will tell", "container", e.ContainerID, "network", e.Endpoint.Network, "why", why)
				}
				continue
			}
			h.setPending(e.ContainerID, e.Endpoint)
			if h.log != nil {
				h.log.Debug("admitted from the kernel", "container", h.containers[e.ContainerID].Name, "network", e.Endpoint.Network,
					"ipv4", e.Endpoint.IPv4, "ipv6", e.Endpoint.IPv6, "mac", e.Endpoint.MAC, "port", e.Port)
			}
		}
	}
	return nil
}

func (h *hostView) setPending(cid string, e inventory.Endpoint) {
	if h.pending[cid] == nil {
		h.pending[cid] = map[string]inventory.Endpoint{}
	}
	h.pending[cid][e.Network] = e
}

// refuseKernel says why an endpoint the kernel showed is not taken, ""
// when it is: only a starting container (neither running nor paused in
// its list) configured for that network, with a namespace of its own,
// takes one, and only while Docker has shown none for it there and no
// other container holds its addresses.
func (h *hostView) refuseKernel(e kernelEndpoint, held map[string]map[netip.Addr]string) string {
	c, ok := h.containers[e.ContainerID]
	switch {
	case !ok:
		return "not in Docker's list"
	case c.State == "running" || c.State == "paused":
		return "already " + c.State
	case c.SharedNamespaceWith() != "" || c.UsesHostNetwork():
		return "shares another's network namespace"
	case !slices.ContainsFunc(c.Endpoints, func(x inventory.Endpoint) bool { return x.Network == e.Endpoint.Network }):
		return "not configured for that network"
	}
	if _, ok := h.pending[e.ContainerID][e.Endpoint.Network]; ok {
		return "Docker's view has it"
	}
	for _, a := range []netip.Addr{e.Endpoint.IPv4, e.Endpoint.IPv6} {
		if owner, ok := held[e.Endpoint.Network][a]; ok && a.IsValid() && owner != e.ContainerID {
			return "its address " + a.String() + " is " + h.containers[owner].Name + "'s"
		}
	}
	return ""
}

// addressesHeld maps each network to the addresses the view gives
// containers there, and whose they are.
func (h *hostView) addressesHeld() map[string]map[netip.Addr]string {
	held := map[string]map[netip.Addr]string{}
	add := func(cid string, e inventory.Endpoint) {
		if held[e.Network] == nil {
			held[e.Network] = map[netip.Addr]string{}
		}
		for _, a := range []netip.Addr{e.IPv4, e.IPv6} {
			if a.IsValid() {
				held[e.Network][a] = cid
			}
		}
	}
	for id, c := range h.containers {
		if c.Running() {
			for _, e := range c.Endpoints {
				add(id, e)
			}
		}
	}
	for id, eps := range h.pending {
		for _, e := range eps {
			add(id, e)
		}
	}
	return held
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
	ports, err := h.listPorts()
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

// unknownLife is how long an endpoint of a container the view does not
// know waits for the container to be read.
const unknownLife = 10 * time.Second

// every reports whether f holds for every element of s.
func every[T any](s []T, f func(T) bool) bool {
	return !slices.ContainsFunc(s, func(x T) bool { return !f(x) })
}

// listPorts returns the bridge ports, from the link watcher's table when
// it runs, with the MACs of ports already matched taken from h.macs.
func (h *hostView) listPorts() ([]bridgeport.Port, error) {
	t := h.table.Load()
	if t == nil {
		return bridgeport.ListCached(h.macs)
	}
	ports, ok := t.Ports()
	if !ok {
		return bridgeport.ListCached(h.macs)
	}
	live := make(map[int]bool, len(ports))
	for i := range ports {
		live[ports[i].Index] = true
		if mac, ok := h.macs[ports[i].Index]; ok {
			ports[i].PeerMAC = mac
		}
	}
	for index := range h.macs {
		if !live[index] {
			delete(h.macs, index)
		}
	}
	return ports, nil
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
