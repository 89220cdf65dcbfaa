package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults of a zero [Prober].
const (
	// DefaultTimeout bounds one probe: a TCP connect, a UDP reply, and a
	// TCP banner when the prober reads one. A drop shows as filtered after
	// this long; an answered probe on one host takes well under 10 ms.
	DefaultTimeout = 400 * time.Millisecond
	// DefaultWorkers is how many probes run at once.
	DefaultWorkers = 128
)

// Status is the outcome of one probe.
type Status int

const (
	// Failed: the probe could not be made (no namespace, no socket, a
	// cancelled context); the Err of the [Result] says why. It says
	// nothing about the network.
	Failed Status = iota
	// Open: a TCP connection was established, or a UDP reply came back.
	Open
	// Refused: the target answered that nothing listens there (TCP RST,
	// ICMP port unreachable): reachable at the IP level.
	Refused
	// Filtered: no answer within the timeout (a drop), or a local rule
	// refused to send (EPERM). For UDP it also covers a service that
	// ignores the probe.
	Filtered
	// Unreachable: no route, or an ICMP host/network unreachable.
	Unreachable
	// Skipped: not probed, because the packet would leave this machine:
	// the source, or the host routing for it, would send it out of a link
	// whose far end is not on this host (a physical device, a vxlan, a
	// macvlan over one) or to a router zonewarden cannot follow. The Err
	// of the [Result] names the route. Nothing was sent.
	Skipped
)

func (s Status) String() string {
	switch s {
	case Open:
		return "open"
	case Refused:
		return "refused"
	case Filtered:
		return "filtered"
	case Unreachable:
		return "unreachable"
	case Skipped:
		return "skipped"
	default:
		return "error"
	}
}

// Protocols a [Target] can name.
const (
	TCP = "tcp"
	UDP = "udp"
	// ICMP is an echo request (ping), ICMPv6 for an IPv6 address; the
	// port is 0. Open means the echo reply came back.
	ICMP = "icmp"
)

// Target is one address, port and protocol to probe.
type Target struct {
	Proto string // TCP, UDP or ICMP
	// Addr is the address and port; the port is 0 for ICMP. With Name,
	// only the port counts: the address is the one the name resolves to.
	Addr netip.AddrPort
	// Name, when set, is resolved first through Docker's embedded DNS
	// server inside the source namespace ([Prober.Resolve]), and the
	// probe goes to the first address it returns (IPv4 first).
	Name string
}

// String renders the target as "10.0.0.2:5432/tcp", "[fd00::2]:53/udp",
// "10.0.0.2/icmp", or by name "db:5432/tcp" and "db/icmp".
func (t Target) String() string {
	host := t.Addr.Addr().String()
	if t.Name != "" {
		host = t.Name
	} else if t.Addr.Addr().Is6() && t.Proto != ICMP {
		host = "[" + host + "]"
	}
	if t.Proto == ICMP {
		return host + "/" + t.Proto
	}
	return host + ":" + strconv.Itoa(int(t.Addr.Port())) + "/" + t.Proto
}

// Job is one probe: from inside a namespace to a target.
type Job struct {
	From *Namespace
	To   Target
}

// Result is the outcome of one [Job].
type Result struct {
	Job
	Status Status
	// Reply is what came back: for TCP the first line the peer sent (when
	// the prober reads replies), for UDP the reply datagram. A [Listener]
	// replies with its banner; see [FromBanner].
	Reply []byte
	// Err is the error behind a status other than open.
	Err error
	// Elapsed is how long the probe took, name resolution included.
	Elapsed time.Duration
	// Resolved are the addresses the target's Name resolved to inside the
	// source namespace; the probe went to the first (To.Addr). Empty
	// when the target has no Name or it did not resolve (see Err).
	Resolved []netip.Addr
}

func (r Result) String() string {
	s := r.From.String() + " -> " + r.To.String()
	if r.To.Name != "" && len(r.Resolved) > 0 {
		s += " (" + r.To.Addr.Addr().String() + ")"
	}
	s += ": " + r.Status.String()
	if len(r.Reply) > 0 {
		s += " " + strconv.Quote(string(r.Reply))
	}
	if r.Err != nil && r.Status != Filtered {
		s += " (" + r.Err.Error() + ")"
	}
	return s
}

