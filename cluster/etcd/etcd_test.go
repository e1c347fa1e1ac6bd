package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/switchyard-ai/switchyard/cluster"
	"github.com/switchyard-ai/switchyard/cluster/etcd"
	"github.com/switchyard-ai/switchyard/cluster/etcd/etcdembed"
)

func startEtcd(t *testing.T, members int) *etcdembed.Cluster {
	t.Helper()
	ec, err := etcdembed.Start(t.TempDir(), members)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ec.Close)
	return ec
}

func openReplicas(t *testing.T, ec *etcdembed.Cluster, n int, tweak func(*etcd.Config)) []*etcd.Cluster {
	t.Helper()
	var out []*etcd.Cluster
	for i := range n {
		cfg := etcd.Config{Endpoints: ec.List(), ReplicaID: fmt.Sprintf("r%d", i), RequestTimeout: 500 * time.Millisecond,
			SyncInterval: 100 * time.Millisecond, MemberTTL: 3 * time.Second, BindTimeout: time.Second}
		if tweak != nil {
			tweak(&cfg)
		}
		c, err := etcd.Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		out = append(out, c)
	}
	return out
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSessionsFirstWriterWinsAcrossReplicas(t *testing.T) {
	ec := startEtcd(t, 1)
	reps := openReplicas(t, ec, 3, nil)
	now := time.Now()
	const keys = 40
	got := make([][3]string, keys)
	var wg sync.WaitGroup
	for k := range keys {
		for r, rep := range reps {
			wg.Go(func() {
				got[k][r] = rep.Sessions().Bind(now, fmt.Sprint("conv-", k), fmt.Sprint("ep-", r), "", time.Minute)
			})
		}
	}
	wg.Wait()
	for k, g := range got {
		if g[0] != g[1] || g[1] != g[2] {
			t.Fatalf("key %d: concurrent first binds disagree: %v", k, g)
		}
	}
	// Every replica's local cache converges on the winner through the watch.
	for k := range keys {
		for r, rep := range reps {
			eventually(t, 5*time.Second, "replica sees the binding", func() bool {
				ep, ok := rep.Sessions().Get(time.Now(), fmt.Sprint("conv-", k))
				return ok && ep == got[k][r]
			})
		}
	}
}

func TestSessionsMoveOnceForEveryone(t *testing.T) {
	ec := startEtcd(t, 1)
	reps := openReplicas(t, ec, 3, nil)
	now := time.Now()
	if ep := reps[0].Sessions().Bind(now, "conv", "ep-dead", "", time.Minute); ep != "ep-dead" {
		t.Fatalf("first bind = %q", ep)
	}
	for _, rep := range reps {
		eventually(t, 5*time.Second, "binding visible", func() bool { ep, _ := rep.Sessions().Get(time.Now(), "conv"); return ep == "ep-dead" })
	}
	// Two replicas find ep-dead gone at once and move the session, each to its own pick.
	var moved [2]string
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			moved[i] = reps[i+1].Sessions().Bind(now, "conv", fmt.Sprint("ep-new-", i), "ep-dead", time.Minute)
		})
	}
	wg.Wait()
	if moved[0] != moved[1] || moved[0] == "ep-dead" {
		t.Fatalf("moves disagree: %v", moved)
	}
	for _, rep := range reps {
		eventually(t, 5*time.Second, "move visible", func() bool { ep, _ := rep.Sessions().Get(time.Now(), "conv"); return ep == moved[0] })
	}
}

func TestSessionsOutliveTheirReplica(t *testing.T) {
	ec := startEtcd(t, 1)
	reps := openReplicas(t, ec, 1, nil)
	reps[0].Sessions().Bind(time.Now(), "conv", "ep-7", "", time.Minute)
	reps[0].Close()
	later := openReplicas(t, ec, 1, func(c *etcd.Config) { c.ReplicaID = "r-later" })
	if ep, ok := later[0].Sessions().Get(time.Now(), "conv"); !ok || ep != "ep-7" {
		t.Fatalf("binding after its replica left = %q, %v", ep, ok)
	}
}

