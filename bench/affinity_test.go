package bench_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/switchyard-ai/switchyard/backends/sim"
)

// affinityFleetConfigs describes BenchmarkAffinity's fleet: four servers, the last two twice as
// slow (mixed GPU generations, as in BenchmarkScheduling), whose KV cache
// (768 blocks of 16 tokens, 12,288 tokens) holds about half of the sixteen shared system
// prompts (about 24,000 tokens together), so a server that sees all of them keeps evicting
// them, while the fleet can keep four on each next to the sequences it runs. Prefill is slow
// enough (60µs a token) that a 1,500-token system prompt served from the cache saves about
// 90ms. Every server
// has the same seed, so a reply depends on the prompt alone and every contender replays the
// same conversations word for word.
func affinityFleetConfigs() []sim.Config {
	c := sim.Config{
		Model:              "m",
		MaxRunning:         8,
		PrefillPerToken:    60 * time.Microsecond,
		PrefillBase:        2 * time.Millisecond,
		DecodePerToken:     3 * time.Millisecond,
		DecodeBatchPenalty: 0.1,
		KVBlocks:           768,
		BlockSize:          16,
		Seed:               1,
	}
	// Two servers twice as slow, as in BenchmarkScheduling: a fleet of mixed GPU generations.
	slow := c
	slow.PrefillPerToken, slow.PrefillBase, slow.DecodePerToken = 2*c.PrefillPerToken, 2*c.PrefillBase, 2*c.DecodePerToken
	slow.Seed = 1
	return []sim.Config{c, c, slow, slow}
}

// The multi-turn workload. Words are four random letters, one token each to the simulator.
const (
	affinitySystems    = 16   // shared system prompts
	affinitySystemLen  = 1500 // words in each
	affinityTurns      = 5    // turns per conversation
	affinityUserLo     = 30   // user message length in words, uniform in [lo, hi]
	affinityUserHi     = 120
	affinityReplyLo    = 32 // max_tokens of each turn, uniform in [lo, hi]; the reply has exactly that many
	affinityReplyHi    = 96
	affinityThinkMean  = 300 * time.Millisecond // exponential pause between a reply and the next turn
	affinityConvs      = 160                    // conversations in a run (48 with -short)
	affinityShortConvs = 48
)

// Tokens the simulator's chat template adds per message: the role, cut into pieces of at most
// four letters, and ":". "user" is one piece (chatTemplateTokens), "system" two, "assistant"
// three.
const systemTemplateTokens, assistantTemplateTokens = 3, 4

// affinityRef is the contender the others are compared with.
const affinityRef = "load+session+prefix"

// affinityContenders are run in this order on each workload, each against a fresh fleet.
// Switchyard's session affinity applies whatever the picker, so round-robin turns it off to
// stay the load- and cache-blind baseline.
var affinityContenders = []contender{
	{"round-robin", switchyardWith("{picker: round-robin, session_affinity: false}")},
	{"least-conn (nginx)", startNginx},
	{"load-only", switchyardWith("{weights: {prefix: 0}, session_affinity: false}")},
	{affinityRef, switchyardWith("")},
}

// pickContenders is cs, or only those of them named (comma-separated) in
// SWITCHYARD_BENCH_CONTENDERS; it skips the benchmark when the list names none of them.
func pickContenders(b *testing.B, cs []contender) []contender {
	only := os.Getenv("SWITCHYARD_BENCH_CONTENDERS")
	if only == "" {
		return cs
	}
	names := strings.Split(only, ",")
	out := slices.DeleteFunc(slices.Clone(cs), func(c contender) bool { return !slices.Contains(names, c.name) })
	if len(out) == 0 {
		b.Skipf("SWITCHYARD_BENCH_CONTENDERS=%q names none of this benchmark's contenders", only)
	}
	return out
}

