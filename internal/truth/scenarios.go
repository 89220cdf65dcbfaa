package truth

import "github.com/zonewarden/zonewarden/internal/inventory"

// The scenarios of the ground truth, one per behaviour the model covers.
// Each publishes on host ports of its own range (281xx three-tier, 282xx
// multi-project, ...), so that they can be built at the same time; a test
// in another package that may run while this one does should move them
// with [Scenario.WithHostPorts].

// ThreeTier is the seed's three-tier example: lb publishes 443 on every
// address; the database tier is internal.
func ThreeTier() Scenario {
	return Scenario{
		Networks: []Network{{Name: "public-dmz"}, {Name: "app"}, {Name: "db", Internal: true}},
		Containers: []Container{
			{Name: "lb", Networks: []string{"public-dmz"}, Publish: []Publish{{HostPort: 28143, Port: 443}}},
			{Name: "frontend", Networks: []string{"public-dmz", "app"}},
			{Name: "api", Networks: []string{"app", "db"}},
			{Name: "postgres", Networks: []string{"db"}},
			{Name: "cache", Networks: []string{"db"}},
		},
	}
}

func compose(project string) map[string]string {
	return map[string]string{inventory.LabelComposeProject: project}
}

// MultiProject is the seed's shared host: two compose projects with their
// own networks (shop's back end internal), a monitoring network they
// share, and a dev box. The blog publishes its database.
func MultiProject() Scenario {
	return Scenario{
		Networks: []Network{
			{Name: "shop_front"}, {Name: "shop_back", Internal: true},
			{Name: "blog_default"}, {Name: "monitoring"}, {Name: "dev"},
		},
		Containers: []Container{
			{Name: "shop-web", Networks: []string{"shop_front", "shop_back", "monitoring"}, Labels: compose("shop"),
				Publish: []Publish{{HostPort: 28280, Port: 8080}}},
			{Name: "shop-db", Networks: []string{"shop_back"}, Labels: compose("shop")},
			{Name: "blog-web", Networks: []string{"blog_default", "monitoring"}, Labels: compose("blog"),
				Publish: []Publish{{HostPort: 28281, Port: 8081}}},
			{Name: "blog-db", Networks: []string{"blog_default"}, Labels: compose("blog"),
				Publish: []Publish{{HostPort: 28282, Port: 3306}}},
			{Name: "prometheus", Networks: []string{"monitoring"}},
			{Name: "devbox", Networks: []string{"dev"}},
		},
	}
}

// Published has ports published on every address (TCP and UDP), on the
// scenario's host address only, and on one network's gateway only, with
// clients on another network and on an internal one.
func Published() Scenario {
	return Scenario{
		Networks: []Network{{Name: "front"}, {Name: "other"}, {Name: "sealed", Internal: true}},
		Containers: []Container{
			{Name: "web", Networks: []string{"front"}, Publish: []Publish{
				{HostPort: 28380, Port: 8080},
				{HostPort: 28381, Port: 5353, Proto: "udp"},
			}},
			{Name: "db", Networks: []string{"front"}, Publish: []Publish{{HostIP: HostAddress, HostPort: 28382, Port: 5432}}},
			{Name: "cache", Networks: []string{"front"}, Publish: []Publish{{HostIP: Gateway("front"), HostPort: 28383, Port: 6379}}},
			{Name: "client", Networks: []string{"other"}},
			{Name: "locked", Networks: []string{"sealed"}},
		},
	}
}

// Internal has an internal network with a container that asks to publish
// (Docker publishes nothing), one that is also on a normal network and
// publishes, and a client outside it.
func Internal() Scenario {
	return Scenario{
		Networks: []Network{{Name: "sealed", Internal: true}, {Name: "open"}},
		Containers: []Container{
			{Name: "vault", Networks: []string{"sealed"}, Publish: []Publish{{HostPort: 28480, Port: 8200}}},
			{Name: "bridgehead", Networks: []string{"sealed", "open"}, Publish: []Publish{{HostPort: 28481, Port: 8080}}},
			{Name: "worker", Networks: []string{"sealed"}},
			{Name: "client", Networks: []string{"open"}},
		},
	}
}

// HostNetwork has a --network host agent next to a publishing container
// and one on an internal network.
func HostNetwork() Scenario {
	return Scenario{
		Networks: []Network{{Name: "app"}, {Name: "sealed", Internal: true}},
		Containers: []Container{
			{Name: "agent", Mode: "host"},
			{Name: "web", Networks: []string{"app"}, Publish: []Publish{{HostPort: 28580, Port: 8080}}},
			{Name: "db", Networks: []string{"sealed"}},
		},
	}
}

// ICCDisabled has a network with enable_icc=false (one member publishes,
// one is also on a normal network) and a normal network.
func ICCDisabled() Scenario {
	return Scenario{
		Networks: []Network{{Name: "quiet", DisableICC: true}, {Name: "loud"}},
		Containers: []Container{
			{Name: "a", Networks: []string{"quiet"}},
			{Name: "b", Networks: []string{"quiet"}, Publish: []Publish{{HostPort: 28680, Port: 8080}}},
			{Name: "c", Networks: []string{"quiet", "loud"}},
			{Name: "d", Networks: []string{"loud"}},
		},
	}
}

