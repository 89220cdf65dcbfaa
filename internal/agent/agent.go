// Package agent keeps a policy true on a live Docker host: zonewarden
// agent.
//
// It is a level-triggered loop, as kube-proxy's: Docker events, policy
// edits and changes to zonewarden's nftables table only mark state dirty;
// one reconcile at a time reads what changed on the host (one inspect per
// changed container, the whole host after a reconnection), compiles the
// policy and loads the difference — set elements for container churn, the
// whole table in one transaction when the rules or the policy change or
// the table was tampered with. The table is never removed: on shutdown
// or a crash the last ruleset stays in force (fail static), and a
// restarted agent replaces it in one transaction (never absent).
//
// Around the loop: a denied-flow log from nflog (flows.go), Prometheus
// metrics (metrics.go), and a control socket serving /healthz, /metrics,
// /status and /flows (server.go).
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/firewall"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/inventory/dockerapi"
	"github.com/zonewarden/zonewarden/internal/policy"
)

// Config is how an agent runs.
type Config struct {
	// PolicyPath is the policy file; it is reloaded when it changes.
	PolicyPath string
	// Docker reads the host.
	Docker *dockerapi.Client
	// Table and LogGroup tune the ruleset (defaults: enforce's).
	Table    string
	LogGroup uint16
	// Resync is the period of the full resync (default 30 s); PolicyPoll
	// how often the policy file is checked for changes (default 1 s).
	Resync     time.Duration
	PolicyPoll time.Duration
	// MinInterval spaces reconciles at least this far apart, so that a
	// storm of events costs a bounded number of them; changes meanwhile
	// are taken together. 0: the next reconcile starts as soon as the
	// previous one ends (they never overlap).
	MinInterval time.Duration
	// EnforceMembership disconnects containers from zones their workload
	// may not join; otherwise they are only reported.
	EnforceMembership bool
	// Socket is the control socket's path; empty serves none.
	Socket string
	// MetricsAddr also serves /metrics and /healthz on this loopback
	// address; empty serves them on the socket only.
	MetricsAddr string
	// FlowLog receives one JSON line per denied flow (rate-limited); nil
	// discards them (they are still counted and served on /flows).
	FlowLog io.Writer
	// FlowRate bounds the denied-flow lines per second (default 100).
	FlowRate int
	// LearnPath, when set, records the connections the host makes
	// (conntrack, named), appended to this flows file every LearnFlush
	// (default 30 s) and at shutdown: what `zonewarden learn` records.
	LearnPath  string
	LearnFlush time.Duration
	// Log receives the agent's own structured log.
	Log *slog.Logger
	// SaveState records the policy and ruleset installed, for status and
	// reach when the agent is not running (the CLI's state package).
	SaveState func(policyPath string, policy []byte, rs *enforce.Ruleset) error
}

// Agent is one running agent.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	flows   *flowLog

	wake   chan struct{}
	reload chan struct{}

	mu    sync.Mutex
	dirty dirty
	// pol is the policy in force and its file's contents.
	pol    *policy.Policy
	polRaw []byte

	host      *hostView // the reconcile goroutine's alone
	fw        *firewall.Applier
	latencies latencyRing // the reconcile goroutine's alone
	// earlyAdmit: containers admitted before their own event was taken,
	// and when (the reconcile goroutine's alone).
	earlyAdmit map[string]time.Time
	// startedAt: start events taken before their container was admitted
	// (the reconcile goroutine's alone).
	startedAt map[string]time.Time
	// bridgeProblem is the last reason bridged traffic could not be made
	// to pass the firewall, "" while it does (the reconcile goroutine's
	// alone): logged once, not on every resync.
	bridgeProblem string

	status statusBox
	// learner records connections (--learn); nil without.
	learner atomic.Pointer[Learner]

	saveMu      sync.Mutex
	savePending *pendingSave
}

