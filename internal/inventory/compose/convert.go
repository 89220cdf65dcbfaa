package compose

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
)

// Labels and options compose and Docker put on what they create.
const (
	labelComposeNetwork = "com.docker.compose.network"
	optionEnableICC     = "com.docker.network.bridge.enable_icc"
	optionBridgeName    = "com.docker.network.bridge.name"
	// dockerSocket is what use_api_socket mounts into the container.
	dockerSocket = "/var/run/docker.sock"
)

// Bounds on what one project may describe, so that a hostile file
// ("scale: 100000000", port ranges times replicas) cannot exhaust memory.
// Both are far beyond what one Docker host runs.
const (
	maxContainers   = 10_000
	maxPortBindings = 1 << 20
)

// convert turns a loaded compose project into the host it would create.
func convert(p *types.Project) (*inventory.Snapshot, error) {
	snap := &inventory.Snapshot{Version: inventory.SchemaVersion}
	for _, key := range slices.Sorted(maps.Keys(p.Networks)) {
		snap.Networks = append(snap.Networks, convertNetwork(p.Name, key, p.Networks[key]))
	}
	names, err := containerNames(p)
	if err != nil {
		return nil, err
	}
	bindings := 0
	for _, svcName := range p.ServiceNames() {
		svc := p.Services[svcName]
		for _, name := range names[svcName] {
			c, err := convertContainer(p, svc, name, names)
			if err != nil {
				return nil, fmt.Errorf("services.%s.%w", svcName, err)
			}
			if bindings += len(c.Ports); bindings > maxPortBindings {
				return nil, fmt.Errorf("services.%s.ports: the project publishes more than %d ports in all: narrow the port ranges", svcName, maxPortBindings)
			}
			snap.Containers = append(snap.Containers, c)
		}
	}
	addJoinedNetworks(snap)
	inventory.Sort(snap)
	return snap, nil
}

// convertNetwork describes one network of the project.
func convertNetwork(project, key string, cfg types.NetworkConfig) inventory.Network {
	if cfg.External {
		return existingNetwork(cfg.Name)
	}
	n := inventory.Network{Name: cfg.Name, Driver: cfg.Driver, ICC: true}
	if n.Driver == "" {
		n.Driver = "bridge"
	}
	n.Internal = cfg.Internal
	n.EnableIPv6 = cfg.EnableIPv6 != nil && *cfg.EnableIPv6
	if len(cfg.DriverOpts) > 0 {
		n.Options = maps.Clone(map[string]string(cfg.DriverOpts))
	}
	if v, ok := cfg.DriverOpts[optionEnableICC]; ok {
		if icc, err := strconv.ParseBool(v); err == nil {
			n.ICC = icc
		}
	}
	if n.Driver == "bridge" {
		n.Bridge = cfg.DriverOpts[optionBridgeName]
	}
	for _, pool := range cfg.Ipam.Config {
		if pool == nil {
			continue
		}
		prefix, err := netip.ParsePrefix(pool.Subnet)
		if err != nil {
			continue // an IPAM driver's own notation; Docker decides
		}
		s := inventory.Subnet{Prefix: prefix}
		if gw, err := netip.ParseAddr(pool.Gateway); err == nil {
			s.Gateway = gw
		}
		n.Subnets = append(n.Subnets, s)
	}
	n.Labels = map[string]string{
		inventory.LabelComposeProject: project,
		labelComposeNetwork:           key,
	}
	maps.Copy(n.Labels, cfg.Labels)
	return n
}

// containerNames lists the containers of each service, in replica order,
// named as docker compose names them. A service with scale 0, or run by a
// provider instead of Docker, has none.
func containerNames(p *types.Project) (map[string][]string, error) {
	type owner struct {
		service  string
		explicit bool // named by container_name
	}
	names := make(map[string][]string, len(p.Services))
	owners := make(map[string]owner)
	for _, svcName := range p.ServiceNames() {
		svc := p.Services[svcName]
		if svc.Provider != nil {
			continue
		}
		if len(owners)+svc.GetScale() > maxContainers {
			return nil, fmt.Errorf("services.%s: the project asks for more than %d containers in all: lower scale or deploy.replicas", svcName, maxContainers)
		}
		for i := 1; i <= svc.GetScale(); i++ {
			name := svc.ContainerName
			if name == "" {
				name = fmt.Sprintf("%s-%s-%d", p.Name, svcName, i)
			}
			if o, taken := owners[name]; taken {
				// Point at a container_name: that is the one to change.
				path, other := "services."+svcName, o.service
				switch {
				case svc.ContainerName != "":
					path += ".container_name"
				case o.explicit:
					path, other = "services."+o.service+".container_name", svcName
				}
				return nil, fmt.Errorf("%s: container name %q is also used by service %s: container names must be unique on a host (change container_name)", path, name, other)
			}
			owners[name] = owner{service: svcName, explicit: svc.ContainerName != ""}
			names[svcName] = append(names[svcName], name)
		}
	}
	return names, nil
}

