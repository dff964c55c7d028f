// Tests of the Go relying party without a browser: bad requests are 400s with a message, a
// challenge is answered once, a foreign origin is refused, a cross-origin frame answers (a
// sign-in or a registration) only for the top-level origins given, --origin takes origins
// only, the x5c chain check accepts the run's CA and nothing else, hints and extension inputs
// reach the options, and a deleted credential is gone.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/duo-labs/webauthn/webauthn"
)

func newRP() *relyingParty {
	return &relyingParty{
		origins:    []string{"http://localhost:1234", "http://127.0.0.1:1234"},
		users:      map[string]*user{},
		challenges: map[string]pending{},
	}
}

// post sends body to path and returns the status and the decoded JSON answer.
func post(t *testing.T, rp *relyingParty, path, body string) (int, map[string]interface{}) {
	t.Helper()
	w := httptest.NewRecorder()
	rp.ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
	var out map[string]interface{}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %q: the answer is not a JSON object: %q", path, body, w.Body.String())
	}
	return w.Code, out
}

// answer is a credential JSON whose clientDataJSON names challenge and origin and whose
// attestation object is not CBOR.
func answer(challenge, origin, kind string) string {
	return answerWith(map[string]interface{}{"type": kind, "challenge": challenge, "origin": origin})
}

// answerWith is answer with the clientDataJSON members given.
func answerWith(clientData map[string]interface{}) string {
	cd, _ := json.Marshal(clientData)
	cred, _ := json.Marshal(map[string]interface{}{
		"id": "AAAA", "rawId": "AAAA", "type": "public-key",
		"response": map[string]string{
			"clientDataJSON":    base64.RawURLEncoding.EncodeToString(cd),
			"attestationObject": "AAAA", "authenticatorData": "AAAA", "signature": "AAAA",
		},
	})
	return `{"response":` + string(cred) + `}`
}

func TestBadRequestsAre400sWithAMessage(t *testing.T) {
	rp := newRP()
	cases := []struct{ path, body string }{
		{"/api/register/options", "[]"},
		{"/api/register/options", "null"},
		{"/api/register/options", "{"},
		{"/api/register/verify", "{}"},
		{"/api/register/verify", `{"response":[1]}`},
		{"/api/register/verify", `{"response":{"response":{"clientDataJSON":"!!"}}}`},
		{"/api/register/verify", `{"response":{"response":{"clientDataJSON":"e30"}}}`},
		{"/api/auth/verify", `{"response":{"response":{"clientDataJSON":"bnVsbA"}}}`},
		{"/api/auth/options", `{"username":"nobody"}`},
		{"/api/auth/options", `{"rpId":"%zz"}`},
		{"/api/auth/options", `{"hints":"hybrid"}`},
		{"/api/auth/options", `{"hints":["hybrid","nfc"]}`},
		{"/api/register/options", `{"hints":[1]}`},
		{"/api/register/options", `{"extensions":[]}`},
		{"/api/auth/options", `{"extensions":"prf"}`},
		{"/api/credentials/delete", `{}`},
		{"/api/credentials/delete", `{"credentialId":7}`},
		{"/api/credentials/delete", `{"credentialId":"!!"}`},
		{"/api/credentials/delete", `{"credentialId":"AAAA"}`},
		{"/api/credentials/delete", `[]`},
	}
	for _, c := range cases {
		code, out := post(t, rp, c.path, c.body)
		msg, _ := out["error"].(string)
		if code != http.StatusBadRequest || msg == "" {
			t.Errorf("%s %s: got %d %v, want a 400 with an error message", c.path, c.body, code, out)
		}
	}
}

