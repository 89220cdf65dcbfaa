package enforce

import (
	"iter"
	"slices"
)

// Read-only views of a Ruleset for loaders that build the table without
// nft's parser (internal/nft/nflink). They describe exactly what Script
// renders: the same sets, elements, comments and chains.

// SetInfo is the declaration of one set of the table.
type SetInfo struct {
	Name string
	// Type is the nft type of the key: one data type or a concatenation,
	// e.g. "ipv4_addr . ipv4_addr . inet_proto . inet_service".
	Type string
	// Typeof: Type is an nft typeof expression ("meta iif . @th,64,128"),
	// for keys that no named type describes.
	Typeof   bool
	Interval bool // flags interval: elements may be prefixes or ranges
	Counter  bool // every element counts its hits
	Comment  string
}

// Sets returns the declarations of the table's sets, in the order Script
// declares them.
func (r *Ruleset) Sets() []SetInfo {
	out := make([]SetInfo, len(r.defs))
	for i, d := range r.defs {
		out[i] = SetInfo{Name: d.name, Type: d.typ, Typeof: d.typeof, Interval: d.interval, Counter: d.counter, Comment: d.comment}
	}
	return out
}

// ElementComment returns the comment of one element of a set as Script
// writes it and the kernel stores it (at most 120 bytes, no quotes,
// backslashes or control characters), and whether the set holds the
// element.
func (r *Ruleset) ElementComment(set, elem string) (string, bool) {
	c, ok := r.elems[set][elem]
	if !ok {
		return "", false
	}
	return storedComment(c), true
}

// AllElements yields every element of a set with its comment (as
// ElementComment returns it), in no particular order: cheaper than
// Elements for a large set.
func (r *Ruleset) AllElements(set string) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for e, c := range r.elems[set] {
			if !yield(e, storedComment(c)) {
				return
			}
		}
	}
}

// ElementChanges returns the set elements that change from old to r, per
// set, as Update renders them for nft when the chains are the same: an
// element of old that r lacks is removed; one that r adds, or whose
// comment changed, is added (and removed first when its comment changed).
// Each list is sorted; sets that do not change are absent.
func (r *Ruleset) ElementChanges(old *Ruleset) (removed, added map[string][]string) {
	removed, added = map[string][]string{}, map[string][]string{}
	for _, d := range r.defs {
		was, now := old.elems[d.name], r.elems[d.name]
		var del, add []string
		for e := range was {
			if _, ok := now[e]; !ok {
				del = append(del, e)
			}
		}
		for e, c := range now {
			if oc, ok := was[e]; !ok || oc != c {
				if ok {
					del = append(del, e)
				}
				add = append(add, e)
			}
		}
		if len(del) > 0 {
			slices.Sort(del)
			removed[d.name] = del
		}
		if len(add) > 0 {
			slices.Sort(add)
			added[d.name] = add
		}
	}
	return removed, added
}

// storedComment is quote(c) without the quotes, and without allocating
// when c needs no change (the common case).
func storedComment(c string) string {
	if len(c) <= 120 {
		clean := true
		for i := 0; i < len(c); i++ {
			if b := c[i]; b == '"' || b == '\\' || b < ' ' || b >= 0x80 { // quote maps runes: let it handle non-ASCII
				clean = false
				break
			}
		}
		if clean {
			return c
		}
	}
	q := quote(c)
	return q[1 : len(q)-1]
}

// Chains returns the table's chains in nft syntax, exactly as Script
// renders them (one tab of indentation, one rule a line).
func (r *Ruleset) Chains() string { return r.chains() }

// LogGroup is the nflog group the ruleset's drops log to.
func (r *Ruleset) LogGroup() uint16 { return r.opts.LogGroup }
