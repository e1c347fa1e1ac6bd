package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"strings"
)

// handleAudioText serves POST /v1/audio/transcriptions and /v1/audio/translations. The
// multipart body is read as a stream, part by part, so an upload of any size costs no more
// memory than a copy buffer; the form's fields may come in any order. The "transcript" is a
// few words drawn from the file's hash, so the same audio gives the same text. The answer
// carries the file's size and SHA-256 in X-Sim-File-Bytes and X-Sim-File-Sha256, for tests
// to check that the file arrived intact. Transcriptions report token usage: one input token
// per KiB of audio and one output token per word.
func (s *Server) handleAudioText(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, http.StatusBadRequest, "", "body must be multipart/form-data: "+err.Error())
		return
	}
	var model string
	var size int64
	sum := sha256.New()
	gotFile := false
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "", "malformed multipart body: "+err.Error())
			return
		}
		switch part.FormName() {
		case "file":
			gotFile = true
			size, err = io.Copy(sum, part)
		case "model":
			var b []byte
			b, err = io.ReadAll(io.LimitReader(part, 1024))
			model = string(b)
		default:
			_, err = io.Copy(io.Discard, part)
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "", "reading the upload failed: "+err.Error())
			return
		}
	}
	switch {
	case model == "":
		writeError(w, http.StatusBadRequest, "", "you must provide a model parameter")
		return
	case model != s.cfg.Model:
		writeError(w, http.StatusNotFound, "model_not_found", fmt.Sprintf("model %q is not served here; this server serves %q", model, s.cfg.Model))
		return
	case !gotFile:
		writeError(w, http.StatusBadRequest, "", "you must provide a file")
		return
	}
	digest := sum.Sum(nil)
	h := fnv.New64a()
	h.Write(digest)
	gen := &textGen{words: s.words, state: h.Sum64()}
	const words = 8
	var text strings.Builder
	for range words {
		text.WriteString(gen.next())
	}
	w.Header().Set("X-Sim-File-Bytes", fmt.Sprint(size))
	w.Header().Set("X-Sim-File-Sha256", hex.EncodeToString(digest))
	out := map[string]any{"text": strings.TrimSpace(text.String())}
	if strings.HasSuffix(r.URL.Path, "/transcriptions") {
		in := int((size + 1023) / 1024)
		out["usage"] = map[string]any{"type": "tokens", "input_tokens": in, "output_tokens": words, "total_tokens": in + words}
	}
	writeJSON(w, http.StatusOK, marshal(out))
}

// speechBytesPerToken is how much audio the simulator "speaks" per input token.
const speechBytesPerToken = 4096

// handleSpeech serves POST /v1/audio/speech: deterministic noise, speechBytesPerToken bytes
// per token of input, streamed in chunks with a flush after each, in the content type of the
// requested response_format (mp3 by default).
func (s *Server) handleSpeech(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model          string `json:"model"`
		Input          string `json:"input"`
		Voice          any    `json:"voice"`
		ResponseFormat string `json:"response_format"`
	}
	if !s.parse(w, r, &req, func() string { return req.Model }) {
		return
	}
	if req.Input == "" {
		writeError(w, http.StatusBadRequest, "", "input must not be empty")
		return
	}
	types := map[string]string{"": "audio/mpeg", "mp3": "audio/mpeg", "opus": "audio/opus", "aac": "audio/aac",
		"flac": "audio/flac", "wav": "audio/wav", "pcm": "audio/pcm"}
	ct, ok := types[req.ResponseFormat]
	if !ok {
		writeError(w, http.StatusBadRequest, "", "unsupported response_format "+req.ResponseFormat)
		return
	}
	tokens := tokenize(req.Input)
	w.Header().Set("Content-Type", ct)
	rc := http.NewResponseController(w)
	state := uint64(len(tokens))
	for _, t := range tokens {
		state = state*31 + uint64(t)
	}
	chunk := make([]byte, speechBytesPerToken)
	for range tokens {
		for i := 0; i < len(chunk); i += 8 {
			v := splitmix(&state)
			for j := 0; j < 8 && i+j < len(chunk); j++ {
				chunk[i+j] = byte(v >> (8 * j))
			}
		}
		if _, err := w.Write(chunk); err != nil {
			return
		}
		rc.Flush()
	}
}
