// Package benchhost is what the benchmark programs that build a Docker
// host share: a client that answers, a run id, and the busybox "sleep"
// image they run.
package benchhost

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/zonewarden/zonewarden/internal/inventory/dockerapi"
)

// Image is the benchmark image: Debian's static busybox, sleeping.
const Image = "zonewarden-bench/busybox:1"

// Open returns a client for the local Docker daemon once it answers, and a
// fresh run id (8 hex digits) to label and name what the run creates.
func Open(ctx context.Context) (*dockerapi.Client, string, error) {
	dc, err := dockerapi.New("")
	if err != nil {
		return nil, "", err
	}
	if err := dc.Ping(ctx); err != nil {
		dc.Close()
		return nil, "", err
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return dc, hex.EncodeToString(b[:]), nil
}

// EnsureImage builds Image from /bin/busybox unless it exists, labelled
// label=image.
func EnsureImage(ctx context.Context, dc *dockerapi.Client, label string) error {
	if dc.ImageExists(ctx, Image) {
		return nil
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("needs Debian's busybox-static: %w", err)
	}
	return dc.BuildImage(ctx, "FROM scratch\nCOPY busybox /bin/busybox\nSTOPSIGNAL SIGKILL\nCMD [\"/bin/busybox\", \"sleep\", \"2147483647\"]\n",
		[]dockerapi.BuildFile{{Name: "busybox", Mode: 0o755, Data: bb}}, []string{Image}, map[string]string{label: "image"})
}
