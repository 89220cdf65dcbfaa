package enforce

import (
	"strings"
)

// Change is the difference between two full-sync scripts of this
// package: set elements added and removed (per set), and whether the
// chains differ (a full replace rather than element updates).
type Change struct {
	Added, Removed map[string][]string // set -> elements
	Chains         bool
}

// Empty reports whether nothing changes.
func (c Change) Empty() bool { return len(c.Added) == 0 && len(c.Removed) == 0 && !c.Chains }

// Count returns the numbers of elements added and removed.
func (c Change) Count() (added, removed int) {
	for _, es := range c.Added {
		added += len(es)
	}
	for _, es := range c.Removed {
		removed += len(es)
	}
	return added, removed
}

// Diff compares an installed script (from an earlier apply) with r.
func (r *Ruleset) Diff(installed string) Change {
	old, oldChains := parseScript(installed)
	c := Change{Added: map[string][]string{}, Removed: map[string][]string{}, Chains: oldChains != strings.TrimSpace(r.chains())}
	for _, d := range r.defs {
		for _, e := range r.Elements(d.name) {
			if !old[d.name][e] {
				c.Added[d.name] = append(c.Added[d.name], e)
			}
		}
		for e := range old[d.name] {
			if _, ok := r.elems[d.name][e]; !ok {
				c.Removed[d.name] = append(c.Removed[d.name], e)
			}
		}
	}
	for k, v := range c.Added {
		if len(v) == 0 {
			delete(c.Added, k)
		}
	}
	return c
}

// parseScript reads back the elements and chains of a script Script
// wrote.
func parseScript(script string) (map[string]map[string]bool, string) {
	sets := map[string]map[string]bool{}
	var chains strings.Builder
	set, inElems, inChains := "", false, false
	for _, line := range strings.Split(script, "\n") {
		switch {
		case strings.HasPrefix(line, "\tchain "):
			inChains = true
		case strings.HasPrefix(line, "\tset "):
			set = strings.TrimSuffix(strings.TrimPrefix(line, "\tset "), " {")
			sets[set] = map[string]bool{}
			continue
		case strings.HasPrefix(line, "\t\telements = {"):
			inElems = true
			continue
		case inElems && line == "\t\t}":
			inElems = false
			continue
		}
		if inChains {
			if line != "}" {
				chains.WriteString(line + "\n")
			}
			continue
		}
		if inElems {
			e, _, _ := strings.Cut(strings.TrimSpace(line), " comment ")
			sets[set][strings.TrimSuffix(e, ",")] = true
		}
	}
	return sets, strings.TrimSpace(chains.String())
}
