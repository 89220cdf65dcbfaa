// Package oracle computes what an export lets through with np-guard's
// netpol-analyzer: Kubernetes' NetworkPolicy semantics, implemented by
// others than zonewarden and independently of its model. The tests hold
// the two to each other on every pair of workloads and every port, and
// `check --k8s` runs a policy's tests on the export through it.
//
// The analyzer reads manifests from a directory: the export's policies and
// one Deployment per workload whose pods carry the workload's labels. It
// reads IPv4 ipBlocks only (v1.4.2 folds an IPv6 CIDR into a bogus IPv4
// address), so the oracle gives it the export without its IPv6 blocks;
// each of those stands beside an IPv4 block built by the same code.
package oracle

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/np-guard/netpol-analyzer/pkg/netpol/connlist"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/zonewarden/zonewarden/internal/kube"
	"github.com/zonewarden/zonewarden/internal/l4"
)

// Conns is the connectivity the analyzer found between the workloads of
// an export and between them and addresses.
type Conns struct {
	between map[[2]string]l4.List
	// in and out are connections from and to address ranges.
	in, out []external
}

type external struct {
	workload    string
	first, last netip.Addr
	ports       l4.List
}

// Between returns the ports workload from may open to workload to.
func (c *Conns) Between(from, to string) l4.List {
	return c.between[[2]string{from, to}]
}

// Connected lists the pairs of workloads with some port open, as
// "from -> to".
func (c *Conns) Connected() []string {
	var out []string
	for k, l := range c.between {
		if len(l) > 0 {
			out = append(out, k[0]+" -> "+k[1])
		}
	}
	slices.Sort(out)
	return out
}

// FromAddr returns the ports a client at addr may open to workload to.
func (c *Conns) FromAddr(addr netip.Addr, to string) l4.List {
	return lookup(c.in, to, addr)
}

// ToAddr returns the ports workload from may open to addr.
func (c *Conns) ToAddr(from string, addr netip.Addr) l4.List {
	return lookup(c.out, from, addr)
}

func lookup(list []external, w string, addr netip.Addr) l4.List {
	var out l4.List
	for _, e := range list {
		if e.workload == w && e.first.Compare(addr) <= 0 && addr.Compare(e.last) <= 0 {
			out = out.Union(e.ports)
		}
	}
	return out
}

// Run writes the export's manifests to a temporary directory, with a
// Deployment per workload, and analyzes them. Each workload named in
// twins gets a second Deployment, so that the analyzer (which does not
// connect a Deployment to itself) answers whether its pods reach each
// other: Between(w, w).
func Run(x *kube.Export, twins ...string) (*Conns, error) {
	return run(x, nil, twins)
}

// run analyzes the connections between the workloads of only (all when
// nil). Whether one pod reaches another depends on the policies and on
// those two pods alone, so leaving the other workloads' Deployments out
// changes no answer; it saves the analyzer's time, which grows with the
// pairs of pods times the policies.
func run(x *kube.Export, only, twins []string) (*Conns, error) {
	dir, err := os.MkdirTemp("", "zonewarden-k8s-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := writeManifests(dir, x, only, twins); err != nil {
		return nil, err
	}
	return Analyze(dir, x)
}

// twinSuffix names a workload's second Deployment.
const twinSuffix = "-twin"

// WriteManifests writes what the analyzer reads into dir: the policies
// (without IPv6 blocks) and a Deployment per workload, two for those in
// twins.
func WriteManifests(dir string, x *kube.Export, twins ...string) error {
	return writeManifests(dir, x, nil, twins)
}

func writeManifests(dir string, x *kube.Export, only, twins []string) error {
	var b strings.Builder
	for i := range x.Policies {
		np := ipv4Only(&x.Policies[i])
		data, err := yaml.Marshal(np)
		if err != nil {
			return err
		}
		b.WriteString("---\n")
		b.Write(data)
	}
	for _, w := range x.Workloads {
		if only != nil && !slices.Contains(only, w.Name) {
			continue
		}
		objects := []string{w.Object}
		if slices.Contains(twins, w.Name) {
			objects = append(objects, w.Object+twinSuffix)
		}
		for _, o := range objects {
			data, err := yaml.Marshal(deployment(x.Namespace, o, w.Selector))
			if err != nil {
				return err
			}
			b.WriteString("---\n")
			b.Write(data)
		}
	}
	return os.WriteFile(filepath.Join(dir, "manifests.yaml"), []byte(b.String()), 0o644)
}

// deployment runs a workload: its pods carry the first label value its
// selector accepts.
func deployment(ns, name string, sel kube.Selector) *appsv1.Deployment {
	labels := map[string]string{sel.Key: sel.Values[0]}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "scratch"}}},
			},
		},
	}
}

