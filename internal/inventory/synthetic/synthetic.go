// Package synthetic generates large, realistic host snapshots for
// benchmarks and scale tests: many projects, each with its own networks,
// some gateways, published ports and data services. It is deterministic for
// a given size and seed.
package synthetic

import (
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
)

// Host returns a snapshot with the given number of containers spread over
// the given number of user networks (at least one). One container in ten
// joins a second network, one in twenty publishes a port, one in ten is a
// data service, and one network in five is internal.
func Host(containers, networks int, seed uint64) *inventory.Snapshot {
	networks = max(networks, 1)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := &inventory.Snapshot{Version: inventory.SchemaVersion, Source: inventory.Source{Kind: "snapshot", Detail: "synthetic"}}
	s.Networks = append(s.Networks,
		inventory.Network{Name: "bridge", Driver: "bridge", ICC: true, Bridge: "docker0",
			Subnets: []inventory.Subnet{{Prefix: netip.MustParsePrefix("172.17.0.0/16")}}},
		inventory.Network{Name: "host", Driver: "host"},
		inventory.Network{Name: "none", Driver: "null"},
	)
	next := make([]netip.Addr, networks)
	for i := range networks {
		// 10.0.0.0/8 carved into /20s: 4096 addresses per network.
		base := netip.AddrFrom4([4]byte{10, byte(i >> 4), byte(i&15) << 4, 0})
		prefix := netip.PrefixFrom(base, 20)
		s.Networks = append(s.Networks, inventory.Network{
			ID:       fmt.Sprintf("%064x", i+1),
			Name:     fmt.Sprintf("net%04d", i),
			Driver:   "bridge",
			Internal: i%5 == 4,
			ICC:      true,
			Subnets:  []inventory.Subnet{{Prefix: prefix, Gateway: base.Next()}},
			Bridge:   fmt.Sprintf("br-%012x", i+1),
		})
		next[i] = base.Next().Next()
	}
	images := []string{"nginx:1.25", "example/api:3", "example/worker:3", "postgres:15", "redis:7", "example/web:2"}
	for i := range containers {
		home := i % networks
		c := inventory.Container{
			ID:     fmt.Sprintf("%064x", 1<<40+i),
			Name:   fmt.Sprintf("c%05d", i),
			Image:  images[r.IntN(len(images))],
			State:  "running",
			Labels: map[string]string{inventory.LabelComposeProject: fmt.Sprintf("proj%04d", home/2), inventory.LabelComposeService: fmt.Sprintf("svc%d", i%7)},
		}
		nets := []int{home}
		if i%10 == 3 && networks > 1 {
			nets = append(nets, (home+1+r.IntN(networks-1))%networks)
		}
		c.NetworkMode = s.Networks[3+nets[0]].Name
		for _, n := range nets {
			addr := next[n]
			next[n] = addr.Next()
			c.Endpoints = append(c.Endpoints, inventory.Endpoint{Network: s.Networks[3+n].Name, IPv4: addr})
		}
		if i%20 == 7 {
			c.Ports = []inventory.PortBinding{{ContainerPort: l4.Port{Number: 80, Proto: "tcp"}, HostPort: uint16(20000 + i%40000)}}
		}
		if i%10 == 5 {
			c.Image = "postgres:15"
			c.ExposedPorts = []l4.Port{{Number: 5432, Proto: "tcp"}}
		}
		if i%3 == 0 {
			c.ReadOnlyRootfs = true
			c.CapDrop = []string{"ALL"}
		}
		s.Containers = append(s.Containers, c)
	}
	return s
}

// Binding is a tcp port binding of container port ctr to hostPort on
// hostIP ("" for none given), for tests that ask what a policy lets a
// container publish.
func Binding(hostIP string, hostPort, ctr uint16) inventory.PortBinding {
	b := inventory.PortBinding{ContainerPort: l4.Port{Proto: l4.ProtoTCP, Number: ctr}, HostPort: hostPort}
	if hostIP != "" {
		b.HostIP = netip.MustParseAddr(hostIP)
	}
	return b
}
