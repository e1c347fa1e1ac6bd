package policy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalidToken is wrapped by every error Verify returns for a token it rejects. The
// wrapping error adds a short reason ("expired", "wrong audience", …) that never contains
// any part of the token, so it is safe to log and to show the caller.
var ErrInvalidToken = errors.New("policy: invalid token")

// Reasons a token is rejected. They are fixed strings so that nothing from the token can
// reach a log line or a response body.
var (
	errMalformed       = invalidToken("malformed")
	errAlgNotAllowed   = invalidToken("algorithm not allowed")
	errUnknownKey      = invalidToken("unknown key")
	errKeyMismatch     = invalidToken("key does not match algorithm")
	errBadSignature    = invalidToken("bad signature")
	errWrongIssuer     = invalidToken("wrong issuer")
	errWrongAudience   = invalidToken("wrong audience")
	errNoExpiry        = invalidToken("missing expiry")
	errExpired         = invalidToken("expired")
	errNotYetValid     = invalidToken("not yet valid")
	errIssuedInFuture  = invalidToken("issued in the future")
	errNoTenant        = invalidToken("missing tenant")
	errCritical        = invalidToken("unsupported critical header")
	errRefreshThrottle = errors.New("policy: jwks refresh throttled")
)

func invalidToken(reason string) error { return fmt.Errorf("%w: %s", ErrInvalidToken, reason) }

const (
	// fetchTimeout bounds one JWKS or discovery request, whatever the caller's context allows.
	fetchTimeout = 5 * time.Second
	// maxDocumentBytes caps a JWKS or discovery response; real ones are a few KiB.
	maxDocumentBytes = 1 << 20
	// maxTokenBytes caps what Verify will decode, so a huge bearer costs nothing.
	maxTokenBytes = 16 << 10
	// minRSABits is the smallest RSA modulus accepted from a JWKS (RFC 7518 §3.3).
	minRSABits = 2048
	// maxNumericDate rejects exp/nbf/iat values too large to be real times (year ~5138).
	maxNumericDate = 1e11
)

