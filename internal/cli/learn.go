package cli

import (
	"context"
	"fmt"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/zonewarden/zonewarden/internal/agent"
	"github.com/zonewarden/zonewarden/internal/firewall"
	"github.com/zonewarden/zonewarden/internal/inventory/dockerapi"
	"github.com/zonewarden/zonewarden/internal/learn"
)

// defaultFlowsFile is where learn records, and --from-flows reads.
const defaultFlowsFile = "flows.jsonl"

func (a *app) learnCommand() *cobra.Command {
	var (
		out      string
		duration time.Duration
		flush    time.Duration
		quiet    bool
	)
	cmd := &cobra.Command{
		Use:   "learn",
		Short: "Record the connections the host's containers really make, to draft or check a policy with",
		Long: `learn watches the connections the host's containers open, for --duration or
until interrupted, and records each flow: who (a container, named with its
compose project and service; the host; or an address beyond it) connected to
whom, on which protocol and port, how many times, first and last seen.

It reads conntrack's new-connection events: every connection the kernel
tracks, before any firewall verdict, including those between containers of
one network (which needs br_netfilter: learn says when it is off). A
connection to a published port is recorded to the container behind it, on
its container port, whichever path it takes (the userland proxy or DNAT).
Nothing on the host changes: learn only watches.

Records are appended to --output (JSON lines, one per flow and run) every
30 s and at the end, so that runs add up and a killed learn loses at most
the last half minute. Then:

  zonewarden init --from-flows flows.jsonl -o zones.yaml   the policy that keeps exactly these flows
  zonewarden plan zones.yaml --flows flows.jsonl           the recorded flows a policy would break

Each flow also counts the connections that were answered (a completed TCP
handshake, a reply): a port scan, a refused or a blindly spoofed connection
is recorded but never answered, and 'init --from-flows' proposes no flow for
it. (UDP and ICMP are answered by any reply; forged addresses are stopped
by zonewarden's endpoint binding, so on a host that must not be trusted
while learning, learn with 'agent --learn' after a first apply.)

New flows are printed as they are first seen; progress (connections,
answers, flows, overflows) goes to standard error. Lost events are counted:
the kernel reports when its event queue overflowed.

learn needs root (CAP_NET_ADMIN) and the Docker API, to name containers as
they come and go. 'zonewarden agent --learn FILE' records the same while it
enforces.

Exit status: 0; 2 when it cannot start.`,
		Example: `  zonewarden learn --duration 24h -o flows.jsonl
  zonewarden learn -q --duration 10m && zonewarden init --from-flows flows.jsonl -o zones.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.src.snapshotFile != "" || len(a.src.composeFiles) > 0 {
				return usageErr(cmd, "learn watches the live host: it reads Docker, not --snapshot or -f")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			return a.learn(ctx, out, flush, quiet)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", defaultFlowsFile, "append the flows to `FILE`")
	f.DurationVar(&duration, "duration", 0, "stop after this long (default: until interrupted)")
	f.DurationVar(&flush, "flush", 30*time.Second, "append the flows seen to the file this often")
	f.BoolVarP(&quiet, "quiet", "q", false, "print neither new flows nor progress, only the summary")
	return cmd
}

// learn records until ctx ends.
func (a *app) learn(ctx context.Context, out string, flush time.Duration, quiet bool) error {
	dc, err := dockerapi.New(a.src.dockerHost)
	if err != nil {
		return err
	}
	defer dc.Close()
	events, streamErr, err := dc.Events(ctx)
	if err != nil {
		return err
	}
	snap, err := dc.Snapshot(ctx)
	if err != nil {
		return err
	}
	l, err := agent.NewLearner(out, snap)
	if err != nil {
		return &exitErr{Code: exitError, Err: fmt.Errorf("%w: run learn as root", err)}
	}
	defer l.Close()
	for _, c := range firewall.BridgeFilteringChanges() {
		fmt.Fprintf(a.stderr, "warning: connections between containers of one network are not seen until you %s ('zonewarden apply' does it)\n", c)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- l.Run(ctx) }()
	fmt.Fprintf(a.stderr, "Learning the connections of %d containers into %s; Ctrl-C stops.\n", len(snap.Containers), out)

	start := time.Now()
	tty := useColor("auto", a.stderr)
	var all []learn.Record
	shown := map[string]bool{}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastFlush := time.Now()
	refresh := time.NewTimer(time.Hour)
	refresh.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case err := <-runErr:
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			done = true
		case _, ok := <-events:
			if !ok {
				if err := streamErr(); err != nil && ctx.Err() == nil {
					fmt.Fprintf(a.stderr, "warning: Docker's event stream ended (%v): containers started from now on are recorded by address\n", err)
				}
				events = nil
				continue
			}
			refresh.Reset(200 * time.Millisecond) // a burst of events, one snapshot
		case <-refresh.C:
			if s, err := dc.Snapshot(ctx); err == nil {
				l.SetHost(s)
			}
		case <-tick.C:
			if !quiet {
				for _, r := range l.Rec.Records() {
					if s := r.String(); !shown[s] {
						shown[s] = true
						a.clearProgress(tty)
						fmt.Fprintf(a.stdout, "+ %s\n", s)
					}
				}
				a.progress(tty, l, len(shown), start)
			}
			if time.Since(lastFlush) >= flush {
				lastFlush = time.Now()
				recs, err := l.Flush()
				all = learn.Merge(all, recs)
				if err != nil {
					fmt.Fprintf(a.stderr, "warning: %v\n", err)
				}
			}
		}
	}
	recs, err := l.Flush()
	all = learn.Merge(all, recs)
	a.clearProgress(tty)
	read, overflows := l.Stats()
	fmt.Fprintf(a.stdout, "\nRecorded %d flows (%d new connections of containers) in %s, appended to %s.\n",
		len(all), sum(all), time.Since(start).Round(time.Second), out)
	if overflows > 0 {
		fmt.Fprintf(a.stdout, "Lost: the kernel's event queue overflowed %d times; some connections of those moments are missing (of %d read). Run again to add them.\n", overflows, read)
	}
	if len(all) > 0 {
		fmt.Fprintln(a.stdout)
		for _, r := range all {
			answered := fmt.Sprintf("%d answered", r.Answered)
			if r.Answered == 0 {
				answered = "never answered"
			}
			fmt.Fprintf(a.stdout, "  %-60s %6d  %-16s %s .. %s\n", r.String(), r.Count, answered, r.First.Local().Format("15:04:05"), r.Last.Local().Format("15:04:05"))
		}
		fmt.Fprintf(a.stdout, "\nNext: zonewarden init --from-flows %s -o zones.yaml\n", out)
	}
	if err != nil {
		return &exitErr{Code: exitError, Err: err}
	}
	return nil
}

func sum(recs []learn.Record) int64 {
	var n int64
	for _, r := range recs {
		n += r.Count
	}
	return n
}

// progress writes learn's progress line: redrawn in place on a terminal,
// every ten seconds otherwise.
func (a *app) progress(tty bool, l *agent.Learner, flows int, start time.Time) {
	cs := l.Rec.Counts()
	_, overflows := l.Stats()
	took := time.Since(start).Round(time.Second)
	line := fmt.Sprintf("learning %s: %d connections (%d answered), %d flows, %d overflows", took, cs.Connections, cs.Answered, flows, overflows)
	switch {
	case tty:
		fmt.Fprintf(a.stderr, "\r%s\033[K", line)
	case int(took.Seconds())%10 == 0:
		fmt.Fprintln(a.stderr, line)
	}
}

// clearProgress erases the progress line before other output.
func (a *app) clearProgress(tty bool) {
	if tty {
		fmt.Fprint(a.stderr, "\r\033[K")
	}
}
