package main

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zonewarden/zonewarden/internal/probe"
)

// The load generator and the server are event loops on non-blocking
// sockets (epoll), one per thread, so that the time per connection is the
// kernel's — TCP, forwarding, netfilter — and not the Go scheduler's, as
// it would be with one blocking thread per connection in flight.

// pollInterval bounds how long a loop waits for events before it looks at
// its stop flag and its timeouts.
const pollInterval = 100 * time.Millisecond

// server accepts connections inside the server namespace and closes them
// at once: accept4(2) and close(2), nothing else.
type server struct {
	fds  []int
	stop atomic.Bool
	wg   sync.WaitGroup
}

func startServer(t topology, threads int) (*server, error) {
	ns, err := probe.OpenPath(netnsPath(t.server))
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	s := &server{}
	// The listening sockets are made inside the namespace (probe's setns
	// on a locked thread); accepting on them works from any thread.
	err = ns.Do(func() error {
		for _, p := range []uint16{allowedPort, deniedPort} {
			fd, err := listen(netip.AddrPortFrom(serverAddr, p))
			if err != nil {
				return err
			}
			s.fds = append(s.fds, fd)
		}
		return nil
	})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("server listening in %s: %w", t.server, err)
	}
	for range threads {
		ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("epoll_create1: %w", err)
		}
		for _, fd := range s.fds {
			// EPOLLEXCLUSIVE: a new connection wakes one thread, not all.
			ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(fd)}
			if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
				unix.Close(ep)
				s.close()
				return nil, fmt.Errorf("epoll_ctl: %w", err)
			}
		}
		s.wg.Add(1)
		go s.serve(ep)
	}
	return s, nil
}

func (s *server) serve(ep int) {
	defer s.wg.Done()
	defer unix.Close(ep)
	events := make([]unix.EpollEvent, 8)
	for !s.stop.Load() {
		n, err := unix.EpollWait(ep, events, int(pollInterval.Milliseconds()))
		if err != nil {
			continue // EINTR
		}
		for _, e := range events[:n] {
			for {
				c, _, err := unix.Accept4(int(e.Fd), unix.SOCK_CLOEXEC)
				if err != nil {
					break // EAGAIN: the queue is empty (or ECONNABORTED, EMFILE: try later)
				}
				unix.Close(c)
			}
		}
	}
}

// listen opens a non-blocking listening TCP socket on the calling
// thread's namespace.
func listen(at netip.AddrPort) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: at.Addr().As4(), Port: int(at.Port())}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind %s: %w", at, err)
	}
	if err := unix.Listen(fd, 8192); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen %s: %w", at, err)
	}
	return fd, nil
}

func (s *server) close() {
	s.stop.Store(true)
	s.wg.Wait()
	for _, fd := range s.fds {
		unix.Close(fd)
	}
}

// counter is one worker's tally, on its own cache line.
type counter struct {
	n [numOutcomes]atomic.Int64
	_ [64 - 8*numOutcomes%64]byte
}

// load keeps connections in flight from the client namespace, on workers
// threads with inflight connections each, until closed. Each connection is
// a closed loop: open (from the next source address), wait until the
// server has accepted and closed it (EOF), abort it (SO_LINGER 0: an RST,
// no TIME_WAIT on either side), open the next. A connection that has not
// finished within connTimeout (a dropped SYN) counts as timed out.
type load struct {
	counters []counter
	stop     atomic.Bool
	wg       sync.WaitGroup
	lastErr  atomic.Value // errBox: the last failure, for the report
}

const connTimeout = time.Second

func startLoad(t topology, workers, inflight int) (*load, error) {
	l := &load{counters: make([]counter, workers)}
	for w := range workers {
		ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			l.close()
			return nil, fmt.Errorf("epoll_create1: %w", err)
		}
		l.wg.Add(1)
		// The sockets must be made inside the client namespace: the whole
		// loop runs on a thread that has entered it.
		err = inNamespace(netnsPath(t.client), func() {
			defer l.wg.Done()
			defer unix.Close(ep)
			l.work(ep, &l.counters[w], w, inflight)
		})
		if err != nil {
			unix.Close(ep)
			l.wg.Done()
			l.close()
			return nil, err
		}
	}
	return l, nil
}

