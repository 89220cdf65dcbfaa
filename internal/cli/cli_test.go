package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/demo"
	"github.com/zonewarden/zonewarden/internal/inventory"
)

// run runs zonewarden with args and returns exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// demoSnapshot writes the embedded demo host to a file and returns its path.
func demoSnapshot(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "host.json")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := inventory.Encode(f, demo.Level0().Snapshot()); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path
}

func TestAuditExitCodes(t *testing.T) {
	snap := demoSnapshot(t)
	clean := filepath.Join(t.TempDir(), "clean.json")
	os.WriteFile(clean, []byte(`{"version": 1, "networks": [{"name": "own", "driver": "bridge", "icc": true}],
	  "containers": [{"name": "c", "state": "running", "endpoints": [{"network": "own"}], "read_only_rootfs": true,
	  "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"]}]}`), 0o644)
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte("{\"version\": 1,\n  \"containers\": [{\"name\": 3}]}"), 0o644)

	tests := []struct {
		name     string
		args     []string
		code     int
		stderrRe string
	}{
		{"findings without fail-on", []string{"audit", "--snapshot", snap}, 0, ""},
		{"fail-on high", []string{"audit", "--snapshot", snap, "--fail-on", "high"}, 1, ""},
		{"clean host passes fail-on info", []string{"audit", "--snapshot", clean, "--fail-on", "info"}, 0, ""},
		{"malformed snapshot", []string{"audit", "--snapshot", bad}, 2, bad + ":2:"},
		{"missing snapshot", []string{"audit", "--snapshot", "/nonexistent/host.json"}, 2, "/nonexistent/host.json"},
		{"unknown format", []string{"audit", "--snapshot", snap, "--format", "xml"}, 2, `unknown --format "xml"`},
		{"unknown severity", []string{"audit", "--snapshot", snap, "--fail-on", "severe"}, 2, "unknown severity"},
		{"unknown rule", []string{"audit", "--snapshot", snap, "--skip", "nope"}, 2, `no rule "nope"`},
		{"unknown flag", []string{"audit", "--colour"}, 2, "unknown flag"},
		{"two sources", []string{"audit", "--snapshot", snap, "-f", "compose.yaml"}, 2, "choose one source"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if tt.stderrRe != "" && !strings.Contains(stderr, tt.stderrRe) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.stderrRe)
			}
			if tt.code == 2 && strings.Count(stderr, "\n") != 1 {
				t.Errorf("want exactly one line on stderr, got %q", stderr)
			}
			if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
				t.Errorf("stack trace on stderr: %s", stderr)
			}
		})
	}
}

func TestAuditFormats(t *testing.T) {
	snap := demoSnapshot(t)
	for _, format := range auditFormats {
		code, out, stderr := run(t, "audit", "--snapshot", snap, "--format", format)
		if code != 0 || out == "" {
			t.Errorf("%s: exit %d, %d bytes, stderr %q", format, code, len(out), stderr)
		}
		if strings.Contains(out, "\033[") {
			t.Errorf("%s: colour codes written to a non-terminal", format)
		}
	}
	_, out, _ := run(t, "audit", "--snapshot", snap, "--format", "json")
	var doc struct {
		Findings []map[string]any `json:"findings"`
		Summary  map[string]any   `json:"summary"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Findings) == 0 || doc.Summary == nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	for _, key := range []string{"rule", "severity", "title", "subject", "evidence", "remediation"} {
		if _, ok := doc.Findings[0][key]; !ok {
			t.Errorf("finding lacks %q: %v", key, doc.Findings[0])
		}
	}
}

// TestDemoOffline: the demo without Docker audits the embedded host and
// shows the seed's mistakes.
func TestDemoOffline(t *testing.T) {
	code, out, stderr := run(t, "demo", "--offline")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"embedded snapshot", "customer-db", "published-bypasses-isolation", "untrusted-shares-data-network", "docker-socket-mounted", "privileged",
		"Blast radius of dev-box", "customer-db (PostgreSQL) in 1 hop: dev-box -> customer-db",
		"After segmenting it (offline", "Not verified: 'zonewarden verify' sends real packets", "If dev-box is compromised now:\n\nBlast radius of dev-box: an attacker who controls it reaches 0 containers."} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	snap := demoSnapshot(t)
	out := filepath.Join(t.TempDir(), "again.json")
	if code, _, stderr := run(t, "snapshot", "--snapshot", snap, "-o", out); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	a, _ := os.ReadFile(snap)
	b, _ := os.ReadFile(out)
	var sa, sb inventory.Snapshot
	json.Unmarshal(a, &sa)
	json.Unmarshal(b, &sb)
	sa.Source, sb.Source = inventory.Source{}, inventory.Source{}
	ja, _ := json.Marshal(sa)
	jb, _ := json.Marshal(sb)
	if !bytes.Equal(ja, jb) {
		t.Error("snapshot of a snapshot differs from it")
	}
}
