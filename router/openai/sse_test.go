package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/switchyard-ai/switchyard/router"
)

// flushRecorder records what was written and where each flush fell.
type flushRecorder struct {
	bytes.Buffer
	flushes []int
	failAt  int // fail writes once the buffer holds this many bytes; 0 never
}

func (f *flushRecorder) Write(p []byte) (int, error) {
	if f.failAt > 0 && f.Len()+len(p) > f.failAt {
		return 0, errors.New("client gone")
	}
	return f.Buffer.Write(p)
}

func (f *flushRecorder) Flush() { f.flushes = append(f.flushes, f.Len()) }

func TestRelaySSE(t *testing.T) {
	long := strings.Repeat("x", 100<<10) // longer than the reader's buffer
	tests := []struct {
		name      string
		in        string
		events    int
		sawDone   bool
		wantErr   bool
		wantOut   string // default: in
		readerOne bool   // deliver one byte per Read
	}{
		{name: "chat stream", in: "data: {\"a\":1}\n\ndata: {\"a\":2}\n\ndata: [DONE]\n\n", events: 3, sawDone: true},
		{name: "crlf and comments", in: ": keep-alive\r\n\r\nevent: x\r\ndata: 1\r\n\r\ndata: [DONE]\r\n\r\n", events: 3, sawDone: true},
		{name: "long line", in: "data: " + long + "\n\ndata: [DONE]\n\n", events: 2, sawDone: true},
		{name: "no done", in: "data: 1\n\n", events: 1},
		{name: "trailing partial event flushed at EOF", in: "data: 1\n\ndata: 2", events: 2},
		{name: "byte by byte", in: "data: 1\n\ndata: [DONE]\n\n", events: 2, sawDone: true, readerOne: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var src io.Reader = strings.NewReader(tt.in)
			if tt.readerOne {
				src = iotest.OneByteReader(src)
			}
			var out flushRecorder
			r, err := relaySSE(&out, src, nil)
			if (err != nil) != tt.wantErr || r.events != tt.events || r.sawDone != tt.sawDone {
				t.Fatalf("relay = %d events, done %v, err %v; want %d, %v, err %v", r.events, r.sawDone, err, tt.events, tt.sawDone, tt.wantErr)
			}
			if tt.events > 0 && (r.first.IsZero() || r.last.Before(r.first)) {
				t.Errorf("event times first %v last %v", r.first, r.last)
			}
			if out.String() != tt.in {
				t.Errorf("bytes changed in relay")
			}
			// Events that arrive one by one are flushed one by one; events that arrive together
			// go out together. Either way nothing is left unflushed.
			if tt.readerOne && len(out.flushes) != tt.events {
				t.Errorf("flushes = %d, want one per event (%d)", len(out.flushes), tt.events)
			}
			if n := len(out.flushes); tt.events > 0 && (n == 0 || n > tt.events || out.flushes[n-1] != out.Len()) {
				t.Errorf("flushes at %v for %d bytes in %d events", out.flushes, out.Len(), tt.events)
			}
		})
	}
}

func TestRelaySSEUpstreamFailureDropsPartialEvent(t *testing.T) {
	src := io.MultiReader(strings.NewReader("data: 1\n\ndata: par"), iotest.ErrReader(io.ErrUnexpectedEOF))
	var out flushRecorder
	r, err := relaySSE(&out, src, nil)
	if !errors.Is(err, io.ErrUnexpectedEOF) || r.events != 1 || out.String() != "data: 1\n\n" {
		t.Fatalf("got %d events %q err %v", r.events, out.String(), err)
	}
}

func TestRelaySSEClientWriteFailure(t *testing.T) {
	out := flushRecorder{failAt: 12}
	_, err := relaySSE(&out, strings.NewReader("data: 1\n\ndata: 2\n\n"), nil)
	if !errors.Is(err, errClientWrite) {
		t.Fatalf("err = %v, want errClientWrite", err)
	}
}