func (l *load) work(ep int, c *counter, w, inflight int) {
	srcs := sources()
	to := netip.AddrPortFrom(serverAddr, allowedPort)
	started := map[int]time.Time{} // open connections by descriptor
	next := w
	finish := func(fd int, o outcome, err error) {
		unix.Close(fd) // also removes it from the epoll set
		delete(started, fd)
		c.n[o].Add(1)
		if o != connected {
			l.lastErr.Store(errBox{err})
		}
	}
	open := func() {
		src := srcs[next%len(srcs)]
		next++
		fd, err := openConn(src, to)
		if err == nil {
			ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
			if err = unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
				unix.Close(fd)
			}
		}
		if err != nil {
			c.n[failed].Add(1)
			l.lastErr.Store(errBox{err})
			time.Sleep(time.Millisecond) // out of ports or descriptors: do not spin
			return
		}
		started[fd] = time.Now()
	}
	defer func() {
		for fd := range started {
			unix.Close(fd)
		}
	}()
	events := make([]unix.EpollEvent, inflight)
	sweep := time.Now()
	for !l.stop.Load() {
		for len(started) < inflight && !l.stop.Load() {
			open()
		}
		n, err := unix.EpollWait(ep, events, int(pollInterval.Milliseconds()))
		if err != nil {
			continue // EINTR
		}
		for _, e := range events[:n] {
			fd := int(e.Fd)
			if _, ok := started[fd]; !ok {
				continue
			}
			// Readable: EOF once the server has closed, or the error
			// that ended the handshake.
			var buf [64]byte
			switch n, err := unix.Read(fd, buf[:]); {
			case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			case err == nil && n == 0:
				finish(fd, connected, nil)
			case err == nil:
				// The server sends nothing; wait for its FIN.
			case errors.Is(err, unix.ECONNREFUSED):
				finish(fd, refused, err)
			case errors.Is(err, unix.ETIMEDOUT):
				finish(fd, timedOut, err)
			default:
				finish(fd, failed, err)
			}
		}
		if now := time.Now(); now.Sub(sweep) >= pollInterval {
			sweep = now
			for fd, t := range started {
				if now.Sub(t) > connTimeout {
					finish(fd, timedOut, fmt.Errorf("no answer within %s", connTimeout))
				}
			}
		}
	}
}

// openConn starts a non-blocking connection from src to dst.
func openConn(src netip.Addr, dst netip.AddrPort) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := prepare(fd, src); err != nil {
		unix.Close(fd)
		return -1, err
	}
	err = unix.Connect(fd, &unix.SockaddrInet4{Addr: dst.Addr().As4(), Port: int(dst.Port())})
	if err != nil && !errors.Is(err, unix.EINPROGRESS) {
		unix.Close(fd)
		return -1, fmt.Errorf("connect %s -> %s: %w", src, dst, err)
	}
	return fd, nil
}

// prepare binds a client socket to src and makes its close an abort.
func prepare(fd int, src netip.Addr) error {
	// Pick the port at connect time, by the whole 4-tuple: every source
	// address gets the full ephemeral range.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1); err != nil {
		return fmt.Errorf("IP_BIND_ADDRESS_NO_PORT: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: src.As4()}); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	// close sends an RST: no TIME_WAIT on either side.
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
		return fmt.Errorf("SO_LINGER: %w", err)
	}
	return nil
}

// tally sums the workers' counters.
func (l *load) tally() [numOutcomes]int64 {
	var sum [numOutcomes]int64
	for i := range l.counters {
		for o := range sum {
			sum[o] += l.counters[i].n[o].Load()
		}
	}
	return sum
}

// errBox lets errors of any type share one atomic.Value.
type errBox struct{ err error }

// lastError returns the last failed attempt's error, or nil.
func (l *load) lastError() error {
	b, _ := l.lastErr.Load().(errBox)
	return b.err
}

func (l *load) close() {
	l.stop.Store(true)
	l.wg.Wait()
}
