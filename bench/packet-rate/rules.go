package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/policy"
)

// config is one way of filtering the router's forward path.
type config struct {
	name  string // for -configs
	title string // column heading
	// load loads the ruleset for flows allowed flows, one of which is the
	// benchmark's, into the router namespace and returns how long the
	// load took; nil loads nothing.
	load func(ctx context.Context, t topology, flows int) (time.Duration, error)
	// tool is the command load runs, checked before anything is built.
	tool string
	// filters says whether the ruleset drops what it does not allow.
	filters bool
	// extra configurations run only when -configs names them.
	extra bool
}

// noRules is the baseline the others are compared with.
var noRules = config{name: "none", title: "no rules"}

var configs = []config{
	noRules,
	{name: "ct", title: "ct accept only", load: scriptLoad(ctOnlyScript, "nft", "-f", "-"), tool: "nft"},
	{name: "zonewarden", title: "zonewarden", load: realLoad(policy.UnmanagedWarn), filters: true},
	{name: "zonewarden-ports", title: "zw + endpoint binding", load: portsLoad, filters: true},
	{name: "iptables-nft", title: "iptables-nft chain", load: scriptLoad(iptablesScript, "iptables-nft-restore"), tool: "iptables-nft-restore", filters: true},
	{name: "iptables-legacy", title: "iptables-legacy chain", load: scriptLoad(iptablesScript, "iptables-legacy-restore"), tool: "iptables-legacy-restore", filters: true},

	// zonewarden's ruleset in other forms.
	{name: "zonewarden-deny", title: "zw unmanaged:deny", load: realLoad(policy.UnmanagedDeny), filters: true, extra: true},
	{name: "zonewarden-nft", title: "zw via nft -f", load: variantLoad(nil), tool: "nft", filters: true, extra: true},
	// Experiments: zonewarden's ruleset with its chains or sets changed by
	// hand (see experiments.go), loaded with nft -f: compare them with
	// zonewarden-nft.
	{name: "exp-allow-first", title: "exp allow first", load: variantLoad(allowFirst), tool: "nft", filters: true, extra: true},
	{name: "exp-hash-first", title: "exp hash first", load: variantLoad(hashFirst), tool: "nft", filters: true, extra: true},
	{name: "exp-no-counter", title: "exp no counters", load: variantLoad(noFlowCounters), tool: "nft", filters: true, extra: true},
	{name: "exp-allow-first-no-counter", title: "exp allow first, no counters", load: variantLoad(chain(allowFirst, noFlowCounters)), tool: "nft", filters: true, extra: true},
	// The first sketch of the ruleset, written by hand before
	// internal/enforce existed: one lookup in one flow set.
	{name: "sketch-interval", title: "sketch interval set", load: scriptLoad(sketchScript, "nft", "-f", "-"), tool: "nft", filters: true, extra: true},
	{name: "sketch-hash", title: "sketch hash set", load: scriptLoad(sketchHashScript, "nft", "-f", "-"), tool: "nft", filters: true, extra: true},
}

// defaultConfigs are the configurations -configs names by default.
func defaultConfigs() []string {
	var out []string
	for _, c := range configs {
		if !c.extra {
			out = append(out, c.name)
		}
	}
	return out
}

// flow is one allowed flow: source . destination . tcp . port range.
type flow struct {
	src, dst       netip.Prefix
	portLo, portHi uint16
}

// benchFlow is the flow the benchmark's traffic uses.
var benchFlow = flow{
	src:    clientSources,
	dst:    netip.PrefixFrom(serverAddr, 32),
	portLo: allowedPort, portHi: allowedPort,
}

// flowSet returns n distinct flows, the benchmark's last. The others
// ("filler") never match the benchmark's traffic or overlap each other:
// source 198.19.x.y (one per flow, cycling every 65,536), destination
// 198.18.200.z, port 1000+20k (k = the cycle), every eighth a range of 10
// ports.
func flowSet(n int) []flow {
	out := make([]flow, 0, n)
	for i := range n - 1 {
		src := netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
		dst := netip.AddrFrom4([4]byte{198, 18, 200, byte(i % 251)})
		lo := uint16(1000 + 20*(i>>16))
		hi := lo
		if i%8 == 7 {
			hi = lo + 9
		}
		out = append(out, flow{src: netip.PrefixFrom(src, 32), dst: netip.PrefixFrom(dst, 32), portLo: lo, portHi: hi})
	}
	return append(out, benchFlow)
}

