package backends

import (
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/switchyard-ai/switchyard/gen/inference"
)

// GRPCOptions configures a GRPCClient. Zero fields take the documented defaults.
type GRPCOptions struct {
	ConnectTimeout  time.Duration // longest wait for a connection attempt; default 5s
	KeepaliveTime   time.Duration // ping an idle connection this often; default 30s
	MaxMessageBytes int           // largest message sent or received; default 64 MiB
	TLS             *TLSOptions   // nil: plaintext (h2c)
	// DialOptions are added to the defaults (interceptors that propagate trace context, for
	// one); default none.
	DialOptions []grpc.DialOption
}

// GRPCClient holds one pooled grpc-go ClientConn per endpoint of a gRPC pool. A ClientConn
// multiplexes every concurrent call over its HTTP/2 connection and reconnects by itself. It is
// safe for concurrent use.
type GRPCClient struct {
	conns    map[*Endpoint]*grpc.ClientConn
	dialOpts []grpc.DialOption
}

// NewGRPCClient creates the connections for endpoints. grpc-go connects lazily, so this does no
// I/O; TLS files are read now so a bad file is a startup error.
func NewGRPCClient(endpoints []*Endpoint, opts GRPCOptions) (*GRPCClient, error) {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	if opts.KeepaliveTime <= 0 {
		opts.KeepaliveTime = 30 * time.Second
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = 64 << 20
	}
	creds := insecure.NewCredentials()
	if opts.TLS != nil {
		conf, err := buildTLS(opts.TLS)
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(conf)
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: opts.KeepaliveTime, Timeout: 10 * time.Second}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(opts.MaxMessageBytes), grpc.MaxCallSendMsgSize(opts.MaxMessageBytes)),
		grpc.WithConnectParams(grpc.ConnectParams{MinConnectTimeout: opts.ConnectTimeout}),
	}
	dialOpts = append(dialOpts, opts.DialOptions...)
	return (&GRPCClient{dialOpts: dialOpts}).Derive(endpoints)
}

// Derive returns a client for endpoints with c's options. It shares c's connections to the
// endpoints both have, so calls in flight on either go on undisturbed, and creates the others
// (lazily, no I/O). Close only what one client has alone: see CloseUnshared.
func (c *GRPCClient) Derive(endpoints []*Endpoint) (*GRPCClient, error) {
	d := &GRPCClient{conns: make(map[*Endpoint]*grpc.ClientConn, len(endpoints)), dialOpts: c.dialOpts}
	for _, ep := range endpoints {
		if !ep.GRPC() {
			continue
		}
		if conn := c.conns[ep]; conn != nil {
			d.conns[ep] = conn
			continue
		}
		conn, err := grpc.NewClient(ep.URL.Host, c.dialOpts...)
		if err != nil {
			d.CloseUnshared(c)
			return nil, fmt.Errorf("backends: grpc endpoint %s: %w", ep.Name, err)
		}
		d.conns[ep] = conn
	}
	return d, nil
}

// CloseUnshared closes c's connections that next does not share; next may be nil.
func (c *GRPCClient) CloseUnshared(next *GRPCClient) {
	for ep, conn := range c.conns {
		if next == nil || next.conns[ep] != conn {
			conn.Close()
		}
	}
}

// Inference returns a KServe v2 client for the endpoint, or nil when it is not one of the
// client's gRPC endpoints.
func (c *GRPCClient) Inference(ep *Endpoint) inference.GRPCInferenceServiceClient {
	conn := c.conns[ep]
	if conn == nil {
		return nil
	}
	return inference.NewGRPCInferenceServiceClient(conn)
}

// Close closes every connection.
func (c *GRPCClient) Close() {
	for _, conn := range c.conns {
		conn.Close()
	}
}
