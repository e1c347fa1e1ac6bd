package backends_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/switchyard-ai/switchyard/backends"
)

// page reads a metrics page from testdata/metrics.
func page(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "metrics", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// expfmtParse reads in with the Prometheus reference parser.
func expfmtParse(in []byte) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(bytes.NewReader(in))
}

func parse(t testing.TB, format backends.MetricsFormat, in []byte) (backends.Stats, error) {
	t.Helper()
	var s backends.Stats
	err := backends.ParseMetrics(format, bytes.NewReader(in), &s)
	return s, err
}

func TestParseMetricsPages(t *testing.T) {
	tests := []struct {
		file   string
		format backends.MetricsFormat
		want   backends.Stats
	}{
		{"vllm.txt", backends.MetricsVLLM, backends.Stats{
			Waiting: 4, Running: 17, KVUsage: 0.4127, KVBlocks: 27863, BlockSize: 16,
			PrefixQueries: 8331700, PrefixHits: 5112340,
		}},
		{"vllm_old.txt", backends.MetricsVLLM, backends.Stats{
			Waiting: 2, Running: 9, KVUsage: 0.871, KVBlocks: 12580, BlockSize: 16,
			PrefixQueries: 512340, PrefixHits: 160106,
		}},
		{"vllm_dp.txt", backends.MetricsVLLM, backends.Stats{
			Waiting: 15, Running: 60, KVUsage: 0.5625, KVBlocks: 2 * 9134, BlockSize: 16,
			PrefixQueries: 7.5e6, PrefixHits: 2.75e6,
			LoRA: &backends.LoRAStats{Max: 4, Running: []string{"sql-lora", "chat-lora"}, Waiting: []string{"summarize-lora"}},
		}},
		{"sglang.txt", backends.MetricsSGLang, backends.Stats{
			Waiting: 7, Running: 24, KVUsage: 0.38, KVBlocks: 135000, BlockSize: 1,
		}},
		{"tgi.txt", backends.MetricsTGI, backends.Stats{Waiting: 5, Running: 12, KVUsage: -1}},
		{"triton.txt", backends.MetricsTriton, backends.Stats{
			// Pending requests of all models (2+1) plus TRT-LLM's own queue (5).
			Waiting: 8, Running: 12, KVUsage: 0.37009162303664922, KVBlocks: 6112, BlockSize: 64,
			GPUMemoryUsed: 77309411328 + 76235669504, GPUMemoryTotal: 2 * 85520809984,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			in := page(t, tt.file)
			got, err := parse(t, tt.format, in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseMetrics:\n got %+v\nwant %+v", got, tt.want)
			}
			// The reference parser must read the page the same way.
			mfs, err := expfmtParse(in)
			if err != nil {
				t.Fatalf("expfmt rejects the test page: %v", err)
			}
			ref, err := referenceStats(tt.format, mfs)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, ref) {
				t.Errorf("ParseMetrics disagrees with expfmt:\n got %+v\n ref %+v", got, ref)
			}
			// The page read a byte at a time parses the same.
			var slow backends.Stats
			if err := backends.ParseMetrics(tt.format, iotest.OneByteReader(bytes.NewReader(in)), &slow); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(slow, got) {
				t.Errorf("byte-at-a-time read differs:\n got %+v\nwant %+v", slow, got)
			}
		})
	}
}

func TestParseMetricsKeepsCallerFields(t *testing.T) {
	s := backends.Stats{InFlightAtScrape: 7, Waiting: 99, LoRA: &backends.LoRAStats{Max: 1}}
	s.ScrapedAt = s.ScrapedAt.AddDate(2025, 0, 0)
	at := s.ScrapedAt
	if err := backends.ParseMetrics(backends.MetricsTGI, strings.NewReader("tgi_queue_size 1\n"), &s); err != nil {
		t.Fatal(err)
	}
	want := backends.Stats{ScrapedAt: at, InFlightAtScrape: 7, Waiting: 1, Running: -1, KVUsage: -1}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got %+v, want %+v", s, want)
	}
	// On error the snapshot is untouched.
	before := s
	if err := backends.ParseMetrics(backends.MetricsTGI, strings.NewReader("tgi_queue_size x\n"), &s); err == nil {
		t.Fatal("no error")
	}
	if !reflect.DeepEqual(s, before) {
		t.Errorf("failed parse changed the snapshot: %+v", s)
	}
}

