package backends

import (
	"context"
	"io"
	"net/http"
)

// Send sends a request with any method to path (which may carry a query) on the endpoint and
// returns the response once its headers arrive. body may be nil, and is read while the request
// is written, so a large upload streams through without being held; size is its length, or -1
// when unknown (sent chunked). The response body enforces the idle stream timeout and must be
// closed. Errors are classified as for Post.
func (c *HTTPClient) Send(ctx context.Context, ep *Endpoint, method, path string, header http.Header, body io.Reader, size int64) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	req, err := http.NewRequestWithContext(ctx, method, ep.URL.String()+path, body)
	if err != nil {
		if c, ok := body.(io.Closer); ok {
			c.Close() // as the transport would have
		}
		cancel(nil)
		return nil, err
	}
	req.Header = c.withPropagated(ctx, header)
	req.ContentLength = size
	if body == nil || size == 0 {
		req.Body, req.ContentLength = nil, 0
	}
	resp, err := c.transport.RoundTrip(req)
	if err != nil {
		err = classify(ctx, err)
		cancel(nil)
		return nil, err
	}
	resp.Body = newIdleBody(resp.Body, c.idle, cancel, ctx)
	return resp, nil
}

// HTTP returns an http.Client over the pool's connections (same dialer, TLS and timeouts up to
// the response headers), for exchanges that outlive a request, such as WebSocket upgrades. It
// sets no overall timeout.
func (c *HTTPClient) HTTP() *http.Client { return &http.Client{Transport: c.transport} }

// withPropagated returns header with the headers the client propagates from ctx added (to
// header itself, or to a new one when header is nil).
func (c *HTTPClient) withPropagated(ctx context.Context, header http.Header) http.Header {
	if c.propagate != nil {
		if header == nil {
			header = http.Header{}
		}
		c.propagate(ctx, header)
	}
	return header
}
