// Command go_webauthn is a relying party for the browser tests written with the Go library
// github.com/duo-labs/webauthn (Debian's golang-github-duo-labs-webauthn-dev, built offline).
//
// It speaks the JSON API of rp/server.mjs (POST /api/register/options, /api/register/verify,
// /api/auth/options, /api/auth/verify) and verifies every response strictly: the expected
// origins (http://localhost:PORT and http://127.0.0.1:PORT, or those given with --origin), the
// RP ID the options named (--rp-id when they name none), a challenge this server issued and
// has not seen answered, user verification required. Every
// registration asks for a discoverable credential (residentKey "required") with
// userVerification "required". The request bodies may also carry:
//
//	attestation  "direct" or "none" (the default); with --attestation-ca, a packed x5c
//	             statement must chain to that CA (PEM, read when a registration is verified)
//	decoys       a number (at most 16) of random credential IDs added to excludeCredentials
//	             (register) or allowCredentials (sign in), beside the user's own
//	exclude      true: excludeCredentials names the user's credentials
//	extensions   a JSON object of extension inputs (byte strings as base64url) that the
//	             library puts in the options as they are (WithExtensions,
//	             WithAssertionExtensions)
//	hints        a list of WebAuthn hints; this version of the library has no hints field,
//	             so they are added to the options' JSON here
//
// Sign-in options without a username leave allowCredentials empty (a discoverable sign-in): the
// answer is then verified with the library's ValidateDiscoverableLogin, which finds the user
// from the userHandle, and the credential must be one of that user's. POST
// /api/credentials/delete {"credentialId": ID} forgets a credential (the site removed the
// passkey); signing in with it is then "unknown credential", a 400.
//
// The library checks the packed statement's signature and certificate fields but not where its
// chain leads, so this server verifies the x5c chain to the CA itself with crypto/x509. The
// library writes the challenge and the user and credential IDs in options as standard base64;
// this server rewrites them as base64url, which the browsers' parse*OptionsFromJSON read.
//
// The library reads neither crossOrigin nor topOrigin from clientDataJSON, so this server
// checks them itself: a response made in a cross-origin frame (crossOrigin true) is refused
// unless its topOrigin is one given with --top-origin, and every verdict reports both.
//
// GET /api/users answers {name: [credential ID, ...]}; GET / is an empty page to run scripts in.
// Listens on 127.0.0.1 only and prints "rp listening on http://localhost:PORT". Every request
// it refuses, and any failure while reading one, is a 400 with {"error": ...}.
//
//	go_webauthn [--port N] [--attestation-ca FILE] [--rp-id ID] [--origin ORIGIN ...] [--top-origin ORIGIN ...]
package main

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/duo-labs/webauthn/protocol"
	"github.com/duo-labs/webauthn/webauthn"
)

const maxBody = 1 << 20

const page = "<!doctype html><html><head><meta charset=utf-8><title>go webauthn RP</title></head><body></body></html>"

// requestError is a request this RP refuses; its message goes back to the page as {"error": ...}.
type requestError struct{ msg string }

func (e *requestError) Error() string { return e.msg }

func refuse(format string, args ...interface{}) error {
	return &requestError{fmt.Sprintf(format, args...)}
}

// libraryError spells out a duo-labs error with its details, which its Error() leaves out.
func libraryError(what string, err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return refuse("%s: %s: %s %s", what, pe.Type, pe.Details, pe.DevInfo)
	}
	return refuse("%s: %v", what, err)
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("the system random source failed: %v", err))
	}
	return b
}

// user is one account with its credentials; it implements webauthn.User.
type user struct {
	name        string
	id          []byte
	credentials []webauthn.Credential
}

func (u *user) WebAuthnID() []byte                         { return u.id }
func (u *user) WebAuthnName() string                       { return u.name }
func (u *user) WebAuthnDisplayName() string                { return u.name }
func (u *user) WebAuthnIcon() string                       { return "" }
func (u *user) WebAuthnCredentials() []webauthn.Credential { return u.credentials }

// pending is an issued challenge that has not been answered.
type pending struct {
	kind         string // "create" or "get"
	rpID         string
	name         string
	discoverable bool // sign-in options with an empty allowCredentials
	session      webauthn.SessionData
}

// relyingParty holds in-memory users, credentials and outstanding challenges.
type relyingParty struct {
	attestationCA string
	rpID          string
	origins       []string
	topOrigins    []string
	mu            sync.Mutex
	users         map[string]*user
	order         []string
	challenges    map[string]pending
}