func TestParseMetricsSyntax(t *testing.T) {
	const q = "vllm:num_requests_waiting 0\n" // a vLLM page needs its queue gauge
	base := backends.Stats{Running: -1, KVUsage: -1}
	with := func(f func(*backends.Stats)) backends.Stats { s := base; f(&s); return s }
	tests := []struct {
		name   string
		format backends.MetricsFormat
		in     string
		want   backends.Stats
		// notExpfmt marks inputs outside the 0.0.4 text format that ParseMetrics tolerates
		// (OpenMetrics exemplars and float timestamps, CRLF, no final newline).
		notExpfmt bool
	}{
		{name: "integer", format: backends.MetricsVLLM, in: "vllm:num_requests_waiting 3\n",
			want: with(func(s *backends.Stats) { s.Waiting = 3 })},
		{name: "python float", format: backends.MetricsVLLM, in: "vllm:num_requests_waiting{engine=\"0\"} 3.0\nvllm:num_requests_running{engine=\"0\"} 12.0\n",
			want: with(func(s *backends.Stats) { s.Waiting, s.Running = 3, 12 })},
		{name: "scientific notation", format: backends.MetricsVLLM, in: "vllm:num_requests_waiting 1.2e1\nvllm:kv_cache_usage_perc 5E-1\n",
			want: with(func(s *backends.Stats) { s.Waiting, s.KVUsage = 12, 0.5 })},
		{name: "NaN count is zero, NaN usage unknown", format: backends.MetricsVLLM, in: "vllm:num_requests_waiting NaN\nvllm:num_requests_running nan\nvllm:kv_cache_usage_perc NaN\n",
			want: with(func(s *backends.Stats) { s.Running = 0 })},
		{name: "infinite count capped", format: backends.MetricsVLLM, in: q + "vllm:num_requests_running +Inf\nvllm:kv_cache_usage_perc -Inf\n",
			want: with(func(s *backends.Stats) { s.Running = math.MaxInt32 })},
		{name: "negative count is zero", format: backends.MetricsVLLM, in: "vllm:num_requests_waiting -2\n", want: base},
		{name: "timestamp", format: backends.MetricsVLLM, in: "vllm:num_requests_waiting{engine=\"0\"} 3 1712345678901\n",
			want: with(func(s *backends.Stats) { s.Waiting = 3 })},
		{name: "blanks and tabs", format: backends.MetricsVLLM, in: " \t vllm:num_requests_waiting \t{ engine = \"0\" , model_name=\"m\" , } \t 7 \t -123\n",
			want: with(func(s *backends.Stats) { s.Waiting = 7 })},
		{name: "no blank before value", format: backends.MetricsVLLM, in: "vllm:num_requests_waiting{}7\nvllm:num_requests_running+3\n",
			want: with(func(s *backends.Stats) { s.Waiting, s.Running = 7, 3 })},
		{name: "escaped quotes and commas in labels", format: backends.MetricsVLLM,
			in:   "vllm:num_requests_waiting{model_name=\"a \\\"b\\\", c}\",engine=\"0\"} 2\nvllm:num_requests_waiting{model_name=\"x\\\\\",engine=\"1\"} 3\n",
			want: with(func(s *backends.Stats) { s.Waiting = 5 })},
		{name: "quoted label name", format: backends.MetricsVLLM, in: q + "vllm:cache_config_info{\"block_size\"=\"32\",num_\"gpu_blocks\"=\"100\"} 1\n",
			want: with(func(s *backends.Stats) { s.BlockSize, s.KVBlocks = 32, 100 })},
		{name: "longer names are other families", format: backends.MetricsVLLM,
			in:   q + "vllm:num_requests_waiting_by_reason{reason=\"x\"} 99\nvllm:num_requests_running_total 5\nvllm:kv_cache_usage_perc_x 1\n",
			want: base},
		{name: "kv_cache_usage_perc preferred to deprecated alias", format: backends.MetricsVLLM,
			in:   q + "vllm:gpu_cache_usage_perc 0.9\nvllm:kv_cache_usage_perc 0.25\nvllm:gpu_cache_usage_perc 0.8\n",
			want: with(func(s *backends.Stats) { s.KVUsage = 0.25 })},
		{name: "deprecated alias alone", format: backends.MetricsVLLM, in: q + "vllm:gpu_cache_usage_perc 0.75\nvllm:gpu_cache_usage_perc 0.25\n",
			want: with(func(s *backends.Stats) { s.KVUsage = 0.5 })},
		{name: "prefix counters prefer current names", format: backends.MetricsVLLM,
			in:   q + "vllm:gpu_prefix_cache_hits_total 1\nvllm:prefix_cache_hits_total 10\nvllm:gpu_prefix_cache_queries_total 300\n",
			want: with(func(s *backends.Stats) { s.PrefixHits, s.PrefixQueries = 10, 300 })},
		{name: "cache info without a number", format: backends.MetricsVLLM, in: q + "vllm:cache_config_info{block_size=\"16\",num_gpu_blocks=\"None\"} 1\n",
			want: with(func(s *backends.Stats) { s.BlockSize = 16 })},
		{name: "latest LoRA series wins", format: backends.MetricsVLLM,
			in: q + "vllm:lora_requests_info{max_lora=\"2\",running_lora_adapters=\"a\",waiting_lora_adapters=\"\"} 200\n" +
				"vllm:lora_requests_info{max_lora=\"3\",running_lora_adapters=\"x\\\\y, c\\\"d ,,\",waiting_lora_adapters=\"e\"} 300\n" +
				"vllm:lora_requests_info{max_lora=\"2\",running_lora_adapters=\"\",waiting_lora_adapters=\"\"} 100\n",
			want: with(func(s *backends.Stats) {
				s.LoRA = &backends.LoRAStats{Max: 3, Running: []string{`x\y`, `c"d`}, Waiting: []string{"e"}}
			})},
		{name: "idle LoRA", format: backends.MetricsVLLM, in: q + "vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"\",waiting_lora_adapters=\"\"} 1.7e9\n",
			want: with(func(s *backends.Stats) { s.LoRA = &backends.LoRAStats{Max: 4} })},
		{name: "OpenMetrics EOF", format: backends.MetricsVLLM, in: "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting 2\n# EOF\n",
			want: with(func(s *backends.Stats) { s.Waiting = 2 })},
		{name: "OpenMetrics exemplar and float timestamp", format: backends.MetricsVLLM, notExpfmt: true,
			in:   q + "vllm:prefix_cache_hits_total 10 1712345678.125 # {trace_id=\"abc\"} 1.0\nvllm:prefix_cache_queries_total 20 # {trace_id=\"abc\"} 1.0\n",
			want: with(func(s *backends.Stats) { s.PrefixHits, s.PrefixQueries = 10, 20 })},
		{name: "CRLF", format: backends.MetricsVLLM, notExpfmt: true, in: "# HELP x y\r\nvllm:num_requests_waiting 4\r\n",
			want: with(func(s *backends.Stats) { s.Waiting = 4 })},
		{name: "no final newline", format: backends.MetricsVLLM, notExpfmt: true, in: "vllm:num_requests_waiting 4",
			want: with(func(s *backends.Stats) { s.Waiting = 4 })},
		{name: "sglang", format: backends.MetricsSGLang,
			in:   "sglang:num_queue_reqs{model_name=\"m\",tp_rank=\"0\"} 3\nsglang:num_queue_reqs{model_name=\"m\",tp_rank=\"1\"} 1\nsglang:token_usage 0.5\nsglang:token_usage 0.7\n",
			want: with(func(s *backends.Stats) { s.Waiting, s.KVUsage = 4, 0.6 })},
		{name: "tgi without batch gauge", format: backends.MetricsTGI, in: "tgi_queue_size 2\ntgi_batch_current_max_tokens 100\n",
			want: with(func(s *backends.Stats) { s.Waiting = 2 })},
		{name: "tgi page without gauges yet", format: backends.MetricsTGI, in: "# TYPE tgi_request_count counter\ntgi_request_count 0\n", want: base},
		{name: "triton without TRT-LLM", format: backends.MetricsTriton,
			in:   "nv_inference_pending_request_count{model=\"a\",version=\"1\"} 2\nnv_inference_pending_request_count{model=\"b\",version=\"1\"} 3\nnv_gpu_memory_used_bytes{gpu_uuid=\"GPU-1\"} 1e9\n",
			want: with(func(s *backends.Stats) { s.Waiting, s.GPUMemoryUsed = 5, 1e9 })},
		{name: "empty page of a format without queue gauge", format: backends.MetricsTriton, in: "", want: base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parse(t, tt.format, []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
			if got.LoRA != nil && tt.want.LoRA != nil && !reflect.DeepEqual(*got.LoRA, *tt.want.LoRA) {
				t.Errorf("LoRA: got %+v, want %+v", *got.LoRA, *tt.want.LoRA)
			}
			mfs, err := expfmtParse([]byte(tt.in))
			if tt.notExpfmt {
				if err == nil {
					t.Errorf("expfmt accepts the input; drop notExpfmt")
				}
				return
			}
			if err != nil {
				t.Fatalf("expfmt: %v", err)
			}
			if ref, err := referenceStats(tt.format, mfs); err != nil || !reflect.DeepEqual(got, ref) {
				t.Errorf("expfmt reads %+v (err %v)", ref, err)
			}
		})
	}
}

