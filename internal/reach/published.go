// Package reach computes who reaches whom on a Docker host, and through
// which path, from a host snapshot.
//
// It is pure: it reads an inventory.Snapshot and never talks to Docker or
// the kernel. Docker's real behaviour is the specification; each behaviour
// modelled here is checked against real packets by the scenario tests.
package reach

import (
	"github.com/zonewarden/zonewarden/internal/inventory"
)

// PublishedPaths answers which containers reach a published port through
// the host: Docker DNATs connections to any host address (the host's own,
// or a network's gateway address) on to the publishing container, whatever
// network the client is on. Docker's network isolation does not cover this
// path.
type PublishedPaths struct {
	ix *inventory.Index
	// routed lists the containers with a route to the host: an endpoint
	// on a non-internal bridge network. Members of internal networks only
	// are cut off from the host's published ports.
	routed []*inventory.Container
}

// NewPublishedPaths prepares the analysis for one snapshot.
func NewPublishedPaths(ix *inventory.Index) *PublishedPaths {
	p := &PublishedPaths{ix: ix}
	for i := range ix.Snap.Containers {
		c := &ix.Snap.Containers[i]
		if p.routedToHost(c) {
			p.routed = append(p.routed, c)
		}
	}
	return p
}

// netContainer resolves --network container:X to X.
func (p *PublishedPaths) netContainer(c *inventory.Container) *inventory.Container {
	for range 8 { // bounded: a chain of shared namespaces cannot loop forever
		name := c.SharedNamespaceWith()
		if name == "" {
			return c
		}
		next := p.ix.Container(name)
		if next == nil {
			return c
		}
		c = next
	}
	return c
}

func (p *PublishedPaths) routedToHost(c *inventory.Container) bool {
	c = p.netContainer(c)
	if c.UsesHostNetwork() || c.NoNetwork() {
		return false
	}
	for _, e := range c.Endpoints {
		n := p.ix.Network(e.Network)
		if n != nil && n.Driver == "bridge" && !n.Internal {
			return true
		}
	}
	return false
}

// Reachers returns the containers that share no network with target but
// reach its binding b through the host. Bindings on a loopback address
// are reachable from the host only.
func (p *PublishedPaths) Reachers(target *inventory.Container, b inventory.PortBinding) []*inventory.Container {
	if b.HostIP.IsValid() && b.HostIP.IsLoopback() {
		return nil
	}
	t := p.netContainer(target)
	own := make(map[string]bool, len(t.Endpoints))
	for _, e := range t.Endpoints {
		own[e.Network] = true
	}
	var out []*inventory.Container
	for _, c := range p.routed {
		if c == target || p.netContainer(c) == t {
			continue
		}
		shares := false
		for _, e := range p.netContainer(c).Endpoints {
			if own[e.Network] {
				shares = true
				break
			}
		}
		if !shares {
			out = append(out, c)
		}
	}
	return out
}
