package compose_test

// The projects live in testdata/compose/, one directory each:
//
//	threetier/        proxy -> app (2 replicas) -> db; backend is internal,
//	                  ICC off, IPv4 172.30.1.0/24 and IPv6 fd00:30:1::/64,
//	                  db fixed at 172.30.1.10 and fd00:30:1::10. .env sets
//	                  PG_VERSION=16. Published: 80, [::]:8443 and
//	                  127.0.0.1:5432.
//	hostnet/          name: monitoring; host, none, bridge and
//	                  service:/container: namespace sharing.
//	merged/           compose.yaml + compose.prod.yaml (-f a -f b).
//	shared/edge/      both join the existing network "shared", under
//	shared/billing/   different keys.
//	broken/           one problem per file, for error positions.
//	badenv/           a .env file with an unterminated quote.
//
// No other addresses are fixed: Docker's IPAM picks them at start, so the
// snapshot leaves them unset.

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/inventory/compose"
	"github.com/zonewarden/zonewarden/internal/l4"
)

// td is the path of a file under testdata/compose, as a user would pass it.
func td(path string) string {
	return filepath.Join("..", "..", "..", "testdata", "compose", path)
}

// hermetic reads no variable from the test process's environment.
var hermetic = compose.Options{Env: []string{}}

func TestLoadProjects(t *testing.T) {
	backups, err := filepath.Abs(td("threetier/backups"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files []string
		opts  compose.Options
		want  inventory.Snapshot
	}{
		{
			name:  "three tiers, internal IPv6 backend, .env",
			files: []string{td("threetier/compose.yaml")},
			opts:  hermetic,
			want: inventory.Snapshot{
				Networks: []inventory.Network{
					{
						Name: "threetier_backend", Driver: "bridge", Internal: true, ICC: false, EnableIPv6: true,
						Subnets: []inventory.Subnet{
							{Prefix: netip.MustParsePrefix("172.30.1.0/24"), Gateway: netip.MustParseAddr("172.30.1.1")},
							{Prefix: netip.MustParsePrefix("fd00:30:1::/64")},
						},
						Options: map[string]string{"com.docker.network.bridge.enable_icc": "false"},
						Labels:  networkLabels("threetier", "backend", "zone", "database-tier"),
					},
					{Name: "threetier_default", Driver: "bridge", ICC: true, Labels: networkLabels("threetier", "default")},
					{Name: "threetier_frontend", Driver: "bridge", ICC: true, Labels: networkLabels("threetier", "frontend")},
				},
				Containers: []inventory.Container{
					threetierApp("threetier-app-1"),
					threetierApp("threetier-app-2"),
					{
						Name: "threetier-backup-1", Image: "restic/restic", State: "defined",
						Labels:      composeLabels("threetier", "backup"),
						NetworkMode: "threetier_default",
						Endpoints: []inventory.Endpoint{
							{Network: "threetier_default", Aliases: []string{"threetier-backup-1", "backup"}},
						},
						Mounts: []inventory.Mount{
							{Type: "bind", Source: backups, Destination: "/backups", ReadOnly: true},
							{Type: "bind", Source: "/var/run/docker.sock", Destination: "/var/run/docker.sock"},
						},
					},
					{
						Name: "threetier-db-1", Image: "postgres:16", State: "defined",
						Labels:      composeLabels("threetier", "db", "zonewarden.sensitive", "true"),
						NetworkMode: "threetier_backend",
						Endpoints: []inventory.Endpoint{{
							Network: "threetier_backend",
							IPv4:    netip.MustParseAddr("172.30.1.10"),
							IPv6:    netip.MustParseAddr("fd00:30:1::10"),
							Aliases: []string{"threetier-db-1", "db"},
						}},
						Ports:        []inventory.PortBinding{binding("127.0.0.1", 5432, 5432, "tcp")},
						ExposedPorts: ports("5432/tcp"),
						Mounts:       []inventory.Mount{{Type: "volume", Source: "threetier_dbdata", Destination: "/var/lib/postgresql/data"}},
					},
					{
						Name: "threetier-proxy-1", Image: "nginx:1.27", State: "defined",
						Labels:      composeLabels("threetier", "proxy"),
						NetworkMode: "threetier_frontend",
						Endpoints: []inventory.Endpoint{
							{Network: "threetier_frontend", Aliases: []string{"threetier-proxy-1", "proxy"}},
						},
						Ports: []inventory.PortBinding{
							binding("", 80, 80, "tcp"),
							binding("::", 8443, 443, "tcp"),
						},
						ExposedPorts:   ports("80/tcp", "443/tcp"),
						ReadOnlyRootfs: true,
						CapAdd:         []string{"NET_BIND_SERVICE"},
						CapDrop:        []string{"ALL"},
					},
				},
			},
		},
		{
			name:  "host, none, default bridge and shared namespaces",
			files: []string{td("hostnet/compose.yaml")},
			opts:  hermetic,
			want: inventory.Snapshot{
				Networks: []inventory.Network{
					{Name: "bridge", Driver: "bridge", ICC: true, Bridge: "docker0", External: true},
					{Name: "monitoring_default", Driver: "bridge", ICC: true, Labels: networkLabels("monitoring", "default")},
				},
				Containers: []inventory.Container{
					{
						Name: "batch-offline", Image: "example/batch", State: "defined",
						Labels:      composeLabels("monitoring", "offline"),
						NetworkMode: "none",
					},
					{
						Name: "monitoring-agent-1", Image: "example/node-exporter", State: "defined",
						Labels:      composeLabels("monitoring", "agent"),
						NetworkMode: "host",
						Privileged:  true,
						PidMode:     "host",
						Mounts:      []inventory.Mount{{Type: "bind", Source: "/", Destination: "/host", ReadOnly: true}},
					},
					{
						Name: "monitoring-app-1", Image: "example/app", State: "defined",
						Labels:      composeLabels("monitoring", "app"),
						NetworkMode: "monitoring_default",
						Endpoints: []inventory.Endpoint{
							{Network: "monitoring_default", Aliases: []string{"monitoring-app-1", "app"}},
						},
						Ports: []inventory.PortBinding{
							binding("", 0, 7000, "tcp"),
							binding("", 9000, 9000, "tcp"),
							binding("", 9001, 9001, "tcp"),
						},
						ExposedPorts: ports("7000/tcp", "9000/tcp", "9001/tcp"),
					},
					{
						Name: "monitoring-legacy-1", Image: "example/legacy", State: "defined",
						Labels:      composeLabels("monitoring", "legacy"),
						NetworkMode: "bridge",
						Endpoints:   []inventory.Endpoint{{Network: "bridge"}},
						Ports: []inventory.PortBinding{
							binding("::1", 2222, 22, "tcp"),
							binding("", 53, 53, "udp"),
						},
						ExposedPorts: ports("22/tcp", "53/udp"),
					},
					{
						Name: "monitoring-sidecar-1", Image: "example/envoy", State: "defined",
						Labels:      composeLabels("monitoring", "sidecar"),
						NetworkMode: "container:monitoring-app-1",
						IpcMode:     "container:monitoring-app-1",
						// compose adds the dependency on the namespace's owner
						Refs: []inventory.Ref{{Service: "app", Via: "depends_on"}},
					},
				},
			},
		},
		{
			name:  "two files merged in order",
			files: []string{td("merged/compose.yaml"), td("merged/compose.prod.yaml")},
			opts:  compose.Options{Env: []string{"WEB_TAG=2.1"}},
			want: inventory.Snapshot{
				Networks: []inventory.Network{
					{Name: "merged_back", Driver: "bridge", Internal: true, ICC: true, Labels: networkLabels("merged", "back")},
					{Name: "prod-front", Driver: "bridge", ICC: true, Labels: networkLabels("merged", "front")},
				},
				Containers: []inventory.Container{
					{
						Name: "merged-cache-1", Image: "redis:7", State: "defined",
						Labels:      composeLabels("merged", "cache"),
						NetworkMode: "merged_back",
						Endpoints: []inventory.Endpoint{
							{Network: "merged_back", Aliases: []string{"merged-cache-1", "cache"}},
						},
					},
					mergedWeb("merged-web-1", "example/web:2.1"),
					mergedWeb("merged-web-2", "example/web:2.1"),
					mergedWeb("merged-web-3", "example/web:2.1"),
				},
			},
		},
		{
			name:  "project name given",
			files: []string{td("merged/compose.yaml")},
			opts:  compose.Options{ProjectName: "shop", Env: []string{}},
			want: inventory.Snapshot{
				Networks: []inventory.Network{
					{Name: "shop_default", Driver: "bridge", ICC: true, Labels: networkLabels("shop", "default")},
					{Name: "shop_front", Driver: "bridge", ICC: true, Labels: networkLabels("shop", "front")},
				},
				Containers: []inventory.Container{
					{
						Name: "shop-cache-1", Image: "redis:7", State: "defined",
						Labels:      composeLabels("shop", "cache"),
						NetworkMode: "shop_default",
						Endpoints: []inventory.Endpoint{
							{Network: "shop_default", Aliases: []string{"shop-cache-1", "cache"}},
						},
					},
					{
						Name: "shop-web-1", Image: "example/web:dev", State: "defined",
						Labels:      composeLabels("shop", "web"),
						NetworkMode: "shop_front",
						Endpoints: []inventory.Endpoint{
							{Network: "shop_front", Aliases: []string{"shop-web-1", "web"}},
						},
						Ports:        []inventory.PortBinding{binding("", 8080, 80, "tcp")},
						ExposedPorts: ports("80/tcp"),
					},
				},
			},
		},
		{
			name:  "external network, first project",
			files: []string{td("shared/edge/compose.yaml")},
			opts:  hermetic,
			want: inventory.Snapshot{
				Networks: []inventory.Network{
					{Name: "edge_default", Driver: "bridge", ICC: true, Labels: networkLabels("edge", "default")},
					{Name: "shared", Driver: "bridge", ICC: true, External: true},
				},
				Containers: []inventory.Container{
					{
						Name: "edge-auth-1", Image: "example/auth", State: "defined",
						Labels:      composeLabels("edge", "auth"),
						NetworkMode: "edge_default",
						Endpoints: []inventory.Endpoint{
							{Network: "edge_default", Aliases: []string{"edge-auth-1", "auth"}},
						},
					},
					{
						Name: "edge-gateway-1", Image: "traefik:3", State: "defined",
						Labels:      composeLabels("edge", "gateway"),
						NetworkMode: "edge_default",
						Endpoints: []inventory.Endpoint{
							{Network: "edge_default", Aliases: []string{"edge-gateway-1", "gateway"}},
							{Network: "shared", Aliases: []string{"edge-gateway-1", "gateway"}},
						},
						Ports:        []inventory.PortBinding{binding("", 443, 443, "tcp")},
						ExposedPorts: ports("443/tcp"),
					},
				},
			},
		},
		{
			name:  "external network, second project",
			files: []string{td("shared/billing/compose.yaml")},
			opts:  hermetic,
			want: inventory.Snapshot{
				Networks: []inventory.Network{
					{Name: "shared", Driver: "bridge", ICC: true, External: true},
				},
				Containers: []inventory.Container{
					{
						Name: "billing-invoices-1", Image: "example/invoices", State: "defined",
						Labels:      composeLabels("billing", "invoices"),
						NetworkMode: "shared",
						Endpoints: []inventory.Endpoint{
							{Network: "shared", Aliases: []string{"billing-invoices-1", "invoices", "billing"}},
						},
					},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := compose.Load(context.Background(), tt.files, tt.opts)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := tt.want
			want.Version = inventory.SchemaVersion
			want.Source = inventory.Source{Kind: "compose", Detail: strings.Join(tt.files, ",")}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("Load(%v) =\n%s\nwant\n%s", tt.files, asJSON(t, got), asJSON(t, &want))
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func threetierApp(name string) inventory.Container {
	return inventory.Container{
		Name: name, Image: "threetier-app", State: "defined",
		Labels:      composeLabels("threetier", "app"),
		NetworkMode: "threetier_backend", // first network by name: compose's order
		Endpoints: []inventory.Endpoint{
			{Network: "threetier_backend", Aliases: []string{name, "app"}},
			{Network: "threetier_frontend", Aliases: []string{name, "app", "api"}},
		},
		ExposedPorts: ports("8080/tcp"),
		SecurityOpt:  []string{"no-new-privileges:true"},
		User:         "1000:1000",
	}
}

func mergedWeb(name, image string) inventory.Container {
	return inventory.Container{
		Name: name, Image: image, State: "defined",
		Labels:      composeLabels("merged", "web"),
		NetworkMode: "merged_back",
		Endpoints: []inventory.Endpoint{
			{Network: "merged_back", Aliases: []string{name, "web"}},
			{Network: "prod-front", Aliases: []string{name, "web"}},
		},
		Ports: []inventory.PortBinding{
			binding("", 8080, 80, "tcp"),
			binding("0.0.0.0", 8443, 443, "tcp"),
		},
		ExposedPorts: ports("80/tcp", "443/tcp"),
	}
}

// TestLoadSharedNetwork checks that two projects joining one external
// network name the same network, so that their snapshots can be read
// together.
func TestLoadSharedNetwork(t *testing.T) {
	members := map[string][]string{}
	for _, file := range []string{td("shared/edge/compose.yaml"), td("shared/billing/compose.yaml")} {
		snap, err := compose.Load(context.Background(), []string{file}, hermetic)
		if err != nil {
			t.Fatal(err)
		}
		n := inventory.NewIndex(snap).Network("shared")
		if n == nil || !n.External {
			t.Fatalf("%s: network shared = %+v, want an external network", file, n)
		}
		for _, c := range inventory.NewIndex(snap).Members("shared") {
			members["shared"] = append(members["shared"], c.Name)
		}
	}
	if want := []string{"edge-gateway-1", "billing-invoices-1"}; !reflect.DeepEqual(members["shared"], want) {
		t.Errorf("members of shared = %v, want %v", members["shared"], want)
	}
}

func TestLoadEnvironmentAndProfiles(t *testing.T) {
	file := td("threetier/compose.yaml")
	tests := []struct {
		name      string
		setenv    map[string]string // process environment, for Env == nil
		opts      compose.Options
		wantImage string // of threetier-db-1, or the renamed project's
		wantNames []string
	}{
		{
			name:      ".env fills what the environment does not",
			opts:      hermetic,
			wantImage: "postgres:16",
			wantNames: []string{"threetier-app-1", "threetier-app-2", "threetier-backup-1", "threetier-db-1", "threetier-proxy-1"},
		},
		{
			name:      "Env wins over .env",
			opts:      compose.Options{Env: []string{"PG_VERSION=17"}},
			wantImage: "postgres:17",
			wantNames: []string{"threetier-app-1", "threetier-app-2", "threetier-backup-1", "threetier-db-1", "threetier-proxy-1"},
		},
		{
			name:      "process environment when Env is nil",
			setenv:    map[string]string{"PG_VERSION": "15", "COMPOSE_PROJECT_NAME": "", "COMPOSE_PROFILES": ""},
			wantImage: "postgres:15",
			wantNames: []string{"threetier-app-1", "threetier-app-2", "threetier-backup-1", "threetier-db-1", "threetier-proxy-1"},
		},
		{
			name:      "COMPOSE_PROJECT_NAME and COMPOSE_PROFILES",
			opts:      compose.Options{Env: []string{"COMPOSE_PROJECT_NAME=staging", "COMPOSE_PROFILES=debug"}},
			wantImage: "postgres:16",
			wantNames: []string{"staging-app-1", "staging-app-2", "staging-backup-1", "staging-db-1", "staging-debug-1", "staging-proxy-1"},
		},
		{
			name:      "profiles option",
			opts:      compose.Options{Profiles: []string{"debug"}, Env: []string{}},
			wantImage: "postgres:16",
			wantNames: []string{"threetier-app-1", "threetier-app-2", "threetier-backup-1", "threetier-db-1", "threetier-debug-1", "threetier-proxy-1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.setenv {
				t.Setenv(k, v)
			}
			snap, err := compose.Load(context.Background(), []string{file}, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			image := ""
			for _, c := range snap.Containers {
				names = append(names, c.Name)
				if c.ComposeService() == "db" {
					image = c.Image
				}
			}
			if !reflect.DeepEqual(names, tt.wantNames) {
				t.Errorf("containers = %v, want %v", names, tt.wantNames)
			}
			if image != tt.wantImage {
				t.Errorf("db image = %q, want %q", image, tt.wantImage)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files []string
		opts  compose.Options
		want  string
		// wantLine is the line of the *inventory.DecodeError; 0 for none.
		wantLine, wantCol int
	}{
		{
			name:  "missing file",
			files: []string{td("broken/ok.yaml"), td("broken/missing.yaml")},
			want:  td("broken/missing.yaml") + ": no such compose file (check the path, relative to " + wd + ")",
		},
		{
			name:     "indentation",
			files:    []string{td("broken/indent.yaml")},
			want:     td("broken/indent.yaml") + ":4:4: did not find expected key (while parsing a block mapping at 2:3); check the indentation and quoting",
			wantLine: 4, wantCol: 4,
		},
		{
			name:     "syntax error in the second file",
			files:    []string{td("broken/ok.yaml"), td("broken/indent.yaml")},
			want:     td("broken/indent.yaml") + ":4:4: did not find expected key (while parsing a block mapping at 2:3); check the indentation and quoting",
			wantLine: 4, wantCol: 4,
		},
		{
			name:     "syntax error with a project name given",
			files:    []string{td("broken/indent.yaml")},
			opts:     compose.Options{ProjectName: "p", Env: []string{}},
			want:     td("broken/indent.yaml") + ":4:4: did not find expected key (while parsing a block mapping at 2:3); check the indentation and quoting",
			wantLine: 4, wantCol: 4,
		},
		{
			name:     "tab",
			files:    []string{td("broken/tab.yaml")},
			want:     td("broken/tab.yaml") + ":3:1: found character that cannot start any token; check the indentation and quoting",
			wantLine: 3, wantCol: 1,
		},
		{
			name:     "unclosed flow sequence",
			files:    []string{td("broken/unclosed.yaml")},
			want:     td("broken/unclosed.yaml") + ":5:3: did not find expected ',' or ']' (while parsing a flow sequence at 4:12); check the indentation and quoting",
			wantLine: 5, wantCol: 3,
		},
		{
			name:     "bad escape in a quoted string",
			files:    []string{td("broken/quote.yaml")},
			want:     td("broken/quote.yaml") + ":4:27: found unknown escape character (while scanning a quoted scalar at 4:14); check the indentation and quoting",
			wantLine: 4, wantCol: 27,
		},
		{
			name:     "duplicate key",
			files:    []string{td("broken/duplicate.yaml")},
			want:     td("broken/duplicate.yaml") + `:4:3: mapping key "web" already defined at line 2`,
			wantLine: 4, wantCol: 3,
		},
		{
			name:     "unknown attribute",
			files:    []string{td("broken/unknown.yaml")},
			want:     td("broken/unknown.yaml") + ":4:5: services.web.prots: not an attribute of the compose specification (check the spelling and the indentation)",
			wantLine: 4, wantCol: 5,
		},
		{
			name:     "bad interpolation",
			files:    []string{td("broken/interpolation.yaml")},
			want:     td("broken/interpolation.yaml") + `:3:5: services.web.image: invalid interpolation in "nginx:${TAG" (close ${...}, or write $$ for a literal $)`,
			wantLine: 3, wantCol: 5,
		},
		{
			name:     "bad interpolation in the override",
			files:    []string{td("broken/ok.yaml"), td("broken/override-bad.yaml")},
			want:     td("broken/override-bad.yaml") + `:4:5: services.web.image: invalid interpolation in "nginx:${TAG" (close ${...}, or write $$ for a literal $)`,
			wantLine: 4, wantCol: 5,
		},
		{
			name:     "undefined network",
			files:    []string{td("broken/undefined-network.yaml")},
			want:     td("broken/undefined-network.yaml") + ":4:5: services.web: uses network backend, which the top-level networks section does not declare (declare it there; add external: true if it exists already)",
			wantLine: 4, wantCol: 5,
		},
		{
			name:     "bad .env",
			files:    []string{td("badenv/compose.yaml")},
			want:     td("badenv/.env") + `:3:1: unterminated quoted value "hello`,
			wantLine: 3, wantCol: 1,
		},
		{
			name:  "empty file",
			files: []string{td("broken/empty.yaml")},
			want:  td("broken/empty.yaml") + ": the compose file is empty: define at least one service",
		},
		{
			name:     "fixed address on replicas",
			files:    []string{td("broken/fixed-ip-replicas.yaml")},
			want:     td("broken/fixed-ip-replicas.yaml") + ":8:9: services.db.networks.data.ipv4_address: 2 replicas cannot share the fixed address 10.9.0.5 (Docker refuses the second): set scale to 1 or drop the address",
			wantLine: 8, wantCol: 9,
		},
		{
			name:     "container name clash",
			files:    []string{td("broken/name-clash.yaml")},
			want:     td("broken/name-clash.yaml") + `:7:5: services.admin.container_name: container name "shop-web-1" is also used by service web: container names must be unique on a host (change container_name)`,
			wantLine: 7, wantCol: 5,
		},
		{
			name:     "namespace of a service without containers",
			files:    []string{td("broken/shared-with-nothing.yaml")},
			want:     td("broken/shared-with-nothing.yaml") + `:8:5: services.sidecar.network_mode: "service:app": service app creates no container (scale 0 or provider), so there is no namespace to join`,
			wantLine: 8, wantCol: 5,
		},
		{
			name:     "too many replicas",
			files:    []string{td("broken/too-many-replicas.yaml")},
			want:     td("broken/too-many-replicas.yaml") + ":3:3: services.web: the project asks for more than 10000 containers in all: lower scale or deploy.replicas",
			wantLine: 3, wantCol: 3,
		},
		{
			name:     "too many published ports",
			files:    []string{td("broken/too-many.yaml")},
			want:     td("broken/too-many.yaml") + ":6:5: services.web.ports: the project publishes more than 1048576 ports in all: narrow the port ranges",
			wantLine: 6, wantCol: 5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			if opts.Env == nil {
				opts.Env = []string{}
			}
			snap, err := compose.Load(context.Background(), tt.files, opts)
			if err == nil {
				t.Fatalf("Load(%v) = %d containers, want error %q", tt.files, len(snap.Containers), tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
			var de *inventory.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error is %T, want *inventory.DecodeError", err)
			}
			if de.Line != tt.wantLine || de.Col != tt.wantCol {
				t.Errorf("position = %d:%d, want %d:%d", de.Line, de.Col, tt.wantLine, tt.wantCol)
			}
		})
	}
}

func TestLoadBadArguments(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		opts  compose.Options
		want  string
	}{
		{"no files", nil, hermetic, "no compose file given: name at least one"},
		{"bad project name", []string{td("broken/ok.yaml")}, compose.Options{ProjectName: "My Shop", Env: []string{}},
			`invalid project name "My Shop": must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number (for example "myshop")`},
		{"bad project name in the environment", []string{td("broken/ok.yaml")}, compose.Options{Env: []string{"COMPOSE_PROJECT_NAME=Shop"}},
			`COMPOSE_PROJECT_NAME: invalid project name "Shop": must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number (for example "shop")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compose.Load(context.Background(), tt.files, tt.opts)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Load error = %v, want %s", err, tt.want)
			}
		})
	}
}

func composeLabels(project, service string, extra ...string) map[string]string {
	labels := map[string]string{
		inventory.LabelComposeProject: project,
		inventory.LabelComposeService: service,
	}
	for i := 0; i+1 < len(extra); i += 2 {
		labels[extra[i]] = extra[i+1]
	}
	return labels
}

func networkLabels(project, key string, extra ...string) map[string]string {
	labels := map[string]string{
		inventory.LabelComposeProject: project,
		"com.docker.compose.network":  key,
	}
	for i := 0; i+1 < len(extra); i += 2 {
		labels[extra[i]] = extra[i+1]
	}
	return labels
}

// binding publishes container port/proto on hostIP:hostPort; "" is every
// interface, as compose leaves it.
func binding(hostIP string, hostPort, port uint16, proto string) inventory.PortBinding {
	b := inventory.PortBinding{ContainerPort: l4.Port{Number: port, Proto: proto}, HostPort: hostPort}
	if hostIP != "" {
		b.HostIP = netip.MustParseAddr(hostIP)
	}
	return b
}

// ports parses "8080/tcp" entries.
func ports(specs ...string) []l4.Port {
	var out []l4.Port
	for _, s := range specs {
		number, proto, _ := strings.Cut(s, "/")
		n, err := strconv.ParseUint(number, 10, 16)
		if err != nil {
			panic("bad port in test: " + s)
		}
		out = append(out, l4.Port{Number: uint16(n), Proto: proto})
	}
	return out
}

func asJSON(t *testing.T, s *inventory.Snapshot) string {
	t.Helper()
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
