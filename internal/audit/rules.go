package audit

import (
	"fmt"
	"slices"
	"strings"

	"github.com/zonewarden/zonewarden/internal/inventory"
)

// CIS Docker Benchmark v1.6.0 sections cited by the rules.
const (
	cisICC          = "CIS Docker Benchmark v1.6.0 2.2: network traffic is restricted between containers on the default bridge"
	cisCaps         = "CIS Docker Benchmark v1.6.0 5.3: Linux kernel capabilities are restricted within containers"
	cisPrivileged   = "CIS Docker Benchmark v1.6.0 5.4: privileged containers are not used"
	cisPrivPorts    = "CIS Docker Benchmark v1.6.0 5.7: privileged ports are not mapped within containers"
	cisNeededPorts  = "CIS Docker Benchmark v1.6.0 5.8: only needed ports are open on the container"
	cisHostNet      = "CIS Docker Benchmark v1.6.0 5.9: the host's network namespace is not shared"
	cisReadOnly     = "CIS Docker Benchmark v1.6.0 5.12: the container's root filesystem is mounted as read only"
	cisBindIface    = "CIS Docker Benchmark v1.6.0 5.13: incoming container traffic is bound to a specific host interface"
	cisHostPID      = "CIS Docker Benchmark v1.6.0 5.15: the host's process namespace is not shared"
	cisHostIPC      = "CIS Docker Benchmark v1.6.0 5.16: the host's IPC namespace is not shared"
	cisHostUTS      = "CIS Docker Benchmark v1.6.0 5.20: the host's UTS namespace is not shared"
	cisNoNewPrivs   = "CIS Docker Benchmark v1.6.0 5.25: the container is restricted from acquiring additional privileges"
	cisDefaultBr    = "CIS Docker Benchmark v1.6.0 5.29: Docker's default bridge docker0 is not used"
	cisSocket       = "CIS Docker Benchmark v1.6.0 5.31: the Docker socket is not mounted inside any containers"
	docsIsolation   = "https://docs.docker.com/engine/network/#published-ports"
	docsInternal    = "https://docs.docker.com/reference/cli/docker/network/create/#internal"
	docsBridgeNf    = "https://docs.docker.com/engine/network/packet-filtering-firewalls/"
	docsIPv6        = "https://docs.docker.com/engine/daemon/ipv6/"
	docsMacvlan     = "https://docs.docker.com/engine/network/drivers/macvlan/"
	docsGatewayMode = "https://docs.docker.com/engine/network/packet-filtering-firewalls/"
	docsLoopbackLAN = "https://github.com/moby/moby/issues/45610"
	maxNamesInProof = 10
)

// dangerousCaps are capabilities that let a container break out of its
// network isolation or its namespace.
var dangerousCaps = []string{
	"ALL", "NET_ADMIN", "SYS_ADMIN", "SYS_MODULE", "SYS_PTRACE", "SYS_RAWIO",
	"DAC_READ_SEARCH", "BPF", "PERFMON", "SYS_BOOT", "SYS_TIME", "MAC_ADMIN",
	"MAC_OVERRIDE", "NET_RAW",
}

