package bench_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/switchyard-ai/switchyard/cluster/etcd/etcdembed"
	"github.com/switchyard-ai/switchyard/internal/app"
	"github.com/switchyard-ai/switchyard/internal/config"
	"github.com/switchyard-ai/switchyard/policy"
)

// clusterKey is the API key of the routers in the cluster benchmark.
const clusterKey = "sk-cluster-bench"

// startClusterRouter starts a router in front of upstream with auth, a request limit, a
// token limit and session affinity on; etcd empty keeps its state in process.
func startClusterRouter(b *testing.B, upstream, etcd, id string) *app.Server {
	b.Helper()
	yaml := "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nlog: {level: error}\n" +
		"auth:\n  api_keys: [{name: bench, sha256: " + policy.HashKey(clusterKey) + ", tenant: bench}]\n" +
		"limits:\n  rules:\n    - {name: rpm, requests: 1000000000, window: 1m}\n    - {name: tpm, tokens: 1000000000000, window: 1m, by: [tenant, model]}\n"
	cfg, err := config.Decode([]byte(yaml))
	if err != nil {
		b.Fatal(err)
	}
	cfg.AddBackend("m=" + upstream + "," + upstream + "/b") // two endpoints, so sessions choose
	cfg.Pools[0].Metrics = "none"
	if etcd != "" {
		cfg.SetEtcd(etcd)
		cfg.Cluster.ReplicaID = id
	}
	if err := cfg.Finish(nil); err != nil {
		b.Fatal(err)
	}
	s, err := app.Start(context.Background(), cfg, app.WithLogOutput(io.Discard))
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// openLoop sends requests at a fixed total rate for d, round-robin over bases, each with a
// session id drawn from sessions conversations (in order when warming, so every session is
// bound before measuring), and reports latency percentiles.
func openLoop(bases []string, rate float64, d time.Duration, sessions int, warming bool) result {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}}
	defer client.CloseIdleConnections()
	body := `{"model":"m","max_tokens":16,"messages":[{"role":"user","content":"hello"}]}`
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	for i := 0; time.Since(start) < d; i++ {
		<-tick.C
		n := rng.IntN(sessions)
		if warming {
			n = i % sessions
		}
		base, conv := bases[i%len(bases)], "conv-"+strconv.Itoa(n)
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+clusterKey)
			req.Header.Set("x-session-id", conv)
			t0 := time.Now()
			resp, err := client.Do(req)
			ok := err == nil
			if ok {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ok = resp.StatusCode == 200
			}
			el := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if !ok {
				errs++
				return
			}
			lat = append(lat, el)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	if len(lat) == 0 {
		return result{errors: errs}
	}
	return result{rps: float64(len(lat)) / elapsed.Seconds(), p50: lat[len(lat)/2], p99: lat[len(lat)*99/100], errors: errs}
}

// storeWrites reads switchyard_cluster_store_writes_total from each router's /metrics.
func storeWrites(b *testing.B, routers []*app.Server) float64 {
	total := 0.0
	for _, r := range routers {
		resp, err := http.Get("http://" + r.AdminAddr() + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "switchyard_cluster_store_writes_total "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				total += f
			}
		}
		resp.Body.Close()
	}
	return total
}

// BenchmarkClusterOverhead compares, at a fixed 1,000 requests/s with auth, limits and
// session affinity on, a router keeping its state in process against one sharing it through
// etcd, and three replicas sharing it: latency percentiles, their ratio, and the writes/s
// etcd receives once every session is bound (each replica flushes limit usage once per
// 100ms sync interval; sessions cost a write when bound and when refreshed).
func BenchmarkClusterOverhead(b *testing.B) {
	up := httptest.NewServer(zeroLatency())
	defer up.Close()
	dir, err := os.MkdirTemp("", "switchyard-bench-etcd-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ec, err := etcdembed.Start(dir, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer ec.Close()
	local := startClusterRouter(b, up.URL, "", "")
	shared := startClusterRouter(b, up.URL, ec.Endpoints(), "bench-shared")
	var trio []*app.Server
	for i := range 3 {
		trio = append(trio, startClusterRouter(b, up.URL, ec.Endpoints(), fmt.Sprint("bench-trio-", i)))
	}
	defer func() {
		for _, s := range append([]*app.Server{local, shared}, trio...) {
			s.Shutdown(context.Background())
		}
	}()
	const rate, sessions = 1000.0, 500
	dur := 5 * time.Second
	if testing.Short() {
		dur = time.Second
	}
	bases := func(rs ...*app.Server) []string {
		var out []string
		for _, r := range rs {
			out = append(out, "http://"+r.Addr())
		}
		return out
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "state (%.0f req/s, %d sessions)\treq/s\tp50\tp99\terrors\tetcd writes/s\t\n", rate, sessions)
	for b.Loop() {
		for _, rs := range [][]*app.Server{{local}, {shared}, trio} { // warm: sessions bound, conns open
			openLoop(bases(rs...), rate, max(time.Second, dur/5), sessions, true)
		}
		type run struct {
			name   string
			rs     []*app.Server
			r      result
			writes float64
		}
		runs := []*run{{name: "in process (cluster/memory)", rs: []*app.Server{local}},
			{name: "etcd, 1 replica", rs: []*app.Server{shared}}, {name: "etcd, 3 replicas", rs: trio}}
		// Interleave the paths so machine noise falls on all of them alike.
		parts := 4
		for range parts {
			for _, rn := range runs {
				w0 := storeWrites(b, rn.rs)
				r := openLoop(bases(rn.rs...), rate, dur/time.Duration(parts), sessions, false)
				rn.writes += (storeWrites(b, rn.rs) - w0) / (dur / time.Duration(parts)).Seconds() / float64(parts)
				rn.r = mergeResults(rn.r, r, parts)
			}
		}
		for _, rn := range runs {
			fmt.Fprintf(tw, "%s\t%.0f\t%v\t%v\t%d\t%.1f\t\n", rn.name, rn.r.rps, rn.r.p50.Round(time.Microsecond), rn.r.p99.Round(time.Microsecond), rn.r.errors, rn.writes)
			if rn.r.errors > 0 {
				b.Errorf("%s: %d requests failed", rn.name, rn.r.errors)
			}
		}
		base := runs[0].r
		for _, rn := range runs[1:] {
			fmt.Fprintf(tw, "%s / in process\t%.2fx\t%.2fx\t%.2fx\t\t\t\n", rn.name, rn.r.rps/base.rps, float64(rn.r.p50)/float64(base.p50), float64(rn.r.p99)/float64(base.p99))
		}
		b.ReportMetric(float64(runs[1].r.p50)/float64(base.p50), "etcd-p50-ratio")
		b.ReportMetric(float64(runs[1].r.p99)/float64(base.p99), "etcd-p99-ratio")
		b.ReportMetric(runs[2].writes, "etcd-writes/s-3-replicas")
	}
	tw.Flush()
}

// mergeResults folds one of parts equal-length runs into acc: rates add up to their mean,
// percentiles are averaged (an approximation that keeps each part's tail).
func mergeResults(acc, r result, parts int) result {
	acc.rps += r.rps / float64(parts)
	acc.p50 += r.p50 / time.Duration(parts)
	acc.p99 += r.p99 / time.Duration(parts)
	acc.errors += r.errors
	return acc
}