func convertContainer(p *types.Project, svc types.ServiceConfig, name string, names map[string][]string) (inventory.Container, error) {
	c := inventory.Container{
		Name:           name,
		Image:          svc.Image,
		State:          "defined",
		Privileged:     svc.Privileged,
		ReadOnlyRootfs: svc.ReadOnly,
		CapAdd:         slices.Clone(svc.CapAdd),
		CapDrop:        slices.Clone(svc.CapDrop),
		SecurityOpt:    slices.Clone(svc.SecurityOpt),
		User:           svc.User,
		UTSMode:        svc.Uts,
	}
	if c.Image == "" {
		c.Image = p.Name + "-" + svc.Name // what docker compose tags a build
	}
	c.Labels = map[string]string{}
	maps.Copy(c.Labels, svc.Labels)
	c.Labels[inventory.LabelComposeProject] = p.Name
	c.Labels[inventory.LabelComposeService] = svc.Name

	var err error
	if c.PidMode, err = namespaceMode("pid", svc.Pid, names); err != nil {
		return c, err
	}
	if c.IpcMode, err = namespaceMode("ipc", svc.Ipc, names); err != nil {
		return c, err
	}
	if svc.NetworkMode != "" {
		c.NetworkMode, err = namespaceMode("network_mode", svc.NetworkMode, names)
		if err != nil {
			return c, err
		}
		if joinsDefaultBridge(svc.NetworkMode) {
			c.Endpoints = []inventory.Endpoint{{Network: inventory.DefaultBridge}}
		} else if isNetworkName(svc.NetworkMode) {
			c.Endpoints = []inventory.Endpoint{{Network: svc.NetworkMode}}
		}
	} else {
		if c.Endpoints, err = endpoints(p, svc, name); err != nil {
			return c, err
		}
		c.NetworkMode = primaryNetwork(p, svc)
	}

	for i, pc := range svc.Ports {
		bindings, err := portBindings(pc)
		if err != nil {
			return c, fmt.Errorf("ports[%d]: %w", i, err)
		}
		if c.Ports = append(c.Ports, bindings...); len(c.Ports) > maxPortBindings {
			return c, fmt.Errorf("ports: more than %d ports published: narrow the port ranges", maxPortBindings)
		}
	}
	slices.SortFunc(c.Ports, inventory.PortBinding.Compare)
	c.Ports = slices.Compact(c.Ports)

	if c.ExposedPorts, err = exposedPorts(svc); err != nil {
		return c, err
	}
	c.Mounts = mounts(p, svc)
	c.Refs = refs(p, svc)
	return c, nil
}

// namespaceMode resolves "service:NAME" (a namespace shared with another
// service) to the first container of that service, as docker compose does
// when it creates the container. Other values are Docker's own.
func namespaceMode(attr, mode string, names map[string][]string) (string, error) {
	target, ok := strings.CutPrefix(mode, types.ServicePrefix)
	if !ok {
		return mode, nil
	}
	containers := names[target]
	if len(containers) == 0 {
		return "", fmt.Errorf("%s: %q: service %s creates no container (scale 0 or provider), so there is no namespace to join", attr, mode, target)
	}
	return types.ContainerPrefix + containers[0], nil
}

// joinsDefaultBridge reports whether network_mode puts the container on
// Docker's default bridge.
func joinsDefaultBridge(mode string) bool {
	return mode == inventory.DefaultBridge || mode == "default"
}

