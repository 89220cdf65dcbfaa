package main

import (
	"strings"
	"testing"
)

// The filler flows come from 198.19.0.0/16 to 198.18.200.0/24; the
// benchmark's flow is 198.18.1.8/30 -> 198.18.2.2 tcp/8080 (see main.go).

func TestFlowSet(t *testing.T) {
	for _, n := range []int{1, 10, 70000} {
		fs := flowSet(n)
		if len(fs) != n {
			t.Fatalf("flowSet(%d): %d flows", n, len(fs))
		}
		if fs[n-1] != benchFlow {
			t.Errorf("flowSet(%d): last flow %v, want the benchmark's", n, fs[n-1])
		}
		// No two flows of one source and destination may overlap in ports:
		// nft refuses overlapping interval elements.
		type pair struct{ src, dst string }
		seen := map[pair][][2]uint16{}
		for _, f := range fs[:n-1] {
			if f.src.Contains(benchFlow.src.Addr()) || f.dst.Contains(serverAddr) {
				t.Fatalf("filler flow %v matches the benchmark's traffic", f)
			}
			p := pair{f.src.String(), f.dst.String()}
			for _, r := range seen[p] {
				if f.portLo <= r[1] && r[0] <= f.portHi {
					t.Fatalf("flows %v and %v overlap", p, r)
				}
			}
			seen[p] = append(seen[p], [2]uint16{f.portLo, f.portHi})
		}
	}
}

func TestIptablesScriptBenchFlowLast(t *testing.T) {
	lines := strings.Split(strings.TrimSpace(string(iptablesScript(1000))), "\n")
	var rules []string
	for _, l := range lines {
		if strings.HasPrefix(l, "-A FORWARD") {
			rules = append(rules, l)
		}
	}
	// ct accept + 1000 flows + DROP
	if len(rules) != 1002 {
		t.Fatalf("%d rules, want 1002", len(rules))
	}
	want := "-A FORWARD -s 198.18.1.8/30 -d 198.18.2.2/32 -p tcp -m tcp --dport 8080 -j ACCEPT"
	if rules[1000] != want {
		t.Errorf("last flow rule %q, want %q", rules[1000], want)
	}
	if rules[1001] != "-A FORWARD -j DROP" {
		t.Errorf("last rule %q", rules[1001])
	}
}

func TestSketchScripts(t *testing.T) {
	z := string(sketchScript(10))
	if got := strings.Count(z, " . tcp . "); got != 10 {
		t.Errorf("zonewarden script: %d elements, want 10", got)
	}
	if !strings.Contains(z, "198.18.1.8/30 . 198.18.2.2 . tcp . 8080 }") {
		t.Errorf("zonewarden script lacks the benchmark's flow:\n%s", z)
	}
	h := string(sketchHashScript(10))
	if strings.Contains(h, "flags interval; }") || strings.Contains(h, "dport; flags interval") {
		t.Errorf("hash script has an interval flows set:\n%s", h)
	}
	// 9 filler flows + the benchmark's /30 as 4 addresses.
	if got := strings.Count(h, " . tcp . "); got != 13 {
		t.Errorf("hash script: %d elements, want 13", got)
	}
	if strings.Contains(h, "-") && strings.Contains(h[strings.Index(h, "add element"):], "-") {
		t.Errorf("hash script has a range:\n%s", h)
	}
}
