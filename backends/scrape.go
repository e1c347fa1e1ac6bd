package backends

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// ParseMetrics reads a Prometheus text exposition (format 0.0.4; an OpenMetrics "# EOF" line,
// exemplars and float timestamps are tolerated) from r as a stream and fills into with what
// the pages of format's servers say about load and capacity.
//
// Only a handful of families matter to routing, so each line is classified by comparing its
// metric name with those families before anything else is parsed: comments and every other
// family are skipped without parsing and without allocating, whatever their length, and labels
// are read only from the needed samples. Where a family has several series (several engines
// or models, data parallelism) counts and counters are summed, KV-cache usage is averaged,
// the block size is the largest reported and vLLM's LoRA list is taken from the series
// updated last (the largest value, which vLLM sets to the update time). Triton's Waiting adds
// TRT-LLM's waiting requests to the pending counts of all models: a request waits first in
// Triton's scheduler, then inside TRT-LLM, and is counted in one place at a time.
//
// Running and KVUsage are -1 unless the page has them; counts from non-finite or negative
// values are 0, a non-finite KV usage is -1 and other non-finite sums are 0. ParseMetrics
// sets every field of into except ScrapedAt and InFlightAtScrape, which are the caller's; on
// error into is left untouched.
//
// A malformed sample of a needed family is an error naming its line; a malformed line of any
// other family is skipped unread. A vLLM or SGLang page without its queue gauge is an error
// (the endpoint is not the server the pool says it is). Metric names in the quoted UTF-8
// syntax are not recognised. MetricsAuto and MetricsNone are not parseable formats.
//
// ParseMetrics is safe for concurrent use. It allocates a small line buffer per call and
// nothing per line of a family it does not need.
func ParseMetrics(format MetricsFormat, r io.Reader, into *Stats) error {
	var p metricsParser
	if err := p.parse(format, r, into); err != nil {
		return fmt.Errorf("backends: %w", err)
	}
	return nil
}

const (
	// lineBufSize is the line buffer ParseMetrics starts with, longer than any needed line
	// in practice; it doubles when one is longer. Long-lived parsers may start bigger to read
	// in larger chunks.
	lineBufSize = 4 << 10
	// maxLineLen bounds a needed line (LoRA adapter lists are the long ones); longer lines of
	// families that are not needed are skipped whatever their length.
	maxLineLen = 1 << 20
	// maxCount caps counts converted from float gauges.
	maxCount = math.MaxInt32
)

// metricsParser holds the buffers a parse uses, so that the collector's scrapes reuse them.
// The zero value is ready to use; it is not safe for concurrent use.
type metricsParser struct {
	// limit is the most bytes parse reads from r before failing; 0 means no limit.
	limit int64

	buf     []byte      // the line buffer
	labels  []labelPair // labels of the current needed sample
	scratch []byte      // unescaped label names and values of the current sample

	// The label values of the lora_requests_info series chosen so far.
	loraMax, loraRunning, loraWaiting []byte
}

// labelPair is one label of a sample, unescaped. Both slices are valid until the next line.
type labelPair struct{ name, value []byte }

// slot indexes the sums a parse accumulates.
type slot uint8

const (
	slotWaiting    slot = iota
	slotTRTWaiting      // Triton TRT-LLM's own queue, added to the pending count at the end
	slotRunning
	slotKV
	slotKVOld
	slotHits
	slotHitsOld
	slotQueries
	slotQueriesOld
	slotGPUUsed
	slotGPUTotal
	slotBlocks
	numSlots
)

// familyKind says how a needed family's samples are read.
type familyKind uint8

const (
	kindSum         familyKind = iota // value added to the family's slot
	kindCacheInfo                     // vLLM/SGLang cache_config_info: capacity from labels
	kindLoRAInfo                      // vLLM lora_requests_info: adapters from labels
	kindTRTRequests                   // Triton TRT-LLM request gauges keyed by request_type
	kindTRTKVBlocks                   // Triton TRT-LLM KV-cache gauges keyed by kv_cache_block_type
)

