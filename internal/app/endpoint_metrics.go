package app

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-ai/switchyard/backends"
)

// endpointCollector exports each endpoint's live state at scrape time: health, the stats its
// last scrape brought and their age (scrape health), and this replica's in-flight requests.
// It reads the pools through a function, so pools rebuilt at runtime are followed.
type endpointCollector struct {
	pools func() []*backends.Pool
	now   func() time.Time

	healthy, inflight, waiting, running, kv, age *prometheus.Desc
}

func newEndpointCollector(pools func() []*backends.Pool) *endpointCollector {
	labels := []string{"pool", "endpoint"}
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, labels, nil) }
	return &endpointCollector{pools: pools, now: time.Now,
		healthy:  d("switchyard_endpoint_healthy", "1 while the endpoint takes requests, 0 while it cools off after failures."),
		inflight: d("switchyard_endpoint_in_flight", "Requests this replica has in flight to the endpoint."),
		waiting:  d("switchyard_endpoint_queue", "Requests waiting at the endpoint, as its last successful scrape reported."),
		running:  d("switchyard_endpoint_running", "Requests running at the endpoint, as its last successful scrape reported (absent when not exported)."),
		kv:       d("switchyard_endpoint_kv_cache_usage", "KV-cache use of the endpoint, 0 to 1, as its last successful scrape reported (absent when not exported)."),
		age:      d("switchyard_endpoint_stats_age_seconds", "Seconds since the endpoint's last successful metrics scrape: growing means scrapes fail (absent before the first)."),
	}
}

// Describe implements prometheus.Collector.
func (c *endpointCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.healthy, c.inflight, c.waiting, c.running, c.kv, c.age} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *endpointCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	for _, p := range c.pools() {
		for _, ep := range p.Endpoints {
			g := func(d *prometheus.Desc, v float64) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, p.Name, ep.Name)
			}
			healthy := 0.0
			if ep.Healthy(now) {
				healthy = 1
			}
			g(c.healthy, healthy)
			g(c.inflight, float64(ep.InFlight()))
			st := ep.Stats()
			if st == nil {
				continue
			}
			g(c.waiting, float64(st.Waiting))
			if st.Running >= 0 {
				g(c.running, float64(st.Running))
			}
			if st.KVUsage >= 0 {
				g(c.kv, st.KVUsage)
			}
			g(c.age, st.Age(now).Seconds())
		}
	}
}