func (f flow) nftPort() string {
	if f.portLo == f.portHi {
		return fmt.Sprint(f.portLo)
	}
	return fmt.Sprintf("%d-%d", f.portLo, f.portHi)
}

func (f flow) iptPort() string {
	if f.portLo == f.portHi {
		return fmt.Sprint(f.portLo)
	}
	return fmt.Sprintf("%d:%d", f.portLo, f.portHi)
}

// nftPrefix renders a prefix the way nft reads it: a bare address for a
// single host.
func nftPrefix(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// ctOnlyScript is conntrack alone: what every stateful ruleset pays.
func ctOnlyScript(int) []byte {
	return []byte(`table inet zwbench_ct {
	chain forward {
		type filter hook forward priority -5; policy accept;
		ct state established,related accept
	}
}
`)
}

// elementsPerLine bounds one "add element" statement; the whole script is
// still one transaction.
const elementsPerLine = 5000

// sketchScript is the first sketch of zonewarden's enforcement overlay,
// written by hand before internal/enforce existed: its own table, a
// forward chain at priority -5, established/related accepted, fail-closed
// checks against small sets, then one lookup of (saddr . daddr . l4proto
// . dport) in an interval set of allowed flows.
func sketchScript(flows int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `table inet zonewarden {
	set zones4 {
		type ipv4_addr; flags interval;
		elements = { %s, %s }
	}
	set admitted4 {
		type ipv4_addr; flags interval;
		elements = { %s, %s }
	}
	set flows4 {
		typeof ip saddr . ip daddr . meta l4proto . th dport; flags interval;
	}
	chain forward {
		type filter hook forward priority -5; policy accept;
		ct state established,related accept
		ip saddr @zones4 ip saddr != @admitted4 counter drop
		ip daddr @zones4 ip daddr != @admitted4 counter drop
		ip saddr . ip daddr . meta l4proto . th dport @flows4 accept
		counter drop
	}
}
`, clientNet, serverNet, clientSources, serverAddr)
	fs := flowSet(flows)
	for len(fs) > 0 {
		chunk := fs[:min(len(fs), elementsPerLine)]
		fs = fs[len(chunk):]
		b.WriteString("add element inet zonewarden flows4 {")
		for i, f := range chunk {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, " %s . %s . tcp . %s", nftPrefix(f.src), nftPrefix(f.dst), f.nftPort())
		}
		b.WriteString(" }\n")
	}
	return []byte(b.String())
}

// sketchHashScript is sketchScript with a hash set of exact keys instead
// of the interval set: no prefixes, no port ranges (each range flow keeps
// its first port; the benchmark's /30 of sources becomes one element per
// address, so the set holds flows+3 elements). A hash lookup costs the
// same at any size; an interval set with concatenated keys (pipapo) scans
// bitmaps as long as the set. This configuration shows what the interval
// flag costs.
func sketchHashScript(flows int) []byte {
	script := string(sketchScript(1))
	script = strings.Replace(script, "typeof ip saddr . ip daddr . meta l4proto . th dport; flags interval;",
		"typeof ip saddr . ip daddr . meta l4proto . th dport;", 1)
	script = script[:strings.Index(script, "add element")]
	var elems []string
	for _, f := range flowSet(flows) {
		for a := f.src.Masked().Addr(); f.src.Contains(a); a = a.Next() {
			elems = append(elems, fmt.Sprintf("%s . %s . tcp . %d", a, f.dst.Addr(), f.portLo))
		}
	}
	var b strings.Builder
	b.WriteString(script)
	for len(elems) > 0 {
		chunk := elems[:min(len(elems), elementsPerLine)]
		elems = elems[len(chunk):]
		fmt.Fprintf(&b, "add element inet zonewarden flows4 { %s }\n", strings.Join(chunk, ", "))
	}
	return []byte(b.String())
}

