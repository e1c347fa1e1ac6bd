package sim_test

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/backends/sim"
)

func TestNewValidatesConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     sim.Config
		wantErr string
	}{
		{"zero value uses defaults", sim.Config{}, ""},
		{"negative max running", sim.Config{MaxRunning: -1}, "max-running"},
		{"negative kv blocks", sim.Config{KVBlocks: -4}, "kv-blocks"},
		{"negative decode time", sim.Config{DecodePerToken: -time.Millisecond}, "decode-per-token"},
		{"negative penalty", sim.Config{DecodeBatchPenalty: -0.5}, "decode-batch-penalty"},
		{"error rate above 1", sim.Config{ErrorRate: 1.5}, "error-rate"},
		{"negative drop rate", sim.Config{DropRate: -0.1}, "drop-rate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := sim.New(tc.cfg)
			if err == nil {
				s.Close()
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("New: %v, want error mentioning %q", err, tc.wantErr)
			}
		})
	}
}

func TestBindFlags(t *testing.T) {
	var cfg sim.Config
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	cfg.BindFlags(fs)
	for name, want := range map[string]string{
		"model": "sim-model", "max-running": "8", "max-waiting": "128", "prefill-per-token": "100µs",
		"prefill-base": "2ms", "decode-per-token": "5ms", "decode-batch-penalty": "0.1", "kv-blocks": "4096",
		"block-size": "16", "default-max-tokens": "64", "seed": "1", "error-rate": "0", "spike-rate": "0",
		"spike-latency": "0s", "drop-rate": "0",
	} {
		f := fs.Lookup(name)
		if f == nil || f.DefValue != want || f.Usage == "" {
			t.Errorf("flag --%s = %+v, want default %q and help text", name, f, want)
		}
	}
	if err := fs.Parse([]string{"--model=m", "--max-running=2", "--decode-per-token=1ms", "--drop-rate=0.5"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Model != "m" || cfg.MaxRunning != 2 || cfg.DecodePerToken != time.Millisecond || cfg.DropRate != 0.5 || cfg.KVBlocks != 4096 {
		t.Fatalf("parsed config %+v", cfg)
	}
}
