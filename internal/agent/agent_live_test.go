package agent_test

import (
	"context"
	"fmt"
	"golang.org/x/sys/unix"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/zonewarden/zonewarden/internal/agent"
	"github.com/zonewarden/zonewarden/internal/cli"
	"github.com/zonewarden/zonewarden/internal/inventory/dockerapi"
	"github.com/zonewarden/zonewarden/internal/nft"
	"github.com/zonewarden/zonewarden/internal/nft/nflink"
	"github.com/zonewarden/zonewarden/internal/probe"
	"github.com/zonewarden/zonewarden/internal/testenv"
)

// childEnv makes the test binary run the zonewarden CLI instead of the
// tests: the agent as a process of its own, to kill -9.
const childEnv = "ZONEWARDEN_TEST_CLI_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(childEnv); args != "" {
		os.Exit(cli.Main(context.Background(), strings.Split(args, "\x1f"), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// zoneHost is a small host with two zones: svc on app listens on 80 and
// 5432; clients (named <prefix>client-*) may reach svc on 80 only; db on
// data listens on 5432 and nobody may reach it.
type zoneHost struct {
	t          *testing.T
	cli        *client.Client
	runID, pre string
	app, data  string // network names
	svc, db    netip.Addr
	svcPid     int    // svc's main process: its namespace's counters are /proc/PID/net/netstat
	policy     string // file
	table      string
	socket     string
	seq        atomic.Int32

	// accepted records, per client address, when each listener first
	// accepted a connection from it.
	acceptedMu sync.Mutex
	accepted   map[netip.Addr]time.Time

	flowLog  testenv.Buffer // the agent's denied-flow lines
	agentLog testenv.Buffer // the agent's own log
	// learn, when set, is the agent's --learn file.
	learn string
}

const hostPolicy = `version: 1
zones:
  P-app: {default: deny}
  P-data: {default: deny}
workloads:
  svc: {match: {name: P-svc}, zones: [P-app]}
  db: {match: {name: P-db}, zones: [P-data]}
  client: {match: {name: "P-client-*"}, zones: [P-app]}
  svc2: {match: {name: P-svc2}, zones: [P-app]}
flows:
  - {from: client, to: svc, ports: [80/tcp]}
  - {from: client, to: svc2, ports: [80/tcp]}
unmanaged: allow
`

func newZoneHost(t *testing.T) *zoneHost {
	testenv.RequireRoot(t)
	c, runID := testenv.Setup(t)
	h := &zoneHost{t: t, cli: c, runID: runID, pre: testenv.Prefixed(runID, "")}
	h.app = testenv.Prefixed(runID, "app")
	h.data = testenv.Prefixed(runID, "data")
	testenv.CreateNetwork(t, c, runID, "app", testenv.NetworkOpts{})
	testenv.CreateNetwork(t, c, runID, "data", testenv.NetworkOpts{})
	h.svc = h.listener("svc", h.app)
	h.db = h.listener("db", h.data)
	h.table = "zwtest_agent_" + runID
	t.Cleanup(func() {
		_ = nft.Delete(context.Background(), "inet", h.table)
		_ = nft.Delete(context.Background(), "bridge", h.table)
	})
	dir := t.TempDir()
	h.socket = filepath.Join(dir, "agent.sock")
	h.policy = filepath.Join(dir, "zones.yaml")
	h.writePolicy(hostPolicy)
	return h
}

// listener runs a container on net whose namespace listens on 80 and
// 5432 (with zonewarden's own listener: no tool needed in the image).
func (h *zoneHost) listener(name, net string) netip.Addr {
	id := testenv.RunContainer(h.t, h.cli, h.runID, testenv.ContainerSpec{Name: name, Network: net, Cmd: []string{"sleep", "3600"}, Start: true})
	pid := testenv.Pid(h.t, h.cli, id)
	if name == "svc" {
		h.svcPid = pid
	}
	ns, err := probe.OpenPID(pid)
	if err != nil {
		h.t.Fatal(err)
	}
	l, err := probe.Listen(ns, probe.ListenConfig{TCP: []uint16{80, 5432}, Banner: "reached-" + name, OnAccept: func(peer netip.AddrPort, at time.Time) {
		h.acceptedMu.Lock()
		defer h.acceptedMu.Unlock()
		if h.accepted == nil {
			h.accepted = map[netip.Addr]time.Time{}
		}
		if _, ok := h.accepted[peer.Addr()]; !ok {
			h.accepted[peer.Addr()] = at
		}
	}})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { l.Close(); ns.Close() })
	return testenv.Addr(h.t, h.cli, id, net)
}

func (h *zoneHost) writePolicy(text string) {
	h.t.Helper()
	tmp := h.policy + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.ReplaceAll(text, "P-", h.pre)), 0o600); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, h.policy); err != nil {
		h.t.Fatal(err)
	}
}

