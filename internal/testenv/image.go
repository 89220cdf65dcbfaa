package testenv

import (
	"archive/tar"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
)

// BusyboxPath is where Debian's busybox-static package installs the static
// busybox that the test image is made of.
const BusyboxPath = "/bin/busybox"

// ImageRepo is the repository of the test image; its tag is a hash of the
// busybox binary and of the image recipe.
const ImageRepo = "zonewarden-test/busybox"

// ImageLabel is the label the test image carries. It is not [Label]: the
// image outlives the runs and is reused by later ones.
const ImageLabel = "zonewarden.test.image"

// dockerfile is the recipe of the test image. rootfs.tar holds /bin/busybox,
// a symlink in /bin for every applet, /etc/passwd, /etc/group and /tmp.
// SIGKILL as stop signal: the default command does not handle SIGTERM as
// PID 1, and a test should not wait 10 s for every stop.
const dockerfile = `FROM scratch
ADD rootfs.tar /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
STOPSIGNAL SIGKILL
LABEL ` + ImageLabel + `=busybox
CMD ["sleep", "3600"]
`

var image struct {
	once sync.Once
	tag  string
	err  error
}

// Image returns the tag of the local test image, building it on first use
// in this process unless an image with that tag exists already (built by an
// earlier run or by another test binary running at the same time).
//
// The image is FROM scratch: Debian's static busybox as /bin/busybox with all
// its applets linked in /bin (sh, sleep, nc, ping, wget, ip, httpd, ...) and
// the default command `sleep 3600`, so a container stays up. It is built
// through the Engine API from an in-memory context; no registry is needed.
// (Debian's busybox 1.35 wget crashes with -T; bound it with the timeout
// applet instead: `timeout 3 wget -q -O - URL`.)
// A missing or dynamically linked busybox skips t (fails it when [Required])
// and names the package to install.
func Image(t testing.TB, cli *client.Client) string {
	t.Helper()
	if err := checkBusybox(); err != nil {
		missing(t, "%v", err)
	}
	image.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		image.tag, image.err = ensureImage(ctx, cli)
	})
	if image.err != nil {
		t.Fatalf("test image: %v", image.err)
	}
	return image.tag
}

// checkBusybox reports why BusyboxPath cannot go into a FROM scratch image.
func checkBusybox() error {
	f, err := elf.Open(BusyboxPath)
	if err != nil {
		return fmt.Errorf("the test image needs a static busybox at %s: %w (apt-get install -y busybox-static)", BusyboxPath, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked and cannot run in a FROM scratch image (apt-get install -y busybox-static)", BusyboxPath)
		}
	}
	return nil
}

// ensureImage builds the test image unless its tag exists, holding a file
// lock so that concurrent test binaries build it once.
func ensureImage(ctx context.Context, cli *client.Client) (string, error) {
	busybox, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return "", err
	}
	applets, err := busyboxApplets()
	if err != nil {
		return "", err
	}
	sum := sha256.New()
	sum.Write(busybox)
	sum.Write([]byte(dockerfile))
	sum.Write([]byte(strings.Join(applets, "\n")))
	tag := ImageRepo + ":" + hex.EncodeToString(sum.Sum(nil))[:12]

	return tag, buildOnce(ctx, cli, tag, func() ([]byte, error) { return buildContext(busybox, applets) })
}

// buildOnce builds the image tag from the build context that makeContext
// returns, unless the tag exists. It holds a file lock meanwhile, so that
// concurrent test binaries build each image once.
func buildOnce(ctx context.Context, cli *client.Client, tag string, makeContext func() ([]byte, error)) error {
	unlock, err := lockFile(ctx, filepath.Join(os.TempDir(), "zonewarden-testenv-image.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := cli.ImageInspect(ctx, tag); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspecting %s: %w", tag, err)
	}
	buildCtx, err := makeContext()
	if err != nil {
		return err
	}
	resp, err := cli.ImageBuild(ctx, bytes.NewReader(buildCtx), build.ImageBuildOptions{
		Tags:        []string{tag},
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1, // BuildKit over the API needs a session; nothing here needs it
	})
	if err != nil {
		return fmt.Errorf("building %s: %w", tag, err)
	}
	defer resp.Body.Close()
	if err := readBuildOutput(resp.Body); err != nil {
		return fmt.Errorf("building %s: %w", tag, err)
	}
	if _, err := cli.ImageInspect(ctx, tag); err != nil {
		return fmt.Errorf("building %s: the build finished but the image is not there: %w", tag, err)
	}
	return nil
}

// busyboxApplets lists the applets of BusyboxPath, without "busybox".
func busyboxApplets() ([]string, error) {
	out, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", BusyboxPath, err)
	}
	var applets []string
	for _, name := range strings.Fields(string(out)) {
		if name != "busybox" && !strings.Contains(name, "/") {
			applets = append(applets, name)
		}
	}
	return applets, nil
}

// buildContext returns the build context: the Dockerfile and rootfs.tar.
func buildContext(busybox []byte, applets []string) ([]byte, error) {
	var rootfs bytes.Buffer
	tw := tar.NewWriter(&rootfs)
	mtime := time.Unix(0, 0)
	entries := []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777},
	}
	for _, h := range entries {
		h.ModTime = mtime
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"bin/busybox", 0o755, busybox},
		{"etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{"etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")},
	}
	for _, f := range files {
		if err := writeFile(tw, f.name, f.mode, f.data, mtime); err != nil {
			return nil, err
		}
	}
	for _, a := range applets {
		h := &tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777, ModTime: mtime}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}

	var out bytes.Buffer
	tw = tar.NewWriter(&out)
	if err := writeFile(tw, "Dockerfile", 0o644, []byte(dockerfile), mtime); err != nil {
		return nil, err
	}
	if err := writeFile(tw, "rootfs.tar", 0o644, rootfs.Bytes(), mtime); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func writeFile(tw *tar.Writer, name string, mode int64, data []byte, mtime time.Time) error {
	h := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(data)), ModTime: mtime}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// readBuildOutput drains the JSON message stream of a build and returns the
// error it reports, with the last lines of output for context.
func readBuildOutput(r io.Reader) error {
	dec := json.NewDecoder(r)
	var tail []string
	for {
		var msg struct {
			Stream      string `json:"stream"`
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading build output: %w", err)
		}
		if line := strings.TrimSpace(msg.Stream); line != "" {
			tail = append(tail, line)
			if len(tail) > 10 {
				tail = tail[1:]
			}
		}
		if text := cmp.Or(msg.ErrorDetail.Message, msg.Error); text != "" {
			return fmt.Errorf("%s (last output: %s)", text, strings.Join(tail, " | "))
		}
	}
}

// lockFile takes an exclusive flock on path, creating it, and returns the
// function that releases it. It waits for another holder until ctx ends.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("image build lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("image build lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("image build lock %s: another test binary held it too long: %w", path, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// BuildImage makes sure the test image exists on the daemon cli talks to
// (building it there unless it does) and returns its tag: for daemons
// other than the host's, such as a Swarm test bed's nodes (see
// [Image] for the host's).
func BuildImage(ctx context.Context, cli *client.Client) (string, error) {
	if err := checkBusybox(); err != nil {
		return "", err
	}
	return ensureImage(ctx, cli)
}
