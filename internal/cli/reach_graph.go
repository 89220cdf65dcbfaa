package cli

import (
	"fmt"
	"io"

	"github.com/zonewarden/zonewarden/internal/reach"
)

// writeEdgeGraph draws an edge list as DOT, Mermaid or SVG; a placeholder
// until the graph renderers land.
func writeEdgeGraph(_ io.Writer, _ *reach.Analysis, format string, _ []reach.Edge) error {
	return fmt.Errorf("--format %s is not available yet", format)
}
