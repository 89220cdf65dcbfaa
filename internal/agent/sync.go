package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/firewall"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy"
)

// ensureBridgeFiltering keeps bridged traffic between containers of one
// zone passing the firewall (br_netfilter and its sysctls), at start and
// on every resync: a host whose sysctl someone set back to 0 gets it
// repaired, logged as drift. When that cannot be done it is logged as an
// error (once per distinct reason, and again when it is resolved) and
// kept in the status: the rules between zones still hold.
func (a *Agent) ensureBridgeFiltering(ctx context.Context) {
	done, err := firewall.EnsureBridgeFiltering(ctx)
	for _, d := range done {
		a.log.Warn("bridge filtering repaired", "change", d)
		a.metrics.driftRepairs.WithLabelValues("bridge-filtering").Inc()
	}
	switch {
	case err != nil && err.Error() != a.bridgeProblem:
		a.bridgeProblem = err.Error()
		a.log.Error("flows inside a zone are not enforced", "error", a.bridgeProblem)
		a.status.set(func(s *Status) { s.LastError = a.bridgeProblem })
	case err == nil && a.bridgeProblem != "":
		a.log.Info("bridged traffic passes the firewall again: flows inside a zone are enforced", "was", a.bridgeProblem)
		a.bridgeProblem = ""
	}
}

// reconcileLoop runs one reconcile whenever something is dirty, and a
// full resync every cfg.Resync. Reconciles never overlap: changes that
// arrive during one are taken together by the next.
func (a *Agent) reconcileLoop(ctx context.Context) {
	resync := time.NewTicker(a.cfg.Resync)
	defer resync.Stop()
	retry := time.NewTimer(0)
	<-retry.C
	backoff := 100 * time.Millisecond
	var last time.Time // when the last reconcile started
	a.ensureBridgeFiltering(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		case <-retry.C:
		case <-resync.C:
			a.ensureBridgeFiltering(ctx)
			a.mark(func(d *dirty) { d.full = true })
			<-a.wake
		}
		if wait := a.cfg.MinInterval - time.Since(last); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return
			}
		}
		last = time.Now()
		d, pol, raw := a.take()
		if a.fw.Installed("inet") == nil || a.fw.Installed("bridge") == nil {
			d.full, d.table = true, true
		}
		err := a.reconcile(ctx, d, pol, raw)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.metrics.reconciles.WithLabelValues("error").Inc()
			a.log.Error("reconcile failed; the firewall in force is unchanged, retrying", "error", err.Error(), "in", backoff.String())
			a.status.set(func(s *Status) { s.LastError = err.Error() })
			a.mu.Lock()
			a.dirty.merge(d)
			a.mu.Unlock()
			retry.Reset(backoff)
			backoff = min(2*backoff, 10*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
	}
}

