package inventory

import (
	"net/netip"

	"github.com/zonewarden/zonewarden/internal/l4"
)

// Swarm is a Docker Swarm as one of its managers shows it.
type Swarm struct {
	ClusterID string      `json:"cluster_id,omitempty"`
	Nodes     []SwarmNode `json:"nodes"`
	Services  []Service   `json:"services,omitempty"`
}

// SwarmNode is one node of a Swarm.
type SwarmNode struct {
	ID       string `json:"id"`
	Hostname string `json:"hostname"`
	// Role is "manager" or "worker"; Availability "active", "pause" or
	// "drain"; State "ready", "down", "disconnected" or "unknown".
	Role         string            `json:"role"`
	Availability string            `json:"availability,omitempty"`
	State        string            `json:"state,omitempty"`
	Leader       bool              `json:"leader,omitempty"`
	Addr         netip.Addr        `json:"addr,omitzero"`
	Engine       string            `json:"engine,omitempty"` // its Docker version
	Labels       map[string]string `json:"labels,omitempty"`
	// IPsec is what the node's kernel can do for an encrypted overlay
	// (Docker's IPsec: ESP with AES-GCM); nil when it was not probed (only
	// the kernel zonewarden runs on can be).
	IPsec *IPsec `json:"ipsec,omitempty"`
}

// IPsec is the result of probing a kernel for what Docker's encrypted
// overlays need.
type IPsec struct {
	// Missing names the kernel pieces that are not there
	// ("CONFIG_INET_ESP", "CONFIG_CRYPTO_GCM"); empty when it can encrypt.
	Missing []string `json:"missing,omitempty"`
	// Evidence is what the probe saw (the kernel's answers).
	Evidence string `json:"evidence,omitempty"`
}

// CanEncrypt reports whether the kernel has what an encrypted overlay
// needs.
func (p *IPsec) CanEncrypt() bool { return p != nil && len(p.Missing) == 0 }

// Service is one Swarm service.
type Service struct {
	ID   string `json:"id,omitempty"`
	Name string `json:"name"`
	// Mode is "replicated" (Replicas tasks) or "global" (one per node).
	Mode     string            `json:"mode"`
	Replicas uint64            `json:"replicas,omitempty"`
	Image    string            `json:"image,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	// Stack is the docker stack the service belongs to
	// (com.docker.stack.namespace), "" when none.
	Stack string `json:"stack,omitempty"`
	// Networks are the overlays its tasks join, by name.
	Networks []string `json:"networks,omitempty"`
	// Ports are its published ports.
	Ports []ServicePort `json:"ports,omitempty"`
	// EndpointMode is "vip" (a virtual IP, IPVS) or "dnsrr" (DNS round
	// robin to the tasks' addresses).
	EndpointMode string `json:"endpoint_mode,omitempty"`
	// Constraints are its placement constraints ("node.role==worker").
	Constraints []string `json:"constraints,omitempty"`
}

// ServicePort is a port a service publishes.
type ServicePort struct {
	Target    l4.Port `json:"target"`
	Published uint16  `json:"published"`
	// Mode is "ingress" (the routing mesh: on every node of the Swarm) or
	// "host" (on the nodes that run a task, bound to that task).
	Mode string `json:"mode"`
}

// Publish modes of a service port.
const (
	PublishIngress = "ingress"
	PublishHost    = "host"
)

// Encrypted reports whether the network is an overlay created with
// --opt encrypted: Docker wraps its VXLAN traffic between nodes in IPsec
// ESP.
func (n *Network) Encrypted() bool {
	_, ok := n.Options["encrypted"]
	return ok && n.Driver == "overlay"
}

// Node returns the node with this hostname, nil when none.
func (s *Swarm) Node(hostname string) *SwarmNode {
	for i := range s.Nodes {
		if s.Nodes[i].Hostname == hostname {
			return &s.Nodes[i]
		}
	}
	return nil
}

// Service returns the service with this name, nil when none.
func (s *Swarm) Service(name string) *Service {
	for i := range s.Services {
		if s.Services[i].Name == name {
			return &s.Services[i]
		}
	}
	return nil
}

// SwarmService returns the name of the Swarm service a container is a
// task of, "" when none.
func (c *Container) SwarmService() string { return c.Labels[LabelSwarmService] }

// Labels Swarm puts on the containers of services' tasks.
const (
	LabelSwarmService = "com.docker.swarm.service.name"
	LabelSwarmTask    = "com.docker.swarm.task.id"
	LabelSwarmNode    = "com.docker.swarm.node.id"
	LabelStack        = "com.docker.stack.namespace"
)