// New checks the configuration and reads the policy. An invalid policy
// is an error: the agent does not start without a good one.
func New(cfg Config) (*Agent, error) {
	if cfg.Docker == nil {
		return nil, errors.New("agent: no Docker client")
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.PolicyPoll <= 0 {
		cfg.PolicyPoll = time.Second
	}
	if cfg.FlowRate <= 0 {
		cfg.FlowRate = 100
	}
	if cfg.Table == "" {
		cfg.Table = enforce.Table
	}
	if cfg.LogGroup == 0 {
		cfg.LogGroup = enforce.LogGroup
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	a := &Agent{
		cfg:     cfg,
		log:     cfg.Log,
		metrics: newMetrics(),
		wake:    make(chan struct{}, 1),
		reload:  make(chan struct{}, 1),
		host:    newHostView(cfg.Docker),

		earlyAdmit: map[string]time.Time{},
		startedAt:  map[string]time.Time{},
	}
	a.flows = newFlowLog(cfg.FlowLog, cfg.FlowRate, a.metrics)
	a.host.log = cfg.Log
	a.host.reader = newEndpointReader(cfg.Docker, cfg.Log)
	a.host.containerReader = newContainerReader(cfg.Docker, cfg.Log, func(err error) {
		a.log.Warn("cannot read changed containers; reading them all", "error", err.Error())
		a.mark(func(d *dirty) { d.full = true })
	})
	a.host.admitter = newKernelAdmitter(a.host.reader, cfg.Log, func() { a.mark(func(*dirty) {}) })
	p, raw, err := readPolicy(cfg.PolicyPath)
	if err != nil {
		return nil, err
	}
	a.pol, a.polRaw = p, raw
	a.dirty.full, a.dirty.policy = true, true
	return a, nil
}

// Run runs the agent until ctx is done. It returns an error only when it
// cannot run at all (no netlink, the socket taken); every other failure
// is logged, counted and retried. The installed rules stay when it
// returns.
func (a *Agent) Run(ctx context.Context) error {
	// Through the agent's own socket, no nft -f fallback: the table
	// watch tells the agent's own changes by that socket.
	fw, err := firewall.Open(firewall.Options{})
	if err != nil {
		return err
	}
	defer fw.Close()
	a.fw = fw

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopServer, err := a.serve(ctx)
	if err != nil {
		return err
	}
	defer stopServer()

	var wg sync.WaitGroup
	wake := func() { a.mark(func(*dirty) {}) }
	readEndpoints := func(ctx context.Context) { a.host.reader.run(ctx, wake) }
	readContainers := func(ctx context.Context) { a.host.containerReader.run(ctx, wake) }
	tasks := []func(context.Context){a.watchEvents, a.watchPolicy, a.watchTable, a.watchLinks, readEndpoints, readContainers, a.host.admitter.run, a.readFlows}
	if a.cfg.LearnPath != "" {
		lr, err := NewLearner(a.cfg.LearnPath, &inventory.Snapshot{})
		if err != nil {
			return fmt.Errorf("--learn: %w", err)
		}
		defer lr.Close()
		a.learner.Store(lr)
		tasks = append(tasks, a.learn)
	}
	for _, f := range tasks {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	a.log.Info("agent started", "policy", a.cfg.PolicyPath, "table", "inet "+a.cfg.Table, "resync", a.cfg.Resync.String())
	a.reconcileLoop(ctx)
	cancel()
	wg.Wait()
	a.log.Info("agent stopped; the firewall stays in force", "table", "inet "+a.cfg.Table)
	return nil
}

// dirty is what changed since the last reconcile.
type dirty struct {
	full       bool                 // relist the whole host
	networks   bool                 // relist the networks
	containers map[string]time.Time // read these again; when each started (see markContainer)
	// bridges gained a port (a veth) before the agent knew their network:
	// once the networks are read again, the endpoint reader reads theirs.
	bridges map[string]bool
	policy  bool // the policy changed: full sync, end forbidden connections
	table   bool // someone else changed the table: full sync
}

// mark records a change and wakes the reconcile loop.
func (a *Agent) mark(f func(d *dirty)) {
	a.mu.Lock()
	f(&a.dirty)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// take returns what changed and starts over.
func (a *Agent) take() (dirty, *policy.Policy, []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	d := a.dirty
	a.dirty = dirty{}
	return d, a.pol, a.polRaw
}

// markContainer records a change of one container: its event and when.
// Admission latency counts from the start event only; other events carry
// no time (a container admitted on its network connect, before its start
// event is taken, gets its latency when that event comes: see admitted).
func (d *dirty) markContainer(id, action string, t time.Time) {
	if d.containers == nil {
		d.containers = map[string]time.Time{}
	}
	switch _, ok := d.containers[id]; {
	case action == "start":
		d.containers[id] = t
	case !ok:
		d.containers[id] = time.Time{}
	}
}

// merge puts back what a failed reconcile took.
func (d *dirty) merge(o dirty) {
	d.full = d.full || o.full
	d.networks = d.networks || o.networks
	d.policy = d.policy || o.policy
	d.table = d.table || o.table
	for b := range o.bridges {
		if d.bridges == nil {
			d.bridges = map[string]bool{}
		}
		d.bridges[b] = true
	}
	for id, t := range o.containers {
		if old, ok := d.containers[id]; !ok || old.IsZero() {
			if d.containers == nil {
				d.containers = map[string]time.Time{}
			}
			d.containers[id] = t
		}
	}
}

// watchEvents follows Docker's events, reconnecting with backoff. Each
// (re)connection relists the whole host: events lost meanwhile do not
// matter.
func (a *Agent) watchEvents(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		events, wait, err := a.cfg.Docker.Events(ctx)
		if err != nil {
			a.log.Warn("cannot follow Docker events; retrying", "error", err.Error(), "in", backoff.String())
			a.status.set(func(s *Status) { s.Docker = "disconnected: " + err.Error() })
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		a.status.set(func(s *Status) { s.Docker = "connected" })
		a.mark(func(d *dirty) { d.full = true })
		for e := range events {
			if e.Container != "" && e.Network != "" && e.Action == "connect" {
				a.host.reader.request(e.Network)
			}
			if e.Container != "" && (e.Action == "connect" || e.Action == "disconnect") {
				// Docker reports a connect or disconnect before its
				// container list shows it: read the container again
				// once the list has caught up.
				for _, after := range []time.Duration{200 * time.Millisecond, time.Second} {
					time.AfterFunc(after, func() {
						a.mark(func(d *dirty) { d.markContainer(e.Container, e.Action, e.Time) })
					})
				}
			}
			a.mark(func(d *dirty) {

				if e.Container != "" {
					d.markContainer(e.Container, e.Action, e.Time)
				} else {
					d.networks = true // a network created or removed
				}
			})
		}
		if err := wait(); err != nil && ctx.Err() == nil {
			a.log.Warn("Docker event stream ended; reconnecting", "error", err.Error())
			a.status.set(func(s *Status) { s.Docker = "reconnecting: " + err.Error() })
		}
	}
}
