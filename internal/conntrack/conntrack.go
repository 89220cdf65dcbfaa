// Package conntrack ends tracked connections that a tightened policy no
// longer allows, and reports the new ones (for learn). A firewall rule
// that matches only new connections leaves established ones alive:
// without Kill, an attacker's open session would outlive the rule that
// forbids it. It is the only package that talks netlink conntrack.
package conntrack

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"

	"github.com/zonewarden/zonewarden/internal/learn"
)

// Conn is one tracked connection as the policy sees it: the client, the
// destination after DNAT (the container behind a published port) and
// before (the address and port the client dialled).
type Conn struct {
	Src       netip.Addr
	Dst       netip.Addr // after DNAT: the reply's source
	Port      uint16     // after DNAT
	Dialled   netip.Addr // before DNAT
	DialledTo uint16
	Proto     string // tcp, udp, sctp, icmp, ipv6-icmp, or the number
}

var protoNames = map[uint8]string{1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp"}

// connOf reads a tracked connection.
func connOf(f *ct.Flow) Conn {
	o, r := f.TupleOrig, f.TupleReply
	proto, ok := protoNames[o.Proto.Protocol]
	if !ok {
		proto = fmt.Sprint(o.Proto.Protocol)
	}
	conn := Conn{Src: o.IP.SourceAddress.Unmap(), Dst: r.IP.SourceAddress.Unmap(), Port: r.Proto.SourcePort,
		Dialled: o.IP.DestinationAddress.Unmap(), DialledTo: o.Proto.DestinationPort, Proto: proto}
	if proto == "icmp" || proto == "ipv6-icmp" {
		conn.Port, conn.DialledTo = 0, 0
	}
	return conn
}

// Kill deletes every tracked connection for which forbidden returns true,
// and returns how many it deleted.
func Kill(forbidden func(Conn) bool) (int, error) {
	c, err := ct.Dial(nil)
	if err != nil {
		return 0, fmt.Errorf("conntrack: %w (needs CAP_NET_ADMIN)", err)
	}
	defer c.Close()
	flows, err := c.Dump(nil)
	if err != nil {
		return 0, fmt.Errorf("conntrack: listing connections: %w", err)
	}
	killed := 0
	for _, f := range flows {
		if !forbidden(connOf(&f)) {
			continue
		}
		if err := c.Delete(f); err != nil {
			continue // gone meanwhile
		}
		killed++
	}
	return killed, nil
}

// Event is a new connection the kernel tracks, or (Answered) one that
// got its answer: a TCP connection whose handshake completed, a UDP or
// other flow whose first reply came. A port scan's probes are new
// connections that are never answered; so are blind spoofs of TCP.
type Event struct {
	Conn
	Time     time.Time
	Answered bool
}

// Watcher reports the connections the kernel starts tracking, in the
// network namespace it was made in (the host's: with br_netfilter, the
// connections between containers on one bridge are tracked there too).
type Watcher struct {
	conn *netlink.Conn
	// events counts the new connections read; overflows the times the
	// kernel found the socket full and dropped events (ENOBUFS): each is
	// one or more connections not seen.
	events, overflows atomic.Int64
}

// conntrack's netlink multicast groups of new connections and of their
// updates (NFNLGRP_CONNTRACK_NEW, _UPDATE).
const (
	groupNew    = 1 << 0
	groupUpdate = 1 << 1
)

// tcpEstablished is conntrack's TCP state ESTABLISHED.
const tcpEstablished = 3

// Watch subscribes to new connections. The socket's buffer is raised to
// bufBytes (SO_RCVBUFFORCE, as root) so that bursts do not overflow it.
func Watch(bufBytes int) (*Watcher, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{Groups: groupNew | groupUpdate})
	if err != nil {
		return nil, fmt.Errorf("conntrack events: %w (needs CAP_NET_ADMIN and nf_conntrack_netlink)", err)
	}
	if raw, err := c.SyscallConn(); err == nil && bufBytes > 0 {
		_ = raw.Control(func(fd uintptr) {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, bufBytes) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, bufBytes)
			}
		})
	}
	return &Watcher{conn: c}, nil
}

// Run calls fn for each new connection until ctx ends or the socket
// fails. Overflows are counted (Stats) and reading goes on.
func (w *Watcher) Run(ctx context.Context, fn func(Event)) error {
	stop := context.AfterFunc(ctx, func() { _ = w.conn.Close() })
	defer stop()
	for {
		msgs, err := w.conn.Receive()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, unix.ENOBUFS) {
				w.overflows.Add(1)
				continue
			}
			return fmt.Errorf("conntrack events: %w", err)
		}
		now := time.Now()
		for _, m := range msgs {
			var ev ct.Event
			if ev.Unmarshal(m) != nil || ev.Flow == nil {
				continue
			}
			switch {
			case ev.Type == ct.EventNew:
				w.events.Add(1)
				fn(Event{Conn: connOf(ev.Flow), Time: now})
			case ev.Type == ct.EventUpdate && answered(ev.Flow):
				fn(Event{Conn: connOf(ev.Flow), Time: now, Answered: true})
			}
		}
	}
}

// answered tells the one update of a connection that says it got its
// answer: for TCP, the move to ESTABLISHED that makes it assured (its
// handshake completed); for the others, the first reply (seen-reply, not
// yet assured).
func answered(f *ct.Flow) bool {
	if f.TupleOrig.Proto.Protocol == unix.IPPROTO_TCP {
		return f.Status.Assured() && f.ProtoInfo.TCP != nil && f.ProtoInfo.TCP.State == tcpEstablished
	}
	return f.Status.SeenReply() && !f.Status.Assured()
}

// Record runs the watcher into rec until ctx ends.
func (w *Watcher) Record(ctx context.Context, rec *learn.Recorder) error {
	return w.Run(ctx, func(e Event) {
		rec.Observe(learn.Conn{Time: e.Time, Src: e.Src, Dialled: e.Dialled, DialledTo: e.DialledTo, Dst: e.Dst, Port: e.Port, Proto: e.Proto, Answered: e.Answered})
	})
}

// Stats returns the new connections read and the overflows.
func (w *Watcher) Stats() (events, overflows int64) { return w.events.Load(), w.overflows.Load() }

// Close ends the subscription.
func (w *Watcher) Close() error { return w.conn.Close() }
