package integration_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/switchyard-ai/switchyard/backends/sim"
	"github.com/switchyard-ai/switchyard/cluster/etcd/etcdembed"
	adminv1 "github.com/switchyard-ai/switchyard/gen/switchyard/admin/v1"
	"github.com/switchyard-ai/switchyard/internal/app"
	"github.com/switchyard-ai/switchyard/internal/config"
	"github.com/switchyard-ai/switchyard/policy"
)

// overshoot is the over-admission bound of docs/cluster.md, λ·S: the admission rate times the
// staleness S of the replicas' views of each other's usage (sync interval, flush, commit,
// watch), as the replicas measured it during the run, and at least 200ms. Without sharing,
// three replicas would admit three times the limit.
func overshoot(t *testing.T, reps []*app.Server, rate float64) int64 {
	t.Helper()
	s := 200 * time.Millisecond
	for _, r := range reps {
		_, body := httpGet(t, "http://"+r.AdminAddr()+"/cluster")
		var st struct {
			Staleness time.Duration `json:"staleness_ns"`
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("/cluster: %v: %s", err, body)
		}
		s = max(s, st.Staleness)
	}
	t.Logf("staleness of usage across replicas: %v", s)
	return int64(rate*s.Seconds()) + 1
}

func startEtcdCluster(t *testing.T, members int) *etcdembed.Cluster {
	t.Helper()
	ec, err := etcdembed.Start(t.TempDir(), members)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ec.Close)
	return ec
}

// startReplicas starts n routers from the same YAML sharing state through ec.
func startReplicas(t *testing.T, ec *etcdembed.Cluster, n int, yamlText string) []*app.Server {
	t.Helper()
	var out []*app.Server
	for i := range n {
		cfg, err := config.Decode([]byte(yamlText))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
		cfg.SetEtcd(ec.Endpoints())
		cfg.Cluster.ReplicaID = fmt.Sprintf("replica-%d", i)
		cfg.Cluster.MemberTTL = config.Duration(3 * time.Second)
		// Under the race detector on a loaded machine an etcd round trip can pass the default
		// 250ms bind timeout, and a first turn would then bind locally; wait longer here.
		cfg.Cluster.BindTimeout = config.Duration(2 * time.Second)
		if err := cfg.Finish([]byte(yamlText)); err != nil {
			t.Fatal(err)
		}
		s, err := app.Start(context.Background(), cfg, app.WithLogOutput(testLogs()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s.Shutdown(ctx)
		})
		out = append(out, s)
	}
	return out
}

func clusterFleet(t *testing.T, n int) []*simServer {
	var sims []*simServer
	for range n {
		sims = append(sims, startSim(t, sim.Config{Model: "m", MaxRunning: 64, DecodePerToken: 100 * time.Microsecond, PrefillBase: 100 * time.Microsecond}))
	}
	return sims
}

// chatTurn sends one turn of conversation conv to base and returns the endpoint that served it.
func chatTurn(ctx context.Context, base, key, conv string) (string, int, error) {
	return chatTurnModel(ctx, base, key, conv, "m")
}

// chatTurnModel is chatTurn for a named model; an empty conv sends no session header.
func chatTurnModel(ctx context.Context, base, key, conv, model string) (string, int, error) {
	opts := []option.RequestOption{option.WithBaseURL(base + "/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0)}
	if conv != "" {
		opts = append(opts, option.WithHeader("x-session-id", conv))
	}
	c := openai.NewClient(opts...)
	var resp *http.Response
	_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: model, MaxTokens: openai.Int(4),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("continue " + conv)}}, option.WithResponseInto(&resp))
	var apiErr *openai.Error
	switch {
	case errors.As(err, &apiErr):
		return "", apiErr.StatusCode, err
	case err != nil:
		return "", 0, err
	}
	return resp.Header.Get("x-switchyard-endpoint"), resp.StatusCode, nil
}

