// Package synthetic generates large policies for benchmarks: thousands of
// zones and workloads, hundreds of thousands of flows, and tests whose
// expectations hold.
package synthetic

import (
	"fmt"
	"math/rand/v2"

	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy"
)

// Policy builds a valid policy with the given numbers of workloads, zones,
// flows and tests, the same for the same seed. Every flow joins two
// workloads that share a zone (or a zone and one of its members); every
// test passes.
func Policy(workloads, zones, flows, tests int, seed uint64) *policy.Policy {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := &policy.Policy{Version: policy.Version, Unmanaged: policy.UnmanagedWarn}
	for i := range zones {
		z := policy.Zone{Name: fmt.Sprintf("zone-%d", i), Default: policy.Allow}
		if i%4 == 0 {
			z.Default = policy.Deny
		}
		z.Internal = i%10 == 3
		p.Zones = append(p.Zones, z)
	}
	members := make([][]int, zones)
	for i := range workloads {
		w := policy.Workload{Name: fmt.Sprintf("w%d", i)}
		switch i % 4 {
		case 0:
			w.Match.Name = fmt.Sprintf("w%d", i)
		case 1:
			w.Match.Compose = policy.ComposeMatch{Project: fmt.Sprintf("p%d", i/10), Service: fmt.Sprintf("s%d", i)}
		case 2:
			w.Match.Labels = map[string]string{"app": fmt.Sprintf("w%d", i)}
		default:
			w.Match.Name = fmt.Sprintf("w%d-*", i)
			w.Match.Image = fmt.Sprintf("example/img%d:*", i)
		}
		a, b := i%zones, r.IntN(zones)
		w.Zones = []string{p.Zones[a].Name}
		members[a] = append(members[a], i)
		if b != a {
			w.Zones = append(w.Zones, p.Zones[b].Name)
			members[b] = append(members[b], i)
		}
		if i%50 == 0 && !p.Zones[a].Internal {
			w.Publish = []policy.Publish{{
				Host:      l4.Range{Proto: "tcp", First: uint16(20000 + i), Last: uint16(20000 + i)},
				Container: l4.Range{Proto: "tcp", First: 8080, Last: 8080},
			}}
		}
		p.Workloads = append(p.Workloads, w)
	}
	for len(p.Flows) < flows {
		a := r.IntN(workloads)
		zs := p.Workloads[a].Zones
		zname := zs[r.IntN(len(zs))]
		var z int
		fmt.Sscanf(zname, "zone-%d", &z)
		b := members[z][r.IntN(len(members[z]))]
		port := uint16(1024 + r.IntN(30000))
		f := policy.Flow{
			From:  policy.WorkloadRef(p.Workloads[a].Name),
			To:    policy.WorkloadRef(p.Workloads[b].Name),
			Ports: l4.List{{Proto: "tcp", First: port, Last: port}},
		}
		switch r.IntN(20) {
		case 0:
			f.From = policy.ZoneRef(zname)
		case 1:
			f.Ports = l4.List{{Proto: "tcp", First: port, Last: port + 10}, {Proto: "udp", First: 53, Last: 53}}
		}
		p.Flows = append(p.Flows, f)
	}
	m := model.Compile(p)
	for range tests {
		t := policy.Test{From: policy.WorkloadRef(p.Workloads[r.IntN(workloads)].Name)}
		if r.IntN(2) == 0 && len(p.Flows) > 0 {
			f := p.Flows[r.IntN(len(p.Flows))]
			t.From, t.To = f.From, f.To
			t.Port = l4.Port{Proto: f.Ports[0].Proto, Number: f.Ports[0].First}
		} else {
			t.To = policy.WorkloadRef(p.Workloads[r.IntN(workloads)].Name)
			t.Port = l4.Port{Proto: "tcp", Number: uint16(1024 + r.IntN(30000))}
		}
		t.Expect = policy.Deny
		if m.Eval(t.From, t.To, t.Port).Allow {
			t.Expect = policy.Allow
		}
		p.Tests = append(p.Tests, t)
	}
	return p
}
