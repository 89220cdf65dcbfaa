package compose

import (
	"maps"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
)

// stack turns the host compose would create from p into the Swarm stack
// docker stack deploy creates from the same files (the stack named as the
// project): networks without a driver are overlays of the Swarm; each
// service is a Swarm service (named STACK_SERVICE) with its deploy: mode,
// replicas, labels, endpoint mode and placement, and its ports with their
// publish mode (ingress, the routing mesh, unless mode: host); each
// replica is a task, in state "defined", that carries the labels Swarm
// puts on tasks instead of compose's. No node is known: the stack is not
// placed yet.
func stack(p *types.Project, snap *inventory.Snapshot) {
	byName := map[string]*inventory.Network{}
	for i := range snap.Networks {
		byName[snap.Networks[i].Name] = &snap.Networks[i]
	}
	for _, cfg := range p.Networks {
		n := byName[cfg.Name]
		if n == nil || cfg.External {
			continue
		}
		if cfg.Driver == "" {
			n.Driver, n.Bridge = "overlay", ""
		}
		n.Scope = "swarm"
		n.Attachable = cfg.Attachable
		n.Labels[inventory.LabelStack] = p.Name
	}
	sw := &inventory.Swarm{}
	tasks := map[string]string{} // compose container name -> task name
	for _, name := range p.ServiceNames() {
		svc := p.Services[name]
		s := inventory.Service{Name: p.Name + "_" + name, Mode: "replicated", Replicas: 1, Image: svc.Image, Stack: p.Name, EndpointMode: "vip"}
		if d := svc.Deploy; d != nil {
			if d.Mode == "global" {
				s.Mode, s.Replicas = "global", 0
			} else if d.Replicas != nil {
				s.Replicas = uint64(max(0, *d.Replicas))
			}
			s.Labels = maps.Clone(map[string]string(d.Labels))
			if d.EndpointMode != "" {
				s.EndpointMode = d.EndpointMode
			}
			s.Constraints = d.Placement.Constraints
		}
		for _, key := range svc.NetworksByPriority() {
			if cfg, ok := p.Networks[key]; ok {
				s.Networks = append(s.Networks, cfg.Name)
			}
		}
		for _, pc := range svc.Ports {
			mode := inventory.PublishIngress
			if pc.Mode == "host" {
				mode = inventory.PublishHost
			}
			first, last, err := portRange(pc.Published)
			if err != nil || pc.Published == "" {
				continue
			}
			proto := strings.ToLower(pc.Protocol)
			if proto == "" {
				proto = l4.ProtoTCP
			}
			for port := first; port <= last && port >= first; port++ {
				target := uint16(pc.Target) + (port - first)
				s.Ports = append(s.Ports, inventory.ServicePort{Target: l4.Port{Proto: proto, Number: target}, Published: port, Mode: mode})
			}
		}
		sw.Services = append(sw.Services, s)
		for i, c := range snap.Containers {
			if c.Labels[inventory.LabelComposeService] != name || c.Labels[inventory.LabelComposeProject] != p.Name {
				continue
			}
			task := s.Name + "." + strconv.Itoa(len(tasks)+1)
			if n := strings.LastIndexByte(c.Name, '-'); n >= 0 {
				task = s.Name + "." + c.Name[n+1:] // the replica's number
			}
			tasks[c.Name] = task
			labels := maps.Clone(map[string]string(svc.Labels))
			if labels == nil {
				labels = map[string]string{}
			}
			labels[inventory.LabelSwarmService] = s.Name
			labels[inventory.LabelStack] = p.Name
			snap.Containers[i].Name = task
			snap.Containers[i].Labels = labels
		}
	}
	// References between services (namespaces shared, refs) follow the
	// renamed containers.
	for i := range snap.Containers {
		c := &snap.Containers[i]
		if other, ok := strings.CutPrefix(c.NetworkMode, "container:"); ok && tasks[other] != "" {
			c.NetworkMode = "container:" + tasks[other]
		}
	}
	snap.Swarm = sw
}
