package truth

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/firewall"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/nft"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/reach"
	"github.com/zonewarden/zonewarden/internal/testenv"
)

// enforcedThreeTier is the three-tier host with a dev box on a zone of
// its own, for the policy below; the dmz, app and dev networks have IPv6.
func enforcedThreeTier() Scenario {
	sc := ThreeTier().WithHostPorts(29100)
	for i := range sc.Networks {
		if sc.Networks[i].Name == "public-dmz" || sc.Networks[i].Name == "app" {
			sc.Networks[i].IPv6 = true // Docker 20.10 does not filter IPv6: zonewarden must
		}
	}
	sc.Networks = append(sc.Networks, Network{Name: "dev", IPv6: true})
	sc.Containers = append(sc.Containers, Container{Name: "devbox", Networks: []string{"dev"}})
	return sc
}

const enforcedPolicy = `version: 1
zones:
  public-dmz: {default: deny}
  app:        {default: deny}
  db:         {internal: true, default: deny}
  dev:        {}
workloads:
  lb:       {match: {name: lb}, zones: [public-dmz], publish: ["29100:443/tcp"]}
  frontend: {match: {name: frontend}, zones: [public-dmz, app]}
  api:      {match: {name: api}, zones: [app, db], egress: [{to: %s/32, ports: [80/tcp]}]}
  postgres: {match: {name: postgres}, zones: [db]}
  cache:    {match: {name: cache}, zones: [db]}
  devbox:   {match: {name: devbox}, zones: [dev], egress: [{to: %s/32, ports: [53/udp]}]}
flows:
  - {from: lb,       to: frontend, ports: [80/tcp]}
  - {from: frontend, to: api,      ports: [80/tcp]}
  - {from: api,      to: postgres, ports: [5432/tcp, 7777/tcp]}
  - {from: api,      to: cache,    ports: [53/udp]}
  - {from: devbox,   to: lb,       ports: [443/tcp]}
unmanaged: deny
`

// TestEnforcedThreeTier loads the compiled ruleset of the seed's Level-3
// policy on a real host and holds every pair and port to the model: the
// engine's reachability narrowed by the policy's decisions. Traffic of the
// host's own namespace is not filtered (zonewarden filters forwarded
// traffic and published ports).
func TestEnforcedThreeTier(t *testing.T) { enforceThreeTier(t, false) }

// TestUserlandProxyOff restarts dockerd with --userland-proxy=false (the
// daemon's command line; the snapshot reads it there): a container
// reaches another network's published port by DNAT in the kernel, which
// the isolation of engines before 29 drops, and zonewarden's enforcement
// of the three tiers holds on that path too.
func TestUserlandProxyOff(t *testing.T) {
	testenv.RequireAlone(t, "restarts dockerd with --userland-proxy=false")
	cli := testenv.RequireDocker(t)
	testenv.RestartDockerdWith(t, cli, "--userland-proxy=false")
	t.Run("published", func(t *testing.T) {
		e := Build(t, Published())
		if up := e.Snapshot().Daemon.UserlandProxy; up == nil || *up {
			t.Fatalf("the snapshot says userland-proxy %v, want false", up)
		}
		m := check(t, e)
		if e.Snapshot().Daemon.Major() < 29 {
			expect(t, m,
				"client -> web:8080/tcp no", // DNATed, then dropped by Docker's isolation
				"web -> cache:6379/tcp yes", // one network: hairpin DNAT
				"outside -> web:8080/tcp yes",
			)
		}
	})
	t.Run("enforced", func(t *testing.T) { enforceThreeTier(t, false) })
}

// TestEnforcedThreeTierDocker29 is TestEnforcedThreeTier on the path of
// Docker 29 (Env.EmulateDocker29): a connection from another network to a
// published port is DNATed in the kernel and meets zonewarden on the
// forward hook, on the container port (devbox -> lb).
func TestEnforcedThreeTierDocker29(t *testing.T) { enforceThreeTier(t, true) }

// TestEnforcedThreeTierGatewayModes is TestEnforcedThreeTier with the
// zones in the gateway modes of Docker 27+: the DMZ routed (outside and
// other networks reach lb's container port on its own address, past any
// host port), the app tier nat-unprotected (every port of its members
// open to whoever routes there, which zonewarden must close) and the
// database tier isolated (no address on its bridge).
func TestEnforcedThreeTierGatewayModes(t *testing.T) {
	enforceThreeTier(t, false, func(sc *Scenario) {
		for i := range sc.Networks {
			switch sc.Networks[i].Name {
			case "public-dmz":
				sc.Networks[i].GatewayMode = inventory.GatewayRouted
			case "app":
				sc.Networks[i].GatewayMode = inventory.GatewayNATUnprotected
			case "db":
				sc.Networks[i].GatewayMode = inventory.GatewayIsolated
			}
		}
	})
}

