package dockerapi

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
)

// NetworkSpec describes a network to create.
type NetworkSpec struct {
	Name       string
	Internal   bool
	DisableICC bool
	IPv6       bool
	Subnets    []netip.Prefix // empty: Docker picks
	Labels     map[string]string
	// Overlay makes a Swarm overlay network (through a manager) instead
	// of a bridge, with IPsec between nodes when Encrypted.
	Overlay, Encrypted bool
}

// CreateNetwork creates a bridge (or overlay) network and returns its id.
func (c *Client) CreateNetwork(ctx context.Context, s NetworkSpec) (string, error) {
	opts := network.CreateOptions{
		Driver:   "bridge",
		Internal: s.Internal,
		Labels:   s.Labels,
		Options:  map[string]string{},
	}
	if s.Overlay {
		opts.Driver = "overlay"
		if s.Encrypted {
			opts.Options["encrypted"] = ""
		}
	}
	if s.DisableICC {
		opts.Options["com.docker.network.bridge.enable_icc"] = "false"
	}
	if s.IPv6 {
		opts.EnableIPv6 = &s.IPv6
	}
	if len(s.Subnets) > 0 {
		opts.IPAM = &network.IPAM{Driver: "default"}
		for _, p := range s.Subnets {
			opts.IPAM.Config = append(opts.IPAM.Config, network.IPAMConfig{Subnet: p.String()})
		}
	}
	resp, err := c.api.NetworkCreate(ctx, s.Name, opts)
	if err != nil {
		return "", fmt.Errorf("create network %s: %w", s.Name, err)
	}
	return resp.ID, nil
}

// ContainerSpec describes a container to create.
type ContainerSpec struct {
	Name  string
	Image string
	Cmd   []string
	// Networks are attached in order; the first one is the container's
	// network mode unless NetworkMode is set (host, none, container:X).
	Networks    []string
	NetworkMode string
	Ports       []inventory.PortBinding
	Expose      []l4.Port
	Privileged  bool
	ReadOnly    bool
	CapAdd      []string
	CapDrop     []string
	SecurityOpt []string
	Binds       []string
	Labels      map[string]string
}

// CreateContainer creates the container, attaches it to every network of
// the spec, and returns its id. It does not start it.
func (c *Client) CreateContainer(ctx context.Context, s ContainerSpec) (string, error) {
	cfg := &container.Config{
		Image:        s.Image,
		Cmd:          s.Cmd,
		Labels:       s.Labels,
		ExposedPorts: nat.PortSet{},
	}
	hc := &container.HostConfig{
		Privileged:     s.Privileged,
		ReadonlyRootfs: s.ReadOnly,
		CapAdd:         s.CapAdd,
		CapDrop:        s.CapDrop,
		SecurityOpt:    s.SecurityOpt,
		Binds:          s.Binds,
		PortBindings:   nat.PortMap{},
	}
	for _, p := range s.Expose {
		cfg.ExposedPorts[nat.Port(p.String())] = struct{}{}
	}
	for _, b := range s.Ports {
		port := nat.Port(b.ContainerPort.String())
		cfg.ExposedPorts[port] = struct{}{}
		hb := nat.PortBinding{HostPort: strconv.Itoa(int(b.HostPort))}
		if b.HostPort == 0 {
			hb.HostPort = ""
		}
		if b.HostIP.IsValid() {
			hb.HostIP = b.HostIP.String()
		}
		hc.PortBindings[port] = append(hc.PortBindings[port], hb)
	}
	var first string
	switch {
	case s.NetworkMode != "":
		hc.NetworkMode = container.NetworkMode(s.NetworkMode)
	case len(s.Networks) > 0:
		first = s.Networks[0]
		hc.NetworkMode = container.NetworkMode(first)
	}
	resp, err := c.api.ContainerCreate(ctx, cfg, hc, nil, nil, s.Name)
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", s.Name, err)
	}
	for _, n := range s.Networks {
		if n == first {
			continue
		}
		if err := c.api.NetworkConnect(ctx, n, resp.ID, nil); err != nil {
			return resp.ID, fmt.Errorf("connect %s to network %s: %w", s.Name, n, err)
		}
	}
	return resp.ID, nil
}