// client creates (and with start, starts) a client container; cmd runs in
// it. Safe from any goroutine: it reports errors instead of failing t.
func (h *zoneHost) client(ctx context.Context, start bool, cmd ...string) (string, string, error) {
	name := h.pre + fmt.Sprintf("client-%d", h.seq.Add(1))
	if len(cmd) == 0 {
		cmd = []string{"sleep", "3600"}
	}
	resp, err := h.cli.ContainerCreate(ctx,
		&container.Config{Image: testenv.Image(h.t, h.cli), Cmd: cmd, Labels: map[string]string{testenv.Label: h.runID}},
		&container.HostConfig{NetworkMode: container.NetworkMode(h.app)},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{h.app: {}}}, nil, name)
	if err != nil {
		return "", "", err
	}
	if start {
		err = h.cli.ContainerStart(ctx, resp.ID, container.StartOptions{})
	}
	return resp.ID, name, err
}

// startAgent runs an agent in this process until the test ends.
func (h *zoneHost) startAgent(enforceMembership bool) *agent.Agent {
	h.t.Helper()
	return h.startAgentOn("", enforceMembership)
}

// startAgentOn runs an agent that reads the Docker API at dockerHost.
func (h *zoneHost) startAgentOn(dockerHost string, enforceMembership bool) *agent.Agent {
	h.t.Helper()
	dc, err := dockerapi.New(dockerHost)
	if err != nil {
		h.t.Fatal(err)
	}
	a, err := agent.New(agent.Config{PolicyPath: h.policy, Docker: dc, Table: h.table, Socket: h.socket,
		PolicyPoll: 100 * time.Millisecond, EnforceMembership: enforceMembership,
		Log: testLogger(h.t, &h.agentLog), FlowLog: &h.flowLog, FlowRate: 1000, LearnPath: h.learn, LearnFlush: 200 * time.Millisecond})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("agent: %v", err)
		}
		dc.Close()
	})
	h.waitSynced(a.Status, 10*time.Second)
	return a
}

