package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/zonewarden/zonewarden/internal/policy"
)

// readPolicy reads and validates the policy file.
func readPolicy(path string) (*policy.Policy, []byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read the policy: %w", err)
	}
	p, err := policy.Parse(path, raw, policy.Options{})
	if err != nil {
		var perr *policy.Error
		if errors.As(err, &perr) {
			var b strings.Builder
			perr.WriteText(&b)
			return nil, nil, fmt.Errorf("the policy %s is invalid:\n%s", path, strings.TrimRight(b.String(), "\n"))
		}
		return nil, nil, err
	}
	return p, raw, nil
}

// Reload asks the agent to read the policy file again now (SIGHUP).
func (a *Agent) Reload() {
	select {
	case a.reload <- struct{}{}:
	default:
	}
}

// watchPolicy reloads the policy file when it changes (checked every
// cfg.PolicyPoll: modification time, size, then contents) or on Reload.
// An invalid file is rejected with its problems logged, and the policy in
// force stays.
func (a *Agent) watchPolicy(ctx context.Context) {
	tick := time.NewTicker(a.cfg.PolicyPoll)
	defer tick.Stop()
	last, _ := os.Stat(a.cfg.PolicyPath)
	for {
		forced := false
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-a.reload:
			forced = true
		}
		st, err := os.Stat(a.cfg.PolicyPath)
		if err == nil && last != nil && !forced && st.ModTime().Equal(last.ModTime()) && st.Size() == last.Size() {
			continue
		}
		last = st
		a.reloadPolicy()
	}
}

func (a *Agent) reloadPolicy() {
	p, raw, err := readPolicy(a.cfg.PolicyPath)
	a.mu.Lock()
	same := err == nil && bytes.Equal(raw, a.polRaw)
	a.mu.Unlock()
	if err != nil {
		// Said once per distinct problem: a file that stays broken (or
		// gone) is not logged at every poll.
		if a.status.get().PolicyError != err.Error() {
			a.metrics.policyReloads.WithLabelValues("invalid").Inc()
			a.log.Error("policy change rejected; the previous policy stays in force", "policy", a.cfg.PolicyPath, "error", err.Error())
		}
		a.status.set(func(s *Status) { s.PolicyError = err.Error() })
		return
	}
	a.status.set(func(s *Status) { s.PolicyError = "" })
	if same {
		return
	}
	a.metrics.policyReloads.WithLabelValues("ok").Inc()
	a.log.Info("policy reloaded", "policy", a.cfg.PolicyPath)
	a.mark(func(d *dirty) {
		a.pol, a.polRaw = p, raw
		d.policy = true
	})
}
