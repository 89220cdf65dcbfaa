package agent

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	nflog "github.com/florianl/go-nflog/v2"
	"golang.org/x/sys/unix"

	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/model"
)

// DeniedFlow is one connection attempt zonewarden's rules dropped, named.
type DeniedFlow struct {
	Time time.Time `json:"time"`
	// From and To name the container, "host", "outside" (beyond the
	// host), or give the address when nothing on the host has it.
	From string `json:"from"`
	To   string `json:"to"`
	// Port is "5432/tcp", "53/udp", or the protocol alone (icmp).
	Port string `json:"port"`
	// Zone is the zone whose rule dropped it: the destination's for
	// rules about the destination, else the source's.
	Zone string `json:"zone,omitempty"`
	// Rule is the drop rule's comment; RuleID its short name.
	Rule         string `json:"rule"`
	RuleID       string `json:"rule_id"`
	FromWorkload string `json:"from_workload,omitempty"`
	ToWorkload   string `json:"to_workload,omitempty"`
	// FromFenced and ToFenced mark a container that no workload selects
	// on a default: deny zone: denied every flow of the zones.
	FromFenced bool `json:"from_fenced,omitempty"`
	ToFenced   bool `json:"to_fenced,omitempty"`
	// As names, for a spoof (rule_id spoof, spoof-arp, spoof-nd), the
	// container whose address the frame claimed; From is then the
	// container behind the bridge port it came from, and Port is "arp"
	// or "nd" for ARP and neighbour advertisements.
	As  string `json:"as,omitempty"`
	Src string `json:"src"`
	Dst string `json:"dst"`
	// WouldDeny marks a flow a zone in monitor mode let through: Rule
	// would have dropped it in enforce mode.
	WouldDeny bool `json:"would_deny,omitempty"`
	// Repeated counts the same flow's packets since its previous line,
	// not written because of the rate limit.
	Repeated int `json:"repeated,omitempty"`
}

// flowLog names dropped packets, rate-limits their lines, keeps the
// latest and feeds /flows subscribers.
type flowLog struct {
	out     io.Writer
	metrics *metrics
	names   atomic.Pointer[namer]
	// wouldDeny counts the packets monitor mode let through.
	wouldDeny atomic.Int64

	mu      sync.Mutex
	rate    int       // lines per second
	window  time.Time // start of the current second
	written int       // lines written in it
	seen    map[string]*flowSeen
	recent  []DeniedFlow // ring, newest last
	subs    map[chan DeniedFlow]struct{}
}

type flowSeen struct {
	last       time.Time
	suppressed int
}

const recentFlows = 200

func newFlowLog(out io.Writer, rate int, m *metrics) *flowLog {
	f := &flowLog{out: out, rate: rate, metrics: m, seen: map[string]*flowSeen{}, subs: map[chan DeniedFlow]struct{}{}}
	f.names.Store(&namer{})
	return f
}

func (f *flowLog) setNames(n *namer) { f.names.Store(n) }

// readFlows listens on the drop rules' nflog group. Without it (another
// process holds the group, or no nfnetlink_log) the agent runs on: only
// the denied-flow log is missing, and says so.
func (a *Agent) readFlows(ctx context.Context) {
	nf, err := nflog.Open(&nflog.Config{Group: a.cfg.LogGroup, Copymode: nflog.CopyPacket, Bufsize: 128})
	if err != nil {
		a.log.Warn("no denied-flow log: cannot open nflog", "group", a.cfg.LogGroup, "error", err.Error())
		return
	}
	defer nf.Close()
	_ = nf.Con.SetReadBuffer(4 << 20)
	hook := func(attr nflog.Attribute) int {
		if attr.Prefix == nil || attr.Payload == nil {
			return 0
		}
		rule, would, ok := enforce.DropRuleOf(*attr.Prefix)
		if !ok {
			return 0
		}
		t := time.Now()
		if attr.Timestamp != nil {
			t = *attr.Timestamp
		}
		var port int
		if attr.InDev != nil {
			port = int(*attr.InDev) // in the bridge table: the bridge port
		}
		if fl, ok := a.flows.names.Load().name(*attr.Payload, port, rule, t); ok {
			fl.WouldDeny = would
			a.flows.add(fl)
		}
		return 0
	}
	onErr := func(err error) int {
		var op interface{ Timeout() bool }
		if errors.Is(err, unix.ENOBUFS) || errors.As(err, &op) && op.Timeout() {
			return 0 // a burst overflowed the socket: those packets are not logged
		}
		if ctx.Err() == nil {
			a.log.Warn("denied-flow log stopped", "error", err.Error())
		}
		return 1
	}
	if err := nf.RegisterWithErrorFunc(ctx, hook, onErr); err != nil {
		a.log.Warn("no denied-flow log: cannot listen on nflog", "group", a.cfg.LogGroup, "error", err.Error())
		return
	}
	a.status.set(func(s *Status) { s.FlowLog = true })
	<-ctx.Done()
}