// isNetworkName reports whether network_mode names an existing network
// rather than one of Docker's modes.
func isNetworkName(mode string) bool {
	switch {
	case mode == inventory.HostNetwork, mode == inventory.NoneNetwork, joinsDefaultBridge(mode),
		strings.HasPrefix(mode, types.ContainerPrefix), strings.HasPrefix(mode, types.ServicePrefix):
		return false
	}
	return true
}

// primaryNetwork is the network Docker records as the container's
// NetworkMode: the first of the service's networks in compose's priority
// order, or "none" when it has none.
func primaryNetwork(p *types.Project, svc types.ServiceConfig) string {
	keys := svc.NetworksByPriority()
	if len(keys) == 0 {
		return inventory.NoneNetwork
	}
	return p.Networks[keys[0]].Name
}

// endpoints lists the container's attachments, sorted by network name.
// Aliases are those docker compose sets: the container name, the service
// name (unless use_service_name_alias is false), then the declared ones.
func endpoints(p *types.Project, svc types.ServiceConfig, container string) ([]inventory.Endpoint, error) {
	var eps []inventory.Endpoint
	for _, key := range slices.Sorted(maps.Keys(svc.Networks)) {
		cfg := svc.Networks[key]
		n, ok := p.Networks[key]
		if !ok {
			return nil, fmt.Errorf("networks.%s: not a top-level network (declare it under networks:)", key)
		}
		e := inventory.Endpoint{Network: n.Name, Aliases: []string{container}}
		if cfg.ServiceNameAliasEnabled() {
			e.Aliases = append(e.Aliases, svc.Name)
		}
		if cfg != nil {
			var err error
			if e.IPv4, err = fixedAddress(key, "ipv4_address", cfg.Ipv4Address, svc); err != nil {
				return nil, err
			}
			if e.IPv6, err = fixedAddress(key, "ipv6_address", cfg.Ipv6Address, svc); err != nil {
				return nil, err
			}
			e.MAC = cfg.MacAddress
			for _, a := range cfg.Aliases {
				if !slices.Contains(e.Aliases, a) {
					e.Aliases = append(e.Aliases, a)
				}
			}
		}
		eps = append(eps, e)
	}
	slices.SortFunc(eps, func(a, b inventory.Endpoint) int { return strings.Compare(a.Network, b.Network) })
	return eps, nil
}

// fixedAddress parses an ipv4_address or ipv6_address. Docker gives an
// address to one container only, so a replicated service cannot ask for one.
func fixedAddress(network, attr, value string, svc types.ServiceConfig) (netip.Addr, error) {
	if value == "" {
		return netip.Addr{}, nil
	}
	addr, err := netip.ParseAddr(value)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("networks.%s.%s: %q is not an IP address", network, attr, value)
	}
	if wantV4 := attr == "ipv4_address"; addr.Is4() != wantV4 {
		return netip.Addr{}, fmt.Errorf("networks.%s.%s: %q is the wrong IP version", network, attr, value)
	}
	if n := svc.GetScale(); n > 1 {
		return netip.Addr{}, fmt.Errorf("networks.%s.%s: %d replicas cannot share the fixed address %s (Docker refuses the second): set scale to 1 or drop the address", network, attr, n, addr)
	}
	return addr, nil
}

// portBindings expands one ports: entry into a binding per host port. A
// host port range published for a single container port lets Docker pick
// one port of the range at start: every port of it is listed, as any of
// them may end up open.
func portBindings(pc types.ServicePortConfig) ([]inventory.PortBinding, error) {
	proto, err := protocol(pc.Protocol)
	if err != nil {
		return nil, err
	}
	if pc.Target == 0 || pc.Target > 65535 {
		return nil, fmt.Errorf("target %d is not a port number (1-65535)", pc.Target)
	}
	b := inventory.PortBinding{ContainerPort: l4.Port{Number: uint16(pc.Target), Proto: proto}}
	if pc.HostIP != "" {
		ip, err := netip.ParseAddr(strings.Trim(pc.HostIP, "[]"))
		if err != nil {
			return nil, fmt.Errorf("host_ip %q is not an IP address", pc.HostIP)
		}
		b.HostIP = ip.Unmap()
	}
	if pc.Published == "" {
		return []inventory.PortBinding{b}, nil // Docker picks a host port
	}
	first, last, err := portRange(pc.Published)
	if err != nil {
		return nil, fmt.Errorf("published: %w", err)
	}
	out := make([]inventory.PortBinding, 0, int(last-first)+1)
	for port := int(first); port <= int(last); port++ {
		b.HostPort = uint16(port)
		out = append(out, b)
	}
	return out, nil
}