// IPv6 has IPv6 networks (two plain, one with ICC off, one internal) and an
// IPv4-only one.
func IPv6() Scenario {
	return Scenario{
		Networks: []Network{{Name: "six", IPv6: true}, {Name: "six-b", IPv6: true}, {Name: "four"},
			{Name: "six-quiet", IPv6: true, DisableICC: true}, {Name: "six-sealed", IPv6: true, Internal: true}},
		Containers: []Container{
			{Name: "x", Networks: []string{"six"}, Publish: []Publish{{HostPort: 28780, Port: 8080}}},
			{Name: "y", Networks: []string{"six"}},
			{Name: "z", Networks: []string{"six-b"}},
			{Name: "w", Networks: []string{"four"}},
			{Name: "q1", Networks: []string{"six-quiet"}},
			{Name: "q2", Networks: []string{"six-quiet"}},
			{Name: "s1", Networks: []string{"six-sealed"}},
			{Name: "s2", Networks: []string{"six-sealed"}},
		},
	}
}

// NoneNetwork has a --network none container and a peer.
func NoneNetwork() Scenario {
	return Scenario{
		Networks: []Network{{Name: "app"}},
		Containers: []Container{
			{Name: "loner", Mode: "none"},
			{Name: "peer", Networks: []string{"app"}},
		},
	}
}

// ContainerNamespace has a sidecar in --network container:main (main
// publishes), a peer of main and a stranger on another network.
func ContainerNamespace() Scenario {
	return Scenario{
		Networks: []Network{{Name: "app"}, {Name: "elsewhere"}},
		Containers: []Container{
			{Name: "main", Networks: []string{"app"}, Publish: []Publish{{HostPort: 28980, Port: 8080}}},
			{Name: "sidecar", Mode: "container:main"},
			{Name: "peer", Networks: []string{"app"}},
			{Name: "stranger", Networks: []string{"elsewhere"}},
		},
	}
}

// DefaultBridge has two containers on Docker's default bridge (one
// publishes) and one on a user-defined network.
func DefaultBridge() Scenario {
	return Scenario{
		Networks: []Network{{Name: "modern"}},
		Containers: []Container{
			{Name: "legacy1", Networks: []string{"bridge"}},
			{Name: "legacy2", Networks: []string{"bridge"}, Publish: []Publish{{HostPort: 29080, Port: 8080}}},
			{Name: "modern", Networks: []string{"modern"}},
		},
	}
}

// GatewayModes has one network per gateway mode of Docker 27 and later:
// nat (the default, a client's), routed (r publishes 443: open on its own
// address, no host port), nat-unprotected (u publishes 90; every port of
// every member is open to whoever routes to the network) and isolated
// (internal, no address on the bridge: the host neither reaches nor
// routes to its members, so nothing is probed there from outside it).
func GatewayModes() Scenario {
	return Scenario{
		Networks: []Network{
			{Name: "plain"},
			{Name: "routed", GatewayMode: inventory.GatewayRouted},
			{Name: "open", GatewayMode: inventory.GatewayNATUnprotected},
			{Name: "hidden", Internal: true, GatewayMode: inventory.GatewayIsolated},
		},
		Containers: []Container{
			{Name: "client", Networks: []string{"plain"}},
			{Name: "web", Networks: []string{"plain"}, Publish: []Publish{{HostPort: 28880, Port: 8080}}},
			{Name: "r", Networks: []string{"routed"}, Publish: []Publish{{HostPort: 28881, Port: 443}}},
			{Name: "r2", Networks: []string{"routed"}},
			{Name: "u", Networks: []string{"open"}, Publish: []Publish{{HostPort: 28882, Port: 90}}},
			{Name: "u2", Networks: []string{"open"}},
			{Name: "h1", Networks: []string{"hidden"}},
			{Name: "h2", Networks: []string{"hidden"}},
		},
	}
}

// Macvlan has a macvlan network whose parent is the host side of the
// scenario's veth to outside (a segment of the test's own), next to a
// bridge network: the macvlan members reach each other and the segment,
// the segment reaches them, and the host, which a macvlan's parent never
// reaches its children from, and the bridge network's containers do not.
func Macvlan() Scenario {
	return Scenario{
		Networks: []Network{{Name: "lan", Macvlan: true}, {Name: "app"}},
		Containers: []Container{
			{Name: "m1", Networks: []string{"lan"}},
			{Name: "m2", Networks: []string{"lan"}},
			{Name: "web", Networks: []string{"app"}, Publish: []Publish{{HostPort: 28883, Port: 8080}}},
		},
	}
}

// WithHostPorts returns a copy of sc whose published host ports are
// base, base+1, ... in the order they appear.
func (sc Scenario) WithHostPorts(base uint16) Scenario {
	out := sc
	out.Containers = make([]Container, len(sc.Containers))
	next := base
	for i, c := range sc.Containers {
		c.Publish = append([]Publish(nil), c.Publish...)
		for j := range c.Publish {
			c.Publish[j].HostPort = next
			next++
		}
		out.Containers[i] = c
	}
	return out
}
