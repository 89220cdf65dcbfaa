package audit

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
)

// Address plan of the test hosts: user networks get 10.1.N.0/24 in the
// order they are declared; the default bridge is 172.17.0.0/16. Addresses
// do not matter to the rules; they are there to look like a real host.

// hostOf builds a snapshot from networks and containers. Endpoints name
// networks; networks that a container names but that are not declared are
// added as plain bridge networks.
func hostOf(nets []inventory.Network, cs ...inventory.Container) *inventory.Snapshot {
	s := &inventory.Snapshot{Version: inventory.SchemaVersion}
	s.Networks = append(s.Networks,
		inventory.Network{Name: "bridge", Driver: "bridge", ICC: true},
		inventory.Network{Name: "host", Driver: "host"},
		inventory.Network{Name: "none", Driver: "null"},
	)
	have := map[string]bool{"bridge": true, "host": true, "none": true}
	add := func(n inventory.Network) {
		if have[n.Name] {
			for i := range s.Networks {
				if s.Networks[i].Name == n.Name {
					s.Networks[i] = n
				}
			}
			return
		}
		have[n.Name] = true
		if n.Driver == "" {
			n.Driver = "bridge"
		}
		n.Subnets = []inventory.Subnet{{Prefix: netip.MustParsePrefix(fmt.Sprintf("10.1.%d.0/24", len(s.Networks)))}}
		s.Networks = append(s.Networks, n)
	}
	for _, n := range nets {
		add(n)
	}
	for _, c := range cs {
		for _, e := range c.Endpoints {
			if !have[e.Network] {
				add(inventory.Network{Name: e.Network, ICC: true})
			}
		}
		if c.State == "" {
			c.State = "running"
		}
		s.Containers = append(s.Containers, c)
	}
	return s
}

// box is a hardened container (no finding of its own) on the networks.
func box(name string, nets ...string) inventory.Container {
	c := inventory.Container{
		Name: name, Image: "example/app:1", ReadOnlyRootfs: true,
		CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges"},
	}
	for _, n := range nets {
		c.Endpoints = append(c.Endpoints, inventory.Endpoint{Network: n})
	}
	if len(nets) > 0 {
		c.NetworkMode = nets[0]
	}
	return c
}

func with(c inventory.Container, f func(*inventory.Container)) inventory.Container {
	f(&c)
	return c
}

func pub(host string, hostPort, port uint16) inventory.PortBinding {
	b := inventory.PortBinding{ContainerPort: l4.Port{Number: port, Proto: "tcp"}, HostPort: hostPort}
	if host != "" {
		b.HostIP = netip.MustParseAddr(host)
	}
	return b
}

func project(c inventory.Container, p string) inventory.Container {
	return with(c, func(c *inventory.Container) {
		c.Labels = map[string]string{inventory.LabelComposeProject: p, inventory.LabelComposeService: c.Name}
	})
}

func postgres(name string, nets ...string) inventory.Container {
	return with(box(name, nets...), func(c *inventory.Container) { c.Image = "postgres:15" })
}

var internal = func(name string) inventory.Network {
	return inventory.Network{Name: name, Internal: true, ICC: true}
}

// swarmOf is hostOf in a Swarm of three nodes: n1, the manager, whose
// kernel was probed and cannot encrypt; n2 and n3, workers not probed.
func swarmOf(nets []inventory.Network, cs ...inventory.Container) *inventory.Snapshot {
	s := hostOf(nets, cs...)
	s.Swarm = &inventory.Swarm{Nodes: []inventory.SwarmNode{
		{Hostname: "n1", Role: "manager", Availability: "active", IPsec: &inventory.IPsec{Missing: []string{"CONFIG_INET_ESP"}, Evidence: "function not implemented"}},
		{Hostname: "n2", Role: "worker", Availability: "active"},
		{Hostname: "n3", Role: "worker", Availability: "active"},
	}}
	return s
}

func withService(s *inventory.Snapshot, svc inventory.Service) *inventory.Snapshot {
	s.Swarm.Services = append(s.Swarm.Services, svc)
	return s
}

// overlay is a Swarm overlay with options: "encrypted", "attachable".
func overlay(name string, opts ...string) inventory.Network {
	n := inventory.Network{Name: name, Driver: "overlay", Scope: "swarm", ICC: true, Options: map[string]string{}}
	for _, o := range opts {
		switch o {
		case "encrypted":
			n.Options["encrypted"] = ""
		case "attachable":
			n.Attachable = true
		}
	}
	return n
}

