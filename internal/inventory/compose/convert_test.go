package compose

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
)

func TestPortBindings(t *testing.T) {
	tcp := func(hostIP string, hostPort, port uint16) inventory.PortBinding {
		b := inventory.PortBinding{ContainerPort: l4.Port{Number: port, Proto: "tcp"}, HostPort: hostPort}
		if hostIP != "" {
			b.HostIP = netip.MustParseAddr(hostIP)
		}
		return b
	}
	tests := []struct {
		name    string
		in      types.ServicePortConfig
		want    []inventory.PortBinding
		wantErr string
	}{
		{"no host port", types.ServicePortConfig{Target: 80}, []inventory.PortBinding{tcp("", 0, 80)}, ""},
		{"every IPv6 address", types.ServicePortConfig{HostIP: "::", Target: 443, Published: "8443"}, []inventory.PortBinding{tcp("::", 8443, 443)}, ""},
		{"bracketed loopback", types.ServicePortConfig{HostIP: "[::1]", Target: 5432, Published: "5432"}, []inventory.PortBinding{tcp("::1", 5432, 5432)}, ""},
		{"IPv4-mapped", types.ServicePortConfig{HostIP: "::ffff:127.0.0.1", Target: 22, Published: "2222"}, []inventory.PortBinding{tcp("127.0.0.1", 2222, 22)}, ""},
		{"host range for one port", types.ServicePortConfig{Target: 80, Published: "9000-9002"},
			[]inventory.PortBinding{tcp("", 9000, 80), tcp("", 9001, 80), tcp("", 9002, 80)}, ""},
		{"protocol case", types.ServicePortConfig{Target: 53, Published: "53", Protocol: "UDP"},
			[]inventory.PortBinding{{ContainerPort: l4.Port{Number: 53, Proto: "udp"}, HostPort: 53}}, ""},
		{"bad protocol", types.ServicePortConfig{Target: 53, Protocol: "icmp"}, nil, `protocol "icmp" is not tcp, udp or sctp`},
		{"bad host ip", types.ServicePortConfig{Target: 80, HostIP: "localhost"}, nil, `host_ip "localhost" is not an IP address`},
		{"target out of range", types.ServicePortConfig{Target: 70000}, nil, "target 70000 is not a port number (1-65535)"},
		{"reversed range", types.ServicePortConfig{Target: 80, Published: "90-80"}, nil, `published: port range "90-80" ends before it starts`},
		{"not a number", types.ServicePortConfig{Target: 80, Published: "http"}, nil, `published: "http" is not a port number (1-65535)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := portBindings(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("portBindings error = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("portBindings = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestExposedPorts(t *testing.T) {
	svc := types.ServiceConfig{}
	svc.Expose = types.StringOrNumberList{"8080", "9000-9001/udp", "8080/tcp"}
	svc.Ports = []types.ServicePortConfig{{Target: 443, Protocol: "tcp"}, {Target: 8080}}
	got, err := exposedPorts(svc)
	if err != nil {
		t.Fatal(err)
	}
	want := []l4.Port{{Number: 443, Proto: "tcp"}, {Number: 8080, Proto: "tcp"}, {Number: 9000, Proto: "udp"}, {Number: 9001, Proto: "udp"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("exposedPorts = %v, want %v", got, want)
	}
}

func TestExistingNetwork(t *testing.T) {
	tests := []struct {
		name string
		want inventory.Network
	}{
		{"bridge", inventory.Network{Name: "bridge", Driver: "bridge", ICC: true, Bridge: "docker0", External: true}},
		{"host", inventory.Network{Name: "host", Driver: "host", ICC: true, External: true}},
		{"none", inventory.Network{Name: "none", Driver: "null", ICC: true, External: true}},
		{"shared", inventory.Network{Name: "shared", Driver: "bridge", ICC: true, External: true}},
	}
	for _, tt := range tests {
		if got := existingNetwork(tt.name); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("existingNetwork(%q) = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}