func TestParseMetricsErrors(t *testing.T) {
	const q = "vllm:num_requests_waiting 0\n"
	tests := []struct {
		name   string
		format backends.MetricsFormat
		in     string
		want   string // substring of the error; "" means no error
	}{
		{"bad value", backends.MetricsVLLM, "# HELP a b\nvllm:num_requests_waiting{engine=\"0\"} abc\n", `line 2: vllm:num_requests_waiting: invalid value "abc"`},
		{"hex float", backends.MetricsVLLM, "vllm:num_requests_waiting 0x1p3\n", "line 1: vllm:num_requests_waiting: invalid value"},
		{"underscore", backends.MetricsVLLM, "vllm:num_requests_waiting 1_000\n", "invalid value"},
		{"out of range", backends.MetricsVLLM, "vllm:num_requests_waiting 1e999\n", "invalid value"},
		{"missing value", backends.MetricsVLLM, "vllm:num_requests_waiting{engine=\"0\",}\n", "line 1: vllm:num_requests_waiting: missing value"},
		{"name only", backends.MetricsVLLM, q + "vllm:num_requests_running\n", "line 2: vllm:num_requests_running: missing value"},
		{"unterminated value", backends.MetricsVLLM, "vllm:num_requests_waiting{engine=\"0} 1\n", "unterminated label value"},
		{"unquoted value", backends.MetricsVLLM, "vllm:num_requests_waiting{engine=0} 1\n", "malformed label set"},
		{"unclosed labels", backends.MetricsSGLang, "sglang:num_queue_reqs{a=\"b\" 1\n", "line 1: sglang:num_queue_reqs: malformed label set"},
		{"empty label name", backends.MetricsVLLM, "vllm:num_requests_waiting{,} 1\n", "empty label name"},
		{"bad escape", backends.MetricsVLLM, "vllm:num_requests_waiting{a=\"\\q\"} 1\n", "invalid escape"},
		{"bad timestamp", backends.MetricsVLLM, "vllm:num_requests_waiting 1 soon\n", "invalid timestamp"},
		{"trailing text", backends.MetricsVLLM, "vllm:num_requests_waiting 1 2 3\n", "unexpected text"},
		{"name glued to junk", backends.MetricsVLLM, "vllm:num_requests_waiting=1\n", `invalid value "=1"`},
		{"labelled triton gauge", backends.MetricsTriton, "nv_trt_llm_request_metrics{request_type=\"waiting\" 3\n", "line 1: nv_trt_llm_request_metrics"},
		{"tgi", backends.MetricsTGI, "\n\ntgi_batch_current_size one\n", "line 3: tgi_batch_current_size"},
		{"not vllm", backends.MetricsVLLM, "# HELP sglang:num_queue_reqs x\nsglang:num_queue_reqs 1\n", "not a vllm endpoint: no vllm:num_requests_waiting"},
		{"not sglang", backends.MetricsSGLang, string(page(t, "vllm.txt")), "not a sglang endpoint: no sglang:num_queue_reqs"},
		{"empty vllm page", backends.MetricsVLLM, "", "not a vllm endpoint"},
		{"auto is not parseable", backends.MetricsAuto, q, `format "auto"`},
		{"none is not parseable", backends.MetricsNone, q, `format "none"`},
		{"unknown format", backends.MetricsFormat("bogus"), q, `format "bogus"`},

		// Malformed lines of families that are not needed are never looked at.
		{"malformed histogram bucket", backends.MetricsVLLM, q + "vllm:time_to_first_token_seconds_bucket{le=\"0.1\" oops\n", ""},
		{"garbage", backends.MetricsVLLM, q + "!!! not a metric\n{\"x\"} y\n", ""},
		{"bad comment", backends.MetricsVLLM, q + "# HELP vllm:x \\q\n# TYPE vllm:x nonsense\n", ""},
		{"longer needed-looking name", backends.MetricsVLLM, q + "vllm:num_requests_waitingX bad bad\nvllm:num_requests_waiting\"q\" x\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.format, []byte(tt.in))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("no error, want %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseMetricsLongLines(t *testing.T) {
	const q = "vllm:num_requests_waiting 3\n"
	long := func(n int) string { return strings.Repeat("x", n) }
	adapters := make([]string, 20000)
	for i := range adapters {
		adapters[i] = fmt.Sprintf("adapter-%05d", i)
	}
	tests := []struct {
		name    string
		in      string
		want    int    // adapters read
		wantErr string // substring of the error
	}{
		{name: "long comment", in: "# HELP vllm:x " + long(200<<10) + "\n" + q},
		{name: "long label of another family", in: "vllm:request_success_total{finished_reason=\"" + long(3<<20) + "\"} 1\n" + q},
		{name: "leading blanks", in: strings.Repeat(" ", 40<<10) + q},
		{name: "long LoRA list", in: q + "vllm:lora_requests_info{max_lora=\"20000\",running_lora_adapters=\"" + strings.Join(adapters, ",") + "\",waiting_lora_adapters=\"\"} 1\n",
			want: len(adapters)},
		{name: "needed line too long", in: q + "vllm:lora_requests_info{max_lora=\"1\",running_lora_adapters=\"" + long(2<<20) + "\",waiting_lora_adapters=\"\"} 1\n",
			wantErr: "line 2: longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parse(t, backends.MetricsVLLM, []byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Waiting != 3 {
				t.Errorf("Waiting = %d, want 3", got.Waiting)
			}
			if n := 0; got.LoRA != nil || tt.want > 0 {
				if got.LoRA != nil {
					n = len(got.LoRA.Running)
				}
				if n != tt.want {
					t.Errorf("%d adapters, want %d", n, tt.want)
				}
			}
		})
	}
}

func TestParseMetricsReadError(t *testing.T) {
	boom := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("vllm:num_requests_waiting 1\n"), iotest.ErrReader(boom))
	var s backends.Stats
	if err := backends.ParseMetrics(backends.MetricsVLLM, r, &s); !errors.Is(err, boom) {
		t.Fatalf("error %v, want %v", err, boom)
	}
}

