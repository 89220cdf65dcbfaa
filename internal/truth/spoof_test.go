package truth

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"golang.org/x/sys/unix"

	"github.com/zonewarden/zonewarden/internal/bridgeport"
	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/firewall"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/nft"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/probe"
	"github.com/zonewarden/zonewarden/internal/testenv"
)

// Address plan: the three tiers with Docker's addresses (app with IPv6),
// and mallory, a member of db and app that no flow lets reach postgres on
// 5432: it tries as api, which may.
const spoofPolicy = `version: 1
zones:
  public-dmz: {default: deny}
  app:        {default: deny}
  db:         {internal: true, default: deny}
workloads:
  lb:       {match: {name: lb}, zones: [public-dmz]}
  frontend: {match: {name: frontend}, zones: [public-dmz, app]}
  api:      {match: {name: api}, zones: [app, db]}
  postgres: {match: {name: postgres}, zones: [db]}
  cache:    {match: {name: cache}, zones: [db]}
  mallory:  {match: {name: mallory}, zones: [app, db]}
flows:
  - {from: frontend, to: api,      ports: [80/tcp]}
  - {from: api,      to: postgres, ports: [5432/tcp]}
  - {from: mallory,  to: postgres, ports: [80/tcp]}
unmanaged: deny
`

// spoofHost is the three tiers with mallory, and the endpoint binding and
// the policy loaded in tables of the test's own.
type spoofHost struct {
	env   *Env
	table string
	snap  *inventory.Snapshot
}

func newSpoofHost(t *testing.T) *spoofHost {
	sc := ThreeTier()
	for i := range sc.Networks {
		if sc.Networks[i].Name == "app" {
			sc.Networks[i].IPv6 = true
		}
	}
	sc.Containers = append(sc.Containers, Container{Name: "mallory", Networks: []string{"db", "app"}})
	env := Build(t, sc)
	h := &spoofHost{env: env, table: "zwtest_" + env.RunID, snap: env.Snapshot()}
	h.load(t, h.snap, spoofPolicy)
	return h
}

// load binds the snapshot's endpoints to their ports and loads both
// tables of the policy doc for it, replacing what was loaded.
func (h *spoofHost) load(t *testing.T, snap *inventory.Snapshot, doc string) *model.Binding {
	t.Helper()
	ports, err := bridgeport.List()
	if err != nil {
		t.Fatal(err)
	}
	if problems := bridgeport.Match(snap, ports); len(problems) > 0 {
		t.Fatalf("bridge ports not found: %v", problems)
	}
	p, err := policy.Parse("zones.yaml", []byte(doc), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := model.Bind(p, snap)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	opts := enforce.Options{Table: h.table}
	t.Cleanup(func() {
		nft.Delete(ctx, "bridge", h.table)
		nft.Delete(ctx, "inet", h.table)
	})
	if _, err := firewall.Load(ctx, enforce.CompilePorts(b, opts)); err != nil {
		t.Fatalf("loading the endpoint binding: %v", err)
	}
	rs := enforce.Compile(b, opts)
	if _, err := firewall.Load(ctx, rs); err != nil {
		t.Fatalf("loading the policy: %v", err)
	}
	return b
}

// endpoint returns a container's endpoint on a network.
func (h *spoofHost) endpoint(t *testing.T, container, network string) inventory.Endpoint {
	t.Helper()
	c := inventory.NewIndex(h.snap).Container(container)
	if c == nil {
		t.Fatalf("no container %s", container)
	}
	for _, e := range c.Endpoints {
		if e.Network == network {
			return e
		}
	}
	t.Fatalf("%s is not on %s", container, network)
	return inventory.Endpoint{}
}

// dial opens a TCP connection from inside a container's namespace, from
// src when valid, and reports whether it connected within a second.
func dial(ns *probe.Namespace, src netip.Addr, dst netip.AddrPort) bool {
	var conn net.Conn
	err := ns.Do(func() error {
		d := net.Dialer{Timeout: time.Second}
		if src.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		}
		c, err := d.Dial("tcp", dst.String())
		conn = c
		return err
	})
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// nsenter runs a command in the network namespace of a container.
func nsenter(t *testing.T, pid int, args ...string) {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{"--net=/proc/" + strconv.Itoa(pid) + "/ns/net", "--"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nsenter %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// ifaceOf returns the interface of ns that holds addr.
func ifaceOf(t *testing.T, ns *probe.Namespace, addr netip.Addr) (idx int, name string) {
	t.Helper()
	err := ns.Do(func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, i := range ifs {
			as, _ := i.Addrs()
			for _, a := range as {
				if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr() == addr {
					idx, name = i.Index, i.Name
					return nil
				}
			}
		}
		return fmt.Errorf("no interface holds %s", addr)
	})
	if err != nil {
		t.Fatal(err)
	}
	return idx, name
}

// rawSocket opens an AF_PACKET socket on the interface of ns that holds
// addr: frames written to it leave the container as they are, whatever
// their addresses (what NET_RAW, Docker's default capability, allows).
func rawSocket(t *testing.T, ns *probe.Namespace, addr netip.Addr) int {
	t.Helper()
	idx, _ := ifaceOf(t, ns, addr)
	var fd int
	err := ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: idx})
	})
	if err != nil {
		t.Fatalf("raw socket in %s: %v", ns, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return fd
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// capture counts the frames read from fd for d that match.
func capture(fd int, d time.Duration, match func([]byte) bool) int {
	n := 0
	buf := make([]byte, 2048)
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		k, _, err := unix.Recvfrom(fd, buf, 0)
		if err == nil && match(buf[:k]) {
			n++
		}
	}
	return n
}

func mac(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatalf("MAC %q: %v", s, err)
	}
	return m
}

