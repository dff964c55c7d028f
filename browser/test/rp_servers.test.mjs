// The three RP servers written with other libraries (py_webauthn, webauthn-rs, duo-labs/webauthn
// in Go; test/lib/rplibs.mjs) against bad requests, as a site's API gets them: each is a 4xx
// with a JSON `error` a person can read, no credential is stored, and the server keeps answering.
// The browser scenarios show what each verifies when the request is good.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { RP_LIBS, startLibRp } from './lib/rplibs.mjs';

/** [path, raw body] pairs: not JSON, not an object, missing or mistyped members, IDs that are
 * not base64url or name nothing, a response for a challenge the server never gave. */
const BAD = [
  ['/api/register/options', 'not json'],
  ['/api/register/options', '[]'],
  ['/api/register/options', '{"username": 5}'],
  ['/api/register/options', '{"username": "alice", "rpId": ["localhost"]}'],
  ['/api/register/options', '{"username": "alice", "attestation": true}'],
  ['/api/register/options', '{"username": "alice", "hints": "hybrid"}'],
  ['/api/register/verify', '{}'],
  ['/api/register/verify', '{"response": "x"}'],
  ['/api/register/verify', '{"response": {"id": "AA", "rawId": "AA", "type": "public-key", "response": {"clientDataJSON": "!!", "attestationObject": "AA"}}}'],
  ['/api/auth/options', '"alice"'],
  ['/api/auth/options', '{"username": null}'],
  ['/api/auth/verify', '{}'],
  ['/api/auth/verify', '{"response": 1}'],
  ['/api/auth/verify', '{"response": {"id": "AA", "rawId": "AA", "type": "public-key", "response": "x"}}'],
  ['/api/auth/verify', JSON.stringify({ response: { id: 'AAAA', rawId: 'AAAA', type: 'public-key', response: {
    clientDataJSON: Buffer.from(JSON.stringify({ type: 'webauthn.get', challenge: 'bm90LWdpdmVu', origin: 'http://localhost' })).toString('base64url'),
    authenticatorData: 'AAAA', signature: 'AAAA' } } })],
  ['/api/credentials/delete', '{}'],
  ['/api/credentials/delete', '{"credentialId": 5}'],
  ['/api/credentials/delete', '{"credentialId": "***"}'],
  ['/api/credentials/delete', '{"credentialId": "AAECAwQ"}'],
];

describe('RP servers of other libraries refuse bad requests with a 4xx and keep serving', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rp-servers-'));
  const started = [];
  after(async () => {
    for (const rp of started) await rp.child.kill();
  });

  for (const lib of Object.keys(RP_LIBS)) {
    it(lib, async () => {
      const rp = await startLibRp(lib, dir, join(dir, `ca-${lib}.pem`));
      started.push(rp);
      const answers = [];
      for (const [path, body] of BAD) {
        const r = await fetch(rp.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        const text = await r.text();
        let error;
        try {
          error = JSON.parse(text).error;
        } catch {
          error = undefined;
        }
        answers.push({ path, body: body.slice(0, 60), status: r.status, error: typeof error === 'string' && error.length > 0 });
      }
      const wrong = answers.filter((a) => a.status < 400 || a.status >= 500 || !a.error);
      assert.deepEqual(wrong, [], `answers that are not a 4xx with an error message:\n${JSON.stringify(wrong, null, 1)}\n${rp.child.output()}`);
      assert.equal(rp.child.proc.exitCode, null, rp.child.output());
      const users = await rp.users();
      assert.deepEqual(Object.values(users).flat(), [], `no credential was stored: ${JSON.stringify(users)}`);
    });
  }
});
