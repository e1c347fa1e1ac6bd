package integration_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard-ai/switchyard/backends/sim"
	adminv1 "github.com/switchyard-ai/switchyard/gen/switchyard/admin/v1"
	"github.com/switchyard-ai/switchyard/internal/app"
	"github.com/switchyard-ai/switchyard/internal/config"
	"github.com/switchyard-ai/switchyard/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const adminKey = "sk-admin-test"

// adminYAML is the admin section that protects a router's admin port with adminKey.
var adminYAML = "admin:\n  api_keys: [" + policy.HashKey(adminKey) + "]\n"

// adminConn is a router's admin API as operators reach it: a grpc-go client and REST over
// plain net/http, both on the admin port.
type adminConn struct {
	srv  *app.Server
	base string // data plane
	rest string // admin port, http://host:port
	api  adminv1.AdminServiceClient
	conn *grpc.ClientConn
}

func dialAdmin(t *testing.T, s *app.Server) *adminConn {
	t.Helper()
	conn, err := grpc.NewClient(s.AdminAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &adminConn{srv: s, base: "http://" + s.Addr(), rest: "http://" + s.AdminAddr(),
		api: adminv1.NewAdminServiceClient(conn), conn: conn}
}

// startAdmin starts a router from yamlText with the admin keys on.
func startAdmin(t *testing.T, yamlText string) *adminConn {
	t.Helper()
	s, _ := startRouter(t, yamlText+adminYAML)
	return dialAdmin(t, s)
}

// authed returns a context whose gRPC calls carry key as a bearer token ("" for none).
func authed(t *testing.T, key string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	if key != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
	}
	return ctx
}

// call sends a REST request to the admin port with key as bearer token ("" for none). A 200
// answer is decoded into out; any other is returned with its raw body.
func (a *adminConn) call(t *testing.T, method, path, key string, out proto.Message) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, a.rest+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := protojson.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, body)
		}
	}
	return resp.StatusCode, body
}

