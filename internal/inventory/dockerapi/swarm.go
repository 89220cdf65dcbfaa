package dockerapi

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
)

// readSwarm reads, on a Swarm manager, the Swarm into snap: its nodes and
// services, and the running tasks of every node as containers (those of
// this node are among snap's containers already: they get their node and
// their service's published ports). On a worker or outside a Swarm it
// reads nothing: only managers answer for the Swarm.
func (c *Client) readSwarm(ctx context.Context, snap *inventory.Snapshot) error {
	if snap.Daemon.SwarmRole != "manager" {
		return nil
	}
	sw, err := c.api.SwarmInspect(ctx)
	if err != nil {
		return c.explain(err)
	}
	nodes, err := c.api.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return c.explain(err)
	}
	services, err := c.api.ServiceList(ctx, swarm.ServiceListOptions{})
	if err != nil {
		return c.explain(err)
	}
	tasks, err := c.api.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("desired-state", "running"))})
	if err != nil {
		return c.explain(err)
	}
	out := &inventory.Swarm{ClusterID: sw.ID}
	hostname := map[string]string{}
	for _, n := range nodes {
		out.Nodes = append(out.Nodes, convertNode(n))
		hostname[n.ID] = n.Description.Hostname
	}
	slices.SortFunc(out.Nodes, func(a, b inventory.SwarmNode) int { return strings.Compare(a.Hostname, b.Hostname) })
	netName := map[string]string{}
	for _, n := range snap.Networks {
		netName[n.ID] = n.Name
	}
	byID := map[string]*inventory.Service{}
	for _, s := range services {
		out.Services = append(out.Services, convertService(s, netName))
	}
	slices.SortFunc(out.Services, func(a, b inventory.Service) int { return strings.Compare(a.Name, b.Name) })
	for i := range out.Services {
		byID[out.Services[i].ID] = &out.Services[i]
	}
	local := map[string]int{}
	for i, ct := range snap.Containers {
		local[ct.ID] = i
		if snap.Daemon.SwarmNodeID != "" {
			snap.Containers[i].Node = hostname[snap.Daemon.SwarmNodeID]
		}
	}
	for _, t := range tasks {
		ct := convertTask(t, byID[t.ServiceID], hostname[t.NodeID])
		if i, ok := local[ct.ID]; ok && ct.ID != "" {
			// This node's: the inspect knows more; the task adds where it
			// runs and what it publishes.
			snap.Containers[i].Node = ct.Node
			snap.Containers[i].Ports = append(snap.Containers[i].Ports, ct.Ports...)
			continue
		}
		snap.Containers = append(snap.Containers, ct)
	}
	snap.Swarm = out
	return nil
}

func convertNode(n swarm.Node) inventory.SwarmNode {
	out := inventory.SwarmNode{
		ID:           n.ID,
		Hostname:     n.Description.Hostname,
		Role:         string(n.Spec.Role),
		Availability: string(n.Spec.Availability),
		State:        string(n.Status.State),
		Engine:       n.Description.Engine.EngineVersion,
		Labels:       n.Spec.Labels,
	}
	if a, err := netip.ParseAddr(n.Status.Addr); err == nil {
		out.Addr = a
	}
	if n.ManagerStatus != nil {
		out.Leader = n.ManagerStatus.Leader
	}
	return out
}