var catalog = append([]*Rule{
	{
		ID: "privileged", Severity: Critical,
		Title:      "Container runs privileged",
		Why:        "A privileged container has every capability and every host device: it can load kernel modules, rewrite the host's firewall and leave its namespace. No network zone holds it.",
		Fix:        "Run without --privileged; add only the capabilities the process needs (--cap-drop ALL --cap-add ...).",
		References: []string{cisPrivileged},
		check:      checkPrivileged,
	},
	{
		ID: "docker-socket-mounted", Severity: Critical,
		Title:      "Docker socket mounted into the container",
		Why:        "Whoever can talk to the Docker socket is root on the host: they can start a privileged container, join any network and remove every firewall rule.",
		Fix:        "Remove the socket mount. If the tool must read Docker state, give it a read-only socket proxy that allows only the endpoints it needs.",
		References: []string{cisSocket},
		check:      checkSocket,
	},
	{
		ID: "published-sensitive-port", Severity: High,
		Title:      "Data service published to the host",
		Why:        "A database, cache or search engine port published on the host is reachable from every network (through the host) and, on a public address, from outside. Clients should reach it over a shared internal network.",
		Fix:        "Remove the port mapping and connect the clients to the data service's network; if a host process needs it, bind it to 127.0.0.1.",
		References: []string{cisNeededPorts},
		check:      checkPublishedSensitive,
	},
	{
		ID: "published-debug-port", Severity: Critical,
		Title:      "Debugger or administration port published",
		Why:        "A debugger or administration interface does what its client asks: it runs code in the container or on the host. Published, it answers every network that reaches the host and, on a public address, the internet. Known by their default ports: " + adminCatalog() + ". Medium when published on a loopback address only.",
		Fix:        "Remove the mapping (a debugger belongs to a development run, never to a shared host); if a person must reach it, publish it on 127.0.0.1 and tunnel to it (ssh -L).",
		References: []string{cisNeededPorts},
		check:      checkPublishedAdmin,
	},
	{
		ID: "published-bypasses-isolation", Severity: High,
		Title:      "Published port reachable from other networks through the host",
		Why:        "Docker isolates bridge networks from each other, but a published port is DNATed from every host address, including each network's gateway: containers on any other network reach it, and Docker's isolation rules do not see that path.",
		Fix:        "Do not publish ports that only containers use; put client and server on one network instead. Publish on 127.0.0.1 when only the host needs the port, or enforce flows with zonewarden apply.",
		References: []string{docsIsolation},
		check:      checkPublishedBypass,
	},
	{
		ID: "host-network", Severity: High,
		Title:      "Container shares the host's network namespace",
		Why:        "With --network host the container sees every host interface, listens on them directly, and reaches every container (internal networks included) and every published port. No zone applies to it.",
		Fix:        "Run it on a user-defined network and publish only the ports it serves.",
		References: []string{cisHostNet},
		check:      checkHostNetwork,
	},
	{
		ID: "dangerous-capability", Severity: High,
		Title:      "Dangerous capability added",
		Why:        "NET_ADMIN rewrites routes and firewall rules inside (and with host networking, outside) the container; SYS_ADMIN, SYS_MODULE and SYS_PTRACE open the way out of the container; NET_RAW forges packets.",
		Fix:        "Remove the capability; start from --cap-drop ALL and add back only what the process needs.",
		References: []string{cisCaps},
		check:      checkDangerousCaps,
	},
	{
		ID: "sensitive-network-not-internal", Severity: High,
		Title:      "Network holding a data service is not internal",
		Why:        "A network that is not --internal routes to the internet: a compromised data service can send its data out, and its members can reach the host's published ports.",
		Fix:        "Put the data services on an --internal network shared only with their clients.",
		References: []string{docsInternal},
		check:      checkSensitiveNotInternal,
	},
	{
		ID: "untrusted-shares-data-network", Severity: High,
		Title: "Untrusted container on a network with a data service",
		Why:   "A development, test, staging or third-party container shares a network with a data service: it reaches every port of the database directly. A compromise of the weakest container exposes the customer data.",
		Fix:   "Disconnect the untrusted container from the data network; give development and third-party containers networks of their own.",
		check: checkUntrustedShares,
	},
	{
		ID: "gateway-container", Severity: Low,
		Title: "Container bridges several networks",
		Why:   "A container on two or more networks is a gateway between zones: an attacker who controls it pivots from one zone into the other. High when it joins an untrusted network and a network with a data service.",
		Fix:   "Keep gateways few and deliberate; disconnect networks the container does not need.",
		check: checkGateway,
	},
	{
		ID: "cross-project-network", Severity: Medium,
		Title: "Containers of different compose projects share a network",
		Why:   "Projects are trust boundaries: when two projects share a network, each reaches every port of the other's containers.",
		Fix:   "Give each project its own networks (compose does by default); connect only the one service that must talk across, through an explicit shared network.",
		check: checkCrossProject,
	},
	{
		ID: "default-bridge", Severity: Medium,
		Title:      "Container on Docker's default bridge",
		Why:        "Every container started without --network joins the default bridge: it has no DNS between containers and puts unrelated projects on one network.",
		Fix:        "Create a network per trust boundary and attach the container to it instead of bridge.",
		References: []string{cisDefaultBr},
		check:      checkDefaultBridge,
	},
	{
		ID: "icc-default-bridge", Severity: Medium,
		Title:      "Inter-container communication on the default bridge is on",
		Why:        "With icc on, every container on the default bridge reaches every port of every other one.",
		Fix:        `Set "icc": false in /etc/docker/daemon.json and restart dockerd, and move containers to user-defined networks.`,
		References: []string{cisICC},
		check:      checkICCDefaultBridge,
	},
	{
		ID: "published-all-interfaces", Severity: Medium,
		Title:      "Port published on all host interfaces",
		Why:        "A port published without a host address listens on every interface of the host, IPv4 (0.0.0.0) and IPv6 (::), public ones included.",
		Fix:        "Publish on the one address that must serve it: -p 127.0.0.1:8080:80 or -p 203.0.113.10:443:443.",
		References: []string{cisBindIface},
		check:      checkAllInterfaces,
	},
	{
		ID: "host-namespace", Severity: Medium,
		Title:      "Container shares a host namespace (pid, ipc or uts)",
		Why:        "Sharing the host's process, IPC or UTS namespace lets the container see and signal host processes or change the hostname.",
		Fix:        "Remove --pid host, --ipc host and --uts host.",
		References: []string{cisHostPID, cisHostIPC, cisHostUTS},
		check:      checkHostNamespace,
	},
	{
		ID: "bridge-nf-disabled", Severity: Medium,
		Title:      "Traffic inside a bridge network bypasses the firewall",
		Why:        "With net.bridge.bridge-nf-call-iptables=0, packets between containers of one network are bridged without passing iptables or nftables inet rules: enable_icc=false and port-level rules inside a network do not apply.",
		Fix:        "modprobe br_netfilter; sysctl -w net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1 (and persist it in /etc/sysctl.d).",
		References: []string{docsBridgeNf},
		check:      checkBridgeNf,
	},
	{
		ID: "network-bypasses-firewall", Severity: Medium,
		Title:      "Network whose traffic never crosses the host's firewall",
		Why:        "A macvlan or ipvlan network puts its containers on the parent interface's segment, beside the host: their frames leave and arrive without passing the host's netfilter, so neither Docker's isolation nor zonewarden filters them, and every machine of that segment reaches every port. High when a data service is on it.",
		Fix:        "Move the containers to a bridge network (a zone) and publish only what must be reached; where a macvlan is required, filter inside each container's namespace or on the segment's own firewall.",
		References: []string{docsMacvlan},
		check:      checkBypassesFirewall,
	},
	{
		ID: "gateway-mode-unprotected", Severity: High,
		Title:      "Bridge network in gateway mode nat-unprotected",
		Why:        "In gateway mode nat-unprotected Docker does not filter by port: every port of every member is open to whoever routes to the network's subnet, published or not.",
		Fix:        "Re-create the network in the default gateway mode nat (or routed, which opens published container ports only).",
		References: []string{docsGatewayMode},
		check:      checkGatewayModes,
	},
	{
		ID: "gateway-mode-routed", Severity: Medium,
		Title:      "Published ports open on container addresses (gateway mode routed)",
		Why:        "In gateway mode routed a published port is not mapped to the host: the container port is open on the container's own address to every host that routes to the network, and to containers of other networks.",
		Fix:        "Make sure only trusted routers know a route to the network, or use the default gateway mode nat and publish on a host address.",
		References: []string{docsGatewayMode},
		check:      checkGatewayModes,
	},
	{
		ID: "loopback-published-lan", Severity: High,
		Title:      "Port published on 127.0.0.1 is reachable from the local network",
		Why:        "Before Docker 28 a machine on the host's segment that sends a packet to 127.0.0.1 through the host (a route via the host's address) is DNATed to a port published on a loopback address (moby#45610): \"local only\" is not.",
		Fix:        "Upgrade to Docker 28 or later, or drop packets to 127.0.0.0/8 that arrive on other interfaces.",
		References: []string{docsLoopbackLAN},
		check:      checkLoopbackLAN,
	},
	{
		ID: "direct-routing-allowed", Severity: Medium,
		Title:      "Remote hosts may route to container addresses",
		Why:        "With allow-direct-routing (daemon) or trusted_host_interfaces (network option), Docker 28+ lets other machines that route to a network's subnet reach its containers' published ports on their own addresses.",
		Fix:        "Remove allow-direct-routing from daemon.json and the trusted_host_interfaces option, unless that routing is intended and its routers are trusted.",
		References: []string{docsGatewayMode},
		check:      checkDirectRouting,
	},
	{
		ID: "ipv6-unfiltered", Severity: High,
		Title:      "IPv6 networks while Docker does not filter IPv6",
		Why:        "Before Docker 27 the daemon installs no ip6tables rules unless \"ip6tables\": true is set: over IPv6 the host routes between every network, --internal and enable_icc=false are not enforced, and other machines that route to a container's IPv6 subnet reach all of its ports (checked with real packets on Docker 20.10).",
		Fix:        "Set \"ip6tables\": true (with \"experimental\": true before Docker 27) in /etc/docker/daemon.json and restart dockerd, or disable IPv6 on the networks; zonewarden apply filters IPv6 like IPv4.",
		References: []string{docsIPv6},
		check:      checkIPv6Unfiltered,
	},
	{
		ID: "capabilities-not-dropped", Severity: Low,
		Title:      "Default capabilities not dropped",
		Why:        "Docker's default capability set includes NET_RAW: the container can send raw frames and spoof ARP on its network, which bypasses enable_icc=false and address-based rules.",
		Fix:        "Start with --cap-drop ALL (compose: cap_drop: [ALL]) and add back only what the process needs.",
		References: []string{cisCaps},
		check:      checkCapsNotDropped,
	},
	{
		ID: "writable-rootfs", Severity: Low,
		Title:      "Root filesystem is writable",
		Why:        "An attacker who gets in can change binaries and configuration and keep a foothold.",
		Fix:        "Run with --read-only (compose: read_only: true) and a --tmpfs for the paths that must be written.",
		References: []string{cisReadOnly},
		check:      checkWritableRootfs,
	},
	{
		ID: "no-new-privileges", Severity: Low,
		Title:      "Container may gain new privileges",
		Why:        "Without no-new-privileges a process can gain privileges through setuid binaries.",
		Fix:        "Run with --security-opt no-new-privileges (compose: security_opt: [no-new-privileges:true]).",
		References: []string{cisNoNewPrivs},
		check:      checkNoNewPrivileges,
	},
	{
		ID: "privileged-host-port", Severity: Low,
		Title:      "Privileged host port mapped",
		Why:        "Host ports below 1024 are meant for services the administrator runs; mapping one into a container lets it pose as such a service.",
		Fix:        "Map the service to a host port at or above 1024, or front it with a reverse proxy.",
		References: []string{cisPrivPorts},
		check:      checkPrivilegedPort,
	},
	{
		ID: "shared-network-namespace", Severity: Low,
		Title: "Container shares another container's network namespace",
		Why:   "With --network container:X the container has X's addresses and reaches whatever X reaches; a rule written for X applies to both.",
		Fix:   "Give the container its own network endpoint unless it is a deliberate sidecar.",
		check: checkSharedNamespace,
	},
	{
		ID: "internal-publish-ignored", Severity: Info,
		Title:      "Ports requested on a container whose only networks are internal",
		Why:        "Docker publishes nothing for a container attached only to --internal networks: the -p option is silently ignored. This is safe, but surprises the operator who expects the port to be open.",
		Fix:        "Remove the port mapping, or attach the container to a non-internal network if the port must be published.",
		References: []string{docsInternal},
		check:      checkInternalPublish,
	},
	{
		ID: "fenced-container", Severity: Medium,
		Title: "Container on a default: deny zone that no workload selects",
		Why:   "The policy does not know this container, yet it sits on a zone that denies by default. zonewarden's firewall fails closed: it admits none of its addresses, so it gets no flow into, out of or inside the zones, whatever unmanaged says. Either it is an intruder, or a service the policy forgot and that is broken now. Reported only when audit is given a policy (--policy).",
		Fix:   "Select the container with a workload (by name, label, image or compose service) and declare its flows, or disconnect it from the zone.",
		check: checkFenced,
	},
}, swarmRules...)

