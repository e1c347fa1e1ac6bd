package integration_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"google.golang.org/grpc/metadata"

	"github.com/switchyard-ai/switchyard/backends/backendstest"
	"github.com/switchyard-ai/switchyard/backends/sim"
	"github.com/switchyard-ai/switchyard/internal/app"
	"github.com/switchyard-ai/switchyard/internal/config"
	"github.com/switchyard-ai/switchyard/policy"
)

// lockedBuffer is a bytes.Buffer safe for the router's concurrent log writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLogsHoldNoSecrets sends requests carrying an API key, JWTs and a prompt, over OpenAI and
// gRPC, accepted, refused and failing upstream, with logging at debug, and checks that no log
// line holds the key, any part of a token or the prompt.
func TestLogsHoldNoSecrets(t *testing.T) {
	const (
		apiKey = "sk-log-secret-4f1d9c"
		badKey = "sk-log-wrong-77aa31"
		prompt = "my confidential prompt 9b2e"
	)
	up := backendstest.New(t, "llm")
	tensor := startSim(t, sim.Config{Model: "x"})
	issuer := newJWKS(t)
	yaml := `listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
log: {level: debug, format: json}
pools:
  - {name: llm, metrics: none, endpoints: [` + up.URL + `]}
  - {name: t, protocol: kserve, metrics: none, endpoints: [grpc://` + tensor.Host + `]}
models:
  - {name: chat, pool: llm}
  - {name: tensor, pool: t, target_model: sim-tensor}
auth:
  api_keys: [{name: logs, sha256: ` + policy.HashKey(apiKey) + `, tenant: a}]
  jwt: {issuer: "https://issuer.test", audiences: [switchyard], jwks_url: "` + issuer.srv.URL + `"}
`
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	s, err := app.Start(context.Background(), cfg, app.WithLogOutput(&logs))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	base := "http://" + s.Addr()
	jwt := issuer.token(t, "b", time.Minute)
	expired := issuer.token(t, "b", -time.Hour)

	client := func(key string) *openai.Client {
		c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
		return &c
	}
	params := openai.ChatCompletionNewParams{Model: "chat", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)}}
	ctx := context.Background()
	if _, err := client(apiKey).Chat.Completions.New(ctx, params); err != nil {
		t.Fatal(err)
	}
	stream := client(jwt).Chat.Completions.NewStreaming(ctx, params)
	for stream.Next() {
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{badKey, expired} {
		if _, err := client(key).Chat.Completions.New(ctx, params); err == nil {
			t.Fatal("a bad credential was accepted")
		}
	}
	up.SetFault(backendstest.FaultMidStream)
	stream = client(apiKey).Chat.Completions.NewStreaming(ctx, params)
	for stream.Next() {
	}
	up.SetFault(backendstest.FaultNone)
	gctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+jwt)
	if _, err := grpcClient(t, s.Addr()).ModelInfer(gctx, addRequest("tensor")); err != nil {
		t.Fatal(err)
	}
	bad := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+badKey)
	if _, err := grpcClient(t, s.Addr()).ModelInfer(bad, addRequest("tensor")); err == nil {
		t.Fatal("a bad key was accepted over gRPC")
	}
	if !strings.Contains(string(up.LastBody()), prompt) {
		t.Fatal("the prompt did not reach the model server")
	}

	out := logs.String()
	if n := strings.Count(out, `"msg":"request"`); n < 7 {
		t.Fatalf("%d request lines logged, want one per request:\n%s", n, out)
	}
	secrets := map[string]string{"API key": apiKey, "wrong API key": badKey, "prompt": prompt}
	for i, tok := range []string{jwt, expired} {
		for j, part := range strings.Split(tok, ".") {
			secrets["token "+string(rune('0'+i))+" segment "+string(rune('0'+j))] = part
		}
	}
	for what, secret := range secrets {
		if strings.Contains(out, secret) {
			t.Errorf("the logs hold the %s", what)
		}
	}
}