// metricFamily is one family a dialect reads.
type metricFamily struct {
	name string
	kind familyKind
	slot slot // for kindSum
}

// dialect is what ParseMetrics knows about one server's exposition.
type dialect struct {
	format MetricsFormat
	// prefix is shared by every needed family name; lines without it are rejected after one
	// comparison.
	prefix   string
	families []metricFamily
	// queue names the family a page of this dialect always has; "" when none is required.
	queue string
	// blocksLabel and blockSizeLabel name the cache_config_info labels giving capacity.
	blocksLabel, blockSizeLabel string
}

// The dialects are fixed tables, never modified.
var (
	vllmDialect = dialect{
		format: MetricsVLLM,
		prefix: "vllm:",
		families: []metricFamily{
			{name: "vllm:num_requests_waiting", slot: slotWaiting},
			{name: "vllm:num_requests_running", slot: slotRunning},
			{name: "vllm:kv_cache_usage_perc", slot: slotKV},
			{name: "vllm:gpu_cache_usage_perc", slot: slotKVOld},
			{name: "vllm:prefix_cache_hits_total", slot: slotHits},
			{name: "vllm:prefix_cache_queries_total", slot: slotQueries},
			{name: "vllm:gpu_prefix_cache_hits_total", slot: slotHitsOld},
			{name: "vllm:gpu_prefix_cache_queries_total", slot: slotQueriesOld},
			{name: "vllm:cache_config_info", kind: kindCacheInfo},
			{name: "vllm:lora_requests_info", kind: kindLoRAInfo},
		},
		queue:          "vllm:num_requests_waiting",
		blocksLabel:    "num_gpu_blocks",
		blockSizeLabel: "block_size",
	}
	sglangDialect = dialect{
		format: MetricsSGLang,
		prefix: "sglang:",
		families: []metricFamily{
			{name: "sglang:num_queue_reqs", slot: slotWaiting},
			{name: "sglang:num_running_reqs", slot: slotRunning},
			{name: "sglang:token_usage", slot: slotKV},
			{name: "sglang:cache_config_info", kind: kindCacheInfo},
		},
		queue:          "sglang:num_queue_reqs",
		blocksLabel:    "num_pages",
		blockSizeLabel: "page_size",
	}
	tgiDialect = dialect{
		format: MetricsTGI,
		prefix: "tgi_",
		families: []metricFamily{
			{name: "tgi_queue_size", slot: slotWaiting},
			{name: "tgi_batch_current_size", slot: slotRunning},
		},
	}
	tritonDialect = dialect{
		format: MetricsTriton,
		prefix: "nv_",
		families: []metricFamily{
			{name: "nv_inference_pending_request_count", slot: slotWaiting},
			{name: "nv_gpu_memory_used_bytes", slot: slotGPUUsed},
			{name: "nv_gpu_memory_total_bytes", slot: slotGPUTotal},
			{name: "nv_trt_llm_request_metrics", kind: kindTRTRequests},
			{name: "nv_trt_llm_kv_cache_block_metrics", kind: kindTRTKVBlocks},
		},
	}
)

func dialectFor(f MetricsFormat) *dialect {
	switch f {
	case MetricsVLLM:
		return &vllmDialect
	case MetricsSGLang:
		return &sglangDialect
	case MetricsTGI:
		return &tgiDialect
	case MetricsTriton:
		return &tritonDialect
	}
	return nil
}

// match returns the needed family whose sample line starts with line, and the rest of the
// line after the metric name; nil when the line is of another family.
func (d *dialect) match(line []byte) (*metricFamily, []byte) {
	n := len(d.prefix)
	if len(line) <= n || string(line[:n]) != d.prefix {
		return nil, nil
	}
	c := line[n]
	for i := range d.families {
		f := &d.families[i]
		if f.name[n] != c || len(line) < len(f.name) || string(line[:len(f.name)]) != f.name {
			continue
		}
		rest := line[len(f.name):]
		if len(rest) > 0 && isNameByte(rest[0]) {
			continue // a longer name: another family
		}
		return f, rest
	}
	return nil, nil
}