func checkFenced(h *host, r *Rule) []Finding {
	return eachContainer(h, func(c *inventory.Container) (out []Finding) {
		if zs := h.fenced[c.Name]; len(zs) > 0 {
			out = append(out, r.finding(KindContainer, c.Name,
				[]string{"no workload of the policy selects it", "on default: deny zone " + strings.Join(zs, ", ")},
				fmt.Sprintf("Add a workload whose match selects %s and declare its flows, or run: docker network disconnect %s %s", c.Name, zs[0], c.Name)))
		}
		return out
	})
}

func checkPrivileged(h *host, r *Rule) []Finding {
	return eachContainer(h, func(c *inventory.Container) (out []Finding) {
		if c.Privileged {
			out = append(out, r.finding(KindContainer, c.Name,
				[]string{"HostConfig.Privileged=true (state " + c.State + ")"},
				fmt.Sprintf("Re-create %s without --privileged (compose: remove privileged: true); add only the needed capabilities with --cap-add.", c.Name)))
		}
		return out
	})
}

func isDockerSocket(m inventory.Mount) bool {
	for _, p := range []string{m.Source, m.Destination} {
		if p == "/var/run/docker.sock" || p == "/run/docker.sock" || strings.HasSuffix(p, "/docker.sock") {
			return true
		}
	}
	return false
}

