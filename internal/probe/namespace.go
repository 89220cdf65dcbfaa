// Package probe sends and answers test packets from inside Linux network
// namespaces: a container's (by the PID of one of its processes), one made
// with `ip netns add` (by its path), or the host's own.
//
// A socket belongs to the namespace of the thread that created it and stays
// there. So probe creates each socket on a goroutine locked to its OS
// thread, after setns(2) into the target namespace, and switches the thread
// back before releasing it; the socket is then used from ordinary
// goroutines. This needs CAP_SYS_ADMIN (root) but no tool inside the
// container: it works for distroless and FROM scratch images alike.
//
//   - [Listen] opens TCP and UDP listeners inside a namespace and serves
//     them from this process: TCP sends a banner on accept, UDP echoes each
//     datagram behind the banner.
//   - [Prober] probes many (namespace, address, port) targets concurrently,
//     with short timeouts, and classifies each as open, refused, filtered,
//     unreachable or error ([Status]).
//
// No probe leaves the machine. Before it makes a socket, the prober asks
// the source namespace's routing table where the packet would go (over
// rtnetlink, as `ip route get` does) and follows it through the host: a
// probe is sent only to the namespace's own addresses, out of veths and
// bridges whose far ends are on this host, or via the host's own address
// to one of those. Anything the host would route out of a physical device,
// a vxlan, a macvlan over one, or to another router is [Skipped], with the
// route in its error (guard.go has the rules).
//
// The package is an adapter: it touches the kernel (setns, sockets,
// rtnetlink) and nothing else. It never talks to Docker; callers find the
// PIDs.
package probe

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// Namespace is a handle on a network namespace, kept open so that the
// namespace stays valid while the handle lives (even if the container
// stops). The nil *Namespace, and [Host], is the namespace this process
// started in.
type Namespace struct {
	name string
	f    *os.File // nil: the host's (this process's) namespace
}

// host is the namespace the process started in.
var host = &Namespace{name: "host"}

// Host returns the namespace this process started in: on a Docker host, the
// one host-network containers share. Close does nothing on it.
func Host() *Namespace { return host }

// OpenPID opens the network namespace of the process pid
// (/proc/PID/ns/net), such as a container's init process.
func OpenPID(pid int) (*Namespace, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("network namespace of pid %d: not a process (is the container running?)", pid)
	}
	return openPath("/proc/"+strconv.Itoa(pid)+"/ns/net", "pid "+strconv.Itoa(pid))
}

// OpenPath opens the network namespace bound at path, such as
// /run/netns/NAME made by `ip netns add NAME`.
func OpenPath(path string) (*Namespace, error) {
	return openPath(path, path)
}

func openPath(path, name string) (*Namespace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening network namespace %s: %w", name, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("network namespace %s: %w", name, err)
	}
	if st.Type != unix.NSFS_MAGIC && st.Type != unix.PROC_SUPER_MAGIC {
		f.Close()
		return nil, fmt.Errorf("network namespace %s: %s is not a namespace file", name, path)
	}
	return &Namespace{name: name, f: f}, nil
}

// String names the namespace: "host", "pid 1234" or its path.
func (ns *Namespace) String() string {
	if ns == nil {
		return host.name
	}
	return ns.name
}

// IsHost reports whether ns is the namespace this process started in,
// by handle (see [Namespace.Inode] for a comparison by identity).
func (ns *Namespace) IsHost() bool { return ns == nil || ns.f == nil }

// Inode identifies the namespace: two handles with the same inode are the
// same namespace (a host-network container's PID opens the host's).
func (ns *Namespace) Inode() (uint64, error) {
	var st unix.Stat_t
	var err error
	if ns.IsHost() {
		err = unix.Stat(threadNetns, &st)
	} else {
		err = unix.Fstat(int(ns.f.Fd()), &st)
	}
	if err != nil {
		return 0, fmt.Errorf("network namespace %s: %w", ns, err)
	}
	return st.Ino, nil
}

// Close releases the handle. Sockets made in the namespace are not closed.
func (ns *Namespace) Close() error {
	if ns.IsHost() {
		return nil
	}
	return ns.f.Close()
}

// ErrThreadLost is returned (wrapped) by [Namespace.Do] when the thread
// could not be switched back to the host namespace after fn ran. fn's work
// is done; the thread is discarded, so the process is unharmed.
var ErrThreadLost = errors.New("could not return the thread to the host network namespace")

// threadNetns is the calling thread's namespace. Called from a goroutine
// that is not locked to its thread, it is the host's: a thread is in
// another namespace only while a locked goroutine (in Do) owns it. Not
// /proc/self: that is the main thread's, which Do may be using.
const threadNetns = "/proc/thread-self/ns/net"

// hostFD is an open handle on the host namespace, to switch threads back
// to.
var hostFD = sync.OnceValues(func() (*os.File, error) {
	return os.Open(threadNetns)
})

// Do runs fn on an OS thread that is inside ns, and returns fn's error.
// Sockets fn creates belong to ns for their whole life and may be used
// from any goroutine afterwards. fn must not start goroutines that expect
// to be in ns, and must not block for long: it holds an OS thread.
//
// On the host namespace Do simply calls fn.
func (ns *Namespace) Do(fn func() error) error {
	if ns.IsHost() {
		return fn()
	}
	back, err := hostFD()
	if err != nil {
		return fmt.Errorf("opening the host network namespace: %w", err)
	}
	errc := make(chan error, 1)
	go func() {
		// The goroutine stays locked unless the thread is back in the host
		// namespace: when it exits locked, the runtime discards the thread.
		runtime.LockOSThread()
		if err := unix.Setns(int(ns.f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering network namespace %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(back.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("%w: %w", ErrThreadLost, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
