package router

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-ai/switchyard/policy"
)

// BearerToken returns the token of an `Authorization: Bearer …` header (or gRPC metadata
// authorization), or "" when there is none. Every front door reads credentials this way.
func BearerToken(h http.Header) string {
	if a := h.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

// SetQuotaHeaders writes the x-ratelimit-{limit,remaining,reset}-{requests,tokens} headers for
// the tightest request and token limits, as OpenAI names them; gRPC carries them as response
// metadata. It runs for every admitted request, so the keys are set in canonical form, as
// Header.Set would store them, and the values share one allocation.
func SetQuotaHeaders(h http.Header, q policy.Quota) {
	var vals []string
	for i, st := range [2]*policy.LimitStatus{q.Requests, q.Tokens} {
		if st == nil {
			continue
		}
		if vals == nil {
			vals = make([]string, 0, 6)
		}
		n := len(vals)
		vals = append(vals, strconv.FormatInt(st.Limit, 10), strconv.FormatInt(max(0, st.Remaining), 10),
			st.Reset.Round(time.Millisecond).String())
		for j, key := range quotaHeaderKeys[i] {
			h[key] = vals[n+j : n+j+1 : n+j+1] // capped: an Add copies instead of writing over the next value
		}
	}
}

// quotaHeaderKeys are the rate-limit headers of request and of token limits, canonical.
var quotaHeaderKeys = [2][3]string{
	{"X-Ratelimit-Limit-Requests", "X-Ratelimit-Remaining-Requests", "X-Ratelimit-Reset-Requests"},
	{"X-Ratelimit-Limit-Tokens", "X-Ratelimit-Remaining-Tokens", "X-Ratelimit-Reset-Tokens"},
}
