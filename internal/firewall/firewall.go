// Package firewall installs a compiled ruleset on the host: the nft
// transaction, then the end of the tracked connections it no longer
// allows.
package firewall

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/zonewarden/zonewarden/internal/conntrack"
	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/nft"
	"github.com/zonewarden/zonewarden/internal/nft/nflink"
)

// Result says what Load did.
type Result struct {
	// Killed counts the tracked connections ended.
	Killed int
	// ConntrackErr is set when the connections could not be listed or
	// ended; the ruleset is loaded all the same.
	ConntrackErr error
}

// Load replaces the ruleset's table with rs in one transaction, then ends
// every tracked connection rs forbids. The table is loaded over netlink in
// one batch (no text to parse: a 230k-element ruleset in ~1.3 s); if the
// kernel refuses it, script (rs.Script()) is tried with nft -f, whose
// error names the offending line. On a failed transaction nothing changed
// and the previous ruleset stays in force.
func Load(ctx context.Context, rs *enforce.Ruleset, script string) (Result, error) {
	if err := replace(ctx, rs, script); err != nil {
		return Result{}, err
	}
	return EndForbidden(rs), nil
}

// replace loads rs's table in one transaction: over netlink, or with
// script through nft -f when the kernel refuses the batch.
func replace(ctx context.Context, rs *enforce.Ruleset, script string) error {
	if err := syncNetlink(rs); err != nil {
		return nft.Apply(ctx, script)
	}
	return nil
}

// LoadPorts replaces the endpoint binding's bridge table with ports
// (enforce.CompilePorts) in one transaction, over netlink, or with nft -f
// when the kernel refuses the batch (its error names the line).
func LoadPorts(ctx context.Context, ports *enforce.Ruleset) error {
	return replace(ctx, ports, ports.Script())
}

// EndForbidden ends every tracked connection rs forbids, so that a
// tightened policy does not leave sessions open that it no longer allows.
func EndForbidden(rs *enforce.Ruleset) Result {
	killed, err := conntrack.Kill(func(c conntrack.Conn) bool {
		drop, _ := rs.Forbids(c.Src, c.Dst, c.Dialled, c.Proto, c.Port, c.DialledTo)
		return drop
	})
	return Result{Killed: killed, ConntrackErr: err}
}

func syncNetlink(rs *enforce.Ruleset) error {
	l, err := nflink.New()
	if err != nil {
		return err
	}
	defer l.Close()
	return l.Sync(rs)
}

// Preflight lists what would keep the ruleset from filtering everything
// it should, each with what to do. An empty list means all is in place.
func Preflight() []string {
	var out []string
	for _, v := range []struct{ key, what string }{
		{"net/bridge/bridge-nf-call-iptables", "IPv4"},
		{"net/bridge/bridge-nf-call-ip6tables", "IPv6"},
	} {
		val, err := os.ReadFile("/proc/sys/" + v.key)
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("br_netfilter is not loaded: %s traffic between containers of one zone is bridged past the firewall, so flows inside a zone are not enforced (modprobe br_netfilter)", v.what))
		case strings.TrimSpace(string(val)) != "1":
			out = append(out, fmt.Sprintf("%s=0: %s traffic between containers of one zone is bridged past the firewall, so flows inside a zone are not enforced (sysctl -w %s=1)", strings.ReplaceAll(v.key, "/", "."), v.what, strings.ReplaceAll(v.key, "/", ".")))
		}
	}
	return out
}
