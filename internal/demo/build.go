package demo

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/zonewarden/zonewarden/internal/inventory/dockerapi"
)

// ImagePayload is what the demo image runs: a static binary and the
// command that keeps it idle.
type ImagePayload struct {
	Binary []byte
	// Path is where the binary goes in the image ("/payload" when
	// empty): busybox picks its applet from it, so it is "/sleep" there.
	Path string
	Cmd  []string
}

func (p ImagePayload) path() string {
	if p.Path == "" {
		return "/payload"
	}
	return p.Path
}

// FindPayload picks a static binary for the FROM-scratch demo image: the
// running zonewarden when it is statically linked, else Debian's static
// busybox. Nothing is pulled from a registry.
func FindPayload() (ImagePayload, error) {
	if exe, err := os.Executable(); err == nil && isStatic(exe) {
		data, err := os.ReadFile(exe)
		if err == nil {
			return ImagePayload{Binary: data, Cmd: []string{"/payload", "idle"}}, nil
		}
	}
	for _, bb := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if isStatic(bb) {
			data, err := os.ReadFile(bb)
			if err == nil {
				return ImagePayload{Binary: data, Path: "/sleep", Cmd: []string{"/sleep", "2147483647"}}, nil
			}
		}
	}
	return ImagePayload{}, errors.New("the demo image needs a static binary: build zonewarden with CGO_ENABLED=0 (scripts/demo.sh does) or install busybox-static")
}

// isStatic reports whether path is an ELF executable without an interpreter.
func isStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// Built is what Build made.
type Built struct {
	RunID      string
	Networks   []string
	Containers []string
	Started    int
}

// Build creates h on the Docker engine behind dc: the demo image (once),
// the networks and the containers, all labelled Label=runID. A name that
// an earlier kept demo left behind is removed first; a name that belongs to
// something else stops the build before anything is created.
func Build(ctx context.Context, dc *dockerapi.Client, h Host, runID string, payload ImagePayload) (*Built, error) {
	sum := sha256.Sum256(append([]byte(payload.path()+"\x00"), payload.Binary...))
	hash := hex.EncodeToString(sum[:6])
	if err := ensureImage(ctx, dc, payload, hash); err != nil {
		return nil, err
	}
	if err := checkNames(ctx, dc, h); err != nil {
		return nil, err
	}
	b := &Built{RunID: runID}
	for _, n := range h.Networks {
		if _, err := dc.CreateNetwork(ctx, dockerapi.NetworkSpec{
			Name: n.Name, Internal: n.Internal, Labels: map[string]string{Label: runID},
		}); err != nil {
			return b, err
		}
		b.Networks = append(b.Networks, n.Name)
	}
	for _, c := range h.Containers {
		id, err := dc.CreateContainer(ctx, dockerapi.ContainerSpec{
			Name:        c.Name,
			Image:       c.Image,
			Cmd:         payload.Cmd,
			Networks:    c.Networks,
			NetworkMode: c.NetworkMode,
			Ports:       c.Ports,
			Expose:      c.Expose,
			Privileged:  c.Privileged,
			ReadOnly:    c.ReadOnly,
			CapAdd:      c.CapAdd,
			CapDrop:     c.CapDrop,
			SecurityOpt: c.SecurityOpt,
			Binds:       c.Binds,
			Labels:      c.labels(runID),
		})
		if id != "" {
			b.Containers = append(b.Containers, c.Name)
		}
		if err != nil {
			return b, err
		}
		if c.Start {
			if err := dc.StartContainer(ctx, id); err != nil {
				return b, fmt.Errorf("%w (is host port %s free?)", err, hostPorts(c))
			}
			b.Started++
		}
	}
	return b, nil
}

func hostPorts(c Container) string {
	var ps []string
	for _, p := range c.Ports {
		ps = append(ps, fmt.Sprint(p.HostPort))
	}
	if len(ps) == 0 {
		return "none"
	}
	return strings.Join(ps, ", ")
}

// ensureImage builds the demo image under every demo tag unless they all
// name it already (a demo run with another payload, busybox or a static
// zonewarden, moves the tags to its own image).
func ensureImage(ctx context.Context, dc *dockerapi.Client, payload ImagePayload, hash string) error {
	marker := "zonewarden-demo/payload:" + hash
	tags := append([]string{marker}, Images...)
	tags = append(tags, "zonewarden-demo/shop-api:2.4-rc1")
	if id := dc.ImageID(ctx, marker); id != "" && !slices.ContainsFunc(tags, func(t string) bool { return dc.ImageID(ctx, t) != id }) {
		return nil
	}
	dockerfile := fmt.Sprintf("FROM scratch\nCOPY payload %s\nCMD [%q]\n", payload.path(), payload.path())
	return dc.BuildImage(ctx, dockerfile,
		[]dockerapi.BuildFile{{Name: "payload", Mode: 0o755, Data: payload.Binary}},
		tags, map[string]string{Label: "image"})
}

// checkNames refuses to touch containers or networks that share a demo
// name but were not made by a demo, and removes leftovers of kept demos.
func checkNames(ctx context.Context, dc *dockerapi.Client, h Host) error {
	snap, err := dc.Snapshot(ctx)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, n := range h.Networks {
		want["network "+n.Name] = true
	}
	for _, c := range h.Containers {
		want["container "+c.Name] = true
	}
	leftover := map[string]bool{}
	var clash []string
	for _, n := range snap.Networks {
		if want["network "+n.Name] {
			if v, ok := n.Labels[Label]; ok {
				leftover[v] = true
			} else {
				clash = append(clash, "network "+n.Name)
			}
		}
	}
	for _, c := range snap.Containers {
		if want["container "+c.Name] {
			if v, ok := c.Labels[Label]; ok {
				leftover[v] = true
			} else {
				clash = append(clash, "container "+c.Name)
			}
		}
	}
	if len(clash) > 0 {
		return fmt.Errorf("the demo would reuse names that already exist on this host: %s; rename or remove them, or run the demo on another host (--docker-host)", strings.Join(clash, ", "))
	}
	for id := range leftover {
		if err := dc.RemoveLabelled(ctx, Label, id); err != nil {
			return fmt.Errorf("removing an earlier demo (label %s=%s): %w", Label, id, err)
		}
	}
	return nil
}
