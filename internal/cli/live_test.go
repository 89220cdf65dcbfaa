package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/zonewarden/zonewarden/internal/audit"
	"github.com/zonewarden/zonewarden/internal/demo"
	"github.com/zonewarden/zonewarden/internal/nft"
	"github.com/zonewarden/zonewarden/internal/testenv"
)

// freePort returns a TCP port that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestLiveAudit builds a host with the classic mistakes on the real Docker
// engine, runs "zonewarden audit --format json" against it, and checks
// every expected finding and that a hardened container has none.
//
// Networks (Docker picks the subnets): data (holds the database, not
// internal), app, devnet, secure (internal), cleannet; plus Docker's bridge.
func TestLiveAudit(t *testing.T) {
	cli, run := testenv.Setup(t)
	p := func(name string) string { return testenv.Prefixed(run, name) }
	for _, n := range []string{"data", "app", "devnet", "cleannet"} {
		testenv.CreateNetwork(t, cli, run, n, testenv.NetworkOpts{})
	}
	testenv.CreateNetwork(t, cli, run, "secure", testenv.NetworkOpts{Internal: true})
	shop := map[string]string{"com.docker.compose.project": "shop-" + run, "com.docker.compose.service": "db"}
	dev := map[string]string{"com.docker.compose.project": "dev-" + run, "com.docker.compose.service": "box"}
	dbPort := freePort(t)
	specs := []testenv.ContainerSpec{
		{Name: "legacy", Start: true},
		{Name: "db", Network: p("data"), Ports: []string{fmt.Sprintf("%d:5432", dbPort)}, Labels: shop, Start: true},
		{Name: "app", Network: p("app"), Start: true},
		{Name: "devbox", Network: p("devnet"), ExtraNetworks: []string{p("data")}, Labels: dev, Start: true},
		{Name: "hostnet", NetworkMode: "host", Start: true},
		{Name: "priv", Network: p("app"), Privileged: true},
		{Name: "capper", Network: p("app"), CapAdd: []string{"NET_ADMIN"}, Start: true},
		{Name: "sock", Network: p("app"), Binds: []string{"/var/run/docker.sock:/var/run/docker.sock:ro"}},
		{Name: "cache", Network: p("secure"), Ports: []string{fmt.Sprintf("%d:6379", freePort(t))}, Start: true},
		{Name: "clean", Network: p("cleannet"), ReadOnly: true, CapDrop: []string{"ALL"},
			SecurityOpt: []string{"no-new-privileges"}, Start: true},
	}
	for _, s := range specs {
		testenv.RunContainer(t, cli, run, s)
	}

	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"audit", "--format", "json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("audit exit %d: %s", code, stderr.String())
	}
	var rep audit.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("audit JSON: %v\n%s", err, stdout.String())
	}
	// Keep only this test's subjects: the host may run other containers.
	got := map[string][]string{} // subject -> rules
	for _, f := range rep.Findings {
		if strings.HasPrefix(f.Subject.Name, "zw"+run+"-") || f.Subject.Kind == audit.KindNetwork && f.Subject.Name == "bridge" {
			name := strings.TrimPrefix(f.Subject.Name, "zw"+run+"-")
			got[name] = append(got[name], f.Rule+"/"+f.Severity.String())
		}
	}
	want := map[string][]string{
		"legacy":  {"default-bridge/medium"},
		"bridge":  {"icc-default-bridge/medium"},
		"db":      {"published-sensitive-port/critical", "published-bypasses-isolation/high", "published-all-interfaces/medium"},
		"data":    {"sensitive-network-not-internal/high", "untrusted-shares-data-network/high", "cross-project-network/medium"},
		"devbox":  {"gateway-container/high"},
		"hostnet": {"host-network/high"},
		"priv":    {"privileged/critical"},
		"capper":  {"dangerous-capability/high"},
		"sock":    {"docker-socket-mounted/critical"},
		"cache":   {"internal-publish-ignored/info"},
	}
	for subject, rules := range want {
		for _, r := range rules {
			if !slices.Contains(got[subject], r) {
				t.Errorf("%s: missing finding %s (got %v)", subject, r, got[subject])
			}
		}
	}
	if len(got["clean"]) > 0 || len(got["cleannet"]) > 0 {
		t.Errorf("hardened container has findings: %v %v", got["clean"], got["cleannet"])
	}
	for _, r := range got["cache"] {
		if strings.HasPrefix(r, "published-") {
			t.Errorf("cache's port is ignored by Docker (internal network) but reported: %s", r)
		}
	}
	// The bypass finding names the container on another network.
	for _, f := range rep.Findings {
		if f.Rule == "published-bypasses-isolation" && f.Subject.Name == p("db") {
			ev := strings.Join(f.Evidence, " ")
			if !strings.Contains(ev, p("app")) || strings.Contains(ev, p("devbox")+" (") {
				t.Errorf("bypass evidence should name app and not devbox (which shares data): %s", ev)
			}
		}
	}

	// --fail-on turns the critical findings into exit 1.
	stdout.Reset()
	if code := Main(context.Background(), []string{"audit", "--fail-on", "critical", "--format", "sarif"}, &stdout, &stderr); code != 1 {
		t.Errorf("--fail-on critical: exit %d, want 1", code)
	}
}

