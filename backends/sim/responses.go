package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// maxStoredResponses bounds the responses a Server keeps for GET and previous_response_id;
// the oldest are forgotten first.
const maxStoredResponses = 4096

type responsesRequest struct {
	Model              string          `json:"model"`
	Input              json.RawMessage `json:"input"`
	Instructions       *string         `json:"instructions"`
	MaxOutputTokens    *int            `json:"max_output_tokens"`
	Stream             bool            `json:"stream"`
	Store              *bool           `json:"store"`
	PreviousResponseID *string         `json:"previous_response_id"`
}

// responseObject is the Responses API's response object, as far as the simulator fills it.
type responseObject struct {
	ID                 string         `json:"id"`
	Object             string         `json:"object"`
	CreatedAt          int64          `json:"created_at"`
	Status             string         `json:"status"`
	Model              string         `json:"model"`
	Output             []outputItem   `json:"output"`
	Usage              *responseUsage `json:"usage"`
	Error              any            `json:"error"`
	IncompleteDetails  any            `json:"incomplete_details"`
	Instructions       *string        `json:"instructions"`
	MaxOutputTokens    *int           `json:"max_output_tokens"`
	PreviousResponseID *string        `json:"previous_response_id"`
	ParallelToolCalls  bool           `json:"parallel_tool_calls"`
	Temperature        float64        `json:"temperature"`
	TopP               float64        `json:"top_p"`
	ToolChoice         string         `json:"tool_choice"`
	Tools              []any          `json:"tools"`
	Store              bool           `json:"store"`
	Metadata           map[string]any `json:"metadata"`
}

type outputItem struct {
	Type    string       `json:"type"`
	ID      string       `json:"id"`
	Status  string       `json:"status"`
	Role    string       `json:"role"`
	Content []outputText `json:"content"`
}

type outputText struct {
	Type        string `json:"type"`
	Text        string `json:"text"`
	Annotations []any  `json:"annotations"`
}

