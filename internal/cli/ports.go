package cli

import (
	"strings"

	"github.com/zonewarden/zonewarden/internal/bridgeport"
	"github.com/zonewarden/zonewarden/internal/inventory"
)

// bindPorts finds the bridge port of each endpoint of a live host whose
// Docker daemon runs on this machine (a unix socket), for the endpoint
// binding (enforce.CompilePorts). It returns the endpoints it could not
// bind, and why; nil when the host is not this machine's.
func bindPorts(snap *inventory.Snapshot) []string {
	if snap.Source.Kind != "docker" || !strings.HasPrefix(snap.Source.Detail, "unix://") {
		return nil
	}
	ports, err := bridgeport.List()
	if err != nil {
		return []string{err.Error()}
	}
	return bridgeport.Match(snap, ports)
}
