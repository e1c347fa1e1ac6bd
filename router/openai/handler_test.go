package openai

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard-ai/switchyard/backends"
	"github.com/switchyard-ai/switchyard/router"
)

// TestPanicIsRecoveredAndLogged breaks the wiring on purpose (a pool with no upstream client)
// so that forwarding panics: the client must still get a 500 in OpenAI error JSON, and the
// panic and the request's log line must be written.
func TestPanicIsRecoveredAndLogged(t *testing.T) {
	ep, _ := backends.NewEndpoint("http://127.0.0.1:9")
	rt := router.New()
	rt.Swap(router.NewTable([]*router.Route{{Model: "m", TargetModel: "m", Scheduler: router.NewScheduler(backends.NewPool("p", []*backends.Endpoint{ep}, nil, backends.MetricsNone), nil)}}))
	var logs bytes.Buffer
	h := NewHandler(rt, WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(`{"model":"m"}`)))
	if rec.Code != 500 {
		t.Fatalf("status = %d", rec.Code)
	}
	var body errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Type != "server_error" {
		t.Errorf("body = %s", rec.Body)
	}
	if !strings.Contains(logs.String(), `"msg":"panic serving request"`) {
		t.Errorf("panic not logged: %s", logs.String())
	}
	if ep.InFlight() != 0 {
		t.Errorf("in-flight count leaked by the panic: %d", ep.InFlight())
	}
}

// TestOneLogLinePerRequest checks the structured log line: exactly one per request, carrying
// the request id the client saw.
func TestOneLogLinePerRequest(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	}))
	defer up.Close()
	ep, _ := backends.NewEndpoint(up.URL)
	c, _ := backends.NewHTTPClient(backends.HTTPOptions{})
	defer c.Close()
	rt := router.New()
	rt.Swap(router.NewTable([]*router.Route{{Model: "m", TargetModel: "m", Scheduler: router.NewScheduler(backends.NewPool("p", []*backends.Endpoint{ep}, c, backends.MetricsNone), nil)}}))
	var logs bytes.Buffer
	h := NewHandler(rt, WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	for _, id := range []string{"", "client-chosen-id"} {
		logs.Reset()
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/v1/embeddings", strings.NewReader(`{"model":"m","input":"x"}`))
		if id != "" {
			req.Header.Set("x-request-id", id)
		}
		h.ServeHTTP(rec, req)
		lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
		if len(lines) != 1 {
			t.Fatalf("%d log lines: %s", len(lines), logs.String())
		}
		var line map[string]any
		json.Unmarshal([]byte(lines[0]), &line)
		got := rec.Header().Get("x-request-id")
		if got == "" || (id != "" && got != id) || line["id"] != got {
			t.Errorf("header id %q, log id %v, sent %q", got, line["id"], id)
		}
		if line["msg"] != "request" || line["model"] != "m" || line["status"] != float64(200) || line["endpoint"] != ep.Name {
			t.Errorf("log line = %v", line)
		}
	}
}