// defaultAlgorithms are the asymmetric algorithms accepted when JWTConfig.Algorithms is empty.
var defaultAlgorithms = []string{
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

// JWTConfig configures a JWTVerifier. Zero fields take the defaults in their comments.
type JWTConfig struct {
	// Issuer is required: the iss every token must carry, compared exactly.
	Issuer string
	// Audiences is required: a token's aud (a string or an array) must contain one of these.
	Audiences []string
	// JWKSURL is where the signing keys are published. Exactly one of JWKSURL and
	// DiscoveryURL must be set.
	JWKSURL string
	// DiscoveryURL is an OIDC issuer URL. The verifier reads
	// {DiscoveryURL}/.well-known/openid-configuration once, at construction, requires its
	// issuer to equal Issuer, and uses its jwks_uri.
	DiscoveryURL string
	// Algorithms are the allowed JWS algorithms; default RS256 RS384 RS512 PS256 PS384
	// PS512 ES256 ES384 ES512 EdDSA. "none", HS256/384/512 and anything else not in the
	// default list are rejected at construction.
	Algorithms []string
	// Leeway is the clock skew allowed when checking exp, nbf and iat; default 30s.
	Leeway time.Duration
	// TenantClaim names the claim holding the tenant; default "tenant". When a token lacks
	// it, the tenant is the token's sub.
	TenantClaim string
	// ModelsClaim names the claim listing the models the caller may use, as an array of
	// strings or a space-separated string; default "models". A token without it is
	// unrestricted; one with an empty list may use no model.
	ModelsClaim string
	// PriorityClaim names the claim holding the caller's default priority class; default
	// "priority".
	PriorityClaim string
	// RefreshInterval is how often Run refetches the JWKS; default 15m.
	RefreshInterval time.Duration
	// MinRefreshGap is the least time between two fetches triggered by tokens with an
	// unknown kid; default 30s.
	MinRefreshGap time.Duration
	// HTTPClient fetches the discovery document and the JWKS; default a client with a 5s
	// timeout.
	HTTPClient *http.Client
	// Now is the clock used for token times and refresh gaps; default time.Now.
	Now func() time.Time
	// OnRefresh, if set, is called after every JWKS fetch attempt with its result (nil on
	// success), so callers can log or count failures. It must not block. Default: not
	// called.
	OnRefresh func(error)
}

// Claims is what a verified token says about its caller.
type Claims struct {
	// Subject is the token's sub; empty when absent.
	Subject string
	// Tenant is the tenant claim, or Subject when the token has no tenant claim.
	Tenant string
	// Priority is the caller's default priority class; empty when absent.
	Priority string
	// Models are the models the caller may use; nil means unrestricted.
	Models []string
	// Expiry is the token's exp.
	Expiry time.Time
}

// JWTVerifier checks bearer JWTs against an issuer's published keys. It is safe for
// concurrent use: Verify reads an immutable key set swapped atomically and takes a lock only
// to join or start a refresh when a token names a key it does not hold.
type JWTVerifier struct {
	issuer        string
	audiences     []string
	jwksURL       string
	algorithms    map[string]bool
	leeway        time.Duration
	tenantClaim   string
	modelsClaim   string
	priorityClaim string
	interval      time.Duration
	minGap        time.Duration
	client        *http.Client
	now           func() time.Time
	onRefresh     func(error)
	parser        *jwt.Parser

	keys atomic.Pointer[keySet]

	mu        sync.Mutex // guards inflight and lastFetch
	inflight  *fetchCall // the fetch in progress, shared by everyone who needs it
	lastFetch time.Time  // start of the latest fetch attempt, by v.now
}

// fetchCall is one JWKS fetch that concurrent callers wait on together.
type fetchCall struct {
	done chan struct{}
	err  error // written before done is closed
}

// NewJWTVerifier validates cfg, resolves the JWKS URL (through discovery when
// cfg.DiscoveryURL is set) and fetches the keys once; it returns an error if any of that
// fails. It blocks on those requests, each bounded by ctx and a 5s timeout. Call Run to keep
// the keys fresh.
func NewJWTVerifier(ctx context.Context, cfg JWTConfig) (*JWTVerifier, error) {
	v, err := newJWTVerifier(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.DiscoveryURL != "" {
		if v.jwksURL, err = v.discover(ctx, cfg.DiscoveryURL); err != nil {
			return nil, err
		}
	}
	if err := v.refresh(ctx, false); err != nil {
		return nil, err
	}
	return v, nil
}

// newJWTVerifier applies defaults and validates; it does no I/O.
func newJWTVerifier(cfg JWTConfig) (*JWTVerifier, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("policy: jwt: issuer is required")
	}
	if len(cfg.Audiences) == 0 || slices.Contains(cfg.Audiences, "") {
		return nil, errors.New("policy: jwt: at least one non-empty audience is required")
	}
	if (cfg.JWKSURL == "") == (cfg.DiscoveryURL == "") {
		return nil, errors.New("policy: jwt: exactly one of JWKSURL and DiscoveryURL is required")
	}
	for _, u := range []string{cfg.JWKSURL, cfg.DiscoveryURL} {
		if u == "" {
			continue
		}
		if err := checkURL(u); err != nil {
			return nil, err
		}
	}
	if cfg.Leeway < 0 || cfg.RefreshInterval < 0 || cfg.MinRefreshGap < 0 {
		return nil, errors.New("policy: jwt: leeway and refresh intervals must not be negative")
	}
	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = defaultAlgorithms
	}
	allowed := make(map[string]bool, len(algs))
	for _, a := range algs {
		switch {
		case strings.EqualFold(a, "none"):
			return nil, errors.New(`policy: jwt: algorithm "none" is never allowed`)
		case strings.HasPrefix(strings.ToUpper(a), "HS"):
			return nil, fmt.Errorf("policy: jwt: symmetric algorithm %q is not allowed; use an asymmetric one", a)
		case !slices.Contains(defaultAlgorithms, a):
			return nil, fmt.Errorf("policy: jwt: unsupported algorithm %q", a)
		}
		allowed[a] = true
	}
	methods := make([]string, 0, len(allowed))
	for a := range allowed {
		methods = append(methods, a)
	}
	slices.Sort(methods)

	v := &JWTVerifier{
		issuer:        cfg.Issuer,
		audiences:     slices.Clone(cfg.Audiences),
		jwksURL:       cfg.JWKSURL,
		algorithms:    allowed,
		leeway:        orDefault(cfg.Leeway, 30*time.Second),
		tenantClaim:   orDefault(cfg.TenantClaim, "tenant"),
		modelsClaim:   orDefault(cfg.ModelsClaim, "models"),
		priorityClaim: orDefault(cfg.PriorityClaim, "priority"),
		interval:      orDefault(cfg.RefreshInterval, 15*time.Minute),
		minGap:        orDefault(cfg.MinRefreshGap, 30*time.Second),
		client:        cfg.HTTPClient,
		now:           cfg.Now,
		onRefresh:     cfg.OnRefresh,
		// Claims are checked by hand below, so that every rule is visible here and each
		// failure gets its own reason; the library only decodes and checks signatures.
		parser: jwt.NewParser(
			jwt.WithValidMethods(methods),
			jwt.WithoutClaimsValidation(),
			jwt.WithJSONNumber(),
			jwt.WithStrictDecoding(),
		),
	}
	if v.client == nil {
		v.client = &http.Client{Timeout: fetchTimeout}
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// orDefault returns v, or def when v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("policy: jwt: %q is not an http(s) URL", raw)
	}
	return nil
}

