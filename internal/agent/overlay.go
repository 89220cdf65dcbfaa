package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zonewarden/zonewarden/internal/bridgeport"
	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/inventory/dockerapi"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/nft/nflink"
	"github.com/zonewarden/zonewarden/internal/policy"
)

// OverlayConfig configures RunOverlays.
type OverlayConfig struct {
	// PolicyPath is the policy file (reread when it changes).
	PolicyPath string
	// ExecRoot is dockerd's exec-root (--exec-root, /var/run/docker by
	// default): the overlays' namespaces are the files ExecRoot/netns/1-*.
	ExecRoot string
	// Table names the inet table loaded in each overlay's namespace.
	Table string
	// Poll is how often every overlay is read again (default 1 s): a task
	// that starts on another node sends no event to this one, and is
	// dropped here (fail closed) until it is read.
	Poll time.Duration
	Log  *slog.Logger
	// Loaded, when set, is called after a ruleset is loaded into an
	// overlay's namespace, with the network's name and its tasks.
	Loaded func(network string, tasks int)
}

// OverlayNamespace is where dockerd keeps the namespace of an overlay
// network on a node: the network's bridge (br0), the node's end of each
// local task's veth, and vxlan0 to the other nodes. Traffic between two
// tasks, on one node or two, crosses that bridge and, through
// br_netfilter there, the namespace's forward hook; it never crosses the
// node's own (see docs/zones-across-hosts.md).
func OverlayNamespace(execRoot, networkID string) string {
	id := networkID
	if len(id) > 10 {
		id = id[:10]
	}
	return filepath.Join(execRoot, "netns", "1-"+id)
}

// SwarmSelectable returns the problems of a policy whose workloads would
// select a task on one node and not on another: every node knows every
// task's name and service, but a task's image and container labels only
// on its own node. Enforcing such a policy would let two nodes decide
// one connection differently.
func SwarmSelectable(p *policy.Policy) []string {
	var out []string
	for _, w := range p.Workloads {
		m := w.Match
		var only []string
		if m.Image != "" {
			only = append(only, "image")
		}
		if !m.Compose.IsZero() {
			only = append(only, "compose")
		}
		for k := range m.Labels {
			if k != inventory.LabelSwarmService {
				only = append(only, "label "+k)
			}
		}
		if len(only) > 0 {
			out = append(out, fmt.Sprintf("workload %s selects by %s, which only a task's own node knows; on a Swarm select tasks by name (name: \"api.*\") or by the label %s",
				w.Name, strings.Join(only, ", "), inventory.LabelSwarmService))
		}
	}
	return out
}

// errNoNamespace: an overlay's namespace file is there, but no namespace
// is mounted on it (Docker took it down).
var errNoNamespace = errors.New("not a network namespace")

// overlayNS is one overlay namespace the enforcer loads into.
type overlayNS struct {
	file   *os.File
	ino    uint64
	loader *nflink.Loader
	last   *enforce.Ruleset // what the namespace holds; nil: load it whole
	ports  *enforce.Ruleset // the endpoint binding it holds; nil: load it whole
	macs   bridgeport.Cache
	bound  map[string]int // local task name: its port
}

func (o *overlayNS) close() {
	o.loader.Close()
	o.file.Close()
}

