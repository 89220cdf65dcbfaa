package nflink

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// A chain of the table, compiled from the nft syntax of
// enforce.Ruleset.Chains into the kernel's expressions.
type chain struct {
	chain *nftables.Chain
	rules []rule
}

type rule struct {
	exprs   []expr.Any
	comment string
}

// selector is one thing a rule matches on: a payload field or a meta key,
// and the family it needs (meta nfproto), if any.
type selector struct {
	load   func(reg uint32) expr.Any
	len    uint32 // bytes
	family byte   // unix.NFPROTO_IPV4 or _IPV6; 0 for any
	l4     bool   // meta l4proto: swapped to network order for interval sets
}

func payload(base expr.PayloadBase, offset, n uint32) func(uint32) expr.Any {
	return func(reg uint32) expr.Any {
		return &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: base, Offset: offset, Len: n}
	}
}

func meta(key expr.MetaKey) func(uint32) expr.Any {
	return func(reg uint32) expr.Any { return &expr.Meta{Key: key, Register: reg} }
}

var selectors = map[string]selector{
	"ip saddr":     {payload(expr.PayloadBaseNetworkHeader, 12, 4), 4, unix.NFPROTO_IPV4, false},
	"ip daddr":     {payload(expr.PayloadBaseNetworkHeader, 16, 4), 4, unix.NFPROTO_IPV4, false},
	"ip6 saddr":    {payload(expr.PayloadBaseNetworkHeader, 8, 16), 16, unix.NFPROTO_IPV6, false},
	"ip6 daddr":    {payload(expr.PayloadBaseNetworkHeader, 24, 16), 16, unix.NFPROTO_IPV6, false},
	"th sport":     {payload(expr.PayloadBaseTransportHeader, 0, 2), 2, 0, false},
	"th dport":     {payload(expr.PayloadBaseTransportHeader, 2, 2), 2, 0, false},
	"meta l4proto": {meta(expr.MetaKeyL4PROTO), 1, 0, true},
	// The bridge table's (enforce.CompilePorts).
	"meta iif":     {meta(expr.MetaKeyIIF), 4, 0, false},
	"arp saddr ip": {payload(expr.PayloadBaseNetworkHeader, 14, 4), 4, unix.NFPROTO_ARP, false},
	"@th,64,128":   {payload(expr.PayloadBaseTransportHeader, 8, 16), 16, 0, false},
}

// etherTypes are the link-layer protocols a bridge table's rule depends
// on, per family.
var etherTypes = map[byte][]byte{unix.NFPROTO_IPV4: {0x08, 0x00}, unix.NFPROTO_IPV6: {0x86, 0xdd}, unix.NFPROTO_ARP: {0x08, 0x06}}

// bridgeDependency is what nft loads before a match of family f in a
// bridge table: meta protocol for IP, the ether type (link-layer
// payload) for ARP.
func bridgeDependency(f byte) []expr.Any {
	if f == unix.NFPROTO_ARP {
		return []expr.Any{
			&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: etherTypes[f]},
		}
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: etherTypes[f]},
	}
}

// statements are fixed matches, with their expressions as nft writes
// them, and the family they imply.
var statements = map[string]struct {
	family byte
	exprs  []expr.Any
}{
	"icmpv6 type nd-neighbor-advert": {unix.NFPROTO_IPV6, []expr.Any{
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x86, 0xdd}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{136}},
	}},
}

var nfprotos = map[string]byte{"ipv4": unix.NFPROTO_IPV4, "ipv6": unix.NFPROTO_IPV6}

var ctStates = map[string]uint32{
	"invalid": expr.CtStateBitINVALID, "established": expr.CtStateBitESTABLISHED,
	"related": expr.CtStateBitRELATED, "new": expr.CtStateBitNEW, "untracked": expr.CtStateBitUNTRACKED,
}

var hooks = map[string]*nftables.ChainHook{
	"prerouting": nftables.ChainHookPrerouting, "input": nftables.ChainHookInput,
	"forward": nftables.ChainHookForward, "output": nftables.ChainHookOutput,
	"postrouting": nftables.ChainHookPostrouting,
}

