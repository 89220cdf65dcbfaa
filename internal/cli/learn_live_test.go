package cli

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/learn"
	"github.com/zonewarden/zonewarden/internal/testenv"
	"github.com/zonewarden/zonewarden/internal/truth"
)

// TestLearnDraftApplyVerify: a live host runs scripted traffic among its
// containers (web -> api:80/tcp, api -> db:5432/tcp, api -> cache:53/udp;
// tool only listens) while learn records; init --from-flows drafts the
// policy that keeps exactly those; apply enforces it; verify passes, and
// the packets agree: every observed flow works, and every other pair of
// containers on every listening port is denied. A scan (tool -> api on a
// closed port) is recorded but, never answered, gets no flow. plan --flows lists a
// recorded flow the policy would break, and none of the kept ones. In
// monitor mode the same policy lets the unobserved flow through and
// status counts it; enforce mode blocks it again.
func TestLearnDraftApplyVerify(t *testing.T) {
	t.Setenv("ZONEWARDEN_STATE_DIR", t.TempDir())
	env := truth.Build(t, truth.Scenario{
		Networks: []truth.Network{{Name: "app"}, {Name: "data"}},
		Containers: []truth.Container{
			{Name: "web", Networks: []string{"app"}},
			{Name: "api", Networks: []string{"app", "data"}},
			{Name: "db", Networks: []string{"data"}},
			{Name: "cache", Networks: []string{"data"}},
			{Name: "tool", Networks: []string{"app"}},
		},
	})
	pre := testenv.Prefixed(env.RunID, "")
	label := testenv.Label + "=" + env.RunID
	dir := t.TempDir()
	flows := filepath.Join(dir, "flows.jsonl")

	var stderr testenv.Buffer
	a := &app{stdout: io.Discard, stderr: &stderr}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.learn(ctx, flows, 100*time.Millisecond, true) }()
	t.Cleanup(cancel)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "Learning the connections") {
		if time.Now().After(deadline) {
			t.Fatalf("learn did not start: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	tcp80, pg, dns := l4.Port{Proto: "tcp", Number: 80}, l4.Port{Proto: "tcp", Number: 5432}, l4.Port{Proto: "udp", Number: 53}
	script := []struct {
		from, to string
		port     l4.Port
	}{{"web", "api", tcp80}, {"api", "db", pg}, {"api", "cache", dns}}
	observed := map[truth.Key]bool{}
	var want []string
	for _, s := range script {
		for range 2 {
			if !env.Connect(t, s.from, s.to, s.port) {
				t.Fatalf("scripted traffic: %s cannot reach %s on %s", s.from, s.to, s.port)
			}
		}
		observed[truth.Key{From: s.from, To: s.to, Port: s.port}] = true
		want = append(want, pre+s.from+" -> "+pre+s.to+" "+s.port.String())
	}
	// tool scans api on a port nothing listens on: tried, never answered.
	scan := l4.Port{Proto: "tcp", Number: 9999}
	if env.Connect(t, "tool", "api", scan) {
		t.Fatal("tool reached api on 9999/tcp, where nothing listens")
	}
	want = append(want, pre+"tool -> "+pre+"api 9999/tcp")
	// Each flow's records reach the file within a flush or two.
	deadline = time.Now().Add(10 * time.Second)
	for {
		got := recordedFlows(t, flows)
		missing := slices.DeleteFunc(slices.Clone(want), func(w string) bool { return slices.Contains(got, w) })
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("learn recorded %v; missing %v", got, missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("learn: %v\n%s", err, stderr.String())
	}

	policyPath := filepath.Join(dir, "zones.yaml")
	if code, out, errOut := run(t, "init", "--label", label, "--from-flows", flows, "-o", policyPath); code != 0 {
		t.Fatalf("init --from-flows: exit %d: %s%s", code, out, errOut)
	}
	drafted := string(mustRead(t, policyPath))
	if n := strings.Count(drafted, "\n  - {from: "); n != len(script) {
		t.Errorf("the draft has %d flows, want the %d observed and answered:\n%s", n, len(script), drafted)
	}
	if !strings.Contains(drafted, "never answered") || !strings.Contains(drafted, pre+"tool -> "+pre+"api 9999/tcp (1 tries)") {
		t.Errorf("the draft does not list tool's unanswered try:\n%s", drafted)
	}

	t.Cleanup(func() {
		if code, out, errOut := run(t, "reset"); code != 0 {
			t.Errorf("reset: exit %d: %s%s", code, out, errOut)
		}
	})
	if code, out, errOut := run(t, "apply", policyPath, "--label="+label); code != 0 {
		t.Fatalf("apply exit %d: %s\n%s\npolicy:\n%s", code, errOut, out, drafted)
	}
	if code, out, errOut := run(t, "verify", policyPath, "--label", label); code != 0 {
		t.Errorf("verify after apply: exit %d\n%s%s\npolicy:\n%s", code, out, errOut, drafted)
	}
	env.Refresh(t)
	after := env.Observe(t)
	containers := map[string]bool{"web": true, "api": true, "db": true, "cache": true, "tool": true}
	denied := 0
	for _, o := range after.Observations() {
		if !containers[o.From] || !containers[o.To] {
			continue
		}
		switch {
		case observed[o.Key] && !o.Reached:
			t.Errorf("%s was observed, yet it is blocked after apply: %v", o.Key, o.Attempts)
		case !observed[o.Key] && o.Reached:
			t.Errorf("%s was not observed, yet it passes after apply (via %v)", o.Key, o.Via)
		case !o.Reached:
			denied++
		}
	}
	t.Logf("%d unobserved keys denied; the draft:\n%s", denied, drafted)
	if denied < 20 {
		t.Errorf("only %d unobserved keys probed", denied)
	}

	// plan --flows: the kept flows are kept; one recorded elsewhere is
	// broken, with its reason.
	extra := filepath.Join(dir, "more.jsonl")
	data := mustRead(t, flows)
	f, err := os.Create(extra)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(data)
	learn.Write(f, []learn.Record{{From: learn.Peer{Kind: learn.KindContainer, Container: pre + "tool"},
		To: learn.Peer{Kind: learn.KindContainer, Container: pre + "api"}, Proto: "tcp", Port: 80, Count: 4, Answered: 4, First: time.Now(), Last: time.Now()}})
	f.Close()
	if code, out, _ := run(t, "plan", policyPath, "--flows", flows); !strings.Contains(out, "= the policy keeps all") {
		t.Errorf("plan --flows with the recorded flows: exit %d:\n%s", code, out)
	}
	code, out, _ := run(t, "plan", policyPath, "--flows", extra)
	if code != 1 || !strings.Contains(out, "x "+pre+"tool -> "+pre+"api 80/tcp (4 connections") || strings.Contains(out, "x "+pre+"web") {
		t.Errorf("plan --flows with an unkept flow: exit %d:\n%s", code, out)
	}

	// The same policy in monitor mode: the unobserved flow passes, and
	// status counts it as would deny; plan marks it ~; back in enforce
	// mode it is blocked again.
	monitorPath := filepath.Join(dir, "monitor.yaml")
	if err := os.WriteFile(monitorPath, append(mustRead(t, policyPath), "mode: monitor\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := run(t, "apply", monitorPath, "--label="+label); code != 0 || !strings.Contains(out, "monitor mode in "+pre+"app, "+pre+"data") {
		t.Fatalf("apply in monitor mode: exit %d: %s%s", code, out, errOut)
	}
	if !env.Connect(t, "tool", "api", tcp80) {
		t.Error("monitor mode: tool -> api:80/tcp is blocked")
	}
	if _, out, _ := run(t, "status"); !strings.Contains(out, "Would deny (monitor mode") || !regexp.MustCompile(`\s[1-9]\d* packets  from a zone: no flow allows it`).MatchString(out[strings.Index(out, "Would deny"):]) {
		t.Errorf("status in monitor mode does not count the would-deny packets:\n%s", out)
	}
	if _, out, _ := run(t, "plan", monitorPath, "--flows", extra); !strings.Contains(out, "~ "+pre+"tool -> "+pre+"api 80/tcp") {
		t.Errorf("plan --flows in monitor mode does not mark the flow as monitored:\n%s", out)
	}
	if code, out, errOut := run(t, "apply", policyPath, "--label="+label); code != 0 {
		t.Fatalf("apply back in enforce mode: exit %d: %s%s", code, out, errOut)
	}
	if env.Connect(t, "tool", "api", tcp80) {
		t.Error("enforce mode again: tool -> api:80/tcp passes")
	}
}

// recordedFlows reads a flows file, as "from -> to port" lines.
func recordedFlows(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := learn.Read(path, f)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.From.String()+" -> "+r.To.String()+" "+r.PortString())
	}
	return out
}
