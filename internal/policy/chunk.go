package policy

import (
	"bytes"
	"sync"

	yaml "go.yaml.in/yaml/v4"
)

// A large policy spends most of its parse time in the YAML parser, which
// is sequential. loadChunked cuts such a file into pieces — the items of
// its big block sections (flows, tests, workloads) in runs, and a skeleton
// with those runs blanked out — parses them on all CPUs and joins the
// trees, with lines as in the file. The items of flows and tests are also
// decoded in their piece, so that their nodes never pile up.
//
// It cuts only between two items of a block collection, at a line indented
// exactly as the items and starting one (a "- " entry or a plain key), and
// parses each piece in the context it has in the file (see piece). A cut
// inside a multi-line scalar or flow collection leaves a piece
// unterminated, which fails to parse; any failure, an alias to another
// piece included, makes loadChunked give up, and load parses the file
// whole (which also places syntax errors exactly). FuzzChunked checks that
// both ways give the same policy and the same problems.

// chunkMin is the size below which a file is parsed whole (a variable for
// FuzzChunked).
var chunkMin = 256 << 10

// section is the block value of a top-level key, by line index.
type section struct {
	key        int    // line of "key:"
	name       string // the key
	start, end int    // body lines [start, end)
	tail       int    // the line after the body's trailing blank and comment lines
	seq        bool   // items are "- " entries (else mapping keys)
	indent     int
}

// piece is a run of items parsed as one document: the section's key line,
// then the items' lines as in the file up to what follows them — the
// next item (of which only its start, "-" or "k:", at its column) or the
// next top-level key ("k:" at column 1) — so that the parser sees every
// item in the context it has in the whole file, block scalars end the
// same way and an empty value at the end gets the same position. The
// stand-in for what follows is parsed and dropped.
type piece struct {
	first, end int // item lines [first, end)
	next       int // the line of what follows (comments between stay in the text)
	stub       int // what follows: stubEOF, stubItem or stubKey
	sec        int // index in sections; -1 for the skeleton
	root       *yaml.Node
	dec        *decoded // the decoded items of a flows or tests piece
	ok         bool
}

// decoded are the items of a flows or tests section, decoded piece by
// piece, with the problems found in them.
type decoded struct {
	flows []Flow
	tests []Test
	probs []Problem
}

// loadChunked returns the document, with the flows and tests sections it
// decoded itself left empty and their items in pre (by the 1-based line of
// their key), or false when the file does not cut cleanly.
func loadChunked(data []byte, workers int) (doc *yaml.Node, pre map[int]*decoded, ok bool) {
	if workers < 2 || len(data) < chunkMin || !chunkable(data) {
		return nil, nil, false
	}
	lines := lineStarts(data)
	line := func(i int) []byte {
		end := len(data)
		if i+1 < len(lines) {
			end = lines[i+1] - 1 // without the newline
		}
		return data[lines[i]:end]
	}
	secs := sections(len(lines), line)
	if len(secs) == 0 {
		return nil, nil, false
	}
	target := len(data) / (2 * workers)
	var pieces []*piece
	for si, s := range secs {
		first := s.start
		size := 0
		for i := s.start; i < s.end; i++ {
			if i > first && size >= target && isItem(line(i), s) {
				cut := i
				for cut > first+1 && isOuterComment(line(cut-1), s) {
					cut-- // keep the comment above an item with it
				}
				pieces = append(pieces, &piece{first: first, end: cut, sec: si, next: i, stub: stubItem})
				first, size = cut, 0
			}
			size += len(line(i)) + 1
		}
		last := &piece{first: first, end: s.end, sec: si, next: s.tail, stub: stubKey}
		if s.tail >= len(lines) {
			last.stub = stubEOF
		}
		pieces = append(pieces, last)
	}
	// The skeleton: the file with every section body blanked out, so that
	// its lines keep their numbers.
	var skel bytes.Buffer
	skel.Grow(len(data) / 8)
	prev := 0
	for _, s := range secs {
		skel.Write(data[lines[prev]:lines[s.start]])
		for range s.end - s.start {
			skel.WriteByte('\n')
		}
		prev = s.end
	}
	if prev < len(lines) {
		skel.Write(data[lines[prev]:])
	}
	skeleton := &piece{sec: -1}
	jobs := append([]*piece{skeleton}, pieces...)

	var wg sync.WaitGroup
	work := make(chan *piece)
	for range min(workers, len(jobs)) {
		wg.Go(func() {
			for pc := range work {
				if pc.sec < 0 {
					var d yaml.Node
					if yaml.Load(skel.Bytes(), &d, yaml.WithUniqueKeys(false)) == nil && d.Kind == yaml.DocumentNode && len(d.Content) == 1 {
						pc.root, pc.ok = &d, true
					}
					continue
				}
				pc.load(data, lines, line, secs[pc.sec])
			}
		})
	}
	for _, j := range jobs {
		work <- j
	}
	close(work)
	wg.Wait()

	if !skeleton.ok {
		return nil, nil, false
	}
	top := skeleton.root.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, nil, false
	}
	pre = map[int]*decoded{}
	for si, s := range secs {
		// The skeleton's value for the key must be the empty value the
		// blanked body left.
		var slot *yaml.Node
		for i := 0; i+1 < len(top.Content); i += 2 {
			if k := top.Content[i]; k.Line == s.key+1 && k.Column == 1 {
				slot = top.Content[i+1]
			}
		}
		if slot == nil || slot.Kind != yaml.ScalarNode || slot.ShortTag() != "!!null" || slot.Value != "" {
			return nil, nil, false
		}
		kind, tag := yaml.MappingNode, "!!map"
		if s.seq {
			kind, tag = yaml.SequenceNode, "!!seq"
		}
		joined := &yaml.Node{Kind: kind, Tag: tag, Line: s.start + 1, Column: s.indent + 1}
		var dec *decoded
		for _, pc := range pieces {
			if pc.sec != si {
				continue
			}
			if !pc.ok {
				return nil, nil, false
			}
			if pc.dec != nil {
				if dec == nil {
					dec = &decoded{}
				}
				dec.flows = append(dec.flows, pc.dec.flows...)
				dec.tests = append(dec.tests, pc.dec.tests...)
				dec.probs = append(dec.probs, pc.dec.probs...)
				continue
			}
			joined.Content = append(joined.Content, pc.root.Content...)
		}
		for i := s.start; i < s.end; i++ {
			if l := line(i); !isBlank(l) && !isComment(l) {
				joined.Line = i + 1 // the first item
				break
			}
		}
		if dec != nil {
			pre[s.key+1] = dec
		}
		*slot = *joined
	}
	return skeleton.root, pre, true
}

