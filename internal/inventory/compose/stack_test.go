package compose_test

import (
	"context"
	"slices"
	"testing"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/inventory/compose"
	"github.com/zonewarden/zonewarden/internal/l4"
)

// TestLoadStack reads compose files as docker stack deploy does: overlays,
// Swarm services with deploy:, tasks with Swarm's labels.
func TestLoadStack(t *testing.T) {
	opts := hermetic
	opts.Stack, opts.ProjectName = true, "shop"
	snap, err := compose.Load(context.Background(), []string{td("stack/stack.yaml")}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Swarm == nil {
		t.Fatal("no Swarm in a stack")
	}
	ix := inventory.NewIndex(snap)
	front, back, def := ix.Network("shop_front"), ix.Network("shop_back"), ix.Network("shop_default")
	if front == nil || back == nil || def == nil {
		t.Fatalf("networks: %+v", snap.Networks)
	}
	if front.Driver != "overlay" || !front.Attachable || front.Encrypted() || !back.Encrypted() || back.Scope != "swarm" || def.Driver != "overlay" {
		t.Errorf("overlays: front %+v, back %+v, default %+v", *front, *back, *def)
	}
	sw := snap.Swarm
	web, api, db, agent := sw.Service("shop_web"), sw.Service("shop_api"), sw.Service("shop_db"), sw.Service("shop_agent")
	if web == nil || api == nil || db == nil || agent == nil {
		t.Fatalf("services: %+v", sw.Services)
	}
	if web.Replicas != 3 || web.Stack != "shop" || web.Labels["tier"] != "web" ||
		!slices.Equal(web.Ports, []inventory.ServicePort{{Target: l4.Port{Proto: "tcp", Number: 80}, Published: 8080, Mode: inventory.PublishIngress}}) {
		t.Errorf("shop_web: %+v", *web)
	}
	if api.EndpointMode != "dnsrr" || !slices.Equal(api.Constraints, []string{"node.role==worker"}) || !slices.Equal(api.Networks, []string{"shop_front", "shop_back"}) && !slices.Equal(api.Networks, []string{"shop_back", "shop_front"}) {
		t.Errorf("shop_api: %+v", *api)
	}
	if !slices.Equal(db.Ports, []inventory.ServicePort{
		{Target: l4.Port{Proto: "tcp", Number: 5432}, Published: 15432, Mode: inventory.PublishHost},
		{Target: l4.Port{Proto: "tcp", Number: 5433}, Published: 15433, Mode: inventory.PublishIngress}}) {
		t.Errorf("shop_db ports: %+v", db.Ports)
	}
	if agent.Mode != "global" {
		t.Errorf("shop_agent: %+v", *agent)
	}
	tasks := map[string]int{}
	for _, c := range snap.Containers {
		tasks[c.SwarmService()]++
		if c.Labels[inventory.LabelStack] != "shop" || c.Labels[inventory.LabelComposeProject] != "" || c.State != "defined" {
			t.Errorf("task %s: labels %v, state %s", c.Name, c.Labels, c.State)
		}
	}
	if tasks["shop_web"] != 3 || tasks["shop_db"] != 1 || ix.Container("shop_web.2") == nil {
		t.Errorf("tasks: %v; containers %v", tasks, names(snap))
	}
}

func names(snap *inventory.Snapshot) []string {
	var out []string
	for _, c := range snap.Containers {
		out = append(out, c.Name)
	}
	return out
}
