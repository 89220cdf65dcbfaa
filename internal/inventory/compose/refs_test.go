package compose

import (
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
