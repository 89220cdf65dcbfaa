package reach

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
)

// seedHost is the seed's Level-3 three-tier host, plus the pieces that
// exercise every path: a dev box on its own network, a host-network agent,
// a sidecar sharing api's namespace, an isolated box and a container on
// the default bridge. Address plan: public-dmz 10.10.1.0/24,
// application-tier 10.10.2.0/24, database-tier 10.10.3.0/24 (internal),
// dev 10.10.4.0/24, bridge 172.17.0.0/16.
func seedHost() *inventory.Snapshot {
	nets := []inventory.Network{
		{Name: "bridge", Driver: "bridge", ICC: true},
		{Name: "host", Driver: "host"},
		{Name: "none", Driver: "null"},
		{Name: "public-dmz", Driver: "bridge", ICC: true},
		{Name: "application-tier", Driver: "bridge", ICC: true},
		{Name: "database-tier", Driver: "bridge", ICC: true, Internal: true},
		{Name: "dev", Driver: "bridge", ICC: true},
	}
	for i := range nets[3:] {
		nets[3+i].Subnets = []inventory.Subnet{{Prefix: netip.MustParsePrefix(fmt.Sprintf("10.10.%d.0/24", i+1))}}
	}
	c := func(name, image string, networks ...string) inventory.Container {
		ct := inventory.Container{Name: name, Image: image, State: "running"}
		for _, n := range networks {
			ct.Endpoints = append(ct.Endpoints, inventory.Endpoint{Network: n})
		}
		if len(networks) > 0 {
			ct.NetworkMode = networks[0]
		}
		return ct
	}
	lb := c("lb", "nginx", "public-dmz")
	lb.Ports = []inventory.PortBinding{{ContainerPort: l4.Port{Number: 443, Proto: "tcp"}, HostPort: 18443}}
	agent := c("agent", "agent")
	agent.NetworkMode = "host"
	sidecar := c("sidecar", "envoy")
	sidecar.NetworkMode = "container:api"
	loner := c("loner", "app")
	loner.NetworkMode = "none"
	local := c("admin", "adminer", "dev")
	local.Ports = []inventory.PortBinding{{ContainerPort: l4.Port{Number: 8080, Proto: "tcp"}, HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 18080}}
	return &inventory.Snapshot{Version: 1, Networks: nets, Containers: []inventory.Container{
		lb,
		c("frontend", "web", "public-dmz", "application-tier"),
		c("api", "api", "application-tier", "database-tier"),
		c("postgres", "postgres:15", "database-tier"),
		c("cache", "redis:7", "database-tier"),
		c("devbox", "devbox", "dev"),
		local, agent, sidecar, loner,
		c("legacy", "cron", "bridge"),
	}}
}

// checkEval asserts a.Eval(from, to, port): reached or not, and when
// reached, by an edge that carries reason via.
func checkEval(t *testing.T, a *Analysis, from, to, port string, want bool, via string) {
	t.Helper()
	ok, e := a.Eval(from, to, p(port))
	if ok != want {
		t.Errorf("%s -> %s:%s = %v, want %v (edge %+v)", from, to, port, ok, want, e)
		return
	}
	if ok && !slices.Contains(Reasons(e.Via), via) {
		t.Errorf("%s -> %s:%s via %v, want %s", from, to, port, e.Via, via)
	}
}

func p(s string) l4.Port {
	port, err := l4.ParsePort(s)
	if err != nil {
		panic(err)
	}
	return port
}

