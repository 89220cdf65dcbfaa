package plan

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/zonewarden/zonewarden/internal/inventory"
)

// ServiceUpdate is a Swarm service whose overlays change: apply adds
// every network of Add (docker service update --network-add), waits until
// its tasks run on them, and only then removes those of Remove, so that a
// service moving between zones is never without its peers.
type ServiceUpdate struct {
	Service string   `json:"service"`
	Add     []string `json:"add_networks"`
	Remove  []string `json:"remove_networks"`
	// Keep are the zones it is on and stays on.
	Keep  []string `json:"keep_networks"`
	Tasks int      `json:"tasks"` // tasks it runs now
}

// ComputeSwarm compares a Swarm, read through a manager, with the desired
// state: each zone is an overlay network (encrypted unless the zone says
// otherwise), and each service joins the zones of the workload that
// selects its tasks, by service update. Docker cannot change an overlay's
// flags in place, and a Swarm re-creates nothing: a zone whose overlay has
// the wrong flags blocks the plan. An encrypted zone blocks it too while a
// node's kernel cannot encrypt (the overlay would carry nothing between
// nodes); a node whose kernel was not probed is a warning.
func ComputeSwarm(snap *inventory.Snapshot, want Desired) *Plan {
	ix := inventory.NewIndex(snap)
	p := &Plan{Create: []Zone{}, Recreate: []Recreate{}, Connect: []Membership{}, Disconnect: []Membership{},
		Fenced: slices.Sorted(slices.Values(want.Fenced)), Published: []Published{}, Blockers: []string{}, Unenforceable: []string{},
		Services: []ServiceUpdate{}}
	if p.Fenced == nil {
		p.Fenced = []string{}
	}
	encrypted := false
	for _, z := range want.Zones {
		encrypted = encrypted || z.Encrypted
		n := ix.Network(z.Name)
		switch {
		case n == nil:
			z.Overlay = true
			p.Create = append(p.Create, z)
		case n.Driver != "overlay":
			p.Blockers = append(p.Blockers, fmt.Sprintf("zone %s: network %s exists with driver %s; on a Swarm a zone must be an overlay network (rename the zone or remove the network)", z.Name, n.Name, n.Driver))
		case n.Internal != z.Internal || n.Encrypted() != z.Encrypted:
			p.Blockers = append(p.Blockers, fmt.Sprintf("zone %s: overlay %s is %s and %s, the zone wants it %s and %s; Docker cannot change that in place: move its services off, remove it and apply again, or change the zone",
				z.Name, n.Name, InternalWord(n.Internal), encryptedWord(n.Encrypted()), InternalWord(z.Internal), encryptedWord(z.Encrypted)))
		}
	}
	if encrypted && snap.Swarm != nil {
		for _, node := range snap.Swarm.Nodes {
			switch {
			case node.IPsec == nil:
				p.Warnings = append(p.Warnings, fmt.Sprintf("node %s: its kernel was not probed for IPsec (zonewarden probes the kernel it runs on, for nodes given with --swarm-node on a local socket); if it lacks ESP or AES-GCM, the encrypted zones carry nothing to or from it", node.Hostname))
			case !node.IPsec.CanEncrypt():
				p.Blockers = append(p.Blockers, fmt.Sprintf("node %s: its kernel cannot encrypt (missing %s), so an encrypted zone's overlay would carry nothing between it and the other nodes; give it a kernel with them, or set encrypted: false on the zones (plain VXLAN between nodes)",
					node.Hostname, strings.Join(node.IPsec.Missing, ", ")))
			}
		}
	}

	// Services: the zones of the workload that selects their tasks.
	wantOf := map[string][]string{} // service: zones
	tasks := map[string]int{}
	split := map[string]bool{} // services whose tasks workloads split
	var unmatched []string
	for i := range snap.Containers {
		c := &snap.Containers[i]
		svc := c.SwarmService()
		if svc == "" {
			if _, selected := want.Members[c.Name]; selected {
				p.Warnings = append(p.Warnings, fmt.Sprintf("container %s is not a Swarm task: apply on a Swarm changes services only; connect it by hand or leave it out of the workloads", c.Name))
			}
			continue
		}
		if !c.Running() {
			continue
		}
		tasks[svc]++
		zones, selected := want.Members[c.Name]
		if !selected {
			unmatched = append(unmatched, svc)
			continue
		}
		zones = slices.Sorted(slices.Values(zones))
		if prev, seen := wantOf[svc]; seen && !slices.Equal(prev, zones) && !split[svc] {
			split[svc] = true
			p.Blockers = append(p.Blockers, fmt.Sprintf("service %s: its tasks are selected into different zones (%s and %s); select a service's tasks by its name so that one workload takes them all",
				svc, strings.Join(prev, ", "), strings.Join(zones, ", ")))
		}
		wantOf[svc] = zones
	}
	for svc := range split {
		delete(wantOf, svc)
	}
	p.Unmatched = slices.Compact(slices.Sorted(slices.Values(unmatched)))
	if p.Unmatched == nil {
		p.Unmatched = []string{}
	}
	for _, svc := range slices.Sorted(maps.Keys(wantOf)) {
		var current []string
		if snap.Swarm != nil {
			if s := snap.Swarm.Service(svc); s != nil {
				current = s.Networks
			}
		}
		u := ServiceUpdate{Service: svc, Tasks: tasks[svc]}
		for _, z := range wantOf[svc] {
			if !slices.Contains(current, z) {
				u.Add = append(u.Add, z)
			}
		}
		for _, n := range current {
			if !slices.Contains(wantOf[svc], n) {
				u.Remove = append(u.Remove, n)
			} else {
				u.Keep = append(u.Keep, n)
			}
		}
		if len(u.Add)+len(u.Remove) > 0 {
			p.Services = append(p.Services, u)
		}
	}
	return p
}

// InternalWord names a network's internal flag in a sentence.
func InternalWord(internal bool) string {
	if internal {
		return "internal"
	}
	return "not internal"
}

func encryptedWord(encrypted bool) string {
	if encrypted {
		return "encrypted"
	}
	return "not encrypted"
}
