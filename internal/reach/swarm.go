package reach

import (
	"slices"

	"github.com/zonewarden/zonewarden/internal/inventory"
)

// SplitSeparator joins an encrypted overlay's name and a node's in the
// name of the part of the overlay that node's kernel keeps to itself
// ("back@node2"): see splitOverlays.
const SplitSeparator = "@"

// splitOverlays returns snap as its packets see it: an encrypted overlay
// carries nothing between a node whose kernel cannot encrypt and any other
// node (Docker's IPsec security associations fail there, silently), so
// the overlay falls apart into one network per such node, holding that
// node's tasks, and the rest, where nodes that can (or were not probed)
// still reach each other. Without a Swarm, or without such a node, snap
// is returned as it is; otherwise a copy.
func splitOverlays(snap *inventory.Snapshot) *inventory.Snapshot {
	if snap.Swarm == nil {
		return snap
	}
	cannot := map[string]bool{}
	for _, n := range snap.Swarm.Nodes {
		if n.IPsec != nil && !n.IPsec.CanEncrypt() {
			cannot[n.Hostname] = true
		}
	}
	if len(cannot) == 0 {
		return snap
	}
	encrypted := map[string]*inventory.Network{}
	for i := range snap.Networks {
		if n := &snap.Networks[i]; n.Encrypted() {
			encrypted[n.Name] = n
		}
	}
	if len(encrypted) == 0 {
		return snap
	}
	out := *snap
	out.Networks = slices.Clone(snap.Networks)
	out.Containers = slices.Clone(snap.Containers)
	added := map[string]bool{}
	for i := range out.Containers {
		c := &out.Containers[i]
		if !cannot[c.Node] {
			continue
		}
		split := false
		eps := slices.Clone(c.Endpoints)
		for j := range eps {
			n, ok := encrypted[eps[j].Network]
			if !ok {
				continue
			}
			name := n.Name + SplitSeparator + c.Node
			if !added[name] {
				part := *n
				part.Name, part.ID = name, ""
				out.Networks = append(out.Networks, part)
				added[name] = true
			}
			eps[j].Network, split = name, true
		}
		if split {
			c.Endpoints = eps
			if _, ok := encrypted[c.NetworkMode]; ok {
				c.NetworkMode += SplitSeparator + c.Node
			}
		}
	}
	return &out
}