func checkSocket(h *host, r *Rule) []Finding {
	var out []Finding
	for i := range h.snap.Containers {
		c := &h.snap.Containers[i]
		for _, m := range c.Mounts {
			if m.Type != "bind" && m.Type != "" || !isDockerSocket(m) {
				continue
			}
			mode := "read-write"
			if m.ReadOnly {
				mode = "read-only (still full control: the API does not honour the mount mode)"
			}
			out = append(out, r.finding(KindContainer, c.Name,
				[]string{fmt.Sprintf("bind mount %s -> %s, %s", m.Source, m.Destination, mode)},
				fmt.Sprintf("Remove the -v %s:%s mount from %s; use a read-only Docker socket proxy if it must read Docker state.", m.Source, m.Destination, c.Name)))
			break
		}
	}
	return out
}

func checkPublishedSensitive(h *host, r *Rule) []Finding {
	return eachContainer(h, func(c *inventory.Container) (out []Finding) {
		d, isData := h.data[c]
		var ev []string
		allIfaces := false
		for _, b := range h.ix.PublishedPorts(c) {
			kind := inventory.DataPort(b.ContainerPort)
			if kind == "" && isData {
				kind = d.kind
			}
			if kind == "" {
				continue
			}
			ev = append(ev, fmt.Sprintf("%s publishes %s (%s)", c.Name, b.String(), kind))
			allIfaces = allIfaces || b.AllInterfaces()
		}
		if len(ev) == 0 {
			return out
		}
		if isData {
			ev = append(ev, "recognised as "+d.kind+" by its "+d.reason)
		}
		f := r.finding(KindContainer, c.Name, ev,
			fmt.Sprintf("Remove the port mapping of %s (compose: delete its ports: entry) and reach it from its clients over a shared internal network; if a host process needs it, publish on 127.0.0.1 only.", c.Name))
		if allIfaces {
			f.Severity = Critical
			f.Evidence = append(f.Evidence, "bound on all interfaces: reachable from outside the host")
		}
		out = append(out, f)
		return out
	})
}

// adminCatalog lists the known debugger and administration ports for the
// rule's explanation: "1099 Java RMI registry (JMX): deserialises ...".
func adminCatalog() string {
	parts := make([]string, len(inventory.AdminServices))
	for i, s := range inventory.AdminServices {
		parts[i] = fmt.Sprintf("%d %s (%s)", s.Port, s.Name, s.Risk)
	}
	return strings.Join(parts, "; ")
}

func checkPublishedAdmin(h *host, r *Rule) []Finding {
	return eachContainer(h, func(c *inventory.Container) (out []Finding) {
		var ev []string
		local := true
		for _, b := range h.ix.PublishedPorts(c) {
			s, ok := inventory.AdminPort(b.ContainerPort)
			if !ok {
				continue
			}
			ev = append(ev, fmt.Sprintf("publishes %s: port %d is the %s, which %s", b.String(), s.Port, s.Name, s.Risk))
			local = local && b.HostIP.IsValid() && b.HostIP.IsLoopback()
		}
		if len(ev) == 0 {
			return out
		}
		f := r.finding(KindContainer, c.Name, ev,
			fmt.Sprintf("Remove the debugger's or the admin interface's port mapping from %s (compose: its ports: entry); if a person needs it, publish it on 127.0.0.1 and tunnel to it.", c.Name))
		if local {
			f.Severity = Medium
			f.Evidence = append(f.Evidence, "on a loopback address only: every local process (and --network host container) reaches it")
		}
		out = append(out, f)
		return out
	})
}

func checkPublishedBypass(h *host, r *Rule) []Finding {
	var out []Finding
	for i := range h.snap.Containers {
		c := &h.snap.Containers[i]
		reachers := h.an.ThroughHost(c.Name)
		if len(reachers) == 0 {
			continue
		}
		names := make([]string, 0, min(len(reachers), maxNamesInProof))
		for _, name := range reachers[:min(len(reachers), maxNamesInProof)] {
			names = append(names, fmt.Sprintf("%s (%s)", name, strings.Join(h.ix.Container(name).NetworkNames(), ",")))
		}
		more := ""
		if len(reachers) > maxNamesInProof {
			more = fmt.Sprintf(" and %d more", len(reachers)-maxNamesInProof)
		}
		var ev []string
		for _, group := range groupBindings(h.ix.PublishedPorts(c)) {
			if group[0].HostIP.IsValid() && group[0].HostIP.IsLoopback() {
				continue // the host's own processes only
			}
			ev = append(ev, fmt.Sprintf("%s: reachable through the host or gateway address from %s that share no network with it: %s%s",
				groupText(group), plural(len(reachers), "container"), strings.Join(names, ", "), more))
		}
		if len(ev) == 0 {
			continue
		}
		ev = append(ev, fmt.Sprintf("%s is on networks: %s", c.Name, strings.Join(c.NetworkNames(), ", ")))
		out = append(out, r.finding(KindContainer, c.Name, ev,
			fmt.Sprintf("If only containers use the port, remove the mapping from %s and connect its clients to one of its networks; if only the host needs it, publish on 127.0.0.1; otherwise enforce the allowed flows with zonewarden apply.", c.Name)))
	}
	return out
}

