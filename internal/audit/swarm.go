package audit

import (
	"fmt"
	"slices"
	"strings"

	"github.com/zonewarden/zonewarden/internal/inventory"
)

// Documentation the Swarm rules cite.
const (
	docsOverlayEncrypt = "https://docs.docker.com/engine/network/drivers/overlay/#encrypt-traffic-on-an-overlay-network"
	docsRoutingMesh    = "https://docs.docker.com/engine/swarm/ingress/"
	docsSwarmAdmin     = "https://docs.docker.com/engine/swarm/admin_guide/#run-manager-only-nodes"
	// KindService is a finding about a Swarm service; KindNode about a
	// Swarm node.
	KindService SubjectKind = "service"
	KindNode    SubjectKind = "node"
)

// swarmRules are the rules of a Swarm, which find nothing on a host
// outside one (a snapshot without Swarm).
var swarmRules = []*Rule{
	{
		ID: "swarm-data-unencrypted", Severity: High,
		Title:      "Data service on an unencrypted overlay",
		Why:        "An overlay without --opt encrypted carries its traffic between nodes as plain VXLAN over the hosts' network: whoever can capture that network (a cloud neighbour, a compromised switch or node) reads the queries and the data of the service, and can inject packets into the overlay.",
		Fix:        "Recreate the overlay encrypted and move the services to it, new network first: docker network create --driver overlay --opt encrypted NAME-enc; docker service update --network-add NAME-enc --network-rm NAME SERVICE.",
		References: []string{docsOverlayEncrypt},
		check:      checkSwarmUnencrypted,
	},
	{
		ID: "swarm-encryption-unavailable", Severity: High,
		Title:      "Encrypted overlay on a node whose kernel cannot encrypt",
		Why:        "Docker creates an encrypted overlay and starts its tasks on a node whose kernel lacks IPsec ESP or AES-GCM, but its security associations fail (\"function not implemented\" in the daemon's log only) and nothing crosses between that node and the others: the services on the overlay break between nodes without any error in Docker's API.",
		Fix:        "Run the nodes on kernels with ESP and AES-GCM (CONFIG_INET_ESP, CONFIG_CRYPTO_GCM; as modules: modprobe esp4 gcm), or keep the overlay's tasks on nodes that can (placement constraints) until they do.",
		References: []string{docsOverlayEncrypt},
		check:      checkSwarmEncryptionUnavailable,
	},
	{
		ID: "swarm-data-routing-mesh", Severity: High,
		Title:      "Data service published through the routing mesh",
		Why:        "A port published in ingress mode answers on every node of the Swarm, on every address of each, whether or not the node runs a task of the service: the data service is as exposed as the most exposed node.",
		Fix:        "Remove the published port and let clients reach the service over a shared overlay; if a host must reach it, publish it in host mode on the nodes that run it (--publish mode=host,target=PORT) bound to a private address.",
		References: []string{docsRoutingMesh},
		check:      checkSwarmRoutingMesh,
	},
	{
		ID: "swarm-attachable-data", Severity: Medium,
		Title:      "Attachable overlay holds a data service",
		Why:        "Any container started with docker run --network on any node of the Swarm, workers included, joins an attachable overlay: whoever can start one container on one node reaches every port of the data service.",
		Fix:        "Keep data services on overlays that are not attachable (services only); give standalone containers an overlay of their own.",
		References: []string{docsOverlayEncrypt},
		check:      checkSwarmAttachable,
	},
	{
		ID: "swarm-workload-on-manager", Severity: Medium,
		Title:      "Workloads run on a manager node",
		Why:        "A manager holds the Swarm's Raft store (its secrets, configs and join tokens) and can change every service. A task that escapes its container on a manager controls the whole Swarm.",
		Fix:        "Drain the managers (docker node update --availability drain NODE), or constrain the services to workers (--constraint node.role==worker).",
		References: []string{docsSwarmAdmin},
		check:      checkSwarmManagers,
	},
}

// tasksByNode groups the names of containers by the node they run on.
func (h *host) tasksByNode(members []*inventory.Container) map[string][]string {
	out := map[string][]string{}
	for _, c := range members {
		out[c.Node] = append(out[c.Node], c.Name)
	}
	return out
}

// dataOnNodes is the evidence of the data services an overlay holds: each
// with its node and why it counts as one.
func (h *host) dataOnNodes(data []*inventory.Container) []string {
	out := make([]string, len(data))
	for i, c := range data {
		out[i] = fmt.Sprintf("holds %s on node %s: %s (%s)", c.Name, c.Node, h.data[c].kind, h.data[c].reason)
	}
	return out
}

func (h *host) overlays() []*inventory.Network {
	var out []*inventory.Network
	for _, n := range h.userNetworks() {
		if n.Driver == "overlay" && !n.Ingress {
			out = append(out, n)
		}
	}
	return out
}

func checkSwarmUnencrypted(h *host, r *Rule) []Finding {
	var out []Finding
	for _, n := range h.overlays() {
		data := h.dataMembers(n.Name)
		if n.Encrypted() || len(data) == 0 {
			continue
		}
		ev := append([]string{fmt.Sprintf("overlay %s: no encrypted option", n.Name)}, h.dataOnNodes(data)...)
		out = append(out, r.finding(KindNetwork, n.Name, ev,
			fmt.Sprintf("docker network create --driver overlay --opt encrypted %s-enc, then for each service on %s: docker service update --network-add %s-enc --network-rm %s SERVICE (zonewarden apply does this for a zone).", n.Name, n.Name, n.Name, n.Name)))
	}
	return out
}

