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
// metadata.
func SetQuotaHeaders(h http.Header, q policy.Quota) {
	for _, l := range []struct {
		kind string
		st   *policy.LimitStatus
	}{{"requests", q.Requests}, {"tokens", q.Tokens}} {
		if l.st == nil {
			continue
		}
		h.Set("x-ratelimit-limit-"+l.kind, strconv.FormatInt(l.st.Limit, 10))
		h.Set("x-ratelimit-remaining-"+l.kind, strconv.FormatInt(max(0, l.st.Remaining), 10))
		h.Set("x-ratelimit-reset-"+l.kind, l.st.Reset.Round(time.Millisecond).String())
	}
}
