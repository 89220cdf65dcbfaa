package policy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/l4"
	yaml "go.yaml.in/yaml/v4"
)

// seeds are policies for the fuzz corpus besides testdata/*.yaml: every
// field, odd but valid spellings, and a few broken files.
var seeds = []string{
	"version: 1\n",
	"version: 1\nzones: {a: {}}\nworkloads: {w: {match: {name: w}, zones: [a]}}\n",
	`version: 1
zones:
  "z.1": {internal: true, default: deny}
  z-2: {default: ALLOW}
workloads:
  w: {match: {name: "w-*", image: "ghcr.io/x/y@sha256:*", label: {"a.b/c": "v*", k: ""}, compose: {project: p, service: "s?"}},
      zones: [z.1, z-2], publish: ["[::1]:8443:443/tcp", "127.0.0.1::80/udp", "9000-9001:9000-9001/sctp", 53/udp],
      ingress: [10.0.0.0/8, "2001:db8::/32"], egress: [{to: 0.0.0.0/0, ports: [all]}]}
  v: &v {match: {name: v}, zones: [z-2]}
flows:
  - {from: w, to: zone:z-2, ports: [1-65535/tcp, icmp]}
  - {from: zone:z.1, to: w, ports: ["8080"]}
tests:
  - {from: w, to: v, port: 80/tcp, expect: allow}
  - {from: 192.0.2.1, to: w, port: 8443/tcp, expect: deny}
  - {from: w, to: "2001:db8::1", expect: allow}
unmanaged: deny
`,
	"# comment\nversion: 1 # trailing\n\n# zones\nzones:\n  # z\n  z: {}\nflows: []\ntests: ~\n",
	"version: 1\nzones:\n  a: {}\n  a: {}\n",
	"version: 1\nflows:\n  - {from: x, to: y, ports: [80-70/tcp]}\n",
	"version: [1]\nzones: 3\nworkloads: [a]\n",
	"version: 1\nworkloads: {w: {match: {name: '[x'}, zones: [q]}}\n",
	"{version: 1, zones: {a: {}}, workloads: {w: {match: {name: w}, zones: [a]}}}",
	"version: 1\n---\n",
	"version: !!str 1\n",
	"version: 1\nzones: {a: {}}\nworkloads:\n  w: &x {match: {name: w}, zones: [a]}\n  v: *x\n",
}

func addSeeds(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob("testdata/*.yaml")
	golden, _ := filepath.Glob("testdata/*.golden")
	for _, name := range append(files, golden...) {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

// FuzzParse: Parse never panics; a policy it accepts formats to a file it
// accepts again, with the same content, and formatting that file changes
// nothing (internal/model's FuzzEval asks the model questions).
func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("f.yaml", data, Options{})
		if err != nil {
			var perr *Error
			if !asError(err, &perr) || len(perr.Problems) == 0 {
				t.Fatalf("Parse error is %T %v, want *Error with problems", err, err)
			}
			for _, pr := range perr.Problems {
				if pr.Msg == "" || strings.Contains(pr.Msg, "\n") {
					t.Fatalf("problem %q is not one line", pr.Msg)
				}
			}
			return
		}
		out := Format(p)
		p2, err := Parse("f.yaml", out, Options{})
		if err != nil {
			t.Fatalf("Format output does not parse: %v\ninput:\n%s\nformatted:\n%s", err, data, out)
		}
		if a, b := comparable(p), comparable(p2); !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip changed the policy:\n%+v\n%+v\nformatted:\n%s", a, b, out)
		}
		if again := Format(p2); !bytes.Equal(again, out) {
			t.Fatalf("Format is not idempotent:\n%s\n---\n%s", out, again)
		}
	})
}

func asError(err error, target **Error) bool {
	e, ok := err.(*Error)
	if ok {
		*target = e
	}
	return ok
}

// comparable strips what a round trip does not keep: positions, comments,
// the file name.
func comparable(p *Policy) Policy {
	c := *p
	c.File = ""
	c.Comments = Comments{}
	c.Zones = append([]Zone(nil), p.Zones...)
	for i := range c.Zones {
		c.Zones[i].Pos, c.Zones[i].Comment = Pos{}, ""
	}
	c.Workloads = append([]Workload(nil), p.Workloads...)
	for i := range c.Workloads {
		w := &c.Workloads[i]
		w.Pos, w.Comment, w.zonePos, w.publishPos, w.ingressPos, w.matchPos, w.bad = Pos{}, "", nil, nil, nil, Pos{}, 0
		w.Egress = append([]Egress(nil), w.Egress...)
		for j := range w.Egress {
			w.Egress[j].Pos = Pos{}
		}
	}
	c.Flows = append([]Flow(nil), p.Flows...)
	for i := range c.Flows {
		f := &c.Flows[i]
		f.Pos, f.Comment, f.fromPos, f.toPos, f.portsPos = Pos{}, "", Pos{}, Pos{}, Pos{}
	}
	c.Tests = append([]Test(nil), p.Tests...)
	for i := range c.Tests {
		t := &c.Tests[i]
		t.Pos, t.Comment, t.fromPos, t.toPos = Pos{}, "", Pos{}, Pos{}
	}
	return c
}