// mayBeNeeded reports whether a line that does not fit the buffer could be a needed sample,
// answering true while only blanks have been seen.
func (d *dialect) mayBeNeeded(line []byte) bool {
	line = line[skipBlank(line, 0):]
	if len(line) == 0 {
		return true
	}
	f, _ := d.match(line)
	return f != nil
}

// tally accumulates the needed samples of one page.
type tally struct {
	sum           [numSlots]float64
	seen          [numSlots]int
	blockSize     float64
	haveBlockSize bool
	loraAt        float64
	haveLoRA      bool
}

func (t *tally) add(s slot, v float64) {
	t.sum[s] += v
	t.seen[s]++
}

func (t *tally) maxBlockSize(v float64) {
	if !t.haveBlockSize || v > t.blockSize {
		t.blockSize = v
	}
	t.haveBlockSize = true
}

func (p *metricsParser) parse(format MetricsFormat, r io.Reader, into *Stats) error {
	d := dialectFor(format)
	if d == nil {
		return fmt.Errorf("cannot parse metrics of format %q", format)
	}
	if len(p.buf) == 0 {
		p.buf = make([]byte, lineBufSize)
	}
	var (
		t          tally
		start, end int   // unread bytes are p.buf[start:end]
		lineNo     int   // lines completed so far
		total      int64 // bytes read
		skipping   bool  // discarding the rest of a long line of another family
		eof        bool
	)
	for {
		if i := bytes.IndexByte(p.buf[start:end], '\n'); i >= 0 {
			line := p.buf[start : start+i]
			start += i + 1
			lineNo++
			if skipping {
				skipping = false
				continue
			}
			if err := p.line(d, &t, line, lineNo); err != nil {
				return err
			}
			continue
		}
		if eof {
			if start < end && !skipping {
				if err := p.line(d, &t, p.buf[start:end], lineNo+1); err != nil {
					return err
				}
			}
			break
		}
		switch {
		case skipping:
			start, end = 0, 0
		case start > 0:
			end = copy(p.buf, p.buf[start:end])
			start = 0
		}
		if end == len(p.buf) {
			switch {
			case !d.mayBeNeeded(p.buf[:end]):
				skipping = true
				start, end = 0, 0
			case len(p.buf) >= maxLineLen:
				return fmt.Errorf("metrics line %d: longer than %d bytes", lineNo+1, maxLineLen)
			default:
				nb := make([]byte, 2*len(p.buf))
				copy(nb, p.buf[:end])
				p.buf = nb
			}
		}
		n, err := r.Read(p.buf[end:])
		end += n
		total += int64(n)
		if p.limit > 0 && total > p.limit {
			return fmt.Errorf("metrics page larger than %d bytes", p.limit)
		}
		if err == io.EOF {
			eof = true
		} else if err != nil {
			return fmt.Errorf("reading metrics: %w", err)
		}
	}
	return p.finish(d, &t, into)
}

// line handles one line without its newline.
func (p *metricsParser) line(d *dialect, t *tally, line []byte, lineNo int) error {
	line = line[skipBlank(line, 0):]
	if len(line) == 0 || line[0] == '#' {
		return nil
	}
	f, rest := d.match(line)
	if f == nil {
		return nil
	}
	rest = bytes.TrimSuffix(rest, []byte{'\r'})
	if err := p.sample(d, f, t, rest); err != nil {
		return fmt.Errorf("metrics line %d: %s: %w", lineNo, f.name, err)
	}
	return nil
}