// restStatus decodes grpc-gateway's JSON error body.
func restStatus(t *testing.T, body []byte) (code codes.Code, message string) {
	t.Helper()
	var st struct {
		Code    codes.Code `json:"code"`
		Message string     `json:"message"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("error body %q is not a JSON status: %v", body, err)
	}
	return st.Code, st.Message
}

// expectCode fails unless err is a gRPC status with code want.
func expectCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Errorf("%s: code %v (%v), want %v", what, got, err, want)
	}
}

// TestAdminAuth: every RPC needs an admin key, over gRPC (UNAUTHENTICATED) and REST (401 with
// a JSON status), including server reflection; probes stay open.
func TestAdminAuth(t *testing.T) {
	sm := startSim(t, sim.Config{Model: "m"})
	a := startAdmin(t, poolYAML("m", "", sm.URL))
	ep := sm.Host
	rpcs := []struct {
		name string
		call func(ctx context.Context) error
		verb string
		path string
	}{
		{"ListModels", func(ctx context.Context) error {
			_, err := a.api.ListModels(ctx, &adminv1.ListModelsRequest{})
			return err
		},
			"GET", "/admin/v1/models"},
		{"ListPools", func(ctx context.Context) error {
			_, err := a.api.ListPools(ctx, &adminv1.ListPoolsRequest{})
			return err
		},
			"GET", "/admin/v1/pools"},
		{"ListMembers", func(ctx context.Context) error {
			_, err := a.api.ListMembers(ctx, &adminv1.ListMembersRequest{})
			return err
		}, "GET", "/admin/v1/members"},
		{"GetSession", func(ctx context.Context) error {
			_, err := a.api.GetSession(ctx, &adminv1.GetSessionRequest{Pool: "p", Session: "s"})
			return err
		}, "GET", "/admin/v1/pools/p/sessions/s"},
		{"DeleteSession", func(ctx context.Context) error {
			_, err := a.api.DeleteSession(ctx, &adminv1.DeleteSessionRequest{Pool: "p", Session: "s"})
			return err
		}, "DELETE", "/admin/v1/pools/p/sessions/s"},
		{"DrainEndpoint", func(ctx context.Context) error {
			_, err := a.api.DrainEndpoint(ctx, &adminv1.DrainEndpointRequest{Pool: "p", Endpoint: ep})
			return err
		}, "POST", "/admin/v1/pools/p/endpoints/" + ep + ":drain"},
		{"UndrainEndpoint", func(ctx context.Context) error {
			_, err := a.api.UndrainEndpoint(ctx, &adminv1.UndrainEndpointRequest{Pool: "p", Endpoint: ep})
			return err
		}, "POST", "/admin/v1/pools/p/endpoints/" + ep + ":undrain"},
		{"GetConfig", func(ctx context.Context) error {
			_, err := a.api.GetConfig(ctx, &adminv1.GetConfigRequest{})
			return err
		},
			"GET", "/admin/v1/config"},
	}
	for _, rpc := range rpcs {
		t.Run(rpc.name, func(t *testing.T) {
			for _, key := range []string{"", "sk-wrong"} {
				expectCode(t, fmt.Sprintf("gRPC with key %q", key), rpc.call(authed(t, key)), codes.Unauthenticated)
				code, body := a.call(t, rpc.verb, rpc.path, key, nil)
				if code != http.StatusUnauthorized {
					t.Errorf("REST with key %q: %d %s, want 401", key, code, body)
					continue
				}
				if c, _ := restStatus(t, body); c != codes.Unauthenticated {
					t.Errorf("REST with key %q: status code %v, want Unauthenticated", key, c)
				}
			}
			// With the key the call goes through (GetSession and DeleteSession find nothing).
			err := rpc.call(authed(t, adminKey))
			if c := status.Code(err); c != codes.OK && c != codes.NotFound {
				t.Errorf("gRPC with the admin key: %v", err)
			}
		})
	}
	t.Run("reflection", func(t *testing.T) {
		list := func(key string) ([]string, error) {
			stream, err := reflectionv1.NewServerReflectionClient(a.conn).ServerReflectionInfo(authed(t, key))
			if err != nil {
				return nil, err
			}
			// A Send that fails because the server ended the stream says io.EOF; Recv then
			// returns the status the server ended it with.
			stream.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}})
			resp, err := stream.Recv()
			if err != nil {
				return nil, err
			}
			var names []string
			for _, s := range resp.GetListServicesResponse().GetService() {
				names = append(names, s.GetName())
			}
			return names, nil
		}
		_, err := list("")
		expectCode(t, "reflection without a key", err, codes.Unauthenticated)
		names, err := list(adminKey)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(names, " "), "switchyard.admin.v1.AdminService") {
			t.Errorf("reflection lists %v", names)
		}
	})

	t.Run("probes stay open", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz"} {
			if code, body := httpGet(t, a.rest+p); code != http.StatusOK {
				t.Errorf("%s: %d %s", p, code, body)
			}
		}
		if code, _ := httpGet(t, a.rest+"/metrics"); code != http.StatusUnauthorized {
			t.Errorf("/metrics without a key: %d, want 401", code)
		}
	})

	t.Run("unknown REST path", func(t *testing.T) {
		code, body := a.call(t, "GET", "/admin/v1/nothing", adminKey, nil)
		if c, _ := restStatus(t, body); code != http.StatusNotFound || c != codes.NotFound {
			t.Errorf("GET /admin/v1/nothing: %d %s, want 404 NotFound", code, body)
		}
	})
}

// routesYAML has two pools, concrete models with an overflow, and a virtual model whose
// rules have a condition and a weighted split.
func routesYAML(small, large []*simServer) string {
	var b strings.Builder
	for _, p := range []struct {
		name string
		sims []*simServer
	}{{"small", small}, {"large", large}} {
		if b.Len() == 0 {
			b.WriteString("pools:\n")
		}
		fmt.Fprintf(&b, "  - name: %s\n    metrics: vllm\n    stats: {interval: 50ms}\n    endpoints:\n", p.name)
		for _, s := range p.sims {
			b.WriteString("      - " + s.URL + "\n")
		}
	}
	b.WriteString(`models:
  - name: m-small
    pool: small
    target_model: m
    overflow: [large]
  - name: m-large
    pool: large
    target_model: m
  - name: auto
    routes:
      - when: {max_prompt_tokens: 100, priorities: [critical], headers: {x-tier: gold}}
        to: [{model: m-small}]
      - to: [{model: m-small, weight: 9}, {model: m-large, weight: 1}]
`)
	return b.String()
}

// TestAdminModels lists models and virtual routes over gRPC and REST; both agree, and the
// REST JSON matches the golden file.
func TestAdminModels(t *testing.T) {
	small, large := []*simServer{startSim(t, sim.Config{Model: "m"})}, []*simServer{startSim(t, sim.Config{Model: "m"})}
	a := startAdmin(t, routesYAML(small, large))

	got, err := a.api.ListModels(authed(t, adminKey), &adminv1.ListModelsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := &adminv1.ListModelsResponse{Models: []*adminv1.Model{
		{Name: "auto", Protocol: "openai", Virtual: true, Rules: []*adminv1.RouteRule{
			{Match: &adminv1.RouteMatch{MaxPromptTokens: 100, Priorities: []string{"critical"}, Headers: map[string]string{"x-tier": "gold"}},
				Targets: []*adminv1.RouteTarget{{Model: "m-small", Pool: "small", Weight: 1}}},
			{Targets: []*adminv1.RouteTarget{{Model: "m-small", Pool: "small", Weight: 9}, {Model: "m-large", Pool: "large", Weight: 1}}},
		}},
		{Name: "m-large", Protocol: "openai", Pool: "large", TargetModel: "m"},
		{Name: "m-small", Protocol: "openai", Pool: "small", TargetModel: "m", OverflowPools: []string{"large"}},
	}}
	if !proto.Equal(got, want) {
		t.Errorf("ListModels:\n got %v\nwant %v", got, want)
	}

	var rest adminv1.ListModelsResponse
	code, body := a.call(t, "GET", "/admin/v1/models", adminKey, &rest)
	if code != http.StatusOK {
		t.Fatalf("GET /admin/v1/models: %d %s", code, body)
	}
	if !proto.Equal(&rest, got) {
		t.Errorf("REST and gRPC differ:\nREST %v\ngRPC %v", &rest, got)
	}
	golden(t, "admin_models.json", body)
}

// golden compares a JSON body, re-indented with sorted keys, to testdata/name.
func golden(t *testing.T, name string, body []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	got, _ := json.MarshalIndent(v, "", "  ")
	got = append(got, '\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update after checking):\n%s", name, got)
	}
}

// TestAdminPools shows each endpoint's live stats and this replica's in-flight requests.
func TestAdminPools(t *testing.T) {
	small := []*simServer{startSim(t, sim.Config{Model: "m", DecodePerToken: 10 * time.Millisecond}), startSim(t, sim.Config{Model: "m"})}
	large := []*simServer{startSim(t, sim.Config{Model: "m"})}
	a := startAdmin(t, routesYAML(small, large))
	ctx := authed(t, adminKey)

	// A stream in flight shows on its endpoint.
	stream := openStream(t, a.base, "m-small", "", 60)
	var pools *adminv1.ListPoolsResponse
	eventually(t, "stats scraped and the stream counted", func() bool {
		var err error
		if pools, err = a.api.ListPools(ctx, &adminv1.ListPoolsRequest{}); err != nil {
			t.Fatal(err)
		}
		for _, p := range pools.GetPools() {
			for _, ep := range p.GetEndpoints() {
				if ep.GetStats() == nil {
					return false
				}
			}
		}
		ep := findEndpoint(pools, "small", stream.endpoint)
		return ep != nil && ep.GetInFlight() == 1 && ep.GetStats().GetRunning() == 1
	})
	if len(pools.GetPools()) != 2 || pools.Pools[0].Name != "small" || pools.Pools[1].Name != "large" {
		t.Fatalf("pools: %v", pools)
	}
	for _, p := range pools.Pools {
		if p.MetricsFormat != "vllm" {
			t.Errorf("pool %s: metrics format %q", p.Name, p.MetricsFormat)
		}
		for _, ep := range p.Endpoints {
			st := ep.GetStats()
			switch {
			case !ep.Healthy || ep.Drained:
				t.Errorf("%s/%s: healthy %v drained %v", p.Name, ep.Name, ep.Healthy, ep.Drained)
			case ep.Url != "http://"+ep.Name:
				t.Errorf("%s: url %q", ep.Name, ep.Url)
			case st == nil || st.Running == nil || st.KvCacheUsage == nil:
				t.Errorf("%s: stats %v", ep.Name, st)
			case st.Age.AsDuration() < 0 || st.Age.AsDuration() > 2*time.Second:
				t.Errorf("%s: stats age %v", ep.Name, st.Age.AsDuration())
			case time.Since(st.ScrapedAt.AsTime()) > 2*time.Second:
				t.Errorf("%s: scraped at %v", ep.Name, st.ScrapedAt.AsTime())
			}
		}
	}
	if ep := findEndpoint(pools, "small", stream.endpoint); ep.GetStats().GetKvCacheUsage() <= 0 {
		t.Errorf("the busy endpoint shows no KV-cache use: %v", ep.GetStats())
	}

	// REST shows the same, with the .proto's field names.
	code, body := a.call(t, "GET", "/admin/v1/pools", adminKey, nil)
	if code != http.StatusOK {
		t.Fatalf("GET /admin/v1/pools: %d %s", code, body)
	}
	for _, field := range []string{`"in_flight"`, `"kv_cache_usage"`, `"scraped_at"`, `"metrics_format"`, `"drained"`} {
		if !bytes.Contains(body, []byte(field)) {
			t.Errorf("REST pools lack %s: %s", field, body)
		}
	}
	stream.finish(t)
	eventually(t, "in-flight back to 0", func() bool {
		var rest adminv1.ListPoolsResponse
		a.call(t, "GET", "/admin/v1/pools", adminKey, &rest)
		ep := findEndpoint(&rest, "small", stream.endpoint)
		return ep != nil && ep.InFlight == 0
	})
}

func findEndpoint(pools *adminv1.ListPoolsResponse, pool, name string) *adminv1.Endpoint {
	for _, p := range pools.GetPools() {
		for _, ep := range p.GetEndpoints() {
			if p.Name == pool && ep.Name == name {
				return ep
			}
		}
	}
	return nil
}

// liveStream is a streamed chat completion in progress.
type liveStream struct {
	endpoint string
	resp     *http.Response
	events   *bufio.Reader
}

// openStream starts a streamed chat completion of maxTokens tokens and returns once its first
// event arrived, so it is in flight on its endpoint.
func openStream(t *testing.T, base, model, session string, maxTokens int) *liveStream {
	t.Helper()
	resp := sendChat(t, base, session,
		fmt.Sprintf(`{"model":%q,"stream":true,"max_tokens":%d,"messages":[{"role":"user","content":"tell a story"}]}`, model, maxTokens))
	t.Cleanup(func() { resp.Body.Close() })
	s := &liveStream{endpoint: resp.Header.Get("x-switchyard-endpoint"), resp: resp, events: bufio.NewReader(resp.Body)}
	if line, err := s.events.ReadString('\n'); err != nil || !strings.HasPrefix(line, "data: {") {
		t.Fatalf("first event: %q %v", line, err)
	}
	return s
}

// finish reads the stream to its end and fails unless it ends with [DONE] and no error event.
func (s *liveStream) finish(t *testing.T) (chunks int) {
	t.Helper()
	last := ""
	for {
		line, err := s.events.ReadString('\n')
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("stream from %s broke: %v", s.endpoint, err)
		}
		line = strings.TrimSpace(line)
		if strings.Contains(line, `"error"`) {
			t.Fatalf("stream from %s failed: %s", s.endpoint, line)
		}
		if strings.HasPrefix(line, "data: ") {
			chunks++
			last = line
		}
	}
	if last != "data: [DONE]" {
		t.Fatalf("stream from %s ended with %q, not [DONE]", s.endpoint, last)
	}
	return chunks
}

// chat sends one short chat completion and returns the endpoint that served it.
func chat(t *testing.T, base, model, session string) string {
	t.Helper()
	resp := sendChat(t, base, session, `{"model":"`+model+`","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}`)
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.Header.Get("x-switchyard-endpoint")
}

// sendChat posts a chat completion body, with a session key unless it is "", and fails the
// test unless the answer is 200.
func sendChat(t *testing.T, base, session, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if session != "" {
		req.Header.Set("x-session-id", session)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("chat completion: %d %s", resp.StatusCode, b)
	}
	return resp
}

// TestAdminDrain: a drained endpoint takes no new requests, its sessions move, and a stream
// already on it completes; undrained, it takes requests again. Drain over REST, undrain over
// gRPC, and the other way round.
func TestAdminDrain(t *testing.T) {
	sims := []*simServer{startSim(t, sim.Config{Model: "m", DecodePerToken: 10 * time.Millisecond}),
		startSim(t, sim.Config{Model: "m", DecodePerToken: 10 * time.Millisecond})}
	a := startAdmin(t, simPoolYAML("", sims...))
	ctx := authed(t, adminKey)

	for _, over := range []string{"REST", "gRPC"} {
		t.Run("drain over "+over, func(t *testing.T) {
			session := "conv-" + over
			bound := chat(t, a.base, "m", session)
			// The stream joins its session's endpoint and outlives the drain.
			stream := openStream(t, a.base, "m", session, 150)
			if stream.endpoint != bound {
				t.Fatalf("stream went to %s, its session is bound to %s", stream.endpoint, bound)
			}
			var drained *adminv1.Endpoint
			if over == "REST" {
				var resp adminv1.DrainEndpointResponse
				if code, body := a.call(t, "POST", "/admin/v1/pools/p/endpoints/"+bound+":drain", adminKey, &resp); code != http.StatusOK {
					t.Fatalf("drain: %d %s", code, body)
				}
				drained = resp.Endpoint
			} else {
				resp, err := a.api.DrainEndpoint(ctx, &adminv1.DrainEndpointRequest{Pool: "p", Endpoint: bound})
				if err != nil {
					t.Fatal(err)
				}
				drained = resp.Endpoint
			}
			if drained.GetName() != bound || !drained.GetDrained() || drained.GetInFlight() != 1 {
				t.Errorf("drain answered %v, want %s drained with the stream in flight", drained, bound)
			}
			// New requests, with the session or without, go elsewhere while the stream runs.
			for i := range 10 {
				for _, s := range []string{session, ""} {
					if got := chat(t, a.base, "m", s); got == bound {
						t.Fatalf("request %d (session %q) went to drained %s", i, s, bound)
					}
				}
			}
			sess, err := a.api.GetSession(ctx, &adminv1.GetSessionRequest{Pool: "p", Session: session})
			if err != nil {
				t.Fatal(err)
			}
			if sess.Session.Endpoint == bound {
				t.Errorf("session still bound to drained %s", bound)
			}
			pools, err := a.api.ListPools(ctx, &adminv1.ListPoolsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if ep := findEndpoint(pools, "p", bound); !ep.GetDrained() || ep.GetInFlight() != 1 {
				t.Errorf("while draining: %v", ep)
			}
			if n := stream.finish(t); n < 150 {
				t.Errorf("stream on the drained endpoint delivered %d events, want at least 150", n)
			}

			// Undrained, the endpoint takes new requests again.
			if over == "REST" {
				if _, err := a.api.UndrainEndpoint(ctx, &adminv1.UndrainEndpointRequest{Pool: "p", Endpoint: bound}); err != nil {
					t.Fatal(err)
				}
			} else {
				var resp adminv1.UndrainEndpointResponse
				if code, body := a.call(t, "POST", "/admin/v1/pools/p/endpoints/"+bound+":undrain", adminKey, &resp); code != http.StatusOK {
					t.Fatalf("undrain: %d %s", code, body)
				}
				if resp.Endpoint.GetDrained() {
					t.Errorf("undrain answered %v", resp.Endpoint)
				}
			}
			// Two streams at once spread over both endpoints, the undrained one included.
			s1 := openStream(t, a.base, "m", "", 20)
			s2 := openStream(t, a.base, "m", "", 20)
			if s1.endpoint != bound && s2.endpoint != bound {
				t.Errorf("undrained %s got neither of two concurrent streams (%s, %s)", bound, s1.endpoint, s2.endpoint)
			}
			s1.finish(t)
			s2.finish(t)
		})
	}

	t.Run("unknown endpoint or pool", func(t *testing.T) {
		for _, tt := range []struct {
			pool, endpoint string
			want           codes.Code
			status         int
		}{
			{"p", "127.0.0.1:1", codes.NotFound, http.StatusNotFound},
			{"nope", sims[0].Host, codes.NotFound, http.StatusNotFound},
		} {
			_, err := a.api.DrainEndpoint(ctx, &adminv1.DrainEndpointRequest{Pool: tt.pool, Endpoint: tt.endpoint})
			expectCode(t, "drain "+tt.pool+"/"+tt.endpoint, err, tt.want)
			_, err = a.api.UndrainEndpoint(ctx, &adminv1.UndrainEndpointRequest{Pool: tt.pool, Endpoint: tt.endpoint})
			expectCode(t, "undrain "+tt.pool+"/"+tt.endpoint, err, tt.want)
			code, body := a.call(t, "POST", "/admin/v1/pools/"+tt.pool+"/endpoints/"+tt.endpoint+":drain", adminKey, nil)
			if c, _ := restStatus(t, body); code != tt.status || c != tt.want {
				t.Errorf("REST drain %s/%s: %d %s", tt.pool, tt.endpoint, code, body)
			}
		}
		_, err := a.api.DrainEndpoint(ctx, &adminv1.DrainEndpointRequest{Pool: "p"})
		expectCode(t, "drain without an endpoint", err, codes.InvalidArgument)
	})
}

// TestAdminSessions looks up and deletes session bindings over gRPC and REST, with keys that
// need escaping in a path.
func TestAdminSessions(t *testing.T) {
	sims := []*simServer{startSim(t, sim.Config{Model: "m"}), startSim(t, sim.Config{Model: "m"})}
	a := startAdmin(t, simPoolYAML("", sims...))
	ctx := authed(t, adminKey)
	for _, session := range []string{"conv-1", "team/alice: chat #2"} {
		t.Run(session, func(t *testing.T) {
			start := time.Now()
			bound := chat(t, a.base, "m", session)
			got, err := a.api.GetSession(ctx, &adminv1.GetSessionRequest{Pool: "p", Session: session})
			if err != nil {
				t.Fatal(err)
			}
			s := got.Session
			if s.Pool != "p" || s.Session != session || s.Endpoint != bound {
				t.Errorf("GetSession: %v, want bound to %s", s, bound)
			}
			// The default session TTL is 10 minutes.
			if exp := s.ExpiresAt.AsTime(); exp.Before(start.Add(9*time.Minute)) || exp.After(time.Now().Add(11*time.Minute)) {
				t.Errorf("expires at %v", exp)
			}
			path := "/admin/v1/pools/p/sessions/" + url.PathEscape(session)
			var rest adminv1.GetSessionResponse
			if code, body := a.call(t, "GET", path, adminKey, &rest); code != http.StatusOK || !proto.Equal(&rest, got) {
				t.Errorf("REST GetSession: %d %s, want %v", code, body, got)
			}
			// A slash in the key may also be sent as it is.
			var deleted adminv1.DeleteSessionResponse
			if code, body := a.call(t, "DELETE", strings.ReplaceAll(path, "%2F", "/"), adminKey, &deleted); code != http.StatusOK || deleted.Session.GetEndpoint() != bound {
				t.Errorf("REST DeleteSession: %d %s", code, body)
			}
			_, err = a.api.GetSession(ctx, &adminv1.GetSessionRequest{Pool: "p", Session: session})
			expectCode(t, "GetSession after delete", err, codes.NotFound)
			code, body := a.call(t, "GET", path, adminKey, nil)
			if c, _ := restStatus(t, body); code != http.StatusNotFound || c != codes.NotFound {
				t.Errorf("REST GetSession after delete: %d %s", code, body)
			}
			code, body = a.call(t, "DELETE", path, adminKey, nil)
			if code != http.StatusNotFound {
				t.Errorf("REST DeleteSession twice: %d %s", code, body)
			}

			// Deleted over gRPC this time: the next turn binds afresh.
			chat(t, a.base, "m", session)
			if _, err := a.api.DeleteSession(ctx, &adminv1.DeleteSessionRequest{Pool: "p", Session: session}); err != nil {
				t.Fatal(err)
			}
			_, err = a.api.DeleteSession(ctx, &adminv1.DeleteSessionRequest{Pool: "p", Session: session})
			expectCode(t, "DeleteSession twice", err, codes.NotFound)
			rebound := chat(t, a.base, "m", session)
			if got, err := a.api.GetSession(ctx, &adminv1.GetSessionRequest{Pool: "p", Session: session}); err != nil || got.Session.Endpoint != rebound {
				t.Errorf("after a new turn: %v %v, want bound to %s", got, err, rebound)
			}
		})
	}
	for _, tt := range []struct {
		name          string
		pool, session string
		want          codes.Code
	}{
		{"unknown session", "p", "never-seen", codes.NotFound},
		{"unknown pool", "nope", "conv-1", codes.NotFound},
		{"no pool", "", "conv-1", codes.InvalidArgument},
		{"no session", "p", "", codes.InvalidArgument},
	} {
		_, err := a.api.GetSession(ctx, &adminv1.GetSessionRequest{Pool: tt.pool, Session: tt.session})
		expectCode(t, "GetSession "+tt.name, err, tt.want)
		_, err = a.api.DeleteSession(ctx, &adminv1.DeleteSessionRequest{Pool: tt.pool, Session: tt.session})
		expectCode(t, "DeleteSession "+tt.name, err, tt.want)
	}
}

// TestAdminConfig returns the effective configuration with its version, the same over gRPC
// and REST.
func TestAdminConfig(t *testing.T) {
	sm := startSim(t, sim.Config{Model: "m"})
	before := time.Now()
	a := startAdmin(t, poolYAML("m", "", sm.URL))
	got, err := a.api.GetConfig(authed(t, adminKey), &adminv1.GetConfigRequest{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(got.Yaml))
	if err != nil {
		t.Fatalf("the effective config does not parse: %v\n%s", err, got.Yaml)
	}
	switch {
	case len(cfg.Pools) != 1 || cfg.Pools[0].Endpoints[0] != sm.URL:
		t.Errorf("pools: %+v", cfg.Pools)
	case cfg.AdminListen != "127.0.0.1:0": // as configured
		t.Errorf("admin_listen %q", cfg.AdminListen)
	case cfg.Routing.SessionTTL.D() != 10*time.Minute: // a default, filled in
		t.Errorf("session_ttl %v", cfg.Routing.SessionTTL.D())
	case len(cfg.Admin.APIKeys) != 1 || cfg.Admin.APIKeys[0] != policy.HashKey(adminKey):
		t.Errorf("admin keys %v", cfg.Admin.APIKeys)
	}
	if v := a.srv.ConfigVersion().Hash; got.Version != v || len(v) != 16 {
		t.Errorf("version %q, want the server's %q", got.Version, v)
	}
	if at := got.LoadedAt.AsTime(); at.Before(before.Add(-time.Second)) || at.After(time.Now()) {
		t.Errorf("loaded at %v", at)
	}
	var rest adminv1.GetConfigResponse
	if code, body := a.call(t, "GET", "/admin/v1/config", adminKey, &rest); code != http.StatusOK || !proto.Equal(&rest, got) {
		t.Errorf("REST GetConfig: %d %s", code, body)
	}
}

// TestAdminMembersLocal: a single replica is in local mode and its own only member.
func TestAdminMembersLocal(t *testing.T) {
	sm := startSim(t, sim.Config{Model: "m"})
	a := startAdmin(t, poolYAML("m", "", sm.URL))
	chat(t, a.base, "m", "conv-1")
	got, err := a.api.ListMembers(authed(t, adminKey), &adminv1.ListMembersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	st := got.Status
	if st.GetMode() != "local" || st.GetMembers() != 1 || st.GetSessions() != 1 || len(got.Members) != 1 {
		t.Fatalf("ListMembers: %v", got)
	}
	if m := got.Members[0]; !m.Self || m.Addr != a.srv.Addr() || m.AdminAddr != a.srv.AdminAddr() || m.Since == nil {
		t.Errorf("member: %v", m)
	}
	var rest adminv1.ListMembersResponse
	if code, body := a.call(t, "GET", "/admin/v1/members", adminKey, &rest); code != http.StatusOK || rest.Status.GetMode() != "local" {
		t.Errorf("REST ListMembers: %d %s", code, body)
	}
}

// TestAdminCluster: replicas sharing etcd list each other, and a session deleted through one
// replica's admin API is gone on the other.
func TestAdminCluster(t *testing.T) {
	ec := startEtcdCluster(t, 1)
	sims := clusterFleet(t, 2)
	reps := startReplicas(t, ec, 2, simPoolYAML("", sims...)+adminYAML)
	a, b := dialAdmin(t, reps[0]), dialAdmin(t, reps[1])
	ctx := authed(t, adminKey)

	eventually(t, "both replicas listed", func() bool {
		got, err := a.api.ListMembers(ctx, &adminv1.ListMembersRequest{})
		return err == nil && len(got.Members) == 2
	})
	got, err := a.api.ListMembers(ctx, &adminv1.ListMembersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st := got.Status; st.Mode != "shared" || st.ReplicaId != "replica-0" || st.Members != 2 || st.LastSync == nil {
		t.Errorf("status: %v", st)
	}
	for i, m := range got.Members {
		want := fmt.Sprintf("replica-%d", i)
		if m.Id != want || m.Self != (i == 0) || m.Since == nil {
			t.Errorf("member %d: %v, want %s", i, m, want)
		}
	}

	bound := chat(t, a.base, "m", "shared-conv")
	eventually(t, "the binding reaches the other replica", func() bool {
		s, err := b.api.GetSession(ctx, &adminv1.GetSessionRequest{Pool: "p", Session: "shared-conv"})
		return err == nil && s.Session.Endpoint == bound
	})
	if _, err := b.api.DeleteSession(ctx, &adminv1.DeleteSessionRequest{Pool: "p", Session: "shared-conv"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deletion reaches the first replica", func() bool {
		_, err := a.api.GetSession(ctx, &adminv1.GetSessionRequest{Pool: "p", Session: "shared-conv"})
		return status.Code(err) == codes.NotFound
	})
}

// TestAdminReload: after a reload the API shows the new routes, pools and configuration at
// once, and an endpoint that stays in its pool stays drained.
func TestAdminReload(t *testing.T) {
	a1, a2, b := startSim(t, sim.Config{Model: "m"}), startSim(t, sim.Config{Model: "m"}), startSim(t, sim.Config{Model: "m"})
	path := filepath.Join(t.TempDir(), "switchyard.yaml")
	write := func(text string) {
		if err := os.WriteFile(path, []byte(text+adminYAML), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	load := func() (*config.Config, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		cfg, err := config.Decode(data)
		if err != nil {
			return nil, err
		}
		cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
		return cfg, cfg.Finish(data)
	}
	write(poolYAML("m", "", a1.URL, a2.URL))
	s, _ := startRouter(t, poolYAML("m", "", a1.URL, a2.URL)+adminYAML,
		app.WithConfigFile(path, load), app.WithConfigPollInterval(time.Hour))
	a := dialAdmin(t, s)
	ctx := authed(t, adminKey)
	before, err := a.api.GetConfig(ctx, &adminv1.GetConfigRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.api.DrainEndpoint(ctx, &adminv1.DrainEndpointRequest{Pool: "p", Endpoint: a1.Host}); err != nil {
		t.Fatal(err)
	}

	// Pool p loses a2; a new pool q and its model n arrive.
	write("pools:\n" +
		"  - {name: p, metrics: none, endpoints: [" + a1.URL + "]}\n" +
		"  - {name: q, metrics: none, endpoints: [" + b.URL + "]}\n" +
		"models:\n  - {name: m, pool: p}\n  - {name: n, pool: q, target_model: m}\n")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	after, err := a.api.GetConfig(ctx, &adminv1.GetConfigRequest{})
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case after.Version == before.Version || after.Version != s.ConfigVersion().Hash:
		t.Errorf("version %s after the reload (before %s, server %s)", after.Version, before.Version, s.ConfigVersion().Hash)
	case !after.LoadedAt.AsTime().After(before.LoadedAt.AsTime()):
		t.Errorf("loaded at %v, not after %v", after.LoadedAt.AsTime(), before.LoadedAt.AsTime())
	case !strings.Contains(after.Yaml, b.URL):
		t.Errorf("the new pool is missing from the config:\n%s", after.Yaml)
	}
	models, err := a.api.ListModels(ctx, &adminv1.ListModelsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(models.Models) != 2 || models.Models[1].Name != "n" || models.Models[1].Pool != "q" {
		t.Errorf("models after the reload: %v", models)
	}
	pools, err := a.api.ListPools(ctx, &adminv1.ListPoolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case len(pools.Pools) != 2 || len(pools.Pools[0].Endpoints) != 1 || findEndpoint(pools, "q", b.Host) == nil:
		t.Errorf("pools after the reload: %v", pools)
	case !findEndpoint(pools, "p", a1.Host).GetDrained():
		t.Errorf("%s lost its drain in the reload", a1.Host)
	}
	// The kept endpoint is still out of rotation: pool p has no other, so m is unavailable.
	resp, err := http.Post(a.base+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("model m with its only endpoint drained: %d, want 503", resp.StatusCode)
	}
	if got := chat(t, a.base, "n", ""); got != b.Host {
		t.Errorf("model n served by %q, want %s", got, b.Host)
	}
}
