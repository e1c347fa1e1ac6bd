package router

import "net/http"

// Protocol names the wire protocol a request arrived on.
type Protocol string

// The protocols Switchyard accepts.
const (
	ProtocolOpenAI Protocol = "openai" // OpenAI-compatible HTTP
	ProtocolKServe Protocol = "kserve" // KServe v2 / Open Inference Protocol (gRPC, gRPC-Web, Connect, REST)
)

// Operation names what a request asks the model to do.
type Operation string

// The operations Switchyard routes.
const (
	OpChat       Operation = "chat"
	OpCompletion Operation = "completion"
	OpEmbedding  Operation = "embedding"
	OpInfer      Operation = "infer"    // KServe v2 ModelInfer / ModelStreamInfer
	OpMetadata   Operation = "metadata" // KServe v2 ModelMetadata / ModelReady
	// OpRealtime is a long-lived session (OpenAI Realtime): it is admitted while its token
	// limits have room and charged the tokens it uses as its responses report them.
	OpRealtime Operation = "realtime"
)

// Request is one inference request as the core sees it: classified once by a front door,
// read-only afterwards.
type Request struct {
	ID        string    // request id, echoed as x-request-id
	Protocol  Protocol  // wire protocol it arrived on
	Operation Operation // chat, completion, embedding
	Model     string    // model name as the client asked for it
	Version   string    // model version (KServe); empty for the server's choice

	// PromptTokens estimates the prompt's length in tokens (see EstimateTokens). For tensor
	// requests it is the input element count, the same kind of size signal.
	PromptTokens int
	// InputBytes is the size of a tensor request's inputs in bytes; 0 for text requests.
	InputBytes int64
	// MaxTokens is the requested output budget in tokens (times n choices); 0 when unset.
	MaxTokens int
	// Stream is true when the client asked for a streamed response.
	Stream bool
	// IncludeUsage is true when a streaming client asked for the final usage chunk.
	IncludeUsage bool

	Priority   string // priority class name, never empty after classification
	SessionKey string // conversation key for affinity; empty when none
	User       string // end-user id the client declared (OpenAI "user"); empty when none
	Identity   string // authenticated caller; filled by policy, empty when anonymous

	// Header holds the request's headers (or gRPC metadata) for routing rules; may be nil.
	Header http.Header
	// PrefixHashes are chained hashes of the prompt's leading blocks (see PrefixHashes), for
	// prefix-cache affinity; nil when not computed.
	PrefixHashes []uint64

	// Body is the original request body, forwarded as received except for a model rewrite.
	Body []byte

	route *Route // the concrete route, once resolved
}
