package agent_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/zonewarden/zonewarden/internal/nft/nflink"
	"github.com/zonewarden/zonewarden/internal/probe"
	"github.com/zonewarden/zonewarden/internal/testenv"
)

// TestDockerdRestart restarts dockerd under a running agent: zonewarden's
// table stays in force throughout (Docker re-creates its own rules, never
// ours), the agent reconnects to the event stream and admits the
// containers as they come back (with restart: always), allowed flows work
// again and denied ones stay denied.
func TestDockerdRestart(t *testing.T) {
	testenv.RequireAlone(t, "restarts dockerd, stopping every container of the host")
	h := newZoneHost(t)
	ag := h.startAgent(false)
	// Containers that come back after the restart, each with its
	// listener (started again after the restart: its namespace is new).
	svc := h.restarting(t, "svc2", h.app)
	cl := h.restarting(t, "client-r", h.app)
	listen := func() {
		ns, err := probe.OpenPID(testenv.Pid(t, h.cli, svc))
		if err != nil {
			t.Fatal(err)
		}
		l, err := probe.Listen(ns, probe.ListenConfig{TCP: []uint16{80, 5432}, Banner: "svc2"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close(); ns.Close() })
	}
	listen()
	// The client reaches svc and svc2 on 80 (declared flows), and not
	// db:5432.
	check := func(within time.Duration) {
		t.Helper()
		svcAddr := testenv.Addr(t, h.cli, svc, h.app)
		eventually(t, within, func() string {
			if st, err := h.probe(cl, h.svc, 80, 200*time.Millisecond); st != probe.Open {
				return fmt.Sprintf("client -> svc:80 %s (%v)", st, err)
			}
			if st, err := h.probe(cl, svcAddr, 80, 200*time.Millisecond); st != probe.Open {
				return fmt.Sprintf("client -> svc2:80 %s (%v)", st, err)
			}
			return ""
		})
		if st, _ := h.probe(cl, h.db, 5432, 300*time.Millisecond); st == probe.Open {
			t.Errorf("client reaches db:5432, which the policy denies")
		}
	}
	check(3 * time.Second)

	l, err := nflink.New()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	stop := make(chan struct{})
	absent := make(chan int, 1)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				absent <- n
				return
			case <-time.After(5 * time.Millisecond):
			}
			if ok, err := l.HasTable(h.table); err == nil && !ok {
				n++
			}
		}
	}()
	testenv.RestartDockerd(t, h.cli)
	close(stop)
	if n := <-absent; n > 0 {
		t.Errorf("zonewarden's table was absent %d times while dockerd restarted", n)
	}
	// The listener of svc (not restarting) is gone with its container;
	// svc2 and the client come back.
	eventually(t, 30*time.Second, func() string {
		for _, id := range []string{svc, cl} {
			info, err := h.cli.ContainerInspect(context.Background(), id)
			if err != nil || info.State == nil || !info.State.Running {
				return "containers not back yet"
			}
		}
		return ""
	})
	listen()
	h.listenerAgain(t, "svc")
	check(5 * time.Second)
	if s := ag.Status(); s.Docker != "connected" {
		t.Errorf("agent after the restart: Docker %q", s.Docker)
	}
}

// restarting runs a container with restart: always on net.
func (h *zoneHost) restarting(t *testing.T, name, net string) string {
	t.Helper()
	resp, err := h.cli.ContainerCreate(context.Background(),
		&container.Config{Image: testenv.Image(t, h.cli), Cmd: []string{"sleep", "3600"}, Labels: map[string]string{testenv.Label: h.runID}},
		&container.HostConfig{NetworkMode: container.NetworkMode(net), RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyAlways}},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{net: {}}}, nil, h.pre+name)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.cli.ContainerStart(context.Background(), resp.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	return resp.ID
}

// listenerAgain starts the stopped listener container name again (its
// namespace is new) and listens in it.
func (h *zoneHost) listenerAgain(t *testing.T, name string) netip.Addr {
	t.Helper()
	id := h.pre + name
	if err := h.cli.ContainerStart(context.Background(), id, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	ns, err := probe.OpenPID(testenv.Pid(t, h.cli, id))
	if err != nil {
		t.Fatal(err)
	}
	l, err := probe.Listen(ns, probe.ListenConfig{TCP: []uint16{80, 5432}, Banner: "reached-" + name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); ns.Close() })
	a := testenv.Addr(t, h.cli, id, h.app)
	h.svc = a
	return a
}
