package integration_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchyard-ai/switchyard/policy"
)

// realtimeRouter serves model m from sims with keys sk-a (unlimited) and sk-tight (two
// requests a minute) and the given openai.realtime settings.
func realtimeRouter(t *testing.T, realtime string, sims ...*simServer) string {
	_, base := startRouter(t, simPoolYAML("", sims...)+`auth:
  api_keys:
    - {name: a, sha256: `+policy.HashKey("sk-a")+`, tenant: a}
    - {name: tight, sha256: `+policy.HashKey("sk-tight")+`, tenant: tight}
limits:
  rules:
    - {name: tight-rpm, requests: 2, window: 1m, match: {tenant: tight}}
openai:
  realtime: `+realtime+`
`)
	return "ws" + strings.TrimPrefix(base, "http")
}

// dialRealtime opens a Realtime session with the bearer key (none when empty).
func dialRealtime(ctx context.Context, t *testing.T, wsBase, model, key string, protocols ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	if key != "" {
		h.Set("Authorization", "Bearer "+key)
	}
	c, resp, err := websocket.Dial(ctx, wsBase+"/v1/realtime?model="+model, &websocket.DialOptions{HTTPHeader: h, Subprotocols: protocols})
	if c != nil {
		c.SetReadLimit(-1)
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, resp, err
}

// readEvent reads one text message and decodes its type.
func readEvent(ctx context.Context, t *testing.T, c *websocket.Conn) (string, []byte) {
	t.Helper()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("message type %v", typ)
	}
	var ev struct {
		Type string `json:"type"`
	}
	json.Unmarshal(b, &ev)
	return ev.Type, b
}

func closeOf(err error) websocket.CloseError {
	var ce websocket.CloseError
	errors.As(err, &ce)
	return ce
}

