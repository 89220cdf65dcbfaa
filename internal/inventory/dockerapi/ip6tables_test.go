package dockerapi

import "testing"

func TestIP6TablesDefaultByVersion(t *testing.T) {
	for version, want := range map[string]string{
		"20.10.24+dfsg1": "false", // Debian 12: checked with packets, IPv6 is not filtered
		"26.1.5":         "false",
		"27.0.1":         "true",
		"29.1.0":         "true",
		"":               "unknown",
		"dev":            "unknown",
	} {
		got := "unknown"
		if v := ip6tablesDefault(version); v != nil {
			got = map[bool]string{true: "true", false: "false"}[*v]
		}
		if got != want {
			t.Errorf("ip6tablesDefault(%q) = %s, want %s", version, got, want)
		}
	}
}
