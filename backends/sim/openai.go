package sim

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
)

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.handleChat)
	mux.HandleFunc("POST /v1/completions", s.handleCompletions)
	mux.HandleFunc("POST /v1/embeddings", s.handleEmbeddings)
	mux.HandleFunc("GET /v1/models", s.handleModels)
	mux.HandleFunc("POST /v1/responses", s.handleResponses)
	mux.HandleFunc("GET /v1/responses/{id}", s.handleStoredResponse)
	mux.HandleFunc("DELETE /v1/responses/{id}", s.handleStoredResponse)
	mux.HandleFunc("GET /v1/realtime", s.handleRealtime)
	mux.HandleFunc("POST /v1/audio/transcriptions", s.handleAudioText)
	mux.HandleFunc("POST /v1/audio/translations", s.handleAudioText)
	mux.HandleFunc("POST /v1/audio/speech", s.handleSpeech)
	mux.HandleFunc("POST /tokenize", s.handleTokenize)
	mux.HandleFunc("POST /detokenize", s.handleDetokenize)
	mux.HandleFunc("POST /v1/rerank", s.handleRerank)
	mux.HandleFunc("POST /v1/score", s.handleScore)
	mux.HandleFunc("GET /health", s.handleHealth)
	mux.Handle("GET /metrics", s.metrics.handler())
	return mux
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Stream              bool           `json:"stream"`
	StreamOptions       *streamOptions `json:"stream_options"`
	MaxTokens           *int           `json:"max_tokens"`
	MaxCompletionTokens *int           `json:"max_completion_tokens"`
}

type completionRequest struct {
	Model         string          `json:"model"`
	Prompt        json.RawMessage `json:"prompt"`
	Stream        bool            `json:"stream"`
	StreamOptions *streamOptions  `json:"stream_options"`
	MaxTokens     *int            `json:"max_tokens"`
}

type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
}

// completion is both a full response and a stream chunk, for chat and text
// completions alike; unused fields are omitted.
type completion struct {
	ID      string          `json:"id"`
	Object  string          `json:"object"`
	Created int64           `json:"created"`
	Model   string          `json:"model"`
	Choices []choice        `json:"choices"`
	Usage   json.RawMessage `json:"usage,omitempty"`
}

type choice struct {
	Index        int      `json:"index"`
	Message      *message `json:"message,omitempty"`
	Delta        *message `json:"delta,omitempty"`
	Text         *string  `json:"text,omitempty"`
	Logprobs     any      `json:"logprobs"`
	FinishReason *string  `json:"finish_reason"`
}

type message struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content"`
}

type usage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs are marshalled
	}
	return b
}

// errorBody is an OpenAI error object; an empty code is sent as null.
func errorBody(status int, code, msg string) []byte {
	typ := "invalid_request_error"
	switch {
	case status == http.StatusTooManyRequests:
		typ = "rate_limit_error"
	case status >= 500:
		typ = "server_error"
	}
	var c any
	if code != "" {
		c = code
	}
	return marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": c}})
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody(status, code, msg))
}

// parse decodes the body into req and checks the model, answering 400 or 404
// itself when it reports false.
func (s *Server) parse(w http.ResponseWriter, r *http.Request, req any, model func() string) bool {
	s.requests.Add(1)
	if err := json.NewDecoder(r.Body).Decode(req); err != nil {
		writeError(w, http.StatusBadRequest, "", "invalid JSON body: "+err.Error())
		return false
	}
	if m := model(); m != "" && m != s.cfg.Model {
		writeError(w, http.StatusNotFound, "model_not_found", fmt.Sprintf("model %q is not served here; this server serves %q", m, s.cfg.Model))
		return false
	}
	return true
}

// stringList decodes a JSON string or array of strings.
func stringList(raw json.RawMessage) ([]string, error) {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, errors.New("must be a string or an array of strings")
	}
	return many, nil
}

// messageText flattens a chat message's content: a string, null, or an
// array of parts whose text parts are concatenated.
func messageText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var text string
	if err := json.Unmarshal(raw, &text); err == nil {
		return text, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("message content must be a string or an array of content parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" {
			b.WriteString(p.Text)
		}
	}
	return b.String(), nil
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if !s.parse(w, r, &req, func() string { return req.Model }) {
		return
	}
	if len(req.Messages) == 0 {
		writeError(w, http.StatusBadRequest, "", "messages must not be empty")
		return
	}
	msgs := make([]chatMessage, len(req.Messages))
	for i, m := range req.Messages {
		text, err := messageText(m.Content)
		if err != nil {
			writeError(w, http.StatusBadRequest, "", err.Error())
			return
		}
		msgs[i] = chatMessage{role: m.Role, content: text}
	}
	maxTokens := req.MaxTokens
	if req.MaxCompletionTokens != nil {
		maxTokens = req.MaxCompletionTokens
	}
	s.generate(w, r, genRequest{chat: true, prompt: tokenize(renderChat(msgs)), maxTokens: maxTokens,
		stream: req.Stream, includeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage})
}

