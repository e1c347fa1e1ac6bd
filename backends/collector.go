package backends

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// maxScrapeBody bounds a /metrics page; a larger page fails the scrape rather than being cut
// short and misread.
const maxScrapeBody = 8 << 20

// Collector scrapes GET {endpoint}/metrics of every endpoint in a set of pools on an interval
// and publishes what it reads as the endpoint's Stats. Scrapes also probe health: enough
// consecutive failures eject an endpoint (Endpoint.MarkFailed, cool-off growing with each
// further failure) and a successful scrape of an ejected endpoint brings it back
// (Endpoint.MarkOK). A failed scrape leaves the last snapshot in place; the router judges a
// snapshot by its age.
//
// A Collector is safe for concurrent use. Scrapes of one endpoint never overlap: a ScrapeOnce
// call waits for one in progress on the same endpoint.
type Collector struct {
	pools     []*Pool
	interval  time.Duration
	timeout   time.Duration
	threshold int
	clock     func() time.Time
	log       *slog.Logger
	onScrape  func(*Pool, *Endpoint)

	mu     sync.Mutex
	states map[*Endpoint]*scrapeState

	// parsers holds parse buffers between scrapes; only scrapes in progress need one.
	parsers sync.Pool
}

// CollectorOption configures a Collector.
type CollectorOption func(*Collector)

// WithScrapeInterval sets how often each endpoint is scraped; default 100ms. Non-positive
// values keep the default.
func WithScrapeInterval(d time.Duration) CollectorOption {
	return func(c *Collector) {
		if d > 0 {
			c.interval = d
		}
	}
}