// ether builds an Ethernet frame.
func ether(dst, src net.HardwareAddr, typ uint16, payload []byte) []byte {
	f := append(append(append([]byte{}, dst...), src...), byte(typ>>8), byte(typ))
	return append(f, payload...)
}

// arpReply is an ARP reply claiming that spa is at sha.
func arpReply(sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	b := []byte{0, 1, 8, 0, 6, 4, 0, 2}
	b = append(append(b, sha...), spa.AsSlice()...)
	return append(append(b, tha...), tpa.AsSlice()...)
}

func csum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// tcpSYN is an IPv4 packet with a TCP SYN from src:sport to dst:dport.
func tcpSYN(src, dst netip.Addr, sport, dport uint16) []byte {
	ip := []byte{0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0}
	ip = append(append(ip, src.AsSlice()...), dst.AsSlice()...)
	binary.BigEndian.PutUint16(ip[10:], csum(ip))
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], 1)
	tcp[12], tcp[13] = 5<<4, 0x02
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	pseudo := append(append(append([]byte{}, src.AsSlice()...), dst.AsSlice()...), 0, 6, 0, 20)
	binary.BigEndian.PutUint16(tcp[16:], csum(append(pseudo, tcp...)))
	return append(ip, tcp...)
}

// isSYN reports whether an Ethernet frame is an IPv4 TCP SYN from src
// with source port sport.
func isSYN(src netip.Addr, sport uint16) func([]byte) bool {
	return func(f []byte) bool {
		if len(f) < 14+40 || f[12] != 0x08 || f[13] != 0 || f[14+9] != 6 {
			return false
		}
		a, _ := netip.AddrFromSlice(f[14+12 : 14+16])
		return a == src && binary.BigEndian.Uint16(f[14+20:]) == sport
	}
}

// neighbourAdvert is an IPv6 neighbour advertisement from src to dst
// that target is at lladdr (override set).
func neighbourAdvert(src, dst, target netip.Addr, lladdr net.HardwareAddr) []byte {
	icmp := []byte{136, 0, 0, 0, 0x20, 0, 0, 0}
	icmp = append(icmp, target.AsSlice()...)
	icmp = append(append(icmp, 2, 1), lladdr...) // target link-layer address option
	ip := []byte{0x60, 0, 0, 0, 0, byte(len(icmp)), 58, 255}
	ip = append(append(ip, src.AsSlice()...), dst.AsSlice()...)
	pseudo := append(append(append([]byte{}, src.AsSlice()...), dst.AsSlice()...), 0, 0, 0, byte(len(icmp)), 0, 0, 0, 58)
	binary.BigEndian.PutUint16(icmp[2:], csum(append(pseudo, icmp...)))
	return append(ip, icmp...)
}