// Run refetches the JWKS every RefreshInterval until ctx is done. A failed fetch keeps the
// current keys and is reported to OnRefresh. The caller owns the goroutine Run blocks in.
func (v *JWTVerifier) Run(ctx context.Context) {
	t := time.NewTicker(v.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = v.refresh(ctx, false) // reported to OnRefresh; the old keys stay in use
		}
	}
}

// Verify checks token's signature against the issuer's keys and its registered claims, and
// returns what it says about the caller. A token naming an unknown kid triggers one JWKS
// refresh (at most one per MinRefreshGap, shared by concurrent callers, bounded by ctx and
// 5s) before it is rejected. Rejections wrap ErrInvalidToken; if ctx ends while waiting for
// a refresh, Verify returns ctx's error instead.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (Claims, error) {
	if len(token) > maxTokenBytes || strings.Count(token, ".") != 2 {
		return Claims{}, errMalformed
	}
	hdr, err := decodeHeader(token[:strings.IndexByte(token, '.')])
	if err != nil {
		return Claims{}, err
	}
	if !v.algorithms[hdr.Alg] {
		return Claims{}, errAlgNotAllowed
	}

	var keyErr error // the reason the key lookup failed, kept out of the library's error
	mc := jwt.MapClaims{}
	_, err = v.parser.ParseWithClaims(token, mc, func(t *jwt.Token) (any, error) {
		if t.Method.Alg() != hdr.Alg {
			keyErr = errMalformed // cannot happen: both read the same header
			return nil, keyErr
		}
		var key any
		key, keyErr = v.key(ctx, hdr.Alg, hdr.Kid)
		return key, keyErr
	})
	switch {
	case keyErr != nil:
		return Claims{}, keyErr
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return Claims{}, errBadSignature
	case err != nil:
		return Claims{}, errMalformed
	}
	return v.claims(mc)
}

// header is the part of a JOSE header the verifier acts on.
type header struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Crit json.RawMessage `json:"crit"`
}

