package report

// The golden tests render a report built by hand (below), not one from
// audit.Run, so that a change to a rule's wording in package audit does
// not churn these files; the SARIF golden uses testCatalog for the same
// reason. The hand-built findings cover every severity, every subject kind,
// a severity raised above its rule's, a rule missing from the catalog, and
// text that must be escaped: a pipe, Markdown and HTML characters, $, and
// a terminal escape sequence in a container name.
//
// Address plan: the report mentions host ports only (0.0.0.0 and ::, all
// interfaces); the snapshot of TestRealAudit uses 10.9.1.0/24 for
// shop_backend and 172.17.0.0/16 for the default bridge.
//
// Regenerate the golden files and docs/rules.md with
//
//	go test ./internal/report -update

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/audit"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/reach"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden and docs/rules.md")

const (
	refSocket  = "CIS Docker Benchmark v1.6.0 5.31: the Docker socket is not mounted inside any containers"
	refPorts   = "CIS Docker Benchmark v1.6.0 5.8: only needed ports are open on the container"
	refBind    = "CIS Docker Benchmark v1.6.0 5.13: incoming container traffic is bound to a specific host interface"
	refBridge  = "https://docs.docker.com/engine/network/packet-filtering-firewalls/"
	refRO      = "CIS Docker Benchmark v1.6.0 5.12: the container's root filesystem is mounted as read only"
	refIntern  = "https://docs.docker.com/reference/cli/docker/network/create/#internal"
	hostileCtr = "ci_runner*1\x1b]0;pwned\x07"
)

// testCatalog pins the rules the SARIF golden lists.
var testCatalog = []*audit.Rule{
	{ID: "docker-socket-mounted", Severity: audit.Critical, Title: "Docker socket mounted into the container",
		Why: "Whoever can talk to the Docker socket is root on the host.", Fix: "Remove the socket mount.", References: []string{refSocket}},
	{ID: "published-sensitive-port", Severity: audit.High, Title: "Data service published to the host",
		Why: "A published database port is reachable from every network.", Fix: "Remove the port mapping; bind to 127.0.0.1 if a host process needs it.", References: []string{refPorts}},
	{ID: "untrusted-shares-data-network", Severity: audit.High, Title: "Untrusted container on a network with a data service",
		Why: "A development container reaches every port of the database.", Fix: "Disconnect the untrusted container from the data network."},
	{ID: "published-all-interfaces", Severity: audit.Medium, Title: "Port published on all host interfaces",
		Why: "It listens on every interface, IPv4 (0.0.0.0) and IPv6 (::).", Fix: "Publish on one address: -p 127.0.0.1:8080:80.", References: []string{refBind}},
	{ID: "bridge-nf-disabled", Severity: audit.Medium, Title: "Traffic inside a bridge network bypasses the firewall",
		Why: "Packets between containers of one network skip nftables.", Fix: "modprobe br_netfilter; sysctl -w net.bridge.bridge-nf-call-iptables=1", References: []string{refBridge}},
	{ID: "writable-rootfs", Severity: audit.Low, Title: "Root filesystem is writable",
		Why: "An attacker who gets in can change binaries.", Fix: "Run with --read-only.", References: []string{refRO}},
	{ID: "internal-publish-ignored", Severity: audit.Info, Title: "Ports requested on a container whose only networks are internal",
		Why: "Docker silently ignores -p here.", Fix: "Remove the port mapping.", References: []string{refIntern}},
}

