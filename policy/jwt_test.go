package policy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchyard-ai/switchyard/policy"
)

const jwtAudience = "switchyard"

// jwtClock is a settable clock for the verifier.
type jwtClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *jwtClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *jwtClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// jwtIdP is an identity provider over loopback: signing keys, a JWKS endpoint that counts
// its hits and serves whatever keys it currently holds, and an OIDC discovery document.
type jwtIdP struct {
	t     *testing.T
	srv   *httptest.Server
	clock *jwtClock

	rsa1, rsa2  *rsa.PrivateKey
	ec256       *ecdsa.PrivateKey
	ec256b      *ecdsa.PrivateKey
	ec384       *ecdsa.PrivateKey
	ed          ed25519.PrivateKey
	hits        atomic.Int64
	refreshDone chan error // OnRefresh results

	mu              sync.Mutex
	jwks            []map[string]any
	discoveryIssuer string
	gate            chan struct{} // when set, a JWKS request signals entered and waits on it
	entered         chan struct{}
}

func newJWTIdP(t *testing.T) *jwtIdP {
	t.Helper()
	p := &jwtIdP{
		t:           t,
		clock:       &jwtClock{now: time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)},
		rsa1:        jwtRSAKey(t, 2048),
		rsa2:        jwtRSAKey(t, 2048),
		ec256:       jwtECKey(t, elliptic.P256()),
		ec256b:      jwtECKey(t, elliptic.P256()),
		ec384:       jwtECKey(t, elliptic.P384()),
		refreshDone: make(chan error, 64),
	}
	var err error
	if _, p.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	small := jwtRSAKey(t, 1024)
	offCurve := jwkOf(t, "ec-off-curve", "", &p.ec256.PublicKey)
	offCurve["y"] = offCurve["x"] // (x, x) is not on P-256 for a random x

	p.jwks = []map[string]any{
		jwkOf(t, "rsa-1", "RS256", &p.rsa1.PublicKey),
		jwkOf(t, "rsa-any", "", &p.rsa1.PublicKey),
		jwkOf(t, "ec-256", "", &p.ec256.PublicKey),
		jwkOf(t, "ec-256b", "ES256", &p.ec256b.PublicKey),
		jwkOf(t, "ec-384", "ES384", &p.ec384.PublicKey),
		jwkOf(t, "ed-1", "", p.ed.Public()),
		// Entries that must be skipped without spoiling the set.
		{"kty": "oct", "kid": "hmac", "k": base64.RawURLEncoding.EncodeToString([]byte("secret"))},
		withField(jwkOf(t, "rsa-enc", "", &p.rsa2.PublicKey), "use", "enc"),
		jwkOf(t, "rsa-small", "", &small.PublicKey),
		offCurve,
		{"kty": "OKP", "crv": "X25519", "kid": "x25519", "x": base64.RawURLEncoding.EncodeToString(make([]byte, 32))},
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		p.mu.Lock()
		gate, entered := p.gate, p.entered
		body, err := json.Marshal(map[string]any{"keys": p.jwks})
		p.mu.Unlock()
		if gate != nil {
			entered <- struct{}{}
			<-gate
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		iss := p.discoveryIssuer
		p.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": iss, "jwks_uri": p.srv.URL + "/jwks"})
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	p.discoveryIssuer = p.srv.URL
	return p
}

// config is a JWKS-URL configuration with the IdP's clock; edit the copy as needed.
func (p *jwtIdP) config() policy.JWTConfig {
	return policy.JWTConfig{
		Issuer:     "https://idp.example",
		Audiences:  []string{"other", jwtAudience},
		JWKSURL:    p.srv.URL + "/jwks",
		HTTPClient: p.srv.Client(),
		Now:        p.clock.Now,
		OnRefresh: func(err error) {
			select {
			case p.refreshDone <- err:
			default:
			}
		},
	}
}

func (p *jwtIdP) verifier(cfg policy.JWTConfig) *policy.JWTVerifier {
	p.t.Helper()
	v, err := policy.NewJWTVerifier(context.Background(), cfg)
	if err != nil {
		p.t.Fatalf("NewJWTVerifier: %v", err)
	}
	return v
}

// setKeys replaces the served JWKS with the named entries of the current one plus extra.
func (p *jwtIdP) setKeys(keep []string, extra ...map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	next := slices.DeleteFunc(slices.Clone(p.jwks), func(k map[string]any) bool {
		kid, _ := k["kid"].(string)
		return !slices.Contains(keep, kid)
	})
	p.jwks = append(next, extra...)
}

func (p *jwtIdP) kids() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, k := range p.jwks {
		kid, _ := k["kid"].(string)
		out = append(out, kid)
	}
	return out
}

