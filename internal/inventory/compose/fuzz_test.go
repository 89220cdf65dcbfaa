package compose_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/inventory/compose"
)

// FuzzLoad checks that any compose file either loads into a valid snapshot
// or fails with one line naming a file, and never panics.
func FuzzLoad(f *testing.F) {
	err := filepath.WalkDir(td("."), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		data, err := os.ReadFile(path)
		if err == nil {
			f.Add(data)
		}
		return err
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file := filepath.Join(t.TempDir(), "compose.yaml")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		snap, err := compose.Load(context.Background(), []string{file}, compose.Options{ProjectName: "fuzz", Env: []string{}})
		if err != nil {
			var de *inventory.DecodeError
			if !errors.As(err, &de) || de.File == "" {
				t.Fatalf("error %q (%T) names no file", err, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if err := snap.Validate(); err != nil {
			t.Fatalf("loaded snapshot is invalid: %v", err)
		}
	})
}
