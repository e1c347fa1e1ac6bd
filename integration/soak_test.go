package integration_test

import (
	"context"
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"google.golang.org/grpc/status"

	"github.com/switchyard-ai/switchyard/gen/inference"
	"github.com/switchyard-ai/switchyard/internal/faultproxy"
)

// soakDuration is how long TestSoak runs: a few seconds by default, as CI runs it, or the
// duration in SWITCHYARD_SOAK (for example SWITCHYARD_SOAK=5m).
func soakDuration(t *testing.T) time.Duration {
	if v := os.Getenv("SWITCHYARD_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SWITCHYARD_SOAK: %v", err)
		}
		return d
	}
	return 3 * time.Second
}

// TestSoak drives sustained mixed load, OpenAI streams and KServe gRPC calls, at a router
// whose upstreams reset, cut streams and lag in turn. Every request must end within its
// deadline, in success or in a clean protocol error (none lost, none hung); at least half must
// succeed;
// the heap must stay flat; and nothing may leak once it stops.
func TestSoak(t *testing.T) {
	dur := soakDuration(t)
	a, b := fastSim(t), fastSim(t)
	pa, pg := faultProxy(t, a.Host), faultProxy(t, a.Host)
	yaml := `upstream: {first_byte_timeout: 2s, idle_stream_timeout: 1s}
pools:
  - {name: p, metrics: none, endpoints: [http://` + pa.Addr() + `, ` + b.URL + `]}
  - {name: t, protocol: kserve, metrics: none, endpoints: [grpc://` + pg.Addr() + `, grpc://` + b.Host + `]}
models:
  - {name: m, pool: p}
  - {name: tensor, pool: t, target_model: sim-tensor}
`
	bed := newFaultBed(t, yaml, pa, pg)
	defer bed.finish()
	kc := inference.NewGRPCInferenceServiceClient(bed.grpc)

	ctx, stop := context.WithTimeout(context.Background(), dur)
	defer stop()
	var wg sync.WaitGroup
	// The faults take turns on one endpoint of each pool; the other stays healthy.
	wg.Go(func() {
		faults := []faultproxy.Fault{
			{}, {Kind: faultproxy.ResetBeforeFirstByte}, {}, {Kind: faultproxy.Delay, Delay: 5 * time.Millisecond},
			{}, {Kind: faultproxy.ResetMidStream, After: 1500},
		}
		for i := 0; ; i++ {
			pa.Set(faults[i%len(faults)])
			pg.Set(faults[(i+2)%len(faults)])
			select {
			case <-ctx.Done():
				pa.Set(faultproxy.Fault{})
				pg.Set(faultproxy.Fault{})
				return
			case <-time.After(150 * time.Millisecond):
			}
		}
	})

	var ok, clean, lost, hung atomic.Int64
	const perRequest = 10 * time.Second
	outcome := func(start time.Time, err error, cleanErr func(error) bool) {
		switch {
		case time.Since(start) > perRequest:
			hung.Add(1)
		case err == nil:
			ok.Add(1)
		case cleanErr(err):
			clean.Add(1)
		default:
			lost.Add(1)
			t.Errorf("request lost: %v (%T)", err, err)
		}
	}
	openAIClean := func(err error) bool {
		var apiErr *openai.Error            // a status with an error body
		var eventErr *ssestream.StreamError // an error event that ended a stream
		return errors.As(err, &apiErr) || errors.As(err, &eventErr)
	}
	grpcClean := func(err error) bool { _, isStatus := status.FromError(err); return isStatus }

	var heapMu sync.Mutex
	var heaps []uint64
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(max(dur/8, 250*time.Millisecond)):
			}
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			heapMu.Lock()
			heaps = append(heaps, ms.HeapAlloc)
			heapMu.Unlock()
		}
	})
	for range 6 {
		wg.Go(func() {
			for ctx.Err() == nil {
				start := time.Now()
				_, text, err := bed.stream("m")
				if err == nil && text == "" {
					err = errors.New("a stream ended without content or error")
				}
				outcome(start, err, openAIClean)
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				start := time.Now()
				cctx, cancel := context.WithTimeout(context.Background(), perRequest)
				resp, err := kc.ModelInfer(cctx, addRequest("tensor"))
				cancel()
				if err == nil && len(resp.GetOutputs()) != 2 {
					err = errors.New("a response without its outputs")
				}
				outcome(start, err, grpcClean)
			}
		})
	}
	wg.Wait()

	total := ok.Load() + clean.Load() + lost.Load() + hung.Load()
	t.Logf("%v: %d requests, %d ok, %d clean errors, %d lost, %d hung; %d resets; heap samples %v",
		dur, total, ok.Load(), clean.Load(), lost.Load(), hung.Load(), pa.Resets()+pg.Resets(), heaps)
	if lost.Load() > 0 || hung.Load() > 0 {
		t.Errorf("%d requests lost and %d hung", lost.Load(), hung.Load())
	}
	// Faults hit one endpoint of each pool a third of the time, and cut a stream only after
	// its first bytes (which cannot be retried): on a loaded machine streams last longer and
	// more of them meet a cut. Half succeeding shows retries and ejection at work.
	if total == 0 || ok.Load() < total/2 {
		t.Errorf("only %d of %d requests succeeded", ok.Load(), total)
	}
	if len(heaps) >= 3 {
		first, last := heaps[0], heaps[len(heaps)-1]
		if last > first+16<<20 {
			t.Errorf("heap grew from %d to %d MiB under steady load", first>>20, last>>20)
		}
	}
}
