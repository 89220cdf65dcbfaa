package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/audit"
	"github.com/zonewarden/zonewarden/internal/inventory"
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