// isAdvert reports whether an Ethernet frame is a neighbour advertisement
// for target.
func isAdvert(target netip.Addr) func([]byte) bool {
	return func(f []byte) bool {
		if len(f) < 14+40+24 || f[12] != 0x86 || f[13] != 0xdd || f[14+6] != 58 || f[14+40] != 136 {
			return false
		}
		a, _ := netip.AddrFromSlice(f[14+48 : 14+64])
		return a == target
	}
}

// forgedMark is the target MAC of the test's forged ARP: no ARP that a
// container sends carries it.
var forgedMark = net.HardwareAddr{0x02, 0x7a, 0x77, 0x5f, 0x5f, 0x5f}

// isForgedARP reports whether an Ethernet frame is the test's forged ARP
// claiming spa.
func isForgedARP(spa netip.Addr) func([]byte) bool {
	return func(f []byte) bool {
		if len(f) < 14+28 || f[12] != 0x08 || f[13] != 0x06 {
			return false
		}
		a, _ := netip.AddrFromSlice(f[14+14 : 14+18])
		return a == spa && net.HardwareAddr(f[14+18:14+24]).String() == forgedMark.String()
	}
}

// spoofDrops returns the packets the endpoint binding dropped so far.
func spoofDrops(t *testing.T, table string) int {
	t.Helper()
	listing, err := nft.List(context.Background(), "bridge", table)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(listing, "\n") {
		if f := strings.Fields(line); strings.Contains(line, "zw:spoof") {
			for i := range f {
				if f[i] == "packets" && i+1 < len(f) {
					k, _ := strconv.Atoi(f[i+1])
					n += k
				}
			}
		}
	}
	return n
}

// TestSpoofWithAnAddedAddress: mallory adds api's db address to its own
// interface and sends gratuitous ARP for it (what NET_ADMIN and NET_RAW
// allow), then connects to postgres:5432 from it. It reaches nothing as
// api; api keeps its access; the drops are counted.
func TestSpoofWithAnAddedAddress(t *testing.T) {
	h := newSpoofHost(t)
	env := h.env
	api, pg, mal := h.endpoint(t, "api", "db"), h.endpoint(t, "postgres", "db"), h.endpoint(t, "mallory", "db")
	pgAddr := netip.AddrPortFrom(pg.IPv4, 5432)
	if !dial(env.ns["api"], netip.Addr{}, pgAddr) {
		t.Fatal("api does not reach postgres:5432 before the attack")
	}
	if dial(env.ns["mallory"], netip.Addr{}, pgAddr) {
		t.Fatal("mallory reaches postgres:5432 as itself")
	}
	before := spoofDrops(t, h.table)
	pid := testenv.Pid(t, env.cli, env.ids["mallory"])
	_, dev := ifaceOf(t, env.ns["mallory"], mal.IPv4)
	bits := 24
	for _, n := range h.snap.Networks {
		for _, s := range n.Subnets {
			if s.Prefix.Contains(api.IPv4) {
				bits = s.Prefix.Bits()
			}
		}
	}
	nsenter(t, pid, "ip", "addr", "add", api.IPv4.String()+"/"+strconv.Itoa(bits), "dev", dev)
	nsenter(t, pid, "busybox", "arping", "-U", "-c", "2", "-w", "1", "-I", dev, "-s", api.IPv4.String(), api.IPv4.String())
	for i := range 3 {
		if dial(env.ns["mallory"], api.IPv4, pgAddr) {
			t.Fatalf("attempt %d: mallory reached postgres:5432 as api (%s)", i+1, api.IPv4)
		}
	}
	if !dial(env.ns["api"], netip.Addr{}, pgAddr) {
		t.Error("api lost postgres:5432 to mallory's ARP")
	}
	if after := spoofDrops(t, h.table); after <= before {
		t.Errorf("the spoof drops did not count: %d before, %d after", before, after)
	}
}

