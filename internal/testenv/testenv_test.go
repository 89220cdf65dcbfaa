package testenv_test

// Address plan: network "plan" is 10.213.7.0/24 (fixed, to check that
// NetworkOpts.Subnet is honoured); IPv6 networks get a ULA /64 derived from
// the run id; every other network gets whatever Docker's pools give. The
// only traffic is HTTP between two containers these tests created.

import (
	"context"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/zonewarden/zonewarden/internal/testenv"
)

func TestRunIDStablePerTestAndUniqueAcrossTests(t *testing.T) {
	id := testenv.RunID(t)
	if !regexp.MustCompile(`^[0-9a-f]{8}$`).MatchString(id) {
		t.Fatalf("RunID = %q, want 8 hex digits", id)
	}
	if again := testenv.RunID(t); again != id {
		t.Errorf("RunID changed within one test: %q then %q", id, again)
	}
	seen := map[string]bool{id: true}
	for range 20 {
		t.Run("sub", func(t *testing.T) {
			sub := testenv.RunID(t)
			if seen[sub] {
				t.Errorf("RunID %q repeated", sub)
			}
			seen[sub] = true
		})
	}
	if got, want := testenv.Prefixed(id, "web"), "zw"+id+"-web"; got != want {
		t.Errorf("Prefixed = %q, want %q", got, want)
	}
}

func TestRequired(t *testing.T) {
	for _, tc := range []struct {
		require, ci string
		want        bool
	}{
		{"", "", false},
		{"1", "", true},
		{"0", "", false},
		{"", "true", true},
		{"", "false", false},
	} {
		t.Setenv(testenv.RequireEnv, tc.require)
		t.Setenv("CI", tc.ci)
		if got := testenv.Required(); got != tc.want {
			t.Errorf("Required() with %s=%q CI=%q = %v, want %v", testenv.RequireEnv, tc.require, tc.ci, got, tc.want)
		}
	}
}

