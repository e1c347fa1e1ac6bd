package sim

import "container/list"

// block is one KV-cache block.
type block struct {
	hash   uint64
	hashed bool          // holds a committed prompt prefix that later prompts can reuse
	ref    int           // running sequences using the block; pinned while > 0
	lru    *list.Element // position in kvCache.lru while unpinned and hashed
}

// kvCache is a paged KV cache with hash-addressed prefix reuse. It is not
// safe for concurrent use; the engine guards it with its mutex.
type kvCache struct {
	blockSize int
	blocks    []block
	empty     []int          // unpinned blocks holding nothing reusable
	lru       *list.List     // unpinned hashed blocks, least recently used first
	byHash    map[uint64]int // committed prefix hash -> block
	pinned    int
}

func newKVCache(numBlocks, blockSize int) *kvCache {
	c := &kvCache{blockSize: blockSize, blocks: make([]block, numBlocks), lru: list.New(), byHash: map[uint64]int{}}
	c.empty = make([]int, numBlocks)
	for i := range c.empty {
		c.empty[i] = numBlocks - 1 - i // pop from the end hands out block 0 first
	}
	return c
}

// usage is the fraction of blocks pinned by running sequences; cached but
// evictable blocks count as free, as in vLLM.
func (c *kvCache) usage() float64 { return float64(c.pinned) / float64(len(c.blocks)) }

func (c *kvCache) free() int { return len(c.empty) + c.lru.Len() }

// blocksFor is the number of blocks that n tokens occupy.
func (c *kvCache) blocksFor(n int) int { return (n + c.blockSize - 1) / c.blockSize }

// allocate pins blocks for a sequence with known tokens so far, whose full
// prompt blocks have the given hashes, and room for n tokens in all. It
// reuses the longest resident prefix, capped below known so at least one
// token is computed, which is what produces the next output token. It
// returns the blocks and the number of tokens served from the cache, or
// ok=false, changing nothing, if the cache cannot hold the sequence now.
func (c *kvCache) allocate(hashes []uint64, known, n int) (blocks []int, cached int, ok bool) {
	limit := min(len(hashes), (known-1)/c.blockSize)
	idle := 0 // hits that are unpinned, so pinning them consumes free blocks
	for _, h := range hashes[:limit] {
		id, hit := c.byHash[h]
		if !hit {
			break
		}
		blocks = append(blocks, id)
		if c.blocks[id].ref == 0 {
			idle++
		}
	}
	hits := len(blocks)
	if c.free()-idle < c.blocksFor(n)-hits {
		return nil, 0, false
	}
	for _, id := range blocks {
		c.pin(id) // before taking fresh blocks, so they cannot evict the hits
	}
	blocks, ok = c.grow(blocks, n)
	return blocks, hits * c.blockSize, ok
}

// grow pins fresh blocks until blocks covers n tokens. It reports false,
// leaving blocks as far as it got, when no block is free.
func (c *kvCache) grow(blocks []int, n int) ([]int, bool) {
	for len(blocks) < c.blocksFor(n) {
		if c.free() == 0 {
			return blocks, false
		}
		var id int
		if k := len(c.empty); k > 0 {
			id, c.empty = c.empty[k-1], c.empty[:k-1]
		} else {
			id = c.lru.Remove(c.lru.Front()).(int)
			b := &c.blocks[id]
			b.lru, b.hashed = nil, false
			delete(c.byHash, b.hash)
		}
		c.pin(id)
		blocks = append(blocks, id)
	}
	return blocks, true
}

func (c *kvCache) pin(id int) {
	b := &c.blocks[id]
	if b.ref == 0 {
		if b.lru != nil {
			c.lru.Remove(b.lru)
			b.lru = nil
		}
		c.pinned++
	}
	b.ref++
}

// commit makes a prefilled sequence's full prompt blocks reusable. A block
// whose prefix another sequence committed first stays a private copy.
func (c *kvCache) commit(blocks []int, hashes []uint64) {
	for i, h := range hashes {
		b := &c.blocks[blocks[i]]
		if _, dup := c.byHash[h]; b.hashed || dup {
			continue
		}
		b.hash, b.hashed = h, true
		c.byHash[h] = blocks[i]
	}
}

// release unpins blocks. It walks them backwards so that, among equally old
// blocks, a prompt's tail is evicted before the head other prompts share.
func (c *kvCache) release(blocks []int) {
	for i := len(blocks) - 1; i >= 0; i-- {
		b := &c.blocks[blocks[i]]
		if b.ref--; b.ref > 0 {
			continue
		}
		c.pinned--
		if b.hashed {
			b.lru = c.lru.PushBack(blocks[i])
		} else {
			c.empty = append(c.empty, blocks[i])
		}
	}
}
