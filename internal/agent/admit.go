package agent

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/zonewarden/zonewarden/internal/bridgeport"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/procwatch"
)

// kernelAdmitter admits a starting container from the kernel's records
// alone, before its first packet and without waiting for Docker, whose
// API under a storm of starts answers tens to hundreds of milliseconds
// after the container's process runs.
//
// Which container: every process the runtime starts for a container sits
// in the container's cgroup, named by its id, from before it runs any
// code of the container (procwatch). Where: the bridge ports whose peer
// is in that process's network namespace (bridgeport.InNetns). Which
// addresses: what Docker configured on the peer. runc's init process
// waits in the container's namespace, wired to its bridge, for tens of
// milliseconds or more before it execs the container's first program;
// on Docker 20.10 the veth arrives during that wait, on Docker 28 before
// the process, so both orders are followed (a process waits for its port,
// a new port looks for its process).
//
// An address read this way is a claim, not Docker's word: hostView takes
// it only for a container that is starting (its list says neither running
// nor paused), only while no endpoint from Docker is known for that
// container and network, and only when no other container holds the
// address (see readEndpoints). Docker's own reading replaces it as soon as
// it comes. The container's rights come from its id, which the container
// cannot choose: a starting container that forges its address gets its
// own rights on it, never another's.
type kernelAdmitter struct {
	reader *endpointReader
	log    *slog.Logger
	wake   func()

	procs   chan procwatch.Process
	changed chan int // the id of a namespace whose port or address changed

	// settled holds the containers the last reconcile found running per
	// Docker's list: their processes are not looked at.
	settled atomic.Pointer[map[string]bool]

	// The run goroutine's alone:
	cands     map[string]*candidate // by container id
	byNsid    map[int]string        // candidates' container ids by namespace id
	hostNetns uint64
	ports     *bridgeport.Reader
}

// candidate is a starting container seen in a process of its own.
type candidate struct {
	pid     int
	netns   uint64 // the namespace's inode
	nsid    int    // its id in the host's namespace
	emitted map[int]bool
	first   time.Time
}

// candidateLife is how long a starting container is followed: Docker's
// own view of it has come by then.
const candidateLife = 10 * time.Second

func newKernelAdmitter(r *endpointReader, log *slog.Logger, wake func()) *kernelAdmitter {
	k := &kernelAdmitter{reader: r, log: log, wake: wake,
		procs: make(chan procwatch.Process, 4096), changed: make(chan int, 4096), cands: map[string]*candidate{}, byNsid: map[int]string{}}
	k.settled.Store(&map[string]bool{})
	return k
}

// newPort tells the admitter that a bridge port whose peer is in the
// namespace with id nsid appeared or changed, or that an address was
// added in that namespace; it never blocks.
func (k *kernelAdmitter) newPort(nsid int) {
	select {
	case k.changed <- nsid:
	default:
	}
}

// run follows the kernel's process events until ctx is done. Without
// them (no proc connector) the agent admits on Docker's word alone.
func (k *kernelAdmitter) run(ctx context.Context) {
	w, err := procwatch.Open()
	if err == nil {
		k.ports, err = bridgeport.NewReader()
		if err != nil {
			w.Close()
		}
	}
	if err != nil {
		k.log.Warn("cannot follow the kernel's process events; new containers are admitted on Docker's word alone, which can come after their first packet", "error", err.Error())
		return
	}
	defer k.ports.Close()
	if st, err := os.Stat("/proc/self/ns/net"); err == nil {
		k.hostNetns = st.Sys().(*syscall.Stat_t).Ino
	}
	go func() {
		err := w.Run(ctx, func(p procwatch.Process) {
			select {
			case k.procs <- p:
			default: // behind: Docker's view admits it
			}
		}, func() {})
		if err != nil {
			k.log.Warn("stopped following the kernel's process events; new containers are admitted on Docker's word alone", "error", err.Error())
		}
	}()
	go func() {
		// Docker 28 gives the container's interface its address after
		// the port and the process appear: that is when to look again.
		if err := bridgeport.WatchAddrs(ctx, k.newPort); err != nil {
			k.log.Warn("cannot follow the addresses of containers' interfaces; some new containers are admitted on Docker's word alone", "error", err.Error())
		}
	}()
	prune := time.NewTicker(time.Second)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-k.procs:
			k.process(p)
		case nsid := <-k.changed:
			if id, ok := k.byNsid[nsid]; ok {
				k.resolve(id, k.cands[id])
			}
		case now := <-prune.C:
			settled := *k.settled.Load()
			for id, c := range k.cands {
				if now.Sub(c.first) > candidateLife || settled[id] {
					k.drop(id, c)
				}
			}
		}
	}
}

