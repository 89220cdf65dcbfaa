package bridgeport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Peer is a bridge port with what its container side holds: the
// addresses configured on the peer interface.
type Peer struct {
	Port
	Addrs []netip.Prefix
}

// rtnetlink attributes of namespace ids (linux/net_namespace.h) and
// addresses (linux/if_addr.h).
const (
	netnsaNsid        = 1
	netnsaFD          = 3
	ifaAddress        = 1
	ifaLocal          = 2
	ifaTargetNetnsid  = 10
	nsidNotAssigned   = -1
	sizeofIfaddrmsg   = 8
	sizeofRtgenmsgPad = 4
)

// Reader reads the bridge ports of namespaces over one rtnetlink
// connection; one goroutine at a time.
type Reader struct {
	c *netlink.Conn
}

// NewReader opens a reader. Strict checking makes the kernel honour the
// dumps' target namespace and interface filters.
func NewReader() (*Reader, error) {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return nil, fmt.Errorf("bridge ports: cannot open rtnetlink: %w", err)
	}
	if err := c.SetOption(netlink.GetStrictCheck, true); err != nil {
		c.Close()
		return nil, fmt.Errorf("bridge ports: %w", err)
	}
	return &Reader{c: c}, nil
}

// Close closes the reader's connection.
func (r *Reader) Close() error { return r.c.Close() }

// NsidOf returns the id the host's namespace gives the network namespace
// open as fd, -1 while it has none (no link of ours names it yet).
func (r *Reader) NsidOf(fd int) (int, error) { return nsidOf(r.c, fd) }

// Nsid returns the id the host's namespace gives the network namespace
// open as fd, giving it one when it has none (as `ip netns set` does; a
// veth later made with its peer there is named by that id).
func (r *Reader) Nsid(fd int) (int, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(netnsaFD, uint32(fd))
	ae.Int32(netnsaNsid, -1) // any free id
	attrs, err := ae.Encode()
	if err != nil {
		return 0, err
	}
	_, err = r.c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_NEWNSID, Flags: netlink.Request | netlink.Acknowledge},
		Data:   append(make([]byte, sizeofRtgenmsgPad), attrs...),
	})
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return 0, fmt.Errorf("bridge ports: giving a namespace an id: %w", err)
	}
	return nsidOf(r.c, fd)
}

// InNetns returns the bridge ports of the host whose peer lives in the
// network namespace open as fd (a /proc/PID/ns/net), with the peer's MAC
// and addresses, read from the host's namespace without entering that
// one. None while no veth of the host has its peer there yet. The cost
// grows with the links of that namespace, not the host's: each veth
// there names its host side, which must name it back.
func (r *Reader) InNetns(fd int) ([]Peer, error) {
	nsid, err := nsidOf(r.c, fd)
	if err != nil || nsid == nsidNotAssigned {
		return nil, err
	}
	msgs, err := r.c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETLINK, Flags: netlink.Request | netlink.Dump},
		Data:   append(ifinfomsg(0), targetNetnsid(nsid)...),
	})
	if err != nil {
		return nil, fmt.Errorf("bridge ports: the links of namespace %d: %w", nsid, err)
	}
	var out []Peer
	for _, m := range msgs {
		peer, err := parseLink(m.Data)
		if err != nil {
			return nil, err
		}
		if peer.kind != "veth" || peer.peer <= 0 {
			continue
		}
		host, err := getLink(r.c, peer.peer, -1)
		if err != nil || host.kind != "veth" || host.nsid != nsid || host.peer != peer.index || host.master <= 0 {
			continue // its other side is not ours (or is gone)
		}
		br, err := getLink(r.c, host.master, -1)
		if err != nil || br.kind != "bridge" {
			continue
		}
		addrs, err := peerAddrs(r.c, peer.index, nsid)
		if err != nil {
			return nil, fmt.Errorf("bridge ports: the addresses of the peer of %s: %w", host.name, err)
		}
		out = append(out, Peer{Port: Port{Index: host.index, Name: host.name, Bridge: br.name, PeerMAC: peer.mac}, Addrs: addrs})
	}
	return out, nil
}

