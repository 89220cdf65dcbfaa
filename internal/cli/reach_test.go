package cli

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test ./internal/cli -run %s -update rewrites it):\n--- got\n%s\n--- want\n%s", name, t.Name(), got, want)
	}
}

func TestReachGoldens(t *testing.T) {
	snap := demoSnapshot(t)
	for _, tt := range []struct {
		golden string
		args   []string
	}{
		{"reach.txt", []string{"reach"}},
		{"reach.json", []string{"reach", "--format", "json"}},
		{"reach-to-db.csv", []string{"reach", "--to", "customer-db", "--port", "5432/tcp", "--format", "csv"}},
		{"reach-from-dev-box.dot", []string{"reach", "--from", "dev-box", "--format", "dot"}},
		{"reach-from-dev-box.mmd", []string{"reach", "--from", "dev-box", "--format", "mermaid"}},
		{"blast-radius-dev-box.txt", []string{"blast-radius", "dev-box"}},
		{"blast-radius-dev-box.json", []string{"blast-radius", "dev-box", "--format", "json"}},
		{"blast-radius-all.txt", []string{"blast-radius", "--all"}},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			code, out, stderr := run(t, append(tt.args, "--snapshot", snap)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			golden(t, tt.golden, out)
		})
	}
}

func TestReachSVG(t *testing.T) {
	code, out, stderr := run(t, "reach", "--snapshot", demoSnapshot(t), "--to", "customer-db", "--format", "svg")
	if code != 0 || !strings.Contains(out, "<svg xmlns") || !strings.Contains(out, "customer-db") || !strings.Contains(out, "dev-box") {
		t.Errorf("reach --format svg: exit %d, %s, output starts %.80q", code, stderr, out)
	}
}

func TestReachJSONShape(t *testing.T) {
	code, out, _ := run(t, "reach", "--snapshot", demoSnapshot(t), "--from", "dev-box", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var doc struct {
		Edges []struct {
			From, To   string
			Ports, Via []string
		} `json:"edges"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	found := false
	for _, e := range doc.Edges {
		if e.From != "dev-box" {
			t.Errorf("--from dev-box returned an edge from %s", e.From)
		}
		if e.To == "customer-db" {
			found = true
			if strings.Join(e.Ports, ",") != "5432/tcp" || strings.Join(e.Via, ",") != "published:0.0.0.0:15432" {
				t.Errorf("dev-box -> customer-db = %+v, want 5432/tcp via published:0.0.0.0:15432", e)
			}
		}
	}
	if !found {
		t.Errorf("no edge dev-box -> customer-db in %s", out)
	}
}

func TestReachEvalAndBadInput(t *testing.T) {
	snap := demoSnapshot(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"yes", []string{"reach", "--eval", "dev-box", "customer-db", "5432/tcp"}, 0, "yes: dev-box => customer-db : 5432/tcp (published 0.0.0.0:15432)", ""},
		{"yes any port", []string{"reach", "--eval", "dev-box", "debug-shell"}, 0, "yes: dev-box => debug-shell : all ports (network dev)", ""},
		{"other port", []string{"reach", "--eval", "dev-box", "customer-db", "22/tcp"}, 1, "only (published 0.0.0.0:15432)", ""},
		{"no path", []string{"reach", "--eval", "dev-box", "session-cache", "6379/tcp"}, 1, "they share no network", ""},
		{"internal has no egress", []string{"reach", "--eval", "session-cache", "internet"}, 1, "only on internal networks", ""},
		{"unknown eval name", []string{"reach", "--eval", "dev-bx", "customer-db", "5432/tcp"}, 2, "", `no container "dev-bx" on this host; did you mean dev-box?`},
		{"unknown from", []string{"reach", "--from", "shop-wbe"}, 2, "", "did you mean shop-web"},
		{"unknown to", []string{"reach", "--to", "postgres"}, 2, "", `no container "postgres"`},
		{"bad port", []string{"reach", "--port", "http"}, 2, "", "want a number from 1 to 65535"},
		{"eval arity", []string{"reach", "--eval", "dev-box"}, 2, "", "--eval takes a source, a destination"},
		{"bad format", []string{"reach", "--format", "png"}, 2, "", `unknown --format "png"`},
		{"blast unknown", []string{"blast-radius", "shop-wb"}, 2, "", "did you mean shop-web"},
		{"blast no name", []string{"blast-radius"}, 2, "", "name one container"},
		{"blast max hops", []string{"blast-radius", "dev-box", "--max-hops", "1"}, 0, "reaches 4 containers within 1 hop", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := run(t, append(tt.args, "--snapshot", snap)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stdout %q, stderr %q)", code, tt.code, out, stderr)
			}
			if !strings.Contains(out, tt.stdout) {
				t.Errorf("stdout %q does not contain %q", out, tt.stdout)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.stderr)
			}
			if code == 2 && strings.Count(stderr, "\n") != 1 {
				t.Errorf("want one line on stderr, got %q", stderr)
			}
		})
	}
}
