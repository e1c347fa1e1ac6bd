package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchyard-ai/switchyard/backends/sim"
	"github.com/switchyard-ai/switchyard/policy"
)

// passthroughRouter serves model small from two simulators and model big from a third, with
// /tokenize and /v1/score routed by the body's model and /v1/rerank also by x-model.
func passthroughRouter(t *testing.T, extra string) (base string, small, big []*simServer) {
	small = []*simServer{startSim(t, sim.Config{Model: "small"}), startSim(t, sim.Config{Model: "small"})}
	big = []*simServer{startSim(t, sim.Config{Model: "big"})}
	_, base = startRouter(t, `pools:
  - {name: s, metrics: none, endpoints: [`+small[0].URL+`, `+small[1].URL+`]}
  - {name: b, metrics: none, endpoints: [`+big[0].URL+`]}
models:
  - {name: small, pool: s}
  - {name: big, pool: b}
  - {name: alias, pool: b, target_model: big}
openai:
  passthrough:
    - {path: /tokenize}
    - {path: /v1/score}
    - {path: /v1/rerank, model_header: x-model}
`+extra)
	return base, small, big
}

func send(t *testing.T, method, url, key string, header map[string]string, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func hosts(sims []*simServer) []string {
	var out []string
	for _, s := range sims {
		out = append(out, s.Host)
	}
	return out
}

func TestPassthroughRouting(t *testing.T) {
	base, small, big := passthroughRouter(t, "")
	for _, tt := range []struct {
		name, path string
		header     map[string]string
		body       string
		want       []*simServer
		field      string // a key the simulator's answer has
	}{
		{"body model", "/tokenize", nil, `{"model":"small","prompt":"hello router"}`, small, `"tokens"`},
		{"body model, other pool", "/tokenize", nil, `{"model":"big","prompt":"hello router"}`, big, `"tokens"`},
		{"renamed model", "/v1/score", nil, `{"model":"alias","text_1":"a cat","text_2":["a cat","a dog"]}`, big, `"score"`},
		{"header model", "/v1/rerank", map[string]string{"x-model": "big"}, `{"query":"cat","documents":["a cat","a dog"]}`, big, `"relevance_score"`},
		{"header wins over body", "/v1/rerank", map[string]string{"x-model": "small"}, `{"model":"small","query":"cat","documents":["a cat"]}`, small, `"relevance_score"`},
		{"body when no header", "/v1/rerank", nil, `{"model":"big","query":"cat","documents":["a cat"]}`, big, `"relevance_score"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := send(t, http.MethodPost, base+tt.path, "", tt.header, tt.body)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Contains(b, []byte(tt.field)) {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			ep := resp.Header.Get("x-switchyard-endpoint")
			if !strings.Contains(strings.Join(hosts(tt.want), ","), ep) || ep == "" {
				t.Errorf("served by %q, want one of %v", ep, hosts(tt.want))
			}
		})
	}
	// Every simulator has /detokenize, but it is not configured: 404, never a guess.
	for _, tt := range []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
		code                     string
	}{
		{"unknown model", "POST", "/tokenize", `{"model":"nope","prompt":"x"}`, nil, 404, "model_not_found"},
		{"unknown header model", "POST", "/v1/rerank", `{"query":"x","documents":["y"]}`, map[string]string{"x-model": "nope"}, 404, "model_not_found"},
		{"no model", "POST", "/tokenize", `{"prompt":"x"}`, nil, 400, "invalid_request"},
		{"no model, header route", "POST", "/v1/rerank", `{"query":"x"}`, nil, 400, "invalid_request"},
		{"not JSON", "POST", "/tokenize", `model=small`, nil, 400, "invalid_request"},
		{"unconfigured path", "POST", "/detokenize", `{"model":"small","tokens":[1,2]}`, nil, 404, "unknown_url"},
		{"wrong method", "GET", "/tokenize", ``, nil, 405, "method_not_allowed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			openAIError(t, send(t, tt.method, base+tt.path, "", tt.header, tt.body), tt.status, tt.code)
		})
	}
	for _, s := range append(small, big...) {
		if n := s.sim.Stats().Requests; n > 4 {
			t.Errorf("%s saw %d requests; refused ones reached it", s.Host, n)
		}
	}
}

// TestPolicyOnNewPaths: every path beyond chat authenticates (401 without a key) and counts
// against request limits (429 once a tenant's two requests a minute are spent). Each path
// gets its own tenant, so each shows its own 429.
func TestPolicyOnNewPaths(t *testing.T) {
	paths := []string{"responses", "get", "delete", "realtime", "transcriptions", "translations", "speech", "passthrough"}
	var keys strings.Builder
	for _, p := range paths {
		keys.WriteString("    - {name: " + p + ", sha256: " + policy.HashKey("sk-"+p) + ", tenant: " + p + "}\n")
	}
	base, _, _ := passthroughRouter(t, "auth:\n  api_keys:\n"+keys.String()+
		"limits:\n  rules:\n    - {name: rpm, requests: 2, window: 1m, by: [tenant]}\n")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	multipartBody := func() (string, string) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		mw.WriteField("model", "small")
		fw, _ := mw.CreateFormFile("file", "a.wav")
		fw.Write(bytes.Repeat([]byte{1}, 4096))
		mw.Close()
		return mw.FormDataContentType(), b.String()
	}
	// created makes a stored response for a tenant, spending one of its requests.
	created := func(key string) string {
		resp := send(t, "POST", base+"/v1/responses", key, nil, `{"model":"small","input":"hi","max_output_tokens":2}`)
		defer resp.Body.Close()
		var r struct {
			ID string `json:"id"`
		}
		json.NewDecoder(resp.Body).Decode(&r)
		if r.ID == "" {
			t.Fatalf("no response created: %d", resp.StatusCode)
		}
		return r.ID
	}
	call := map[string]func(key string) *http.Response{
		"responses": func(key string) *http.Response {
			return send(t, "POST", base+"/v1/responses", key, nil, `{"model":"small","input":"hi","max_output_tokens":2}`)
		},
		"speech": func(key string) *http.Response {
			return send(t, "POST", base+"/v1/audio/speech", key, nil, `{"model":"small","input":"hi","voice":"alloy"}`)
		},
		"passthrough": func(key string) *http.Response {
			return send(t, "POST", base+"/tokenize", key, nil, `{"model":"small","prompt":"hi"}`)
		},
		"realtime": func(key string) *http.Response {
			c, resp, err := dialRealtime(ctx, t, "ws"+strings.TrimPrefix(base, "http"), "small", key)
			if err == nil {
				c.Close(websocket.StatusNormalClosure, "")
				resp.StatusCode, resp.Body = 200, http.NoBody // the upgrade (101) succeeded
			}
			return resp
		},
	}
	for _, p := range []string{"transcriptions", "translations"} {
		call[p] = func(key string) *http.Response {
			ct, body := multipartBody()
			return send(t, "POST", base+"/v1/audio/"+p, key, map[string]string{"Content-Type": ct}, body)
		}
	}
	for _, m := range []struct{ path, method string }{{"get", "GET"}, {"delete", "DELETE"}} {
		id := ""
		call[m.path] = func(key string) *http.Response {
			switch {
			case key == "":
				return send(t, m.method, base+"/v1/responses/resp_someone", key, nil, "")
			case id == "":
				id = created(key)
			}
			return send(t, m.method, base+"/v1/responses/"+id, key, nil, "")
		}
	}
	for _, p := range paths {
		t.Run(p, func(t *testing.T) {
			openAIError(t, call[p](""), 401, "invalid_api_key")
			key := "sk-" + p
			var statuses []int
			for range 3 {
				resp := call[p](key)
				statuses = append(statuses, resp.StatusCode)
				if resp.StatusCode == 429 {
					openAIError(t, resp, 429, "rate_limit_exceeded")
					break
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if statuses[0] != 200 || statuses[len(statuses)-1] != 429 {
				t.Errorf("statuses %v: want 200 first and 429 last", statuses)
			}
		})
	}
}
