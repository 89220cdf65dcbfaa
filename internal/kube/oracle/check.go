package oracle

import (
	"fmt"
	"slices"

	"github.com/zonewarden/zonewarden/internal/kube"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy"
)

// Result is one policy test run on the export.
type Result struct {
	Test *policy.Test
	// Checked is false when Kubernetes cannot answer the test; Why says
	// why.
	Checked bool
	Allow   bool
	Pass    bool
	Why     string
}

// Check exports p (valid) with opts and runs each of its tests on the
// export through the analyzer. A test that names a zone asks about a
// member of the zone with no other zone, as the policy model does: the
// export it checks has one such workload per zone tested, beside the
// policy's own.
func Check(p *policy.Policy, opts kube.Options) ([]Result, error) {
	if len(p.Tests) == 0 {
		return nil, nil
	}
	q, member := withZoneMembers(p)
	name := func(r policy.Ref) string {
		if r.Kind == policy.RefZone {
			return member[r.Name]
		}
		return r.Name
	}
	var twins, ends []string
	for _, t := range p.Tests {
		if t.From == t.To && t.From.Kind != policy.RefAddress {
			twins = append(twins, name(t.From))
		}
		for _, r := range []policy.Ref{t.From, t.To} {
			if r.Kind != policy.RefAddress {
				ends = append(ends, name(r))
			}
		}
	}
	c, err := run(kube.Build(q, opts), ends, twins)
	if err != nil {
		return nil, err
	}
	m := model.Compile(q)
	out := make([]Result, len(p.Tests))
	for i := range p.Tests {
		t := &p.Tests[i]
		res := Result{Test: t, Checked: true}
		var ports l4.List
		port := t.Port
		switch {
		case port.Proto == l4.ProtoICMP:
			res.Checked, res.Why = false, "a NetworkPolicy cannot name ICMP"
		case t.From.Kind == policy.RefAddress && !t.From.Addr.Is4(), t.To.Kind == policy.RefAddress && !t.To.Addr.Is4():
			res.Checked, res.Why = false, "the analyzer reads IPv4 blocks only"
		case t.From.Kind == policy.RefAddress:
			// The client dials a host port; the NetworkPolicy sees the
			// container port it is published to.
			ports = c.FromAddr(t.From.Addr, t.To.Name)
			if port != (l4.Port{}) {
				port = containerPort(p.Workload(t.To.Name), port)
			}
		case t.To.Kind == policy.RefAddress:
			ports = c.ToAddr(name(t.From), t.To.Addr)
		case port == (l4.Port{}) && onlyICMP(m.AllowedPorts(policy.WorkloadRef(name(t.From)), policy.WorkloadRef(name(t.To)))):
			res.Checked, res.Why = false, "the policy allows ICMP alone, which a NetworkPolicy cannot name"
		default:
			ports = c.Between(name(t.From), name(t.To))
		}
		if res.Checked {
			res.Allow = len(ports) > 0
			if port != (l4.Port{}) {
				res.Allow = port.Number != 0 && ports.Contains(port)
			}
			res.Pass = res.Allow == (t.Expect == policy.Allow)
			res.Why = "the exported NetworkPolicies allow " + ports.String()
		}
		out[i] = res
	}
	return out, nil
}

// containerPort maps a host port of w to the container port it publishes,
// or the zero port's number 0 when w publishes no such host port.
func containerPort(w *policy.Workload, host l4.Port) l4.Port {
	for _, pub := range w.Publish {
		if pub.HostPort(host.Proto, host.Number) {
			return l4.Port{Proto: host.Proto, Number: pub.Container.First + (host.Number - pub.Host.First)}
		}
	}
	return l4.Port{Proto: host.Proto}
}

// withZoneMembers returns a copy of p with a workload for each zone its
// tests name, that joins that zone alone, and the names of those
// workloads by zone.
func withZoneMembers(p *policy.Policy) (*policy.Policy, map[string]string) {
	q := *p
	q.Workloads = slices.Clone(p.Workloads)
	member := map[string]string{}
	for _, t := range p.Tests {
		for _, r := range []policy.Ref{t.From, t.To} {
			if r.Kind != policy.RefZone || member[r.Name] != "" {
				continue
			}
			name := "member-of-" + r.Name
			for i := 2; q.Workload(name) != nil; i++ {
				name = fmt.Sprintf("member-of-%s-%d", r.Name, i)
			}
			member[r.Name] = name
			q.Workloads = append(q.Workloads, policy.Workload{Name: name, Match: policy.Match{Name: name}, Zones: []string{r.Name}})
		}
	}
	return &q, member
}

// onlyICMP reports whether l allows ICMP and nothing a NetworkPolicy can
// name.
func onlyICMP(l l4.List) bool { return len(l) > 0 && len(Narrow(l)) == 0 }
