package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/zonewarden/zonewarden/internal/policy"
)

// options are the command line.
type options struct {
	flows    []int
	configs  []config
	duration time.Duration
	warmup   time.Duration
	reps     int
	workers  int
	inflight int
	busy     float64       // a share of the CPUs used by everything else that disturbs a run
	idleWait time.Duration // how long to wait before a run for the machine to be less busy
	retries  int           // how often to repeat a disturbed run
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("packet-rate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var names []string
	for _, c := range configs {
		names = append(names, c.name)
	}
	defaults := defaultConfigs()
	var (
		flows    = fs.String("flows", "10,10000,100000", "comma-separated numbers of allowed flows to load")
		cfgs     = fs.String("configs", strings.Join(defaults, ","), "comma-separated configurations to measure (known: "+strings.Join(names, ", ")+")")
		duration = fs.Duration("duration", 5*time.Second, "measured time of each run")
		warmup   = fs.Duration("warmup", time.Second, "unmeasured load before each run")
		reps     = fs.Int("reps", 3, "runs of each measurement (the median is reported)")
		workers  = fs.Int("workers", runtime.NumCPU(), "client threads opening connections")
		inflight = fs.Int("inflight", 32, "connections each client thread keeps in flight")
		busy     = fs.Float64("busy", 0.10, "share of the CPUs used by other tasks (and steal) that disturbs a run: wait for less before each run, repeat a run that saw more")
		idleWait = fs.Duration("idle-wait", time.Minute, "how long to wait before each run for other tasks to use less than -busy (0: do not wait)")
		retries  = fs.Int("retries", 3, "how often to repeat a run during which other tasks used more than -busy (the least disturbed run is kept)")
	)
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o := options{duration: *duration, warmup: *warmup, reps: *reps, workers: *workers, inflight: *inflight,
		busy: *busy, idleWait: *idleWait, retries: *retries}
	for _, s := range strings.Split(*flows, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 1<<20 {
			return options{}, fmt.Errorf("-flows: %q is not a number of flows between 1 and %d", s, 1<<20)
		}
		o.flows = append(o.flows, n)
	}
	for _, s := range strings.Split(*cfgs, ",") {
		i := slices.IndexFunc(configs, func(c config) bool { return c.name == strings.TrimSpace(s) })
		if i < 0 {
			return options{}, fmt.Errorf("-configs: unknown configuration %q (known: %s)", s, strings.Join(names, ", "))
		}
		o.configs = append(o.configs, configs[i])
	}
	if o.reps < 1 || o.workers < 1 || o.inflight < 1 || o.duration <= 0 || o.retries < 0 {
		return options{}, errors.New("-reps, -workers, -inflight and -duration must be positive")
	}
	return o, nil
}

// sample is one measurement.
type sample struct {
	rate    float64       // connections per second
	perConn time.Duration // the benchmark's CPU time per connection
	other   float64       // share of the CPUs everything else used meanwhile (with steal)
	loaded  time.Duration // time the ruleset took to load
	fails   int64         // attempts that did not connect
	err     error         // the last failure
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	if err := preflight(o); err != nil {
		return err
	}
	if err := describeRulesets(o, stdout); err != nil {
		return err
	}
	softirqd := softirqThreads()
	results := map[string][]sample{} // by key(config, flows)
	fmt.Fprintf(stderr, "%d configurations x %d sizes x %d runs of %s (+%s warm-up), %d client threads x %d connections in flight, %d CPUs\n",
		len(o.configs), len(o.flows), o.reps, o.duration, o.warmup, o.workers, o.inflight, runtime.NumCPU())
	// Interleaved: slow drift of the machine spreads over every column.
	for rep := range o.reps {
		for _, n := range o.flows {
			for _, c := range o.configs {
				s, err := measureQuiet(ctx, o, softirqd, c, n, stderr)
				if err != nil {
					return err
				}
				fmt.Fprintf(stderr, "run %d/%d %-16s %7d flows: %7.0f conn/s %6.1f µs CPU/conn  other %3.0f%%  load %-10s failed %d\n",
					rep+1, o.reps, c.name, n, s.rate, micros(s.perConn), 100*s.other, s.loaded.Round(time.Millisecond), s.fails)
				if s.err != nil {
					fmt.Fprintf(stderr, "    last failure: %v\n", s.err)
				}
				results[key(c, n)] = append(results[key(c, n)], s)
			}
		}
	}
	report(stdout, o, results)
	return nil
}

// measureQuiet measures c with n flows, repeating the run while other
// tasks disturbed it, and keeps the least disturbed.
func measureQuiet(ctx context.Context, o options, softirqd []string, c config, n int, stderr io.Writer) (sample, error) {
	var best sample
	for attempt := 0; attempt <= o.retries; attempt++ {
		s, err := measure(ctx, o, softirqd, c, n, stderr)
		if err != nil {
			return s, err
		}
		if attempt == 0 || s.other < best.other {
			best = s
		}
		if s.other <= o.busy {
			break
		}
		fmt.Fprintf(stderr, "    (%s %d flows: other tasks used %.0f%% of the CPUs, %.0f conn/s; repeating)\n", c.name, n, 100*s.other, s.rate)
	}
	return best, nil
}

func key(c config, flows int) string { return c.name + "/" + strconv.Itoa(flows) }

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// preflight checks the tools before anything is created.
func preflight(o options) error {
	tools := []string{"ip", "sysctl"}
	for _, c := range o.configs {
		if c.tool != "" {
			tools = append(tools, c.tool)
		}
	}
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s not found: install it or leave its configuration out of -configs", t)
		}
	}
	return nil
}

