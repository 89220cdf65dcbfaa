package compose

import (
	"testing"
)

// TestYAMLPosition pins how go.yaml.in/yaml/v4 messages are read. The
// parser's lines come 0-based, the scanner's and decoder's 1-based.
func TestYAMLPosition(t *testing.T) {
	content := []byte("services:\n  web:\n    image: nginx\n  web:\n    image: httpd\n")
	tests := []struct {
		msg         string
		line, col   int
		wantProblem string
		wantOK      bool
	}{
		{
			msg:  "yaml: while parsing a block mapping at line 1, column 3: line 3, column 4: did not find expected key",
			line: 4, col: 4, wantOK: true,
			wantProblem: "did not find expected key (while parsing a block mapping at 2:3); check the indentation and quoting",
		},
		{
			msg:  "yaml: while scanning a quoted scalar at line 4, column 12: line 5: found unexpected end of stream",
			line: 5, col: 1, wantOK: true,
			wantProblem: "found unexpected end of stream (while scanning a quoted scalar at 4:12); check the indentation and quoting",
		},
		{
			msg:  "yaml: line 5, column 11: mapping values are not allowed in this context",
			line: 5, col: 11, wantOK: true,
			wantProblem: "mapping values are not allowed in this context; check the indentation and quoting",
		},
		{
			msg:  "yaml: while scanning for the next token at line 4, column 3: found character that cannot start any token",
			line: 4, col: 3, wantOK: true,
			wantProblem: "found character that cannot start any token; check the indentation and quoting",
		},
		{
			msg:  "yaml: line 2, column 5: did not find expected node content",
			line: 3, col: 5, wantOK: true,
			wantProblem: "did not find expected node content; check the indentation and quoting",
		},
		{
			msg:  "yaml: line 3, column 13: unknown anchor 'foo' referenced",
			line: 3, col: 12, wantOK: true,
			wantProblem: "unknown anchor 'foo' referenced; check the indentation and quoting",
		},
		{
			msg:  "yaml: construct errors:\n  line 1: line 4: mapping key \"web\" already defined at line 2\n  line 9: other",
			line: 4, col: 3, wantOK: true,
			wantProblem: `mapping key "web" already defined at line 2`,
		},
		{msg: "services.web.ports must be a array"},
		{msg: "yaml: attempted to go past the end of stream; corrupted value?"},
	}
	for _, tt := range tests {
		line, col, problem, ok := yamlPosition(tt.msg, content)
		if ok != tt.wantOK || line != tt.line || col != tt.col || problem != tt.wantProblem {
			t.Errorf("yamlPosition(%q) = %d, %d, %q, %v; want %d, %d, %q, %v",
				tt.msg, line, col, problem, ok, tt.line, tt.col, tt.wantProblem, tt.wantOK)
		}
	}
}

func TestKeyPosition(t *testing.T) {
	content := []byte(`# comment
services:
  web:
    image: nginx   # not db's
    ports: ["80"]

  "db":
    image: postgres
    networks:
      back:
        ipv4_address: 10.0.0.5
networks:
  back: {}
`)
	tests := []struct {
		path             string
		line, col, depth int
	}{
		{"services", 2, 1, 1},
		{"services.db.image", 8, 5, 3},
		{"services.web.image", 4, 5, 3},
		{"services.db.networks.back.ipv4_address", 11, 9, 5},
		{"services.web.ports.[]", 5, 5, 3},
		{"services.web.ports.0.target", 5, 5, 3},
		{"services.web.networks", 3, 3, 2}, // web has none: stops at web
		{"networks.back", 13, 3, 2},
		{"volumes", 0, 0, 0},
		{"", 0, 0, 0},
	}
	for _, tt := range tests {
		line, col, depth := keyPosition(content, tt.path)
		if line != tt.line || col != tt.col || depth != tt.depth {
			t.Errorf("keyPosition(%q) = %d:%d depth %d, want %d:%d depth %d", tt.path, line, col, depth, tt.line, tt.col, tt.depth)
		}
	}
}

func TestModelPath(t *testing.T) {
	tests := []struct{ msg, want string }{
		{"services.web.ports must be a array", "services.web.ports"},
		{"services.web.deploy.replicas: must be greater than or equal to 0", "services.web.deploy.replicas"},
		{"services.web.prots false schema", "services.web.prots"},
		{"additional properties 'bogus' not allowed", "bogus"},
		{"invalid interpolation format for services.web.image. You may need to escape any $ with another $. x${", "services.web.image"},
		{"error while interpolating services.web.ports.[].target: failed to cast", "services.web.ports.[].target"},
		{`service "web" refers to undefined network backend`, "services.web.networks"},
		{`service "web" depends on undefined service "db"`, "services.web"},
		{"services.web.ports[2]: published: \"x\" is not a port number (1-65535)", "services.web.ports"},
		{"invalid containerPort: def", ""},
		{"empty compose file", ""},
	}
	for _, tt := range tests {
		if got := modelPath(tt.msg); got != tt.want {
			t.Errorf("modelPath(%q) = %q, want %q", tt.msg, got, tt.want)
		}
	}
}