// TestClusterSessionsStickAcrossReplicas spreads each conversation's turns round-robin over
// three replicas; half the conversations start with the same first turn sent to all three
// at once. Every turn of a conversation must be served by one endpoint. Six conversations run
// at a time, few enough that no endpoint looks saturated (a saturated endpoint rightly gives
// its sessions up, which router/virtual_test.go covers).
func TestClusterSessionsStickAcrossReplicas(t *testing.T) {
	ec := startEtcdCluster(t, 1)
	sims := clusterFleet(t, 4)
	// A wide session margin: on a loaded test machine the simulators slow down and the
	// in-flight counts that signal saturation rise; this test is about agreement between
	// replicas, not saturation.
	reps := startReplicas(t, ec, 3, "routing: {session_margin: 20}\n"+simPoolYAML("", sims...))
	const convs, turns = 24, 6
	served := make([]map[string]int, convs)
	var mu sync.Mutex
	var wg sync.WaitGroup
	slots := make(chan struct{}, 6)
	for c := range convs {
		served[c] = map[string]int{}
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			conv := fmt.Sprintf("conv-%d", c)
			record := func(ep string, code int, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil || ep == "" {
					t.Errorf("%s: %d %v", conv, code, err)
					return
				}
				served[c][ep]++
			}
			if c%2 == 0 { // concurrent first turns on every replica
				var first sync.WaitGroup
				for _, r := range reps {
					first.Go(func() { record(chatTurn(context.Background(), "http://"+r.Addr(), "k", conv)) })
				}
				first.Wait()
			}
			for k := range turns {
				r := reps[(c+k)%len(reps)]
				record(chatTurn(context.Background(), "http://"+r.Addr(), "k", conv))
			}
		})
	}
	wg.Wait()
	endpoints := map[string]bool{}
	for c, m := range served {
		if len(m) != 1 {
			t.Errorf("conv-%d served by %d endpoints: %v", c, len(m), m)
		}
		for ep := range m {
			endpoints[ep] = true
		}
	}
	if len(endpoints) < 2 {
		t.Errorf("all conversations on %d endpoint(s): the picker did not spread them", len(endpoints))
	}

	// The endpoint holding the most conversations dies. Their next turns, still spread over
	// the replicas, all move to one new endpoint each: the binding moves once, for everyone.
	count := map[string][]int{}
	for c, m := range served {
		for ep := range m {
			count[ep] = append(count[ep], c)
		}
	}
	dead := ""
	for ep, cs := range count {
		if len(cs) > len(count[dead]) {
			dead = ep
		}
	}
	for _, sm := range sims {
		if sm.Host == dead {
			sm.kill()
		}
	}
	for _, c := range count[dead] {
		conv := fmt.Sprintf("conv-%d", c)
		after := map[string]int{}
		for k := range turns {
			ep, code, err := chatTurn(context.Background(), "http://"+reps[k%len(reps)].Addr(), "k", conv)
			if err != nil {
				t.Fatalf("%s after %s died: %d %v", conv, dead, code, err)
			}
			after[ep]++
		}
		if len(after) != 1 || after[dead] > 0 {
			t.Errorf("%s after its endpoint died was served by %v, want one new endpoint", conv, after)
		}
	}
	if t.Failed() {
		for _, r := range reps {
			_, m := httpGet(t, "http://"+r.AdminAddr()+"/metrics")
			for _, line := range strings.Split(m, "\n") {
				if strings.HasPrefix(line, "switchyard_session_picks_total") {
					t.Log(r.Addr(), line)
				}
			}
		}
	}
}

// limitsYAML is a fleet behind keys sk-a (tenant a, limited by rule) and sk-free (tenant
// free, no limit).
func limitsYAML(rule string, sims ...*simServer) string {
	return simPoolYAML("", sims...) + `auth:
  api_keys:
    - {name: a, sha256: ` + policy.HashKey("sk-a") + `, tenant: a}
    - {name: free, sha256: ` + policy.HashKey("sk-free") + `, tenant: free}
limits:
  rules:
    - ` + rule + "\n"
}

func testLogs() io.Writer {
	if os.Getenv("SWITCHYARD_TEST_LOGS") != "" {
		return os.Stderr
	}
	return io.Discard
}

// awaitWindow waits until at least need remains of the current window of length w, so a
// test's counts do not straddle two windows.
func awaitWindow(t *testing.T, w, need time.Duration) time.Time {
	t.Helper()
	now := time.Now()
	if left := time.Until(now.Truncate(w).Add(w)); left < need {
		t.Logf("waiting %v for a fresh window", left)
		time.Sleep(left + 10*time.Millisecond)
	}
	return time.Now().Truncate(w)
}

