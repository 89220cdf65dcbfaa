package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the agent's Prometheus metrics, in a registry of its own.
type metrics struct {
	reg                  *prometheus.Registry
	reconciles           *prometheus.CounterVec
	reconcileSeconds     *prometheus.HistogramVec
	lastSync             prometheus.Gauge
	admissions           prometheus.Counter
	admissionSeconds     prometheus.Histogram
	admittedContainers   prometheus.Gauge
	boundEndpoints       prometheus.Gauge
	driftRepairs         *prometheus.CounterVec
	membershipViolations prometheus.Gauge
	membershipRepairs    prometheus.Counter
	policyReloads        *prometheus.CounterVec
	deniedPackets        *prometheus.CounterVec
	wouldDenyPackets     *prometheus.CounterVec
	deniedLogged         prometheus.Counter
	deniedSuppressed     prometheus.Counter
}

func newMetrics() *metrics {
	const ns = "zonewarden_agent"
	m := &metrics{
		reg: prometheus.NewRegistry(),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "reconciles_total",
			Help: "Reconciles of the host with the policy, by result (ok, error)."}, []string{"result"}),
		reconcileSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "reconcile_duration_seconds",
			Help:    "Time to read what changed on the host, compile the policy and load the difference, by kind (incremental: set elements; full: the whole table).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"kind"}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "last_sync_timestamp_seconds",
			Help: "When the firewall last matched the policy on the host (Unix time)."}),
		admissions: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "admissions_total",
			Help: "Containers admitted to their zones."}),
		admissionSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "admission_latency_seconds",
			Help:    "From a container's Docker event (start, connect) to its admission in the kernel; it is dropped meanwhile.",
			Buckets: []float64{.0025, .005, .01, .02, .03, .05, .075, .1, .25, .5, 1}}),
		admittedContainers: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "admitted_addresses",
			Help: "Container addresses in the admitted sets."}),
		boundEndpoints: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "bound_endpoints",
			Help: "Container endpoints whose addresses are bound to their bridge port (frames with them from any other port are dropped as spoofs)."}),
		driftRepairs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "drift_repairs_total",
			Help: "Repairs of drift made outside the agent, by what drifted (table: zonewarden's nftables table changed or removed; bridge-filtering: br_netfilter or its sysctls turned off)."}, []string{"what"}),
		membershipViolations: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "membership_violations",
			Help: "Containers on a zone network their workload may not join."}),
		membershipRepairs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "membership_disconnects_total",
			Help: "Containers disconnected from a zone their workload may not join (--enforce-membership)."}),
		policyReloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "policy_reloads_total",
			Help: "Reloads of the policy file, by result (ok; invalid: rejected, the previous policy stays in force)."}, []string{"result"}),
		deniedPackets: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "denied_packets_total",
			Help: "Packets dropped by zonewarden's rules, by source and destination workload (or outside, host, unmanaged) and rule."}, []string{"from", "to", "rule"}),
		wouldDenyPackets: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "would_deny_packets_total",
			Help: "Packets a zone in monitor mode let through that enforce mode would drop, by source and destination workload (or outside, host, unmanaged) and rule."}, []string{"from", "to", "rule"}),
		deniedLogged: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "denied_flow_lines_total",
			Help: "Denied-flow lines written."}),
		deniedSuppressed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "denied_flow_lines_suppressed_total",
			Help: "Denied-flow lines not written because of the rate limit (the packets are still counted)."}),
	}
	m.reg.MustRegister(m.reconciles, m.reconcileSeconds, m.lastSync, m.admissions, m.admissionSeconds,
		m.admittedContainers, m.boundEndpoints, m.driftRepairs, m.membershipViolations, m.membershipRepairs, m.policyReloads,
		m.deniedPackets, m.wouldDenyPackets, m.deniedLogged, m.deniedSuppressed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
