package model_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/enforce/enforcetest"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/inventory/synthetic"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy"
)

// seedHost is the seed's Level 3 host, as docker run would leave it,
// before any policy: the networks exist, and the containers are on them.
// Addresses are left out; binding does not use them.
func seedHost() *inventory.Snapshot {
	net := func(name string, internal bool) inventory.Network {
		return inventory.Network{Name: name, Driver: "bridge", Internal: internal, ICC: true}
	}
	ctr := func(name, image string, labels map[string]string, nets ...string) inventory.Container {
		c := inventory.Container{Name: name, Image: image, State: "running", Labels: labels, NetworkMode: nets[0]}
		for _, n := range nets {
			c.Endpoints = append(c.Endpoints, inventory.Endpoint{Network: n})
		}
		return c
	}
	lb := ctr("lb", "nginx", nil, "public-dmz")
	lb.Ports = []inventory.PortBinding{synthetic.Binding("", 443, 443)}
	return &inventory.Snapshot{
		Version: inventory.SchemaVersion,
		Networks: []inventory.Network{
			net("bridge", false), net("public-dmz", false), net("application-tier", false),
			net("database-tier", true), net("dev", false),
		},
		Containers: []inventory.Container{
			lb,
			ctr("frontend", "my-frontend", nil, "public-dmz", "application-tier"),
			ctr("shop-api-1", "my-api:2", map[string]string{inventory.LabelComposeProject: "shop", inventory.LabelComposeService: "api"}, "application-tier", "database-tier"),
			ctr("postgres", "docker.io/library/postgres:15", nil, "database-tier"),
			ctr("cache", "redis:7", map[string]string{"app": "cache"}, "database-tier"),
			ctr("devbox", "example/devbox", nil, "dev"),
			ctr("stray", "busybox", nil, "bridge"),
			ctr("intruder", "busybox", nil, "database-tier", "dev"),
		},
	}
}

func TestBindSeed(t *testing.T) {
	b, err := model.Bind(seedPolicy(t), seedHost())
	if err != nil {
		t.Fatalf("Bind: %v", err)
	}
	want := map[string]string{
		"lb": "lb", "frontend": "frontend", "shop-api-1": "api", "postgres": "postgres", "cache": "cache",
	}
	for _, m := range b.Containers {
		got := ""
		if m.Workload != nil {
			got = m.Workload.Name
		}
		if got != want[m.Container.Name] {
			t.Errorf("%s is selected by %q, want %q", m.Container.Name, got, want[m.Container.Name])
		}
	}
	if got := b.Unmatched(); !slices.Equal(got, []string{"devbox", "stray", "intruder"}) {
		t.Errorf("Unmatched = %v", got)
	}
	api := b.Member("shop-api-1")
	if !slices.Equal(api.Zones, []string{"application-tier", "database-tier"}) || !slices.Equal(api.Attached, []string{"application-tier", "database-tier"}) {
		t.Errorf("api zones %v, attached %v", api.Zones, api.Attached)
	}
	if got := b.MemberZones()["frontend"]; !slices.Equal(got, []string{"public-dmz", "application-tier"}) {
		t.Errorf("MemberZones[frontend] = %v", got)
	}
	if names := b.Members("api"); len(names) != 1 || names[0].Name != "shop-api-1" {
		t.Errorf("Members(api) = %v", names)
	}
	if !b.PublishAllowed("lb", synthetic.Binding("", 443, 443)) || b.PublishAllowed("lb", synthetic.Binding("", 8443, 443)) ||
		b.PublishAllowed("postgres", synthetic.Binding("", 5432, 5432)) || !b.PublishAllowed("stray", synthetic.Binding("", 8080, 80)) {
		t.Error("PublishAllowed is wrong")
	}
	if got := b.Fenced(); len(got) != 1 || got[0].String() != "intruder (on default: deny zone database-tier)" {
		t.Errorf("Fenced() = %v, want intruder on database-tier", got)
	}
	if b.ReachesHost("intruder") != true || b.PublishAllowed("intruder", synthetic.Binding("", 8081, 80)) {
		t.Error("intruder: it reaches the host from dev (not a deny zone) but may publish nothing")
	}
	for _, tt := range []struct {
		from, to, port string
		allow          bool
		reason         string
	}{
		{"frontend", "postgres", "5432/tcp", false, "no flow from frontend to postgres on 5432/tcp, and they share no zone"},
		{"shop-api-1", "postgres", "5432/tcp", true, "allows api -> postgres"},
		{"shop-api-1", "cache", "6379/tcp", true, "allows api -> cache"},
		{"198.51.100.1", "lb", "443/tcp", true, "ingress 0.0.0.0/0 admits"},
		{"shop-api-1", "203.0.113.9", "443/tcp", true, "egress of api"},
		{"devbox", "stray", "80/tcp", true, "no workload selects devbox; unmanaged: warn leaves its traffic to Docker"},
		{"devbox", "postgres", "5432/tcp", false, "no workload selects devbox, and postgres is on default: deny zone database-tier: denied"},
		{"postgres", "devbox", "22/tcp", false, "no workload selects devbox, and postgres is on default: deny zone database-tier: denied"},
		// Fenced: unknown on a default: deny zone, whatever unmanaged says.
		{"intruder", "postgres", "5432/tcp", false, "no workload selects intruder, and it is on default: deny zone database-tier: denied (fail closed)"},
		{"shop-api-1", "intruder", "5432/tcp", false, "it is on default: deny zone database-tier"},
		{"intruder", "devbox", "22/tcp", false, "it is on default: deny zone database-tier"},
		{"nobody", "postgres", "5432/tcp", false, "nobody is neither a container of the host nor an address"},
	} {
		d := b.Decide(tt.from, tt.to, port(tt.port))
		if d.Allow != tt.allow || !strings.Contains(d.Reason, tt.reason) {
			t.Errorf("Decide(%s, %s, %s) = %v, %q; want %v, %q", tt.from, tt.to, tt.port, d.Allow, d.Reason, tt.allow, tt.reason)
		}
	}
}

