package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/policy/synthetic"
)

// seedPolicy is the three-tier policy, kept with the policy
// package's tests.
var seedPolicy = filepath.Join("..", "policy", "testdata", "threetier.yaml")

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const invalidPolicy = `version: 1
zones:
  app: {default: block}
workloads:
  api: {match: {name: api}, zones: [app, dmz]}
flows:
  - {from: api, to: ghost, ports: [80/tcp]}
`

const failingPolicy = `version: 1
zones:
  app: {default: deny}
workloads:
  web: {match: {name: web}, zones: [app]}
  api: {match: {name: api}, zones: [app]}
flows:
  - {from: web, to: api, ports: [8080/tcp]}
tests:
  - {from: web, to: api, port: 8080/tcp, expect: allow}
  - {from: api, to: web, port: 80/tcp, expect: allow}
`

var problemLine = regexp.MustCompile(`^[^:]+:\d+:\d+: \S`)

func TestCheck(t *testing.T) {
	invalid := writeFile(t, "invalid.yaml", invalidPolicy)
	failing := writeFile(t, "failing.yaml", failingPolicy)
	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr []string // substrings, in order
		stderrLines    int      // -1: do not count
	}{
		{"valid with passing tests", []string{"check", seedPolicy}, 0,
			[]string{"threetier.yaml: valid: 4 zones, 5 workloads, 4 flows; 2 tests pass"}, nil, 0},
		{"invalid: every problem, one per line, in file order", []string{"check", invalid}, 2, nil,
			[]string{invalid + `:3:18: default must be allow or deny, not "block"`,
				invalid + `:5:42: workload api joins zone "dmz", which zones does not declare`,
				invalid + `:7:21: to: unknown workload "ghost"`}, 3},
		{"invalid as GitHub annotations", []string{"check", "--format", "github", invalid}, 2,
			[]string{"::error file=" + invalid + ",line=3,col=18::default must be allow or deny", "::error file=" + invalid + ",line=5,col=42::"}, nil, 0},
		{"a failing test", []string{"check", failing}, 1,
			[]string{failing + ":11:5: test failed: api -> web on 80/tcp: expected allow, the policy says deny: no flow from api to web on 80/tcp; zone app is default: deny",
				"1 of 2 tests fail"}, nil, 0},
		{"a failing test as an annotation", []string{"check", failing, "--format=github"}, 1,
			[]string{"::error file=" + failing + ",line=11,col=5::test failed: api -> web"}, nil, 0},
		{"missing file", []string{"check", "/nonexistent/policy.yaml"}, 2, nil,
			[]string{"/nonexistent/policy.yaml: no such file (write a starter policy with 'zonewarden init -o /nonexistent/policy.yaml')"}, 1},
		{"a directory", []string{"check", t.TempDir()}, 2, nil, []string{"cannot read the policy"}, 1},
		{"no argument", []string{"check"}, 2, nil, []string{"name one policy file"}, 1},
		{"two arguments", []string{"check", seedPolicy, seedPolicy}, 2, nil, []string{"name one policy file"}, 1},
		{"unknown format", []string{"check", "--format", "sarif", seedPolicy}, 2, nil, []string{`unknown --format "sarif"`}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			inOrder(t, "stdout", stdout, tt.stdout)
			inOrder(t, "stderr", stderr, tt.stderr)
			if tt.stderrLines >= 0 && strings.Count(stderr, "\n") != tt.stderrLines {
				t.Errorf("%d lines on stderr, want %d:\n%s", strings.Count(stderr, "\n"), tt.stderrLines, stderr)
			}
			if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
				t.Errorf("stack trace on stderr: %s", stderr)
			}
		})
	}
	// Every line of an invalid policy's report is file:line:col: message.
	_, _, stderr := run(t, "check", invalid)
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if !problemLine.MatchString(l) {
			t.Errorf("not file:line:col: message: %q", l)
		}
	}
}

