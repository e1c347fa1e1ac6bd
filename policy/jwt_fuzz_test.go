package policy_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/policy"
)

// FuzzVerify signs (or not) arbitrary JOSE headers and claim sets with a key the verifier
// trusts, and feeds arbitrary signatures. Verify must never panic; a rejection must wrap
// ErrInvalidToken and quote nothing from the token; and an accepted token must have been
// signed with the trusted key over EdDSA, name the issuer and an audience, and carry a tenant.
func FuzzVerify(f *testing.F) {
	seed := make([]byte, ed25519.SeedSize)
	key := ed25519.NewKeyFromSeed(seed)
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]any{{
		"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": base64.RawURLEncoding.EncodeToString(key.Public().(ed25519.PublicKey)),
	}}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(jwks) }))
	f.Cleanup(srv.Close)
	now := time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)
	v, err := policy.NewJWTVerifier(context.Background(), policy.JWTConfig{
		Issuer: "https://idp.example", Audiences: []string{jwtAudience}, JWKSURL: srv.URL,
		MinRefreshGap: time.Hour, Now: func() time.Time { return now },
	})
	if err != nil {
		f.Fatal(err)
	}
	exp := now.Add(time.Hour).Unix()
	good := `{"iss":"https://idp.example","aud":"switchyard","exp":` + itoa64(exp) + `,"sub":"u","tenant":"t","models":["a","b"]}`
	for _, s := range []struct {
		hdr, claims string
		sign        bool
	}{
		{`{"alg":"EdDSA","kid":"k1","typ":"JWT"}`, good, true},
		{`{"alg":"EdDSA"}`, good, true},
		{`{"alg":"none"}`, good, false},
		{`{"alg":"HS256","kid":"k1"}`, good, true},
		{`{"alg":"EdDSA","kid":"k1","crit":["b64"]}`, good, true},
		{`{"alg":"EdDSA","kid":"other"}`, good, true},
		{`{"alg":"EdDSA","kid":"k1"}`, `{"iss":"https://idp.example","aud":["x","switchyard"],"exp":1e11,"nbf":-1,"models":"a b"}`, true},
		{`{"alg":"EdDSA","kid":"k1"}`, `{"iss":"https://idp.example","aud":"switchyard","exp":"soon","sub":"u"}`, true},
	} {
		f.Add([]byte(s.hdr), []byte(s.claims), []byte{}, s.sign)
	}
	f.Fuzz(func(t *testing.T, hdr, claims, sig []byte, sign bool) {
		input := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(claims)
		if sign {
			sig = ed25519.Sign(key, []byte(input))
		}
		sigSeg := base64.RawURLEncoding.EncodeToString(sig)
		token := input + "." + sigSeg
		c, err := v.Verify(context.Background(), token)
		if err != nil {
			if !errors.Is(err, policy.ErrInvalidToken) {
				t.Fatalf("rejection %v does not wrap ErrInvalidToken", err)
			}
			for _, part := range strings.Split(token, ".") {
				if len(part) >= 8 && strings.Contains(err.Error(), part) {
					t.Fatalf("rejection %q quotes the token", err)
				}
			}
			return
		}
		if !sign {
			t.Fatalf("accepted a token with a signature not made by the trusted key: %s", token)
		}
		var h struct {
			Alg string `json:"alg"`
		}
		if json.Unmarshal(hdr, &h) != nil || h.Alg != "EdDSA" {
			t.Fatalf("accepted a token whose header %q is not EdDSA", hdr)
		}
		var m map[string]any
		if json.Unmarshal(claims, &m) != nil || m["iss"] != "https://idp.example" {
			t.Fatalf("accepted claims %q without the issuer", claims)
		}
		if c.Tenant == "" || c.Expiry.IsZero() || now.After(c.Expiry.Add(time.Minute)) {
			t.Fatalf("accepted claims %q gave %+v", claims, c)
		}
	})
}

func itoa64(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
