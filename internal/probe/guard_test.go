package probe

// The guard's decision over a fake kernel. Address plan of the fake: the
// host ("H", inode 1) has eth0 (physical, 192.168.1.10/24, default via
// 192.168.1.1, fe80::10), the Docker bridge br0 (172.18.0.1, fe80::1,
// ports vethS and vethD: veths to the containers), br1 (172.19.0.1, ports
// a veth and eth1, a physical NIC), br2 (172.20/16, a veth port), vxlan0,
// and vethC to a container that routes 10.60/16.
// The source ("S", inode 2) has eth0, a veth whose peer vethS is on br0,
// 172.18.0.2/16, default via 172.18.0.1. Each case adds its own links and
// routes.

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

var (
	nsH = nsRef{1, sameNS}
	nsS = nsRef{2, sameNS}
	// nsC is a container namespace seen from H (id 7 there); nsR one seen
	// from S (id 8 there), which is not the host.
	nsC = nsRef{1, 7}
	nsR = nsRef{2, 8}
)

// hostIDInS is the id S gives the host namespace.
const hostIDInS = 5

type fakeKernel struct {
	linkm  map[nsRef]map[int]link
	addrm  map[nsRef][]ifAddr
	routes map[nsRef]func(routeQuery) route
}

func (f *fakeKernel) route(ns nsRef, q routeQuery) (route, error) {
	r, ok := f.routes[ns]
	if !ok {
		return route{}, errors.New("no routes in the fake")
	}
	return r(q), nil
}

func (f *fakeKernel) links(ns nsRef) (map[int]link, error) {
	ls, ok := f.linkm[ns]
	if !ok {
		return nil, errors.New("no links in the fake")
	}
	return ls, nil
}

func (f *fakeKernel) addrs(ns nsRef) ([]ifAddr, error) { return f.addrm[ns], nil }

func (f *fakeKernel) resolve(ns nsRef, nsid int32) (nsRef, error) {
	switch {
	case nsid == sameNS:
		return ns, nil
	case ns.inode == nsS.inode && nsid == hostIDInS:
		return nsH, nil
	}
	return nsRef{ns.inode, nsid}, nil
}

func (f *fakeKernel) name(ns nsRef) string {
	return map[nsRef]string{nsH: "H", nsS: "S"}[ns]
}

func linkMap(ls ...link) map[int]link {
	m := map[int]link{}
	for _, l := range ls {
		if l.peerNS == 0 {
			l.peerNS = sameNS
		}
		m[l.index] = l
	}
	return m
}

var (
	a4  = netip.MustParseAddr
	lo  = link{index: 1, name: "lo", loopback: true}
	gw0 = a4("172.18.0.1")
)

