package policy_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/policy"
)

// head is the start of most test policies: two zones (one internal) and a
// workload in each. Its lines are 1-6; cases add lines from 7 on.
const head = `version: 1
zones:
  app: {default: deny}
  data: {internal: true}
workloads:
  api: {match: {name: api}, zones: [app, data]}
`

// TestParseErrors has one case per kind of problem, each with the exact
// position it must be reported at.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // "line:col: substring of the message"
	}{
		{"syntax: bad indentation", "version: 1\nzones:\n  app: {}\n bad: 1\n", "4:2: YAML syntax: did not find expected key"},
		{"syntax: unclosed flow", "version: 1\nzones: {app: {}\n", "3:1: YAML syntax: did not find expected ',' or '}'"},
		{"syntax: tab", "version: 1\nzones:\n\tapp: {}\n", "3:1: YAML syntax: found character that cannot start any token"},
		{"empty file", "", "1:1: the policy is empty"},
		{"comment only", "# nothing\n", "1:1: the policy is empty"},
		{"not a mapping", "- version: 1\n", "1:1: a policy is a mapping"},
		{"second document", "version: 1\n---\nversion: 1\n", "2:1: a second YAML document"},
		{"no version", "zones: {}\n", "1:1: no version: a policy starts with version: 1"},
		{"version 2", "version: 2\n", "1:10: version 2 is not supported"},
		{"version as text", "version: \"1\"\n", "1:10: version must be the number 1"},
		{"unknown top-level field", "version: 1\nzone: {}\n", `2:1: unknown field "zone" in the policy (known: version, zones, workloads, flows, tests, unmanaged, mode); did you mean "zones"?`},
		{"duplicate top-level key", "version: 1\nversion: 1\n", `2:1: duplicate key "version" in the policy (first at 1:1)`},
		{"merge key", "version: 1\n<<: {zones: {}}\n", "2:1: merge keys (<<) are not supported"},
		{"unknown zone field", "version: 1\nzones:\n  app: {internl: true}\n", `3:9: unknown field "internl" in zone app (known: internal, default, mode, encrypted); did you mean "internal"?`},
		{"duplicate zone", "version: 1\nzones:\n  app: {}\n  app: {}\n", `4:3: duplicate key "app" in zones (first at 3:3)`},
		{"zone default", "version: 1\nzones:\n  app: {default: block}\n", `3:18: default must be allow or deny, not "block"`},
		{"zone mode", "version: 1\nzones:\n  app: {mode: audit}\n", `3:15: mode must be enforce (drop what no flow allows) or monitor (log it as would deny, let it through), not "audit"`},
		{"policy mode", "version: 1\nmode: dry\n", `2:7: mode must be enforce`},
		{"zone internal", "version: 1\nzones:\n  app: {internal: yes}\n", "3:19: internal must be true or false"},
		{"zone is docker's bridge", "version: 1\nzones:\n  bridge: {}\n", `3:3: zone bridge: Docker's own "bridge" network cannot be a zone`},
		{"zone name", "version: 1\nzones:\n  -app: {}\n", `3:3: zone name "-app"`},
		{"zones not a mapping", "version: 1\nzones: [app]\n", "2:8: zones must be a mapping of names to settings"},
		{"unknown workload field", head + "  web: {match: {name: web}, zone: [app]}\n", `7:29: unknown field "zone" in workload web`},
		{"duplicate workload", head + "  api: {match: {name: api2}, zones: [app]}\n", `7:3: duplicate key "api" in workloads (first at 6:3)`},
		{"workload name", head + "  1web: {match: {name: web}, zones: [app]}\n", `7:3: workload name "1web"`},
		{"workload unknown zone", head + "  web: {match: {name: web}, zones: [app, dmz]}\n", `7:42: workload web joins zone "dmz", which zones does not declare`},
		{"workload zone twice", head + "  web: {match: {name: web}, zones: [app, app]}\n", "7:42: workload web lists zone app twice"},
		{"workload in no zone", head + "  web: {match: {name: web}, zones: []}\n", "7:3: workload web joins no zone"},
		{"workload without zones", head + "  web: {match: {name: web}}\n", "7:3: workload web joins no zone"},
		{"workload without match", head + "  web: {zones: [app]}\n", "7:3: workload web has no match"},
		{"workload with empty match", head + "  web: {match: {}, zones: [app]}\n", "7:9: workload web has no match"},
		{"unknown match field", head + "  web: {match: {names: web}, zones: [app]}\n", `7:17: unknown field "names" in the match of workload web`},
		{"bad glob", head + "  web: {match: {image: \"nginx:[1\"}, zones: [app]}\n", `7:24: match image "nginx:[1" is not a valid glob`},
		{"bad publish", head + "  web: {match: {name: web}, zones: [app], publish: [\"80:80/icmp\"]}\n", `7:53: publish "80:80/icmp": the protocol must be tcp, udp or sctp`},
		{"publish range lengths", head + "  web: {match: {name: web}, zones: [app], publish: [\"80-81:80/tcp\"]}\n", "7:53: publish \"80-81:80/tcp\": the host range"},
		{"publish ipv6 without brackets", head + "  web: {match: {name: web}, zones: [app], publish: [\"::1:80:80/tcp\"]}\n", "7:53: publish \"::1:80:80/tcp\""},
		{"host port published twice", head + "  web: {match: {name: web}, zones: [app], publish: [\"80:80/tcp\"]}\n  web2: {match: {name: web2}, zones: [app], publish: [\"0.0.0.0:80:8080/tcp\"]}\n",
			"8:55: workload web2 publishes 0.0.0.0:80:8080/tcp, but workload web already publishes host port 80/tcp at 7:53"},
		{"publish from internal zones only", head + "  db: {match: {name: db}, zones: [data], publish: [\"5432:5432/tcp\"]}\n", "7:52: workload db publishes ports, but every zone it joins is internal"},
		{"ingress not a CIDR", head + "  web: {match: {name: web}, zones: [app], publish: [\"80:80/tcp\"], ingress: [\"10.0.0.0/33\"]}\n", `7:77: ingress "10.0.0.0/33" is not a CIDR`},
		{"ingress address", head + "  web: {match: {name: web}, zones: [app], publish: [\"80:80/tcp\"], ingress: [\"10.0.0.1\"]}\n", `7:77: ingress "10.0.0.1" is an address, not a CIDR: write 10.0.0.1/32`},
		{"ingress host bits", head + "  web: {match: {name: web}, zones: [app], publish: [\"80:80/tcp\"], ingress: [\"10.1.2.3/8\"]}\n", "7:77: ingress \"10.1.2.3/8\" has bits set beyond its prefix length: write 10.0.0.0/8"},
		{"ingress without publish", head + "  web: {match: {name: web}, zones: [app], ingress: [\"10.0.0.0/8\"]}\n", "7:53: workload web lists ingress but publishes no port"},
		{"egress without ports", head + "  web: {match: {name: web}, zones: [app], egress: [{to: 0.0.0.0/0}]}\n", "7:52: an egress rule needs ports"},
		{"egress bad CIDR", head + "  web: {match: {name: web}, zones: [app], egress: [{to: everywhere, ports: [all]}]}\n", `7:57: egress to "everywhere" is not a CIDR`},
		{"egress from internal zones only", head + "  db: {match: {name: db}, zones: [data], egress: [{to: 0.0.0.0/0, ports: [all]}]}\n", "7:51: workload db lists egress, but every zone it joins is internal"},
		{"flow unknown workload", head + "flows:\n  - {from: api, to: apu, ports: [80/tcp]}\n", `8:21: to: unknown workload "apu"; did you mean api?`},
		{"flow unknown zone", head + "flows:\n  - {from: zone:ap, to: api, ports: [80/tcp]}\n", `8:12: from: unknown zone "ap"; did you mean app?`},
		{"flow zone without prefix", head + "flows:\n  - {from: data, to: api, ports: [80/tcp]}\n", `8:12: from: unknown workload "data"; for every member of zone data write zone:data`},
		{"flow from an address", head + "flows:\n  - {from: 10.0.0.1, to: api, ports: [80/tcp]}\n", "8:12: from: 10.0.0.1 is an address; flows connect workloads and zones"},
		{"flow without ports", head + "flows:\n  - {from: api, to: api}\n", "8:5: a flow needs ports"},
		{"flow empty ports", head + "flows:\n  - {from: api, to: api, ports: []}\n", "8:33: ports is empty"},
		{"flow unknown protocol", head + "flows:\n  - {from: api, to: api, ports: [80/http]}\n", `8:34: port "80/http": the protocol must be tcp, udp or sctp`},
		{"flow port zero", head + "flows:\n  - {from: api, to: api, ports: [0/tcp]}\n", `8:34: port "0/tcp": want a number from 1 to 65535`},
		{"flow empty range", head + "flows:\n  - {from: api, to: api, ports: [90-80/tcp]}\n", `8:34: port range "90-80/tcp" is empty`},
		{"flow overlapping ports", head + "flows:\n  - {from: api, to: api, ports: [80-90/tcp, 53/udp, 85/tcp]}\n", "8:53: port 85/tcp overlaps 80-90/tcp (at 8:34)"},
		{"flow all and a port", head + "flows:\n  - {from: api, to: api, ports: [443/tcp, all]}\n", "8:43: port all overlaps 443/tcp (at 8:34)"},
		{"flow duplicate key", head + "flows:\n  - {from: api, from: api, to: api, ports: [all]}\n", `8:17: duplicate key "from" in a flow (first at 8:6)`},
		{"flow that cannot happen", head + "  web: {match: {name: web}, zones: [app]}\n  db: {match: {name: db}, zones: [data]}\nflows:\n  - {from: web, to: db, ports: [5432/tcp]}\n",
			"10:5: flow from web to db on 5432/tcp cannot happen: web and db share no zone, and db publishes none of 5432/tcp"},
		{"flows not a list", head + "flows: {from: api}\n", "7:8: flows must be a list"},
		{"test unknown workload", head + "tests:\n  - {from: api, to: db, port: 5432/tcp, expect: deny}\n", `8:21: to: unknown workload "db"`},
		{"test port range", head + "tests:\n  - {from: api, to: api, port: 80-90/tcp, expect: deny}\n", "8:32: a test checks one port, not the range 80-90/tcp"},
		{"test expect", head + "tests:\n  - {from: api, to: api, port: 80/tcp, expect: drop}\n", `8:48: expect must be allow or deny, not "drop"`},
		{"test without expect", head + "tests:\n  - {from: api, to: api}\n", "8:5: a test needs expect: allow or deny"},
		{"test address and zone", head + "tests:\n  - {from: 192.0.2.1, to: zone:app, expect: deny}\n", "8:5: test an address against a workload, not a zone"},
		{"unmanaged", "version: 1\nunmanaged: ignore\n", `2:12: unmanaged must be allow, warn or deny, not "ignore"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := policy.Parse("policy.yaml", []byte(tt.in), policy.Options{})
			var perr *policy.Error
			if !errors.As(err, &perr) {
				t.Fatalf("Parse = %v, %v; want a *policy.Error", p, err)
			}
			if p != nil {
				t.Errorf("Parse returned a policy with an error")
			}
			want := "policy.yaml:" + tt.want
			for _, pr := range perr.Problems {
				if strings.HasPrefix(pr.String(), want) {
					if os.Getenv("SHOWAT") != "" {
						lines := strings.Split(tt.in, "\n")
						t.Logf("AT %d:%d %q <- %s", pr.Line, pr.Col, lines[pr.Line-1][pr.Col-1:], pr.Msg)
					}
					return
				}
			}
			lines := strings.Split(tt.in, "\n")
			for _, pr := range perr.Problems {
				at := ""
				if pr.Line >= 1 && pr.Line <= len(lines) && pr.Col >= 1 && pr.Col <= len(lines[pr.Line-1])+1 {
					at = lines[pr.Line-1][pr.Col-1:]
				}
				t.Logf("AT %d:%d %q  <- %s", pr.Line, pr.Col, at, pr.Msg)
			}
			t.Errorf("no problem starts with\n  %s\ngot:\n  %s", want, strings.ReplaceAll(err.Error(), "\n", "\n  "))
		})
	}
}

// TestParseAliasBudget: aliases cannot make a small file cost much: a
// workload with 2,000 zones, repeated 2,000 times by alias, would be four
// million values.
func TestParseModes(t *testing.T) {
	src := "version: 1\nzones:\n  app: {mode: monitor}\n  data: {default: deny, mode: enforce}\n  dev: {}\nmode: monitor\n"
	p, err := policy.Parse("policy.yaml", []byte(src), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]policy.Mode{"app": policy.Monitor, "data": policy.Enforce, "dev": policy.Monitor}
	for i := range p.Zones {
		if got := p.ZoneMode(&p.Zones[i]); got != want[p.Zones[i].Name] {
			t.Errorf("zone %s runs in %q, want %q", p.Zones[i].Name, got, want[p.Zones[i].Name])
		}
	}
	back, err := policy.Parse("policy.yaml", policy.Format(p), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if back.Mode != policy.Monitor || back.Zones[0].Mode != policy.Monitor || back.Zones[1].Mode != policy.Enforce || back.Zones[2].Mode != "" {
		t.Errorf("Format lost the modes:\n%s", policy.Format(p))
	}
	p.Mode = ""
	if !p.Monitors() {
		t.Error("zone app monitors, Monitors says no")
	}
	p.Zones[0].Mode = ""
	if p.Monitors() {
		t.Error("no zone monitors, Monitors says yes")
	}
}

func TestParseAliasBudget(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nzones: {app: {}}\nworkloads:\n  w0: &w {match: {name: w}, zones: [")
	for i := range 2000 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("app")
	}
	b.WriteString("]}\n")
	for i := 1; i < 2000; i++ {
		fmt.Fprintf(&b, "  w%d: *w\n", i)
	}
	start := time.Now()
	_, err := policy.Parse("p.yaml", []byte(b.String()), policy.Options{})
	if err == nil || !strings.Contains(err.Error(), "the policy expands to too many values") {
		t.Fatalf("err = %.300v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

// TestParseAllProblemsInFileOrder: every problem is reported, sorted by
// position, whichever check found it.
func TestParseAllProblemsInFileOrder(t *testing.T) {
	in := `version: 1
zones:
  app: {default: maybe}
workloads:
  api: {match: {name: api}, zones: [app, nope]}
flows:
  - {from: api, to: ghost, ports: [80/tcp]}
tests:
  - {from: api, to: api, port: 80/tcp, expect: allow}
unmanaged: sometimes
`
	_, err := policy.Parse("p.yaml", []byte(in), policy.Options{})
	var perr *policy.Error
	if !errors.As(err, &perr) {
		t.Fatalf("err = %v", err)
	}
	want := []string{
		`p.yaml:3:18: default must be allow or deny, not "maybe"`,
		`p.yaml:5:42: workload api joins zone "nope", which zones does not declare`,
		`p.yaml:7:21: to: unknown workload "ghost"`,
		`p.yaml:10:12: unmanaged must be allow, warn or deny, not "sometimes"`,
	}
	if len(perr.Problems) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(perr.Problems), len(want), err)
	}
	for i, w := range want {
		if got := perr.Problems[i].String(); !strings.HasPrefix(got, w) {
			t.Errorf("problem %d = %q, want prefix %q", i, got, w)
		}
	}
	if got := (policy.Problem{File: "p.yaml", Line: 3, Col: 18, Msg: "a, b: 100%\nnext"}).GitHub("error"); got != "::error file=p.yaml,line=3,col=18::a, b: 100%25%0Anext" {
		t.Errorf("GitHub() = %q", got)
	}
	if got := (policy.Problem{File: "dir,a:b.yaml", Line: 1, Col: 1, Msg: "m"}).GitHub("error"); got != "::error file=dir%2Ca%3Ab.yaml,line=1,col=1::m" {
		t.Errorf("GitHub() escapes properties as %q", got)
	}
	_, err = policy.Parse("p.yaml", []byte(in), policy.Options{MaxProblems: 2})
	if errors.As(err, &perr); len(perr.Problems) != 2 {
		t.Errorf("MaxProblems 2 gave %d problems", len(perr.Problems))
	}
}

// TestParseSeedPolicy reads the three-tier policy (the seed's
// Level 3 host) and checks what it holds.
func TestParseSeedPolicy(t *testing.T) {
	data, err := os.ReadFile("testdata/threetier.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Parse("testdata/threetier.yaml", data, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Zones) != 4 || len(p.Workloads) != 5 || len(p.Flows) != 4 || len(p.Tests) != 2 {
		t.Fatalf("got %d zones, %d workloads, %d flows, %d tests", len(p.Zones), len(p.Workloads), len(p.Flows), len(p.Tests))
	}
	db := p.Zone("database-tier")
	if !db.Internal || db.Default != policy.Deny || db.Pos != (policy.Pos{Line: 6, Col: 3}) {
		t.Errorf("database-tier = %+v", *db)
	}
	if dev := p.Zone("dev"); dev.Default != policy.Allow || dev.Internal {
		t.Errorf("dev = %+v, want default allow", *dev)
	}
	api := p.Workload("api")
	if api.Match.Compose != (policy.ComposeMatch{Project: "shop", Service: "api"}) || len(api.Egress) != 1 || api.Egress[0].To.String() != "203.0.113.0/24" {
		t.Errorf("api = %+v", *api)
	}
	lb := p.Workload("lb")
	if len(lb.Publish) != 1 || lb.Publish[0].String() != "443:443/tcp" || lb.Ingress[0].String() != "0.0.0.0/0" {
		t.Errorf("lb = %+v", *lb)
	}
	if p.Flows[2].From.String() != "api" || p.Flows[2].Ports.String() != "5432/tcp" || p.Flows[2].Pos != (policy.Pos{Line: 18, Col: 5}) {
		t.Errorf("flow 3 = %+v", p.Flows[2])
	}
	if p.Unmanaged != policy.UnmanagedWarn {
		t.Errorf("unmanaged = %q", p.Unmanaged)
	}
	if !strings.Contains(p.Comments.Head, "three-tier") {
		t.Errorf("head comment = %q", p.Comments.Head)
	}
}

func TestValidateBuiltPolicy(t *testing.T) {
	p := &policy.Policy{Version: 1,
		Zones:     []policy.Zone{{Name: "app"}},
		Workloads: []policy.Workload{{Name: "web", Match: policy.Match{Name: "web"}, Zones: []string{"app", "db"}}},
		Flows:     []policy.Flow{{From: policy.WorkloadRef("web"), To: policy.ZoneRef("db"), Ports: l4.AllPorts()}},
	}
	err := policy.Validate(p, policy.Options{})
	if err == nil {
		t.Fatal("Validate accepted unknown zones")
	}
	for _, want := range []string{`workload web joins zone "db", which zones does not declare`, `to: unknown zone "db"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v\nlacks %q", err, want)
		}
	}
	p.Zones = append(p.Zones, policy.Zone{Name: "db"})
	if err := policy.Validate(p, policy.Options{}); err != nil {
		t.Errorf("Validate: %v", err)
	}
}