// claims are valid claims for the verifier from config, changed by edits; a nil value
// removes the claim.
func (p *jwtIdP) claims(edits map[string]any) jwt.MapClaims {
	now := p.clock.Now()
	c := jwt.MapClaims{
		"iss": "https://idp.example",
		"aud": jwtAudience,
		"sub": "user-1",
		"exp": now.Add(5 * time.Minute).Unix(),
		"iat": now.Unix(),
	}
	for k, v := range edits {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// sign signs claims with golang-jwt; kid "" leaves the header without one.
func (p *jwtIdP) sign(m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	p.t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		p.t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// forge builds a token with an arbitrary header, signing header.payload with m and key (or
// leaving the signature empty when m is nil).
func (p *jwtIdP) forge(hdr map[string]any, claims jwt.MapClaims, m jwt.SigningMethod, key any) string {
	p.t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			p.t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(hdr) + "." + enc(claims)
	if m == nil {
		return input + "."
	}
	sig, err := m.Sign(input, key)
	if err != nil {
		p.t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func jwkOf(t *testing.T, kid, alg string, pub any) map[string]any {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	k := map[string]any{"kid": kid, "use": "sig"}
	if alg != "" {
		k["alg"] = alg
	}
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		k["kty"], k["n"], k["e"] = "RSA", b64(pub.N.Bytes()), b64(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		pt, err := pub.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		size := (len(pt) - 1) / 2
		k["kty"], k["crv"] = "EC", pub.Curve.Params().Name
		k["x"], k["y"] = b64(pt[1:1+size]), b64(pt[1+size:])
	case ed25519.PublicKey:
		k["kty"], k["crv"], k["x"] = "OKP", "Ed25519", b64(pub)
	default:
		t.Fatalf("jwkOf: unexpected key %T", pub)
	}
	return k
}

func withField(k map[string]any, name string, v any) map[string]any {
	k[name] = v
	return k
}

func jwtRSAKey(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func jwtECKey(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestJWTVerifyAccepts(t *testing.T) {
	p := newJWTIdP(t)
	v := p.verifier(p.config())
	now := p.clock.Now()
	exp := now.Add(5 * time.Minute).Truncate(time.Second)

	tests := []struct {
		name  string
		token string
		want  policy.Claims
	}{
		{
			name: "RS256 with tenant, models array and priority",
			token: p.sign(jwt.SigningMethodRS256, p.rsa1, "rsa-1", p.claims(map[string]any{
				"tenant": "acme", "models": []string{"llama-3-8b", "qwen"}, "priority": "interactive",
			})),
			want: policy.Claims{Subject: "user-1", Tenant: "acme", Priority: "interactive", Models: []string{"llama-3-8b", "qwen"}, Expiry: exp},
		},
		{
			name:  "ES256 with models as a space-separated string",
			token: p.sign(jwt.SigningMethodES256, p.ec256, "ec-256", p.claims(map[string]any{"tenant": "acme", "models": " llama-3-8b  qwen "})),
			want:  policy.Claims{Subject: "user-1", Tenant: "acme", Models: []string{"llama-3-8b", "qwen"}, Expiry: exp},
		},
		{
			name:  "ES384 without tenant falls back to sub",
			token: p.sign(jwt.SigningMethodES384, p.ec384, "ec-384", p.claims(nil)),
			want:  policy.Claims{Subject: "user-1", Tenant: "user-1", Expiry: exp},
		},
		{
			name:  "EdDSA",
			token: p.sign(jwt.SigningMethodEdDSA, p.ed, "ed-1", p.claims(map[string]any{"tenant": "acme", "models": []string{}})),
			want:  policy.Claims{Subject: "user-1", Tenant: "acme", Models: []string{}, Expiry: exp},
		},
		{
			name:  "PS256 with a key whose JWK names no alg",
			token: p.sign(jwt.SigningMethodPS256, p.rsa1, "rsa-any", p.claims(nil)),
			want:  policy.Claims{Subject: "user-1", Tenant: "user-1", Expiry: exp},
		},
		{
			name:  "no kid and exactly one key usable for ES384",
			token: p.sign(jwt.SigningMethodES384, p.ec384, "", p.claims(nil)),
			want:  policy.Claims{Subject: "user-1", Tenant: "user-1", Expiry: exp},
		},
		{
			name:  "aud array containing a configured audience",
			token: p.sign(jwt.SigningMethodRS256, p.rsa1, "rsa-1", p.claims(map[string]any{"aud": []string{"someone-else", jwtAudience}})),
			want:  policy.Claims{Subject: "user-1", Tenant: "user-1", Expiry: exp},
		},
		{
			name:  "expired just within leeway",
			token: p.sign(jwt.SigningMethodRS256, p.rsa1, "rsa-1", p.claims(map[string]any{"exp": now.Add(-29 * time.Second).Unix()})),
			want:  policy.Claims{Subject: "user-1", Tenant: "user-1", Expiry: now.Add(-29 * time.Second)},
		},
		{
			name: "nbf and iat ahead within leeway",
			token: p.sign(jwt.SigningMethodRS256, p.rsa1, "rsa-1", p.claims(map[string]any{
				"nbf": now.Add(20 * time.Second).Unix(), "iat": now.Add(20 * time.Second).Unix(),
			})),
			want: policy.Claims{Subject: "user-1", Tenant: "user-1", Expiry: exp},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v.Verify(context.Background(), tt.token)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.Subject != tt.want.Subject || got.Tenant != tt.want.Tenant || got.Priority != tt.want.Priority ||
				!slices.Equal(got.Models, tt.want.Models) || (got.Models == nil) != (tt.want.Models == nil) ||
				!got.Expiry.Equal(tt.want.Expiry) {
				t.Errorf("Verify = %+v, want %+v", got, tt.want)
			}
		})
	}
	if n := p.hits.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1 (at construction)", n)
	}
}

func TestJWTVerifyRejects(t *testing.T) {
	p := newJWTIdP(t)
	v := p.verifier(p.config())
	now := p.clock.Now()
	rs256 := func(edits map[string]any) string {
		return p.sign(jwt.SigningMethodRS256, p.rsa1, "rsa-1", p.claims(edits))
	}
	valid := rs256(map[string]any{"tenant": "acme"})
	parts := strings.Split(valid, ".")

	pkix, err := x509.MarshalPKIXPublicKey(&p.rsa1.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pkixPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})
	pkcs1PEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&p.rsa1.PublicKey)})

	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	sig[len(sig)/2] ^= 0x01
	tamperedSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	otherPayload := strings.Split(rs256(map[string]any{"tenant": "root"}), ".")[1]
	tamperedPayload := parts[0] + "." + otherPayload + "." + parts[2]

	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"expired beyond leeway", rs256(map[string]any{"exp": now.Add(-31 * time.Second).Unix()}), "expired"},
		{"missing exp", rs256(map[string]any{"exp": nil}), "missing expiry"},
		{"nbf in the future", rs256(map[string]any{"nbf": now.Add(time.Minute).Unix()}), "not yet valid"},
		{"iat in the future", rs256(map[string]any{"iat": now.Add(time.Minute).Unix()}), "issued in the future"},
		{"wrong issuer", rs256(map[string]any{"iss": "https://evil.example"}), "wrong issuer"},
		{"missing issuer", rs256(map[string]any{"iss": nil}), "wrong issuer"},
		{"wrong audience", rs256(map[string]any{"aud": "someone-else"}), "wrong audience"},
		{"wrong audience array", rs256(map[string]any{"aud": []string{"a", "b"}}), "wrong audience"},
		{"missing audience", rs256(map[string]any{"aud": nil}), "wrong audience"},
		{"alg none unsigned", p.forge(map[string]any{"alg": "none", "kid": "rsa-1"}, p.claims(nil), nil, nil), "algorithm not allowed"},
		{"alg None unsigned", p.forge(map[string]any{"alg": "None"}, p.claims(nil), nil, nil), "algorithm not allowed"},
		{"HS256 keyed with the RSA key's PKIX PEM", p.sign(jwt.SigningMethodHS256, pkixPEM, "rsa-1", p.claims(nil)), "algorithm not allowed"},
		{"HS256 keyed with the RSA key's PKCS1 PEM", p.sign(jwt.SigningMethodHS256, pkcs1PEM, "rsa-1", p.claims(nil)), "algorithm not allowed"},
		{"HS256 keyed with the RSA key's DER", p.sign(jwt.SigningMethodHS256, pkix, "rsa-any", p.claims(nil)), "algorithm not allowed"},
		{"HS256 naming the JWKS oct key", p.sign(jwt.SigningMethodHS256, []byte("secret"), "hmac", p.claims(nil)), "algorithm not allowed"},
		{"RS256 signature under an ES256 header, RSA kid", p.forge(map[string]any{"alg": "ES256", "kid": "rsa-1"}, p.claims(nil), jwt.SigningMethodRS256, p.rsa1), "key does not match algorithm"},
		{"RS256 signature under an ES256 header, EC kid", p.forge(map[string]any{"alg": "ES256", "kid": "ec-256"}, p.claims(nil), jwt.SigningMethodRS256, p.rsa1), "bad signature"},
		{"ES384 token naming a P-256 key", p.sign(jwt.SigningMethodES384, p.ec384, "ec-256", p.claims(nil)), "key does not match algorithm"},
		{"PS256 naming a JWK pinned to RS256", p.sign(jwt.SigningMethodPS256, p.rsa1, "rsa-1", p.claims(nil)), "key does not match algorithm"},
		{"tampered payload", tamperedPayload, "bad signature"},
		{"tampered signature", tamperedSig, "bad signature"},
		{"signed by another key under a known kid", p.sign(jwt.SigningMethodRS256, p.rsa2, "rsa-1", p.claims(nil)), "bad signature"},
		{"unknown kid", p.sign(jwt.SigningMethodRS256, p.rsa2, "rsa-2", p.claims(nil)), "unknown key"},
		{"kid of a JWK with use enc", p.sign(jwt.SigningMethodRS256, p.rsa2, "rsa-enc", p.claims(nil)), "unknown key"},
		{"kid of a JWK with a point off the curve", p.sign(jwt.SigningMethodES256, p.ec256, "ec-off-curve", p.claims(nil)), "unknown key"},
		{"no kid with two usable ES256 keys", p.sign(jwt.SigningMethodES256, p.ec256, "", p.claims(nil)), "unknown key"},
		{"critical header extension", p.forge(map[string]any{"alg": "RS256", "kid": "rsa-1", "crit": []string{"exp"}, "exp": 1}, p.claims(nil), jwt.SigningMethodRS256, p.rsa1), "unsupported critical header"},
		{"models not strings", rs256(map[string]any{"models": []any{"a", 1}}), "malformed"},
		{"tenant not a string", rs256(map[string]any{"tenant": 7}), "malformed"},
		{"exp not a number", rs256(map[string]any{"exp": "tomorrow"}), "malformed"},
		{"neither tenant nor sub", rs256(map[string]any{"sub": nil}), "missing tenant"},
		{"two parts", parts[0] + "." + parts[1], "malformed"},
		{"four parts", valid + ".x", "malformed"},
		{"header not base64url", "!!." + parts[1] + "." + parts[2], "malformed"},
		{"padded signature", valid + "==", "malformed"},
		{"empty", "", "malformed"},
		{"oversized", parts[0] + "." + strings.Repeat("A", 20<<10) + "." + parts[2], "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v.Verify(context.Background(), tt.token)
			if !errors.Is(err, policy.ErrInvalidToken) {
				t.Fatalf("Verify = %+v, %v; want an error wrapping ErrInvalidToken", got, err)
			}
			if want := "policy: invalid token: " + tt.reason; err.Error() != want {
				t.Errorf("Verify error = %q, want %q", err, want)
			}
		})
	}
	if n := p.hits.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1: unknown kids within MinRefreshGap of construction must not refetch", n)
	}
}