// groupBindings puts together the bindings of one container port on one
// host port that are reachable alike: Docker's -p 8080:80 binds 0.0.0.0
// and ::, which are one exposure, not two.
func groupBindings(bs []inventory.PortBinding) [][]inventory.PortBinding {
	var groups [][]inventory.PortBinding
	for _, b := range bs {
		placed := false
		for i, g := range groups {
			if g[0].ContainerPort == b.ContainerPort && g[0].HostPort == b.HostPort &&
				g[0].AllInterfaces() == b.AllInterfaces() && (b.AllInterfaces() || g[0].HostIP == b.HostIP) {
				groups[i] = append(groups[i], b)
				placed = true
				break
			}
		}
		if !placed {
			groups = append(groups, []inventory.PortBinding{b})
		}
	}
	return groups
}

// groupText renders a group as "0.0.0.0:8080 and [::]:8080 -> 80/tcp".
func groupText(g []inventory.PortBinding) string {
	hosts := make([]string, len(g))
	for i, b := range g {
		hosts[i] = b.HostAddress()
	}
	return strings.Join(hosts, " and ") + "->" + g[0].ContainerPort.String()
}

func checkHostNetwork(h *host, r *Rule) []Finding {
	return eachContainer(h, func(c *inventory.Container) (out []Finding) {
		if c.UsesHostNetwork() {
			out = append(out, r.finding(KindContainer, c.Name,
				[]string{"HostConfig.NetworkMode=host"},
				fmt.Sprintf("Re-create %s on a user-defined network (compose: remove network_mode: host, add networks:) and publish only the ports it serves.", c.Name)))
		}
		return out
	})
}

func checkDangerousCaps(h *host, r *Rule) []Finding {
	return eachContainer(h, func(c *inventory.Container) (out []Finding) {
		var found []string
		for _, a := range c.CapAdd {
			a = inventory.NormalizeCap(a)
			if slices.Contains(dangerousCaps, a) && !slices.Contains(found, a) {
				found = append(found, a)
			}
		}
		if len(found) == 0 {
			return out
		}
		f := r.finding(KindContainer, c.Name,
			[]string{"HostConfig.CapAdd=" + strings.Join(found, ",")},
			fmt.Sprintf("Re-create %s without --cap-add %s (compose: remove them from cap_add).", c.Name, strings.Join(found, " --cap-add ")))
		if slices.Contains(found, "ALL") || slices.Contains(found, "SYS_ADMIN") || slices.Contains(found, "SYS_MODULE") {
			f.Severity = Critical
		}
		out = append(out, f)
		return out
	})
}

// userNetworks returns the networks that rules about zones consider: bridge
// networks and others that containers attach to, not host or none.
func (h *host) userNetworks() []*inventory.Network {
	var out []*inventory.Network
	for i := range h.snap.Networks {
		n := &h.snap.Networks[i]
		if n.Driver == "host" || n.Driver == "null" {
			continue
		}
		out = append(out, n)
	}
	return out
}

func containerNames(cs []*inventory.Container) []string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Name
	}
	return names
}

func checkSensitiveNotInternal(h *host, r *Rule) []Finding {
	var out []Finding
	for _, n := range h.userNetworks() {
		if n.Internal {
			continue
		}
		data := h.dataMembers(n.Name)
		if len(data) == 0 {
			continue
		}
		ev := []string{fmt.Sprintf("network %s (driver %s) has internal=false", n.Name, n.Driver)}
		for _, c := range data {
			ev = append(ev, fmt.Sprintf("holds %s: %s (%s)", c.Name, h.data[c].kind, h.data[c].reason))
		}
		fix := fmt.Sprintf("docker network create --internal %s-internal; connect %s and their clients to it, then disconnect them from %s (compose: networks: {%s: {internal: true}}).",
			n.Name, strings.Join(containerNames(data), ", "), n.Name, n.Name)
		if n.IsDefaultBridge() {
			fix = fmt.Sprintf("The default bridge cannot be internal: create an --internal network for %s and its clients and disconnect them from bridge.", strings.Join(containerNames(data), ", "))
		}
		out = append(out, r.finding(KindNetwork, n.Name, ev, fix))
	}
	return out
}

func checkUntrustedShares(h *host, r *Rule) []Finding {
	var out []Finding
	for _, n := range h.userNetworks() {
		data := h.dataMembers(n.Name)
		if len(data) == 0 || !n.ICC {
			continue
		}
		var untrusted []*inventory.Container
		for _, c := range h.ix.Members(n.Name) {
			if _, ok := h.untrusted[c]; ok {
				if _, isData := h.data[c]; !isData {
					untrusted = append(untrusted, c)
				}
			}
		}
		if len(untrusted) == 0 {
			continue
		}
		var ev []string
		for _, c := range untrusted {
			ev = append(ev, fmt.Sprintf("%s is untrusted (%s)", c.Name, h.untrusted[c]))
		}
		for _, c := range data {
			ev = append(ev, fmt.Sprintf("%s is a data service: %s (%s)", c.Name, h.data[c].kind, h.data[c].reason))
		}
		out = append(out, r.finding(KindNetwork, n.Name, ev,
			fmt.Sprintf("docker network disconnect %s %s; give untrusted containers a network of their own.", n.Name, strings.Join(containerNames(untrusted), " && docker network disconnect "+n.Name+" "))))
	}
	return out
}