// TestSpoofWithRawFrames: with a raw socket alone (NET_RAW), mallory
// sends api's MAC and address: an ARP reply to postgres and a TCP SYN to
// postgres:5432. Neither arrives; a SYN with mallory's own address to a
// port its flow allows does (the capture works). The same for IPv6 on
// app: a neighbour advertisement claiming api's address does not reach
// frontend, one for mallory's own does.
func TestSpoofWithRawFrames(t *testing.T) {
	h := newSpoofHost(t)
	env := h.env
	api, pg, mal := h.endpoint(t, "api", "db"), h.endpoint(t, "postgres", "db"), h.endpoint(t, "mallory", "db")
	send := rawSocket(t, env.ns["mallory"], mal.IPv4)
	recv := rawSocket(t, env.ns["postgres"], pg.IPv4)
	apiMAC, pgMAC, malMAC := mac(t, api.MAC), mac(t, pg.MAC), mac(t, mal.MAC)
	for _, sender := range []net.HardwareAddr{apiMAC, malMAC} {
		// A gratuitous ARP (sender and target api's address) with a
		// target MAC no real ARP carries, to tell it from api's own.
		frames := [][]byte{
			ether(pgMAC, sender, unix.ETH_P_ARP, arpReply(sender, api.IPv4, forgedMark, api.IPv4)),
			ether(pgMAC, sender, unix.ETH_P_IP, tcpSYN(api.IPv4, pg.IPv4, 44444, 5432)),
		}
		for _, f := range frames {
			if _, err := unix.Write(send, f); err != nil {
				t.Fatal(err)
			}
		}
		if n := capture(recv, 300*time.Millisecond, func(f []byte) bool { return isSYN(api.IPv4, 44444)(f) || isForgedARP(api.IPv4)(f) }); n > 0 {
			t.Errorf("with source MAC %s: %d of mallory's frames claiming api's address reached postgres", sender, n)
		}
	}
	// Control: mallory as itself, to a port its flow allows.
	if _, err := unix.Write(send, ether(pgMAC, malMAC, unix.ETH_P_IP, tcpSYN(mal.IPv4, pg.IPv4, 44445, 80))); err != nil {
		t.Fatal(err)
	}
	if n := capture(recv, 500*time.Millisecond, isSYN(mal.IPv4, 44445)); n == 0 {
		t.Fatal("mallory's own SYN to postgres:80 did not arrive: the capture proves nothing")
	}

	apiApp, feApp, malApp := h.endpoint(t, "api", "app"), h.endpoint(t, "frontend", "app"), h.endpoint(t, "mallory", "app")
	if !apiApp.IPv6.IsValid() || !malApp.IPv6.IsValid() {
		t.Fatalf("app has no IPv6: api %v, mallory %v", apiApp.IPv6, malApp.IPv6)
	}
	send6 := rawSocket(t, env.ns["mallory"], malApp.IPv6)
	recv6 := rawSocket(t, env.ns["frontend"], feApp.IPv6)
	feMAC, malAppMAC := mac(t, feApp.MAC), mac(t, malApp.MAC)
	// From a link-local address, as Linux sends them: the policy table
	// leaves link-local traffic alone, so only the binding decides.
	// Unsolicited, to all nodes, as a poisoner sends them.
	linkLocal := netip.MustParseAddr("fe80::5eed")
	allNodes, allNodesMAC := netip.MustParseAddr("ff02::1"), net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	for _, c := range []struct {
		target netip.Addr
		want   bool
	}{{apiApp.IPv6, false}, {malApp.IPv6, true}} {
		na := neighbourAdvert(linkLocal, allNodes, c.target, malAppMAC)
		if _, err := unix.Write(send6, ether(allNodesMAC, malAppMAC, unix.ETH_P_IPV6, na)); err != nil {
			t.Fatal(err)
		}
		if got := capture(recv6, 500*time.Millisecond, isAdvert(c.target)) > 0; got != c.want {
			t.Errorf("mallory's advertisement for %s reached frontend: %v, want %v", c.target, got, c.want)
		}
	}
	// The same with api's address as the IPv6 source.
	na := neighbourAdvert(apiApp.IPv6, feApp.IPv6, apiApp.IPv6, malAppMAC)
	if _, err := unix.Write(send6, ether(feMAC, malAppMAC, unix.ETH_P_IPV6, na)); err != nil {
		t.Fatal(err)
	}
	if capture(recv6, 300*time.Millisecond, isAdvert(apiApp.IPv6)) > 0 {
		t.Error("mallory's advertisement from api's own address reached frontend")
	}
}