func TestEvalSeedHost(t *testing.T) {
	a := Analyze(seedHost(), Options{})
	tests := []struct {
		from, to, port string
		want           bool
		via            string
	}{
		{"lb", "frontend", "8080/tcp", true, "network:public-dmz"},
		{"frontend", "api", "8080/tcp", true, "network:application-tier"},
		{"frontend", "postgres", "5432/tcp", false, ""},
		{"api", "postgres", "5432/tcp", true, "network:database-tier"},
		{"api", "cache", "6379/tcp", true, "network:database-tier"},
		{"postgres", "api", "80/tcp", true, "network:database-tier"},
		{"postgres", "frontend", "80/tcp", false, ""},
		{"devbox", "lb", "443/tcp", true, "published:0.0.0.0:18443"},
		{"devbox", "lb", "80/tcp", false, ""},
		{"postgres", "lb", "443/tcp", false, ""}, // internal: no route to published ports
		{"devbox", "admin", "8080/tcp", true, "network:dev"},
		{"legacy", "admin", "8080/tcp", false, ""}, // loopback binding: host only
		{"agent", "postgres", "5432/tcp", true, "host-network"},
		{"agent", "admin", "8080/tcp", true, "host-network"},
		{"devbox", "agent", "9100/tcp", true, "gateway:dev"},
		{"sidecar", "postgres", "5432/tcp", true, "network:database-tier"},
		{"frontend", "sidecar", "15000/tcp", true, "network:application-tier"},
		{"api", "sidecar", "15000/tcp", true, "namespace:api"},
		{"loner", "lb", "443/tcp", false, ""},
		{"agent", "loner", "80/tcp", false, ""},
		{"outside", "lb", "443/tcp", true, "published:0.0.0.0:18443"},
		{"outside", "admin", "8080/tcp", false, ""},
		{"outside", "agent", "22/tcp", true, "host-network"},
		{"outside", "host", "22/tcp", true, "host-network"}, // the host's own services
		{"outside", "postgres", "5432/tcp", false, ""},
		{"host", "postgres", "5432/tcp", true, "host-network"},
		{"devbox", "internet", "443/tcp", true, "egress"},
		{"postgres", "internet", "443/tcp", false, ""},
		{"postgres", "host", "22/tcp", true, "gateway:database-tier"},
		{"legacy", "devbox", "22/tcp", false, ""},
	}
	for _, tt := range tests {
		checkEval(t, a, tt.from, tt.to, tt.port, tt.want, tt.via)
	}
}

// TestPortsBetweenMatchesEdges: the blast radius's fast first-hop ports
// agree with the edges for every pair.
func TestPortsBetweenMatchesEdges(t *testing.T) {
	a := Analyze(seedHost(), Options{})
	for i, c := range a.cs {
		edges := map[string]Edge{}
		for _, e := range a.From(c.Name) {
			edges[e.To] = e
		}
		for j, d := range a.cs {
			if i == j {
				continue
			}
			got := a.portsBetween(i, j)
			want := edges[d.Name].Ports
			if !slices.Equal(got.Strings(), want.Strings()) {
				t.Errorf("%s -> %s: portsBetween %v, edge %v", c.Name, d.Name, got.Strings(), want.Strings())
			}
		}
	}
}

func TestBlastRadius(t *testing.T) {
	a := Analyze(seedHost(), Options{})
	r, err := a.BlastRadius("frontend", 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, x := range r.Reachable {
		got[x.Name] = fmt.Sprintf("%d %s %s", x.Hops, strings.Join(x.Path, ">"), strings.Join(x.Ports, ","))
	}
	want := map[string]string{
		"lb":       "1 frontend>lb all",
		"api":      "1 frontend>api all",
		"sidecar":  "1 frontend>sidecar all",
		"admin":    "2 frontend>agent>admin all", // its port is on loopback, but agent is the host
		"postgres": "2 frontend>api>postgres all",
		"cache":    "2 frontend>api>cache all",
		"agent":    "1 frontend>agent all",
		"devbox":   "2 frontend>agent>devbox all",
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: got %q, want %q", name, got[name], w)
		}
	}
	if !r.Host || !r.Internet {
		t.Errorf("frontend reaches host %v internet %v", r.Host, r.Internet)
	}
	if ds := r.DataServices(); len(ds) != 2 {
		t.Errorf("data services reached: %+v", ds)
	}
	one, _ := a.BlastRadius("frontend", 1)
	for _, x := range one.Reachable {
		if x.Hops > 1 {
			t.Errorf("max-hops 1 returned %+v", x)
		}
	}
	if _, err := a.BlastRadius("fronted", 0); err == nil || !strings.Contains(err.Error(), "did you mean frontend") {
		t.Errorf("unknown name error = %v", err)
	}
}

