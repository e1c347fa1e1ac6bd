package openai

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// sseWriter is where relayed events go: the client connection, flushed after every event so
// each token reaches the client as soon as the upstream produced it.
type sseWriter interface {
	io.Writer
	http.Flusher
}

// errClientWrite marks a relay that stopped because the client could not be written to.
var errClientWrite = errors.New("openai: writing to client failed")

var doneData = []byte("data: [DONE]")

// maxEventBytes bounds one relayed event, so that an upstream that never ends a line cannot
// grow the router's memory without bound. Chat chunks are a few hundred bytes; whole images
// in one event stay well under it.
const maxEventBytes = 16 << 20

// errEventTooLarge ends a relay whose upstream sent an event over maxEventBytes.
var errEventTooLarge = errors.New("openai: upstream event larger than 16 MiB")

// relayed describes a relayed stream.
type relayed struct {
	events      int       // events relayed
	sawDone     bool      // the upstream sent its `data: [DONE]` terminator
	first, last time.Time // when the first and the last event arrived
}

// relaySSE copies server-sent events from src to dst one whole event at a time (an event ends
// at a blank line), flushing after each, or after the last of those that arrived together. It returns when src ends or fails, or dst fails.
// Lines may end in "\n" or "\r\n"; bytes pass through unchanged. onEvent, when not nil, sees
// each event as it arrives, with its index (0 for the first), and may drop it by returning
// false.
func relaySSE(dst sseWriter, src io.Reader, onEvent func(i int, ev []byte) bool) (r relayed, err error) {
	rb := relayBuffers.Get().(*relayBuffer)
	rb.br.Reset(src)
	br, ev := rb.br, rb.ev[:0]
	defer func() {
		rb.br.Reset(nil)
		if cap(ev) <= 64<<10 { // an outsized event's buffer is left to the collector
			rb.ev = ev[:0]
		}
		relayBuffers.Put(rb)
	}()
	for {
		line, rerr := br.ReadSlice('\n')
		if len(ev)+len(line) > maxEventBytes {
			return r, errEventTooLarge
		}
		if errors.Is(rerr, bufio.ErrBufferFull) {
			ev = append(ev, line...) // a long data line: keep reading it
			continue
		}
		ev = append(ev, line...)
		if rerr == nil && !isBlank(line) {
			continue
		}
		if len(ev) > 0 && (rerr == nil || rerr == io.EOF) {
			r.last = time.Now()
			if r.events == 0 {
				r.first = r.last
			}
			keep := onEvent == nil || onEvent(r.events, ev)
			if bytes.HasPrefix(ev, doneData) {
				r.sawDone = true
			}
			if keep {
				if _, werr := dst.Write(ev); werr != nil {
					return r, fmt.Errorf("%w: %w", errClientWrite, werr)
				}
			}
			// Flush unless another whole event has already arrived: it follows at once, and
			// one write then carries both. Nothing waits in the buffer while the relay blocks.
			if !eventWaiting(br) {
				dst.Flush()
			}
			r.events++
			ev = ev[:0]
		}
		if rerr == io.EOF {
			return r, nil
		}
		if rerr != nil {
			return r, rerr
		}
	}
}

// relayBuffer is a relay's read buffer and its event buffer, reused across streams: a 32 KiB
// buffer per stream would otherwise be most of what a streamed request allocates.
type relayBuffer struct {
	br *bufio.Reader
	ev []byte
}

var relayBuffers = sync.Pool{New: func() any {
	return &relayBuffer{br: bufio.NewReaderSize(nil, 32<<10), ev: make([]byte, 0, 1024)}
}}

// eventWaiting reports whether br holds a whole event (up to a blank line) not yet read.
func eventWaiting(br *bufio.Reader) bool {
	pending, _ := br.Peek(br.Buffered())
	return bytes.Contains(pending, []byte("\n\n")) || bytes.Contains(pending, []byte("\n\r\n"))
}

func isBlank(line []byte) bool {
	return len(line) == 1 || (len(line) == 2 && line[0] == '\r')
}

// streamErrorEvent is the event that ends a stream whose upstream failed after the first
// byte: OpenAI SDKs raise an API error when a data object carries an "error" key.
func streamErrorEvent(msg string) []byte {
	code := "upstream_error"
	b := encodeErrorDetail(errorDetail{Message: msg, Type: "server_error", Code: &code})
	out := make([]byte, 0, len(b)+8)
	out = append(out, "data: "...)
	out = append(out, b...)
	return append(out, "\n\n"...)
}