// FuzzChunked: cutting a file into pieces parsed (and, for flows and
// tests, decoded) on several CPUs gives the policy and the problems that
// parsing it whole gives, positions and comments included — or gives up.
func FuzzChunked(f *testing.F) {
	addSeeds(f)
	big := Format(benchPolicy(40, 8, 120, 30))
	f.Add(big)
	f.Add(bytes.ReplaceAll(big, []byte("\n  - {from"), []byte("\n  - {\nfrom")))
	f.Add(bytes.ReplaceAll(big, []byte("ports: [1"), []byte("ports: [1-0")))
	f.Add([]byte("version: 1\nflows:\n  - |\n    x\n  - y\ntests:\n- a\n- b\n# c\n- c\nunmanaged: warn\n"))
	f.Add([]byte("version: 1\nflows:\n  - \"a\n  - b\"\n  - c\n"))
	f.Add([]byte("version: 1\nworkloads:\n  ? [a]\n  : b\n  c: d\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, w := range []int{2, 3} {
			chunked, cprobs, ok := parseWith(data, w)
			if !ok {
				continue
			}
			whole, wprobs, _ := parseWith(data, 0)
			if !reflect.DeepEqual(cprobs, wprobs) {
				t.Fatalf("%d pieces: problems\n%s\nwhole:\n%s\ninput:\n%s", w, strings.Join(cprobs, "\n"), strings.Join(wprobs, "\n"), data)
			}
			if !reflect.DeepEqual(chunked, whole) {
				t.Fatalf("%d pieces: policy\n%+v\nwhole:\n%+v\ninput:\n%s", w, chunked, whole, data)
			}
		}
	})
}

// parseWith decodes data as Parse does, in pieces on the given number of
// workers (0: whole). ok is false when the pieces were not used.
func parseWith(data []byte, w int) (*Policy, []string, bool) {
	oldMin, oldWorkers := chunkMin, workers
	defer func() { chunkMin, workers = oldMin, oldWorkers }()
	chunkMin, workers = 0, func() int { return w }
	if w == 0 {
		chunkMin = len(data) + 1
	} else if _, _, ok := loadChunked(data, w); !ok {
		return nil, nil, false
	}
	ps := &problems{file: "f.yaml"}
	p := decode("f.yaml", data, ps)
	if p != nil {
		validate(p, ps)
	}
	var out []string
	for _, pr := range ps.sorted() {
		out = append(out, pr.String())
	}
	return p, out, true
}

// sameTree compares YAML trees by kind, tag, value and position.
func sameTree(a, b *yaml.Node, depth int) string {
	if depth > 50 {
		return ""
	}
	if a.Kind != b.Kind || a.ShortTag() != b.ShortTag() || a.Value != b.Value || a.Line != b.Line || a.Column != b.Column || len(a.Content) != len(b.Content) {
		return fmt.Sprintf("node %d:%d kind %v %q %q (%d children) vs %d:%d kind %v %q %q (%d children)",
			a.Line, a.Column, a.Kind, a.Tag, a.Value, len(a.Content), b.Line, b.Column, b.Kind, b.Tag, b.Value, len(b.Content))
	}
	if (a.Alias == nil) != (b.Alias == nil) {
		return fmt.Sprintf("alias at %d:%d", a.Line, a.Column)
	}
	for i := range a.Content {
		if d := sameTree(a.Content[i], b.Content[i], depth+1); d != "" {
			return d
		}
	}
	return ""
}

