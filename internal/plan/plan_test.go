package plan

import (
	"slices"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
)

// flatHost is the seed's "bad" example: everything on one network, and a
// database-tier network that exists but is not internal.
func flatHost() *inventory.Snapshot {
	c := func(name string, nets ...string) inventory.Container {
		ct := inventory.Container{Name: name, State: "running", NetworkMode: nets[0]}
		for _, n := range nets {
			ct.Endpoints = append(ct.Endpoints, inventory.Endpoint{Network: n})
		}
		return ct
	}
	lb := c("lb", "shared")
	lb.Ports = []inventory.PortBinding{{ContainerPort: l4.Port{Number: 443, Proto: "tcp"}, HostPort: 443},
		{ContainerPort: l4.Port{Number: 8081, Proto: "tcp"}, HostPort: 8081}}
	agent := inventory.Container{Name: "agent", State: "running", NetworkMode: "host"}
	return &inventory.Snapshot{Version: 1,
		Networks: []inventory.Network{
			{Name: "bridge", Driver: "bridge", ICC: true},
			{Name: "host", Driver: "host"},
			{Name: "shared", Driver: "bridge", ICC: true},
			{Name: "database-tier", Driver: "bridge", ICC: true},
		},
		Containers: []inventory.Container{lb, c("frontend", "shared"), c("api", "shared"), c("postgres", "shared", "database-tier"), c("stray", "bridge"), agent},
	}
}

func threeTier() Desired {
	return Desired{
		Zones: []Zone{{Name: "public-dmz"}, {Name: "application-tier"}, {Name: "database-tier", Internal: true}},
		Members: map[string][]string{
			"lb":       {"public-dmz"},
			"frontend": {"public-dmz", "application-tier"},
			"api":      {"application-tier", "database-tier"},
			"postgres": {"database-tier"},
		},
		Unmatched: []string{"stray", "agent"},
		PublishAllowed: func(c string, b inventory.PortBinding) bool {
			return c == "lb" && b.ContainerPort.Number == 443
		},
	}
}

func memberships(ms []Membership) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Container+"@"+m.Network)
	}
	return strings.Join(out, " ")
}

func TestComputeSegmentsAFlatHost(t *testing.T) {
	p := Compute(flatHost(), threeTier())
	if got, want := p.Create, []Zone{{Name: "public-dmz"}, {Name: "application-tier"}}; !slices.Equal(got, want) {
		t.Errorf("create = %v, want %v", got, want)
	}
	if len(p.Recreate) != 1 || p.Recreate[0].Network != "database-tier" || !p.Recreate[0].Internal ||
		strings.Join(p.Recreate[0].Members, ",") != "postgres" || p.Recreate[0].Ours {
		t.Errorf("recreate = %+v, want database-tier (internal) with postgres, not ours", p.Recreate)
	}
	if got, want := memberships(p.Connect), "api@application-tier api@database-tier frontend@public-dmz frontend@application-tier lb@public-dmz"; got != want {
		t.Errorf("connect = %s\nwant      %s", got, want)
	}
	if got, want := memberships(p.Disconnect), "api@shared frontend@shared lb@shared postgres@shared"; got != want {
		t.Errorf("disconnect = %s, want %s", got, want)
	}
	if got := strings.Join(p.Unmatched, ","); got != "agent,stray" {
		t.Errorf("unmatched = %s", got)
	}
	if len(p.Published) != 1 || p.Published[0].Container != "lb" || p.Published[0].Binding != "0.0.0.0:8081->8081/tcp" {
		t.Errorf("published = %+v", p.Published)
	}
	if len(p.Blockers) != 0 || !p.Changes() {
		t.Errorf("blockers %v, changes %v", p.Blockers, p.Changes())
	}
}

func TestComputeNothingToDo(t *testing.T) {
	snap := &inventory.Snapshot{Version: 1, Networks: []inventory.Network{
		{Name: "app", Driver: "bridge", ICC: true, Labels: map[string]string{LabelManaged: "app"}},
	}, Containers: []inventory.Container{{Name: "api", NetworkMode: "app", Endpoints: []inventory.Endpoint{{Network: "app"}}}}}
	p := Compute(snap, Desired{Zones: []Zone{{Name: "app"}}, Members: map[string][]string{"api": {"app"}}})
	if p.Changes() || len(p.Blockers) > 0 {
		t.Errorf("plan for a host that matches: %+v", p)
	}
}

func TestComputeBlockers(t *testing.T) {
	snap := flatHost()
	want := Desired{Zones: []Zone{{Name: "host"}}, Members: map[string][]string{"agent": {"public-dmz"}}}
	p := Compute(snap, want)
	if len(p.Blockers) != 2 {
		t.Fatalf("blockers = %q, want the host zone and the host-network member", p.Blockers)
	}
	if !strings.Contains(p.Blockers[0], "zone host: network host exists with driver host") ||
		!strings.Contains(p.Blockers[1], "container agent runs with --network host") {
		t.Errorf("blockers = %q", p.Blockers)
	}
}

// TestComputeMacvlan: a zone cannot be a macvlan network, a selected
// container is moved off one (it is not its zone), and an unselected one
// on it is reported as beyond the firewall.
func TestComputeMacvlan(t *testing.T) {
	snap := flatHost()
	snap.Networks = append(snap.Networks, inventory.Network{Name: "lan", Driver: "macvlan"})
	snap.Containers = append(snap.Containers,
		inventory.Container{Name: "printer", State: "running", NetworkMode: "lan", Endpoints: []inventory.Endpoint{{Network: "lan"}}})
	for i := range snap.Containers {
		if snap.Containers[i].Name == "api" {
			snap.Containers[i].Endpoints = append(snap.Containers[i].Endpoints, inventory.Endpoint{Network: "lan"})
		}
	}
	want := threeTier()
	want.Unmatched = append(want.Unmatched, "printer")
	p := Compute(snap, want)
	if !slices.Contains(p.Disconnect, Membership{Container: "api", Network: "lan"}) {
		t.Errorf("api is not taken off the macvlan: disconnect %s", memberships(p.Disconnect))
	}
	if len(p.Unenforceable) != 1 || p.Unenforceable[0] != "printer (macvlan network lan)" {
		t.Errorf("unenforceable = %q", p.Unenforceable)
	}
	p = Compute(snap, Desired{Zones: []Zone{{Name: "lan"}}})
	if len(p.Blockers) != 1 || !strings.Contains(p.Blockers[0], "never crosses this host's netfilter") {
		t.Errorf("a macvlan zone: blockers %q", p.Blockers)
	}
}

func TestSimulate(t *testing.T) {
	snap := flatHost()
	after := Simulate(snap, Compute(snap, threeTier()))
	p := Compute(after, threeTier())
	if len(p.Create)+len(p.Connect)+len(p.Disconnect)+len(p.Recreate) != 0 {
		t.Errorf("the simulated host still needs %+v", p)
	}
	if len(snap.Containers[0].Endpoints) != 1 || snap.Containers[0].Endpoints[0].Network != "shared" {
		t.Errorf("Simulate changed its input: %+v", snap.Containers[0].Endpoints)
	}
}
