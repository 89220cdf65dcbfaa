package main

import (
	"fmt"
	"slices"
	"strings"
)

// Experiments: zonewarden's ruleset (Ruleset.Script) with its chains or
// sets changed by hand, to find what a new connection pays for in
// forward4. They are measurements for a change to internal/enforce, not
// rulesets zonewarden loads.
//
// What the first packet of an allowed connection met in forward4 as
// compiled before these experiments (unmanaged: warn, the policy's
// default), in order — internal/enforce has since adopted allowFirst, so
// that variant is now the compiled ruleset itself:
//
//	ip saddr @zones4 ip saddr != @admitted4 drop       interval, hash
//	ip daddr @zones4 ip daddr != @admitted4 drop       interval, hash
//	ip saddr @free4 accept                             hash
//	ip daddr @free4 accept                             hash
//	ip saddr @local4 ip saddr != @zones4 accept        interval, interval
//	ip daddr @local4 ip daddr != @zones4 accept        interval, interval
//	saddr . daddr . l4proto . dport @allow4 accept     hash (+ element counter)
//
// eleven set lookups, six of them in interval sets, before the accept.

// allowFirst moves the declared-flow rules (@allow4, @allowrange4) to the
// top of forward4: an allowed connection is accepted after one hash
// lookup. It is the same decision as long as every address in those sets
// is admitted and not free, which Compile guarantees (it adds a flow's
// addresses from the members of workloads, and admits every member).
func allowFirst(script string) (string, error) {
	return editChain(script, "forward4", func(rules []string) ([]string, error) {
		var first, rest []string
		for _, r := range rules {
			if strings.Contains(r, "@allow4 accept") || strings.Contains(r, "@allowrange4 accept") {
				first = append(first, r)
			} else {
				rest = append(rest, r)
			}
		}
		if len(first) != 2 {
			return nil, fmt.Errorf("forward4: %d declared-flow rules, want 2", len(first))
		}
		return append(first, rest...), nil
	})
}

// hashFirst keeps the order of the rules but tests the cheaper (or
// decisive) condition of each first: "!= @admitted4" (hash) before
// "@zones4" (interval) in the fail-closed rules, so that an admitted
// address of a zone costs one lookup per rule instead of two. (The
// unmanaged-network rules it also reordered are gone from the compiled
// ruleset.)
func hashFirst(script string) (string, error) {
	return editChain(script, "forward4", func(rules []string) ([]string, error) {
		swaps := [][2]string{
			{"ip saddr @zones4 ip saddr != @admitted4", "ip saddr != @admitted4 ip saddr @zones4"},
			{"ip daddr @zones4 ip daddr != @admitted4", "ip daddr != @admitted4 ip daddr @zones4"},
		}
		out := slices.Clone(rules)
		for _, s := range swaps {
			i := slices.IndexFunc(out, func(r string) bool { return strings.Contains(r, s[0]) })
			if i < 0 {
				return nil, fmt.Errorf("forward4: no rule %q", s[0])
			}
			out[i] = strings.Replace(out[i], s[0], s[1], 1)
		}
		return out, nil
	})
}

// noFlowCounters drops the per-element counters of allow4 and
// allowrange4 (the sets' "counter" flag): what counting each flow's hits
// costs.
func noFlowCounters(script string) (string, error) {
	for _, set := range []string{"allow4", "allowrange4"} {
		head := "\tset " + set + " {\n"
		i := strings.Index(script, head)
		if i < 0 {
			return "", fmt.Errorf("no set %s", set)
		}
		body := script[i+len(head):]
		end := strings.Index(body, "\n\t}\n")
		j := strings.Index(body, "\t\tcounter\n")
		if j < 0 || j > end {
			return "", fmt.Errorf("set %s has no counter flag", set)
		}
		script = script[:i+len(head)] + body[:j] + body[j+len("\t\tcounter\n"):]
	}
	return script, nil
}

// chain applies edits in order.
func chain(edits ...func(string) (string, error)) func(string) (string, error) {
	return func(s string) (string, error) {
		var err error
		for _, e := range edits {
			if s, err = e(s); err != nil {
				return "", err
			}
		}
		return s, nil
	}
}

// editChain replaces the rules of one chain of the script (one rule a
// line, as Ruleset.Script writes them) with what edit returns.
func editChain(script, name string, edit func([]string) ([]string, error)) (string, error) {
	head := "\tchain " + name + " {\n"
	i := strings.Index(script, head)
	if i < 0 {
		return "", fmt.Errorf("no chain %s", name)
	}
	start := i + len(head)
	n := strings.Index(script[start:], "\t}\n")
	if n < 0 {
		return "", fmt.Errorf("chain %s does not end", name)
	}
	rules := strings.SplitAfter(script[start:start+n], "\n")
	rules = rules[:len(rules)-1] // after the last "\n"
	edited, err := edit(rules)
	if err != nil {
		return "", err
	}
	return script[:start] + strings.Join(edited, "") + script[start+n:], nil
}