func (rp *relyingParty) user(name string) *user {
	u, ok := rp.users[name]
	if !ok {
		u = &user{name: name, id: randomBytes(16)}
		rp.users[name] = u
		rp.order = append(rp.order, name)
	}
	return u
}

// body is a request body: a JSON object whose members the handlers read leniently.
type body map[string]interface{}

func (b body) str(key, fallback string) string {
	if s, ok := b[key].(string); ok && s != "" {
		return s
	}
	return fallback
}

func (b body) num(key string, fallback int) int {
	if f, ok := b[key].(float64); ok && f != 0 {
		return int(f)
	}
	return fallback
}

func (b body) flag(key string) bool {
	v, _ := b[key].(bool)
	return v
}

// extensions is the body's "extensions" object, or nil.
func (b body) extensions() (protocol.AuthenticationExtensions, error) {
	v, ok := b["extensions"]
	if !ok || v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]interface{})
	if !ok {
		return nil, refuse("extensions must be a JSON object of extension inputs")
	}
	return protocol.AuthenticationExtensions(m), nil
}

// hints is the body's "hints", each one WebAuthn defines.
func (b body) hints() ([]interface{}, error) {
	v, ok := b["hints"]
	if !ok || v == nil {
		return nil, nil
	}
	list, ok := v.([]interface{})
	if !ok {
		return nil, refuse("hints must be a list of strings")
	}
	for _, h := range list {
		if h != "security-key" && h != "client-device" && h != "hybrid" {
			return nil, refuse("unknown hint %v: use security-key, client-device or hybrid", h)
		}
	}
	return list, nil
}

// decoys is how many random credential IDs to add (at most 16).
func (b body) decoys() int {
	n := b.num("decoys", 0)
	if n < 0 {
		return 0
	}
	if n > 16 {
		return 16
	}
	return n
}

// defaultRPID is the RP ID of options whose request names none.
func (rp *relyingParty) defaultRPID() string {
	if rp.rpID == "" {
		return "localhost"
	}
	return rp.rpID
}

func (rp *relyingParty) wa(rpID, origin string) (*webauthn.WebAuthn, error) {
	w, err := webauthn.New(&webauthn.Config{
		RPDisplayName: "hybrid-bridge test RP (go webauthn)",
		RPID:          rpID,
		RPOrigin:      origin,
	})
	if err != nil {
		return nil, refuse("the RP ID %q is not usable: %v", rpID, err)
	}
	return w, nil
}

// optionsJSON turns the library's options into the JSON the browsers parse: every byte string
// the library wrote as standard base64 (challenge, user.id, the credential descriptors' id) as
// base64url.
func optionsJSON(options interface{}, listKey string) (map[string]interface{}, error) {
	raw, err := json.Marshal(options)
	if err != nil {
		return nil, err
	}
	var out map[string]interface{}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	rewriteKey := func(m map[string]interface{}, key string) error {
		s, ok := m[key].(string)
		if !ok {
			return nil
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return fmt.Errorf("the library wrote a %s that is not base64: %v", key, err)
		}
		m[key] = b64url(b)
		return nil
	}
	rewrite := func(m map[string]interface{}) error { return rewriteKey(m, "id") }
	if c, ok := out["challenge"].(string); ok {
		if err := rewriteKey(out, "challenge"); err != nil || c == "" {
			return nil, fmt.Errorf("the library wrote no base64 challenge (%v)", err)
		}
	}
	if u, ok := out["user"].(map[string]interface{}); ok {
		if err := rewrite(u); err != nil {
			return nil, err
		}
	}
	list, _ := out[listKey].([]interface{})
	for _, d := range list {
		if m, ok := d.(map[string]interface{}); ok {
			if err := rewrite(m); err != nil {
				return nil, err
			}
		}
	}
	if list == nil {
		out[listKey] = []interface{}{}
	}
	return out, nil
}

func descriptors(ids [][]byte) []protocol.CredentialDescriptor {
	out := make([]protocol.CredentialDescriptor, 0, len(ids))
	for _, id := range ids {
		out = append(out, protocol.CredentialDescriptor{Type: protocol.PublicKeyCredentialType, CredentialID: id})
	}
	return out
}

