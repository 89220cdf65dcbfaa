package truth

// Address plan: every scenario's networks get /24s in 10.128.0.0/9 derived
// from the run id (IPv6 networks a ULA /64 from testenv); the scenario's
// host address and outside namespace are in 198.18.0.0/16 and
// fd5a:77ee::/32, fd5a:77ef::/32 (see plumbing.go). Host ports: each
// scenario publishes in a range of its own (281xx three-tier, 282xx
// multi-project, ...), so that scenarios can run at once. Listeners: every
// container namespace on 80/tcp, 5432/tcp, 53/udp and its published
// container ports; the host on two free ports; "internet" on 80/tcp, 53/udp.

import (
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/probe"
	"github.com/zonewarden/zonewarden/internal/reach"
)

// check compares the scenario with the reachability engine and, with -v,
// logs the whole observed matrix.
func check(t *testing.T, e *Env) *Matrix {
	t.Helper()
	m := e.Check(t, e.Model())
	if testing.Verbose() {
		t.Logf("observed matrix:\n%s", m)
	}
	return m
}

// expect asserts single keys of the matrix, so that each scenario states
// the behaviour it is there to confirm (and fails if the harness stopped
// probing it).
func expect(t *testing.T, m *Matrix, want ...string) {
	t.Helper()
	for _, w := range want {
		k, reached := parseExpect(t, w)
		o, ok := m.Get(k.From, k.To, k.Port)
		if !ok {
			t.Errorf("%s: not probed", k)
			continue
		}
		if o.Reached != reached {
			t.Errorf("%s: reached=%v, want %v; probes: %v", k, o.Reached, reached, o.Attempts)
		}
	}
}

// parseExpect reads "a -> b:80/tcp yes" (or no).
func parseExpect(t *testing.T, s string) (Key, bool) {
	t.Helper()
	f := strings.Fields(s)
	if len(f) != 4 || f[1] != "->" || f[3] != "yes" && f[3] != "no" {
		t.Fatalf("bad expectation %q", s)
	}
	to, portText, ok := strings.Cut(f[2], ":")
	port, err := l4.ParsePort(portText)
	if !ok || err != nil {
		t.Fatalf("bad expectation %q", s)
	}
	return Key{From: f[0], To: to, Port: port}, f[3] == "yes"
}

// The seed's three-tier example: lb publishes 443 on every address; the
// database tier is internal.
func TestThreeTier(t *testing.T) {
	e := Build(t, ThreeTier())
	m := check(t, e)
	expect(t, m,
		"frontend -> api:5432/tcp yes",
		"api -> postgres:5432/tcp yes",
		"frontend -> postgres:5432/tcp no",
		"lb -> api:80/tcp no",
		"api -> lb:443/tcp yes",     // through the host: published
		"api -> lb:80/tcp no",       // not published
		"postgres -> lb:443/tcp no", // internal: no path to published ports
		"postgres -> internet:80/tcp no",
		"postgres -> host:"+e.Ports("host")[0].String()+" yes",
		"outside -> lb:443/tcp yes",
		"outside -> frontend:80/tcp no",
		"host -> postgres:5432/tcp yes",
	)
}

// The seed's multi-project host: two compose projects with their own
// networks, a shared monitoring network, and a dev box.
func TestMultiProject(t *testing.T) {
	e := Build(t, MultiProject())
	m := check(t, e)
	expect(t, m,
		"shop-web -> shop-db:5432/tcp yes",
		"blog-web -> shop-db:5432/tcp no",
		"prometheus -> blog-web:80/tcp yes", // shared network
		"prometheus -> blog-db:80/tcp no",
		"devbox -> blog-db:3306/tcp yes", // the published database: through the host
		"devbox -> blog-db:5432/tcp no",
		"shop-db -> blog-db:3306/tcp no", // internal only
		"devbox -> shop-web:8080/tcp yes",
	)
}

// Ports published on every address, on the scenario's host address only,
// and on one network's gateway only; TCP and UDP.
func TestPublished(t *testing.T) {
	e := Build(t, Published())
	m := check(t, e)
	expect(t, m,
		"client -> web:8080/tcp yes",
		"client -> web:5353/udp yes",
		"client -> web:80/tcp no",
		"client -> db:5432/tcp yes",    // through the host address
		"client -> cache:6379/tcp yes", // through front's gateway, from another network
		"locked -> web:8080/tcp no",
		"outside -> db:5432/tcp yes",
		"outside -> web:5353/udp yes",
	)
}

// Internal networks: no egress, no publishing (a container whose only
// network is internal publishes nothing), no path to published ports.
func TestInternal(t *testing.T) {
	e := Build(t, Internal())
	ix := inventory.NewIndex(e.Snapshot())
	if vault := ix.Container("vault"); len(vault.Ports) == 0 || len(ix.PublishedPorts(vault)) != 0 {
		t.Errorf("vault: requested %v, published %v; want the -p in the snapshot and nothing published", vault.Ports, ix.PublishedPorts(vault))
	}
	m := check(t, e)
	expect(t, m,
		"client -> vault:8200/tcp no",
		"outside -> vault:8200/tcp no",
		"worker -> vault:8200/tcp yes",
		"client -> bridgehead:8080/tcp yes",
		"worker -> bridgehead:8080/tcp yes", // same network
		"vault -> internet:80/tcp no",
		"bridgehead -> internet:80/tcp yes",
		"host -> worker:80/tcp yes",
	)
	// The packets agree that nothing was published: the host refuses the
	// port vault asked for (no proxy, no DNAT).
	o, _ := m.Get(reach.Host, "vault", l4.Port{Proto: "tcp", Number: 8200})
	refused := 0
	for _, a := range o.Attempts {
		if strings.HasPrefix(a.Via, reach.ViaPublished) && a.Result.Status == probe.Refused {
			refused++
		}
	}
	if refused == 0 {
		t.Errorf("host -> vault's requested host port: want refused, got %v", o.Attempts)
	}
}