func checkGateway(h *host, r *Rule) []Finding {
	return eachContainer(h, func(c *inventory.Container) (out []Finding) {
		if len(c.Endpoints) < 2 {
			return out
		}
		nets := c.NetworkNames()
		ev := []string{fmt.Sprintf("attached to %d networks: %s", len(nets), strings.Join(nets, ", "))}
		var dataNets, untrustedNets []string
		for _, name := range nets {
			if d := h.dataMembers(name); len(d) > 0 {
				dataNets = append(dataNets, name)
				ev = append(ev, fmt.Sprintf("network %s holds data services: %s", name, strings.Join(containerNames(d), ", ")))
			}
			if why := h.networkUntrusted(name); why != "" {
				untrustedNets = append(untrustedNets, name)
				ev = append(ev, fmt.Sprintf("network %s is untrusted: %s", name, why))
			}
		}
		if data := h.an.DirectData(c.Name); len(data) > 0 {
			ev = append(ev, fmt.Sprintf("an attacker who controls %s reaches these data services directly: %s", c.Name, strings.Join(data, ", ")))
		}
		f := r.finding(KindContainer, c.Name, ev,
			fmt.Sprintf("Keep %s on the networks it needs only (docker network disconnect NETWORK %s); if it must bridge them, enforce which flows may cross with zonewarden apply.", c.Name, c.Name))
		switch {
		case len(dataNets) > 0 && len(untrustedNets) > 0 && !(len(dataNets) == 1 && len(untrustedNets) == 1 && dataNets[0] == untrustedNets[0]):
			f.Severity = High
		case len(dataNets) > 0:
			f.Severity = Medium
		}
		out = append(out, f)
		return out
	})
}

// networkUntrusted says why a network belongs to an untrusted zone — its
// name says so, or every member that is not a data service is untrusted
// (a development network) — or "" when it does not. One staging container
// on a production network does not make the network untrusted; that case
// is untrusted-shares-data-network's.
func (h *host) networkUntrusted(name string) string {
	if inventory.UntrustedName(name) {
		return "its name marks development, test or third-party use"
	}
	var why string
	for _, c := range h.ix.Members(name) {
		if _, isData := h.data[c]; isData {
			continue
		}
		w, ok := h.untrusted[c]
		if !ok {
			return ""
		}
		if why == "" {
			why = fmt.Sprintf("its members are untrusted (%s: %s)", c.Name, w)
		}
	}
	return why
}

func checkCrossProject(h *host, r *Rule) []Finding {
	var out []Finding
	for _, n := range h.userNetworks() {
		byProject := map[string][]string{}
		for _, c := range h.ix.Members(n.Name) {
			if p := c.ComposeProject(); p != "" {
				byProject[p] = append(byProject[p], c.Name)
			}
		}
		if len(byProject) < 2 {
			continue
		}
		projects := make([]string, 0, len(byProject))
		for p := range byProject {
			projects = append(projects, p)
		}
		slices.Sort(projects)
		var ev []string
		for _, p := range projects {
			ev = append(ev, fmt.Sprintf("project %s: %s", p, strings.Join(byProject[p], ", ")))
		}
		out = append(out, r.finding(KindNetwork, n.Name, ev,
			fmt.Sprintf("Give each of %s its own network; if one service must reach another project, connect just that service to a dedicated shared network.", strings.Join(projects, ", "))))
	}
	return out
}

func checkDefaultBridge(h *host, r *Rule) []Finding {
	var out []Finding
	for _, c := range h.ix.Members(inventory.DefaultBridge) {
		if n := h.ix.Network(inventory.DefaultBridge); n != nil && !n.IsDefaultBridge() {
			break
		}
		addr := ""
		for _, e := range c.Endpoints {
			if e.Network == inventory.DefaultBridge && e.IPv4.IsValid() {
				addr = " at " + e.IPv4.String()
			}
		}
		out = append(out, r.finding(KindContainer, c.Name,
			[]string{"attached to the default bridge network (docker0)" + addr},
			fmt.Sprintf("docker network create NET && docker network connect NET %[1]s && docker network disconnect bridge %[1]s (compose: give the service a networks: entry, remove network_mode: bridge).", c.Name)))
	}
	return out
}

func checkICCDefaultBridge(h *host, r *Rule) []Finding {
	n := h.ix.Network(inventory.DefaultBridge)
	if n == nil || !n.IsDefaultBridge() || !n.ICC {
		return nil
	}
	members := h.ix.Members(n.Name)
	if len(members) == 0 {
		return nil
	}
	names := containerNames(members)
	if len(names) > maxNamesInProof {
		names = append(names[:maxNamesInProof], fmt.Sprintf("and %d more", len(members)-maxNamesInProof))
	}
	return []Finding{r.finding(KindNetwork, n.Name,
		[]string{
			"com.docker.network.bridge.enable_icc is not false on the default bridge",
			fmt.Sprintf("%s use it: %s", plural(len(members), "container"), strings.Join(names, ", ")),
		},
		`Add "icc": false to /etc/docker/daemon.json and restart dockerd; better, move the containers to user-defined networks.`)}
}

func checkAllInterfaces(h *host, r *Rule) []Finding {
	return eachContainer(h, func(c *inventory.Container) (out []Finding) {
		var ev []string
		for _, b := range h.ix.PublishedPorts(c) {
			if b.AllInterfaces() {
				family := "IPv4"
				if b.HostIP.Is6() {
					family = "IPv6"
				}
				ev = append(ev, fmt.Sprintf("%s (all %s interfaces)", b.String(), family))
			}
		}
		if len(ev) == 0 {
			return out
		}
		out = append(out, r.finding(KindContainer, c.Name, ev,
			fmt.Sprintf("Re-create %s publishing on one address, e.g. -p 127.0.0.1:HOSTPORT:PORT (compose: ports: [\"127.0.0.1:HOSTPORT:PORT\"]).", c.Name)))
		return out
	})
}