// load parses piece pc of section s, and decodes its items when s is flows
// or tests: fast when every line is a one-line item, else by the YAML
// parser. pc.ok reports success.
func (pc *piece) load(data []byte, lines []int, line func(int) []byte, s section) {
	predecode := s.seq && (s.name == "flows" || s.name == "tests")
	var d *decoder
	take := func(item *yaml.Node) {
		switch s.name {
		case "flows":
			if f, ok := d.flow(item); ok {
				pc.dec.flows = append(pc.dec.flows, f)
			}
		case "tests":
			if t, ok := d.test(item); ok {
				pc.dec.tests = append(pc.dec.tests, t)
			}
		}
	}
	budget := 4*(lines[min(pc.end, len(lines)-1)]-lines[pc.first]) + 1024
	if predecode {
		pc.dec, d = &decoded{}, &decoder{ps: &problems{}, budget: budget}
		fs := &fastScanner{intern: map[string]string{}, reuse: true}
		if fastEach(fs, line, pc.first, pc.end, s.indent, take) {
			pc.dec.probs, pc.ok = d.ps.list, true
			return
		}
		pc.dec, d = &decoded{}, &decoder{ps: &problems{}, budget: budget}
	}
	var doc yaml.Node
	if yaml.Load(pieceText(data, lines, line, s, pc), &doc, yaml.WithUniqueKeys(false)) != nil || doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return
	}
	shiftLines(&doc, pc.first-1)
	wrap := doc.Content[0]
	wantKeys := 2
	if pc.stub == stubKey {
		wantKeys = 4
	}
	if wrap.Kind != yaml.MappingNode || len(wrap.Content) != wantKeys {
		return
	}
	root := wrap.Content[1]
	kind := yaml.MappingNode
	if s.seq {
		kind = yaml.SequenceNode
	}
	if root.Kind != kind || root.Column != s.indent+1 || root.Style != 0 {
		return
	}
	if pc.stub == stubItem {
		// Drop the stand-in for the next item: the last entry.
		n := 1
		if !s.seq {
			n = 2
		}
		if len(root.Content) < n+1 {
			return
		}
		stand := root.Content[len(root.Content)-n]
		switch {
		case stand.Kind != yaml.ScalarNode:
			return
		case s.seq && (stand.ShortTag() != "!!null" || stand.Value != ""):
			return // an empty entry ("-") is null where it ends
		case !s.seq && (stand.Value != "x" || stand.Line != pc.next+1 || stand.Column != s.indent+1):
			return
		}
		root.Content = root.Content[:len(root.Content)-n]
	}
	if c := wrap.Content[0].FootComment; c != "" && len(root.Content) > 0 {
		// A comment right under the key line is the first item's.
		first := root.Content[0]
		first.HeadComment = joinLines(c, first.HeadComment)
	}
	if predecode {
		for _, item := range root.Content {
			take(item)
		}
		pc.dec.probs = d.ps.list
	} else {
		pc.root = root
	}
	pc.ok = true
}

// What follows a piece.
const (
	stubEOF  = iota // the end of the file
	stubItem        // the next item of the section
	stubKey         // the next top-level key
)