// waitSynced waits for a first successful sync.
func (h *zoneHost) waitSynced(status func() agent.Status, within time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		s := status()
		if !s.LastSync.IsZero() && s.LastError == "" {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the agent did not sync within %s: %+v", within, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// probe dials addr:port from the namespace of the running container id.
func (h *zoneHost) probe(id string, addr netip.Addr, port uint16, timeout time.Duration) (probe.Status, error) {
	info, err := h.cli.ContainerInspect(context.Background(), id)
	if err != nil {
		return probe.Failed, err
	}
	if info.State == nil || info.State.Pid == 0 {
		return probe.Failed, fmt.Errorf("%s is not running", info.Name)
	}
	ns, err := probe.OpenPID(info.State.Pid)
	if err != nil {
		return probe.Failed, err
	}
	defer ns.Close()
	p := probe.Prober{Timeout: timeout}
	r := p.Probe(context.Background(), ns, probe.Target{Proto: probe.TCP, Addr: netip.AddrPortFrom(addr, port)})
	return r.Status, r.Err
}

// eventually polls f until it returns "" or the deadline passes, and
// then fails with f's last complaint.
func eventually(t *testing.T, within time.Duration, f func() string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		why := f()
		if why == "" {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("after %s: %s", within, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAgentAdmitsConcurrentStarts: 200 containers start together, each
// dialling its allowed peer (svc:80) once, at its first instant, with a
// 1 s timeout (nc -w 1), then two denied ones (svc:5432, db:5432). Every
// allowed dial succeeds on its first try — the agent admits a container
// on its network connect event, before its process runs, so no first SYN
// is dropped and retransmitted — and every denied one fails. The time
// from each container's process start to its first allowed connection
// is logged (p50, p99).
func TestAgentAdmitsConcurrentStarts(t *testing.T) {
	testenv.RequireAlone(t, "measures admission under a start storm: other tests' load would distort it")
	h := newZoneHost(t)
	a := h.startAgent(false)
	const n = 200
	// /proc/uptime (CLOCK_BOOTTIME, 10 ms steps) just before the first
	// dial: when the container's process is about to connect.
	// A first dial that fails says FIRSTMISS and dials again.
	cmd := fmt.Sprintf("read up rest </proc/uptime; echo UPTIME $up; nc -w 1 %s 80 </dev/null | grep -q reached-svc && echo FIRSTOK || { echo FIRSTMISS; nc -w 1 %s 80 </dev/null; }; nc -w 1 %s 5432 </dev/null; nc -w 1 %s 5432 </dev/null; echo DONE; sleep 3600", h.svc, h.svc, h.svc, h.db)
	bootWall := bootTime(t)
	drops0 := listenDrops(t, h.svcPid)
	acct := accountSYNs(t, h.runID, h.svc)
	ids := make([]string, n)
	names := make([]string, n)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		problems []string
	)
	problem := func(format string, args ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	sem := make(chan struct{}, 50)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			var err error
			if ids[i], names[i], err = h.client(context.Background(), true, "sh", "-c", cmd); err != nil {
				problem("starting a client: %v", err)
			}
		}()
	}
	wg.Wait()
	if len(problems) > 0 {
		t.Fatalf("%d of %d containers did not start:\n%s", len(problems), n, strings.Join(problems, "\n"))
	}
	var (
		latencies []time.Duration
		misses    []string // first dials that failed
		late      int      // of them, dropped as not admitted yet (logged): admitted after their first SYN
		wrong     int      // of them, dropped by any other rule of zonewarden's (logged)
	)
	for i := range n {
		logs := eventuallyLogs(t, h.cli, ids[i], "DONE", 30*time.Second)
		addr := testenv.Addr(t, h.cli, ids[i], h.app)
		var started time.Time
		if _, after, ok := strings.Cut(logs, "UPTIME "); ok {
			up, _, _ := strings.Cut(after, "\n")
			if sec, err := strconv.ParseFloat(strings.TrimSpace(up), 64); err == nil {
				started = bootWall.Add(time.Duration(sec * float64(time.Second)))
			}
		}
		h.acceptedMu.Lock()
		at, accepted := h.accepted[addr]
		h.acceptedMu.Unlock()
		firstMiss := strings.Contains(logs, "FIRSTMISS")
		switch {
		case !firstMiss && !strings.Contains(logs, "FIRSTOK"):
			problems = append(problems, fmt.Sprintf("%s: no outcome of its first dial in its log: %q", names[i], logs))
		case firstMiss:
			seen := "svc never accepted a connection from it"
			if accepted {
				seen = fmt.Sprintf("svc accepted it %s after its first dial", at.Sub(started).Round(time.Millisecond))
			}
			flows := slices.Concat(h.flowLog.LinesWith(`"from":"`+names[i]+`"`), h.flowLog.LinesWith(`"src":"`+addr.String()+`"`),
				h.flowLog.LinesWith(`"to":"`+names[i]+`"`), h.flowLog.LinesWith(`"dst":"`+addr.String()+`"`))
			switch {
			case slices.ContainsFunc(flows, func(l string) bool {
				return strings.Contains(l, `"port":"80/tcp"`) && !strings.Contains(l, `"rule_id":"unadmitted-src"`) || strings.Contains(l, `"rule_id":"spoof`)
			}):
				wrong++
			case slices.ContainsFunc(flows, func(l string) bool { return strings.Contains(l, `"port":"80/tcp"`) }):
				late++
			}
			misses = append(misses, fmt.Sprintf("%s: its first dial of svc:80 (allowed) failed; %s; its process started at %s; the agent's denied flows from or to it: %s; the agent's log of it: %s",
				names[i], seen, started.UTC().Format("15:04:05.000"), strings.Join(flows, " "), strings.Join(h.agentLog.LinesWith(names[i]), " | ")))
			if !strings.Contains(logs, "reached-svc") {
				problems = append(problems, fmt.Sprintf("%s: svc:80 (allowed) failed twice: %q", names[i], logs))
			}
		case strings.Contains(logs, "reached-svc"):
			problems = append(problems, fmt.Sprintf("%s reached svc:5432, which no flow allows: %q", names[i], logs))
		}
		if strings.Contains(logs, "reached-db") {
			problems = append(problems, fmt.Sprintf("%s reached db:5432, in another zone: %q", names[i], logs))
		}
		if accepted && !started.IsZero() {
			latencies = append(latencies, at.Sub(started))
		}
	}
	// No first dial may miss (issue 12). Misses came from admissions
	// that waited behind slow reads of Docker in the reconcile loop (the
	// container list, a dump of every link, the network list after a
	// burst of link events): those reads run beside it now.
	const maxMisses = 0
	for _, m := range misses {
		t.Log("first try missed: " + m)
	}
	if d := listenDrops(t, h.svcPid) - drops0; d > 0 || len(misses) > 0 {
		t.Logf("svc's kernel dropped %d connection requests on its listening sockets (TcpExt ListenDrops: accept queue full)", d)
	}
	accounted, dropped, err := acct()
	t.Log(accounted)
	switch {
	case err != "":
		problems = append(problems, err)
	case dropped > late:
		problems = append(problems, fmt.Sprintf("%d SYNs or SYN-ACKs of allowed dials were dropped on their way, %d of them as not admitted yet: %s", dropped, late, accounted))
	}
	if wrong > 0 {
		problems = append(problems, fmt.Sprintf("zonewarden dropped the first dial of %d containers by a rule other than admission (their flows above)", wrong))
	}
	if len(misses) > maxMisses {
		problems = append(problems, fmt.Sprintf("%d first dials missed, more than %d", len(misses), maxMisses))
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		for _, family := range []string{"bridge", "inet"} {
			if listing, err := nft.List(context.Background(), family, h.table); err == nil {
				for _, line := range strings.Split(listing, "\n") {
					if strings.Contains(line, "drop") && !strings.Contains(line, "packets 0 ") {
						problems = append(problems, family+" table: "+strings.TrimSpace(line))
					}
				}
			}
		}
		t.Fatalf("%d problems among %d containers started together:\n%s", len(problems), n, strings.Join(problems, "\n"))
	}
	if len(latencies) < n {
		t.Fatalf("measured %d of %d containers' first connections (no UPTIME line, or svc never saw them)", len(latencies), n)
	}
	slices.Sort(latencies)
	q := func(p float64) time.Duration { return latencies[int(p*float64(len(latencies)-1)+0.5)] }
	t.Logf("%d of %d containers reached their allowed flow on their first try, the others on their second; from the first dial (/proc/uptime, 10 ms steps) to svc accepting it: p50 %s, p99 %s, max %s (%d containers)",
		n-len(misses), n, q(0.5).Round(time.Millisecond), q(0.99).Round(time.Millisecond), latencies[len(latencies)-1].Round(time.Millisecond), len(latencies))
	s := a.Status()
	t.Logf("admission latency over %d (agent's view, from the start event): p50 %.1f ms, p99 %.1f ms", s.AdmissionSamples, s.AdmissionP50Ms, s.AdmissionP99Ms)
}

// accountSYNs counts, in tables of the test's own around zonewarden's,
// the SYNs to svc:80 and svc's SYN-ACKs: entering the bridge and after
// zonewarden's bridge table (bridge prerouting -400 and -200, zonewarden's
// at -300), and in the inet forward hook before zonewarden's table (-200)
// and after every filter (200). The returned func reads them: where a
// first dial's packet was lost, if it was, and how many of them
// zonewarden's bridge table or a forward filter dropped.
func accountSYNs(t *testing.T, runID string, svc netip.Addr) func() (report string, dropped int, problem string) {
	t.Helper()
	table := "zwacct_" + runID
	syn := fmt.Sprintf("ip daddr %s tcp dport 80 tcp flags & (syn | ack) == syn counter", svc)
	synack := fmt.Sprintf("ip saddr %s tcp sport 80 tcp flags & (syn | ack) == syn | ack counter", svc)
	chain := func(name, hook string, prio int) string {
		return fmt.Sprintf("chain %s { type filter hook %s priority %d; %s; %s; }\n", name, hook, prio, syn, synack)
	}
	rules := fmt.Sprintf("table bridge %s {\n%s%s}\ntable inet %s {\n%s%s}\n", table,
		chain("in", "prerouting", -400), chain("bound", "prerouting", -200), table, chain("before", "forward", -200), chain("after", "forward", 200))
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("accounting tables: %v: %s", err, out)
	}
	t.Cleanup(func() {
		_ = nft.Delete(context.Background(), "bridge", table)
		_ = nft.Delete(context.Background(), "inet", table)
	})
	return func() (string, int, string) {
		var counts []int
		for _, family := range []string{"bridge", "inet"} {
			listing, err := nft.List(context.Background(), family, table)
			if err != nil {
				return "", 0, "cannot read the accounting tables: " + err.Error()
			}
			for _, line := range strings.Split(listing, "\n") {
				if _, after, ok := strings.Cut(line, "counter packets "); ok {
					n, _, _ := strings.Cut(after, " ")
					v, _ := strconv.Atoi(n)
					counts = append(counts, v)
				}
			}
		}
		if len(counts) != 8 {
			return "", 0, fmt.Sprintf("accounting: %d counters, want 8", len(counts))
		}
		report := fmt.Sprintf("SYNs to svc:80 / svc's SYN-ACKs: entering the bridge %d/%d, after zonewarden's bridge table %d/%d; inet forward before zonewarden's table %d/%d, after every filter %d/%d",
			counts[0], counts[1], counts[2], counts[3], counts[4], counts[5], counts[6], counts[7])
		dropped := counts[0] - counts[2] + counts[1] - counts[3] + counts[4] - counts[6] + counts[5] - counts[7]
		return report, dropped, ""
	}
}

// listenDrops reads TcpExt ListenDrops of the namespace of process pid:
// connection requests the kernel dropped at a listening socket.
func listenDrops(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/netstat", pid))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" {
			continue
		}
		for j := range names {
			if names[j] == "ListenDrops" && j < len(values) {
				v, _ := strconv.Atoi(values[j])
				return v
			}
		}
	}
	t.Fatal("no TcpExt ListenDrops in /proc/net/netstat")
	return 0
}

// bootTime returns when CLOCK_BOOTTIME was zero, in wall-clock time.
func bootTime(t *testing.T) time.Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		t.Fatal(err)
	}
	return time.Now().Add(-time.Duration(ts.Nano()))
}

