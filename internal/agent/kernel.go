package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/zonewarden/zonewarden/internal/bridgeport"
	"github.com/zonewarden/zonewarden/internal/inventory"
)

// watchTable follows nf_tables' change notifications and marks the table
// dirty when a transaction of another process touched it (a table
// deleted, a rule or set element changed by hand, another tool flushing
// the ruleset). The next reconcile then reloads the whole table in one
// transaction. Transactions sent from the agent's loader socket are its
// own.
//
// A notification burst too large for the socket (ENOBUFS, e.g. while
// the agent itself loads a big ruleset) is followed by a check of the
// table: if it is gone it is restored.
func (a *Agent) watchTable(ctx context.Context) {
	// Belt and braces: whatever becomes of the notifications, a missing
	// table is noticed within half a second (one small netlink dump).
	go func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				a.checkTable()
			}
		}
	}()
	a.retry(ctx, a.monitorTable, "cannot watch nftables changes; retrying (the periodic resync still repairs drift)")
}

// retry runs watch until ctx is done, again after each error (logged with
// why), backing off from 100 ms to 10 s.
func (a *Agent) retry(ctx context.Context, watch func(context.Context) error, why string) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := watch(ctx)
		if ctx.Err() != nil {
			return
		}
		a.log.Warn(why, "error", err.Error(), "in", backoff.String())
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (a *Agent) monitorTable(ctx context.Context) error {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		return err
	}
	_ = c.SetReadBuffer(8 << 20)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	touched := false // the current transaction touched our table
	for {
		msgs, err := c.Receive()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, unix.ENOBUFS) {
				a.log.Debug("nftables notifications overflowed; checking the table")
				touched = false
				a.checkTable()
				continue
			}
			return err
		}
		for _, m := range msgs {
			if m.Header.Type>>8 != netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES) {
				continue
			}
			switch typ := int(m.Header.Type & 0xff); typ {
			case unix.NFT_MSG_NEWGEN:
				// The notification's port id is the sender's socket:
				// the agent's own transactions all go through its
				// loader.
				if touched && (a.fw == nil || m.Header.PID != a.fw.Netlink().PortID()) {
					a.log.Debug("zonewarden's table changed by another process", "pid", genPID(m.Data), "port", m.Header.PID)
					a.mark(func(d *dirty) { d.table = true })
				}
				touched = false
			default:
				if tableOf(m.Data) == a.cfg.Table {
					touched = true
				}
			}
		}
	}
}

// checkTable marks the table dirty when it is not there.
func (a *Agent) checkTable() {
	if a.fw == nil {
		return
	}
	ok, err := a.fw.Netlink().HasTables(a.cfg.Table)
	if err == nil && !ok {
		a.mark(func(d *dirty) { d.table = true })
	}
}

// tableOf returns the table an nf_tables notification is about: the
// first attribute after the nfgenmsg header (NFTA_TABLE_NAME, or the
// object's NFTA_*_TABLE) of the inet or bridge family (zonewarden's two
// tables share a name); "" otherwise.
func tableOf(data []byte) string {
	if len(data) < 4 || (data[0] != unix.NFPROTO_INET && data[0] != unix.NFPROTO_BRIDGE) {
		return ""
	}
	ad, err := netlink.NewAttributeDecoder(data[4:])
	if err != nil {
		return ""
	}
	for ad.Next() {
		if ad.Type() == 1 {
			return ad.String()
		}
	}
	return ""
}

// genPID returns the process (thread) id of a NEWGEN notification.
func genPID(data []byte) int {
	if len(data) < 4 {
		return 0
	}
	ad, err := netlink.NewAttributeDecoder(data[4:])
	if err != nil {
		return 0
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		if ad.Type() == unix.NFTA_GEN_PROC_PID {
			return int(ad.Uint32())
		}
	}
	return 0
}