// WithScrapeTimeout bounds one scrape, from sending the request to the end of the page;
// default 1s. Non-positive values keep the default.
func WithScrapeTimeout(d time.Duration) CollectorOption {
	return func(c *Collector) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// WithFailureThreshold sets how many consecutive failed scrapes eject an endpoint; default 3.
// Values below 1 keep the default.
func WithFailureThreshold(n int) CollectorOption {
	return func(c *Collector) {
		if n > 0 {
			c.threshold = n
		}
	}
}

// WithClock sets the clock that stamps snapshots and times cool-offs; default time.Now.
// Scrape ticks use real time whatever the clock.
func WithClock(now func() time.Time) CollectorOption {
	return func(c *Collector) {
		if now != nil {
			c.clock = now
		}
	}
}

// WithLogger sets where the collector reports endpoints failing, ejected and recovered, and
// detected metrics formats; default slog.Default().
func WithLogger(l *slog.Logger) CollectorOption {
	return func(c *Collector) {
		if l != nil {
			c.log = l
		}
	}
}

// WithOnScrape sets a function called after each successful scrape has published its
// snapshot and updated health, from the scraping goroutine; default none. The router uses it
// to wake requests waiting for capacity. It must not block.
func WithOnScrape(f func(*Pool, *Endpoint)) CollectorOption {
	return func(c *Collector) { c.onScrape = f }
}

// NewCollector returns a collector of the endpoints of pools. It starts nothing: Run scrapes
// periodically, ScrapeOnce on demand.
func NewCollector(pools []*Pool, opts ...CollectorOption) *Collector {
	c := &Collector{
		pools:     pools,
		interval:  100 * time.Millisecond,
		timeout:   time.Second,
		threshold: 3,
		clock:     time.Now,
		log:       slog.Default(),
		states:    make(map[*Endpoint]*scrapeState),
	}
	c.parsers.New = func() any {
		// Large enough to read a page in few chunks.
		return &metricsParser{limit: maxScrapeBody, buf: make([]byte, 32<<10)}
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// scrapeState is what the collector keeps per endpoint.
type scrapeState struct {
	mu       sync.Mutex // held for a whole scrape; guards failures
	failures int        // consecutive failed scrapes
	url      *url.URL
	header   http.Header
}

func (c *Collector) state(ep *Endpoint) *scrapeState {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.states[ep]
	if st == nil {
		st = &scrapeState{
			url: ep.MetricsURL,
			// Ask for the classic text format: OpenMetrics-capable servers would otherwise
			// be free to choose.
			header: http.Header{"Accept": {"text/plain;version=0.0.4;q=1,*/*;q=0.1"}},
		}
		c.states[ep] = st
	}
	return st
}

// Run scrapes every endpoint of the collector's pools each interval until ctx is done, one
// goroutine per endpoint, the first scrape of each delayed by a random fraction of the
// interval so that endpoints are not scraped in lockstep. Pools whose format is MetricsNone
// are not scraped. Run returns once all its goroutines have stopped: nil after ctx is done,
// or an error at once if a pool to scrape has no client.
func (c *Collector) Run(ctx context.Context) error {
	for _, p := range c.pools {
		if p.MetricsFormat() != MetricsNone && p.Client == nil {
			return fmt.Errorf("backends: pool %s has no HTTP client to scrape with", p.Name)
		}
	}
	var wg sync.WaitGroup
	for _, p := range c.pools {
		if p.MetricsFormat() == MetricsNone {
			continue
		}
		for _, ep := range p.Endpoints {
			wg.Go(func() { c.loop(ctx, p, ep) })
		}
	}
	<-ctx.Done()
	wg.Wait()
	return nil
}

// loop scrapes one endpoint until ctx is done.
func (c *Collector) loop(ctx context.Context, p *Pool, ep *Endpoint) {
	first := time.NewTimer(rand.N(c.interval))
	defer first.Stop()
	select {
	case <-ctx.Done():
		return
	case <-first.C:
	}
	tick := time.NewTicker(c.interval)
	defer tick.Stop()
	failing := false
	for {
		// A pool detected as MetricsNone stays idle rather than ending the goroutine, so
		// that Run still owns every goroutine it started until ctx is done.
		if p.MetricsFormat() != MetricsNone {
			err := c.ScrapeOnce(ctx, p, ep)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil && !failing:
				c.log.Warn("metrics scrape failed", "pool", p.Name, "endpoint", ep.Name, "err", err)
			case err == nil && failing:
				c.log.Info("metrics scrape recovered", "pool", p.Name, "endpoint", ep.Name)
			}
			failing = err != nil
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// ScrapeOnce scrapes ep, a member of p, once: it publishes a new snapshot on success and
// updates the endpoint's health either way. A pool whose format is MetricsAuto gets the
// format detected from the page. A pool whose format is MetricsNone is not scraped, and a
// scrape cut short because ctx ended does not count against the endpoint.
func (c *Collector) ScrapeOnce(ctx context.Context, p *Pool, ep *Endpoint) error {
	format := p.MetricsFormat()
	if format == MetricsNone {
		return nil
	}
	published, err := c.scrapeAndJudge(ctx, p, ep, format)
	if err != nil {
		return fmt.Errorf("backends: scrape %s: %w", ep.Name, err)
	}
	if published && c.onScrape != nil {
		c.onScrape(p, ep)
	}
	return nil
}

// scrapeAndJudge scrapes ep and updates its health, one scrape of an endpoint at a time.
func (c *Collector) scrapeAndJudge(ctx context.Context, p *Pool, ep *Endpoint, format MetricsFormat) (published bool, err error) {
	st := c.state(ep)
	st.mu.Lock()
	defer st.mu.Unlock()
	parser := c.parsers.Get().(*metricsParser)
	published, err = c.scrape(ctx, p, ep, st, parser, format)
	c.parsers.Put(parser)
	switch {
	case err != nil && ctx.Err() != nil:
		// Shutting down, not the endpoint's fault.
	case err != nil:
		st.failures++
		if st.failures >= c.threshold {
			if st.failures == c.threshold {
				c.log.Warn("endpoint ejected after failed metrics scrapes", "pool", p.Name, "endpoint", ep.Name, "failures", st.failures)
			}
			ep.MarkFailed(c.clock())
		}
	default:
		st.failures = 0
		// A good scrape proves the server is reachable: it ends any cool-off and resets the
		// failure count, so a later ejection starts again at the shortest cool-off.
		ep.MarkOK()
	}
	return published, err
}

// scrape fetches and parses one page, publishing the snapshot; published is false when the
// page was fetched but had nothing to publish (its format detected as none).
func (c *Collector) scrape(ctx context.Context, p *Pool, ep *Endpoint, st *scrapeState, parser *metricsParser, format MetricsFormat) (published bool, err error) {
	if p.Client == nil {
		return false, errors.New("pool has no HTTP client")
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req := (&http.Request{Method: http.MethodGet, URL: st.url, Header: st.header}).WithContext(ctx)
	s := &Stats{InFlightAtScrape: ep.InFlight()}
	resp, err := p.Client.transport.RoundTrip(req)
	if err != nil {
		return false, classify(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("status %d", resp.StatusCode)
	}
	body := io.Reader(resp.Body)
	if format == MetricsAuto {
		// Sniffing needs the page's bytes; only the first scrape of an auto pool reads it
		// whole.
		page, err := io.ReadAll(io.LimitReader(resp.Body, maxScrapeBody+1))
		if err != nil {
			return false, fmt.Errorf("reading metrics: %w", err)
		}
		if len(page) > maxScrapeBody {
			return false, fmt.Errorf("metrics page larger than %d bytes", maxScrapeBody)
		}
		format = SniffMetricsFormat(page)
		p.SetMetricsFormat(format)
		c.log.Info("detected metrics format", "pool", p.Name, "endpoint", ep.Name, "format", format)
		if format == MetricsNone {
			return false, nil
		}
		body = bytes.NewReader(page)
	}
	if err := parser.parse(format, body, s); err != nil {
		return false, err
	}
	s.ScrapedAt = c.clock()
	ep.SetStats(s)
	return true, nil
}
