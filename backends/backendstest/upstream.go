// Package backendstest provides a scriptable OpenAI-compatible model server for tests of the
// router: it answers chat, completions, embeddings and models like a real server, and lets a
// test hold a stream open, fail in chosen ways and observe cancellation.
package backendstest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// Fault is how an Upstream misbehaves.
type Fault int

// The faults an Upstream can inject.
const (
	FaultNone      Fault = iota
	FaultStatus503       // answer 503 with an error body
	FaultReset           // close the connection before any response byte
	FaultMidStream       // send two chunks, then cut the connection
	FaultStall           // send headers and one chunk, then block until the request ends
	FaultOldError        // answer 400 with vLLM's old {"object":"error"} body
	FaultHang            // send nothing until the request ends
)

// Upstream is an in-process OpenAI-compatible server. Safe for concurrent use.
type Upstream struct {
	Name string
	URL  string
	srv  *httptest.Server

	mu    sync.Mutex
	fault Fault
	// Gate, when set, holds each stream after its first chunk until a value is received.
	gate chan struct{}

	Requests  atomic.Int64 // requests received on inference routes
	Canceled  atomic.Int64 // requests whose context ended before they finished
	lastBody  atomic.Value // []byte
	lastHead  atomic.Value // http.Header
	finished  chan string
	streamEnd chan struct{}
}

// New starts an Upstream on loopback, closed when the test ends.
func New(t testing.TB, name string) *Upstream {
	u := &Upstream{Name: name, finished: make(chan string, 1024), streamEnd: make(chan struct{}, 1024)}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	u.URL = u.srv.URL
	t.Cleanup(u.srv.Close)
	return u
}

// SetFault makes later requests misbehave as f.
func (u *Upstream) SetFault(f Fault) {
	u.mu.Lock()
	u.fault = f
	u.mu.Unlock()
}

// Gate makes every stream wait after its first chunk until the returned channel receives.
func (u *Upstream) Gate() chan<- struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.gate = make(chan struct{})
	return u.gate
}

// StreamEnded receives once per stream that the upstream finished writing.
func (u *Upstream) StreamEnded() <-chan struct{} { return u.streamEnd }

// LastBody is the body of the last inference request received.
func (u *Upstream) LastBody() []byte { b, _ := u.lastBody.Load().([]byte); return b }

// LastHeader is the header of the last inference request received.
func (u *Upstream) LastHeader() http.Header { h, _ := u.lastHead.Load().(http.Header); return h }

// Host is the host:port the upstream listens on.
func (u *Upstream) Host() string { return u.srv.Listener.Addr().String() }

func (u *Upstream) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/metrics" {
		io.WriteString(w, "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name=\"m\"} 0\n")
		return
	}
	if r.URL.Path == "/v1/models" {
		json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": []any{map[string]any{"id": "m", "object": "model", "created": 1, "owned_by": u.Name}}})
		return
	}
	body, _ := io.ReadAll(r.Body)
	u.Requests.Add(1)
	u.lastBody.Store(body)
	u.lastHead.Store(r.Header.Clone())
	defer func() {
		if r.Context().Err() != nil {
			u.Canceled.Add(1)
		}
	}()
	var req struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	json.Unmarshal(body, &req)
	u.mu.Lock()
	fault, gate := u.fault, u.gate
	u.mu.Unlock()
	switch fault {
	case FaultStatus503:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":{"message":"overloaded","type":"server_error","param":null,"code":"503"}}`)
		return
	case FaultReset:
		hijackClose(w)
		return
	case FaultHang:
		<-r.Context().Done()
		return
	case FaultOldError:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"object":"error","message":"bad temperature","type":"BadRequestError","param":null,"code":400}`)
		return
	}
	w.Header().Set("x-upstream", u.Name)
	switch r.URL.Path {
	case "/v1/chat/completions", "/v1/completions":
		if req.Stream || fault == FaultMidStream || fault == FaultStall {
			u.stream(w, r, req.Model, fault, gate)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"cmpl-1","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"hello from %s"},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8},"x_unknown_field":true}`, req.Model, u.Name)
	case "/v1/embeddings":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.6,0.8]}],"model":%q,"usage":{"prompt_tokens":2,"total_tokens":2}}`, req.Model)
	default:
		http.NotFound(w, r)
	}
}

func (u *Upstream) stream(w http.ResponseWriter, r *http.Request, model string, fault Fault, gate chan struct{}) {
	w.Header().Set("Content-Type", "text/event-stream")
	f := w.(http.Flusher)
	chunk := func(content string, finish string) {
		fin := "null"
		if finish != "" {
			fin = `"` + finish + `"`
		}
		fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":%q,\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":%s}]}\n\n", model, content, fin)
		f.Flush()
	}
	chunk("Hel", "")
	if fault == FaultStall {
		<-r.Context().Done()
		return
	}
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	chunk("lo", "")
	if fault == FaultMidStream {
		hijackClose(w)
		return
	}
	chunk("", "stop")
	io.WriteString(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\ndata: [DONE]\n\n")
	f.Flush()
	u.streamEnd <- struct{}{}
}

// hijackClose drops the connection without a proper response end.
func hijackClose(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0) // reset, not a graceful FIN
	}
	conn.Close()
}
