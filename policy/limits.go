package policy

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/switchyard-ai/switchyard/cluster"
)

// ErrRateLimited is what a *Denial unwraps to; front doors map it to 429 / RESOURCE_EXHAUSTED.
var ErrRateLimited = errors.New("policy: rate limited")

// LimitKind is what a limit counts.
type LimitKind int

// The limit kinds.
const (
	LimitRequests LimitKind = iota // requests admitted; the zero value
	LimitTokens                    // tokens reserved at admission, corrected by settlement
)

func (k LimitKind) String() string {
	switch k {
	case LimitRequests:
		return "requests"
	case LimitTokens:
		return "tokens"
	}
	return fmt.Sprintf("LimitKind(%d)", int(k))
}

// Limit is one configured rate limit: at most Max requests or tokens in each fixed window of
// length Window. Windows are aligned to multiples of Window since the zero time (for windows
// that divide a day, to whole minutes, hours or days UTC), so every replica agrees on them.
type Limit struct {
	Name   string        // shown in headers and errors, e.g. "tenant-rpm"; unique among limits
	Kind   LimitKind     // default LimitRequests
	Max    int64         // per window; 0 refuses every request the limit matches
	Window time.Duration // required, positive
	// By lists the request attributes the counter is keyed by: any of "tenant", "model",
	// "route". Each combination of their values has its own counter; empty means one counter
	// shared by all matching requests.
	By []string
	// Match restricts the limit to requests whose attributes equal these values (e.g.
	// {"tenant": "acme"}); empty matches all.
	Match map[string]string
}

// Validate reports whether the limit can be enforced.
func (l Limit) Validate() error {
	switch {
	case l.Name == "":
		return errors.New("policy: limit has no name")
	case l.Kind != LimitRequests && l.Kind != LimitTokens:
		return fmt.Errorf("policy: limit %q: unknown kind %d", l.Name, int(l.Kind))
	case l.Max < 0:
		return fmt.Errorf("policy: limit %q: max %d is negative", l.Name, l.Max)
	case l.Window <= 0:
		return fmt.Errorf("policy: limit %q: window must be positive, not %v", l.Name, l.Window)
	}
	var seen [numAttrs]bool
	for _, name := range l.By {
		a, ok := attrByName(name)
		if !ok {
			return fmt.Errorf("policy: limit %q: by %q: want tenant, model or route", l.Name, name)
		}
		if seen[a] {
			return fmt.Errorf("policy: limit %q: by %q twice", l.Name, name)
		}
		seen[a] = true
	}
	for name := range l.Match {
		if _, ok := attrByName(name); !ok {
			return fmt.Errorf("policy: limit %q: match %q: want tenant, model or route", l.Name, name)
		}
	}
	return nil
}

// ValidateLimits validates each limit and checks that their names are unique: the name is
// part of every counter key, so two limits with one name would share counters.
func ValidateLimits(limits []Limit) error {
	names := make(map[string]bool, len(limits))
	for _, l := range limits {
		if err := l.Validate(); err != nil {
			return err
		}
		if names[l.Name] {
			return fmt.Errorf("policy: limit %q defined twice", l.Name)
		}
		names[l.Name] = true
	}
	return nil
}

// Subject is what limits are keyed by for one request.
type Subject struct{ Tenant, Model, Route string }

// attr is a request attribute limits can key by and match on.
type attr uint8

const (
	attrTenant attr = iota
	attrModel
	attrRoute
	numAttrs
)

var attrNames = [numAttrs]string{attrTenant: "tenant", attrModel: "model", attrRoute: "route"}

func attrByName(name string) (attr, bool) {
	for a, n := range attrNames {
		if n == name {
			return attr(a), true
		}
	}
	return 0, false
}

func (s *Subject) get(a attr) string {
	switch a {
	case attrTenant:
		return s.Tenant
	case attrModel:
		return s.Model
	default:
		return s.Route
	}
}

// Limiter admits requests against a set of limits kept in cluster.Counters. It is safe for
// concurrent use and immutable once built. A decision is O(matching limits) with no I/O: the
// counters decide from local state.
type Limiter struct {
	counters cluster.Counters
	limits   []compiledLimit
	now      func() time.Time
}

// compiledLimit is a Limit prepared for matching and keying.
type compiledLimit struct {
	Limit
	by    []attr
	match [numAttrs]*string // nil: any value
}

// LimiterOption configures a Limiter.
type LimiterOption func(*Limiter)

// WithClock sets the clock that places requests in windows and times their resets; default
// time.Now.
func WithClock(now func() time.Time) LimiterOption {
	return func(l *Limiter) {
		if now != nil {
			l.now = now
		}
	}
}

