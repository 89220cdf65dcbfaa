package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zonewarden/zonewarden/internal/agent"
	"github.com/zonewarden/zonewarden/internal/learn"
	"github.com/zonewarden/zonewarden/internal/probe"
)

// TestAgentMonitorsThenEnforces: with mode: monitor, a flow no rule
// allows (client -> svc:5432) gets through, is logged as would deny with
// its names, and counted in status; the allowed one (svc:80) passes
// unlogged. Switching the policy to enforce (an edit of the file) drops
// it, logged as denied. Throughout, the agent records what it sees
// (--learn): both flows, named, in its flows file.
func TestAgentMonitorsThenEnforces(t *testing.T) {
	h := newZoneHost(t)
	h.learn = filepath.Join(t.TempDir(), "flows.jsonl")
	h.writePolicy(hostPolicy + "mode: monitor\n")
	a := h.startAgent(false)
	id, name, err := h.client(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(port uint16, want probe.Status) func() string {
		return func() string {
			if st, err := h.probe(id, h.svc, port, 300*time.Millisecond); st != want {
				return fmt.Sprintf("%s -> svc:%d is %s (%v), want %s", name, port, st, err, want)
			}
			return ""
		}
	}
	eventually(t, 3*time.Second, dial(80, probe.Open))
	// Monitor mode drops nothing: every try passes, none needs a retry.
	for range 3 {
		if why := dial(5432, probe.Open)(); why != "" {
			t.Fatalf("monitor mode: %s", why)
		}
	}
	c, err := agent.Dial(h.socket)
	if err != nil {
		t.Fatal(err)
	}
	flowsOf := func() []agent.DeniedFlow {
		var got []agent.DeniedFlow
		_ = c.Flows(context.Background(), false, func(fl agent.DeniedFlow) error { got = append(got, fl); return nil })
		return got
	}
	is := func(fl agent.DeniedFlow, port string) bool {
		return fl.From == name && fl.To == h.pre+"svc" && fl.Port == port && fl.FromWorkload == "client" && fl.Zone == h.app && fl.RuleID == "from-zone"
	}
	eventually(t, 3*time.Second, func() string {
		got := flowsOf()
		if !slices.ContainsFunc(got, func(fl agent.DeniedFlow) bool { return is(fl, "5432/tcp") && fl.WouldDeny }) {
			return fmt.Sprintf("no would-deny flow %s -> svc 5432/tcp in %+v", name, got)
		}
		return ""
	})
	for _, fl := range flowsOf() {
		if fl.From != name {
			continue // other tests' tables log to the same nflog group
		}
		if !fl.WouldDeny {
			t.Errorf("monitor mode, yet a flow is logged as denied: %+v", fl)
		}
		if is(fl, "80/tcp") {
			t.Errorf("the allowed flow is logged: %+v", fl)
		}
	}
	if s := a.Status(); !slices.Contains(s.Monitoring, h.app) || !slices.Contains(s.Monitoring, h.data) || s.WouldDeny == 0 {
		t.Errorf("status in monitor mode: monitoring %v, %d would-deny packets", s.Monitoring, s.WouldDeny)
	}

	h.writePolicy(hostPolicy)
	eventually(t, 3*time.Second, dial(5432, probe.Filtered))
	eventually(t, 3*time.Second, func() string {
		if !slices.ContainsFunc(flowsOf(), func(fl agent.DeniedFlow) bool { return is(fl, "5432/tcp") && !fl.WouldDeny }) {
			return "enforce mode: no denied flow " + name + " -> svc 5432/tcp"
		}
		return ""
	})
	if why := dial(80, probe.Open)(); why != "" {
		t.Errorf("enforce mode: %s", why)
	}
	if s := a.Status(); len(s.Monitoring) != 0 {
		t.Errorf("enforce mode, yet status says monitoring %v", s.Monitoring)
	}

	eventually(t, 3*time.Second, func() string {
		f, err := os.Open(h.learn)
		if err != nil {
			return err.Error()
		}
		defer f.Close()
		recs, err := learn.Read(h.learn, f)
		if err != nil {
			return err.Error()
		}
		var got []string
		for _, r := range recs {
			got = append(got, r.String())
		}
		for _, want := range []string{name + " -> " + h.pre + "svc 80/tcp", name + " -> " + h.pre + "svc 5432/tcp"} {
			if !slices.Contains(got, want) {
				return fmt.Sprintf("--learn recorded %s, not %q", strings.Join(got, "; "), want)
			}
		}
		return ""
	})
}
