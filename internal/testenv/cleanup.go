package testenv

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

// networkRemoveDeadline bounds the retries of one network's removal. Docker
// 20.10 can answer "has active endpoints" for a while after the last
// container left, and sometimes for good (a stale endpoint that only a
// daemon restart clears).
const networkRemoveDeadline = 20 * time.Second

// cleanupKey identifies one registered clean-up: one test, one run id.
type cleanupKey struct {
	t     testing.TB
	runID string
}

// registered holds the cleanupKeys whose clean-up is registered already.
var registered sync.Map

// Cleanup makes sure that when t ends (pass or fail) every container and
// network labelled [Label]=runID is removed: containers first (forced, with
// their anonymous volumes), then networks, whose removal is retried for up to
// 20 s. Whatever is left is reported with t.Errorf; a network that Docker
// still says has endpoints although none is attached (a Docker 20.10 fault
// cleared by restarting dockerd) is only logged, since the test is not to
// blame. Cleanup never blocks for long.
//
// Calling it again for the same t and runID does nothing; [Setup],
// [CreateNetwork] and [RunContainer] call it for you. It removes resources
// of that run id only, so a subtest must not be given its parent's run id.
func Cleanup(t testing.TB, cli *client.Client, runID string) {
	t.Helper()
	key := cleanupKey{t, runID}
	if _, loaded := registered.LoadOrStore(key, true); loaded {
		return
	}
	t.Cleanup(func() {
		defer registered.Delete(key)
		removeLabelled(t, cli, runID)
	})
}

// removeLabelled removes the containers, then the networks, labelled
// Label=runID, and reports what it could not remove.
func removeLabelled(t testing.TB, cli *client.Client, runID string) {
	t.Helper()
	// t.Context is already cancelled when clean-ups run.
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	byLabel := filters.NewArgs(filters.Arg("label", Label+"="+runID))

	containers, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: byLabel})
	if err != nil {
		t.Errorf("cleanup of run %s: listing containers: %v", runID, err)
		return
	}
	// One at a time: removing many containers at once is what leaves Docker
	// 20.10 with stale network endpoints.
	for _, c := range containers {
		err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("cleanup of run %s: removing container %s %v: %v", runID, shortID(c.ID), c.Names, err)
		}
	}

	networks, err := cli.NetworkList(ctx, network.ListOptions{Filters: byLabel})
	if err != nil {
		t.Errorf("cleanup of run %s: listing networks: %v", runID, err)
		return
	}
	for _, n := range networks {
		removeNetwork(ctx, t, cli, runID, n.ID, n.Name)
	}
}

// removeNetwork removes one network, retrying while Docker reports active
// endpoints and force-disconnecting any container still attached.
func removeNetwork(ctx context.Context, t testing.TB, cli *client.Client, runID, id, name string) {
	t.Helper()
	deadline := time.Now().Add(networkRemoveDeadline)
	wait := 100 * time.Millisecond
	for {
		err := cli.NetworkRemove(ctx, id)
		if err == nil || cerrdefs.IsNotFound(err) {
			return
		}
		if !strings.Contains(err.Error(), "active endpoints") {
			t.Errorf("cleanup of run %s: removing network %s: %v", runID, name, err)
			return
		}
		// Containers another party attached (the code under test, say) keep
		// the network busy: detach them.
		attached := 0
		if info, ierr := cli.NetworkInspect(ctx, id, network.InspectOptions{}); ierr == nil {
			for cid := range info.Containers {
				attached++
				derr := cli.NetworkDisconnect(ctx, id, cid, true)
				if derr != nil && !cerrdefs.IsNotFound(derr) {
					t.Logf("cleanup of run %s: disconnecting %s from network %s: %v", runID, shortID(cid), name, derr)
				}
			}
		}
		if time.Now().After(deadline) {
			if attached == 0 {
				t.Logf("cleanup of run %s: WARNING: network %s (%s) left behind: Docker still reports active endpoints although none is attached after %s; this is a Docker 20.10 fault, restart dockerd to clear it: %v",
					runID, name, shortID(id), networkRemoveDeadline, err)
			} else {
				t.Errorf("cleanup of run %s: network %s still has %d attached endpoint(s) after %s: %v", runID, name, attached, networkRemoveDeadline, err)
			}
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// shortID returns the 12-character form Docker prints.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
