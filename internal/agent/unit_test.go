package agent

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/enforce/enforcetest"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/inventory/dockerapi"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy"
)

// packet builds the first bytes of an IPv4 or IPv6 packet to port.
func packet(src, dst string, proto byte, port uint16) []byte {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	l4 := make([]byte, 8)
	binary.BigEndian.PutUint16(l4[0:2], 40000)
	binary.BigEndian.PutUint16(l4[2:4], port)
	if s.Is4() {
		h := make([]byte, 20)
		h[0], h[9] = 0x45, proto
		copy(h[12:16], s.AsSlice())
		copy(h[16:20], d.AsSlice())
		return append(h, l4...)
	}
	h := make([]byte, 40)
	h[0], h[6] = 0x60, proto
	copy(h[8:24], s.AsSlice())
	copy(h[24:40], d.AsSlice())
	return append(h, l4...)
}

func TestParsePacket(t *testing.T) {
	for _, c := range []struct {
		pkt             []byte
		src, dst, proto string
		port            uint16
		ok              bool
	}{
		{packet("10.0.0.1", "10.0.0.2", 6, 5432), "10.0.0.1", "10.0.0.2", "tcp", 5432, true},
		{packet("fd00::1", "fd00::2", 17, 53), "fd00::1", "fd00::2", "udp", 53, true},
		{packet("10.0.0.1", "10.0.0.2", 1, 0), "10.0.0.1", "10.0.0.2", "icmp", 0, true},
		{packet("fd00::1", "fd00::2", 58, 0), "fd00::1", "fd00::2", "ipv6-icmp", 0, true},
		{[]byte{0x45, 0, 0}, "", "", "", 0, false},
		{nil, "", "", "", 0, false},
	} {
		src, dst, proto, port, ok := parsePacket(c.pkt)
		if ok != c.ok || ok && (src.String() != c.src || dst.String() != c.dst || proto != c.proto || port != c.port) {
			t.Errorf("parsePacket(%x) = %v %v %q %d %v, want %s %s %q %d %v", c.pkt, src, dst, proto, port, ok, c.src, c.dst, c.proto, c.port, c.ok)
		}
	}
}