// process looks at a process started in a container that is not settled.
func (k *kernelAdmitter) process(p procwatch.Process) {
	if (*k.settled.Load())[p.Container] {
		return
	}
	st, err := os.Stat("/proc/" + strconv.Itoa(p.PID) + "/ns/net")
	if err != nil {
		return // gone
	}
	ino := st.Sys().(*syscall.Stat_t).Ino
	if ino == k.hostNetns {
		return // not in its own namespace yet (or --network host)
	}
	c := k.cands[p.Container]
	if c != nil && c.netns == ino {
		c.pid = p.PID // a live process of it
		return
	}
	if c != nil {
		k.drop(p.Container, c) // it moved on to a namespace of its own
	}
	c = &candidate{pid: p.PID, netns: ino, emitted: map[int]bool{}, first: time.Now()}
	f, ok := k.open(c)
	if !ok {
		return
	}
	// An id for its namespace now, which the veth Docker puts there later
	// is named by: its port and address events find it by that id.
	nsid, err := k.ports.Nsid(int(f.Fd()))
	f.Close()
	if err != nil {
		k.log.Debug("cannot name a starting container's network namespace", "container", p.Container, "error", err.Error())
		return
	}
	c.nsid = nsid
	k.cands[p.Container] = c
	k.byNsid[nsid] = p.Container
	k.resolve(p.Container, c)
}

// drop forgets a candidate.
func (k *kernelAdmitter) drop(id string, c *candidate) {
	delete(k.cands, id)
	if k.byNsid[c.nsid] == id {
		delete(k.byNsid, c.nsid)
	}
}

// open opens a candidate's namespace through its process, making sure
// the process is still in it (its pid not reused).
func (k *kernelAdmitter) open(c *candidate) (*os.File, bool) {
	f, err := os.Open("/proc/" + strconv.Itoa(c.pid) + "/ns/net")
	if err != nil {
		return nil, false
	}
	if st, err := f.Stat(); err != nil || st.Sys().(*syscall.Stat_t).Ino != c.netns {
		f.Close()
		return nil, false
	}
	return f, true
}

// resolve reads the ports of a candidate's namespace and hands the
// endpoints of those not handed yet to the reader.
func (k *kernelAdmitter) resolve(id string, c *candidate) {
	f, ok := k.open(c)
	if !ok {
		return
	}
	peers, err := k.ports.InNetns(int(f.Fd()))
	f.Close()
	if err != nil {
		k.log.Debug("cannot read a starting container's ports", "container", id, "error", err.Error())
		return
	}
	nets := *k.reader.bridges.Load()
	var eps []kernelEndpoint
	for _, p := range peers {
		n, known := nets[p.Bridge]
		if c.emitted[p.Index] || !known {
			continue // an unknown bridge is read again when the networks are (its port event marks them)
		}
		e, ok := endpointOf(n, p)
		if !ok {
			continue // no address yet: its address event comes
		}
		c.emitted[p.Index] = true
		eps = append(eps, kernelEndpoint{ContainerID: id, Endpoint: e, Port: p.Index})
	}
	if len(eps) > 0 {
		k.log.Debug("a starting container's ports, from the kernel", "container", id, "ports", len(eps), "since_process_ms", ms(time.Since(c.first)), "backlog", len(k.procs))
		k.reader.addKernel(eps)
		k.wake()
	}
}

// kernelEndpoint is an endpoint of a starting container read from the
// kernel.
type kernelEndpoint struct {
	ContainerID string
	Endpoint    inventory.Endpoint
	Port        int // the bridge port's ifindex
}

// endpointOf is the endpoint a port's peer shows on network n: its MAC,
// and per family the one address it holds inside n's subnets (Docker
// gives one). A family with none, or with two (the container added one),
// is left out; false when neither family is left.
func endpointOf(n inventory.Network, p bridgeport.Peer) (inventory.Endpoint, bool) {
	var v4, v6 []netip.Addr
	for _, a := range p.Addrs {
		for _, s := range n.Subnets {
			if s.Prefix.Contains(a.Addr()) && a.Addr() != s.Gateway && a.Addr() != s.Prefix.Masked().Addr() {
				if a.Addr().Is4() {
					v4 = append(v4, a.Addr())
				} else {
					v6 = append(v6, a.Addr())
				}
				break
			}
		}
	}
	e := inventory.Endpoint{Network: n.Name}
	if p.PeerMAC != nil {
		e.MAC = p.PeerMAC.String()
	}
	if len(v4) == 1 {
		e.IPv4 = v4[0]
	}
	if len(v6) == 1 {
		e.IPv6 = v6[0]
	}
	return e, e.IPv4.IsValid() || e.IPv6.IsValid()
}
