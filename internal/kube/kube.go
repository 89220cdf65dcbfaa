// Package kube exports a policy to Kubernetes: one NetworkPolicy per
// workload that says, port by port, what its pods may receive and open,
// and a default deny for every other pod of the namespace.
//
// The export keeps the policy's meaning for connections between
// workloads: A reaches B on a port exactly when the policy allows it
// (a flow from A or one of its zones to B or one of its zones on that
// port, or a default: allow zone they share). Each flow becomes an egress
// rule on its sources and an ingress rule on its destinations, so that
// Kubernetes, which lets a connection through only when both ends allow
// it, agrees. Zones need no labels of their own: a zone is selected as the
// set of its members' pods.
//
// What Kubernetes cannot say is reported as a Note, never dropped
// silently: ICMP (a NetworkPolicy names TCP, UDP and SCTP ports only),
// host port numbers and host addresses of published ports, monitor mode.
package kube

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy"
)

// Scheme names the pod label that selects a workload's pods.
type Scheme string

// Label schemes.
const (
	// Kompose selects pods by io.kompose.service, the label Kompose puts
	// on the pods of each compose service.
	Kompose Scheme = "kompose"
	// ComposeBridge selects pods by com.docker.compose.service, the label
	// Docker's Compose Bridge puts on them.
	ComposeBridge Scheme = "compose-bridge"
	// Own selects pods by zonewarden.io/workload=WORKLOAD, a label the
	// user adds to the pods of each workload.
	Own Scheme = "zonewarden"
)

// Schemes lists the label schemes, the default first.
var Schemes = []Scheme{Kompose, ComposeBridge, Own}

// Label keys.
const (
	KomposeKey       = "io.kompose.service"
	ComposeBridgeKey = "com.docker.compose.service"
	OwnKey           = "zonewarden.io/workload"
)

// Key returns the pod label key of the scheme.
func (s Scheme) Key() string {
	switch s {
	case ComposeBridge:
		return ComposeBridgeKey
	case Own:
		return OwnKey
	}
	return KomposeKey
}

// DefaultDeny names the policy that isolates every pod of the namespace
// that no workload's policy opens.
const DefaultDeny = "zw-default-deny"

// Options say how to export.
type Options struct {
	// Namespace of the policies and of the pods they select; "" is
	// "default".
	Namespace string
	// Scheme picks the pod label; "" is Kompose.
	Scheme Scheme
	// Services maps a workload to the compose services its containers
	// run, read from a compose file the policy was bound to. A workload
	// not in it is selected by its match's literal compose service, else
	// by the zonewarden.io/workload label.
	Services map[string][]string
	// NoDNS leaves out the egress to kube-dns that every workload gets
	// (Docker's embedded DNS needs no rule; kube-dns does).
	NoDNS bool
}

// Selector selects pods whose label Key has one of Values.
type Selector struct {
	Key    string
	Values []string
}

func (s Selector) String() string {
	if len(s.Values) == 1 {
		return s.Key + "=" + s.Values[0]
	}
	return s.Key + " in (" + strings.Join(s.Values, ", ") + ")"
}

func (s Selector) label() metav1.LabelSelector {
	if len(s.Values) == 1 {
		return metav1.LabelSelector{MatchLabels: map[string]string{s.Key: s.Values[0]}}
	}
	return metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: s.Key, Operator: metav1.LabelSelectorOpIn, Values: s.Values,
	}}}
}

// Workload is one workload as exported.
type Workload struct {
	Name string
	// Object is the name of its NetworkPolicy (and of a Deployment that
	// would run it).
	Object string
	// Selector selects its pods.
	Selector Selector
}

// Note is something of the policy that Kubernetes cannot say, or that
// the user must do for the export to hold.
type Note struct {
	// At is the policy position ("policy.yaml:12:5"), or "".
	At   string
	Text string
}

func (n Note) String() string {
	if n.At == "" {
		return n.Text
	}
	return n.At + ": " + n.Text
}

