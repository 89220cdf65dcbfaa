package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/inventory/compose"
	"github.com/zonewarden/zonewarden/internal/inventory/dockerapi"
	"github.com/zonewarden/zonewarden/internal/ipsec"
)

// sourceFlags select where a command reads the host from.
type sourceFlags struct {
	dockerHost   string
	composeFiles []string
	projectName  string
	snapshotFile string
	swarmNodes   []string
	stack        bool
}

func (s *sourceFlags) register(root *cobra.Command) {
	f := root.PersistentFlags()
	f.StringVar(&s.dockerHost, "docker-host", "", "Docker Engine API endpoint (default: $DOCKER_HOST, else unix:///var/run/docker.sock)")
	f.StringArrayVarP(&s.composeFiles, "file", "f", nil, "read the host from compose `FILE`s instead of Docker (repeat to merge, as docker compose -f does)")
	f.StringVarP(&s.projectName, "project-name", "p", "", "compose project name (default: as docker compose derives it)")
	f.BoolVar(&s.stack, "stack", false, "with -f: read the compose files as 'docker stack deploy' does: a Swarm stack named by -p, with overlays, services and deploy:")
	f.StringVar(&s.snapshotFile, "snapshot", "", "read the host from a snapshot `FILE` written by 'zonewarden snapshot'")
	f.StringArrayVar(&s.swarmNodes, "swarm-node", nil, "with --docker-host a Swarm manager: also read this node's own Docker `ENDPOINT` (repeat per node) for what only it shows: its tasks' processes, which verify enters, and, when local, its kernel's IPsec")
}

// load reads the selected source into a snapshot.
func (s *sourceFlags) load(ctx context.Context) (*inventory.Snapshot, error) {
	switch {
	case s.snapshotFile != "" && len(s.composeFiles) > 0:
		return nil, fmt.Errorf("--snapshot and -f both given: choose one source")
	case s.snapshotFile != "":
		return inventory.ReadFile(s.snapshotFile)
	case s.stack && len(s.composeFiles) == 0:
		return nil, fmt.Errorf("--stack reads compose files: give them with -f")
	case len(s.composeFiles) > 0:
		return compose.Load(ctx, s.composeFiles, compose.Options{ProjectName: s.projectName, Stack: s.stack})
	}
	dc, err := dockerapi.New(s.dockerHost)
	if err != nil {
		return nil, err
	}
	defer dc.Close()
	snap, err := dc.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(dc.Host(), "unix://") {
		probeLocalNode(snap, snap.Daemon.SwarmNodeID)
	}
	if len(s.swarmNodes) > 0 && snap.Swarm == nil {
		return nil, fmt.Errorf("--swarm-node: %s is not a Swarm manager (role %q): give a manager's endpoint with --docker-host", dc.Host(), snap.Daemon.SwarmRole)
	}
	for _, host := range s.swarmNodes {
		if err := mergeNode(ctx, snap, host); err != nil {
			return nil, err
		}
	}
	return snap, nil
}

// mergeNode completes a Swarm's snapshot with what the daemon of one of
// its nodes shows of that node alone.
func mergeNode(ctx context.Context, snap *inventory.Snapshot, host string) error {
	nc, err := dockerapi.New(host)
	if err != nil {
		return err
	}
	defer nc.Close()
	node, err := nc.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("--swarm-node %s: %w", host, err)
	}
	if node.Daemon.SwarmNodeID == "" || snap.Swarm.Node(nodeHostname(snap, node.Daemon.SwarmNodeID)) == nil {
		return fmt.Errorf("--swarm-node %s: that daemon is not a node of the Swarm %s manages", host, snap.Source.Detail)
	}
	dockerapi.MergeNode(snap, node)
	if strings.HasPrefix(nc.Host(), "unix://") {
		probeLocalNode(snap, node.Daemon.SwarmNodeID)
	}
	return nil
}

func nodeHostname(snap *inventory.Snapshot, id string) string {
	for _, n := range snap.Swarm.Nodes {
		if n.ID == id {
			return n.Hostname
		}
	}
	return ""
}

// probeLocalNode records what this machine's kernel can do for encrypted
// overlays on the Swarm node id, whose daemon answers on a local socket:
// the API shows no node's kernel.
func probeLocalNode(snap *inventory.Snapshot, id string) {
	if snap.Swarm == nil {
		return
	}
	for i := range snap.Swarm.Nodes {
		if n := &snap.Swarm.Nodes[i]; n.ID == id {
			if p, err := ipsec.Probe(); err == nil {
				n.IPsec = p
			}
		}
	}
}

// describe names the source for people ("docker unix:///var/run/docker.sock").
func describe(snap *inventory.Snapshot) string {
	if snap.Source.Detail == "" {
		return snap.Source.Kind
	}
	return snap.Source.Kind + " " + snap.Source.Detail
}
