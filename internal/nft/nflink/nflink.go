// Package nflink loads zonewarden's ruleset (an enforce.Ruleset) into the
// kernel over netlink with github.com/google/nftables, without nft: no
// text to parse, and no cache of the table to read before a change.
//
// Like internal/nft.Apply, every call is one transaction (one netlink
// batch): the kernel takes all of it or none of it.
//
//   - Update sends only the set elements that changed between two
//     rulesets with the same chains (admitting or removing a container):
//     its cost follows the size of the change, not of the table.
//   - Sync replaces the table (delete and create it, its sets with their
//     elements, its chains and rules), as nft -f of Ruleset.Script does.
//     The rules are compiled from Ruleset.Chains into the expressions nft
//     would generate, so `nft list table` shows the same table, with one
//     difference: the table has no comment (google/nftables v0.3.0 cannot
//     set a table's user data).
//
// Loading needs CAP_NET_ADMIN, as nft does.
package nflink

import (
	"errors"
	"fmt"
	"sync"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/zonewarden/zonewarden/internal/enforce"
	"golang.org/x/sys/unix"
)

// maxElemBytes bounds the elements of one netlink message: their list is
// one attribute, whose length is 16 bits.
const maxElemBytes = 60_000

// Loader loads rulesets over one netlink socket. It is safe for
// concurrent use; loads are serialised.
type Loader struct {
	mu     sync.Mutex
	closed bool
	netns  int // the network namespace's file descriptor; -1: the caller's
	conn   *nftables.Conn
	sock   *netlink.Conn // conn's socket, to size its buffers
	// The socket's buffer sizes so far (0: the system's default).
	sndbuf, rcvbuf int
}

// New opens a netlink socket for loading.
func New() (*Loader, error) {
	return NewIn(-1)
}

// NewIn opens a netlink socket for loading into the network namespace
// whose file descriptor is netns (-1: the caller's). The descriptor must
// stay open while the loader is used.
func NewIn(netns int) (*Loader, error) {
	l := &Loader{netns: netns}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Loader) open() error {
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(func(c *netlink.Conn) error {
		l.sock = c
		return nil
	})}
	if l.netns >= 0 {
		opts = append(opts, nftables.WithNetNSFd(l.netns))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("nflink: cannot open a netlink socket: %w", err)
	}
	l.conn, l.sndbuf, l.rcvbuf = conn, 0, 0
	return nil
}

// Close closes the socket.
func (l *Loader) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.conn == nil {
		return nil
	}
	err := l.conn.CloseLasting()
	l.conn = nil
	return err
}

// Update loads the change from old (what the kernel holds) to r in one
// transaction: the set elements that changed when the chains are the
// same, else (or when old is nil) a full Sync of r. It is Diff and Apply.
func (l *Loader) Update(old, r *enforce.Ruleset) error {
	c, err := Diff(old, r)
	if err != nil {
		return err
	}
	return l.Apply(c)
}

// Sync replaces r's table with r (creating it the first time) in one
// transaction. Nothing else on the host is touched.
func (l *Loader) Sync(r *enforce.Ruleset) error {
	return l.Apply(&Changes{table: r.Family() + " " + r.TableName(), full: r})
}

// Changes is what loads r over old: set elements to delete and add, or a
// full sync. Diff computes it; Apply loads it.
type Changes struct {
	table string
	sets  []setChanges
	full  *enforce.Ruleset
}

type setChanges struct {
	layout         *layout
	del, add       []string // elements of the ruleset
	delEnc, addEnc []nftables.SetElement
}

// Full reports whether the changes are a full sync (the chains differ).
func (c *Changes) Full() bool { return c.full != nil }

// Empty reports whether nothing changes.
func (c *Changes) Empty() bool { return c.full == nil && len(c.sets) == 0 }

// Count returns the numbers of elements added and removed; an element
// whose comment changes counts in both.
func (c *Changes) Count() (added, removed int) {
	for _, s := range c.sets {
		added += len(s.add)
		removed += len(s.del)
	}
	return added, removed
}