func TestBlastRadiiRanksWorstFirst(t *testing.T) {
	a := Analyze(seedHost(), Options{})
	all := a.BlastRadii()
	if len(all) != len(a.cs) {
		t.Fatalf("%d radii for %d containers", len(all), len(a.cs))
	}
	for i := 1; i < len(all); i++ {
		if all[i].Reached > all[i-1].Reached {
			t.Fatalf("not sorted: %s (%d) after %s (%d)", all[i].Source, all[i].Reached, all[i-1].Source, all[i-1].Reached)
		}
	}
	// Each summary (from a shared search) agrees with the container's own
	// blast radius.
	for _, s := range all {
		r, _ := a.BlastRadius(s.Source, 0)
		maxHops := 0
		for _, x := range r.Reachable {
			maxHops = max(maxHops, x.Hops)
		}
		if s.Reached != len(r.Reachable) || s.Direct != r.Direct() || s.Data != len(r.DataServices()) || s.MaxHops != maxHops {
			t.Errorf("%s: summary %+v, radius %d reached, %d direct, %d data, %d hops", s.Source, s, len(r.Reachable), r.Direct(), len(r.DataServices()), maxHops)
		}
	}
	if last := all[len(all)-1]; last.Source != "loner" || last.Reached != 0 {
		t.Errorf("last = %+v, want loner with nothing", last)
	}
}