func (rp *relyingParty) registerOptions(b body) (interface{}, error) {
	rpID := b.str("rpId", rp.defaultRPID())
	name := b.str("username", "alice")
	u := rp.user(name)
	var exclude [][]byte
	if b.flag("exclude") {
		for _, c := range u.credentials {
			exclude = append(exclude, c.ID)
		}
	}
	for i := 0; i < b.decoys(); i++ {
		exclude = append(exclude, randomBytes(32))
	}
	attestation := protocol.PreferNoAttestation
	if b.str("attestation", "none") == "direct" {
		attestation = protocol.PreferDirectAttestation
	}
	extensions, err := b.extensions()
	if err != nil {
		return nil, err
	}
	hints, err := b.hints()
	if err != nil {
		return nil, err
	}
	w, err := rp.wa(rpID, rp.origins[0])
	if err != nil {
		return nil, err
	}
	creation, session, err := w.BeginRegistration(u,
		webauthn.WithExtensions(extensions),
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{UserVerification: protocol.VerificationRequired}),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
		webauthn.WithConveyancePreference(attestation),
		webauthn.WithExclusions(descriptors(exclude)),
		func(o *protocol.PublicKeyCredentialCreationOptions) { o.Timeout = b.num("timeout", 60000) },
	)
	if err != nil {
		return nil, libraryError("the library made no registration options", err)
	}
	out, err := optionsJSON(creation.Response, "excludeCredentials")
	if err != nil {
		return nil, err
	}
	if hints != nil {
		out["hints"] = hints
	}
	rp.challenges[session.Challenge] = pending{kind: "create", rpID: rpID, name: name, session: *session}
	return out, nil
}

// clientData is the part of clientDataJSON this server reads before the library does.
type clientData struct {
	Challenge   string      `json:"challenge"`
	Origin      string      `json:"origin"`
	CrossOrigin interface{} `json:"crossOrigin"`
	TopOrigin   interface{} `json:"topOrigin"`
}

// frame is the top-level origin of a response made in a cross-origin frame of a page this RP
// accepts, "" for a response made at the top level; an error for a frame of any other page.
func (rp *relyingParty) frame(cd clientData) (string, error) {
	cross, ok := cd.CrossOrigin.(bool)
	if cd.CrossOrigin != nil && !ok {
		return "", refuse("clientDataJSON's crossOrigin must be a boolean")
	}
	top, ok := cd.TopOrigin.(string)
	if cd.TopOrigin != nil && !ok {
		return "", refuse("clientDataJSON's topOrigin must be a string")
	}
	if !cross {
		return "", nil
	}
	for _, o := range rp.topOrigins {
		if top == o {
			return top, nil
		}
	}
	return "", refuse("the response was made in a frame of %q, a top-level page this RP does not accept (accepted: %v): start the RP with --top-origin for that site", top, rp.topOrigins)
}

// takeChallenge removes and returns the outstanding challenge the response answers, the
// response's origin once it is one of this server's, and its top-level origin when it was made
// in a cross-origin frame of a page this RP accepts.
func (rp *relyingParty) takeChallenge(response json.RawMessage, kind string) (pending, string, string, error) {
	var r struct {
		Response struct {
			ClientDataJSON string `json:"clientDataJSON"`
		} `json:"response"`
	}
	if err := json.Unmarshal(response, &r); err != nil {
		return pending{}, "", "", refuse("the response is not a credential's JSON (%v)", err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(r.Response.ClientDataJSON)
	var cd clientData
	if err == nil {
		err = json.Unmarshal(raw, &cd)
	}
	if err != nil {
		return pending{}, "", "", refuse("the response has no readable clientDataJSON (%v)", err)
	}
	if cd.Challenge == "" {
		return pending{}, "", "", refuse("the response's clientDataJSON has no challenge")
	}
	p, ok := rp.challenges[cd.Challenge]
	if ok {
		delete(rp.challenges, cd.Challenge)
	}
	if !ok || p.kind != kind {
		return pending{}, "", "", refuse("unknown challenge: ask for new options, then answer them once")
	}
	for _, o := range rp.origins {
		if cd.Origin == o {
			top, err := rp.frame(cd)
			if err != nil {
				return pending{}, "", "", err
			}
			return p, o, top, nil
		}
	}
	return pending{}, "", "", refuse("the origin %q is not this RP's (%v): open the page from this server", cd.Origin, rp.origins)
}

// verifyChain checks that the packed statement's x5c chains to the CA in the PEM file.
func verifyChain(x5c []interface{}, caFile string) error {
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return refuse("the attestation CA %s is unreadable: %v", caFile, err)
	}
	roots := x509.NewCertPool()
	count := 0
	for rest := pemBytes; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return refuse("the attestation CA %s holds a certificate that does not parse: %v", caFile, err)
		}
		roots.AddCert(cert)
		count++
	}
	if count == 0 {
		return refuse("the attestation CA %s holds no PEM certificate", caFile)
	}
	var chain []*x509.Certificate
	for i, c := range x5c {
		der, ok := c.([]byte)
		if !ok {
			return refuse("x5c[%d] is not a byte string", i)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return refuse("x5c[%d] does not parse as a certificate: %v", i, err)
		}
		chain = append(chain, cert)
	}
	if len(chain) == 0 {
		return refuse("the packed statement's x5c is empty")
	}
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	_, err = chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		CurrentTime:   time.Now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return refuse("the packed attestation does not chain to the CA in %s: %v", caFile, err)
	}
	return nil
}

