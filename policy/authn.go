package policy

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Errors the authenticator and authorizer return; front doors map them to 401 / 403 and
// UNAUTHENTICATED / PERMISSION_DENIED.
var (
	ErrUnauthenticated = errors.New("policy: unauthenticated")
	ErrForbidden       = errors.New("policy: permission denied")
)

// Identity is an authenticated caller. It is immutable once returned.
type Identity struct {
	Tenant  string // tenant the caller acts for
	Subject string // key name, token subject or certificate subject
	Method  string // "api_key", "jwt", "mtls" or "anonymous"
	// Models the caller may use; nil means every model.
	Models []string
	// Priority is the caller's default priority class; empty means the router's default.
	Priority string
}

// Allows reports whether the identity may use model.
func (id *Identity) Allows(model string) bool {
	return id.Models == nil || slices.Contains(id.Models, model)
}

// Tenant is a group of callers sharing attributes and limits.
type Tenant struct {
	Name     string
	Models   []string // allowed models; nil = all
	Priority string   // default priority class; "" = the router's default
}

// APIKey is a configured key, stored only as the SHA-256 of its secret.
type APIKey struct {
	Name   string
	SHA256 [32]byte
	Tenant string
}

// ParseKeyHash decodes a hex SHA-256 digest as configured for an API key.
func ParseKeyHash(h string) ([32]byte, error) {
	var out [32]byte
	b, err := hex.DecodeString(strings.TrimSpace(h))
	if err != nil || len(b) != 32 {
		return out, fmt.Errorf("policy: %q is not a hex SHA-256 digest", h)
	}
	copy(out[:], b)
	return out, nil
}

// HashKey is the SHA-256 hex digest of a key secret, as it goes into configuration.
func HashKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// CertRule maps a verified client certificate to a tenant by a DNS or URI SAN, or by its
// subject's string form (e.g. "CN=batch-job,O=Acme").
type CertRule struct {
	SAN, Subject string
	Tenant       string
}

// Credentials are what a request presented.
type Credentials struct {
	// Bearer is the token from `Authorization: Bearer …` (or gRPC metadata authorization).
	Bearer string
	// Certs is the verified client certificate chain of an mTLS connection; nil otherwise.
	Certs []*x509.Certificate
}

// tokenVerifier is what the authenticator needs of a JWT verifier.
type tokenVerifier interface {
	Verify(ctx context.Context, token string) (Claims, error)
}

// Authenticator turns credentials into an Identity: an API key or a JWT from the bearer token,
// else a mapped client certificate, else anonymous access where configured. Safe for
// concurrent use; it holds only immutable state.
type Authenticator struct {
	keys      map[[32]byte]APIKey
	tenants   map[string]Tenant
	jwt       tokenVerifier
	certs     []CertRule
	anonymous *Identity
}

// AuthOption configures an Authenticator.
type AuthOption func(*Authenticator)

// WithAPIKeys accepts these keys.
func WithAPIKeys(keys ...APIKey) AuthOption {
	return func(a *Authenticator) {
		for _, k := range keys {
			a.keys[k.SHA256] = k
		}
	}
}

// WithTenants sets the tenants' attributes. A tenant named by a credential but not listed has
// no restrictions.
func WithTenants(ts ...Tenant) AuthOption {
	return func(a *Authenticator) {
		for _, t := range ts {
			a.tenants[t.Name] = t
		}
	}
}

// WithJWT accepts bearer tokens that look like JWTs (three dot-separated parts) and verify.
func WithJWT(v *JWTVerifier) AuthOption { return func(a *Authenticator) { a.jwt = v } }

// WithCertRules maps verified client certificates to tenants.
func WithCertRules(rules ...CertRule) AuthOption {
	return func(a *Authenticator) { a.certs = append(a.certs, rules...) }
}

