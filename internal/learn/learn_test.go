package learn

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
)

// shop is a host: web and db on the shop network (gateway 172.30.0.1),
// web publishing 8080->80/tcp.
func shop() *inventory.Snapshot {
	return &inventory.Snapshot{
		Networks: []inventory.Network{{Name: "shop", Driver: "bridge", Subnets: []inventory.Subnet{{
			Prefix: netip.MustParsePrefix("172.30.0.0/24"), Gateway: netip.MustParseAddr("172.30.0.1")}}}},
		Containers: []inventory.Container{
			{Name: "shop-web-1", State: "running", Labels: map[string]string{inventory.LabelComposeProject: "shop", inventory.LabelComposeService: "web"},
				Endpoints: []inventory.Endpoint{{Network: "shop", IPv4: netip.MustParseAddr("172.30.0.2")}},
				Ports:     []inventory.PortBinding{{ContainerPort: l4.Port{Number: 80, Proto: "tcp"}, HostPort: 8080}}},
			{Name: "shop-db-1", State: "running", Endpoints: []inventory.Endpoint{{Network: "shop", IPv4: netip.MustParseAddr("172.30.0.3")}}},
			{Name: "old", State: "exited", Endpoints: []inventory.Endpoint{{Network: "shop", IPv4: netip.MustParseAddr("172.30.0.9")}}},
		},
	}
}

func TestNameConnections(t *testing.T) {
	n := NewNamer(shop(), []netip.Addr{netip.MustParseAddr("192.0.2.10")})
	a := netip.MustParseAddr
	for _, c := range []struct {
		name string
		conn Conn
		want string // Record.String, or "" for none
	}{
		{"direct", Conn{Src: a("172.30.0.2"), Dialled: a("172.30.0.3"), DialledTo: 5432, Dst: a("172.30.0.3"), Port: 5432, Proto: "tcp"}, "shop-web-1 -> shop-db-1 5432/tcp"},
		{"kernel DNAT to a published port", Conn{Src: a("172.30.0.3"), Dialled: a("192.0.2.10"), DialledTo: 8080, Dst: a("172.30.0.2"), Port: 80, Proto: "tcp"},
			"shop-db-1 -> shop-web-1 80/tcp (published 8080/tcp)"},
		{"userland proxy: a container dials the gateway's published port", Conn{Src: a("172.30.0.3"), Dialled: a("172.30.0.1"), DialledTo: 8080, Dst: a("172.30.0.1"), Port: 8080, Proto: "tcp"},
			"shop-db-1 -> shop-web-1 80/tcp (published 8080/tcp)"},
		{"the host, on a port no one publishes", Conn{Src: a("172.30.0.3"), Dialled: a("172.30.0.1"), DialledTo: 22, Dst: a("172.30.0.1"), Port: 22, Proto: "tcp"}, "shop-db-1 -> host 22/tcp"},
		{"outside to a published port", Conn{Src: a("198.51.100.7"), Dialled: a("192.0.2.10"), DialledTo: 8080, Dst: a("172.30.0.2"), Port: 80, Proto: "tcp"},
			"198.51.100.7 -> shop-web-1 80/tcp (published 8080/tcp)"},
		{"egress", Conn{Src: a("172.30.0.2"), Dialled: a("203.0.113.5"), DialledTo: 443, Dst: a("203.0.113.5"), Port: 443, Proto: "tcp"}, "shop-web-1 -> 203.0.113.5 443/tcp"},
		{"icmp", Conn{Src: a("172.30.0.2"), Dialled: a("172.30.0.3"), Dst: a("172.30.0.3"), Proto: "icmp"}, "shop-web-1 -> shop-db-1 icmp"},
		{"a stopped container's address is not its name", Conn{Src: a("172.30.0.9"), Dialled: a("172.30.0.3"), DialledTo: 5432, Dst: a("172.30.0.3"), Port: 5432, Proto: "tcp"},
			"172.30.0.9 -> shop-db-1 5432/tcp"},
		{"an address no container has yet", Conn{Src: a("172.30.0.20"), Dialled: a("172.30.0.3"), DialledTo: 5432, Dst: a("172.30.0.3"), Port: 5432, Proto: "tcp"},
			"172.30.0.20 -> shop-db-1 5432/tcp"},
		{"the host's own traffic", Conn{Src: a("192.0.2.10"), Dialled: a("203.0.113.5"), DialledTo: 443, Dst: a("203.0.113.5"), Port: 443, Proto: "tcp"}, ""},
		{"loopback", Conn{Src: a("127.0.0.1"), Dialled: a("127.0.0.1"), DialledTo: 80, Dst: a("127.0.0.1"), Port: 80, Proto: "tcp"}, ""},
	} {
		r, ok := n.Name(c.conn)
		got := ""
		if ok {
			got = r.String()
		}
		if got != c.want {
			t.Errorf("%s: named %q, want %q", c.name, got, c.want)
		}
	}
	r, _ := n.Name(Conn{Src: a("172.30.0.2"), Dialled: a("172.30.0.3"), Dst: a("172.30.0.3"), Port: 5432, Proto: "tcp"})
	if r.From.Project != "shop" || r.From.Service != "web" {
		t.Errorf("the compose project and service are not recorded: %+v", r.From)
	}
}