// chatMessage is one message of a chat request.
type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// chatTurn is one request of a conversation: the user message it appends, its max_tokens and
// the pause after the previous reply before it is sent (zero for the first turn).
type chatTurn struct {
	user      string
	maxTokens int
	think     time.Duration
}

// conversation is a scripted chat: it starts at, relative to the start of the run, with the
// messages of prefix, then runs its turns in order, each carrying every message so far plus
// the replies to the earlier turns. A non-empty session is sent as x-session-id.
type conversation struct {
	at      time.Duration
	session string
	prefix  []chatMessage
	turns   []chatTurn
}

// randomWords returns n random four-letter words separated by spaces.
func randomWords(r *rand.Rand, n int) string {
	b := make([]byte, 0, 5*n)
	for i := range n {
		if i > 0 {
			b = append(b, ' ')
		}
		for range 4 {
			b = append(b, 'a'+byte(r.IntN(26)))
		}
	}
	return string(b)
}

// uniform draws an integer in [lo, hi].
func uniform(r *rand.Rand, lo, hi int) int { return lo + r.IntN(hi-lo+1) }

// exponential draws an exponential duration with the given mean.
func exponential(r *rand.Rand, mean time.Duration) time.Duration {
	return time.Duration(r.ExpFloat64() * float64(mean))
}

// sharedChats scripts n conversations starting at Poisson times, rate/affinityTurns per second so
// that turns arrive at about rate per second once conversations overlap. Each opens with one of
// affinitySystems shared system prompts, drawn uniformly, and runs affinityTurns turns under
// the session conv-<i>. The same seed yields the same script.
func sharedChats(seed uint64, rate float64, n int) []conversation {
	r := rand.New(rand.NewPCG(seed, seed^0xa11c0de))
	systems := make([]string, affinitySystems)
	for i := range systems {
		systems[i] = randomWords(r, affinitySystemLen)
	}
	convs := make([]conversation, n)
	var at time.Duration
	for i := range convs {
		at += exponential(r, time.Duration(float64(time.Second)*affinityTurns/rate))
		c := conversation{at: at, session: fmt.Sprintf("conv-%d", i),
			prefix: []chatMessage{{"system", systems[r.IntN(affinitySystems)]}}}
		for k := range affinityTurns {
			t := chatTurn{user: randomWords(r, uniform(r, affinityUserLo, affinityUserHi)),
				maxTokens: uniform(r, affinityReplyLo, affinityReplyHi)}
			if k > 0 {
				t.think = exponential(r, affinityThinkMean)
			}
			c.turns = append(c.turns, t)
		}
		convs[i] = c
	}
	return convs
}

// freshChats scripts single requests at Poisson times, rate per second for window, that look
// like the turns of sharedChats but share nothing: each is turn k (uniform in 1..affinityTurns)
// of a conversation of its own, with a fresh system prompt of the same length and an earlier
// history of fresh user and assistant messages of the same lengths. No session header.
func freshChats(seed uint64, rate float64, window time.Duration) []conversation {
	r := rand.New(rand.NewPCG(seed, seed^0xf2e54))
	var convs []conversation
	for at := time.Duration(0); ; {
		at += exponential(r, time.Duration(float64(time.Second)/rate))
		if at >= window {
			return convs
		}
		k := 1 + r.IntN(affinityTurns)
		c := conversation{at: at, prefix: []chatMessage{{"system", randomWords(r, affinitySystemLen)}}}
		for range k - 1 {
			c.prefix = append(c.prefix,
				chatMessage{"user", randomWords(r, uniform(r, affinityUserLo, affinityUserHi))},
				chatMessage{"assistant", randomWords(r, uniform(r, affinityReplyLo, affinityReplyHi))})
		}
		c.turns = []chatTurn{{user: randomWords(r, uniform(r, affinityUserLo, affinityUserHi)),
			maxTokens: uniform(r, affinityReplyLo, affinityReplyHi)}}
		convs = append(convs, c)
	}
}

