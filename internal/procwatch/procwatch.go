// Package procwatch reports the processes the kernel starts inside Docker
// containers, as they start, and names each one's container from the
// kernel's own records: the proc connector (CONFIG_PROC_EVENTS) announces
// every fork and exec on the host, and the new process's cgroup, which
// the runtime set before the process could run any code of the container,
// carries the container's id.
//
// The agent uses it to admit a starting container from the kernel alone
// (internal/agent): runc's init process of a container sits in the
// container's network namespace, already wired to its bridge, tens to
// hundreds of milliseconds before it execs the container's first program,
// which is well before Docker's API tells anything about the start on a
// busy daemon.
package procwatch

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Process is one process started in a container.
type Process struct {
	PID       int
	Container string // the container's full id
}

// The proc connector's protocol (linux/connector.h, linux/cn_proc.h).
const (
	cnIdxProc         = 1
	cnValProc         = 1
	procCnMcastListen = 1
	sizeofCnMsg       = 20
	procEventFork     = 0x1
	procEventExec     = 0x2
	// Where the event's data starts in a proc_event: what, cpu,
	// timestamp_ns.
	procEventData = 16
)

// Watcher is a subscription to the kernel's process events.
type Watcher struct {
	c *netlink.Conn
}

// Open subscribes to the process events of the host; the events of every
// process started after it returns reach Run. It needs CAP_NET_ADMIN
// (root on a Docker host).
func Open() (*Watcher, error) {
	c, err := netlink.Dial(unix.NETLINK_CONNECTOR, &netlink.Config{Groups: cnIdxProc})
	if err != nil {
		return nil, fmt.Errorf("process events: cannot open the proc connector: %w", err)
	}
	_ = c.SetReadBuffer(4 << 20)
	listen := make([]byte, sizeofCnMsg+4)
	binary.NativeEndian.PutUint32(listen[0:], cnIdxProc)
	binary.NativeEndian.PutUint32(listen[4:], cnValProc)
	binary.NativeEndian.PutUint16(listen[16:], 4)
	binary.NativeEndian.PutUint32(listen[sizeofCnMsg:], procCnMcastListen)
	if _, err := c.Send(netlink.Message{Header: netlink.Header{Type: netlink.Done}, Data: listen}); err != nil {
		c.Close()
		return nil, fmt.Errorf("process events: cannot subscribe: %w", err)
	}
	return &Watcher{c: c}, nil
}

// Close ends the subscription of a watcher that will not Run.
func (w *Watcher) Close() error { return w.c.Close() }

// Run calls found for every process forked or exec'd in a Docker
// container until ctx is done, then closes the subscription; threads are
// not processes and are left out. Events the kernel dropped because the
// caller fell behind (the socket's buffer overran) are lost: lost is
// called, and the caller falls back on Docker's view.
func (w *Watcher) Run(ctx context.Context, found func(Process), lost func()) error {
	defer w.c.Close()
	stop := context.AfterFunc(ctx, func() { w.c.Close() })
	defer stop()
	for {
		msgs, err := w.c.Receive()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, unix.ENOBUFS):
			lost()
			continue
		case err != nil:
			return fmt.Errorf("process events: %w", err)
		}
		for _, m := range msgs {
			pid := pidOf(m.Data)
			if pid <= 0 {
				continue
			}
			cg, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
			if err != nil {
				continue // gone already
			}
			if id := ContainerOf(cg); id != "" {
				found(Process{PID: pid, Container: id})
			}
		}
	}
}

// pidOf returns the process a proc connector message announces: the
// child of a fork that made a process (not a thread), or the process
// of an exec; 0 for anything else.
func pidOf(data []byte) int {
	if len(data) < sizeofCnMsg+procEventData+16 {
		return 0
	}
	ev := data[sizeofCnMsg:]
	body := ev[procEventData:]
	switch binary.NativeEndian.Uint32(ev[0:4]) {
	case procEventFork:
		// parent_pid, parent_tgid, child_pid, child_tgid
		pid, tgid := binary.NativeEndian.Uint32(body[8:12]), binary.NativeEndian.Uint32(body[12:16])
		if pid != tgid {
			return 0 // a thread
		}
		return int(pid)
	case procEventExec:
		return int(binary.NativeEndian.Uint32(body[4:8])) // process_tgid
	}
	return 0
}

// ContainerOf returns the id of the Docker container a /proc/PID/cgroup
// file places its process in, "" when none. Docker's cgroup drivers name
// the container's cgroup by its id: /docker/ID (cgroupfs),
// /system.slice/docker-ID.scope (systemd), or below a --cgroup-parent.
// The first path element that is a container id counts: a process can
// create cgroups only below its own, so a deeper one it made up cannot
// pass it off as another container. The unified hierarchy's line (0::)
// is preferred; on a v1-only host any hierarchy's line will do.
func ContainerOf(cgroup []byte) string {
	var fallback string
	for line := range bytes.SplitSeq(cgroup, []byte("\n")) {
		// hierarchy-ID:controllers:path
		parts := bytes.SplitN(line, []byte(":"), 3)
		if len(parts) != 3 {
			continue
		}
		id := idIn(parts[2])
		if string(parts[0]) == "0" && id != "" {
			return id
		}
		if fallback == "" {
			fallback = id
		}
	}
	return fallback
}

// idIn returns the first element of a cgroup path that names a
// container.
func idIn(path []byte) string {
	for el := range bytes.SplitSeq(path, []byte("/")) {
		el = bytes.TrimPrefix(el, []byte("docker-"))
		el = bytes.TrimSuffix(el, []byte(".scope"))
		if isID(el) {
			return string(el)
		}
	}
	return ""
}

// isID: 64 lowercase hex digits, as Docker's container ids.
func isID(b []byte) bool {
	if len(b) != 64 {
		return false
	}
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
