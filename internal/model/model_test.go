package model_test

import (
	"os"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy"
)

func mustParse(t testing.TB, name, in string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse(name, []byte(in), policy.Options{})
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return p
}

func seedPolicy(t testing.TB) *policy.Policy {
	t.Helper()
	data, err := os.ReadFile("../policy/testdata/threetier.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return mustParse(t, "threetier.yaml", string(data))
}

func port(s string) l4.Port {
	if s == "" {
		return l4.Port{}
	}
	p, err := l4.ParsePort(s)
	if err != nil {
		panic(err)
	}
	return p
}

// TestEvalSeed is the verdict table of the seed's three-tier host: the
// load balancer reaches only the frontend, the frontend only the API, the
// API the database and the cache; nothing else crosses a zone, and
// members of a default: deny zone reach each other only by a flow.
func TestEvalSeed(t *testing.T) {
	m := model.Compile(seedPolicy(t))
	tests := []struct {
		from, to, port string
		allow          bool
		reason         string
	}{
		{"lb", "frontend", "8080/tcp", true, "flow at threetier.yaml:16:5 allows lb -> frontend on 8080/tcp"},
		{"lb", "frontend", "22/tcp", false, "no flow from lb to frontend on 22/tcp; zone public-dmz is default: deny (flow at threetier.yaml:16:5 allows lb -> frontend on 8080/tcp only)"},
		{"frontend", "lb", "443/tcp", false, "no flow from frontend to lb on 443/tcp; zone public-dmz is default: deny"},
		{"frontend", "api", "8080/tcp", true, "flow at threetier.yaml:17:5"},
		{"frontend", "postgres", "5432/tcp", false, "no flow from frontend to postgres on 5432/tcp, and they share no zone"},
		{"lb", "api", "8080/tcp", false, "and they share no zone"},
		{"api", "postgres", "5432/tcp", true, "flow at threetier.yaml:18:5"},
		{"api", "cache", "6379/tcp", true, "flow at threetier.yaml:19:5"},
		{"postgres", "cache", "6379/tcp", false, "zone database-tier is default: deny"},
		{"cache", "api", "8080/tcp", false, "zones application-tier"[:0] + "zone database-tier is default: deny"},
		{"api", "api", "8080/tcp", false, "zones application-tier, database-tier are default: deny"},
		{"zone:application-tier", "api", "8080/tcp", false, "no flow from zone:application-tier to api on 8080/tcp; zone application-tier is default: deny"},
		{"frontend", "api", "", true, "flow at threetier.yaml:17:5"},
		{"frontend", "postgres", "", false, "no flow from frontend to postgres, and they share no zone"},
		// Ingress: clients beyond the host, to published host ports.
		{"198.51.100.7", "lb", "443/tcp", true, "lb publishes 443:443/tcp and its ingress 0.0.0.0/0 admits 198.51.100.7"},
		{"2001:db8::7", "lb", "443/tcp", false, "lb publishes 443:443/tcp, but its ingress does not admit 2001:db8::7"},
		{"198.51.100.7", "lb", "80/tcp", false, "lb publishes no host port 80/tcp"},
		{"198.51.100.7", "postgres", "5432/tcp", false, "postgres publishes no host port 5432/tcp"},
		// Egress: destinations beyond the host.
		{"api", "203.0.113.10", "443/tcp", true, "egress of api at threetier.yaml:12:23 allows 203.0.113.0/24 on 443/tcp"},
		{"api", "203.0.113.10", "80/tcp", false, "the egress of api does not list 203.0.113.10 on 80/tcp"},
		{"api", "198.51.100.1", "443/tcp", false, "the egress of api does not list 198.51.100.1"},
		{"postgres", "198.51.100.1", "443/tcp", false, "postgres joins internal zone database-tier and lists no egress: it reaches nothing beyond the host"},
		{"frontend", "198.51.100.1", "443/tcp", true, "frontend joins no internal zone and lists no egress: it may reach anything beyond the host"},
		{"zone:dev", "198.51.100.1", "", true, "zone:dev joins no internal zone"},
		{"ghost", "api", "80/tcp", false, "ghost is not in the policy"},
	}
	for _, tt := range tests {
		d := m.Eval(policy.ParseRef(tt.from), policy.ParseRef(tt.to), port(tt.port))
		if d.Allow != tt.allow || !strings.Contains(d.Reason, tt.reason) {
			t.Errorf("Eval(%s, %s, %s) = %v, %q; want %v, %q", tt.from, tt.to, tt.port, d.Allow, d.Reason, tt.allow, tt.reason)
		}
	}
	for _, r := range m.RunTests() {
		if !r.Pass {
			t.Errorf("seed test at %v fails: %s", r.Test.Pos, r.Decision.Reason)
		}
	}
}

// TestEvalZones: zone:NAME flows, default: allow zones, and which flow is
// reported when several allow.
func TestEvalZones(t *testing.T) {
	p := mustParse(t, "z.yaml", `version: 1
zones:
  dev: {}
  ops: {default: deny}
  data: {internal: true, default: deny}
workloads:
  box: {match: {name: box}, zones: [dev]}
  ide: {match: {name: ide}, zones: [dev]}
  agent: {match: {name: agent}, zones: [ops, dev]}
  db: {match: {image: "postgres:*"}, zones: [data, ops]}
flows:
  - {from: zone:ops, to: db, ports: [5432/tcp]}
  - {from: agent, to: db, ports: [5432/tcp, 9187/tcp]}
  - {from: agent, to: zone:dev, ports: [9100/tcp, icmp]}
  - {from: zone:dev, to: agent, ports: [all]}
`)
	m := model.Compile(p)
	tests := []struct {
		from, to, port string
		allow          bool
		reason         string
	}{
		{"box", "ide", "22/tcp", true, "box and ide both join zone dev, which is default: allow"},
		{"agent", "db", "5432/tcp", true, "flow at z.yaml:12:5 allows zone:ops -> db on 5432/tcp"},
		{"agent", "db", "9187/tcp", true, "flow at z.yaml:13:5"},
		{"agent", "box", "icmp", true, "flow at z.yaml:14:5 allows agent -> zone:dev on 9100/tcp, icmp"},
		{"agent", "box", "22/tcp", true, "agent and box both join zone dev"},
		{"box", "agent", "9999/udp", true, "flow at z.yaml:15:5 allows zone:dev -> agent on all"},
		{"box", "db", "5432/tcp", false, "no flow from box to db on 5432/tcp, and they share no zone"},
		{"zone:dev", "agent", "22/tcp", true, "flow at z.yaml:15:5"},
		{"db", "agent", "22/tcp", false, "zone ops is default: deny"},
	}
	for _, tt := range tests {
		d := m.Eval(policy.ParseRef(tt.from), policy.ParseRef(tt.to), port(tt.port))
		if d.Allow != tt.allow || !strings.Contains(d.Reason, tt.reason) {
			t.Errorf("Eval(%s, %s, %s) = %v, %q; want %v, %q", tt.from, tt.to, tt.port, d.Allow, d.Reason, tt.allow, tt.reason)
		}
	}
	if got := m.AllowedPorts(policy.ParseRef("agent"), policy.ParseRef("db")).String(); got != "5432/tcp, 9187/tcp" {
		t.Errorf("AllowedPorts(agent, db) = %s", got)
	}
	if got := m.AllowedPorts(policy.ParseRef("box"), policy.ParseRef("ide")); !got.All() {
		t.Errorf("AllowedPorts(box, ide) = %s, want all", got)
	}
	var pairs []string
	for _, wf := range m.WorkloadFlows() {
		pairs = append(pairs, wf.From.Name+">"+wf.To.Name+":"+wf.Ports.String())
	}
	want := "agent>db:5432/tcp, 9187/tcp|db>db:5432/tcp|agent>box:9100/tcp, icmp|agent>ide:9100/tcp, icmp|agent>agent:all|box>agent:all|ide>agent:all"
	if got := strings.Join(pairs, "|"); got != want {
		t.Errorf("WorkloadFlows =\n%s\nwant\n%s", got, want)
	}
}

func TestRunTestsReportsFailures(t *testing.T) {
	p := mustParse(t, "t.yaml", `version: 1
zones:
  app: {default: deny}
workloads:
  web: {match: {name: web}, zones: [app]}
  api: {match: {name: api}, zones: [app]}
flows:
  - {from: web, to: api, ports: [8080/tcp]}
tests:
  - {from: web, to: api, port: 8080/tcp, expect: allow}
  - {from: web, to: api, port: 22/tcp, expect: allow}
  - {from: api, to: web, expect: deny}
  - {from: web, to: api, expect: deny}
`)
	failed := model.Failed(model.Compile(p).RunTests())
	if len(failed) != 2 {
		t.Fatalf("%d failures, want 2", len(failed))
	}
	if f := failed[0]; f.Test.Pos.Line != 11 || f.Decision.Allow || !strings.Contains(f.Decision.Reason, "(flow at t.yaml:8:5 allows web -> api on 8080/tcp only)") {
		t.Errorf("first failure: %+v", f)
	}
	if f := failed[1]; f.Test.Pos.Line != 13 || !f.Decision.Allow {
		t.Errorf("second failure: %+v", f)
	}
}