func sampleReport() *audit.Report {
	fs := []audit.Finding{
		{Rule: "docker-socket-mounted", Severity: audit.Critical, Title: "Docker socket mounted into the container",
			Subject:     audit.Subject{Kind: audit.KindContainer, Name: "portainer"},
			Evidence:    []string{"bind mount /var/run/docker.sock -> /var/run/docker.sock, read-write"},
			Remediation: "Remove the -v /var/run/docker.sock:/var/run/docker.sock mount from portainer; use a read-only Docker socket proxy if it must read Docker state.",
			References:  []string{refSocket}},
		{Rule: "published-sensitive-port", Severity: audit.Critical, Title: "Data service published to the host",
			Subject: audit.Subject{Kind: audit.KindContainer, Name: "shop-db"},
			Evidence: []string{
				"shop-db publishes 0.0.0.0:5432->5432/tcp (PostgreSQL)",
				"recognised as PostgreSQL by its image postgres:16",
				"bound on all interfaces: reachable from outside the host",
			},
			Remediation: "Remove the port mapping of shop-db (compose: delete its ports: entry); if a host process needs it, publish on 127.0.0.1 only.",
			References:  []string{refPorts}},
		{Rule: "untrusted-shares-data-network", Severity: audit.High, Title: "Untrusted container on a network with a data service",
			Subject: audit.Subject{Kind: audit.KindNetwork, Name: "shop_backend"},
			Evidence: []string{
				"dev-shell is untrusted (label zonewarden.trust=dev)",
				"shop-db is a data service: PostgreSQL (image postgres:16)",
			},
			Remediation: "docker network disconnect shop_backend <container> for dev-shell; give them a network of their own."},
		{Rule: "published-all-interfaces", Severity: audit.Medium, Title: "Port published on all host interfaces",
			Subject:     audit.Subject{Kind: audit.KindContainer, Name: "web|edge"},
			Evidence:    []string{"0.0.0.0:8080->80/tcp (all IPv4 interfaces)", "[::]:8080->80/tcp (all IPv6 interfaces)"},
			Remediation: `Re-create web|edge publishing on one address, e.g. -p 127.0.0.1:HOSTPORT:PORT (compose: ports: ["127.0.0.1:HOSTPORT:PORT"]).`,
			References:  []string{refBind}},
		{Rule: "bridge-nf-disabled", Severity: audit.Medium, Title: "Traffic inside a bridge network bypasses the firewall",
			Subject:     audit.Subject{Kind: audit.KindHost, Name: "docker"},
			Evidence:    []string{"net.bridge.bridge-nf-call-iptables=0 (reported by the Docker daemon)"},
			Remediation: "modprobe br_netfilter && sysctl -w net.bridge.bridge-nf-call-iptables=1; persist it in /etc/sysctl.d/99-bridge-nf.conf.",
			References:  []string{refBridge}},
		{Rule: "writable-rootfs", Severity: audit.Low, Title: "Root filesystem is writable",
			Subject:     audit.Subject{Kind: audit.KindContainer, Name: hostileCtr},
			Evidence:    []string{"HostConfig.ReadonlyRootfs=false", "entrypoint runs `sh -c 'echo $HOME'` as *root*"},
			Remediation: "Re-create it with --read-only --tmpfs /tmp (compose: read_only: true).",
			References:  []string{refRO}},
		{Rule: "legacy-rule", Severity: audit.Low, Title: "A rule this build does not know",
			Subject:     audit.Subject{Kind: audit.KindContainer, Name: "old"},
			Remediation: "Upgrade zonewarden."},
		{Rule: "internal-publish-ignored", Severity: audit.Info, Title: "Ports requested on a container whose only networks are internal",
			Subject:     audit.Subject{Kind: audit.KindContainer, Name: "cache"},
			Evidence:    []string{"requested: 0.0.0.0:6379->6379/tcp", "only on internal networks: shop_backend"},
			Remediation: "Remove the port mapping from cache, or attach it to a non-internal network if the port must be published.",
			References:  []string{refIntern}},
	}
	return &audit.Report{Findings: fs, Summary: audit.Summary{
		Containers: 7, Networks: 4, Findings: len(fs), Highest: "critical",
		BySeverity: map[string]int{"critical": 2, "high": 1, "medium": 2, "low": 2, "info": 1},
		ByRule: map[string]int{"docker-socket-mounted": 1, "published-sensitive-port": 1, "untrusted-shares-data-network": 1,
			"published-all-interfaces": 1, "bridge-nf-disabled": 1, "writable-rootfs": 1, "legacy-rule": 1, "internal-publish-ignored": 1},
	}, BlastRadii: []reach.Summary{
		{Source: "dev-shell", Reached: 5, Direct: 3, Data: 1, MaxHops: 2, Host: true, Internet: true},
		{Source: "shop-db", Reached: 2, Direct: 2, Data: 0, MaxHops: 1, Host: true},
		{Source: "cache", Reached: 0},
	}}
}

