package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
)

// flatSnapshot writes the seed's "bad" host — every tier on one network,
// the database published — and returns its path.
func flatSnapshot(t *testing.T) string {
	t.Helper()
	c := func(name string) inventory.Container {
		return inventory.Container{Name: name, State: "running", NetworkMode: "flat", Endpoints: []inventory.Endpoint{{Network: "flat"}}}
	}
	lb, db := c("lb"), c("postgres")
	lb.Ports = []inventory.PortBinding{{ContainerPort: l4.Port{Number: 443, Proto: "tcp"}, HostPort: 443}}
	db.Ports = []inventory.PortBinding{{ContainerPort: l4.Port{Number: 5432, Proto: "tcp"}, HostPort: 5432}}
	snap := &inventory.Snapshot{Version: inventory.SchemaVersion,
		Networks:   []inventory.Network{{Name: "bridge", Driver: "bridge", ICC: true}, {Name: "flat", Driver: "bridge", ICC: true}},
		Containers: []inventory.Container{lb, c("frontend"), c("api"), db, c("cache"), c("stray")},
	}
	path := filepath.Join(t.TempDir(), "flat.json")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := inventory.Encode(f, snap); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPlanOffline(t *testing.T) {
	snap := flatSnapshot(t)
	policy := filepath.Join("testdata", "three-tier.yaml")
	code, out, stderr := run(t, "plan", policy, "--snapshot", snap)
	if code != 1 {
		t.Fatalf("plan exit %d, want 1 (changes): %s", code, stderr)
	}
	golden(t, "plan-three-tier.txt", out)

	code, out, _ = run(t, "plan", policy, "--snapshot", snap, "--format", "json")
	if code != 1 {
		t.Fatalf("plan --format json exit %d", code)
	}
	var doc struct {
		Changes bool
		Create  []struct{ Name string } `json:"create_networks"`
		Connect []struct {
			Container, Network string
		}
		Published []struct{ Container, Binding string } `json:"published_not_allowed"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("plan JSON: %v\n%s", err, out)
	}
	if !doc.Changes || len(doc.Create) != 3 || len(doc.Connect) != 7 || len(doc.Published) != 1 || doc.Published[0].Container != "postgres" {
		t.Errorf("plan JSON = %+v", doc)
	}
}

func TestPlanBadInput(t *testing.T) {
	snap := flatSnapshot(t)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("version: 1\nzones:\n  app: {}\nworkloads:\n  api: {match: {name: api}, zones: [nope]}\n"), 0o644)
	code, _, stderr := run(t, "plan", bad, "--snapshot", snap)
	if code != 2 || !strings.Contains(stderr, bad+":5:") || !strings.Contains(stderr, "nothing was done") {
		t.Errorf("invalid policy: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = run(t, "plan", "/nonexistent.yaml", "--snapshot", snap)
	if code != 2 || !strings.Contains(stderr, "cannot read the policy") {
		t.Errorf("missing policy: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = run(t, "apply", filepath.Join("testdata", "three-tier.yaml"), "--snapshot", snap)
	if code != 2 || !strings.Contains(stderr, "apply changes a live Docker host") {
		t.Errorf("apply --snapshot: exit %d, stderr %q", code, stderr)
	}
}
