// Package demo describes the seed's shared Docker host — a production web
// shop, its staging copy, developer containers, a third-party monitoring
// agent and a database with customer data, with the usual mistakes — and
// builds it on a real Docker engine or renders it as a snapshot.
//
// The description is data (Level0); Snapshot turns it into the embedded
// host used when no Docker engine answers, and Build creates it for real,
// so both forms are always the same host.
package demo

import (
	_ "embed"
	"fmt"
	"net/netip"
	"strings"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
)

// Label marks everything the demo creates; its value is the run id.
const Label = "zonewarden.demo"

// Host is a host to build: networks (besides Docker's own) and containers.
type Host struct {
	Networks   []Network
	Containers []Container
}

// Network is a user-defined bridge network.
type Network struct {
	Name     string
	Internal bool
	Purpose  string
}

// Container is one container of the demo host.
type Container struct {
	Name    string
	Image   string // a demo image tag; its repository name says what it is
	Project string // compose project label, "" for none
	Service string
	Role    string // what it stands for, shown to the user
	// Networks in attach order; "bridge" is Docker's default bridge.
	Networks    []string
	NetworkMode string // host, none, container:X; overrides Networks
	Ports       []inventory.PortBinding
	Expose      []l4.Port
	Privileged  bool
	ReadOnly    bool
	CapAdd      []string
	CapDrop     []string
	SecurityOpt []string
	Binds       []string
	Labels      map[string]string
	// Start is false for containers that stay created (privileged ones
	// cannot start on every machine, and created ones run again later).
	Start bool
}

// Images are the tags of the one demo image: the repository name is what
// zonewarden recognises (postgres, redis), the content is the same idle
// process.
var Images = []string{
	"zonewarden-demo/nginx:1.25",
	"zonewarden-demo/shop-api:2.3",
	"zonewarden-demo/postgres:15",
	"zonewarden-demo/redis:7",
	"zonewarden-demo/devbox:latest",
	"zonewarden-demo/metrics-agent:6.1",
	"zonewarden-demo/cron:latest",
}

func tcp(n uint16) l4.Port { return l4.Port{Number: n, Proto: "tcp"} }

func publish(hostPort, containerPort uint16) inventory.PortBinding {
	return inventory.PortBinding{ContainerPort: tcp(containerPort), HostPort: hostPort}
}

// DevContainer is the demo's developer container, whose blast radius the
// demo shows.
const DevContainer = "dev-box"

// Level0 is the seed's host: everything a shared host gets wrong.
func Level0() Host {
	hardened := func(c Container) Container {
		c.ReadOnly = true
		c.CapDrop = []string{"ALL"}
		c.SecurityOpt = []string{"no-new-privileges"}
		return c
	}
	return Host{
		Networks: []Network{
			{Name: "shop-prod", Purpose: "production web shop, its API and the customer database"},
			{Name: "shop-sessions", Internal: true, Purpose: "session cache (internal)"},
			{Name: "shop-staging", Purpose: "staging copy of the shop"},
			{Name: "dev", Purpose: "developer containers"},
		},
		Containers: []Container{
			{Name: "shop-web", Image: "zonewarden-demo/nginx:1.25", Project: "shop", Service: "web",
				Role: "production web front end", Networks: []string{"shop-prod"},
				Ports: []inventory.PortBinding{publish(18080, 80)}, Start: true},
			hardened(Container{Name: "shop-api", Image: "zonewarden-demo/shop-api:2.3", Project: "shop", Service: "api",
				Role: "production API (hardened)", Networks: []string{"shop-prod", "shop-sessions"},
				Expose: []l4.Port{tcp(8080)}, Start: true}),
			{Name: "customer-db", Image: "zonewarden-demo/postgres:15", Project: "shop", Service: "db",
				Role: "database with customer data", Networks: []string{"shop-prod"},
				Ports: []inventory.PortBinding{publish(15432, 5432)}, Start: true},
			hardened(Container{Name: "session-cache", Image: "zonewarden-demo/redis:7", Project: "shop", Service: "cache",
				Role: "session cache on an internal network (its -p is ignored)", Networks: []string{"shop-sessions"},
				Ports: []inventory.PortBinding{publish(16379, 6379)}, Start: true}),
			{Name: "staging-api", Image: "zonewarden-demo/shop-api:2.4-rc1", Project: "shop-staging", Service: "api",
				Role: "staging API, connected to production to reuse its database", Networks: []string{"shop-staging", "shop-prod"},
				Start: true},
			{Name: "dev-box", Image: "zonewarden-demo/devbox:latest", Project: "dev", Service: "box",
				Role: "a developer's container", Networks: []string{"dev"},
				CapAdd: []string{"NET_ADMIN", "NET_RAW"}, Start: true},
			{Name: "metrics-agent", Image: "zonewarden-demo/metrics-agent:6.1",
				Role: "third-party monitoring agent", NetworkMode: "host",
				Labels: map[string]string{inventory.LabelTrust: "third-party"},
				Binds:  []string{"/var/run/docker.sock:/var/run/docker.sock:ro"}, Start: true},
			{Name: "legacy-cron", Image: "zonewarden-demo/cron:latest",
				Role: "old job runner started without --network", Networks: []string{"bridge"}, Start: true},
			{Name: "report-export", Image: "zonewarden-demo/cron:latest",
				Role: "nightly export, stopped between runs", Networks: []string{"bridge"}},
			{Name: "debug-shell", Image: "zonewarden-demo/devbox:latest", Project: "dev", Service: "debug",
				Role: "privileged debugging container (created, not started)", Networks: []string{"dev"},
				Privileged: true},
		},
	}
}