// add counts a denied packet and writes its line unless the same flow
// had one in the last second or the lines of this second are used up.
func (f *flowLog) add(fl DeniedFlow) {
	counter := f.metrics.deniedPackets
	if fl.WouldDeny {
		counter = f.metrics.wouldDenyPackets
		f.wouldDeny.Add(1)
	}
	counter.WithLabelValues(orDash(fl.FromWorkload, fl.From), orDash(fl.ToWorkload, fl.To), fl.RuleID).Inc()
	key := fl.From + "\x00" + fl.To + "\x00" + fl.Port + "\x00" + fl.RuleID + "\x00" + strconv.FormatBool(fl.WouldDeny)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.seen) > 10_000 {
		clear(f.seen)
	}
	s := f.seen[key]
	if s == nil {
		s = &flowSeen{}
		f.seen[key] = s
	}
	if fl.Time.Sub(f.window) >= time.Second {
		f.window, f.written = fl.Time, 0
	}
	if fl.Time.Sub(s.last) < time.Second || f.written >= f.rate {
		s.suppressed++
		f.metrics.deniedSuppressed.Inc()
		return
	}
	fl.Repeated, s.suppressed, s.last = s.suppressed, 0, fl.Time
	f.written++
	f.metrics.deniedLogged.Inc()
	if f.out != nil {
		line, _ := json.Marshal(fl)
		_, _ = f.out.Write(append(line, '\n'))
	}
	if len(f.recent) == recentFlows {
		f.recent = f.recent[1:]
	}
	f.recent = append(f.recent, fl)
	for ch := range f.subs {
		select {
		case ch <- fl:
		default: // a slow reader misses lines rather than slowing the agent
		}
	}
}

// subscribe returns the recent lines and a channel of the next ones.
func (f *flowLog) subscribe() ([]DeniedFlow, chan DeniedFlow, func()) {
	ch := make(chan DeniedFlow, 256)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs[ch] = struct{}{}
	recent := append([]DeniedFlow(nil), f.recent...)
	return recent, ch, func() {
		f.mu.Lock()
		delete(f.subs, ch)
		f.mu.Unlock()
	}
}

// orDash returns the workload for a metric label, or what the endpoint
// is when no workload has it ("outside", "host", an address: folded to
// "unknown" to keep the label set small).
func orDash(workload, who string) string {
	switch {
	case workload != "":
		return workload
	case who == "outside" || who == "host":
		return who
	}
	if _, err := netip.ParseAddr(who); err == nil {
		return "unknown"
	}
	return "unmanaged"
}

// namer maps the addresses of the host to containers, workloads and zones,
// as of the last reconcile.
type namer struct {
	byAddr    map[netip.Addr]endpoint
	local     []netip.Prefix      // Docker networks' subnets
	hostAddrs map[netip.Addr]bool // gateways
	published map[string]endpoint // "tcp/8080" -> the container publishing it
	byPort    map[int]endpoint    // bridge port ifindex -> the container behind it
}

type endpoint struct {
	container, workload, zone string
	fenced                    bool // no workload selects it, on a default: deny zone
}

func newNamer(b *model.Binding) *namer {
	n := &namer{byAddr: map[netip.Addr]endpoint{}, hostAddrs: map[netip.Addr]bool{}, published: map[string]endpoint{}, byPort: map[int]endpoint{}}
	zones := map[string]bool{}
	for _, z := range b.Model.Policy().Zones {
		zones[z.Name] = true
	}
	for _, nw := range b.Snapshot.Networks {
		for _, s := range nw.Subnets {
			n.local = append(n.local, s.Prefix)
			if s.Gateway.IsValid() {
				n.hostAddrs[s.Gateway] = true
			}
		}
	}
	ix := inventory.NewIndex(b.Snapshot)
	for i := range b.Containers {
		m := &b.Containers[i]
		c := m.Container
		if !c.Running() {
			continue
		}
		wl := ""
		if m.Workload != nil {
			wl = m.Workload.Name
		}
		fenced := b.IsFenced(m)
		for _, e := range c.Endpoints {
			ep := endpoint{container: c.Name, workload: wl, fenced: fenced}
			if zones[e.Network] {
				ep.zone = e.Network
			}
			for _, a := range []netip.Addr{e.IPv4, e.IPv6} {
				if a.IsValid() {
					n.byAddr[a] = ep
				}
			}
			if e.BridgePort > 0 {
				n.byPort[e.BridgePort] = ep
			}
		}
		for _, pb := range ix.PublishedPorts(c) {
			n.published[pb.ContainerPort.Proto+"/"+strconv.Itoa(int(pb.HostPort))] = endpoint{container: c.Name, workload: wl}
		}
	}
	return n
}

