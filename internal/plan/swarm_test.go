package plan

import (
	"slices"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/inventory"
)

func swarmSnapshot() *inventory.Snapshot {
	task := func(name, service string, nets ...string) inventory.Container {
		c := inventory.Container{Name: name, State: "running", Labels: map[string]string{inventory.LabelSwarmService: service}}
		for _, n := range nets {
			c.Endpoints = append(c.Endpoints, inventory.Endpoint{Network: n})
		}
		return c
	}
	return &inventory.Snapshot{
		Networks: []inventory.Network{
			{Name: "flat", Driver: "overlay"},
			{Name: "front", Driver: "overlay"},
			{Name: "local", Driver: "bridge"},
		},
		Containers: []inventory.Container{
			task("web.1.a", "web", "flat"), task("web.2.b", "web", "flat"),
			task("api.1.c", "api", "flat", "front"),
			task("odd.1.d", "odd", "flat"), task("odd.2.e", "odd", "flat"),
			task("spy.1.f", "spy", "flat"),
		},
		Swarm: &inventory.Swarm{
			Nodes: []inventory.SwarmNode{
				{Hostname: "n1", IPsec: &inventory.IPsec{Missing: []string{"CONFIG_INET_ESP"}}},
				{Hostname: "n2"},
				{Hostname: "n3", IPsec: &inventory.IPsec{}},
			},
			Services: []inventory.Service{
				{Name: "web", Networks: []string{"flat"}},
				{Name: "api", Networks: []string{"flat", "front"}},
				{Name: "odd", Networks: []string{"flat"}},
				{Name: "spy", Networks: []string{"flat"}},
			},
		},
	}
}

// TestComputeSwarm: zones become overlays; services move by update, the
// zones they keep named; a service whose tasks two workloads split, a
// zone on a bridge, and encryption on a node that cannot encrypt block
// the plan; an unprobed node is a warning.
func TestComputeSwarm(t *testing.T) {
	want := Desired{
		Zones: []Zone{{Name: "front", Encrypted: false}, {Name: "back", Internal: true, Encrypted: true}, {Name: "local"}},
		Members: map[string][]string{
			"web.1.a": {"front"}, "web.2.b": {"front"},
			"api.1.c": {"front", "back"},
			"odd.1.d": {"front"}, "odd.2.e": {"back"},
		},
	}
	p := ComputeSwarm(swarmSnapshot(), want)
	if len(p.Create) != 1 || p.Create[0] != (Zone{Name: "back", Internal: true, Overlay: true, Encrypted: true}) {
		t.Errorf("create: %+v", p.Create)
	}
	var got []string
	for _, u := range p.Services {
		got = append(got, u.Service+" +"+strings.Join(u.Add, ",")+" -"+strings.Join(u.Remove, ",")+" ="+strings.Join(u.Keep, ","))
	}
	if w := []string{"api +back -flat =front", "web +front -flat ="}; !slices.Equal(got, w) {
		t.Errorf("services:\n got %q\nwant %q", got, w)
	}
	blockers := strings.Join(p.Blockers, "\n")
	for _, w := range []string{"node n1: its kernel cannot encrypt (missing CONFIG_INET_ESP)", "service odd: its tasks are selected into different zones", "zone local: network local exists with driver bridge"} {
		if !strings.Contains(blockers, w) {
			t.Errorf("no blocker %q in:\n%s", w, blockers)
		}
	}
	if strings.Contains(blockers, "n3") {
		t.Errorf("n3 can encrypt, yet: %s", blockers)
	}
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "node n2: its kernel was not probed") {
		t.Errorf("warnings: %q", p.Warnings)
	}
	if !slices.Equal(p.Unmatched, []string{"spy"}) {
		t.Errorf("unmatched: %q", p.Unmatched)
	}

	// Plain zones: no node's kernel matters.
	for i := range want.Zones {
		want.Zones[i].Encrypted = false
	}
	if p := ComputeSwarm(swarmSnapshot(), want); strings.Contains(strings.Join(p.Blockers, "\n"), "encrypt") || len(p.Warnings) != 0 {
		t.Errorf("plain zones: blockers %q, warnings %q", p.Blockers, p.Warnings)
	}
}