func enforceThreeTier(t *testing.T, kernelDNAT bool, change ...func(*Scenario)) {
	sc := enforcedThreeTier()
	for _, f := range change {
		f(&sc)
	}
	env := Build(t, sc)
	if kernelDNAT {
		t.Logf("removed %d nat RETURN rules: published ports are DNATed in the kernel", env.EmulateDocker29(t))
	}
	ext4, _ := env.InternetAddrs()
	b, rs := compileFor(t, env, fmt.Sprintf(enforcedPolicy, ext4, ext4))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Sessions open before the policy: the one it forbids must end, the
	// one it allows must live on.
	forbidden := env.Hold(t, "frontend", "api", 7777)
	allowed := env.Hold(t, "api", "postgres", 7777)
	res, err := firewall.Load(ctx, rs)
	if err != nil {
		t.Fatalf("loading the ruleset: %v", err)
	}
	if res.ConntrackErr != nil || res.Killed == 0 {
		t.Errorf("conntrack: %d killed, %v", res.Killed, res.ConntrackErr)
	}
	if forbidden.Alive(time.Second) {
		t.Error("frontend -> api:7777, open before the policy that forbids it, survives it")
	}
	if !allowed.Alive(time.Second) {
		t.Error("api -> postgres:7777, which the policy allows, was cut")
	}

	model := env.EnforcedModel(b)
	m := env.Check(t, model)
	expect(t, m,
		"lb -> frontend:80/tcp yes",
		"lb -> frontend:5432/tcp no",
		"frontend -> api:80/tcp yes",
		"frontend -> postgres:5432/tcp no",
		"api -> postgres:5432/tcp yes",
		"api -> postgres:80/tcp no",
		"api -> cache:53/udp yes",
		"api -> cache:5432/tcp no",
		"postgres -> api:80/tcp no",
		"devbox -> lb:80/tcp no",
		"frontend -> lb:443/tcp no",
		"outside -> lb:443/tcp yes",
		"api -> internet:80/tcp yes",
		"devbox -> internet:80/tcp no",
		"devbox -> internet:53/udp yes",
	)
	// devbox -> lb:443 is declared; Docker itself drops it where it DNATs
	// in the kernel and isolates networks first (userland-proxy=false
	// before 29), and zonewarden only narrows; but where Docker does not
	// filter IPv6 (20.10), lb's IPv6 address is open to devbox directly.
	d := &env.Snapshot().Daemon
	ipv6Open := d.IP6Tables != nil && !*d.IP6Tables
	expect(t, m, fmt.Sprintf("devbox -> lb:443/tcp %s", map[bool]string{true: "yes", false: "no"}[!d.IsolatesDNAT() || ipv6Open]))
	if kernelDNAT {
		// Each path on its own: over IPv4 the kernel DNATs devbox's
		// connection to lb's published port (its IPv6 one may go to
		// docker-proxy); every such probe must get through, and none
		// to a port of lb the flow does not name.
		for _, k := range []struct {
			port uint16
			want bool
		}{{443, true}, {80, false}} {
			o, _ := m.Get("devbox", "lb", l4.Port{Proto: "tcp", Number: k.port})
			n := 0
			for _, a := range o.Attempts {
				if a.Result.To.Addr.Addr().Is4() && strings.HasPrefix(a.Via, reach.ViaPublished) || !k.want && a.Result.To.Addr.Addr().Is4() {
					n++
					if a.Reached != k.want {
						t.Errorf("devbox -> lb:%d over IPv4 by %s: reached=%v, want %v", k.port, a, a.Reached, k.want)
					}
				}
			}
			if n == 0 {
				t.Errorf("devbox -> lb:%d: no IPv4 probe to check; attempts: %v", k.port, o.Attempts)
			}
		}
	}
}

// TestEnforcedUnmanagedBesideDenyZone: on a default: allow zone, a
// container no workload selects (stray) reaches the members Docker lets
// it reach, except one that is also on a default: deny zone (member):
// neither reaches the other, although both are on the allow zone, whose
// own accept would let them. Every pair and port is held to the policy's
// decisions with real packets.
func TestEnforcedUnmanagedBesideDenyZone(t *testing.T) {
	env := Build(t, Scenario{
		Networks: []Network{{Name: "locked"}, {Name: "shared", IPv6: true}},
		Containers: []Container{
			{Name: "member", Networks: []string{"shared", "locked"}},
			{Name: "other", Networks: []string{"shared"}},
			{Name: "stray", Networks: []string{"shared"}},
		},
	})
	b, rs := compileFor(t, env, `version: 1
zones:
  locked: {default: deny}
  shared: {}
workloads:
  member: {match: {name: member}, zones: [shared, locked]}
  other:  {match: {name: other}, zones: [shared]}
unmanaged: warn
`)
	if _, err := firewall.Load(context.Background(), rs); err != nil {
		t.Fatalf("loading the ruleset: %v", err)
	}
	m := env.Check(t, env.EnforcedModel(b))
	expect(t, m,
		"stray -> other:80/tcp yes",
		"other -> stray:80/tcp yes",
		"stray -> member:80/tcp no",
		"member -> stray:80/tcp no",
		"other -> member:80/tcp yes",
		"member -> other:5432/tcp yes",
	)
}

// compileFor binds doc to env's host and compiles it into a table of the
// run's, removed when the test ends.
func compileFor(t *testing.T, env *Env, doc string) (*model.Binding, *enforce.Ruleset) {
	t.Helper()
	p, err := policy.Parse("zones.yaml", []byte(doc), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := model.Bind(p, env.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	table := "zwtest_" + env.RunID
	t.Cleanup(func() {
		if err := nft.Delete(context.Background(), "inet", table); err != nil {
			t.Errorf("removing table %s: %v", table, err)
		}
	})
	return b, enforce.Compile(b, enforce.Options{Table: table})
}