// TestBindMatching covers each criterion, globs, image references and
// the refusal to pick between two workloads.
func TestBindMatching(t *testing.T) {
	p := mustParse(t, "m.yaml", `version: 1
zones: {z: {}}
workloads:
  by-name: {match: {name: web-*}, zones: [z]}
  by-image: {match: {image: "postgres:1?"}, zones: [z]}
  by-repo: {match: {image: "ghcr.io/acme/*"}, zones: [z]}
  by-digest: {match: {image: "redis@sha256:*"}, zones: [z]}
  by-label: {match: {label: {tier: "back*", team: ops}}, zones: [z]}
  by-project: {match: {compose: {project: billing}}, zones: [z]}
  by-both: {match: {name: "agent", image: "datadog/agent:*"}, zones: [z]}
  overlap: {match: {name: "web-2"}, zones: [z]}
unmanaged: deny
`)
	snap := &inventory.Snapshot{Containers: []inventory.Container{
		{Name: "web-1", Image: "nginx"},
		{Name: "web-2", Image: "nginx"},
		{Name: "pg", Image: "docker.io/library/postgres:16"},
		{Name: "pg-old", Image: "postgres:9.6"},
		{Name: "pg-untagged", Image: "postgres"},
		{Name: "acme", Image: "ghcr.io/acme/api:1"},
		{Name: "acme-deep", Image: "ghcr.io/acme/team/api:1"},
		{Name: "cache", Image: "redis@sha256:abc"},
		{Name: "cache-tagged", Image: "redis:7"},
		{Name: "worker", Image: "x", Labels: map[string]string{"tier": "backend", "team": "ops"}},
		{Name: "worker-dev", Image: "x", Labels: map[string]string{"tier": "backend", "team": "dev"}},
		{Name: "inv-1", Image: "x", Labels: map[string]string{inventory.LabelComposeProject: "billing", inventory.LabelComposeService: "invoices"}},
		{Name: "agent", Image: "datadog/agent:7"},
		{Name: "agent2", Image: "datadog/agent:7"},
		{Name: "fake-agent", Image: "evil/agent:7"},
	}}
	b, err := model.Bind(p, snap)
	want := map[string]string{
		"web-1": "by-name", "pg": "by-image", "acme": "by-repo", "cache": "by-digest",
		"worker": "by-label", "inv-1": "by-project", "agent": "by-both",
	}
	for _, m := range b.Containers {
		got := ""
		if m.Workload != nil {
			got = m.Workload.Name
		}
		if got != want[m.Container.Name] {
			t.Errorf("%s (%s) is selected by %q, want %q", m.Container.Name, m.Container.Image, got, want[m.Container.Name])
		}
	}
	web2 := b.Member("web-2")
	if !web2.Conflicted() || web2.Workload != nil {
		t.Errorf("web-2: %+v", web2)
	}
	if err == nil || !strings.Contains(err.Error(), "m.yaml:11:13: container web-2 is selected by workloads by-name (m.yaml:4:3) and overlap (m.yaml:11:3)") {
		t.Errorf("Bind error = %v", err)
	}
	if d := b.Decide("web-2", "web-1", port("80/tcp")); d.Allow || !strings.Contains(d.Reason, "several workloads") {
		t.Errorf("a conflicted container is not denied: %+v", d)
	}
	if d := b.Decide("fake-agent", "web-1", port("80/tcp")); d.Allow || !strings.Contains(d.Reason, "unmanaged is deny") {
		t.Errorf("unmanaged: deny does not deny: %+v", d)
	}
	if b.PublishAllowed("fake-agent", synthetic.Binding("", 80, 80)) {
		t.Error("unmanaged: deny lets an unmatched container publish")
	}
}

