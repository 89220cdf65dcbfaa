// Package reach computes who reaches whom on a Docker host, and through
// which path, from a host snapshot.
//
// It is pure: it reads an inventory.Snapshot and never talks to Docker or
// the kernel. Docker's real behaviour is the specification; each behaviour
// modelled here is checked against real packets by the scenario tests
// (internal/truth).
package reach

import "slices"

// ThroughHost returns the containers, sorted, that reach the published
// ports of the named container only through the host: Docker DNATs (or
// its userland proxy relays) connections to any host address, a network's
// gateway address included, on to the publishing container, whatever
// network the client is on (over IPv6 too, from internal networks, when
// Docker does not filter IPv6). Docker's network isolation does not cover
// this path. Containers that share a network with ICC on, its namespace,
// or the host's namespace reach it anyway and are not listed.
func (a *Analysis) ThroughHost(name string) []string {
	d, ok := a.byName[name]
	if !ok {
		return nil
	}
	d = a.owner[d]
	if len(a.pubVia[d]) == 0 {
		return nil
	}
	var out []string
	for t, c := range a.cs {
		o := a.owner[t]
		through := a.routed[o] || a.routed6[o] && len(a.pub6Via[d]) > 0
		if o == d || !through || a.sharesICCNetwork(o, d) {
			continue
		}
		out = append(out, c.Name)
	}
	return out
}

// sharesICCNetwork reports whether owners o and d are both on a network
// with inter-container communication on.
func (a *Analysis) sharesICCNetwork(o, d int) bool {
	for _, ni := range a.nets[o] {
		if a.netICC[ni] {
			if _, found := slices.BinarySearch(a.nets[d], ni); found {
				return true
			}
		}
	}
	return false
}