func TestRecorderAggregatesAndFolds(t *testing.T) {
	n := NewNamer(shop(), nil)
	rec := NewRecorder(n)
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	a := netip.MustParseAddr
	for i := range 3 {
		rec.Observe(Conn{Time: t0.Add(time.Duration(i) * time.Minute), Src: a("172.30.0.2"), Dialled: a("172.30.0.3"), Dst: a("172.30.0.3"), Port: 5432, Proto: "tcp"})
	}
	rec.Observe(Conn{Time: t0, Src: a("192.0.2.1"), Dialled: a("192.0.2.2"), Dst: a("192.0.2.2"), Port: 53, Proto: "udp"})
	for i := range MaxOutside + 10 {
		src := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		rec.Observe(Conn{Time: t0, Src: src, Dialled: a("172.30.0.2"), Dst: a("172.30.0.2"), Port: 80, Proto: "tcp"})
	}
	answer := Conn{Time: t0.Add(time.Hour), Src: a("172.30.0.2"), Dialled: a("172.30.0.3"), Dst: a("172.30.0.3"), Port: 5432, Proto: "tcp", Answered: true}
	rec.Observe(answer)
	rec.Observe(answer)
	cs := rec.Counts()
	if cs.Connections != 3+MaxOutside+10 || cs.Skipped != 1 || cs.Answered != 2 {
		t.Errorf("counted %+v; want %d connections, 2 answered, 1 skipped", cs, 3+MaxOutside+10)
	}
	if cs.Flows != 1+MaxOutside+1 {
		t.Errorf("%d flows, want %d: one per outside address up to MaxOutside, then one for the rest", cs.Flows, 1+MaxOutside+1)
	}
	recs := rec.Take()
	var db Record
	folded := int64(0)
	for _, r := range recs {
		if r.To.Container == "shop-db-1" {
			db = r
		}
		if r.From.Kind == KindOutside && r.From.Addr == "" {
			folded = r.Count
		}
	}
	if db.Count != 3 || db.Answered != 2 || !db.First.Equal(t0) || !db.Last.Equal(t0.Add(time.Hour)) {
		t.Errorf("web -> db: %+v; want 3 connections, 2 answered, from %v to %v", db, t0, t0.Add(time.Hour))
	}
	if folded != 10 {
		t.Errorf("%d connections folded into outside, want 10", folded)
	}
	if n := rec.Counts().Flows; n != 0 {
		t.Errorf("Take leaves %d flows", n)
	}
}

// TestLateContainerIsNamed: a container that connects before the namer
// knows it is named when the next namer does, its records merged.
func TestLateContainerIsNamed(t *testing.T) {
	snap := shop()
	rec := NewRecorder(NewNamer(snap, nil))
	a := netip.MustParseAddr
	conn := Conn{Src: a("172.30.0.20"), Dialled: a("172.30.0.3"), Dst: a("172.30.0.3"), Port: 5432, Proto: "tcp"}
	rec.Observe(conn)
	if r := rec.Records(); len(r) != 1 || r[0].From.Kind != KindUnknown {
		t.Fatalf("before the snapshot has it: %+v, want an unknown source", r)
	}
	snap.Containers = append(snap.Containers, inventory.Container{Name: "late", State: "running",
		Endpoints: []inventory.Endpoint{{Network: "shop", IPv4: a("172.30.0.20")}}})
	n := NewNamer(snap, nil)
	rec.Observe(conn) // named by the old namer: unknown again
	rec.SetNamer(n)
	rec.Observe(conn)
	r := rec.Records()
	if len(r) != 1 || r[0].String() != "late -> shop-db-1 5432/tcp" || r[0].Count != 3 {
		t.Errorf("after the snapshot has it: %v, want [late -> shop-db-1 5432/tcp x3]", r)
	}
}

// TestFileAppendsAndMerges: two runs append to one file; reading it
// merges their records.
func TestFileAppendsAndMerges(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	web := Peer{Kind: KindContainer, Container: "web"}
	db := Peer{Kind: KindContainer, Container: "db"}
	var file bytes.Buffer
	if err := Write(&file, []Record{{From: web, To: db, Proto: "tcp", Port: 5432, Count: 2, First: t0, Last: t0.Add(time.Second)}}); err != nil {
		t.Fatal(err)
	}
	if err := Write(&file, []Record{
		{From: web, To: db, Proto: "tcp", Port: 5432, Count: 5, First: t0.Add(-time.Hour), Last: t0},
		{From: db, To: web, Proto: "icmp", Count: 1, First: t0, Last: t0},
	}); err != nil {
		t.Fatal(err)
	}
	recs, err := Read("flows.jsonl", &file)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2: %v", len(recs), recs)
	}
	w := recs[1]
	if w.String() != "web -> db 5432/tcp" || w.Count != 7 || !w.First.Equal(t0.Add(-time.Hour)) || !w.Last.Equal(t0.Add(time.Second)) {
		t.Errorf("merged %+v", w)
	}
	for _, bad := range []string{"not json\n", `{"count": 3}` + "\n"} {
		_, err := Read("flows.jsonl", strings.NewReader(bad))
		if err == nil || !strings.Contains(err.Error(), "flows.jsonl:1: ") || !strings.Contains(err.Error(), "zonewarden learn") {
			t.Errorf("reading %q: %v; want an error at flows.jsonl:1 that names zonewarden learn", bad, err)
		}
	}
}
