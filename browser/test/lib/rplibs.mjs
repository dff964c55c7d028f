// The same browser, extension, native host, relay and phone-sim against relying parties written
// with other WebAuthn libraries than the test RP's @simplewebauthn/server: py_webauthn
// (rp/py_webauthn_server.py, in a venv made here from rp/requirements-py_webauthn.txt),
// webauthn-rs (the `rp-server` binary of the tests crate) and Go's duo-labs/webauthn
// (rp/go_webauthn, built here from Debian's golang-github-duo-labs-webauthn-dev). Each speaks
// rp/server.mjs's JSON API and verifies strictly (origin, RP ID, its own challenge, user
// verification required); the page calls navigator.credentials itself with the browser's
// parse*OptionsFromJSON and toJSON(), so nothing between the library's options and its
// verifier is a JavaScript library. Against each: one registration (QR code, direct
// attestation, prf and credProps), then sign-ins with it (allowCredentials, discoverable, the
// linked phone), the site forgetting it (the signals), hints and capabilities.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { closeErrorOverlay, OVERLAY_HOST, overlayDrawn, scanOverlayQr } from './scenarios.mjs';
import { BROWSER_DIR, child, qrText, REPO, waitFor } from './stack.mjs';

const TARGET = process.env.CARGO_TARGET_DIR || join(REPO, 'target');
const REQUIREMENTS = join(BROWSER_DIR, 'rp', 'requirements-py_webauthn.txt');

/** The venv with py_webauthn, made (or remade when the requirements file changed) from the
 * pinned, hashed requirements. */
function pyWebauthnVenv() {
  const venv = join(TARGET, 'rp-venv');
  const stamp = join(venv, '.requirements-sha256');
  const want = createHash('sha256').update(readFileSync(REQUIREMENTS)).digest('hex');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return venv;
  rmSync(venv, { recursive: true, force: true });
  mkdirSync(TARGET, { recursive: true });
  const run = (cmd, args) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 300000 });
    if (r.status !== 0) {
      throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.error?.message}; `
        + 'python3 with venv and pip, and PyPI, are needed for the py_webauthn relying party');
    }
  };
  run('python3', ['-m', 'venv', venv]);
  run(join(venv, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', '--require-hashes', '-r', REQUIREMENTS]);
  writeFileSync(stamp, want);
  return venv;
}

/** The webauthn-rs relying party, built with cargo unless HYBRID_BRIDGE_SKIP_BUILD is set. */
function webauthnRsServer() {
  if (!process.env.HYBRID_BRIDGE_SKIP_BUILD) {
    const r = spawnSync('cargo', ['build', '-q', '-p', 'hybrid-tests', '--bin', 'rp-server', '-j2'], {
      cwd: REPO, stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, CARGO_TARGET_DIR: TARGET },
    });
    if (r.status !== 0) throw new Error('cargo build -p hybrid-tests --bin rp-server failed');
  }
  const bin = join(TARGET, 'debug', 'rp-server');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run cargo build -p hybrid-tests --bin rp-server`);
  return bin;
}

export const GO_SOURCE = join(BROWSER_DIR, 'rp', 'go_webauthn');
export const GO_LIBRARY = '/usr/share/gocode/src/github.com/duo-labs/webauthn';

/** The environment for `go` on the Go RP: GOPATH mode over Debian's /usr/share/gocode (no
 * module proxy), the build cache under `dir`. */
export function goEnv(dir) {
  return { ...process.env, GO111MODULE: 'off', GOPATH: '/usr/share/gocode', GOFLAGS: '', GOCACHE: join(dir, 'cache') };
}

/** The duo-labs/webauthn relying party, built (or built again when main.go changed) offline in
 * GOPATH mode from the Go library Debian installs under /usr/share/gocode. */
export const GO_DIR = join(TARGET, 'go-webauthn-rp');