func TestJWTAlgorithmAllowList(t *testing.T) {
	p := newJWTIdP(t)
	cfg := p.config()
	cfg.Algorithms = []string{"ES256"}
	v := p.verifier(cfg)
	if _, err := v.Verify(context.Background(), p.sign(jwt.SigningMethodES256, p.ec256, "ec-256", p.claims(nil))); err != nil {
		t.Errorf("ES256: %v", err)
	}
	_, err := v.Verify(context.Background(), p.sign(jwt.SigningMethodRS256, p.rsa1, "rsa-any", p.claims(nil)))
	if !errors.Is(err, policy.ErrInvalidToken) || !strings.HasSuffix(err.Error(), "algorithm not allowed") {
		t.Errorf("RS256 with only ES256 allowed: err = %v, want algorithm not allowed", err)
	}
}

func TestJWTKeyRotation(t *testing.T) {
	p := newJWTIdP(t)
	v := p.verifier(p.config())
	ctx := context.Background()
	old := p.sign(jwt.SigningMethodRS256, p.rsa1, "rsa-1", p.claims(nil))
	rotated := p.sign(jwt.SigningMethodRS256, p.rsa2, "rsa-2", p.claims(nil))
	check := func(step, token string, wantErr string, wantHits int64) {
		t.Helper()
		_, err := v.Verify(ctx, token)
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("%s: Verify: %v", step, err)
		case wantErr != "" && (err == nil || !strings.HasSuffix(err.Error(), wantErr)):
			t.Errorf("%s: Verify err = %v, want %q", step, err, wantErr)
		}
		if n := p.hits.Load(); n != wantHits {
			t.Errorf("%s: JWKS fetched %d times, want %d", step, n, wantHits)
		}
	}

	p.clock.Advance(31 * time.Second)
	check("new kid before the JWKS serves it", rotated, "unknown key", 2)

	p.setKeys(p.kids(), jwkOf(t, "rsa-2", "RS256", &p.rsa2.PublicKey))
	check("new kid within the refresh gap", rotated, "unknown key", 2)
	p.clock.Advance(31 * time.Second)
	check("new kid after the gap", rotated, "", 3)
	check("new kid again, from the cache", rotated, "", 3)

	p.setKeys([]string{"rsa-2"})
	check("removed key before any refresh", old, "", 3)
	p.clock.Advance(31 * time.Second)
	check("another unknown kid refreshes", p.sign(jwt.SigningMethodRS256, p.rsa2, "rsa-3", p.claims(nil)), "unknown key", 4)
	check("removed key after the refresh", old, "unknown key", 4)
	check("current key after the refresh", rotated, "", 4)
}

