package nflink

import (
	"context"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/enforce/enforcetest"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/nft"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/policy/synthetic"
	"github.com/zonewarden/zonewarden/internal/testenv"
)

// host is the shared three-tier host.
func host() *inventory.Snapshot { return enforcetest.Host() }

const hostPolicy = enforcetest.Policy

// variants are policies whose rulesets cover every kind of set and both
// sets of chains.
var variants = map[string]string{
	"three-tier":     hostPolicy,
	"allow-zones":    strings.ReplaceAll(hostPolicy, "{default: deny}", "{}"),
	"unmanaged-deny": strings.Replace(hostPolicy, "unmanaged: warn", "unmanaged: deny", 1),
	"monitor-zone":   strings.Replace(hostPolicy, "application-tier: {default: deny}", "application-tier: {default: deny, mode: monitor}", 1),
}

func compile(t testing.TB, doc string, snap *inventory.Snapshot, table string) *enforce.Ruleset {
	t.Helper()
	p, err := policy.Parse("zones.yaml", []byte(doc), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := model.Bind(p, snap)
	if err != nil {
		t.Fatal(err)
	}
	return enforce.Compile(b, enforce.Options{Table: table})
}

// TestEncodeAsNft: elements encode to the bytes nft sends for them
// (nft --debug=netlink, words shown as they lie in memory).
func TestEncodeAsNft(t *testing.T) {
	tbl := &nftables.Table{Name: "t", Family: nftables.TableFamilyINet}
	for _, tc := range []struct {
		typ      string
		interval bool
		elem     string
		want     []string // key[-keyend][/end] per kernel element
	}{
		{"ipv4_addr", false, "10.20.1.11", []string{"0a14010b"}},
		{"ipv4_addr", true, "10.20.1.0/24", []string{"0a140100", "0a140200/end"}},
		{"ipv4_addr", true, "0.0.0.0/0", []string{"00000000"}},
		{"ipv6_addr", true, "fd20:1::/64", []string{"fd200001000000000000000000000000", "fd200001000000010000000000000000/end"}},
		{"ipv4_addr . ipv4_addr . inet_proto . inet_service", false, "10.20.1.11 . 10.20.1.12 . tcp . 8080",
			[]string{"0a14010b0a14010c060000001f900000"}},
		{"ipv4_addr . ipv4_addr . inet_proto . inet_service", true, "10.20.2.12 . 10.20.2.13 . udp . 9000-9100",
			[]string{"0a14020c0a14020d1100000023280000-0a14020c0a14020d11000000238c0000"}},
		{"ipv4_addr . ipv4_addr . inet_proto . inet_service", true, "10.20.1.11 . 0.0.0.0/0 . 0-255 . 0-65535",
			[]string{"0a14010b000000000000000000000000-0a14010bffffffffff000000ffff0000"}},
		{"ipv6_addr . inet_proto . inet_service", true, "fd20:1::12 . ipv6-icmp . 0-65535",
			[]string{"fd200001000000000000000000000012" + "3a000000" + "00000000-fd200001000000000000000000000012" + "3a000000" + "ffff0000"}},
		{"inet_proto . inet_service", false, "udp . 53", []string{"1100000000350000"}},
	} {
		l, err := newLayout(enforce.SetInfo{Name: "s", Type: tc.typ, Interval: tc.interval}, tbl)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := l.encode(tc.elem, "c")
		if err != nil {
			t.Fatalf("%s: %v", tc.elem, err)
		}
		var got []string
		for _, e := range enc {
			s := hex.EncodeToString(e.Key)
			if e.KeyEnd != nil {
				s += "-" + hex.EncodeToString(e.KeyEnd)
			}
			if e.IntervalEnd {
				s += "/end"
			}
			got = append(got, s)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s in %s (interval %v):\n got %v\nwant %v", tc.elem, tc.typ, tc.interval, got, tc.want)
		}
		if enc[0].Comment != "c" || len(enc) > 1 && enc[1].Comment != "" {
			t.Errorf("%s: the comment belongs on the first element only: %+v", tc.elem, enc)
		}
	}
	for _, bad := range []struct{ typ, elem string }{
		{"ipv4_addr", "10.20.1.0/24"}, // a prefix in a hash set
		{"ipv4_addr", "fd20::1"},
		{"ipv4_addr . inet_service", "10.0.0.1 . 70000"},
		{"ipv4_addr . inet_service", "10.0.0.1"},
		{"inet_proto", "nosuchproto"},
	} {
		l, _ := newLayout(enforce.SetInfo{Name: "s", Type: bad.typ}, tbl)
		if _, err := l.encode(bad.elem, ""); err == nil {
			t.Errorf("%q in %s: encoded, want an error", bad.elem, bad.typ)
		}
	}
}

// TestCompileChains: every variant's chains compile, and the rules load
// what nft loads: the family first, concatenations in consecutive
// registers, meta l4proto swapped for interval sets only.
func TestCompileChains(t *testing.T) {
	for name, doc := range variants {
		r := compile(t, doc, host(), "t")
		sets := map[string]*layout{}
		for _, d := range r.Sets() {
			l, err := newLayout(d, table(r))
			if err != nil {
				t.Fatal(err)
			}
			sets[d.Name] = l
		}
		chains, err := compileChains(r.ChainRules(), r.LogGroup(), table(r), sets)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(chains) != 6 || chains[0].chain.Hooknum == nil || *chains[0].chain.Priority != -5 || chains[2].chain.Hooknum != nil {
			t.Fatalf("%s: chains %+v", name, chains)
		}
		rules := 0
		for _, c := range chains {
			rules += len(c.rules)
		}
		if want := strings.Count(r.Chains(), "\n") - 6*2 - 2; rules != want {
			t.Errorf("%s: %d rules, want %d", name, rules, want)
		}
	}
	sets := map[string]*layout{}
	for _, d := range []enforce.SetInfo{
		{Name: "allow6", Type: "ipv6_addr . ipv6_addr . inet_proto . inet_service"},
		{Name: "egress6", Type: "ipv6_addr . ipv6_addr . inet_proto . inet_service", Interval: true},
		{Name: "local6", Type: "ipv6_addr", Interval: true},
	} {
		sets[d.Name], _ = newLayout(d, &nftables.Table{Name: "t", Family: nftables.TableFamilyINet})
	}
	set := func(name string, not bool, fields ...enforce.Field) enforce.Match {
		return enforce.Match{Kind: enforce.InSet, Set: name, Not: not, Fields: fields}
	}
	flow := []enforce.Field{enforce.Src6, enforce.Dst6, enforce.L4Proto, enforce.DstPort}
	r, err := compileRule(enforce.Rule{Match: []enforce.Match{set("local6", true, enforce.Dst6), set("egress6", false, flow...)},
		Action: enforce.Accept, Comment: "egress"}, 0, sets, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"*expr.Meta{Key:15 Register:1}", "*expr.Cmp{Data:[10] Register:1}",
		"*expr.Payload{Base:1 Offset:24 Len:16 DestRegister:1}", "*expr.Lookup{SetName:local6 Invert:true}",
		"*expr.Payload{Base:1 Offset:8 Len:16 DestRegister:1}", "*expr.Payload{Base:1 Offset:24 Len:16 DestRegister:12}",
		"*expr.Meta{Key:16 Register:16}", "*expr.Byteorder{Src:16 Dst:16 Len:1 Size:2}",
		"*expr.Payload{Base:2 Offset:2 Len:2 DestRegister:17}", "*expr.Lookup{SetName:egress6 Invert:false}",
		"*expr.Verdict{Kind:1}",
	}
	var got []string
	for _, e := range r.exprs {
		got = append(got, describe(e))
	}
	if !slices.Equal(got, want) || r.comment != "egress" {
		t.Errorf("rule compiles to\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	r, _ = compileRule(enforce.Rule{Match: []enforce.Match{set("allow6", false, flow...)}, Action: enforce.Accept}, 0, sets, false)
	for _, e := range r.exprs {
		if _, ok := e.(*expr.Byteorder); ok {
			t.Error("a hash set's lookup swaps meta l4proto")
		}
	}
	for name, bad := range map[string]enforce.Rule{
		"no such set":              {Match: []enforce.Match{set("nope", false, enforce.Src4)}},
		"fields of another family": {Match: []enforce.Match{set("local6", false, enforce.Src4)}},
		"both families":            {Match: []enforce.Match{set("local6", false, enforce.Src6), set("local6", false, enforce.Src4)}, Action: enforce.Drop},
		"unknown match":            {Match: []enforce.Match{{Kind: enforce.ICMPv6Type, Value: "echo-request"}}},
		"too few fields":           {Match: []enforce.Match{set("allow6", false, enforce.Src6)}},
	} {
		if _, err := compileRule(bad, 0, sets, false); err == nil {
			t.Errorf("%s (%s) compiled, want an error", name, bad)
		}
	}
}

func TestPriority(t *testing.T) {
	for in, want := range map[string]int{"filter - 5": -5, "filter + 10": 10, "filter": 0, "filter + 0": 0, "-5": -5, "mangle - 1": -151} {
		if got, err := priority(strings.Fields(in)); err != nil || got != want {
			t.Errorf("priority %q = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"filter -", "filter * 2", "soon"} {
		if _, err := priority(strings.Fields(in)); err == nil {
			t.Errorf("priority %q: no error", in)
		}
	}
}

func describe(e expr.Any) string {
	switch e := e.(type) {
	case *expr.Meta:
		return fmt.Sprintf("*expr.Meta{Key:%d Register:%d}", e.Key, e.Register)
	case *expr.Cmp:
		return fmt.Sprintf("*expr.Cmp{Data:%v Register:%d}", e.Data, e.Register)
	case *expr.Payload:
		return fmt.Sprintf("*expr.Payload{Base:%d Offset:%d Len:%d DestRegister:%d}", e.Base, e.Offset, e.Len, e.DestRegister)
	case *expr.Lookup:
		return fmt.Sprintf("*expr.Lookup{SetName:%s Invert:%v}", e.SetName, e.Invert)
	case *expr.Byteorder:
		return fmt.Sprintf("*expr.Byteorder{Src:%d Dst:%d Len:%d Size:%d}", e.SourceRegister, e.DestRegister, e.Len, e.Size)
	case *expr.Counter:
		return "*expr.Counter"
	case *expr.Verdict:
		return fmt.Sprintf("*expr.Verdict{Kind:%d}", e.Kind)
	}
	return fmt.Sprintf("%T", e)
}

// loaded is how the kernel shows a table: nft's listing and the
// expressions and elements it reads back (nft --debug=netlink), both
// normalised for what may legitimately differ between two loads of the
// same ruleset: the order of a hash set's elements and of the elements
// of a listing, counters, the table's comment (which the netlink loader
// cannot set).
type loaded struct{ listing, netlink string }

func load(t *testing.T, name string) loaded { return loadFamily(t, "inet", name) }

func loadFamily(t *testing.T, family, name string) loaded {
	t.Helper()
	out, err := exec.Command(nft.Binary, "list", "table", family, name).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table %s %s: %v\n%s", family, name, err, out)
	}
	// nft --debug=netlink prints every netlink message it receives, those
	// of a dump the kernel interrupted (another test changed some table
	// meanwhile) and restarted too: take the dump once two in a row agree.
	dump := func() string {
		dbg, err := exec.Command(nft.Binary, "--debug=netlink", "list", "table", family, name).CombinedOutput()
		if err != nil {
			t.Fatalf("nft --debug=netlink list table %s %s: %v\n%s", family, name, err, dbg)
		}
		return normalNetlink(string(dbg))
	}
	netlinkDump := dump()
	for range 10 {
		again := dump()
		if again == netlinkDump {
			break
		}
		netlinkDump = again
	}
	return loaded{normalListing(string(out)), netlinkDump}
}

var (
	counters = regexp.MustCompile(`counter (packets|pkts) \d+ bytes \d+`)
	// ruleHeader is a rule's line in a netlink dump: "inet T chain 31 30";
	// handles and positions depend on what the table saw before.
	ruleHeader = regexp.MustCompile(`(?m)^(inet \S+ \S+)( \d+)+$`)
)

// normalListing sorts the elements of each set, one a line, and drops the
// table's comment.
func normalListing(s string) string {
	s = counters.ReplaceAllString(s, "counter")
	var b strings.Builder
	for {
		i := strings.Index(s, "elements = {")
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		s = s[i+len("elements = {"):]
		var items []string
		start, quoted := 0, false
	scan:
		for j := 0; j < len(s); j++ {
			switch s[j] {
			case '"':
				quoted = !quoted
			case ',', '}':
				if quoted {
					continue
				}
				items = append(items, strings.Join(strings.Fields(s[start:j]), " "))
				start = j + 1
				if s[j] == '}' {
					s = s[j+1:]
					break scan
				}
			}
		}
		slices.Sort(items)
		b.WriteString("elements = {\n\t\t\t" + strings.Join(items, "\n\t\t\t") + " }")
	}
	var lines []string
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(l, "\tcomment ") { // the table's
			continue
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

// normalNetlink sorts the elements of each set and the sets' blocks (the
// kernel dumps sets in no fixed order), and normalises the listing that
// follows them.
func normalNetlink(s string) string {
	s = counters.ReplaceAllString(s, "counter")
	s = ruleHeader.ReplaceAllString(s, "$1")
	var out, block []string
	sets := map[string][]string{}  // header -> elements: a big set is dumped in several chunks
	rules := map[string][]string{} // chain header -> its rules, in order: chains come in no fixed order
	flush := func() {
		switch {
		case len(block) > 0 && strings.Contains(block[0], " @"):
			sets[block[0]] = append(sets[block[0]], block[1:]...)
		case len(block) > 0 && strings.HasPrefix(block[0], "inet ") && len(strings.Fields(block[0])) == 3:
			rules[block[0]] = append(rules[block[0]], block...)
		default:
			out = append(out, block...)
		}
		block = nil
	}
	for _, l := range strings.Split(s, "\n") {
		if l != "" && l[0] != ' ' && l[0] != '\t' {
			flush()
		}
		block = append(block, l)
	}
	flush()
	var all []string
	for _, header := range slices.Sorted(maps.Keys(sets)) {
		elems := sets[header]
		slices.Sort(elems)
		elems = slices.Compact(elems) // nft may dump a set twice (cache, then listing)
		all = append(all, header)
		all = append(all, elems...)
	}
	for _, header := range slices.Sorted(maps.Keys(rules)) {
		all = append(all, rules[header]...)
	}
	all = append(all, out...)
	return normalListing(strings.Join(all, "\n")) // nft appends the listing
}

func diff(t *testing.T, what string, got, want loaded) {
	t.Helper()
	for _, c := range []struct{ kind, got, want string }{{"nft list table", got.listing, want.listing}, {"nft --debug=netlink list table", got.netlink, want.netlink}} {
		if c.got == c.want {
			continue
		}
		g, w := strings.Split(c.got, "\n"), strings.Split(c.want, "\n")
		n := 0
		for n < len(g) && n < len(w) && g[n] == w[n] {
			n++
		}
		lo := max(n-5, 0)
		t.Errorf("%s: %s differs from nft -f's, from line %d:\n--- netlink:\n%s\n--- nft -f:\n%s", what, c.kind, n+1,
			strings.Join(g[lo:min(n+15, len(g))], "\n"), strings.Join(w[lo:min(n+15, len(w))], "\n"))
	}
}

func testTable(t *testing.T) string {
	table := "zwtest_nflink_" + testenv.RunID(t)
	t.Cleanup(func() { nft.Delete(context.Background(), "inet", table) })
	return table
}

func newLoader(t testing.TB) *Loader {
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestSyncMatchesNft: a full sync over netlink loads the table nft -f of
// Ruleset.Script loads, expression for expression and element for
// element — replacing a table nft loaded, and creating it afresh.
func TestSyncMatchesNft(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	l := newLoader(t)
	big := synthetic.Policy(300, 12, 3000, 0, 1)
	bigBind, err := model.Bind(big, synthetic.Host(big))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(table string) *enforce.Ruleset{
		"synthetic-3000-flows": func(table string) *enforce.Ruleset {
			return enforce.Compile(bigBind, enforce.Options{Table: table})
		},
		"priority-plus-3": func(table string) *enforce.Ruleset {
			return enforce.Compile(bigBind, enforce.Options{Table: table, Priority: 3})
		},
	}
	for name, doc := range variants {
		cases[name] = func(table string) *enforce.Ruleset { return compile(t, doc, host(), table) }
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			table := testTable(t)
			r := mk(table)
			if err := nft.Apply(ctx, r.Script()); err != nil {
				t.Fatal(err)
			}
			want := load(t, table)
			if err := l.Sync(r); err != nil { // over nft's table
				t.Fatal(err)
			}
			diff(t, "sync over a table", load(t, table), want)
			if err := nft.Delete(ctx, "inet", table); err != nil {
				t.Fatal(err)
			}
			if err := l.Sync(r); err != nil { // afresh
				t.Fatal(err)
			}
			diff(t, "sync afresh", load(t, table), want)
			if name == "synthetic-3000-flows" && r.Size() < 5000 {
				t.Errorf("only %d elements: the case should span several netlink messages per set", r.Size())
			}
		})
	}
}

// rawTypeof rewrites nft's typeof declarations of the raw neighbour
// advertisement target sets, and their 0x elements, as the ipv6_addr
// sets nflink declares (elements.go, typeofFields): the one difference
// between the two loads, the same bytes in the kernel.
func rawTypeof(l loaded) loaded {
	hexAddr := regexp.MustCompile(`0x[0-9a-f]{32}`)
	fix := func(s string) string {
		s = strings.ReplaceAll(s, "typeof iif . @th,64,128", "type iface_index . ipv6_addr")
		s = strings.ReplaceAll(s, "typeof @th,64,128", "type ipv6_addr")
		return hexAddr.ReplaceAllStringFunc(s, func(h string) string {
			b, _ := hex.DecodeString(h[2:])
			return netip.AddrFrom16([16]byte(b)).String()
		})
	}
	return loaded{listing: fix(l.listing), netlink: fix(l.netlink)}
}

// TestPortsMatchNft: the bridge table of the endpoint binding, loaded
// over netlink (a full sync, then an update), is the table nft -f loads.
func TestPortsMatchNft(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	l := newLoader(t)
	table := "zwtest_ports_" + testenv.RunID(t)
	t.Cleanup(func() { nft.Delete(context.Background(), "bridge", table) })
	p, err := policy.Parse("zones.yaml", []byte(enforcetest.Policy), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ports := func(snap *inventory.Snapshot) *enforce.Ruleset {
		b, _ := model.Bind(p, snap)
		return enforce.CompilePorts(b, enforce.Options{Table: table})
	}
	r := ports(enforcetest.HostWithPorts())
	if err := nft.Apply(ctx, r.Script()); err != nil {
		t.Fatal(err)
	}
	want := rawTypeof(loadFamily(t, "bridge", table))
	if err := l.Sync(r); err != nil {
		t.Fatal(err)
	}
	diff(t, "sync over a table", rawTypeof(loadFamily(t, "bridge", table)), want)

	snap := enforcetest.HostWithPorts()
	snap.Containers[2].Endpoints[1].BridgePort = 999 // api re-created on database-tier
	snap.Containers[0].State = "exited"              // lb stopped: its IPv6 goes too
	r2 := ports(snap)
	if err := nft.Apply(ctx, r2.Script()); err != nil {
		t.Fatal(err)
	}
	want2 := rawTypeof(loadFamily(t, "bridge", table))
	if err := nft.Apply(ctx, r.Script()); err != nil {
		t.Fatal(err)
	}
	c, err := Diff(r, r2)
	if err != nil {
		t.Fatal(err)
	}
	if c.Full() {
		t.Fatal("a change of bindings is a full sync")
	}
	if err := l.Apply(c); err != nil {
		t.Fatal(err)
	}
	diff(t, "update", rawTypeof(loadFamily(t, "bridge", table)), want2)
}

// TestUpdateMatchesNft: element updates over netlink leave the table nft
// -f of the new ruleset's script loads, both ways, for changes to every
// kind of set: hash sets of addresses and of concatenations, interval
// sets of prefixes, concatenations with ranges and prefixes; elements
// whose comment alone changes. A change of chains is a full sync.
func TestUpdateMatchesNft(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	l := newLoader(t)
	table := testTable(t)
	old := compile(t, hostPolicy, host(), table)

	snap := host()
	snap.Containers[3].Endpoints[0].IPv4 = netip.MustParseAddr("10.20.3.77") // postgres restarted
	snap.Containers[0].Name = "lb-2"                                         // comments change
	snap.Containers[0].Ports[0].HostPort = 8443                              // pubports, pubin
	snap.Networks = append(snap.Networks, inventory.Network{Name: "other", Driver: "bridge", Subnets: []inventory.Subnet{
		{Prefix: netip.MustParsePrefix("10.20.9.0/24")}, {Prefix: netip.MustParsePrefix("fd20:9::/64")}}}) // local4/6
	snap.Networks[0].Subnets = nil // a network's subnet goes
	doc := strings.NewReplacer(
		`"203.0.113.0/24"`, `"203.0.113.128/25"`, // ingress4
		"to: 198.51.100.0/24", "to: 198.51.0.0/16", // egress4
		"9000-9100/udp", "9000-9200/udp", // allowrange4
		"- {from: api,      to: postgres, ports: [5432/tcp]}", "- {from: api,      to: postgres, ports: [5432/tcp, 5433/tcp]}",
		"lb:       {match: {name: lb}", "lb:       {match: {name: lb-2}",
	).Replace(hostPolicy)
	now := compile(t, doc, snap, table)
	if old.Chains() != now.Chains() {
		t.Fatal("the change should keep the chains")
	}

	if err := nft.Apply(ctx, now.Script()); err != nil {
		t.Fatal(err)
	}
	wantNow := load(t, table)
	if err := nft.Apply(ctx, old.Script()); err != nil {
		t.Fatal(err)
	}
	wantOld := load(t, table)
	if wantOld == wantNow {
		t.Fatal("the two rulesets load the same table")
	}

	c, err := Diff(old, now)
	if err != nil {
		t.Fatal(err)
	}
	changed := map[string]bool{}
	for _, s := range c.sets {
		changed[s.layout.name] = true
	}
	for _, set := range []string{"local4", "local6", "admitted4", "allow4", "allowrange4", "egress4", "ingress4", "pubin4", "pubports", "admitted6"} {
		if !changed[set] {
			t.Errorf("the change leaves %s alone; it should cover it (changed: %v)", set, changed)
		}
	}
	if err := l.Apply(c); err != nil {
		t.Fatal(err)
	}
	diff(t, "old -> new", load(t, table), wantNow)
	if err := l.Update(now, old); err != nil {
		t.Fatal(err)
	}
	diff(t, "new -> old", load(t, table), wantOld)
	if c, _ := Diff(old, old); !c.Empty() {
		t.Errorf("no change: %d sets change", len(c.sets))
	}

	deny := compile(t, strings.Replace(hostPolicy, "unmanaged: warn", "unmanaged: deny", 1), host(), table)
	c, _ = Diff(old, deny)
	if !c.Full() {
		t.Fatal("other chains: not a full sync")
	}
	if err := l.Apply(c); err != nil {
		t.Fatal(err)
	}
	if err := nft.Apply(ctx, deny.Script()); err != nil {
		t.Fatal(err)
	}
	wantDeny := load(t, table)
	if err := l.Update(deny, old); err != nil {
		t.Fatal(err)
	}
	if err := l.Update(old, deny); err != nil {
		t.Fatal(err)
	}
	diff(t, "old -> unmanaged: deny", load(t, table), wantDeny)
}

// TestUpdateIsOneTransaction: a batch the kernel refuses in part changes
// nothing, and the loader goes on working after it.
func TestUpdateIsOneTransaction(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	l := newLoader(t)
	table := testTable(t)
	old := compile(t, hostPolicy, host(), table)
	if err := l.Sync(old); err != nil {
		t.Fatal(err)
	}
	before := load(t, table)

	snap := host()
	snap.Containers[3].Endpoints[0].IPv4 = netip.MustParseAddr("10.20.3.77")
	now := compile(t, hostPolicy, snap, table)
	// The kernel lacks an element old claims: deleting it fails, and
	// with it the additions of the same batch.
	if _, err := exec.Command(nft.Binary, "delete", "element", "inet", table, "admitted4", "{ 10.20.3.14 }").CombinedOutput(); err != nil {
		t.Fatal(err)
	}
	missing := load(t, table)
	if missing == before {
		t.Fatal("deleting an element changed nothing")
	}
	err := l.Update(old, now)
	if err == nil || !strings.Contains(err.Error(), table) {
		t.Fatalf("update over a missing element: %v, want an error naming the table", err)
	}
	t.Logf("refused: %v", err)
	if got := load(t, table); got != missing {
		diff(t, "after a refused update", got, missing)
	}
	if err := l.Sync(now); err != nil {
		t.Fatalf("after an error: %v", err)
	}
	if err := nft.Apply(ctx, now.Script()); err != nil {
		t.Fatal(err)
	}
	want := load(t, table)
	if err := l.Sync(now); err != nil {
		t.Fatal(err)
	}
	diff(t, "sync after an error", load(t, table), want)
}

// TestOtherTablesUntouched: a sync and an update touch only their table.
func TestOtherTablesUntouched(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	l := newLoader(t)
	table := testTable(t)
	other := table + "_other"
	t.Cleanup(func() { nft.Delete(ctx, "inet", other) })
	if err := nft.Apply(ctx, "table inet "+other+" {\n\tset keep { type ipv4_addr; elements = { 198.18.0.9 } }\n}\n"); err != nil {
		t.Fatal(err)
	}
	before, _ := nft.List(ctx, "inet", other)
	r := compile(t, hostPolicy, host(), table)
	if err := l.Sync(r); err != nil {
		t.Fatal(err)
	}
	snap := host()
	snap.Containers[3].Endpoints[0].IPv4 = netip.MustParseAddr("10.20.3.77")
	if err := l.Update(r, compile(t, hostPolicy, snap, table)); err != nil {
		t.Fatal(err)
	}
	if after, _ := nft.List(ctx, "inet", other); after != before {
		t.Errorf("another table changed:\n%s\nwas\n%s", after, before)
	}
}
