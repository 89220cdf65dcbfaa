// Package plan computes what must change on a Docker host for it to match
// a policy: networks to create or re-create, memberships to add and to
// remove, and what the Docker side cannot fix (unmatched containers,
// published ports the policy does not allow).
//
// It is pure: it compares a host snapshot with the desired state and
// returns a plan; the CLI executes it through the Docker adapter.
package plan

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/zonewarden/zonewarden/internal/inventory"
)

// LabelManaged marks the networks zonewarden creates; its value is the
// zone name.
const LabelManaged = "zonewarden.zone"

// Zone is one network the policy wants.
type Zone struct {
	Name     string
	Internal bool
	// Overlay: the zone is a Swarm overlay network (ComputeSwarm), with
	// IPsec between nodes when Encrypted.
	Overlay   bool `json:",omitempty"`
	Encrypted bool `json:",omitempty"`
}

// Desired is the state a policy asks of the host, already bound to its
// containers.
type Desired struct {
	Zones []Zone
	// Members maps each container a workload selects to the zones it must
	// be on, and on no other network.
	Members map[string][]string
	// Unmatched lists the containers no workload selects.
	Unmatched []string
	// Fenced lists those of them on a default: deny zone, each with its
	// zones ("c (on default: deny zone z)"): they are denied every flow
	// of the zones, whatever unmanaged says.
	Fenced []string
	// PublishAllowed reports whether the policy lets container publish b;
	// nil allows everything.
	PublishAllowed func(container string, b inventory.PortBinding) bool
}

// Membership is one container on one network.
type Membership struct {
	Container string `json:"container"`
	Network   string `json:"network"`
}

// Recreate is a network whose internal flag is wrong: Docker cannot change
// it, so the network is removed and created again, and its members lose
// connectivity on it meanwhile.
type Recreate struct {
	Network  string   `json:"network"`
	Internal bool     `json:"internal"`
	Members  []string `json:"members"`
	// Ours tells whether zonewarden created the network; others are only
	// re-created with --recreate-networks.
	Ours bool `json:"created_by_zonewarden"`
}

// Published is a published port the policy does not allow.
type Published struct {
	Container string `json:"container"`
	Binding   string `json:"binding"`
}

// Plan is the difference between a host and a policy.
type Plan struct {
	Create     []Zone       `json:"create_networks"`
	Recreate   []Recreate   `json:"recreate_networks"`
	Connect    []Membership `json:"connect"`
	Disconnect []Membership `json:"disconnect"`
	// Unmatched containers and disallowed published ports are reported;
	// the Docker side cannot fix them (the firewall can).
	Unmatched []string `json:"unmatched_containers"`
	// Fenced are the unmatched containers on a default: deny zone: the
	// firewall denies them every flow into, out of and inside the zones.
	Fenced    []string    `json:"fenced_containers"`
	Published []Published `json:"published_not_allowed"`
	// Unenforceable lists containers no workload selects that are on a
	// macvlan or ipvlan network ("c (macvlan network n)"): their traffic
	// there never crosses this host's netfilter. (A selected container is
	// disconnected from such a network: it is not one of its zones.)
	Unenforceable []string `json:"unenforceable"`
	// Services are the Swarm services whose overlays change
	// (ComputeSwarm).
	Services []ServiceUpdate `json:"update_services,omitempty"`
	// Warnings are what apply can do but the operator should know.
	Warnings []string `json:"warnings,omitempty"`
	// Blockers are reasons the host cannot satisfy the policy; apply
	// changes nothing while there is one.
	Blockers []string `json:"blockers"`
	// Firewall is the change to zonewarden's nftables table, when the
	// plan was made against a live host.
	Firewall *Firewall `json:"firewall,omitempty"`
	// Recorded is how the policy treats the flows recorded on the host
	// (zonewarden learn), when plan was given them.
	Recorded *Recorded `json:"recorded_flows,omitempty"`
}

// Recorded is what a policy would do to the flows learn recorded.
type Recorded struct {
	File  string `json:"file"`
	Total int    `json:"total"`
	// Unjudged counts the host's own flows and those of containers no
	// longer on the host.
	Unjudged int `json:"unjudged"`
	// Broken are the flows the policy denies: dropped, or only logged as
	// would deny where every zone concerned is in monitor mode.
	Broken []BrokenFlow `json:"broken"`
}

// BrokenFlow is one recorded flow a policy denies.
type BrokenFlow struct {
	Flow      string `json:"flow"` // "web -> db 5432/tcp"
	Count     int64  `json:"count"`
	Last      string `json:"last_seen"`
	Reason    string `json:"reason"`
	Monitored bool   `json:"monitored"`
}

// Firewall is what apply would change in zonewarden's nftables table.
type Firewall struct {
	// Installed tells whether the table is there now; when it is not,
	// apply creates it with Elements set elements.
	Installed bool `json:"installed"`
	Elements  int  `json:"elements"`
	// Added and Removed count set elements (admitted addresses, flows);
	// Chains tells that the rules themselves change.
	Added   int  `json:"added"`
	Removed int  `json:"removed"`
	Chains  bool `json:"chains"`
	// Sample shows a few of the changed elements, "+ set: element".
	Sample []string `json:"sample"`
}

// Changes reports whether the firewall would change.
func (f *Firewall) Changes() bool {
	return f != nil && (!f.Installed || f.Added+f.Removed > 0 || f.Chains)
}

// Changes reports whether applying the plan would change the host.
func (p *Plan) Changes() bool {
	return len(p.Create)+len(p.Recreate)+len(p.Connect)+len(p.Disconnect)+len(p.Services) > 0 || p.Firewall.Changes()
}