func TestJWTRefreshRateLimited(t *testing.T) {
	p := newJWTIdP(t)
	v := p.verifier(p.config())
	p.clock.Advance(time.Minute)

	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Go(func() {
			_, err := v.Verify(context.Background(), p.sign(jwt.SigningMethodES256, p.ec256, fmt.Sprintf("ghost-%d", i), p.claims(nil)))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, policy.ErrInvalidToken) {
			t.Errorf("unknown kid: err = %v, want ErrInvalidToken", err)
		}
	}
	for i := range 10 {
		_, _ = v.Verify(context.Background(), p.sign(jwt.SigningMethodES256, p.ec256, fmt.Sprintf("late-%d", i), p.claims(nil)))
	}
	if n := p.hits.Load(); n != 2 {
		t.Errorf("JWKS fetched %d times, want 2 (construction and one refresh)", n)
	}
	p.clock.Advance(30 * time.Second)
	_, _ = v.Verify(context.Background(), p.sign(jwt.SigningMethodES256, p.ec256, "after-gap", p.claims(nil)))
	if n := p.hits.Load(); n != 3 {
		t.Errorf("after the gap: JWKS fetched %d times, want 3", n)
	}
}

func TestJWTConcurrentRefreshIsShared(t *testing.T) {
	p := newJWTIdP(t)
	v := p.verifier(p.config())
	p.setKeys(p.kids(), jwkOf(t, "rsa-2", "", &p.rsa2.PublicKey))
	p.clock.Advance(time.Minute)

	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	p.mu.Lock()
	p.gate, p.entered = gate, entered
	p.mu.Unlock()

	token := p.sign(jwt.SigningMethodRS256, p.rsa2, "rsa-2", p.claims(nil))
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	wg.Go(func() {
		_, err := v.Verify(context.Background(), token)
		errs <- err
	})
	<-entered // the first caller's fetch is now held at the JWKS endpoint

	// A caller whose context ends while the fetch is held gets its context's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := v.Verify(ctx, token); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify with a cancelled context during a refresh: err = %v, want context.Canceled", err)
	}

	for range 19 {
		wg.Go(func() {
			_, err := v.Verify(context.Background(), token)
			errs <- err
		})
	}
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Verify: %v", err)
		}
	}
	if n := p.hits.Load(); n != 2 {
		t.Errorf("JWKS fetched %d times, want 2", n)
	}
}