// TestParseMetricsAllocations checks that allocations do not grow with the page: lines of
// families that are not needed cost none.
func TestParseMetricsAllocations(t *testing.T) {
	in := page(t, "vllm.txt")
	// The same page with ten times the unneeded lines.
	var big bytes.Buffer
	for range 10 {
		for line := range bytes.Lines(in) {
			if !bytes.HasPrefix(line, []byte("vllm:num_requests")) && !bytes.HasPrefix(line, []byte("vllm:kv_cache")) &&
				!bytes.HasPrefix(line, []byte("vllm:prefix_cache")) && !bytes.HasPrefix(line, []byte("vllm:cache_config")) {
				big.Write(line)
			}
		}
	}
	big.Write(in)
	allocs := func(b []byte) float64 {
		r := bytes.NewReader(b)
		var s backends.Stats
		return testing.AllocsPerRun(20, func() {
			r.Reset(b)
			if err := backends.ParseMetrics(backends.MetricsVLLM, r, &s); err != nil {
				t.Fatal(err)
			}
		})
	}
	small, large := allocs(in), allocs(big.Bytes())
	if small > 10 {
		t.Errorf("%v allocations parsing vllm.txt, want at most 10", small)
	}
	if large != small {
		t.Errorf("%v allocations for a page with 10x the unneeded lines, %v for the page", large, small)
	}
}