func checkSwarmEncryptionUnavailable(h *host, r *Rule) []Finding {
	if h.snap.Swarm == nil {
		return nil
	}
	var out []Finding
	for _, n := range h.overlays() {
		if !n.Encrypted() {
			continue
		}
		members := h.ix.Members(n.Name)
		byNode := h.tasksByNode(members)
		var ev, cannot []string
		var unknown []string
		for _, node := range h.snap.Swarm.Nodes {
			tasks := byNode[node.Hostname]
			switch {
			case len(tasks) == 0:
			case node.IPsec == nil:
				unknown = append(unknown, node.Hostname)
			case !node.IPsec.CanEncrypt():
				cannot = append(cannot, node.Hostname)
				ev = append(ev, fmt.Sprintf("node %s runs %s; its kernel lacks %s (%s)", node.Hostname, strings.Join(tasks, ", "), strings.Join(node.IPsec.Missing, ", "), node.IPsec.Evidence))
			}
		}
		if len(cannot) == 0 {
			continue
		}
		if len(byNode) < 2 {
			ev = append(ev, "its tasks run on one node only for now: traffic between them stays on that node and works; the first task scheduled elsewhere is cut off")
		}
		if len(unknown) > 0 {
			ev = append(ev, "not probed (run zonewarden on them to know): "+strings.Join(unknown, ", "))
		}
		out = append(out, r.finding(KindNetwork, n.Name, ev,
			fmt.Sprintf("Give %s kernels with ESP and AES-GCM, or constrain the services of %s to nodes that have them.", strings.Join(cannot, ", "), n.Name)))
	}
	return out
}

func checkSwarmRoutingMesh(h *host, r *Rule) []Finding {
	if h.snap.Swarm == nil {
		return nil
	}
	var out []Finding
	for _, s := range h.snap.Swarm.Services {
		// The first of its tasks in the snapshot's order that is a data
		// service: the same evidence on every run.
		var data *inventory.Container
		for i := range h.snap.Containers {
			c := &h.snap.Containers[i]
			if _, ok := h.data[c]; ok && c.SwarmService() == s.Name {
				data = c
				break
			}
		}
		if data == nil {
			continue
		}
		var mesh []string
		for _, p := range s.Ports {
			if p.Mode == inventory.PublishIngress && p.Published != 0 {
				mesh = append(mesh, fmt.Sprintf("%d->%s", p.Published, p.Target))
			}
		}
		if len(mesh) == 0 {
			continue
		}
		nodes := make([]string, 0, len(h.snap.Swarm.Nodes))
		for _, n := range h.snap.Swarm.Nodes {
			nodes = append(nodes, n.Hostname)
		}
		ev := []string{
			fmt.Sprintf("service %s (%s: %s) publishes %s in ingress mode", s.Name, h.data[data].kind, h.data[data].reason, strings.Join(mesh, ", ")),
			"answered on every node: " + strings.Join(nodes, ", "),
		}
		out = append(out, r.finding(KindService, s.Name, ev,
			fmt.Sprintf("docker service update --publish-rm %d %s; clients join one of its overlays instead.", s.Ports[0].Published, s.Name)))
	}
	return out
}

func checkSwarmAttachable(h *host, r *Rule) []Finding {
	var out []Finding
	for _, n := range h.overlays() {
		data := h.dataMembers(n.Name)
		if !n.Attachable || len(data) == 0 {
			continue
		}
		ev := append([]string{fmt.Sprintf("overlay %s is attachable", n.Name)}, h.dataOnNodes(data)...)
		out = append(out, r.finding(KindNetwork, n.Name, ev,
			fmt.Sprintf("Create an overlay without --attachable for %s and its clients and move them to it (docker service update --network-add/--network-rm).", strings.Join(containerNames(data), ", "))))
	}
	return out
}

func checkSwarmManagers(h *host, r *Rule) []Finding {
	if h.snap.Swarm == nil {
		return nil
	}
	var out []Finding
	for _, node := range h.snap.Swarm.Nodes {
		if node.Role != "manager" || node.Availability == "drain" {
			continue
		}
		var tasks []string
		for i := range h.snap.Containers {
			c := &h.snap.Containers[i]
			if c.Node == node.Hostname && c.SwarmService() != "" && c.Running() {
				tasks = append(tasks, c.Name)
			}
		}
		if len(tasks) == 0 {
			continue
		}
		slices.Sort(tasks)
		ev := []string{fmt.Sprintf("node %s is a manager (availability %s) and runs %d task(s): %s", node.Hostname, node.Availability, len(tasks), strings.Join(firstN(tasks, maxNamesInProof), ", "))}
		out = append(out, r.finding(KindNode, node.Hostname, ev, fmt.Sprintf("docker node update --availability drain %s", node.Hostname)))
	}
	return out
}

func firstN(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(slices.Clone(s[:n]), fmt.Sprintf("and %d more", len(s)-n))
}