// reconcile brings the kernel from what the applier installed to what
// pol asks on the host as it is now: the policy (inet) and the endpoint
// binding (bridge).
func (a *Agent) reconcile(ctx context.Context, d dirty, pol *policy.Policy, raw []byte) error {
	start := time.Now()
	snap, err := a.host.refresh(ctx, d)
	if err != nil {
		return err
	}
	read := time.Since(start)
	b, _ := model.Bind(pol, snap) // conflicts: those containers are not admitted
	opts := enforce.Options{Table: a.cfg.Table, LogGroup: a.cfg.LogGroup}
	rs := enforce.Compile(b, opts)
	ports := enforce.CompilePorts(b, opts)
	compiled := time.Since(start)
	installed := a.fw.Installed("inet")

	// The binding first: an address the policy table admits is bound to
	// its port from the start, and a freed address stays bound to its
	// old (gone) port until its new one is bound.
	full := d.policy || d.table
	if _, err := a.fw.Apply(ctx, ports, full); err != nil {
		return err
	}
	res, err := a.fw.Apply(ctx, rs, full)
	if err != nil {
		return err
	}
	kind := "incremental"
	if res.Full {
		kind = "full"
	}
	added, removed := res.Added, res.Removed
	if res.Killed > 0 {
		a.log.Info("ended connections the policy no longer allows", "connections", res.Killed)
	}
	if res.ConntrackErr != nil {
		a.log.Warn("cannot end connections the policy no longer allows", "error", res.ConntrackErr.Error())
	}
	took := time.Since(start)
	a.metrics.reconciles.WithLabelValues("ok").Inc()
	a.metrics.reconcileSeconds.WithLabelValues(kind).Observe(took.Seconds())
	a.metrics.lastSync.SetToCurrentTime()

	admitted := a.admitted(rs, installed, d.containers, snap)
	bound, unbound := enforce.BoundPorts(snap)
	a.metrics.boundEndpoints.Set(float64(bound))
	if d.table && installed != nil {
		a.metrics.driftRepairs.WithLabelValues("table").Inc()
		a.log.Warn("zonewarden's table was changed or removed outside the agent: restored", "table", "inet "+a.cfg.Table)
	}
	violations := a.memberships(ctx, b)
	a.flows.setNames(newNamer(b))
	if l := a.learner.Load(); l != nil {
		l.SetHost(snap)
	}
	a.metrics.admittedContainers.Set(float64(len(rs.Elements("admitted4")) + len(rs.Elements("admitted6"))))
	a.status.set(func(s *Status) {
		s.LastSync = time.Now()
		s.LastSyncKind = kind
		s.LastSyncSeconds = took.Seconds()
		s.LastError = ""
		s.Containers = len(snap.Containers)
		s.Admitted = countAdmitted(b)
		s.Elements = rs.Size()
		s.Violations = violations
		s.Unmatched = b.Unmatched()
		s.BoundEndpoints, s.UnboundEndpoints = bound, unbound
		s.Unbound = slices.Clone(a.host.unbound)
		if a.host.portsErr != "" {
			s.Unbound = append(s.Unbound, "cannot read bridge ports: "+a.host.portsErr)
		}
		s.Monitoring = b.Model.Policy().MonitoredZones()
		s.Fenced = nil
		for _, f := range b.Fenced() {
			s.Fenced = append(s.Fenced, f.String())
		}
		s.AdmissionP50Ms, s.AdmissionP99Ms, s.AdmissionSamples = a.latencies.quantiles()
	})
	if kind == "full" || added+removed > 0 {
		a.log.Info("reconciled", "kind", kind, "added", added, "removed", removed, "admitted", admitted,
			"took_ms", ms(took), "read_ms", ms(read), "compile_ms", ms(compiled-read), "load_ms", ms(took-compiled))
	}
	if d.policy || kind == "full" || added+removed > 0 {
		a.saveState(raw, rs)
	}
	return nil
}

// admitted counts the containers this reconcile admitted and records
// their admission latency: from their start (or connect) event to now. A
// container can be admitted before its own event is taken — a list of all
// containers, read for others, already shows it running — and its latency
// is then taken when the event comes: the time from the event to that
// earlier admission, at least 0. A start event taken before its
// container is admitted (the container reader has not read it yet) waits
// in startedAt for that admission.
func (a *Agent) admitted(rs, installed *enforce.Ruleset, changed map[string]time.Time, snap *inventory.Snapshot) int {
	now := time.Now()
	for id, t := range changed {
		if !t.IsZero() {
			a.startedAt[id] = t
		}
	}
	n := 0
	for _, c := range snap.Containers {
		if !c.Running() {
			continue
		}
		t := a.startedAt[c.ID]
		newly := false
		for _, e := range c.Endpoints {
			for _, addr := range []netip.Addr{e.IPv4, e.IPv6} {
				if addr.IsValid() && inSet(rs, addr.String()) && (installed == nil || !inSet(installed, addr.String())) {
					newly = true
				}
			}
		}
		early, wasEarly := a.earlyAdmit[c.ID]
		switch {
		case newly && !t.IsZero():
			delete(a.startedAt, c.ID)
			a.observeAdmission(now.Sub(t))
			if d := now.Sub(t); d > slowAdmission {
				a.log.Info("slow admission: the container was dropped meanwhile", "container", c.Name, "after_ms", ms(d))
			}
		case newly && installed != nil:
			a.earlyAdmit[c.ID] = now
		case wasEarly && !t.IsZero() && early.After(t.Add(-2*time.Second)):
			a.observeAdmission(max(0, early.Sub(t)))
			delete(a.earlyAdmit, c.ID)
			delete(a.startedAt, c.ID)
		}
		if newly {
			n++
			a.metrics.admissions.Inc()
			a.log.Debug("admitted", "container", c.Name, "state", c.State)
		}
	}
	for id, at := range a.earlyAdmit {
		if now.Sub(at) > time.Minute {
			delete(a.earlyAdmit, id) // its event never came
		}
	}
	for id, t := range a.startedAt {
		if now.Sub(t) > time.Minute {
			delete(a.startedAt, id) // admitted before (a restart), or never
		}
	}
	return n
}

