package synthetic

import (
	"fmt"
	"net/netip"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/policy"
)

// Host builds a host on which every workload of p selects one running
// container, on the workload's zones, each zone a /24 of its own.
func Host(p *policy.Policy) *inventory.Snapshot {
	s := &inventory.Snapshot{Version: inventory.SchemaVersion}
	zoneIndex := map[string]int{}
	next := make([]int, len(p.Zones))
	for i, z := range p.Zones {
		zoneIndex[z.Name] = i
		s.Networks = append(s.Networks, inventory.Network{Name: z.Name, Driver: "bridge", ICC: true, Internal: z.Internal,
			Subnets: []inventory.Subnet{{Prefix: netip.PrefixFrom(zoneBase(i), 24)}}})
		next[i] = 2
	}
	for i, w := range p.Workloads {
		c := inventory.Container{Name: w.Name, Image: "example/app:1", State: "running", Labels: map[string]string{}}
		switch i % 4 {
		case 1:
			c.Labels[inventory.LabelComposeProject] = w.Match.Compose.Project
			c.Labels[inventory.LabelComposeService] = w.Match.Compose.Service
			c.Name = fmt.Sprintf("%s-%s-1", w.Match.Compose.Project, w.Match.Compose.Service)
		case 2:
			c.Labels["app"] = w.Match.Labels["app"]
		case 3:
			c.Name = w.Name + "-1"
			c.Image = fmt.Sprintf("example/img%d:1", i)
		}
		for _, z := range w.Zones {
			zi := zoneIndex[z]
			b := zoneBase(zi).As4()
			b[3] = byte(next[zi])
			next[zi]++
			c.Endpoints = append(c.Endpoints, inventory.Endpoint{Network: z, IPv4: netip.AddrFrom4(b)})
		}
		c.NetworkMode = c.Endpoints[0].Network
		for _, pub := range w.Publish {
			c.Ports = append(c.Ports, inventory.PortBinding{ContainerPort: l4.Port{Number: pub.Container.First, Proto: pub.Container.Proto}, HostPort: pub.Host.First})
		}
		s.Containers = append(s.Containers, c)
	}
	return s
}

func zoneBase(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i / 250), byte(i % 250), 0}) }

// WithOneMore returns a copy of snap with one more container like
// snap.Containers[i] (named "<name>-2"), on its first network only, at
// address .250 there: what admitting a new container of a workload adds.
func WithOneMore(snap *inventory.Snapshot, i int) *inventory.Snapshot {
	c := snap.Containers[i]
	c.Name += "-2"
	ep := c.Endpoints[0]
	a := ep.IPv4.As4()
	a[3] = 250
	ep.IPv4 = netip.AddrFrom4(a)
	c.Endpoints = []inventory.Endpoint{ep}
	grown := *snap
	grown.Containers = append(append(grown.Containers[:0:0], snap.Containers...), c)
	return &grown
}