// promptTokens counts msgs as the simulator tokenizes them (every word here is one token).
func promptTokens(msgs []chatMessage) int {
	n := 0
	for _, m := range msgs {
		n += strings.Count(m.Content, " ") + 1
		switch m.Role {
		case "system":
			n += systemTemplateTokens
		case "assistant":
			n += assistantTemplateTokens
		default:
			n += chatTemplateTokens
		}
	}
	return n
}

// chatShape is what the scripts imply for capacity: the mean prompt and reply of a request, and
// the mean prompt tokens a server must compute when every shared prefix is already cached.
type chatShape struct {
	prompt, output, uncachedIdeal float64
}

// affinityShape derives chatShape from the workload's constants. Turn k's prompt holds the
// system message, k user messages and k−1 replies; k is uniform over the turns. With perfect
// affinity turn 1 computes the system prompt's last partial block and its user message, and a
// later turn computes the previous prompt's last partial block (about half a block), the
// previous reply and its user message.
func affinityShape(blockSize int) chatShape {
	user := float64(affinityUserLo+affinityUserHi)/2 + chatTemplateTokens
	reply := float64(affinityReplyLo+affinityReplyHi) / 2
	system := affinitySystemLen + systemTemplateTokens
	meanK := float64(affinityTurns+1) / 2
	first := float64(system%blockSize) + user
	later := float64(blockSize-1)/2 + reply + assistantTemplateTokens + user
	return chatShape{
		prompt:        float64(system) + meanK*user + (meanK-1)*(reply+assistantTemplateTokens),
		output:        reply,
		uncachedIdeal: (first + (affinityTurns-1)*later) / affinityTurns,
	}
}

// headerTransport adds header to every request and, when capture is set, copies every response
// body into it as the client reads it.
type headerTransport struct {
	rt      http.RoundTripper
	header  http.Header
	capture *bytes.Buffer
}

func (t *headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	for k, v := range t.header {
		req.Header[k] = v
	}
	resp, err := t.rt.RoundTrip(req)
	if err == nil && t.capture != nil {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.TeeReader(resp.Body, t.capture), resp.Body}
	}
	return resp, err
}

// withHeader returns a client sharing client's connections that sends header on every request.
func withHeader(client *http.Client, key, value string) *http.Client {
	return &http.Client{Transport: &headerTransport{rt: client.Transport, header: http.Header{http.CanonicalHeaderKey(key): {value}}}}
}

// streamedText concatenates the delta content of a captured chat completion stream.
func streamedText(stream []byte) string {
	var s strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(stream))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data:"))
		var c sseChunk
		if !ok || json.Unmarshal(bytes.TrimSpace(data), &c) != nil {
			continue
		}
		for _, ch := range c.Choices {
			s.WriteString(ch.Delta.Content)
		}
	}
	return s.String()
}

// converse plays one conversation through streamChat and returns the outcomes of the turns it
// sent. Each turn appends its reply, as streamed, to the conversation; a failed turn ends it.
func converse(ctx context.Context, client *http.Client, base string, c conversation) []outcome {
	var stream bytes.Buffer
	tr := &headerTransport{rt: client.Transport, header: http.Header{}, capture: &stream}
	if c.session != "" {
		tr.header.Set("x-session-id", c.session)
	}
	cl := &http.Client{Transport: tr}
	msgs := slices.Clone(c.prefix)
	var outs []outcome
	for k, t := range c.turns {
		if k > 0 {
			select {
			case <-time.After(t.think): // the user reading and typing
			case <-ctx.Done():
				return outs
			}
		}
		msgs = append(msgs, chatMessage{"user", t.user})
		body, err := json.Marshal(map[string]any{
			"model":          "m",
			"messages":       msgs,
			"max_tokens":     t.maxTokens,
			"stream":         true,
			"stream_options": map[string]bool{"include_usage": true},
		})
		if err != nil {
			panic(err) // plain structs always marshal
		}
		stream.Reset()
		o := streamChat(ctx, cl, base, body)
		outs = append(outs, o)
		if !o.ok {
			return outs
		}
		msgs = append(msgs, chatMessage{"assistant", streamedText(stream.Bytes())})
	}
	return outs
}

