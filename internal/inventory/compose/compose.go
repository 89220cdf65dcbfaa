// Package compose reads compose files into an inventory.Snapshot: the
// networks and containers that "docker compose up" would create.
package compose

import (
	"context"

	"github.com/compose-spec/compose-go/v2/cli"

	"github.com/zonewarden/zonewarden/internal/inventory"
)

// Load reads the compose files (merged in order, as docker compose -f a -f b
// does) and returns the host they describe.
func Load(ctx context.Context, files []string) (*inventory.Snapshot, error) {
	_ = cli.WithOsEnv
	panic("not implemented")
}