// RunOverlays keeps the policy true inside every Swarm overlay namespace
// of this node until ctx ends: it reads each overlay this node has a
// task on (OverlayView: the tasks of every node), binds the policy to
// them, compiles it as for a host (enforce.Compile: admitted addresses,
// the flows' address pairs and ports, fail closed for the rest of a
// zone) and loads the difference into the overlay's namespace in one
// netlink transaction. It reads again on the node's events (its own
// tasks) and every Poll (the others'); a table deleted there is loaded
// again. The rules stay when it stops (fail static).
func RunOverlays(ctx context.Context, d *dockerapi.Client, cfg OverlayConfig) error {
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Table == "" {
		cfg.Table = enforce.Table
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	pol, raw, err := readSwarmPolicy(cfg.PolicyPath)
	if err != nil {
		return err
	}
	spaces := map[string]*overlayNS{} // by network id
	defer func() {
		for _, o := range spaces {
			o.close()
		}
	}()
	// The first request negotiates the API version: it must be done
	// before the events' goroutine reads it.
	for err := d.Ping(ctx); err != nil; err = d.Ping(ctx) {
		cfg.Log.Error("cannot reach Docker; retrying", "error", err.Error())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	kick := make(chan struct{}, 1)
	go followEvents(ctx, d, cfg.Log, kick)
	tick := time.NewTicker(cfg.Poll)
	defer tick.Stop()
	var rejected []byte // the last edit rejected, said once
	for {
		// The file is parsed again only when its bytes change.
		if now, err := os.ReadFile(cfg.PolicyPath); err == nil && !bytes.Equal(now, raw) && !bytes.Equal(now, rejected) {
			if p, r, err := readSwarmPolicy(cfg.PolicyPath); err != nil {
				rejected = now
				cfg.Log.Error("policy change rejected; the previous policy stays in force", "policy", cfg.PolicyPath, "error", err.Error())
			} else {
				pol, raw, rejected = p, r, nil
				cfg.Log.Info("policy reloaded", "policy", cfg.PolicyPath)
				for _, o := range spaces {
					o.last = nil
				}
			}
		}
		if err := enforceOverlays(ctx, d, cfg, pol, spaces); err != nil && ctx.Err() == nil {
			cfg.Log.Error("cannot enforce the overlays; retrying", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-kick:
		}
	}
}

// readSwarmPolicy reads the policy and refuses one that nodes could
// decide differently (SwarmSelectable).
func readSwarmPolicy(path string) (*policy.Policy, []byte, error) {
	p, raw, err := readPolicy(path)
	if err != nil {
		return nil, nil, err
	}
	if problems := SwarmSelectable(p); len(problems) > 0 {
		return nil, nil, fmt.Errorf("the policy %s cannot be enforced the same on every node:\n  %s", path, strings.Join(problems, "\n  "))
	}
	return p, raw, nil
}

// followEvents kicks on every event of the node (a local task started,
// stopped, connected), resubscribing while ctx lives.
func followEvents(ctx context.Context, d *dockerapi.Client, log *slog.Logger, kick chan<- struct{}) {
	for ctx.Err() == nil {
		events, wait, err := d.Events(ctx)
		if err == nil {
			for range events {
				select {
				case kick <- struct{}{}:
				default:
				}
			}
			err = wait()
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("lost Docker's events; overlays are read every poll meanwhile", "error", fmt.Sprint(err))
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// enforceOverlays does one round over the node's overlays.
func enforceOverlays(ctx context.Context, d *dockerapi.Client, cfg OverlayConfig, pol *policy.Policy, spaces map[string]*overlayNS) error {
	nets, err := d.Networks(ctx)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var errs []error
	for _, n := range nets {
		if n.Driver != "overlay" || n.Ingress {
			continue
		}
		path := OverlayNamespace(cfg.ExecRoot, n.ID)
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			continue // no task of this node on it: no namespace
		}
		view, err := d.OverlayView(ctx, n.ID)
		if err != nil || view == nil || len(view.Local) == 0 {
			// No task of this node on it (any more): nothing here to
			// enforce, and Docker is taking its namespace down.
			errs = append(errs, err)
			continue
		}
		seen[n.ID] = true
		for _, d := range dropDuplicates(view) {
			cfg.Log.Warn("an address claimed by two tasks in the overlay's gossip; not admitted until one of them leaves it", "network", n.Name, "detail", d)
		}
		o := spaces[n.ID]
		if o != nil && o.ino != st.Ino {
			o.close() // the network was made again
			o = nil
		}
		if o == nil {
			if o, err = openOverlayNS(path, st.Ino); err != nil {
				if !errors.Is(err, errNoNamespace) {
					errs = append(errs, fmt.Errorf("overlay %s: %w", n.Name, err))
				}
				continue
			}
			spaces[n.ID] = o
		}
		if o.last != nil {
			if ok, err := o.loader.HasTables(cfg.Table); err == nil && !ok {
				cfg.Log.Warn("zonewarden's tables were removed from an overlay's namespace; loading them again", "network", n.Name)
				o.last, o.ports = nil, nil
			}
		}
		unbound, err := o.bind(view)
		if err != nil {
			errs = append(errs, fmt.Errorf("overlay %s: %w", n.Name, err))
			continue
		}
		snap := &inventory.Snapshot{Version: inventory.SchemaVersion, Source: inventory.Source{Kind: "docker", Detail: d.Host()},
			Networks: []inventory.Network{view.Network}, Containers: view.Tasks}
		b, _ := model.Bind(pol, snap) // conflicts: those tasks are not admitted
		opts := enforce.Options{Table: cfg.Table}
		rs, ports := enforce.Compile(b, opts), enforce.CompilePorts(b, opts)
		// The binding first, as on a host: an address admitted is bound
		// to its port from the start.
		loaded := false
		for _, step := range []struct {
			held **enforce.Ruleset
			rs   *enforce.Ruleset
		}{{&o.ports, ports}, {&o.last, rs}} {
			changes, err := nflink.Diff(*step.held, step.rs)
			if err == nil && !changes.Empty() {
				err = o.loader.Apply(changes)
				loaded = true
			}
			if err != nil {
				*step.held = nil
				errs = append(errs, fmt.Errorf("loading the rules of overlay %s: %w", n.Name, err))
				break
			}
			*step.held = step.rs
		}
		if !loaded || o.last == nil {
			continue
		}
		cfg.Log.Info("overlay enforced", "network", n.Name, "tasks", len(view.Tasks), "local", len(view.Local), "unbound", unbound)
		if cfg.Loaded != nil {
			cfg.Loaded(n.Name, len(view.Tasks))
		}
	}
	for id, o := range spaces {
		if !seen[id] {
			o.close() // its last local task left: the namespace is gone
			delete(spaces, id)
		}
	}
	return errors.Join(errs...)
}

// dropDuplicates keeps one task per address in view. The gossip a node
// reads lags the Swarm: a task that left may still be listed while its
// address is already another's (Swarm hands freed addresses out again,
// as after a service update that replaces every task). A task of this
// node is the truth for its address; between tasks of other nodes there
// is no telling, so none keeps it (fail closed: its traffic is dropped
// until the gossip settles). It returns what it dropped.
func dropDuplicates(view *dockerapi.Overlay) []string {
	type claim struct {
		tasks []int
		local bool
	}
	claims := map[netip.Addr]*claim{}
	for i, t := range view.Tasks {
		for _, e := range t.Endpoints {
			for _, a := range []netip.Addr{e.IPv4, e.IPv6} {
				if !a.IsValid() {
					continue
				}
				c := claims[a]
				if c == nil {
					c = &claim{}
					claims[a] = c
				}
				c.tasks = append(c.tasks, i)
				if _, ok := view.Local[t.Name]; ok {
					c.local = true
				}
			}
		}
	}
	drop := map[int]bool{}
	var out []string
	for a, c := range claims {
		if len(c.tasks) < 2 {
			continue
		}
		var names []string
		for _, i := range c.tasks {
			name := view.Tasks[i].Name
			if _, local := view.Local[name]; !local {
				drop[i] = true
			}
			names = append(names, name)
		}
		kept := "none"
		if c.local {
			kept = "this node's"
		}
		out = append(out, fmt.Sprintf("%s: %s (kept: %s)", a, strings.Join(names, ", "), kept))
	}
	if len(drop) > 0 {
		tasks := view.Tasks[:0]
		for i, t := range view.Tasks {
			if !drop[i] {
				tasks = append(tasks, t)
			}
		}
		view.Tasks = tasks
	}
	slices.Sort(out)
	return out
}

// bind sets the port of every task's endpoint in the overlay's
// namespace: a local task's is the veth whose peer carries its MAC, every
// other node's task's is vxlan0, the port to the other nodes. The
// endpoint binding (enforce.CompilePorts) then drops a packet, ARP or
// neighbour advertisement that claims a task's address from any other
// port: a local task cannot pass for a task of another node, nor one of
// this node for another, whatever its capabilities (each node checks its
// own tasks' ports). It returns what it could not bind: those addresses
// are left to the inet table alone.
func (o *overlayNS) bind(view *dockerapi.Overlay) ([]string, error) {
	ports, err := bridgeport.ListIn(int(o.file.Fd()), o.macs)
	if err != nil {
		return nil, err
	}
	vxlan := 0
	for _, p := range ports {
		if p.PeerMAC == nil && strings.HasPrefix(p.Name, "vxlan") {
			vxlan, view.Network.Bridge = p.Index, p.Bridge
		}
	}
	if vxlan == 0 {
		return nil, errors.New("no vxlan port on a bridge in its namespace")
	}
	// A local task keeps the port it was bound to while that port serves
	// its MAC: a forger that copies the MAC later does not take it over.
	for i := range view.Tasks {
		if t := &view.Tasks[i]; len(t.Endpoints) == 1 {
			t.Endpoints[0].BridgePort = o.bound[t.Name]
		}
	}
	snap := &inventory.Snapshot{Networks: []inventory.Network{view.Network}, Containers: view.Tasks}
	unbound := bridgeport.Match(snap, ports)
	clear(o.bound)
	for i := range view.Tasks {
		t := &view.Tasks[i]
		if _, local := view.Local[t.Name]; !local {
			for j := range t.Endpoints {
				t.Endpoints[j].BridgePort = vxlan
			}
			continue
		}
		for _, e := range t.Endpoints {
			if e.BridgePort > 0 {
				o.bound[t.Name] = e.BridgePort
				if mac, ok := macOf(ports, e.BridgePort); ok {
					o.macs[e.BridgePort] = mac
				}
			}
		}
	}
	return unbound, nil
}

// macOf returns the peer MAC of the port with this index.
func macOf(ports []bridgeport.Port, index int) (net.HardwareAddr, bool) {
	for _, p := range ports {
		if p.Index == index && p.PeerMAC != nil {
			return p.PeerMAC, true
		}
	}
	return nil, false
}

func openOverlayNS(path string, ino uint64) (*overlayNS, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil || st.Type != unix.NSFS_MAGIC {
		f.Close()
		return nil, errNoNamespace // the file outlived its namespace
	}
	l, err := nflink.NewIn(int(f.Fd()))
	if err != nil {
		f.Close()
		return nil, err
	}
	return &overlayNS{file: f, ino: ino, loader: l, macs: bridgeport.Cache{}, bound: map[string]int{}}, nil
}