// Export is a policy as Kubernetes objects.
type Export struct {
	Namespace string
	Scheme    Scheme
	// Workloads are in policy order; Policies[i] is Workloads[i]'s, and
	// the last policy is DefaultDeny.
	Workloads []Workload
	Policies  []netv1.NetworkPolicy
	Notes     []Note
}

// Build exports p, which must be valid.
func Build(p *policy.Policy, opts Options) *Export {
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.Scheme == "" {
		opts.Scheme = Kompose
	}
	x := &exporter{p: p, m: model.Compile(p), opts: opts, zonePeers: map[string][]netv1.NetworkPolicyPeer{}}
	x.out = &Export{Namespace: opts.Namespace, Scheme: opts.Scheme}
	x.selectWorkloads()
	x.rules()
	return x.out
}

type exporter struct {
	p    *policy.Policy
	m    *model.Model
	opts Options
	out  *Export
	// index of each workload in out.Workloads
	at        map[string]int
	in, eg    []ruleSet
	zonePeers map[string][]netv1.NetworkPolicyPeer
}

func (x *exporter) note(pos policy.Pos, format string, args ...any) {
	at := ""
	if pos.Line != 0 {
		at = x.p.Position(pos)
	}
	x.out.Notes = append(x.out.Notes, Note{At: at, Text: fmt.Sprintf(format, args...)})
}

// selectWorkloads picks each workload's selector and object name. Two
// workloads whose compose services share a name (api of two projects)
// would select each other's pods by that label, so both are selected by
// their own label instead.
func (x *exporter) selectWorkloads() {
	x.at = make(map[string]int, len(x.p.Workloads))
	names := map[string]bool{DefaultDeny: true}
	sels := make([]Selector, len(x.p.Workloads))
	owners := map[string][]string{} // "key=value" -> workloads selecting it
	for i := range x.p.Workloads {
		w := &x.p.Workloads[i]
		sels[i] = x.selector(w)
		for _, v := range sels[i].Values {
			kv := sels[i].Key + "=" + v
			owners[kv] = append(owners[kv], w.Name)
		}
	}
	for i := range x.p.Workloads {
		w := &x.p.Workloads[i]
		for _, v := range sels[i].Values {
			if o := owners[sels[i].Key+"="+v]; len(o) > 1 {
				x.note(w.Pos, "workloads %s all run compose service %s: selected by %s=%s instead, so that each keeps its own rules; put that label on its pods", strings.Join(o, ", "), v, OwnKey, labelValue(w.Name))
				sels[i] = Selector{Key: OwnKey, Values: []string{labelValue(w.Name)}}
				break
			}
		}
		x.at[w.Name] = i
		x.out.Workloads = append(x.out.Workloads, Workload{Name: w.Name, Object: objectName(w.Name, names), Selector: sels[i]})
	}
}

func (x *exporter) selector(w *policy.Workload) Selector {
	if x.opts.Scheme != Own {
		services := slices.Clone(x.opts.Services[w.Name])
		if len(services) == 0 && w.Match.Compose.Service != "" && !policy.IsGlob(w.Match.Compose.Service) {
			services = []string{w.Match.Compose.Service}
		}
		slices.Sort(services)
		services = slices.Compact(services)
		var bad []string
		for _, s := range services {
			if len(validation.IsValidLabelValue(s)) > 0 {
				bad = append(bad, s)
			}
		}
		switch {
		case len(bad) > 0:
			x.note(w.Pos, "workload %s: compose service %s cannot be a label value (%s); selected by %s=%s instead: put that label on its pods", w.Name, strings.Join(bad, ", "), strings.Join(validation.IsValidLabelValue(bad[0]), "; "), OwnKey, labelValue(w.Name))
		case len(services) > 0:
			return Selector{Key: x.opts.Scheme.Key(), Values: services}
		default:
			x.note(w.Pos, "workload %s names no single compose service (give the compose file with -f, or match compose: {service: NAME}); selected by %s=%s instead: put that label on its pods", w.Name, OwnKey, labelValue(w.Name))
		}
	}
	return Selector{Key: OwnKey, Values: []string{labelValue(w.Name)}}
}

