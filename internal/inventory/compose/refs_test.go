package compose

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/zonewarden/zonewarden/internal/inventory"
)

// TestRefs: the evidence a service's configuration gives of whom it
// connects to, from real-world-shaped compose environments.
func TestRefs(t *testing.T) {
	str := func(s string) *string { return &s }
	p := &types.Project{Name: "shop", Services: types.Services{}}
	for _, name := range []string{"backend", "db", "cache", "search", "mongo1", "mongo2", "proxy"} {
		p.Services[name] = types.ServiceConfig{Name: name}
	}
	backend := types.ServiceConfig{Name: "backend"}
	backend.DependsOn = types.DependsOnConfig{"db": {Condition: "service_healthy"}, "cache": {}}
	backend.Environment = types.MappingWithEquals{
		"DATABASE_URL":      str("postgres://shop:s3cr3t@db:5432/shop?sslmode=disable"),
		"REDIS_URL":         str("redis://cache"),
		"ELASTIC_HOSTS":     str("http://search:9200,http://search:9201"),
		"MONGO_URI":         str("mongodb://mongo1:27017,mongo2:27017/app?replicaSet=rs0"),
		"DB_HOST":           str("db"),
		"CACHE_ADDR":        str("cache:6379"),
		"PUBLIC_URL":        str("https://shop.example.com"),
		"BACKEND_SELF":      str("http://backend:8000"),
		"UNSET":             nil,
		"GREETING":          str("hello db users"),
		"MYSQL_DSN_CLASSIC": str("user:pw@tcp(db:3306)/shop"),
	}
	got := refs(p, backend)
	want := []inventory.Ref{
		{Service: "cache", Via: "depends_on"},
		{Service: "db", Via: "depends_on"},
		{Service: "cache", Port: 6379, Via: "environment CACHE_ADDR"},
		{Service: "db", Port: 5432, Via: "environment DATABASE_URL"},
		{Service: "db", Via: "environment DB_HOST"},
		{Service: "search", Port: 9200, Via: "environment ELASTIC_HOSTS"},
		{Service: "search", Port: 9201, Via: "environment ELASTIC_HOSTS"},
		{Service: "mongo1", Port: 27017, Via: "environment MONGO_URI"},
		{Service: "mongo2", Port: 27017, Via: "environment MONGO_URI"},
		{Service: "db", Port: 3306, Via: "environment MYSQL_DSN_CLASSIC"},
		{Service: "cache", Via: "environment REDIS_URL"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("refs =\n%v\nwant\n%v", got, want)
	}
	for _, r := range got {
		if r.Service == "backend" {
			t.Errorf("a service names itself: %+v", r)
		}
	}
}

// TestConfigRefs: the upstreams of reverse proxy configurations mounted
// from the project's folder (nginx, Caddy, Traefik); a file outside the
// project, also behind a link, is never read.
func TestConfigRefs(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	write := func(path, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "nginx", "site.conf"), "upstream app { server backend:8000 weight=2; }\nlocation / { proxy_pass http://app; }\nlocation /php { fastcgi_pass php:9000; }\n")
	write(filepath.Join(dir, "Caddyfile"), "shop.example.com {\n\treverse_proxy backend:8000 web:80\n}\n")
	write(filepath.Join(dir, "traefik", "dynamic.yml"), "http:\n  services:\n    api:\n      loadBalancer:\n        servers:\n          - url: \"http://api:3000\"\n")
	write(filepath.Join(outside, "secret.conf"), "proxy_pass http://db:5432;\n")
	if err := os.Symlink(filepath.Join(outside, "secret.conf"), filepath.Join(dir, "nginx", "linked.conf")); err != nil {
		t.Fatal(err)
	}
	p := &types.Project{Name: "shop", WorkingDir: dir, Services: types.Services{}}
	services := map[string]bool{}
	for _, n := range []string{"backend", "php", "web", "api", "db"} {
		services[n] = true
	}
	svc := types.ServiceConfig{Name: "proxy"}
	svc.Volumes = []types.ServiceVolumeConfig{
		{Type: types.VolumeTypeBind, Source: filepath.Join(dir, "nginx"), Target: "/etc/nginx/conf.d"},
		{Type: types.VolumeTypeBind, Source: filepath.Join(dir, "Caddyfile"), Target: "/etc/caddy/Caddyfile"},
		{Type: types.VolumeTypeBind, Source: filepath.Join(dir, "traefik", "dynamic.yml"), Target: "/etc/traefik/dynamic.yml"},
		{Type: types.VolumeTypeBind, Source: filepath.Join(outside, "secret.conf"), Target: "/etc/other.conf"},
	}
	want := []inventory.Ref{
		{Service: "php", Port: 9000, Via: "config ./nginx/site.conf"},
		{Service: "backend", Port: 8000, Via: "config ./nginx/site.conf"},
		{Service: "backend", Port: 8000, Via: "config ./Caddyfile"},
		{Service: "web", Port: 80, Via: "config ./Caddyfile"},
		{Service: "api", Port: 3000, Via: "config ./traefik/dynamic.yml"},
	}
	if got := configRefs(p, svc, services); !reflect.DeepEqual(got, want) {
		t.Errorf("configRefs =\n%v\nwant\n%v", got, want)
	}
}
