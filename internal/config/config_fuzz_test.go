package config_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/internal/config"
)

// FuzzParse feeds arbitrary YAML to Parse. It must never panic; errors must be *Errors with
// at least one entry; and a configuration it accepts must normalize to YAML that parses again
// to the same normalized form.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../../examples/switchyard.yaml"); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		"listen: 127.0.0.1:1\n",
		"server: {max_body_bytes: 10, read_header_timeout: 1s}\n",
		"pools:\n  - name: p\n    endpoints: [http://a:1]\nmodels:\n  - {name: m, pool: p}\n",
		"models:\n  - name: auto\n    routes:\n      - when: {max_prompt_tokens: 10}\n        to: [{model: a}]\n      - to: [{model: b, weight: 2}]\n",
		"upstream:\n  connect_timeout: soon\n",
		"pools: [\n",
		"&a [*a]\n",
		"a: &a {b: *a}\n",
		"auth:\n  jwt: {issuer: i, audiences: [a], jwks_url: http://x/jwks}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseWithin(t, data)
		if err != nil {
			var errs *config.Errors
			if !errors.As(err, &errs) || len(errs.List) == 0 {
				t.Fatalf("error %v is a %T without entries, not *config.Errors", err, err)
			}
			return
		}
		out := c.Marshal()
		again, err := parseWithin(t, out)
		if err != nil {
			t.Fatalf("normalized form of %q does not parse: %v\n%s", data, err, out)
		}
		if got := again.Marshal(); string(got) != string(out) {
			t.Fatalf("normalizing is not idempotent:\n%s\n---\n%s", out, got)
		}
	})
}

// parseWithin is Parse that fails the test, naming the input, when it takes longer than 5s:
// a hostile file must not hang startup.
func parseWithin(t *testing.T, data []byte) (*config.Config, error) {
	t.Helper()
	type result struct {
		c   *config.Config
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := config.Parse(data)
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		return r.c, r.err
	case <-time.After(5 * time.Second):
		t.Fatalf("Parse of %q did not return within 5s", data)
		return nil, nil
	}
}