// A host-network container shares the host's namespace: it reaches every
// container (internal networks included) and every published port, and
// containers reach it through their gateways.
func TestHostNetwork(t *testing.T) {
	e := Build(t, HostNetwork())
	hp := e.Ports("agent")[0].String()
	m := check(t, e)
	expect(t, m,
		"agent -> db:5432/tcp yes",
		"agent -> web:8080/tcp yes",
		"web -> agent:"+hp+" yes",
		"db -> agent:"+hp+" yes",
		"outside -> agent:"+hp+" yes",
		"agent -> internet:80/tcp yes",
	)
}

// enable_icc=false: members of one network do not reach each other, but
// they still reach each other's published ports through the host.
func TestICCDisabled(t *testing.T) {
	e := Build(t, ICCDisabled())
	m := check(t, e)
	expect(t, m,
		"a -> b:80/tcp no",
		"a -> b:8080/tcp yes", // published, through the gateway
		"c -> d:80/tcp yes",
		"c -> a:80/tcp no",
		"a -> host:"+e.Ports("host")[0].String()+" yes",
	)
}

// IPv6-enabled networks.
func TestIPv6(t *testing.T) {
	e := Build(t, IPv6())
	m := check(t, e)
	expect(t, m,
		"x -> y:80/tcp yes",
		"z -> x:8080/tcp yes",
		"s1 -> s2:80/tcp yes",
		"w -> x:80/tcp no", // w has no IPv6
		"w -> x:8080/tcp yes",
	)
	if d := e.Snapshot().Daemon.IP6Tables; d == nil || *d {
		expect(t, m, "x -> z:80/tcp no", "q1 -> q2:80/tcp no", "s1 -> internet:80/tcp no", "outside -> x:80/tcp no")
		return
	}
	// Docker without ip6tables (its default before 27) filters no IPv6.
	expect(t, m,
		"x -> z:80/tcp yes",   // across networks
		"q1 -> q2:80/tcp yes", // ICC off
		"x -> s1:80/tcp yes",  // into an internal network
		"s1 -> internet:80/tcp yes",
		"s1 -> x:8080/tcp yes", // a published port, through its IPv6 gateway
		"outside -> s1:5432/tcp yes",
	)
}

// --network none: nothing in, nothing out.
func TestNoneNetwork(t *testing.T) {
	e := Build(t, NoneNetwork())
	m := check(t, e)
	expect(t, m,
		"loner -> peer:80/tcp no",
		"loner -> internet:80/tcp no",
		"peer -> loner:80/tcp no",
		"host -> loner:80/tcp no",
	)
}

// --network container:X: the sidecar shares main's namespace, addresses
// and published ports.
func TestContainerNamespace(t *testing.T) {
	e := Build(t, ContainerNamespace())
	m := check(t, e)
	expect(t, m,
		"main -> sidecar:80/tcp yes",
		"sidecar -> main:80/tcp yes",
		"sidecar -> peer:80/tcp yes",
		"peer -> sidecar:80/tcp yes",
		"stranger -> sidecar:8080/tcp yes",
		"stranger -> sidecar:80/tcp no",
	)
}

// Docker's default bridge: every container on it reaches every other, and
// it is isolated from user-defined networks like any other bridge.
func TestDefaultBridge(t *testing.T) {
	e := Build(t, DefaultBridge())
	m := check(t, e)
	expect(t, m,
		"legacy1 -> legacy2:80/tcp yes",
		"modern -> legacy2:80/tcp no",
		"modern -> legacy2:8080/tcp yes",
		"legacy2 -> modern:80/tcp no",
	)
}

// Gateway modes (Docker 27+): routed publishes the container port on the
// container's own address, nat-unprotected opens every port to whoever
// routes to the network, isolated hides the network from the host (its
// addresses are not probed from outside it: the guard skips them, since
// the host would send such a packet out of its default route).
func TestGatewayModes(t *testing.T) {
	e := Build(t, GatewayModes())
	m := check(t, e)
	expect(t, m,
		"client -> web:8080/tcp yes",
		"client -> r:443/tcp yes",
		"client -> r:80/tcp no",
		"client -> r2:80/tcp no",
		"outside -> r:443/tcp yes",
		"outside -> r:80/tcp no",
		"outside -> u2:80/tcp yes",
		"outside -> u:90/tcp yes",
		"client -> u2:80/tcp no",
		"h1 -> h2:80/tcp yes",
		"host -> h1:80/tcp no",
		"outside -> h1:80/tcp no",
		"client -> h1:80/tcp no",
	)
}

// Macvlan: the members sit on their parent's segment, beside the host and
// past its firewall.
func TestMacvlan(t *testing.T) {
	e := Build(t, Macvlan())
	m := check(t, e)
	expect(t, m,
		"m1 -> m2:5432/tcp yes",
		"outside -> m1:5432/tcp yes",
		"m1 -> internet:80/tcp yes",
		"host -> m1:80/tcp no",
		"web -> m1:80/tcp no",
		"m1 -> web:8080/tcp no",
	)
}