// labelValue returns name as a label value: itself when valid, else a
// valid one derived from it.
func labelValue(name string) string {
	if len(validation.IsValidLabelValue(name)) == 0 {
		return name
	}
	v := strings.Trim(sanitize(name, false), "-_.")
	if len(v) > 54 {
		v = strings.TrimRight(v[:54], "-_.")
	}
	return v + "-" + shortHash(name)
}

// objectName derives a unique DNS-1123 object name "zw-NAME" from a
// workload name, recording it in taken.
func objectName(name string, taken map[string]bool) string {
	n := "zw-" + strings.Trim(sanitize(strings.ToLower(name), true), "-.")
	if len(n) > 63 {
		n = strings.TrimRight(n[:56], "-.")
	}
	if taken[n] || len(validation.IsDNS1123Label(n)) > 0 {
		n = strings.TrimRight(n, "-.") + "-" + shortHash(name)
	}
	taken[n] = true
	return n
}

// sanitize replaces characters not allowed in a label value (or, for
// dns, in a DNS label) by '-'.
func sanitize(s string, dns bool) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			return r
		case !dns && (r >= 'A' && r <= 'Z' || r == '_' || r == '.'):
			return r
		}
		return '-'
	}, s)
}

func shortHash(s string) string {
	h := fnv.New32a()
	h.Write([]byte(s))
	return fmt.Sprintf("%06x", h.Sum32()&0xffffff)
}

// ruleSet gathers the rules of one direction of one workload, one per
// peer, with the ports of every rule that names that peer merged.
type ruleSet struct {
	order []string
	rules map[string]*rule
}

type rule struct {
	peers []netv1.NetworkPolicyPeer
	ports l4.List
}

func (s *ruleSet) add(key string, peers func() []netv1.NetworkPolicyPeer, ports l4.List) {
	if s.rules == nil {
		s.rules = map[string]*rule{}
	}
	r, ok := s.rules[key]
	if !ok {
		r = &rule{peers: peers()}
		s.rules[key] = r
		s.order = append(s.order, key)
	}
	r.ports = r.ports.Union(ports)
}

// rules builds every workload's ingress and egress.
func (x *exporter) rules() {
	n := len(x.p.Workloads)
	x.in, x.eg = make([]ruleSet, n), make([]ruleSet, n)
	for i := range x.p.Flows {
		f := &x.p.Flows[i]
		ports := x.expressible(f.Pos, fmt.Sprintf("flow %s -> %s", f.From, f.To), f.Ports)
		if len(ports) == 0 {
			continue
		}
		for _, w := range x.m.Members(f.To) {
			x.in[x.at[w.Name]].add(refKey(f.From), func() []netv1.NetworkPolicyPeer { return x.peers(f.From) }, ports)
		}
		for _, w := range x.m.Members(f.From) {
			x.eg[x.at[w.Name]].add(refKey(f.To), func() []netv1.NetworkPolicyPeer { return x.peers(f.To) }, ports)
		}
	}
	internal := map[string]bool{}
	for i := range x.p.Zones {
		z := &x.p.Zones[i]
		internal[z.Name] = z.Internal
		if x.p.ZoneMode(z) == policy.Monitor {
			x.note(z.Pos, "zone %s is in monitor mode: Kubernetes has no such mode, so its policies are exported as enforced", z.Name)
		}
		if z.Default == policy.Deny {
			continue
		}
		ref := policy.ZoneRef(z.Name)
		for _, w := range x.m.Members(ref) {
			peers := func() []netv1.NetworkPolicyPeer { return x.peers(ref) }
			x.in[x.at[w.Name]].add(refKey(ref), peers, l4.AllPorts())
			x.eg[x.at[w.Name]].add(refKey(ref), peers, l4.AllPorts())
		}
	}
	for i := range x.p.Workloads {
		w := &x.p.Workloads[i]
		x.published(i, w)
		x.beyond(i, w, internal)
		if !x.opts.NoDNS {
			x.eg[i].add("dns", dnsPeers, dnsPorts)
		}
		x.out.Policies = append(x.out.Policies, x.networkPolicy(i, w))
	}
	if x.p.UnmanagedMode() == policy.UnmanagedAllow {
		x.note(policy.Pos{}, "unmanaged: allow has no counterpart: %s isolates every pod of namespace %s that no workload selects", DefaultDeny, x.opts.Namespace)
	}
	x.out.Policies = append(x.out.Policies, netv1.NetworkPolicy{
		TypeMeta:   typeMeta,
		ObjectMeta: x.meta(DefaultDeny, map[string]string{annotation + "/role": "isolates every pod of the namespace that no workload selects"}),
		Spec: netv1.NetworkPolicySpec{
			PolicyTypes: []netv1.PolicyType{netv1.PolicyTypeIngress, netv1.PolicyTypeEgress},
		},
	})
}

