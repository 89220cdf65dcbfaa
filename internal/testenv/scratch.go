package testenv

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"
)

// ScratchRepo is the repository of the tool-less test image; its tag is a
// hash of its one binary.
const ScratchRepo = "zonewarden-test/scratch"

// idlePackage is the program the tool-less image runs.
const idlePackage = "github.com/zonewarden/zonewarden/internal/testenv/idle"

// scratchDockerfile is the recipe of the tool-less image: one static
// binary that waits to be stopped, and nothing else.
const scratchDockerfile = `FROM scratch
COPY idle /idle
STOPSIGNAL SIGKILL
LABEL ` + ImageLabel + `=scratch
CMD ["/idle"]
`

var scratchImage struct {
	once sync.Once
	tag  string
	err  error
}

// ScratchImage returns the tag of a test image that holds nothing but one
// static Go binary (/idle, which waits to be stopped): no shell, no
// busybox, no ping or nc, like a distroless image. Tests use it to show
// that what zonewarden does from a container's network namespace needs
// nothing inside the container. The binary is built with `go build`
// (CGO_ENABLED=0) on first use in this process; the image is reused when
// its tag exists.
func ScratchImage(t testing.TB, cli *client.Client) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		missing(t, "the tool-less test image is built with the go command: %v", err)
	}
	scratchImage.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		scratchImage.tag, scratchImage.err = ensureScratchImage(ctx, cli)
	})
	if scratchImage.err != nil {
		t.Fatalf("tool-less test image: %v", scratchImage.err)
	}
	return scratchImage.tag
}

func ensureScratchImage(ctx context.Context, cli *client.Client) (string, error) {
	dir, err := os.MkdirTemp("", "zonewarden-idle-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "idle")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, idlePackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", idlePackage, err, out)
	}
	if err := isStaticELF(bin); err != nil {
		return "", err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(append(data, scratchDockerfile...))
	tag := ScratchRepo + ":" + hex.EncodeToString(sum[:])[:12]

	return tag, buildOnce(ctx, cli, tag, func() ([]byte, error) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		mtime := time.Unix(0, 0)
		if err := writeFile(tw, "Dockerfile", 0o644, []byte(scratchDockerfile), mtime); err != nil {
			return nil, err
		}
		if err := writeFile(tw, "idle", 0o755, data, mtime); err != nil {
			return nil, err
		}
		if err := tw.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	})
}

// isStaticELF reports why path is not a static executable, or nil.
func isStaticELF(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked and cannot run in a FROM scratch image", path)
		}
	}
	return nil
}