func (rp *relyingParty) registerVerify(response json.RawMessage) (interface{}, error) {
	p, origin, top, err := rp.takeChallenge(response, "create")
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBody(bytes.NewReader(response))
	if err != nil {
		return nil, libraryError("the registration response does not parse", err)
	}
	if err := parsed.Verify(p.session.Challenge, true, p.rpID, origin); err != nil {
		return nil, libraryError("the registration does not verify", err)
	}
	att := parsed.Response.AttestationObject
	roots := 0
	if rp.attestationCA != "" {
		if _, err := os.Stat(rp.attestationCA); err == nil {
			roots = 1
			if att.Format == "packed" {
				if x5c, ok := att.AttStatement["x5c"].([]interface{}); ok {
					if err := verifyChain(x5c, rp.attestationCA); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	cred, err := webauthn.MakeNewCredential(parsed)
	if err != nil {
		return nil, libraryError("the credential could not be stored", err)
	}
	u := rp.user(p.name)
	u.credentials = append(u.credentials, *cred)
	return map[string]interface{}{
		"verified":         true,
		"credentialId":     b64url(cred.ID),
		"user":             p.name,
		"fmt":              att.Format,
		"attestationRoots": roots,
		"userVerified":     att.AuthData.Flags.UserVerified(),
		"crossOrigin":      top != "",
		"topOrigin":        topOrNull(top),
	}, nil
}

func (rp *relyingParty) authOptions(b body) (interface{}, error) {
	rpID := b.str("rpId", rp.defaultRPID())
	var allow, own [][]byte
	name := b.str("username", "")
	if name != "" {
		u, ok := rp.users[name]
		if !ok {
			return nil, refuse("no user %s: register first", name)
		}
		for _, c := range u.credentials {
			own = append(own, c.ID)
		}
	}
	allow = append(allow, own...)
	for i := 0; i < b.decoys(); i++ {
		allow = append(allow, randomBytes(32))
	}
	extensions, err := b.extensions()
	if err != nil {
		return nil, err
	}
	hints, err := b.hints()
	if err != nil {
		return nil, err
	}
	w, err := rp.wa(rpID, rp.origins[0])
	if err != nil {
		return nil, err
	}
	// BeginDiscoverableLogin leaves the user open (found from the credential when verifying);
	// the options still name the allowed credentials.
	assertion, session, err := w.BeginDiscoverableLogin(
		webauthn.WithAssertionExtensions(extensions),
		webauthn.WithAllowedCredentials(descriptors(allow)),
		webauthn.WithUserVerification(protocol.VerificationRequired),
		func(o *protocol.PublicKeyCredentialRequestOptions) { o.Timeout = b.num("timeout", 60000) },
	)
	if err != nil {
		return nil, libraryError("the library made no sign-in options", err)
	}
	out, err := optionsJSON(assertion.Response, "allowCredentials")
	if err != nil {
		return nil, err
	}
	if hints != nil {
		out["hints"] = hints
	}
	// Only the user's own credentials can verify; the decoys are in the options alone.
	session.AllowedCredentialIDs = own
	rp.challenges[session.Challenge] = pending{kind: "get", rpID: rpID, name: name, discoverable: len(allow) == 0, session: *session}
	return out, nil
}

func (rp *relyingParty) authVerify(response json.RawMessage) (interface{}, error) {
	p, origin, top, err := rp.takeChallenge(response, "get")
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBody(bytes.NewReader(response))
	if err != nil {
		return nil, libraryError("the sign-in response does not parse", err)
	}
	var owner *user
	index := -1
	foundBy := "credentialId"
	if p.discoverable {
		// The account comes from the user handle, then the credential from that account.
		foundBy = "userHandle"
		if len(parsed.Response.UserHandle) == 0 {
			return nil, refuse("a discoverable sign-in needs the response's userHandle: sign in with a passkey")
		}
		owner = rp.byUserID(parsed.Response.UserHandle)
		if owner == nil {
			return nil, refuse("unknown user handle: no account here has this user ID")
		}
		index = owner.credential(parsed.RawID)
		if index < 0 {
			return nil, refuse("unknown credential for %s: the site removed this passkey, sign in with another", owner.name)
		}
	} else {
		for _, name := range rp.order {
			if i := rp.users[name].credential(parsed.RawID); i >= 0 {
				owner, index = rp.users[name], i
			}
		}
		if owner == nil {
			return nil, refuse("unknown credential: register it first")
		}
		if p.name != "" && p.name != owner.name {
			return nil, refuse("the credential is not %s's: sign in with one of theirs", p.name)
		}
	}
	w, err := rp.wa(p.rpID, origin)
	if err != nil {
		return nil, err
	}
	session := p.session
	var cred *webauthn.Credential
	if p.discoverable {
		cred, err = w.ValidateDiscoverableLogin(func(rawID, userHandle []byte) (webauthn.User, error) {
			if u := rp.byUserID(userHandle); u != nil {
				return u, nil
			}
			return nil, refuse("unknown user handle")
		}, session, parsed)
	} else {
		session.UserID = owner.id
		cred, err = w.ValidateLogin(owner, session, parsed)
	}
	if err != nil {
		return nil, libraryError("the sign-in does not verify", err)
	}
	if cred.Authenticator.CloneWarning {
		return nil, refuse("the signature counter went backwards: the authenticator may be cloned")
	}
	owner.credentials[index].Authenticator = cred.Authenticator
	var handle interface{}
	if len(parsed.Response.UserHandle) > 0 {
		handle = b64url(parsed.Response.UserHandle)
	}
	return map[string]interface{}{
		"verified":     true,
		"user":         owner.name,
		"userHandle":   handle,
		"userVerified": parsed.Response.AuthenticatorData.Flags.UserVerified(),
		"foundBy":      foundBy,
		"crossOrigin":  top != "",
		"topOrigin":    topOrNull(top),
	}, nil
}

func topOrNull(top string) interface{} {
	if top == "" {
		return nil
	}
	return top
}

// origins is a repeatable flag of web origins (scheme://host[:port], nothing after).
type origins []string

func (o *origins) String() string { return strings.Join(*o, ",") }

func (o *origins) Set(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an origin: give scheme://host[:port], as clientDataJSON names it", v)
	}
	*o = append(*o, strings.TrimSuffix(v, "/"))
	return nil
}

// credential is the index of the user's credential with this ID, or -1.
func (u *user) credential(id []byte) int {
	for i, c := range u.credentials {
		if bytes.Equal(c.ID, id) {
			return i
		}
	}
	return -1
}

// byUserID is the user whose user handle is id, or nil.
func (rp *relyingParty) byUserID(id []byte) *user {
	for _, name := range rp.order {
		if u := rp.users[name]; bytes.Equal(u.id, id) {
			return u
		}
	}
	return nil
}

// deleteCredential forgets the credential named in the body (the site removed the passkey).
func (rp *relyingParty) deleteCredential(b body) (interface{}, error) {
	given, _ := b["credentialId"].(string)
	id, err := base64.RawURLEncoding.DecodeString(given)
	if given == "" || err != nil {
		return nil, refuse("credentialId must be a base64url credential ID")
	}
	for _, name := range rp.order {
		u := rp.users[name]
		if i := u.credential(id); i >= 0 {
			u.credentials = append(u.credentials[:i:i], u.credentials[i+1:]...)
			remaining := []string{}
			for _, c := range u.credentials {
				remaining = append(remaining, b64url(c.ID))
			}
			return map[string]interface{}{"deleted": true, "user": name, "userId": b64url(u.id), "remaining": remaining}, nil
		}
	}
	return nil, refuse("unknown credential: nothing to delete")
}

// textMembers are the request members that are text when present; another type is a 400,
// not a default.
var textMembers = []string{"rpId", "username", "attestation", "credentialId"}

// api answers one POST; found is false for a path that is not the API's.
func (rp *relyingParty) api(path string, raw []byte) (out interface{}, found bool, err error) {
	var b body
	if len(bytes.TrimSpace(raw)) == 0 {
		b = body{}
	} else if err := json.Unmarshal(raw, &b); err != nil || b == nil {
		return nil, true, refuse("the request body must be a JSON object")
	}
	for _, key := range textMembers {
		if v, ok := b[key]; ok {
			if _, isText := v.(string); !isText {
				return nil, true, refuse("%s must be a string", key)
			}
		}
	}
	response := func() (json.RawMessage, error) {
		var r struct {
			Response json.RawMessage `json:"response"`
		}
		if err := json.Unmarshal(raw, &r); err != nil || len(r.Response) == 0 || r.Response[0] != '{' {
			return nil, refuse("the body needs a response: the credential's toJSON()")
		}
		return r.Response, nil
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	switch path {
	case "/api/register/options":
		out, err = rp.registerOptions(b)
	case "/api/auth/options":
		out, err = rp.authOptions(b)
	case "/api/credentials/delete":
		out, err = rp.deleteCredential(b)
	case "/api/register/verify", "/api/auth/verify":
		var r json.RawMessage
		if r, err = response(); err == nil {
			if path == "/api/register/verify" {
				out, err = rp.registerVerify(r)
			} else {
				out, err = rp.authVerify(r)
			}
		}
	default:
		return nil, false, nil
	}
	return out, true, err
}

func send(w http.ResponseWriter, status int, v interface{}) {
	data, err := json.Marshal(v)
	if err != nil {
		status, data = http.StatusInternalServerError, []byte(`{"error":"the answer does not encode as JSON"}`)
	}
	w.Header().Set("content-type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

func (rp *relyingParty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log.Printf("rp: %s %s", r.Method, r.URL.Path)
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/":
		w.Header().Set("content-type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, page)
	case r.Method == http.MethodGet && r.URL.Path == "/api/users":
		rp.mu.Lock()
		users := map[string][]string{}
		for _, name := range rp.order {
			ids := []string{}
			for _, c := range rp.users[name].credentials {
				ids = append(ids, b64url(c.ID))
			}
			users[name] = ids
		}
		rp.mu.Unlock()
		send(w, http.StatusOK, users)
	case r.Method == http.MethodPost:
		rp.post(w, r)
	default:
		send(w, http.StatusNotFound, map[string]string{"error": "not found"})
	}
}

func (rp *relyingParty) post(w http.ResponseWriter, r *http.Request) {
	// Whatever a request makes the library do, including a panic, goes back as a 400.
	defer func() {
		if p := recover(); p != nil {
			send(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("the request could not be verified: %v", p)})
		}
	}()
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		send(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("the body is unreadable or over %d bytes: %v", maxBody, err)})
		return
	}
	out, found, err := rp.api(r.URL.Path, raw)
	switch {
	case !found:
		send(w, http.StatusNotFound, map[string]string{"error": "not found"})
	case err != nil:
		send(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
	default:
		send(w, http.StatusOK, out)
	}
}

func main() {
	port := flag.Int("port", 8767, "TCP port on 127.0.0.1 (0: any free port)")
	ca := flag.String("attestation-ca", "", "PEM CA that packed x5c attestation must chain to")
	rpID := flag.String("rp-id", "localhost", "the RP ID of options whose request names none")
	var accepted, tops origins
	flag.Var(&accepted, "origin", "an origin responses may come from (repeatable; none: this port's http://localhost and http://127.0.0.1)")
	flag.Var(&tops, "top-origin", "a top-level origin whose cross-origin frames may answer (repeatable)")
	flag.Parse()
	log.SetFlags(0)
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintf(os.Stderr, "go_webauthn: cannot listen on 127.0.0.1:%d (%v): pick another --port\n", *port, err)
		os.Exit(1)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	rp := &relyingParty{
		attestationCA: *ca,
		rpID:          *rpID,
		origins:       accepted,
		topOrigins:    tops,
		users:         map[string]*user{},
		challenges:    map[string]pending{},
	}
	if len(rp.origins) == 0 {
		rp.origins = []string{fmt.Sprintf("http://localhost:%d", p), fmt.Sprintf("http://127.0.0.1:%d", p)}
	}
	fmt.Printf("rp listening on http://localhost:%d\n", p)
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 30 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	log.Fatal(srv.Serve(ln))
}
