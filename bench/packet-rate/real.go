package main

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/nft/nflink"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/policy/synthetic"
)

// The zonewarden configurations load zonewarden's own ruleset: a policy
// compiled by enforce.Compile against a host snapshot, in which the
// benchmark's client and server are admitted containers of one zone with
// a flow on :8080 and none on :8081, next to the filler flows of a
// synthetic policy (internal/policy/synthetic).
//
// Address plan of the snapshot (the topology's addresses, see main.go):
//
//	network/zone "zwbench" (default: deny), subnet 198.18.0.0/16: it spans
//	the client's 198.18.1.0/24 and the server's 198.18.2.0/24, so that the
//	client and the server share a network, as containers must for Compile
//	to emit address pairs (Docker routes nothing else between containers).
//	The router namespace stands in for the bridge: the forward hook sees
//	the same addresses either way.
//	workload "zwbench-client": containers zwbench-client-0..3 (label
//	zwbench=client) at 198.18.1.8-11
//	workload "zwbench-server": container zwbench-server at 198.18.2.2
//	flow zwbench-client -> zwbench-server tcp/8080; nothing on 8081
//	198.18.1.2 (the client's primary address) is in the zone, admitted by
//	nobody: fail closed drops it.
//	filler: synthetic.Policy's zones are 10.x.y.0/24, one container per
//	workload; most flows are one tcp port (set allow4), one in twenty a
//	range of 11 ports plus udp/53 (allow4 and allowrange4), one in twenty
//	from a whole zone.
const (
	benchZone   = "zwbench"
	benchClient = "zwbench-client"
	benchServer = "zwbench-server"
)

var benchZoneNet = netip.MustParsePrefix("198.18.0.0/16")

// benchPolicy returns a policy with flows declared flows — the
// benchmark's and flows-1 synthetic ones — and the host it binds to.
// unmanaged is the policy's unmanaged mode (warn is the default of the
// policy file).
func benchPolicy(flows int, unmanaged policy.Unmanaged) (*policy.Policy, *inventory.Snapshot) {
	// The synthetic policy's proportions: ten flows per workload, ten
	// workloads per zone (BenchmarkCompile's 100,000 flows: 10,000
	// workloads in 1,000 zones).
	workloads := max(10, flows/10)
	zones := max(2, workloads/10)
	p := synthetic.Policy(workloads, zones, flows-1, 0, 1)
	p.Unmanaged = unmanaged
	snap := synthetic.Host(p)

	p.Zones = append(p.Zones, policy.Zone{Name: benchZone, Default: policy.Deny})
	p.Workloads = append(p.Workloads,
		policy.Workload{Name: benchClient, Match: policy.Match{Labels: map[string]string{"zwbench": "client"}}, Zones: []string{benchZone}},
		policy.Workload{Name: benchServer, Match: policy.Match{Name: benchServer}, Zones: []string{benchZone}},
	)
	p.Flows = append(p.Flows, policy.Flow{
		From:  policy.WorkloadRef(benchClient),
		To:    policy.WorkloadRef(benchServer),
		Ports: l4.List{{Proto: l4.ProtoTCP, First: allowedPort, Last: allowedPort}},
	})

	snap.Networks = append(snap.Networks, inventory.Network{Name: benchZone, Driver: "bridge", ICC: true,
		Subnets: []inventory.Subnet{{Prefix: benchZoneNet}}})
	for i, a := range sources() {
		snap.Containers = append(snap.Containers, inventory.Container{
			Name: fmt.Sprintf("%s-%d", benchClient, i), Image: "example/client:1", State: "running",
			Labels: map[string]string{"zwbench": "client"}, NetworkMode: benchZone,
			Endpoints: []inventory.Endpoint{{Network: benchZone, IPv4: a}},
		})
	}
	// The client's primary address: a container on the zone that no
	// workload selects (fenced: never admitted).
	snap.Containers = append(snap.Containers, inventory.Container{
		Name: benchClient + "-unknown", Image: "example/client:1", State: "running", Labels: map[string]string{},
		NetworkMode: benchZone, Endpoints: []inventory.Endpoint{{Network: benchZone, IPv4: clientPrimary}},
	})
	snap.Containers = append(snap.Containers, inventory.Container{
		Name: benchServer, Image: "example/server:1", State: "running", Labels: map[string]string{},
		NetworkMode: benchZone, Endpoints: []inventory.Endpoint{{Network: benchZone, IPv4: serverAddr}},
	})
	return p, snap
}

// compiled is one compiled ruleset and what it took to build.
type compiled struct {
	rs      *enforce.Ruleset
	b       *model.Binding // for the endpoint binding (portsLoad)
	flows   int            // declared flows
	compile time.Duration  // model.Bind and enforce.Compile
	err     error
}

var (
	compiledMu    sync.Mutex
	compiledCache = map[string]*compiled{}
)

// realRuleset compiles (once per size and mode) the ruleset of
// benchPolicy.
func realRuleset(flows int, unmanaged policy.Unmanaged) (*compiled, error) {
	compiledMu.Lock()
	defer compiledMu.Unlock()
	k := fmt.Sprintf("%s/%d", unmanaged, flows)
	if c, ok := compiledCache[k]; ok {
		return c, c.err
	}
	p, snap := benchPolicy(flows, unmanaged)
	c := &compiled{flows: len(p.Flows)}
	start := time.Now()
	b, err := model.Bind(p, snap)
	if err == nil {
		c.rs = enforce.Compile(b, enforce.Options{})
		c.compile = time.Since(start)
		c.b = b
	} else {
		c.err = fmt.Errorf("binding the benchmark's policy of %d flows: %w", flows, err)
	}
	compiledCache[k] = c
	return c, c.err
}

// loadNetlink loads rs with nflink (one netlink transaction) into the
// router namespace. The netlink socket belongs to the namespace of the
// thread that opens it, so the loader is opened and used on a locked
// thread that has entered the namespace.
func loadNetlink(t topology, rs *enforce.Ruleset) (time.Duration, error) {
	var (
		took time.Duration
		lerr error
	)
	done := make(chan struct{})
	err := inNamespace(netnsPath(t.router), func() {
		defer close(done)
		l, err := nflink.New()
		if err != nil {
			lerr = err
			return
		}
		defer l.Close()
		start := time.Now()
		lerr = l.Sync(rs)
		took = time.Since(start)
	})
	if err != nil {
		return 0, err
	}
	<-done
	if lerr != nil {
		return 0, fmt.Errorf("loading zonewarden's ruleset with nflink in %s: %w", t.router, lerr)
	}
	return took, nil
}
