package inventory

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func sampleSnapshot() *Snapshot {
	s, err := Decode([]byte(sampleJSON))
	if err != nil {
		panic(err)
	}
	return s
}

// Address plan: app network 172.20.0.0/16 (gateway .1), containers from .2;
// fd00:20::/64 for IPv6.
const sampleJSON = `{
  "version": 1,
  "source": {"kind": "docker", "detail": "unix:///var/run/docker.sock"},
  "daemon": {"version": "20.10.24", "bridge_nf_iptables": true},
  "networks": [
    {"name": "app", "driver": "bridge", "icc": true, "enable_ipv6": true,
     "subnets": [{"prefix": "172.20.0.0/16", "gateway": "172.20.0.1"}, {"prefix": "fd00:20::/64"}]},
    {"name": "bridge", "driver": "bridge", "icc": true}
  ],
  "containers": [
    {"name": "web", "state": "running", "network_mode": "app",
     "endpoints": [{"network": "app", "ipv4": "172.20.0.2", "ipv6": "fd00:20::2"}],
     "ports": [{"container_port": {"port": 80, "protocol": "tcp"}, "host_ip": "::", "host_port": 8080}]},
    {"name": "api", "state": "created", "endpoints": [{"network": "app"}]}
  ]
}`

func TestRoundTrip(t *testing.T) {
	s := sampleSnapshot()
	var buf bytes.Buffer
	if err := Encode(&buf, s); err != nil {
		t.Fatal(err)
	}
	again, err := Decode(buf.Bytes())
	if err != nil {
		t.Fatalf("decode of encoded snapshot: %v\n%s", err, buf.String())
	}
	Sort(s)
	if !reflect.DeepEqual(s, again) {
		t.Errorf("round trip changed the snapshot:\n%+v\n%+v", s, again)
	}
	if again.Containers[0].Name != "api" {
		t.Errorf("containers not sorted by name: %s first", again.Containers[0].Name)
	}
	if b := again.Containers[1].Ports[0]; !b.AllInterfaces() || b.HostAddress() != "[::]:8080" {
		t.Errorf("binding = %+v (%s)", b, b.HostAddress())
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"syntax", "{\n  \"version\": 1,\n  \"networks\": [,]\n}", "3:16: invalid character ','"},
		{"unknown field", "{\"version\": 1,\n \"contianers\": []}", `2:2: unknown field "contianers"`},
		{"wrong type", "{\"version\": 1,\n \"networks\": {}}", "2:15: field \"networks\": cannot use JSON object"},
		{"no version", `{"networks": []}`, `1:1: not a zonewarden snapshot: no "version" field`},
		{"future version", `{"version": 7}`, "1:1: snapshot version 7 is not supported"},
		{"truncated", "{\"version\": 1,\n \"networks\": [", "unexpected end of file"},
		{"bad address", "{\"version\": 1,\n \"networks\": [{\"name\": \"x\", \"subnets\": [{\"prefix\": \"10.0.0.0/33\"}]}]}", "10.0.0.0/33"},
		{"dangling endpoint", `{"version": 1, "containers": [{"name": "a", "endpoints": [{"network": "nope"}]}]}`, `endpoint on network "nope", which is not in networks`},
		{"duplicate", `{"version": 1, "containers": [{"name": "a"}, {"name": "a"}]}`, `container "a" appears twice`},
		{"trailing", `{"version": 1} {}`, "1:16:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.in))
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestReadFileNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "host.json")
	if err := os.WriteFile(path, []byte("{\"version\": 1,\n\"bogus\": 1}"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":2:") {
		t.Fatalf("error %v does not start with %s:2:", err, path)
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Fatalf("missing file error %v does not name the file", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(sampleJSON))
	f.Add([]byte(`{"version": 1}`))
	f.Add([]byte(`{"version": 1, "containers": [{"name": "a", "ports": [{"host_ip": "::1", "host_port": 1}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Decode(data)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := Encode(&buf, s); err != nil {
			t.Fatalf("encode of decoded snapshot: %v", err)
		}
		again, err := Decode(buf.Bytes())
		if err != nil {
			t.Fatalf("decode of re-encoded snapshot: %v\n%s", err, buf.String())
		}
		var buf2 bytes.Buffer
		if err := Encode(&buf2, again); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
			t.Fatalf("encoding is not stable:\n%s\n%s", buf.String(), buf2.String())
		}
	})
}
