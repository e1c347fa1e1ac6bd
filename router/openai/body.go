package openai

import "sync"

// Request bodies from pooledBodyBytes up to maxPooledBodyBytes are read into buffers reused
// across requests. Allocating and zeroing a fresh buffer for every large prompt costs about
// as much CPU as reading it, and each one brings the next garbage collection closer.
const (
	pooledBodyBytes    = 64 << 10
	maxPooledBodyBytes = pooledBodyBytes << (len(heldBodies) - 1)
)

// heldBodies hold free buffers by size class: class k holds buffers of pooledBodyBytes << k.
var heldBodies [8]sync.Pool

// heldBody is a request body in a reused buffer. It goes back to its pool when the handler
// returns: the upstream client has written the body, and let go of it, by the time Post
// returns.
type heldBody struct {
	buf   []byte
	class int
}

// holdBody returns an empty buffer with room for a body of n bytes and one more (to see its
// end without growing); nil when n is outside the pooled sizes.
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
	return b
}

// release returns the buffer to its pool.
func (b *heldBody) release() { heldBodies[b.class].Put(b) }

// holds reports whether body lies in b's buffer.
func (b *heldBody) holds(body []byte) bool {
	return cap(body) > 0 && &body[:1][0] == &b.buf[:1][0]
}