// name reads the addresses and port of a logged packet (from its network
// header) and names its ends. inPort is the interface it came in on.
func (n *namer) name(pkt []byte, inPort int, rule enforce.DropRule, t time.Time) (DeniedFlow, bool) {
	if rule == enforce.DropSpoof || rule == enforce.DropSpoofARP || rule == enforce.DropSpoofND {
		return n.nameSpoof(pkt, inPort, rule, t)
	}
	src, dst, proto, port, ok := parsePacket(pkt)
	if !ok {
		return DeniedFlow{}, false
	}
	fl := DeniedFlow{Time: t.UTC(), Rule: rule.Comment, RuleID: rule.ID, Src: src.String(), Dst: dst.String(), Port: proto}
	if port != 0 {
		fl.Port = strconv.Itoa(int(port)) + "/" + proto
	}
	from, to := n.who(src), n.who(dst)
	if rule == enforce.DropPublished || rule == enforce.DropHost {
		to = endpoint{container: "host"}
		if pub, ok := n.published[proto+"/"+strconv.Itoa(int(port))]; ok && rule == enforce.DropPublished {
			to = pub
			to.container += " (published port)"
		}
	}
	fl.From, fl.FromWorkload, fl.FromFenced = from.container, from.workload, from.fenced
	fl.To, fl.ToWorkload, fl.ToFenced = to.container, to.workload, to.fenced
	switch rule {
	case enforce.DropUnadmittedDst, enforce.DropToZone, enforce.DropPublished:
		fl.Zone = n.who(dst).zone
	default:
		fl.Zone = from.zone
	}
	return fl, true
}

// nameSpoof names a frame the endpoint binding dropped: the container
// behind its bridge port, and the one whose address it claimed.
func (n *namer) nameSpoof(pkt []byte, inPort int, rule enforce.DropRule, t time.Time) (DeniedFlow, bool) {
	var claimed, dst netip.Addr
	proto := ""
	switch rule {
	case enforce.DropSpoofARP:
		// ARP for IPv4 over Ethernet: sender address at 14, target at 24.
		if len(pkt) < 28 {
			return DeniedFlow{}, false
		}
		claimed, _ = netip.AddrFromSlice(pkt[14:18])
		dst, _ = netip.AddrFromSlice(pkt[24:28])
		proto = "arp"
	case enforce.DropSpoofND:
		if len(pkt) < 40+24 {
			return DeniedFlow{}, false
		}
		claimed, _ = netip.AddrFromSlice(pkt[48:64]) // the advertisement's target
		dst, _ = netip.AddrFromSlice(pkt[24:40])
		proto = "nd"
	default:
		src, d, p, port, ok := parsePacket(pkt)
		if !ok {
			return DeniedFlow{}, false
		}
		claimed, dst, proto = src, d, p
		if port != 0 {
			proto = strconv.Itoa(int(port)) + "/" + p
		}
	}
	from, ok := n.byPort[inPort]
	if !ok {
		from = endpoint{container: fmt.Sprintf("bridge port %d", inPort)}
	}
	as, to := n.who(claimed), n.who(dst)
	return DeniedFlow{Time: t.UTC(), Rule: rule.Comment, RuleID: rule.ID, Src: claimed.String(), Dst: dst.String(), Port: proto,
		From: from.container, FromWorkload: from.workload, FromFenced: from.fenced, Zone: from.zone,
		To: to.container, ToWorkload: to.workload, ToFenced: to.fenced, As: as.container}, true
}

func (n *namer) who(a netip.Addr) endpoint {
	if ep, ok := n.byAddr[a]; ok {
		return ep
	}
	if n.hostAddrs[a] {
		return endpoint{container: "host"}
	}
	for _, p := range n.local {
		if p.Contains(a) {
			return endpoint{container: a.String()} // on a Docker network, no running container has it
		}
	}
	return endpoint{container: "outside"}
}

// parsePacket reads an IPv4 or IPv6 packet's addresses, protocol and
// destination port (0 for ICMP).
func parsePacket(p []byte) (src, dst netip.Addr, proto string, port uint16, ok bool) {
	if len(p) < 1 {
		return
	}
	var l4 []byte
	var next byte
	switch p[0] >> 4 {
	case 4:
		ihl := int(p[0]&0x0f) * 4
		if len(p) < 20 || ihl < 20 || len(p) < ihl {
			return
		}
		src, _ = netip.AddrFromSlice(p[12:16])
		dst, _ = netip.AddrFromSlice(p[16:20])
		next, l4 = p[9], p[ihl:]
	case 6:
		if len(p) < 40 {
			return
		}
		src, _ = netip.AddrFromSlice(p[8:24])
		dst, _ = netip.AddrFromSlice(p[24:40])
		next, l4 = p[6], p[40:]
	default:
		return
	}
	switch next {
	case unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_SCTP:
		proto = map[byte]string{unix.IPPROTO_TCP: "tcp", unix.IPPROTO_UDP: "udp", unix.IPPROTO_SCTP: "sctp"}[next]
		if len(l4) >= 4 {
			port = binary.BigEndian.Uint16(l4[2:4])
		}
	case unix.IPPROTO_ICMP:
		proto = "icmp"
	case unix.IPPROTO_ICMPV6:
		proto = "ipv6-icmp"
	default:
		proto = fmt.Sprintf("proto-%d", next)
	}
	return src, dst, proto, port, true
}
