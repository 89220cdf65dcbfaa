package reach

import (
	"testing"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
)

// TestEncryptedOverlayOnANodeThatCannotEncrypt: the tasks of n1, whose
// kernel cannot encrypt, reach each other on the encrypted overlay but
// no task of another node; n2 and n3 (not probed) reach each other; the
// plain overlay joins every node.
func TestEncryptedOverlayOnANodeThatCannotEncrypt(t *testing.T) {
	task := func(name, node string, nets ...string) inventory.Container {
		c := inventory.Container{Name: name, State: "running", Node: node, NetworkMode: nets[0]}
		for _, n := range nets {
			c.Endpoints = append(c.Endpoints, inventory.Endpoint{Network: n})
		}
		return c
	}
	snap := &inventory.Snapshot{
		Networks: []inventory.Network{
			{Name: "back", Driver: "overlay", ICC: true, Options: map[string]string{"encrypted": ""}},
			{Name: "front", Driver: "overlay", ICC: true},
		},
		Containers: []inventory.Container{
			task("a1", "n1", "back", "front"), task("b1", "n1", "back"),
			task("a2", "n2", "back", "front"), task("a3", "n3", "back", "front"),
		},
		Swarm: &inventory.Swarm{Nodes: []inventory.SwarmNode{
			{Hostname: "n1", IPsec: &inventory.IPsec{Missing: []string{"CONFIG_INET_ESP"}}}, {Hostname: "n2"}, {Hostname: "n3"},
		}},
	}
	an := Analyze(snap, Options{})
	p := l4.Port{Proto: "tcp", Number: 5432}
	for _, tc := range []struct {
		from, to string
		want     bool
		via      string
	}{
		{"a1", "b1", true, "network:back@n1"},
		{"b1", "a2", false, ""},
		{"a2", "b1", false, ""},
		{"a2", "a3", true, "network:back network:front"},
		{"a1", "a2", true, "network:front"},
	} {
		ok, e := an.Eval(tc.from, tc.to, p)
		via := ""
		for i, v := range e.Via {
			if i > 0 {
				via += " "
			}
			via += v.String()
		}
		if ok != tc.want || ok && via != tc.via {
			t.Errorf("%s -> %s: %v via %v; want %v via %s", tc.from, tc.to, ok, e.Via, tc.want, tc.via)
		}
	}
	if len(snap.Networks) != 2 || snap.Containers[0].Endpoints[0].Network != "back" {
		t.Error("Analyze changed the snapshot it was given")
	}
}