func eventuallyLogs(t *testing.T, c *client.Client, id, marker string, within time.Duration) string {
	t.Helper()
	var logs string
	eventually(t, within, func() string {
		rc, err := c.ContainerLogs(context.Background(), id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
		if err != nil {
			return err.Error()
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		logs = string(b)
		if !strings.Contains(logs, marker) {
			return fmt.Sprintf("container %.12s has not printed %s yet: %q", id, marker, logs)
		}
		return ""
	})
	return logs
}

// TestAgentRepairsAndReloads: a deleted table is restored within 1 s, a
// rule added by hand is removed; an invalid policy edit is rejected and
// the old policy stays enforced, a valid one takes effect; denied flows
// are logged with names; a membership the policy forbids is reported,
// and with --enforce-membership undone.
func TestAgentRepairsAndReloads(t *testing.T) {
	h := newZoneHost(t)
	a := h.startAgent(true)
	id, name, err := h.client(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	open := func(port uint16, want probe.Status) func() string {
		return func() string {
			if st, err := h.probe(id, h.svc, port, 200*time.Millisecond); st != want {
				return fmt.Sprintf("%s -> svc:%d is %s (%v), want %s", name, port, st, err, want)
			}
			return ""
		}
	}
	eventually(t, 2*time.Second, open(80, probe.Open))
	eventually(t, time.Second, open(5432, probe.Filtered))

	t.Run("denied flows are logged with names", func(t *testing.T) {
		c, err := agent.Dial(h.socket)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 3*time.Second, func() string {
			var got []agent.DeniedFlow
			_ = c.Flows(context.Background(), false, func(fl agent.DeniedFlow) error { got = append(got, fl); return nil })
			for _, fl := range got {
				if fl.From == name && fl.To == h.pre+"svc" && fl.Port == "5432/tcp" && fl.Zone == h.app && fl.RuleID == "from-zone" && fl.FromWorkload == "client" {
					return ""
				}
			}
			open(5432, probe.Filtered)()
			return fmt.Sprintf("no denied flow %s -> svc 5432/tcp in %+v", name, got)
		})
	})

	t.Run("deleted bridge table restored within 1 s", func(t *testing.T) {
		l, err := nflink.New()
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if err := nft.Delete(context.Background(), "bridge", h.table); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Second, func() string {
			if ok, err := l.HasTables(h.table); !ok {
				return fmt.Sprintf("table bridge %s not restored (%v)", h.table, err)
			}
			return ""
		})
	})

	t.Run("deleted table restored within 1 s", func(t *testing.T) {
		l, err := nflink.New()
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		deleted := time.Now()
		if err := nft.Delete(context.Background(), "inet", h.table); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Second, func() string {
			if ok, err := l.HasTable(h.table); !ok {
				return fmt.Sprintf("table %s not restored (%v)", h.table, err)
			}
			return ""
		})
		t.Logf("restored within %s of the nft delete command", time.Since(deleted).Round(time.Millisecond))
		eventually(t, time.Second, open(5432, probe.Filtered))
	})

	t.Run("rule added by hand removed", func(t *testing.T) {
		if err := nft.Apply(context.Background(), "add rule inet "+h.table+" forward4 accept\n"); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Second, func() string {
			listing, _ := nft.List(context.Background(), "inet", h.table)
			if strings.Contains(listing, "\t\taccept\n") {
				return "the rule added by hand is still there"
			}
			return ""
		})
	})

	t.Run("invalid policy rejected, old one kept", func(t *testing.T) {
		h.writePolicy(strings.Replace(hostPolicy, "ports: [80/tcp]", "ports: [80/tcpx]", 1))
		eventually(t, 3*time.Second, func() string {
			if a.Status().PolicyError == "" {
				return "the invalid policy is not reported"
			}
			return ""
		})
		if s := a.Status(); !strings.Contains(s.PolicyError, "80/tcpx") {
			t.Errorf("status after an invalid edit: %+v", s)
		}
		eventually(t, time.Second, open(80, probe.Open))
		eventually(t, time.Second, open(5432, probe.Filtered))
	})

	t.Run("valid policy takes effect", func(t *testing.T) {
		h.writePolicy(strings.Replace(hostPolicy, "ports: [80/tcp]", "ports: [80/tcp, 5432/tcp]", 1))
		eventually(t, 3*time.Second, open(5432, probe.Open))
		if s := a.Status(); s.PolicyError != "" {
			t.Errorf("a valid policy still reports an error: %s", s.PolicyError)
		}
	})

	t.Run("forbidden membership disconnected", func(t *testing.T) {
		if err := h.cli.NetworkConnect(context.Background(), h.data, id, &network.EndpointSettings{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, func() string {
			info, err := h.cli.ContainerInspect(context.Background(), id)
			if err != nil {
				return err.Error()
			}
			if _, on := info.NetworkSettings.Networks[h.data]; on {
				return name + " is still on " + h.data
			}
			return ""
		})
	})
}

