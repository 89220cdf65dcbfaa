package swarmbed

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
)

// OverlayOpts are the options of an overlay network.
type OverlayOpts struct {
	Encrypted  bool // --opt encrypted
	Attachable bool
	Internal   bool
	Subnet     string // empty: from the Swarm's pool
}

// Overlay creates an overlay network through node 1 (a manager) and
// returns its id. Down removes it with the bed.
func (b *Bed) Overlay(t testing.TB, name string, o OverlayOpts) string {
	t.Helper()
	opts := network.CreateOptions{Driver: "overlay", Attachable: o.Attachable, Internal: o.Internal, Options: map[string]string{}}
	if o.Encrypted {
		opts.Options["encrypted"] = ""
	}
	if o.Subnet != "" {
		opts.IPAM = &network.IPAM{Config: []network.IPAMConfig{{Subnet: o.Subnet}}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := b.Nodes[0].Client.NetworkCreate(ctx, name, opts)
	if err != nil {
		t.Fatalf("creating overlay %s: %v", name, err)
	}
	return resp.ID
}

// ServiceSpec is a service to create.
type ServiceSpec struct {
	Name string
	// Replicas tasks (1 when 0), or one per node when Global.
	Replicas uint64
	Global   bool
	Networks []string
	Ports    []swarm.PortConfig
	// DNSRR resolves the service name to its tasks' addresses (the
	// default, a virtual IP, needs IPVS, which this kernel lacks).
	DNSRR       bool
	Cmd         []string // default: the image's (sleep 3600)
	Constraints []string
	Labels      map[string]string
}

// Service creates a service through node 1 and waits until all its tasks
// run; it returns the service's id.
func (b *Bed) Service(t testing.TB, s ServiceSpec) string {
	t.Helper()
	spec := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: s.Name, Labels: s.Labels},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: b.Image, Command: s.Cmd, StopGracePeriod: ptr(time.Second)},
			Placement:     &swarm.Placement{Constraints: s.Constraints},
		},
		EndpointSpec: &swarm.EndpointSpec{Mode: swarm.ResolutionModeVIP, Ports: s.Ports},
	}
	if s.DNSRR {
		spec.EndpointSpec.Mode = swarm.ResolutionModeDNSRR
	}
	for _, n := range s.Networks {
		spec.TaskTemplate.Networks = append(spec.TaskTemplate.Networks, swarm.NetworkAttachmentConfig{Target: n})
	}
	want := int(max(1, s.Replicas))
	if s.Global {
		spec.Mode = swarm.ServiceMode{Global: &swarm.GlobalService{}}
		want = len(b.Nodes)
	} else {
		spec.Mode = swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: ptr(uint64(want))}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := b.Nodes[0].Client.ServiceCreate(ctx, spec, swarm.ServiceCreateOptions{})
	if err != nil {
		t.Fatalf("creating service %s: %v", s.Name, err)
	}
	b.WaitTasks(t, s.Name, want, time.Minute)
	return resp.ID
}

func ptr[T any](v T) *T { return &v }

