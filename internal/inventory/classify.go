package inventory

import (
	"strings"

	"github.com/zonewarden/zonewarden/internal/l4"
)

// Labels an operator sets to override zonewarden's guesses.
const (
	// LabelSensitive marks a container as a data service ("true") or not
	// ("false"), whatever its image and ports say.
	LabelSensitive = "zonewarden.sensitive"
	// LabelTrust marks a container's trust level: "untrusted", "dev",
	// "third-party" (all treated as untrusted) or "trusted".
	LabelTrust = "zonewarden.trust"
)

// dataPorts are the well-known ports of data services.
var dataPorts = map[uint16]string{
	5432:  "PostgreSQL",
	3306:  "MySQL/MariaDB",
	33060: "MySQL X protocol",
	6379:  "Redis",
	27017: "MongoDB",
	27018: "MongoDB",
	27019: "MongoDB",
	9200:  "Elasticsearch/OpenSearch",
	9300:  "Elasticsearch/OpenSearch",
	11211: "memcached",
	5984:  "CouchDB",
	9042:  "Cassandra",
	8086:  "InfluxDB",
	1433:  "Microsoft SQL Server",
	1521:  "Oracle Database",
	2379:  "etcd",
	7687:  "Neo4j",
	8123:  "ClickHouse",
	26257: "CockroachDB",
	28015: "RethinkDB",
	8529:  "ArangoDB",
}

// dataImages maps an image's repository name (last path element, no tag) to
// the service it runs.
var dataImages = map[string]string{
	"postgres":      "PostgreSQL",
	"postgis":       "PostgreSQL",
	"timescaledb":   "PostgreSQL",
	"mysql":         "MySQL/MariaDB",
	"mariadb":       "MySQL/MariaDB",
	"percona":       "MySQL/MariaDB",
	"redis":         "Redis",
	"redis-stack":   "Redis",
	"valkey":        "Redis",
	"keydb":         "Redis",
	"mongo":         "MongoDB",
	"mongodb":       "MongoDB",
	"elasticsearch": "Elasticsearch/OpenSearch",
	"opensearch":    "Elasticsearch/OpenSearch",
	"memcached":     "memcached",
	"couchdb":       "CouchDB",
	"cassandra":     "Cassandra",
	"scylla":        "Cassandra",
	"influxdb":      "InfluxDB",
	"mssql-server":  "Microsoft SQL Server",
	"oracle":        "Oracle Database",
	"etcd":          "etcd",
	"neo4j":         "Neo4j",
	"clickhouse":    "ClickHouse",
	"cockroach":     "CockroachDB",
	"rethinkdb":     "RethinkDB",
	"arangodb":      "ArangoDB",
}

// defaultPorts is the TCP port each kind of data service listens on
// unless told otherwise.
var defaultPorts = map[string]uint16{
	"PostgreSQL": 5432, "MySQL/MariaDB": 3306, "Redis": 6379, "MongoDB": 27017,
	"Elasticsearch/OpenSearch": 9200, "memcached": 11211, "CouchDB": 5984, "Cassandra": 9042,
	"InfluxDB": 8086, "Microsoft SQL Server": 1433, "Oracle Database": 1521, "etcd": 2379,
	"Neo4j": 7687, "ClickHouse": 8123, "CockroachDB": 26257, "RethinkDB": 28015, "ArangoDB": 8529,
}

// DefaultPort returns the port a kind of data service (DataService's
// kind: "MySQL/MariaDB") listens on by default.
func DefaultPort(kind string) (l4.Port, bool) {
	n, ok := defaultPorts[kind]
	return l4.Port{Number: n, Proto: "tcp"}, ok
}

// DataService says whether c runs a data service (a database, cache or
// search engine that holds data), which one, and why zonewarden thinks so.
// The label zonewarden.sensitive overrides the guess.
func DataService(c *Container) (kind, reason string, ok bool) {
	switch strings.ToLower(c.Labels[LabelSensitive]) {
	case "true", "yes", "1":
		return "data service", "label " + LabelSensitive + "=" + c.Labels[LabelSensitive], true
	case "false", "no", "0":
		return "", "", false
	}
	if k, ok := dataImages[ImageRepo(c.Image)]; ok {
		return k, "image " + c.Image, true
	}
	for _, p := range c.ExposedPorts {
		if k, ok := dataPorts[p.Number]; ok && p.Proto == "tcp" {
			return k, "exposes " + p.String(), true
		}
	}
	for _, b := range c.Ports {
		if k, ok := dataPorts[b.ContainerPort.Number]; ok && b.ContainerPort.Proto == "tcp" {
			return k, "publishes " + b.ContainerPort.String(), true
		}
	}
	return "", "", false
}