// Diff computes the changes from old to r, as Ruleset.Update does
// (Ruleset.ElementChanges): an element of old that r lacks is deleted, one
// that r adds or whose comment changed is added (after deleting the old
// one). When the chains differ, or old is nil, the changes are a full
// sync of r. Its cost follows the size of the rulesets, as Update's does.
func Diff(old, r *enforce.Ruleset) (*Changes, error) {
	c := &Changes{table: r.Family() + " " + r.TableName()}
	if old == nil || old.TableName() != r.TableName() || old.Family() != r.Family() || old.Chains() != r.Chains() {
		c.full = r
		return c, nil
	}
	t := table(r)
	removed, added := r.ElementChanges(old)
	for _, d := range r.Sets() {
		sc := setChanges{del: removed[d.Name], add: added[d.Name]}
		if len(sc.del) == 0 && len(sc.add) == 0 {
			continue
		}
		l, err := newLayout(d, t)
		if err != nil {
			return nil, err
		}
		sc.layout = l
		for _, e := range sc.del {
			enc, err := l.encode(e, "")
			if err != nil {
				return nil, err
			}
			sc.delEnc = append(sc.delEnc, enc...)
		}
		for _, e := range sc.add {
			comment, _ := r.ElementComment(d.Name, e)
			enc, err := l.encode(e, comment)
			if err != nil {
				return nil, err
			}
			sc.addEnc = append(sc.addEnc, enc...)
		}
		c.sets = append(c.sets, sc)
	}
	return c, nil
}

// table is the table of r: inet for the policy, bridge for the endpoint
// binding.
func table(r *enforce.Ruleset) *nftables.Table {
	if r.Family() == "bridge" {
		return &nftables.Table{Name: r.TableName(), Family: nftables.TableFamilyBridge}
	}
	return &nftables.Table{Name: r.TableName(), Family: nftables.TableFamilyINet}
}

// Apply loads the changes in one transaction.
func (l *Loader) Apply(c *Changes) error {
	if c.Empty() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("nflink: the loader is closed")
	}
	if l.conn == nil { // dropped after an error
		if err := l.open(); err != nil {
			return err
		}
	}
	var b batch
	if c.full != nil {
		if err := b.sync(c.full); err != nil {
			return err
		}
	} else {
		for i := range c.sets {
			s := &c.sets[i]
			b.elements(s.layout.set, s.delEnc, true)
			b.elements(s.layout.set, s.addEnc, false)
		}
	}
	if err := l.flush(&b); err != nil {
		return fmt.Errorf("nflink: loading table %s: %w", c.table, err)
	}
	return nil
}

// A batch is the operations of one transaction, queued on a Conn at
// flush time (so that an error while building it queues nothing).
type batch struct {
	ops   []func(*nftables.Conn) error
	bytes int // estimate of the batch's size
}

func (b *batch) add(bytes int, op func(*nftables.Conn) error) {
	b.ops = append(b.ops, op)
	b.bytes += bytes + 64
}

// elements queues adding or deleting elements, in messages of at most
// maxElemBytes of elements each.
func (b *batch) elements(s *nftables.Set, elems []nftables.SetElement, del bool) {
	for len(elems) > 0 {
		n, size := 0, 0
		for n < len(elems) && (n == 0 || size+elemSize(&elems[n]) <= maxElemBytes) {
			size += elemSize(&elems[n])
			n++
		}
		chunk := elems[:n:n]
		elems = elems[n:]
		b.add(size, func(c *nftables.Conn) error {
			if del {
				return c.SetDeleteElements(s, chunk)
			}
			return c.SetAddElements(s, chunk)
		})
	}
}

