package bench_test

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/backends/sim"
)

// fleetConfigs describes the simulated GPU fleet of BenchmarkScheduling: two fast servers and
// two slow ones, in that order, which take twice as long as the fast ones to prefill and to
// decode. All serve model m with the same batch size; the KV cache (4096 blocks of 16 tokens)
// holds eight of the largest requests at once, so KV pressure is never the bottleneck and the
// contenders differ only in how they spread load over unequal servers. The fast latencies are
// chosen so a run of a few thousand requests takes minutes, not hours.
func fleetConfigs() []sim.Config {
	fast := sim.Config{
		Model:              "m",
		MaxRunning:         8,
		PrefillPerToken:    20 * time.Microsecond,
		PrefillBase:        2 * time.Millisecond,
		DecodePerToken:     2 * time.Millisecond,
		DecodeBatchPenalty: 0.1,
		KVBlocks:           4096,
		BlockSize:          16,
	}
	slow := fast
	slow.PrefillPerToken *= 2
	slow.PrefillBase *= 2
	slow.DecodePerToken *= 2
	cfgs := []sim.Config{fast, fast, slow, slow}
	for i := range cfgs {
		cfgs[i].Seed = int64(i + 1)
	}
	return cfgs
}

// fleetFast is how many of fleetConfigs' servers, counted from the first, are fast.
const fleetFast = 2

// startFleet serves each of fleetConfigs on its own loopback port with a real http.Server and
// returns their root URLs, in fleetConfigs' order, and a func that stops them all. Every call
// starts fresh servers: empty queues, empty KV caches.
func startFleet(b *testing.B) (urls []string, stop func()) {
	b.Helper()
	var servers []*sim.Server
	var https []*http.Server
	var wg sync.WaitGroup
	stop = func() {
		for _, s := range servers {
			s.Close() // ends queued and running requests, so Close below does not cut them mid-write
		}
		for _, h := range https {
			h.Close()
		}
		wg.Wait()
	}
	for _, cfg := range fleetConfigs() {
		s, err := sim.New(cfg)
		if err != nil {
			stop()
			b.Fatal(err)
		}
		servers = append(servers, s)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			stop()
			b.Fatal(err)
		}
		h := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
		https = append(https, h)
		wg.Go(func() {
			if err := h.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				b.Error(err)
			}
		})
		urls = append(urls, "http://"+ln.Addr().String())
	}
	return urls, stop
}

// fleetCapacity estimates the requests/s the fleet completes when every server runs a full
// batch, for requests of meanPrompt prompt tokens (uncached) and meanOutput output tokens.
//
// The simulator runs steps that take, with B sequences running,
//
//	PrefillBase + PrefillPerToken × prompt   for each sequence admitted in the step, plus
//	DecodePerToken × (1 + DecodeBatchPenalty × (B − 1))   for the decode of all B at once.
//
// Prefill stalls the whole batch, so each request costs the server its own prefill time; a
// decode step advances B requests by one token, so each request costs 1/B of every step it
// decodes in. At a full batch (B = MaxRunning) one request thus occupies the server for
//
//	s = PrefillBase + PrefillPerToken × E[P] + E[O] × DecodePerToken × (1 + penalty × (B − 1)) / B
//
// and the server completes 1/s requests per second; the fleet completes Σ 1/s. Counting E[O]
// decode steps rather than E[O] − 1 (prefill yields the first token) overstates s by well under
// 1%, so the estimate errs slightly low. It also ignores that a server rarely holds a full
// batch at all times, which makes real capacity a little lower; the benchmark prints the
// measured rates beside it.
func fleetCapacity(cfgs []sim.Config, meanPrompt, meanOutput float64) float64 {
	total := 0.0
	for _, c := range cfgs {
		batch := float64(c.MaxRunning)
		prefill := c.PrefillBase.Seconds() + c.PrefillPerToken.Seconds()*meanPrompt
		decode := meanOutput * c.DecodePerToken.Seconds() * (1 + c.DecodeBatchPenalty*(batch-1)) / batch
		total += 1 / (prefill + decode)
	}
	return total
}

// fleetFinished scrapes every server's /metrics and returns how many requests each has
// finished (vllm:request_success_total, summed over finish reasons), in urls' order.
func fleetFinished(client *http.Client, urls []string) ([]float64, error) {
	counts := make([]float64, len(urls))
	for i, u := range urls {
		resp, err := client.Get(u + "/metrics")
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "vllm:request_success_total") {
				continue
			}
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err == nil {
				counts[i] += v
			}
		}
		err = sc.Err()
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	return counts, nil
}