func checkHostNamespace(h *host, r *Rule) []Finding {
	return eachContainer(h, func(c *inventory.Container) (out []Finding) {
		var ev []string
		for _, ns := range []struct{ name, mode string }{{"pid", c.PidMode}, {"ipc", c.IpcMode}, {"uts", c.UTSMode}} {
			if ns.mode == "host" {
				ev = append(ev, fmt.Sprintf("HostConfig.%sMode=host", strings.ToUpper(ns.name[:1])+ns.name[1:]))
			}
		}
		if len(ev) > 0 {
			out = append(out, r.finding(KindContainer, c.Name, ev,
				fmt.Sprintf("Re-create %s without --pid/--ipc/--uts host.", c.Name)))
		}
		return out
	})
}

func checkBridgeNf(h *host, r *Rule) []Finding {
	d := h.snap.Daemon
	var ev []string
	switch {
	case d.BrNetfilter != nil && !*d.BrNetfilter:
		ev = append(ev, "the br_netfilter module is not loaded (no /proc/sys/net/bridge); Docker 27.3 and later load it only with icc=false or userland-proxy=false")
	default:
		if d.BridgeNfIptables != nil && !*d.BridgeNfIptables {
			ev = append(ev, "net.bridge.bridge-nf-call-iptables=0")
		}
		if d.BridgeNfIP6tables != nil && !*d.BridgeNfIP6tables {
			ev = append(ev, "net.bridge.bridge-nf-call-ip6tables=0")
		}
	}
	if len(ev) == 0 {
		return nil
	}
	return []Finding{r.finding(KindHost, "docker", ev,
		"modprobe br_netfilter && sysctl -w net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1; persist both in /etc/sysctl.d/99-bridge-nf.conf.")}
}

func checkBypassesFirewall(h *host, r *Rule) []Finding {
	var out []Finding
	for _, n := range h.userNetworks() {
		if n.Driver != "macvlan" && n.Driver != "ipvlan" {
			continue
		}
		members := h.ix.Members(n.Name)
		if len(members) == 0 {
			continue
		}
		ev := []string{fmt.Sprintf("network %s has driver %s: its members' traffic does not pass this host's netfilter", n.Name, n.Driver),
			fmt.Sprintf("every machine of the parent's segment reaches every port of: %s", strings.Join(containerNames(members), ", "))}
		f := r.finding(KindNetwork, n.Name, ev,
			fmt.Sprintf("Move the members of %s to a bridge network zone; zonewarden cannot enforce flows on a %s network.", n.Name, n.Driver))
		if d := h.dataMembers(n.Name); len(d) > 0 {
			f.Severity = High
			f.Evidence = append(f.Evidence, "data services on it: "+strings.Join(containerNames(d), ", "))
		}
		out = append(out, f)
	}
	return out
}

func checkGatewayModes(h *host, r *Rule) []Finding {
	want := inventory.GatewayRouted
	if r.ID == "gateway-mode-unprotected" {
		want = inventory.GatewayNATUnprotected
	}
	var out []Finding
	for _, n := range h.userNetworks() {
		if n.Driver != "bridge" {
			continue
		}
		var fams []string
		for _, v6 := range []bool{false, true} {
			if n.GatewayMode(v6) == want && (!v6 || n.HasIPv6()) {
				fams = append(fams, map[bool]string{false: "IPv4", true: "IPv6"}[v6])
			}
		}
		if len(fams) == 0 {
			continue
		}
		ev := []string{fmt.Sprintf("network %s: gateway mode %s for %s", n.Name, want, strings.Join(fams, " and "))}
		if members := containerNames(h.ix.Members(n.Name)); len(members) > 0 {
			ev = append(ev, "members: "+strings.Join(members, ", "))
		}
		out = append(out, r.finding(KindNetwork, n.Name, ev,
			fmt.Sprintf("Re-create %s without com.docker.network.bridge.gateway_mode_ipv4/6=%s.", n.Name, want)))
	}
	return out
}

func checkLoopbackLAN(h *host, r *Rule) []Finding {
	if m := h.snap.Daemon.Major(); m == 0 || m >= 28 {
		return nil
	}
	return eachContainer(h, func(c *inventory.Container) (out []Finding) {
		for _, b := range h.ix.PublishedPorts(c) {
			if b.HostIP.IsValid() && b.HostIP.Is4() && b.HostIP.IsLoopback() {
				out = append(out, r.finding(KindContainer, c.Name,
					[]string{fmt.Sprintf("publishes %s on %s (Docker %s)", b.ContainerPort, b.HostAddress(), h.snap.Daemon.Version)},
					"Upgrade Docker to 28 or later; until then, block packets to 127.0.0.0/8 arriving on other interfaces than lo."))
				break
			}
		}
		return out
	})
}

func checkDirectRouting(h *host, r *Rule) []Finding {
	var out []Finding
	if h.snap.Daemon.AllowDirectRouting {
		out = append(out, r.finding(KindHost, "docker", []string{"the daemon runs with allow-direct-routing"},
			"Remove \"allow-direct-routing\" from /etc/docker/daemon.json (or the flag) and restart dockerd."))
	}
	for _, n := range h.userNetworks() {
		if len(n.TrustedHostInterfaces) > 0 {
			out = append(out, r.finding(KindNetwork, n.Name,
				[]string{fmt.Sprintf("network %s trusts host interfaces %s: machines behind them reach its containers' published ports directly", n.Name, strings.Join(n.TrustedHostInterfaces, ", "))},
				fmt.Sprintf("Re-create %s without com.docker.network.bridge.trusted_host_interfaces.", n.Name)))
		}
	}
	return out
}