// Snapshot renders h as the snapshot a Docker 20.10 host would give after
// Build, with fixed addresses. It is the embedded demo host.
func (h Host) Snapshot() *inventory.Snapshot {
	yes := true
	snap := &inventory.Snapshot{
		Version: inventory.SchemaVersion,
		Source:  inventory.Source{Kind: "embedded", Detail: "demo host"},
		Daemon: inventory.Daemon{
			Version: "20.10.24", APIVersion: "1.41", OS: "Debian GNU/Linux 12 (bookworm)",
			BridgeNfIptables: &yes, BridgeNfIP6tables: &yes, IPv4Forwarding: &yes,
		},
	}
	type pool struct {
		prefix netip.Prefix
		next   netip.Addr
	}
	pools := map[string]*pool{}
	addNet := func(n inventory.Network, prefix string) {
		p := netip.MustParsePrefix(prefix)
		gw := p.Addr().Next()
		n.Subnets = []inventory.Subnet{{Prefix: p, Gateway: gw}}
		n.ICC = true
		if n.Driver == "" {
			n.Driver = "bridge"
		}
		n.Scope = "local"
		snap.Networks = append(snap.Networks, n)
		pools[n.Name] = &pool{prefix: p, next: gw.Next()}
	}
	addNet(inventory.Network{Name: inventory.DefaultBridge, Bridge: "docker0"}, "172.17.0.0/16")
	snap.Networks = append(snap.Networks,
		inventory.Network{Name: inventory.HostNetwork, Driver: "host", Scope: "local", ICC: true},
		inventory.Network{Name: inventory.NoneNetwork, Driver: "null", Scope: "local", ICC: true})
	for i, n := range h.Networks {
		addNet(inventory.Network{Name: n.Name, Internal: n.Internal, Labels: map[string]string{Label: "embedded"}},
			fmt.Sprintf("172.30.%d.0/24", i+1))
	}
	for _, c := range h.Containers {
		ic := inventory.Container{
			Name: c.Name, Image: c.Image, State: "created",
			Labels:         c.labels("embedded"),
			Privileged:     c.Privileged,
			ReadOnlyRootfs: c.ReadOnly,
			CapAdd:         c.CapAdd,
			CapDrop:        c.CapDrop,
			SecurityOpt:    c.SecurityOpt,
			Ports:          c.Ports,
			ExposedPorts:   c.exposed(),
			NetworkMode:    c.NetworkMode,
		}
		if c.Start {
			ic.State = "running"
		}
		if ic.NetworkMode == "" && len(c.Networks) > 0 {
			ic.NetworkMode = c.Networks[0]
		}
		for _, b := range c.Binds {
			ic.Mounts = append(ic.Mounts, bindMount(b))
		}
		if c.NetworkMode == "" {
			for _, n := range c.Networks {
				e := inventory.Endpoint{Network: n}
				if c.Start {
					p := pools[n]
					e.IPv4 = p.next
					p.next = p.next.Next()
				}
				ic.Endpoints = append(ic.Endpoints, e)
			}
		}
		snap.Containers = append(snap.Containers, ic)
	}
	inventory.Sort(snap)
	return snap
}

func (c Container) labels(runID string) map[string]string {
	l := map[string]string{Label: runID}
	if c.Project != "" {
		l[inventory.LabelComposeProject] = c.Project
		l[inventory.LabelComposeService] = c.Service
	}
	for k, v := range c.Labels {
		l[k] = v
	}
	return l
}

func (c Container) exposed() []l4.Port {
	out := append([]l4.Port(nil), c.Expose...)
	for _, b := range c.Ports {
		out = append(out, b.ContainerPort)
	}
	return out
}

func bindMount(spec string) inventory.Mount {
	parts := strings.SplitN(spec, ":", 3)
	m := inventory.Mount{Type: "bind", Source: parts[0], Destination: parts[0]}
	if len(parts) > 1 {
		m.Destination = parts[1]
	}
	m.ReadOnly = len(parts) > 2 && parts[2] == "ro"
	return m
}

// Policy is the demo host segmented, as a zonewarden policy file.
//
//go:embed policy.yaml
var Policy []byte
