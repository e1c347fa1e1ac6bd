package integration_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/switchyard-ai/switchyard/backends/backendstest"
	"github.com/switchyard-ai/switchyard/backends/sim"
	"github.com/switchyard-ai/switchyard/gen/inference/inferenceconnect"
	"github.com/switchyard-ai/switchyard/policy"
)

// jwks serves one RSA key as a JWKS over loopback and signs tokens with it.
type jwks struct {
	key *rsa.PrivateKey
	srv *httptest.Server
}

func newJWKS(t *testing.T) *jwks {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	j := &jwks{key: k}
	j.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{map[string]string{
			"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
			"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
		}}})
	}))
	t.Cleanup(j.srv.Close)
	return j
}

func (j *jwks) token(t *testing.T, tenant string, exp time.Duration) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": "https://issuer.test", "aud": "switchyard", "sub": "user-1", "tenant": tenant,
		"exp": time.Now().Add(exp).Unix(), "iat": time.Now().Unix(),
	})
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(j.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// policyRouter serves chat model "chat" and tensor model "tensor" from one simulator, with:
// key sk-a (tenant a, every model), sk-b (tenant b, tensor only), sk-c (tenant c, chat only),
// sk-tight (tenant tight, two requests a minute), sk-tok (tenant tok, 300 tokens a minute), and
// JWTs from the test issuer.
func policyRouter(t *testing.T) (addr, base string, issuer *jwks, up *backendstest.Upstream) {
	up = backendstest.New(t, "llm")
	tensor := startSim(t, sim.Config{Model: "x", TensorModel: "sim-tensor"})
	issuer = newJWKS(t)
	yaml := `
pools:
  - {name: llm, metrics: none, endpoints: [` + up.URL + `]}
  - {name: t, protocol: kserve, metrics: none, endpoints: [grpc://` + tensor.Host + `]}
models:
  - {name: chat, pool: llm, target_model: chat-upstream}
  - {name: tensor, pool: t, target_model: sim-tensor}
auth:
  api_keys:
    - {name: a, sha256: ` + policy.HashKey("sk-a") + `, tenant: a}
    - {name: b, sha256: ` + policy.HashKey("sk-b") + `, tenant: b}
    - {name: tight, sha256: ` + policy.HashKey("sk-tight") + `, tenant: tight}
    - {name: tok, sha256: ` + policy.HashKey("sk-tok") + `, tenant: tok}
    - {name: c, sha256: ` + policy.HashKey("sk-c") + `, tenant: c}
  jwt: {issuer: "https://issuer.test", audiences: [switchyard], jwks_url: "` + issuer.srv.URL + `"}
tenants:
  - {name: b, models: [tensor]}
  - {name: c, models: [chat]}
limits:
  rules:
    - {name: tight-rpm, requests: 2, window: 1m, match: {tenant: tight}}
    - {name: tok-tpm, tokens: 300, window: 1m, match: {tenant: tok}}
`
	s, base := startRouter(t, yaml)
	return s.Addr(), base, issuer, up
}

const chatBody = `{"model":"chat","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`
const tensorBody = `{"inputs":[{"name":"INPUT0","shape":[1,2],"datatype":"INT32","data":[1,2]},{"name":"INPUT1","shape":[1,2],"datatype":"INT32","data":[3,4]}]}`

func post(t *testing.T, url, key, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestPolicyOpenAI(t *testing.T) {
	_, base, issuer, _ := policyRouter(t)
	url := base + "/v1/chat/completions"
	openAIError(t, post(t, url, "", chatBody), 401, "invalid_api_key")
	openAIError(t, post(t, url, "sk-wrong", chatBody), 401, "invalid_api_key")
	openAIError(t, post(t, url, issuer.token(t, "a", -time.Minute), chatBody), 401, "invalid_api_key") // expired JWT
	openAIError(t, post(t, url, "sk-b", chatBody), 403, "model_not_allowed")
	for _, key := range []string{"sk-a", issuer.token(t, "a", time.Minute)} {
		resp := post(t, url, key, chatBody)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("valid credential: %d", resp.StatusCode)
		}
	}
	for i := range 2 {
		resp := post(t, url, "sk-tight", chatBody)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("x-ratelimit-remaining-requests") != []string{"1", "0"}[i] ||
			resp.Header.Get("x-ratelimit-limit-requests") != "2" || resp.Header.Get("x-ratelimit-reset-requests") == "" {
			t.Errorf("tight request %d: %d %v", i, resp.StatusCode, resp.Header)
		}
	}
	resp := post(t, url, "sk-tight", chatBody)
	if ra := resp.Header.Get("Retry-After"); ra == "" || resp.Header.Get("x-ratelimit-remaining-requests") != "0" {
		t.Errorf("429 headers: %v", resp.Header)
	}
	openAIError(t, resp, 429, "rate_limit_exceeded")
	// /v1/models lists only what the caller may use.
	req, _ := http.NewRequest("GET", base+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer sk-b")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if strings.Contains(string(b), `"chat"`) {
		t.Errorf("tenant b sees chat: %s", b)
	}
}

// TestTokenLimitSettlesStreams: a stream whose client did not ask for usage is still charged
// its real usage (Switchyard asks the upstream and removes the extra chunk).
func TestTokenLimitSettlesStreams(t *testing.T) {
	_, base, _, up := policyRouter(t)
	url := base + "/v1/chat/completions"
	stream := `{"model":"chat","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`
	resp := post(t, url, "sk-tok", stream)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasSuffix(string(b), "data: [DONE]\n\n") {
		t.Fatalf("stream: %d %s", resp.StatusCode, b)
	}
	if strings.Contains(string(b), `"choices":[]`) {
		t.Errorf("the usage chunk the client did not ask for reached it")
	}
	if !strings.Contains(string(up.LastBody()), `"include_usage":true`) {
		t.Errorf("upstream was not asked for usage: %s", up.LastBody())
	}
	// The stream reserved its prompt estimate (6) + 50 and reported 7 tokens used; the next
	// request reserves 6 + 10. If settlement worked, 300 − 7 − 16 = 277 remain; if the
	// reservation had stuck, 300 − 56 − 16 = 228.
	resp = post(t, url, "sk-tok", `{"model":"chat","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`)
	resp.Body.Close()
	if remaining := resp.Header.Get("x-ratelimit-remaining-tokens"); remaining != "277" {
		t.Errorf("remaining tokens %q, want 277", remaining)
	}
	// That answer reported 8 tokens: 300 − 7 − 8 = 285 left, so 6 + 290 does not fit.
	openAIError(t, post(t, url, "sk-tok", `{"model":"chat","max_tokens":290,"messages":[{"role":"user","content":"hi"}]}`), 429, "rate_limit_exceeded")
	resp = post(t, url, "sk-tok", `{"model":"chat","max_tokens":270,"messages":[{"role":"user","content":"hi"}]}`)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("6 + 270 tokens should fit in the 285 left: %d", resp.StatusCode)
	}
}