// sync queues a full replace of r's table.
func (b *batch) sync(r *enforce.Ruleset) error {
	t := table(r)
	sets := map[string]*layout{}
	var layouts []*layout
	var elems [][]nftables.SetElement
	for i, d := range r.Sets() {
		l, err := newLayout(d, t)
		if err != nil {
			return err
		}
		l.set.ID = uint32(i + 1) // unique in the transaction; rules look sets up by name and ID
		enc, err := l.encodeAll(r)
		if err != nil {
			return err
		}
		sets[d.Name] = l
		layouts = append(layouts, l)
		elems = append(elems, enc)
	}
	chains, err := compileChains(r.ChainRules(), r.LogGroup(), t, sets)
	if err != nil {
		return err
	}
	b.add(0, func(c *nftables.Conn) error {
		c.AddTable(t) // so that deleting it cannot fail
		c.DelTable(t)
		c.AddTable(t)
		for _, ch := range chains {
			c.AddChain(ch.chain)
		}
		return nil
	})
	for i, l := range layouts {
		b.add(256, func(c *nftables.Conn) error { return c.AddSet(l.set, nil) })
		b.elements(l.set, elems[i], false)
	}
	for _, ch := range chains {
		for _, ru := range ch.rules {
			b.add(512, func(c *nftables.Conn) error {
				c.AddRule(&nftables.Rule{Table: t, Chain: ch.chain, Exprs: ru.exprs, UserData: ru.userData()})
				return nil
			})
		}
	}
	return nil
}

// flush sends the batch and waits for the kernel's answer to each
// message. The socket's buffers grow to hold the batch and the
// acknowledgements. After an error the connection is dropped: the
// library keeps a failed serialisation's error, and queued messages.
func (l *Loader) flush(b *batch) (err error) {
	defer func() {
		if err != nil {
			_ = l.conn.CloseLasting()
			l.conn = nil
		}
	}()
	if err := l.grow(b.bytes+(64<<10), len(b.ops)*2048+(64<<10)); err != nil {
		return err
	}
	for _, op := range b.ops {
		if err := op(l.conn); err != nil {
			return err
		}
	}
	return l.conn.Flush()
}

// grow raises the socket's send and receive buffers to at least snd and
// rcv bytes (beyond net.core.wmem_max and rmem_max: CAP_NET_ADMIN, which
// loading needs anyway). The kernel refuses a batch larger than the send
// buffer, and drops acknowledgements that overflow the receive buffer.
func (l *Loader) grow(snd, rcv int) error {
	if snd <= l.sndbuf && rcv <= l.rcvbuf {
		return nil
	}
	if l.sock == nil {
		return errors.New("no netlink socket")
	}
	raw, err := l.sock.SyscallConn()
	if err != nil {
		return err
	}
	snd, rcv = max(snd, l.sndbuf, 1<<20), max(rcv, l.rcvbuf, 1<<20)
	var serr error
	err = raw.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, snd); serr != nil {
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcv)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("sizing the netlink socket's buffers: %w", err)
	}
	l.sndbuf, l.rcvbuf = snd, rcv
	return nil
}

// HasTable reports whether the inet table name exists.
func (l *Loader) HasTable(name string) (bool, error) {
	return l.hasTable(nftables.TableFamilyINet, name)
}

// HasTables reports whether both of zonewarden's tables of that name
// exist: the policy (inet) and the endpoint binding (bridge).
func (l *Loader) HasTables(name string) (bool, error) {
	ok, err := l.hasTable(nftables.TableFamilyINet, name)
	if err != nil || !ok {
		return ok, err
	}
	return l.hasTable(nftables.TableFamilyBridge, name)
}

func (l *Loader) hasTable(family nftables.TableFamily, name string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return false, fmt.Errorf("nflink: loader closed")
	}
	tables, err := l.conn.ListTablesOfFamily(family)
	if err != nil {
		return false, err
	}
	for _, t := range tables {
		if t.Name == name {
			return true, nil
		}
	}
	return false, nil
}

// PortID returns the netlink port id of the loader's socket: nf_tables
// notifications of the transactions it sends carry it, which tells them
// from other processes' (the process id in them is of the initial PID
// namespace, not of a container's). 0 when closed.
func (l *Loader) PortID() uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sock == nil || l.conn == nil {
		return 0
	}
	return l.sock.PID()
}