func convertService(s swarm.Service, netName map[string]string) inventory.Service {
	out := inventory.Service{
		ID:     s.ID,
		Name:   s.Spec.Name,
		Labels: s.Spec.Labels,
		Stack:  s.Spec.Labels[inventory.LabelStack],
		Mode:   "replicated",
	}
	switch {
	case s.Spec.Mode.Global != nil:
		out.Mode = "global"
	case s.Spec.Mode.Replicated != nil && s.Spec.Mode.Replicated.Replicas != nil:
		out.Replicas = *s.Spec.Mode.Replicated.Replicas
	}
	if cs := s.Spec.TaskTemplate.ContainerSpec; cs != nil {
		out.Image = imageName(cs.Image)
	}
	if p := s.Spec.TaskTemplate.Placement; p != nil {
		out.Constraints = p.Constraints
	}
	for _, n := range s.Spec.TaskTemplate.Networks {
		name := netName[n.Target]
		if name == "" {
			name = n.Target // created by name, or a network this manager lists under another id
		}
		out.Networks = append(out.Networks, name)
	}
	if ep := s.Spec.EndpointSpec; ep != nil {
		out.EndpointMode = string(ep.Mode)
	}
	if out.EndpointMode == "" {
		out.EndpointMode = string(swarm.ResolutionModeVIP)
	}
	// The ports as the Swarm applied them (Endpoint), else as asked.
	ports := s.Endpoint.Ports
	if len(ports) == 0 && s.Spec.EndpointSpec != nil {
		ports = s.Spec.EndpointSpec.Ports
	}
	for _, p := range ports {
		out.Ports = append(out.Ports, inventory.ServicePort{Target: servicePort(p), Published: uint16(p.PublishedPort), Mode: publishMode(p)})
	}
	return out
}

func servicePort(p swarm.PortConfig) l4.Port {
	proto := string(p.Protocol)
	if proto == "" {
		proto = l4.ProtoTCP
	}
	return l4.Port{Proto: proto, Number: uint16(p.TargetPort)}
}

func publishMode(p swarm.PortConfig) string {
	if p.PublishMode == swarm.PortConfigPublishModeHost {
		return inventory.PublishHost
	}
	return inventory.PublishIngress
}

// imageName drops the digest Swarm pins a service's image to.
func imageName(ref string) string {
	name, _, _ := strings.Cut(ref, "@")
	return name
}

// convertTask is a running task as a container: where it runs, its
// addresses on the overlays it joins, and the ports it publishes on its
// node (host mode; ingress ports belong to the service, on every node).
func convertTask(t swarm.Task, s *inventory.Service, node string) inventory.Container {
	out := inventory.Container{Node: node, State: taskState(t.Status.State)}
	if cs := t.Status.ContainerStatus; cs != nil {
		out.ID = cs.ContainerID
	}
	service := t.ServiceID
	if s != nil {
		service = s.Name
	}
	slot := fmt.Sprint(t.Slot)
	if t.Slot == 0 {
		slot = t.NodeID // global services name tasks by node
	}
	out.Name = service + "." + slot + "." + t.ID
	out.Labels = map[string]string{inventory.LabelSwarmService: service, inventory.LabelSwarmTask: t.ID, inventory.LabelSwarmNode: t.NodeID}
	if cs := t.Spec.ContainerSpec; cs != nil {
		out.Image = imageName(cs.Image)
		for k, v := range cs.Labels {
			out.Labels[k] = v
		}
		out.CapAdd, out.CapDrop = cs.CapabilityAdd, cs.CapabilityDrop
		out.ReadOnlyRootfs = cs.ReadOnly
		out.User = cs.User
	}
	if s != nil && s.Stack != "" {
		out.Labels[inventory.LabelStack] = s.Stack
	}
	for _, a := range t.NetworksAttachments {
		e := inventory.Endpoint{Network: a.Network.Spec.Name}
		for _, addr := range a.Addresses {
			p, err := netip.ParsePrefix(addr)
			if err != nil {
				continue
			}
			if p.Addr().Is4() {
				e.IPv4 = p.Addr()
			} else {
				e.IPv6 = p.Addr()
			}
		}
		out.Endpoints = append(out.Endpoints, e)
	}
	slices.SortFunc(out.Endpoints, func(a, b inventory.Endpoint) int { return strings.Compare(a.Network, b.Network) })
	if len(out.Endpoints) > 0 {
		out.NetworkMode = out.Endpoints[0].Network
	}
	for _, p := range t.Status.PortStatus.Ports {
		if p.PublishMode == swarm.PortConfigPublishModeHost {
			out.Ports = append(out.Ports, inventory.PortBinding{ContainerPort: servicePort(p), HostPort: uint16(p.PublishedPort)})
		}
	}
	return out
}

