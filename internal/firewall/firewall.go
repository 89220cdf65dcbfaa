// Package firewall installs a compiled ruleset on the host: the nft
// transaction, then the end of the tracked connections it no longer
// allows.
package firewall

import (
	"context"

	"github.com/zonewarden/zonewarden/internal/conntrack"
	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/nft"
)

// Result says what Load did.
type Result struct {
	// Killed counts the tracked connections ended.
	Killed int
	// ConntrackErr is set when the connections could not be listed or
	// ended; the ruleset is loaded all the same.
	ConntrackErr error
}

// Load replaces the ruleset's table with rs in one transaction (script:
// rs.Script(), or an update from the installed ruleset), then ends every
// tracked connection rs forbids. On a failed transaction nothing changed
// and the previous ruleset stays in force.
func Load(ctx context.Context, rs *enforce.Ruleset, script string) (Result, error) {
	if err := nft.Apply(ctx, script); err != nil {
		return Result{}, err
	}
	killed, err := conntrack.Kill(func(c conntrack.Conn) bool {
		drop, _ := rs.Forbids(c.Src, c.Dst, c.Dialled, c.Proto, c.Port, c.DialledTo)
		return drop
	})
	return Result{Killed: killed, ConntrackErr: err}, nil
}
