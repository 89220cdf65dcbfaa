package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/zonewarden/zonewarden/internal/agent"
	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/firewall"
	"github.com/zonewarden/zonewarden/internal/inventory/dockerapi"
)

func (a *app) agentCommand() *cobra.Command {
	var (
		cfg       agent.Config
		logLevel  string
		flowsPath string
		swarm     bool
		execRoot  string
	)
	cmd := &cobra.Command{
		Use:   "agent --policy FILE",
		Short: "Keep the policy true: admit containers as they start, repair drift, log denied flows",
		Long: `agent keeps zonewarden's firewall matching the policy while the host changes.

It follows Docker's events and reconciles level-triggered: an event only
marks the host dirty; one reconcile at a time inspects what changed, compiles
the policy and loads the difference into table inet zonewarden in one
netlink transaction (set elements for containers that come and go). A
container that starts in a zone is dropped until it is admitted (fail
closed); admission takes milliseconds. Every reconnection to Docker relists
the whole host, so lost events do not matter, and a full resync runs every
--resync.

Drift is repaired: a change to zonewarden's table by anyone else (a deleted
table, a flushed ruleset) is undone within a second, in one transaction. A
container connected to a zone its workload may not join is reported (log,
metric, status); with --enforce-membership it is disconnected.

The policy file is reloaded when it changes and on SIGHUP; an invalid edit
is rejected with its problems logged, and the previous policy stays in force.
On shutdown or a crash the rules stay (fail static): a restarted agent
replaces them in one transaction, never removing them first.

Denied flows: every drop rule logs to nflog; the agent writes one JSON line
per denied flow to standard output (rate-limited, --flow-rate), names and
all, and serves them to 'zonewarden flows --follow'. Its own log goes to
standard error (JSON; --log-level).

Monitor mode: zones with mode: monitor (or the whole policy) let through what
they would deny; the agent logs those flows as "would deny" and counts them
(status, metrics), so that a policy can be rehearsed on production traffic
before it enforces. Switching a zone to enforce is an edit of the policy
file: the agent reloads it and swaps the rules in one transaction.

Learning (--learn FILE): the agent also records every new connection on the
host, named, as 'zonewarden learn' does, appending to FILE every 30 s.

Control socket (--socket): /healthz, /metrics (Prometheus), /status, /flows.
'zonewarden status' and 'zonewarden flows' use it. --metrics-addr also serves
/metrics and /healthz on a loopback TCP address.

The agent needs CAP_NET_ADMIN and read access to the Docker API: it calls
only /_ping, /containers/json, /networks and /events (a read-only socket
proxy that allows containers, networks and events will do), plus network
disconnect with --enforce-membership. The Docker side of the policy (zone
networks, memberships) is apply's: run 'zonewarden apply FILE' once.

Swarm (--swarm): traffic between the tasks of an overlay network, on one
node or two, never crosses a node's own forward hook: it is bridged inside
the overlay's namespace (Docker's exec-root, netns/1-<network id>), with
vxlan0 as the port to the other nodes. Run one agent with --swarm on every
node: it reads each overlay this node has a task on (the tasks of every
node, from the network's verbose inspect), compiles the policy as for a
host and loads it into that namespace, on the node's events and every
second (a task that starts on another node sends no event here: until it
is read it is dropped, fail closed). Workloads must select tasks by what
every node knows of them: their name ("api.*") or the label
com.docker.swarm.service.name. See docs/zones-across-hosts.md.

Exit status: 0 after SIGINT/SIGTERM, 2 when it cannot start (invalid policy,
no netlink, the socket taken).`,
		Example: `  zonewarden apply zones.yaml && zonewarden agent --policy zones.yaml
  zonewarden agent --policy /etc/zonewarden/zones.yaml --enforce-membership --metrics-addr 127.0.0.1:9847
  zonewarden agent --policy zones.yaml --swarm          # on every node of a Swarm`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.PolicyPath == "" {
				return usageErr(cmd, "--policy FILE is required")
			}
			if abs, err := filepath.Abs(cfg.PolicyPath); err == nil {
				cfg.PolicyPath = abs
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usageErr(cmd, "--log-level %q: use debug, info, warn or error", logLevel)
			}
			cfg.Log = slog.New(slog.NewJSONHandler(a.stderr, &slog.HandlerOptions{Level: level}))
			switch flowsPath {
			case "-":
				cfg.FlowLog = a.stdout
			case "":
			default:
				f, err := os.OpenFile(flowsPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
				if err != nil {
					return &exitErr{Code: exitError, Err: fmt.Errorf("--flow-log: %w", err)}
				}
				defer f.Close()
				cfg.FlowLog = f
			}
			dc, err := dockerapi.New(a.src.dockerHost)
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			defer dc.Close()
			if swarm {
				ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
				defer stop()
				// The policy file is read again every second: SIGHUP has
				// nothing to add, and must not end the agent.
				hup := make(chan os.Signal, 1)
				signal.Notify(hup, syscall.SIGHUP)
				defer signal.Stop(hup)
				err := agent.RunOverlays(ctx, dc, agent.OverlayConfig{PolicyPath: cfg.PolicyPath, ExecRoot: execRoot, Table: cfg.Table, Log: cfg.Log})
				if err != nil {
					return &exitErr{Code: exitError, Err: err}
				}
				return nil
			}
			cfg.Docker = dc
			cfg.SaveState = firewall.Record
			ag, err := agent.New(cfg)
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for {
					select {
					case <-hup:
						ag.Reload()
					case <-ctx.Done():
						return
					}
				}
			}()
			if err := ag.Run(ctx); err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.PolicyPath, "policy", "", "the policy `FILE` to keep true (reloaded when it changes)")
	f.DurationVar(&cfg.Resync, "resync", 30*time.Second, "period of the full resync with the host")
	f.DurationVar(&cfg.MinInterval, "min-interval", 0, "space reconciles at least this far apart (events meanwhile are taken together); 0: back to back, never overlapping")
	f.BoolVar(&cfg.EnforceMembership, "enforce-membership", false, "disconnect containers from zones their workload may not join (default: report them)")
	f.StringVar(&cfg.Socket, "socket", agent.DefaultSocket, "control socket `PATH` (status, flows, metrics); empty for none")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "also serve /metrics and /healthz on this loopback `ADDR` (127.0.0.1:9847)")
	f.StringVar(&flowsPath, "flow-log", "-", "where the denied-flow JSON lines go: - (standard output), a `FILE`, or empty for none")
	f.StringVar(&cfg.LearnPath, "learn", "", "also record the connections the host makes to this flows `FILE`, as 'zonewarden learn' does (appended every 30 s)")
	f.IntVar(&cfg.FlowRate, "flow-rate", 100, "at most this many denied-flow lines per second (packets beyond are counted, not written)")
	f.StringVar(&logLevel, "log-level", "info", "the agent's own log: debug, info, warn or error")
	f.StringVar(&cfg.Table, "table", enforce.Table, "the nftables table (inet) to keep; tests use their own")
	f.BoolVar(&swarm, "swarm", false, "on a Swarm node: keep the policy inside this node's overlay namespaces, where traffic between tasks is bridged (run one per node)")
	f.StringVar(&execRoot, "docker-exec-root", "/var/run/docker", "with --swarm: dockerd's --exec-root `DIR`; the overlays' namespaces are DIR/netns/1-*")
	_ = f.MarkHidden("table")
	return cmd
}

