package kube

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	netv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"
)

// Formats the export writes.
const (
	YAML = "yaml"
	JSON = "json"
)

// Document is one object of the export, encoded.
type Document struct {
	// Name is the object's name, the file's name without extension in a
	// directory.
	Name string
	Data []byte
}

// Encode renders each policy as one document in format (YAML or JSON).
// A YAML document starts with a comment that says what it is.
func (e *Export) Encode(format string) ([]Document, error) {
	out := make([]Document, 0, len(e.Policies))
	for i := range e.Policies {
		np := &e.Policies[i]
		var data []byte
		var err error
		switch format {
		case JSON:
			data, err = json.MarshalIndent(np, "", "  ")
			data = append(data, '\n')
		case YAML:
			data, err = yaml.Marshal(np)
			data = append([]byte(e.comment(i)), data...)
		default:
			return nil, fmt.Errorf("unknown format %q: use yaml or json", format)
		}
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", np.Name, err)
		}
		out = append(out, Document{Name: np.Name, Data: data})
	}
	return out, nil
}

func (e *Export) comment(i int) string {
	if i >= len(e.Workloads) {
		return "# Every other pod of the namespace: no traffic in or out.\n"
	}
	w := e.Workloads[i]
	var b strings.Builder
	fmt.Fprintf(&b, "# Workload %s: its pods carry %s.\n", w.Name, w.Selector)
	if z := e.Policies[i].Annotations[annotation+"/zones"]; z != "" {
		fmt.Fprintf(&b, "# Zones: %s.\n", strings.ReplaceAll(z, ",", ", "))
	}
	return b.String()
}

// Write writes the whole export to w: a YAML stream of documents, or a
// JSON List.
func (e *Export) Write(w io.Writer, format string) error {
	if format == JSON {
		list := struct {
			APIVersion string                `json:"apiVersion"`
			Kind       string                `json:"kind"`
			Items      []netv1.NetworkPolicy `json:"items"`
		}{"v1", "List", e.Policies}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	docs, err := e.Encode(format)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	for _, d := range docs {
		b.WriteString("---\n")
		b.Write(d.Data)
	}
	_, err = w.Write(b.Bytes())
	return err
}
