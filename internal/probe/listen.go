package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ListenConfig says where a [Listener] listens.
type ListenConfig struct {
	// Addrs are the addresses to bind, each with every port. Empty binds
	// the wildcard: every IPv4 and IPv6 address of the namespace.
	Addrs []netip.Addr
	// TCP and UDP are the port numbers to listen on.
	TCP, UDP []uint16
	// Banner identifies the listener: sent on every accepted TCP
	// connection (followed by "\n"), and in front of each UDP echo
	// (followed by " " and the datagram received). It may not contain
	// spaces or newlines. Empty sends "zonewarden".
	Banner string
	// FreeBind binds Addrs even where they are not (yet) usable, such as
	// an IPv6 address still in duplicate address detection
	// (IP_FREEBIND).
	FreeBind bool
	// OnAccept, when set, is called with the peer of each accepted TCP
	// connection and when it was accepted, from the serving goroutine.
	OnAccept func(peer netip.AddrPort, at time.Time)
}

// Listener serves TCP and UDP ports inside one network namespace from this
// process. Close it to stop.
type Listener struct {
	banner   []byte
	onAccept func(netip.AddrPort, time.Time)
	tcp      []net.Listener
	udp      []net.PacketConn
	wg       sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc
}

// tcpHold bounds how long an accepted connection is kept open waiting for
// the peer to close it after the banner.
const tcpHold = 2 * time.Second

// Listen opens the listeners of cfg inside ns and serves them until Close.
// Sockets are created inside ns, so the ports are those of ns whatever
// thread serves them. Binding one address of a family the namespace lacks
// fails; the wildcard falls back to IPv4 alone when the namespace has no
// IPv6.
func Listen(ns *Namespace, cfg ListenConfig) (*Listener, error) {
	banner := cfg.Banner
	if banner == "" {
		banner = "zonewarden"
	}
	if strings.ContainsAny(banner, " \n") {
		return nil, fmt.Errorf("listener banner %q: it may not contain spaces or newlines", banner)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Listener{banner: []byte(banner), onAccept: cfg.OnAccept, ctx: ctx, cancel: cancel}
	addrs := make([]string, 0, len(cfg.Addrs))
	for _, a := range cfg.Addrs {
		addrs = append(addrs, a.String())
	}
	if len(addrs) == 0 {
		addrs = []string{""}
	}
	err := ns.Do(func() error {
		var lc net.ListenConfig
		if cfg.FreeBind {
			lc.Control = freeBind
		}
		for _, a := range addrs {
			for _, p := range cfg.TCP {
				ln, err := listenTCP(&lc, a, p)
				if err != nil {
					return err
				}
				l.tcp = append(l.tcp, ln)
			}
			for _, p := range cfg.UDP {
				pc, err := listenUDP(&lc, a, p)
				if err != nil {
					return err
				}
				l.udp = append(l.udp, pc)
			}
		}
		return nil
	})
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("listening in network namespace %s: %w", ns, err)
	}
	for _, ln := range l.tcp {
		l.wg.Add(1)
		go l.serveTCP(ln)
	}
	for _, pc := range l.udp {
		l.wg.Add(1)
		go l.serveUDP(pc)
	}
	return l, nil
}

func freeBind(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_FREEBIND, 1) }); err != nil {
		return err
	}
	return serr
}

func listenTCP(lc *net.ListenConfig, addr string, port uint16) (net.Listener, error) {
	hp := net.JoinHostPort(addr, strconv.Itoa(int(port)))
	ln, err := lc.Listen(context.Background(), "tcp", hp)
	if err != nil && addr == "" {
		ln, err = lc.Listen(context.Background(), "tcp4", hp)
	}
	return ln, err
}

func listenUDP(lc *net.ListenConfig, addr string, port uint16) (net.PacketConn, error) {
	hp := net.JoinHostPort(addr, strconv.Itoa(int(port)))
	pc, err := lc.ListenPacket(context.Background(), "udp", hp)
	if err != nil && addr == "" {
		pc, err = lc.ListenPacket(context.Background(), "udp4", hp)
	}
	return pc, err
}

func (l *Listener) serveTCP(ln net.Listener) {
	defer l.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if l.ctx.Err() != nil {
				return
			}
			// EMFILE and the like: back off briefly rather than spin.
			select {
			case <-l.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if l.onAccept != nil {
			if a, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
				l.onAccept(netip.AddrPortFrom(a.Addr().Unmap(), a.Port()), time.Now())
			}
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer c.Close()
			stop := context.AfterFunc(l.ctx, func() { c.Close() })
			defer stop()
			_ = c.SetDeadline(time.Now().Add(tcpHold))
			if _, err := c.Write(append(l.banner[:len(l.banner):len(l.banner)], '\n')); err != nil {
				return
			}
			// Wait for the prober to close first: closing with unread data
			// would reset the connection and could discard the banner.
			var buf [256]byte
			for {
				if _, err := c.Read(buf[:]); err != nil {
					return
				}
			}
		}()
	}
}

func (l *Listener) serveUDP(pc net.PacketConn) {
	defer l.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if l.ctx.Err() != nil {
				return
			}
			continue // an ICMP error from an earlier reply, say
		}
		reply := make([]byte, 0, len(l.banner)+1+n)
		reply = append(reply, l.banner...)
		reply = append(reply, ' ')
		reply = append(reply, buf[:n]...)
		_, _ = pc.WriteTo(reply, from)
	}
}

// Addrs returns the addresses the listener is bound to, TCP then UDP.
func (l *Listener) Addrs() []net.Addr {
	var out []net.Addr
	for _, ln := range l.tcp {
		out = append(out, ln.Addr())
	}
	for _, pc := range l.udp {
		out = append(out, pc.LocalAddr())
	}
	return out
}

// Close stops the listener and waits for its goroutines.
func (l *Listener) Close() error {
	l.cancel()
	var errs []error
	for _, ln := range l.tcp {
		errs = append(errs, ln.Close())
	}
	for _, pc := range l.udp {
		errs = append(errs, pc.Close())
	}
	l.wg.Wait()
	return errors.Join(errs...)
}

// FromBanner returns what a TCP or UDP reply of a [Listener] says about
// who sent it (its Banner), and for UDP the echoed payload.
func FromBanner(reply []byte) (banner string, echo []byte) {
	if i := bytes.IndexByte(reply, '\n'); i >= 0 {
		return string(reply[:i]), nil
	}
	if i := bytes.IndexByte(reply, ' '); i >= 0 {
		return string(reply[:i]), reply[i+1:]
	}
	return string(reply), nil
}
