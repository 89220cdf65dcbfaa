package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/nft"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/reach"
	"github.com/zonewarden/zonewarden/internal/testenv"
	"github.com/zonewarden/zonewarden/internal/truth"
)

// TestApplySegmentsAFlatHost builds the seed's "bad" host on the real
// engine — every tier on one network — and applies the seed's three-tier
// policy: plan shows the segmentation, apply makes it and loads the
// firewall, a second plan and a second apply change nothing, real packets
// show that frontend no longer reaches the database tier while api does —
// on its declared port only — and after reset Docker's behaviour is back.
func TestApplySegmentsAFlatHost(t *testing.T) {
	env := truth.Build(t, truth.Scenario{
		Networks: []truth.Network{{Name: "flat"}},
		Containers: []truth.Container{
			{Name: "lb", Networks: []string{"flat"}, Publish: []truth.Publish{{HostPort: 28943, Port: 443}}},
			{Name: "frontend", Networks: []string{"flat"}},
			{Name: "api", Networks: []string{"flat"}},
			{Name: "postgres", Networks: []string{"flat"}},
			{Name: "cache", Networks: []string{"flat"}},
		},
	})
	before := env.Observe(t)
	assertReach(t, before, "frontend -> postgres:5432/tcp yes", "api -> postgres:5432/tcp yes")
	// An attacker's session from frontend to the database, open before
	// apply: the policy forbids it, so apply must end it.
	session := env.Hold(t, "frontend", "postgres", 7777)

	pre := testenv.Prefixed(env.RunID, "")
	policyPath := filepath.Join(t.TempDir(), "zones.yaml")
	os.WriteFile(policyPath, []byte(strings.ReplaceAll(`version: 1
zones:
  P-public-dmz:       {default: deny}
  P-application-tier: {default: deny}
  P-database-tier:    {internal: true, default: deny}
workloads:
  lb:       {match: {name: P-lb}, zones: [P-public-dmz], publish: ["443/tcp"]}
  frontend: {match: {name: P-frontend}, zones: [P-public-dmz, P-application-tier]}
  api:      {match: {name: P-api}, zones: [P-application-tier, P-database-tier]}
  postgres: {match: {name: P-postgres}, zones: [P-database-tier]}
  cache:    {match: {name: P-cache}, zones: [P-database-tier]}
flows:
  - {from: lb,       to: frontend, ports: [80/tcp]}
  - {from: frontend, to: api,      ports: [80/tcp]}
  - {from: api,      to: postgres, ports: [5432/tcp]}
  - {from: api,      to: cache,    ports: [53/udp]}
unmanaged: warn
`, "P-", pre)), 0o644)
	t.Cleanup(func() {
		if code, out, stderr := run(t, "reset"); code != 0 {
			t.Errorf("reset: exit %d: %s%s", code, out, stderr)
		}
	})

	t.Setenv("ZONEWARDEN_STATE_DIR", t.TempDir())
	code, out, stderr := run(t, "plan", policyPath)
	if code != 1 {
		t.Fatalf("plan exit %d, want 1: %s\n%s", code, stderr, out)
	}
	for _, want := range []string{"+ table inet zonewarden", "+ " + pre + "database-tier (internal)", "+ " + pre + "api -> " + pre + "database-tier", "- " + pre + "frontend from " + pre + "flat"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	// Another tool's table, which apply and reset must leave as it is.
	ctx := context.Background()
	foreign := "zwforeign_" + env.RunID
	if err := nft.Apply(ctx, "table inet "+foreign+" {\n\tset keep { type ipv4_addr; elements = { 198.18.0.9 } }\n\tchain input { type filter hook input priority 10; policy accept; ip saddr @keep counter accept; }\n}\n"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nft.Delete(ctx, "inet", foreign) })
	foreignBefore, _ := nft.List(ctx, "inet", foreign)

	label := "--label=" + testenv.Label + "=" + env.RunID
	if code, out, stderr := run(t, "apply", policyPath, label); code != 0 {
		t.Fatalf("apply exit %d: %s\n%s", code, stderr, out)
	}
	// Plan after apply finds nothing to change. Other tests create and
	// remove networks on this daemon meanwhile, and the table holds the
	// subnets of every Docker network (local4/6): a difference there alone
	// is theirs, so apply and plan again, a few times at most.
	for attempt := 1; ; attempt++ {
		code, out, stderr := run(t, "plan", policyPath)
		if code == 0 && strings.Contains(out, "Nothing to change") && strings.Contains(out, "= table inet zonewarden matches the policy") {
			break
		}
		if attempt == 3 || !onlyLocalSubnetsDiffer(out) {
			t.Errorf("plan after apply (attempt %d): exit %d, %s%s", attempt, code, out, stderr)
			break
		}
		t.Logf("plan after apply: only the subnets of other networks changed meanwhile; applying again:\n%s", out)
		if code, out, stderr := run(t, "apply", policyPath, label); code != 0 {
			t.Fatalf("apply exit %d: %s\n%s", code, stderr, out)
		}
	}
	if code, out, _ := run(t, "apply", policyPath, label); code != 0 || !strings.Contains(out, "Docker: nothing to change") {
		t.Errorf("second apply: exit %d, %s", code, out)
	}

	if session.Alive(time.Second) {
		t.Error("a connection frontend -> postgres opened before apply survives it")
	}

	env.Refresh(t)
	after := env.Observe(t)
	assertReach(t, after,
		"frontend -> postgres:5432/tcp no",
		"frontend -> cache:5432/tcp no",
		"api -> postgres:5432/tcp yes",
		"api -> postgres:80/tcp no", // the firewall: port level inside the zone
		"api -> cache:53/udp yes",
		"api -> cache:80/tcp no",
		"frontend -> api:80/tcp yes",
		"frontend -> api:5432/tcp no",
		"lb -> frontend:80/tcp yes",
		"lb -> api:80/tcp no",
		"postgres -> internet:80/tcp no",
	)
	// The model of the enforced host agrees with the packets on every
	// pair and port. (The host's own listeners stay on the gateways of
	// Build, so paths to the host through the new zones' gateways are not
	// compared.)
	// The scenario's snapshot names things without the run prefix.
	p, err := policy.Parse(policyPath, []byte(strings.ReplaceAll(string(mustRead(t, policyPath)), pre, "")), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := model.Bind(p, env.Snapshot())
	for _, m := range truth.Compare(after, env.EnforcedModel(b)) {
		if m.To != reach.Host {
			t.Errorf("%s", m)
		}
	}

	// reach and blast-radius follow the firewall (--ignore-firewall: Docker alone).
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"reach", "--eval", pre + "api", pre + "postgres", "5432/tcp"}, 0},
		{[]string{"reach", "--eval", pre + "api", pre + "postgres", "80/tcp"}, 1},
		{[]string{"reach", "--eval", pre + "api", pre + "postgres", "80/tcp", "--ignore-firewall"}, 0},
		{[]string{"reach", "--eval", pre + "lb", pre + "api", "80/tcp"}, 1},
	} {
		if code, out, stderr := run(t, tc.args...); code != tc.code {
			t.Errorf("%v: exit %d, want %d: %s%s", tc.args, code, tc.code, out, stderr)
		}
	}
	if _, out, stderr := run(t, "blast-radius", pre+"lb"); !strings.Contains(out, "reaches 4 containers") || !strings.Contains(out, pre+"api -> "+pre+"postgres") || !strings.Contains(stderr, "following the firewall") {
		t.Errorf("blast-radius of lb with the firewall: %s%s", out, stderr)
	}

	// status: the applied policy, our five containers admitted, drop
	// counters. (Other tests' networks come and go on this daemon, so
	// whether it reports drift is not asserted here; TestDiff* covers it.)
	_, out, _ = run(t, "status")
	for _, want := range []string{"Table inet zonewarden is installed", "Applied from " + policyPath, "no flow allows it"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	for _, name := range []string{"lb", "frontend", "api", "postgres", "cache"} {
		if !strings.Contains(out, pre+name) {
			t.Errorf("status does not list %s as admitted:\n%s", pre+name, out)
		}
	}
	if code, out, _ := run(t, "reset"); code != 0 || !strings.Contains(out, "Removed table inet zonewarden") {
		t.Errorf("reset: exit %d: %s", code, out)
	}
	env.Refresh(t)
	assertReach(t, env.Observe(t), "api -> postgres:80/tcp yes", "frontend -> api:5432/tcp yes")
	if after, _ := nft.List(ctx, "inet", foreign); after != foreignBefore {
		t.Errorf("another tool's table changed:\nbefore:\n%s\nafter:\n%s", foreignBefore, after)
	}
}