// task makes c a task of service on node.
func task(c inventory.Container, service, node string) inventory.Container {
	return with(c, func(c *inventory.Container) {
		c.Node = node
		c.Labels = map[string]string{inventory.LabelSwarmService: service}
	})
}

// TestRules gives every rule a host where it must fire (want lists the
// expected subjects and severities) and hosts where it must not.
func TestRules(t *testing.T) {
	no := false
	tests := []struct {
		rule string
		name string
		snap *inventory.Snapshot
		want []string // "severity kind name"
	}{
		{"privileged", "fires", hostOf(nil, with(box("debug", "dev"), func(c *inventory.Container) { c.Privileged = true; c.State = "created" })),
			[]string{"critical container debug"}},
		{"privileged", "quiet", hostOf(nil, box("app", "dev")), nil},

		{"docker-socket-mounted", "fires", hostOf(nil, with(box("agent", "mon"), func(c *inventory.Container) {
			c.Mounts = []inventory.Mount{{Type: "bind", Source: "/var/run/docker.sock", Destination: "/var/run/docker.sock", ReadOnly: true}}
		})), []string{"critical container agent"}},
		{"docker-socket-mounted", "volume elsewhere", hostOf(nil, with(box("app", "mon"), func(c *inventory.Container) {
			c.Mounts = []inventory.Mount{{Type: "volume", Source: "data", Destination: "/data"}}
		})), nil},

		{"published-debug-port", "node inspector on all interfaces", hostOf(nil, with(box("web", "app"), func(c *inventory.Container) {
			c.Ports = []inventory.PortBinding{pub("", 3000, 3000), pub("", 9229, 9229)}
		})), []string{"critical container web"}},
		{"published-debug-port", "docker API on loopback", hostOf(nil, with(box("dind", "app"), func(c *inventory.Container) {
			c.Ports = []inventory.PortBinding{pub("127.0.0.1", 2375, 2375)}
		})), []string{"medium container dind"}},
		{"published-debug-port", "a web port", hostOf(nil, with(box("web", "app"), func(c *inventory.Container) {
			c.Ports = []inventory.PortBinding{pub("", 8080, 8080)}
		})), nil},
		{"published-sensitive-port", "all interfaces", hostOf(nil, with(postgres("db", "data"), func(c *inventory.Container) {
			c.Ports = []inventory.PortBinding{pub("", 5432, 5432)}
		})), []string{"critical container db"}},
		{"published-sensitive-port", "loopback, by port", hostOf(nil, with(box("cache", "data"), func(c *inventory.Container) {
			c.Ports = []inventory.PortBinding{pub("127.0.0.1", 6379, 6379)}
		})), []string{"high container cache"}},
		{"published-sensitive-port", "internal only: nothing published", hostOf([]inventory.Network{internal("data")}, with(postgres("db", "data"), func(c *inventory.Container) {
			c.Ports = []inventory.PortBinding{pub("", 5432, 5432)}
		})), nil},
		{"published-sensitive-port", "web port", hostOf(nil, with(box("web", "dmz"), func(c *inventory.Container) {
			c.Ports = []inventory.PortBinding{pub("", 8080, 80)}
		})), nil},

		{"published-bypasses-isolation", "fires", hostOf(nil,
			with(postgres("db", "data"), func(c *inventory.Container) { c.Ports = []inventory.PortBinding{pub("", 5432, 5432)} }),
			box("app", "app"), box("dbclient", "data")),
			[]string{"high container db"}},
		{"published-bypasses-isolation", "only loopback", hostOf(nil,
			with(postgres("db", "data"), func(c *inventory.Container) { c.Ports = []inventory.PortBinding{pub("127.0.0.1", 5432, 5432)} }),
			box("app", "app")), nil},
		{"published-bypasses-isolation", "others internal only", hostOf([]inventory.Network{internal("secure")},
			with(box("web", "dmz"), func(c *inventory.Container) { c.Ports = []inventory.PortBinding{pub("", 8080, 80)} }),
			box("worker", "secure")), nil},

		{"host-network", "fires", hostOf(nil, with(box("agent"), func(c *inventory.Container) { c.NetworkMode = "host" })),
			[]string{"high container agent"}},
		{"host-network", "quiet", hostOf(nil, box("app", "app")), nil},

		{"dangerous-capability", "net_admin", hostOf(nil, with(box("vpn", "app"), func(c *inventory.Container) { c.CapAdd = []string{"CAP_NET_ADMIN"} })),
			[]string{"high container vpn"}},
		{"dangerous-capability", "sys_admin is critical", hostOf(nil, with(box("x", "app"), func(c *inventory.Container) { c.CapAdd = []string{"SYS_ADMIN"} })),
			[]string{"critical container x"}},
		{"dangerous-capability", "bind service is fine", hostOf(nil, with(box("web", "app"), func(c *inventory.Container) { c.CapAdd = []string{"NET_BIND_SERVICE"} })), nil},

		{"sensitive-network-not-internal", "fires", hostOf(nil, postgres("db", "data"), box("api", "data")),
			[]string{"high network data"}},
		{"sensitive-network-not-internal", "internal", hostOf([]inventory.Network{internal("data")}, postgres("db", "data")), nil},
		{"sensitive-network-not-internal", "label overrides image", hostOf(nil, with(postgres("db", "data"), func(c *inventory.Container) {
			c.Labels = map[string]string{inventory.LabelSensitive: "false"}
		})), nil},

		{"untrusted-shares-data-network", "dev next to db", hostOf([]inventory.Network{internal("data")}, postgres("db", "data"), project(box("box", "data"), "dev")),
			[]string{"high network data"}},
		{"untrusted-shares-data-network", "icc off", hostOf([]inventory.Network{{Name: "data", Internal: true, ICC: false}}, postgres("db", "data"), project(box("box", "data"), "dev")), nil},
		{"untrusted-shares-data-network", "no word match inside words", hostOf([]inventory.Network{internal("data")}, postgres("db", "data"), box("devicemgr", "data")), nil},

		{"gateway-container", "plain", hostOf(nil, box("frontend", "dmz", "app")), []string{"low container frontend"}},
		{"gateway-container", "data", hostOf([]inventory.Network{internal("data")}, box("api", "app", "data"), postgres("db", "data")),
			[]string{"medium container api"}},
		{"gateway-container", "dev and data", hostOf([]inventory.Network{internal("data")}, box("tool", "dev", "data"), postgres("db", "data")),
			[]string{"high container tool"}},
		{"gateway-container", "one network", hostOf(nil, box("api", "app")), nil},

		{"cross-project-network", "fires", hostOf(nil, project(box("a", "shared"), "shop"), project(box("b", "shared"), "blog")),
			[]string{"medium network shared"}},
		{"cross-project-network", "one project", hostOf(nil, project(box("a", "shop_default"), "shop"), project(box("b", "shop_default"), "shop")), nil},

		{"default-bridge", "fires", hostOf(nil, box("legacy", "bridge")), []string{"medium container legacy"}},
		{"default-bridge", "user network", hostOf(nil, box("app", "app")), nil},

		{"icc-default-bridge", "fires", hostOf(nil, box("legacy", "bridge")), []string{"medium network bridge"}},
		{"icc-default-bridge", "icc off", hostOf([]inventory.Network{{Name: "bridge", Driver: "bridge", ICC: false}}, box("legacy", "bridge")), nil},
		{"icc-default-bridge", "unused", hostOf(nil, box("app", "app")), nil},

		{"published-all-interfaces", "ipv4 and ipv6", hostOf(nil, with(box("web", "dmz"), func(c *inventory.Container) {
			c.Ports = []inventory.PortBinding{pub("0.0.0.0", 8443, 443), pub("::", 8443, 443)}
		})), []string{"medium container web"}},
		{"published-all-interfaces", "one address", hostOf(nil, with(box("web", "dmz"), func(c *inventory.Container) {
			c.Ports = []inventory.PortBinding{pub("192.0.2.10", 443, 443), pub("::1", 8443, 443)}
		})), nil},

		{"host-namespace", "pid", hostOf(nil, with(box("top", "app"), func(c *inventory.Container) { c.PidMode = "host" })),
			[]string{"medium container top"}},
		{"host-namespace", "private", hostOf(nil, with(box("top", "app"), func(c *inventory.Container) { c.PidMode = "container:other" })), nil},

		{"bridge-nf-disabled", "fires", func() *inventory.Snapshot {
			s := hostOf(nil)
			s.Daemon.BridgeNfIptables = &no
			return s
		}(), []string{"medium host docker"}},
		{"bridge-nf-disabled", "unknown", hostOf(nil), nil},

		{"bridge-nf-disabled", "module absent", func() *inventory.Snapshot {
			s := hostOf(nil)
			s.Daemon.BrNetfilter = &no
			return s
		}(), []string{"medium host docker"}},

		{"network-bypasses-firewall", "macvlan", hostOf([]inventory.Network{{Name: "lan", Driver: "macvlan"}}, box("printer", "lan")),
			[]string{"medium network lan"}},
		{"network-bypasses-firewall", "macvlan with a database", hostOf([]inventory.Network{{Name: "lan", Driver: "ipvlan"}}, postgres("db", "lan")),
			[]string{"high network lan"}},
		{"network-bypasses-firewall", "bridge, or empty macvlan", hostOf([]inventory.Network{{Name: "lan", Driver: "macvlan"}}, box("app", "app")), nil},

		{"gateway-mode-unprotected", "fires", hostOf([]inventory.Network{{Name: "open", ICC: true, GatewayMode4: inventory.GatewayNATUnprotected}}, box("app", "open")),
			[]string{"high network open"}},
		{"gateway-mode-unprotected", "routed is not", hostOf([]inventory.Network{{Name: "r", ICC: true, GatewayMode4: inventory.GatewayRouted}}, box("app", "r")), nil},
		{"gateway-mode-routed", "fires", hostOf([]inventory.Network{{Name: "r", ICC: true, GatewayMode4: inventory.GatewayRouted}}, box("app", "r")),
			[]string{"medium network r"}},
		{"gateway-mode-routed", "nat", hostOf(nil, box("app", "app")), nil},

		{"loopback-published-lan", "docker 20.10", func() *inventory.Snapshot {
			s := hostOf(nil, with(box("admin", "app"), func(c *inventory.Container) { c.Ports = []inventory.PortBinding{pub("127.0.0.1", 8080, 80)} }))
			s.Daemon.Version = "20.10.24"
			return s
		}(), []string{"high container admin"}},
		{"loopback-published-lan", "docker 28", func() *inventory.Snapshot {
			s := hostOf(nil, with(box("admin", "app"), func(c *inventory.Container) { c.Ports = []inventory.PortBinding{pub("127.0.0.1", 8080, 80)} }))
			s.Daemon.Version = "28.5.2"
			return s
		}(), nil},

		{"direct-routing-allowed", "daemon and network", func() *inventory.Snapshot {
			s := hostOf([]inventory.Network{{Name: "app", ICC: true, TrustedHostInterfaces: []string{"eth1"}}}, box("api", "app"))
			s.Daemon.AllowDirectRouting = true
			return s
		}(), []string{"medium host docker", "medium network app"}},
		{"direct-routing-allowed", "quiet", hostOf(nil, box("api", "app")), nil},

		{"ipv6-unfiltered", "fires", func() *inventory.Snapshot {
			s := hostOf([]inventory.Network{{Name: "app", Driver: "bridge", ICC: true, EnableIPv6: true,
				Subnets: []inventory.Subnet{{Prefix: netip.MustParsePrefix("fd00:1::/64")}}}}, box("api", "app"))
			s.Daemon.IP6Tables = &no
			return s
		}(), []string{"high network app"}},
		{"ipv6-unfiltered", "ip6tables on", func() *inventory.Snapshot {
			s := hostOf([]inventory.Network{{Name: "app", Driver: "bridge", ICC: true, EnableIPv6: true}}, box("api", "app"))
			yes := true
			s.Daemon.IP6Tables = &yes
			return s
		}(), nil},
		{"ipv6-unfiltered", "no ipv6", func() *inventory.Snapshot {
			s := hostOf(nil, box("api", "app"))
			s.Daemon.IP6Tables = &no
			return s
		}(), nil},

		{"capabilities-not-dropped", "fires", hostOf(nil, with(box("app", "app"), func(c *inventory.Container) { c.CapDrop = nil })),
			[]string{"low container app"}},
		{"capabilities-not-dropped", "dropped", hostOf(nil, with(box("app", "app"), func(c *inventory.Container) { c.CapDrop = []string{"all"} })), nil},

		{"writable-rootfs", "fires", hostOf(nil, with(box("app", "app"), func(c *inventory.Container) { c.ReadOnlyRootfs = false })),
			[]string{"low container app"}},
		{"writable-rootfs", "read-only", hostOf(nil, box("app", "app")), nil},

		{"no-new-privileges", "fires", hostOf(nil, with(box("app", "app"), func(c *inventory.Container) { c.SecurityOpt = nil })),
			[]string{"low container app"}},
		{"no-new-privileges", "set", hostOf(nil, with(box("app", "app"), func(c *inventory.Container) { c.SecurityOpt = []string{"no-new-privileges:true"} })), nil},

		{"privileged-host-port", "fires", hostOf(nil, with(box("web", "dmz"), func(c *inventory.Container) { c.Ports = []inventory.PortBinding{pub("192.0.2.1", 443, 8443)} })),
			[]string{"low container web"}},
		{"privileged-host-port", "high port", hostOf(nil, with(box("web", "dmz"), func(c *inventory.Container) { c.Ports = []inventory.PortBinding{pub("192.0.2.1", 8443, 443)} })), nil},

		{"shared-network-namespace", "fires", hostOf(nil, box("app", "app"), with(box("sidecar"), func(c *inventory.Container) { c.NetworkMode = "container:app" })),
			[]string{"low container sidecar"}},
		{"shared-network-namespace", "quiet", hostOf(nil, box("app", "app")), nil},

		{"internal-publish-ignored", "fires", hostOf([]inventory.Network{internal("secure")}, with(box("cache", "secure"), func(c *inventory.Container) {
			c.Ports = []inventory.PortBinding{pub("", 6379, 6379)}
		})), []string{"info container cache"}},
		{"internal-publish-ignored", "one routed network", hostOf([]inventory.Network{internal("secure")}, with(box("cache", "secure", "app"), func(c *inventory.Container) {
			c.Ports = []inventory.PortBinding{pub("", 6379, 6379)}
		})), nil},
		{"fenced-container", "fires", hostOf(nil, box("intruder", "db")), []string{"medium container intruder"}},
		{"fenced-container", "no policy", hostOf(nil, box("intruder", "db")), nil},

		{"swarm-data-unencrypted", "fires", swarmOf([]inventory.Network{overlay("back")}, task(postgres("db.1", "back"), "db", "n2")),
			[]string{"high network back"}},
		{"swarm-data-unencrypted", "encrypted", swarmOf([]inventory.Network{overlay("back", "encrypted")}, task(postgres("db.1", "back"), "db", "n2")), nil},
		{"swarm-data-unencrypted", "no data service", swarmOf([]inventory.Network{overlay("front")}, task(box("web.1", "front"), "web", "n2")), nil},
		{"swarm-encryption-unavailable", "fires", swarmOf([]inventory.Network{overlay("back", "encrypted")},
			task(postgres("db.1", "back"), "db", "n1"), task(box("api.1", "back"), "api", "n2")), []string{"high network back"}},
		{"swarm-encryption-unavailable", "not probed", swarmOf([]inventory.Network{overlay("back", "encrypted")},
			task(postgres("db.1", "back"), "db", "n2"), task(box("api.1", "back"), "api", "n3")), nil},
		{"swarm-encryption-unavailable", "not encrypted", swarmOf([]inventory.Network{overlay("back")},
			task(postgres("db.1", "back"), "db", "n1"), task(box("api.1", "back"), "api", "n2")), nil},
		{"swarm-data-routing-mesh", "fires", withService(swarmOf([]inventory.Network{overlay("back", "encrypted")}, task(postgres("db.1", "back"), "db", "n2")),
			inventory.Service{Name: "db", Ports: []inventory.ServicePort{{Target: l4.Port{Proto: "tcp", Number: 5432}, Published: 5432, Mode: inventory.PublishIngress}}}),
			[]string{"high service db"}},
		{"swarm-data-routing-mesh", "host mode", withService(swarmOf([]inventory.Network{overlay("back", "encrypted")}, task(postgres("db.1", "back"), "db", "n2")),
			inventory.Service{Name: "db", Ports: []inventory.ServicePort{{Target: l4.Port{Proto: "tcp", Number: 5432}, Published: 5432, Mode: inventory.PublishHost}}}), nil},
		{"swarm-attachable-data", "fires", swarmOf([]inventory.Network{overlay("back", "encrypted", "attachable")}, task(postgres("db.1", "back"), "db", "n2")),
			[]string{"medium network back"}},
		{"swarm-attachable-data", "services only", swarmOf([]inventory.Network{overlay("back", "encrypted")}, task(postgres("db.1", "back"), "db", "n2")), nil},
		{"swarm-workload-on-manager", "fires", swarmOf(nil, task(box("web.1", "front"), "web", "n1")), []string{"medium node n1"}},
		{"swarm-workload-on-manager", "workers only", swarmOf(nil, task(box("web.1", "front"), "web", "n2")), nil},
	}
	// Rules that read more than the host.
	options := map[string]Options{
		"fenced-container/fires": {Fenced: map[string][]string{"intruder": {"db"}}},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.rule+"/"+tt.name, func(t *testing.T) {
			if Lookup(tt.rule) == nil {
				t.Fatalf("no rule %q", tt.rule)
			}
			var got []string
			for _, f := range Run(tt.snap, options[tt.rule+"/"+tt.name]).Findings {
				if f.Rule != tt.rule {
					continue
				}
				got = append(got, fmt.Sprintf("%s %s %s", f.Severity, f.Subject.Kind, f.Subject.Name))
				if len(f.Evidence) == 0 || f.Remediation == "" || f.Title == "" {
					t.Errorf("finding %+v lacks evidence, remediation or title", f)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("findings of %s:\n got %q\nwant %q", tt.rule, got, tt.want)
			}
		})
		if len(tt.want) > 0 {
			covered[tt.rule+"+"] = true
		} else {
			covered[tt.rule+"-"] = true
		}
	}
	for _, r := range Rules() {
		if !covered[r.ID+"+"] || !covered[r.ID+"-"] {
			t.Errorf("rule %s needs a case that fires and a case that must not", r.ID)
		}
	}
}