// newFake returns the fake host of the plan, with routes: S sends its own
// address to lo, 172.18/16 on-link out of eth0 and the rest via gw0; H
// routes its own addresses locally, 172.18/16 to br0, 172.19/16 to br1,
// 172.20/16 to br2,
// 10.50/16 via 172.18.0.5 (a container), 10.60/16 via 10.61.0.2 on vethC,
// 172.30/16 out of vxlan0, and the rest via 192.168.1.1 out of eth0.
func newFake() *fakeKernel {
	f := &fakeKernel{
		linkm: map[nsRef]map[int]link{
			nsH: linkMap(lo,
				link{index: 2, name: "eth0"},
				link{index: 3, name: "br0", kind: "bridge"},
				link{index: 4, name: "vethS", kind: "veth", master: 3, peer: 2, peerNS: 9},
				link{index: 5, name: "vethD", kind: "veth", master: 3, peer: 2, peerNS: 10},
				link{index: 6, name: "br1", kind: "bridge"},
				link{index: 7, name: "vethX", kind: "veth", master: 6, peer: 2, peerNS: 11},
				link{index: 8, name: "eth1", master: 6},
				link{index: 9, name: "vxlan0", kind: "vxlan"},
				link{index: 10, name: "vethC", kind: "veth", peer: 2, peerNS: 7},
				link{index: 11, name: "br2", kind: "bridge"},
				link{index: 12, name: "vethP", kind: "veth", master: 11, peer: 2, peerNS: 12},
			),
			nsS: linkMap(lo,
				link{index: 2, name: "eth0", kind: "veth", peer: 4, peerNS: hostIDInS},
			),
			nsC: linkMap(lo, link{index: 2, name: "eth0", kind: "veth", peer: 10, peerNS: sameNS}),
		},
		addrm: map[nsRef][]ifAddr{
			nsH: {{2, a4("192.168.1.10")}, {2, a4("fe80::10")}, {3, gw0}, {3, a4("fe80::1")}, {6, a4("172.19.0.1")}},
		},
	}
	f.routes = map[nsRef]func(routeQuery) route{
		nsS: func(q routeQuery) route {
			switch {
			case q.dst == a4("172.18.0.2"):
				return route{typ: unix.RTN_LOCAL, oif: 1}
			case q.dst.Is4() && netip.MustParsePrefix("172.18.0.0/16").Contains(q.dst):
				return route{typ: unix.RTN_UNICAST, oif: 2, prefsrc: a4("172.18.0.2")}
			case q.dst.Is4():
				return route{typ: unix.RTN_UNICAST, oif: 2, gw: gw0, prefsrc: a4("172.18.0.2")}
			}
			return route{refused: unix.ENETUNREACH}
		},
		nsH: func(q routeQuery) route {
			in := func(p string) bool { return netip.MustParsePrefix(p).Contains(q.dst) }
			switch {
			case q.dst == gw0 || q.dst == a4("192.168.1.10"):
				return route{typ: unix.RTN_LOCAL, oif: 1}
			case in("172.18.0.0/16"):
				return route{typ: unix.RTN_UNICAST, oif: 3}
			case in("172.19.0.0/16"):
				return route{typ: unix.RTN_UNICAST, oif: 6}
			case in("172.20.0.0/16"):
				return route{typ: unix.RTN_UNICAST, oif: 11}
			case in("10.50.0.0/16"):
				return route{typ: unix.RTN_UNICAST, oif: 3, gw: a4("172.18.0.5")}
			case in("10.60.0.0/16"):
				return route{typ: unix.RTN_UNICAST, oif: 10, gw: a4("10.61.0.2")}
			case in("172.30.0.0/16"):
				return route{typ: unix.RTN_UNICAST, oif: 9}
			case in("192.168.1.0/24"):
				return route{typ: unix.RTN_UNICAST, oif: 2}
			}
			return route{typ: unix.RTN_UNICAST, oif: 2, gw: a4("192.168.1.1")}
		},
	}
	return f
}

