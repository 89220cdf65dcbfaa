package cli

// Address plan: each test makes its own user-defined networks of the run
// (testenv: Docker picks the IPv4 subnets; "front" also gets a ULA IPv6
// /64) and containers of the tool-less image (testenv.ScratchImage: one
// static binary, no shell, no busybox). Firewall tables are named
// zwtest_verify_<run id> and deleted when the test ends. Probes go only
// between the test's own containers.

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/firewall"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/inventory/dockerapi"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/nft"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/probe"
	"github.com/zonewarden/zonewarden/internal/testenv"
	"github.com/zonewarden/zonewarden/internal/verify"
)

// liveHost is a small host of the run, for verify to probe.
type liveHost struct {
	cli   *client.Client
	runID string
	ids   map[string]string // container name (unprefixed) -> Docker id
	label string            // --label=zonewarden.test=<run id>
}

// newLiveHost creates the networks and the running containers (name ->
// networks, the first at creation) of tool-less images.
func newLiveHost(t *testing.T, nets map[string]testenv.NetworkOpts, containers [][2]string) *liveHost {
	t.Helper()
	t.Setenv("ZONEWARDEN_STATE_DIR", t.TempDir())
	cli, runID := testenv.Setup(t)
	img := testenv.ScratchImage(t, cli)
	h := &liveHost{cli: cli, runID: runID, ids: map[string]string{}, label: "--label=" + testenv.Label + "=" + runID}
	netIDs := map[string]string{}
	for name, opts := range nets {
		netIDs[name] = testenv.CreateNetwork(t, cli, runID, name, opts)
	}
	for _, c := range containers {
		ns := strings.Split(c[1], ",")
		spec := testenv.ContainerSpec{Name: c[0], Image: img, Network: netIDs[ns[0]], Start: true}
		for _, n := range ns[1:] {
			spec.ExtraNetworks = append(spec.ExtraNetworks, netIDs[n])
		}
		h.ids[c[0]] = testenv.RunContainer(t, cli, runID, spec)
	}
	return h
}

// name returns the live name of a container or network of the host.
func (h *liveHost) name(s string) string { return testenv.Prefixed(h.runID, s) }

