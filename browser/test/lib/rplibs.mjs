// The same browser, extension, native host, relay and phone-sim against relying parties written
// with other WebAuthn libraries than the test RP's @simplewebauthn/server: py_webauthn
// (rp/py_webauthn_server.py, in a venv made here from rp/requirements-py_webauthn.txt),
// webauthn-rs (the `rp-server` binary of the tests crate) and Go's duo-labs/webauthn
// (rp/go_webauthn, built here from Debian's golang-github-duo-labs-webauthn-dev). Each speaks
// rp/server.mjs's JSON API and verifies strictly (origin, RP ID, its own challenge, user
// verification required); the page calls navigator.credentials itself with the browser's
// parse*OptionsFromJSON and toJSON(), so nothing between the library's options and its
// verifier is a JavaScript library.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OVERLAY_HOST, scanOverlayQr } from './scenarios.mjs';
import { BROWSER_DIR, child, REPO, waitFor } from './stack.mjs';

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
async function startLibRp(lib, dir, ca) {
  const [cmd, args] = RP_LIBS[lib]();
  const c = child(cmd, [...args, '--port', '0', '--attestation-ca', ca], { log: join(dir, `rp-${lib}.log`) });
  const url = await waitFor(`the ${lib} relying party`, () => c.output().match(/rp listening on (http:\/\/localhost:\d+)/)?.[1]
    ?? (c.proc.exitCode !== null ? Promise.reject(new Error(c.output())) : null));
  return { url, child: c, users: async () => (await fetch(`${url}/api/users`)).json() };
}

// In the page: options from the RP, the browser's own JSON parsing, the ceremony, the RP's
// verdict. Resolves to {options, verdict, id} or {options, error: the DOMException's name, message}.
const CEREMONY = `async (kind, body) => {
  const post = (path, b) => fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) })
    .then(async (r) => { const j = await r.json(); if (!r.ok) throw Object.assign(new Error(j.error), { name: 'ServerError' }); return j; });
  const api = kind === 'create' ? '/api/register' : '/api/auth';
  let options;
  try {
    options = await post(api + '/options', body);
    const cred = kind === 'create'
      ? await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) })
      : await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
    const verdict = await post(api + '/verify', { response: cred.toJSON() });
    return { options, verdict, id: cred.id };
  } catch (e) {
    return { options, error: e.name, message: e.message };
  }
}`;

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

    async function overlayGone(close) {
      if (close) {
        if (ctx.d.name === 'chromium') await ctx.d.key('Enter'); // focus is on "Close"
        else await ctx.d.clickOverlay('#cancel');
      }
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

        it(`${lib}: register with attestation "direct" (packed x5c chaining to phone-sim's CA), residentKey and userVerification required, excludeCredentials naming only unknown IDs`, async () => {
          const { out, phone } = await ceremony('create', { username: 'alice', attestation: 'direct', decoys: 2 }, `${lib}-register`,
            ['--attestation', 'packed-x5c', '--attestation-ca-out', rp.ca]);
          assert.equal(out.error, undefined, `${out.error}: ${out.message}\nphone-sim: ${phone.output()}`);
          assert.deepEqual({ rk: out.options.authenticatorSelection.residentKey, uv: out.options.authenticatorSelection.userVerification,
            attestation: out.options.attestation, excluded: out.options.excludeCredentials.length },
          { rk: 'required', uv: 'required', attestation: 'direct', excluded: 2 });
          assert.deepEqual({ ...out.verdict, credentialId: undefined }, { verified: true, credentialId: undefined, user: 'alice',
            fmt: 'packed', attestationRoots: 1, userVerified: true });
          assert.equal(out.verdict.credentialId, out.id);
          assert.equal((await phone.exited).code, 0, phone.output());
          assert.deepEqual(await rp.users(), { alice: [out.id] });
          rp.credentialId = out.id;
          await overlayGone();
        });

        it(`${lib}: sign in with allowCredentials naming the credential among random IDs, userVerification required`, async () => {
          const { out, phone } = await ceremony('get', { username: 'alice', decoys: 2 }, `${lib}-signin`);
          assert.equal(out.error, undefined, `${out.error}: ${out.message}\nphone-sim: ${phone.output()}`);
          assert.equal(out.options.userVerification, 'required');
          assert.equal(out.options.allowCredentials.length, 3);
          assert.ok(out.options.allowCredentials.some((c) => c.id === rp.credentialId));
          assert.deepEqual({ verified: out.verdict.verified, user: out.verdict.user, uv: out.verdict.userVerified, id: out.id },
            { verified: true, user: 'alice', uv: true, id: rp.credentialId });
          await overlayGone();
        });

        it(`${lib}: registering again with excludeCredentials naming the phone's credential rejects with InvalidStateError`, async () => {
          const { out, phone } = await ceremony('create', { username: 'alice', exclude: true, decoys: 1 }, `${lib}-excluded`);
          assert.equal(out.error, 'InvalidStateError', `${out.message}\nphone-sim: ${phone.output()}`);
          assert.equal(out.options.excludeCredentials.length, 2);
          await overlayGone(true);
          assert.deepEqual(await rp.users(), { alice: [rp.credentialId] });
        });
      });
    }
  });
}