type responseUsage struct {
	InputTokens        int `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int `json:"total_tokens"`
}

// storedResponse is a response kept for retrieval, with the conversation that led to it
// (its output included) for a later previous_response_id.
type storedResponse struct {
	obj          responseObject
	conversation []chatMessage
}

// responseStore keeps the latest responses by id. Safe for concurrent use.
type responseStore struct {
	// salt makes this server's ids unlike any other's, as real servers' random ids are.
	salt  uint32
	mu    sync.Mutex
	byID  map[string]*storedResponse
	order []string
}

func (st *responseStore) put(r *storedResponse) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.byID == nil {
		st.byID = map[string]*storedResponse{}
	}
	if _, ok := st.byID[r.obj.ID]; !ok {
		st.order = append(st.order, r.obj.ID)
	}
	st.byID[r.obj.ID] = r
	for len(st.order) > maxStoredResponses {
		delete(st.byID, st.order[0])
		st.order = st.order[1:]
	}
}

func (st *responseStore) get(id string) (storedResponse, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	r, ok := st.byID[id]
	if !ok {
		return storedResponse{}, false
	}
	return *r, true
}

func (st *responseStore) remove(id string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	_, ok := st.byID[id]
	delete(st.byID, id)
	return ok
}

// responseInput reads the Responses API's input: a string (one user message) or a list of
// message items whose content is a string or a list of text parts.
func responseInput(raw json.RawMessage) ([]chatMessage, error) {
	var text string
	if err := json.Unmarshal(raw, &text); err == nil {
		return []chatMessage{{role: "user", content: text}}, nil
	}
	var items []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("input must be a string or an array of input items")
	}
	msgs := make([]chatMessage, 0, len(items))
	for _, it := range items {
		var s string
		if json.Unmarshal(it.Content, &s) != nil {
			var parts []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			}
			if err := json.Unmarshal(it.Content, &parts); err != nil {
				return nil, fmt.Errorf("an input item's content must be a string or an array of content parts")
			}
			var b strings.Builder
			for _, p := range parts {
				if p.Type == "input_text" || p.Type == "output_text" || p.Type == "text" {
					b.WriteString(p.Text)
				}
			}
			s = b.String()
		}
		role := it.Role
		if role == "" {
			role = "user"
		}
		msgs = append(msgs, chatMessage{role: role, content: s})
	}
	return msgs, nil
}

// handleResponses serves POST /v1/responses: the conversation (previous response, then
// instructions, then input) is generated on the engine like a chat, answered as a response
// object or as the Responses API's typed event stream, and kept unless store is false.
func (s *Server) handleResponses(w http.ResponseWriter, r *http.Request) {
	var req responsesRequest
	if !s.parse(w, r, &req, func() string { return req.Model }) {
		return
	}
	input, err := responseInput(req.Input)
	if err != nil || len(input) == 0 {
		writeError(w, http.StatusBadRequest, "", "input must not be empty")
		return
	}
	var conv []chatMessage
	if p := req.PreviousResponseID; p != nil && *p != "" {
		prev, ok := s.responses.get(*p)
		if !ok {
			writeJSON(w, http.StatusNotFound, marshal(map[string]any{"error": map[string]any{
				"message": fmt.Sprintf("Previous response with id '%s' not found.", *p),
				"type":    "invalid_request_error", "param": "previous_response_id", "code": "previous_response_not_found"}}))
			return
		}
		conv = append(conv, prev.conversation...)
	}
	if req.Instructions != nil && *req.Instructions != "" {
		conv = append(conv, chatMessage{role: "system", content: *req.Instructions})
	}
	conv = append(conv, input...)
	prompt := tokenize(renderChat(conv))
	n := s.cfg.DefaultMaxTokens
	if req.MaxOutputTokens != nil {
		if n = *req.MaxOutputTokens; n < 1 {
			writeError(w, http.StatusBadRequest, "", "max_output_tokens must be at least 1")
			return
		}
	}
	sq := s.start(w, r, prompt, n)
	if sq == nil {
		return
	}
	defer s.eng.abort(sq)
	id := s.ids.Add(1)
	obj := responseObject{
		ID: fmt.Sprintf("resp_%08x%016x", s.responses.salt, id), Object: "response", CreatedAt: time.Now().Unix(), Status: "in_progress",
		Model: s.cfg.Model, Output: []outputItem{}, Instructions: req.Instructions, MaxOutputTokens: req.MaxOutputTokens,
		PreviousResponseID: req.PreviousResponseID, ParallelToolCalls: true, Temperature: 1, TopP: 1,
		ToolChoice: "auto", Tools: []any{}, Store: req.Store == nil || *req.Store, Metadata: map[string]any{},
	}
	item := outputItem{Type: "message", ID: fmt.Sprintf("msg_%08x%016x", s.responses.salt, id), Status: "in_progress", Role: "assistant", Content: []outputText{}}
	st := &storedResponse{obj: obj, conversation: conv}
	if obj.Store {
		s.responses.put(st)
	}
	finish := func(text string, cached int) responseObject {
		done := obj
		item.Status, item.Content = "completed", []outputText{{Type: "output_text", Text: text, Annotations: []any{}}}
		done.Status, done.Output = "completed", []outputItem{item}
		u := &responseUsage{InputTokens: len(prompt), OutputTokens: n, TotalTokens: len(prompt) + n}
		u.InputTokensDetails.CachedTokens = cached
		done.Usage = u
		if obj.Store {
			s.responses.put(&storedResponse{obj: done, conversation: append(conv[:len(conv):len(conv)], chatMessage{role: "assistant", content: text})})
		}
		return done
	}
	if req.Stream {
		s.streamResponse(r.Context(), w, sq, prompt, obj, item, finish)
		return
	}
	p, ok := s.wait(r.Context(), w, sq)
	if !ok {
		return
	}
	gen := newTextGen(s.cfg.Seed, prompt, s.words)
	var text strings.Builder
	for range n {
		text.WriteString(gen.next())
	}
	writeJSON(w, http.StatusOK, marshal(finish(text.String(), p.cached)))
}

// streamResponse sends sq's tokens as the Responses API's typed events: created, in
// progress, the output item and its text part opened, one delta per token, then everything
// closed again and the completed response with its usage. A stream hit by DropRate is cut
// after two events.
func (s *Server) streamResponse(ctx context.Context, w http.ResponseWriter, sq *seq, prompt []uint32, obj responseObject,
	item outputItem, finish func(text string, cached int) responseObject) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc.Flush()
	drop := s.faults.hit(s.cfg.DropRate)
	seqNo := 0
	send := func(typ string, fields map[string]any) {
		if drop && seqNo >= 2 {
			panic(http.ErrAbortHandler)
		}
		fields["type"], fields["sequence_number"] = typ, seqNo
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ, marshal(fields))
		rc.Flush()
		seqNo++
	}
	part := func(text string) outputText { return outputText{Type: "output_text", Text: text, Annotations: []any{}} }
	at := func(extra map[string]any) map[string]any {
		m := map[string]any{"item_id": item.ID, "output_index": 0, "content_index": 0}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	send("response.created", map[string]any{"response": obj})
	send("response.in_progress", map[string]any{"response": obj})
	send("response.output_item.added", map[string]any{"output_index": 0, "item": item})
	send("response.content_part.added", at(map[string]any{"part": part("")}))
	gen := newTextGen(s.cfg.Seed, prompt, s.words)
	var text strings.Builder
	sent := 0
	var p progress
	for !p.done {
		if !await(ctx, sq) {
			return
		}
		p = s.eng.progress(sq)
		for sent < p.generated {
			sent++
			d := gen.next()
			text.WriteString(d)
			send("response.output_text.delta", at(map[string]any{"delta": d, "logprobs": []any{}}))
		}
		if p.err != nil {
			send("error", map[string]any{"code": "service_unavailable", "message": p.err.Error(), "param": nil})
			return
		}
	}
	done := finish(text.String(), p.cached)
	send("response.output_text.done", at(map[string]any{"text": text.String(), "logprobs": []any{}}))
	send("response.content_part.done", at(map[string]any{"part": part(text.String())}))
	send("response.output_item.done", map[string]any{"output_index": 0, "item": done.Output[0]})
	send("response.completed", map[string]any{"response": done})
}

// handleStoredResponse serves GET and DELETE /v1/responses/{id} from the responses this
// server created and kept.
func (s *Server) handleStoredResponse(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	notFound := func() {
		writeJSON(w, http.StatusNotFound, marshal(map[string]any{"error": map[string]any{
			"message": fmt.Sprintf("Response with id '%s' not found.", id),
			"type":    "invalid_request_error", "param": nil, "code": nil}}))
	}
	if r.Method == http.MethodDelete {
		if !s.responses.remove(id) {
			notFound()
			return
		}
		writeJSON(w, http.StatusOK, marshal(map[string]any{"id": id, "object": "response.deleted", "deleted": true}))
		return
	}
	st, ok := s.responses.get(id)
	if !ok {
		notFound()
		return
	}
	writeJSON(w, http.StatusOK, marshal(st.obj))
}