func (s *Server) handleCompletions(w http.ResponseWriter, r *http.Request) {
	var req completionRequest
	if !s.parse(w, r, &req, func() string { return req.Model }) {
		return
	}
	prompts, err := stringList(req.Prompt)
	if err != nil || len(prompts) != 1 {
		writeError(w, http.StatusBadRequest, "", "prompt must be a string (batched prompts are not supported)")
		return
	}
	s.generate(w, r, genRequest{prompt: tokenize(prompts[0]), maxTokens: req.MaxTokens,
		stream: req.Stream, includeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage})
}

// genRequest is a validated chat or text completion request.
type genRequest struct {
	chat                 bool
	prompt               []uint32
	maxTokens            *int
	stream, includeUsage bool
}

func (s *Server) generate(w http.ResponseWriter, r *http.Request, g genRequest) {
	n := s.cfg.DefaultMaxTokens
	if g.maxTokens != nil {
		if n = *g.maxTokens; n < 1 {
			writeError(w, http.StatusBadRequest, "", "max_tokens must be at least 1")
			return
		}
	}
	sq := s.start(w, r, g.prompt, n)
	if sq == nil {
		return
	}
	defer s.eng.abort(sq) // frees the slot if the client leaves or the stream is cut
	if g.stream {
		s.stream(r.Context(), w, sq, g, s.faults.hit(s.cfg.DropRate))
		return
	}
	p, ok := s.wait(r.Context(), w, sq)
	if !ok {
		return
	}
	gen := newTextGen(s.cfg.Seed, g.prompt, s.words)
	var text strings.Builder
	for range n {
		text.WriteString(gen.next())
	}
	out, finish := text.String(), finishLength
	c := s.completion(g.chat, g.prompt, n, p.cached)
	if g.chat {
		c.Choices = []choice{{Message: &message{Role: "assistant", Content: out}, FinishReason: &finish}}
	} else {
		c.Choices = []choice{{Text: &out, FinishReason: &finish}}
	}
	writeJSON(w, http.StatusOK, marshal(c))
}

// completion returns an empty response or chunk with a fresh id and, when
// prompt is non-nil, usage for n generated tokens.
func (s *Server) completion(chat bool, prompt []uint32, n, cached int) completion {
	c := completion{Object: "text_completion", Created: time.Now().Unix(), Model: s.cfg.Model}
	c.ID = fmt.Sprintf("cmpl-%016x", s.ids.Add(1))
	if chat {
		c.ID, c.Object = "chat"+c.ID, "chat.completion"
	}
	if prompt != nil {
		u := usage{PromptTokens: len(prompt), CompletionTokens: n, TotalTokens: len(prompt) + n}
		u.PromptTokensDetails.CachedTokens = cached
		c.Usage = marshal(u)
	}
	return c
}

// start checks that prompt fits, applies the error and spike faults and
// queues a sequence. It returns nil once it has answered with an error.
func (s *Server) start(w http.ResponseWriter, r *http.Request, prompt []uint32, maxTokens int) *seq {
	if len(prompt) == 0 {
		writeError(w, http.StatusBadRequest, "", "prompt must not be empty")
		return nil
	}
	if need := len(prompt) + maxTokens; !s.eng.fits(need) {
		writeError(w, http.StatusBadRequest, "context_length_exceeded", fmt.Sprintf(
			"request needs %d tokens (%d prompt + %d output) but the KV cache holds at most %d",
			need, len(prompt), maxTokens, s.cfg.KVBlocks*s.cfg.BlockSize))
		return nil
	}
	if s.faults.hit(s.cfg.ErrorRate) {
		writeError(w, http.StatusInternalServerError, "", "injected fault")
		return nil
	}
	if s.faults.hit(s.cfg.SpikeRate) {
		t := time.NewTimer(s.cfg.SpikeLatency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return nil
		case <-s.eng.stop:
		}
	}
	sq := newSeq(prompt, maxTokens, s.cfg.BlockSize)
	switch err := s.eng.submit(sq); err {
	case nil:
		return sq
	case errQueueFull:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "rate_limit_exceeded", "server is at capacity: waiting queue is full")
	default:
		writeError(w, http.StatusServiceUnavailable, "service_unavailable", err.Error())
	}
	return nil
}

// await blocks until sq may have changed; false means the client has gone.
func await(ctx context.Context, sq *seq) bool {
	select {
	case <-sq.notify:
		return true
	case <-ctx.Done():
		return false
	}
}