// referenceStats derives a snapshot from families parsed by expfmt, following the rules
// ParseMetrics documents: it is the independent reading the tests and the fuzz target compare
// against.
func referenceStats(format backends.MetricsFormat, mfs map[string]*dto.MetricFamily) (backends.Stats, error) {
	value := func(m *dto.Metric) float64 {
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		}
		return m.Untyped.GetValue()
	}
	label := func(m *dto.Metric, name string) string {
		for _, l := range m.Label {
			if l.GetName() == name {
				return l.GetValue()
			}
		}
		return ""
	}
	sum := func(name string) (float64, int) {
		var s float64
		mf := mfs[name]
		for _, m := range mf.GetMetric() {
			s += value(m)
		}
		return s, len(mf.GetMetric())
	}
	count := func(f float64) int {
		switch {
		case !(f > 0):
			return 0
		case f >= math.MaxInt32:
			return math.MaxInt32
		}
		return int(math.Round(f))
	}
	finite := func(f float64) float64 {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0
		}
		return f
	}
	usage := func(names ...string) float64 {
		for _, n := range names {
			if s, k := sum(n); k > 0 {
				if avg := s / float64(k); !math.IsNaN(avg) && !math.IsInf(avg, 0) {
					return avg
				}
				return -1
			}
		}
		return -1
	}
	either := func(current, deprecated string) float64 {
		if s, k := sum(current); k > 0 {
			return s
		}
		s, _ := sum(deprecated)
		return s
	}
	labelInt := func(v string) (int, bool) {
		if len(v) == 0 || len(v) > 18 || strings.TrimLeft(v, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.Atoi(v)
		return n, err == nil
	}
	split := func(v string) []string {
		var out []string
		for _, a := range strings.Split(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				out = append(out, a)
			}
		}
		return out
	}
	capacity := func(info, blocksLabel, sizeLabel string, s *backends.Stats) {
		var blocks float64
		var size float64
		haveSize := false
		for _, m := range mfs[info].GetMetric() {
			if n, ok := labelInt(label(m, blocksLabel)); ok {
				blocks += float64(n)
			}
			if n, ok := labelInt(label(m, sizeLabel)); ok && (!haveSize || float64(n) > size) {
				size, haveSize = float64(n), true
			}
		}
		s.KVBlocks, s.BlockSize = count(blocks), count(size)
	}

	s := backends.Stats{Running: -1, KVUsage: -1}
	switch format {
	case backends.MetricsVLLM, backends.MetricsSGLang:
		prefix, queue, running, kv, info, blocks, size := "vllm:", "num_requests_waiting", "num_requests_running", "kv_cache_usage_perc", "cache_config_info", "num_gpu_blocks", "block_size"
		if format == backends.MetricsSGLang {
			prefix, queue, running, kv, blocks, size = "sglang:", "num_queue_reqs", "num_running_reqs", "token_usage", "num_pages", "page_size"
		}
		w, k := sum(prefix + queue)
		if k == 0 {
			return s, fmt.Errorf("not a %s endpoint", format)
		}
		s.Waiting = count(w)
		if r, k := sum(prefix + running); k > 0 {
			s.Running = count(r)
		}
		s.KVUsage = usage(prefix+kv, "vllm:gpu_cache_usage_perc")
		capacity(prefix+info, blocks, size, &s)
		if format == backends.MetricsSGLang {
			break
		}
		s.PrefixHits = finite(either("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"))
		s.PrefixQueries = finite(either("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"))
		var best *dto.Metric
		for _, m := range mfs["vllm:lora_requests_info"].GetMetric() {
			if best == nil || value(m) >= value(best) {
				best = m
			}
		}
		if best != nil {
			maxLoRA, _ := labelInt(label(best, "max_lora"))
			s.LoRA = &backends.LoRAStats{Max: maxLoRA, Running: split(label(best, "running_lora_adapters")), Waiting: split(label(best, "waiting_lora_adapters"))}
		}
	case backends.MetricsTGI:
		w, _ := sum("tgi_queue_size")
		s.Waiting = count(w)
		if r, k := sum("tgi_batch_current_size"); k > 0 {
			s.Running = count(r)
		}
	case backends.MetricsTriton:
		pending, _ := sum("nv_inference_pending_request_count")
		var waiting, running, fraction, blocks, size float64
		var nRunning, nFraction int
		haveSize := false
		for _, m := range mfs["nv_trt_llm_request_metrics"].GetMetric() {
			switch label(m, "request_type") {
			case "waiting":
				waiting += value(m)
			case "scheduled":
				running += value(m)
				nRunning++
			}
		}
		for _, m := range mfs["nv_trt_llm_kv_cache_block_metrics"].GetMetric() {
			switch v := value(m); label(m, "kv_cache_block_type") {
			case "fraction":
				fraction += v
				nFraction++
			case "max":
				blocks += v
			case "tokens_per":
				if !haveSize || v > size {
					size, haveSize = v, true
				}
			}
		}
		s.Waiting = count(pending + waiting)
		if nRunning > 0 {
			s.Running = count(running)
		}
		if nFraction > 0 {
			if avg := fraction / float64(nFraction); !math.IsNaN(avg) && !math.IsInf(avg, 0) {
				s.KVUsage = avg
			}
		}
		s.KVBlocks, s.BlockSize = count(blocks), count(size)
		used, _ := sum("nv_gpu_memory_used_bytes")
		total, _ := sum("nv_gpu_memory_total_bytes")
		s.GPUMemoryUsed, s.GPUMemoryTotal = finite(used), finite(total)
	default:
		return s, fmt.Errorf("format %q", format)
	}
	return s, nil
}