// DataPort names the data service that usually listens on port p, or "".
func DataPort(p l4.Port) string {
	if p.Proto != "tcp" {
		return ""
	}
	return dataPorts[p.Number]
}

// ImageRepo returns the last path element of an image reference without
// tag or digest: "docker.io/library/postgres:15" -> "postgres".
func ImageRepo(image string) string {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndexByte(image, '/'); i >= 0 {
		image = image[i+1:]
	}
	if i := strings.IndexByte(image, ':'); i >= 0 {
		image = image[:i]
	}
	return strings.ToLower(image)
}

// untrustedWords mark development, test and third-party things when they
// appear as a whole word in a name ("dev-tool", "shop_staging").
var untrustedWords = map[string]bool{
	"dev": true, "devel": true, "development": true, "test": true, "testing": true,
	"staging": true, "stage": true, "sandbox": true, "ci": true, "playground": true,
	"scratch": true, "untrusted": true, "thirdparty": true, "third-party": true,
	"vendor": true, "experimental": true, "tmp": true, "temp": true,
}

// Untrusted says whether c belongs to a lower trust level (development,
// staging, test, third-party) and why: its zonewarden.trust label, or a
// word in its compose project or name.
func Untrusted(c *Container) (reason string, ok bool) {
	switch v := strings.ToLower(c.Labels[LabelTrust]); v {
	case "untrusted", "dev", "development", "staging", "test", "third-party", "thirdparty":
		return "label " + LabelTrust + "=" + v, true
	case "trusted", "production", "prod":
		return "", false
	}
	if p := c.ComposeProject(); p != "" && UntrustedName(p) {
		return "compose project " + p, true
	}
	if UntrustedName(c.Name) {
		return "name " + c.Name, true
	}
	return "", false
}

// UntrustedName reports whether a name contains a development, test or
// third-party word.
func UntrustedName(name string) bool {
	if untrustedWords[strings.ToLower(name)] {
		return true
	}
	for _, w := range strings.FieldsFunc(strings.ToLower(name), func(r rune) bool {
		return r == '-' || r == '_' || r == '.' || r == '/' || r == ' '
	}) {
		if untrustedWords[w] {
			return true
		}
	}
	return false
}

// AdminService is a debugger or administration interface: whoever reaches
// it runs code in the container, or on the host.
type AdminService struct {
	Port uint16 // the TCP port it listens on by default
	Name string // "Node.js inspector"
	// Risk says what reaching it gives: "runs arbitrary JavaScript in the
	// process".
	Risk string
}

// AdminServices are the debugger and administration interfaces known by
// their default TCP port, in port order.
var AdminServices = []AdminService{
	{1099, "Java RMI registry (JMX)", "deserialises what clients send: remote code execution in the JVM"},
	{2345, "Go debugger (dlv --listen)", "calls any function and rewrites memory of the debugged process"},
	{2375, "Docker Engine API without TLS", "starts privileged containers: root on the host"},
	{2376, "Docker Engine API over TLS", "starts privileged containers for every client its TLS accepts: root on the host"},
	{2379, "etcd client API", "reads and rewrites every key, the secrets of what it stores included"},
	{4369, "Erlang port mapper (epmd)", "lists the Erlang nodes; with a node's cookie, a remote shell in it"},
	{5005, "Java debugger (JDWP)", "loads and runs arbitrary code in the JVM"},
	{5678, "Python debugger (debugpy)", "evaluates arbitrary Python in the process"},
	{8500, "Consul HTTP API", "registers services and, with script checks on, runs commands on the agent"},
	{8888, "Jupyter", "opens terminals and runs code cells, unless a token or password guards it"},
	{9229, "Node.js inspector (--inspect)", "runs arbitrary JavaScript in the process"},
	{10250, "Kubernetes kubelet API", "runs commands in every pod of the node"},
}

// AdminPort returns the debugger or administration interface that usually
// listens on container port p.
func AdminPort(p l4.Port) (AdminService, bool) {
	if p.Proto != "tcp" {
		return AdminService{}, false
	}
	for _, s := range AdminServices {
		if s.Port == p.Number {
			return s, true
		}
	}
	return AdminService{}, false
}