// measure builds a fresh topology, loads c's ruleset with n flows, checks
// that it lets the benchmark's flow through (and drops the others), waits
// for the machine to be idle, measures the connection rate, and removes
// the topology.
func measure(ctx context.Context, o options, softirqd []string, c config, n int, stderr io.Writer) (s sample, err error) {
	id := make([]byte, 3)
	if _, err := rand.Read(id); err != nil {
		return s, err
	}
	t := newTopology(hex.EncodeToString(id))
	defer func() {
		if derr := t.destroy(); derr != nil {
			err = errors.Join(err, fmt.Errorf("removing the topology (remove it by hand: ip netns del %s): %w", strings.Join(t.names(), "; ip netns del "), derr))
		}
	}()
	if err := t.create(ctx); err != nil {
		return s, fmt.Errorf("creating the topology: %w", err)
	}
	srv, err := startServer(t, runtime.NumCPU())
	if err != nil {
		return s, err
	}
	defer srv.close()
	if s.loaded, err = loadRules(ctx, t, c, n); err != nil {
		return s, err
	}
	if err := runChecks(t, c); err != nil {
		return s, err
	}
	// The previous run's namespaces are freed in the background, and the
	// machine may be shared.
	if o.idleWait > 0 {
		busy, err := waitIdle(ctx, softirqd, o.busy, o.idleWait)
		if err != nil {
			return s, err
		}
		if busy > 0 {
			fmt.Fprintf(stderr, "warning: other tasks still use %.0f%% of the CPUs after %s; measuring anyway\n", 100*busy, o.idleWait)
		}
	}
	l, err := startLoad(t, o.workers, o.inflight)
	if err != nil {
		return s, err
	}
	defer l.close()
	if err := sleep(ctx, o.warmup); err != nil {
		return s, err
	}
	before := l.tally()
	cpu0, err := readCPU(softirqd)
	if err != nil {
		return s, err
	}
	if err := sleep(ctx, o.duration); err != nil {
		return s, err
	}
	after := l.tally()
	cpu1, err := readCPU(softirqd)
	if err != nil {
		return s, err
	}
	conns := after[connected] - before[connected]
	use := usage(cpu0, cpu1)
	s.rate = float64(conns) / cpu1.at.Sub(cpu0.at).Seconds()
	if conns > 0 {
		s.perConn = use.ours / time.Duration(conns)
	}
	s.other = use.other + use.steal
	for oc := connected + 1; oc < numOutcomes; oc++ {
		s.fails += after[oc] - before[oc]
	}
	if s.fails > 0 {
		s.err = l.lastError()
	}
	return s, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	xs = slices.Clone(xs)
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

// medianOf is the median of one figure over the runs of c with n flows.
func medianOf(results map[string][]sample, c config, n int, fig func(sample) float64) float64 {
	var xs []float64
	for _, s := range results[key(c, n)] {
		xs = append(xs, fig(s))
	}
	return median(xs)
}

// halfRange is half the difference between the largest and the smallest
// of one figure over the runs of c with n flows.
func halfRange(results map[string][]sample, c config, n int, fig func(sample) float64) float64 {
	var xs []float64
	for _, s := range results[key(c, n)] {
		xs = append(xs, fig(s))
	}
	if len(xs) == 0 {
		return 0
	}
	return (slices.Max(xs) - slices.Min(xs)) / 2
}

// report prints the medians: connection rate (as a share of "no rules" at
// the same size, when that was measured), CPU time per connection (and
// what the rules add to it), ruleset load time.
func report(w io.Writer, o options, results map[string][]sample) {
	rate := func(s sample) float64 { return s.rate }
	perConn := func(s sample) float64 { return micros(s.perConn) }
	loaded := func(s sample) float64 { return s.loaded.Seconds() }
	_, haveBase := results[key(noRules, o.flows[0])]

	table := func(title string, cfgs []config, cell func(c config, n int) string) {
		fmt.Fprintln(w, title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		head := "flows\t"
		for _, c := range cfgs {
			head += c.title + "\t"
		}
		fmt.Fprintln(tw, head)
		for _, n := range o.flows {
			line := strconv.Itoa(n) + "\t"
			for _, c := range cfgs {
				line += cell(c, n) + "\t"
			}
			fmt.Fprintln(tw, line)
		}
		tw.Flush()
		fmt.Fprintln(w)
	}

	ctOnly := configs[slices.IndexFunc(configs, func(c config) bool { return c.name == "ct" })]
	_, haveCt := results[key(ctOnly, o.flows[0])]
	table(fmt.Sprintf("New TCP connections per second, median of %d runs of %s, ± half the range of the runs (%% of no rules | %% of ct accept only, at the same size):", o.reps, o.duration),
		o.configs, func(c config, n int) string {
			m := medianOf(results, c, n, rate)
			cell := fmt.Sprintf("%.0f ±%.0f%%", m, 100*halfRange(results, c, n, rate)/m)
			b := medianOf(results, noRules, n, rate)
			k := medianOf(results, ctOnly, n, rate)
			switch {
			case haveBase && haveCt && b > 0 && k > 0:
				cell += fmt.Sprintf(" (%.1f%% | %.1f%%)", 100*m/b, 100*m/k)
			case haveBase && b > 0:
				cell += fmt.Sprintf(" (%.1f%%)", 100*m/b)
			}
			var fails int64
			for _, s := range results[key(c, n)] {
				fails += s.fails
			}
			if fails > 0 {
				cell += fmt.Sprintf(" [%d failed]", fails)
			}
			return cell
		})

	table(fmt.Sprintf("CPU time per connection in µs, client + server + router, median of %d ± half the range (+ added to no rules):", o.reps),
		o.configs, func(c config, n int) string {
			m := medianOf(results, c, n, perConn)
			cell := fmt.Sprintf("%.1f ±%.1f", m, halfRange(results, c, n, perConn))
			if b := medianOf(results, noRules, n, perConn); haveBase && c.name != noRules.name {
				cell += fmt.Sprintf(" (%+.1f)", m-b)
			}
			return cell
		})

	var withRules []config
	for _, c := range o.configs {
		if c.load != nil {
			withRules = append(withRules, c)
		}
	}
	if len(withRules) > 0 {
		table(fmt.Sprintf("Ruleset load time (%s in the router namespace), median of %d:", "nflink / nft -f / iptables-*-restore", o.reps),
			withRules, func(c config, n int) string {
				d := time.Duration(medianOf(results, c, n, loaded) * float64(time.Second))
				return d.Round(time.Millisecond).String()
			})
	}

	var others []float64
	for _, ss := range results {
		for _, s := range ss {
			others = append(others, s.other)
		}
	}
	slices.Sort(others)
	fmt.Fprintf(w, "Other tasks (and steal) during the runs: median %.0f%%, max %.0f%% of the CPUs.\n",
		100*median(others), 100*others[len(others)-1])
}

// describeRulesets compiles zonewarden's rulesets of the sizes measured
// (once: every run loads the same) and says what they hold.
func describeRulesets(o options, w io.Writer) error {
	modes := map[policy.Unmanaged]bool{}
	for _, c := range o.configs {
		switch {
		case c.name == "zonewarden-deny":
			modes[policy.UnmanagedDeny] = true
		case strings.HasPrefix(c.name, "zonewarden"), strings.HasPrefix(c.name, "exp-"):
			modes[policy.UnmanagedWarn] = true
		}
	}
	for _, mode := range []policy.Unmanaged{policy.UnmanagedWarn, policy.UnmanagedDeny} {
		if !modes[mode] {
			continue
		}
		for _, n := range o.flows {
			c, err := realRuleset(n, mode)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "zonewarden ruleset (unmanaged: %s), %d declared flows: %d elements, allow4 %d, allowrange4 %d, admitted4 %d, zones4 %d; bound and compiled in %s\n",
				mode, c.flows, c.rs.Size(), len(c.rs.Elements("allow4")), len(c.rs.Elements("allowrange4")),
				len(c.rs.Elements("admitted4")), len(c.rs.Elements("zones4")), c.compile.Round(time.Millisecond))
		}
	}
	fmt.Fprintln(w)
	return nil
}
