package enforce

import (
	"fmt"
	"strings"
)

// The table's chains as typed objects: each rule is an ordered list of
// matches and one verdict. The nft text (Script, and through it the
// netlink loader) and the packet tracer (Trace) both derive from them, so
// that what the tests trace is what the kernel runs.

// Field is one part of a packet that a rule reads.
type Field int

// The fields, with their nft names.
const (
	Src4     Field = iota // ip saddr
	Dst4                  // ip daddr
	Src6                  // ip6 saddr
	Dst6                  // ip6 daddr
	L4Proto               // meta l4proto
	DstPort               // th dport
	InPort                // meta iif: the bridge port a frame came in by
	ARPSrc                // arp saddr ip
	NDTarget              // the target of an IPv6 neighbour advertisement
)

var fieldNames = map[Field]string{
	Src4: "ip saddr", Dst4: "ip daddr", Src6: "ip6 saddr", Dst6: "ip6 daddr",
	L4Proto: "meta l4proto", DstPort: "th dport", InPort: "meta iif", ARPSrc: "arp saddr ip", NDTarget: ndTarget,
}

func (f Field) String() string { return fieldNames[f] }

// MatchKind says what a [Match] tests.
type MatchKind int

const (
	// InSet: the key made of Fields is (Not: is not) in Set.
	InSet MatchKind = iota
	// Family: the packet is of family Value ("ipv4", "ipv6").
	Family
	// CtState: the connection is in one of the states Value lists
	// ("established,related").
	CtState
	// ICMPv6Type: the packet is an ICMPv6 message of type Value
	// ("nd-neighbor-advert").
	ICMPv6Type
)

// Match is one condition of a rule.
type Match struct {
	Kind   MatchKind
	Fields []Field // InSet: the key, in order
	Set    string  // InSet
	Not    bool    // InSet: the key is not in the set
	Value  string  // Family, CtState, ICMPv6Type
}

func (m Match) String() string {
	switch m.Kind {
	case Family:
		return "meta nfproto " + m.Value
	case CtState:
		return "ct state " + m.Value
	case ICMPv6Type:
		return "icmpv6 type " + m.Value
	}
	names := make([]string, len(m.Fields))
	for i, f := range m.Fields {
		names[i] = f.String()
	}
	not := ""
	if m.Not {
		not = "!= "
	}
	return strings.Join(names, " . ") + " " + not + "@" + m.Set
}

// in is a match of a key in a set; notIn, of a key not in it.
func in(set string, fields ...Field) Match { return Match{Kind: InSet, Fields: fields, Set: set} }
func notIn(set string, fields ...Field) Match {
	return Match{Kind: InSet, Fields: fields, Set: set, Not: true}
}

// Action is what a rule does with a packet that meets all its matches.
type Action int

const (
	// Accept ends the hook's evaluation in this table; the packet goes on
	// to the other tables' chains (Docker's).
	Accept Action = iota
	// Drop is final: counted, logged to nflog as the rule's Drop.
	Drop
	// Jump evaluates chain Target; a packet that falls off its end comes
	// back to the rule after this one.
	Jump
	// Monitor accepts as Accept does, counted and logged to nflog as
	// the rule's Drop would have been (WouldLogPrefix): a drop of a zone
	// in monitor mode.
	Monitor
)

// Rule is one rule of a chain.
type Rule struct {
	Match  []Match
	Action Action
	// Drop names a drop rule (its counter, log prefix and comment).
	Drop DropRule
	// Target is the chain a Jump goes to.
	Target string
	// Comment is an accept's comment ("declared flows"); a drop's is its
	// Drop's.
	Comment string
}

// Chain is one chain of the table. A base chain has a hook and a
// priority, and accepts what falls off its end.
type Chain struct {
	Name     string
	Hook     string // "forward", "input", "prerouting"; empty for a regular chain
	Priority string // as nft writes it: "filter - 10", "-300"
	Rules    []Rule
}

// String renders the rule as nft text (a drop logging to LogGroup).
func (r Rule) String() string { return r.render(LogGroup) }

// LogPrefix is the prefix a drop rule's packets are logged with to
// nflog: "zw:<ID>".
func (d DropRule) LogPrefix() string { return logPrefix + d.ID }

// WouldLogPrefix is the prefix of the packets a monitor-mode twin of the
// drop rule lets through: "zw:would:<ID>".
func (d DropRule) WouldLogPrefix() string { return logPrefix + wouldPrefix + d.ID }

// WouldDenyComment starts the comment of every monitor-mode twin.
const WouldDenyComment = "monitor mode, would deny: "

// WouldComment is the comment of the drop rule's monitor-mode twin.
func (d DropRule) WouldComment() string { return WouldDenyComment + d.Comment }

// render writes the rule as nft text, with a drop's statements for log
// group.
func (r Rule) render(group uint16) string {
	parts := make([]string, 0, len(r.Match)+1)
	for _, m := range r.Match {
		parts = append(parts, m.String())
	}
	switch r.Action {
	case Accept:
		v := "accept"
		if r.Comment != "" {
			v += fmt.Sprintf(" comment %q", r.Comment)
		}
		parts = append(parts, v)
	case Drop:
		parts = append(parts, fmt.Sprintf("counter log prefix %q group %d drop comment %q", r.Drop.LogPrefix(), group, r.Drop.Comment))
	case Monitor:
		parts = append(parts, fmt.Sprintf("counter log prefix %q group %d accept comment %q", r.Drop.WouldLogPrefix(), group, r.Drop.WouldComment()))
	case Jump:
		parts = append(parts, "jump "+r.Target)
	}
	return strings.Join(parts, " ")
}

// render writes the chain as nft text, inside a table block.
func (c Chain) render(group uint16) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
	if c.Hook != "" {
		fmt.Fprintf(&b, "\t\ttype filter hook %s priority %s; policy accept;\n", c.Hook, c.Priority)
	}
	for _, r := range c.Rules {
		b.WriteString("\t\t" + r.render(group) + "\n")
	}
	b.WriteString("\t}\n")
	return b.String()
}
