// Package firewall installs compiled rulesets on the host (Applier): one
// transaction each, over netlink or nft -f, then the end of the tracked
// connections the policy no longer allows; and keeps the host able to
// enforce them (bridged traffic through the firewall).
package firewall

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/zonewarden/zonewarden/internal/conntrack"
	"github.com/zonewarden/zonewarden/internal/enforce"
)

// Load replaces the ruleset's table with rs in one transaction (over
// netlink, else nft -f, whose error names the offending line), then, for
// the policy table, ends every tracked connection rs forbids. On a failed
// transaction nothing changed and the previous ruleset stays in force.
func Load(ctx context.Context, rs *enforce.Ruleset) (Applied, error) {
	a, err := Open(Options{Fallback: true})
	if err != nil {
		return Applied{}, err
	}
	defer a.Close()
	return a.Apply(ctx, rs, true)
}

// EndForbidden ends every tracked connection rs forbids, so that a
// tightened policy does not leave sessions open that it no longer allows,
// and returns how many it ended.
func EndForbidden(rs *enforce.Ruleset) (int, error) {
	return conntrack.Kill(func(c conntrack.Conn) bool {
		drop, _ := rs.Forbids(c.Src, c.Dst, c.Dialled, c.Proto, c.Port, c.DialledTo)
		return drop
	})
}

// procSys is where the kernel's sysctls are; tests point it elsewhere.
var procSys = "/proc/sys"

// bridgeSysctls are the br_netfilter switches that pass bridged frames
// (traffic between containers of one network) through the inet hooks.
var bridgeSysctls = []struct{ key, family string }{
	{"net/bridge/bridge-nf-call-iptables", "IPv4"},
	{"net/bridge/bridge-nf-call-ip6tables", "IPv6"},
}

// BridgeFilteringChanges lists, without changing anything, what
// [EnsureBridgeFiltering] would change: empty when bridged traffic
// already passes the firewall.
func BridgeFilteringChanges() []string {
	if _, err := os.Stat(filepath.Join(procSys, "net/bridge")); os.IsNotExist(err) {
		return []string{"load the br_netfilter module and set net.bridge.bridge-nf-call-iptables and -ip6tables to 1 (traffic between containers of one zone bypasses the firewall now)"}
	}
	var out []string
	for _, v := range bridgeSysctls {
		val, err := os.ReadFile(filepath.Join(procSys, v.key))
		if err == nil && strings.TrimSpace(string(val)) != "1" {
			out = append(out, fmt.Sprintf("set %s=1 (it is 0: %s traffic between containers of one zone bypasses the firewall now)", strings.ReplaceAll(v.key, "/", "."), v.family))
		}
	}
	return out
}

// ErrBridgeUnfiltered is returned by [EnsureBridgeFiltering] when bridged
// traffic cannot be made to pass the firewall: flows inside a zone would
// not be enforced.
var ErrBridgeUnfiltered = errors.New("traffic between containers of one zone would bypass the firewall")

// EnsureBridgeFiltering makes sure that frames bridged between containers
// of one network pass the inet hooks, where the port-level rules inside a
// zone are: it loads br_netfilter when its sysctls are missing (Docker
// loads it since 27.3 only with icc=false or userland-proxy=false,
// moby#48492) and sets net.bridge.bridge-nf-call-iptables and -ip6tables
// to 1 when they are 0, as Docker itself does when it loads the module.
// It returns what it changed, one line each, for the operator. When it
// cannot, the error wraps [ErrBridgeUnfiltered] and says why and what to
// do; nothing else was changed.
//
// The sysctls are per network namespace: this is the namespace of the
// calling process, which must be the one of Docker's bridges.
func EnsureBridgeFiltering(ctx context.Context) ([]string, error) {
	var done []string
	dir := filepath.Join(procSys, "net/bridge")
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		out, err := exec.CommandContext(ctx, "modprobe", "br_netfilter").CombinedOutput()
		if _, serr := os.Stat(dir); serr != nil {
			why := "modprobe br_netfilter did not load it"
			if err != nil {
				why = fmt.Sprintf("modprobe br_netfilter: %v %s", err, strings.TrimSpace(string(out)))
			}
			return done, fmt.Errorf("%w: the br_netfilter module is not loaded and %s; load it on the host (modprobe br_netfilter, and list it in /etc/modules-load.d), or run apply --no-firewall for the Docker side alone", ErrBridgeUnfiltered, why)
		}
		done = append(done, "loaded the br_netfilter module (bridged traffic between containers now passes the firewall)")
	}
	for _, v := range bridgeSysctls {
		path := filepath.Join(procSys, v.key)
		name := strings.ReplaceAll(v.key, "/", ".")
		val, err := os.ReadFile(path)
		if err != nil {
			return done, fmt.Errorf("%w: reading %s: %v", ErrBridgeUnfiltered, name, err)
		}
		if strings.TrimSpace(string(val)) == "1" {
			continue
		}
		if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
			return done, fmt.Errorf("%w: %s is 0, so %s traffic between containers of one zone is bridged past the firewall, and setting it failed: %v; set it on the host (sysctl -w %s=1, and persist it in /etc/sysctl.d), or run apply --no-firewall for the Docker side alone", ErrBridgeUnfiltered, name, v.family, err, name)
		}
		done = append(done, fmt.Sprintf("set %s=1 (it was 0: %s traffic between containers of one zone bypassed the firewall); persist it in /etc/sysctl.d", name, v.family))
	}
	return done, nil
}
