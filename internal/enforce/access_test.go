package enforce

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TestAccessorsDescribeScript: the read-only views describe what Script
// renders: its sets, elements, comments and chains.
func TestAccessorsDescribeScript(t *testing.T) {
	r := Compile(bind(t, threeTierPolicy, threeTier()), Options{})
	script := r.Script()
	for _, d := range r.Sets() {
		decl := fmt.Sprintf("\tset %s {\n\t\ttype %s\n", d.Name, d.Type)
		if d.Interval {
			decl += "\t\tflags interval\n"
		}
		if d.Counter {
			decl += "\t\tcounter\n"
		}
		decl += fmt.Sprintf("\t\tcomment %q\n", d.Comment)
		if !strings.Contains(script, decl) {
			t.Errorf("Script lacks set %s as Sets describes it:\n%s", d.Name, decl)
		}
		all := map[string]string{}
		for e, c := range r.AllElements(d.Name) {
			all[e] = c
			if got, ok := r.ElementComment(d.Name, e); !ok || got != c {
				t.Errorf("%s %s: ElementComment = %q, %v; AllElements %q", d.Name, e, got, ok, c)
			}
			if !strings.Contains(script, "\t\t\t"+e+" comment \""+c+"\"") {
				t.Errorf("Script lacks %s comment %q in %s", e, c, d.Name)
			}
		}
		if keys := slices.Sorted(maps.Keys(all)); !slices.Equal(keys, r.Elements(d.Name)) {
			t.Errorf("%s: AllElements %v, Elements %v", d.Name, keys, r.Elements(d.Name))
		}
	}
	if !strings.HasSuffix(script, r.Chains()+"}\n") {
		t.Error("Script does not end with Chains")
	}
	if _, ok := r.ElementComment("admitted4", "192.0.2.1"); ok {
		t.Error("ElementComment finds an element the set lacks")
	}
}

// TestStoredCommentIsQuote: the comment the accessors give is quote's,
// without the quotes.
func TestStoredCommentIsQuote(t *testing.T) {
	for _, c := range []string{"", "lb", "frontend -> api", `say "hi"`, `a\b`, "tab\there", "new\nline",
		strings.Repeat("x", 120), strings.Repeat("y", 121), strings.Repeat("é", 70), "bad \xff utf-8", "ünïcode"} {
		q := quote(c)
		if got := storedComment(c); got != q[1:len(q)-1] {
			t.Errorf("storedComment(%q) = %q, quote = %s", c, got, q)
		}
	}
}

// TestElementChangesAreUpdates: ElementChanges lists the elements Update
// renders, set by set.
func TestElementChangesAreUpdates(t *testing.T) {
	snap := threeTier()
	old := Compile(bind(t, threeTierPolicy, snap), Options{})
	snap.Containers[3].Endpoints[0].IPv4 = netip.MustParseAddr("10.20.3.77") // postgres restarted
	snap.Containers[0].Name = "lb-2"                                         // lb's comments change
	doc := strings.Replace(threeTierPolicy, "{match: {name: lb}", "{match: {name: lb-2}", 1)
	now := Compile(bind(t, doc, snap), Options{})
	removed, added := now.ElementChanges(old)
	var lines []string
	for _, d := range setDefs() {
		if es := removed[d.name]; len(es) > 0 {
			lines = append(lines, fmt.Sprintf("delete element inet zonewarden %s { %s }", d.name, strings.Join(es, ", ")))
		}
		if es := added[d.name]; len(es) > 0 {
			items := make([]string, len(es))
			for i, e := range es {
				c, _ := now.ElementComment(d.name, e)
				items[i] = e + ` comment "` + c + `"`
			}
			lines = append(lines, fmt.Sprintf("add element inet zonewarden %s { %s }", d.name, strings.Join(items, ", ")))
		}
	}
	if got, want := strings.Join(lines, "\n")+"\n", now.Update(old); got != want {
		t.Errorf("ElementChanges renders\n%s\nUpdate\n%s", got, want)
	}
	if removed["admitted4"] == nil || added["admitted4"] == nil {
		t.Errorf("no change to admitted4: %v %v", removed, added)
	}
	if r, a := now.ElementChanges(now); len(r) != 0 || len(a) != 0 {
		t.Errorf("no change: %v %v", r, a)
	}
}
