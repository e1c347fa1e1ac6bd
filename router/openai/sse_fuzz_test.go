package openai

import (
	"bytes"
	"strings"
	"testing"
	"testing/iotest"
)

// FuzzRelaySSE checks that the relay passes any upstream byte stream through unchanged,
// however the reads are split, flushing each event that arrives alone and never leaving
// output unflushed; that dropping events drops exactly
// those bytes; and that the usage scanner never panics on an event.
func FuzzRelaySSE(f *testing.F) {
	for _, s := range []string{
		"data: {\"a\":1}\n\ndata: [DONE]\n\n",
		": keep-alive\r\n\r\nevent: x\r\ndata: 1\r\n\r\n",
		"data: {\"choices\":[],\"usage\":{\"total_tokens\":7}}\n\ndata: [DONE]\n\n",
		"data: 1\n\ndata: 2",
		"\n\n\n",
		"\r\n\r",
		"data: " + strings.Repeat("x", 40<<10) + "\n\n",
		"data: {\"usage\":{\"total_tokens\":\"x\"}}\n\n",
	} {
		f.Add([]byte(s), uint8(0))
	}
	f.Fuzz(func(t *testing.T, in []byte, dropMask uint8) {
		var whole, oneByte flushRecorder
		r, err := relaySSE(&whole, bytes.NewReader(in), nil)
		if err != nil {
			t.Fatalf("relay of %q: %v", in, err)
		}
		if !bytes.Equal(whole.Bytes(), in) {
			t.Fatalf("relay changed bytes:\n in %q\nout %q", in, whole.Bytes())
		}
		if n := len(whole.flushes); r.events > 0 && (n == 0 || n > r.events || whole.flushes[n-1] != len(in)) {
			t.Fatalf("flushes at %v for %d events of %d bytes: some output left unflushed", whole.flushes, r.events, len(in))
		}
		r1, err := relaySSE(&oneByte, iotest.OneByteReader(bytes.NewReader(in)), nil)
		if err != nil || r1.events != r.events || r1.sawDone != r.sawDone || !bytes.Equal(oneByte.Bytes(), in) {
			t.Fatalf("byte-at-a-time relay differs: %d events (%v), done %v; want %d, done %v", r1.events, err, r1.sawDone, r.events, r.sawDone)
		}
		if len(oneByte.flushes) != r.events {
			t.Fatalf("events arriving one by one: %d flushes for %d events", len(oneByte.flushes), r.events)
		}
		// Events split where the whole relay flushed; dropping some must drop exactly those.
		var want []byte
		var dropped flushRecorder
		_, err = relaySSE(&dropped, bytes.NewReader(in), func(i int, ev []byte) bool {
			var u usage
			u.scan(ev)
			usageOnly(ev)
			keep := dropMask&(1<<(i%8)) == 0
			if keep {
				want = append(want, ev...)
			}
			return keep
		})
		if err != nil || !bytes.Equal(dropped.Bytes(), want) {
			t.Fatalf("dropping events: got %q want %q (%v)", dropped.Bytes(), want, err)
		}
	})
}
