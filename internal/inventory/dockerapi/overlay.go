package dockerapi

import (
	"context"
	"net/netip"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/network"

	"github.com/zonewarden/zonewarden/internal/inventory"
)

// Overlay is one Swarm overlay network as one node sees it: every task
// attached to it, on this node and on the others.
type Overlay struct {
	Network inventory.Network
	// Tasks are the tasks attached, as containers: name (service.slot.id),
	// the service's name label (LabelSwarmService), Node (the address of
	// the node it runs on) and its endpoint on the overlay. A task of
	// another node is known by these only: its container's own labels
	// live on its node.
	Tasks []inventory.Container
	// Local maps the tasks running on this node to their containers' ids.
	Local map[string]string
}

// OverlayView reads an overlay through a node's daemon (manager or
// worker): the network's verbose inspect lists the tasks of every node
// attached to it, from the Swarm's gossip, which any node with a task on
// the network holds. A network removed meanwhile, or one this node has no
// task on, reads as nil.
func (c *Client) OverlayView(ctx context.Context, id string) (*Overlay, error) {
	n, err := c.api.NetworkInspect(ctx, id, network.InspectOptions{Verbose: true, Scope: "swarm"})
	switch {
	case errdefsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, c.explain(err)
	}
	if n.Driver != "overlay" {
		return nil, nil
	}
	o := &Overlay{Network: convertNetwork(n), Local: map[string]string{}}
	local := map[string]network.EndpointResource{}
	for cid, ep := range n.Containers {
		if !strings.HasPrefix(cid, "lb-") && !strings.HasPrefix(cid, "ep-") {
			name := strings.TrimPrefix(ep.Name, "/")
			o.Local[name], local[name] = cid, ep
		}
	}
	for service, s := range n.Services {
		for _, t := range s.Tasks {
			ip, err := netip.ParseAddr(t.EndpointIP)
			if err != nil {
				continue
			}
			e := inventory.Endpoint{Network: n.Name}
			if ip.Is4() {
				e.IPv4 = ip
			} else {
				e.IPv6 = ip
			}
			if ep, ok := local[t.Name]; ok {
				// Its own node knows its MAC and IPv6 address too.
				e.MAC = ep.MacAddress
				if p, err := netip.ParsePrefix(ep.IPv6Address); err == nil {
					e.IPv6 = p.Addr()
				}
			}
			o.Tasks = append(o.Tasks, inventory.Container{
				ID:          o.Local[t.Name],
				Name:        t.Name,
				State:       "running",
				Node:        t.Info["Host IP"],
				Labels:      map[string]string{inventory.LabelSwarmService: service},
				NetworkMode: n.Name,
				Endpoints:   []inventory.Endpoint{e},
			})
		}
	}
	slices.SortFunc(o.Tasks, func(a, b inventory.Container) int { return strings.Compare(a.Name, b.Name) })
	return o, nil
}
