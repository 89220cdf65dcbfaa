package cli

import (
	"context"
	"fmt"

	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/nft"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/reach"
	"github.com/zonewarden/zonewarden/internal/state"
	"github.com/zonewarden/zonewarden/internal/verify"
)

// analyze builds the reachability of a host. On a live host where
// zonewarden's firewall is installed (and ignoreFirewall is not set), the
// edges follow the policy that apply installed, and a line on stderr says
// so.
func (a *app) analyze(ctx context.Context, snap *inventory.Snapshot, ignoreFirewall bool) *reach.Analysis {
	if ignoreFirewall || snap.Source.Kind != "docker" {
		return reach.Analyze(snap, reach.Options{})
	}
	if listing, err := nft.List(ctx, "inet", enforce.Table); err != nil || listing == "" {
		return reach.Analyze(snap, reach.Options{})
	}
	applied, err := state.Load()
	if err != nil || applied == nil || len(applied.Policy) == 0 {
		fmt.Fprintf(a.stderr, "zonewarden: note: a zonewarden firewall is installed, but no record of its policy (in %s): answering as Docker alone would\n", state.Dir())
		return reach.Analyze(snap, reach.Options{})
	}
	p, err := policy.Parse(applied.PolicyPath, applied.Policy, policy.Options{})
	if err != nil {
		fmt.Fprintf(a.stderr, "zonewarden: note: the recorded policy does not read (%s): answering as Docker alone would\n", oneLine(err))
		return reach.Analyze(snap, reach.Options{})
	}
	b, _ := model.Bind(p, snap)
	fmt.Fprintf(a.stderr, "zonewarden: following the firewall installed from %s at %s (--ignore-firewall: as Docker alone would)\n",
		applied.PolicyPath, applied.Time.Format("2006-01-02 15:04:05"))
	return reach.Analyze(snap, reach.Options{Narrow: verify.Narrower(b)})
}
