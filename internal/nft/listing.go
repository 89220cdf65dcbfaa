package nft

import (
	"regexp"
	"strconv"
	"strings"
)

// Counter is one rule's counter in a table listing, with the rule's
// verdict and comment.
type Counter struct {
	Packets, Bytes uint64
	Verdict        string // drop or accept
	Comment        string
}

// counterLine finds the counters of the rules that end in a verdict and
// carry a comment (zonewarden's drops and monitor-mode twins).
var counterLine = regexp.MustCompile(`counter packets (\d+) bytes (\d+) (?:log prefix "[^"]*" group \d+ )?(drop|accept) comment "([^"]*)"`)

// Counters reads the counted, commented drop and accept rules of a
// listing (List's output), in listing order.
func Counters(listing string) []Counter {
	var out []Counter
	for _, m := range counterLine.FindAllStringSubmatch(listing, -1) {
		p, _ := strconv.ParseUint(m[1], 10, 64)
		b, _ := strconv.ParseUint(m[2], 10, 64)
		out = append(out, Counter{Packets: p, Bytes: b, Verdict: m[3], Comment: m[4]})
	}
	return out
}

var elementComment = regexp.MustCompile(`comment "([^"]*)"`)

// ElementComments returns the comments of a set's elements in a listing,
// in listing order (the set's own comment aside).
func ElementComments(listing, set string) []string {
	i := strings.Index(listing, "set "+set+" {")
	if i < 0 {
		return nil
	}
	body := listing[i:]
	if j := strings.Index(body, "\n\t}"); j >= 0 {
		body = body[:j]
	}
	out := []string{}
	if k := strings.Index(body, "elements = {"); k >= 0 {
		for _, m := range elementComment.FindAllStringSubmatch(body[k:], -1) {
			out = append(out, m[1])
		}
	}
	return out
}