// Errors describing a malformed sample; line adds where.
var (
	errNoValue        = errors.New("missing value")
	errBadValue       = errors.New("invalid value")
	errBadTimestamp   = errors.New("invalid timestamp")
	errTrailing       = errors.New("unexpected text after the value")
	errLabelSyntax    = errors.New("malformed label set")
	errLabelEscape    = errors.New("invalid escape in label")
	errUnterminated   = errors.New("unterminated label value")
	errEmptyLabelName = errors.New("empty label name")
)

// sample parses the rest of a needed sample line (after the metric name) and tallies it.
func (p *metricsParser) sample(d *dialect, f *metricFamily, t *tally, rest []byte) error {
	// The value may follow the name without a blank, as in "name+1": the reference parser
	// takes whatever follows the name as the value.
	i := skipBlank(rest, 0)
	if p.labels == nil {
		p.labels = make([]labelPair, 0, 32) // vLLM's cache_config_info has about 20
	}
	p.labels = p.labels[:0]
	if i < len(rest) && rest[i] == '{' {
		var err error
		if i, err = p.readLabels(rest, i+1); err != nil {
			return err
		}
		i = skipBlank(rest, i)
	}
	j := tokenEnd(rest, i)
	if i == j {
		return errNoValue
	}
	v, ok := parseValue(rest[i:j])
	if !ok {
		return fmt.Errorf("%w %q", errBadValue, rest[i:j])
	}
	// An optional timestamp, then an optional OpenMetrics exemplar.
	if i = skipBlank(rest, j); i < len(rest) && rest[i] != '#' {
		j = tokenEnd(rest, i)
		if _, ok := parseValue(rest[i:j]); !ok {
			return fmt.Errorf("%w %q", errBadTimestamp, rest[i:j])
		}
		if i = skipBlank(rest, j); i < len(rest) && rest[i] != '#' {
			return errTrailing
		}
	}
	p.tally(d, f, t, v)
	return nil
}

// tally records one needed sample of value v whose labels are in p.labels.
func (p *metricsParser) tally(d *dialect, f *metricFamily, t *tally, v float64) {
	switch f.kind {
	case kindSum:
		t.add(f.slot, v)
	case kindCacheInfo:
		if n, ok := labelInt(p.label(d.blocksLabel)); ok {
			t.add(slotBlocks, float64(n))
		}
		if n, ok := labelInt(p.label(d.blockSizeLabel)); ok {
			t.maxBlockSize(float64(n))
		}
	case kindLoRAInfo:
		// vLLM keeps every label combination it has reported; the value is the time of the
		// update, so the latest series is the current one.
		if t.haveLoRA && !(v >= t.loraAt) {
			return
		}
		t.loraAt, t.haveLoRA = v, true
		p.loraMax = append(p.loraMax[:0], p.label("max_lora")...)
		p.loraRunning = append(p.loraRunning[:0], p.label("running_lora_adapters")...)
		p.loraWaiting = append(p.loraWaiting[:0], p.label("waiting_lora_adapters")...)
	case kindTRTRequests:
		switch string(p.label("request_type")) {
		case "waiting":
			t.add(slotTRTWaiting, v)
		case "scheduled":
			t.add(slotRunning, v)
		}
	case kindTRTKVBlocks:
		switch string(p.label("kv_cache_block_type")) {
		case "fraction":
			t.add(slotKV, v)
		case "max":
			t.add(slotBlocks, v)
		case "tokens_per":
			t.maxBlockSize(v)
		}
	}
}

