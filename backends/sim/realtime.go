package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/coder/websocket"
)

// realtimeStats counts Realtime sessions and remembers how the last one was closed by its
// client.
type realtimeStats struct {
	sessions  atomic.Int64
	lastClose atomic.Int64 // close code the last client sent; 0 before any
}

// handleRealtime serves GET /v1/realtime?model=… as a WebSocket echo: it sends a
// session.created event, then returns every message, text or binary, as it was sent, frame
// by frame. A text message {"type":"sim.close","code":N,"reason":"…"} makes the server close
// the session with that code, so tests can see close codes travel both ways.
func (s *Server) handleRealtime(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if m := r.URL.Query().Get("model"); m != "" && m != s.cfg.Model {
		writeError(w, http.StatusNotFound, "model_not_found", fmt.Sprintf("model %q is not served here; this server serves %q", m, s.cfg.Model))
		return
	}
	var protos []string
	if slices.Contains(websocketProtocols(r), "realtime") {
		protos = []string{"realtime"}
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: protos})
	if err != nil {
		return // Accept has answered
	}
	defer c.CloseNow()
	c.SetReadLimit(-1)
	s.realtime.sessions.Add(1)
	ctx := r.Context()
	id := s.ids.Add(1)
	hello := marshal(map[string]any{"type": "session.created", "event_id": fmt.Sprintf("event_%016x", id),
		"session": map[string]any{"id": fmt.Sprintf("sess_%016x", id), "object": "realtime.session", "model": s.cfg.Model}})
	if err := c.Write(ctx, websocket.MessageText, hello); err != nil {
		return
	}
	buf := make([]byte, 32<<10)
	var heard int64 // bytes of the session's text events so far, its conversation
	for {
		typ, rd, err := c.Reader(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				s.realtime.lastClose.Store(int64(ce.Code))
			}
			return
		}
		if typ == websocket.MessageText {
			// Text events are small JSON; read one whole to look for the close command.
			b, err := io.ReadAll(io.LimitReader(rd, 1<<20))
			if err != nil {
				return
			}
			var cmd struct {
				Type     string `json:"type"`
				Code     int    `json:"code"`
				Reason   string `json:"reason"`
				Response struct {
					MaxOutputTokens int `json:"max_output_tokens"`
				} `json:"response"`
			}
			ok := json.Unmarshal(b, &cmd) == nil
			if ok && cmd.Type == "sim.close" {
				c.Close(websocket.StatusCode(cmd.Code), cmd.Reason)
				return
			}
			heard += int64(len(b))
			if ok && cmd.Type == "response.create" {
				if err := s.realtimeResponse(ctx, c, heard, cmd.Response.MaxOutputTokens); err != nil {
					return
				}
				continue
			}
			if err := c.Write(ctx, typ, b); err != nil {
				return
			}
			continue
		}
		wr, err := c.Writer(ctx, typ)
		if err != nil {
			return
		}
		if _, err := io.CopyBuffer(wr, rd, buf); err != nil {
			return
		}
		if err := wr.Close(); err != nil {
			return
		}
	}
}

// realtimeResponse answers response.create as a Realtime server does: response.created, a
// text delta per output token, then response.done with the usage, the input being the
// session's conversation so far (a token per 4 bytes of its text events) and the output
// maxOutput tokens (default 16).
func (s *Server) realtimeResponse(ctx context.Context, c *websocket.Conn, heard int64, maxOutput int) error {
	if maxOutput <= 0 {
		maxOutput = 16
	}
	id := fmt.Sprintf("resp_%016x", s.ids.Add(1))
	if err := c.Write(ctx, websocket.MessageText, marshal(map[string]any{"type": "response.created",
		"response": map[string]any{"id": id, "object": "realtime.response", "status": "in_progress"}})); err != nil {
		return err
	}
	for i := range maxOutput {
		if err := c.Write(ctx, websocket.MessageText, marshal(map[string]any{"type": "response.output_text.delta",
			"response_id": id, "delta": s.words[i%len(s.words)] + " "})); err != nil {
			return err
		}
	}
	input := heard/4 + 1
	return c.Write(ctx, websocket.MessageText, marshal(map[string]any{"type": "response.done",
		"response": map[string]any{"id": id, "object": "realtime.response", "status": "completed",
			"usage": map[string]any{"total_tokens": input + int64(maxOutput), "input_tokens": input, "output_tokens": maxOutput}}}))
}

// websocketProtocols lists the subprotocols a WebSocket handshake offers.
func websocketProtocols(r *http.Request) []string {
	var out []string
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			out = append(out, strings.TrimSpace(p))
		}
	}
	return out
}

// RealtimeStats reports how many Realtime sessions the server accepted and the close code the
// last client sent (0 before any closed).
func (s *Server) RealtimeStats() (sessions int64, lastClose int) {
	return s.realtime.sessions.Load(), int(s.realtime.lastClose.Load())
}
