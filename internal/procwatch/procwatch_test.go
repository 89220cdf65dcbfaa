package procwatch

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zonewarden/zonewarden/internal/testenv"
)

const id = "4c1f0e7d8a9b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5"

func TestContainerOf(t *testing.T) {
	other := strings.Repeat("ab", 32)
	for _, tc := range []struct{ name, cgroup, want string }{
		{"cgroupfs, hybrid", "9:pids:/docker/" + id + "\n0::/docker/" + id + "\n", id},
		{"systemd, v2", "0::/system.slice/docker-" + id + ".scope\n", id},
		{"cgroup parent", "0::/tenants/blue/" + id + "\n", id},
		{"v1 only", "4:memory:/docker/" + id + "\n1:name=systemd:/docker/" + id + "\n", id},
		{"a made-up cgroup below its own does not pass for another container", "0::/docker/" + id + "/" + other + "\n", id},
		{"unified line first", "3:cpu:/docker/" + other + "\n0::/docker/" + id + "\n", id},
		{"not a container", "0::/user.slice/user-0.slice/session-1.scope\n", ""},
		{"too short", "0::/docker/" + id[:12] + "\n", ""},
		{"upper case is not Docker's", "0::/docker/" + strings.ToUpper(id) + "\n", ""},
		{"empty", "", ""},
	} {
		if got := ContainerOf([]byte(tc.cgroup)); got != tc.want {
			t.Errorf("%s: ContainerOf(%q) = %q, want %q", tc.name, tc.cgroup, got, tc.want)
		}
	}
}

// TestWatch runs a process that moves itself into a cgroup of the test's
// own named like a container's, then execs: the watch names it, from the
// real proc connector, and names no process outside.
func TestWatch(t *testing.T) {
	testenv.RequireRoot(t)
	root := cgroup2Mount(t)
	dir := filepath.Join(root, fmt.Sprintf("zwprocwatch%d", os.Getpid()), id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("cannot make a cgroup of the test's own: %v", err)
	}
	t.Cleanup(func() {
		os.Remove(dir)
		os.Remove(filepath.Dir(dir))
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan Process, 64)
	done := make(chan error, 1)
	w, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		done <- w.Run(ctx, func(p Process) {
			select {
			case got <- p:
			default:
			}
		}, func() {})
	}()
	cmd := exec.Command("sh", "-c", "echo $$ > "+filepath.Join(dir, "cgroup.procs")+" && exec sleep 2")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case p := <-got:
			if p.Container != id {
				continue // a real container of someone else's
			}
			if p.PID != cmd.Process.Pid {
				t.Fatalf("process %d in the test's cgroup, want %d", p.PID, cmd.Process.Pid)
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run after cancel: %v", err)
			}
			return
		case err := <-done:
			t.Fatalf("Run ended: %v", err)
		case <-deadline:
			t.Fatal("no event for the process in the test's cgroup within 5 s")
		}
	}
}

// cgroup2Mount returns where the unified cgroup hierarchy is mounted.
func cgroup2Mount(t *testing.T) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		// ... mount-point ... - fstype source options
		fields := strings.Fields(s.Text())
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" {
				return fields[4]
			}
		}
	}
	t.Fatal("no cgroup2 hierarchy mounted")
	return ""
}
