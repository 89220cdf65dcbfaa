// Package learn turns the connections a host really makes into flow
// records: who (a container, named; the host; or beyond it) opened how
// many connections to whom, on which protocol and port, first and last
// seen. `zonewarden learn` and `zonewarden agent --learn` record them
// from conntrack's new-connection events; `init --from-flows` drafts the
// policy that keeps exactly them, and `plan --flows` lists those a policy
// would break.
//
// The package is pure: it names connections with a host snapshot and
// reads and writes the flows file (JSON lines, one record per line,
// appended to by each run). The kernel side is internal/conntrack.
package learn

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/zonewarden/zonewarden/internal/inventory"
)

// Kinds of Peer.
const (
	KindContainer = "container"
	KindHost      = "host"    // an address of the host: a gateway, its own
	KindOutside   = "outside" // beyond the host
	// KindUnknown is an address of a Docker network that no running
	// container had when the connection was made: one starting as the
	// snapshot was read. The next namer names it (Recorder.SetNamer).
	KindUnknown = "unknown"
)

// Peer is one end of a flow.
type Peer struct {
	Kind string `json:"kind"`
	// Container, and its compose project and service, name a container
	// as it was when the connection was made.
	Container string `json:"container,omitempty"`
	Project   string `json:"project,omitempty"`
	Service   string `json:"service,omitempty"`
	// Addr is the address seen: always for outside, where it is the
	// only name, until too many distinct ones fold into "outside".
	Addr string `json:"addr,omitempty"`
}

// String names the peer for people: the container, "host", or the
// outside address.
func (p Peer) String() string {
	switch {
	case p.Kind == KindContainer:
		return p.Container
	case (p.Kind == KindOutside || p.Kind == KindUnknown) && p.Addr != "":
		return p.Addr
	}
	return p.Kind
}