// onlyLocalSubnetsDiffer reports whether a plan's only changes are
// elements of the sets of every Docker network's subnets (local4, local6)
// and nothing on the Docker side.
func onlyLocalSubnetsDiffer(plan string) bool {
	if !strings.Contains(plan, "Plan: 0 networks to create, 0 networks to re-create, 0 memberships to add, 0 memberships to remove") {
		return false
	}
	changed := 0
	for _, l := range strings.Split(plan, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "+ ") || strings.HasPrefix(l, "- ") {
			if !strings.HasPrefix(l[2:], "local4: ") && !strings.HasPrefix(l[2:], "local6: ") {
				return false
			}
			changed++
		}
	}
	return changed > 0
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// assertReach checks "a -> b:port yes|no" lines against an observation.
func assertReach(t *testing.T, m *truth.Matrix, want ...string) {
	t.Helper()
	for _, w := range want {
		var from, arrow, target, verdict string
		fmt.Sscan(w, &from, &arrow, &target, &verdict)
		to, portText, _ := strings.Cut(target, ":")
		port, err := l4.ParsePort(portText)
		if err != nil {
			t.Fatalf("bad expectation %q", w)
		}
		o, ok := m.Get(from, to, port)
		if !ok {
			t.Errorf("%s: not probed", w)
			continue
		}
		if o.Reached != (verdict == "yes") {
			t.Errorf("%s: reached=%v; probes: %v", w, o.Reached, o.Attempts)
		}
	}
}

