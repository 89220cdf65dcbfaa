package firewall

import (
	"context"
	"fmt"
	"time"

	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/nft"
	"github.com/zonewarden/zonewarden/internal/nft/nflink"
	"github.com/zonewarden/zonewarden/internal/state"
)

// Applier loads zonewarden's rulesets into the kernel and remembers what
// it loaded: `zonewarden apply` and the agent both use one. Each load is
// one transaction, over netlink; with Options.Fallback a batch the kernel
// refuses is tried again with nft -f, whose error names the offending
// line. A full sync of the policy table ends the tracked connections it
// no longer allows.
type Applier struct {
	nl *nflink.Loader
	// load is the netlink loader; fallback, when set, nft -f.
	load, fallback Loader
	// installed is what this applier loaded last, by family ("inet",
	// "bridge"); nil after Forget or a failed load.
	installed map[string]*enforce.Ruleset
}

// Options tune an Applier.
type Options struct {
	// Fallback retries a refused netlink batch with nft -f. The agent
	// leaves it off: its table watch tells its own changes by the
	// netlink socket they came from.
	Fallback bool
}

// Open returns an applier with its netlink socket (CAP_NET_ADMIN).
func Open(o Options) (*Applier, error) {
	l, err := nflink.New()
	if err != nil {
		return nil, fmt.Errorf("cannot open netlink to load the firewall (needs CAP_NET_ADMIN): %w", err)
	}
	a := &Applier{nl: l, load: netlinkLoader{l}, installed: map[string]*enforce.Ruleset{}}
	if o.Fallback {
		a.fallback = textLoader{}
	}
	return a, nil
}

// Loader loads rulesets into the kernel, each call one transaction: the
// kernel takes all of it or none of it.
type Loader interface {
	// Sync replaces rs's table with rs.
	Sync(ctx context.Context, rs *enforce.Ruleset) error
	// Update changes rs's table from old to rs, rulesets with the same
	// chains: the set elements that differ, which it counts.
	Update(ctx context.Context, old, rs *enforce.Ruleset) (added, removed int, err error)
}

// netlinkLoader loads over netlink (nflink): no text to parse, and an
// update costs the size of the change.
type netlinkLoader struct{ nl *nflink.Loader }

func (l netlinkLoader) Sync(_ context.Context, rs *enforce.Ruleset) error { return l.nl.Sync(rs) }

func (l netlinkLoader) Update(_ context.Context, old, rs *enforce.Ruleset) (int, int, error) {
	c, err := nflink.Diff(old, rs)
	if err != nil {
		return 0, 0, err
	}
	added, removed := c.Count()
	if c.Empty() {
		return 0, 0, nil
	}
	return added, removed, l.nl.Apply(c)
}

// textLoader loads with nft -f: slower, but its errors name the line of
// the script the kernel refused.
type textLoader struct{}

func (textLoader) Sync(ctx context.Context, rs *enforce.Ruleset) error {
	return nft.Apply(ctx, rs.Script())
}

func (textLoader) Update(ctx context.Context, old, rs *enforce.Ruleset) (int, int, error) {
	removed, added := rs.ElementChanges(old)
	var na, nr int
	for _, l := range added {
		na += len(l)
	}
	for _, l := range removed {
		nr += len(l)
	}
	if u := rs.Update(old); u != "" {
		return na, nr, nft.Apply(ctx, u)
	}
	return na, nr, nil
}

// Close releases the socket.
func (a *Applier) Close() error { return a.nl.Close() }

// Netlink is the applier's socket, for a watch of the tables that must
// tell the applier's own changes from others' (PortID) and check that
// they are there (HasTables).
func (a *Applier) Netlink() *nflink.Loader { return a.nl }

// Installed returns what the applier last loaded for family, or nil.
func (a *Applier) Installed(family string) *enforce.Ruleset { return a.installed[family] }

// Forget drops what the applier knows of the kernel (someone else changed
// the tables): the next Apply is a full sync.
func (a *Applier) Forget() { clear(a.installed) }

// Applied says what Apply did.
type Applied struct {
	// Full: the table was replaced; else only set elements changed
	// (Added, Removed).
	Full           bool
	Added, Removed int
	// Killed counts the tracked connections a full sync of the policy
	// table ended; ConntrackErr says why none could be (the ruleset is
	// loaded all the same).
	Killed       int
	ConntrackErr error
}

// Apply brings rs's table from what the applier last loaded to rs: a full
// sync when full is set, nothing was loaded yet, or the chains differ;
// else the set elements that changed. On error nothing changed in the
// kernel, and the next Apply is a full sync.
func (a *Applier) Apply(ctx context.Context, rs *enforce.Ruleset, full bool) (Applied, error) {
	fam := rs.Family()
	was := a.installed[fam]
	delete(a.installed, fam)
	var res Applied
	if !full && was != nil && was.TableName() == rs.TableName() && was.Chains() == rs.Chains() {
		var err error
		if res.Added, res.Removed, err = a.load.Update(ctx, was, rs); err != nil {
			return res, fmt.Errorf("loading the change of table %s %s: %w", fam, rs.TableName(), err)
		}
		a.installed[fam] = rs
		return res, nil
	}
	if err := a.sync(ctx, rs); err != nil {
		return res, fmt.Errorf("loading table %s %s: %w", fam, rs.TableName(), err)
	}
	a.installed[fam] = rs
	res.Full, res.Added = true, rs.Size()
	if fam == "inet" {
		res.Killed, res.ConntrackErr = EndForbidden(rs)
	}
	return res, nil
}

// sync replaces rs's table in one transaction, with the fallback when
// the kernel refuses the first.
func (a *Applier) sync(ctx context.Context, rs *enforce.Ruleset) error {
	err := a.load.Sync(ctx, rs)
	if err != nil && a.fallback != nil {
		return a.fallback.Sync(ctx, rs)
	}
	return err
}

// Preflight makes sure, before anything changes, that the host can
// enforce a ruleset: nftables is usable, and bridged traffic between the
// containers of one network passes the firewall (br_netfilter and its
// sysctls, turned on when they are not: without them flows inside a zone
// would pass unfiltered). It returns what it changed, one line each.
func Preflight(ctx context.Context) ([]string, error) {
	if err := nft.Check(ctx, "add table inet zonewarden_preflight\n"); err != nil {
		return nil, fmt.Errorf("nftables is not usable here: %w", err)
	}
	return EnsureBridgeFiltering(ctx)
}

// Record keeps what was applied — the policy file, its canonical text and
// the ruleset — for status, plan and reach when no agent runs.
func Record(policyPath string, policy []byte, rs *enforce.Ruleset) error {
	return state.Save(state.Applied{PolicyPath: policyPath, Policy: policy, Script: rs.Script(), Time: time.Now()})
}
