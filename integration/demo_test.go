package integration_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"google.golang.org/grpc/metadata"

	"github.com/switchyard-ai/switchyard/internal/app"
	"github.com/switchyard-ai/switchyard/internal/config"
)

// TestDemo starts `switchyard demo` in-process, as the README's first command does, and talks
// to it with a real SDK: both models answer, streaming works, and Ctrl-C stops everything.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- app.Main(ctx, []string{"demo", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--fleet-port", "0"}, pw, io.Discard)
		pw.Close()
	}()
	var base string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "Router:") {
			base = strings.Fields(line)[1]
			break
		}
	}
	if base == "" {
		t.Fatalf("demo printed no router address (%v)", <-done)
	}
	go io.Copy(io.Discard, pr)
	// Without a key: 401. With the demo's key: served.
	if _, err := newOpenAI(base).Models.List(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("no key: %v", err)
	}
	oc := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("sk-demo"), option.WithMaxRetries(0))
	c := &oc
	models, err := c.Models.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range models.Data {
		ids = append(ids, m.ID)
	}
	if strings.Join(ids, ",") != "auto,sim-large,sim-small" {
		t.Errorf("models = %v", ids)
	}
	for _, model := range []string{"sim-small", "sim-large"} {
		p := chatParams(model)
		p.MaxTokens = openai.Int(8)
		got, err := c.Chat.Completions.New(context.Background(), p)
		if err != nil {
			t.Fatalf("%s: %v", model, err)
		}
		if got.Model != model || got.Usage.CompletionTokens != 8 || got.Choices[0].Message.Content == "" {
			t.Errorf("%s answered %+v", model, got)
		}
	}
	p := chatParams("sim-small")
	p.MaxTokens = openai.Int(5)
	stream := c.Chat.Completions.NewStreaming(context.Background(), p)
	chunks := 0
	for stream.Next() {
		chunks++
	}
	if stream.Err() != nil || chunks < 5 {
		t.Errorf("stream: %d chunks, err %v", chunks, stream.Err())
	}
	// auto routes a short prompt to the small model and a critical one to the large model.
	for prio, want := range map[string]string{"standard": "sim-small", "critical": "sim-large"} {
		var resp *http.Response
		p := chatParams("auto")
		p.MaxTokens = openai.Int(4)
		if _, err := c.Chat.Completions.New(context.Background(), p, option.WithHeader("x-priority", prio), option.WithResponseInto(&resp)); err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Get("x-switchyard-model"); got != want {
			t.Errorf("auto at %s went to %q, want %s", prio, got, want)
		}
	}
	// The limited key meets its 5 requests a minute at once.
	lim := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("sk-demo-limited"), option.WithMaxRetries(0))
	var codes []int
	for range 6 {
		p := chatParams("sim-small")
		p.MaxTokens = openai.Int(4)
		_, err := lim.Chat.Completions.New(context.Background(), p)
		var apiErr *openai.Error
		switch {
		case err == nil:
			codes = append(codes, 200)
		case errors.As(err, &apiErr):
			codes = append(codes, apiErr.StatusCode)
		default:
			t.Fatal(err)
		}
	}
	if fmt.Sprint(codes) != "[200 200 200 200 200 429]" {
		t.Errorf("limited key: %v", codes)
	}
	// The KServe v2 tensor model answers over gRPC on the same address.
	kc := grpcClient(t, strings.TrimPrefix(base, "http://"))
	authed := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer sk-demo")
	resp, err := kc.ModelInfer(authed, addRequest("sim-tensor"))
	if err != nil || resp.Outputs[0].Contents.IntContents[0] != 11 {
		t.Errorf("sim-tensor over gRPC: %v, %v", resp, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("demo returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("demo did not stop on cancel")
	}
}

// TestDemoPrintConfig checks --print-config prints a valid, complete router configuration of
// the demo fleet: two pools of two endpoints each.
func TestDemoPrintConfig(t *testing.T) {
	var out strings.Builder
	if err := app.Main(context.Background(), []string{"demo", "--print-config"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(out.String()))
	if err != nil {
		t.Fatalf("printed config is invalid: %v\n%s", err, out.String())
	}
	if len(cfg.Auth.APIKeys) != 2 || len(cfg.Limits.Rules) != 2 || *cfg.Auth.Anonymous {
		t.Errorf("demo auth: %d keys, %d limits, anonymous %v", len(cfg.Auth.APIKeys), len(cfg.Limits.Rules), *cfg.Auth.Anonymous)
	}
	if len(cfg.Pools) != 3 || len(cfg.Pools[0].Endpoints) != 2 || len(cfg.Pools[1].Endpoints) != 2 || len(cfg.Pools[2].Endpoints) != 2 || len(cfg.Models) != 4 {
		t.Errorf("demo config: %d pools, %d models", len(cfg.Pools), len(cfg.Models))
	}
	if cfg.Listen != "127.0.0.1:8080" || cfg.AdminListen != "127.0.0.1:9090" {
		t.Errorf("listen %s admin %s", cfg.Listen, cfg.AdminListen)
	}
}