// emptyReport is a clean host, as audit.Run reports it.
func emptyReport() *audit.Report {
	return &audit.Report{Findings: []audit.Finding{}, Summary: audit.Summary{
		Containers: 3, Networks: 4, BySeverity: map[string]int{"critical": 0, "high": 0, "medium": 0, "low": 0, "info": 0}, ByRule: map[string]int{},
	}}
}

var sampleOptions = AuditOptions{
	Tool:      ToolInfo{Name: "zonewarden", Version: "1.2.3", InformationURI: "https://github.com/zonewarden/zonewarden"},
	SourceURI: "./deploy/compose.yaml",
	Source:    "compose deploy/compose.yaml",
}

var liveOptions = AuditOptions{
	Tool:   ToolInfo{Name: "zonewarden", Version: "1.2.3"},
	Source: "docker unix:///var/run/docker.sock",
}

func TestGolden(t *testing.T) {
	colored := sampleOptions
	colored.Color = true
	sarif := func(r *audit.Report, o AuditOptions) func(io.Writer) error {
		return func(w io.Writer) error { return writeSARIF(w, r, o, testCatalog) }
	}
	for _, tc := range []struct {
		file   string
		render func(io.Writer) error
	}{
		{"audit.txt", func(w io.Writer) error { return AuditText(w, sampleReport(), sampleOptions) }},
		{"audit-color.txt", func(w io.Writer) error { return AuditText(w, sampleReport(), colored) }},
		{"audit.json", func(w io.Writer) error { return AuditJSON(w, sampleReport()) }},
		{"audit.sarif", sarif(sampleReport(), sampleOptions)},
		{"audit.md", func(w io.Writer) error { return AuditMarkdown(w, sampleReport(), sampleOptions) }},
		{"empty.txt", func(w io.Writer) error { return AuditText(w, emptyReport(), liveOptions) }},
		{"empty.json", func(w io.Writer) error { return AuditJSON(w, &audit.Report{}) }},
		{"empty.sarif", sarif(emptyReport(), liveOptions)},
		{"empty.md", func(w io.Writer) error { return AuditMarkdown(w, emptyReport(), liveOptions) }},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.render(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", tc.file+".golden"), b.Bytes())
		})
	}
}

// TestRulesDoc keeps docs/rules.md in step with the rule catalog.
func TestRulesDoc(t *testing.T) {
	var b bytes.Buffer
	if err := RulesMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "docs", "rules.md")
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v\nGenerate it with: go test ./internal/report -update", err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("docs/rules.md is out of date with the rule catalog (%s).\nRegenerate it with: go test ./internal/report -update",
			firstDifference("docs/rules.md has", want, "the catalog gives", b.Bytes()))
	}
	for _, r := range audit.Rules() {
		if !strings.Contains(b.String(), "\n### `"+r.ID+"`\n") {
			t.Errorf("rules.md has no section for rule %s", r.ID)
		}
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/report -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (%s); if the change is intended, run go test ./internal/report -update\n--- got:\n%s",
			path, firstDifference("want", want, "got", got), got)
	}
}

// firstDifference says on which line two documents first differ.
func firstDifference(wantName string, want []byte, gotName string, got []byte) string {
	w, g := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "line " + strconv.Itoa(i+1) + ": " + wantName + " " + strconv.Quote(wl) + ", " + gotName + " " + strconv.Quote(gl)
		}
	}
	return "same lines"
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// TestTextWithoutColor checks that colour adds nothing but SGR codes, and
// that plain text holds no escape character at all, even from a container
// name that carries one.
func TestTextWithoutColor(t *testing.T) {
	var plain, colored bytes.Buffer
	if err := AuditText(&plain, sampleReport(), sampleOptions); err != nil {
		t.Fatal(err)
	}
	o := sampleOptions
	o.Color = true
	if err := AuditText(&colored, sampleReport(), o); err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsAny(plain.Bytes(), "\x1b\x07") {
		t.Errorf("plain text holds a control character:\n%q", plain.String())
	}
	if got := ansi.ReplaceAllString(colored.String(), ""); got != plain.String() {
		t.Errorf("coloured text minus colour codes differs from plain text (%s)", firstDifference("plain", plain.Bytes(), "uncoloured", []byte(got)))
	}
	if !strings.Contains(colored.String(), "\x1b[1;97;41m[CRITICAL]\x1b[0m") {
		t.Errorf("the critical tag is not coloured")
	}
	if strings.Contains(ansi.ReplaceAllString(colored.String(), ""), "\x1b") {
		t.Errorf("coloured text holds an escape that is not a colour code")
	}
}

