package router

import (
	"hash/maphash"
	"math"
	"sync"

	"github.com/switchyard-ai/switchyard/backends"
)

// Prefix-cache affinity defaults.
const (
	// DefaultPrefixBlockBytes is the size of one hashed prompt block: 256 bytes, about 64
	// tokens, near the KV-cache block size model servers reuse.
	DefaultPrefixBlockBytes = 256
	// DefaultPrefixMaxBlocks bounds the hashed prefix: 1024 blocks, 256 KiB of prompt.
	DefaultPrefixMaxBlocks = 1024
	// DefaultPrefixCapacity is the number of block hashes a PrefixIndex keeps by default.
	DefaultPrefixCapacity = 100_000
)

// prefixSeed fixes the hash function for the life of the process, so that the hashes a front
// door computes for one request match those the index recorded for earlier ones. Hashes are
// not comparable across processes; each replica keeps its own index.
var prefixSeed = maphash.MakeSeed()

// PrefixHashes splits prompt into consecutive blocks of blockBytes bytes and returns one
// chained hash per full block, at most maxBlocks of them: h[i] = hash(h[i-1], block i), so
// h[i] names the whole prefix up to and including block i, and two prompts share h[i] only
// when they share their first i+1 blocks. A trailing partial block is not hashed, since
// servers cache only full blocks. It returns nil when prompt holds no full block.
// blockBytes ≤ 0 means DefaultPrefixBlockBytes and maxBlocks ≤ 0 DefaultPrefixMaxBlocks.
//
// Front doors feed it the raw bytes of the request's messages (chat) or prompt array rather
// than the whole body, so that fields like the model or temperature do not shift the blocks,
// and a conversation that grows by appending messages keeps the hashes of all its earlier
// full blocks. The result slice is its only allocation.
func PrefixHashes(prompt []byte, blockBytes, maxBlocks int) []uint64 {
	if blockBytes <= 0 {
		blockBytes = DefaultPrefixBlockBytes
	}
	if maxBlocks <= 0 {
		maxBlocks = DefaultPrefixMaxBlocks
	}
	n := min(len(prompt)/blockBytes, maxBlocks)
	if n == 0 {
		return nil
	}
	out := make([]uint64, n)
	var prev uint64 // the previous block's hash; zero before the first block
	for i := range out {
		prev = chain(prev, maphash.Bytes(prefixSeed, prompt[i*blockBytes:(i+1)*blockBytes]))
		out[i] = prev
	}
	return out
}

// chain combines the hash of the prefix before a block with the block's own hash. For a given
// block it is a bijection of the prefix's hash (a multiply by an odd constant, an xor, then
// xor-shifts and another odd multiply), so prompts that differ before a block never meet at
// it unless their blocks' hashes collide.
func chain(prev, block uint64) uint64 {
	x := prev*0x9e3779b97f4a7c15 ^ block
	x ^= x >> 32
	x *= 0xd6e8feb86659fd93
	x ^= x >> 32
	return x
}

// prefixWays is how many endpoints one block entry remembers.
const prefixWays = 4

// PrefixIndex is an approximate, bounded record of which endpoints of a pool recently
// received which prompt blocks, and so probably still hold them in their KV caches. Each
// block hash keeps the last prefixWays (4) endpoints it was sent to, most recent first.
// Entries age out least-recently-used once the index holds its capacity of hashes; Record
// and Match both count as use. Memory is bounded by the capacity (about 100 bytes a hash).
//
// It is safe for concurrent use. One mutex guards it, held only for map and list work
// proportional to the hashes passed in, never across I/O.
type PrefixIndex struct {
	mu       sync.Mutex
	capacity int
	slots    map[uint64]int32 // block hash → index in entries
	// entries[0] is the sentinel of a circular LRU list: entries[0].next is the most recently
	// used entry and entries[0].prev the least. Slots are reused, never freed, so the slice
	// holds no more than capacity+1 entries.
	entries []prefixEntry
	free    int32 // head of the free-slot list, linked through next; 0 when empty
}

type prefixEntry struct {
	hash       uint64
	eps        [prefixWays]*backends.Endpoint // most recent first; nil slots at the end
	prev, next int32
}

// NewPrefixIndex returns an empty index that keeps at most capacity block hashes;
// capacity ≤ 0 means DefaultPrefixCapacity (100,000).
func NewPrefixIndex(capacity int) *PrefixIndex {
	if capacity <= 0 {
		capacity = DefaultPrefixCapacity
	}
	capacity = min(capacity, math.MaxInt32-1)
	return &PrefixIndex{
		capacity: capacity,
		slots:    make(map[uint64]int32),
		entries:  make([]prefixEntry, 1, min(capacity, 1024)+1),
	}
}

// Record marks every block hash in hashes as held by ep, which has just been picked for a
// request with these hashes. Hashes beyond the index's capacity are ignored. Earlier blocks
// are kept more recent than later ones, so that under pressure a prefix loses its tail
// first and what remains still matches from the start.
func (x *PrefixIndex) Record(ep *backends.Endpoint, hashes []uint64) {
	if ep == nil || len(hashes) == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	// With at most capacity hashes, this call's entries sit together at the front of the
	// list, so the eviction in alloc never takes one of them.
	hashes = hashes[:min(len(hashes), x.capacity)]
	at := int32(0)
	for _, h := range hashes {
		i, ok := x.find(h, at)
		if !ok {
			i = x.alloc()
			x.entries[i] = prefixEntry{hash: h}
			x.slots[h] = i
			x.linkAfter(i, at)
		} else {
			x.touch(i, at)
		}
		x.entries[i].add(ep)
		at = i
	}
}

