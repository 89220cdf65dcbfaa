package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/zonewarden/zonewarden/internal/conntrack"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/learn"
)

// Learner records the connections the host makes (conntrack's new
// connections, named) and appends them to a flows file: `zonewarden
// learn`, and the agent's --learn.
type Learner struct {
	Rec  *learn.Recorder
	w    *conntrack.Watcher
	path string
	// own are the host's interface addresses, read again at most every
	// ownTTL: SetHost runs on every reconcile of the agent.
	mu    sync.Mutex
	own   []netip.Addr
	ownAt time.Time
}

// ownTTL is how long the host's own addresses are taken as read.
const ownTTL = 10 * time.Second

// NewLearner subscribes to new connections, named as of snap, to be
// appended to the flows file at path.
func NewLearner(path string, snap *inventory.Snapshot) (*Learner, error) {
	w, err := conntrack.Watch(32 << 20)
	if err != nil {
		return nil, err
	}
	l := &Learner{w: w, path: path}
	l.Rec = learn.NewRecorder(learn.NewNamer(snap, l.ownAddrs()))
	return l, nil
}

// SetHost names connections from now on as of snap (and the unknown
// addresses recorded so far, where snap knows them).
func (l *Learner) SetHost(snap *inventory.Snapshot) {
	l.Rec.SetNamer(learn.NewNamer(snap, l.ownAddrs()))
}

// ownAddrs returns the host's interface addresses, read at most every
// ownTTL.
func (l *Learner) ownAddrs() []netip.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.own == nil || time.Since(l.ownAt) > ownTTL {
		l.own, l.ownAt = interfaceAddrs(), time.Now()
	}
	return l.own
}

// Run records until ctx ends.
func (l *Learner) Run(ctx context.Context) error { return l.w.Record(ctx, l.Rec) }

// Stats returns the new connections read and the socket overflows (each
// lost one or more).
func (l *Learner) Stats() (events, overflows int64) { return l.w.Stats() }

// Flush appends the records since the last flush to the file and
// returns them. Records it cannot write stay for the next flush.
func (l *Learner) Flush() ([]learn.Record, error) {
	recs := l.Rec.Take()
	if len(recs) == 0 {
		return nil, nil
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		l.Rec.Restore(recs)
		return nil, fmt.Errorf("recording flows: %w", err)
	}
	err = learn.Write(f, recs)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		l.Rec.Restore(recs) // a partial line may be written: Read rejects it, so say so
		return nil, fmt.Errorf("recording flows in %s: %w (the file may end in a partial line: remove it before reading the file)", l.path, err)
	}
	return recs, nil
}

// Close ends the subscription.
func (l *Learner) Close() error { return l.w.Close() }

// interfaceAddrs returns the addresses of the host's interfaces.
func interfaceAddrs() []netip.Addr {
	own := []netip.Addr{}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				own = append(own, p.Addr())
			}
		}
	}
	return own
}

// learn records connections (--learn) and appends them to the file every
// LearnFlush, and once more at shutdown.
func (a *Agent) learn(ctx context.Context) {
	l := a.learner.Load()
	period := a.cfg.LearnFlush
	if period <= 0 {
		period = 30 * time.Second
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := l.Run(ctx); err != nil {
			a.log.Error("learning stopped: cannot read conntrack events", "error", err.Error())
		}
	}()
	a.log.Info("learning the host's connections", "file", a.cfg.LearnPath)
	tick := time.NewTicker(period)
	defer tick.Stop()
	var lastOverflows int64
	flush := func() {
		recs, err := l.Flush()
		if err != nil {
			a.log.Warn("cannot record the flows learnt; they are kept for the next try", "error", err.Error())
		}
		if _, o := l.Stats(); o > lastOverflows {
			a.log.Warn("learn: conntrack events lost (the kernel's queue overflowed)", "overflows", o-lastOverflows)
			lastOverflows = o
		}
		if len(recs) > 0 {
			a.log.Debug("flows recorded", "flows", len(recs), "file", a.cfg.LearnPath)
		}
	}
	for {
		select {
		case <-tick.C:
			flush()
		case <-done:
			flush()
			return
		}
	}
}