var priorities = map[string]int{"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}

// compileChains reads the chains of a table (the nft syntax that
// enforce.Ruleset.Chains renders) into chains and rules that load the same
// expressions nft would: the registers, implicit meta nfproto
// dependencies and byte order swaps are nft's, so that `nft list` shows
// the same rules. It knows the statements zonewarden writes and refuses
// anything else.
func compileChains(text string, t *nftables.Table, sets map[string]*layout) ([]*chain, error) {
	var out []*chain
	var cur *chain
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		fail := func(format string, args ...any) error {
			return fmt.Errorf("chains line %d (%s): %s", n+1, line, fmt.Sprintf(format, args...))
		}
		switch {
		case line == "":
		case strings.HasPrefix(line, "chain ") && strings.HasSuffix(line, " {"):
			if cur != nil {
				return nil, fail("chain inside a chain")
			}
			cur = &chain{chain: &nftables.Chain{Table: t, Name: strings.TrimSuffix(strings.TrimPrefix(line, "chain "), " {")}}
			out = append(out, cur)
		case line == "}":
			if cur == nil {
				return nil, fail("no chain to close")
			}
			cur = nil
		case cur == nil:
			return nil, fail("outside a chain")
		case strings.HasPrefix(line, "type "):
			if err := baseChain(cur.chain, line); err != nil {
				return nil, fail("%v", err)
			}
		default:
			r, err := compileRule(line, sets, t.Family == nftables.TableFamilyBridge)
			if err != nil {
				return nil, fail("%v", err)
			}
			cur.rules = append(cur.rules, r)
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("chain %s is not closed", cur.chain.Name)
	}
	return out, nil
}

// baseChain reads "type filter hook forward priority filter - 5; policy accept;".
func baseChain(c *nftables.Chain, line string) error {
	for _, stmt := range strings.Split(line, ";") {
		f := strings.Fields(stmt)
		switch {
		case len(f) == 0:
		case f[0] == "type" && len(f) >= 4 && f[2] == "hook":
			c.Type = nftables.ChainType(f[1])
			h, ok := hooks[f[3]]
			if !ok {
				return fmt.Errorf("hook %q", f[3])
			}
			c.Hooknum = h
			if len(f) < 6 || f[4] != "priority" {
				return fmt.Errorf("no priority")
			}
			p, err := priority(f[5:])
			if err != nil {
				return err
			}
			c.Priority = nftables.ChainPriorityRef(nftables.ChainPriority(p))
		case f[0] == "policy" && len(f) == 2:
			var p nftables.ChainPolicy
			switch f[1] {
			case "accept":
				p = nftables.ChainPolicyAccept
			case "drop":
				p = nftables.ChainPolicyDrop
			default:
				return fmt.Errorf("policy %q", f[1])
			}
			c.Policy = &p
		default:
			return fmt.Errorf("unknown chain property %q", strings.TrimSpace(stmt))
		}
	}
	if c.Hooknum == nil {
		return fmt.Errorf("a base chain needs type, hook and priority")
	}
	return nil
}

// priority reads "filter - 5", "filter", "-5".
func priority(f []string) (int, error) {
	base, ok := priorities[f[0]]
	if !ok {
		return strconv.Atoi(strings.Join(f, ""))
	}
	switch {
	case len(f) == 1:
		return base, nil
	case len(f) == 3 && (f[1] == "-" || f[1] == "+"):
		d, err := strconv.Atoi(f[2])
		if err != nil {
			return 0, fmt.Errorf("priority %q", strings.Join(f, " "))
		}
		if f[1] == "-" {
			d = -d
		}
		return base + d, nil
	}
	return 0, fmt.Errorf("priority %q", strings.Join(f, " "))
}

// compileRule compiles one rule.
func compileRule(line string, sets map[string]*layout, bridge bool) (rule, error) {
	var r rule
	body, comment, hasComment := strings.Cut(line, ` comment "`)
	if hasComment {
		if !strings.HasSuffix(comment, `"`) || strings.Contains(strings.TrimSuffix(comment, `"`), `"`) {
			return r, fmt.Errorf("comment %q", comment)
		}
		r.comment = strings.TrimSuffix(comment, `"`)
	}
	toks := strings.Fields(body)
	var family byte // the rule's meta nfproto, explicit or implied
	needFamily := func(f byte) error {
		switch family {
		case f:
		case 0:
			family = f
			if bridge {
				r.exprs = append(r.exprs, bridgeDependency(f)...)
				break
			}
			r.exprs = append(r.exprs,
				&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{f}})
		default:
			return fmt.Errorf("matches both families")
		}
		return nil
	}
	verdict := false
	for i := 0; i < len(toks); {
		if verdict {
			return r, fmt.Errorf("%q after the verdict", toks[i])
		}
		switch tok := toks[i]; {
		case tok == "ct" && i+2 < len(toks) && toks[i+1] == "state":
			var mask uint32
			for _, s := range strings.Split(toks[i+2], ",") {
				b, ok := ctStates[s]
				if !ok {
					return r, fmt.Errorf("ct state %q", s)
				}
				mask |= b
			}
			r.exprs = append(r.exprs,
				&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
					Mask: binaryutil.NativeEndian.PutUint32(mask), Xor: make([]byte, 4)},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)})
			i += 3
		case tok == "meta" && i+2 < len(toks) && toks[i+1] == "nfproto":
			f, ok := nfprotos[toks[i+2]]
			if !ok {
				return r, fmt.Errorf("meta nfproto %q", toks[i+2])
			}
			if family != 0 {
				return r, fmt.Errorf("meta nfproto after a family match")
			}
			if err := needFamily(f); err != nil {
				return r, err
			}
			i += 3
		case i+2 < len(toks) && statements[strings.Join(toks[i:i+3], " ")].exprs != nil:
			st := statements[strings.Join(toks[i:i+3], " ")]
			if family != 0 && family != st.family {
				return r, fmt.Errorf("matches two families")
			}
			family = st.family
			r.exprs = append(r.exprs, st.exprs...)
			i += 3
		case tok == "counter":
			r.exprs = append(r.exprs, &expr.Counter{})
			i++
		case tok == "log":
			// log prefix "P" group N: to nflog, as nft sends it.
			if i+4 >= len(toks) || toks[i+1] != "prefix" || toks[i+3] != "group" {
				return r, fmt.Errorf("log: want log prefix \"P\" group N")
			}
			prefix, err := strconv.Unquote(toks[i+2])
			if err != nil {
				return r, fmt.Errorf("log prefix %s", toks[i+2])
			}
			group, err := strconv.ParseUint(toks[i+4], 10, 16)
			if err != nil {
				return r, fmt.Errorf("log group %s", toks[i+4])
			}
			r.exprs = append(r.exprs, &expr.Log{
				Key:   1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX,
				Group: uint16(group),
				Data:  []byte(prefix),
			})
			i += 5
		case tok == "accept" || tok == "drop":
			kind := expr.VerdictAccept
			if tok == "drop" {
				kind = expr.VerdictDrop
			}
			r.exprs = append(r.exprs, &expr.Verdict{Kind: kind})
			verdict = true
			i++
		case tok == "jump" && i+1 < len(toks):
			r.exprs = append(r.exprs, &expr.Verdict{Kind: expr.VerdictJump, Chain: toks[i+1]})
			verdict = true
			i += 2
		default:
			// selector [. selector ...] [!=] @set
			var sels []selector
			for {
				s, n, ok := selectorAt(toks[i:])
				if !ok {
					return r, fmt.Errorf("unknown statement at %q", strings.Join(toks[i:min(i+3, len(toks))], " "))
				}
				sels = append(sels, s)
				i += n
				if i < len(toks) && toks[i] == "." {
					i++
					continue
				}
				break
			}
			invert := false
			if i < len(toks) && toks[i] == "!=" {
				invert = true
				i++
			}
			if i >= len(toks) || !strings.HasPrefix(toks[i], "@") {
				return r, fmt.Errorf("a match needs a set (@name)")
			}
			l := sets[toks[i][1:]]
			if l == nil {
				return r, fmt.Errorf("no set %s", toks[i])
			}
			i++
			if err := lookup(&r, sels, l, invert, needFamily); err != nil {
				return r, err
			}
		}
	}
	return r, nil
}