func TestOptionsAreBase64urlWithTheRequiredSettings(t *testing.T) {
	rp := newRP()
	code, out := post(t, rp, "/api/register/options", `{"username":"alice","decoys":40,"attestation":"direct"}`)
	if code != http.StatusOK {
		t.Fatalf("register options: %d %v", code, out)
	}
	sel := out["authenticatorSelection"].(map[string]interface{})
	if sel["residentKey"] != "required" || sel["userVerification"] != "required" || out["attestation"] != "direct" {
		t.Errorf("authenticatorSelection %v attestation %v: want residentKey and UV required, direct", sel, out["attestation"])
	}
	ids := []string{out["challenge"].(string), out["user"].(map[string]interface{})["id"].(string)}
	exclude := out["excludeCredentials"].([]interface{})
	if len(exclude) != 16 {
		t.Errorf("%d decoys, want at most 16", len(exclude))
	}
	for _, d := range exclude {
		ids = append(ids, d.(map[string]interface{})["id"].(string))
	}
	for _, id := range ids {
		if _, err := base64.RawURLEncoding.DecodeString(id); err != nil {
			t.Errorf("%q is not unpadded base64url: %v", id, err)
		}
	}
}

func TestAChallengeIsAnsweredOnceAndOnlyFromThisRPsOrigins(t *testing.T) {
	rp := newRP()
	_, opts := post(t, rp, "/api/register/options", `{}`)
	challenge := opts["challenge"].(string)
	code, out := post(t, rp, "/api/register/verify", answer(challenge, "http://localhost:1234", "webauthn.create"))
	if code != http.StatusBadRequest || strings.Contains(out["error"].(string), "unknown challenge") {
		t.Fatalf("first answer: %d %v, want a 400 from the library (the attestation is not CBOR)", code, out)
	}
	code, out = post(t, rp, "/api/register/verify", answer(challenge, "http://localhost:1234", "webauthn.create"))
	if code != http.StatusBadRequest || !strings.Contains(out["error"].(string), "unknown challenge") {
		t.Errorf("second answer: %d %v, want unknown challenge", code, out)
	}

	_, opts = post(t, rp, "/api/register/options", `{}`)
	code, out = post(t, rp, "/api/register/verify", answer(opts["challenge"].(string), "http://localhost:9999", "webauthn.create"))
	if code != http.StatusBadRequest || !strings.Contains(out["error"].(string), "is not this RP's") {
		t.Errorf("another port's origin: %d %v, want refused", code, out)
	}

	_, opts = post(t, rp, "/api/register/options", `{}`)
	code, out = post(t, rp, "/api/auth/verify", answer(opts["challenge"].(string), "http://localhost:1234", "webauthn.get"))
	if code != http.StatusBadRequest || !strings.Contains(out["error"].(string), "unknown challenge") {
		t.Errorf("a registration challenge answered as a sign-in: %d %v, want unknown challenge", code, out)
	}
}

