package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"
)

// RestartDockerd restarts the Docker daemon and waits until it answers:
// with systemctl where systemd runs it, else by stopping the dockerd
// process and starting its command line again (in a session of its own,
// logging to $ZW_DOCKERD_LOG), as scripts/test.sh started it. Every
// container stops meanwhile: only for tests that have the host to
// themselves ([RequireAlone]).
func RestartDockerd(t testing.TB, cli *client.Client) {
	t.Helper()
	if exec.Command("systemctl", "is-active", "--quiet", "docker").Run() == nil {
		if out, err := exec.Command("systemctl", "restart", "docker").CombinedOutput(); err != nil {
			t.Fatalf("systemctl restart docker: %v\n%s", err, out)
		}
		waitDockerd(t, cli)
		return
	}
	startDockerd(t, cli, stopDockerd(t))
}

// RestartDockerdWith restarts the dockerd process with args appended to
// its command line (flags win over daemon.json: "--userland-proxy=false"),
// and restarts it with its own command line again when t ends. It needs a
// dockerd that scripts/test.sh (or a person) started, not systemd's.
func RestartDockerdWith(t testing.TB, cli *client.Client, args ...string) {
	t.Helper()
	if exec.Command("systemctl", "is-active", "--quiet", "docker").Run() == nil {
		t.Fatal("dockerd runs under systemd: restart it by hand with " + strings.Join(args, " "))
	}
	argv := stopDockerd(t)
	t.Cleanup(func() {
		stopDockerd(t)
		startDockerd(t, cli, argv)
		t.Logf("dockerd restarted as it was: %s", strings.Join(argv, " "))
	})
	startDockerd(t, cli, append(slices.Clone(argv), args...))
}

// stopDockerd stops the dockerd process and returns its command line.
func stopDockerd(t testing.TB) []string {
	t.Helper()
	out, err := exec.Command("pidof", "dockerd").Output()
	if err != nil {
		t.Fatalf("no dockerd process: %v", err)
	}
	pid, _ := strconv.Atoi(strings.Fields(string(out))[0])
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	argv := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return argv
		}
		if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && strings.Contains(string(stat), ") Z ") {
			return argv // a zombie: stopped, not yet reaped by its parent
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd (pid %d) has not stopped 30 s after SIGTERM", pid)
		}
		time.Sleep(50 * time.Millisecond) // polling, under the deadline
	}
}

// startDockerd starts argv in a session of its own, logging to
// $ZW_DOCKERD_LOG, and waits until the daemon answers.
func startDockerd(t testing.TB, cli *client.Client, argv []string) {
	t.Helper()
	logPath := os.Getenv("ZW_DOCKERD_LOG")
	if logPath == "" {
		logPath = "/var/log/zonewarden-dockerd.log"
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %v: %v", argv, err)
	}
	_ = cmd.Process.Release()
	waitDockerd(t, cli)
}

func waitDockerd(t testing.TB, cli *client.Client) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Ping(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd does not answer 60 s after its start: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // polling, under the deadline
	}
}
