package cli

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/zonewarden/zonewarden/internal/kube"
	"github.com/zonewarden/zonewarden/internal/model"
)

func (a *app) exportCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write a policy for another engine (Kubernetes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErr(cmd, "name the engine, like: zonewarden export k8s policy.yaml")
		},
	}
	cmd.AddCommand(a.exportK8sCommand())
	return cmd
}

func (a *app) exportK8sCommand() *cobra.Command {
	var (
		opts   kube.Options
		scheme string
		format string
		outDir string
	)
	cmd := &cobra.Command{
		Use:   "k8s POLICY [-f compose.yaml] [-o DIR]",
		Short: "Write the policy as Kubernetes NetworkPolicies, port by port",
		Long: `export k8s writes the policy's zones and flows as Kubernetes NetworkPolicies,
for the same services run on a cluster (through Kompose, Compose Bridge or
your own manifests):

  - one NetworkPolicy per workload, for Ingress and Egress: each flow is an
    egress rule on its sources and an ingress rule on its destinations, on
    its ports (ranges with endPort); a default: allow zone lets its members
    reach each other on every port; a zone is selected as its members' pods;
  - published ports are open to the workload's ingress sources (ipBlock; to
    anyone when it lists none), on the container port;
  - egress beyond the host is the workload's egress list as ipBlocks, or
    0.0.0.0/0 and ::/0 when it lists none and joins no internal zone;
  - every workload may query kube-dns (kube-system, k8s-app=kube-dns) on
    53/udp and 53/tcp, as Docker's embedded DNS is always reachable
    (--no-dns leaves it out);
  - zw-default-deny isolates every other pod of the namespace.

Pods are selected by a label (--labels):
  kompose         io.kompose.service=SERVICE (Kompose's label; the default)
  compose-bridge  com.docker.compose.service=SERVICE (Docker Compose Bridge's)
  zonewarden      zonewarden.io/workload=WORKLOAD (add it to your pods)
A workload's compose service is read from the compose file (-f), else from
its match (compose: {service: NAME}); a workload with neither is selected
by zonewarden.io/workload.

What Kubernetes cannot say is listed on standard error, never dropped
silently: ICMP (a NetworkPolicy names TCP, UDP and SCTP ports only), host
port numbers and host addresses of published ports, monitor mode, two
workloads that select the same pods.

'zonewarden check --k8s POLICY' runs the policy's tests on this export
through netpol-analyzer, an independent implementation of NetworkPolicy.`,
		Example: `  zonewarden export k8s policy.yaml > netpol.yaml && kubectl apply -f netpol.yaml
  zonewarden export k8s policy.yaml -f compose.yaml -n shop -o k8s/
  zonewarden export k8s policy.yaml --labels zonewarden --format json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr(cmd, "name one policy file, like: zonewarden export k8s policy.yaml")
			}
			if !slices.Contains(kube.Schemes, kube.Scheme(scheme)) {
				return usageErr(cmd, "unknown --labels %q: use kompose, compose-bridge or zonewarden", scheme)
			}
			if format != kube.YAML && format != kube.JSON {
				return usageErr(cmd, "unknown --format %q: use yaml or json", format)
			}
			opts.Scheme = kube.Scheme(scheme)
			p, err := a.readPolicy(args[0])
			if err != nil {
				return err
			}
			if len(a.src.composeFiles) > 0 || a.src.snapshotFile != "" {
				snap, err := a.src.load(cmd.Context())
				if err != nil {
					return &exitErr{Code: exitError, Err: err}
				}
				b, _ := model.Bind(p, snap)
				opts.Services = kube.Services(b)
			}
			x := kube.Build(p, opts)
			if outDir != "" {
				err = writeExportDir(x, outDir, format)
			} else {
				out := bufio.NewWriter(a.stdout)
				err = x.Write(out, format)
				if ferr := out.Flush(); err == nil {
					err = ferr
				}
			}
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			summary := fmt.Sprintf("%d NetworkPolicies for namespace %s, pods selected by %s", len(x.Policies), x.Namespace, x.Scheme.Key())
			if outDir != "" {
				summary += ", in " + outDir
			}
			fmt.Fprintln(a.stderr, summary)
			if len(x.Notes) > 0 {
				fmt.Fprintf(a.stderr, "What Kubernetes cannot say, or what you must do (%d):\n", len(x.Notes))
				for _, n := range x.Notes {
					fmt.Fprintln(a.stderr, "  "+n.String())
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Namespace, "namespace", "n", "default", "namespace of the policies and of the pods they select")
	f.StringVar(&scheme, "labels", string(kube.Kompose), "the pod label that selects a workload: kompose, compose-bridge or zonewarden")
	f.StringVar(&format, "format", kube.YAML, "yaml (a stream of documents) or json (a v1 List)")
	f.StringVarP(&outDir, "output", "o", "", "write one file per NetworkPolicy into `DIR` (created if missing) instead of standard output")
	f.BoolVar(&opts.NoDNS, "no-dns", false, "leave out the egress to kube-dns")
	return cmd
}

// writeExportDir writes one file per policy into dir.
func writeExportDir(x *kube.Export, dir, format string) error {
	docs, err := x.Encode(format)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create %s: %w", dir, err)
	}
	for _, d := range docs {
		file := filepath.Join(dir, d.Name+"."+format)
		if err := os.WriteFile(file, d.Data, 0o644); err != nil {
			return fmt.Errorf("cannot write the export: %w", err)
		}
	}
	return nil
}