// NewLimiter returns a limiter enforcing limits with counters. Limits are copied. It panics
// if ValidateLimits(limits) fails: configuration is validated before it is built.
func NewLimiter(counters cluster.Counters, limits []Limit, opts ...LimiterOption) *Limiter {
	if err := ValidateLimits(limits); err != nil {
		panic(err)
	}
	l := &Limiter{counters: counters, now: time.Now}
	for _, o := range opts {
		o(l)
	}
	for _, lim := range limits {
		lim.By = append([]string(nil), lim.By...)
		c := compiledLimit{Limit: lim}
		for _, name := range lim.By {
			a, _ := attrByName(name)
			c.by = append(c.by, a)
		}
		if len(lim.Match) > 0 {
			m := make(map[string]string, len(lim.Match))
			for name, v := range lim.Match {
				m[name] = v
				a, _ := attrByName(name)
				c.match[a] = &v
			}
			c.Limit.Match = m
		}
		l.limits = append(l.limits, c)
	}
	return l
}

func (c *compiledLimit) matches(s *Subject) bool {
	for a, want := range c.match {
		if want != nil && s.get(attr(a)) != *want {
			return false
		}
	}
	return true
}

// key is the counter key of the limit for s: the name, then each By attribute as
// "|name=value", e.g. "tenant-tpm|tenant=acme|model=m". Values are escaped so that no value
// can forge another's key.
func (c *compiledLimit) key(s *Subject) string {
	if len(c.by) == 0 {
		return c.Name
	}
	var b strings.Builder
	n := len(c.Name)
	for _, a := range c.by {
		n += 2 + len(attrNames[a]) + len(s.get(a))
	}
	b.Grow(n)
	b.WriteString(c.Name)
	for _, a := range c.by {
		b.WriteByte('|')
		b.WriteString(attrNames[a])
		b.WriteByte('=')
		b.WriteString(escapeValue(s.get(a)))
	}
	return b.String()
}

var valueEscaper = strings.NewReplacer("%", "%25", "|", "%7C", "=", "%3D")

func escapeValue(v string) string {
	if !strings.ContainsAny(v, "%|=") {
		return v
	}
	return valueEscaper.Replace(v)
}

// Reserve admits a request for s that expects to use the given number of tokens (prompt
// estimate plus output budget), charging 1 to every matching request limit and that number
// to every matching token limit, atomically: either every counter is charged or none.
// Negative tokens count as 0.
//
// On refusal it returns a *Denial (which unwraps to ErrRateLimited) and the request must not
// proceed. A reservation larger than a token limit's Max can never pass; it is refused with a
// RetryAfter of the limit's whole window rather than the time left in the current one.
func (l *Limiter) Reserve(s Subject, tokens int64) (*Reservation, error) {
	tokens = max(tokens, 0)
	now := l.now()
	r := &Reservation{counters: l.counters, now: l.now, tokens: tokens}
	r.limits, r.charges = r.limitsBuf[:0], r.chargesBuf[:0]
	for i := range l.limits {
		c := &l.limits[i]
		if !c.matches(&s) {
			continue
		}
		amount := int64(1)
		if c.Kind == LimitTokens {
			amount = tokens
		}
		r.limits = append(r.limits, c)
		r.charges = append(r.charges, cluster.Charge{
			Key: c.key(&s), Window: c.Window, WindowStart: now.Truncate(c.Window), Max: c.Max, Amount: amount,
		})
	}
	if len(r.charges) == 0 {
		return r, nil
	}
	ok, values := l.counters.TryAdd(now, r.charges)
	r.quota = quotaOf(now, r.limits, r.charges, values, ok, &r.statusBuf)
	if ok {
		return r, nil
	}
	return nil, denial(now, r.limits, r.charges, values, r.quota)
}

// quotaOf finds the tightest request and token limits. values are the counters after the
// charges when admitted, or as found when refused.
// The statuses it returns are kept in buf: the tightest request limit's in buf[0] and the
// tightest token limit's in buf[1].
func quotaOf(now time.Time, limits []*compiledLimit, charges []cluster.Charge, values []int64, admitted bool, buf *[2]LimitStatus) Quota {
	var q Quota
	for i, c := range limits {
		st := LimitStatus{
			Name:      c.Name,
			Limit:     c.Max,
			Remaining: max(c.Max-valueAt(values, i, charges, admitted), 0),
			Reset:     charges[i].WindowEnd().Sub(now),
		}
		tightest, slot := &q.Requests, &buf[0]
		if c.Kind == LimitTokens {
			tightest, slot = &q.Tokens, &buf[1]
		}
		if *tightest == nil || st.Remaining < (*tightest).Remaining {
			*slot = st
			*tightest = slot
		}
	}
	return q
}

// valueAt is counter i's value; without a value from the counters, it is taken as the
// amount just charged when admitted and as empty when refused.
func valueAt(values []int64, i int, charges []cluster.Charge, admitted bool) int64 {
	switch {
	case i < len(values):
		return values[i]
	case admitted:
		return charges[i].Amount
	}
	return 0
}

// denial explains a refusal: the first limit that could never pass, else the first that is
// full, else (when the counters refused for a reason their values do not show, as a shared
// implementation may) the first with the least room.
func denial(now time.Time, limits []*compiledLimit, charges []cluster.Charge, values []int64, q Quota) *Denial {
	for i, ch := range charges {
		if ch.Amount > ch.Max {
			return &Denial{Limit: limits[i].Limit, RetryAfter: retryAfter(ch.Window), Quota: q}
		}
	}
	refused, least := -1, int64(0)
	for i, ch := range charges {
		room := ch.Max - valueAt(values, i, charges, false) - ch.Amount
		if room < 0 {
			refused = i
			break
		}
		if refused < 0 || room < least {
			refused, least = i, room
		}
	}
	ch := charges[refused]
	return &Denial{Limit: limits[refused].Limit, RetryAfter: retryAfter(ch.WindowEnd().Sub(now)), Quota: q}
}

