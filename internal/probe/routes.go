package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// guard judges the destinations of one [Prober.Run] (or one Probe): each
// (source namespace, address) once, however many probes go there. See
// guard.go for the rules.
type guard struct {
	view    *netlinkView
	hostErr error // the host namespace could not be identified: nothing is judged

	mu       sync.Mutex
	inodes   map[*Namespace]uint64
	verdicts map[verdictKey]*lazy[verdict]
}

type verdictKey struct {
	src uint64 // the source namespace's inode
	dst netip.Addr
}

// newGuard makes a guard for which hostNS (nil: the namespace this
// process started in) routes what sources send to their gateways.
func newGuard(hostNS *Namespace) *guard {
	if hostNS == nil {
		hostNS = host
	}
	g := &guard{
		view: &netlinkView{
			hostNS:  hostNS,
			handles: map[uint64]*Namespace{},
			conns:   map[uint64]*lazy[*netlink.Conn]{},
			linkm:   map[nsRef]*lazy[map[int]link]{},
			addrm:   map[nsRef]*lazy[[]ifAddr]{},
			hostIDs: map[uint64]*lazy[int32]{},
		},
		inodes:   map[*Namespace]uint64{},
		verdicts: map[verdictKey]*lazy[verdict]{},
	}
	ino, err := hostNS.Inode()
	if err != nil {
		g.hostErr = fmt.Errorf("identifying the host namespace %s: %w", hostNS, err)
		return g
	}
	g.view.host = nsRef{ino, sameNS}
	g.view.handles[ino] = hostNS
	return g
}

// check judges a probe from namespace from to dst; overlay: see judge.
func (g *guard) check(from *Namespace, dst netip.Addr, overlay bool) (verdict, error) {
	if g.hostErr != nil {
		return verdict{}, g.hostErr
	}
	g.mu.Lock()
	ino, ok := g.inodes[from]
	g.mu.Unlock()
	if !ok {
		var err error
		if ino, err = from.Inode(); err != nil {
			return verdict{}, err
		}
		g.mu.Lock()
		g.inodes[from] = ino
		g.mu.Unlock()
	}
	g.view.register(ino, from)
	return cached(&g.mu, g.verdicts, verdictKey{ino, dst}, func() (verdict, error) {
		return judge(g.view, nsRef{ino, sameNS}, g.view.host, dst, overlay)
	})
}

// close releases the guard's netlink sockets.
func (g *guard) close() {
	g.view.close()
}

// lazy is a value computed once, by whichever goroutine asks first.
type lazy[V any] struct {
	once sync.Once
	v    V
	err  error
}

// cached returns m[k]'s value, computing it with f the first time;
// goroutines asking for the same k meanwhile wait for that one f.
func cached[K comparable, V any](mu *sync.Mutex, m map[K]*lazy[V], k K, f func() (V, error)) (V, error) {
	mu.Lock()
	e := m[k]
	if e == nil {
		e = &lazy[V]{}
		m[k] = e
	}
	mu.Unlock()
	e.once.Do(func() { e.v, e.err = f() })
	return e.v, e.err
}

// netlinkView is the guard's kernelView, read over rtnetlink: one socket
// per namespace it holds a handle on, made inside that namespace.
// Namespaces it has no handle on (a veth peer's) are read through the
// socket of the namespace that names them, by id (IFLA_TARGET_NETNSID,
// Linux 4.20). Links, addresses and namespace ids are read once per view.
type netlinkView struct {
	host   nsRef
	hostNS *Namespace

	mu      sync.Mutex
	handles map[uint64]*Namespace
	conns   map[uint64]*lazy[*netlink.Conn]
	linkm   map[nsRef]*lazy[map[int]link]
	addrm   map[nsRef]*lazy[[]ifAddr]
	hostIDs map[uint64]*lazy[int32] // per namespace: the host's id in it

	// Round trips made, for the tests.
	routeLookups, dumps atomic.Int64
}

func (v *netlinkView) register(ino uint64, ns *Namespace) {
	v.mu.Lock()
	if v.handles[ino] == nil {
		v.handles[ino] = ns
	}
	v.mu.Unlock()
}