// Match reports how many leading blocks of hashes ep is believed to hold: it stops at the
// first block not recorded for ep, since a block's hash names its whole prefix.
func (x *PrefixIndex) Match(ep *backends.Endpoint, hashes []uint64) int {
	if ep == nil {
		return 0
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	at := int32(0)
	n := 0
	for _, h := range hashes {
		i, ok := x.find(h, at)
		if !ok || !x.entries[i].holds(ep) {
			break
		}
		at = x.touch(i, at)
		n++
	}
	return n
}

// matchAll is Match for every candidate at once under one lock: it writes into counts[i]
// the leading blocks of hashes cands[i] holds.
func (x *PrefixIndex) matchAll(cands []Candidate, hashes []uint64, counts []float64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	at := int32(0)
	for b, h := range hashes {
		i, ok := x.find(h, at)
		if !ok {
			return
		}
		e := &x.entries[i]
		hit := false
		for c := range cands {
			// Still matching means every block so far was held: counts[c] == b.
			if counts[c] == float64(b) && cands[c].Endpoint != nil && e.holds(cands[c].Endpoint) {
				counts[c]++
				hit = true
			}
		}
		if !hit {
			return
		}
		at = x.touch(i, at)
	}
}

// find returns the entry of hash h, looking first just after entry at: a prefix walked again
// finds its blocks there, in order (see touch), and so needs no map lookup.
func (x *PrefixIndex) find(h uint64, at int32) (int32, bool) {
	if next := x.entries[at].next; next != 0 && x.entries[next].hash == h {
		return next, true
	}
	i, ok := x.slots[h]
	return i, ok
}

// Forget drops ep from every entry, as when it leaves the pool, and frees the entries that
// no longer name any endpoint. It walks the whole index under the lock: O(capacity).
func (x *PrefixIndex) Forget(ep *backends.Endpoint) {
	if ep == nil {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for i := x.entries[0].next; i != 0; {
		next := x.entries[i].next
		e := &x.entries[i]
		if e.remove(ep) && e.eps[0] == nil {
			x.unlink(i)
			delete(x.slots, e.hash)
			*e = prefixEntry{next: x.free}
			x.free = i
		}
		i = next
	}
}

// alloc returns an unlinked slot: a freed one, a new one while under capacity, or else the
// least recently used entry, evicted.
func (x *PrefixIndex) alloc() int32 {
	if i := x.free; i != 0 {
		x.free = x.entries[i].next
		return i
	}
	if len(x.entries)-1 < x.capacity {
		x.entries = append(x.entries, prefixEntry{})
		return int32(len(x.entries) - 1)
	}
	i := x.entries[0].prev
	x.unlink(i)
	delete(x.slots, x.entries[i].hash)
	return i
}

// touch moves entry i to just after entry at (0: the front) and returns i, so that a walk
// over a prefix leaves its blocks in order at the front of the list. A prefix walked again
// finds them there already, and nothing moves.
func (x *PrefixIndex) touch(i, at int32) int32 {
	if i != at && x.entries[at].next != i {
		x.unlink(i)
		x.linkAfter(i, at)
	}
	return i
}

func (x *PrefixIndex) unlink(i int32) {
	e := &x.entries[i]
	x.entries[e.prev].next = e.next
	x.entries[e.next].prev = e.prev
}

func (x *PrefixIndex) linkAfter(i, at int32) {
	next := x.entries[at].next
	x.entries[i].prev, x.entries[i].next = at, next
	x.entries[at].next = i
	x.entries[next].prev = i
}

// add puts ep first, moving it up if present or else dropping the oldest endpoint.
func (e *prefixEntry) add(ep *backends.Endpoint) {
	j := 0
	for j < len(e.eps)-1 && e.eps[j] != ep {
		j++
	}
	copy(e.eps[1:j+1], e.eps[:j])
	e.eps[0] = ep
}

// remove drops ep, keeping the others in order; it reports whether ep was there.
func (e *prefixEntry) remove(ep *backends.Endpoint) bool {
	for j, p := range e.eps {
		if p == ep {
			copy(e.eps[j:], e.eps[j+1:])
			e.eps[len(e.eps)-1] = nil
			return true
		}
	}
	return false
}

func (e *prefixEntry) holds(ep *backends.Endpoint) bool {
	for _, p := range e.eps {
		if p == ep {
			return true
		}
	}
	return false
}

// PrefixScorer prefers the endpoint most likely to hold the longest cached prefix of the
// prompt: each candidate scores the share of the request's PrefixHashes it holds in Index,
// from 0 (none, or the request has no hashes) to 1 (all). Reusing a cached prefix skips its
// prefill, which cuts time to first token and frees the GPU for others.
//
// On its own it would send every request of a hot prefix to one server. A profile weighs it
// with load scorers (queue, KV cache, in flight, latency), so a cache hit wins only while
// the holder is not much busier than the others, and the saturation filter, which runs
// before any scorer, removes a full endpoint however much of the prefix it holds. Whoever
// sends the request records the pick in Index (PrefixIndex.Record) so later ones can match.
type PrefixScorer struct {
	Index *PrefixIndex
}

var _ Scorer = (*PrefixScorer)(nil)

// Score implements Scorer. It takes the index's lock once for all candidates.
func (s *PrefixScorer) Score(req *Request, cands []Candidate, scores []float64) {
	clear(scores[:len(cands)])
	if s.Index == nil || req == nil || len(req.PrefixHashes) == 0 {
		return
	}
	s.Index.matchAll(cands, req.PrefixHashes, scores)
	n := float64(len(req.PrefixHashes))
	for i := range cands {
		scores[i] /= n
	}
}