func threeTier(t *testing.T) *model.Binding {
	t.Helper()
	p, err := policy.Parse("three-tier.yaml", []byte(enforcetest.Policy), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := model.Bind(p, enforcetest.Host())
	return b
}

// TestNamer names the ends of dropped packets: containers with their
// workload and zone, the host, the outside, an address no container has.
func TestNamer(t *testing.T) {
	n := newNamer(threeTier(t))
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	// frontend (10.20.2.12 on application-tier) to postgres (10.20.3.14).
	fl, ok := n.name(packet("10.20.2.12", "10.20.3.14", 6, 5432), 0, enforce.DropToZone, now)
	if !ok || fl.From != "frontend" || fl.To != "postgres" || fl.Port != "5432/tcp" || fl.Zone != "database-tier" ||
		fl.FromWorkload != "frontend" || fl.ToWorkload != "postgres" || fl.RuleID != "to-zone" || fl.Rule != enforce.DropToZone.Comment {
		t.Errorf("frontend -> postgres: %+v", fl)
	}
	fl, _ = n.name(packet("10.20.3.14", "10.20.2.13", 17, 53), 0, enforce.DropFromZone, now)
	if fl.Zone != "database-tier" || fl.From != "postgres" || fl.To != "api" || fl.Port != "53/udp" {
		t.Errorf("postgres -> api, from its zone: %+v", fl)
	}
	fl, _ = n.name(packet("198.51.100.7", "10.20.1.11", 6, 22), 0, enforce.DropToZone, now)
	if fl.From != "outside" || fl.To != "lb" {
		t.Errorf("outside -> lb: %+v", fl)
	}
	fl, _ = n.name(packet("10.20.1.200", "10.20.1.11", 6, 443), 0, enforce.DropUnadmittedSrc, now)
	if fl.From != "10.20.1.200" || fl.Zone != "" {
		t.Errorf("an address no running container has: %+v", fl)
	}
	// Through the userland proxy: the host port names its publisher.
	fl, _ = n.name(packet("10.20.3.15", "10.20.1.1", 6, 443), 0, enforce.DropPublished, now)
	if fl.From != "cache" || fl.To != "lb (published port)" {
		t.Errorf("cache -> published 443: %+v", fl)
	}
}

// TestNamerSpoofs names the forger by its bridge port and the container
// whose address it claimed, for IP, ARP and neighbour advertisements.
func TestNamerSpoofs(t *testing.T) {
	p, err := policy.Parse("three-tier.yaml", []byte(enforcetest.Policy), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := model.Bind(p, enforcetest.HostWithPorts())
	n := newNamer(b)
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	// cache (port 140) claims api's database-tier address 10.20.3.13.
	fl, ok := n.name(packet("10.20.3.13", "10.20.3.14", 6, 5432), 140, enforce.DropSpoof, now)
	if !ok || fl.From != "cache" || fl.As != "api" || fl.To != "postgres" || fl.Port != "5432/tcp" || fl.RuleID != "spoof" {
		t.Errorf("cache as api -> postgres: %+v", fl)
	}
	arp := make([]byte, 28)
	copy(arp[14:18], netip.MustParseAddr("10.20.3.13").AsSlice())
	copy(arp[24:28], netip.MustParseAddr("10.20.3.14").AsSlice())
	fl, ok = n.name(arp, 140, enforce.DropSpoofARP, now)
	if !ok || fl.From != "cache" || fl.As != "api" || fl.To != "postgres" || fl.Port != "arp" {
		t.Errorf("cache's ARP claiming api's address: %+v", fl)
	}
	nd := packet("fd20:1::12", "fd20:1::11", 58, 0) // frontend (port 110) to lb
	nd = append(nd[:40], make([]byte, 24)...)
	copy(nd[48:64], netip.MustParseAddr("fd20:1::11").AsSlice())
	fl, ok = n.name(nd, 110, enforce.DropSpoofND, now)
	if !ok || fl.From != "frontend" || fl.As != "lb" || fl.Port != "nd" {
		t.Errorf("frontend advertising lb's address: %+v", fl)
	}
	if fl, _ := n.name(packet("10.20.3.13", "10.20.3.14", 6, 5432), 9999, enforce.DropSpoof, now); fl.From != "bridge port 9999" {
		t.Errorf("an unknown port: %+v", fl)
	}
}

// TestFlowLogRateLimit: a flow repeated within a second is folded into its
// next line; the lines of one second are bounded; every packet is
// counted.
func TestFlowLogRateLimit(t *testing.T) {
	var out bytes.Buffer
	f := newFlowLog(&out, 3, newMetrics())
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	fl := func(to string, at time.Duration) DeniedFlow {
		return DeniedFlow{Time: t0.Add(at), From: "a", To: to, Port: "80/tcp", RuleID: "from-zone"}
	}
	f.add(fl("b", 0))
	f.add(fl("b", 100*time.Millisecond)) // folded
	f.add(fl("b", 200*time.Millisecond)) // folded
	f.add(fl("c", 300*time.Millisecond))
	f.add(fl("d", 400*time.Millisecond))
	f.add(fl("e", 500*time.Millisecond)) // over 3 lines this second
	f.add(fl("b", 1100*time.Millisecond))
	var lines []DeniedFlow
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var d DeniedFlow
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		lines = append(lines, d)
	}
	var got []string
	for _, l := range lines {
		got = append(got, l.To)
	}
	if strings.Join(got, ",") != "b,c,d,b" || lines[3].Repeated != 2 {
		t.Errorf("lines to %v (last repeated %d), want b,c,d,b (2)", got, lines[len(lines)-1].Repeated)
	}
	recent, _, cancel := f.subscribe()
	defer cancel()
	if len(recent) != 4 {
		t.Errorf("recent: %d lines, want 4", len(recent))
	}
}

func TestMarkContainer(t *testing.T) {
	var d dirty
	t1, t2 := time.Unix(100, 0), time.Unix(101, 0)
	d.markContainer("x", "connect", t1)
	d.markContainer("x", "start", t2)
	d.markContainer("x", "die", time.Unix(102, 0))
	d.markContainer("y", "rename", t1)
	if d.containers["x"] != t2 || !d.containers["y"].IsZero() {
		t.Errorf("containers %v: want x at its start, y with no time", d.containers)
	}
	var e dirty
	e.markContainer("y", "start", t1)
	d.merge(e)
	if d.containers["y"] != t1 {
		t.Errorf("merge: y %v, want %v", d.containers["y"], t1)
	}
}

func TestLatencyRing(t *testing.T) {
	var r latencyRing
	for i := 1; i <= 2000; i++ {
		r.add(time.Duration(i%100+1) * time.Millisecond)
	}
	p50, p99, n := r.quantiles()
	if n != 1024 || p50 < 45 || p50 > 55 || p99 < 97 || p99 > 100 {
		t.Errorf("p50 %.1f p99 %.1f over %d", p50, p99, n)
	}
}

// TestPendingEndpoints: an endpoint a connect event announced stands in
// for the list's until the list shows the container running with it; a
// container still "created" with one is starting and counts as running;
// one that died drops it.
func TestPendingEndpoints(t *testing.T) {
	h := newHostView(nil)
	e := inventory.Endpoint{Network: "db", IPv4: netip.MustParseAddr("10.20.3.9"), MAC: "02:42:0a:14:03:09"}
	h.pending["c1"] = map[string]inventory.Endpoint{"db": e}
	c := h.withPending(inventory.Container{ID: "c1", Name: "api", State: "created"})
	if !c.Running() || len(c.Endpoints) != 1 || c.Endpoints[0].IPv4 != e.IPv4 {
		t.Fatalf("starting container: %+v", c)
	}
	// The list shows it running, without the address yet: still pending.
	c = h.withPending(inventory.Container{ID: "c1", State: "running", Endpoints: []inventory.Endpoint{{Network: "db"}}})
	if c.Endpoints[0].IPv4 != e.IPv4 || h.pending["c1"] == nil {
		t.Fatalf("list without the address: %+v, pending %v", c, h.pending)
	}
	// The list caught up: the pending entry goes.
	c = h.withPending(inventory.Container{ID: "c1", State: "running", Endpoints: []inventory.Endpoint{e}})
	if h.pending["c1"] != nil || c.Endpoints[0].IPv4 != e.IPv4 {
		t.Fatalf("list caught up: %+v, pending %v", c, h.pending)
	}
	// Died before the list caught up: dropped, not admitted.
	h.pending["c2"] = map[string]inventory.Endpoint{"db": e}
	c = h.withPending(inventory.Container{ID: "c2", State: "exited"})
	if c.Running() || len(c.Endpoints) != 0 || h.pending["c2"] != nil {
		t.Fatalf("died: %+v, pending %v", c, h.pending)
	}
}

// TestSwarmSelectable: a workload that selects by what only a task's own
// node knows is refused, by name; name globs and the service label pass.
func TestSwarmSelectable(t *testing.T) {
	p, err := policy.Parse("zones.yaml", []byte(`version: 1
zones: {front: {default: deny}}
workloads:
  web: {match: {name: "web.*"}, zones: [front]}
  api: {match: {label: {com.docker.swarm.service.name: api}}, zones: [front]}
  db:  {match: {image: "postgres:*"}, zones: [front]}
  cache: {match: {label: {tier: cache}}, zones: [front]}
`), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(SwarmSelectable(p), "\n")
	for _, want := range []string{"workload db selects by image", "workload cache selects by label tier"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	for _, ok := range []string{"workload web", "workload api"} {
		if strings.Contains(got, ok) {
			t.Errorf("%s is refused, though every node knows what it selects by:\n%s", ok, got)
		}
	}
}

// TestDropDuplicates: an address two tasks claim in the gossip stays with
// this node's task; between tasks of other nodes neither keeps it.
func TestDropDuplicates(t *testing.T) {
	task := func(name, addr string) inventory.Container {
		return inventory.Container{Name: name, Endpoints: []inventory.Endpoint{{Network: "front", IPv4: netip.MustParseAddr(addr)}}}
	}
	view := &dockerapi.Overlay{
		Tasks: []inventory.Container{
			task("api.1.new", "10.0.0.2"), task("web.1.old", "10.0.0.2"), // api.1 is this node's
			task("db.1.new", "10.0.0.3"), task("cache.1.old", "10.0.0.3"), // both elsewhere
			task("web.2.x", "10.0.0.4"),
		},
		Local: map[string]string{"api.1.new": "c1"},
	}
	dropped := dropDuplicates(view)
	var kept []string
	for _, c := range view.Tasks {
		kept = append(kept, c.Name)
	}
	if got := strings.Join(kept, " "); got != "api.1.new web.2.x" {
		t.Errorf("kept %s", got)
	}
	if len(dropped) != 2 || !strings.Contains(dropped[0], "(kept: this node's)") || !strings.Contains(dropped[1], "(kept: none)") {
		t.Errorf("dropped: %q", dropped)
	}
}