// neededFamilies lists the families ParseMetrics reads for each format.
var neededFamilies = map[backends.MetricsFormat][]string{
	backends.MetricsVLLM: {"vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc",
		"vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_hits_total", "vllm:gpu_prefix_cache_queries_total",
		"vllm:cache_config_info", "vllm:lora_requests_info"},
	backends.MetricsSGLang: {"sglang:num_queue_reqs", "sglang:num_running_reqs", "sglang:token_usage", "sglang:cache_config_info"},
	backends.MetricsTGI:    {"tgi_queue_size", "tgi_batch_current_size"},
	backends.MetricsTriton: {"nv_inference_pending_request_count", "nv_gpu_memory_used_bytes", "nv_gpu_memory_total_bytes",
		"nv_trt_llm_request_metrics", "nv_trt_llm_kv_cache_block_metrics"},
}

// comparable reports whether expfmt's reading of in can be held against ParseMetrics for
// format: the input must not use quoted (UTF-8) metric names, which ParseMetrics does not
// recognise, and no needed sample may have been taken as part of a histogram or summary, which
// expfmt does by a TYPE line's say-so.
func comparable(format backends.MetricsFormat, in []byte, mfs map[string]*dto.MetricFamily) bool {
	for line := range bytes.Lines(in) {
		line = bytes.TrimLeft(line, " \t")
		if len(line) == 0 || line[0] == '#' || line[0] == '\n' {
			continue
		}
		if line[0] == '{' {
			return false
		}
		if end := bytes.IndexAny(line, " \t{"); end >= 0 && bytes.IndexByte(line[:end], '"') >= 0 {
			return false
		} else if end < 0 && bytes.IndexByte(line, '"') >= 0 {
			return false
		}
	}
	simple := func(t dto.MetricType) bool {
		return t == dto.MetricType_GAUGE || t == dto.MetricType_COUNTER || t == dto.MetricType_UNTYPED
	}
	for _, name := range neededFamilies[format] {
		if mf := mfs[name]; mf != nil && !simple(mf.GetType()) {
			return false
		}
		for _, suffix := range []string{"_count", "_sum", "_bucket"} {
			if base, ok := strings.CutSuffix(name, suffix); ok {
				if mf := mfs[base]; mf != nil && !simple(mf.GetType()) {
					return false
				}
			}
		}
	}
	return true
}