// Prober runs probes. The zero value is ready to use with the defaults;
// a Prober is safe for concurrent use.
type Prober struct {
	// Timeout bounds each probe; zero means DefaultTimeout.
	Timeout time.Duration
	// Workers bounds the probes in flight in Run; zero means DefaultWorkers.
	Workers int
	// ReadReply makes a TCP probe wait (up to Timeout) for the first line
	// the peer sends after the connection is established, and keep it in
	// Result.Reply. A peer that sends nothing is still open.
	ReadReply bool
	// Payload is the UDP datagram to send. Empty sends a unique token,
	// which a [Listener] echoes.
	Payload []byte
	// Host is the namespace that routes what a source sends to its
	// gateway (on a Docker host, the namespace of the bridges); nil means
	// the namespace this process started in. Probes go only where Host
	// and the source route to links that stay on this machine; the rest
	// are [Skipped].
	Host *Namespace
	// Overlay, when set and true for a destination, lets a probe to it
	// cross a VXLAN overlay (a bridge with a vxlan port, as in Docker's
	// overlay namespaces), which carries it to another node: the caller
	// vouches that the destination is a task of its own Swarm. Other
	// destinations never cross one.
	Overlay func(dst netip.Addr) bool
}

func (p *Prober) timeout() time.Duration {
	if p.Timeout > 0 {
		return p.Timeout
	}
	return DefaultTimeout
}

// Run runs every job, at most Workers at a time, and returns the results
// in the order of jobs. Where a packet to each (source, address) would go
// is looked up once per Run.
func (p *Prober) Run(ctx context.Context, jobs []Job) []Result {
	g := newGuard(p.Host)
	defer g.close()
	out := make([]Result, len(jobs))
	workers := p.Workers
	if workers <= 0 {
		workers = DefaultWorkers
	}
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for i, j := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i] = p.probe(ctx, g, j.From, j.To)
		}()
	}
	wg.Wait()
	return out
}

// Probe runs one probe from inside the namespace from (nil: the host's).
// A probe whose packet would leave this machine is not sent: [Skipped].
func (p *Prober) Probe(ctx context.Context, from *Namespace, to Target) Result {
	g := newGuard(p.Host)
	defer g.close()
	return p.probe(ctx, g, from, to)
}

func (p *Prober) probe(ctx context.Context, g *guard, from *Namespace, to Target) (r Result) {
	start := time.Now()
	r = Result{Job: Job{From: from, To: to}}
	if from == nil {
		r.From = host
	}
	defer func() { r.Elapsed = time.Since(start) }()
	if to.Proto != TCP && to.Proto != UDP && to.Proto != ICMP {
		r.Err = fmt.Errorf("probe target %s: protocol must be %s, %s or %s", to, TCP, UDP, ICMP)
		return r
	}
	if to.Name != "" {
		addrs, err := p.Resolve(ctx, r.From, to.Name)
		if err != nil {
			r.Err = err
			return r
		}
		r.Resolved = addrs
		r.To.Addr = netip.AddrPortFrom(addrs[0], to.Addr.Port())
	}
	switch {
	case !r.To.Addr.Addr().IsValid():
		r.Err = fmt.Errorf("probe target %s: want an address", to)
	case r.To.Proto != ICMP && r.To.Addr.Port() == 0:
		r.Err = fmt.Errorf("probe target %s: want a port", to)
	case !admit(ctx, g, &r, p.Overlay != nil && p.Overlay(r.To.Addr.Addr())):
	case r.To.Proto == ICMP:
		p.probeICMP(ctx, &r)
	case r.To.Proto == TCP:
		p.probeTCP(ctx, &r)
	default:
		p.probeUDP(ctx, &r)
	}
	return r
}

