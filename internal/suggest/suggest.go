// Package suggest finds the names a mistyped one was probably meant to
// be, for "did you mean ...?" in error messages.
package suggest

import (
	"slices"
	"strings"
)

// Closest returns up to n candidates nearest to name by edit distance
// (and those that contain it, or that it contains), nearest first; none
// that are too far to help.
func Closest(name string, candidates []string, n int) []string {
	type scored struct {
		s string
		d int
	}
	var out []scored
	lname := strings.ToLower(name)
	for _, c := range candidates {
		d := Distance(lname, strings.ToLower(c))
		if strings.Contains(strings.ToLower(c), lname) || strings.Contains(lname, strings.ToLower(c)) {
			d = min(d, 1)
		}
		if d <= max(2, len(name)/3) {
			out = append(out, scored{c, d})
		}
	}
	slices.SortStableFunc(out, func(a, b scored) int {
		if a.d != b.d {
			return a.d - b.d
		}
		return strings.Compare(a.s, b.s)
	})
	names := make([]string, 0, n)
	for _, s := range out[:min(n, len(out))] {
		names = append(names, s.s)
	}
	return names
}

// Distance is the Levenshtein distance between a and b (bytes).
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