func TestRealtimeEchoAndCloseCodes(t *testing.T) {
	sims := simFleet(t, 2)
	ws := realtimeRouter(t, "{idle_timeout: 1m}", sims...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	c, resp, err := dialRealtime(ctx, t, ws, "m", "sk-a", "realtime")
	if err != nil {
		t.Fatal(err)
	}
	if c.Subprotocol() != "realtime" || resp.Header.Get("x-switchyard-endpoint") == "" {
		t.Errorf("subprotocol %q, endpoint %q", c.Subprotocol(), resp.Header.Get("x-switchyard-endpoint"))
	}
	if typ, b := readEvent(ctx, t, c); typ != "session.created" || !bytes.Contains(b, []byte(`"model":"m"`)) {
		t.Fatalf("first event %s", b)
	}
	// Text and binary messages come back as sent, one at a time: each is echoed before the
	// next is sent, so nothing waits for more input to be relayed.
	big := make([]byte, 3<<20)
	rand.Read(big)
	for _, m := range []struct {
		typ  websocket.MessageType
		data []byte
	}{
		{websocket.MessageText, []byte(`{"type":"input_audio_buffer.append","audio":"AAAA"}`)},
		{websocket.MessageBinary, big},
		{websocket.MessageText, []byte(`{"type":"conversation.item.create","item":{"type":"message"}}`)},
	} {
		if err := c.Write(ctx, m.typ, m.data); err != nil {
			t.Fatal(err)
		}
		typ, got, err := c.Read(ctx)
		if err != nil || typ != m.typ || !bytes.Equal(got, m.data) {
			t.Fatalf("echo of %d bytes: %v type %v, %d bytes back", len(m.data), err, typ, len(got))
		}
	}
	// The client's close code reaches the model server.
	ep := resp.Header.Get("x-switchyard-endpoint")
	var owner *simServer
	for _, s := range sims {
		if s.Host == ep {
			owner = s
		}
	}
	if err := c.Close(4000, "client done"); err != nil {
		t.Fatalf("close: %v", err)
	}
	eventually(t, "the client's close code at the model server", func() bool {
		_, code := owner.sim.RealtimeStats()
		return code == 4000
	})

	// The model server's close code and reason reach the client.
	c2, _, err := dialRealtime(ctx, t, ws, "m", "sk-a")
	if err != nil {
		t.Fatal(err)
	}
	readEvent(ctx, t, c2)
	c2.Write(ctx, websocket.MessageText, []byte(`{"type":"sim.close","code":4001,"reason":"server done"}`))
	_, _, err = c2.Read(ctx)
	if ce := closeOf(err); ce.Code != 4001 || ce.Reason != "server done" {
		t.Errorf("client saw %v, want close 4001 server done", err)
	}
}

func TestRealtimeHandshakePolicy(t *testing.T) {
	sims := simFleet(t, 1)
	ws := realtimeRouter(t, "{}", sims...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tt := range []struct {
		name, model, key string
		status           int
		code             string
	}{
		{"no key", "m", "", 401, "invalid_api_key"},
		{"wrong key", "m", "sk-wrong", 401, "invalid_api_key"},
		{"unknown model", "nope", "sk-a", 404, "model_not_found"},
		{"no model", "", "sk-a", 400, "invalid_request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, resp, err := dialRealtime(ctx, t, ws, tt.model, tt.key)
			if err == nil || resp == nil {
				t.Fatalf("dial succeeded: %v", err)
			}
			openAIError(t, resp, tt.status, tt.code)
		})
	}
	if n, _ := sims[0].sim.RealtimeStats(); n != 0 {
		t.Errorf("refused handshakes reached the model server: %d sessions", n)
	}
	// Browsers, which cannot set headers, pass the key as a subprotocol.
	c, _, err := dialRealtime(ctx, t, ws, "m", "", "realtime", "openai-insecure-api-key.sk-a")
	if err != nil {
		t.Fatalf("key as subprotocol: %v", err)
	}
	if c.Subprotocol() != "realtime" {
		t.Errorf("subprotocol %q", c.Subprotocol())
	}
	c.Close(websocket.StatusNormalClosure, "")
	// Request limits apply at the handshake: two sessions a minute, then 429.
	for i := range 2 {
		c, _, err := dialRealtime(ctx, t, ws, "m", "sk-tight")
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		c.Close(websocket.StatusNormalClosure, "")
	}
	_, resp, err := dialRealtime(ctx, t, ws, "m", "sk-tight")
	if err == nil {
		t.Fatal("third session admitted")
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After: %v", resp.Header)
	}
	openAIError(t, resp, 429, "rate_limit_exceeded")
}

func TestRealtimeTimeouts(t *testing.T) {
	sims := simFleet(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	t.Run("idle", func(t *testing.T) {
		ws := realtimeRouter(t, "{idle_timeout: 300ms}", sims...)
		c, _, err := dialRealtime(ctx, t, ws, "m", "sk-a")
		if err != nil {
			t.Fatal(err)
		}
		readEvent(ctx, t, c)
		start := time.Now()
		_, _, err = c.Read(ctx)
		if ce := closeOf(err); ce.Code != websocket.StatusGoingAway || ce.Reason != "idle timeout" {
			t.Fatalf("idle session ended with %v", err)
		}
		if d := time.Since(start); d < 250*time.Millisecond {
			t.Errorf("closed after %v, before the idle timeout", d)
		}
		eventually(t, "the model server told of the idle close", func() bool {
			_, code := sims[0].sim.RealtimeStats()
			return code == int(websocket.StatusGoingAway)
		})
	})
	t.Run("max duration", func(t *testing.T) {
		ws := realtimeRouter(t, "{idle_timeout: 10s, max_duration: 600ms}", sims...)
		c, _, err := dialRealtime(ctx, t, ws, "m", "sk-a")
		if err != nil {
			t.Fatal(err)
		}
		readEvent(ctx, t, c)
		// A busy session is closed all the same.
		for {
			if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"ping"}`)); err != nil {
				break
			}
			_, _, err := c.Read(ctx)
			if err != nil {
				if ce := closeOf(err); ce.Code != websocket.StatusGoingAway || ce.Reason != "maximum session duration reached" {
					t.Fatalf("session ended with %v", err)
				}
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		_, _, err = c.Read(ctx)
		if ce := closeOf(err); ce.Reason != "maximum session duration reached" {
			t.Fatalf("session ended with %v", err)
		}
	})
}

// TestRealtimeTokensMetered runs a Realtime session under a token limit of 100 a minute: the
// usage each response.done reports is charged as it arrives, the response that spends the
// budget is still delivered, then both sides are closed with 1008; the next handshake gets
// 429; and the tokens show in the GenAI token series.
func TestRealtimeTokensMetered(t *testing.T) {
	sims := simFleet(t, 1)
	srv, base := startRouter(t, simPoolYAML("", sims...)+`auth:
  api_keys: [{name: m, sha256: `+policy.HashKey("sk-metered")+`, tenant: metered}]
limits:
  rules:
    - {name: metered-tpm, tokens: 100, window: 1m, match: {tenant: metered}}
`)
	ws := "ws" + strings.TrimPrefix(base, "http")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := dialRealtime(ctx, t, ws, "m", "sk-metered")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); err != nil { // session.created
		t.Fatal(err)
	}
	var responses, input, output, before int64 // before: tokens used before the last response
	var closeErr websocket.CloseError
	for responses < 10 {
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"response.create","response":{"max_output_tokens":20}}`)); err != nil {
			t.Fatalf("after %d responses: %v", responses, err)
		}
		var done bool
		for !done {
			_, msg, err := c.Read(ctx)
			if errors.As(err, &closeErr) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			var ev struct {
				Type     string `json:"type"`
				Response struct {
					Usage struct {
						InputTokens  int64 `json:"input_tokens"`
						OutputTokens int64 `json:"output_tokens"`
					} `json:"usage"`
				} `json:"response"`
			}
			json.Unmarshal(msg, &ev)
			if done = ev.Type == "response.done"; done {
				responses++
				before = input + output
				input, output = input+ev.Response.Usage.InputTokens, output+ev.Response.Usage.OutputTokens
			}
		}
		if closeErr.Code != 0 {
			break
		}
	}
	t.Logf("%d responses used %d input and %d output tokens; closed with %d %q", responses, input, output, closeErr.Code, closeErr.Reason)
	if closeErr.Code != websocket.StatusPolicyViolation || closeErr.Reason != "token rate limit reached" {
		t.Fatalf("session ended with %v, want 1008 token rate limit reached", closeErr)
	}
	if before >= 100 || input+output < 100 {
		t.Errorf("closed after %d tokens in %d responses: not at the response that spent the budget of 100", input+output, responses)
	}
	eventually(t, "the model server to see the 1008", func() bool { _, code := sims[0].sim.RealtimeStats(); return code == 1008 })
	_, resp, err := dialRealtime(ctx, t, ws, "m", "sk-metered")
	if err == nil {
		t.Fatal("a session was admitted with the token budget spent")
	}
	openAIError(t, resp, 429, "rate_limit_exceeded")
	// The session's tokens are recorded when its handler returns, after both closes.
	labels := []string{`gen_ai_operation_name="realtime"`, `tenant="metered"`}
	var gotIn, gotOut float64
	eventually(t, "the session's tokens in the metrics", func() bool {
		_, m := httpGet(t, "http://"+srv.AdminAddr()+"/metrics")
		gotIn = metricValue(t, m, "gen_ai_client_token_usage_sum", append(labels, `gen_ai_token_type="input"`)...)
		gotOut = metricValue(t, m, "gen_ai_client_token_usage_sum", append(labels, `gen_ai_token_type="output"`)...)
		return gotIn >= 0 && gotOut >= 0
	})
	if gotIn != float64(input) || gotOut != float64(output) {
		t.Errorf("tokens in metrics: %v input, %v output; want %d, %d", gotIn, gotOut, input, output)
	}
}

// TestRealtimeClosedAtShutdown: a Realtime session open when the router shuts down is closed
// on both sides with 1012 (service restart), for its client to reconnect elsewhere, and
// shutdown waits for that instead of leaving the connection to die with the process.
func TestRealtimeClosedAtShutdown(t *testing.T) {
	sims := simFleet(t, 1)
	srv, base := startRouter(t, simPoolYAML("", sims...))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := dialRealtime(ctx, t, "ws"+strings.TrimPrefix(base, "http"), "m", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); err != nil { // session.created
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		_, _, err := c.Read(ctx)
		read <- err
	}()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	t.Logf("shutdown took %v", time.Since(start))
	var ce websocket.CloseError
	if err := <-read; !errors.As(err, &ce) || ce.Code != websocket.StatusServiceRestart {
		t.Fatalf("client read %v, want close 1012", err)
	}
	eventually(t, "the model server to see 1012", func() bool { _, code := sims[0].sim.RealtimeStats(); return code == 1012 })
}