func TestParsePort(t *testing.T) {
	for in, want := range map[string]string{"5432/tcp": "5432/tcp", "53/UDP": "53/udp", "80": "80/tcp", "icmp": "icmp"} {
		got, err := l4.ParsePort(in)
		if err != nil || got.String() != want {
			t.Errorf("l4.ParsePort(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"0/tcp", "70000/tcp", "80/gre", "http"} {
		if _, err := l4.ParsePort(bad); err == nil {
			t.Errorf("l4.ParsePort(%q) accepted", bad)
		}
	}
}

func TestThroughHost(t *testing.T) {
	a := Analyze(seedHost(), Options{})
	// lb publishes 443 on all addresses: every container with a route to
	// the host and no network shared with lb reaches it that way; frontend
	// shares public-dmz, postgres and cache are internal-only, agent is the
	// host, loner has no network.
	got := strings.Join(a.ThroughHost("lb"), ",")
	if want := "admin,api,devbox,legacy,sidecar"; got != want {
		t.Errorf("ThroughHost(lb) = %s, want %s", got, want)
	}
	if got := a.ThroughHost("admin"); len(got) != 0 {
		t.Errorf("a loopback binding is reached through the host by %v", got)
	}
}

// randomHost builds a small host with every kind of peer: ICC on and off,
// internal networks, host-network containers, shared namespaces, --network
// none, publishers on all and on loopback addresses.
func randomHost(r *rand.Rand, containers, networks int) *inventory.Snapshot {
	s := &inventory.Snapshot{Version: 1, Networks: []inventory.Network{{Name: "host", Driver: "host"}, {Name: "none", Driver: "null"}}}
	for i := range networks {
		s.Networks = append(s.Networks, inventory.Network{Name: fmt.Sprintf("n%d", i), Driver: "bridge",
			ICC: r.IntN(5) > 0, Internal: r.IntN(4) == 0, EnableIPv6: r.IntN(3) == 0})
	}
	for i := range containers {
		c := inventory.Container{Name: fmt.Sprintf("c%03d", i), State: "running"}
		switch k := r.IntN(20); {
		case k == 0:
			c.NetworkMode = "host"
		case k == 1:
			c.NetworkMode = "none"
		case k == 2 && i > 0:
			c.NetworkMode = fmt.Sprintf("container:c%03d", r.IntN(i))
		default:
			for range 1 + r.IntN(2) {
				n := s.Networks[2+r.IntN(networks)].Name
				if !slices.ContainsFunc(c.Endpoints, func(e inventory.Endpoint) bool { return e.Network == n }) {
					c.Endpoints = append(c.Endpoints, inventory.Endpoint{Network: n})
				}
			}
			c.NetworkMode = c.Endpoints[0].Network
			if r.IntN(6) == 0 {
				b := inventory.PortBinding{ContainerPort: l4.Port{Number: 80, Proto: "tcp"}, HostPort: uint16(10000 + i)}
				switch r.IntN(6) {
				case 0, 1:
					b.HostIP = netip.MustParseAddr("127.0.0.1")
				case 2:
					b.HostIP = netip.IPv4Unspecified() // IPv4 only
				case 3:
					b.HostIP = netip.IPv6Unspecified()
				}
				c.Ports = append(c.Ports, b)
			}
			if r.IntN(8) == 0 {
				c.Image = "postgres:16"
			}
		}
		s.Containers = append(s.Containers, c)
	}
	return s
}

// TestBlastRadiiHubSearchAgreesWithBFS: the hub search gives the same
// summaries as a plain search per position, on many random hosts.
func TestBlastRadiiHubSearchAgreesWithBFS(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		snap := randomHost(r, 5+r.IntN(40), 1+r.IntN(8))
		if round%2 == 1 {
			off := false
			snap.Daemon.IP6Tables = &off
		}
		a := Analyze(snap, Options{})
		got, want := a.BlastRadii(), a.blastRadiiBFS()
		if !slices.Equal(got, want) {
			for i := range want {
				if i < len(got) && got[i] != want[i] {
					t.Errorf("round %d: %+v, want %+v", round, got[i], want[i])
				}
			}
			t.Fatalf("round %d: hub search and BFS disagree", round)
		}
		for _, sum := range got {
			rad, _ := a.BlastRadius(sum.Source, 0)
			deepest := 0
			for _, x := range rad.Reachable {
				deepest = max(deepest, x.Hops)
			}
			if sum.Reached != len(rad.Reachable) || sum.Direct != rad.Direct() || sum.Data != len(rad.DataServices()) || sum.MaxHops != deepest {
				t.Fatalf("round %d: %s: summary %+v, radius %d reached, %d direct, %d data, %d hops",
					round, sum.Source, sum, len(rad.Reachable), rad.Direct(), len(rad.DataServices()), deepest)
			}
		}
	}
}

// TestPortsBetweenMatchesEdgesOnRandomHosts: the same on random hosts,
// with IPv6 filtered and not.
func TestPortsBetweenMatchesEdgesOnRandomHosts(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 200 {
		snap := randomHost(r, 5+r.IntN(25), 1+r.IntN(6))
		off := round%2 == 1
		snap.Daemon.IP6Tables = &off
		a := Analyze(snap, Options{})
		for i, c := range a.cs {
			edges := map[string]Edge{}
			for _, e := range a.From(c.Name) {
				edges[e.To] = e
			}
			for j, d := range a.cs {
				if i == j {
					continue
				}
				if got, want := a.portsBetween(i, j), edges[d.Name].Ports; !slices.Equal(got.Strings(), want.Strings()) {
					t.Fatalf("round %d: %s -> %s: portsBetween %v, edge %v", round, c.Name, d.Name, got.Strings(), want.Strings())
				}
			}
		}
	}
}

// ipv6Host mirrors the truth package's IPv6 scenario: networks with IPv6
// (one with ICC off, one internal), one without, publishers on every
// address, on 0.0.0.0 only and on :: only.
func ipv6Host(ip6tables *bool) *inventory.Snapshot {
	nets := []inventory.Network{
		{Name: "six", Driver: "bridge", ICC: true, EnableIPv6: true},
		{Name: "six-b", Driver: "bridge", ICC: true, EnableIPv6: true},
		{Name: "four", Driver: "bridge", ICC: true},
		{Name: "six-quiet", Driver: "bridge", EnableIPv6: true},
		{Name: "six-sealed", Driver: "bridge", ICC: true, EnableIPv6: true, Internal: true},
		{Name: "sealed", Driver: "bridge", ICC: true, Internal: true},
	}
	c := func(name, network string, ports ...inventory.PortBinding) inventory.Container {
		return inventory.Container{Name: name, State: "running", NetworkMode: network,
			Endpoints: []inventory.Endpoint{{Network: network}}, Ports: ports}
	}
	bind := func(hostIP string, hostPort uint16) inventory.PortBinding {
		b := inventory.PortBinding{ContainerPort: l4.Port{Number: 8080, Proto: "tcp"}, HostPort: hostPort}
		if hostIP != "" {
			b.HostIP = netip.MustParseAddr(hostIP)
		}
		return b
	}
	return &inventory.Snapshot{Version: 1, Daemon: inventory.Daemon{IP6Tables: ip6tables}, Networks: nets,
		Containers: []inventory.Container{
			c("x", "six", bind("0.0.0.0", 28780), bind("::", 28780)), // docker run -p 28780:8080
			c("y", "six"),
			c("z", "six-b"),
			c("w", "four", bind("0.0.0.0", 28781)), // -p 0.0.0.0:28781:8080: IPv4 only
			c("v", "four", bind("::", 28782)),
			c("q1", "six-quiet"),
			c("q2", "six-quiet"),
			c("s1", "six-sealed"),
			c("s2", "six-sealed"),
			c("old", "sealed"),
		}}
}

// TestIPv6Unfiltered: what packets showed on Docker 20.10, whose default
// is ip6tables off (internal/truth TestIPv6): over IPv6 nothing isolates
// networks, ICC off or --internal, and other machines reach containers.
func TestIPv6Unfiltered(t *testing.T) {
	off := false
	a := Analyze(ipv6Host(&off), Options{})
	tests := []struct {
		from, to, port string
		want           bool
		via            string
	}{
		{"x", "y", "80/tcp", true, "network:six"},
		{"x", "z", "80/tcp", true, ViaIPv6Unfiltered},   // across networks
		{"q1", "q2", "80/tcp", true, ViaIPv6Unfiltered}, // ICC off
		{"x", "s1", "80/tcp", true, ViaIPv6Unfiltered},  // into an internal network
		{"s1", "x", "80/tcp", true, ViaIPv6Unfiltered},  // and out of it
		{"s1", "internet", "443/tcp", true, ViaEgress},
		{"s1", "v", "8080/tcp", true, "published:[::]:28782"}, // through its IPv6 gateway
		{"s1", "w", "8080/tcp", false, ""},                    // 0.0.0.0 only: not over IPv6
		{"w", "x", "80/tcp", false, ""},                       // w has no IPv6
		{"w", "x", "8080/tcp", true, "published:0.0.0.0:28780"},
		{"outside", "q1", "5432/tcp", true, ViaIPv6Unfiltered},
		{"outside", "s2", "5432/tcp", true, ViaIPv6Unfiltered},
		{"outside", "w", "80/tcp", false, ""},
		{"old", "internet", "443/tcp", false, ""}, // IPv4 internal: still sealed
		{"old", "v", "8080/tcp", false, ""},
	}
	for _, tt := range tests {
		checkEval(t, a, tt.from, tt.to, tt.port, tt.want, tt.via)
	}
	// v (on four, no IPv6) publishes on :: only: everyone with a route to
	// the host reaches it through the host, the internal IPv6 ones too;
	// w shares its network, old has no route.
	if got, want := strings.Join(a.ThroughHost("v"), ","), "q1,q2,s1,s2,x,y,z"; got != want {
		t.Errorf("ThroughHost(v) = %s, want %s", got, want)
	}
	r, _ := a.BlastRadius("s1", 1)
	if !r.Internet || r.Direct() < 6 {
		t.Errorf("s1 (internal, IPv6 unfiltered): radius %+v, want the internet and every IPv6 container", r)
	}
	if why := a.WhyNot("s1", "w"); !strings.Contains(why, "publishes none on IPv6") {
		t.Errorf("WhyNot(s1, w) = %q", why)
	}

	// With ip6tables on, or unknown, IPv6 is isolated as IPv4 is.
	on := true
	for _, flag := range []*bool{&on, nil} {
		a := Analyze(ipv6Host(flag), Options{})
		for _, k := range [][2]string{{"x", "z"}, {"q1", "q2"}, {"s1", "x"}, {"s1", "internet"}, {"outside", "q1"}} {
			if ok, e := a.Eval(k[0], k[1], p("80/tcp")); ok {
				t.Errorf("ip6tables %v: %s -> %s reachable via %v", flag, k[0], k[1], e.Via)
			}
		}
	}
}

// TestNarrowedByAPolicy: with a policy enforced (frontend -> api on
// 8080/tcp, api -> postgres on 5432/tcp, nothing else between
// containers), edges, answers and blast radii follow it.
func TestNarrowedByAPolicy(t *testing.T) {
	allowed := map[[2]string]PortSet{
		{"frontend", "api"}:  Ports(p("8080/tcp")),
		{"api", "postgres"}:  Ports(p("5432/tcp")).AddRange(l4.Range{Proto: "udp", First: 9000, Last: 9100}),
		{"devbox", Internet}: AllPorts(),
	}
	narrow := func(e Edge) PortSet {
		if e.From == Host || e.To == Host {
			return e.Ports
		}
		return e.Ports.Intersect(allowed[[2]string{e.From, e.To}])
	}
	a := Analyze(seedHost(), Options{Narrow: narrow})
	for _, tt := range []struct {
		from, to, port string
		want           bool
	}{
		{"frontend", "api", "8080/tcp", true},
		{"frontend", "api", "22/tcp", false},
		{"frontend", "lb", "443/tcp", false},
		{"api", "postgres", "9050/udp", true},
		{"api", "cache", "6379/tcp", false},
		{"devbox", "internet", "443/tcp", true},
		{"frontend", "internet", "443/tcp", false},
		{"host", "postgres", "5432/tcp", true},
	} {
		if ok, e := a.Eval(tt.from, tt.to, p(tt.port)); ok != tt.want {
			t.Errorf("%s -> %s:%s = %v (%+v), want %v", tt.from, tt.to, tt.port, ok, e, tt.want)
		}
	}
	if e, _ := a.Edge("api", "postgres"); strings.Join(e.Ports.Strings(), ",") != "5432/tcp,9000-9100/udp" {
		t.Errorf("api -> postgres ports = %v", e.Ports.Strings())
	}
	r, _ := a.BlastRadius("frontend", 0)
	var got []string
	for _, x := range r.Reachable {
		got = append(got, fmt.Sprintf("%s@%d(%s)", x.Name, x.Hops, strings.Join(x.Ports, ",")))
	}
	if strings.Join(got, " ") != "api@1(8080/tcp) postgres@2(8080/tcp)" || !r.Host || r.Internet {
		t.Errorf("narrowed blast radius of frontend = %v, host %v, internet %v", got, r.Host, r.Internet)
	}
	all := a.BlastRadii()
	if all[0].Source != "frontend" || all[0].Reached != 2 || all[0].MaxHops != 2 {
		t.Errorf("narrowed ranking starts %+v", all[0])
	}
}