// selectorAt reads the selector that toks start with: three tokens
// ("arp saddr ip"), two ("ip saddr") or one (a raw payload "@th,64,128"),
// and how many tokens it takes.
func selectorAt(toks []string) (selector, int, bool) {
	for n := min(3, len(toks)); n >= 1; n-- {
		if s, ok := selectors[strings.Join(toks[:n], " ")]; ok {
			return s, n, true
		}
	}
	return selector{}, 0, false
}

// lookup loads the selectors into consecutive registers (the first in
// NFT_REG_1, the others in the 32-bit registers after it, as nft does)
// and looks the key up in the set.
func lookup(r *rule, sels []selector, l *layout, invert bool, needFamily func(byte) error) error {
	if len(sels) != len(l.fields) {
		return fmt.Errorf("set %s has %d fields, the match %d", l.name, len(l.fields), len(sels))
	}
	for _, s := range sels {
		if s.family != 0 {
			if err := needFamily(s.family); err != nil {
				return err
			}
		}
	}
	word := uint32(0) // 32-bit words used so far
	for i, s := range sels {
		if s.len != uint32(l.fields[i].size) {
			return fmt.Errorf("set %s: field %d takes %d bytes, the match loads %d", l.name, i+1, l.fields[i].size, s.len)
		}
		reg := uint32(unix.NFT_REG_1)
		if i > 0 {
			reg = unix.NFT_REG32_00 + word
		}
		r.exprs = append(r.exprs, s.load(reg))
		if s.l4 && l.kind != hashed {
			r.exprs = append(r.exprs, &expr.Byteorder{SourceRegister: reg, DestRegister: reg, Op: expr.ByteorderHton, Len: 1, Size: 2})
		}
		word += (s.len + 3) / 4
	}
	r.exprs = append(r.exprs, &expr.Lookup{SourceRegister: unix.NFT_REG_1, SetName: l.name, SetID: l.set.ID, Invert: invert})
	return nil
}

// userData is a rule comment as nft stores it.
func (r rule) userData() []byte {
	if r.comment == "" {
		return nil
	}
	return userdata.AppendString(nil, userdata.TypeComment, r.comment)
}