func inOrder(t *testing.T, what, got string, want []string) {
	t.Helper()
	rest := got
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Errorf("%s lacks (in order) %q:\n%s", what, w, got)
			return
		}
		rest = rest[i+len(w):]
	}
}

// composeFile is a compose file of testdata/compose.
func composeFile(p string) string { return filepath.Join("..", "..", "testdata", "compose", p) }

// TestInitPassesCheck: init on the demo host and on the compose projects
// of testdata writes a policy that check accepts, with its tests passing.
func TestInitPassesCheck(t *testing.T) {
	sources := map[string][]string{
		"demo":      {"--snapshot", demoSnapshot(t)},
		"threetier": {"-f", composeFile("threetier/compose.yaml")},
		"hostnet":   {"-f", composeFile("hostnet/compose.yaml")},
		"merged":    {"-f", composeFile("merged/compose.yaml"), "-f", composeFile("merged/compose.prod.yaml")},
		"edge":      {"-f", composeFile("shared/edge/compose.yaml")},
		"billing":   {"-f", composeFile("shared/billing/compose.yaml")},
		"evidence":  {"-f", composeFile("evidence/compose.yaml")},
	}
	for name, src := range sources {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "policy.yaml")
			code, stdout, stderr := run(t, append([]string{"init", "-o", out}, src...)...)
			if code != 0 {
				t.Fatalf("init: exit %d: %s", code, stderr)
			}
			inOrder(t, "stdout", stdout, []string{"wrote " + out + ": ", "zone", "workload", "next: review the", "zonewarden check " + out})
			code, stdout, stderr = run(t, "check", out)
			if code != 0 {
				data, _ := os.ReadFile(out)
				t.Fatalf("check of the draft: exit %d\n%s%s\n%s", code, stdout, stderr, data)
			}
			// Without -o the same policy goes to standard output.
			code, printed, _ := run(t, append([]string{"init"}, src...)...)
			data, _ := os.ReadFile(out)
			if code != 0 || printed != string(data) {
				t.Errorf("init to stdout differs from init -o (exit %d)", code)
			}
		})
	}
}

// TestInitNamesComposeEvidence: init from a compose file proposes the
// connections its services declare (depends_on, host names in their
// environment), on the ports named there or the image's default, and says
// why in each flow's comment; the credentials in those values do not
// appear.
func TestInitNamesComposeEvidence(t *testing.T) {
	code, out, stderr := run(t, "init", "-f", filepath.Join("..", "..", "testdata", "compose", "evidence", "compose.yaml"))
	if code != 0 {
		t.Fatalf("init: exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"evidence: depends_on; environment DATABASE_URL (db:3306)",
		"evidence: depends_on; environment REDIS_URL",
		"6379/tcp: Redis's default port (cache declares none)",
		"evidence: environment API_URL (backend:8000)",
		"evidence: environment REDIS_HOST",
		"evidence: config ./nginx/default.conf (backend:8000)", // an upstream server
		"evidence: config ./nginx/default.conf (assets:8080)",  // a proxy_pass
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the draft does not say %q:\n%s", want, out)
		}
	}
	// A pair the files do not connect is left to the operator.
	if strings.Contains(out, "{from: proxy, to: db") || !strings.Contains(out, "#   proxy -> db (zone evidence_default)") {
		t.Errorf("proxy -> db, which nothing declares, is proposed or not listed as decide:\n%s", out)
	}
	if strings.Contains(out, "{from: db, to:") {
		t.Errorf("the database is proposed as a client without evidence:\n%s", out)
	}
	if strings.Contains(out, "change-me") {
		t.Errorf("the draft shows a password from the environment:\n%s", out)
	}
}