// offerLoad sends requests at rate per second in total, round-robin over the replicas, for
// d; each request runs send and counts as admitted when it answers 200. Any answer but 200
// or 429 is an error.
func offerLoad(t *testing.T, reps []*app.Server, rate float64, d time.Duration, send func(base string) (int, error)) (admitted, refused int64) {
	t.Helper()
	var ok, no atomic.Int64
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	end := time.Now().Add(d)
	for i := 0; time.Now().Before(end); i++ {
		<-tick.C
		base := "http://" + reps[i%len(reps)].Addr()
		wg.Go(func() {
			code, err := send(base)
			switch code {
			case 200:
				ok.Add(1)
			case 429:
				no.Add(1)
			default:
				t.Errorf("answer %d: %v", code, err)
			}
		})
	}
	wg.Wait()
	return ok.Load(), no.Load()
}

// TestClusterRequestLimitHoldsAcrossReplicas offers three times a per-minute request limit,
// spread over three replicas: the admitted count stays within the limit plus the documented
// bound and strands no more than 5% of it.
func TestClusterRequestLimitHoldsAcrossReplicas(t *testing.T) {
	ec := startEtcdCluster(t, 1)
	sims := clusterFleet(t, 2)
	const limit, rate = 60, 90.0
	reps := startReplicas(t, ec, 3, limitsYAML(fmt.Sprintf("{name: rpm, requests: %d, window: 1m, match: {tenant: a}}", limit), sims...))
	window := awaitWindow(t, time.Minute, 5*time.Second)
	admitted, refused := offerLoad(t, reps, rate, 2*time.Second, func(base string) (int, error) {
		_, code, err := chatTurn(context.Background(), base, "sk-a", "")
		return code, err
	})
	if time.Now().Truncate(time.Minute) != window {
		t.Skip("the run crossed a window boundary")
	}
	bound := overshoot(t, reps, rate)
	t.Logf("limit %d, offered %d: admitted %d, refused %d (bound %d)", limit, admitted+refused, admitted, refused, limit+bound)
	if admitted > limit+bound {
		t.Errorf("admitted %d > %d + bound %d", admitted, limit, bound)
	}
	if admitted < limit*95/100 {
		t.Errorf("admitted %d < 95%% of %d: quota stranded", admitted, limit)
	}
}

// TestClusterTokenLimitHoldsWithStreams does the same for a token limit with streaming
// responses: each admitted stream is charged its real usage at the end.
func TestClusterTokenLimitHoldsWithStreams(t *testing.T) {
	ec := startEtcdCluster(t, 1)
	sims := clusterFleet(t, 2)
	const limit, rate, maxTokens = 3000, 60.0, 40
	reps := startReplicas(t, ec, 3, limitsYAML(fmt.Sprintf("{name: tpm, tokens: %d, window: 1m, match: {tenant: a}}", limit), sims...))
	window := awaitWindow(t, time.Minute, 6*time.Second)
	var used atomic.Int64
	admitted, refused := offerLoad(t, reps, rate, 3*time.Second, func(base string) (int, error) {
		c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("sk-a"), option.WithMaxRetries(0))
		p := openai.ChatCompletionNewParams{Model: "m", MaxTokens: openai.Int(maxTokens),
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("stream a few tokens please")}}
		p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		s := c.Chat.Completions.NewStreaming(context.Background(), p)
		var total int64
		for s.Next() {
			if u := s.Current().Usage; u.TotalTokens > 0 {
				total = u.TotalTokens
			}
		}
		var apiErr *openai.Error
		if err := s.Err(); errors.As(err, &apiErr) {
			return apiErr.StatusCode, err
		} else if err != nil {
			return 0, err
		}
		if total == 0 {
			return 0, errors.New("stream without usage")
		}
		used.Add(total)
		return 200, nil
	})
	if time.Now().Truncate(time.Minute) != window {
		t.Skip("the run crossed a window boundary")
	}
	// Tokens admitted in one sync-and-watch time at the offered rate, each request reserving
	// at most its prompt estimate plus max_tokens (~50).
	bound := overshoot(t, reps, rate) * 50
	t.Logf("token limit %d: %d streams admitted using %d tokens, %d refused (bound %d)", limit, admitted, used.Load(), refused, limit+bound)
	if used.Load() > limit+bound {
		t.Errorf("used %d tokens > %d + bound %d", used.Load(), limit, bound)
	}
	if used.Load() < limit*95/100 {
		t.Errorf("used %d < 95%% of %d: quota stranded", used.Load(), limit)
	}
	if refused == 0 {
		t.Error("nothing refused at three times the limit")
	}
}

// readyz returns a replica's /readyz body.
func readyz(t *testing.T, s *app.Server) string {
	_, body := httpGet(t, "http://"+s.AdminAddr()+"/readyz")
	return body
}