// wait blocks until sq finishes. It answers 503 itself if the server closes
// and reports false then or when the client has gone.
func (s *Server) wait(ctx context.Context, w http.ResponseWriter, sq *seq) (progress, bool) {
	for await(ctx, sq) {
		p := s.eng.progress(sq)
		if p.err != nil {
			writeError(w, http.StatusServiceUnavailable, "service_unavailable", p.err.Error())
			return p, false
		}
		if p.done {
			return p, true
		}
	}
	return progress{}, false
}

// stream sends sq's tokens as server-sent events as the engine produces
// them. With drop set it cuts the connection after two events, the way a
// crashing server or a broken proxy does.
func (s *Server) stream(ctx context.Context, w http.ResponseWriter, sq *seq, g genRequest, drop bool) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc.Flush()
	events := 0
	send := func(data []byte) {
		if drop && events >= 2 {
			panic(http.ErrAbortHandler) // net/http closes the connection mid-body
		}
		fmt.Fprintf(w, "data: %s\n\n", data)
		rc.Flush()
		events++
	}
	n := sq.maxTokens
	base := s.completion(g.chat, nil, 0, 0)
	if g.chat {
		base.Object = "chat.completion.chunk"
	}
	if g.includeUsage {
		base.Usage = json.RawMessage("null")
	}
	chunk := func(text string, role bool, finish *string) []byte {
		c := base
		if g.chat {
			m := &message{Content: text}
			if role {
				m.Role = "assistant"
			}
			c.Choices = []choice{{Delta: m, FinishReason: finish}}
		} else {
			c.Choices = []choice{{Text: &text, FinishReason: finish}}
		}
		return marshal(c)
	}
	gen := newTextGen(s.cfg.Seed, g.prompt, s.words)
	sent, roleSent := 0, false
	var p progress
	for !p.done {
		if !await(ctx, sq) {
			return
		}
		p = s.eng.progress(sq)
		if p.started && g.chat && !roleSent {
			send(chunk("", true, nil))
			roleSent = true
		}
		for sent < p.generated {
			sent++
			var finish *string
			if sent == n {
				finish = new(finishLength)
			}
			send(chunk(gen.next(), false, finish))
		}
		if p.err != nil {
			send(errorBody(http.StatusServiceUnavailable, "service_unavailable", p.err.Error()))
			return
		}
	}
	if g.includeUsage {
		c := s.completion(g.chat, g.prompt, n, p.cached)
		c.ID, c.Object, c.Created, c.Choices = base.ID, base.Object, base.Created, []choice{}
		send(marshal(c))
	}
	send([]byte("[DONE]"))
}

func (s *Server) handleEmbeddings(w http.ResponseWriter, r *http.Request) {
	var req embeddingRequest
	if !s.parse(w, r, &req, func() string { return req.Model }) {
		return
	}
	inputs, err := stringList(req.Input)
	if err != nil || len(inputs) == 0 {
		writeError(w, http.StatusBadRequest, "", "input must be a string or a non-empty array of strings")
		return
	}
	if f := req.EncodingFormat; f != "" && f != "float" && f != "base64" {
		writeError(w, http.StatusBadRequest, "", `encoding_format must be "float" or "base64"`)
		return
	}
	// One prefill-only sequence, so embeddings queue and use the KV cache
	// like any other request.
	var prompt []uint32
	for _, in := range inputs {
		prompt = append(prompt, tokenize(in)...)
	}
	sq := s.start(w, r, prompt, 0)
	if sq == nil {
		return
	}
	defer s.eng.abort(sq)
	if _, ok := s.wait(r.Context(), w, sq); !ok {
		return
	}
	type embedding struct {
		Object    string `json:"object"`
		Index     int    `json:"index"`
		Embedding any    `json:"embedding"`
	}
	data := make([]embedding, len(inputs))
	for i, in := range inputs {
		v := embed(s.cfg.Seed, in, s.cfg.EmbeddingDim)
		data[i] = embedding{Object: "embedding", Index: i, Embedding: v}
		if req.EncodingFormat == "base64" {
			buf := make([]byte, 0, 4*len(v))
			for _, x := range v {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(float32(x)))
			}
			data[i].Embedding = base64.StdEncoding.EncodeToString(buf)
		}
	}
	writeJSON(w, http.StatusOK, marshal(map[string]any{
		"object": "list", "data": data, "model": s.cfg.Model,
		"usage": map[string]int{"prompt_tokens": len(prompt), "total_tokens": len(prompt)},
	}))
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, marshal(map[string]any{"object": "list", "data": []map[string]any{{
		"id": s.cfg.Model, "object": "model", "created": s.created, "owned_by": "vllm",
		"root": s.cfg.Model, "max_model_len": s.cfg.KVBlocks * s.cfg.BlockSize,
	}}}))
}

// handleHealth answers 200 until Close, then 503 so routers stop sending.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	select {
	case <-s.eng.stop:
		w.WriteHeader(http.StatusServiceUnavailable)
	default:
		w.WriteHeader(http.StatusOK)
	}
}