// TestCleanContainer: a hardened container on its own network with nothing
// published has no finding at all.
func TestCleanContainer(t *testing.T) {
	rep := Run(hostOf(nil, box("clean", "own")), Options{})
	if len(rep.Findings) != 0 {
		t.Fatalf("clean host has findings: %+v", rep.Findings)
	}
	if rep.Summary.Findings != 0 || rep.Summary.Highest != "" {
		t.Errorf("summary = %+v", rep.Summary)
	}
}

func TestBypassEvidenceNamesReachers(t *testing.T) {
	snap := hostOf(nil,
		with(postgres("db", "data"), func(c *inventory.Container) { c.Ports = []inventory.PortBinding{pub("", 5432, 5432)} }),
		box("frontend", "app"), box("api", "data"), with(box("agent"), func(c *inventory.Container) { c.NetworkMode = "host" }))
	for _, f := range Run(snap, Options{}).Findings {
		if f.Rule != "published-bypasses-isolation" {
			continue
		}
		ev := strings.Join(f.Evidence, "\n")
		if !strings.Contains(ev, "frontend (app)") {
			t.Errorf("evidence does not name frontend: %s", ev)
		}
		if strings.Contains(ev, "api (") {
			t.Errorf("evidence names api, which shares the data network: %s", ev)
		}
		return
	}
	t.Fatal("no published-bypasses-isolation finding")
}

func TestSeverityOrderAndSkip(t *testing.T) {
	snap := hostOf(nil, with(box("x", "bridge"), func(c *inventory.Container) { c.Privileged = true; c.ReadOnlyRootfs = false }))
	rep := Run(snap, Options{Skip: []string{"writable-rootfs"}})
	for i := 1; i < len(rep.Findings); i++ {
		if rep.Findings[i].Severity > rep.Findings[i-1].Severity {
			t.Fatalf("findings not sorted by severity: %v", rep.Findings)
		}
	}
	if rep.Summary.ByRule["writable-rootfs"] != 0 {
		t.Error("skipped rule ran")
	}
	if rep.Findings[0].Rule != "privileged" || rep.Summary.Highest != "critical" || !rep.AtLeast(High) {
		t.Errorf("first finding %s, highest %s", rep.Findings[0].Rule, rep.Summary.Highest)
	}
}

func TestParseSeverity(t *testing.T) {
	for _, s := range Severities() {
		got, err := ParseSeverity(strings.ToUpper(s.String()))
		if err != nil || got != s {
			t.Errorf("ParseSeverity(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseSeverity("severe"); err == nil {
		t.Error("ParseSeverity accepted an unknown name")
	}
}