// chatRun is one contender's run of a conversation script.
type chatRun struct {
	tally
	planned int     // turns in the script; those after a failed turn are never sent
	hitRate float64 // the fleet's prefix-cache hits ÷ queries over the run; NaN if unknown
}

// playChats starts every conversation at its time, whatever is still in flight, and waits up to
// drainCap after the last start for them to finish before cancelling the rest (they count as
// failed). It summarizes the turns sent as offer does.
func playChats(client *http.Client, base string, convs []conversation, window, drainCap time.Duration) tally {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outs := make([][]outcome, len(convs))
	lags := make([]time.Duration, len(convs))
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range convs {
		if d := time.Until(start.Add(c.at)); d > 0 {
			time.Sleep(d) // pacing the arrivals, not waiting for a condition
		}
		lags[i] = time.Since(start) - c.at
		wg.Go(func() { outs[i] = converse(ctx, client, base, c) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	drained := time.NewTimer(drainCap)
	defer drained.Stop()
	select {
	case <-done:
	case <-drained.C:
		cancel()
		<-done
	}
	t := summarize(slices.Concat(outs...), start, window)
	slices.Sort(lags)
	t.lag99 = quantile(lags, 0.99)
	return t
}

// summarize tallies outcomes of requests sent from start over window.
func summarize(outs []outcome, start time.Time, window time.Duration) tally {
	t := tally{sent: len(outs), window: window, fastShare: math.NaN(), fails: map[string]int{}, failDetail: map[string]string{}}
	var ttfts, e2es []time.Duration
	last := start
	for _, o := range outs {
		if o.end.After(last) {
			last = o.end
		}
		if !o.ok {
			t.fails[o.fail]++
			if t.failDetail[o.fail] == "" {
				t.failDetail[o.fail] = o.detail
			}
			continue
		}
		t.ok++
		t.tokens += o.tokens
		ttfts = append(ttfts, o.ttft)
		e2es = append(e2es, o.e2e)
	}
	t.elapsed = max(last.Sub(start), window)
	slices.Sort(ttfts)
	slices.Sort(e2es)
	t.ttft50, t.ttft99 = quantile(ttfts, 0.50), quantile(ttfts, 0.99)
	t.e2e50, t.e2e99 = quantile(e2es, 0.50), quantile(e2es, 0.99)
	return t
}

// startSimFleet serves each of cfgs on its own loopback port, as startFleet does for
// fleetConfigs, and returns their root URLs and a func that stops them all.
func startSimFleet(b *testing.B, cfgs []sim.Config) (urls []string, stop func()) {
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
	for _, cfg := range cfgs {
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

// withSimFleet starts a fresh fleet of cfgs and c in front of it, warms c up and calls run with
// a client, c's base URL and the fleet's URLs; then it stops both. It returns why c could not
// run, or nil.
func withSimFleet(b *testing.B, cfgs []sim.Config, c contender, run func(client *http.Client, base string, urls []string)) error {
	urls, stopFleet := startSimFleet(b, cfgs)
	defer stopFleet()
	base, stop, err := c.start(urls)
	if err != nil {
		return err
	}
	defer stop()
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: time.Minute, DisableCompression: true,
	}}
	defer client.CloseIdleConnections()
	if err := warmUp(client, base); err != nil {
		return err
	}
	run(client, base, urls)
	return nil
}

// fleetSums scrapes every server's /metrics and returns, for each name, its samples summed
// over labels and servers.
func fleetSums(client *http.Client, urls []string, names ...string) ([]float64, error) {
	sums := make([]float64, len(names))
	for _, u := range urls {
		resp, err := client.Get(u + "/metrics")
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			for i, name := range names {
				rest, ok := strings.CutPrefix(line, name)
				if !ok || rest == "" || rest[0] != ' ' && rest[0] != '{' {
					continue
				}
				if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
					sums[i] += v
				}
			}
		}
		err = sc.Err()
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	return sums, nil
}

// runChats plays convs through c on a fresh fleet and measures the fleet's prefix-cache hit
// rate over the run.
func runChats(b *testing.B, cfgs []sim.Config, c contender, convs []conversation, window, drainCap time.Duration) chatRun {
	run := chatRun{hitRate: math.NaN()}
	for _, cv := range convs {
		run.planned += len(cv.turns)
	}
	names := []string{"vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"}
	err := withSimFleet(b, cfgs, c, func(client *http.Client, base string, urls []string) {
		before, err0 := fleetSums(client, urls, names...)
		run.tally = playChats(client, base, convs, window, drainCap)
		after, err1 := fleetSums(client, urls, names...)
		if err := errors.Join(err0, err1); err != nil {
			run.scrapeErr = err
			return
		}
		if q := after[1] - before[1]; q > 0 {
			run.hitRate = (after[0] - before[0]) / q
		}
	})
	if err != nil {
		run.tally = tally{unavailable: err}
	}
	return run
}

// BenchmarkAffinity replays multi-turn chats that share long system prompts through each
// contender, a fresh fleet each, and prints throughput, client-measured latencies and the
// fleet's prefix-cache hit rate side by side, relative to Switchyard's default scheduling
// (load, session affinity and prefix-cache affinity). A second workload of the same shape and
// rate that shares nothing shows what affinity costs when there is nothing to gain.
// Conversations start over about 40s (12s with -short).
func BenchmarkAffinity(b *testing.B) {
	n, drainCap := affinityConvs, 2*time.Minute
	if testing.Short() {
		n, drainCap = affinityShortConvs, time.Minute
	}
	cfgs := affinityFleetConfigs()
	c0 := cfgs[0]
	shape := affinityShape(c0.BlockSize)

	// Capacity without prefix caching, at the batch the KV cache allows for a mean request.
	perSeq := int(math.Ceil((shape.prompt + shape.output + 1) / float64(c0.BlockSize)))
	batch := min(c0.MaxRunning, c0.KVBlocks/perSeq)
	limited := slices.Clone(cfgs)
	for i := range limited {
		limited[i].MaxRunning = batch
	}
	capacity := fleetCapacity(limited, shape.prompt, shape.output)
	ideal := fleetCapacity(cfgs, shape.uncachedIdeal, shape.output)
	rate := loadFactor * capacity
	window := time.Duration(float64(n*affinityTurns) / rate * float64(time.Second))
	workloads := []struct {
		name, slug string
		convs      []conversation
	}{
		{"shared prefixes", "shared", sharedChats(7, rate, n)},
		{"no shared prefixes", "fresh", freshChats(8, rate, window)},
	}

	fmt.Printf("fleet: %d simulated servers (the last two twice as slow), model m, batch %d, KV cache %d blocks × %d tokens; fast prefill %v + %v/token, decode %v/token (+%.0f%% per extra sequence)\n",
		len(cfgs), c0.MaxRunning, c0.KVBlocks, c0.BlockSize, c0.PrefillBase, c0.PrefillPerToken, c0.DecodePerToken, 100*c0.DecodeBatchPenalty)
	fmt.Printf("shared workload: %d conversations × %d turns; %d system prompts of %d tokens (%d in all, vs %d per server's cache); user messages %d–%d tokens; replies %d–%d tokens; think time exp(mean %v); x-session-id conv-<n>\n",
		n, affinityTurns, affinitySystems, affinitySystemLen+systemTemplateTokens, affinitySystems*(affinitySystemLen+systemTemplateTokens),
		c0.KVBlocks*c0.BlockSize, affinityUserLo, affinityUserHi, affinityReplyLo, affinityReplyHi, affinityThinkMean)
	fmt.Printf("derivation: mean prompt %.0f tokens, mean reply %.0f. Least-conn spreads every system prompt over every server, whose cache cannot hold all %d, so its rate is set as if nothing were cached: a mean request needs %d KV blocks, %d fit at once (batch %d), capacity %.1f req/s (fleetCapacity); offered %.1f req/s = %.2f × that. With every shared prefix cached a request computes ≈%.0f prompt tokens and capacity would be %.1f req/s.\n",
		shape.prompt, shape.output, affinitySystems, perSeq, c0.KVBlocks/perSeq, batch, capacity, rate, loadFactor, shape.uncachedIdeal, ideal)
	fmt.Printf("conversations start Poisson at %.2f/s (offered/%d turns) over %v; the fresh workload sends %d single requests Poisson at %.1f/s over the same window, each shaped like a turn of a random conversation, with nothing shared\n",
		rate/affinityTurns, affinityTurns, window.Round(100*time.Millisecond), len(workloads[1].convs), rate)

	contenders := pickContenders(b, affinityContenders)
	results := make([][]chatRun, len(workloads))
	for i := range results {
		results[i] = make([]chatRun, len(contenders))
	}
	for b.Loop() {
		for w, wl := range workloads {
			for i, c := range contenders {
				results[w][i] = runChats(b, cfgs, c, wl.convs, window, drainCap)
			}
		}
	}

	for w, wl := range workloads {
		var sum, count int
		for _, cv := range wl.convs {
			msgs := slices.Clone(cv.prefix)
			for _, t := range cv.turns {
				msgs = append(msgs, chatMessage{"user", t.user})
				sum += promptTokens(msgs)
				count++
				msgs = append(msgs, chatMessage{"assistant", strings.TrimSpace(strings.Repeat("the ", t.maxTokens))})
			}
		}
		fmt.Printf("\n%s: %d requests, mean prompt %.0f tokens\n", wl.name, count, float64(sum)/float64(count))
		printChatTable(b, wl.slug, contenders, results[w])
	}
	printAffinityTargets(contenders, results[0], results[1])
}

// printChatTable prints one workload's results and reports their key figures.
func printChatTable(b *testing.B, slug string, contenders []contender, runs []chatRun) {
	var ref *chatRun
	for i, c := range contenders {
		if c.name == affinityRef && runs[i].unavailable == nil && runs[i].ok > 0 {
			ref = &runs[i]
		}
	}
	ratio := func(v, r float64) string {
		if ref == nil || r == 0 || v == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", v/r)
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond)) }
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "contender\tsent\tok\tfailed\tspan\tdone/s\tTTFT p50\tTTFT p99\te2e p99\tprefix hits\tTTFT p50 vs ref\tTTFT p99 vs ref\tdone/s vs ref\t")
	var notes []string
	for i, c := range contenders {
		t := runs[i]
		if t.unavailable != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t\n", c.name)
			notes = append(notes, fmt.Sprintf("%s: unavailable: %v", c.name, t.unavailable))
			continue
		}
		hits := "-"
		if !math.IsNaN(t.hitRate) {
			hits = fmt.Sprintf("%.1f%%", 100*t.hitRate)
		}
		var r chatRun
		if ref != nil {
			r = *ref
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1fs\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			c.name, t.sent, t.ok, t.failed(), t.elapsed.Seconds(), t.completed(), ms(t.ttft50), ms(t.ttft99), ms(t.e2e99), hits,
			ratio(float64(t.ttft50), float64(r.ttft50)), ratio(float64(t.ttft99), float64(r.ttft99)), ratio(t.completed(), r.completed()))
		if unsent := t.planned - t.sent; unsent > 0 {
			notes = append(notes, fmt.Sprintf("%s: %d turns not sent: an earlier turn of their conversation failed", c.name, unsent))
		}
		for _, why := range slices.Sorted(maps.Keys(t.fails)) {
			notes = append(notes, fmt.Sprintf("%s: %d failed: %s (e.g. %q)", c.name, t.fails[why], why, t.failDetail[why]))
		}
		if t.scrapeErr != nil {
			notes = append(notes, fmt.Sprintf("%s: fleet metrics: %v", c.name, t.scrapeErr))
		}
		if t.lag99 > 50*time.Millisecond {
			notes = append(notes, fmt.Sprintf("%s: the client started 1%% of conversations over %v late (machine busy)", c.name, t.lag99.Round(time.Millisecond)))
		}
		m := slug + "-" + metricSlug(c.name)
		b.ReportMetric(float64(t.ttft50)/float64(time.Millisecond), m+"-ttft-p50-ms")
		b.ReportMetric(float64(t.ttft99)/float64(time.Millisecond), m+"-ttft-p99-ms")
		b.ReportMetric(float64(t.e2e99)/float64(time.Millisecond), m+"-e2e-p99-ms")
		b.ReportMetric(t.completed(), m+"-done-req/s")
		if !math.IsNaN(t.hitRate) {
			b.ReportMetric(100*t.hitRate, m+"-prefix-hit-%")
		}
		if t.ok == 0 {
			b.Errorf("%s: no request succeeded", c.name)
		}
	}
	tw.Flush()
	fmt.Printf("span: first send to the last request's end; done/s is over the span; prefix hits: the fleet's cached ÷ queried prompt tokens; ref: %s\n", affinityRef)
	for _, n := range notes {
		fmt.Println(n)
	}
}

