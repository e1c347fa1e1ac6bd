package app

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"

	"github.com/switchyard-ai/switchyard/cluster"
	"github.com/switchyard-ai/switchyard/internal/config"
	"github.com/switchyard-ai/switchyard/policy"
	"github.com/switchyard-ai/switchyard/router"
)

// buildPolicy turns the auth, tenants and limits settings into the authenticator and limiter
// the router runs every request through. A JWT verifier fetches its keys now, so a bad issuer
// is a startup error; its refresh loop is returned for the server to own.
func buildPolicy(ctx context.Context, cfg *config.Config, counters cluster.Counters) (*policy.Authenticator, *policy.Limiter, *policy.JWTVerifier, error) {
	var opts []policy.AuthOption
	for _, t := range cfg.Tenants {
		opts = append(opts, policy.WithTenants(policy.Tenant{Name: t.Name, Models: t.Models, Priority: t.Priority}))
	}
	for _, k := range cfg.Auth.APIKeys {
		sum, err := policy.ParseKeyHash(k.SHA256)
		if err != nil {
			return nil, nil, nil, err
		}
		opts = append(opts, policy.WithAPIKeys(policy.APIKey{Name: k.Name, SHA256: sum, Tenant: k.Tenant}))
	}
	for _, r := range cfg.Auth.MTLS {
		opts = append(opts, policy.WithCertRules(policy.CertRule{SAN: r.SAN, Subject: r.Subject, Tenant: r.Tenant}))
	}
	if *cfg.Auth.Anonymous {
		opts = append(opts, policy.WithAnonymous("anonymous"))
	}
	var verifier *policy.JWTVerifier
	if j := cfg.Auth.JWT; j != nil {
		var err error
		verifier, err = policy.NewJWTVerifier(ctx, policy.JWTConfig{
			Issuer: j.Issuer, Audiences: j.Audiences, JWKSURL: j.JWKSURL, DiscoveryURL: j.DiscoveryURL,
			Algorithms: j.Algorithms, Leeway: j.Leeway.D(),
			TenantClaim: j.TenantClaim, ModelsClaim: j.ModelsClaim, PriorityClaim: j.PriorityClaim,
		})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("auth.jwt: %w", err)
		}
		opts = append(opts, policy.WithJWT(verifier))
	}
	auth := policy.NewAuthenticator(opts...)
	var limiter *policy.Limiter
	if len(cfg.Limits.Rules) > 0 {
		var limits []policy.Limit
		for _, r := range cfg.Limits.Rules {
			l := policy.Limit{Name: r.Name, Kind: policy.LimitRequests, Max: r.Requests, Window: r.Window.D(), By: r.By, Match: r.Match}
			if r.Tokens > 0 {
				l.Kind, l.Max = policy.LimitTokens, r.Tokens
			}
			limits = append(limits, l)
		}
		limiter = policy.NewLimiter(counters, limits)
	}
	return auth, limiter, verifier, nil
}

// serverTLS builds the data-plane TLS configuration around getCert, which serves the current
// certificate: HTTP/2 by ALPN, and client certificates verified against the client CA when
// client_auth asks for them.
func serverTLS(t *config.ServerTLS, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: getCert, NextProtos: []string{"h2", "http/1.1"}}
	if t.ClientAuth != "none" {
		pem, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("server.tls.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("server.tls.client_ca_file %s: no PEM certificates", t.ClientCAFile)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.VerifyClientCertIfGiven
		if t.ClientAuth == "required" {
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return c, nil
}

// adminAuth requires one of the admin keys as a bearer token; with none configured, the
// handler is open.
func adminAuth(hashes []string, next http.Handler) http.Handler {
	allowed := adminKeys(hashes)
	if allowed == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allowed(router.BearerToken(r.Header)) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchyard-admin"`)
		http.Error(w, "admin credentials required", http.StatusUnauthorized)
	})
}

// adminKeys returns the check that a bearer token is one of the admin keys (SHA-256 digests,
// compared in constant time), or nil when none is configured.
func adminKeys(hashes []string) func(token string) bool {
	if len(hashes) == 0 {
		return nil
	}
	var sums [][32]byte
	for _, h := range hashes {
		sum, err := policy.ParseKeyHash(h)
		if err == nil {
			sums = append(sums, sum)
		}
	}
	return func(token string) bool {
		if token == "" {
			return false
		}
		got, _ := policy.ParseKeyHash(policy.HashKey(token))
		ok := false
		for _, s := range sums {
			ok = subtle.ConstantTimeCompare(got[:], s[:]) == 1 || ok
		}
		return ok
	}
}