// cert makes a certificate for key, signed by parent/parentKey (self-signed when parent is nil).
func cert(t *testing.T, cn string, isCA bool, key, parentKey *ecdsa.PrivateKey, parent *x509.Certificate) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{Country: []string{"US"}, Organization: []string{"test"}, CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  isCA,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTheX5cChainMustLeadToTheCAFile(t *testing.T) {
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, otherKey, leafKey := key(), key(), key()
	ca := cert(t, "run CA", true, caKey, nil, nil)
	other := cert(t, "another run's CA", true, otherKey, nil, nil)
	leaf := cert(t, "attestation", false, leafKey, caKey, ca)
	dir := t.TempDir()
	write := func(name string, c *x509.Certificate) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	runCA, otherCA := write("ca.pem", ca), write("other.pem", other)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := verifyChain([]interface{}{leaf.Raw}, runCA); err != nil {
		t.Errorf("the leaf under the run's CA: %v", err)
	}
	for name, c := range map[string]struct {
		x5c  []interface{}
		file string
	}{
		"another run's CA": {[]interface{}{leaf.Raw}, otherCA},
		"an empty x5c":     {[]interface{}{}, runCA},
		"x5c not bytes":    {[]interface{}{"text"}, runCA},
		"x5c not a cert":   {[]interface{}{[]byte{1, 2, 3}}, runCA},
		"no PEM in file":   {[]interface{}{leaf.Raw}, garbage},
		"a missing file":   {[]interface{}{leaf.Raw}, filepath.Join(dir, "missing.pem")},
	} {
		if err := verifyChain(c.x5c, c.file); err == nil {
			t.Errorf("%s: accepted, want refused", name)
		}
	}
}

func TestHintsAndExtensionInputsReachTheOptions(t *testing.T) {
	rp := newRP()
	code, out := post(t, rp, "/api/register/options", `{"hints":["security-key"],"extensions":{"prf":{"eval":{"first":"AQID"}},"credProps":true}}`)
	if code != http.StatusOK {
		t.Fatalf("register options: %d %v", code, out)
	}
	got, _ := json.Marshal([]interface{}{out["hints"], out["extensions"]})
	if want := `[["security-key"],{"credProps":true,"prf":{"eval":{"first":"AQID"}}}]`; string(got) != want {
		t.Errorf("register options' hints and extensions: %s, want %s", got, want)
	}
	code, out = post(t, rp, "/api/auth/options", `{"hints":["hybrid","client-device"],"extensions":{"prf":{"eval":{"first":"AQID"}}}}`)
	if code != http.StatusOK {
		t.Fatalf("auth options: %d %v", code, out)
	}
	got, _ = json.Marshal([]interface{}{out["hints"], out["extensions"], out["allowCredentials"]})
	if want := `[["hybrid","client-device"],{"prf":{"eval":{"first":"AQID"}}},[]]`; string(got) != want {
		t.Errorf("auth options' hints, extensions and allowCredentials: %s, want %s", got, want)
	}
	p := rp.challenges[out["challenge"].(string)]
	if !p.discoverable || p.session.UserID != nil {
		t.Errorf("options without a username: discoverable %v, session user %v; want a discoverable session", p.discoverable, p.session.UserID)
	}
	_, out = post(t, rp, "/api/register/options", `{}`)
	if _, ok := out["hints"]; ok {
		t.Errorf("options without hints carry %v", out["hints"])
	}
}

func TestADeletedCredentialIsGone(t *testing.T) {
	rp := newRP()
	u := rp.user("alice")
	u.credentials = []webauthn.Credential{{ID: []byte{1, 2, 3}}, {ID: []byte{4, 5, 6}}}
	code, out := post(t, rp, "/api/credentials/delete", `{"credentialId":"AQID"}`)
	got, _ := json.Marshal(out)
	want, _ := json.Marshal(map[string]interface{}{"deleted": true, "user": "alice", "userId": b64url(u.id), "remaining": []string{"BAUG"}})
	if code != http.StatusOK || string(got) != string(want) {
		t.Fatalf("delete: %d %s, want 200 %s", code, got, want)
	}
	if len(u.credentials) != 1 || u.credential([]byte{4, 5, 6}) != 0 || u.credential([]byte{1, 2, 3}) != -1 {
		t.Errorf("alice's credentials after the delete: %v", u.credentials)
	}
	code, out = post(t, rp, "/api/credentials/delete", `{"credentialId":"AQID"}`)
	if code != http.StatusBadRequest || !strings.Contains(out["error"].(string), "unknown credential") {
		t.Errorf("deleting it again: %d %v, want a 400 unknown credential", code, out)
	}
	_, out = post(t, rp, "/api/auth/options", `{"username":"alice"}`)
	if allow := out["allowCredentials"].([]interface{}); len(allow) != 1 || allow[0].(map[string]interface{})["id"] != "BAUG" {
		t.Errorf("sign-in options after the delete name %v, want only BAUG", allow)
	}
}

func TestACrossOriginFrameAnswersOnlyForTheTopOriginsGiven(t *testing.T) {
	rp := newRP()
	rp.rpID = "example.test"
	rp.origins = []string{"https://login.example.test:1234"}
	rp.topOrigins = []string{"https://frames.example.net:1234"}
	code, opts := post(t, rp, "/api/auth/options", `{}`)
	if code != http.StatusOK || opts["rpId"] != "example.test" {
		t.Fatalf("sign-in options: %d %v, want rpId example.test from --rp-id", code, opts)
	}
	_, reg := post(t, rp, "/api/register/options", `{}`)
	if id := reg["rp"].(map[string]interface{})["id"]; id != "example.test" {
		t.Errorf("registration options name rp.id %v, want example.test from --rp-id", id)
	}
	// The same frame check for a sign-in and a registration.
	for _, kind := range []string{"get", "create"} {
		api, typ := "/api/auth", "webauthn.get"
		if kind == "create" {
			api, typ = "/api/register", "webauthn.create"
		}
		frame := func(extra map[string]interface{}) (int, string) {
			_, opts := post(t, rp, api+"/options", `{}`)
			cd := map[string]interface{}{"type": typ, "challenge": opts["challenge"], "origin": "https://login.example.test:1234"}
			for k, v := range extra {
				cd[k] = v
			}
			code, out := post(t, rp, api+"/verify", answerWith(cd))
			msg, _ := out["error"].(string)
			return code, msg
		}
		for name, c := range map[string]struct {
			clientData map[string]interface{}
			want       string
		}{
			"a frame of another site":    {map[string]interface{}{"crossOrigin": true, "topOrigin": "https://login.example.co.uk:1234"}, "does not accept"},
			"a frame of another port":    {map[string]interface{}{"crossOrigin": true, "topOrigin": "https://frames.example.net:9999"}, "does not accept"},
			"a frame naming no top":      {map[string]interface{}{"crossOrigin": true}, "does not accept"},
			"crossOrigin not a boolean":  {map[string]interface{}{"crossOrigin": "true", "topOrigin": "https://frames.example.net:1234"}, "must be a boolean"},
			"topOrigin not a string":     {map[string]interface{}{"crossOrigin": true, "topOrigin": 1}, "must be a string"},
			"the page's own origin only": {map[string]interface{}{"origin": "https://frames.example.net:1234", "crossOrigin": true, "topOrigin": "https://frames.example.net:1234"}, "is not this RP's"},
		} {
			if code, msg := frame(c.clientData); code != http.StatusBadRequest || !strings.Contains(msg, c.want) {
				t.Errorf("%s, %s: %d %q, want a 400 saying %q", kind, name, code, msg, c.want)
			}
		}
		// An accepted frame, and the top level, get past the frame check to the library (which
		// refuses this response's bytes).
		for name, extra := range map[string]map[string]interface{}{
			"a frame of an accepted top": {"crossOrigin": true, "topOrigin": "https://frames.example.net:1234"},
			"the top level":              {"crossOrigin": false},
		} {
			if code, msg := frame(extra); code != http.StatusBadRequest || !strings.Contains(msg, "does not parse") {
				t.Errorf("%s, %s: %d %q, want the library's refusal of the response's bytes", kind, name, code, msg)
			}
		}
	}
}

func TestTheOriginFlagsTakeOriginsOnly(t *testing.T) {
	var o origins
	for _, v := range []string{"https://login.example.test:8443", "http://localhost:1234/"} {
		if err := o.Set(v); err != nil {
			t.Errorf("%q: %v", v, err)
		}
	}
	if o.String() != "https://login.example.test:8443,http://localhost:1234" {
		t.Errorf("origins %q", o.String())
	}
	for _, v := range []string{"login.example.test", "https://login.example.test/path", "ftp://login.example.test", "https://u@login.example.test", "https://x?q", "https://"} {
		if err := o.Set(v); err == nil {
			t.Errorf("%q: accepted, want refused", v)
		}
	}
}