// printAffinityTargets prints each of the team's targets with whether this run met it.
func printAffinityTargets(contenders []contender, shared, fresh []chatRun) {
	find := func(runs []chatRun, name string) *chatRun {
		for i, c := range contenders {
			if c.name == name && runs[i].unavailable == nil && runs[i].ok > 0 {
				return &runs[i]
			}
		}
		return nil
	}
	check := func(what string, got, want float64, atLeast bool) {
		verdict := "met"
		if atLeast && got < want || !atLeast && got > want {
			verdict = "MISSED"
		}
		fmt.Printf("  %-62s %6.2f (want %s %.2f) %s\n", what, got, map[bool]string{true: "≥", false: "≤"}[atLeast], want, verdict)
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	fmt.Println("\ntargets:")
	ref := find(shared, affinityRef)
	if ref == nil {
		fmt.Printf("  %s did not run on the shared workload\n", affinityRef)
	} else {
		if rr := find(shared, "round-robin"); rr != nil {
			check("shared: TTFT p99 round-robin ÷ ref", ms(rr.ttft99)/ms(ref.ttft99), 3, true)
			check("shared: done/s ref ÷ round-robin", ref.completed()/rr.completed(), 1, true)
		}
		if lc := find(shared, "least-conn (nginx)"); lc != nil {
			check("shared: TTFT p99 least-conn ÷ ref", ms(lc.ttft99)/ms(ref.ttft99), 1, true)
			check("shared: TTFT p50 least-conn ÷ ref", ms(lc.ttft50)/ms(ref.ttft50), 2.5, true)
			check("shared: done/s ref ÷ least-conn", ref.completed()/lc.completed(), 1, true)
		}
	}
	fref, lo := find(fresh, affinityRef), find(fresh, "load-only")
	if fref == nil || lo == nil {
		fmt.Printf("  no-shared-prefix comparison needs both %s and load-only\n", affinityRef)
		return
	}
	check("no shared prefixes: TTFT p99 ref ÷ load-only", ms(fref.ttft99)/ms(lo.ttft99), 1.05, false)
	check("no shared prefixes: done/s ref ÷ load-only", fref.completed()/lo.completed(), 0.95, true)
}