func TestInitDemo(t *testing.T) {
	_, out, _ := run(t, "init", "--snapshot", demoSnapshot(t))
	for _, want := range []string{
		"version: 1",
		"shop-prod: {default: deny}",
		"shop-sessions: {internal: true, default: deny}",
		"# Holds customer-db (PostgreSQL)",
		"legacy-bridge: {default: allow}",
		"customer-db:\n    match: {compose: {project: shop, service: db}}",
		"# decide: it publishes 15432:5432/tcp (PostgreSQL) on every host address",
		"- {from: shop-api, to: customer-db, ports: [5432/tcp]}",
		"# decide: staging-api is untrusted",
		"- {from: dev-box, to: customer-db, port: 5432/tcp, expect: deny}",
		"metrics-agent (uses the host's network namespace)",
		"unmanaged: warn",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("init output lacks %q", want)
		}
	}
}

func TestInitRefusesToOverwrite(t *testing.T) {
	snap := demoSnapshot(t)
	out := writeFile(t, "policy.yaml", "# mine\n")
	code, _, stderr := run(t, "init", "--snapshot", snap, "-o", out)
	if code != 2 || !strings.Contains(stderr, out+" exists: use --force to overwrite it") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if data, _ := os.ReadFile(out); string(data) != "# mine\n" {
		t.Errorf("the file was changed: %q", data)
	}
	if code, _, stderr := run(t, "init", "--snapshot", snap, "-o", out, "--force"); code != 0 {
		t.Fatalf("--force: exit %d: %s", code, stderr)
	}
	if data, _ := os.ReadFile(out); !strings.HasPrefix(string(data), "# zonewarden policy") {
		t.Errorf("--force did not write the policy: %.60q", data)
	}
	for _, args := range [][]string{
		{"init", "--snapshot", "/nonexistent/host.json"},
		{"init", "-f", filepath.Join("..", "..", "testdata", "compose", "broken", "unknown.yaml")},
		{"init", "--snapshot", snap, "-o", filepath.Join(t.TempDir(), "no", "such", "dir", "p.yaml")},
		{"init", "extra"},
	} {
		if code, _, stderr := run(t, args...); code != 2 || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line", args, code, stderr)
		}
	}
}

// BenchmarkCheckCommand runs 'zonewarden check' end to end (read the file,
// parse, validate, compile, run the tests) on a generated policy of 10,000
// workloads, 1,000 zones, 100,000 flows and 10,000 tests. The bar is 1 s.
func BenchmarkCheckCommand(b *testing.B) {
	path := filepath.Join(b.TempDir(), "big.yaml")
	if err := os.WriteFile(path, policy.Format(synthetic.Policy(10_000, 1_000, 100_000, 10_000, 1)), 0o644); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		var stdout, stderr bytes.Buffer
		if code := Main(context.Background(), []string{"check", path}, &stdout, &stderr); code != 0 {
			b.Fatalf("exit %d: %s%s", code, stdout.String(), stderr.String())
		}
	}
}

// TestAuditStack audits a docker stack file without a Swarm: the data
// service it publishes through the routing mesh is found, and the
// encrypted overlay it sits on is not taken for a plain one.
func TestAuditStack(t *testing.T) {
	code, out, stderr := run(t, "audit", "-f", composeFile("stack/stack.yaml"), "--stack", "-p", "shop", "--format", "json")
	if code > 1 {
		t.Fatalf("audit --stack: exit %d\n%s%s", code, out, stderr)
	}
	if !strings.Contains(out, `"rule": "swarm-data-routing-mesh"`) || !strings.Contains(out, `"name": "shop_db"`) {
		t.Errorf("audit --stack does not find shop_db published through the routing mesh:\n%s", out)
	}
	if strings.Contains(out, `"rule": "swarm-data-unencrypted"`) {
		t.Errorf("audit --stack takes the encrypted overlay for a plain one:\n%s", out)
	}
	if code, _, stderr := run(t, "audit", "--stack"); code == 0 || !strings.Contains(stderr, "give them with -f") {
		t.Errorf("--stack without -f: exit %d: %s", code, stderr)
	}
}
