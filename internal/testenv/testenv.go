// Package testenv gives integration tests a real Docker engine to work
// against: it checks that the tests may run (root, a daemon that answers),
// builds the local busybox test image, creates labelled networks and
// containers, runs commands in them, and removes everything a test created
// when the test ends, even when it fails.
//
// It owns only what carries the label [Label] with a test's run id (see
// [RunID]); it never touches other containers, networks or images on the
// host, and it never pulls from a registry: the test image is built
// FROM scratch out of the host's static busybox.
//
// It is a production package so that tests in every package can share it,
// but only tests import it. It holds no fakes: everything it returns is real.
//
// Whether a missing prerequisite (root, Docker, busybox) skips or fails a
// test is decided by [Required]: CI and scripts/test.sh set
// ZONEWARDEN_REQUIRE_DOCKER=1 (or CI=true) so that an integration test can
// never pass by being skipped there.
//
// The helpers report failures with t.Fatal, so call them from the test's own
// goroutine. They work with Docker Engine API 1.41 (Docker 20.10) and newer.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"
)

// Label is the key of the label every test resource carries; its value is
// the run id of the test that created the resource (see [RunID]).
const Label = "zonewarden.test"

// RequireEnv is the environment variable that, set to "1", makes a missing
// prerequisite fail a test instead of skipping it. CI=true does the same.
const RequireEnv = "ZONEWARDEN_REQUIRE_DOCKER"

// pingTimeout bounds the first contact with the daemon.
const pingTimeout = 10 * time.Second

// opTimeout bounds one helper's calls to the daemon (create, start, exec...).
const opTimeout = 2 * time.Minute

// Required reports whether a missing prerequisite must fail a test rather
// than skip it: true when ZONEWARDEN_REQUIRE_DOCKER=1 or CI=true.
func Required() bool {
	return os.Getenv(RequireEnv) == "1" || os.Getenv("CI") == "true"
}

// missing skips t, or fails it when [Required], because a prerequisite is
// not there.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (the test may not be skipped: %s=1 or CI=true)", msg, RequireEnv)
	}
	t.Skipf("skipped: %s (set %s=1 to make this a failure)", msg, RequireEnv)
}

// RequireRoot skips t unless the test runs as root; see [Required] for when
// it fails t instead.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "needs root (run the tests with sudo scripts/test.sh)")
	}
}

// RequireDocker returns a client for the Docker daemon named by the
// environment (DOCKER_HOST etc., else the local socket), after checking that
// the test runs as root and that the daemon answers a ping. Otherwise it
// skips t, or fails it when [Required]. The client negotiates the API
// version down to the daemon's and is closed when t ends.
func RequireDocker(t testing.TB) *client.Client {
	t.Helper()
	RequireRoot(t)
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		missing(t, "cannot configure a Docker client from the environment: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		missing(t, "no Docker daemon answers at %s: %v (start one with `dockerd >/tmp/dockerd.log 2>&1 &`, or run sudo scripts/test.sh, which does)", cli.DaemonHost(), err)
	}
	return cli
}

// runIDs maps each testing.TB to its run id.
var runIDs sync.Map

// RunID returns the run id of t: 8 hex digits, the same for every call with
// the same t and different for every test and subtest. Everything the test
// creates carries the label [Label]=<run id>, and its names start with
// "zw<run id>-" (see [Prefixed]).
func RunID(t testing.TB) string {
	if id, ok := runIDs.Load(t); ok {
		return id.(string)
	}
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	id, loaded := runIDs.LoadOrStore(t, hex.EncodeToString(b[:]))
	if !loaded {
		t.Cleanup(func() { runIDs.Delete(t) })
	}
	return id.(string)
}

// Prefixed returns the name a helper gives to a resource called name in run
// runID: "zw<runID>-<name>". Docker resolves these names as DNS names on
// user-defined networks.
func Prefixed(runID, name string) string {
	return "zw" + runID + "-" + name
}

// Setup is the usual start of an integration test: [RequireDocker], then
// [RunID] and [Cleanup] for t. It returns the client and the run id.
func Setup(t testing.TB) (*client.Client, string) {
	t.Helper()
	cli := RequireDocker(t)
	id := RunID(t)
	Cleanup(t, cli, id)
	return cli, id
}

// AloneEnv, set to 1, runs the tests that need the host to themselves
// (see [RequireAlone]); scripts/test.sh sets it in a step of its own,
// after the other tests, one package at a time.
const AloneEnv = "ZONEWARDEN_ALONE"

// RequireAlone skips t unless [AloneEnv] is set: t needs the host to
// itself — it restarts dockerd, measures latency that other tests' load
// would distort, or shows Docker's behaviour, which other tests' network
// changes disturb (Docker deletes and re-inserts its isolation jumps when
// a network is created: for a moment, containers of different networks
// reach each other).
func RequireAlone(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(AloneEnv) != "1" {
		t.Skipf("%s: set %s=1 to run it (scripts/test.sh does, in a step of its own)", why, AloneEnv)
	}
}

// RequireEngine skips t, naming the engine, unless the daemon cli talks
// to is Docker major or later: t tests what older engines do not have
// (gateway modes came with 27). scripts/test.sh runs every test on
// Docker 20.10 and on 28.5, so such a test runs on the second.
func RequireEngine(t testing.TB, cli *client.Client, major int, why string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	v, err := cli.ServerVersion(ctx)
	if err != nil {
		t.Fatalf("asking the Docker daemon its version: %v", err)
	}
	m, _, _ := strings.Cut(v.Version, ".")
	if n, err := strconv.Atoi(m); err != nil || n < major {
		t.Skipf("Docker %s: %s needs Docker %d or later (scripts/test.sh runs it on its 28.5 engine)", v.Version, why, major)
	}
}