// excerpt keeps the first lines of a page and those that mention a needed family, so that a
// seed has the page's style and everything ParseMetrics reads in a few kilobytes.
func excerpt(in []byte) []byte {
	var out []byte
	n := 0
	for line := range bytes.Lines(in) {
		n++
		keep := n <= 12
		for _, names := range neededFamilies {
			for _, name := range names {
				keep = keep || bytes.Contains(line, []byte(name))
			}
		}
		if keep {
			out = append(out, line...)
		}
	}
	return out
}

func FuzzParseMetrics(f *testing.F) {
	// Excerpts of the test pages: whole pages make each execution slow, and the engine spends
	// its time minimizing them. TestParseMetricsPages checks the whole pages.
	for _, name := range []string{"vllm.txt", "vllm_old.txt", "vllm_dp.txt", "sglang.txt", "tgi.txt", "triton.txt"} {
		f.Add(excerpt(page(f, name)))
	}
	// Inputs the fuzzer found.
	f.Add([]byte("vllm:num_requests_waiting+0\n"))
	f.Add([]byte("vllm:cache_config_info{num_gpu_blocks=\"010\"}0\nvllm:num_requests_waiting 0\n"))
	for _, s := range []string{
		"vllm:num_requests_waiting{engine=\"0\"} 3 1712345678901\n",
		"vllm:num_requests_waiting{a=\"\\\"x,y\\\"\"} NaN\nvllm:num_requests_running +Inf\n",
		"vllm:lora_requests_info{max_lora=\"2\",running_lora_adapters=\"a,b\",waiting_lora_adapters=\"\"} 1e9\nvllm:num_requests_waiting 0\n",
		"vllm:cache_config_info{\"block_size\"=\"16\",num_gpu_blocks=\"100\"} 1\nvllm:num_requests_waiting 1\n",
		"sglang:num_queue_reqs 1\nsglang:token_usage 0.5\nsglang:cache_config_info{num_pages=\"10\",page_size=\"2\"} 1\n",
		"nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"fraction\"} 0.5\nnv_trt_llm_request_metrics{request_type=\"waiting\"} 2\n",
		"# TYPE nv_inference_pending_request summary\nnv_inference_pending_request_count 3\n",
		"tgi_queue_size 2\ntgi_batch_current_size\t4\n# EOF\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		mfs, refErr := expfmtParse(in)
		for _, format := range []backends.MetricsFormat{backends.MetricsVLLM, backends.MetricsSGLang, backends.MetricsTGI, backends.MetricsTriton} {
			var got backends.Stats
			err := backends.ParseMetrics(format, bytes.NewReader(in), &got)
			// Reading in pieces must not change the result. Byte by byte is slow on the big
			// seed pages, where halves still split lines across reads.
			piecewise := iotest.OneByteReader(bytes.NewReader(in))
			if len(in) > 4<<10 {
				piecewise = iotest.HalfReader(bytes.NewReader(in))
			}
			var slow backends.Stats
			slowErr := backends.ParseMetrics(format, piecewise, &slow)
			if (err == nil) != (slowErr == nil) || !reflect.DeepEqual(got, slow) {
				t.Fatalf("%s: byte-at-a-time read differs: %+v (%v) vs %+v (%v)", format, slow, slowErr, got, err)
			}
			if refErr != nil || !comparable(format, in, mfs) {
				continue
			}
			want, wantErr := referenceStats(format, mfs)
			if (err == nil) != (wantErr == nil) {
				t.Fatalf("%s: ParseMetrics error %v, expfmt reading error %v", format, err, wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: ParseMetrics %+v, expfmt reading %+v", format, got, want)
			}
		}
	})
}