// BenchmarkBind binds a policy of 10,000 workloads to a host of 10,000
// containers, one per workload: by name, label, image, and name glob.
func BenchmarkBind(b *testing.B) {
	p := &policy.Policy{Version: 1, Zones: []policy.Zone{{Name: "z", Default: policy.Allow}}}
	snap := &inventory.Snapshot{}
	for i := range 10_000 {
		w := policy.Workload{Name: fmt.Sprintf("w%d", i), Zones: []string{"z"}}
		c := inventory.Container{Name: fmt.Sprintf("c%d", i), Image: fmt.Sprintf("example/img%d:1", i), Labels: map[string]string{"app": fmt.Sprintf("a%d", i)}}
		switch i % 4 {
		case 0:
			w.Match.Name = c.Name
		case 1:
			w.Match.Labels = map[string]string{"app": c.Labels["app"]}
		case 2:
			w.Match.Image = c.Image
		default:
			w.Match.Name = fmt.Sprintf("c%d-*", i)
			c.Name += "-x"
		}
		p.Workloads = append(p.Workloads, w)
		snap.Containers = append(snap.Containers, c)
	}
	for b.Loop() {
		bd, _ := model.Bind(p, snap)
		if len(bd.Unmatched()) != 0 {
			b.Fatalf("unmatched: %v", bd.Unmatched()[:1])
		}
	}
}

// TestPortsAgreesWithDecide: Ports is Decide over every port, for every
// pair of containers of the enforce tests' host (managed, unmanaged,
// fenced, conflicted) under three policies.
func TestPortsAgreesWithDecide(t *testing.T) {
	ports := enforcetest.Ports
	for _, doc := range enforcetest.Variants() {
		p, err := policy.Parse("zones.yaml", []byte(doc), policy.Options{})
		if err != nil {
			t.Fatal(err)
		}
		snap := enforcetest.Host()
		b, _ := model.Bind(p, snap)
		allowed, denied := 0, 0
		for _, a := range snap.Containers {
			for _, c := range snap.Containers {
				if a.Name == c.Name {
					continue
				}
				open, list := b.Ports(a.Name, c.Name)
				for _, pt := range ports {
					d := b.Decide(a.Name, c.Name, pt)
					if got := open || list.Contains(pt); got != d.Allow {
						t.Errorf("%s -> %s %s: Ports says %v (open %v, %s); Decide %v (%s)", a.Name, c.Name, pt, got, open, list, d.Allow, d.Reason)
					}
					if d.Allow {
						allowed++
					} else {
						denied++
					}
				}
			}
		}
		if allowed < 20 || denied < 20 {
			t.Errorf("%d allowed and %d denied decisions: too few of one to test Ports", allowed, denied)
		}
	}
}
