// Command agentbench measures zonewarden agent on the local Docker engine
// (issue 7): admission latency (from a container's start event to its
// admission in the kernel, as the agent measures it) with 1, 100 and
// 1,000 containers running; the full reconcile; the agent's memory; and
// convergence after kill -9 while the host changed.
//
// It builds its own host (one zone network, busybox "sleep" containers
// labelled zonewarden.bench.agent=<run id>), runs the agent binary with a
// table and socket of its own, and removes everything at the end. Run as
// root: sudo bench/agent.sh [-sizes 1,100,1000 -starts 50].
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zonewarden/zonewarden/bench/benchhost"
	"github.com/zonewarden/zonewarden/internal/agent"
	"github.com/zonewarden/zonewarden/internal/inventory/dockerapi"
	"github.com/zonewarden/zonewarden/internal/nft"
)

const label = "zonewarden.bench.agent"

func main() {
	sizes := flag.String("sizes", "1,100,1000", "numbers of running containers to measure at")
	starts := flag.Int("starts", 50, "containers started one by one at each size, for the admission latency")
	bin := flag.String("bin", "bin/zonewarden", "the zonewarden binary")
	parallel := flag.Int("parallel", 8, "containers created at once while building the host")
	flag.Parse()
	if err := run(*sizes, *starts, *bin, *parallel); err != nil {
		fmt.Fprintln(os.Stderr, "agentbench:", err)
		os.Exit(1)
	}
}

type bench struct {
	ctx     context.Context
	dc      *dockerapi.Client
	id      string
	image   string
	nets    []string  // zone networks, used in turn: a Linux bridge takes at most 1,024 ports
	running *exec.Cmd // the agent, to kill at the end
	dir     string
	table   string
	socket  string
	bin     string
	seq     int
	mu      sync.Mutex
}

func run(sizesFlag string, starts int, bin string, parallel int) error {
	ctx := context.Background()
	dc, id, err := benchhost.Open(ctx)
	if err != nil {
		return err
	}
	defer dc.Close()
	b := &bench{ctx: ctx, dc: dc, id: id, image: benchhost.Image, bin: bin}
	b.table = "zwbench_agent_" + b.id
	b.nets = []string{"zwab" + b.id + "-app0", "zwab" + b.id + "-app1"}
	b.dir, err = os.MkdirTemp("", "zwagentbench")
	if err != nil {
		return err
	}
	b.socket = filepath.Join(b.dir, "agent.sock")
	defer func() {
		if b.running != nil {
			_ = b.running.Process.Kill()
			_ = b.running.Wait()
		}
		start := time.Now()
		if err := dc.RemoveLabelled(context.Background(), label, b.id); err != nil {
			fmt.Fprintln(os.Stderr, "cleanup:", err)
		}
		_ = nft.Delete(context.Background(), "inet", b.table)
		os.RemoveAll(b.dir)
		fmt.Printf("removed the host in %s\n", time.Since(start).Round(time.Second))
	}()
	if err := benchhost.EnsureImage(ctx, dc, label); err != nil {
		return err
	}
	for i, n := range b.nets {
		if _, err := dc.CreateNetwork(ctx, dockerapi.NetworkSpec{Name: n, Subnets: []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("10.213.%d.0/21", 8*i))},
			Labels: map[string]string{label: b.id}}); err != nil {
			return err
		}
	}
	policy := strings.ReplaceAll(`version: 1
zones:
  NET0: {default: deny}
  NET1: {default: deny}
workloads:
  idle: {match: {name: "PRE-c*"}, zones: [NET0, NET1]}
  svc:  {match: {name: PRE-svc}, zones: [NET0, NET1]}
flows:
  - {from: idle, to: svc, ports: [80/tcp]}
unmanaged: allow
`, "PRE", "zwab"+b.id)
	policy = strings.ReplaceAll(strings.ReplaceAll(policy, "NET0", b.nets[0]), "NET1", b.nets[1])
	policyPath := filepath.Join(b.dir, "zones.yaml")
	if err := os.WriteFile(policyPath, []byte(policy), 0o600); err != nil {
		return err
	}
	if _, err := b.start("zwab" + b.id + "-svc"); err != nil {
		return err
	}

	fmt.Printf("%-8s %-22s %-22s %-10s %-12s %-26s\n", "running", "admission p50 / p99", "full reconcile", "RSS (HWM)", "first sync", "kill -9, change, restart")
	running := 1
	var ids []string
	for _, s := range strings.Split(sizesFlag, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return fmt.Errorf("-sizes: %q", s)
		}
		// Build the host up to n containers.
		more, err := b.startMany(n-running, parallel)
		if err != nil {
			return err
		}
		ids = append(ids, more...)
		running = max(running, n)

		cmd, first, err := b.agent(policyPath)
		if err != nil {
			return err
		}
		st, _ := b.status()
		reconcile := time.Duration(st.LastSyncSeconds * float64(time.Second))
		// Admission latency: start containers one by one, each after
		// the previous one was admitted.
		for k := 1; k <= starts; k++ {
			id, err := b.start("")
			if err != nil {
				return err
			}
			ids = append(ids, id)
			if err := b.waitFor(func(s agent.Status) bool { return s.AdmissionSamples >= k }, 10*time.Second); err != nil {
				return fmt.Errorf("admission %d at %d running: %w", k, running, err)
			}
		}
		running += starts
		st, _ = b.status()
		rss, hwm := memory(cmd.Process.Pid)

		// kill -9; start and stop containers; restart; converge.
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		fresh, err := b.startMany(10, parallel)
		if err != nil {
			return err
		}
		killed := len(ids) - min(10, len(ids))
		for _, id := range ids[killed:] {
			if err := b.dc.API().ContainerKill(b.ctx, id, "KILL"); err != nil {
				return err
			}
		}
		ids = append(ids[:killed], fresh...)
		cmd2, converged, err := b.agent(policyPath)
		if err != nil {
			return err
		}
		st2, _ := b.status()
		fmt.Printf("%-8d %-22s %-22s %-10s %-12s %-26s\n", running,
			fmt.Sprintf("%.1f / %.1f ms (%d)", st.AdmissionP50Ms, st.AdmissionP99Ms, st.AdmissionSamples),
			fmt.Sprintf("%.1f ms, %d elements", reconcile.Seconds()*1000, st.Elements),
			fmt.Sprintf("%d (%d) MiB", rss>>20, hwm>>20),
			first.Round(time.Millisecond).String(),
			fmt.Sprintf("%s (%d admitted)", converged.Round(time.Millisecond), st2.Admitted))
		_ = cmd2.Process.Signal(syscall.SIGTERM)
		_ = cmd2.Wait()
	}
	return nil
}