// exposedPorts lists the expose: entries and the targets of ports:, which
// Docker exposes too, sorted and without repeats.
func exposedPorts(svc types.ServiceConfig) ([]l4.Port, error) {
	set := make(map[l4.Port]bool)
	for _, spec := range svc.Expose {
		number, proto, _ := strings.Cut(spec, "/")
		proto, err := protocol(proto)
		if err != nil {
			return nil, fmt.Errorf("expose: %q: %w", spec, err)
		}
		first, last, err := portRange(number)
		if err != nil {
			return nil, fmt.Errorf("expose: %w", err)
		}
		for port := int(first); port <= int(last); port++ {
			set[l4.Port{Number: uint16(port), Proto: proto}] = true
		}
	}
	for _, pc := range svc.Ports {
		proto, err := protocol(pc.Protocol)
		if err == nil && pc.Target > 0 && pc.Target <= 65535 {
			set[l4.Port{Number: uint16(pc.Target), Proto: proto}] = true
		}
	}
	if len(set) == 0 {
		return nil, nil
	}
	return slices.SortedFunc(maps.Keys(set), l4.Port.Compare), nil
}

// protocol checks a port protocol; empty means tcp.
func protocol(p string) (string, error) {
	switch p = strings.ToLower(p); p {
	case "":
		return "tcp", nil
	case "tcp", "udp", "sctp":
		return p, nil
	}
	return "", fmt.Errorf("protocol %q is not tcp, udp or sctp", p)
}

// portRange parses "8080" or "8000-8010".
func portRange(s string) (first, last uint16, err error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if first, err = portNumber(lo); err != nil {
		return 0, 0, err
	}
	if !isRange {
		return first, first, nil
	}
	if last, err = portNumber(hi); err != nil {
		return 0, 0, err
	}
	if last < first {
		return 0, 0, fmt.Errorf("port range %q ends before it starts", s)
	}
	return first, last, nil
}

func portNumber(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return uint16(n), nil
}

// mounts lists volumes: entries (bind mounts with their absolute host path,
// named volumes by their Docker name) and the API socket that
// use_api_socket mounts.
func mounts(p *types.Project, svc types.ServiceConfig) []inventory.Mount {
	var out []inventory.Mount
	for _, v := range svc.Volumes {
		m := inventory.Mount{Type: v.Type, Source: v.Source, Destination: v.Target, ReadOnly: v.ReadOnly}
		if v.Type == types.VolumeTypeVolume && v.Source != "" {
			if vol, ok := p.Volumes[v.Source]; ok && vol.Name != "" {
				m.Source = vol.Name
			}
		}
		out = append(out, m)
	}
	if svc.UseAPISocket {
		out = append(out, inventory.Mount{Type: types.VolumeTypeBind, Source: dockerSocket, Destination: dockerSocket})
	}
	return out
}

// addJoinedNetworks adds the networks that containers join through
// network_mode without the project declaring them: Docker's default bridge,
// or an existing network named directly.
func addJoinedNetworks(snap *inventory.Snapshot) {
	known := make(map[string]bool, len(snap.Networks))
	for _, n := range snap.Networks {
		known[n.Name] = true
	}
	for _, c := range snap.Containers {
		for _, e := range c.Endpoints {
			if known[e.Network] {
				continue
			}
			known[e.Network] = true
			snap.Networks = append(snap.Networks, existingNetwork(e.Network))
		}
	}
}

// existingNetwork describes a network that compose uses but does not
// create. Only its name is known: Docker's built-in networks are what they
// always are, any other is assumed to be a bridge with default options.
func existingNetwork(name string) inventory.Network {
	n := inventory.Network{Name: name, Driver: "bridge", ICC: true, External: true}
	switch name {
	case inventory.DefaultBridge:
		n.Bridge = "docker0"
	case inventory.HostNetwork:
		n.Driver = "host"
	case inventory.NoneNetwork:
		n.Driver = "null"
	}
	return n
}