// close closes the sockets. Nothing may use v any more.
func (v *netlinkView) close() {
	v.mu.Lock()
	conns := v.conns
	v.conns = map[uint64]*lazy[*netlink.Conn]{}
	v.mu.Unlock()
	for _, c := range conns {
		c.once.Do(func() {}) // waits for a dial in flight
		if c.v != nil {
			c.v.Close()
		}
	}
}

func (v *netlinkView) name(ns nsRef) string {
	v.mu.Lock()
	h := v.handles[ns.inode]
	v.mu.Unlock()
	if ns.nsid == sameNS {
		return h.String()
	}
	return "namespace id " + strconv.Itoa(int(ns.nsid)) + " of " + h.String()
}

// conn returns the rtnetlink socket of the namespace with inode ino.
func (v *netlinkView) conn(ino uint64) (*netlink.Conn, error) {
	return cached(&v.mu, v.conns, ino, func() (*netlink.Conn, error) {
		v.mu.Lock()
		ns := v.handles[ino]
		v.mu.Unlock()
		if ns == nil {
			return nil, fmt.Errorf("network namespace with inode %d: no handle on it", ino)
		}
		var c *netlink.Conn
		var dialErr error
		if err := ns.Do(func() error {
			c, dialErr = netlink.Dial(unix.NETLINK_ROUTE, nil)
			return nil
		}); err != nil {
			return nil, err
		}
		if dialErr != nil {
			return nil, fmt.Errorf("opening rtnetlink in %s: %w", ns, dialErr)
		}
		return c, nil
	})
}

// kernelErrno returns the error number of a netlink answer (as opposed
// to an error of the socket).
func kernelErrno(err error) (unix.Errno, bool) {
	var oe *netlink.OpError
	if !errors.As(err, &oe) {
		return 0, false
	}
	e, ok := oe.Err.(unix.Errno)
	return e, ok
}

func (v *netlinkView) route(ns nsRef, q routeQuery) (route, error) {
	if ns.nsid != sameNS {
		return route{}, fmt.Errorf("route lookup in %s: no handle on it", v.name(ns))
	}
	c, err := v.conn(ns.inode)
	if err != nil {
		return route{}, err
	}
	v.routeLookups.Add(1)
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETROUTE, Flags: netlink.Request},
		Data:   routeRequest(q),
	})
	if errno, ok := kernelErrno(err); ok {
		return route{refused: errno}, nil
	}
	if err != nil {
		return route{}, fmt.Errorf("looking up the route to %s in %s: %w", q.dst, v.name(ns), err)
	}
	for _, m := range msgs {
		if m.Header.Type == unix.RTM_NEWROUTE {
			return parseRoute(m.Data)
		}
	}
	return route{}, fmt.Errorf("looking up the route to %s in %s: no answer", q.dst, v.name(ns))
}

func (v *netlinkView) links(ns nsRef) (map[int]link, error) {
	return cached(&v.mu, v.linkm, ns, func() (map[int]link, error) {
		c, err := v.conn(ns.inode)
		if err != nil {
			return nil, err
		}
		req := make([]byte, unix.SizeofIfInfomsg)
		if ns.nsid != sameNS {
			ae := netlink.NewAttributeEncoder()
			ae.Int32(unix.IFLA_TARGET_NETNSID, ns.nsid)
			b, _ := ae.Encode()
			req = append(req, b...)
		}
		v.dumps.Add(1)
		msgs, err := c.Execute(netlink.Message{
			Header: netlink.Header{Type: unix.RTM_GETLINK, Flags: netlink.Request | netlink.Dump},
			Data:   req,
		})
		if err != nil {
			return nil, fmt.Errorf("listing the links of %s: %w", v.name(ns), err)
		}
		out := make(map[int]link, len(msgs))
		for _, m := range msgs {
			if m.Header.Type != unix.RTM_NEWLINK {
				continue
			}
			l, err := parseLink(m.Data)
			if err != nil {
				return nil, fmt.Errorf("listing the links of %s: %w", v.name(ns), err)
			}
			out[l.index] = l
		}
		return out, nil
	})
}