func checkIPv6Unfiltered(h *host, r *Rule) []Finding {
	d := h.snap.Daemon
	if d.IP6Tables == nil || *d.IP6Tables {
		return nil
	}
	var out []Finding
	for _, n := range h.userNetworks() {
		if !n.HasIPv6() {
			continue
		}
		members := containerNames(h.ix.Members(n.Name))
		var v6 []string
		for _, sn := range n.Subnets {
			if sn.Prefix.Addr().Is6() {
				v6 = append(v6, sn.Prefix.String())
			}
		}
		ev := []string{fmt.Sprintf("network %s has IPv6 (%s)", n.Name, strings.Join(v6, ", ")),
			fmt.Sprintf("the Docker daemon (%s) does not filter IPv6: ip6tables is off", d.Version)}
		if len(members) > 0 {
			ev = append(ev, fmt.Sprintf("over IPv6, every other network reaches all ports of: %s", strings.Join(members, ", ")))
		}
		if n.Internal {
			ev = append(ev, "the network is internal, but over IPv6 its members reach the internet and are reached from it")
		}
		out = append(out, r.finding(KindNetwork, n.Name, ev,
			fmt.Sprintf("Turn on ip6tables in /etc/docker/daemon.json (\"ip6tables\": true, \"experimental\": true before Docker 27) and restart dockerd, or re-create %s without --ipv6.", n.Name)))
	}
	return out
}

func checkCapsNotDropped(h *host, r *Rule) []Finding {
	return eachContainer(h, func(c *inventory.Container) (out []Finding) {
		if c.DropsAllCaps() || c.Privileged {
			return out
		}
		ev := []string{"HostConfig.CapDrop does not include ALL"}
		rawKept := !slices.ContainsFunc(c.CapDrop, func(s string) bool { return inventory.NormalizeCap(s) == "NET_RAW" })
		if rawKept {
			ev = append(ev, "NET_RAW is kept: raw frames and ARP spoofing bypass enable_icc=false and address-based rules")
		}
		out = append(out, r.finding(KindContainer, c.Name, ev,
			fmt.Sprintf("Re-create %s with --cap-drop ALL and only the --cap-add it needs (compose: cap_drop: [ALL]).", c.Name)))
		return out
	})
}

func checkWritableRootfs(h *host, r *Rule) []Finding {
	return eachContainer(h, func(c *inventory.Container) (out []Finding) {
		if !c.ReadOnlyRootfs {
			out = append(out, r.finding(KindContainer, c.Name,
				[]string{"HostConfig.ReadonlyRootfs=false"},
				fmt.Sprintf("Re-create %s with --read-only --tmpfs /tmp (compose: read_only: true).", c.Name)))
		}
		return out
	})
}

func checkNoNewPrivileges(h *host, r *Rule) []Finding {
	return eachContainer(h, func(c *inventory.Container) (out []Finding) {
		if c.Privileged {
			return nil // reported as privileged
		}
		if slices.ContainsFunc(c.SecurityOpt, func(o string) bool {
			return o == "no-new-privileges" || o == "no-new-privileges:true" || o == "no-new-privileges=true"
		}) {
			return out
		}
		out = append(out, r.finding(KindContainer, c.Name,
			[]string{"HostConfig.SecurityOpt lacks no-new-privileges"},
			fmt.Sprintf("Re-create %s with --security-opt no-new-privileges.", c.Name)))
		return out
	})
}

func checkPrivilegedPort(h *host, r *Rule) []Finding {
	return eachContainer(h, func(c *inventory.Container) (out []Finding) {
		var ev []string
		for _, b := range h.ix.PublishedPorts(c) {
			if b.HostPort != 0 && b.HostPort < 1024 {
				ev = append(ev, "host port "+b.String())
			}
		}
		if len(ev) > 0 {
			out = append(out, r.finding(KindContainer, c.Name, ev,
				fmt.Sprintf("Publish %s on a host port at or above 1024, or put a reverse proxy in front.", c.Name)))
		}
		return out
	})
}

func checkSharedNamespace(h *host, r *Rule) []Finding {
	return eachContainer(h, func(c *inventory.Container) (out []Finding) {
		if other := c.SharedNamespaceWith(); other != "" {
			out = append(out, r.finding(KindContainer, c.Name,
				[]string{"HostConfig.NetworkMode=container:" + other},
				fmt.Sprintf("Unless %s is a deliberate sidecar of %s, attach it to a network of its own.", c.Name, other)))
		}
		return out
	})
}

func checkInternalPublish(h *host, r *Rule) []Finding {
	return eachContainer(h, func(c *inventory.Container) (out []Finding) {
		if len(c.Ports) == 0 || len(c.Endpoints) == 0 || h.ix.CanPublish(c) ||
			c.UsesHostNetwork() || c.NoNetwork() || c.SharedNamespaceWith() != "" {
			return out
		}
		var ports []string
		for _, b := range c.Ports {
			ports = append(ports, b.String())
		}
		out = append(out, r.finding(KindContainer, c.Name,
			[]string{
				"requested: " + strings.Join(ports, ", "),
				"only on internal networks: " + strings.Join(c.NetworkNames(), ", "),
			},
			fmt.Sprintf("Remove the port mapping from %s, or attach it to a non-internal network if the port must be published.", c.Name)))
		return out
	})
}

// plural renders "1 container" or "4 containers".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// eachContainer runs check on every container and collects its findings.
func eachContainer(h *host, check func(c *inventory.Container) []Finding) []Finding {
	var out []Finding
	for i := range h.snap.Containers {
		out = append(out, check(&h.snap.Containers[i])...)
	}
	return out
}
