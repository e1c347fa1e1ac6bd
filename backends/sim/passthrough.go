package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// The simulator's server-specific paths, shaped like vLLM's: /tokenize and /detokenize with
// the simulator's own tokenizer, and /v1/rerank and /v1/score with a relevance that is the
// share of tokens two texts have in common. None of them queue on the engine.

func (s *Server) handleTokenize(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model    string          `json:"model"`
		Prompt   *string         `json:"prompt"`
		Messages json.RawMessage `json:"messages"`
	}
	if !s.parse(w, r, &req, func() string { return req.Model }) {
		return
	}
	var text string
	switch {
	case req.Prompt != nil:
		text = *req.Prompt
	case len(req.Messages) > 0:
		var msgs []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal(req.Messages, &msgs); err != nil {
			writeError(w, http.StatusBadRequest, "", "messages must be an array of messages")
			return
		}
		chat := make([]chatMessage, len(msgs))
		for i, m := range msgs {
			c, err := messageText(m.Content)
			if err != nil {
				writeError(w, http.StatusBadRequest, "", err.Error())
				return
			}
			chat[i] = chatMessage{role: m.Role, content: c}
		}
		text = renderChat(chat)
	default:
		writeError(w, http.StatusBadRequest, "", "either prompt or messages is required")
		return
	}
	tokens := tokenize(text)
	writeJSON(w, http.StatusOK, marshal(map[string]any{
		"count": len(tokens), "max_model_len": s.cfg.KVBlocks * s.cfg.BlockSize, "tokens": tokens}))
}

// handleDetokenize maps each token id onto a vocabulary word: the simulator's tokenizer
// hashes, so this is a stand-in that is deterministic, not an inverse.
func (s *Server) handleDetokenize(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model  string   `json:"model"`
		Tokens []uint32 `json:"tokens"`
	}
	if !s.parse(w, r, &req, func() string { return req.Model }) {
		return
	}
	out := make([]byte, 0, 6*len(req.Tokens))
	for i, t := range req.Tokens {
		if i > 0 {
			out = append(out, ' ')
		}
		out = append(out, s.words[int(t)%len(s.words)]...)
	}
	writeJSON(w, http.StatusOK, marshal(map[string]any{"prompt": string(out)}))
}

// overlap is the share of b's distinct tokens that a also has, in [0, 1].
func overlap(a, b []uint32) float64 {
	if len(b) == 0 {
		return 0
	}
	have := map[uint32]bool{}
	for _, t := range a {
		have[t] = true
	}
	seen := map[uint32]bool{}
	common := 0
	for _, t := range b {
		if !seen[t] {
			seen[t] = true
			if have[t] {
				common++
			}
		}
	}
	return float64(common) / float64(len(seen))
}

func (s *Server) handleRerank(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model     string   `json:"model"`
		Query     string   `json:"query"`
		Documents []string `json:"documents"`
		TopN      int      `json:"top_n"`
	}
	if !s.parse(w, r, &req, func() string { return req.Model }) {
		return
	}
	if req.Query == "" || len(req.Documents) == 0 {
		writeError(w, http.StatusBadRequest, "", "query and documents are required")
		return
	}
	q := tokenize(req.Query)
	total := len(q)
	type result struct {
		Index    int               `json:"index"`
		Document map[string]string `json:"document"`
		Score    float64           `json:"relevance_score"`
	}
	results := make([]result, len(req.Documents))
	for i, d := range req.Documents {
		dt := tokenize(d)
		total += len(dt)
		results[i] = result{Index: i, Document: map[string]string{"text": d}, Score: overlap(dt, q)}
	}
	slices.SortStableFunc(results, func(a, b result) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return 0
	})
	if req.TopN > 0 && req.TopN < len(results) {
		results = results[:req.TopN]
	}
	writeJSON(w, http.StatusOK, marshal(map[string]any{"id": fmt.Sprintf("rerank-%016x", s.ids.Add(1)), "model": s.cfg.Model,
		"usage": map[string]int{"total_tokens": total}, "results": results}))
}

func (s *Server) handleScore(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model string          `json:"model"`
		Text1 json.RawMessage `json:"text_1"`
		Text2 json.RawMessage `json:"text_2"`
	}
	if !s.parse(w, r, &req, func() string { return req.Model }) {
		return
	}
	t1, err1 := stringList(req.Text1)
	t2, err2 := stringList(req.Text2)
	if err1 != nil || err2 != nil || len(t1) == 0 || len(t2) == 0 || (len(t1) != 1 && len(t1) != len(t2)) {
		writeError(w, http.StatusBadRequest, "", "text_1 and text_2 must be strings or arrays of strings, text_1 of one or of text_2's length")
		return
	}
	type score struct {
		Index  int     `json:"index"`
		Object string  `json:"object"`
		Score  float64 `json:"score"`
	}
	data := make([]score, len(t2))
	total := 0
	for i, b := range t2 {
		a := t1[0]
		if len(t1) > 1 {
			a = t1[i]
		}
		at, bt := tokenize(a), tokenize(b)
		total += len(at) + len(bt)
		data[i] = score{Index: i, Object: "score", Score: overlap(at, bt)}
	}
	writeJSON(w, http.StatusOK, marshal(map[string]any{"id": fmt.Sprintf("score-%016x", s.ids.Add(1)), "object": "list",
		"created": time.Now().Unix(), "model": s.cfg.Model, "data": data,
		"usage": map[string]int{"prompt_tokens": total, "total_tokens": total}}))
}