func (a *app) flowsCommand() *cobra.Command {
	var (
		socket string
		follow bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "flows",
		Short: "Show the flows zonewarden's firewall denied (or, in monitor mode, would deny), as a running agent saw them",
		Long: `flows prints the recent denied flows of a running 'zonewarden agent' (its
last 200 lines), named: which container tried to reach which, on which port,
in which zone, and the rule that dropped it. A zone in monitor mode
(mode: monitor in the policy) lets such flows through: they are printed as
"would deny", so that you see what enforce mode would break before you
switch. With --follow it goes on printing them as they happen, until
interrupted.

Lines are rate-limited by the agent (--flow-rate): a flow repeated within a
second is folded into its next line ("x N").

Exit status: 0, or 2 when no agent answers on --socket.`,
		Example: `  zonewarden flows --follow
  zonewarden flows --json | jq 'select(.zone == "data")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := agent.Dial(socket)
			if err != nil {
				return &exitErr{Code: exitError, Err: fmt.Errorf("%w: is 'zonewarden agent' running? (denied flows are logged by the agent)", err)}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			err = c.Flows(ctx, follow, func(fl agent.DeniedFlow) error {
				if asJSON {
					return json.NewEncoder(a.stdout).Encode(fl)
				}
				_, err := fmt.Fprintln(a.stdout, flowLine(fl))
				return err
			})
			if err != nil && ctx.Err() == nil {
				return &exitErr{Code: exitError, Err: fmt.Errorf("reading denied flows from the agent at %s: %w", socket, err)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&socket, "socket", agent.DefaultSocket, "the agent's control socket `PATH`")
	f.BoolVar(&follow, "follow", false, "go on printing denied flows as they happen")
	f.BoolVar(&asJSON, "json", false, "one JSON object per line, as the agent logs them")
	return cmd
}

// flowLine renders a denied flow for people.
func flowLine(fl agent.DeniedFlow) string {
	var b strings.Builder
	verdict := "denied"
	if fl.WouldDeny {
		verdict = "would deny (monitor mode, let through)"
	}
	fmt.Fprintf(&b, "%s  %s -> %s  %s  %s", fl.Time.Local().Format("15:04:05.000"), fl.From, fl.To, fl.Port, verdict)
	if fl.Zone != "" {
		fmt.Fprintf(&b, " in zone %s", fl.Zone)
	}
	fmt.Fprintf(&b, ": %s", fl.Rule)
	if fl.Repeated > 0 {
		fmt.Fprintf(&b, "  (x%d since the last line)", fl.Repeated+1)
	}
	return b.String()
}

// runningAgent returns the status of the agent answering on socket, if
// one does.
func runningAgent(ctx context.Context, socket string) (agent.Status, bool) {
	c, err := agent.Dial(socket)
	if err != nil {
		return agent.Status{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := c.Status(ctx)
	return s, err == nil
}

// agentStatus prints a running agent's view, if one answers, and returns
// the table it keeps ("" when none answers).
func (a *app) agentStatus(ctx context.Context, socket string) string {
	s, ok := runningAgent(ctx, socket)
	if !ok {
		return ""
	}
	healthy, why := s.Healthy(parseDurationOr(s.Resync, 30*time.Second))
	fmt.Fprintf(a.stdout, "Agent: running since %s, keeping %s true (Docker: %s).\n", s.Started.Format(time.RFC3339), s.Policy, s.Docker)
	if healthy {
		fmt.Fprintf(a.stdout, "  Last sync %s ago (%s, %.1f ms): %d containers, %d admitted, %d set elements.\n",
			time.Since(s.LastSync).Round(time.Millisecond), s.LastSyncKind, s.LastSyncSeconds*1000, s.Containers, s.Admitted, s.Elements)
	} else {
		fmt.Fprintf(a.stdout, "  Unhealthy: %s.\n", why)
	}
	if s.AdmissionSamples > 0 {
		fmt.Fprintf(a.stdout, "  Admission latency over the last %d: p50 %.1f ms, p99 %.1f ms.\n", s.AdmissionSamples, s.AdmissionP50Ms, s.AdmissionP99Ms)
	}
	if s.PolicyError != "" {
		fmt.Fprintf(a.stdout, "  The policy file on disk is invalid; the previous policy stays in force:\n    %s\n", strings.ReplaceAll(s.PolicyError, "\n", "\n    "))
	}
	for _, v := range s.Violations {
		fmt.Fprintf(a.stdout, "  Membership the policy forbids: %s\n", v)
	}
	for _, f := range s.Fenced {
		fmt.Fprintf(a.stdout, "  Fenced: %s: no workload selects it, so it is denied every flow of the zones.\n", f)
	}
	if len(s.Monitoring) > 0 {
		fmt.Fprintf(a.stdout, "  Monitor mode in %s: %d packets let through that enforce mode would drop ('zonewarden flows' names them).\n",
			strings.Join(s.Monitoring, ", "), s.WouldDeny)
	}
	if !s.FlowLog {
		fmt.Fprintln(a.stdout, "  No denied-flow log (nflog unavailable: see the agent's log).")
	}
	return strings.TrimPrefix(s.Table, "inet ")
}

func parseDurationOr(s string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(s); err == nil {
		return d
	}
	return def
}