// benchPolicy builds a valid policy of the given size without the
// synthetic package (which imports this one).
func benchPolicy(workloads, zones, flows, tests int) *Policy {
	p := &Policy{Version: Version, Unmanaged: UnmanagedWarn}
	for i := range zones {
		p.Zones = append(p.Zones, Zone{Name: fmt.Sprintf("z%d", i), Default: []Action{Allow, Deny}[i%2], Comment: fmt.Sprintf("zone %d", i)})
	}
	for i := range workloads {
		p.Workloads = append(p.Workloads, Workload{Name: fmt.Sprintf("w%d", i), Match: Match{Name: fmt.Sprintf("w%d", i)},
			Zones: []string{fmt.Sprintf("z%d", i%zones)}, Comment: fmt.Sprintf("workload %d", i)})
	}
	for i := range flows {
		a := i % workloads
		b := (a + zones) % workloads
		p.Flows = append(p.Flows, Flow{From: WorkloadRef(fmt.Sprintf("w%d", a)), To: WorkloadRef(fmt.Sprintf("w%d", b)),
			Ports: l4.List{{Proto: l4.ProtoTCP, First: uint16(1000 + i), Last: uint16(1000 + i)}}})
		if i%7 == 0 {
			p.Flows[i].Comment = "every seventh"
		}
	}
	for i := range tests {
		p.Tests = append(p.Tests, Test{From: WorkloadRef(fmt.Sprintf("w%d", i%workloads)), To: WorkloadRef("w0"), Expect: Allow})
	}
	return p
}

// FuzzFastItems: the lines fastItems reads give the nodes the YAML parser
// gives for them.
func FuzzFastItems(f *testing.F) {
	for _, s := range []string{
		"  - {from: web, to: api, ports: [8080/tcp]}",
		"  - {from: \"zone:dmz\", to: 'w', port: 53/udp, expect: deny}",
		"  - {from: lb,       to: frontend, ports: [8080/tcp, 9000-9100/udp, icmp, all]}",
		"  - {a: 1, b: [], c: 0}",
		"  - {}",
		"  - {from: 192.0.2.1, to: x}",
		"  - {from: true, to: 1e3, ports: [2001-12-14]}",
		"  - {from: a:b, to: zone:x.y_z-1}",
		"  - {from: \"\", to: ''}",
		"- {from: a, to: b}\n- {from: c, to: d, ports: [1/tcp, 2]}\n\n- {x: y}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		body := string(data)
		indent := indentOf(data)
		lines := strings.Split(body, "\n")
		line := func(i int) []byte { return []byte(lines[i]) }
		items, ok := fastItems(line, 0, len(lines), indent)
		if !ok {
			return
		}
		var doc yaml.Node
		if err := yaml.Load([]byte("flows:\n"+body), &doc, yaml.WithUniqueKeys(false)); err != nil {
			t.Fatalf("fastItems read what YAML rejects (%v):\n%s", err, body)
		}
		seq := doc.Content[0].Content[1]
		if len(items) == 0 {
			return
		}
		if seq.Kind != yaml.SequenceNode || len(seq.Content) != len(items) {
			t.Fatalf("YAML reads %d items, fastItems %d:\n%s", len(seq.Content), len(items), body)
		}
		for i, it := range items {
			shiftLines(it, 1)
			if d := sameTree(it, seq.Content[i], 0); d != "" {
				t.Fatalf("item %d differs: %s\n%s", i, d, body)
			}
		}
	})
}

// TestChunkedCanonical: what Format writes is cut and read fast, and
// gives what a whole parse gives.
func TestChunkedCanonical(t *testing.T) {
	p := benchPolicy(200, 20, 3000, 500)
	p.Flows[5].From = ZoneRef("z5")
	p.Flows[6].Ports = l4.List{{Proto: l4.ProtoTCP, First: 80, Last: 90}, {Proto: l4.ProtoTCP, First: 85, Last: 85}} // an overlap, reported
	data := Format(p)
	chunked, cprobs, ok := parseWith(data, 4)
	if !ok {
		t.Fatal("loadChunked gave up on Format's output")
	}
	whole, wprobs, _ := parseWith(data, 0)
	if !reflect.DeepEqual(cprobs, wprobs) || len(cprobs) != 1 {
		t.Fatalf("problems differ or are not the one overlap:\n%v\n%v", cprobs, wprobs)
	}
	if !reflect.DeepEqual(chunked, whole) {
		t.Fatal("the policies differ")
	}
	lines := lineStarts(data)
	line := func(i int) []byte {
		end := len(data)
		if i+1 < len(lines) {
			end = lines[i+1] - 1
		}
		return data[lines[i]:end]
	}
	fast := map[string]bool{}
	for _, s := range sections(len(lines), line) {
		_, ok := fastItems(line, s.start, s.end, s.indent)
		fast[s.name] = ok && s.seq
	}
	if fast["flows"] || !fast["tests"] {
		t.Errorf("read fast: %v; want tests, not flows (every seventh flow has a comment)", fast)
	}
}
