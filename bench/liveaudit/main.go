// Command liveaudit builds a large host on the local Docker engine — cheap
// busybox "sleep" containers spread over many networks — and times a live
// zonewarden audit of it: the snapshot (Engine API calls) and the rules.
//
//	sudo go run ./bench/liveaudit -containers 1000 -networks 100
//
// Everything it creates carries the label zonewarden.bench=<run id> and is
// removed at the end unless -keep is given. Networks get explicit subnets
// inside -pool (default 10.231.0.0/16, one /24 each): Docker 20.10 has only
// about 30 default pools.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/zonewarden/zonewarden/bench/benchhost"
	"github.com/zonewarden/zonewarden/internal/audit"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/inventory/dockerapi"
	"github.com/zonewarden/zonewarden/internal/l4"
)

const label = "zonewarden.bench"

func main() {
	var (
		containers = flag.Int("containers", 1000, "containers to create")
		networks   = flag.Int("networks", 100, "networks to create (at most 256)")
		pool       = flag.String("pool", "10.231.0.0/16", "address pool for the networks' /24 subnets")
		runs       = flag.Int("runs", 5, "timed audits")
		keep       = flag.Bool("keep", false, "leave the host in place")
		bin        = flag.String("bin", "", "also time this zonewarden binary end to end ('audit --format json')")
		parallel   = flag.Int("parallel", 8, "containers created and started at once")
	)
	flag.Parse()
	if err := run(*containers, *networks, *pool, *runs, *parallel, *keep, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "liveaudit:", err)
		os.Exit(1)
	}
}

func run(containers, networks int, poolStr string, runs, parallel int, keep bool, bin string) error {
	ctx := context.Background()
	pool, err := netip.ParsePrefix(poolStr)
	if err != nil || !pool.Addr().Is4() || pool.Bits() > 16 || networks > 256 {
		return fmt.Errorf("-pool must be an IPv4 /16 or larger and -networks at most 256")
	}
	dc, id, err := benchhost.Open(ctx)
	if err != nil {
		return err
	}
	defer dc.Close()
	defer func() {
		if keep {
			fmt.Printf("kept: remove with docker rm -f $(docker ps -aq --filter label=%s=%s)\n", label, id)
			return
		}
		start := time.Now()
		if err := dc.RemoveLabelled(context.Background(), label, id); err != nil {
			fmt.Fprintln(os.Stderr, "cleanup:", err)
		}
		fmt.Printf("removed the host in %s\n", time.Since(start).Round(time.Second))
	}()

	image := benchhost.Image
	if err := benchhost.EnsureImage(ctx, dc, label); err != nil {
		return err
	}

	start := time.Now()
	base := pool.Addr().As4()
	names := make([]string, networks)
	for i := range networks {
		names[i] = fmt.Sprintf("zwbench%s-net%03d", id, i)
		subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{base[0], base[1], byte(i), 0}), 24)
		if _, err := dc.CreateNetwork(ctx, dockerapi.NetworkSpec{
			Name: names[i], Internal: i%5 == 4, Subnets: []netip.Prefix{subnet}, Labels: map[string]string{label: id},
		}); err != nil {
			return err
		}
	}
	fmt.Printf("created %d networks in %s\n", networks, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	work := make(chan int)
	errs := make(chan error, containers)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				nets := []string{names[i%networks]}
				if i%10 == 3 {
					nets = append(nets, names[(i+7)%networks])
				}
				spec := dockerapi.ContainerSpec{
					Name: fmt.Sprintf("zwbench%s-c%04d", id, i), Image: image, Networks: nets,
					Labels: map[string]string{label: id, inventory.LabelComposeProject: fmt.Sprintf("proj%02d", i%networks/2)},
				}
				if i%20 == 7 {
					spec.Ports = []inventory.PortBinding{{ContainerPort: l4.Port{Number: 80, Proto: "tcp"}, HostIP: netip.MustParseAddr("127.0.0.1")}}
				}
				cid, err := dc.CreateContainer(ctx, spec)
				if err == nil {
					err = dc.StartContainer(ctx, cid)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range containers {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	fmt.Printf("created and started %d containers in %s\n", containers, time.Since(start).Round(time.Millisecond))

	var snapTimes, ruleTimes []time.Duration
	var last map[string]int
	for range runs {
		fresh, err := dockerapi.New("")
		if err != nil {
			return err
		}
		t0 := time.Now()
		snap, err := fresh.Snapshot(ctx)
		if err != nil {
			return err
		}
		t1 := time.Now()
		rep := audit.Run(snap, audit.Options{})
		t2 := time.Now()
		snapTimes = append(snapTimes, t1.Sub(t0))
		ruleTimes = append(ruleTimes, t2.Sub(t1))
		last = fresh.Requests()
		fresh.Close()
		if len(snap.Containers) < containers || len(rep.Findings) == 0 {
			return fmt.Errorf("snapshot has %d containers, %d findings", len(snap.Containers), len(rep.Findings))
		}
	}
	fmt.Printf("live audit, %d runs: snapshot median %s (min %s), rules median %s\n",
		runs, median(snapTimes), slices.Min(snapTimes), median(ruleTimes))
	keys := make([]string, 0, len(last))
	total := 0
	for k, v := range last {
		keys = append(keys, k)
		total += v
	}
	sort.Strings(keys)
	fmt.Printf("Engine API requests per audit: %d\n", total)
	for _, k := range keys {
		fmt.Printf("  %5d  %s\n", last[k], k)
	}

	if bin != "" {
		var times []time.Duration
		for range runs {
			t0 := time.Now()
			cmd := exec.Command(bin, "audit", "--format", "json")
			cmd.Stdout = nil
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%s audit: %v\n%s", bin, err, out)
			}
			times = append(times, time.Since(t0))
		}
		fmt.Printf("%s audit --format json, %d runs: median %s (min %s)\n", bin, runs, median(times), slices.Min(times))
	}
	return nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Microsecond)
}
