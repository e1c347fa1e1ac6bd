package sim_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	goopenai "github.com/sashabaranov/go-openai"
	"go.uber.org/goleak"

	"github.com/switchyard-ai/switchyard/backends/sim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const modelName = "sim-model"

// harness is a simulator behind a real HTTP server with a go-openai client.
type harness struct {
	sim    *sim.Server
	srv    *httptest.Server
	client *goopenai.Client
}

func start(t *testing.T, cfg sim.Config) *harness {
	t.Helper()
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(s.Handler())
	// Close the simulator first: it releases handlers that srv.Close waits for.
	t.Cleanup(func() { s.Close(); srv.Close() })
	cc := goopenai.DefaultConfig("unused")
	cc.BaseURL = srv.URL + "/v1"
	cc.HTTPClient = srv.Client()
	return &harness{sim: s, srv: srv, client: goopenai.NewClientWithConfig(cc)}
}

// words returns a prompt of n one-token words; prompts with different tags
// differ from their first token.
func words(tag string, n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = fmt.Sprintf("%s%03d", tag[:1], i%1000)
	}
	return strings.Join(w, " ")
}

// complete sends a non-streaming completion and returns the response.
func (h *harness) complete(t *testing.T, prompt string, maxTokens int) goopenai.CompletionResponse {
	t.Helper()
	resp, err := h.client.CreateCompletion(context.Background(), goopenai.CompletionRequest{
		Model: modelName, Prompt: prompt, MaxTokens: maxTokens,
	})
	if err != nil {
		t.Fatalf("completion: %v", err)
	}
	return resp
}

// holder keeps slow streaming requests open until released.
type holder struct {
	cancels []context.CancelFunc
	wg      sync.WaitGroup
}

// hold starts a streaming completion that reads until the stream ends or
// its context is cancelled; cancel(i) disconnects the i-th one.
func (h *harness) hold(t *testing.T, hd *holder, prompt string, maxTokens int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	hd.cancels = append(hd.cancels, cancel)
	t.Cleanup(hd.release)
	hd.wg.Go(func() {
		stream, err := h.client.CreateCompletionStream(ctx, goopenai.CompletionRequest{
			Model: modelName, Prompt: prompt, MaxTokens: maxTokens,
		})
		if err != nil {
			return
		}
		defer stream.Close()
		for {
			if _, err := stream.Recv(); err != nil {
				return
			}
		}
	})
}

func (hd *holder) release() {
	for _, c := range hd.cancels {
		c()
	}
	hd.wg.Wait()
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// scrape parses /metrics.
func (h *harness) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := h.srv.Client().Get(h.srv.URL + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	return fams
}

// metric returns the value of the sample of family name whose labels include
// the given name/value pairs; it fails the test if there is none.
func metric(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	fam, ok := fams[name]
	if !ok {
		t.Fatalf("metric %s missing", name)
	}
next:
	for _, m := range fam.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("metric %s%v missing", name, labels)
	return 0
}

// post sends a raw JSON request and returns status, headers and body.
func (h *harness) post(t *testing.T, path, body string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := h.srv.Client().Post(h.srv.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read %s: %v", path, err)
	}
	return resp.StatusCode, resp.Header, b
}

// apiStatus returns the HTTP status of a go-openai API error, or 0.
func apiStatus(err error) int {
	var apiErr *goopenai.APIError
	if errors.As(err, &apiErr) {
		return apiErr.HTTPStatusCode
	}
	return 0
}