// WithAnonymous lets requests without credentials through as the given tenant. Without it,
// they are refused.
func WithAnonymous(tenant string) AuthOption {
	return func(a *Authenticator) {
		a.anonymous = &Identity{Tenant: tenant, Subject: "anonymous", Method: "anonymous"}
	}
}

// NewAuthenticator returns an authenticator with the given methods.
func NewAuthenticator(opts ...AuthOption) *Authenticator {
	a := &Authenticator{keys: map[[32]byte]APIKey{}, tenants: map[string]Tenant{}}
	for _, o := range opts {
		o(a)
	}
	if a.anonymous != nil {
		a.anonymous = a.withTenant(*a.anonymous)
	}
	return a
}

// Authenticate identifies the caller. Errors wrap ErrUnauthenticated with a reason safe to
// show (never the credential itself).
//
// With no method configured and anonymous access on, the router is open: every request is
// anonymous, whatever it presents (OpenAI SDKs always send some key).
func (a *Authenticator) Authenticate(ctx context.Context, c Credentials) (*Identity, error) {
	if a.anonymous != nil && len(a.keys) == 0 && a.jwt == nil && len(a.certs) == 0 {
		return a.anonymous, nil
	}
	if c.Bearer != "" {
		if a.jwt != nil && strings.Count(c.Bearer, ".") == 2 {
			claims, err := a.jwt.Verify(ctx, c.Bearer)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
			}
			id := Identity{Tenant: claims.Tenant, Subject: claims.Subject, Method: "jwt", Models: claims.Models, Priority: claims.Priority}
			return a.withTenant(id), nil
		}
		sum := sha256.Sum256([]byte(c.Bearer))
		if k, ok := a.keys[sum]; ok && subtle.ConstantTimeCompare(k.SHA256[:], sum[:]) == 1 {
			return a.withTenant(Identity{Tenant: k.Tenant, Subject: k.Name, Method: "api_key"}), nil
		}
		return nil, fmt.Errorf("%w: invalid API key", ErrUnauthenticated)
	}
	if len(c.Certs) > 0 {
		cert := c.Certs[0]
		for _, r := range a.certs {
			if r.matches(cert) {
				return a.withTenant(Identity{Tenant: r.Tenant, Subject: cert.Subject.String(), Method: "mtls"}), nil
			}
		}
		if a.anonymous == nil {
			return nil, fmt.Errorf("%w: client certificate %q is not mapped to a tenant", ErrUnauthenticated, cert.Subject.String())
		}
	}
	if a.anonymous != nil {
		return a.anonymous, nil
	}
	return nil, fmt.Errorf("%w: missing credentials (send Authorization: Bearer <key>)", ErrUnauthenticated)
}

func (r CertRule) matches(c *x509.Certificate) bool {
	if r.Subject != "" && c.Subject.String() == r.Subject {
		return true
	}
	if r.SAN != "" {
		if slices.Contains(c.DNSNames, r.SAN) || slices.Contains(c.EmailAddresses, r.SAN) {
			return true
		}
		for _, u := range c.URIs {
			if u.String() == r.SAN {
				return true
			}
		}
	}
	return false
}

// withTenant applies the tenant's attributes: its allowed models narrow the identity's, and
// its priority is the default when the credential named none.
func (a *Authenticator) withTenant(id Identity) *Identity {
	if t, ok := a.tenants[id.Tenant]; ok {
		switch {
		case id.Models == nil:
			id.Models = t.Models
		case t.Models != nil:
			id.Models = slices.DeleteFunc(slices.Clone(id.Models), func(m string) bool { return !slices.Contains(t.Models, m) })
		}
		if id.Priority == "" {
			id.Priority = t.Priority
		}
	}
	return &id
}

// Authorize checks that id may use model.
func Authorize(id *Identity, model string) error {
	if !id.Allows(model) {
		return fmt.Errorf("%w: tenant %q may not use model %q", ErrForbidden, id.Tenant, model)
	}
	return nil
}