func TestMembership(t *testing.T) {
	ec := startEtcd(t, 1)
	reps := openReplicas(t, ec, 3, nil)
	for _, rep := range reps {
		eventually(t, 5*time.Second, "three members", func() bool { return len(rep.Members()) == 3 })
	}
	reps[2].Close()
	eventually(t, 5*time.Second, "two members after one left", func() bool { return len(reps[0].Members()) == 2 })
	if st := reps[0].Status(); st.Mode != cluster.ModeShared || st.Members != 2 {
		t.Errorf("status = %+v", st)
	}
}

// offer runs TryAdd for one request-count charge on replicas in turn at rate per second for
// d, and returns how many were admitted.
func offer(reps []*etcd.Cluster, charge cluster.Charge, rate float64, d time.Duration) int64 {
	var admitted atomic.Int64
	interval := time.Duration(float64(time.Second) / rate)
	var wg sync.WaitGroup
	for r, rep := range reps {
		wg.Go(func() {
			tick := time.NewTicker(interval * time.Duration(len(reps)))
			defer tick.Stop()
			time.Sleep(interval * time.Duration(r))
			end := time.Now().Add(d)
			for time.Now().Before(end) {
				<-tick.C
				if ok, _ := rep.Counters().TryAdd(time.Now(), []cluster.Charge{charge}); ok {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return admitted.Load()
}

func TestCountersHoldALimitAcrossReplicas(t *testing.T) {
	ec := startEtcd(t, 1)
	reps := openReplicas(t, ec, 3, nil)
	const limit, rate = 300, 600.0 // 3× the limit offered over 1.5 s
	charge := cluster.Charge{Key: "rpm|tenant=a", Window: time.Hour, WindowStart: time.Now().Truncate(time.Hour), Max: limit, Amount: 1}
	if time.Until(charge.WindowEnd()) < time.Minute {
		t.Skip("too close to the end of the hour window")
	}
	before := writes(reps)
	start := time.Now()
	admitted := offer(reps, charge, rate, 1500*time.Millisecond)
	elapsed := time.Since(start)
	// docs/cluster.md: overshoot ≤ λ·S, S the staleness of the replicas' views of each
	// other's usage as they measured it (at least 200ms).
	stale := 200 * time.Millisecond
	for _, rep := range reps {
		stale = max(stale, rep.Status().Staleness)
	}
	bound := int64(rate*stale.Seconds()) + 1
	t.Logf("admitted %d of limit %d (bound %d, staleness %v); etcd writes %.0f/s", admitted, limit, limit+bound, stale, float64(writes(reps)-before)/elapsed.Seconds())
	if admitted > limit+bound {
		t.Errorf("admitted %d > limit %d + bound %d", admitted, limit, bound)
	}
	if admitted < limit*95/100 {
		t.Errorf("admitted %d < 95%% of the limit %d: quota stranded", admitted, limit)
	}
	// Once synced, every replica sees the same global total and refuses.
	for _, rep := range reps {
		eventually(t, 5*time.Second, "replica refuses once the total is synced", func() bool {
			ok, vals := rep.Counters().TryAdd(time.Now(), []cluster.Charge{charge})
			return !ok && vals[0] == admitted
		})
	}
	// One transaction per replica per sync interval at most, plus a few lease grants.
	if w := float64(writes(reps)-before) / elapsed.Seconds(); w > 3*10+10 {
		t.Errorf("etcd writes %.0f/s, want ≤ 40/s for 3 replicas at 100ms", w)
	}
}

func writes(reps []*etcd.Cluster) int64 {
	var n int64
	for _, r := range reps {
		n += r.Writes()
	}
	return n
}

func TestCountersShareTheRemainderWhileEtcdIsAway(t *testing.T) {
	ec := startEtcd(t, 1)
	// A member TTL well past a keep-alive's delay on a loaded machine: a lapsed lease would
	// leave a replica counting two members, and taking half the remainder, at the outage.
	reps := openReplicas(t, ec, 3, func(c *etcd.Config) { c.MemberTTL = 10 * time.Second })
	for _, rep := range reps {
		eventually(t, 5*time.Second, "three members", func() bool { return len(rep.Members()) == 3 })
	}
	const limit = 90
	charge := cluster.Charge{Key: "rpm|tenant=a", Window: time.Hour, WindowStart: time.Now().Truncate(time.Hour), Max: limit, Amount: 1}
	if time.Until(charge.WindowEnd()) < time.Minute {
		t.Skip("too close to the end of the hour window")
	}
	// 30 admitted on replica 0 before the outage, synced to all.
	for range 30 {
		if ok, _ := reps[0].Counters().TryAdd(time.Now(), []cluster.Charge{charge}); !ok {
			t.Fatal("refused below the limit")
		}
	}
	zero := charge
	zero.Amount = 0
	for _, rep := range reps {
		eventually(t, 5*time.Second, "usage synced", func() bool {
			_, v := rep.Counters().TryAdd(time.Now(), []cluster.Charge{zero})
			return v[0] == 30
		})
	}
	ec.Stop(0)
	for _, rep := range reps {
		eventually(t, 10*time.Second, "degraded", func() bool { return rep.Status().Mode == cluster.ModeDegraded })
	}
	// Each replica may admit its third of the 60 left: 20, together exactly the limit.
	total := int64(30)
	for i, rep := range reps {
		n := int64(0)
		for range 100 {
			if ok, _ := rep.Counters().TryAdd(time.Now(), []cluster.Charge{charge}); ok {
				n++
			}
		}
		if n != 20 {
			t.Errorf("replica %d admitted %d while degraded, want its share 20", i, n)
		}
		total += n
	}
	if total > limit {
		t.Errorf("total %d > limit %d during the outage", total, limit)
	}
	if err := ec.Restart(0); err != nil {
		t.Fatal(err)
	}
	for _, rep := range reps {
		eventually(t, 15*time.Second, "shared again", func() bool { return rep.Status().Mode == cluster.ModeShared })
	}
	// Reconciled: every replica sees everything admitted, outage included.
	for _, rep := range reps {
		eventually(t, 5*time.Second, "totals reconciled", func() bool {
			_, v := rep.Counters().TryAdd(time.Now(), []cluster.Charge{zero})
			return v[0] == total
		})
	}
}

func TestSessionsBindLocallyWhileEtcdIsAwayThenReconcile(t *testing.T) {
	ec := startEtcd(t, 1)
	reps := openReplicas(t, ec, 2, nil)
	ec.Stop(0)
	for _, rep := range reps {
		eventually(t, 10*time.Second, "degraded", func() bool { return rep.Status().Mode == cluster.ModeDegraded })
	}
	now := time.Now()
	if ep := reps[0].Sessions().Bind(now, "conv", "ep-a", "", time.Minute); ep != "ep-a" {
		t.Fatalf("local bind = %q", ep)
	}
	if ep, ok := reps[0].Sessions().Get(now, "conv"); !ok || ep != "ep-a" {
		t.Fatalf("local binding not served: %q %v", ep, ok)
	}
	if err := ec.Restart(0); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "binding written after etcd returned and seen by the other replica", func() bool {
		ep, ok := reps[1].Sessions().Get(time.Now(), "conv")
		return ok && ep == "ep-a"
	})
}

// TestUsernamePassword: with etcd authentication on, a replica joins with the right password
// and is refused, at Open, with a wrong one.
func TestUsernamePassword(t *testing.T) {
	ec := startEtcd(t, 1)
	admin, err := clientv3.New(clientv3.Config{Endpoints: ec.List(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx := context.Background()
	for _, step := range []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", "root-pw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.UserAdd(ctx, "router", "s3cret"); return err },
		func() error { _, err := admin.RoleAdd(ctx, "switchyard"); return err },
		func() error {
			_, err := admin.RoleGrantPermission(ctx, "switchyard", "/switchyard/", clientv3.GetPrefixRangeEnd("/switchyard/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := admin.UserGrantRole(ctx, "router", "switchyard"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	// etcd checks passwords with bcrypt, slow under the race detector: a generous dial timeout.
	cfg := etcd.Config{Endpoints: ec.List(), Username: "router", Password: "wrong", DialTimeout: 20 * time.Second}
	if c, err := etcd.Open(ctx, cfg); err == nil {
		c.Close()
		t.Fatal("Open succeeded with a wrong password")
	} else if !errors.Is(err, etcd.ErrUnavailable) {
		t.Errorf("wrong password: %v, want ErrUnavailable", err)
	}
	cfg.Password = "s3cret"
	c, err := etcd.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ep := c.Sessions().Bind(time.Now(), "conv", "ep-1", "", time.Minute); ep != "ep-1" {
		t.Errorf("bind with auth = %q", ep)
	}
	if st := c.Status(); st.Mode != cluster.ModeShared {
		t.Errorf("status with auth = %+v", st)
	}
}

func TestSessionsLookupAndDelete(t *testing.T) {
	ec := startEtcd(t, 1)
	reps := openReplicas(t, ec, 2, nil)
	now := time.Now()
	reps[0].Sessions().Bind(now, "p|conv", "ep-1", "", time.Minute)
	eventually(t, 5*time.Second, "binding mirrored", func() bool { _, ok := reps[1].Sessions().Lookup(time.Now(), "p|conv"); return ok })
	b, _ := reps[1].Sessions().Lookup(time.Now(), "p|conv")
	if b.Endpoint != "ep-1" || b.Expires.Before(now.Add(59*time.Second)) {
		t.Errorf("lookup = %+v", b)
	}
	if err := reps[1].Sessions().Delete("p|conv"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "deletion mirrored", func() bool { _, ok := reps[0].Sessions().Lookup(time.Now(), "p|conv"); return !ok })
}

// TestDrainsShared: a drain set on one replica is seen at once there, reaches the others
// through the watch (calling their change functions), is found by a replica that opens
// later, and is lifted for all by an undrain on any. Names with slashes and colons keep
// apart.
func TestDrainsShared(t *testing.T) {
	ec := startEtcd(t, 1)
	rs := openReplicas(t, ec, 2, nil)
	var changes atomic.Int32
	rs[1].Drains().OnChange(func() { changes.Add(1) })
	ctx := context.Background()
	const pool, ep = "large/gpus", "10.0.0.7:8000"
	if err := rs[0].Drains().SetDrained(ctx, pool, ep, true); err != nil {
		t.Fatal(err)
	}
	if !rs[0].Drains().Drained(pool, ep) {
		t.Fatal("the replica that drained does not see it")
	}
	eventually(t, 5*time.Second, "the other replica to see the drain", func() bool { return rs[1].Drains().Drained(pool, ep) })
	if changes.Load() == 0 {
		t.Error("the other replica's change function was not called")
	}
	for _, other := range [][2]string{{"large", "gpus/10.0.0.7:8000"}, {pool, "10.0.0.7:8001"}, {"large/gpus/10.0.0.7:8000", ""}} {
		if rs[1].Drains().Drained(other[0], other[1]) {
			t.Errorf("%q/%q drained too", other[0], other[1])
		}
	}
	later := openReplicas(t, ec, 1, func(c *etcd.Config) { c.ReplicaID = "later" })[0]
	if !later.Drains().Drained(pool, ep) {
		t.Error("a replica opened after the drain does not see it")
	}
	if err := rs[1].Drains().SetDrained(ctx, pool, ep, false); err != nil {
		t.Fatal(err)
	}
	for i, r := range []*etcd.Cluster{rs[0], rs[1], later} {
		eventually(t, 5*time.Second, fmt.Sprintf("replica %d to see the undrain", i), func() bool { return !r.Drains().Drained(pool, ep) })
	}
}
