package draft_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/demo"
	"github.com/zonewarden/zonewarden/internal/draft"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/inventory/synthetic"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it); got:\n%s", path, got)
	}
}

// checkDraft asserts what init promises: the draft passes check, formats
// back to itself, binds every container that can join a zone to exactly
// one workload, and keeps what works today — every two containers that
// share a network reach each other on the destination's known ports.
func checkDraft(t *testing.T, snap *inventory.Snapshot) *policy.Policy {
	t.Helper()
	p, out := passesCheck(t, draft.FromHost(snap))
	if again := policy.Format(p); !bytes.Equal(again, out) {
		t.Errorf("Format(Parse(Format(draft))) differs:\n%s\n---\n%s", out, again)
	}
	b, err := model.Bind(p, snap)
	if err != nil {
		t.Fatalf("Bind(draft): %v", err)
	}
	ix := inventory.NewIndex(snap)
	for i := range snap.Containers {
		c := &snap.Containers[i]
		m := b.Member(c.Name)
		canJoin := !c.UsesHostNetwork() && !c.NoNetwork() && c.SharedNamespaceWith() == ""
		if canJoin != (m.Workload != nil) {
			t.Errorf("%s: workload %v, but it can join a zone: %v", c.Name, m.Workload, canJoin)
		}
	}
	for _, n := range snap.Networks {
		if n.IsBuiltin() || n.Driver != "bridge" {
			continue
		}
		members := ix.Members(n.Name)
		for _, a := range members {
			for _, c := range members {
				if a == c || b.Member(a.Name).Workload == b.Member(c.Name).Workload {
					continue
				}
				for _, pt := range append(c.ExposedPorts, portsOf(c.Ports)...) {
					rp := l4.Port{Proto: pt.Proto, Number: pt.Number}
					if d := b.Decide(a.Name, c.Name, rp); !d.Allow {
						t.Errorf("%s no longer reaches %s on %s (network %s): %s", a.Name, c.Name, rp, n.Name, d.Reason)
					}
				}
			}
		}
	}
	return p
}

// passesCheck formats a draft and asserts that it passes check and its
// own tests; it returns the policy read back and its text.
func passesCheck(t *testing.T, d *policy.Policy) (*policy.Policy, []byte) {
	t.Helper()
	out := policy.Format(d)
	p, err := policy.Parse("draft.yaml", out, policy.Options{})
	if err != nil {
		t.Fatalf("the draft does not pass check:\n%v\n%s", err, out)
	}
	for _, r := range model.Failed(model.Compile(p).RunTests()) {
		t.Errorf("draft test at %v fails: %s", r.Test.Pos, r.Decision.Reason)
	}
	return p, out
}

func portsOf(bs []inventory.PortBinding) []l4.Port {
	out := make([]l4.Port, len(bs))
	for i, b := range bs {
		out[i] = b.ContainerPort
	}
	return out
}

func TestDraftDemoHost(t *testing.T) {
	snap := demo.Level0().Snapshot()
	p := checkDraft(t, snap)
	golden(t, "draft-demo.yaml.golden", policy.Format(draft.FromHost(snap)))
	for _, want := range []struct {
		zone    string
		def     policy.Action
		intern  bool
		members int
	}{
		{"shop-prod", policy.Deny, false, 4}, // holds customer-db
		{"shop-sessions", policy.Deny, true, 2},
		{"dev", policy.Allow, false, 2},
		{draft.LegacyBridgeZone, policy.Allow, false, 2},
	} {
		z := p.Zone(want.zone)
		if z == nil || z.Default != want.def || z.Internal != want.intern || len(model.Compile(p).Members(policy.ZoneRef(want.zone))) != want.members {
			t.Errorf("zone %s = %+v, want default %s, internal %v, %d members", want.zone, z, want.def, want.intern, want.members)
		}
	}
	if w := p.Workload("customer-db"); w == nil || w.Match.Compose != (policy.ComposeMatch{Project: "shop", Service: "db"}) {
		t.Errorf("customer-db = %+v", w)
	}
	if p.Workload("metrics-agent") != nil {
		t.Error("the host-network agent became a workload")
	}
	if len(p.Tests) == 0 {
		t.Error("no tests drafted for the data services")
	}
}

func TestDraftSyntheticHost(t *testing.T) {
	for _, size := range []struct{ containers, networks int }{{1, 1}, {60, 7}, {400, 40}} {
		checkDraft(t, synthetic.Host(size.containers, size.networks, 7))
	}
}

func TestDraftEmptyHost(t *testing.T) {
	p := checkDraft(t, &inventory.Snapshot{Version: 1})
	if len(p.Zones)+len(p.Workloads)+len(p.Flows) != 0 {
		t.Errorf("an empty host drafted %+v", p)
	}
}