// TestClusterSurvivesEtcdFaults runs steady traffic over three replicas and a three-member
// etcd cluster: the leader is killed, then a majority is stopped for 30 seconds, then it
// returns. No client sees an error, the request limit holds throughout, and the replicas
// reconcile without a restart. Finally a router replica is shut down: the sessions it bound
// keep their endpoints on the others.
func TestClusterSurvivesEtcdFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about a minute")
	}
	ec := startEtcdCluster(t, 3)
	sims := clusterFleet(t, 3)
	const limit, rate = 600, 30.0
	reps := startReplicas(t, ec, 3, limitsYAML(fmt.Sprintf("{name: rph, requests: %d, window: 1h, match: {tenant: a}}", limit), sims...))
	window := awaitWindow(t, time.Hour, 2*time.Minute)
	send := func(base string) (int, error) {
		_, code, err := chatTurn(context.Background(), base, "sk-a", "")
		return code, err
	}
	// Sessions bound through replica 0 before any fault.
	bound := map[string]string{}
	for c := range 12 {
		conv := fmt.Sprintf("survivor-%d", c)
		ep, code, err := chatTurn(context.Background(), "http://"+reps[0].Addr(), "sk-free", conv)
		if err != nil {
			t.Fatalf("%s: %d %v", conv, code, err)
		}
		bound[conv] = ep
	}
	total := int64(0)

	// Phase 1: kill the leader two seconds into five.
	go func() {
		time.Sleep(2 * time.Second)
		if l := ec.Leader(); l >= 0 {
			ec.Stop(l)
			t.Logf("killed etcd leader m%d", l)
		}
	}()
	a, _ := offerLoad(t, reps, rate, 5*time.Second, send)
	total += a
	phase1 := time.Now()
	overBound := overshoot(t, reps, rate) // λ·S, S stretched by the leader election
	if total > limit {
		t.Errorf("%d admitted before the limit of %d could be reached", total, limit)
	}
	for i := range ec.Size() {
		if err := ec.Restart(i); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range reps {
		eventually(t, "replica shared after the leader came back", func() bool { return strings.Contains(readyz(t, r), "cluster: shared") })
		// Everything admitted in phase 1 is flushed once a sync after it succeeded.
		eventually(t, "replica synced after phase 1", func() bool { return lastSync(t, r).After(phase1.Add(200 * time.Millisecond)) })
	}

	// Phase 2: a majority away for 30 s, at a rate that crosses the limit meanwhile.
	ec.Stop(0)
	ec.Stop(1)
	for _, r := range reps {
		eventuallyWithin(t, 10*time.Second, "replica degraded", func() bool { return strings.Contains(readyz(t, r), "cluster: degraded") })
	}
	if _, m := httpGet(t, "http://"+reps[1].AdminAddr()+"/metrics"); !strings.Contains(m, `switchyard_cluster_mode{mode="degraded"} 1`) {
		t.Error("metrics do not show the degraded mode")
	}
	// 162 admitted so far leaves 438, a share of 146 per replica; 24/s for 30 s offers 240 to each.
	a, refused := offerLoad(t, reps, 24, 30*time.Second, send)
	total += a
	t.Logf("majority away 30s: admitted %d, refused %d, total %d of %d", a, refused, total, limit)
	// Every replica knew the whole usage when etcd went away: the shares add up to what was
	// left, so the limit holds exactly.
	if total > limit {
		t.Errorf("total admitted %d exceeds the limit %d while etcd was away", total, limit)
	}
	if refused == 0 {
		t.Error("nothing refused while degraded: shares were not enforced")
	}

	// Phase 3: the majority returns; every replica reconciles without a restart, and, the
	// limit being reached, refuses.
	r0, r1 := ec.RestartAsync(0), ec.RestartAsync(1)
	if err := errors.Join(<-r0, <-r1); err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		eventuallyWithin(t, 15*time.Second, "replica shared again", func() bool { return strings.Contains(readyz(t, r), "cluster: shared") })
	}
	a, _ = offerLoad(t, reps, rate, 2*time.Second, send)
	total += a
	if total > limit+overBound {
		t.Errorf("total admitted %d exceeds the limit %d + %d after reconciliation", total, limit, overBound)
	}
	if time.Now().Truncate(time.Hour) != window {
		t.Skip("the run crossed a window boundary")
	}

	// Phase 4: replica 0 goes; the sessions it bound keep their endpoints on the others.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	reps[0].Shutdown(ctx)
	cancel()
	for conv, ep := range bound {
		for _, r := range reps[1:] {
			got, code, err := chatTurn(context.Background(), "http://"+r.Addr(), "sk-free", conv)
			if err != nil {
				t.Fatalf("%s after replica 0 left: %d %v", conv, code, err)
			}
			if got != ep {
				t.Errorf("%s moved from %s to %s after replica 0 left", conv, ep, got)
			}
		}
	}
}

