package bridgeport

import (
	"fmt"
	"net"
	"sync"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Table is the host's bridge ports kept current from rtnetlink's link
// events, so that reading them costs a copy, not a dump of every link of
// the host (hundreds of them with as many containers, and slow while
// Docker creates veths under a storm of starts). The owner feeds it the
// events (Apply) and loads it whole when some were lost (Load).
type Table struct {
	mu     sync.Mutex
	c      *netlink.Conn // reads peers' MACs
	loaded bool
	links  map[int]link // bridges and veths of the host's namespace
}

// NewTable opens a table; it is empty until Load.
func NewTable() (*Table, error) {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return nil, fmt.Errorf("bridge ports: cannot open rtnetlink: %w", err)
	}
	return &Table{c: c, links: map[int]link{}}, nil
}

// Close closes the table's connection.
func (t *Table) Close() error { return t.c.Close() }

// Load reads every link again. Subscribe to the events before loading,
// so that none falls between.
func (t *Table) Load() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	links, err := dumpLinks(t.c)
	if err != nil {
		return fmt.Errorf("bridge ports: listing links: %w", err)
	}
	clear(t.links)
	for _, l := range links {
		if l.kind == "veth" || l.kind == "bridge" {
			t.links[l.index] = t.withPeerMAC(l)
		}
	}
	t.loaded = true
	return nil
}

// withPeerMAC returns a port with its peer's MAC read (its veth may have
// moved or been renamed, or its peer come up); other links as they are.
func (t *Table) withPeerMAC(l link) link {
	if l.kind == "veth" && l.master > 0 && l.nsid >= 0 {
		l.mac = nil
		if peer, err := getLink(t.c, l.peer, l.nsid); err == nil {
			l.mac = peer.mac
		}
	}
	return l
}

// Apply takes one rtnetlink message: RTM_NEWLINK and RTM_DELLINK change
// the table, others are ignored. One goroutine applies events. Messages an event carries about other
// families (a bridge's own port events, AF_BRIDGE) are ignored too.
func (t *Table) Apply(m netlink.Message) {
	if m.Header.Type != unix.RTM_NEWLINK && m.Header.Type != unix.RTM_DELLINK || len(m.Data) < unix.SizeofIfInfomsg || m.Data[0] != unix.AF_UNSPEC {
		return
	}
	l, err := parseLink(m.Data)
	if err != nil {
		return
	}
	t.mu.Lock()
	if m.Header.Type == unix.RTM_DELLINK {
		delete(t.links, l.index)
		t.mu.Unlock()
		return
	}
	if l.kind == "" {
		// An event without link info (some carry none): keep what the
		// table knew of its kind.
		l.kind = t.links[l.index].kind
	}
	t.mu.Unlock()
	if l.kind != "veth" && l.kind != "bridge" {
		return
	}
	l = t.withPeerMAC(l) // not under the lock: readers do not wait for it
	t.mu.Lock()
	t.links[l.index] = l
	t.mu.Unlock()
}

// Ports returns the bridge ports, as List would read them; false until
// the table is loaded.
func (t *Table) Ports() ([]Port, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.loaded {
		return nil, false
	}
	var out []Port
	for _, l := range t.links {
		br, ok := t.links[l.master]
		if l.kind != "veth" || !ok || br.kind != "bridge" || l.nsid < 0 {
			continue
		}
		out = append(out, Port{Index: l.index, Name: l.name, Bridge: br.name, PeerMAC: net.HardwareAddr(l.mac)})
	}
	return out, true
}