func TestJSONShape(t *testing.T) {
	for name, r := range map[string]*audit.Report{"empty": {}, "sample": sampleReport()} {
		var b bytes.Buffer
		if err := AuditJSON(&b, r); err != nil {
			t.Fatal(err)
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(b.Bytes(), &top); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(top) != 2 || top["findings"] == nil || top["summary"] == nil {
			t.Errorf("%s: top-level keys are not exactly findings and summary: %s", name, b.String())
		}
		if !bytes.HasPrefix(top["findings"], []byte("[")) {
			t.Errorf("%s: findings is %s, want an array", name, top["findings"])
		}
		if bytes.Contains(b.Bytes(), []byte("null")) {
			t.Errorf("%s: null in JSON output:\n%s", name, b.String())
		}
		var back audit.Report
		if err := json.Unmarshal(b.Bytes(), &back); err != nil {
			t.Fatalf("%s: decoding the output: %v", name, err)
		}
		if len(back.Findings) != len(r.Findings) {
			t.Errorf("%s: %d findings decoded, want %d", name, len(back.Findings), len(r.Findings))
		}
	}
	// The sample has evidence on all but one finding; it must round-trip.
	var b bytes.Buffer
	if err := AuditJSON(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	var back audit.Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	want := sampleReport()
	want.BlastRadii = nil // text only
	for i := range want.Findings {
		if want.Findings[i].Evidence == nil {
			want.Findings[i].Evidence = []string{}
		}
	}
	if !reflect.DeepEqual(&back, want) {
		t.Errorf("JSON does not round-trip:\ngot  %+v\nwant %+v", back, *want)
	}
}

func TestMarkdownEscaping(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text, 0.0.0.0:80->80/tcp", `plain text, 0.0.0.0:80-\>80/tcp`},
		{"NET_ADMIN and br_netfilter", "NET_ADMIN and br_netfilter"},
		{"_lead and trail_", `\_lead and trail\_`},
		{"<container> *x* `y` [z](u) a|b $HOME ~t~ &amp;", `\<container\> \*x\* \` + "`" + `y\` + "`" + ` \[z\](u) a\|b \$HOME \~t\~ \&amp;`},
		{"# not a heading", `\# not a heading`},
		{"- not a list", `\- not a list`},
		{"a\x1b[31mb\nc", `a\\x1b\[31mb\\nc`}, // renders as a\x1b[31mb\nc
	} {
		if got := mdEscape(tc.in); got != tc.want {
			t.Errorf("mdEscape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"web", "`web`"},
		{"a`b", "``a`b``"},
		{"`x", "`` `x ``"},
	} {
		if got := mdCode(tc.in); got != tc.want {
			t.Errorf("mdCode(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got, want := mdCell(mdCode("a|b")+" "+mdEscape("c|d")), "`a\\|b` c\\|d"; got != want {
		t.Errorf("mdCell = %q, want %q", got, want)
	}
	// Every table row of the sample has exactly its columns' unescaped pipes.
	var b bytes.Buffer
	if err := AuditMarkdown(&b, sampleReport(), sampleOptions); err != nil {
		t.Fatal(err)
	}
	unescaped := regexp.MustCompile(`(^|[^\\])\|`)
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, "| ") {
			if n := len(unescaped.FindAllString(strings.ReplaceAll(line, "||", "| |"), -1)); n != 3 && n != 5 {
				t.Errorf("table row has %d cell separators: %s", n, line)
			}
		}
	}
}

func TestArtifactURI(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "docker-host"},
		{"compose.yaml", "compose.yaml"},
		{"./deploy/compose.yaml", "deploy/compose.yaml"},
		{"deploy/my compose.yaml", "deploy/my%20compose.yaml"},
		{"/srv/app/compose.yaml", "file:///srv/app/compose.yaml"},
		{"file:///srv/host.json", "file:///srv/host.json"},
	} {
		if got := artifactURI(tc.in); got != tc.want {
			t.Errorf("artifactURI(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRuleName(t *testing.T) {
	if got := ruleName("docker-socket-mounted"); got != "DockerSocketMounted" {
		t.Errorf("ruleName = %q", got)
	}
}

// TestRealAudit renders what audit.Run reports on a small host with the
// real catalog, in every format, and checks the SARIF log.
func TestRealAudit(t *testing.T) {
	snap := &inventory.Snapshot{
		Version: inventory.SchemaVersion,
		Source:  inventory.Source{Kind: "compose", Detail: "compose.yaml"},
		Networks: []inventory.Network{
			{Name: "bridge", Driver: "bridge", ICC: true, Subnets: []inventory.Subnet{{Prefix: netip.MustParsePrefix("172.17.0.0/16")}}},
			{Name: "host", Driver: "host"},
			{Name: "none", Driver: "null"},
			{Name: "shop_backend", Driver: "bridge", ICC: true, Subnets: []inventory.Subnet{{Prefix: netip.MustParsePrefix("10.9.1.0/24")}}},
		},
		Containers: []inventory.Container{
			{Name: "shop-db", Image: "postgres:16", State: "running", NetworkMode: "shop_backend",
				Endpoints: []inventory.Endpoint{{Network: "shop_backend", IPv4: netip.MustParseAddr("10.9.1.2")}},
				Ports:     []inventory.PortBinding{{ContainerPort: l4.Port{Number: 5432, Proto: "tcp"}, HostPort: 5432}}},
			{Name: "dev-shell", Image: "debian:12", State: "running", NetworkMode: "shop_backend",
				Labels:    map[string]string{inventory.LabelTrust: "dev"},
				Endpoints: []inventory.Endpoint{{Network: "shop_backend", IPv4: netip.MustParseAddr("10.9.1.3")}, {Network: "bridge", IPv4: netip.MustParseAddr("172.17.0.2")}},
				Mounts:    []inventory.Mount{{Type: "bind", Source: "/var/run/docker.sock", Destination: "/var/run/docker.sock"}}},
			{Name: "web", Image: "nginx:1", State: "running", NetworkMode: "bridge",
				Endpoints: []inventory.Endpoint{{Network: "bridge", IPv4: netip.MustParseAddr("172.17.0.3")}},
				Ports:     []inventory.PortBinding{{ContainerPort: l4.Port{Number: 80, Proto: "tcp"}, HostPort: 80}}},
		},
	}
	rep := audit.Run(snap, audit.Options{})
	if len(rep.Findings) == 0 {
		t.Fatal("the test host has no findings; it should have several")
	}
	o := AuditOptions{Tool: ToolInfo{Name: "zonewarden", Version: "dev"}, SourceURI: "compose.yaml", Source: "compose compose.yaml"}
	for name, render := range map[string]func(io.Writer) error{
		"text":     func(w io.Writer) error { return AuditText(w, rep, o) },
		"json":     func(w io.Writer) error { return AuditJSON(w, rep) },
		"markdown": func(w io.Writer) error { return AuditMarkdown(w, rep, o) },
	} {
		var b bytes.Buffer
		if err := render(&b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		for _, f := range rep.Findings {
			if !strings.Contains(b.String(), f.Rule) {
				t.Errorf("%s output does not mention rule %s", name, f.Rule)
			}
		}
	}
	var b bytes.Buffer
	if err := AuditSARIF(&b, rep, o); err != nil {
		t.Fatal(err)
	}
	log := checkSARIF(t, b.Bytes())
	if got := len(log.Runs[0].Tool.Driver.Rules); got != len(audit.Rules()) {
		t.Errorf("SARIF lists %d rules, the catalog has %d", got, len(audit.Rules()))
	}
	if got := len(log.Runs[0].Results); got != len(rep.Findings) {
		t.Errorf("SARIF has %d results for %d findings", got, len(rep.Findings))
	}
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestWriteErrors(t *testing.T) {
	for name, err := range map[string]error{
		"text":     AuditText(errWriter{}, sampleReport(), sampleOptions),
		"json":     AuditJSON(errWriter{}, sampleReport()),
		"sarif":    AuditSARIF(errWriter{}, sampleReport(), sampleOptions),
		"markdown": AuditMarkdown(errWriter{}, sampleReport(), sampleOptions),
		"rules":    RulesMarkdown(errWriter{}),
	} {
		if err == nil {
			t.Errorf("%s: no error from a failing writer", name)
		}
	}
}