func TestJWTRunRefreshesPeriodically(t *testing.T) {
	p := newJWTIdP(t)
	cfg := p.config()
	cfg.RefreshInterval = time.Millisecond
	v := p.verifier(cfg)
	if err := <-p.refreshDone; err != nil {
		t.Fatalf("initial refresh: %v", err)
	}
	token := p.sign(jwt.SigningMethodEdDSA, p.ed, "ed-2", p.claims(nil))
	edPub := p.ed.Public()
	p.setKeys(nil, jwkOf(t, "ed-2", "EdDSA", edPub))
	// The clock does not move, so Verify cannot refresh on its own: only Run can.
	if _, err := v.Verify(context.Background(), token); err == nil {
		t.Fatal("Verify accepted a kid the verifier has not fetched")
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		v.Run(ctx)
	}()
	select {
	case err := <-p.refreshDone:
		if err != nil {
			t.Fatalf("periodic refresh: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not refresh")
	}
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Errorf("Verify after a periodic refresh: %v", err)
	}
	cancel()
	<-done
}

func TestJWTDiscovery(t *testing.T) {
	p := newJWTIdP(t)
	cfg := p.config()
	cfg.JWKSURL = ""
	cfg.DiscoveryURL = p.srv.URL + "/"
	cfg.Issuer = p.srv.URL
	v := p.verifier(cfg)
	claims := p.claims(map[string]any{"iss": p.srv.URL})
	if _, err := v.Verify(context.Background(), p.sign(jwt.SigningMethodES256, p.ec256, "ec-256", claims)); err != nil {
		t.Errorf("Verify: %v", err)
	}

	p.mu.Lock()
	p.discoveryIssuer = "https://impostor.example"
	p.mu.Unlock()
	if _, err := policy.NewJWTVerifier(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "issuer") {
		t.Errorf("NewJWTVerifier with a mismatched discovery issuer: err = %v, want an issuer error", err)
	}
}