// policy parses src, where "P-" stands for the run's name prefix.
func (h *liveHost) policy(t *testing.T, src string) (*policy.Policy, string) {
	t.Helper()
	src = strings.ReplaceAll(src, "P-", h.name(""))
	p, err := policy.Parse("zones.yaml", []byte(src), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p, writeFile(t, "zones.yaml", src)
}

// snapshot reads the host as it is now: the run's containers and networks.
func (h *liveHost) snapshot(t *testing.T) *inventory.Snapshot {
	t.Helper()
	dc, err := dockerapi.New("")
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	snap, err := dc.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return snap.OnlyLabelled(testenv.Label, h.runID)
}

// enforce compiles p for the host as it is now and loads it into the
// run's own table, as apply (or the agent, after a change) would.
func (h *liveHost) enforce(t *testing.T, p *policy.Policy) {
	t.Helper()
	b, _ := model.Bind(p, h.snapshot(t))
	table := "zwtest_verify_" + h.runID
	rs := enforce.Compile(b, enforce.Options{Table: table})
	t.Cleanup(func() { nft.Delete(context.Background(), "inet", table) })
	if _, err := firewall.Load(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
}

// verifyJSON runs verify with args and --format json.
func verifyJSON(t *testing.T, args ...string) (int, []verify.Result, string) {
	t.Helper()
	code, out, stderr := run(t, append(append([]string{"verify"}, args...), "--format", "json")...)
	var doc struct{ Results []verify.Result }
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("verify %v: exit %d, not JSON: %v\n%s%s", args, code, err, out, stderr)
	}
	return code, doc.Results, out
}

// find returns the result of a key, failing t when there is none.
func find(t *testing.T, results []verify.Result, from, to, port string) verify.Result {
	t.Helper()
	for _, r := range results {
		if r.From == from && r.To == to && r.Port == port {
			return r
		}
	}
	t.Fatalf("no result for %s -> %s:%s", from, to, port)
	return verify.Result{}
}

// TestVerifyICMPAndByName verifies a policy with an icmp flow between
// tool-less containers, by address (IPv4 and IPv6) and by name: without
// the firewall the denied ping goes through and verify fails; with it,
// the allowed ping and the named probes pass and the denied ping is
// blocked.
func TestVerifyICMPAndByName(t *testing.T) {
	h := newLiveHost(t, map[string]testenv.NetworkOpts{"front": {IPv6: true}, "back": {}},
		[][2]string{{"web", "front"}, {"api", "front,back"}, {"pg", "back"}})
	p, file := h.policy(t, `version: 1
zones:
  P-front: {default: deny}
  P-back:  {default: deny, internal: true}
workloads:
  web: {match: {name: P-web}, zones: [P-front]}
  api: {match: {name: P-api}, zones: [P-front, P-back]}
  pg:  {match: {name: P-pg},  zones: [P-back]}
flows:
  - {from: web, to: api, ports: [8080/tcp, icmp]}
  - {from: api, to: pg,  ports: [5432/tcp]}
tests:
  - {from: api, to: pg, port: icmp, expect: deny}
unmanaged: warn
`)
	web, api, pg := h.name("web"), h.name("api"), h.name("pg")
	// api's IPv6 address answers once duplicate address detection is over.
	ns, err := probe.OpenPID(testenv.Pid(t, h.cli, h.ids["web"]))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	api6 := testenv.Addr6(t, h.cli, h.ids["api"], h.name("front"))
	pr := &probe.Prober{}
	var r probe.Result
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if r = pr.Probe(context.Background(), ns, probe.ICMPTarget(api6)); r.Status == probe.Open {
			break
		}
	}
	if r.Status != probe.Open {
		t.Fatalf("api's IPv6 address never answered: %v", r)
	}

	code, res, out := verifyJSON(t, file, h.label, "--by-name")
	if got := find(t, res, api, pg, "icmp"); code != 1 || got.OK() || got.Outcome != "open" || got.Expected {
		t.Errorf("without the firewall, the denied ping api -> pg should go through and fail verify: exit %d, %+v\n%s", code, got, out)
	}

	h.enforce(t, p)
	start := time.Now()
	code, res, out = verifyJSON(t, file, h.label, "--by-name")
	elapsed := time.Since(start)
	if code != 0 {
		t.Fatalf("verify with the policy enforced: exit %d\n%s", code, out)
	}
	ping := find(t, res, web, api, "icmp")
	if !ping.Expected || ping.Outcome != "open" || ping.ByName != "open" || ping.Listener != "kernel" {
		t.Errorf("allowed ping web -> api: %+v", ping)
	}
	if !slices.ContainsFunc(ping.Probes, func(s string) bool { return strings.HasPrefix(s, api6.String()+"/icmp open") }) {
		t.Errorf("allowed ping web -> api: no open IPv6 echo to %s among %q", api6, ping.Probes)
	}
	if got := find(t, res, api, pg, "icmp"); got.Expected || got.Outcome != "blocked" {
		t.Errorf("denied ping api -> pg: %+v", got)
	}
	if got := find(t, res, web, pg, "icmp"); got.Expected || got.Outcome != "blocked" || got.ByName != "unresolved" {
		t.Errorf("web -> pg share no network: ping and name %+v", got)
	}
	tcp := find(t, res, web, api, "8080/tcp")
	api4 := testenv.Addr(t, h.cli, h.ids["api"], h.name("front"))
	if tcp.ByName != "open" || !slices.Contains(tcp.Resolved, api4.String()) || !slices.Contains(tcp.Resolved, api6.String()) {
		t.Errorf("web -> api:8080/tcp by name: %+v, want open and resolved to %s and %s", tcp, api4, api6)
	}
	if got := find(t, res, api, pg, "5432/tcp"); got.ByName != "open" {
		t.Errorf("api -> pg:5432/tcp by name: %+v", got)
	}
	probes := 0
	for _, r := range res {
		probes += len(r.Probes)
	}
	t.Logf("verify --by-name with icmp: %d keys, %d probes in %v", len(res), probes, elapsed)

	// Text: the operator sees the ICMP keys and the names.
	_, text, _ := run(t, "verify", file, h.label, "--by-name")
	if !strings.Contains(text, "ok   "+web+" -> "+api+":icmp expected=allow observed=open by-name=open") {
		t.Errorf("verify text does not show the allowed ping:\n%s", text)
	}
}

