package router_test

import (
	"bytes"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/switchyard-ai/switchyard/backends"
	"github.com/switchyard-ai/switchyard/router"
)

// prefixPrompt returns n bytes of deterministic text, different for each seed.
func prefixPrompt(seed, n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"role":"user","content":"message %d of conversation %d"},`, i, seed)
	}
	return b.Bytes()[:n]
}

// prefixEndpoints returns n distinct endpoints.
func prefixEndpoints(t testing.TB, n int) []*backends.Endpoint {
	t.Helper()
	eps := make([]*backends.Endpoint, n)
	for i := range eps {
		ep, err := backends.NewEndpoint(fmt.Sprintf("http://10.1.0.%d:8000", i+1))
		if err != nil {
			t.Fatal(err)
		}
		eps[i] = ep
	}
	return eps
}

// prefixKeys returns n distinct made-up block hashes starting at base.
func prefixKeys(base uint64, n int) []uint64 {
	hs := make([]uint64, n)
	for i := range hs {
		hs[i] = base + uint64(i)
	}
	return hs
}

func TestPrefixHashes(t *testing.T) {
	const bs = 16
	a := prefixPrompt(1, 10*bs)
	t.Run("same prefix same hashes", func(t *testing.T) {
		other := append(bytes.Clone(a[:6*bs]), prefixPrompt(2, 4*bs)...)
		ha, hb := router.PrefixHashes(a, bs, 0), router.PrefixHashes(other, bs, 0)
		if len(ha) != 10 || len(hb) != 10 {
			t.Fatalf("len = %d, %d, want 10", len(ha), len(hb))
		}
		for i := range ha {
			if same := ha[i] == hb[i]; same != (i < 6) {
				t.Errorf("block %d: equal = %v, want %v", i, same, i < 6)
			}
		}
	})
	t.Run("appending keeps earlier blocks", func(t *testing.T) {
		short := router.PrefixHashes(a[:7*bs+5], bs, 0) // 7 full blocks and a partial one
		grown := router.PrefixHashes(append(bytes.Clone(a[:7*bs+5]), `{"role":"assistant"}]`...), bs, 0)
		if len(short) != 7 || len(grown) < 8 {
			t.Fatalf("len = %d, %d", len(short), len(grown))
		}
		for i := range short {
			if short[i] != grown[i] {
				t.Errorf("block %d changed when the conversation grew", i)
			}
		}
	})
	t.Run("different first block", func(t *testing.T) {
		b := bytes.Clone(a)
		b[0] ^= 1
		ha, hb := router.PrefixHashes(a, bs, 0), router.PrefixHashes(b, bs, 0)
		for i := range ha {
			if ha[i] == hb[i] {
				t.Errorf("block %d equal although the first block differs", i)
			}
		}
	})
	t.Run("identical blocks at different depths differ", func(t *testing.T) {
		h := router.PrefixHashes(bytes.Repeat([]byte("x"), 4*bs), bs, 0)
		seen := map[uint64]bool{}
		for _, v := range h {
			if seen[v] {
				t.Fatalf("repeated hash %x: blocks are not chained", v)
			}
			seen[v] = true
		}
	})
	tests := []struct {
		name            string
		n, bs, maxBlock int
		want            int
	}{
		{"partial last block excluded", 3*bs + bs - 1, bs, 0, 3},
		{"shorter than a block", bs - 1, bs, 0, 0},
		{"empty", 0, bs, 0, 0},
		{"max blocks honoured", 10 * bs, bs, 4, 4},
		{"default block size", 3*router.DefaultPrefixBlockBytes + 1, 0, 0, 3},
		{"default max blocks", (router.DefaultPrefixMaxBlocks + 3) * 8, 8, 0, router.DefaultPrefixMaxBlocks},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := len(router.PrefixHashes(prefixPrompt(3, tt.n), tt.bs, tt.maxBlock)); got != tt.want {
				t.Errorf("len = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestPrefixHashesAllocs(t *testing.T) {
	p := prefixPrompt(1, 64*router.DefaultPrefixBlockBytes+100)
	allocs := testing.AllocsPerRun(100, func() {
		router.PrefixHashes(p, router.DefaultPrefixBlockBytes, router.DefaultPrefixMaxBlocks)
	})
	if allocs > 1 {
		t.Errorf("allocs = %v, want ≤ 1 (the result)", allocs)
	}
}

func TestPrefixIndexMatch(t *testing.T) {
	eps := prefixEndpoints(t, 2)
	x := router.NewPrefixIndex(0)
	hs := prefixKeys(100, 8)
	x.Record(eps[0], hs[:5])
	tests := []struct {
		name   string
		ep     *backends.Endpoint
		hashes []uint64
		want   int
	}{
		{"recorded prefix", eps[0], hs[:5], 5},
		{"longer request matches what was recorded", eps[0], hs, 5},
		{"shorter request", eps[0], hs[:2], 2},
		{"stops at first miss", eps[0], []uint64{100, 101, 999, 103, 104}, 2},
		{"miss at start", eps[0], []uint64{999, 100, 101}, 0},
		{"other endpoint", eps[1], hs, 0},
		{"nil endpoint", nil, hs, 0},
		{"no hashes", eps[0], nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := x.Match(tt.ep, tt.hashes); got != tt.want {
				t.Errorf("Match = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestPrefixIndexEndpoints(t *testing.T) {
	eps := prefixEndpoints(t, 6)
	x := router.NewPrefixIndex(0)
	hs := prefixKeys(1, 3)
	x.Record(eps[1], hs[:1]) // eps[1] holds one block, the others all three
	for _, ep := range eps[:5] {
		x.Record(ep, hs)
	}
	// eps[0] is the oldest of five: dropped from every entry.
	want := []int{0, 3, 3, 3, 3, 0}
	for i, ep := range eps {
		if got := x.Match(ep, hs); got != want[i] {
			t.Errorf("endpoint %d: Match = %d, want %d", i, got, want[i])
		}
	}
	x.Record(eps[1], hs) // eps[1] is most recent again; eps[2] is now the oldest
	x.Record(eps[5], hs)
	want = []int{0, 3, 0, 3, 3, 3}
	for i, ep := range eps {
		if got := x.Match(ep, hs); got != want[i] {
			t.Errorf("after re-record: endpoint %d: Match = %d, want %d", i, got, want[i])
		}
	}
}

func TestPrefixIndexEviction(t *testing.T) {
	ep := prefixEndpoints(t, 1)[0]
	a, b, c := prefixKeys(100, 4), prefixKeys(200, 4), prefixKeys(300, 4)

	t.Run("least recently used go first", func(t *testing.T) {
		x := router.NewPrefixIndex(8)
		x.Record(ep, a)
		x.Record(ep, b)
		if got := x.Match(ep, a); got != 4 { // a is now more recent than b
			t.Fatalf("a before pressure: Match = %d, want 4", got)
		}
		x.Record(ep, c)
		for _, tt := range []struct {
			name   string
			hashes []uint64
			want   int
		}{{"a (matched)", a, 4}, {"b (old)", b, 0}, {"c (new)", c, 4}} {
			if got := x.Match(ep, tt.hashes); got != tt.want {
				t.Errorf("%s: Match = %d, want %d", tt.name, got, tt.want)
			}
		}
	})
	t.Run("a prefix loses its tail first", func(t *testing.T) {
		x := router.NewPrefixIndex(6)
		x.Record(ep, a)
		x.Record(ep, b)
		if got := x.Match(ep, a); got != 2 {
			t.Errorf("a: Match = %d, want 2 (its first blocks kept)", got)
		}
		if got := x.Match(ep, b); got != 4 {
			t.Errorf("b: Match = %d, want 4", got)
		}
	})
	t.Run("more hashes than capacity", func(t *testing.T) {
		x := router.NewPrefixIndex(3)
		x.Record(ep, a)
		if got := x.Match(ep, a); got != 3 {
			t.Errorf("Match = %d, want 3", got)
		}
	})
	t.Run("bounded under churn", func(t *testing.T) {
		x := router.NewPrefixIndex(16)
		for i := range 1000 {
			x.Record(ep, prefixKeys(uint64(i)<<20, 5))
		}
		kept := 0
		for i := range 1000 {
			kept += x.Match(ep, prefixKeys(uint64(i)<<20, 5))
		}
		if kept > 16 {
			t.Errorf("%d blocks matched after churn, want ≤ capacity 16", kept)
		}
		if got := x.Match(ep, prefixKeys(999<<20, 5)); got != 5 {
			t.Errorf("latest prefix: Match = %d, want 5", got)
		}
	})
}

func TestPrefixIndexForget(t *testing.T) {
	eps := prefixEndpoints(t, 2)
	a, b, c, d := prefixKeys(100, 2), prefixKeys(200, 2), prefixKeys(300, 2), prefixKeys(400, 2)
	x := router.NewPrefixIndex(6)
	x.Record(eps[1], b)
	x.Record(eps[0], a)
	x.Record(eps[1], a)
	x.Record(eps[0], c)
	x.Forget(eps[0])
	if got := x.Match(eps[0], a); got != 0 {
		t.Errorf("forgotten endpoint: Match = %d, want 0", got)
	}
	if got := x.Match(eps[1], a); got != 2 {
		t.Errorf("other endpoint on a shared entry: Match = %d, want 2", got)
	}
	// c's entries held only eps[0] and were freed: two new blocks fit without evicting b,
	// the least recently used.
	x.Record(eps[1], d)
	if got := x.Match(eps[1], b); got != 2 {
		t.Errorf("b: Match = %d, want 2 (freed slots reused before eviction)", got)
	}
	x.Forget(nil)
	x.Forget(eps[0])
}

func TestPrefixIndexConcurrent(t *testing.T) {
	eps := prefixEndpoints(t, 8)
	x := router.NewPrefixIndex(64)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				hs := prefixKeys(uint64((g*7+i)%40)<<8, 1+i%12)
				ep := eps[(g+i)%len(eps)]
				x.Record(ep, hs)
				if n := x.Match(ep, hs); n < 0 || n > len(hs) {
					t.Errorf("Match = %d for %d hashes", n, len(hs))
				}
				if i%100 == 0 {
					x.Forget(eps[(g+i+1)%len(eps)])
				}
			}
		})
	}
	wg.Wait()
}

func TestPrefixScorer(t *testing.T) {
	eps := prefixEndpoints(t, 4)
	x := router.NewPrefixIndex(0)
	prompt := router.PrefixHashes(prefixPrompt(1, 8*64), 64, 0) // 8 blocks
	otherHs := router.PrefixHashes(prefixPrompt(2, 8*64), 64, 0)
	x.Record(eps[0], prompt[:2])
	x.Record(eps[1], prompt[:6])
	x.Record(eps[2], otherHs)
	// eps[3] has never been picked.
	cs := make([]router.Candidate, len(eps))
	for i, ep := range eps {
		cs[i] = router.Candidate{Endpoint: ep}
	}
	tests := []struct {
		name   string
		scorer *router.PrefixScorer
		req    *router.Request
		want   []float64
	}{
		{"longest prefix scores highest", &router.PrefixScorer{Index: x},
			&router.Request{PrefixHashes: prompt}, []float64{0.25, 0.75, 0, 0}},
		{"short request fully held", &router.PrefixScorer{Index: x},
			&router.Request{PrefixHashes: prompt[:2]}, []float64{1, 1, 0, 0}},
		{"no hashes", &router.PrefixScorer{Index: x}, &router.Request{}, []float64{0, 0, 0, 0}},
		{"nil request", &router.PrefixScorer{Index: x}, nil, []float64{0, 0, 0, 0}},
		{"no index", &router.PrefixScorer{}, &router.Request{PrefixHashes: prompt}, []float64{0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := []float64{9, 9, 9, 9} // scorers overwrite whatever is there
			tt.scorer.Score(tt.req, cs, got)
			for i := range got {
				if math.Abs(got[i]-tt.want[i]) > 1e-9 {
					t.Errorf("scores = %v, want %v", got, tt.want)
					break
				}
			}
			for i, ep := range eps {
				var hs []uint64
				if tt.req != nil {
					hs = tt.req.PrefixHashes
				}
				if tt.scorer.Index == nil || len(hs) == 0 {
					continue
				}
				if m := float64(x.Match(ep, hs)) / float64(len(hs)); math.Abs(m-got[i]) > 1e-9 {
					t.Errorf("endpoint %d: score %v disagrees with Match share %v", i, got[i], m)
				}
			}
		})
	}
}

func BenchmarkPrefixScorer(b *testing.B) {
	eps := prefixEndpoints(b, 10)
	x := router.NewPrefixIndex(0)
	const bs = router.DefaultPrefixBlockBytes
	prompt := prefixPrompt(0, 64*bs)
	req := &router.Request{PrefixHashes: router.PrefixHashes(prompt, bs, 0)}
	// Warm: each endpoint served a conversation sharing a system prompt of 8 blocks with
	// this one and then some of this one's own blocks, plus unrelated traffic.
	for i, ep := range eps {
		p := append(bytes.Clone(prompt[:(8+5*i)*bs]), prefixPrompt(i+1, 16*bs)...)
		x.Record(ep, router.PrefixHashes(p, bs, 0))
		for j := range 50 {
			x.Record(ep, router.PrefixHashes(prefixPrompt(1000+50*i+j, 64*bs), bs, 0))
		}
	}
	cs := make([]router.Candidate, len(eps))
	for i, ep := range eps {
		cs[i] = router.Candidate{Endpoint: ep}
	}
	scores := make([]float64, len(cs))
	b.ReportAllocs()
	for b.Loop() {
		(&router.PrefixScorer{Index: x}).Score(req, cs, scores)
	}
}

func BenchmarkPrefixHashes(b *testing.B) {
	prompt := prefixPrompt(0, 64*router.DefaultPrefixBlockBytes)
	b.SetBytes(int64(len(prompt)))
	b.ReportAllocs()
	for b.Loop() {
		router.PrefixHashes(prompt, router.DefaultPrefixBlockBytes, router.DefaultPrefixMaxBlocks)
	}
}