// TestDraftUsesImageDefaultPorts: a compose project whose MariaDB and
// Redis declare no port (their images' EXPOSE is not in a compose file)
// still gets backend -> db:3306 and backend -> cache:6379, each saying
// where the port comes from, and tests on those ports.
func TestDraftUsesImageDefaultPorts(t *testing.T) {
	svc := func(name, image string) inventory.Container {
		return inventory.Container{Name: "shop-" + name + "-1", Image: image, State: "defined", NetworkMode: "shop_default",
			Labels:    map[string]string{inventory.LabelComposeProject: "shop", inventory.LabelComposeService: name},
			Endpoints: []inventory.Endpoint{{Network: "shop_default"}}}
	}
	backend := svc("backend", "example/shop-backend:1")
	backend.ExposedPorts = []l4.Port{{Number: 8000, Proto: "tcp"}}
	snap := &inventory.Snapshot{Version: 1,
		Networks:   []inventory.Network{{Name: "shop_default", Driver: "bridge", ICC: true}},
		Containers: []inventory.Container{backend, svc("db", "mariadb:11"), svc("cache", "redis:7")},
	}
	p := checkDraft(t, snap)
	m := model.Compile(p)
	for _, tt := range []struct {
		to, port, note string
	}{
		{"db", "3306/tcp", "3306/tcp: MySQL/MariaDB's default port (db declares none)"},
		{"cache", "6379/tcp", "6379/tcp: Redis's default port (cache declares none)"},
	} {
		port, _ := l4.ParsePort(tt.port)
		if d := m.Eval(policy.WorkloadRef("backend"), policy.WorkloadRef(tt.to), port); !d.Allow {
			t.Errorf("backend -> %s:%s not drafted: %s", tt.to, tt.port, d.Reason)
		}
		found := false
		for _, f := range p.Flows {
			if f.From == policy.WorkloadRef("backend") && f.To == policy.WorkloadRef(tt.to) {
				found = bytes.Contains([]byte(f.Comment), []byte(tt.note))
			}
		}
		if !found {
			t.Errorf("the flow backend -> %s does not say %q:\n%s", tt.to, tt.note, policy.Format(p))
		}
	}
}

// TestDraftNamesItsEvidence: what the compose file says a service
// connects to (depends_on, host names in its environment) stands in the
// drafted flow's comment, and a port named there is proposed even where
// the destination declares none.
func TestDraftNamesItsEvidence(t *testing.T) {
	svc := func(name, image string, refs ...inventory.Ref) inventory.Container {
		return inventory.Container{Name: "shop-" + name + "-1", Image: image, State: "defined", NetworkMode: "shop_default",
			Labels:    map[string]string{inventory.LabelComposeProject: "shop", inventory.LabelComposeService: name},
			Endpoints: []inventory.Endpoint{{Network: "shop_default"}}, Refs: refs}
	}
	snap := &inventory.Snapshot{Version: 1,
		Networks: []inventory.Network{{Name: "shop_default", Driver: "bridge", ICC: true}},
		Containers: []inventory.Container{
			svc("backend", "example/shop-backend:1",
				inventory.Ref{Service: "db", Via: "depends_on"},
				inventory.Ref{Service: "db", Port: 3306, Via: "environment DATABASE_URL"}),
			svc("worker", "example/shop-worker:1", inventory.Ref{Service: "backend", Port: 8000, Via: "environment API_URL"}),
			svc("db", "mariadb:11"),
		},
	}
	p := checkDraft(t, snap)
	m := model.Compile(p)
	comment := map[string]string{}
	for _, f := range p.Flows {
		comment[f.From.String()+" -> "+f.To.String()] = f.Comment
	}
	for _, tt := range []struct{ from, to, port, says string }{
		{"backend", "db", "3306/tcp", "evidence: depends_on; environment DATABASE_URL (db:3306)"},
		{"worker", "backend", "8000/tcp", "evidence: environment API_URL (backend:8000)"},
	} {
		port, _ := l4.ParsePort(tt.port)
		if d := m.Eval(policy.WorkloadRef(tt.from), policy.WorkloadRef(tt.to), port); !d.Allow {
			t.Errorf("%s -> %s:%s not drafted: %s", tt.from, tt.to, tt.port, d.Reason)
		}
		if c := comment[tt.from+" -> "+tt.to]; !strings.Contains(c, tt.says) {
			t.Errorf("%s -> %s: comment %q, want it to say %q", tt.from, tt.to, c, tt.says)
		}
	}
}