// StartContainer starts a created container.
func (c *Client) StartContainer(ctx context.Context, id string) error {
	if err := c.api.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	return nil
}

// RemoveLabelled removes every container (forcibly) and then every network
// that carries the label key=value. Docker 20.10 sometimes reports a network
// as still having endpoints just after its containers went away; removal is
// retried until ctx's deadline (or 20 s), then the remaining networks are
// reported.
func (c *Client) RemoveLabelled(ctx context.Context, key, value string) error {
	f := filters.NewArgs(filters.Arg("label", key+"="+value))
	cs, err := c.api.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return c.explain(err)
	}
	var errs []error
	for _, ct := range cs {
		err := c.api.ContainerRemove(ctx, ct.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !errdefsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", strings.TrimPrefix(first(ct.Names), "/"), err))
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	for {
		nets, err := c.api.NetworkList(ctx, network.ListOptions{Filters: f})
		if err != nil {
			return c.explain(err)
		}
		var left []string
		for _, n := range nets {
			if err := c.api.NetworkRemove(ctx, n.ID); err != nil && !errdefsNotFound(err) {
				left = append(left, fmt.Sprintf("%s (%v)", n.Name, err))
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("networks not removed: %s; restarting dockerd clears stale endpoints", strings.Join(left, "; ")))
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return errors.Join(errs...)
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// ImageExists reports whether the image reference is present locally.
func (c *Client) ImageExists(ctx context.Context, ref string) bool {
	return c.ImageID(ctx, ref) != ""
}

// ImageID returns the id of the local image ref, or "" when there is none.
func (c *Client) ImageID(ctx context.Context, ref string) string {
	img, err := c.api.ImageInspect(ctx, ref)
	if err != nil {
		return ""
	}
	return img.ID
}

// BuildFile is one file of an in-memory build context.
type BuildFile struct {
	Name string
	Mode int64
	Data []byte
}

// BuildImage builds an image from an in-memory context (a Dockerfile and
// files) and tags it with every tag. It needs no registry when the
// Dockerfile starts FROM scratch.
func (c *Client) BuildImage(ctx context.Context, dockerfile string, files []BuildFile, tags []string, labels map[string]string) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	all := append([]BuildFile{{Name: "Dockerfile", Mode: 0o644, Data: []byte(dockerfile)}}, files...)
	for _, f := range all {
		if err := tw.WriteHeader(&tar.Header{Name: f.Name, Mode: f.Mode, Size: int64(len(f.Data))}); err != nil {
			return err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	resp, err := c.api.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags:        tags,
		Labels:      labels,
		Remove:      true,
		ForceRemove: true,
		Dockerfile:  "Dockerfile",
	})
	if err != nil {
		return fmt.Errorf("build image %s: %w", strings.Join(tags, ", "), c.explain(err))
	}
	defer resp.Body.Close()
	// The build streams JSON messages; an error arrives as one of them.
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("build image %s: reading the build output: %w", strings.Join(tags, ", "), err)
		}
		if msg.Error != "" {
			return fmt.Errorf("build image %s: %s", strings.Join(tags, ", "), strings.TrimSpace(msg.Error))
		}
	}
}

// ConnectNetwork attaches a container to a network.
func (c *Client) ConnectNetwork(ctx context.Context, network, container string) error {
	if err := c.api.NetworkConnect(ctx, network, container, nil); err != nil {
		return fmt.Errorf("connect %s to network %s: %w", container, network, err)
	}
	return nil
}

// DisconnectNetwork detaches a container from a network.
func (c *Client) DisconnectNetwork(ctx context.Context, network, container string) error {
	if err := c.api.NetworkDisconnect(ctx, network, container, false); err != nil {
		return fmt.Errorf("disconnect %s from network %s: %w", container, network, err)
	}
	return nil
}

// RemoveNetwork removes a network that has no containers left.
func (c *Client) RemoveNetwork(ctx context.Context, name string) error {
	if err := c.api.NetworkRemove(ctx, name); err != nil {
		return fmt.Errorf("remove network %s: %w", name, err)
	}
	return nil
}