func TestJudge(t *testing.T) {
	const (
		send    = "send"
		refused = "refused"
	)
	tests := []struct {
		name string
		from nsRef
		dst  string
		edit func(*fakeKernel) // changes to the fake host
		// want is send, refused, or the start of the reason.
		want string
	}{
		{"own address", nsS, "172.18.0.2", nil, send},
		{"a peer on the same bridge", nsS, "172.18.0.3", nil, send},
		{"the gateway itself", nsS, "172.18.0.1", nil, send},
		{"another host address, via the gateway", nsS, "192.168.1.10", nil, send},
		{"a routed peer on another bridge of veths", nsS, "172.20.0.3", nil, send},
		{"no route in the source", nsS, "fd00::1", nil, refused},
		{"the isolated-mode example: the host's default route", nsS, "10.99.0.2", nil,
			"the host would send it out of eth0, a physical device, via 192.168.1.1"},
		{"the host's LAN, on-link", nsS, "192.168.1.20", nil,
			"the host would send it out of eth0, a physical device"},
		{"a bridge with a physical port", nsS, "172.19.0.3", nil,
			"the host would send it out of br1, a bridge with eth1 (a physical device) as a port"},
		{"a vxlan of the host", nsS, "172.30.0.3", nil,
			"the host would send it out of vxlan0, a vxlan link"},
		{"the host's gateway over a bridge: a container router", nsS, "10.50.0.1", nil,
			"the host would send it out of br0, a bridge, via 172.18.0.5: a router zonewarden cannot follow"},
		{"the host's gateway over a veth", nsS, "10.60.0.1", nil,
			"the host would send it out of vethC, a veth, via 10.61.0.2: a router zonewarden cannot follow"},
		{"the host has no route", nsS, "10.70.0.1", func(f *fakeKernel) {
			h := f.routes[nsH]
			f.routes[nsH] = func(q routeQuery) route {
				if q.dst == a4("10.70.0.1") {
					return route{refused: unix.ENETUNREACH}
				}
				return h(q)
			}
		}, "the host has no route to it (network is unreachable)"},
		{"a prohibit route in the source", nsS, "172.18.7.7", func(f *fakeKernel) {
			f.routes[nsS] = func(routeQuery) route { return route{typ: unix.RTN_PROHIBIT} }
		}, refused},
		{"the source's gateway is not the host's address", nsS, "10.99.0.2", func(f *fakeKernel) {
			f.routes[nsS] = func(routeQuery) route { return route{typ: unix.RTN_UNICAST, oif: 2, gw: a4("172.18.0.9")} }
		}, "namespace S would send it out of eth0, a veth, via 172.18.0.9, which is not an address of the host"},
		{"a link-local gateway of the host's bridge", nsS, "172.20.9.9", func(f *fakeKernel) {
			f.routes[nsS] = func(routeQuery) route { return route{typ: unix.RTN_UNICAST, oif: 2, gw: a4("fe80::1")} }
		}, send},
		{"a link-local gateway of another host link", nsS, "172.20.9.9", func(f *fakeKernel) {
			f.routes[nsS] = func(routeQuery) route { return route{typ: unix.RTN_UNICAST, oif: 2, gw: a4("fe80::10")} }
		}, "namespace S would send it out of eth0, a veth, via fe80::10, which is not an address of the host"},
		{"the source's veth leads to a router that is not the host", nsS, "10.99.0.2", func(f *fakeKernel) {
			s := f.linkm[nsS][2]
			s.peerNS = 8
			f.linkm[nsS][2] = s
			f.linkm[nsR] = linkMap(link{index: 4, name: "vethS", kind: "veth", peer: 2})
		}, "namespace S would send it out of eth0, a veth, via 172.18.0.1: a router in another namespace"},
		{"on-link out of a veth whose peer is on a bridge with a physical port", nsS, "172.18.0.3", func(f *fakeKernel) {
			f.linkm[nsH][8] = link{index: 8, name: "eth1", master: 3, peerNS: sameNS}
		}, "namespace S would send it out of eth0, a veth whose peer is a port of br0, a bridge with eth1 (a physical device) as a port"},
		{"the source routes out of a physical device", nsS, "10.99.0.2", func(f *fakeKernel) {
			f.linkm[nsS][3] = link{index: 3, name: "ens3", peerNS: sameNS}
			f.routes[nsS] = func(routeQuery) route { return route{typ: unix.RTN_UNICAST, oif: 3, gw: a4("10.0.0.1")} }
		}, "namespace S would send it out of ens3, a physical device, via 10.0.0.1"},
		{"the host probes a container on its bridge", nsH, "172.18.0.3", nil, send},
		{"the host probes through a veth to a container", nsH, "10.61.0.2", func(f *fakeKernel) {
			h := f.routes[nsH]
			f.routes[nsH] = func(q routeQuery) route {
				if q.dst == a4("10.61.0.2") {
					return route{typ: unix.RTN_UNICAST, oif: 10}
				}
				return h(q)
			}
		}, send},
		{"the host's own default route", nsH, "8.8.8.8", nil, "the host would send it out of eth0, a physical device, via 192.168.1.1"},
		{"loopback", nsH, "127.0.0.1", func(f *fakeKernel) {
			f.routes[nsH] = func(routeQuery) route { return route{typ: unix.RTN_UNICAST, oif: 1} }
		}, send},
	}
	for _, kind := range []struct {
		kind, want string
	}{{"wireguard", "a wireguard link"}, {"tun", "a tun link"}, {"geneve", "a geneve link"}, {"ipvlan", "an ipvlan link"}, {"dummy", "a dummy link"}} {
		tests = append(tests, struct {
			name string
			from nsRef
			dst  string
			edit func(*fakeKernel)
			want string
		}{"the source routes out of " + kind.kind, nsS, "10.99.0.2", func(f *fakeKernel) {
			f.linkm[nsS][3] = link{index: 3, name: "x0", kind: kind.kind, peerNS: sameNS}
			f.routes[nsS] = func(routeQuery) route { return route{typ: unix.RTN_UNICAST, oif: 3} }
		}, "namespace S would send it out of x0, " + kind.want})
	}
	macvlan := func(mode uint32, parent link, parentNS int32) func(*fakeKernel) {
		return func(f *fakeKernel) {
			f.linkm[nsS][3] = link{index: 3, name: "mv0", kind: "macvlan", macvlanMode: mode, peer: parent.index, peerNS: parentNS}
			if parentNS == sameNS {
				parent.peerNS = sameNS
				f.linkm[nsS][parent.index] = parent
			}
			f.routes[nsS] = func(routeQuery) route { return route{typ: unix.RTN_UNICAST, oif: 3} }
		}
	}
	for _, tt := range []struct {
		name string
		edit func(*fakeKernel)
		want string
	}{
		{"bridge mode over the host's eth0 (Docker's macvlan driver)", macvlan(macvlanBridge, link{index: 2}, hostIDInS),
			"namespace S would send it out of mv0, a macvlan over eth0, a physical device"},
		{"bridge mode over the host's local bridge", macvlan(macvlanBridge, link{index: 3}, hostIDInS), send},
		{"bridge mode over the host's bridge with a physical port", macvlan(macvlanBridge, link{index: 6}, hostIDInS),
			"namespace S would send it out of mv0, a macvlan over br1, a bridge with eth1 (a physical device) as a port"},
		{"bridge mode over a veth of its own", macvlan(macvlanBridge, link{index: 4, name: "v4", kind: "veth", peer: 10}, sameNS), "namespace S would send it out of mv0, a macvlan over v4, a veth whose peer cannot be read"},
		{"vepa mode over the host's local bridge", macvlan(macvlanVEPA, link{index: 3}, hostIDInS),
			"namespace S would send it out of mv0, a macvlan in vepa mode"},
		{"private mode", macvlan(macvlanPrivate, link{index: 3}, hostIDInS), "namespace S would send it out of mv0, a macvlan in private mode"},
		{"passthru mode", macvlan(macvlanPassthru, link{index: 3}, hostIDInS), "namespace S would send it out of mv0, a macvlan in passthru mode"},
		{"bridge mode over a local veth", func(f *fakeKernel) {
			macvlan(macvlanBridge, link{index: 4, name: "v4", kind: "veth", peer: 5}, sameNS)(f)
			f.linkm[nsS][5] = link{index: 5, name: "v5", kind: "veth", peer: 4, peerNS: sameNS}
		}, send},
		{"nested macvlans deeper than the bound", func(f *fakeKernel) {
			for i := 3; i < 10; i++ {
				f.linkm[nsS][i] = link{index: i, name: "mv", kind: "macvlan", macvlanMode: macvlanBridge, peer: i + 1, peerNS: sameNS}
			}
			f.linkm[nsS][10] = link{index: 10, name: "v", kind: "veth", peer: 4, peerNS: hostIDInS}
			f.routes[nsS] = func(routeQuery) route { return route{typ: unix.RTN_UNICAST, oif: 3} }
		}, "namespace S would send it out of mv, a macvlan over mv, a macvlan over mv, a macvlan over mv, a macvlan over mv, links nested too deep"},
	} {
		tests = append(tests, struct {
			name string
			from nsRef
			dst  string
			edit func(*fakeKernel)
			want string
		}{"macvlan " + tt.name, nsS, "192.168.1.77", tt.edit, tt.want})
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			if tt.edit != nil {
				tt.edit(f)
			}
			v, err := judge(f, tt.from, nsH, a4(tt.dst), false)
			if err != nil {
				t.Fatalf("judge(%s): %v", tt.dst, err)
			}
			switch tt.want {
			case send:
				if !v.send {
					t.Errorf("%s: %+v, want sent", tt.dst, v)
				}
			case refused:
				if v.send || v.refused == nil {
					t.Errorf("%s: %+v, want refused by the source", tt.dst, v)
				}
			default:
				if v.send || v.refused != nil || !strings.HasPrefix(v.why, tt.want) {
					t.Errorf("%s: %+v\nwant not sent because %q...", tt.dst, v, tt.want)
				}
			}
		})
	}
}

