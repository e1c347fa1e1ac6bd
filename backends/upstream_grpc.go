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
	conns map[*Endpoint]*grpc.ClientConn
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
	c := &GRPCClient{conns: make(map[*Endpoint]*grpc.ClientConn, len(endpoints))}
	for _, ep := range endpoints {
		if !ep.GRPC() {
			continue
		}
		conn, err := grpc.NewClient(ep.URL.Host, dialOpts...)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("backends: grpc endpoint %s: %w", ep.Name, err)
		}
		c.conns[ep] = conn
	}
	return c, nil
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