func decodeHeader(seg string) (header, error) {
	var h header
	b, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil || json.Unmarshal(b, &h) != nil {
		return h, errMalformed
	}
	// RFC 7515 §4.1.11: extensions listed in crit must be understood, and we understand none.
	if h.Crit != nil {
		return h, errCritical
	}
	return h, nil
}

// key finds the verification key for a token, refreshing the JWKS once if its kid is unknown.
func (v *JWTVerifier) key(ctx context.Context, alg, kid string) (any, error) {
	key, err := v.keys.Load().find(alg, kid)
	if !errors.Is(err, errUnknownKey) || kid == "" {
		return key, err
	}
	_ = v.refresh(ctx, true) // whatever happened, another caller's refresh may have landed
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return v.keys.Load().find(alg, kid)
}

// refresh fetches the JWKS and swaps in the new key set, or joins a fetch already under
// way. When onDemand is set, it does nothing if a fetch started less than MinRefreshGap ago.
func (v *JWTVerifier) refresh(ctx context.Context, onDemand bool) error {
	v.mu.Lock()
	if c := v.inflight; c != nil {
		v.mu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	now := v.now()
	if onDemand && !v.lastFetch.IsZero() && now.Sub(v.lastFetch) < v.minGap {
		v.mu.Unlock()
		return errRefreshThrottle
	}
	c := &fetchCall{done: make(chan struct{})}
	v.inflight, v.lastFetch = c, now
	v.mu.Unlock()

	ks, err := v.fetchKeys(ctx)
	if err == nil {
		v.keys.Store(ks)
	}
	c.err = err
	v.mu.Lock()
	v.inflight = nil
	v.mu.Unlock()
	close(c.done)
	if v.onRefresh != nil {
		v.onRefresh(err)
	}
	return err
}

// discover reads the OIDC discovery document and returns its jwks_uri.
func (v *JWTVerifier) discover(ctx context.Context, issuerURL string) (string, error) {
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	u := strings.TrimSuffix(issuerURL, "/") + "/.well-known/openid-configuration"
	if err := v.getJSON(ctx, u, &doc); err != nil {
		return "", fmt.Errorf("policy: jwt: discovery: %w", err)
	}
	if doc.Issuer != v.issuer {
		return "", fmt.Errorf("policy: jwt: discovery document names issuer %q, want %q", doc.Issuer, v.issuer)
	}
	if err := checkURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("policy: jwt: discovery jwks_uri: %w", err)
	}
	return doc.JWKSURI, nil
}

func (v *JWTVerifier) fetchKeys(ctx context.Context) (*keySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := v.getJSON(ctx, v.jwksURL, &doc); err != nil {
		return nil, fmt.Errorf("policy: jwt: jwks: %w", err)
	}
	ks := &keySet{byKid: map[string][]*jwk{}}
	for _, raw := range doc.Keys {
		k, ok := parseJWK(raw)
		if !ok {
			continue // unknown kty, enc key or broken entry: the rest of the set still counts
		}
		ks.all = append(ks.all, k)
		if k.kid != "" {
			ks.byKid[k.kid] = append(ks.byKid[k.kid], k)
		}
	}
	// An empty set is far more likely a broken endpoint than a real rotation to no keys;
	// keeping the current keys is the safer failure.
	if len(ks.all) == 0 {
		return nil, errors.New("policy: jwt: jwks holds no usable signing keys")
	}
	return ks, nil
}

// getJSON GETs rawURL and decodes a 200 response of at most 1 MiB into dst.
func (v *JWTVerifier) getJSON(ctx context.Context, rawURL string, dst any) error {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", rawURL, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", rawURL, err)
	}
	if len(body) > maxDocumentBytes {
		return fmt.Errorf("GET %s: response larger than %d bytes", rawURL, maxDocumentBytes)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("GET %s: %w", rawURL, err)
	}
	return nil
}

