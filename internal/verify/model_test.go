package verify

import (
	"testing"

	"github.com/zonewarden/zonewarden/internal/enforce/enforcetest"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/reach"
)

// TestNarrowerAgreesWithDecide: between every two containers of the
// enforce tests' host (managed, unmanaged, fenced), on every port the
// policy names and some it does not, the narrower keeps a port of an edge
// with no path exactly when Binding.Decide allows it, under unmanaged
// warn and deny and with the tiers default: allow. An edge over a network
// that is no zone keeps every port: TestNonZoneNetworkIsDockers.
func TestNarrowerAgreesWithDecide(t *testing.T) {
	ports := enforcetest.Ports
	for _, doc := range enforcetest.Variants() {
		p, err := policy.Parse("zones.yaml", []byte(doc), policy.Options{})
		if err != nil {
			t.Fatal(err)
		}
		snap := enforcetest.Host()
		b, _ := model.Bind(p, snap)
		narrow := Narrower(b)
		checked := 0
		for _, a := range snap.Containers {
			for _, c := range snap.Containers {
				if a.Name == c.Name {
					continue
				}
				for _, pt := range ports {
					kept := !narrow(reach.Edge{From: a.Name, To: c.Name, Ports: reach.PortSet{}.Add(pt)}).Empty()
					d := b.Decide(a.Name, c.Name, pt)
					if kept != d.Allow {
						t.Errorf("%s -> %s %s: the narrower keeps it: %v; Decide: %v (%s)", a.Name, c.Name, pt, kept, d.Allow, d.Reason)
					}
					checked++
				}
			}
		}
		if checked < 100 {
			t.Errorf("only %d decisions checked", checked)
		}
	}
}

// TestNonZoneNetworkIsDockers: traffic between two containers over a
// network that is no zone of the policy never meets zonewarden's rules
// (they filter the zones' addresses), so the model keeps the edge's ports
// whatever the policy says of the pair; over a zone, the policy decides.
func TestNonZoneNetworkIsDockers(t *testing.T) {
	p, err := policy.Parse("zones.yaml", []byte(enforcetest.Policy), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := model.Bind(p, enforcetest.Host())
	e := NewEnforced(b, EnforcedOptions{})
	var from, to, zone string
	for _, a := range b.Containers {
		for _, c := range b.Containers {
			if a.Workload == nil || c.Workload == nil || a.Container.Name == c.Container.Name || len(a.Attached) == 0 {
				continue
			}
			if open, list := b.Ports(a.Container.Name, c.Container.Name); !open && len(list) == 0 {
				from, to, zone = a.Container.Name, c.Container.Name, a.Attached[0]
			}
		}
	}
	if from == "" {
		t.Fatal("no denied pair of managed containers in the enforce tests' host")
	}
	all := reach.AllPorts()
	over := func(kind, network string) reach.Edge {
		return reach.Edge{From: from, To: to, Ports: all, Via: []reach.Reason{{Kind: kind, Network: network}}}
	}
	if got := e.Narrow(over(reach.KindNetwork, "not-a-zone")); !got.All() {
		t.Errorf("%s -> %s over a network outside the policy: %s, want every port (Docker decides)", from, to, got.Describe())
	}
	if got := e.Narrow(over(reach.KindNetwork, zone)); !got.Empty() {
		t.Errorf("%s -> %s over zone %s: %s, want nothing (the policy denies the pair)", from, to, zone, got.Describe())
	}
}