// TestJudgeOverlay: a veth whose peer is a port of a bridge with a vxlan
// port (a Docker overlay's namespace) leaves the machine, unless the
// caller vouches for the destination (a task of its own Swarm).
func TestJudgeOverlay(t *testing.T) {
	f := newFake()
	f.linkm[nsH][8] = link{index: 8, name: "vxlan1", kind: "vxlan", master: 3, peerNS: sameNS}
	v, err := judge(f, nsS, nsH, a4("172.18.0.3"), false)
	if err != nil || v.send || !strings.Contains(v.why, "a bridge with vxlan1 (a vxlan link) as a port") {
		t.Errorf("without overlay: %+v %v, want not sent", v, err)
	}
	if v, err := judge(f, nsS, nsH, a4("172.18.0.3"), true); err != nil || !v.send {
		t.Errorf("with overlay: %+v %v, want sent", v, err)
	}
	f.linkm[nsH][9] = link{index: 9, name: "eth1", master: 3, peerNS: sameNS}
	if v, err := judge(f, nsS, nsH, a4("172.18.0.3"), true); err != nil || v.send {
		t.Errorf("with overlay, and a physical port on the bridge too: %+v %v, want not sent", v, err)
	}
}

// TestJudgeReadErrors: a kernel that cannot be read is an error, never a
// send.
func TestJudgeReadErrors(t *testing.T) {
	f := newFake()
	delete(f.linkm, nsH)
	if v, err := judge(f, nsS, nsH, a4("172.18.0.3"), false); err == nil {
		t.Errorf("judge without the host's links = %+v, want an error", v)
	}
	f = newFake()
	delete(f.routes, nsH)
	if v, err := judge(f, nsS, nsH, a4("172.20.9.9"), false); err == nil {
		t.Errorf("judge without the host's routes = %+v, want an error", v)
	}
	f = newFake()
	f.routes[nsS] = func(routeQuery) route { return route{typ: unix.RTN_UNICAST, oif: 42} }
	if v, err := judge(f, nsS, nsH, a4("172.18.9.9"), false); err == nil {
		t.Errorf("judge with a route out of an unknown link = %+v, want an error", v)
	}
}

// TestJudgeZone: a scoped address is looked up out of the link its zone
// names.
func TestJudgeZone(t *testing.T) {
	f := newFake()
	var got routeQuery
	f.routes[nsS] = func(q routeQuery) route { got = q; return route{typ: unix.RTN_UNICAST, oif: 2} }
	if v, err := judge(f, nsS, nsH, a4("fe80::2%eth0"), false); err != nil || !v.send || got.oif != 2 || got.dst.Zone() != "" {
		t.Errorf("fe80::2%%eth0: %+v %v, query %+v; want sent, looked up out of link 2", v, err, got)
	}
	if v, err := judge(f, nsS, nsH, a4("fe80::2%nope"), false); err != nil || v.send || !strings.Contains(v.why, `no link "nope"`) {
		t.Errorf("fe80::2%%nope: %+v %v, want not sent for want of the link", v, err)
	}
}