// iptablesScript is the seed's approach: one ACCEPT rule per allowed flow
// in FORWARD, behind the usual conntrack accept (without it the server's
// replies would meet the DROP), the benchmark's flow last.
func iptablesScript(flows int) []byte {
	var b strings.Builder
	b.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	b.WriteString("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n")
	for _, f := range flowSet(flows) {
		fmt.Fprintf(&b, "-A FORWARD -s %s -d %s -p tcp -m tcp --dport %s -j ACCEPT\n", f.src, f.dst, f.iptPort())
	}
	b.WriteString("-A FORWARD -j DROP\nCOMMIT\n")
	return []byte(b.String())
}

// scriptLoad loads the script for flows with cmd (reading it on stdin)
// in the router namespace.
func scriptLoad(script func(flows int) []byte, cmd ...string) func(context.Context, topology, int) (time.Duration, error) {
	return func(ctx context.Context, t topology, flows int) (time.Duration, error) {
		return loadScript(ctx, t, script(flows), cmd...)
	}
}

func loadScript(ctx context.Context, t topology, script []byte, cmd ...string) (time.Duration, error) {
	args := append([]string{"netns", "exec", t.router}, cmd...)
	start := time.Now()
	if err := runInput(ctx, script, "ip", args...); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// realLoad loads zonewarden's ruleset compiled from benchPolicy with
// nflink, as zonewarden apply does.
func realLoad(unmanaged policy.Unmanaged) func(context.Context, topology, int) (time.Duration, error) {
	return func(_ context.Context, t topology, flows int) (time.Duration, error) {
		c, err := realRuleset(flows, unmanaged)
		if err != nil {
			return 0, err
		}
		return loadNetlink(t, c.rs)
	}
}

// portsLoad loads zonewarden's ruleset (unmanaged: warn) and its endpoint
// binding (the bridge table, enforce.CompilePorts): the client's five
// addresses bound to r0, the port of the router's bridge; the filler
// containers have no port, as containers of other hosts would not.
func portsLoad(ctx context.Context, t topology, flows int) (time.Duration, error) {
	c, err := realRuleset(flows, policy.UnmanagedWarn)
	if err != nil {
		return 0, err
	}
	port, err := t.clientPort(ctx)
	if err != nil {
		return 0, err
	}
	for i := range c.b.Snapshot.Containers {
		ct := &c.b.Snapshot.Containers[i]
		for j := range ct.Endpoints {
			if a := ct.Endpoints[j].IPv4; clientSources.Contains(a) || a == clientPrimary {
				ct.Endpoints[j].BridgePort = port
			}
		}
	}
	ports := enforce.CompilePorts(c.b, enforce.Options{})
	if len(ports.Elements("bound4")) != len(sources())+1 {
		return 0, fmt.Errorf("endpoint binding: %d bound addresses, want %d", len(ports.Elements("bound4")), len(sources())+1)
	}
	took, err := loadNetlink(t, ports)
	if err != nil {
		return 0, err
	}
	more, err := loadNetlink(t, c.rs)
	return took + more, err
}

// variantLoad loads zonewarden's ruleset (unmanaged: warn) as the nft
// script Ruleset.Script renders, changed by edit (nil: unchanged), with
// nft -f.
func variantLoad(edit func(string) (string, error)) func(context.Context, topology, int) (time.Duration, error) {
	return func(ctx context.Context, t topology, flows int) (time.Duration, error) {
		c, err := realRuleset(flows, policy.UnmanagedWarn)
		if err != nil {
			return 0, err
		}
		script := c.rs.Script()
		if edit != nil {
			if script, err = edit(script); err != nil {
				return 0, err
			}
		}
		return loadScript(ctx, t, []byte(script), "nft", "-f", "-")
	}
}

// loadRules loads c's ruleset for flows into the router namespace and
// returns how long the load took.
func loadRules(ctx context.Context, t topology, c config, flows int) (time.Duration, error) {
	if c.load == nil {
		return 0, nil
	}
	d, err := c.load(ctx, t, flows)
	if err != nil {
		return 0, fmt.Errorf("loading %s with %d flows: %w", c.name, flows, err)
	}
	return d, nil
}
