package dockerapi

import (
	"context"
	"slices"
	"testing"

	"github.com/docker/docker/api/types/swarm"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/testenv/swarmbed"
)

// TestSnapshotOfASwarm reads a three-tier stack spread over a Swarm of
// three nodes through its manager: nodes, services (modes, published
// ports by mode, endpoint modes, networks, stack), overlays (encrypted,
// attachable, internal), and every running task as a container with the
// node it runs on and its overlay addresses.
//
// Address plan: the bed's (underlay 10.250.0.0/24, Swarm pool
// 10.250.128.0/17); the overlays get 10.250.200-202.0/24.
func TestSnapshotOfASwarm(t *testing.T) {
	bed := swarmbed.Up(t, 3, 1)
	bed.Overlay(t, "front", swarmbed.OverlayOpts{Attachable: true, Subnet: "10.250.200.0/24"})
	bed.Overlay(t, "back", swarmbed.OverlayOpts{Encrypted: true, Subnet: "10.250.201.0/24"})
	bed.Overlay(t, "data", swarmbed.OverlayOpts{Encrypted: true, Internal: true, Subnet: "10.250.202.0/24"})
	stack := map[string]string{inventory.LabelStack: "shop"}
	bed.Service(t, swarmbed.ServiceSpec{Name: "shop_web", Replicas: 3, Networks: []string{"front"}, Labels: stack,
		Ports: []swarm.PortConfig{{TargetPort: 80, PublishedPort: 18080, Protocol: swarm.PortConfigProtocolTCP, PublishMode: swarm.PortConfigPublishModeIngress}}})
	bed.Service(t, swarmbed.ServiceSpec{Name: "shop_api", Replicas: 2, Networks: []string{"front", "back"}, DNSRR: true, Labels: stack})
	bed.Service(t, swarmbed.ServiceSpec{Name: "shop_db", Networks: []string{"back", "data"}, DNSRR: true, Labels: stack,
		Ports: []swarm.PortConfig{{TargetPort: 5432, PublishedPort: 15432, Protocol: swarm.PortConfigProtocolTCP, PublishMode: swarm.PortConfigPublishModeHost}}})

	c, err := New("unix://" + bed.Nodes[0].Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	snap, err := c.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sw := snap.Swarm
	if sw == nil || snap.Daemon.SwarmRole != "manager" {
		t.Fatalf("no Swarm read from a manager: role %q", snap.Daemon.SwarmRole)
	}
	if len(sw.Nodes) != 3 {
		t.Fatalf("%d nodes, want 3: %+v", len(sw.Nodes), sw.Nodes)
	}
	for i, n := range sw.Nodes {
		want := bed.Nodes[i]
		role := "worker"
		if want.Manager {
			role = "manager"
		}
		if n.Hostname != want.Hostname || n.Role != role || n.State != "ready" || n.Addr != want.Addr || n.Leader != (i == 0) {
			t.Errorf("node %d: %+v; want %s, %s, ready, %s", i+1, n, want.Hostname, role, want.Addr)
		}
	}

	web, api, db := sw.Service("shop_web"), sw.Service("shop_api"), sw.Service("shop_db")
	if web == nil || api == nil || db == nil {
		t.Fatalf("services: %+v", sw.Services)
	}
	if web.Mode != "replicated" || web.Replicas != 3 || web.EndpointMode != "vip" || web.Stack != "shop" || !slices.Equal(web.Networks, []string{"front"}) ||
		!slices.Equal(web.Ports, []inventory.ServicePort{{Target: l4.Port{Proto: "tcp", Number: 80}, Published: 18080, Mode: inventory.PublishIngress}}) {
		t.Errorf("shop_web: %+v", *web)
	}
	if api.EndpointMode != "dnsrr" || !slices.Equal(api.Networks, []string{"front", "back"}) {
		t.Errorf("shop_api: %+v", *api)
	}
	if !slices.Equal(db.Ports, []inventory.ServicePort{{Target: l4.Port{Proto: "tcp", Number: 5432}, Published: 15432, Mode: inventory.PublishHost}}) {
		t.Errorf("shop_db: %+v", *db)
	}

	idx := inventory.NewIndex(snap)
	for name, want := range map[string][3]bool{"front": {false, true, false}, "back": {true, false, false}, "data": {true, false, true}} {
		n := idx.Network(name)
		if n == nil {
			t.Errorf("overlay %s not read", name)
			continue
		}
		if got := [3]bool{n.Encrypted(), n.Attachable, n.Internal}; got != want || n.Driver != "overlay" || n.Scope != "swarm" {
			t.Errorf("overlay %s: encrypted, attachable, internal = %v, want %v (driver %s, scope %s)", name, got, want, n.Driver, n.Scope)
		}
	}

	nodes := map[string]bool{}
	tasks := map[string]int{}
	for _, ct := range snap.Containers {
		svc := ct.SwarmService()
		if svc == "" {
			continue
		}
		tasks[svc]++
		if ct.Node == "" || sw.Node(ct.Node) == nil || ct.State != "running" || ct.ID == "" {
			t.Errorf("task %s: node %q, state %s, id %q", ct.Name, ct.Node, ct.State, ct.ID)
		}
		nodes[ct.Node] = true
		if ct.Node == bed.Nodes[0].Hostname && ct.Pid == 0 {
			t.Errorf("task %s on the manager read from its task only (no inspect): %+v", ct.Name, ct)
		}
		for _, want := range sw.Service(svc).Networks {
			i := slices.IndexFunc(ct.Endpoints, func(e inventory.Endpoint) bool { return e.Network == want })
			if i < 0 || !idx.Network(want).Subnets[0].Prefix.Contains(ct.Endpoints[i].IPv4) {
				t.Errorf("task %s: no address on %s: %+v", ct.Name, want, ct.Endpoints)
			}
		}
		if svc == "shop_db" && !slices.ContainsFunc(ct.Ports, func(p inventory.PortBinding) bool { return p.HostPort == 15432 }) {
			t.Errorf("task %s publishes no host port 15432: %+v", ct.Name, ct.Ports)
		}
	}
	if tasks["shop_web"] != 3 || tasks["shop_api"] != 2 || tasks["shop_db"] != 1 {
		t.Errorf("tasks per service: %v, want web 3, api 2, db 1", tasks)
	}
	if len(nodes) < 2 {
		t.Errorf("the tasks run on %d node(s) only: %v", len(nodes), nodes)
	}
}