// slowAdmission is an admission latency worth a line in the log.
const slowAdmission = 100 * time.Millisecond

func (a *Agent) observeAdmission(d time.Duration) {
	a.metrics.admissionSeconds.Observe(d.Seconds())
	a.latencies.add(d)
}

func inSet(rs *enforce.Ruleset, addr string) bool {
	_, ok4 := rs.ElementComment("admitted4", addr)
	_, ok6 := rs.ElementComment("admitted6", addr)
	return ok4 || ok6
}

// memberships reports (and with EnforceMembership ends) the containers
// connected to a zone their workload may not join. The firewall does not
// admit them there meanwhile.
func (a *Agent) memberships(ctx context.Context, b *model.Binding) []string {
	var out []string
	for _, s := range b.Strays() {
		m := s.Member
		if !m.Container.Running() {
			continue
		}
		v := fmt.Sprintf("%s on zone %s (workload %s may join %s)", m.Container.Name, s.Network, m.Workload.Name, strings.Join(m.Zones, ", "))
		out = append(out, v)
		if !a.cfg.EnforceMembership {
			continue
		}
		if err := a.cfg.Docker.DisconnectNetwork(ctx, s.Network, m.Container.ID); err != nil {
			a.log.Error("cannot disconnect a container from a zone its workload may not join", "container", m.Container.Name, "zone", s.Network, "error", err.Error())
			continue
		}
		a.metrics.membershipRepairs.Inc()
		a.log.Warn("disconnected a container from a zone its workload may not join", "container", m.Container.Name, "zone", s.Network, "workload", m.Workload.Name)
	}
	slices.Sort(out)
	prev := a.status.get().Violations
	for _, v := range out {
		if !slices.Contains(prev, v) && !a.cfg.EnforceMembership {
			a.log.Warn("membership the policy forbids (not admitted there; run with --enforce-membership to disconnect it)", "violation", v)
		}
	}
	a.metrics.membershipViolations.Set(float64(len(out)))
	return out
}

func countAdmitted(b *model.Binding) int {
	n := 0
	for _, m := range b.Containers {
		if m.Workload != nil && m.Container.Running() {
			n++
		}
	}
	return n
}

// saveState records the policy and ruleset in force, off the reconcile
// path: rendering a large ruleset takes a while, and only the latest
// matters.
func (a *Agent) saveState(raw []byte, rs *enforce.Ruleset) {
	if a.cfg.SaveState == nil {
		return
	}
	a.saveMu.Lock()
	pending := a.savePending
	a.savePending = &pendingSave{raw: raw, rs: rs}
	a.saveMu.Unlock()
	if pending != nil {
		return // the running saver picks the latest up
	}
	go func() {
		for first := true; ; first = false {
			if !first {
				// A storm of changes renders the ruleset at most once
				// per saveEvery, off the reconcile path.
				time.Sleep(saveEvery)
			}
			a.saveMu.Lock()
			p := a.savePending
			a.saveMu.Unlock()
			if err := a.cfg.SaveState(a.cfg.PolicyPath, p.raw, p.rs); err != nil {
				a.log.Warn("cannot record the installed policy", "error", err.Error())
			}
			a.saveMu.Lock()
			if a.savePending == p {
				a.savePending = nil
				a.saveMu.Unlock()
				return
			}
			a.saveMu.Unlock()
		}
	}()
}

// saveEvery spaces the records of the installed ruleset.
const saveEvery = 2 * time.Second

type pendingSave struct {
	raw []byte
	rs  *enforce.Ruleset
}

// latencyRing keeps the latest admission latencies, for the percentiles
// in Status (the histogram's buckets are too coarse for them).
type latencyRing struct {
	d    [1024]time.Duration
	n    int // samples so far
	next int
}

func (r *latencyRing) add(d time.Duration) {
	r.d[r.next] = d
	r.next = (r.next + 1) % len(r.d)
	r.n++
}

// quantiles returns the median and 99th percentile in milliseconds, and
// how many samples they come from.
func (r *latencyRing) quantiles() (p50, p99 float64, n int) {
	n = min(r.n, len(r.d))
	if n == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(r.d[:n])
	slices.Sort(s)
	at := func(q float64) float64 { return float64(s[int(q*float64(n-1)+0.5)].Microseconds()) / 1000 }
	return at(0.5), at(0.99), n
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