// retryAfter rounds d up to whole seconds, at least one, as Retry-After headers carry.
func retryAfter(d time.Duration) time.Duration {
	d = (d + time.Second - 1).Truncate(time.Second)
	return max(d, time.Second)
}

// Reservation is an admitted request's charge against its limits. Settle it once the actual
// usage is known. It is safe for concurrent use.
type Reservation struct {
	counters cluster.Counters
	now      func() time.Time
	tokens   int64
	limits   []*compiledLimit
	charges  []cluster.Charge // as reserved
	quota    Quota
	settled  atomic.Bool
	// Room for the limits and charges of a request matching a few limits, the usual case,
	// so that reserving allocates no more for them.
	limitsBuf  [4]*compiledLimit
	chargesBuf [4]cluster.Charge
	statusBuf  [2]LimitStatus
}

// Settle replaces the reserved token amount by the actual usage (more or less), in the
// windows the reservation was charged to; a stream that ran past its reservation keeps
// counting, and an aborted one keeps what it consumed. The difference goes to the same
// counters and window starts as the reservation even if the window has since rolled over:
// the old window no longer admits anything, so charging it is harmless, and the new window
// is not charged for usage admitted by the old one. Negative actualTokens count as 0.
//
// Settle is idempotent: only the first call counts. Requests are never refunded. It does
// nothing on a nil Reservation.
func (r *Reservation) Settle(actualTokens int64) {
	if r == nil || !r.settled.CompareAndSwap(false, true) {
		return
	}
	delta := max(actualTokens, 0) - r.tokens
	if delta == 0 {
		return
	}
	var charges []cluster.Charge
	for i, c := range r.limits {
		if c.Kind == LimitTokens {
			ch := r.charges[i]
			ch.Amount = delta
			charges = append(charges, ch)
		}
	}
	if len(charges) > 0 {
		r.counters.Add(r.now(), charges)
	}
}

// Charge adds tokens that a long-lived request (a Realtime session) has used so far to its
// token limits, in the windows current now, and reports whether every one of them still has
// room there; false means the caller's budget is spent and the session should end. It may be
// called any number of times, before or after Settle, and does nothing on a nil Reservation
// or for tokens ≤ 0 but report.
func (r *Reservation) Charge(tokens int64) bool {
	if r == nil {
		return true
	}
	now := r.now()
	var charges []cluster.Charge
	for i, c := range r.limits {
		if c.Kind == LimitTokens {
			ch := r.charges[i]
			ch.WindowStart, ch.Amount = now.Truncate(c.Window), max(tokens, 0)
			charges = append(charges, ch)
		}
	}
	if len(charges) == 0 {
		return true
	}
	if tokens > 0 {
		r.counters.Add(now, charges)
	}
	// A charge of nothing reads the counters without changing them.
	for i := range charges {
		charges[i].Amount = 0
	}
	ok, values := r.counters.TryAdd(now, charges)
	for i, v := range values {
		if v >= charges[i].Max {
			ok = false
		}
	}
	return ok
}

// Status is the quota left after the reservation, for x-ratelimit-* headers: the tightest
// request limit and the tightest token limit that matched, as of admission. It is the zero
// Quota on a nil Reservation.
func (r *Reservation) Status() Quota {
	if r == nil {
		return Quota{}
	}
	return r.quota
}

// Quota is the tightest request and token limits that applied to a request, for
// x-ratelimit-{limit,remaining,reset}-{requests,tokens} headers.
type Quota struct {
	Requests, Tokens *LimitStatus // nil when no limit of that kind applies
}

// LimitStatus is one limit's state in the current window. The least Remaining is the
// tightest; ties go to the limit configured first.
type LimitStatus struct {
	Name      string
	Limit     int64         // the limit's Max
	Remaining int64         // what is left in the window, never negative
	Reset     time.Duration // until the window ends
}

// Denial is the error of a refused reservation.
type Denial struct {
	// Limit is the limit that refused: the first that the request could never pass if any,
	// else the first that was full. Its By and Match belong to the limiter and must not be
	// modified.
	Limit Limit
	// RetryAfter is the time until that limit's window resets, rounded up to whole seconds,
	// at least 1s.
	RetryAfter time.Duration
	// Quota is the state found, for the 429's x-ratelimit-* headers.
	Quota Quota
}

func (d *Denial) Error() string {
	return fmt.Sprintf("policy: rate limited by %s (%d %s per %v); retry after %v",
		d.Limit.Name, d.Limit.Max, d.Limit.Kind, d.Limit.Window, d.RetryAfter)
}

// Unwrap returns ErrRateLimited.
func (d *Denial) Unwrap() error { return ErrRateLimited }