// taskState maps a task's state to a container's.
func taskState(s swarm.TaskState) string {
	switch s {
	case swarm.TaskStateRunning:
		return "running"
	case swarm.TaskStateComplete, swarm.TaskStateShutdown, swarm.TaskStateFailed, swarm.TaskStateRejected, swarm.TaskStateOrphaned, swarm.TaskStateRemove:
		return "exited"
	}
	return "created"
}

// MergeNode adds to a Swarm's snapshot (read from a manager) what only a
// node's own daemon shows of its containers, read into node: their
// processes (Pid, for verify to enter their namespaces) and MACs. It
// returns how many of the Swarm's containers it completed.
func MergeNode(snap, node *inventory.Snapshot) int {
	byID := make(map[string]*inventory.Container, len(node.Containers))
	for i := range node.Containers {
		byID[node.Containers[i].ID] = &node.Containers[i]
	}
	n := 0
	for i := range snap.Containers {
		c := &snap.Containers[i]
		local, ok := byID[c.ID]
		if !ok || c.ID == "" {
			continue
		}
		c.Pid = local.Pid
		c.ExposedPorts = local.ExposedPorts
		for j := range c.Endpoints {
			for _, e := range local.Endpoints {
				if e.Network == c.Endpoints[j].Network && c.Endpoints[j].MAC == "" {
					c.Endpoints[j].MAC = e.MAC
				}
			}
		}
		n++
	}
	return n
}

// UpdateServiceNetworks changes the overlays of a service's tasks in one
// service update (docker service update --network-add/--network-rm): it
// adds add and removes remove, by name. Swarm then replaces the tasks;
// WaitService waits for them.
func (c *Client) UpdateServiceNetworks(ctx context.Context, service string, add, remove []string) error {
	s, _, err := c.api.ServiceInspectWithRaw(ctx, service, swarm.ServiceInspectOptions{})
	if err != nil {
		return c.explain(err)
	}
	nets, err := c.api.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return c.explain(err)
	}
	name := map[string]string{}
	for _, n := range nets {
		name[n.ID] = n.Name
	}
	spec := s.Spec
	// Services created by old clients keep their networks in the
	// deprecated field: they move to the task template.
	//lint:ignore SA1019 read to move them
	attached := append(slices.Clone(spec.TaskTemplate.Networks), spec.Networks...)
	//lint:ignore SA1019 emptied, see above
	spec.Networks = nil
	var keep []swarm.NetworkAttachmentConfig
	for _, a := range attached {
		n := a.Target
		if v, ok := name[n]; ok {
			n = v
		}
		if !slices.Contains(remove, n) && !slices.Contains(add, n) {
			keep = append(keep, a)
		}
	}
	for _, n := range add {
		keep = append(keep, swarm.NetworkAttachmentConfig{Target: n})
	}
	spec.TaskTemplate.Networks = keep
	if _, err := c.api.ServiceUpdate(ctx, s.ID, s.Version, spec, swarm.ServiceUpdateOptions{}); err != nil {
		return fmt.Errorf("service update %s: %w", service, c.explain(err))
	}
	return nil
}

// WaitService waits until every task the service wants running runs, on
// exactly these overlays (the routing mesh's ingress aside), or ctx ends.
func (c *Client) WaitService(ctx context.Context, service string, networks []string) error {
	want := slices.Sorted(slices.Values(networks))
	var last string
	for {
		tasks, err := c.api.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(
			filters.Arg("service", service), filters.Arg("desired-state", "running"))})
		if err == nil {
			ready := len(tasks) > 0
			last = ""
			for _, t := range tasks {
				var on []string
				for _, a := range t.NetworksAttachments {
					if !a.Network.Spec.Ingress {
						on = append(on, a.Network.Spec.Name)
					}
				}
				slices.Sort(on)
				if t.Status.State != swarm.TaskStateRunning || !slices.Equal(on, want) {
					ready = false
					last = fmt.Sprintf("task %s is %s on %s", t.ID, t.Status.State, strings.Join(on, ", "))
				}
			}
			if ready {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if last == "" && err != nil {
				last = err.Error()
			}
			return fmt.Errorf("service %s did not converge on %s: %s (%w)", service, strings.Join(want, ", "), last, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