func (v *netlinkView) addrs(ns nsRef) ([]ifAddr, error) {
	return cached(&v.mu, v.addrm, ns, func() ([]ifAddr, error) {
		if ns.nsid != sameNS {
			return nil, fmt.Errorf("addresses of %s: no handle on it", v.name(ns))
		}
		c, err := v.conn(ns.inode)
		if err != nil {
			return nil, err
		}
		v.dumps.Add(1)
		msgs, err := c.Execute(netlink.Message{
			Header: netlink.Header{Type: unix.RTM_GETADDR, Flags: netlink.Request | netlink.Dump},
			Data:   make([]byte, unix.SizeofIfAddrmsg),
		})
		if err != nil {
			return nil, fmt.Errorf("listing the addresses of %s: %w", v.name(ns), err)
		}
		var out []ifAddr
		for _, m := range msgs {
			if m.Header.Type != unix.RTM_NEWADDR {
				continue
			}
			a, err := parseAddr(m.Data)
			if err != nil {
				return nil, fmt.Errorf("listing the addresses of %s: %w", v.name(ns), err)
			}
			if a.addr.IsValid() {
				out = append(out, a)
			}
		}
		return out, nil
	})
}

func (v *netlinkView) resolve(ns nsRef, nsid int32) (nsRef, error) {
	if nsid == sameNS {
		return ns, nil
	}
	// The ids of a namespace read through another one (ns.nsid set) are
	// that other one's, as the kernel reports them to its socket.
	id, err := v.hostID(ns.inode)
	if err != nil {
		return nsRef{}, err
	}
	if id >= 0 && id == nsid {
		return v.host, nil
	}
	return nsRef{ns.inode, nsid}, nil
}

// hostID returns the id the namespace with inode ino gives the host
// namespace, or -1 when it gives it none (then none of its links leads
// there).
func (v *netlinkView) hostID(ino uint64) (int32, error) {
	return cached(&v.mu, v.hostIDs, ino, func() (int32, error) {
		if ino == v.host.inode {
			return -1, nil // the host's own links name other namespaces
		}
		c, err := v.conn(ino)
		if err != nil {
			return 0, err
		}
		f := v.hostNS.f
		if v.hostNS.IsHost() {
			if f, err = hostFD(); err != nil {
				return 0, fmt.Errorf("opening the host network namespace: %w", err)
			}
		}
		ae := netlink.NewAttributeEncoder()
		ae.Uint32(unix.NETNSA_FD, uint32(f.Fd()))
		b, _ := ae.Encode()
		msgs, err := c.Execute(netlink.Message{
			Header: netlink.Header{Type: unix.RTM_GETNSID, Flags: netlink.Request},
			Data:   append([]byte{unix.AF_UNSPEC, 0, 0, 0}, b...), // struct rtgenmsg, padded
		})
		runtime.KeepAlive(f)
		if err != nil {
			return 0, fmt.Errorf("the id of %s in %s: %w", v.hostNS, v.name(nsRef{ino, sameNS}), err)
		}
		for _, m := range msgs {
			if m.Header.Type != unix.RTM_NEWNSID || len(m.Data) < 4 {
				continue
			}
			ad, err := netlink.NewAttributeDecoder(m.Data[4:])
			if err != nil {
				return 0, err
			}
			id := int32(-1)
			for ad.Next() {
				if ad.Type() == unix.NETNSA_NSID {
					id = ad.Int32()
				}
			}
			return id, ad.Err()
		}
		return -1, nil
	})
}

// routeRequest is the body of an RTM_GETROUTE request for q.
func routeRequest(q routeQuery) []byte {
	dst := q.dst.Unmap()
	family, bits := byte(unix.AF_INET), byte(32)
	if dst.Is6() {
		family, bits = unix.AF_INET6, 128
	}
	rtm := make([]byte, unix.SizeofRtMsg)
	rtm[0], rtm[1] = family, bits
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(unix.RTA_DST, dst.AsSlice())
	if src := q.src.Unmap(); src.IsValid() && src.Is6() == dst.Is6() {
		rtm[2] = bits
		ae.Bytes(unix.RTA_SRC, src.AsSlice())
	}
	if q.iif != 0 {
		ae.Uint32(unix.RTA_IIF, uint32(q.iif))
	}
	if q.oif != 0 {
		ae.Uint32(unix.RTA_OIF, uint32(q.oif))
	}
	b, _ := ae.Encode()
	return append(rtm, b...)
}