// Record is one flow: every new connection from From to To on Proto and
// Port (the destination port the server listens on, after any DNAT).
type Record struct {
	From  Peer   `json:"from"`
	To    Peer   `json:"to"`
	Proto string `json:"proto"` // tcp, udp, sctp, icmp, ipv6-icmp
	Port  uint16 `json:"port,omitempty"`
	// Via names the host port a connection to a published port dialled
	// ("published 8080/tcp"), "" for a direct one.
	Via string `json:"via,omitempty"`
	// Count is the new connections seen; Answered those that got their
	// answer (a completed TCP handshake, a reply): a port scan or a
	// refused connection is counted but never answered. Answered can
	// exceed Count by connections opened before learning began.
	Count    int64     `json:"count"`
	Answered int64     `json:"answered"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
}

// PortString renders the port as policies write it: "5432/tcp", "icmp".
func (r Record) PortString() string {
	if r.Port == 0 {
		return r.Proto
	}
	return strconv.Itoa(int(r.Port)) + "/" + r.Proto
}

func (r Record) String() string {
	s := fmt.Sprintf("%s -> %s %s", r.From, r.To, r.PortString())
	if r.Via != "" {
		s += " (" + r.Via + ")"
	}
	return s
}

// key identifies a record: its peers, protocol, port and path.
type key struct {
	from, to Peer
	proto    string
	port     uint16
	via      string
}

func (r *Record) key() key { return key{r.From, r.To, r.Proto, r.Port, r.Via} }

// Conn is one new connection as conntrack reports it: the client, the
// address and port it dialled, and the server after DNAT.
type Conn struct {
	Time      time.Time
	Src       netip.Addr
	Dialled   netip.Addr
	DialledTo uint16
	Dst       netip.Addr // after DNAT
	Port      uint16     // after DNAT
	Proto     string
	// Answered: not a new connection, but one that got its answer.
	Answered bool
}

// Namer names the addresses of a host: its containers (running, by
// endpoint address), its own addresses and the host ports containers
// publish. Build one per snapshot; it is read-only after.
type Namer struct {
	byAddr    map[netip.Addr]*Peer
	host      map[netip.Addr]bool
	local     []netip.Prefix
	published map[string]published // "tcp/8080"
}

type published struct {
	peer *Peer
	port uint16 // the container port
}

// NewNamer indexes snap; hostAddrs are the host's own addresses (its
// interfaces'), which with the networks' gateways are "host".
func NewNamer(snap *inventory.Snapshot, hostAddrs []netip.Addr) *Namer {
	n := &Namer{byAddr: map[netip.Addr]*Peer{}, host: map[netip.Addr]bool{}, published: map[string]published{}}
	for _, a := range hostAddrs {
		n.host[a.Unmap()] = true
	}
	for _, nw := range snap.Networks {
		for _, s := range nw.Subnets {
			n.local = append(n.local, s.Prefix)
			if s.Gateway.IsValid() {
				n.host[s.Gateway] = true
			}
		}
	}
	ix := inventory.NewIndex(snap)
	for i := range snap.Containers {
		c := &snap.Containers[i]
		if !c.Running() {
			continue
		}
		p := &Peer{Kind: KindContainer, Container: c.Name, Project: c.ComposeProject(), Service: c.ComposeService()}
		for _, e := range c.Endpoints {
			for _, a := range []netip.Addr{e.IPv4, e.IPv6} {
				if a.IsValid() {
					n.byAddr[a] = p
				}
			}
		}
		for _, pb := range ix.PublishedPorts(c) {
			if pb.HostPort != 0 {
				n.published[pb.ContainerPort.Proto+"/"+strconv.Itoa(int(pb.HostPort))] = published{p, pb.ContainerPort.Number}
			}
		}
	}
	return n
}

// peer names a: a container, the host, or outside (with its address).
func (n *Namer) peer(a netip.Addr) (p Peer, known bool) {
	if c := n.byAddr[a]; c != nil {
		return *c, true
	}
	if n.host[a] || a.IsLoopback() {
		return Peer{Kind: KindHost}, true
	}
	for _, s := range n.local {
		if s.Contains(a) {
			return Peer{Kind: KindUnknown, Addr: a.String()}, false
		}
	}
	return Peer{Kind: KindOutside, Addr: a.String()}, false
}

// Name turns a connection into a record of one, or false when no
// container is at either end (the host's own traffic).
func (n *Namer) Name(c Conn) (Record, bool) {
	from, _ := n.peer(c.Src)
	to, _ := n.peer(c.Dst)
	r := Record{From: from, To: to, Proto: c.Proto, Port: c.Port, Count: 1, First: c.Time, Last: c.Time}
	if c.Answered {
		r.Count, r.Answered = 0, 1
	}
	if c.Dialled != c.Dst {
		// DNAT: the kernel path to a published port (or Docker's).
		r.Via = fmt.Sprintf("published %d/%s", c.DialledTo, c.Proto)
	} else if to.Kind == KindHost && from.Kind == KindContainer {
		// The userland proxy's path: a container dialled a host
		// address on a published port; the proxy connects on.
		if pb, ok := n.published[c.Proto+"/"+strconv.Itoa(int(c.DialledTo))]; ok {
			r.To, r.Port, r.Via = *pb.peer, pb.port, fmt.Sprintf("published %d/%s", c.DialledTo, c.Proto)
		}
	}
	if r.From.Kind != KindContainer && r.To.Kind != KindContainer {
		return Record{}, false
	}
	return r, true
}

// MaxOutside bounds the distinct outside addresses a Recorder keeps;
// beyond them, outside peers are recorded as "outside" without one, so
// that a scan from the internet cannot grow the records without limit.
const MaxOutside = 4096

// Recorder aggregates records: one per flow, with its count and first
// and last time. It is safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	names   *Namer
	recs    map[key]*Record
	outside map[string]bool
	counts  Counts
}

// Counts are what a Recorder has seen.
type Counts struct {
	// Connections are the new connections recorded, Answered the
	// answers, Skipped the new connections with no container at either
	// end (the host's own), Flows the records they make.
	Connections, Answered, Skipped int64
	Flows                          int
}

// NewRecorder returns a recorder that names connections with n.
func NewRecorder(n *Namer) *Recorder {
	return &Recorder{names: n, recs: map[key]*Record{}, outside: map[string]bool{}}
}

// SetNamer replaces the namer (the host changed), and names with it the
// unknown peers recorded so far: a container that connected before the
// namer knew it. Its address was no running container's then, so it is
// this one's.
func (r *Recorder) SetNamer(n *Namer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.names = n
	for k, rec := range r.recs {
		from, to := n.rename(rec.From), n.rename(rec.To)
		if from == rec.From && to == rec.To {
			continue
		}
		delete(r.recs, k)
		rec.From, rec.To = from, to
		if old := r.recs[rec.key()]; old != nil {
			old.merge(rec)
			continue
		}
		r.recs[rec.key()] = rec
	}
}

// rename names an unknown peer if n knows its address.
func (n *Namer) rename(p Peer) Peer {
	if p.Kind != KindUnknown {
		return p
	}
	a, err := netip.ParseAddr(p.Addr)
	if err != nil {
		return p
	}
	if c := n.byAddr[a]; c != nil {
		return *c
	}
	return p
}

// Observe records one new connection.
func (r *Recorder) Observe(c Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.names.Name(c)
	switch {
	case !ok && !c.Answered:
		r.counts.Skipped++
		return
	case !ok:
		return
	case c.Answered:
		r.counts.Answered++
	default:
		r.counts.Connections++
	}
	r.fold(&rec.From)
	r.fold(&rec.To)
	k := rec.key()
	if old := r.recs[k]; old != nil {
		old.merge(&rec)
		return
	}
	r.recs[k] = &rec
}

// fold drops an outside peer's address once MaxOutside are kept.
func (r *Recorder) fold(p *Peer) {
	if p.Kind != KindOutside || r.outside[p.Addr] {
		return
	}
	if len(r.outside) >= MaxOutside {
		p.Addr = ""
		return
	}
	r.outside[p.Addr] = true
}

// Counts returns what the recorder has seen so far.
func (r *Recorder) Counts() Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.counts
	c.Flows = len(r.recs)
	return c
}

// Records returns the flows so far, sorted.
func (r *Recorder) Records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return sorted(r.recs)
}

// Take returns the flows so far, sorted, and starts over: the agent
// appends each period's flows to its file.
func (r *Recorder) Take() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := sorted(r.recs)
	r.recs = map[key]*Record{}
	return out
}

// Restore puts records back (a flush that could not write them).
func (r *Recorder) Restore(recs []Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range recs {
		if old := r.recs[rec.key()]; old != nil {
			old.merge(&rec)
			continue
		}
		r.recs[rec.key()] = &rec
	}
}

func sorted(m map[key]*Record) []Record {
	out := make([]Record, 0, len(m))
	for _, r := range m {
		out = append(out, *r)
	}
	Sort(out)
	return out
}

// Sort orders records by source, destination, protocol and port.
func Sort(recs []Record) {
	slices.SortFunc(recs, func(a, b Record) int {
		return cmp.Or(cmp.Compare(a.From.String(), b.From.String()), cmp.Compare(a.To.String(), b.To.String()),
			cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Via, b.Via))
	})
}

// Write appends recs to w as JSON lines.
func Write(w io.Writer, recs []Record) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for i := range recs {
		if err := enc.Encode(&recs[i]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// Read reads a flows file and merges its records (each run appends its
// own): one per flow, counts added, first and last widened. name is the
// file's name in errors.
func Read(name string, r io.Reader) ([]Record, error) {
	var recs []Record
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, fmt.Errorf("%s:%d: not a flow record (%v): is this a file 'zonewarden learn' wrote?", name, line, err)
		}
		if rec.Proto == "" || (rec.From.Kind == "" && rec.To.Kind == "") {
			return nil, fmt.Errorf("%s:%d: a flow record needs from, to and proto: is this a file 'zonewarden learn' wrote?", name, line)
		}
		recs = append(recs, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return Merge(recs), nil
}

// Merge folds records of the same flow into one (counts added, first and
// last widened), sorted.
func Merge(recs ...[]Record) []Record {
	m := map[key]*Record{}
	for _, l := range recs {
		for _, rec := range l {
			k := rec.key()
			if old := m[k]; old != nil {
				old.merge(&rec)
				continue
			}
			m[k] = &rec
		}
	}
	return sorted(m)
}

// merge adds o's connections to r.
func (r *Record) merge(o *Record) {
	r.Count += o.Count
	r.Answered += o.Answered
	r.First = minTime(r.First, o.First)
	r.Last = maxTime(r.Last, o.Last)
}

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