// TestVerifyServiceDown: a stopped container, and a port where nothing
// listens on the container's address and verify cannot listen itself,
// are reported as what they are (stopped, closed), never as blocked.
func TestVerifyServiceDown(t *testing.T) {
	h := newLiveHost(t, map[string]testenv.NetworkOpts{"n": {}},
		[][2]string{{"a", "n"}, {"b", "n"}, {"gone", "n"}})
	// gone stops: it keeps its place on the network, but nothing runs.
	ctx := context.Background()
	if err := h.cli.ContainerStop(ctx, h.ids["gone"], container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	// A service of b holds 80/tcp and 53/udp on 127.0.0.1 only: verify
	// cannot listen there, and b's own address refuses.
	ns, err := probe.OpenPID(testenv.Pid(t, h.cli, h.ids["b"]))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	l, err := probe.Listen(ns, probe.ListenConfig{Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, TCP: []uint16{80}, Banner: "local-only"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })

	a, b, gone := h.name("a"), h.name("b"), h.name("gone")
	code, res, out := verifyJSON(t, h.label)
	if code != 0 {
		t.Errorf("verify with a service down: exit %d, want 0 (nothing is blocked that should pass)\n%s", code, out)
	}
	down := find(t, res, a, b, "80/tcp")
	if down.Outcome != "closed" || !down.Observed || !down.Expected || down.Listener != "service" || !down.OK() {
		t.Errorf("a -> b:80/tcp with nothing listening on b's address: %+v, want closed (reached), not blocked", down)
	}
	stopped := find(t, res, "*", gone, "")
	if stopped.Outcome != "stopped" || !stopped.Skipped() || !strings.Contains(stopped.Cause, "exited") {
		t.Errorf("stopped container: %+v", stopped)
	}
	for _, r := range res {
		if (r.To == gone || r.From == gone) && r.Outcome == "blocked" {
			t.Errorf("a stopped container reported as blocked: %+v", r)
		}
	}
	_, text, _ := run(t, "verify", h.label)
	for _, want := range []string{
		"ok   " + a + " -> " + b + ":80/tcp expected=allow observed=closed (the path is open",
		"skip " + gone + ": " + gone + " is exited",
		"1 container not running (not probed)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("verify text lacks %q:\n%s", want, text)
		}
	}
}

// TestVerifyNamesStrayMembership: after `docker network connect` of a
// container to a zone network its workload may not join (and the firewall
// synced to the host as it now is), the firewall keeps it out of that zone
// (its address there is not admitted), and verify fails all the same,
// naming the membership: the host is not as the policy says.
func TestVerifyNamesStrayMembership(t *testing.T) {
	h := newLiveHost(t, map[string]testenv.NetworkOpts{"front": {}, "db": {}},
		[][2]string{{"web", "front"}, {"api", "front,db"}, {"pg", "db"}})
	p, file := h.policy(t, `version: 1
zones:
  P-front: {default: deny}
  P-db:    {default: allow}
workloads:
  web: {match: {name: P-web}, zones: [P-front]}
  api: {match: {name: P-api}, zones: [P-front, P-db]}
  pg:  {match: {name: P-pg},  zones: [P-db]}
flows:
  - {from: web, to: api, ports: [8080/tcp]}
unmanaged: warn
`)
	h.enforce(t, p)
	if code, _, out := verifyJSON(t, file, h.label); code != 0 {
		t.Fatalf("verify of the enforced policy: exit %d\n%s", code, out)
	}
	if err := h.cli.NetworkConnect(context.Background(), h.name("db"), h.ids["web"], nil); err != nil {
		t.Fatal(err)
	}
	h.enforce(t, p)
	code, out, stderr := run(t, "verify", file, h.label)
	web, pg, db := h.name("web"), h.name("pg"), h.name("db")
	want := "FAIL membership: " + web + " is on network " + db + ", which its workload web may not join (its zones: " + h.name("front") + ")"
	if code != 1 || !strings.Contains(out, want) {
		t.Errorf("verify after connecting web to %s: exit %d, want 1 naming the membership (%q)\n%s%s", db, code, want, out, stderr)
	}
	// The firewall does not admit web on db: pg stays out of its reach.
	if !strings.Contains(out, "ok   "+web+" -> "+pg+":80/tcp expected=deny observed=blocked") {
		t.Errorf("web reaches pg through the zone it may not join:\n%s", out)
	}
	code, res, raw := verifyJSON(t, file, h.label)
	for _, r := range res {
		if !r.OK() {
			t.Errorf("%s -> %s:%s: a mismatch (%s); the firewall should keep the stray membership contained", r.From, r.To, r.Port, r.Cause)
		}
	}
	if code != 1 || !strings.Contains(raw, `"forbidden_memberships": 1`) {
		t.Errorf("verify --format json: exit %d, want 1 with the membership counted\n%s", code, raw)
	}
}