// finish checks the page and writes the tally into into.
func (p *metricsParser) finish(d *dialect, t *tally, into *Stats) error {
	if d.queue != "" && t.seen[slotWaiting] == 0 {
		return fmt.Errorf("not a %s endpoint: no %s", d.format, d.queue)
	}
	s := Stats{
		ScrapedAt:        into.ScrapedAt,
		InFlightAtScrape: into.InFlightAtScrape,
		Waiting:          toCount(t.sum[slotWaiting] + t.sum[slotTRTWaiting]),
		Running:          -1,
		KVUsage:          -1,
		KVBlocks:         toCount(t.sum[slotBlocks]),
		GPUMemoryUsed:    finite(t.sum[slotGPUUsed]),
		GPUMemoryTotal:   finite(t.sum[slotGPUTotal]),
		PrefixHits:       finite(preferred(t, slotHits, slotHitsOld)),
		PrefixQueries:    finite(preferred(t, slotQueries, slotQueriesOld)),
	}
	if t.seen[slotRunning] > 0 {
		s.Running = toCount(t.sum[slotRunning])
	}
	switch {
	case t.seen[slotKV] > 0:
		s.KVUsage = fraction(t.sum[slotKV] / float64(t.seen[slotKV]))
	case t.seen[slotKVOld] > 0:
		s.KVUsage = fraction(t.sum[slotKVOld] / float64(t.seen[slotKVOld]))
	}
	if t.haveBlockSize {
		s.BlockSize = toCount(t.blockSize)
	}
	if t.haveLoRA {
		maxLoRA, _ := labelInt(p.loraMax)
		s.LoRA = &LoRAStats{Max: maxLoRA, Running: splitAdapters(p.loraRunning), Waiting: splitAdapters(p.loraWaiting)}
	}
	*into = s
	return nil
}

// preferred returns the sum of the current family when the page has it, else of the
// deprecated one.
func preferred(t *tally, current, deprecated slot) float64 {
	if t.seen[current] > 0 {
		return t.sum[current]
	}
	return t.sum[deprecated]
}

// readLabels parses the label set of a needed sample from rest[i:], just after its '{',
// into p.labels, and returns the index after the closing '}'.
func (p *metricsParser) readLabels(rest []byte, i int) (int, error) {
	// Only escaped or quoted-and-joined labels are copied into scratch. Slices of it handed
	// out stay valid when it grows: appending leaves the old array as it was.
	p.scratch = p.scratch[:0]
	for {
		i = skipBlank(rest, i)
		if i >= len(rest) {
			return 0, errLabelSyntax
		}
		if rest[i] == '}' {
			return i + 1, nil
		}
		var name []byte
		var err error
		if name, i, err = p.readLabelName(rest, i); err != nil {
			return 0, err
		}
		if i = skipBlank(rest, i); i >= len(rest) || rest[i] != '=' {
			return 0, errLabelSyntax
		}
		if i = skipBlank(rest, i+1); i >= len(rest) || rest[i] != '"' {
			return 0, errLabelSyntax
		}
		var value []byte
		if value, i, err = p.readQuoted(rest, i+1); err != nil {
			return 0, err
		}
		p.labels = append(p.labels, labelPair{name: name, value: value})
		i = skipBlank(rest, i)
		switch {
		case i >= len(rest):
			return 0, errLabelSyntax
		case rest[i] == ',':
			i++
		case rest[i] != '}':
			return 0, errLabelSyntax
		}
	}
}

// readLabelName reads a label name at rest[i:]: an identifier, a quoted string, or an
// identifier directly followed by a quoted string, as the reference parser accepts.
func (p *metricsParser) readLabelName(rest []byte, i int) ([]byte, int, error) {
	j := i
	if j < len(rest) && (isLetter(rest[j]) || rest[j] == '_') {
		for j < len(rest) && (isLetter(rest[j]) || isDigit(rest[j]) || rest[j] == '_') {
			j++
		}
	}
	if j >= len(rest) || rest[j] != '"' {
		if j == i {
			return nil, 0, errEmptyLabelName
		}
		return rest[i:j], j, nil
	}
	ident := rest[i:j]
	quoted, k, err := p.readQuoted(rest, j+1)
	if err != nil {
		return nil, 0, err
	}
	if len(ident) == 0 {
		if len(quoted) == 0 {
			return nil, 0, errEmptyLabelName
		}
		return quoted, k, nil
	}
	// Join the two parts in scratch. The quoted part may already sit there; copy it first.
	n := len(p.scratch)
	p.scratch = append(p.scratch, ident...)
	p.scratch = append(p.scratch, quoted...)
	return p.scratch[n:len(p.scratch):len(p.scratch)], k, nil
}

