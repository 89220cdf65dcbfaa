package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zonewarden/zonewarden/internal/audit"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/ipsec"
	"github.com/zonewarden/zonewarden/internal/testenv"
	"github.com/zonewarden/zonewarden/internal/testenv/swarmbed"
	"github.com/zonewarden/zonewarden/internal/verify"
)

// TestSwarmAuditReachVerify runs a three-tier stack spread over the three
// nodes of a Swarm test bed, and reads it through the manager, with each
// node's own daemon for its tasks' processes (--swarm-node):
//   - audit names the encrypted overlay that carries nothing between
//     nodes on this kernel (no ESP, no GCM: the probe's evidence);
//   - reach names the node of each end;
//   - verify sends real packets from every task, on every node, to every
//     other task: each key matches the model, a plain overlay carries
//     them across nodes, and the encrypted one carries nothing between
//     nodes, which verify says is the kernel's doing, not a policy's.
//
// Address plan: the bed's; the overlays get 10.250.210-212.0/24.
func TestSwarmAuditReachVerify(t *testing.T) {
	t.Setenv("ZONEWARDEN_STATE_DIR", t.TempDir())
	bed := swarmbed.Up(t, 3, 1)
	n1, n2, n3 := bed.Nodes[0], bed.Nodes[1], bed.Nodes[2]
	bed.Overlay(t, "front", swarmbed.OverlayOpts{Subnet: "10.250.210.0/24"})
	bed.Overlay(t, "back", swarmbed.OverlayOpts{Encrypted: true, Subnet: "10.250.211.0/24"})
	bed.Overlay(t, "data", swarmbed.OverlayOpts{Encrypted: true, Internal: true, Subnet: "10.250.212.0/24"})
	bed.Service(t, swarmbed.ServiceSpec{Name: "web", Replicas: 3, Networks: []string{"front"}, DNSRR: true})
	bed.Service(t, swarmbed.ServiceSpec{Name: "api", Replicas: 2, Networks: []string{"front", "back"}, DNSRR: true,
		Constraints: []string{"node.hostname!=" + n3.Hostname}})
	bed.Service(t, swarmbed.ServiceSpec{Name: "db", Networks: []string{"back", "data"}, DNSRR: true,
		Constraints: []string{"node.hostname==" + n3.Hostname}, Labels: nil})
	args := []string{"--docker-host", "unix://" + n1.Socket, "--swarm-node", "unix://" + n2.Socket, "--swarm-node", "unix://" + n3.Socket}

	code, out, stderr := run(t, append([]string{"audit", "--format", "json"}, args...)...)
	if code > 1 {
		t.Fatalf("audit: exit %d\n%s%s", code, out, stderr)
	}
	var rep audit.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("audit json: %v\n%s", err, out)
	}
	found := false
	for _, f := range rep.Findings {
		if f.Rule == "swarm-encryption-unavailable" && f.Subject.Name == "back" {
			found = true
			if ev := strings.Join(f.Evidence, "\n"); !strings.Contains(ev, "CONFIG_INET_ESP") || !strings.Contains(ev, n3.Hostname) {
				t.Errorf("the finding does not name the missing kernel pieces and the node:\n%s", ev)
			}
		}
	}
	if !found {
		t.Errorf("audit does not say that the encrypted overlay back carries nothing between nodes on this kernel: %+v", rep.Findings)
	}

	code, out, stderr = run(t, append([]string{"reach"}, args...)...)
	if code != 0 || !strings.Contains(out, "["+n3.Hostname+"]") {
		t.Errorf("reach does not name the nodes: exit %d\n%s%s", code, out, stderr)
	}

	code, out, stderr = run(t, append([]string{"verify", "--format", "json"}, args...)...)
	var doc struct {
		Results []verify.Result `json:"results"`
		Summary struct {
			Probed, Mismatches int
		} `json:"summary"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("verify: exit %d: %v\n%s%s", code, err, out, stderr)
	}
	nodeOf := map[string]string{}
	code2, snapOut, _ := run(t, append([]string{"snapshot"}, args...)...)
	if code2 == 0 {
		var snap inventory.Snapshot
		if err := json.Unmarshal([]byte(snapOut), &snap); err == nil {
			for _, c := range snap.Containers {
				nodeOf[c.Name] = c.Node
			}
		}
	}
	if len(nodeOf) == 0 {
		t.Fatal("cannot read the snapshot to tell each task's node")
	}
	var crossOpen, ipsecNotes int
	for _, r := range doc.Results {
		if !r.OK() {
			t.Errorf("mismatch: %s -> %s:%s expected %v, observed %s: %s (probes: %s)", r.From, r.To, r.Port, r.Expected, r.Outcome, r.Cause, strings.Join(r.Probes, ", "))
		}
		if r.Skipped() && r.Expected {
			// A pair the model says cannot talk may be left unprobed: its
			// only road is through the node's own namespace (the tasks'
			// gateway), a router the probe's guard does not follow.
			t.Errorf("not probed, though the model says it passes: %s -> %s:%s: %s (probes: %s)", r.From, r.To, r.Port, r.Cause, strings.Join(r.Probes, ", "))
		}
		cross := nodeOf[r.From] != nodeOf[r.To]
		if cross && r.Outcome == verify.OutcomeOpen {
			crossOpen++
		}
		if r.Note != "" {
			ipsecNotes++
			if !cross || r.Expected || r.Outcome != verify.OutcomeBlocked || !strings.Contains(r.Note, "carries nothing between") {
				t.Errorf("note on %s -> %s (%s -> %s): expected %v, outcome %s: %s", r.From, r.To, nodeOf[r.From], nodeOf[r.To], r.Expected, r.Outcome, r.Note)
			}
		}
	}
	if code != 0 || doc.Summary.Mismatches != 0 || doc.Summary.Probed < 24 {
		t.Errorf("verify: exit %d, %d keys probed, %d mismatches\n%s", code, doc.Summary.Probed, doc.Summary.Mismatches, stderr)
	}
	if crossOpen == 0 {
		t.Error("no key crossed nodes open: the plain overlay front carries nothing between nodes?")
	}
	// api (node 1 or 2) and db (node 3) share only the encrypted back.
	if ipsecNotes == 0 {
		t.Errorf("verify says nothing of the encrypted overlay between %s and the other nodes", n3.Hostname)
	}
	for name, node := range nodeOf {
		if !strings.HasPrefix(name, "api.") {
			continue
		}
		code, out, stderr = run(t, append([]string{"blast-radius", name}, args...)...)
		if code != 0 || !strings.Contains(out, name+"@"+node+" -> ") {
			t.Errorf("blast-radius %s does not name the node of each hop: exit %d\n%s%s", name, code, out, stderr)
		}
		break
	}
	t.Logf("%d keys probed over %d tasks on 3 nodes: %d open across nodes, %d blocked by the kernel's missing IPsec", doc.Summary.Probed, len(nodeOf), crossOpen, ipsecNotes)

	// db rescheduled beside an api task: the model follows it (the
	// encrypted overlay joins them on one node) and packets agree.
	apiNode := ""
	for name, node := range nodeOf {
		if strings.HasPrefix(name, "api.") {
			apiNode = node
		}
	}
	bed.Constrain(t, "db", 1, "node.hostname=="+apiNode)
	code, out, stderr = run(t, append([]string{"verify", "--format", "json"}, args...)...)
	doc.Results = nil
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("verify after the move: exit %d: %v\n%s%s", code, err, out, stderr)
	}
	sameNode := 0
	for _, r := range doc.Results {
		if !r.OK() {
			t.Errorf("after the move, mismatch: %s -> %s:%s expected %v, observed %s: %s", r.From, r.To, r.Port, r.Expected, r.Outcome, r.Cause)
		}
		if strings.HasPrefix(r.From, "api.") && strings.HasPrefix(r.To, "db.") && r.Outcome == verify.OutcomeOpen {
			sameNode++
		}
	}
	if code != 0 || sameNode == 0 {
		t.Errorf("after db moved beside an api task on %s: exit %d, %d api -> db keys open (want the one on its node)", apiNode, code, sameNode)
	}
}

// swarmPolicy narrows the two overlays of TestSwarmEnforce to ports:
// web -> api on 8080, api -> db on 5432, nothing else between members.
// Tasks are selected by what every node knows of them: their name and
// their service's name.
const swarmPolicy = `version: 1
zones:
  swfront: {default: deny, encrypted: false}
  swback:  {default: deny, internal: true, encrypted: false}
workloads:
  web: {match: {name: "web.*"}, zones: [swfront]}
  api: {match: {label: {com.docker.swarm.service.name: api}}, zones: [swfront, swback]}
  db:  {match: {name: "db.*"}, zones: [swback]}
flows:
  - {from: web, to: api, ports: [8080/tcp, 9999/udp]}
  - {from: api, to: db,  ports: [5432/tcp]}
`

// TestSwarmEnforce applies a policy to a Swarm whose services share one
// flat overlay: apply refuses encrypted zones on nodes that cannot encrypt
// (naming what their kernel lacks), then creates the zones' overlays and
// moves the services, new zones before old networks. It then runs the
// overlay enforcer (agent --swarm) on each of three nodes and proves with
// real packets, from every node, that the
// policy's ports hold across nodes where Docker alone lets every member
// of an overlay reach every other on any port; that a task no workload
// selects, forging a web task's address (of its own node or another),
// gets none of web's rights; that a task rescheduled to another node
// keeps exactly its flows; and that the rules stay when the enforcers
// stop (fail static).
//
// Address plan: the bed's; flat gets 10.250.215.0/24, the zones' overlays
// come from the bed's pool.
func TestSwarmEnforce(t *testing.T) {
	t.Setenv("ZONEWARDEN_STATE_DIR", t.TempDir())
	bed := swarmbed.Up(t, 3, 1)
	n1, n2, n3 := bed.Nodes[0], bed.Nodes[1], bed.Nodes[2]
	// Everything starts on one flat overlay; apply moves the services to
	// their zones.
	bed.Overlay(t, "flat", swarmbed.OverlayOpts{Subnet: "10.250.215.0/24"})
	bed.Service(t, swarmbed.ServiceSpec{Name: "web", Replicas: 3, Networks: []string{"flat"}, DNSRR: true})
	bed.Service(t, swarmbed.ServiceSpec{Name: "api", Replicas: 2, Networks: []string{"flat"}, DNSRR: true,
		Constraints: []string{"node.hostname!=" + n3.Hostname}})
	bed.Service(t, swarmbed.ServiceSpec{Name: "db", Networks: []string{"flat"}, DNSRR: true,
		Constraints: []string{"node.hostname==" + n3.Hostname}})
	pol := filepath.Join(t.TempDir(), "zones.yaml")
	if err := os.WriteFile(pol, []byte(swarmPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	source := []string{"--docker-host", "unix://" + n1.Socket, "--swarm-node", "unix://" + n2.Socket, "--swarm-node", "unix://" + n3.Socket}

	// Encrypted zones (the default) on nodes whose kernel cannot encrypt:
	// the preflight refuses, naming what is missing, and changes nothing.
	encrypted := filepath.Join(t.TempDir(), "encrypted.yaml")
	if err := os.WriteFile(encrypted, []byte(strings.ReplaceAll(swarmPolicy, ", encrypted: false", "")), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, append([]string{"apply", encrypted}, source...)...)
	if code != 2 || !strings.Contains(stderr, "CONFIG_INET_ESP") || !strings.Contains(stderr, "encrypted: false") || !strings.Contains(stderr, "nothing was changed") {
		t.Errorf("apply of encrypted zones on nodes that cannot encrypt: exit %d, want 2 naming the missing kernel pieces\n%s%s", code, out, stderr)
	}

	// Plain zones: apply creates the overlays and moves the services,
	// new zones first; a second apply changes nothing.
	code, out, stderr = run(t, append([]string{"apply", pol}, source...)...)
	if code != 0 || !strings.Contains(out, "created network swfront (overlay, not encrypted)") || !strings.Contains(out, "created network swback (overlay, not encrypted, internal)") ||
		!strings.Contains(out, "service api: added swback, swfront") || !strings.Contains(out, "service api: removed flat") {
		t.Fatalf("apply: exit %d\n%s%s", code, out, stderr)
	}
	t.Logf("apply:\n%s", out)
	if code, out, stderr = run(t, append([]string{"apply", pol}, source...)...); code != 0 || !strings.Contains(out, "Swarm: nothing to change") {
		t.Errorf("a second apply: exit %d\n%s%s", code, out, stderr)
	}
	bed.Service(t, swarmbed.ServiceSpec{Name: "spy", Networks: []string{"swfront"}, DNSRR: true,
		Constraints: []string{"node.hostname==" + n2.Hostname}})
	// Docker's own data plane between nodes follows the Swarm's gossip,
	// and so does the agent: wait until it has settled.
	settled := time.Now()
	bed.WaitGossip(t, "swfront", 150*time.Second)
	bed.WaitGossip(t, "swback", 150*time.Second)
	t.Logf("the gossip settled %s after the last task started", time.Since(settled).Round(time.Millisecond))

	args := append([]string{"verify", pol, "--format", "json"}, source...)
	verifyAll := func() (results []verify.Result, mismatches int, out string) {
		_, out, stderr := run(t, args...)
		var doc struct {
			Results []verify.Result `json:"results"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("verify: %v\n%s%s", err, out, stderr)
		}
		for _, r := range doc.Results {
			if !r.OK() {
				mismatches++
				out += fmt.Sprintf("\nmismatch: %s -> %s:%s expected %v, observed %s: %s", r.From, r.To, r.Port, r.Expected, r.Outcome, r.Cause)
			}
		}
		return doc.Results, mismatches, out
	}

	// Docker alone: every member reaches every other, on any port.
	if _, m, _ := verifyAll(); m == 0 {
		t.Fatal("before enforcement verify finds no mismatch: the policy narrows nothing this test can see")
	}

	// One agent per node, as a unit per node runs it (zonewarden agent
	// --swarm): its own daemon, the overlays' namespaces under its
	// exec-root (reached here through dockerd's mount namespace).
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	logs := map[string]*testenv.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			for node, l := range logs {
				t.Logf("the agent's log on %s:\n%s", node, l)
			}
		}
	})
	for _, n := range bed.Nodes {
		l := &testenv.Buffer{}
		logs[n.Hostname] = l
		args := []string{"agent", "--policy", pol, "--swarm", "--docker-host", "unix://" + n.Socket,
			"--docker-exec-root", fmt.Sprintf("/proc/%d/root%s", n.DockerdPID, n.ExecRoot)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code := Main(ctx, args, io.Discard, l); code != 0 {
				t.Errorf("agent --swarm on %s: exit %d", n.Hostname, code)
			}
		}()
	}
	// Every node holds tasks of both overlays: web and api, or web and db.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var missing []string
		for node, l := range logs {
			for _, network := range []string{"swfront", "swback"} {
				if !slices.ContainsFunc(l.LinesWith(`"overlay enforced"`), func(line string) bool { return strings.Contains(line, `"network":"`+network+`"`) }) {
					missing = append(missing, node+"/"+network)
				}
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rules loaded after 20 s in %v", missing)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Every pair and port, from every node, as the policy says.
	eventuallyMatches := func(what string) []verify.Result {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			results, m, out := verifyAll()
			if m == 0 {
				return results
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d mismatches%s", what, m, out)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	results := eventuallyMatches("enforced")
	open, blocked, crossOpen := 0, 0, 0
	for _, r := range results {
		switch r.Outcome {
		case verify.OutcomeOpen:
			open++
			if r.From[:3] != "web" && r.From[:3] != "api" {
				t.Errorf("open from %s: no flow starts there", r.From)
			}
		case verify.OutcomeBlocked:
			blocked++
		}
	}
	nodeOf := taskNodes(t, source)
	for _, r := range results {
		if r.Outcome == verify.OutcomeOpen && nodeOf[r.From] != nodeOf[r.To] {
			crossOpen++
		}
	}
	if open == 0 || blocked == 0 || crossOpen == 0 {
		t.Errorf("enforced: %d keys open (%d across nodes), %d blocked: want some of each", open, crossOpen, blocked)
	}
	t.Logf("enforced on 3 nodes: %d keys probed, %d open (%d across nodes), %d blocked, 0 mismatches", len(results), open, crossOpen, blocked)

	// The spy (no workload: fenced in a default: deny zone) sends web's
	// datagram to api:9999/udp with each web task's address as its
	// source: the binding of addresses to ports drops it on the spy's
	// node, whichever node the forged task runs on. A web task's own
	// datagram gets through (the path works).
	tasks := bed.Tasks(t, "swfront")
	api, spy := tasks["api"][0], tasks["spy"][0]
	got, stop := listenUDP(t, api.Pid, 9999)
	for _, web := range tasks["web"] {
		sendUDP(t, web.Pid, netip.Addr{}, api.Addr, 9999, "from "+web.Name)
		sendUDP(t, spy.Pid, web.Addr, api.Addr, 9999, "forged "+web.Name)
	}
	received := got(2 * time.Second)
	stop() // verify listens there itself
	for _, web := range tasks["web"] {
		if !slices.Contains(received, "from "+web.Name) {
			t.Errorf("%s's own datagram to %s:9999 did not arrive (received %q)", web.Name, api.Name, received)
		}
		if slices.Contains(received, "forged "+web.Name) {
			t.Errorf("the spy on %s passed for %s (on %s): its forged datagram reached %s", n2.Hostname, web.Name, web.Node, api.Name)
		}
	}

	// db moves to node 1: its flows follow it, and nothing more.
	bed.Constrain(t, "db", 1, "node.hostname=="+n1.Hostname)
	bed.WaitGossip(t, "swback", 150*time.Second)
	moved := time.Now()
	results = eventuallyMatches("after db moved to " + n1.Hostname)
	dbOpen := 0
	for _, r := range results {
		if strings.HasPrefix(r.To, "db.") && r.Outcome == verify.OutcomeOpen {
			dbOpen++
			if !strings.HasPrefix(r.From, "api.") || r.Port != "5432/tcp" {
				t.Errorf("after the move %s reaches %s:%s", r.From, r.To, r.Port)
			}
		}
	}
	if dbOpen != 2 {
		t.Errorf("after the move, %d api -> db:5432 keys open, want 2 (one per api task)", dbOpen)
	}
	t.Logf("db rescheduled to %s: its flows held %s after the gossip settled", n1.Hostname, time.Since(moved).Round(time.Millisecond))

	// An invalid edit is rejected (the rules stay); a valid one that
	// drops the api -> db flow takes effect on every node.
	if err := os.WriteFile(pol, []byte(strings.Replace(swarmPolicy, "5432/tcp", "5432/tcpx", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	waitLogs := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for node, l := range logs {
			for len(l.LinesWith(what)) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("the agent on %s never logged %q", node, what)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	waitLogs("policy change rejected")
	if err := os.WriteFile(pol, []byte(strings.Replace(swarmPolicy, "  - {from: api, to: db,  ports: [5432/tcp]}\n", "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	waitLogs("policy reloaded")
	for node, l := range logs {
		if n := len(l.LinesWith("policy change rejected")); n != 1 {
			t.Errorf("the agent on %s said %d times that it rejected the invalid edit, want once", node, n)
		}
	}
	for _, r := range eventuallyMatches("after the api -> db flow was removed from the policy") {
		if strings.HasPrefix(r.To, "db.") && r.Outcome == verify.OutcomeOpen {
			t.Errorf("with no flow to db, %s reaches %s:%s", r.From, r.To, r.Port)
		}
	}

	// The enforcers stop: the rules stay (fail static).
	cancel()
	wg.Wait()
	if _, m, out := verifyAll(); m != 0 {
		t.Errorf("with the enforcers stopped the rules did not stay: %d mismatches%s", m, out)
	}
}

// taskNodes reads a Swarm's snapshot and returns each task's node.
func taskNodes(t *testing.T, sourceArgs []string) map[string]string {
	t.Helper()
	code, out, stderr := run(t, append([]string{"snapshot"}, sourceArgs...)...)
	var snap inventory.Snapshot
	if err := json.Unmarshal([]byte(out), &snap); code != 0 || err != nil {
		t.Fatalf("snapshot: exit %d: %v\n%s", code, err, stderr)
	}
	out2 := map[string]string{}
	for _, c := range snap.Containers {
		out2[c.Name] = c.Node
	}
	return out2
}

// listenUDP listens on port in the network namespace of pid and returns
// a func that collects the datagrams' texts until within passes, and one
// that stops listening.
func listenUDP(t *testing.T, pid int, port int) (func(within time.Duration) []string, func()) {
	t.Helper()
	var conn net.PacketConn
	if err := inNetns(pid, func() (err error) {
		conn, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	collect := func(within time.Duration) []string {
		var out []string
		buf := make([]byte, 512)
		_ = conn.SetReadDeadline(time.Now().Add(within))
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return out
			}
			out = append(out, string(buf[:n]))
		}
	}
	return collect, func() { conn.Close() }
}

// sendUDP sends text to dst:port from the network namespace of pid, from
// the address from, which it adds to the interface that reaches dst, as a
// forger with NET_ADMIN would, or, when from is zero, the namespace's own.
func sendUDP(t *testing.T, pid int, from, dst netip.Addr, port int, text string) {
	t.Helper()
	if from.IsValid() {
		ns := fmt.Sprintf("--net=/proc/%d/ns/net", pid)
		out, err := exec.Command("nsenter", ns, "ip", "-o", "route", "get", dst.String()).CombinedOutput()
		f := strings.Fields(string(out))
		i := slices.Index(f, "dev")
		if err != nil || i < 0 || i+1 >= len(f) {
			t.Fatalf("no route to %s in the forger's namespace: %v: %s", dst, err, out)
		}
		if out, err := exec.Command("nsenter", ns, "ip", "addr", "add", from.String()+"/32", "dev", f[i+1]).CombinedOutput(); err != nil {
			t.Fatalf("adding %s in the forger's namespace: %v: %s", from, err, out)
		}
		defer func() {
			if out, err := exec.Command("nsenter", ns, "ip", "addr", "del", from.String()+"/32", "dev", f[i+1]).CombinedOutput(); err != nil {
				t.Errorf("removing %s from the forger's namespace: %v: %s", from, err, out)
			}
		}()
	}
	err := inNetns(pid, func() error {
		local := ":0"
		if from.IsValid() {
			local = netip.AddrPortFrom(from, 0).String()
		}
		conn, err := net.ListenPacket("udp4", local)
		if err != nil {
			return err
		}
		defer conn.Close()
		_, err = conn.WriteTo([]byte(text), net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, uint16(port))))
		return err
	})
	if err != nil {
		t.Fatalf("sending %q: %v", text, err)
	}
}

// inNetns runs fn on a thread of its own in the network namespace of pid;
// the thread ends with it (a socket made there stays in the namespace).
func inNetns(pid int, fn func() error) error {
	return inNetnsPath(fmt.Sprintf("/proc/%d/ns/net", pid), fn)
}

// inNetnsPath is inNetns for the namespace file path.
func inNetnsPath(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		f, err := os.Open(path)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering the network namespace %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// TestSwarmWireESPOnly is the wire check of an encrypted zone: with the
// zone applied (encrypted, the default) and a task on each of two nodes,
// a capture on the underlay, where every packet between nodes passes,
// must see ESP and never a VXLAN frame carrying the plaintext marker one
// task sends the other. It needs a kernel that can encrypt (ESP with
// AES-GCM). On one that cannot, apply refuses encrypted zones and Docker's
// encrypted overlays carry nothing at all, so that half cannot run: the
// test says so with the kernel's own evidence. The control half runs
// everywhere: the same check on a zone applied with encrypted: false sees
// the marker in clear inside VXLAN, so the capture can fail.
func TestSwarmWireESPOnly(t *testing.T) {
	probe, err := ipsec.Probe()
	if err != nil {
		t.Fatalf("probing the kernel for IPsec: %v", err)
	}
	esp, vxlan, plain := wireCheck(t, false)
	if plain == 0 || esp != 0 {
		t.Errorf("control, a plain zone: %d ESP packets, %d VXLAN frames, %d with the marker; want the marker in clear", esp, vxlan, plain)
	}
	t.Logf("control, a plain zone: %d VXLAN frames on the underlay, %d with the plaintext marker, no ESP", vxlan, plain)
	if !probe.CanEncrypt() {
		t.Logf("the ESP-only check is impossible on this kernel, which cannot encrypt: it lacks %s (%s)", strings.Join(probe.Missing, ", "), probe.Evidence)
		return
	}
	esp, vxlan, plain = wireCheck(t, true)
	if plain > 0 || esp == 0 {
		t.Errorf("an encrypted zone: on the underlay %d ESP packets, %d VXLAN frames, %d of them with the plaintext marker; want ESP only", esp, vxlan, plain)
	}
	t.Logf("an encrypted zone: %d ESP packets on the underlay, %d VXLAN frames in clear, none with the marker", esp, vxlan)
}

// wireCheck applies a zone (encrypted or not) to web and api, one task on
// each of two nodes of a new bed, has web send api a marker over UDP five
// times while it captures every IPv4 packet on the underlay's switch, and
// returns how many were ESP, VXLAN, and VXLAN with the marker in clear.
func wireCheck(t *testing.T, encrypted bool) (esp, vxlan, plain int) {
	t.Helper()
	bed := swarmbed.Up(t, 2, 1)
	defer func() {
		if err := bed.Down(); err != nil {
			t.Error(err)
		}
	}()
	n1, n2 := bed.Nodes[0], bed.Nodes[1]
	bed.Overlay(t, "flat", swarmbed.OverlayOpts{Subnet: "10.250.216.0/24"})
	bed.Service(t, swarmbed.ServiceSpec{Name: "web", Networks: []string{"flat"}, DNSRR: true, Constraints: []string{"node.hostname==" + n1.Hostname}})
	bed.Service(t, swarmbed.ServiceSpec{Name: "api", Networks: []string{"flat"}, DNSRR: true, Constraints: []string{"node.hostname==" + n2.Hostname}})
	pol := filepath.Join(t.TempDir(), "zones.yaml")
	if err := os.WriteFile(pol, []byte(fmt.Sprintf(`version: 1
zones: {sealed: {encrypted: %v}}
workloads:
  web: {match: {name: "web.*"}, zones: [sealed]}
  api: {match: {name: "api.*"}, zones: [sealed]}
`, encrypted)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := run(t, "apply", pol, "--docker-host", "unix://"+n1.Socket, "--swarm-node", "unix://"+n2.Socket); code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, stderr)
	}
	bed.WaitGossip(t, "sealed", 150*time.Second)
	tasks := bed.Tasks(t, "sealed")
	web, api := tasks["web"][0], tasks["api"][0]

	marker := []byte(fmt.Sprintf("zonewarden-plaintext-marker-%d", os.Getpid()))
	capture := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		capture <- inNetnsPath(bed.SwitchNetns(), func() error {
			fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			tv := unix.Timeval{Usec: 100_000}
			if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
				return err
			}
			buf := make([]byte, 65536)
			for {
				select {
				case <-stop:
					return nil
				default:
				}
				n, _, err := unix.Recvfrom(fd, buf, 0)
				if err != nil || n < 34 || buf[12] != 0x08 || buf[13] != 0x00 {
					continue // the timeout (look at stop again), or not IPv4
				}
				ip := buf[14:n]
				hl := int(ip[0]&0x0f) * 4
				switch {
				case ip[9] == 50:
					esp++
				case ip[9] == 17 && len(ip) >= hl+8 && ip[hl+2] == 0x12 && ip[hl+3] == 0xb5: // udp/4789
					vxlan++
					if bytes.Contains(ip[hl:], marker) {
						plain++
					}
				}
			}
		})
	}()
	got, stopListening := listenUDP(t, api.Pid, 9999)
	for range 5 {
		sendUDP(t, web.Pid, netip.Addr{}, api.Addr, 9999, string(marker))
	}
	received := got(2 * time.Second)
	stopListening()
	close(stop)
	if err := <-capture; err != nil {
		t.Fatalf("capturing on the underlay: %v", err)
	}
	if len(received) == 0 {
		t.Fatalf("%s on %s never received the marker from %s on %s", api.Name, api.Node, web.Name, web.Node)
	}
	return esp, vxlan, plain
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
