package cli

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGraphFormats(t *testing.T) {
	snap := demoSnapshot(t)
	dir := t.TempDir()
	tests := []struct {
		args []string
		file string // "" for standard output
		want string // at the start of the output
	}{
		{[]string{}, "", `<?xml version="1.0"`},
		{[]string{"--format", "dot"}, "", "// zonewarden: "},
		{[]string{"--format", "mermaid"}, "", "%% zonewarden: "},
		{[]string{"-o", "host.svg"}, "host.svg", `<?xml version="1.0"`},
		{[]string{"-o", "host.html"}, "host.html", "<!DOCTYPE html>"},
		{[]string{"-o", "host.dot"}, "host.dot", "// zonewarden: "},
		{[]string{"-o", "host.mmd"}, "host.mmd", "%% zonewarden: "},
		{[]string{"-o", "zones.md"}, "zones.md", "```mermaid\n"},
		{[]string{"--format", "dot", "-o", "graph.txt"}, "graph.txt", "// zonewarden: "},
		{[]string{"--highlight", "dev-box", "--format", "dot"}, "", "// zonewarden: "},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			args := []string{"graph", "--snapshot", snap}
			for _, a := range tt.args {
				if strings.Contains(a, ".") {
					a = filepath.Join(dir, a)
				}
				args = append(args, a)
			}
			code, out, stderr := run(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if tt.file != "" {
				if out != "" {
					t.Errorf("wrote %d bytes to standard output as well", len(out))
				}
				b, err := os.ReadFile(filepath.Join(dir, tt.file))
				if err != nil {
					t.Fatal(err)
				}
				out = string(b)
			}
			if !strings.HasPrefix(out, tt.want) {
				t.Errorf("output starts %q, want %q", out[:min(len(out), 40)], tt.want)
			}
			for _, c := range []string{"customer-db", "staging-api", "metrics-agent"} {
				if !strings.Contains(out, c) {
					t.Errorf("output does not mention %s", c)
				}
			}
		})
	}
	// The SVG is well-formed and the HTML carries the findings and the
	// ranking.
	svg, _ := os.ReadFile(filepath.Join(dir, "host.svg"))
	if err := xml.Unmarshal(svg, new(struct{})); err != nil {
		t.Errorf("SVG is not well-formed: %v", err)
	}
	page, _ := os.ReadFile(filepath.Join(dir, "host.html"))
	for _, want := range []string{"published-bypasses-isolation", "Largest blast radii", `data-peer="dev-box"`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("HTML page lacks %q", want)
		}
	}
	_, dot, _ := run(t, "graph", "--snapshot", snap, "--format", "dot", "--highlight", "dev-box")
	if !strings.Contains(dot, "blast radius of dev-box") || !strings.Contains(dot, `class="path"`) {
		t.Error("--highlight dev-box draws no blast radius")
	}
}

func TestGraphErrors(t *testing.T) {
	snap := demoSnapshot(t)
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"unknown container", []string{"--highlight", "dev-bx"}, `no container "dev-bx" on this host; did you mean dev-box?`},
		{"pseudo-peer", []string{"--highlight", "host"}, `"host" is not a container`},
		{"unknown format", []string{"--format", "png"}, `unknown format "png"`},
		{"unknown extension", []string{"-o", filepath.Join(t.TempDir(), "host.png")}, "cannot tell the format"},
		{"bad fold", []string{"--fold-above", "-3"}, "--fold-above"},
		{"unwritable", []string{"-o", "/nonexistent/dir/host.svg"}, "cannot write the graph"},
		{"missing snapshot", []string{"--snapshot", "/nonexistent/host.json"}, "/nonexistent/host.json"},
		{"arguments", []string{"dev-box"}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"graph", "--snapshot", snap}, tt.args...)
			code, out, stderr := run(t, args...)
			if code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", code, stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.stderr)
			}
			if strings.Count(stderr, "\n") != 1 {
				t.Errorf("want exactly one line on stderr, got %q", stderr)
			}
			if out != "" {
				t.Errorf("wrote %d bytes to standard output", len(out))
			}
		})
	}
}
