package integration_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/switchyard-ai/switchyard/backends/sim"
	"github.com/switchyard-ai/switchyard/policy"
	"github.com/switchyard-ai/switchyard/router"
)

// simFleet starts n simulators serving model m.
func simFleet(t *testing.T, n int) []*simServer {
	sims := make([]*simServer, n)
	for i := range sims {
		sims[i] = startSim(t, sim.Config{Model: "m", DecodePerToken: time.Millisecond})
	}
	return sims
}

func responseParams(input string, maxOut int64) responses.ResponseNewParams {
	p := responses.ResponseNewParams{Model: "m", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(input)}}
	if maxOut > 0 {
		p.MaxOutputTokens = openai.Int(maxOut)
	}
	return p
}

// TestResponsesNonStreamingAndStoredByID creates responses through three simulators until two
// different endpoints have created some, then reads each back by id: every read must land on
// the endpoint that created it (any other simulator answers 404 for an id it did not create).
func TestResponsesNonStreamingAndStoredByID(t *testing.T) {
	sims := simFleet(t, 3)
	_, base := startRouter(t, simPoolYAML("", sims...))
	client := newOpenAI(base)
	ctx := context.Background()
	creators := map[string]string{} // response id → endpoint
	distinct := map[string]bool{}
	for i := 0; len(distinct) < 2; i++ {
		if i == 30 {
			t.Fatalf("30 responses all came from %v", distinct)
		}
		var hr *http.Response
		resp, err := client.Responses.New(ctx, responseParams("Tell me about routers, please.", 8), option.WithResponseInto(&hr))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != "completed" || resp.OutputText() == "" || resp.Usage.OutputTokens != 8 || resp.Usage.InputTokens <= 0 {
			t.Fatalf("response = status %q text %q usage %+v", resp.Status, resp.OutputText(), resp.Usage)
		}
		ep := hr.Header.Get("x-switchyard-endpoint")
		creators[resp.ID] = ep
		distinct[ep] = true
	}
	for id, creator := range creators {
		var hr *http.Response
		got, err := client.Responses.Get(ctx, id, responses.ResponseGetParams{}, option.WithResponseInto(&hr))
		if err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		if got.ID != id || got.Status != "completed" || got.OutputText() == "" {
			t.Errorf("get %s = %s %s %q", id, got.ID, got.Status, got.OutputText())
		}
		if ep := hr.Header.Get("x-switchyard-endpoint"); ep != creator {
			t.Errorf("get %s served by %s, created by %s", id, ep, creator)
		}
	}
	// Delete one: it goes to its creator, after which it is gone.
	var id string
	for id = range creators {
		break
	}
	if err := client.Responses.Delete(ctx, id); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err := client.Responses.Get(ctx, id, responses.ResponseGetParams{})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
		t.Errorf("get after delete: %v", err)
	}
	_, err = client.Responses.Get(ctx, "resp_unknown", responses.ResponseGetParams{})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "not_found" {
		t.Errorf("get of an unknown id: %v", err)
	}
}

// TestResponsesStreaming reads the typed event stream with openai-go, then continues the
// conversation with previous_response_id: the simulator that holds the first response is the
// only one that can answer, so the follow-up succeeds only if it was routed there.
func TestResponsesStreaming(t *testing.T) {
	sims := simFleet(t, 3)
	_, base := startRouter(t, simPoolYAML("", sims...))
	client := newOpenAI(base)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var hr *http.Response
	stream := client.Responses.NewStreaming(ctx, responseParams("Stream me a story.", 12), option.WithResponseInto(&hr))
	var types []string
	var deltas strings.Builder
	var final responses.Response
	for stream.Next() {
		ev := stream.Current()
		types = append(types, ev.Type)
		switch ev.Type {
		case "response.output_text.delta":
			deltas.WriteString(ev.Delta)
		case "response.completed":
			final = ev.Response
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"}
	if len(types) != len(want)+12+4 || strings.Join(types[:4], ",") != strings.Join(want, ",") || types[len(types)-1] != "response.completed" {
		t.Fatalf("event types = %v", types)
	}
	if final.Usage.OutputTokens != 12 || final.Usage.InputTokens <= 0 || final.OutputText() != deltas.String() {
		t.Fatalf("final response: usage %+v text %q, deltas %q", final.Usage, final.OutputText(), deltas.String())
	}
	creator := hr.Header.Get("x-switchyard-endpoint")
	for range 4 {
		var hr2 *http.Response
		p := responseParams("And then?", 4)
		p.PreviousResponseID = openai.String(final.ID)
		next, err := client.Responses.New(ctx, p, option.WithResponseInto(&hr2))
		if err != nil {
			t.Fatalf("follow-up: %v", err)
		}
		if ep := hr2.Header.Get("x-switchyard-endpoint"); ep != creator || next.PreviousResponseID != final.ID {
			t.Errorf("follow-up served by %s (creator %s), previous %q", ep, creator, next.PreviousResponseID)
		}
	}
	got, err := client.Responses.Get(ctx, final.ID, responses.ResponseGetParams{}, option.WithResponseInto(&hr))
	if err != nil || got.OutputText() != final.OutputText() || hr.Header.Get("x-switchyard-endpoint") != creator {
		t.Errorf("get of the streamed response: %v", err)
	}
}

// TestResponsesSettleTokens: a Responses stream reserves its prompt estimate plus the default
// output budget (256), and is charged what its final event reports instead (the simulator
// generates 64 tokens when no max_output_tokens is set).
func TestResponsesSettleTokens(t *testing.T) {
	sims := simFleet(t, 1)
	const limit = 2000
	_, base := startRouter(t, simPoolYAML("", sims...)+`auth:
  api_keys:
    - {name: tok, sha256: `+policy.HashKey("sk-tok")+`, tenant: tok}
    - {name: other, sha256: `+policy.HashKey("sk-other")+`, tenant: other}
limits:
  rules:
    - {name: tok-tpm, tokens: `+strconv.Itoa(limit)+`, window: 1m, match: {tenant: tok}}
`)
	c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("sk-tok"), option.WithMaxRetries(0))
	ctx := context.Background()
	stream := c.Responses.NewStreaming(ctx, responseParams("Count the tokens of this stream.", 0))
	var used int64
	for stream.Next() {
		if ev := stream.Current(); ev.Type == "response.completed" {
			used = ev.Response.Usage.InputTokens + ev.Response.Usage.OutputTokens
		}
	}
	if err := stream.Err(); err != nil || used == 0 {
		t.Fatalf("stream: %v, usage %d", err, used)
	}
	var hr *http.Response
	if _, err := c.Responses.New(ctx, responseParams("hi", 10), option.WithResponseInto(&hr)); err != nil {
		t.Fatal(err)
	}
	reserved := int64(router.EstimateTokens([]byte("hi")) + 10)
	want := limit - used - reserved
	if got := hr.Header.Get("x-ratelimit-remaining-tokens"); got != strconv.FormatInt(want, 10) {
		t.Errorf("remaining tokens %s, want %d = %d − %d used by the stream − %d reserved", got, want, limit, used, reserved)
	}
	// Another tenant cannot read the first tenant's responses.
	other := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("sk-other"), option.WithMaxRetries(0))
	mine, err := c.Responses.New(ctx, responseParams("private", 2))
	if err != nil {
		t.Fatal(err)
	}
	_, err = other.Responses.Get(ctx, mine.ID, responses.ResponseGetParams{})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
		t.Errorf("another tenant's get: %v", err)
	}
}