// WaitTasks waits until the service has n running tasks (and no other
// task it wants running) and returns them.
func (b *Bed) WaitTasks(t testing.TB, service string, n int, within time.Duration) []swarm.Task {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		tasks, err := b.Nodes[0].Client.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(
			filters.Arg("service", service), filters.Arg("desired-state", "running"))})
		cancel()
		running := 0
		var states []string
		for _, task := range tasks {
			states = append(states, fmt.Sprintf("%.12s on %.12s: %s %s", task.ID, task.NodeID, task.Status.State, task.Status.Err))
			if task.Status.State == swarm.TaskStateRunning {
				running++
			}
		}
		if err == nil && running == n && len(tasks) == n {
			return tasks
		}
		if time.Now().After(deadline) {
			t.Fatalf("service %s: %d of %d tasks running after %s (%v): %s", service, running, n, within, err, strings.Join(states, "; "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Constrain replaces a service's placement constraints (docker service
// update --constraint-rm/--constraint-add), which reschedules its tasks,
// and waits until its n tasks run again, on nodes that meet them.
func (b *Bed) Constrain(t testing.TB, service string, n int, constraints ...string) []swarm.Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := b.Nodes[0].Client
	s, _, err := c.ServiceInspectWithRaw(ctx, service, swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatalf("inspecting service %s: %v", service, err)
	}
	spec := s.Spec
	if spec.TaskTemplate.Placement == nil {
		spec.TaskTemplate.Placement = &swarm.Placement{}
	}
	spec.TaskTemplate.Placement.Constraints = constraints
	if _, err := c.ServiceUpdate(ctx, s.ID, s.Version, spec, swarm.ServiceUpdateOptions{}); err != nil {
		t.Fatalf("updating service %s: %v", service, err)
	}
	// The old tasks stop as the new ones start: wait for n tasks running
	// that were made for the new spec.
	deadline := time.Now().Add(time.Minute)
	for {
		tasks := b.WaitTasks(t, service, n, time.Until(deadline))
		fresh := 0
		for _, task := range tasks {
			if p := task.Spec.Placement; p != nil && slices.Equal(p.Constraints, constraints) {
				fresh++
			}
		}
		if fresh == n {
			return tasks
		}
		if time.Now().After(deadline) {
			t.Fatalf("service %s: its tasks did not move within a minute", service)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Task is one running task as its node shows it.
type Task struct {
	Name string // its container's name: service.slot.id
	Node string // its node's hostname
	Pid  int    // its container's process: /proc/PID/ns/net
	Addr netip.Addr
}

// Tasks returns the running tasks attached to an overlay, on every node,
// by service, with their address there.
func (b *Bed) Tasks(t testing.TB, network string) map[string][]Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := map[string][]Task{}
	for _, n := range b.Nodes {
		list, err := n.Client.ContainerList(ctx, container.ListOptions{})
		if err != nil {
			t.Fatalf("listing the containers of %s: %v", n.Hostname, err)
		}
		for _, c := range list {
			ep := c.NetworkSettings.Networks[network]
			service := c.Labels["com.docker.swarm.service.name"]
			if ep == nil || service == "" {
				continue
			}
			info, err := n.Client.ContainerInspect(ctx, c.ID)
			if err != nil || info.State == nil || info.State.Pid <= 0 {
				t.Fatalf("inspecting %s on %s: %v", c.ID, n.Hostname, err)
			}
			addr, _ := netip.ParseAddr(ep.IPAddress)
			out[service] = append(out[service], Task{Name: strings.TrimPrefix(c.Names[0], "/"), Node: n.Hostname, Pid: info.State.Pid, Addr: addr})
		}
	}
	return out
}

// WaitGossip waits until every node with a task on the overlay lists, in
// the network's verbose inspect, exactly the running tasks the manager
// has on it. That list comes from the Swarm's gossip, as do the VXLAN
// entries Docker programs for the tasks of other nodes: until it settles,
// Docker itself carries nothing to a new task from another node.
func (b *Bed) WaitGossip(t testing.TB, overlay string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		problem := b.gossipProblem(overlay)
		if problem == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gossip of overlay %s did not settle in %s: %s", overlay, within, problem)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (b *Bed) gossipProblem(overlay string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tasks, err := b.Nodes[0].Client.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("desired-state", "running"))})
	if err != nil {
		return err.Error()
	}
	var want []string
	for _, task := range tasks {
		if task.Status.State != swarm.TaskStateRunning {
			return "task " + task.ID + " is " + string(task.Status.State)
		}
		for _, a := range task.NetworksAttachments {
			if a.Network.Spec.Name == overlay {
				for _, addr := range a.Addresses {
					want = append(want, strings.Split(addr, "/")[0])
				}
			}
		}
	}
	slices.Sort(want)
	for _, n := range b.Nodes {
		r, err := n.Client.NetworkInspect(ctx, overlay, network.InspectOptions{Verbose: true, Scope: "swarm"})
		if err != nil {
			continue // no task of this node on it
		}
		local := 0
		for id := range r.Containers {
			if !strings.HasPrefix(id, "lb-") {
				local++
			}
		}
		if local == 0 {
			continue
		}
		var got []string
		for _, s := range r.Services {
			for _, task := range s.Tasks {
				got = append(got, task.EndpointIP)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return fmt.Sprintf("%s lists %v, the manager %v", n.Hostname, got, want)
		}
	}
	return ""
}