// admit asks g whether r's packet stays on this machine. When it does
// not, or the source has no route at all, it sets r's status and error
// and returns false: nothing is sent. overlay: see judge.
func admit(ctx context.Context, g *guard, r *Result, overlay bool) bool {
	dst := r.To.Addr.Addr()
	v, err := g.check(r.From, dst, overlay)
	switch {
	case err != nil:
		r.Err = fmt.Errorf("finding where a probe to %s would go: %w", dst, err)
	case v.refused != nil:
		r.Status, r.Err = classify(ctx, v.refused)
	case !v.send:
		r.Status = Skipped
		r.Err = fmt.Errorf("%s is not routed to this host's bridges or namespaces (%s): not probed, so no test packet leaves the machine", dst, v.why)
	default:
		return true
	}
	return false
}

func (p *Prober) probeTCP(ctx context.Context, r *Result) {
	timeout := p.timeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var conn net.Conn
	var dialErr error
	// The connect runs on the thread inside the namespace: the socket is
	// made there, and the thread waits at most the timeout.
	if err := r.From.Do(func() error {
		var d net.Dialer
		conn, dialErr = d.DialContext(ctx, "tcp", r.To.Addr.String())
		return nil
	}); err != nil {
		r.Err = err
		return
	}
	if dialErr != nil {
		r.Status, r.Err = classify(ctx, dialErr)
		return
	}
	defer conn.Close()
	r.Status = Open
	if !p.ReadReply {
		return
	}
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	var buf [512]byte
	n := 0
	for n < len(buf) {
		m, err := conn.Read(buf[n:])
		n += m
		if bytes.IndexByte(buf[:n], '\n') >= 0 || err != nil {
			break
		}
	}
	if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
		n = i
	}
	r.Reply = bytes.Clone(buf[:n])
}

// tokenSeq makes UDP probe tokens unique within the process.
var tokenSeq atomic.Uint64

func (p *Prober) probeUDP(ctx context.Context, r *Result) {
	timeout := p.timeout()
	network, wildcard := "udp4", "0.0.0.0:0"
	level, opt := unix.IPPROTO_IP, unix.IP_RECVERR
	if r.To.Addr.Addr().Is6() && !r.To.Addr.Addr().Is4In6() {
		network, wildcard = "udp6", "[::]:0"
		level, opt = unix.IPPROTO_IPV6, unix.IPV6_RECVERR
	}
	// An unconnected socket takes a reply from any source address (a
	// multi-homed peer or a proxy listening on a wildcard address may
	// answer from another one); RECVERR still reports ICMP errors on it.
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, 1) }); err != nil {
			return err
		}
		return serr
	}}
	var pc net.PacketConn
	var listenErr error
	if err := r.From.Do(func() error {
		pc, listenErr = lc.ListenPacket(ctx, network, wildcard)
		return nil
	}); err != nil {
		r.Err = err
		return
	}
	if listenErr != nil {
		r.Err = fmt.Errorf("udp socket in %s: %w", r.From, listenErr)
		return
	}
	defer pc.Close()

	payload := p.Payload
	token := []byte(nil)
	if len(payload) == 0 {
		token = []byte("zwprobe-" + strconv.FormatUint(tokenSeq.Add(1), 36) + "-" + strconv.Itoa(os.Getpid()))
		payload = token
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = pc.SetDeadline(deadline)
	dst := net.UDPAddrFromAddrPort(r.To.Addr)
	if _, err := pc.WriteTo(payload, dst); err != nil {
		r.Status, r.Err = classify(ctx, err)
		return
	}
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			r.Status, r.Err = classify(ctx, err)
			return
		}
		ua, _ := from.(*net.UDPAddr)
		fromTarget := ua != nil && ua.AddrPort().Addr().Unmap() == r.To.Addr.Addr().Unmap() && ua.AddrPort().Port() == r.To.Addr.Port()
		if fromTarget || token != nil && bytes.Contains(buf[:n], token) {
			r.Status, r.Reply = Open, bytes.Clone(buf[:n])
			return
		}
		// A stray datagram: keep waiting until the deadline.
	}
}

// classify maps a socket error to a status.
func classify(ctx context.Context, err error) (Status, error) {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return Refused, err
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EADDRNOTAVAIL):
		return Unreachable, err
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return Filtered, err
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return Failed, ctx.Err()
		}
		return Filtered, err
	case ctx.Err() != nil:
		return Failed, ctx.Err()
	}
	return Failed, err
}