const annotation = "zonewarden.io"

var typeMeta = metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"}

func (x *exporter) meta(name string, annotations map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:        name,
		Namespace:   x.opts.Namespace,
		Labels:      map[string]string{"app.kubernetes.io/managed-by": "zonewarden"},
		Annotations: annotations,
	}
}

// published opens a workload's published container ports to its ingress
// sources (anyone when it lists none).
func (x *exporter) published(i int, w *policy.Workload) {
	if len(w.Publish) == 0 {
		return
	}
	from := w.Ingress
	if len(from) == 0 {
		from = anywhere
	}
	key := "ingress:" + fmt.Sprint(from)
	peers := func() []netv1.NetworkPolicyPeer { return blocks(from) }
	for _, pub := range w.Publish {
		if pub.Host.First != 0 && pub.Host.First != pub.Container.First {
			x.note(w.Pos, "workload %s publishes %s: a NetworkPolicy sees the container port %s; give its Service port %d", w.Name, pub, pub.Container, pub.Host.First)
		}
		if !pub.AllInterfaces() {
			x.note(w.Pos, "workload %s publishes %s on host address %s only: Kubernetes has no such binding; the export admits its ingress sources on %s", w.Name, pub, pub.HostIP, pub.Container)
		}
		x.in[i].add(key, peers, l4.List{pub.Container})
	}
}

var anywhere = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}

// beyond lets a workload reach what its egress lists, or anything when it
// lists nothing and joins no internal zone.
func (x *exporter) beyond(i int, w *policy.Workload, internal map[string]bool) {
	if len(w.Egress) > 0 {
		for _, e := range w.Egress {
			ports := x.expressible(e.Pos, fmt.Sprintf("egress of %s to %s", w.Name, e.To), e.Ports)
			if len(ports) == 0 {
				continue
			}
			to := []netip.Prefix{e.To}
			x.eg[i].add("cidr:"+e.To.String(), func() []netv1.NetworkPolicyPeer { return blocks(to) }, ports)
		}
		return
	}
	if slices.ContainsFunc(w.Zones, func(z string) bool { return internal[z] }) {
		return
	}
	x.eg[i].add("anywhere", func() []netv1.NetworkPolicyPeer { return blocks(anywhere) }, l4.AllPorts())
}

// expressible returns the ports of l a NetworkPolicy can name, noting
// ICMP, which it cannot.
func (x *exporter) expressible(pos policy.Pos, what string, l l4.List) l4.List {
	if l.All() || !slices.ContainsFunc(l, func(r l4.Range) bool { return r.Proto == l4.ProtoICMP }) {
		return l
	}
	out := slices.DeleteFunc(slices.Clone(l), func(r l4.Range) bool { return r.Proto == l4.ProtoICMP })
	x.note(pos, "%s allows icmp, which a NetworkPolicy cannot name (it names TCP, UDP and SCTP ports); left out, so Kubernetes drops that ICMP", what)
	return out
}

func refKey(r policy.Ref) string {
	if r.Kind == policy.RefZone {
		return "zone:" + r.Name
	}
	return "workload:" + r.Name
}