// TestFreedAddressGrantsNothing: with nobody keeping the firewall (the
// agent killed), api is removed and a new container takes its address.
// The policy table still admits the address, but the endpoint binding
// ties it to api's port, which is gone: the newcomer reaches nothing.
// Once zonewarden binds the newcomer (here by loading again; the agent
// does it on the start event), the address works for it.
func TestFreedAddressGrantsNothing(t *testing.T) {
	h := newSpoofHost(t)
	env := h.env
	api, pg := h.endpoint(t, "api", "db"), h.endpoint(t, "postgres", "db")
	pgAddr := netip.AddrPortFrom(pg.IPv4, 5432)
	if !dial(env.ns["api"], netip.Addr{}, pgAddr) {
		t.Fatal("api does not reach postgres:5432 before it is removed")
	}
	ctx := context.Background()
	if err := env.cli.ContainerRemove(ctx, env.ids["api"], container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	id := testenv.RunContainer(t, env.cli, env.RunID, testenv.ContainerSpec{Name: "api", Network: env.netIDs["db"], IPv4: api.IPv4, Start: true})
	if got := testenv.Addr(t, env.cli, id, env.netIDs["db"]); got != api.IPv4 {
		t.Fatalf("the newcomer got %s, not api's old address %s", got, api.IPv4)
	}
	ns, err := probe.OpenPID(testenv.Pid(t, env.cli, id))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	for _, port := range []uint16{5432, 80} {
		if dial(ns, netip.Addr{}, netip.AddrPortFrom(pg.IPv4, port)) {
			t.Errorf("the newcomer on api's old address reached postgres:%d through api's stale elements", port)
		}
	}
	env.Refresh(t)
	h.snap = env.Snapshot()
	h.load(t, h.snap, spoofPolicy)
	// Docker 28 gives the newcomer a new MAC for the old address: postgres
	// learns it from the gratuitous ARP Docker sends every second after a
	// start (those sent before the binding were dropped), or from its own
	// next ARP.
	reached := false
	for deadline := time.Now().Add(5 * time.Second); !reached && time.Now().Before(deadline); {
		reached = dial(ns, netip.Addr{}, pgAddr)
	}
	if !reached {
		t.Error("bound by zonewarden as api, the newcomer does not reach postgres:5432 within 5 s")
	}
}

// TestUnknownInADenyZone: a container that no workload selects, on the
// default: deny zone db, reaches nobody and nobody reaches it, under
// every unmanaged mode; the declared flow next to it still works.
func TestUnknownInADenyZone(t *testing.T) {
	h := newSpoofHost(t)
	env := h.env
	id := testenv.RunContainer(t, env.cli, env.RunID, testenv.ContainerSpec{Name: "intruder", Network: env.netIDs["db"], Start: true})
	ns, err := probe.OpenPID(testenv.Pid(t, env.cli, id))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	l, err := probe.Listen(ns, probe.ListenConfig{TCP: []uint16{80}, Banner: "ns:intruder"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	intruder := testenv.Addr(t, env.cli, id, env.netIDs["db"])
	env.Refresh(t)
	h.snap = env.Snapshot()
	pg, cache := h.endpoint(t, "postgres", "db"), h.endpoint(t, "cache", "db")
	api := h.endpoint(t, "api", "db")
	for _, mode := range []string{"allow", "warn", "deny"} {
		t.Run("unmanaged "+mode, func(t *testing.T) {
			doc := strings.Replace(spoofPolicy, "unmanaged: deny", "unmanaged: "+mode, 1)
			b := h.load(t, h.snap, doc)
			if f := b.Fenced(); len(f) != 1 || f[0].Container != "intruder" {
				t.Errorf("fenced = %v, want intruder", f)
			}
			for _, to := range []netip.AddrPort{netip.AddrPortFrom(pg.IPv4, 5432), netip.AddrPortFrom(pg.IPv4, 80),
				netip.AddrPortFrom(cache.IPv4, 5432), netip.AddrPortFrom(api.IPv4, 80)} {
				if dial(ns, netip.Addr{}, to) {
					t.Errorf("the intruder reached %s", to)
				}
			}
			if dial(env.ns["postgres"], netip.Addr{}, netip.AddrPortFrom(intruder, 80)) {
				t.Error("postgres reached the intruder")
			}
			if !dial(env.ns["api"], netip.Addr{}, netip.AddrPortFrom(pg.IPv4, 5432)) {
				t.Error("api -> postgres:5432, a declared flow, is cut")
			}
		})
	}
}
