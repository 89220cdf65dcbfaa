package kube_test

import (
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/kube"
	"github.com/zonewarden/zonewarden/internal/policy"
)

const odd = `version: 1
mode: monitor
zones:
  app: {default: deny}
  lab: {}
workloads:
  web:    {match: {compose: {project: a, service: api}}, zones: [app]}
  api:    {match: {compose: {project: b, service: api}}, zones: [app]}
  API_v2: {match: {name: "v2-*"}, zones: [app, lab], publish: ["127.0.0.1:8443:443/tcp"]}
flows:
  - {from: web, to: API_v2, ports: [icmp]}
  - {from: web, to: zone:lab, ports: [icmp, 8000-8100/tcp]}
unmanaged: allow
`

// TestNotes: what Kubernetes cannot say is reported, and names that are
// not valid there are made valid.
func TestNotes(t *testing.T) {
	p, err := policy.Parse("odd.yaml", []byte(odd), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	x := kube.Build(p, kube.Options{})
	var notes []string
	for _, n := range x.Notes {
		notes = append(notes, n.String())
	}
	all := strings.Join(notes, "\n")
	for _, want := range []string{
		"odd.yaml:7:3: workloads web, api all run compose service api: selected by zonewarden.io/workload=web instead",
		"odd.yaml:8:3: workloads web, api all run compose service api: selected by zonewarden.io/workload=api instead",
		"odd.yaml:9:3: workload API_v2 names no single compose service",
		"odd.yaml:11:5: flow web -> API_v2 allows icmp, which a NetworkPolicy cannot name",
		"odd.yaml:12:5: flow web -> zone:lab allows icmp",
		"zone app is in monitor mode",
		"workload API_v2 publishes 127.0.0.1:8443:443/tcp: a NetworkPolicy sees the container port 443/tcp; give its Service port 8443",
		"on host address 127.0.0.1 only",
		"unmanaged: allow has no counterpart",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no note says %q; the notes:\n%s", want, all)
		}
	}
	if got := x.Workloads[2].Object; got != "zw-api-v2" {
		t.Errorf("object name of API_v2 = %q, want zw-api-v2", got)
	}
	// web's only rule to API_v2 was ICMP: no egress rule names it; the
	// one to zone lab keeps its TCP ports.
	web := x.Policies[0]
	if n := len(web.Spec.Egress); n != 3 { // zone lab, anywhere, DNS
		t.Fatalf("web has %d egress rules, want 3: %+v", n, web.Spec.Egress)
	}
	if r := web.Spec.Egress[0]; len(r.Ports) != 1 || r.Ports[0].Port.IntValue() != 8000 || *r.Ports[0].EndPort != 8100 {
		t.Errorf("web -> zone:lab: %+v, want 8000-8100/tcp", r.Ports)
	}
	if last := x.Policies[len(x.Policies)-1]; last.Name != kube.DefaultDeny || len(last.Spec.PolicyTypes) != 2 || last.Spec.PodSelector.Size() != 0 {
		t.Errorf("the last policy is not the namespace's default deny: %+v", last)
	}
}