func TestImageIsBuiltOnceFromScratch(t *testing.T) {
	cli, _ := testenv.Setup(t)
	tag := testenv.Image(t, cli)
	if !strings.HasPrefix(tag, testenv.ImageRepo+":") {
		t.Errorf("Image = %q, want a tag of %s", tag, testenv.ImageRepo)
	}
	if again := testenv.Image(t, cli); again != tag {
		t.Errorf("second Image = %q, want %q", again, tag)
	}
	info, err := cli.ImageInspect(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Config.Labels[testenv.ImageLabel]; got != "busybox" {
		t.Errorf("image label %s = %q, want busybox", testenv.ImageLabel, got)
	}
	if got := []string(info.Config.Cmd); !slices.Equal(got, []string{"sleep", "3600"}) {
		t.Errorf("image command = %q, want sleep 3600", got)
	}
	if n := len(info.RootFS.Layers); n != 1 {
		t.Errorf("image has %d layers, want 1 (FROM scratch + one ADD)", n)
	}
}

func TestNetworksContainersExecAndAddresses(t *testing.T) {
	cli, id := testenv.Setup(t)

	front := testenv.CreateNetwork(t, cli, id, "front", testenv.NetworkOpts{})
	back := testenv.CreateNetwork(t, cli, id, "back", testenv.NetworkOpts{Internal: true, DisableICC: true, IPv6: true})
	plan := testenv.CreateNetwork(t, cli, id, "plan", testenv.NetworkOpts{Subnet: "10.213.7.0/24"})

	ctx := context.Background()
	backInfo, err := cli.NetworkInspect(ctx, back, network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if backInfo.Name != testenv.Prefixed(id, "back") || !backInfo.Internal || !backInfo.EnableIPv6 ||
		backInfo.Options["com.docker.network.bridge.enable_icc"] != "false" || backInfo.Labels[testenv.Label] != id {
		t.Errorf("network back = name %q internal %v ipv6 %v options %v labels %v; want prefixed, internal, IPv6, ICC off, labelled",
			backInfo.Name, backInfo.Internal, backInfo.EnableIPv6, backInfo.Options, backInfo.Labels)
	}

	server := testenv.RunContainer(t, cli, id, testenv.ContainerSpec{
		Name:          "server",
		Network:       front,
		ExtraNetworks: []string{back, plan},
		Cmd:           []string{"sh", "-c", "echo hello >/tmp/index.html && exec httpd -f -p 8080 -h /tmp"},
		Labels:        map[string]string{"role": "server"},
		Start:         true,
	})
	caller := testenv.RunContainer(t, cli, id, testenv.ContainerSpec{Network: front, CapDrop: []string{"ALL"}, ReadOnly: true, Start: true})

	if a := testenv.Addr(t, cli, server, plan); !netip.MustParsePrefix("10.213.7.0/24").Contains(a) {
		t.Errorf("server address on plan = %v, want one in 10.213.7.0/24", a)
	}
	if a := testenv.Addr6(t, cli, server, testenv.Prefixed(id, "back")); !a.Is6() || a.As16()[0] != 0xfd {
		t.Errorf("server IPv6 address on back = %v, want a ULA", a)
	}

	// httpd needs a moment to listen; ask until it answers or the deadline.
	// (Not wget -T: Debian's busybox 1.35 wget crashes with it.)
	url := "http://" + testenv.Prefixed(id, "server") + ":8080/index.html" // embedded DNS
	var res testenv.ExecResult
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		if res = testenv.Exec(t, cli, caller, "timeout", "3", "wget", "-q", "-O", "-", url); res.ExitCode == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond) // between polls, under the deadline
	}
	if res.ExitCode != 0 || strings.TrimSpace(res.Stdout) != "hello" {
		t.Errorf("wget %s from caller: %v, want exit 0 and hello", url, res)
	}

	if res := testenv.Exec(t, cli, caller, "sh", "-c", "id -un; echo oops >&2; exit 3"); res.ExitCode != 3 || res.Stdout != "root\n" || res.Stderr != "oops\n" {
		t.Errorf("exec = %v, want exit 3, stdout root, stderr oops", res)
	}

	info, err := cli.ContainerInspect(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	if !info.State.Running || info.Name != "/"+testenv.Prefixed(id, "server") ||
		info.Config.Labels[testenv.Label] != id || info.Config.Labels["role"] != "server" || len(info.NetworkSettings.Networks) != 3 {
		t.Errorf("server = running %v name %q labels %v networks %d; want running, prefixed, labelled, on 3 networks",
			info.State.Running, info.Name, info.Config.Labels, len(info.NetworkSettings.Networks))
	}
}

func TestContainersThatCannotStartAreCreated(t *testing.T) {
	cli, id := testenv.Setup(t)
	c := testenv.RunContainer(t, cli, id, testenv.ContainerSpec{
		Name:        "risky",
		Privileged:  true,
		CapAdd:      []string{"NET_ADMIN"},
		SecurityOpt: []string{"no-new-privileges"},
		Ports:       []string{"127.0.0.1:18080:80/tcp", "53/udp"},
		Binds:       []string{"/etc/hostname:/host-hostname:ro"},
	})
	info, err := cli.ContainerInspect(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	hc := info.HostConfig
	if info.State.Running || !hc.Privileged || !slices.Contains(hc.CapAdd, "CAP_NET_ADMIN") && !slices.Contains(hc.CapAdd, "NET_ADMIN") ||
		!slices.Contains(hc.SecurityOpt, "no-new-privileges") || len(hc.Binds) != 1 {
		t.Errorf("risky = running %v privileged %v capadd %v secopt %v binds %v", info.State.Running, hc.Privileged, hc.CapAdd, hc.SecurityOpt, hc.Binds)
	}
	tcp := hc.PortBindings["80/tcp"]
	if len(tcp) != 1 || tcp[0].HostIP != "127.0.0.1" || tcp[0].HostPort != "18080" {
		t.Errorf("binding of 80/tcp = %+v, want 127.0.0.1:18080", tcp)
	}
	if _, ok := hc.PortBindings["53/udp"]; !ok {
		t.Errorf("port bindings %v lack 53/udp", hc.PortBindings)
	}
}

func TestCleanupRemovesEverythingOfTheRun(t *testing.T) {
	cli := testenv.RequireDocker(t)
	ctx := context.Background()
	var runID, stranger string
	t.Run("create", func(t *testing.T) {
		cli, id := testenv.Setup(t)
		runID = id
		net := testenv.CreateNetwork(t, cli, id, "net", testenv.NetworkOpts{})
		testenv.RunContainer(t, cli, id, testenv.ContainerSpec{Network: net, Start: true})
		testenv.RunContainer(t, cli, id, testenv.ContainerSpec{Network: net, Start: true})
		testenv.RunContainer(t, cli, id, testenv.ContainerSpec{Network: net}) // created only

		// A container without the label, attached to the run's network as
		// code under test might do: clean-up must detach it to remove the
		// network. It is removed by this test, after testenv's clean-up.
		resp, err := cli.ContainerCreate(ctx, &container.Config{Image: testenv.Image(t, cli)}, nil, nil, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		stranger = resp.ID
		if err := cli.NetworkConnect(ctx, net, stranger, nil); err != nil {
			t.Fatal(err)
		}
		if err := cli.ContainerStart(ctx, stranger, container.StartOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() {
		if stranger != "" {
			_ = cli.ContainerRemove(context.Background(), stranger, container.RemoveOptions{Force: true})
		}
	})
	if runID == "" {
		t.Fatal("subtest did not run")
	}
	assertNothingLabelled(t, cli, runID)
}

func assertNothingLabelled(t *testing.T, cli *client.Client, runID string) {
	t.Helper()
	ctx := context.Background()
	byLabel := filters.NewArgs(filters.Arg("label", testenv.Label+"="+runID))
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: byLabel})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := cli.NetworkList(ctx, network.ListOptions{Filters: byLabel})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 0 || len(ns) != 0 {
		t.Errorf("after clean-up of run %s: %d containers and %d networks left", runID, len(cs), len(ns))
	}
}