// parseRoute reads an RTM_NEWROUTE message's body.
func parseRoute(b []byte) (route, error) {
	if len(b) < unix.SizeofRtMsg {
		return route{}, errors.New("short rtmsg")
	}
	rt := route{typ: b[7]}
	ad, err := netlink.NewAttributeDecoder(b[unix.SizeofRtMsg:])
	if err != nil {
		return route{}, err
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.RTA_OIF:
			rt.oif = int(ad.Uint32())
		case unix.RTA_GATEWAY:
			rt.gw, _ = netip.AddrFromSlice(ad.Bytes())
		case unix.RTA_VIA: // struct rtvia: family (u16), address
			if v := ad.Bytes(); len(v) > 2 {
				rt.gw, _ = netip.AddrFromSlice(v[2:])
			}
		case unix.RTA_PREFSRC:
			rt.prefsrc, _ = netip.AddrFromSlice(ad.Bytes())
		}
	}
	rt.gw, rt.prefsrc = rt.gw.Unmap(), rt.prefsrc.Unmap()
	return rt, ad.Err()
}

// parseLink reads an RTM_NEWLINK message's body.
func parseLink(b []byte) (link, error) {
	if len(b) < unix.SizeofIfInfomsg {
		return link{}, errors.New("short ifinfomsg")
	}
	l := link{
		index:    int(int32(binary.NativeEndian.Uint32(b[4:8]))),
		loopback: binary.NativeEndian.Uint32(b[8:12])&unix.IFF_LOOPBACK != 0,
		peerNS:   sameNS,
	}
	ad, err := netlink.NewAttributeDecoder(b[unix.SizeofIfInfomsg:])
	if err != nil {
		return link{}, err
	}
	var data []byte // IFLA_INFO_DATA, read once the kind is known
	for ad.Next() {
		switch ad.Type() {
		case unix.IFLA_IFNAME:
			l.name = ad.String()
		case unix.IFLA_LINK:
			l.peer = int(ad.Int32())
		case unix.IFLA_MASTER:
			l.master = int(ad.Uint32())
		case unix.IFLA_LINK_NETNSID:
			l.peerNS = ad.Int32()
		case unix.IFLA_LINKINFO:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					switch nad.Type() {
					case unix.IFLA_INFO_KIND:
						l.kind = nad.String()
					case unix.IFLA_INFO_DATA:
						data = nad.Bytes()
					}
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return link{}, err
	}
	if l.kind == "macvlan" && data != nil {
		dd, err := netlink.NewAttributeDecoder(data)
		if err != nil {
			return link{}, err
		}
		for dd.Next() {
			if dd.Type() == unix.IFLA_MACVLAN_MODE {
				l.macvlanMode = dd.Uint32()
			}
		}
		if err := dd.Err(); err != nil {
			return link{}, err
		}
	}
	return l, nil
}

// parseAddr reads an RTM_NEWADDR message's body.
func parseAddr(b []byte) (ifAddr, error) {
	if len(b) < unix.SizeofIfAddrmsg {
		return ifAddr{}, errors.New("short ifaddrmsg")
	}
	a := ifAddr{index: int(binary.NativeEndian.Uint32(b[4:8]))}
	ad, err := netlink.NewAttributeDecoder(b[unix.SizeofIfAddrmsg:])
	if err != nil {
		return ifAddr{}, err
	}
	var address, local netip.Addr
	for ad.Next() {
		switch ad.Type() {
		case unix.IFA_ADDRESS:
			address, _ = netip.AddrFromSlice(ad.Bytes())
		case unix.IFA_LOCAL: // IPv4: the local end (IFA_ADDRESS is the peer's on a point-to-point link)
			local, _ = netip.AddrFromSlice(ad.Bytes())
		}
	}
	a.addr = local
	if !a.addr.IsValid() {
		a.addr = address
	}
	return a, ad.Err()
}
