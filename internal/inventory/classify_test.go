package inventory

import "testing"

// TestDefaultPorts: every kind of data service zonewarden recognises has
// a default port, which it recognises as that kind.
func TestDefaultPorts(t *testing.T) {
	kinds := map[string]bool{}
	for _, k := range dataImages {
		kinds[k] = true
	}
	for _, k := range dataPorts {
		kinds[k] = true
	}
	delete(kinds, "MySQL X protocol") // a second port of MySQL's
	for k := range kinds {
		p, ok := DefaultPort(k)
		if !ok {
			t.Errorf("%s has no default port", k)
			continue
		}
		if got := DataPort(p); got != k {
			t.Errorf("%s listens on %s by default, which DataPort names %q", k, p, got)
		}
	}
	if _, ok := DefaultPort("data service"); ok {
		t.Error("a service known by its label only has no default port")
	}
}
