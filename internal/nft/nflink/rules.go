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

	"github.com/zonewarden/zonewarden/internal/enforce"
)

// A chain of the table, compiled from enforce.Ruleset.ChainRules into the
// kernel's expressions.
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

// compileChains turns the chains of a table (enforce.Ruleset.ChainRules)
// into rules that load the same expressions nft would for their text: the
// registers, implicit meta nfproto dependencies and byte order swaps are
// nft's, so that `nft list` shows the same rules. Drops log to nflog group
// group. It knows the matches zonewarden writes and refuses anything else.
func compileChains(cs []enforce.Chain, group uint16, t *nftables.Table, sets map[string]*layout) ([]*chain, error) {
	out := make([]*chain, 0, len(cs))
	for _, c := range cs {
		cur := &chain{chain: &nftables.Chain{Table: t, Name: c.Name}}
		if c.Hook != "" {
			if err := baseChain(cur.chain, c.Hook, c.Priority); err != nil {
				return nil, fmt.Errorf("chain %s: %w", c.Name, err)
			}
		}
		for i, r := range c.Rules {
			cr, err := compileRule(r, group, sets, t.Family == nftables.TableFamilyBridge)
			if err != nil {
				return nil, fmt.Errorf("chain %s, rule %d (%s): %w", c.Name, i+1, r, err)
			}
			cur.rules = append(cur.rules, cr)
		}
		out = append(out, cur)
	}
	return out, nil
}

// baseChain makes c a filter chain on hook at prio ("filter - 5", "-300")
// that accepts what falls off its end.
func baseChain(c *nftables.Chain, hook, prio string) error {
	h, ok := hooks[hook]
	if !ok {
		return fmt.Errorf("hook %q", hook)
	}
	p, err := priority(strings.Fields(prio))
	if err != nil {
		return err
	}
	accept := nftables.ChainPolicyAccept
	c.Type, c.Hooknum, c.Priority, c.Policy = nftables.ChainTypeFilter, h, nftables.ChainPriorityRef(nftables.ChainPriority(p)), &accept
	return nil
}

// priority reads "filter - 5", "filter", "-5".
func priority(f []string) (int, error) {
	if len(f) == 0 {
		return 0, fmt.Errorf("no priority")
	}
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
func compileRule(src enforce.Rule, group uint16, sets map[string]*layout, bridge bool) (rule, error) {
	r := rule{comment: src.Comment}
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
	for _, m := range src.Match {
		switch m.Kind {
		case enforce.CtState:
			var mask uint32
			for _, s := range strings.Split(m.Value, ",") {
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
		case enforce.Family:
			f, ok := nfprotos[m.Value]
			if !ok {
				return r, fmt.Errorf("meta nfproto %q", m.Value)
			}
			if family != 0 {
				return r, fmt.Errorf("meta nfproto after a family match")
			}
			if err := needFamily(f); err != nil {
				return r, err
			}
		case enforce.ICMPv6Type:
			st, ok := statements[m.String()]
			if !ok {
				return r, fmt.Errorf("unknown match %q", m)
			}
			if family != 0 && family != st.family {
				return r, fmt.Errorf("matches two families")
			}
			family = st.family
			r.exprs = append(r.exprs, st.exprs...)
		case enforce.InSet:
			sels := make([]selector, len(m.Fields))
			for i, f := range m.Fields {
				s, ok := selectors[f.String()]
				if !ok {
					return r, fmt.Errorf("unknown field %q", f)
				}
				sels[i] = s
			}
			l := sets[m.Set]
			if l == nil {
				return r, fmt.Errorf("no set @%s", m.Set)
			}
			if err := lookup(&r, sels, l, m.Not, needFamily); err != nil {
				return r, err
			}
		default:
			return r, fmt.Errorf("unknown match %q", m)
		}
	}
	switch src.Action {
	case enforce.Accept:
		r.exprs = append(r.exprs, &expr.Verdict{Kind: expr.VerdictAccept})
	case enforce.Drop, enforce.Monitor:
		// counter, log prefix "P" group N (to nflog, as nft sends it),
		// then drop; a monitor-mode twin logs "zw:would:ID" and accepts
		prefix, verdict := src.Drop.LogPrefix(), expr.VerdictDrop
		r.comment = src.Drop.Comment
		if src.Action == enforce.Monitor {
			prefix, verdict = src.Drop.WouldLogPrefix(), expr.VerdictAccept
			r.comment = src.Drop.WouldComment()
		}
		r.exprs = append(r.exprs, &expr.Counter{}, &expr.Log{
			Key:   1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX,
			Group: group,
			Data:  []byte(prefix),
		}, &expr.Verdict{Kind: verdict})
	case enforce.Jump:
		r.exprs = append(r.exprs, &expr.Verdict{Kind: expr.VerdictJump, Chain: src.Target})
	default:
		return r, fmt.Errorf("unknown action %d", src.Action)
	}
	return r, nil
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
