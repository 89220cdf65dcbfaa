package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// outcome classifies one connection attempt.
type outcome int

const (
	connected outcome = iota
	refused           // RST: nothing listens
	timedOut          // no answer: dropped
	failed            // anything else (no port, no route, ...)
	numOutcomes
)

func (o outcome) String() string {
	return [...]string{"connected", "refused", "timed out", "failed"}[o]
}

// dial opens one TCP connection from src to dst on a blocking socket of
// the calling thread's namespace, waits (at most timeout each) for the
// handshake and for the server to close, then aborts it. The checks use
// it; the load uses the same steps on non-blocking sockets.
func dial(src netip.Addr, dst netip.AddrPort, timeout time.Duration) (outcome, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return failed, fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	if err := prepare(fd, src); err != nil {
		return failed, err
	}
	// A blocking connect gives up after SO_SNDTIMEO.
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return failed, fmt.Errorf("SO_SNDTIMEO: %w", err)
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return failed, fmt.Errorf("SO_RCVTIMEO: %w", err)
	}
	err = unix.Connect(fd, &unix.SockaddrInet4{Addr: dst.Addr().As4(), Port: int(dst.Port())})
	if errors.Is(err, unix.EINTR) {
		// A signal (Go's preemption) interrupted the wait; the handshake
		// goes on. Wait for it, then read its result.
		err = waitConnect(fd, timeout)
	}
	if err == nil {
		err = waitEOF(fd)
	}
	switch {
	case err == nil:
		return connected, nil
	case errors.Is(err, unix.ECONNREFUSED):
		return refused, err
	case errors.Is(err, unix.EINPROGRESS), errors.Is(err, unix.ETIMEDOUT), errors.Is(err, unix.EAGAIN):
		return timedOut, err
	default:
		return failed, err
	}
}

// waitEOF reads until the peer closes (or SO_RCVTIMEO).
func waitEOF(fd int) error {
	var buf [64]byte
	for {
		n, err := unix.Read(fd, buf[:])
		switch {
		case errors.Is(err, unix.EINTR):
		case err != nil:
			return fmt.Errorf("waiting for the server to close: %w", err)
		case n == 0:
			return nil
		}
	}
}

func waitConnect(fd int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return unix.ETIMEDOUT
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(pfd, int(left.Milliseconds())+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return unix.ETIMEDOUT
		}
		soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return err
		}
		if soErr != 0 {
			return unix.Errno(soErr)
		}
		return nil
	}
}

// inNamespace runs fn on a thread inside the namespace bound at path. The
// thread is never switched back: it stays locked and the runtime discards
// it when fn returns. So fn may block as long as it likes.
func inNamespace(path string, fn func()) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening network namespace: %w", err)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		if err != nil {
			errc <- fmt.Errorf("entering network namespace %s: %w", path, err)
			return
		}
		errc <- nil
		fn()
	}()
	return <-errc
}

// check is one connection that must succeed or be dropped.
type check struct {
	src  netip.Addr
	port uint16
	want outcome
}

// checks are the connections that show the ruleset is in place and lets
// the benchmark's flow through.
func checks(c config) []check {
	out := []check{{src: sources()[0], port: allowedPort, want: connected}}
	denied := connected
	if c.filters {
		denied = timedOut
	}
	return append(out,
		check{src: sources()[len(sources())-1], port: allowedPort, want: connected},
		check{src: sources()[0], port: deniedPort, want: denied},
		check{src: clientPrimary, port: allowedPort, want: denied},
	)
}

// runChecks dials each check from the client namespace.
func runChecks(t topology, c config) error {
	var errs []error
	done := make(chan struct{})
	err := inNamespace(netnsPath(t.client), func() {
		defer close(done)
		for _, ch := range checks(c) {
			to := netip.AddrPortFrom(serverAddr, ch.port)
			got, err := dial(ch.src, to, 300*time.Millisecond)
			if got != ch.want {
				errs = append(errs, fmt.Errorf("check %s -> %s under %s: %s (%v), want %s", ch.src, to, c.name, got, err, ch.want))
			}
		}
	})
	if err != nil {
		return err
	}
	<-done
	return errors.Join(errs...)
}