// peers selects the pods of a workload, or of every member of a zone
// (one peer per label key).
func (x *exporter) peers(r policy.Ref) []netv1.NetworkPolicyPeer {
	if r.Kind == policy.RefWorkload {
		sel := x.out.Workloads[x.at[r.Name]].Selector.label()
		return []netv1.NetworkPolicyPeer{{PodSelector: &sel}}
	}
	if p, ok := x.zonePeers[r.Name]; ok {
		return p
	}
	var keys []string
	values := map[string][]string{}
	for _, w := range x.m.Members(r) {
		s := x.out.Workloads[x.at[w.Name]].Selector
		if _, ok := values[s.Key]; !ok {
			keys = append(keys, s.Key)
		}
		values[s.Key] = append(values[s.Key], s.Values...)
	}
	var out []netv1.NetworkPolicyPeer
	for _, k := range keys {
		vs := values[k]
		slices.Sort(vs)
		sel := Selector{Key: k, Values: slices.Compact(vs)}.label()
		out = append(out, netv1.NetworkPolicyPeer{PodSelector: &sel})
	}
	x.zonePeers[r.Name] = out
	return out
}

func blocks(prefixes []netip.Prefix) []netv1.NetworkPolicyPeer {
	out := make([]netv1.NetworkPolicyPeer, len(prefixes))
	for i, p := range prefixes {
		out[i] = netv1.NetworkPolicyPeer{IPBlock: &netv1.IPBlock{CIDR: p.Masked().String()}}
	}
	return out
}

// DNSNamespace and DNSLabels select the cluster DNS that every workload
// may query.
var (
	DNSNamespace = "kube-system"
	DNSLabels    = map[string]string{"k8s-app": "kube-dns"}
)

func dnsPeers() []netv1.NetworkPolicyPeer {
	return []netv1.NetworkPolicyPeer{{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": DNSNamespace}},
		PodSelector:       &metav1.LabelSelector{MatchLabels: DNSLabels},
	}}
}

var dnsPorts = l4.List{{Proto: l4.ProtoTCP, First: 53, Last: 53}, {Proto: l4.ProtoUDP, First: 53, Last: 53}}

func (x *exporter) networkPolicy(i int, w *policy.Workload) netv1.NetworkPolicy {
	ann := map[string]string{annotation + "/workload": w.Name}
	if len(w.Zones) > 0 {
		ann[annotation+"/zones"] = strings.Join(w.Zones, ",")
	}
	np := netv1.NetworkPolicy{
		TypeMeta:   typeMeta,
		ObjectMeta: x.meta(x.out.Workloads[i].Object, ann),
		Spec: netv1.NetworkPolicySpec{
			PodSelector: x.out.Workloads[i].Selector.label(),
			PolicyTypes: []netv1.PolicyType{netv1.PolicyTypeIngress, netv1.PolicyTypeEgress},
		},
	}
	for _, k := range x.in[i].order {
		r := x.in[i].rules[k]
		np.Spec.Ingress = append(np.Spec.Ingress, netv1.NetworkPolicyIngressRule{From: r.peers, Ports: ports(r.ports)})
	}
	for _, k := range x.eg[i].order {
		r := x.eg[i].rules[k]
		np.Spec.Egress = append(np.Spec.Egress, netv1.NetworkPolicyEgressRule{To: r.peers, Ports: ports(r.ports)})
	}
	return np
}

// ports converts a port list; every port is no list at all.
func ports(l l4.List) []netv1.NetworkPolicyPort {
	if l.All() {
		return nil
	}
	out := make([]netv1.NetworkPolicyPort, 0, len(l))
	for _, r := range l {
		proto := corev1.Protocol(strings.ToUpper(r.Proto))
		port := intstr.FromInt32(int32(r.First))
		np := netv1.NetworkPolicyPort{Protocol: &proto, Port: &port}
		if r.Last > r.First {
			end := int32(r.Last)
			np.EndPort = &end
		}
		out = append(out, np)
	}
	return out
}

// Services maps each workload of a bound policy to the compose services
// of the containers it selects, for Options.Services.
func Services(b *model.Binding) map[string][]string {
	out := map[string][]string{}
	for _, m := range b.Containers {
		if m.Workload == nil {
			continue
		}
		if s := m.Container.ComposeService(); s != "" && !slices.Contains(out[m.Workload.Name], s) {
			out[m.Workload.Name] = append(out[m.Workload.Name], s)
		}
	}
	return out
}