function goWebauthnServer() {
  const dir = GO_DIR;
  const bin = join(dir, 'go_webauthn');
  const stamp = join(dir, '.source-sha256');
  const want = createHash('sha256').update(readFileSync(join(GO_SOURCE, 'main.go'))).digest('hex');
  if (existsSync(bin) && existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return bin;
  if (!existsSync(GO_LIBRARY)) {
    throw new Error(`${GO_LIBRARY} is missing: apt-get install golang-go golang-github-duo-labs-webauthn-dev `
      + '(scripts/test.sh does as root) for the Go relying party');
  }
  mkdirSync(dir, { recursive: true });
  rmSync(stamp, { force: true });
  const r = spawnSync('go', ['build', '-o', bin, '.'], {
    cwd: GO_SOURCE, encoding: 'utf8', timeout: 600000,
    env: goEnv(dir),
  });
  if (r.status !== 0) {
    throw new Error(`go build of ${GO_SOURCE} failed: ${r.stderr || r.error?.message}; `
      + 'golang-go and golang-github-duo-labs-webauthn-dev are needed for the Go relying party');
  }
  writeFileSync(stamp, want);
  return bin;
}

/** The relying parties: each a command that prints "rp listening on URL" and takes
 * `--port 0 --attestation-ca FILE`. */
export const RP_LIBS = {
  py_webauthn: () => [join(pyWebauthnVenv(), 'bin', 'python'), [join(BROWSER_DIR, 'rp', 'py_webauthn_server.py')]],
  'webauthn-rs': () => [webauthnRsServer(), []],
  'go-webauthn': () => [goWebauthnServer(), []],
};

/** Starts one RP server; `users()` is its GET /api/users. */
export async function startLibRp(lib, dir, ca) {
  const [cmd, args] = RP_LIBS[lib]();
  const c = child(cmd, [...args, '--port', '0', '--attestation-ca', ca], { log: join(dir, `rp-${lib}.log`) });
  const url = await waitFor(`the ${lib} relying party`, () => c.output().match(/rp listening on (http:\/\/localhost:\d+)/)?.[1]
    ?? (c.proc.exitCode !== null ? Promise.reject(new Error(c.output())) : null));
  return { url, child: c, users: async () => (await fetch(`${url}/api/users`)).json() };
}

// In the page: options from the RP (the request body's `extensions` also go to the RP; those
// its library did not put in the options the page adds, as a site using that library would),
// the browser's own JSON parsing, the ceremony, the RP's verdict. Resolves to {options (the
// RP's), added (extension names the page added), ext (the client extension results: prf's
// first output as hex and its type and length, credProps, the names toJSON() sent), verdict,
// id}, or with {error: the DOMException's name or ServerError, status, message} instead of
// the verdict.
const CEREMONY = `async (kind, body) => {
  const post = (path, b) => fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) })
    .then(async (r) => { const j = await r.json(); if (!r.ok) throw Object.assign(new Error(j.error), { name: 'ServerError', status: r.status }); return j; });
  const hex = (b) => b instanceof ArrayBuffer ? [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, '0')).join('') : String(b);
  const api = kind === 'create' ? '/api/register' : '/api/auth';
  let options, ext, id;
  const added = [];
  try {
    options = await post(api + '/options', body);
    const publicKey = structuredClone(options);
    for (const [name, input] of Object.entries(body.extensions ?? {})) {
      publicKey.extensions ??= {};
      if (!(name in publicKey.extensions)) { publicKey.extensions[name] = input; added.push(name); }
    }
    const cred = kind === 'create'
      ? await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(publicKey) })
      : await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(publicKey) });
    id = cred.id;
    const json = cred.toJSON();
    const r = cred.getClientExtensionResults();
    const first = r.prf?.results?.first;
    ext = { prf: r.prf && { enabled: r.prf.enabled, first: first && hex(first), buffer: first instanceof ArrayBuffer, bytes: first?.byteLength },
      credProps: r.credProps, sent: Object.keys(json.clientExtensionResults).sort() };
    const verdict = await post(api + '/verify', { response: json });
    return { options, added, ext, verdict, id };
  } catch (e) {
    return { options, added, ext, id, error: e.name, status: e.status, message: e.message };
  }
}`;

// Two prf salts (32 bytes each, base64url, as the JSON options carry them).
const SALT_A = Buffer.alloc(32, 0xa1).toString('base64url');
const SALT_B = Buffer.alloc(32, 0xb2).toString('base64url');
const prf = (salt) => ({ prf: { eval: { first: salt } } });

/** Which extension inputs each library puts in its options itself; the page adds the rest. */
const LIBRARY_EXTENSIONS = { py_webauthn: [], 'webauthn-rs': ['credProps'], 'go-webauthn': ['credProps', 'prf'] };

const QR = 'Use a phone or tablet (QR code)';
const LOCAL = 'Use this device / a security key';

/** The overlay's choices (accessible names), focused element and notice, read from its frame. */
const OVERLAY_CHOICES = `(() => {
  const shown = (e) => !!e && !e.closest('[hidden]');
  const notice = document.getElementById('notice');
  return {
    choices: [...document.querySelectorAll('#choices button')].filter(shown).map((b) => [...b.childNodes]
      .filter((n) => n.getAttribute?.('aria-hidden') !== 'true').map((n) => n.textContent).join('').trim()),
    focused: document.activeElement?.id || document.activeElement?.className || '',
    notice: shown(notice) ? notice.textContent : null,
  };
})()`;

/** The scenarios against each RP library, in the browser of `ctx` (lib/scenarios.mjs's
 * context: {d, stack}), each library's server on its own port (so its own origin). */
export function rpLibScenarios(ctx) {
  describe('relying parties written with py_webauthn, webauthn-rs and duo-labs/webauthn (Go)', () => {
    /** Starts a ceremony in the page, picks the QR code in the overlay (keyboard in Chromium,
     * mouse in Firefox), hands a screenshot of it to phone-sim; the page's result. */
    async function ceremony(kind, body, label, phoneArgs = []) {
      await ctx.d.evaluate(`(window.__rplib = (${CEREMONY})(${JSON.stringify(kind)}, ${JSON.stringify(body)}), true)`);
      const phone = await scanOverlayQr(ctx, `${ctx.d.name}-${label}.png`, phoneArgs);
      const out = await ctx.d.evaluate('window.__rplib');
      return { out, phone };
    }

    /** The same through the linked phone: the overlay offers it (and no QR code on screen),
     * the person picks it (keyboard in Chromium, mouse in Firefox), `phone-sim linked` answers. */
    async function linkedCeremony(kind, body) {
      const phone = ctx.stack.linked();
      await waitFor('phone-sim to hold its contact channel', () => /regist|listening|waiting/i.test(phone.output()), { timeout: 15000 });
      await ctx.d.evaluate(`(window.__rplib = (${CEREMONY})(${JSON.stringify(kind)}, ${JSON.stringify(body)}), true)`);
      const shot = await waitFor('the overlay', async () => {
        const png = await ctx.d.screenshot();
        return overlayDrawn(png) ? png : null;
      }, { timeout: 15000, interval: 150 });
      assert.equal(qrText(shot), null, 'no QR code before the person chooses');
      const chooser = await ctx.d.overlayEval(OVERLAY_CHOICES);
      assert.deepEqual(chooser.choices, [QR, 'Sign in with Pixel', LOCAL]);
      if (ctx.d.name === 'chromium') { await ctx.d.key('Tab'); await ctx.d.key('Enter'); } else await ctx.d.clickOverlay('button.phone');
      const out = await ctx.d.evaluate('window.__rplib');
      return { out, phone };
    }

    /** The lines `hybrid-bridge phones list` prints for reports of unknown passkeys. */
    function reportLines() {
      const r = spawnSync(ctx.stack.bins.bridge, ['--links-file', ctx.stack.links, 'phones', 'list'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.split('\n').filter((l) => /^ {2}localhost reported a passkey on this phone unknown on /.test(l));
    }

    async function overlayGone(close) {
      if (close) await closeErrorOverlay(ctx.d);
      await waitFor('the overlay to close', async () => !(await ctx.d.evaluate(`!!${OVERLAY_HOST}`)), { timeout: 10000 });
    }

    for (const lib of Object.keys(RP_LIBS)) {
      describe(lib, () => {
        const rp = {};

        before(async () => {
          rp.ca = join(ctx.stack.dir, `attestation-ca-${lib}.pem`);
          Object.assign(rp, await startLibRp(lib, ctx.stack.dir, rp.ca));
          ctx.stack.children.push(rp.child);
          await ctx.d.navigate(rp.url);
        });

        after(async () => {
          await rp.child?.kill();
        });

        it(`${lib}: register with attestation "direct" (packed x5c chaining to phone-sim's CA), residentKey and userVerification required, excludeCredentials naming only unknown IDs, prf and credProps`, async () => {
          const extensions = { ...prf(SALT_A), credProps: true };
          const { out, phone } = await ceremony('create', { username: 'alice', attestation: 'direct', decoys: 2, extensions }, `${lib}-register`,
            ['--attestation', 'packed-x5c', '--attestation-ca-out', rp.ca]);
          assert.equal(out.error, undefined, `${out.error}: ${out.message}\nphone-sim: ${phone.output()}`);
          assert.deepEqual({ rk: out.options.authenticatorSelection.residentKey, uv: out.options.authenticatorSelection.userVerification,
            attestation: out.options.attestation, excluded: out.options.excludeCredentials.length },
          { rk: 'required', uv: 'required', attestation: 'direct', excluded: 2 });
          assert.deepEqual({ ...out.verdict, credentialId: undefined }, { verified: true, credentialId: undefined, user: 'alice',
            fmt: 'packed', attestationRoots: 1, userVerified: true, crossOrigin: false, topOrigin: null });
          assert.equal(out.verdict.credentialId, out.id);
          // The library's own extension inputs are in its options; the page added the others.
          assert.deepEqual(Object.keys(out.options.extensions ?? {}).filter((k) => k in extensions).sort(), LIBRARY_EXTENSIONS[lib]);
          assert.deepEqual(out.added.sort(), Object.keys(extensions).filter((k) => !LIBRARY_EXTENSIONS[lib].includes(k)).sort());
          // The RP verified a response carrying prf's results and credProps.
          assert.deepEqual({ ...out.ext, prf: { ...out.ext.prf, first: undefined } }, { prf: { enabled: true, first: undefined, buffer: true, bytes: 32 },
            credProps: { rk: true }, sent: ['credProps', 'prf'] });
          assert.equal((await phone.exited).code, 0, phone.output());
          assert.deepEqual(await rp.users(), { alice: [out.id] });
          rp.credentialId = out.id;
          rp.prfA = out.ext.prf.first;
          await overlayGone();
        });

        it(`${lib}: sign in with allowCredentials naming the credential among random IDs, userVerification required; prf with the registration's salt gives its output`, async () => {
          const { out, phone } = await ceremony('get', { username: 'alice', decoys: 2, extensions: prf(SALT_A) }, `${lib}-signin`);
          assert.equal(out.error, undefined, `${out.error}: ${out.message}\nphone-sim: ${phone.output()}`);
          assert.equal(out.options.userVerification, 'required');
          assert.equal(out.options.allowCredentials.length, 3);
          assert.ok(out.options.allowCredentials.some((c) => c.id === rp.credentialId));
          assert.deepEqual({ verified: out.verdict.verified, user: out.verdict.user, uv: out.verdict.userVerified, id: out.id, foundBy: out.verdict.foundBy },
            { verified: true, user: 'alice', uv: true, id: rp.credentialId, foundBy: 'credentialId' });
          assert.deepEqual({ first: out.ext.prf?.first, buffer: out.ext.prf?.buffer, bytes: out.ext.prf?.bytes, sent: out.ext.sent },
            { first: rp.prfA, buffer: true, bytes: 32, sent: ['prf'] });
          await overlayGone();
        });

        it(`${lib}: registering again with excludeCredentials naming the phone's credential rejects with InvalidStateError`, async () => {
          const { out, phone } = await ceremony('create', { username: 'alice', exclude: true, decoys: 1 }, `${lib}-excluded`);
          assert.equal(out.error, 'InvalidStateError', `${out.message}\nphone-sim: ${phone.output()}`);
          assert.equal(out.options.excludeCredentials.length, 2);
          await overlayGone(true);
          assert.deepEqual(await rp.users(), { alice: [rp.credentialId] });
        });

        it(`${lib}: discoverable sign-in (empty allowCredentials): the RP finds the account by the user handle; prf gives the same output for the same salt`, async () => {
          const { out, phone } = await ceremony('get', { extensions: prf(SALT_A) }, `${lib}-discoverable`);
          assert.equal(out.error, undefined, `${out.error}: ${out.message}\nphone-sim: ${phone.output()}`);
          assert.deepEqual(out.options.allowCredentials ?? [], []);
          assert.deepEqual({ verified: out.verdict.verified, user: out.verdict.user, uv: out.verdict.userVerified, id: out.id, foundBy: out.verdict.foundBy },
            { verified: true, user: 'alice', uv: true, id: rp.credentialId, foundBy: 'userHandle' });
          assert.match(out.verdict.userHandle ?? '', /^[\w-]{22}$/, 'the phone returned user.id (16 bytes)');
          assert.equal(out.ext.prf.first, rp.prfA);
          rp.userId = out.verdict.userHandle;
          await overlayGone();
        });

        it(`${lib}: sign in with the linked phone (no QR code), verified by the library; prf with another salt gives another output`, async () => {
          const { out, phone } = await linkedCeremony('get', { username: 'alice', extensions: prf(SALT_B) });
          assert.equal(out.error, undefined, `${out.error}: ${out.message}\nphone-sim: ${phone.output()}`);
          assert.deepEqual({ verified: out.verdict.verified, user: out.verdict.user, uv: out.verdict.userVerified, id: out.id },
            { verified: true, user: 'alice', uv: true, id: rp.credentialId });
          assert.equal(out.ext.prf.bytes, 32);
          assert.notEqual(out.ext.prf.first, rp.prfA);
          assert.equal((await phone.exited).code, 0, phone.output());
          await overlayGone();
        });

        it(`${lib}: the RP forgets the credential: the linked phone's sign-in is "unknown credential" at the RP, signalUnknownCredential reports it on the phone's link; the other signals resolve`, async () => {
          const reports = reportLines().length;
          const deleted = await ctx.d.evaluate(`fetch('/api/credentials/delete', { method: 'POST', headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ credentialId: ${JSON.stringify(rp.credentialId)} }) }).then(async (r) => [r.status, await r.json()])`);
          assert.deepEqual(deleted, [200, { deleted: true, user: 'alice', userId: rp.userId, remaining: [] }]);
          assert.deepEqual(await rp.users(), { alice: [] });
          const { out, phone } = await linkedCeremony('get', {});
          assert.equal((await phone.exited).code, 0, phone.output());
          assert.deepEqual([out.id, out.error, out.status], [rp.credentialId, 'ServerError', 400], JSON.stringify(out));
          assert.match(out.message, /unknown credential/);
          await overlayGone();
          // What the site does next: tells the browser, then says which passkeys it accepts and who the user is.
          const signals = await ctx.d.evaluate(`(async () => {
            const P = PublicKeyCredential;
            const run = (m, o) => P[m](o).then((v) => ['resolved', v === undefined], (e) => [e.name, e.message]);
            const rpId = location.hostname;
            return [
              await run('signalUnknownCredential', { rpId, credentialId: ${JSON.stringify(rp.credentialId)} }),
              await run('signalAllAcceptedCredentials', { rpId, userId: ${JSON.stringify(rp.userId)}, allAcceptedCredentialIds: [] }),
              await run('signalCurrentUserDetails', { rpId, userId: ${JSON.stringify(rp.userId)}, name: 'alice', displayName: 'alice' }),
            ];
          })()`);
          assert.deepEqual(signals, [['resolved', true], ['resolved', true], ['resolved', true]]);
          await waitFor('the report in phones list', () => reportLines().length === reports + 1, { timeout: 15000, interval: 250 });
        });

        it(`${lib}: hints in the library's options decide what the overlay offers first (and it says the site reported a passkey of Pixel); getClientCapabilities on its page`, async () => {
          for (const [kind, hints, first] of [['create', ['security-key'], LOCAL], ['get', ['hybrid'], QR], ['get', ['client-device'], LOCAL]]) {
            await ctx.d.evaluate(`(window.__rplib = (${CEREMONY})(${JSON.stringify(kind)}, ${JSON.stringify({ username: 'hints', hints })}), true)`);
            await waitFor('the overlay', async () => overlayDrawn(await ctx.d.screenshot()), { timeout: 15000, interval: 150 });
            const st = await ctx.d.overlayEval(OVERLAY_CHOICES);
            const phones = [kind === 'create' ? 'Create it on Pixel' : 'Sign in with Pixel'];
            assert.deepEqual({ kind, hints, choices: st.choices, focused: st.focused },
              { kind, hints, choices: first === LOCAL ? [LOCAL, QR, ...phones] : [QR, ...phones, LOCAL], focused: first === LOCAL ? 'use-local' : 'use-qr' });
            assert.match(st.notice ?? '', /^localhost no longer accepts a passkey saved on Pixel\./);
            await ctx.d.key('Escape');
            const out = await ctx.d.evaluate('window.__rplib');
            assert.deepEqual([out.options.hints, out.error], [hints, 'NotAllowedError'], out.message);
            await overlayGone();
          }
          const caps = JSON.parse(await ctx.d.evaluate('PublicKeyCredential.getClientCapabilities().then((c) => JSON.stringify(c))'));
          assert.deepEqual([caps.hybridTransport, caps['extension:prf'], caps['extension:credProps']], [true, true, true], JSON.stringify(caps));
        });
      });
    }
  });
}