// readQuoted reads a quoted string whose opening quote is just before rest[i] and returns
// its unescaped content and the index after the closing quote. Content without escapes is
// returned in place; with escapes it is unescaped into p.scratch.
func (p *metricsParser) readQuoted(rest []byte, i int) ([]byte, int, error) {
	j := i
	for j < len(rest) && rest[j] != '"' && rest[j] != '\\' {
		j++
	}
	if j >= len(rest) {
		return nil, 0, errUnterminated
	}
	if rest[j] == '"' {
		return rest[i:j:j], j + 1, nil
	}
	n := len(p.scratch)
	p.scratch = append(p.scratch, rest[i:j]...)
	for ; j < len(rest); j++ {
		switch c := rest[j]; c {
		case '"':
			return p.scratch[n:len(p.scratch):len(p.scratch)], j + 1, nil
		case '\\':
			j++
			if j >= len(rest) {
				return nil, 0, errUnterminated
			}
			switch rest[j] {
			case '\\', '"':
				p.scratch = append(p.scratch, rest[j])
			case 'n':
				p.scratch = append(p.scratch, '\n')
			default:
				return nil, 0, errLabelEscape
			}
		default:
			p.scratch = append(p.scratch, c)
		}
	}
	return nil, 0, errUnterminated
}

// label returns the value of the current sample's label name, nil when absent.
func (p *metricsParser) label(name string) []byte {
	for _, l := range p.labels {
		if string(l.name) == name {
			return l.value
		}
	}
	return nil
}

// parseValue parses a sample value or timestamp as the reference parser does: Go float
// syntax without hexadecimal exponents or underscores, so NaN, +Inf and 1e-3 are fine.
func parseValue(tok []byte) (float64, bool) {
	if len(tok) == 0 {
		return 0, false
	}
	if len(tok) <= 15 {
		var n int64
		i := 0
		for ; i < len(tok) && isDigit(tok[i]); i++ {
			n = n*10 + int64(tok[i]-'0')
		}
		if i == len(tok) {
			return float64(n), true
		}
	}
	if bytes.ContainsAny(tok, "pP_") {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(tok), 64)
	return v, err == nil
}

// labelInt parses a label value holding a non-negative decimal integer ("None" and other
// text are not numbers).
func labelInt(v []byte) (int, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	n := 0
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// splitAdapters splits a comma-separated adapter list, dropping blanks; nil when empty.
func splitAdapters(v []byte) []string {
	var out []string
	for len(v) > 0 {
		item, rest, _ := bytes.Cut(v, []byte{','})
		if item = bytes.TrimSpace(item); len(item) > 0 {
			out = append(out, string(item))
		}
		v = rest
	}
	return out
}

// toCount converts a summed gauge to a count: NaN and negatives are 0, huge values capped.
func toCount(f float64) int {
	switch {
	case !(f > 0):
		return 0
	case f >= maxCount:
		return maxCount
	}
	return int(math.Round(f))
}

// fraction keeps a finite usage fraction and reports a non-finite one as unknown (-1).
func fraction(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return -1
	}
	return f
}

// finite returns f, or 0 when f is NaN or infinite.
func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

func skipBlank(b []byte, i int) int {
	for i < len(b) && isBlank(b[i]) {
		i++
	}
	return i
}

func tokenEnd(b []byte, i int) int {
	for i < len(b) && !isBlank(b[i]) {
		i++
	}
	return i
}

func isBlank(c byte) bool  { return c == ' ' || c == '\t' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// isNameByte reports whether c continues a metric name. A quote counts: the reference parser
// joins a quoted part onto the name, making it another family.
func isNameByte(c byte) bool {
	return isLetter(c) || isDigit(c) || c == '_' || c == ':' || c == '"'
}