// TestApplyTurnsBridgeFilteringOn: with net.bridge.bridge-nf-call-iptables
// at 0, bridged frames between containers of one network skip the inet
// hooks, so a port-level flow inside a zone would not hold. apply sets it
// back to 1, says so, and the zone is filtered port by port. (The sysctl
// is the host's: the test needs the host alone.)
func TestApplyTurnsBridgeFilteringOn(t *testing.T) {
	testenv.RequireAlone(t, "turns the host's bridge-nf-call-iptables off for a while")
	const key = "/proc/sys/net/bridge/bridge-nf-call-iptables"
	old, err := os.ReadFile(key)
	if err != nil {
		t.Fatalf("br_netfilter: %v", err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(key, old, 0o644); err != nil {
			t.Errorf("restoring %s: %v", key, err)
		}
	})
	env := truth.Build(t, truth.Scenario{
		Networks:   []truth.Network{{Name: "one"}},
		Containers: []truth.Container{{Name: "a", Networks: []string{"one"}}, {Name: "b", Networks: []string{"one"}}},
	})
	if err := os.WriteFile(key, []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pre := testenv.Prefixed(env.RunID, "")
	policyPath := filepath.Join(t.TempDir(), "zones.yaml")
	os.WriteFile(policyPath, []byte(strings.ReplaceAll(`version: 1
zones:
  P-one: {default: deny}
workloads:
  a: {match: {name: P-a}, zones: [P-one]}
  b: {match: {name: P-b}, zones: [P-one]}
flows:
  - {from: a, to: b, ports: [80/tcp]}
`, "P-", pre)), 0o644)
	t.Setenv("ZONEWARDEN_STATE_DIR", t.TempDir())
	t.Cleanup(func() {
		if code, out, stderr := run(t, "reset"); code != 0 {
			t.Errorf("reset: exit %d: %s%s", code, out, stderr)
		}
	})
	if code, out, _ := run(t, "apply", "--dry-run", policyPath); code != 0 || !strings.Contains(out, "Host: apply would set net.bridge.bridge-nf-call-iptables=1") {
		t.Errorf("apply --dry-run: exit %d, no word of the sysctl:\n%s", code, out)
	}
	code, out, stderr := run(t, "apply", policyPath, "--label="+testenv.Label+"="+env.RunID)
	if code != 0 {
		t.Fatalf("apply exit %d: %s\n%s", code, stderr, out)
	}
	if !strings.Contains(out, "Host: set net.bridge.bridge-nf-call-iptables=1") {
		t.Errorf("apply did not say it turned bridge filtering on:\n%s", out)
	}
	if v, _ := os.ReadFile(key); strings.TrimSpace(string(v)) != "1" {
		t.Fatalf("bridge-nf-call-iptables = %q after apply, want 1", v)
	}
	assertReach(t, env.Observe(t), "a -> b:80/tcp yes", "a -> b:5432/tcp no", "b -> a:80/tcp no")
}