func TestPolicyKServe(t *testing.T) {
	addr, base, issuer, _ := policyRouter(t)
	// REST
	for _, tt := range []struct {
		key    string
		status int
	}{{"", 401}, {"sk-wrong", 401}, {"sk-a", 200}, {issuer.token(t, "b", time.Minute), 200}} {
		resp := post(t, base+"/v2/models/tensor/infer", tt.key, tensorBody)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("REST key %q: %d %s", tt.key, resp.StatusCode, b)
		}
		if tt.status != 200 && !strings.Contains(string(b), `"error"`) {
			t.Errorf("REST error body %s", b)
		}
	}
	// gRPC: the bearer rides in the authorization metadata.
	c := grpcClient(t, addr)
	call := func(key string) error {
		ctx := context.Background()
		if key != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
		}
		_, err := c.ModelInfer(ctx, addRequest("tensor"))
		return err
	}
	for _, tt := range []struct {
		key  string
		code codes.Code
	}{{"", codes.Unauthenticated}, {"sk-wrong", codes.Unauthenticated}, {issuer.token(t, "a", -time.Minute), codes.Unauthenticated},
		{"sk-a", codes.OK}, {issuer.token(t, "a", time.Minute), codes.OK}} {
		if got := status.Code(call(tt.key)); got != tt.code {
			t.Errorf("gRPC key %q: %v, want %v", tt.key, got, tt.code)
		}
	}
	call("sk-tight")
	call("sk-tight")
	err := call("sk-tight")
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("gRPC over the limit: %v", err)
	}
	// Connect and gRPC-Web: same codes.
	for _, opts := range [][]connect.ClientOption{nil, {connect.WithGRPCWeb()}} {
		cc := inferenceconnect.NewGRPCInferenceServiceClient(http.DefaultClient, base, opts...)
		req := connect.NewRequest(addRequest("tensor"))
		if _, err := cc.ModelInfer(context.Background(), req); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("connect without key: %v", err)
		}
		req = connect.NewRequest(addRequest("tensor"))
		req.Header().Set("Authorization", "Bearer sk-tight")
		if _, err := cc.ModelInfer(context.Background(), req); connect.CodeOf(err) != connect.CodeResourceExhausted {
			t.Errorf("connect over the limit: %v", err)
		}
	}
	// Tenant c may use only the chat model: PERMISSION_DENIED / 403 on the tensor model.
	if got := status.Code(call("sk-c")); got != codes.PermissionDenied {
		t.Errorf("gRPC c on tensor: %v", got)
	}
	resp := post(t, base+"/v2/models/tensor/infer", "sk-c", tensorBody)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(b), `"error"`) {
		t.Errorf("REST c on tensor: %d %s", resp.StatusCode, b)
	}
	cc := inferenceconnect.NewGRPCInferenceServiceClient(http.DefaultClient, base)
	req := connect.NewRequest(addRequest("tensor"))
	req.Header().Set("Authorization", "Bearer sk-c")
	if _, err := cc.ModelInfer(context.Background(), req); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("connect c on tensor: %v", err)
	}
	// A REST 429 carries Retry-After.
	resp = post(t, base+"/v2/models/tensor/infer", "sk-tight", tensorBody)
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("REST over the limit: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestAdminKeys: with admin keys configured, /metrics needs one; the probes stay open.
func TestAdminKeys(t *testing.T) {
	up := backendstest.New(t, "a")
	s, _ := startRouter(t, poolYAML("m", "", up.URL)+"admin:\n  api_keys: ["+policy.HashKey("admin-secret")+"]\n")
	admin := "http://" + s.AdminAddr()
	if code, _ := httpGet(t, admin+"/metrics"); code != 401 {
		t.Errorf("/metrics without a key: %d", code)
	}
	req, _ := http.NewRequest("GET", admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer admin-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/metrics with the admin key: %d", resp.StatusCode)
	}
	if code, _ := httpGet(t, admin+"/readyz"); code != 200 {
		t.Errorf("/readyz: %d", code)
	}
}