// nsidOf returns the id our namespace gives the namespace open as fd;
// nsidNotAssigned when it has none.
func nsidOf(c *netlink.Conn, fd int) (int, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(netnsaFD, uint32(fd))
	attrs, err := ae.Encode()
	if err != nil {
		return 0, err
	}
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETNSID, Flags: netlink.Request},
		Data:   append(make([]byte, sizeofRtgenmsgPad), attrs...),
	})
	if err != nil {
		return 0, fmt.Errorf("bridge ports: the id of a namespace: %w", err)
	}
	for _, m := range msgs {
		if len(m.Data) < sizeofRtgenmsgPad {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[sizeofRtgenmsgPad:])
		if err != nil {
			return 0, err
		}
		for ad.Next() {
			if ad.Type() == netnsaNsid {
				return int(ad.Int32()), nil
			}
		}
	}
	return nsidNotAssigned, nil
}

// peerAddrs dumps the addresses of interface index in the namespace with
// id nsid (IFA_TARGET_NETNSID, Linux 4.20), link-local ones left out.
func peerAddrs(c *netlink.Conn, index, nsid int) ([]netip.Prefix, error) {
	req := make([]byte, sizeofIfaddrmsg)
	binary.NativeEndian.PutUint32(req[4:], uint32(index))
	ae := netlink.NewAttributeEncoder()
	ae.Int32(ifaTargetNetnsid, int32(nsid))
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETADDR, Flags: netlink.Request | netlink.Dump},
		Data:   append(req, attrs...),
	})
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, m := range msgs {
		if len(m.Data) < sizeofIfaddrmsg || int(binary.NativeEndian.Uint32(m.Data[4:8])) != index {
			continue
		}
		bits := int(m.Data[1])
		ad, err := netlink.NewAttributeDecoder(m.Data[sizeofIfaddrmsg:])
		if err != nil {
			return nil, err
		}
		var local, addr netip.Addr
		for ad.Next() {
			switch ad.Type() {
			case ifaLocal:
				local, _ = netip.AddrFromSlice(ad.Bytes())
			case ifaAddress:
				addr, _ = netip.AddrFromSlice(ad.Bytes())
			}
		}
		if local.IsValid() {
			addr = local // IFA_ADDRESS is the peer's on point-to-point links
		}
		if addr.IsValid() && !addr.IsLinkLocalUnicast() {
			out = append(out, netip.PrefixFrom(addr.Unmap(), bits))
		}
	}
	return out, nil
}

// WatchAddrs calls changed, on its own goroutine, with the id of every
// other network namespace in which an address is added, until ctx is
// done: the moment a container's interface gets the address Docker gave
// it, which on Docker 28 comes after its port and its first process.
// Only namespaces that have an id in ours are heard (a veth of ours names
// each container's). It needs CAP_NET_ADMIN.
func WatchAddrs(ctx context.Context, changed func(nsid int)) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("address events: %w", err)
	}
	f := os.NewFile(uintptr(fd), "rtnetlink")
	defer f.Close()
	if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_LISTEN_ALL_NSID, 1); err != nil {
		return fmt.Errorf("address events of other namespaces: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR}); err != nil {
		return fmt.Errorf("address events: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	buf, oob := make([]byte, 64<<10), make([]byte, 256)
	for {
		var n, oobn int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, 0)
			return rerr != unix.EAGAIN
		})
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			return fmt.Errorf("address events: %w", err)
		case errors.Is(rerr, unix.ENOBUFS):
			continue // lost some: the next change, or Docker's view, tells
		case rerr != nil:
			return fmt.Errorf("address events: %w", rerr)
		}
		nsid := originNsid(oob[:oobn])
		if nsid < 0 || !hasNewAddr(buf[:n]) {
			continue
		}
		changed(nsid)
	}
}

// originNsid returns the namespace id a message came from, as the
// control message NETLINK_LISTEN_ALL_NSID adds tells; -1 for our own
// namespace (or none told).
func originNsid(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return -1
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_NETLINK && m.Header.Type == unix.NETLINK_LISTEN_ALL_NSID && len(m.Data) >= 4 {
			return int(int32(binary.NativeEndian.Uint32(m.Data)))
		}
	}
	return -1
}

// hasNewAddr reports whether a netlink datagram holds an RTM_NEWADDR.
func hasNewAddr(b []byte) bool {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return false
		}
		if binary.NativeEndian.Uint16(b[4:6]) == unix.RTM_NEWADDR {
			return true
		}
		b = b[min(len(b), (l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1)):]
	}
	return false
}
