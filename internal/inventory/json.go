package inventory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// DecodeError is a problem in snapshot JSON, with the position it was found at.
type DecodeError struct {
	File      string // as given to ReadFile, or "" for Decode
	Line, Col int    // 1-based; 0 when unknown
	Msg       string
}

func (e *DecodeError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:%d:", e.Line, e.Col)
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Encode writes s as indented JSON, with containers and networks sorted by
// name so that snapshots of the same host compare equal.
func Encode(w io.Writer, s *Snapshot) error {
	out := *s
	if out.Version == 0 {
		out.Version = SchemaVersion
	}
	out.Networks = slices.Clone(s.Networks)
	out.Containers = slices.Clone(s.Containers)
	Sort(&out)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(&out)
}

// Sort orders networks and containers by name, in place.
func Sort(s *Snapshot) {
	slices.SortFunc(s.Networks, func(a, b Network) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(s.Containers, func(a, b Container) int { return strings.Compare(a.Name, b.Name) })
}

// Decode reads snapshot JSON strictly: the version must be SchemaVersion and
// unknown fields are rejected. Errors are *DecodeError with line and column.
func Decode(data []byte) (*Snapshot, error) {
	var probe struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, positioned(data, err)
	}
	if probe.Version == nil {
		return nil, &DecodeError{Line: 1, Col: 1, Msg: `not a zonewarden snapshot: no "version" field (write one with "zonewarden snapshot -o FILE")`}
	}
	if *probe.Version != SchemaVersion {
		return nil, &DecodeError{Line: 1, Col: 1, Msg: fmt.Sprintf("snapshot version %d is not supported by this zonewarden (it reads version %d)", *probe.Version, SchemaVersion)}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s Snapshot
	if err := dec.Decode(&s); err != nil {
		return nil, positioned(data, decoderErr(dec, err))
	}
	if dec.More() {
		return nil, positioned(data, &json.SyntaxError{Offset: dec.InputOffset()})
	}
	if err := s.Validate(); err != nil {
		return nil, &DecodeError{Msg: err.Error()}
	}
	return &s, nil
}

// ReadFile decodes the snapshot file at path; errors name the file.
func ReadFile(path string) (*Snapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read snapshot: %w", err)
	}
	s, err := Decode(data)
	if err != nil {
		var de *DecodeError
		if errors.As(err, &de) {
			de.File = path
		}
		return nil, err
	}
	s.Source = Source{Kind: "snapshot", Detail: path}
	return s, nil
}

// Validate checks what the JSON schema cannot: names present and unique,
// endpoints naming known networks.
func (s *Snapshot) Validate() error {
	var problems []string
	nets := make(map[string]bool, len(s.Networks))
	for i, n := range s.Networks {
		switch {
		case n.Name == "":
			problems = append(problems, fmt.Sprintf("networks[%d]: name is empty", i))
		case nets[n.Name]:
			problems = append(problems, fmt.Sprintf("networks[%d]: network %q appears twice", i, n.Name))
		}
		nets[n.Name] = true
	}
	names := make(map[string]bool, len(s.Containers))
	for i, c := range s.Containers {
		switch {
		case c.Name == "":
			problems = append(problems, fmt.Sprintf("containers[%d]: name is empty", i))
		case names[c.Name]:
			problems = append(problems, fmt.Sprintf("containers[%d]: container %q appears twice", i, c.Name))
		}
		names[c.Name] = true
		for _, e := range c.Endpoints {
			if !nets[e.Network] {
				problems = append(problems, fmt.Sprintf("container %q: endpoint on network %q, which is not in networks", c.Name, e.Network))
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	if len(problems) > 5 {
		problems = append(problems[:5], fmt.Sprintf("and %d more", len(problems)-5))
	}
	return errors.New("invalid snapshot: " + strings.Join(problems, "; "))
}

// decoderErr adds the decoder's offset to errors that lack one.
func decoderErr(dec *json.Decoder, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	if errors.As(err, &se) || errors.As(err, &te) {
		return err
	}
	return &offsetError{offset: dec.InputOffset(), err: err}
}

type offsetError struct {
	offset int64
	err    error
}

func (e *offsetError) Error() string { return e.err.Error() }

// positioned converts a JSON error to a *DecodeError with line and column.
func positioned(data []byte, err error) error {
	var off int64 = -1
	msg := err.Error()
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var oe *offsetError
	switch {
	case errors.As(err, &se):
		off = max(se.Offset-1, 0) // the offset is just past the offending byte
		if se.Error() == "" {
			msg = "unexpected data after the snapshot object"
		}
		if strings.Contains(msg, "unexpected end of JSON input") {
			off = int64(len(data))
			msg = "unexpected end of file: the snapshot is truncated"
		}
	case errors.As(err, &te):
		off = te.Offset
		msg = fmt.Sprintf("field %q: cannot use JSON %s as %s", te.Field, te.Value, te.Type)
	case errors.As(err, &oe):
		off = oe.offset
		// Point at the key of an unknown field, not past its value.
		if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			if i := bytes.LastIndex(data[:min(off, int64(len(data)))], []byte(name)); i >= 0 {
				off = int64(i)
			}
		}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		off = int64(len(data))
		msg = "unexpected end of file: the snapshot is truncated"
	}
	msg = strings.TrimPrefix(msg, "json: ")
	if off < 0 {
		return &DecodeError{Msg: msg}
	}
	line, col := lineCol(data, off)
	return &DecodeError{Line: line, Col: col, Msg: msg}
}

func lineCol(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line = bytes.Count(before, []byte{'\n'}) + 1
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}