// ipv4Only returns a copy of np whose peers name no IPv6 block.
func ipv4Only(np *netv1.NetworkPolicy) *netv1.NetworkPolicy {
	out := np.DeepCopy()
	keep := func(peers []netv1.NetworkPolicyPeer) []netv1.NetworkPolicyPeer {
		kept := peers[:0]
		for _, p := range peers {
			if p.IPBlock == nil || !strings.Contains(p.IPBlock.CIDR, ":") {
				kept = append(kept, p)
			}
		}
		return kept
	}
	var in []netv1.NetworkPolicyIngressRule
	for _, r := range out.Spec.Ingress {
		if n := len(r.From); n > 0 {
			if r.From = keep(r.From); len(r.From) == 0 {
				continue
			}
		}
		in = append(in, r)
	}
	var eg []netv1.NetworkPolicyEgressRule
	for _, r := range out.Spec.Egress {
		if n := len(r.To); n > 0 {
			if r.To = keep(r.To); len(r.To) == 0 {
				continue
			}
		}
		eg = append(eg, r)
	}
	out.Spec.Ingress, out.Spec.Egress = in, eg
	return out
}

// Analyze runs the analyzer on dir, where the export's manifests are.
func Analyze(dir string, x *kube.Export) (*Conns, error) {
	byObject := make(map[string]string, len(x.Workloads))
	for _, w := range x.Workloads {
		byObject[w.Object] = w.Name
		byObject[w.Object+twinSuffix] = w.Name
	}
	ca := connlist.NewConnlistAnalyzer(connlist.WithMuteErrsAndWarns())
	list, _, err := ca.ConnlistFromDirPath(dir)
	if err != nil {
		return nil, fmt.Errorf("netpol-analyzer: %w", err)
	}
	for _, e := range ca.Errors() {
		if e.IsFatal() || e.IsSevere() {
			return nil, fmt.Errorf("netpol-analyzer: %v", e.Error())
		}
	}
	c := &Conns{between: map[[2]string]l4.List{}}
	for _, conn := range list {
		ports := portList(conn)
		src, dst := conn.Src(), conn.Dst()
		switch {
		case !src.IsPeerIPType() && !dst.IsPeerIPType():
			k := [2]string{byObject[src.Name()], byObject[dst.Name()]}
			c.between[k] = c.between[k].Union(ports)
		case src.IsPeerIPType() && !dst.IsPeerIPType():
			ext, err := ranges(src.String(), byObject[dst.Name()], ports)
			if err != nil {
				return nil, err
			}
			c.in = append(c.in, ext...)
		case dst.IsPeerIPType() && !src.IsPeerIPType():
			ext, err := ranges(dst.String(), byObject[src.Name()], ports)
			if err != nil {
				return nil, err
			}
			c.out = append(c.out, ext...)
		}
	}
	return c, nil
}

// All is every TCP, UDP and SCTP port: what a NetworkPolicy can name.
var All = l4.List(nil).Union(l4.List{
	{Proto: l4.ProtoSCTP, First: 1, Last: 65535},
	{Proto: l4.ProtoTCP, First: 1, Last: 65535},
	{Proto: l4.ProtoUDP, First: 1, Last: 65535},
})

func portList(conn connlist.Peer2PeerConnection) l4.List {
	if conn.AllProtocolsAndPorts() {
		return All
	}
	var out l4.List
	for proto, rs := range conn.ProtocolsAndPorts() {
		for _, r := range rs {
			// The analyzer also lists the ranges it found denied, to
			// explain them; only those in the set are allowed.
			if in, ok := r.(interface{ InSet() bool }); ok && !in.InSet() {
				continue
			}
			out = out.Union(l4.List{{Proto: strings.ToLower(string(proto)), First: uint16(r.Start()), Last: uint16(r.End())}})
		}
	}
	return out
}

// ranges reads the analyzer's "a-b,c-d" address ranges.
func ranges(s, workload string, ports l4.List) ([]external, error) {
	var out []external
	for _, part := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(strings.TrimSpace(part), "-")
		if !isRange {
			b = a
		}
		first, err1 := netip.ParseAddr(a)
		last, err2 := netip.ParseAddr(b)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("netpol-analyzer: cannot read the address range %q", part)
		}
		out = append(out, external{workload: workload, first: first, last: last, ports: ports})
	}
	return out, nil
}

// Narrow returns the TCP, UDP and SCTP ports of l: what a NetworkPolicy
// can say of it ("all" becomes every port of the three; ICMP goes).
func Narrow(l l4.List) l4.List {
	if l.All() {
		return All
	}
	var out l4.List
	for _, r := range l {
		if r.Proto != l4.ProtoICMP {
			out = out.Union(l4.List{r})
		}
	}
	return out
}