func TestStreamErrorEventIsOpenAIError(t *testing.T) {
	ev := streamErrorEvent("upstream died")
	if !bytes.HasPrefix(ev, []byte("data: ")) || !bytes.HasSuffix(ev, []byte("\n\n")) {
		t.Fatalf("not one SSE event: %q", ev)
	}
	var body errorBody
	if err := json.Unmarshal(ev[len("data: "):], &body); err != nil || body.Error.Message != "upstream died" || body.Error.Type != "server_error" {
		t.Fatalf("event %q: %v", ev, err)
	}
}

func TestHTTPStatusMapping(t *testing.T) {
	tests := []struct {
		code   router.Code
		status int
		typ    string
	}{
		{router.CodeInvalidArgument, 400, "invalid_request_error"},
		{router.CodeUnauthenticated, 401, "authentication_error"},
		{router.CodePermissionDenied, 403, "permission_error"},
		{router.CodeNotFound, 404, "invalid_request_error"},
		{router.CodeMethodNotAllowed, 405, "invalid_request_error"},
		{router.CodeRequestTooLarge, 413, "invalid_request_error"},
		{router.CodeResourceExhausted, 429, "rate_limit_error"},
		{router.CodeInternal, 500, "server_error"},
		{router.CodeUpstream, 502, "server_error"},
		{router.CodeUnavailable, 503, "server_error"},
		{router.CodeDeadlineExceeded, 504, "server_error"},
	}
	for _, tt := range tests {
		status, typ := httpStatus(tt.code)
		if status != tt.status || typ != tt.typ {
			t.Errorf("%v -> %d %s, want %d %s", tt.code, status, typ, tt.status, tt.typ)
		}
	}
}

func TestEncodeErrorHasAllFields(t *testing.T) {
	b := encodeError(&router.Error{Code: router.CodeNotFound, Message: "no such model", Param: "model", Reason: "model_not_found"})
	want := `{"error":{"message":"no such model","type":"invalid_request_error","param":"model","code":"model_not_found"}}`
	if string(b) != want {
		t.Errorf("got %s\nwant %s", b, want)
	}
	b = encodeError(&router.Error{Code: router.CodeUnavailable, Message: "down"})
	if !bytes.Contains(b, []byte(`"param":null`)) || !bytes.Contains(b, []byte(`"code":"unavailable"`)) {
		t.Errorf("got %s", b)
	}
}

func TestNormalizeUpstreamError(t *testing.T) {
	got := normalizeUpstreamError([]byte(`{"object":"error","message":"bad","type":"BadRequestError","param":null,"code":400}`), 400)
	want := `{"error":{"message":"bad","type":"BadRequestError","param":null,"code":"400"}}`
	if string(got) != want {
		t.Errorf("got %s", got)
	}
	already := `{"error":{"message":"x","type":"y","param":null,"code":null}}`
	if got := normalizeUpstreamError([]byte(already), 400); string(got) != already {
		t.Errorf("modern body changed: %s", got)
	}
}

func TestRelaySSEBoundsAnEvent(t *testing.T) {
	endless := io.MultiReader(strings.NewReader("data: 1\n\ndata: "), &repeatReader{b: 'x'})
	var out flushRecorder
	r, err := relaySSE(&out, endless, nil)
	if !errors.Is(err, errEventTooLarge) || r.events != 1 || out.String() != "data: 1\n\n" {
		t.Fatalf("got %d events, %d bytes, err %v", r.events, out.Len(), err)
	}
}

// repeatReader reads b forever.
type repeatReader struct{ b byte }

func (r *repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.b
	}
	return len(p), nil
}

func TestRelaySSEFlushesEachEventAsItArrives(t *testing.T) {
	pr, pw := io.Pipe()
	var out flushRecorder
	done := make(chan error, 1)
	go func() { _, err := relaySSE(&out, pr, nil); done <- err }()
	// Each event is flushed before the next arrives: the write blocks until the relay reads.
	for _, ev := range []string{"data: 1\n\n", "data: 2\n\ndata: 3\n\n", "data: [DONE]\n\n"} {
		io.WriteString(pw, ev)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := []int{9, 27, 27 + 14} // the second write carried two events: one flush after both
	if len(out.flushes) != len(want) {
		t.Fatalf("flushes at %v, want %v", out.flushes, want)
	}
	for i := range want {
		if out.flushes[i] != want[i] {
			t.Fatalf("flushes at %v, want %v", out.flushes, want)
		}
	}
}
