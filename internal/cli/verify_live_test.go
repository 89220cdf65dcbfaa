package cli

import (
	"context"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/firewall"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/nft"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/testenv"
	"github.com/zonewarden/zonewarden/internal/truth"
)

// TestVerify probes a real host: as Docker leaves it, every probe agrees
// with the model; with a ruleset that cuts api off from the database
// (loaded behind verify's back), verify fails and names the flow; JUnit
// output parses.
func TestVerify(t *testing.T) {
	t.Setenv("ZONEWARDEN_STATE_DIR", t.TempDir())
	env := truth.Build(t, truth.Scenario{
		Networks: []truth.Network{{Name: "app"}, {Name: "db", Internal: true}},
		Containers: []truth.Container{
			{Name: "web", Networks: []string{"app"}, Publish: []truth.Publish{{HostPort: 28981, Port: 8080}}},
			{Name: "api", Networks: []string{"app", "db"}},
			{Name: "pg", Networks: []string{"db"}},
		},
	})
	label := "--label=" + testenv.Label + "=" + env.RunID
	pre := testenv.Prefixed(env.RunID, "")
	code, out, stderr := run(t, "verify", label)
	if code != 0 || !strings.Contains(out, "0 mismatches") {
		t.Fatalf("verify of an unenforced host: exit %d\n%s%s", code, out, stderr)
	}
	if !strings.Contains(out, "ok   "+pre+"web -> "+pre+"pg:80/tcp expected=deny observed=blocked") {
		t.Errorf("verify does not show the isolation it probed:\n%s", out)
	}

	// A firewall the model does not know about: api may not reach pg.
	p, err := policy.Parse("cut.yaml", []byte(strings.ReplaceAll(`version: 1
zones:
  P-db: {default: deny}
workloads:
  api: {match: {name: P-api}, zones: [P-db]}
  pg:  {match: {name: P-pg},  zones: [P-db]}
unmanaged: warn
`, "P-", pre)), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	snap := env.Snapshot()
	for i := range snap.Containers { // the live names
		snap.Containers[i].Name = pre + snap.Containers[i].Name
		for j := range snap.Containers[i].Endpoints {
			snap.Containers[i].Endpoints[j].Network = pre + snap.Containers[i].Endpoints[j].Network
		}
	}
	for i := range snap.Networks {
		if !snap.Networks[i].IsBuiltin() {
			snap.Networks[i].Name = pre + snap.Networks[i].Name
		}
	}
	b, _ := model.Bind(p, snap)
	table := "zwtest_verify_" + env.RunID
	rs := enforce.Compile(b, enforce.Options{Table: table})
	t.Cleanup(func() { nft.Delete(context.Background(), "inet", table) })
	if _, err := firewall.Load(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	code, out, _ = run(t, "verify", label)
	if code != 1 || !strings.Contains(out, "FAIL "+pre+"api -> "+pre+"pg:80/tcp expected=allow observed=blocked") {
		t.Errorf("verify with a hidden firewall: exit %d\n%s", code, out)
	}
	// With the policy as the expectation, everything matches again.
	policyFile := writeFile(t, "cut.yaml", string(policy.Format(p)))
	if code, out, _ := run(t, "verify", policyFile, label); code != 0 {
		t.Errorf("verify against the policy in force: exit %d\n%s", code, out)
	}
	_, out, _ = run(t, "verify", label, "--format", "junit")
	var suite struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
	}
	if err := xml.Unmarshal([]byte(out), &suite); err != nil || suite.Tests == 0 || suite.Failures == 0 {
		t.Errorf("junit: %v %+v\n%s", err, suite, out)
	}
}