// agent starts the agent and returns it with the time from its start to
// its first successful sync.
func (b *bench) agent(policy string) (*exec.Cmd, time.Duration, error) {
	cmd := exec.Command(b.bin, "agent", "--policy", policy, "--table", b.table, "--socket", b.socket, "--flow-log", "", "--log-level", "warn")
	cmd.Env = append(os.Environ(), "ZONEWARDEN_STATE_DIR="+b.dir)
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	b.running = cmd
	if err := b.waitFor(func(s agent.Status) bool { return !s.LastSync.IsZero() && s.Started.After(start.Add(-time.Second)) }, 60*time.Second); err != nil {
		_ = cmd.Process.Kill()
		return nil, 0, err
	}
	return cmd, time.Since(start), nil
}

func (b *bench) status() (agent.Status, error) {
	c, err := agent.Dial(b.socket)
	if err != nil {
		return agent.Status{}, err
	}
	ctx, cancel := context.WithTimeout(b.ctx, time.Second)
	defer cancel()
	return c.Status(ctx)
}

func (b *bench) waitFor(ok func(agent.Status) bool, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		if s, err := b.status(); err == nil && ok(s) {
			return nil
		}
		if time.Now().After(deadline) {
			s, err := b.status()
			return fmt.Errorf("not there after %s: %+v %v", within, s, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// start creates and starts one container (named, or the next idle one).
func (b *bench) start(name string) (string, error) {
	if name == "" {
		b.mu.Lock()
		b.seq++
		name = fmt.Sprintf("zwab%s-c%05d", b.id, b.seq)
		b.mu.Unlock()
	}
	b.mu.Lock()
	net := b.nets[b.seq%len(b.nets)]
	b.mu.Unlock()
	nets := []string{net}
	if strings.HasSuffix(name, "-svc") {
		nets = b.nets
	}
	id, err := b.dc.CreateContainer(b.ctx, dockerapi.ContainerSpec{Name: name, Image: b.image, Networks: nets, Labels: map[string]string{label: b.id}})
	if err == nil {
		err = b.dc.StartContainer(b.ctx, id)
	}
	return id, err
}

func (b *bench) startMany(n, parallel int) ([]string, error) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ids  []string
		errs []error
		work = make(chan struct{})
	)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				id, err := b.start("")
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					ids = append(ids, id)
				}
				mu.Unlock()
			}
		}()
	}
	for range max(n, 0) {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return ids, nil
}

// memory returns a process's resident set and its high-water mark.
func memory(pid int) (rss, hwm int64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			hwm = kb << 10
		}
	}
	return rss, hwm
}