// keySet is an immutable snapshot of a JWKS; it is replaced, never modified.
type keySet struct {
	all   []*jwk
	byKid map[string][]*jwk
}

// find returns the key (or keys, when a kid is shared) that may verify a token with this
// alg and kid. A token without kid needs a set holding exactly one key usable for its alg.
func (ks *keySet) find(alg, kid string) (any, error) {
	cands := ks.all
	if kid != "" {
		if cands = ks.byKid[kid]; len(cands) == 0 {
			return nil, errUnknownKey
		}
	}
	var usable []jwt.VerificationKey
	for _, k := range cands {
		if k.usableFor(alg) {
			usable = append(usable, k.pub)
		}
	}
	switch {
	case len(usable) == 1:
		return usable[0], nil
	case kid == "":
		return nil, errUnknownKey // none, or too many to choose from without a kid
	case len(usable) == 0:
		return nil, errKeyMismatch
	default:
		return jwt.VerificationKeySet{Keys: usable}, nil
	}
}

// jwk is one public signing key from a JWKS.
type jwk struct {
	kid string
	alg string // the JWK's own alg; "" allows any alg of the key's family
	pub any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// usableFor reports whether the key may verify a token signed with alg: the key's type (and
// curve) must be the one alg is defined for, and the JWK's alg, if any, must be alg itself.
func (k *jwk) usableFor(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return pub.Curve == elliptic.P256()
		case "ES384":
			return pub.Curve == elliptic.P384()
		case "ES512":
			return pub.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// parseJWK decodes one JWKS entry. It reports false for entries that cannot verify
// signatures: unknown kty or curve, use other than "sig", key_ops without "verify", or
// invalid key material.
func parseJWK(raw json.RawMessage) (*jwk, bool) {
	var j struct {
		Kty    string   `json:"kty"`
		Kid    string   `json:"kid"`
		Use    string   `json:"use"`
		Alg    string   `json:"alg"`
		KeyOps []string `json:"key_ops"`
		Crv    string   `json:"crv"`
		N      string   `json:"n"`
		E      string   `json:"e"`
		X      string   `json:"x"`
		Y      string   `json:"y"`
	}
	if json.Unmarshal(raw, &j) != nil {
		return nil, false
	}
	if j.Use != "" && j.Use != "sig" {
		return nil, false
	}
	if j.KeyOps != nil && !slices.Contains(j.KeyOps, "verify") {
		return nil, false
	}
	var pub any
	var ok bool
	switch j.Kty {
	case "RSA":
		pub, ok = rsaKey(j.N, j.E)
	case "EC":
		pub, ok = ecKey(j.Crv, j.X, j.Y)
	case "OKP":
		pub, ok = okpKey(j.Crv, j.X)
	}
	if !ok {
		return nil, false
	}
	return &jwk{kid: j.Kid, alg: j.Alg, pub: pub}, true
}

func b64(s string) ([]byte, bool) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	return b, err == nil && len(b) > 0
}

func rsaKey(n, e string) (*rsa.PublicKey, bool) {
	nb, ok1 := b64(n)
	eb, ok2 := b64(e)
	if !ok1 || !ok2 || len(eb) > 4 {
		return nil, false
	}
	mod := new(big.Int).SetBytes(nb)
	exp := new(big.Int).SetBytes(eb).Int64()
	// crypto/rsa rejects larger exponents, and 1 or even ones are not RSA keys.
	if mod.BitLen() < minRSABits || exp < 3 || exp%2 == 0 || exp > math.MaxInt32 {
		return nil, false
	}
	return &rsa.PublicKey{N: mod, E: int(exp)}, true
}

func ecKey(crv, x, y string) (*ecdsa.PublicKey, bool) {
	var curve elliptic.Curve
	switch crv {
	case "P-256":
		curve = elliptic.P256()
	case "P-384":
		curve = elliptic.P384()
	case "P-521":
		curve = elliptic.P521()
	default:
		return nil, false
	}
	size := (curve.Params().BitSize + 7) / 8
	xb, ok1 := b64(x)
	yb, ok2 := b64(y)
	// RFC 7518 §6.2.1.2 fixes the coordinate length to the curve's size.
	if !ok1 || !ok2 || len(xb) != size || len(yb) != size {
		return nil, false
	}
	point := bytes.Join([][]byte{{4}, xb, yb}, nil)
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, point) // rejects points off the curve
	return pub, err == nil
}

