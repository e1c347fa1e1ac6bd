package openai

import (
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
)

// Request bodies from pooledBodyBytes up to maxPooledBodyBytes are read into buffers reused
// across requests. Allocating and zeroing a fresh buffer for every large prompt costs about
// as much CPU as reading it, and each one brings the next garbage collection closer.
const (
	pooledBodyBytes    = 64 << 10
	maxPooledBodyBytes = pooledBodyBytes << (len(heldBodies) - 1)
)

// heldBodies hold free buffers by size class: class k holds buffers of pooledBodyBytes << k.
var heldBodies [8]sync.Pool

// heldBody is a request body in a reused buffer. It goes back to its pool once the handler and
// every reader of it handed to a transport have let go of it: a transport may still be writing
// a request's body after the response has arrived, so each reader holds the buffer until the
// transport closes it.
type heldBody struct {
	buf   []byte
	class int
	refs  atomic.Int32
}

// holdBody returns an empty buffer with room for a body of n bytes and one more (to see its
// end without growing), held once by the caller; nil when n is outside the pooled sizes.
func holdBody(n int64) *heldBody {
	if n < pooledBodyBytes || n >= maxPooledBodyBytes {
		return nil
	}
	k := 0
	for pooledBodyBytes<<k < n+1 {
		k++
	}
	b, _ := heldBodies[k].Get().(*heldBody)
	if b == nil {
		b = &heldBody{buf: make([]byte, 0, pooledBodyBytes<<k), class: k}
	}
	b.buf = b.buf[:0]
	b.refs.Store(1)
	return b
}

// release lets go of one hold; the last returns the buffer to its pool.
func (b *heldBody) release() {
	if b.refs.Add(-1) == 0 {
		heldBodies[b.class].Put(b)
	}
}

// holds reports whether body lies in b's buffer.
func (b *heldBody) holds(body []byte) bool {
	return cap(body) > 0 && &body[:1][0] == &b.buf[:1][0]
}

// reader returns a reader of parts, slices of the held body (and of edits), that holds the
// buffer until it is closed.
func (b *heldBody) reader(parts [][]byte) io.ReadCloser {
	b.refs.Add(1)
	return &heldReader{bufs: net.Buffers(slices.Clone(parts)), body: b}
}

type heldReader struct {
	bufs   net.Buffers
	body   *heldBody
	closed atomic.Bool
}

func (r *heldReader) Read(p []byte) (int, error) { return r.bufs.Read(p) }

func (r *heldReader) Close() error {
	if r.closed.CompareAndSwap(false, true) {
		r.bufs = nil
		r.body.release()
	}
	return nil
}

// partsLen is the length of a body sent as parts.
func partsLen(parts [][]byte) int64 {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	return int64(n)
}