// pieceText builds the document for piece pc of section s.
func pieceText(data []byte, lines []int, line func(int) []byte, s section, pc *piece) []byte {
	end := len(data)
	if pc.next < len(lines) {
		end = lines[pc.next]
	}
	key := line(s.key)
	text := make([]byte, 0, len(key)+1+end-lines[pc.first]+s.indent+4)
	text = append(text, key...)
	text = append(text, '\n')
	text = append(text, data[lines[pc.first]:end]...)
	switch pc.stub {
	case stubItem:
		text = append(text, bytes.Repeat([]byte(" "), s.indent)...)
		if s.seq {
			text = append(text, "-\n"...)
		} else {
			text = append(text, "x:\n"...)
		}
	case stubKey:
		text = append(text, "x:\n"...)
	}
	return text
}

// chunkable rejects what the line scan below does not model: several
// documents, directives, carriage returns, a byte order mark.
func chunkable(data []byte) bool {
	return !bytes.HasPrefix(data, []byte("---")) && !bytes.Contains(data, []byte("\n---")) &&
		!bytes.Contains(data, []byte("\n...")) && !bytes.HasPrefix(data, []byte("%")) &&
		!bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) && bytes.IndexByte(data, '\r') < 0
}

func lineStarts(data []byte) []int {
	starts := make([]int, 1, bytes.Count(data, []byte("\n"))+1)
	for i, c := range data {
		if c == '\n' && i+1 < len(data) {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// sections finds the top-level keys written "name:" alone on their line
// whose block body is worth cutting, and checks that the body has the
// regular shape cutting needs.
func sections(n int, line func(int) []byte) []section {
	var out []section
	for i := 0; i < n; i++ {
		if !isBareKey(line(i)) {
			continue
		}
		name, _, _ := bytes.Cut(line(i), []byte(":"))
		s := section{key: i, name: string(name), start: i + 1, indent: -1}
		irregular := false
		j := i + 1
		for ; j < n; j++ {
			l := line(j)
			if isBlank(l) || isComment(l) {
				continue
			}
			ind := indentOf(l)
			if s.indent < 0 {
				s.indent = ind
				s.seq = isEntry(l[ind:])
			}
			if ind == 0 && !(s.seq && s.indent == 0 && isEntry(l)) {
				break // the next top-level key
			}
			if ind < s.indent || ind == s.indent && !isItem(l, s) {
				irregular = true // leave it whole
			}
		}
		s.end, s.tail = j, j
		for s.end > s.start && (isBlank(line(s.end-1)) || isOuterComment(line(s.end-1), s)) {
			s.end-- // trailing comments stay with what follows
		}
		if !irregular && s.indent >= 0 && s.end > s.start {
			out = append(out, s)
		}
		i = j - 1
	}
	return out
}

// isBareKey matches a top-level "name:" with nothing after it but a
// comment.
func isBareKey(l []byte) bool {
	i := 0
	for i < len(l) && (l[i] >= 'a' && l[i] <= 'z' || l[i] >= 'A' && l[i] <= 'Z' || l[i] == '_' || i > 0 && (l[i] == '-' || l[i] >= '0' && l[i] <= '9')) {
		i++
	}
	if i == 0 || i >= len(l) || l[i] != ':' {
		return false
	}
	rest := bytes.TrimLeft(l[i+1:], " ")
	return len(rest) == 0 || rest[0] == '#' && len(rest) < len(l[i+1:])
}

// isItem reports whether l starts an item of s at its indentation.
func isItem(l []byte, s section) bool {
	if indentOf(l) != s.indent {
		return false
	}
	l = l[s.indent:]
	if len(l) == 0 {
		return false
	}
	if s.seq {
		return isEntry(l)
	}
	switch l[0] {
	case '?', ':', '-', '&', '*', '!', '|', '>', '%', '@', '`', '[', '{', ',', '#':
		return false
	}
	return true
}

func isEntry(l []byte) bool { return len(l) > 0 && l[0] == '-' && (len(l) == 1 || l[1] == ' ') }

func indentOf(l []byte) int {
	i := 0
	for i < len(l) && l[i] == ' ' {
		i++
	}
	return i
}

func isBlank(l []byte) bool { return len(bytes.TrimLeft(l, " ")) == 0 }

func isComment(l []byte) bool {
	t := bytes.TrimLeft(l, " ")
	return len(t) > 0 && t[0] == '#'
}

// isOuterComment reports whether l is a comment line no more indented
// than the items of s. A more indented "#" line may be the content of a
// block scalar ("- |"), which must stay where it is.
func isOuterComment(l []byte, s section) bool {
	return isComment(l) && indentOf(l) <= s.indent
}

func shiftLines(n *yaml.Node, by int) {
	n.Line += by
	for _, c := range n.Content {
		shiftLines(c, by)
	}
}

func joinLines(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "\n" + b
}