// TestAgentKilledAndRestarted: the agent (a process of its own) is killed
// with SIGKILL; while it is down the host changes (containers start, stop,
// join a zone they may not); restarted, it converges quickly. Throughout,
// the table is never absent and a prober never gets through a denied
// flow.
func TestAgentKilledAndRestarted(t *testing.T) {
	h := newZoneHost(t)
	stateDir := t.TempDir()
	start := func() *exec.Cmd {
		args := strings.Join([]string{"agent", "--policy", h.policy, "--table", h.table, "--socket", h.socket, "--flow-log", ""}, "\x1f")
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), childEnv+"="+args, "ZONEWARDEN_STATE_DIR="+stateDir)
		cmd.Stderr = &testWriter{t: t, prefix: "agent: "}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	status := func() agent.Status {
		c, err := agent.Dial(h.socket)
		if err != nil {
			return agent.Status{}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s, _ := c.Status(ctx)
		return s
	}
	child := start()
	h.waitSynced(status, 10*time.Second)

	var clients []string
	for range 10 {
		id, _, err := h.client(context.Background(), true)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, id)
	}
	for _, id := range clients {
		eventually(t, 2*time.Second, func() string {
			if st, _ := h.probe(id, h.svc, 80, 200*time.Millisecond); st != probe.Open {
				return "svc:80 not open from a client"
			}
			return ""
		})
	}

	// Throughout: the table stays, and denied flows stay denied.
	l, err := nflink.New()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	watchCtx, stopWatch := context.WithCancel(context.Background())
	var leaks, absent, probes atomic.Int32
	var watch sync.WaitGroup
	watch.Add(1)
	go func() {
		defer watch.Done()
		for watchCtx.Err() == nil {
			if ok, err := l.HasTable(h.table); err == nil && !ok {
				absent.Add(1)
			}
			if st, _ := h.probe(clients[0], h.db, 5432, 50*time.Millisecond); st == probe.Open {
				leaks.Add(1)
			}
			if st, _ := h.probe(clients[1], h.svc, 5432, 50*time.Millisecond); st == probe.Open {
				leaks.Add(1)
			}
			probes.Add(2)
		}
	}()

	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	// The host changes while no agent runs.
	var fresh []string
	for range 5 {
		id, _, err := h.client(context.Background(), true)
		if err != nil {
			t.Fatal(err)
		}
		fresh = append(fresh, id)
	}
	for _, id := range clients[8:] {
		if err := h.cli.ContainerStop(context.Background(), id, container.StopOptions{Timeout: new(int)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.cli.NetworkConnect(context.Background(), h.data, clients[2], &network.EndpointSettings{}); err != nil {
		t.Fatal(err)
	}
	// Not admitted while the agent is down: fail closed.
	if st, _ := h.probe(fresh[0], h.svc, 80, 200*time.Millisecond); st == probe.Open {
		t.Errorf("a container started while the agent was down reached svc:80 before admission")
	}

	restarted := time.Now()
	start()
	eventually(t, 5*time.Second, func() string {
		for _, id := range fresh {
			if st, _ := h.probe(id, h.svc, 80, 100*time.Millisecond); st != probe.Open {
				return "a container started while the agent was down is not admitted"
			}
		}
		if s := status(); len(s.Violations) != 1 || !strings.Contains(s.Violations[0], h.data) {
			return fmt.Sprintf("violations: %q", s.Violations)
		}
		return ""
	})
	t.Logf("converged %s after the restart", time.Since(restarted).Round(time.Millisecond))
	stopWatch()
	watch.Wait()
	if leaks.Load() > 0 || absent.Load() > 0 {
		t.Errorf("during kill and restart: %d of %d denied probes got through, the table was absent %d times", leaks.Load(), probes.Load(), absent.Load())
	}
	if probes.Load() < 10 {
		t.Errorf("the prober ran only %d probes", probes.Load())
	}
}

// TestAgentSquatterAtStart: a container with NET_ADMIN whose very first
// act is to swap its own address for a running client's (and announce it
// with gratuitous ARP) is admitted, by the kernel or by Docker, on the
// address Docker gave it only: its dial of svc:80 as the client fails
// (svc2, its workload, has no flow to svc), and the client keeps its own.
func TestAgentSquatterAtStart(t *testing.T) {
	h := newZoneHost(t)
	h.startAgent(false)
	ctx := context.Background()
	victim, _, err := h.client(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	v := testenv.Addr(t, h.cli, victim, h.app)
	eventually(t, 5*time.Second, func() string {
		if st, err := h.probe(victim, h.svc, 80, time.Second); st != probe.Open {
			return fmt.Sprintf("the client does not reach svc:80 before the squatter: %v %v", st, err)
		}
		return ""
	})
	script := `o=$(ip -4 -o addr show dev eth0 | awk '{print $4}')
ip addr add ` + v.String() + `/${o#*/} dev eth0 && ip addr del $o dev eth0 || echo squat-failed
arping -U -c 2 -I eth0 ` + v.String() + ` >/dev/null 2>&1
if nc -w 1 ` + h.svc.String() + ` 80 </dev/null >/dev/null 2>&1; then echo squat-reached; else echo squat-blocked; fi
sleep 3600`
	sq := testenv.RunContainer(t, h.cli, h.runID, testenv.ContainerSpec{Name: "svc2", Network: h.app, CapAdd: []string{"NET_ADMIN"},
		Cmd: []string{"sh", "-c", script}, Start: true})
	logs := eventuallyLogs(t, h.cli, sq, "squat-", 10*time.Second)
	if strings.Contains(logs, "squat-failed") {
		t.Fatalf("the squatter could not take the client's address: %q", logs)
	}
	if !strings.Contains(logs, "squat-blocked") {
		t.Errorf("the squatter, as %s: %q; want squat-blocked\nagent log:\n%s", v, logs, h.agentLog.String())
	}
	if st, err := h.probe(victim, h.svc, 80, time.Second); st != probe.Open {
		t.Errorf("the client lost svc:80 to the squatter: %v %v", st, err)
	}
}