// TestAuditUnreachableDocker: a socket nobody listens on is one line, exit 2.
func TestAuditUnreachableDocker(t *testing.T) {
	sock := "unix://" + t.TempDir() + "/nothing.sock"
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"audit", "--docker-host", sock}, &stdout, &stderr)
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	msg := stderr.String()
	if strings.Count(msg, "\n") != 1 || !strings.Contains(msg, sock) || !strings.Contains(msg, "dockerd") {
		t.Errorf("want one line naming the socket and what to do, got %q", msg)
	}
}

// TestDemoLive runs the demo on the real engine: it builds the host, shows
// the seed's mistakes, and leaves nothing behind.
func TestDemoLive(t *testing.T) {
	testenv.RequireAlone(t, "its verify shows Docker's isolation, which other tests' network changes open for moments")
	cli := testenv.RequireDocker(t)
	code, out, stderr := run(t, "demo", "--color", "never")
	if code != 0 {
		t.Fatalf("demo exit %d: %s\n%s", code, stderr, out)
	}
	for _, want := range []string{"Building it on", "customer-db", "published-bypasses-isolation",
		"untrusted-shares-data-network", "internal-publish-ignored", "Blast radius of dev-box",
		"customer-db (PostgreSQL) in 1 hop", "connected customer-db to shop-data", "Loaded the firewall: table inet zonewarden_demo",
		"If dev-box is compromised now:\n\nBlast radius of dev-box: an attacker who controls it reaches 0 containers.", "Removed the demo host",
		"== Verify before: real packets against the policy ==", "dev-box -> customer-db:5432/tcp: the policy says deny, the packets found it open",
		"== Verify after: real packets against the policy ==", "0 behave unlike the policy", "the zones hold"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	before, after, _ := strings.Cut(out, "== Verify after")
	if strings.Contains(before, " 0 behave unlike the policy") || !strings.Contains(after, " 0 behave unlike the policy") {
		t.Errorf("the demo's verify should find mismatches before the policy is applied and none after:\n%s", out)
	}
	if strings.Contains(out, "embedded snapshot") {
		t.Error("demo fell back to the embedded snapshot although Docker answers")
	}
	left, err := cli.ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", demo.Label))})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range left {
		if c.Labels[demo.Label] != "image" {
			t.Errorf("demo left container %v", c.Names)
		}
	}
	if table, _ := nft.List(context.Background(), "inet", "zonewarden_demo"); table != "" {
		t.Errorf("demo left its firewall table:\n%s", table)
	}
}