// Compute compares the host with the desired state.
func Compute(snap *inventory.Snapshot, want Desired) *Plan {
	ix := inventory.NewIndex(snap)
	p := &Plan{Create: []Zone{}, Recreate: []Recreate{}, Connect: []Membership{}, Disconnect: []Membership{},
		Unmatched: slices.Sorted(slices.Values(want.Unmatched)), Fenced: slices.Sorted(slices.Values(want.Fenced)),
		Published: []Published{}, Blockers: []string{}, Unenforceable: []string{}}
	if p.Fenced == nil {
		p.Fenced = []string{}
	}
	if p.Unmatched == nil {
		p.Unmatched = []string{}
	}
	for _, name := range p.Unmatched {
		if c := ix.Container(name); c != nil {
			for _, e := range c.Endpoints {
				if n := ix.Network(e.Network); n != nil && (n.Driver == "macvlan" || n.Driver == "ipvlan") {
					p.Unenforceable = append(p.Unenforceable, fmt.Sprintf("%s (%s network %s)", name, n.Driver, n.Name))
				}
			}
		}
	}
	zones := make(map[string]bool, len(want.Zones))
	for _, z := range want.Zones {
		zones[z.Name] = true
		n := ix.Network(z.Name)
		switch {
		case n == nil:
			p.Create = append(p.Create, z)
		case n.Driver == "macvlan" || n.Driver == "ipvlan":
			p.Blockers = append(p.Blockers, fmt.Sprintf("zone %s: network %s exists with driver %s, whose traffic never crosses this host's netfilter, so zonewarden could not enforce the zone's flows; a zone must be a user-defined bridge network (rename the zone or move the containers off the network)", z.Name, n.Name, n.Driver))
		case n.Driver != "bridge" || n.IsBuiltin():
			p.Blockers = append(p.Blockers, fmt.Sprintf("zone %s: network %s exists with driver %s; a zone must be a user-defined bridge network (rename the zone or remove the network)", z.Name, n.Name, n.Driver))
		case n.Internal != z.Internal:
			members := containerNames(ix.Members(n.Name))
			p.Recreate = append(p.Recreate, Recreate{Network: n.Name, Internal: z.Internal, Members: members, Ours: n.Labels[LabelManaged] != ""})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want.Members)) {
		c := ix.Container(name)
		if c == nil {
			continue
		}
		wantZones := want.Members[name]
		switch {
		case c.UsesHostNetwork() && len(wantZones) > 0:
			p.Blockers = append(p.Blockers, fmt.Sprintf("container %s runs with --network host: it cannot join zones %s (re-create it on a bridge network, or narrow the workload's match so that it leaves the container unmanaged)", name, strings.Join(wantZones, ", ")))
			continue
		case c.SharedNamespaceWith() != "":
			if len(wantZones) > 0 {
				p.Blockers = append(p.Blockers, fmt.Sprintf("container %s uses the network namespace of %s: it follows that container's zones; narrow the workload's match so that it leaves the container unmanaged", name, c.SharedNamespaceWith()))
			}
			continue
		case c.NoNetwork() && len(wantZones) > 0:
			p.Blockers = append(p.Blockers, fmt.Sprintf("container %s runs with --network none: Docker cannot connect it to zones %s (re-create it on a bridge network)", name, strings.Join(wantZones, ", ")))
			continue
		}
		on := map[string]bool{}
		for _, e := range c.Endpoints {
			on[e.Network] = true
		}
		for _, z := range wantZones {
			if !on[z] {
				p.Connect = append(p.Connect, Membership{Container: name, Network: z})
			}
		}
		for _, e := range c.Endpoints {
			if !slices.Contains(wantZones, e.Network) {
				p.Disconnect = append(p.Disconnect, Membership{Container: name, Network: e.Network})
			}
		}
		if want.PublishAllowed != nil {
			for _, b := range ix.PublishedPorts(c) {
				if !want.PublishAllowed(name, b) {
					p.Published = append(p.Published, Published{Container: name, Binding: b.String()})
				}
			}
		}
	}
	return p
}

func containerNames(cs []*inventory.Container) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	slices.Sort(out)
	return out
}

// Simulate returns the snapshot as it would be after the Docker side of
// p: networks created (with no subnet known yet), memberships added
// (without addresses) and removed. It lets an offline host show its state
// after apply.
func Simulate(snap *inventory.Snapshot, p *Plan) *inventory.Snapshot {
	out := *snap
	out.Networks = slices.Clone(snap.Networks)
	for _, z := range p.Create {
		out.Networks = append(out.Networks, inventory.Network{Name: z.Name, Driver: "bridge", ICC: true, Internal: z.Internal,
			Labels: map[string]string{LabelManaged: z.Name}})
	}
	for i := range out.Networks {
		for _, r := range p.Recreate {
			if out.Networks[i].Name == r.Network {
				out.Networks[i].Internal = r.Internal
			}
		}
	}
	out.Containers = slices.Clone(snap.Containers)
	for i := range out.Containers {
		c := &out.Containers[i]
		c.Endpoints = slices.DeleteFunc(slices.Clone(c.Endpoints), func(e inventory.Endpoint) bool {
			return slices.Contains(p.Disconnect, Membership{Container: c.Name, Network: e.Network})
		})
		for _, m := range p.Connect {
			if m.Container == c.Name {
				c.Endpoints = append(c.Endpoints, inventory.Endpoint{Network: m.Network})
			}
		}
	}
	inventory.Sort(&out)
	return &out
}