// lastSync returns when a replica last exchanged with etcd successfully.
func lastSync(t *testing.T, s *app.Server) time.Time {
	_, body := httpGet(t, "http://"+s.AdminAddr()+"/cluster")
	var st struct {
		LastSync time.Time `json:"last_sync"`
	}
	json.Unmarshal([]byte(body), &st)
	return st.LastSync
}

// eventuallyWithin is eventually with its own timeout.
func eventuallyWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDemoReplicas runs `switchyard demo --replicas 3`: three routers on one embedded etcd.
// A conversation's turns sent to each replica in turn stay on one endpoint, and the limited
// key's five requests a minute hold across the three.
func TestDemoReplicas(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- app.Main(ctx, []string{"demo", "--replicas", "3", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--fleet-port", "0"}, pw, io.Discard)
		pw.Close()
	}()
	var bases []string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "Router:") || strings.HasPrefix(line, "Replica ") {
			f := strings.Fields(line)
			bases = append(bases, f[len(f)-3])
		}
		if strings.HasPrefix(line, "Replicas share") {
			break
		}
	}
	if len(bases) != 3 {
		t.Fatalf("demo printed %d router addresses: %v (%v)", len(bases), bases, ctx.Err())
	}
	go io.Copy(io.Discard, pr)
	window := awaitWindow(t, time.Minute, 10*time.Second)
	var first string
	for k := range 6 {
		ep, code, err := chatTurnModel(context.Background(), bases[k%3], "sk-demo", "demo-conv", "sim-small")
		if err != nil {
			t.Fatalf("turn %d: %d %v", k, code, err)
		}
		if first == "" {
			first = ep
		} else if ep != first {
			t.Errorf("turn %d on %s served by %s, turn 0 by %s", k, bases[k%3], ep, first)
		}
	}
	codes := ""
	for k := range 6 {
		time.Sleep(700 * time.Millisecond) // well past a sync interval and its watch: no over-admission expected
		_, code, _ := chatTurnModel(context.Background(), bases[k%3], "sk-demo-limited", "", "sim-small")
		codes += fmt.Sprint(code, " ")
	}
	if time.Now().Truncate(time.Minute) == window && codes != "200 200 200 200 200 429 " {
		t.Errorf("limited key across replicas answered %s, want five 200 then 429", codes)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("demo exit: %v", err)
	}
}

// TestServeEtcdFlag: `switchyard serve --etcd` turns on the shared state without a config
// file's cluster section; two such replicas see each other.
func TestServeEtcdFlag(t *testing.T) {
	ec := startEtcdCluster(t, 1)
	sims := clusterFleet(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var admins []string
	var dones []chan error
	for range 2 {
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		dones = append(dones, done)
		go func() {
			done <- app.Main(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
				"--backend", "m=" + sims[0].URL, "--etcd", ec.Endpoints()}, pw, io.Discard)
			pw.Close()
		}()
		line, err := bufio.NewReader(pr).ReadString('\n')
		if err != nil {
			t.Fatalf("serve printed nothing: %v", err)
		}
		go io.Copy(io.Discard, pr)
		i := strings.Index(line, "(admin http://")
		if i < 0 {
			t.Fatalf("serve printed %q", line)
		}
		admins = append(admins, strings.TrimSuffix(strings.TrimSpace(line[i+len("(admin http://"):]), ")"))
	}
	for _, a := range admins {
		eventually(t, "two members sharing state", func() bool {
			_, body := httpGet(t, "http://"+a+"/readyz")
			return strings.Contains(body, "cluster: shared, 2 members")
		})
	}
	cancel()
	for _, d := range dones {
		if err := <-d; err != nil {
			t.Errorf("serve exit: %v", err)
		}
	}
}