func okpKey(crv, x string) (ed25519.PublicKey, bool) {
	xb, ok := b64(x)
	if crv != "Ed25519" || !ok || len(xb) != ed25519.PublicKeySize {
		return nil, false
	}
	return ed25519.PublicKey(xb), true
}

// claims checks the registered claims of a token whose signature is valid and maps the
// rest to Claims.
func (v *JWTVerifier) claims(mc jwt.MapClaims) (Claims, error) {
	if iss, ok := mc["iss"].(string); !ok || iss != v.issuer {
		return Claims{}, errWrongIssuer
	}
	aud, err := stringsClaim(mc["aud"], false)
	if err != nil || !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(v.audiences, a) }) {
		return Claims{}, errWrongAudience
	}

	now := v.now()
	exp, err := numericDate(mc, "exp")
	switch {
	case err != nil:
		return Claims{}, err
	case exp.IsZero():
		return Claims{}, errNoExpiry
	case now.After(exp.Add(v.leeway)):
		return Claims{}, errExpired
	}
	if nbf, err := numericDate(mc, "nbf"); err != nil {
		return Claims{}, err
	} else if !nbf.IsZero() && now.Add(v.leeway).Before(nbf) {
		return Claims{}, errNotYetValid
	}
	if iat, err := numericDate(mc, "iat"); err != nil {
		return Claims{}, err
	} else if !iat.IsZero() && now.Add(v.leeway).Before(iat) {
		return Claims{}, errIssuedInFuture
	}

	c := Claims{Expiry: exp}
	var ok bool
	if c.Subject, ok = optionalString(mc, "sub"); !ok {
		return Claims{}, errMalformed
	}
	if c.Priority, ok = optionalString(mc, v.priorityClaim); !ok {
		return Claims{}, errMalformed
	}
	if c.Tenant, ok = optionalString(mc, v.tenantClaim); !ok {
		return Claims{}, errMalformed
	}
	if c.Tenant == "" {
		c.Tenant = c.Subject
	}
	if c.Tenant == "" {
		return Claims{}, errNoTenant
	}
	if m, present := mc[v.modelsClaim]; present && m != nil {
		if c.Models, err = stringsClaim(m, true); err != nil {
			return Claims{}, err
		}
	}
	return c, nil
}

// numericDate reads a NumericDate claim (RFC 7519 §2); the zero time means absent.
func numericDate(mc jwt.MapClaims, name string) (time.Time, error) {
	raw, ok := mc[name]
	if !ok || raw == nil {
		return time.Time{}, nil
	}
	n, ok := raw.(json.Number)
	if !ok {
		return time.Time{}, errMalformed
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > maxNumericDate {
		return time.Time{}, errMalformed
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

// optionalString reads a string claim; it reports false if the claim is present and not a
// string.
func optionalString(mc jwt.MapClaims, name string) (string, bool) {
	raw, present := mc[name]
	if !present || raw == nil {
		return "", true
	}
	s, ok := raw.(string)
	return s, ok
}

// stringsClaim reads a claim that is a string or an array of strings. With split, a string
// is a space-separated list (as OAuth scopes are); without, it is one value. The result is
// never nil, so a present but empty list stays distinguishable from an absent one.
func stringsClaim(raw any, split bool) ([]string, error) {
	switch t := raw.(type) {
	case string:
		if split {
			return append([]string{}, strings.Fields(t)...), nil
		}
		return []string{t}, nil
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, errMalformed
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, errMalformed
}
