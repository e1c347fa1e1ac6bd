package bench_test

import (
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"text/tabwriter"
	"time"
)

// Offered load of BenchmarkPriorityShedding's two phases, as fractions of the fleet's estimated
// capacity, and the share of critical requests in the overload.
const (
	calmLoad      = 0.2
	overload      = 2.0
	criticalShare = 0.25
)

// BenchmarkPriorityShedding measures how well critical requests keep their time to first token
// when sheddable ones overload the fleet. Switchyard runs its default scheduling with
// saturation declared as soon as a server queues one request, in front of the two fast servers
// of BenchmarkScheduling's fleet, with that benchmark's request mix. Phase 1 offers critical
// requests only, at 20% of capacity, for 20s (6s with -short); phase 2, on the same warm fleet,
// offers twice the capacity for 30s (10s with -short), a quarter critical and the rest
// sheddable, as two independent Poisson streams. It prints each class's outcome and the
// critical TTFT p99 under overload relative to the unloaded one.
func BenchmarkPriorityShedding(b *testing.B) {
	calm, storm, drainCap := 20*time.Second, 30*time.Second, 2*time.Minute
	if testing.Short() {
		calm, storm, drainCap = 6*time.Second, 10*time.Second, time.Minute
	}
	cfgs := fleetConfigs()[:fleetFast]
	capacity := fleetCapacity(cfgs, meanPrompt(), meanOutput())
	calmReqs := workload(21, calmLoad*capacity, calm)
	critReqs := workload(22, criticalShare*overload*capacity, storm)
	shedReqs := workload(23, (1-criticalShare)*overload*capacity, storm)
	sw := contender{"switchyard", switchyardWith("{saturation: {max_queue: 1}}")}

	fmt.Printf("fleet: %d simulated servers, model m, batch %d, prefill %v + %v/token, decode %v/token; estimated capacity %.1f req/s (fleetCapacity, mean prompt %.0f, mean output %.0f)\n",
		len(cfgs), cfgs[0].MaxRunning, cfgs[0].PrefillBase, cfgs[0].PrefillPerToken, cfgs[0].DecodePerToken, capacity, meanPrompt(), meanOutput())
	fmt.Printf("router: Switchyard default scheduling, saturation {max_queue: 1}; priority from x-priority\n")
	fmt.Printf("phase 1 (unloaded): %d critical over %v, Poisson at %.1f/s = %.1f × capacity\n",
		len(calmReqs), calm, calmLoad*capacity, calmLoad)
	fmt.Printf("phase 2 (overload): %d critical at %.1f/s + %d sheddable at %.1f/s over %v = %.1f × capacity\n",
		len(critReqs), criticalShare*overload*capacity, len(shedReqs), (1-criticalShare)*overload*capacity, storm, overload)

	var unloaded, critical, sheddable tally
	var unavailable error
	for b.Loop() {
		unavailable = withSimFleet(b, cfgs, sw, func(client *http.Client, base string, _ []string) {
			unloaded = offer(withHeader(client, "x-priority", "critical"), base, calmReqs, calm, drainCap)
			var wg sync.WaitGroup
			wg.Go(func() {
				critical = offer(withHeader(client, "x-priority", "critical"), base, critReqs, storm, drainCap)
			})
			wg.Go(func() {
				sheddable = offer(withHeader(client, "x-priority", "sheddable"), base, shedReqs, storm, drainCap)
			})
			wg.Wait()
		})
	}
	if unavailable != nil {
		b.Fatalf("switchyard unavailable: %v", unavailable)
	}

	ms := func(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond)) }
	const shedReason = "HTTP 429"
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tclass\tsent\tok\tshed (429)\tother failed\tTTFT p50\tTTFT p99\te2e p99\t")
	var notes []string
	for _, row := range []struct {
		phase, class string
		t            tally
	}{{"unloaded", "critical", unloaded}, {"overload", "critical", critical}, {"overload", "sheddable", sheddable}} {
		t := row.t
		shed := t.fails[shedReason]
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t\n", row.phase, row.class, t.sent, t.ok, shed, t.failed()-shed,
			ms(t.ttft50), ms(t.ttft99), ms(t.e2e99))
		for _, why := range slices.Sorted(maps.Keys(t.fails)) {
			notes = append(notes, fmt.Sprintf("%s %s: %d failed: %s (e.g. %q)", row.phase, row.class, t.fails[why], why, t.failDetail[why]))
		}
		if t.lag99 > 50*time.Millisecond {
			notes = append(notes, fmt.Sprintf("%s %s: the client sent 1%% of requests over %v late (machine busy)", row.phase, row.class, t.lag99.Round(time.Millisecond)))
		}
	}
	tw.Flush()
	for _, n := range notes {
		fmt.Println(n)
	}

	ratio := float64(critical.ttft99) / float64(unloaded.ttft99)
	shed := sheddable.fails[shedReason]
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	fmt.Println("targets:")
	fmt.Printf("  critical TTFT p99 overload ÷ unloaded  %.2f (want ≤ 2) %s\n", ratio, verdict(ratio <= 2))
	fmt.Printf("  sheddable shed with 429                %d (want > 0) %s\n", shed, verdict(shed > 0))
	fmt.Printf("  critical failures under overload       %d (want 0) %s\n", critical.failed(), verdict(critical.failed() == 0))

	b.ReportMetric(float64(unloaded.ttft50)/float64(time.Millisecond), "unloaded-critical-ttft-p50-ms")
	b.ReportMetric(float64(unloaded.ttft99)/float64(time.Millisecond), "unloaded-critical-ttft-p99-ms")
	b.ReportMetric(float64(critical.ttft50)/float64(time.Millisecond), "overload-critical-ttft-p50-ms")
	b.ReportMetric(float64(critical.ttft99)/float64(time.Millisecond), "overload-critical-ttft-p99-ms")
	b.ReportMetric(ratio, "critical-ttft-p99-overload/unloaded")
	b.ReportMetric(float64(critical.ok), "overload-critical-ok")
	b.ReportMetric(float64(critical.failed()), "overload-critical-failed")
	b.ReportMetric(float64(sheddable.ok), "overload-sheddable-admitted")
	b.ReportMetric(float64(shed), "overload-sheddable-shed")
	if unloaded.ok == 0 || critical.ok == 0 {
		b.Errorf("no critical request succeeded in a phase (unloaded %d, overload %d)", unloaded.ok, critical.ok)
	}
}