// watchLinks wakes the reconcile loop when a link enslaved to a bridge
// appears or changes: a container's port, created before its process
// starts (and, on Docker 28 under a storm of starts, many seconds before
// Docker's events about it). The next reconcile reads the endpoints of
// that bridge's network, admitting the container by the address Docker
// gave it, and binds its addresses to the port (hostView.bindPorts).
// Docker stores the endpoint just after it creates the veth, so the
// bridge is read again a little later too.
func (a *Agent) watchLinks(ctx context.Context) {
	a.retry(ctx, a.monitorLinks, "cannot watch network links; new containers are admitted on Docker's events only")
}

func (a *Agent) monitorLinks(ctx context.Context) error {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{Groups: unix.RTMGRP_LINK})
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetReadBuffer(4 << 20)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	// The ports' table, kept from these events (loaded once subscribed:
	// none falls between).
	table, err := bridgeport.NewTable()
	if err != nil {
		return err
	}
	defer table.Close()
	if err := table.Load(); err != nil {
		return err
	}
	a.host.table.Store(table)
	defer a.host.table.Store(nil)
	foreign := &foreignBridges{asked: map[string]*map[string]inventory.Network{}}
	for {
		msgs, err := c.Receive()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, unix.ENOBUFS) {
				if err := table.Load(); err != nil {
					return err
				}
				// Some were lost: read every bridge's network again, off
				// the loop (its list of networks has not changed: a new
				// network comes with its own event).
				a.host.reader.requestAll()
				continue
			}
			return err
		}
		for _, m := range msgs {
			table.Apply(m)
		}
		bridges := map[string]bool{}
		for _, m := range msgs {
			if m.Header.Type != unix.RTM_NEWLINK {
				continue
			}
			if master, nsid := portOf(m.Data); master > 0 {
				if i, err := net.InterfaceByIndex(master); err == nil {
					bridges[i.Name] = true
				}
				if nsid >= 0 {
					a.host.admitter.newPort(nsid)
				}
			}
		}
		if len(bridges) == 0 {
			continue
		}
		mark := func() {
			var unknown []string
			for b := range bridges {
				if !a.host.reader.requestBridge(b) && !foreign.seen(b, a.host.reader.bridges.Load()) {
					unknown = append(unknown, b)
				}
			}
			if len(unknown) == 0 {
				return // the reader wakes the loop when it has read them
			}
			a.mark(func(d *dirty) {
				d.networks = true // a network the agent has not read yet
				if d.bridges == nil {
					d.bridges = map[string]bool{}
				}
				for _, b := range unknown {
					d.bridges[b] = true
				}
			})
		}
		mark()
		for _, after := range []time.Duration{5 * time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond} {
			time.AfterFunc(after, mark)
		}
	}
}

// portOf returns the master (IFLA_MASTER) of the link an RTM_NEWLINK
// message is about, 0 when it has none, and the namespace id of its peer
// (IFLA_LINK_NETNSID), -1 when it names none.
func portOf(data []byte) (master, nsid int) {
	nsid = -1
	if len(data) < unix.SizeofIfInfomsg {
		return 0, nsid
	}
	ad, err := netlink.NewAttributeDecoder(data[unix.SizeofIfInfomsg:])
	if err != nil {
		return 0, nsid
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.IFLA_MASTER:
			master = int(ad.Uint32())
		case unix.IFLA_LINK_NETNSID:
			nsid = int(ad.Int32())
		}
	}
	return master, nsid
}

// foreignBridges remembers the bridges whose ports made the reconcile
// read Docker's networks: one that no network owns after that read is
// not Docker's (a bridge of the operator's, or of a test), and its ports
// must not make every later reconcile read the networks again, which on
// a daemon busy with a storm of starts takes tens of milliseconds that a
// starting container's admission waits behind.
type foreignBridges struct {
	mu    sync.Mutex
	asked map[string]*map[string]inventory.Network // bridge: the networks as known when it was asked about
}

// seen reports whether bridge b was asked about before and the networks
// were read since (now is the networks as known now); it records the ask
// otherwise.
func (f *foreignBridges) seen(b string, now *map[string]inventory.Network) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	at, ok := f.asked[b]
	if ok && at != now {
		return true
	}
	if !ok {
		f.asked[b] = now
	}
	return false
}