// TestClusterOverMutualTLS runs etcd serving TLS that requires client certificates: a replica
// configured with cluster.etcd.tls (CA, certificate and key files) shares state through it,
// and one without a client certificate, or trusting another CA, fails to start.
func TestClusterOverMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := newTestCA(t, "etcd ca"), newTestCA(t, "another ca")
	serverCert, serverKey := ca.issue(t, "etcd", "", true)
	clientCert, clientKey := ca.issue(t, "router", "router", false)
	file := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile, otherFile := file("ca.pem", ca.pem), file("other.pem", other.pem)
	certFile, keyFile := file("router.pem", clientCert), file("router-key.pem", clientKey)
	ec, err := etcdembed.StartTLS(filepath.Join(dir, "etcd"), 1, etcdembed.ClientTLS{CertFile: file("etcd.pem", serverCert),
		KeyFile: file("etcd-key.pem", serverKey), TrustedCAFile: caFile, ClientCertAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ec.Close)
	sims := clusterFleet(t, 1)
	yamlFor := func(tls string) string {
		return "cluster:\n  etcd:\n    endpoints: [" + ec.Endpoints() + "]\n    dial_timeout: 2s\n    tls: " + tls + "\n" +
			"pools:\n  - name: p\n    endpoints: [" + sims[0].URL + "]\nmodels:\n  - name: m\n    pool: p\n"
	}
	start := func(tls string) (*app.Server, error) {
		cfg, err := config.Decode([]byte(yamlFor(tls)))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
		if err := cfg.Finish([]byte(yamlFor(tls))); err != nil {
			t.Fatal(err)
		}
		return app.Start(context.Background(), cfg, app.WithLogOutput(testLogs()))
	}

	var admins []string
	for range 2 {
		s, err := start("{ca_file: " + caFile + ", cert_file: " + certFile + ", key_file: " + keyFile + "}")
		if err != nil {
			t.Fatalf("with a client certificate: %v", err)
		}
		t.Cleanup(func() { s.Shutdown(context.Background()) })
		admins = append(admins, s.AdminAddr())
	}
	for _, a := range admins {
		eventually(t, "two members sharing state over TLS", func() bool {
			_, body := httpGet(t, "http://"+a+"/readyz")
			return strings.Contains(body, "cluster: shared, 2 members")
		})
	}
	for _, tls := range []string{"{ca_file: " + caFile + "}", "{ca_file: " + otherFile + ", cert_file: " + certFile + ", key_file: " + keyFile + "}"} {
		if s, err := start(tls); err == nil {
			s.Shutdown(context.Background())
			t.Errorf("started with tls %s", tls)
		} else {
			t.Logf("tls %s: %v", tls, err)
		}
	}
}

// TestAdminDrainAcrossReplicas drains an endpoint through one replica's admin API: every
// replica stops sending it requests, and an undrain through another replica brings it back
// on all of them.
func TestAdminDrainAcrossReplicas(t *testing.T) {
	ec := startEtcdCluster(t, 1)
	sims := clusterFleet(t, 2)
	rs := startReplicas(t, ec, 2, simPoolYAML("", sims...)+adminYAML)
	a0, a1 := dialAdmin(t, rs[0]), dialAdmin(t, rs[1])
	target := sims[0].Host
	drainedOn := func(a *adminConn) bool {
		resp, err := a.api.ListPools(authed(t, adminKey), &adminv1.ListPoolsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ep := range resp.GetPools()[0].GetEndpoints() {
			if ep.GetName() == target {
				return ep.GetDrained()
			}
		}
		t.Fatalf("endpoint %s not listed", target)
		return false
	}
	// served counts the requests, of n sent through a, that target answered.
	served := func(a *adminConn, n int) int {
		hits := 0
		for range n {
			if chat(t, a.base, "m", "") == target {
				hits++
			}
		}
		return hits
	}
	if code, body := a0.call(t, "POST", "/admin/v1/pools/p/endpoints/"+target+":drain", adminKey, nil); code != http.StatusOK {
		t.Fatalf("drain: %d %s", code, body)
	}
	eventually(t, "the other replica to see the drain", func() bool { return drainedOn(a1) })
	for i, a := range []*adminConn{a0, a1} {
		if n := served(a, 20); n != 0 {
			t.Errorf("replica %d sent %d of 20 requests to the drained endpoint", i, n)
		}
	}
	if _, err := a1.api.UndrainEndpoint(authed(t, adminKey), &adminv1.UndrainEndpointRequest{Pool: "p", Endpoint: target}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first replica to see the undrain", func() bool { return !drainedOn(a0) })
	if n := served(a0, 40); n == 0 {
		t.Error("the undrained endpoint got none of 40 requests through the replica that drained it")
	}
}