func TestJWTConfigErrors(t *testing.T) {
	p := newJWTIdP(t)
	serve := func(status int, body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	huge := `{"keys":[],"pad":"` + strings.Repeat("x", 1<<20) + `"}`
	onlyUnknown := `{"keys":[{"kty":"oct","k":"c2VjcmV0"},{"kty":"EC","crv":"secp256k1","x":"AA","y":"AA"}]}`

	tests := []struct {
		name string
		edit func(*policy.JWTConfig)
		want string
	}{
		{"alg none", func(c *policy.JWTConfig) { c.Algorithms = []string{"RS256", "none"} }, "none"},
		{"HS256", func(c *policy.JWTConfig) { c.Algorithms = []string{"HS256"} }, "HS256"},
		{"hs512 in lower case", func(c *policy.JWTConfig) { c.Algorithms = []string{"ES256", "hs512"} }, "hs512"},
		{"unsupported alg", func(c *policy.JWTConfig) { c.Algorithms = []string{"ES256K"} }, "ES256K"},
		{"no issuer", func(c *policy.JWTConfig) { c.Issuer = "" }, "issuer"},
		{"no audiences", func(c *policy.JWTConfig) { c.Audiences = nil }, "audience"},
		{"empty audience", func(c *policy.JWTConfig) { c.Audiences = []string{""} }, "audience"},
		{"both URLs", func(c *policy.JWTConfig) { c.DiscoveryURL = p.srv.URL }, "exactly one"},
		{"no URL", func(c *policy.JWTConfig) { c.JWKSURL = "" }, "exactly one"},
		{"not an http URL", func(c *policy.JWTConfig) { c.JWKSURL = "file:///etc/jwks.json" }, "URL"},
		{"negative leeway", func(c *policy.JWTConfig) { c.Leeway = -time.Second }, "negative"},
		{"JWKS not 200", func(c *policy.JWTConfig) { c.JWKSURL = serve(http.StatusNotFound, "{}") }, "status 404"},
		{"JWKS over 1 MiB", func(c *policy.JWTConfig) { c.JWKSURL = serve(http.StatusOK, huge) }, "larger than"},
		{"JWKS not JSON", func(c *policy.JWTConfig) { c.JWKSURL = serve(http.StatusOK, "<html>") }, "jwks"},
		{"JWKS without usable keys", func(c *policy.JWTConfig) { c.JWKSURL = serve(http.StatusOK, onlyUnknown) }, "no usable"},
		{"discovery not 200", func(c *policy.JWTConfig) { c.JWKSURL, c.DiscoveryURL = "", serve(http.StatusInternalServerError, "") }, "discovery"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := p.config()
			cfg.HTTPClient = nil // the default client, as the servers here differ
			tt.edit(&cfg)
			v, err := policy.NewJWTVerifier(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewJWTVerifier = %v, %v; want an error containing %q", v, err, tt.want)
			}
		})
	}
}
