// The end-to-end scenarios, the same for each browser: a real RP page (@simplewebauthn/browser,
// verified by @simplewebauthn/server), the extension, the real native host, a local relay
// and phone-sim. The person's part is played with the keyboard in the overlay; the QR code is
// read from a screenshot of the overlay.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { startRp } from '../../rp/server.mjs';
import { launchChromium, launchFirefox } from './drivers.mjs';
import { binaries, BROWSER_DIR, PACKAGE_LAUNCHER, qrText, sleep, startStack, waitFor } from './stack.mjs';

// The overlay's screenshots: into test-output/ on every run; into the committed screenshots/
// (for the README) with HB_SCREENSHOTS=1 (`npm run screenshots`).
const SHOTS = join(BROWSER_DIR, process.env.HB_SCREENSHOTS ? 'screenshots' : 'test-output');

export const STATUS = `(() => { const s = document.querySelector('#status');
  return { state: s.dataset.state, seq: Number(s.dataset.seq || 0), error: s.dataset.errorName, user: s.dataset.user, text: s.textContent }; })()`;
// The overlay's host element as the page sees it (it can find it, but not into it).
export const OVERLAY_HOST = `[...document.documentElement.querySelectorAll('body > div')].find((e) => e.style.zIndex === '2147483647')`;

/** Saves a screenshot for the README, cropped to the overlay's dialog and a margin of page. */
function saveShot(file, png) {
  const img = PNG.sync.read(png);
  const [x0, y0] = [170, 20];
  const w = Math.min(560, img.width - x0);
  const h = Math.min(560, img.height - y0);
  const out = new PNG({ width: w, height: h });
  PNG.bitblt(img, out, x0, y0, w, h, 0, 0);
  writeFileSync(join(SHOTS, file), PNG.sync.write(out, { colorType: 2, deflateLevel: 9 }));
}

/** Is the overlay drawn? Its backdrop darkens the page's white corner. */
export function overlayDrawn(png) {
  const img = PNG.sync.read(png);
  const i = ((img.height - 4) * img.width + 4) * 4;
  return img.data[i] < 200 && img.data[i + 1] < 200;
}

/** The person chooses the QR code in the overlay (the keyboard in Chromium, the mouse in
 * Firefox); a screenshot of it, saved as `file` in the stack's folder, goes to phone-sim, whose
 * result is returned. `ctx` is the suite's context ({d, stack}). */
export async function scanOverlayQr(ctx, file, phoneArgs = []) {
  await waitFor('the overlay', async () => overlayDrawn(await ctx.d.screenshot()), { timeout: 15000, interval: 150 });
  if (ctx.d.name === 'chromium') await ctx.d.key('Enter');
  else await ctx.d.clickOverlay('#use-qr');
  const png = await waitFor('the QR code in a screenshot', async () => {
    const shot = await ctx.d.screenshot();
    return qrText(shot) ? shot : null;
  }, { timeout: 15000, interval: 150 });
  const path = join(ctx.stack.dir, file);
  writeFileSync(path, png);
  return ctx.stack.scan(path, phoneArgs);
}


/** The test page's buttons in `ctx.d`: `click(id)` presses one and returns the status seq its
 * outcome will carry; `outcome(seq)` waits for that outcome (the page's #status). */
export function pageControls(ctx) {
  const status = () => ctx.d.evaluate(STATUS);
  async function click(id) {
    const seq = (await status()).seq;
    await ctx.d.evaluate(`(document.querySelector('#${id}').click(), true)`);
    return seq + 1;
  }
  function outcome(seq, timeout = 40000) {
    return waitFor(`the page's outcome #${seq}`, async () => {
      const s = await status();
      return s.seq === seq && s.state !== 'pending' ? s : null;
    }, { timeout });
  }
  return { click, outcome };
}

/** After the suite of `ctx`: closes its browser, RP and stack, keeping the stack's directory
 * when a test failed. */
export function closeAfter(ctx) {
  afterEach((t) => {
    if (t.passed === false) ctx.failed = true;
  });

  after(async () => {
    await ctx.d?.close();
    await ctx.rp?.close();
    await ctx.stack?.stop({ keep: ctx.failed });
  });
}

/** The person closes the overlay once it shows the ceremony's error: its button says "Close"
 * and has the focus (the page may get the error before the overlay has drawn it). Chromium:
 * Enter; Firefox: a click on it. */
export async function closeErrorOverlay(d) {
  await waitFor('the overlay to show the error with "Close" focused', async () => {
    try {
      return await d.overlayEval(`document.getElementById('cancel')?.textContent === 'Close' && document.activeElement?.id === 'cancel'`);
    } catch {
      return false;
    }
  }, { timeout: 10000, interval: 100 });
  if (d.name === 'chromium') await d.key('Enter');
  else await d.clickOverlay('#cancel');
}

/** The person picks the linked phone in the overlay a cross-origin frame opened. */
export async function pickPhoneInFrame(ctx) {
  await waitFor('the overlay in the frame', async () => {
    try { return await ctx.d.overlayEval(`!!document.querySelector('button.phone')`); } catch { return false; }
  }, { timeout: 15000, interval: 150 });
  await ctx.d.overlayEval(`(document.querySelector('button.phone').click(), true)`);
}

/** The scenarios in one browser; each of `more` then adds its own with the same browser,
 * stack and context ({d, stack, failed}), after these. */
export function browserSuite(name, ...more) {
  describe(`${name}: extension + native host + phone-sim`, () => {
    const ctx = {};
    suite(name, ctx);
    for (const add of more) add(ctx);
  });
}

function suite(name, ctx) {
  const { click, outcome } = pageControls(ctx);

  /** The person's part in the overlay. Chromium: the keyboard only (focus starts on the
   * first choice; Tab moves, Enter activates, Escape cancels). Firefox: the mouse. */
  async function person(action) {
    const d = ctx.d;
    if (action === 'close') {
      await closeErrorOverlay(d);
    } else if (d.name === 'chromium') {
      if (action === 'qr') await d.key('Enter');
      else if (action === 'phone') { await d.key('Tab'); await d.key('Enter'); }
      else if (action === 'cancel') await d.key('Escape');
    } else {
      const sel = { qr: '#use-qr', phone: 'button.phone' }[action];
      if (action === 'cancel') await d.key('Escape');
      else await d.clickOverlay(sel);
    }
  }

  /** What the person sees and what a screen reader gets, read from the overlay's frame. */
  function overlayState() {
    return ctx.d.overlayEval(`(() => {
      const $ = (id) => document.getElementById(id);
      const shown = (e) => !!e && !e.closest('[hidden]');
      return {
        role: $('dialog').getAttribute('role'), modal: $('dialog').getAttribute('aria-modal'),
        title: $('title').textContent, focused: document.activeElement?.id || document.activeElement?.className || '',
        choices: [...document.querySelectorAll('#choices button')].filter(shown).map((b) => [...b.childNodes].filter((n) => n.getAttribute?.('aria-hidden') !== 'true').map((n) => n.textContent).join('').trim()),
        stage: shown($('stage')) ? $('stage').textContent : null, stageLive: $('stage').getAttribute('aria-live'),
        problem: shown($('problem')) ? $('problem').textContent : null, problemRole: $('problem').getAttribute('role'),
        notice: shown($('notice')) ? $('notice').textContent : null,
        qr: shown($('qr')), button: $('cancel').textContent,
      };
    })()`);
  }

  async function overlayReady() {
    return waitFor('the overlay', async () => {
      const png = await ctx.d.screenshot();
      return overlayDrawn(png) ? png : null;
    }, { timeout: 15000, interval: 150 });
  }

  async function overlayGone() {
    await waitFor('the overlay to close', async () => !(await ctx.d.evaluate(`!!${OVERLAY_HOST}`)), { timeout: 10000 });
  }

  /** Chooses the QR code in the overlay and waits for it on screen: [png, text]. */
  async function chooseQr(shotName) {
    const chooser = await overlayReady();
    if (shotName) saveShot(`${name}-${shotName}.png`, chooser);
    await person('qr'); // "Use a phone or tablet (QR code)"
    return waitFor('the QR code in a screenshot', async () => {
      const png = await ctx.d.screenshot();
      const text = qrText(png);
      return text ? [png, text] : null;
    }, { timeout: 15000, interval: 150 });
  }

  /** Hands the screenshot to phone-sim (which decodes it itself). */
  function phoneScans(png, label, extra) {
    const file = join(ctx.stack.dir, `${name}-${label}.png`);
    writeFileSync(file, png);
    return ctx.stack.scan(file, extra);
  }

  before(async () => {
    if (existsSync(PACKAGE_LAUNCHER)) {
      throw new Error(`the hybrid-bridge package is installed (${PACKAGE_LAUNCHER}): its extension would run `
        + 'beside the one under test; apt-get purge hybrid-bridge, then run the tests');
    }
    mkdirSync(SHOTS, { recursive: true });
    ctx.stack = await startStack(name);
    ctx.rp = await startRp();
    const tmp = ctx.stack.dir;
    if (name === 'chromium') {
      const userDataDir = mkdtempSync(join(tmp, 'ud-'));
      ctx.where = { chromiumUserDataDir: userDataDir };
      ctx.stack.install(ctx.where);
      ctx.d = await launchChromium({ extensionDir: join(BROWSER_DIR, 'dist', 'chromium'), userDataDir, log: join(tmp, 'browser.log') });
    } else {
      const home = mkdtempSync(join(tmp, 'home-'));
      ctx.where = { firefoxHome: home };
      ctx.stack.install(ctx.where);
      ctx.d = await launchFirefox({ extensionDir: join(BROWSER_DIR, 'dist', 'firefox'), profileDir: join(tmp, 'profile'), home, log: join(tmp, 'browser.log') });
    }
    await ctx.d.navigate(ctx.rp.url);
  });

  closeAfter(ctx);

  it('register: QR code read from a screenshot of the overlay, phone-sim, the RP verifies', async () => {
    const seq = await click('register');
    await overlayReady();
    const chooser = await overlayState();
    assert.deepEqual(chooser, { role: 'dialog', modal: 'true', title: 'Create a passkey', focused: 'use-qr',
      choices: ['Use a phone or tablet (QR code)', 'Use this device / a security key'], stage: null, stageLive: 'polite',
      problem: null, problemRole: 'alert', notice: null, qr: false, button: 'Cancel' });
    const [png, text] = await chooseQr('choose');
    const showing = await overlayState();
    assert.equal(showing.qr, true);
    assert.equal(showing.stage, "Scan this QR code with your phone or tablet's camera.");
    assert.equal(showing.focused, 'cancel');
    saveShot(`${name}-qr.png`, png);
    // The page cannot read the QR code: not in its DOM, no way into the closed shadow root,
    // and the overlay's frame is another origin.
    const seen = await ctx.d.evaluate(`(() => {
      const host = ${OVERLAY_HOST};
      let frameRead = 'no frame';
      for (let i = 0; i < window.frames.length; i++) {
        try { frameRead = String(window.frames[i].document.body.innerHTML.length); } catch (e) { frameRead = e.name; }
      }
      return { host: !!host, shadow: host ? host.shadowRoot === null : null, frames: window.frames.length, frameRead,
        inDom: document.documentElement.outerHTML.includes(${JSON.stringify(text)}) || document.documentElement.outerHTML.includes('FIDO:/') };
    })()`);
    // (A frame in a shadow tree is not even in window.frames; if it were, reading it throws.)
    assert.deepEqual({ ...seen, frames: undefined }, { host: true, shadow: true, frames: undefined,
      frameRead: seen.frames === 0 ? 'no frame' : 'SecurityError', inDom: false });
    const phone = phoneScans(png, 'register');
    const out = await outcome(seq);
    assert.equal(out.state, 'ok', `${out.text}\nphone-sim: ${phone.output()}`);
    assert.equal(out.user, 'alice');
    assert.equal((await phone.exited).code, 0, phone.output());
    await overlayGone();
    assert.equal(ctx.rp.users.get('alice').credentials.length, 1);
  });

  it('sign in with a discoverable credential (no allowCredentials)', async () => {
    const seq = await click('signin');
    const [png] = await chooseQr();
    const phone = phoneScans(png, 'signin');
    const out = await outcome(seq);
    assert.equal(out.state, 'ok', `${out.text}\nphone-sim: ${phone.output()}`);
    assert.equal(out.user, 'alice');
    await overlayGone();
  });

  it('sign in with allowCredentials', async () => {
    const seq = await click('signin-user');
    const [png] = await chooseQr();
    const phone = phoneScans(png, 'signin-user');
    const out = await outcome(seq);
    assert.equal(out.state, 'ok', `${out.text}\nphone-sim: ${phone.output()}`);
    assert.equal(out.user, 'alice');
  });

  it('the credentials behave like PublicKeyCredentials (create and get called directly, verified from toJSON())', async () => {
    const POST = `(path, body) => fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json())`;
    await ctx.d.evaluate(`(window.__create = (async () => {
      const post = ${POST};
      const { base64URLStringToBuffer: b } = await import('/lib/index.js');
      const o = await post('/api/register/options', { username: 'bob' });
      const cred = await navigator.credentials.create({ publicKey: { ...o, challenge: b(o.challenge), user: { ...o.user, id: b(o.user.id) },
        excludeCredentials: [] } });
      const r = cred.response;
      const shape = { pkc: cred instanceof PublicKeyCredential, att: r instanceof AuthenticatorAttestationResponse, type: cred.type,
        rawId: cred.rawId instanceof ArrayBuffer && cred.rawId.byteLength > 0, attachment: cred.authenticatorAttachment,
        clientData: JSON.parse(new TextDecoder().decode(r.clientDataJSON)).type, attObj: r.attestationObject instanceof ArrayBuffer,
        transports: r.getTransports().includes('hybrid'), alg: r.getPublicKeyAlgorithm(), spki: r.getPublicKey()?.byteLength,
        authData: r.getAuthenticatorData() instanceof ArrayBuffer, ext: typeof cred.getClientExtensionResults(), json: cred.toJSON().id === cred.id };
      const v = await post('/api/register/verify', { response: cred.toJSON() });
      return { shape, verified: v.verified === true };
    })(), true)`);
    let [png] = await chooseQr();
    phoneScans(png, 'direct-create');
    const created = await ctx.d.evaluate('window.__create');
    assert.deepEqual(created, { verified: true, shape: { pkc: true, att: true, type: 'public-key', rawId: true, attachment: 'cross-platform',
      clientData: 'webauthn.create', attObj: true, transports: true, alg: -7, spki: 91, authData: true, ext: 'object', json: true } });
    await overlayGone();

    await ctx.d.evaluate(`(window.__get = (async () => {
      const post = ${POST};
      const { base64URLStringToBuffer: b } = await import('/lib/index.js');
      const o = await post('/api/auth/options', { username: 'bob' });
      const cred = await navigator.credentials.get({ publicKey: { ...o, challenge: b(o.challenge),
        allowCredentials: o.allowCredentials.map((c) => ({ ...c, id: b(c.id) })) } });
      const r = cred.response;
      const shape = { pkc: cred instanceof PublicKeyCredential, ass: r instanceof AuthenticatorAssertionResponse,
        rawId: cred.rawId instanceof ArrayBuffer, clientData: JSON.parse(new TextDecoder().decode(r.clientDataJSON)).type,
        authData: r.authenticatorData instanceof ArrayBuffer, sig: r.signature instanceof ArrayBuffer && r.signature.byteLength > 8,
        userHandle: r.userHandle === null || r.userHandle instanceof ArrayBuffer, attachment: cred.authenticatorAttachment, json: cred.toJSON().response.signature.length > 8 };
      const v = await post('/api/auth/verify', { response: cred.toJSON() });
      return { shape, verified: v.verified === true, user: v.user };
    })(), true)`);
    [png] = await chooseQr();
    phoneScans(png, 'direct-get');
    const got = await ctx.d.evaluate('window.__get');
    assert.deepEqual(got, { verified: true, user: 'bob', shape: { pkc: true, ass: true, rawId: true, clientData: 'webauthn.get', authData: true,
      sig: true, userHandle: true, attachment: 'cross-platform', json: true } });
    await overlayGone();
  });

  it('prf (WebAuthn L3 §10.1.4): eval on create, evalByCredential on sign-in, results as ArrayBuffers, deterministic per salt', async () => {
    // Salts are the page's own bytes (the client hashes them); results are 32-byte ArrayBuffers.
    const HELPERS = `const salt = (c) => new Uint8Array(32).fill(c);
      const hex = (b) => b instanceof ArrayBuffer ? [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, '0')).join('') : String(b);
      const results = (r) => r && { first: hex(r.first), firstBytes: r.first?.byteLength, second: r.second === undefined ? undefined : hex(r.second) };`;
    await ctx.d.evaluate(`(window.__prfCreate = (async () => {
      ${HELPERS}
      const cred = await navigator.credentials.create({ publicKey: { challenge: new Uint8Array(32), rp: { name: 'RP' },
        user: { id: new Uint8Array([1, 2, 3, 4]), name: 'prf', displayName: 'PRF' }, pubKeyCredParams: [{ type: 'public-key', alg: -7 }],
        extensions: { prf: { eval: { first: salt(1) } } } } });
      window.__prfId = cred.rawId;
      const prf = cred.getClientExtensionResults().prf;
      return { id: cred.id, enabled: prf?.enabled, results: results(prf?.results) };
    })(), true)`);
    let [png] = await chooseQr();
    let phone = phoneScans(png, 'prf-create');
    const created = await waitFor('the create', () => ctx.d.evaluate('window.__prfCreate'), { timeout: 40000 });
    assert.equal((await phone.exited).code, 0, phone.output());
    assert.equal(created.enabled, true, JSON.stringify(created));
    assert.equal(created.results.firstBytes, 32, JSON.stringify(created));
    await overlayGone();

    // A sign-in with this credential: evalByCredential (keyed by its ID) beside eval.
    const signIn = async (label, extensions) => {
      await ctx.d.evaluate(`(window.__prfGet = (async () => {
        ${HELPERS}
        const cred = await navigator.credentials.get({ publicKey: { challenge: new Uint8Array(32),
          allowCredentials: [{ type: 'public-key', id: window.__prfId }], extensions: { prf: ${extensions} } } });
        const prf = cred.getClientExtensionResults().prf;
        return { id: cred.id, enabled: prf?.enabled, results: results(prf?.results) };
      })(), true)`);
      [png] = await chooseQr();
      phone = phoneScans(png, `prf-${label}`);
      const got = await waitFor('the sign-in', () => ctx.d.evaluate('window.__prfGet'), { timeout: 40000 });
      assert.equal((await phone.exited).code, 0, phone.output());
      await overlayGone();
      assert.equal(got.id, created.id);
      assert.equal(got.results?.firstBytes, 32, JSON.stringify(got));
      return got.results;
    };
    const id = `b64u(window.__prfId)`;
    const B64U = `const b64u = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');`;
    const byCred = (first, second) => `(() => { ${B64U} return { eval: { first: salt(9) },
      evalByCredential: { [${id}]: { first: salt(${first})${second ? `, second: salt(${second})` : ''} } } }; })()`;
    const same = await signIn('same-salt', byCred(1, 2));
    const other = await signIn('other-salt', byCred(3));
    const evalOnly = await signIn('eval-only', '{ eval: { first: salt(3) } }');
    // The same salt gives the same output, at creation and at sign-in; another salt another one.
    assert.equal(same.first, created.results.first);
    assert.equal(same.second?.length, 64);
    assert.notEqual(same.second, same.first);
    assert.notEqual(other.first, same.first);
    // evalByCredential's entry for the credential is what was evaluated, not eval's salt(9).
    assert.equal(evalOnly.first, other.first);

    // The checks, before anything goes to a phone: no allow list, or a key naming no allowed credential.
    const errors = await ctx.d.evaluate(`(async () => {
      ${HELPERS}
      ${B64U}
      const run = (publicKey) => navigator.credentials.get({ publicKey }).then(() => 'resolved', (e) => [e.name, e instanceof DOMException]);
      return {
        noAllowList: await run({ challenge: new Uint8Array(32), extensions: { prf: { evalByCredential: { [${id}]: { first: salt(1) } } } } }),
        notAllowed: await run({ challenge: new Uint8Array(32), allowCredentials: [{ type: 'public-key', id: window.__prfId }],
          extensions: { prf: { evalByCredential: { AAECAw: { first: salt(1) } } } } }),
        notBase64url: await run({ challenge: new Uint8Array(32), allowCredentials: [{ type: 'public-key', id: window.__prfId }],
          extensions: { prf: { evalByCredential: { [${id} + '=']: { first: salt(1) } } } } }),
        onCreate: await navigator.credentials.create({ publicKey: { challenge: new Uint8Array(32), rp: { name: 'RP' },
          user: { id: new Uint8Array(4), name: 'prf', displayName: 'PRF' }, pubKeyCredParams: [{ type: 'public-key', alg: -7 }],
          extensions: { prf: { evalByCredential: { [${id}]: { first: salt(1) } } } } } }).then(() => 'resolved', (e) => [e.name, e instanceof DOMException]),
      };
    })()`);
    assert.deepEqual(errors, { noAllowList: ['NotSupportedError', true], notAllowed: ['SyntaxError', true],
      notBase64url: ['SyntaxError', true], onCreate: ['NotSupportedError', true] });
    assert.equal(await ctx.d.evaluate(`!!${OVERLAY_HOST}`), false, 'no overlay for a refused request');
  });

  it('one ceremony at a time: a second request while one runs gets NotAllowedError', async () => {
    await ctx.d.evaluate(`(window.__first = navigator.credentials.get({ publicKey: { challenge: new Uint8Array(32) } })
      .then(() => 'resolved', (e) => e.name), true)`);
    await overlayReady();
    const second = await ctx.d.evaluate(`navigator.credentials.get({ publicKey: { challenge: new Uint8Array(32) } })
      .then(() => 'resolved', (e) => e.name)`);
    assert.equal(second, 'NotAllowedError');
    await person('cancel');
    assert.equal(await ctx.d.evaluate('window.__first'), 'NotAllowedError');
    await overlayGone();
  });

  it('capabilities: the phone path\'s, merged with the browser\'s; conditional mediation is left to the browser: no overlay', async () => {
    const caps = JSON.parse(await ctx.d.evaluate('PublicKeyCredential.getClientCapabilities().then((c) => JSON.stringify(c))'));
    assert.equal(caps.hybridTransport, true, JSON.stringify(caps));
    assert.equal(caps['extension:prf'], true, JSON.stringify(caps));
    assert.equal(caps['extension:credProps'], true, JSON.stringify(caps));
    await ctx.d.evaluate(`(window.__ac = new AbortController(), window.__cond = navigator.credentials.get({ mediation: 'conditional',
      publicKey: { challenge: new Uint8Array(32) }, signal: window.__ac.signal }).then(() => 'resolved', (e) => e.name), true)`);
    await sleep(1000);
    assert.equal(await ctx.d.evaluate(`!!${OVERLAY_HOST}`), false);
    await ctx.d.evaluate('(window.__ac.abort(), true)');
    assert.equal(typeof await ctx.d.evaluate('window.__cond'), 'string');
  });

  it('hints decide what the overlay offers first (and focuses); every choice stays on offer', async () => {
    const QR = 'Use a phone or tablet (QR code)';
    const LOCAL = 'Use this device / a security key';
    const cases = [
      [['security-key'], [LOCAL, QR], 'use-local'],
      [['client-device'], [LOCAL, QR], 'use-local'],
      [['hybrid'], [QR, LOCAL], 'use-qr'],
      [['hybrid', 'security-key'], [QR, LOCAL], 'use-qr'],
      [['not-a-hint', 'client-device'], [LOCAL, QR], 'use-local'],
      [[], [QR, LOCAL], 'use-qr'],
    ];
    for (const [hints, choices, focused] of cases) {
      for (const kind of ['get', 'create']) {
        const publicKey = kind === 'get'
          ? `{ challenge: new Uint8Array(32), hints: ${JSON.stringify(hints)} }`
          : `{ challenge: new Uint8Array(32), rp: { name: 'RP' }, user: { id: new Uint8Array(8), name: 'hints', displayName: 'Hints' },
              pubKeyCredParams: [{ type: 'public-key', alg: -7 }], hints: ${JSON.stringify(hints)} }`;
        await ctx.d.evaluate(`(window.__hinted = navigator.credentials.${kind}({ publicKey: ${publicKey} })
          .then(() => 'resolved', (e) => e.name), true)`);
        await overlayReady();
        const st = await overlayState();
        // Linked phones (once a QR code linked one) follow the QR code, wherever it goes.
        const phones = st.choices.filter((c) => c !== QR && c !== LOCAL);
        const expected = choices[0] === LOCAL ? [LOCAL, QR, ...phones] : [QR, ...phones, LOCAL];
        assert.deepEqual({ hints, kind, choices: st.choices, focused: st.focused }, { hints, kind, choices: expected, focused });
        await person('cancel');
        assert.equal(await waitFor('the page\'s outcome', () => ctx.d.evaluate('window.__hinted')), 'NotAllowedError');
        await overlayGone();
      }
    }
  });

  it('signals (WebAuthn L3): valid calls resolve, malformed IDs get TypeError, another site\'s RP ID SecurityError; no overlay', async () => {
    const results = await ctx.d.evaluate(`(async () => {
      const P = PublicKeyCredential;
      const run = (m, o) => Promise.resolve().then(() => P[m](o)).then((v) => ['resolved', v === undefined ? 'undefined' : typeof v], (e) => [e.name, e instanceof DOMException ? 'DOMException' : e.constructor.name]);
      const rpId = location.hostname;
      return {
        shape: ['signalUnknownCredential', 'signalAllAcceptedCredentials', 'signalCurrentUserDetails']
          .map((m) => [typeof P[m], P[m].name, P[m].length, Object.keys(P).includes(m)]),
        unknown: await run('signalUnknownCredential', { rpId, credentialId: 'AAECAwQFBgcICQoLDA0ODw' }),
        unknownPadded: await run('signalUnknownCredential', { rpId, credentialId: 'AAECAw==' }),
        unknownPlus: await run('signalUnknownCredential', { rpId, credentialId: 'AA+/' }),
        unknownMissing: await run('signalUnknownCredential', { rpId }),
        unknownNoOptions: await run('signalUnknownCredential'),
        unknownOtherSite: await run('signalUnknownCredential', { rpId: 'example.com', credentialId: 'AAECAw' }),
        accepted: await run('signalAllAcceptedCredentials', { rpId, userId: 'dXNlcg', allAcceptedCredentialIds: ['AAECAw', 'BAUGBw'] }),
        acceptedBadId: await run('signalAllAcceptedCredentials', { rpId, userId: 'dXNlcg', allAcceptedCredentialIds: ['AAECAw', 'A'] }),
        acceptedBadUser: await run('signalAllAcceptedCredentials', { rpId, userId: 'dXN!cg', allAcceptedCredentialIds: [] }),
        acceptedNotList: await run('signalAllAcceptedCredentials', { rpId, userId: 'dXNlcg', allAcceptedCredentialIds: 'AAECAw' }),
        acceptedOtherSite: await run('signalAllAcceptedCredentials', { rpId: 'example.com', userId: 'dXNlcg', allAcceptedCredentialIds: [] }),
        details: await run('signalCurrentUserDetails', { rpId, userId: 'dXNlcg', name: 'alice', displayName: 'Alice' }),
        detailsBadUser: await run('signalCurrentUserDetails', { rpId, userId: 'dXNlcg=', name: 'alice', displayName: 'Alice' }),
        detailsMissing: await run('signalCurrentUserDetails', { rpId, userId: 'dXNlcg', name: 'alice' }),
        detailsOtherSite: await run('signalCurrentUserDetails', { rpId: 'com', userId: 'dXNlcg', name: 'alice', displayName: 'Alice' }),
      };
    })()`);
    const expected = {
      shape: [['function', 'signalUnknownCredential', 1, false], ['function', 'signalAllAcceptedCredentials', 1, false],
        ['function', 'signalCurrentUserDetails', 1, false]],
      unknown: ['resolved', 'undefined'],
      unknownPadded: ['TypeError', 'TypeError'],
      unknownPlus: ['TypeError', 'TypeError'],
      unknownMissing: ['TypeError', 'TypeError'],
      unknownNoOptions: ['TypeError', 'TypeError'],
      unknownOtherSite: ['SecurityError', 'DOMException'],
      accepted: ['resolved', 'undefined'],
      acceptedBadId: ['TypeError', 'TypeError'],
      acceptedBadUser: ['TypeError', 'TypeError'],
      acceptedNotList: ['TypeError', 'TypeError'],
      acceptedOtherSite: ['SecurityError', 'DOMException'],
      details: ['resolved', 'undefined'],
      detailsBadUser: ['TypeError', 'TypeError'],
      detailsMissing: ['TypeError', 'TypeError'],
      detailsOtherSite: ['SecurityError', 'DOMException'],
    };
    assert.deepEqual(results, expected);
    assert.equal(await ctx.d.evaluate(`!!${OVERLAY_HOST}`), false, 'a signal shows nothing in the page');
  });

  it('sign in with the linked phone: no QR code', async () => {
    const phone = ctx.stack.linked();
    await waitFor('phone-sim to hold its contact channel', () => /regist|listening|waiting/i.test(phone.output()), { timeout: 15000 });
    const seq = await click('signin-user');
    const chooser = await overlayReady();
    saveShot(`${name}-linked-choose.png`, chooser);
    assert.equal(qrText(chooser), null);
    assert.deepEqual((await overlayState()).choices,
      ['Use a phone or tablet (QR code)', 'Sign in with Pixel', 'Use this device / a security key']);
    await person('phone'); // "Sign in with Pixel"
    const out = await outcome(seq);
    assert.equal(out.state, 'ok', `${out.text}\nphone-sim: ${phone.output()}`);
    assert.equal(out.user, 'alice');
    assert.equal((await phone.exited).code, 0, phone.output());
  });

  it('signalUnknownCredential for the linked phone\'s passkey: phones list and the next overlay say so; the page learns nothing', async () => {
    const credentialId = ctx.rp.users.get('alice').credentials[0].id;
    const list = () => {
      const r = spawnSync(binaries().bridge, ['--links-file', ctx.stack.links, 'phones', 'list'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout;
    };
    assert.doesNotMatch(list(), /reported a passkey/);
    // An ID no phone made here: resolved just the same, and nothing is recorded.
    const other = await ctx.d.evaluate(`PublicKeyCredential.signalUnknownCredential({ rpId: 'localhost', credentialId: 'b3RoZXI' })
      .then((v) => ['resolved', v === undefined], (e) => [e.name])`);
    assert.deepEqual(other, ['resolved', true]);
    const got = await ctx.d.evaluate(`PublicKeyCredential.signalUnknownCredential({ rpId: 'localhost', credentialId: ${JSON.stringify(credentialId)} })
      .then((v) => ['resolved', v === undefined], (e) => [e.name])`);
    assert.deepEqual(got, ['resolved', true]);
    const listed = await waitFor('the report in phones list', () => {
      const out = list();
      return /reported a passkey/.test(out) ? out : null;
    }, { timeout: 15000, interval: 250 });
    const lines = listed.trim().split('\n');
    assert.equal(lines.length, 2, listed);
    assert.match(lines[0], /^Pixel\t/);
    assert.match(lines[1], /^ {2}localhost reported a passkey on this phone unknown on .+; delete it in the phone's passkey manager$/);
    // The next request from this site shows it under the linked phone.
    const seq = await click('signin');
    await overlayReady();
    const st = await overlayState();
    assert.deepEqual([st.choices, st.notice], [['Use a phone or tablet (QR code)', 'Sign in with Pixel', 'Use this device / a security key'],
      'localhost no longer accepts a passkey saved on Pixel. You can delete it in the phone\'s passkey manager.']);
    await person('cancel');
    assert.equal((await outcome(seq)).error, 'NotAllowedError');
    await overlayGone();
  });

  if (name === 'chromium') {
    // Chromium only: its DevTools virtual authenticator stands in for "this device", so the
    // browser's own implementation can finish the request (BiDi has no such authenticator).
    it('"Use this device / a security key" hands the request to the browser\'s own WebAuthn', async () => {
      await ctx.d.addVirtualAuthenticator();
      await ctx.d.evaluate(`(document.querySelector('#username').value = 'carol', true)`);
      try {
        const seq = await click('register');
        await overlayReady();
        await ctx.d.key('Tab'); // "Create it on Pixel" (linked above)
        await ctx.d.key('Tab'); // "Use this device / a security key"
        await ctx.d.key('Enter');
        const out = await outcome(seq);
        assert.equal(out.state, 'ok', out.text);
        assert.equal(out.user, 'carol');
        await overlayGone();
        // The credential is the virtual authenticator's (USB), not the phone's.
        const c = ctx.rp.users.get('carol').credentials[0];
        assert.deepEqual(c.transports, ['usb']);
      } finally {
        await ctx.d.evaluate(`(document.querySelector('#username').value = 'alice', true)`);
      }
    });
  }

  it('cancel in the overlay (Escape) rejects with NotAllowedError', async () => {
    const seq = await click('signin');
    await chooseQr();
    assert.ok(ctx.stack.hostPids().length >= 1, 'the host runs the ceremony');
    await person('cancel');
    const out = await outcome(seq);
    assert.equal(out.state, 'error');
    assert.equal(out.error, 'NotAllowedError', out.text);
    await overlayGone();
    await waitFor('the host to end', () => ctx.stack.hostPids().length === 0, { timeout: 10000 });
  });

  it('a page that removes the overlay ends the ceremony (NotAllowedError)', async () => {
    const seq = await click('signin');
    await chooseQr();
    await ctx.d.evaluate(`(${OVERLAY_HOST}.remove(), true)`);
    const out = await outcome(seq);
    assert.equal(out.error, 'NotAllowedError', out.text);
  });

  it('abort through the AbortSignal rejects with AbortError and closes the overlay', async () => {
    const seq = await click('signin');
    await chooseQr();
    assert.ok(ctx.stack.hostPids().length >= 1, 'the host runs the ceremony');
    await ctx.d.evaluate(`(document.querySelector('#abort').click(), true)`);
    const out = await outcome(seq);
    assert.equal(out.error, 'AbortError', out.text);
    await overlayGone();
    // The host's ceremony ended too (its port closed: the host exits).
    await waitFor('the host to end', () => ctx.stack.hostPids().length === 0, { timeout: 10000 });
  });

  it('denied on the phone rejects with NotAllowedError and the overlay says so', async () => {
    const seq = await click('signin');
    const [png] = await chooseQr();
    const phone = phoneScans(png, 'deny', ['--approve', 'deny']);
    const out = await outcome(seq);
    assert.equal(out.error, 'NotAllowedError', `${out.text}\nphone-sim: ${phone.output()}`);
    await sleep(300);
    const shot = await ctx.d.screenshot();
    saveShot(`${name}-denied.png`, shot);
    assert.ok(overlayDrawn(shot), 'the error stays on screen until the person closes it');
    const st = await overlayState();
    assert.deepEqual([st.problem, st.problemRole, st.button, st.focused, st.qr],
      ['The request was declined on the phone.', 'alert', 'Close', 'cancel', false]);
    await person('close');
    await overlayGone();
  });

  it('registering again on a phone that holds an excluded credential rejects with InvalidStateError', async () => {
    await ctx.d.evaluate(`(document.querySelector('#exclude').checked = true, true)`);
    try {
      const seq = await click('register');
      const [png] = await chooseQr();
      const phone = phoneScans(png, 'excluded');
      const out = await outcome(seq);
      assert.equal(out.error, 'InvalidStateError', `${out.text}\nphone-sim: ${phone.output()}`);
      await person('close');
      await overlayGone();
      assert.equal(ctx.rp.users.get('alice').credentials.length, 1);
    } finally {
      await ctx.d.evaluate(`(document.querySelector('#exclude').checked = false, true)`);
    }
  });

  it('without the host installed, the overlay says how to install it and the page can still cancel', async () => {
    ctx.stack.uninstall(ctx.where);
    try {
      const seq = await click('signin');
      await overlayReady();
      const st = await overlayState();
      assert.match(st.problem ?? '', /not installed for this browser\. Run `hybrid-bridge browser install`/);
      await person('cancel');
      const out = await outcome(seq);
      assert.equal(out.error, 'NotAllowedError', out.text);
      await overlayGone();
    } finally {
      ctx.stack.install(ctx.where);
    }
  });

  it('an RP ID that does not match the page rejects with SecurityError, with no overlay', async () => {
    await ctx.d.evaluate(`(document.querySelector('#rpid').value = 'example.com', true)`);
    try {
      const seq = await click('signin');
      const out = await outcome(seq);
      assert.equal(out.error, 'SecurityError', out.text);
      assert.equal(await ctx.d.evaluate(`!!${OVERLAY_HOST}`), false);
    } finally {
      await ctx.d.evaluate(`(document.querySelector('#rpid').value = '', true)`);
    }
  });

  it('the page cannot choose the origin: a forged request naming another site is checked against the real one', async () => {
    const r = await ctx.d.evaluate(`new Promise((resolve) => {
      window.addEventListener('hybrid-bridge:to-page', (e) => { const m = JSON.parse(e.detail); if (m.id === 'forged') resolve(m); });
      window.dispatchEvent(new CustomEvent('hybrid-bridge:to-ext', { detail: JSON.stringify({ type: 'begin', id: 'forged', kind: 'get',
        origin: 'https://bank.example', options: { challenge: 'AAAAAAAAAAAAAAAAAAAAAA', rpId: 'bank.example' } }) }));
    })`);
    assert.equal(r.type, 'error');
    assert.equal(r.name, 'SecurityError', r.message);
    assert.match(r.message, /localhost/);
  });

  it('a sandboxed document (CSP sandbox, iframe sandbox) gets SecurityError and no overlay', async () => {
    try {
      // CSP `sandbox allow-scripts`: the top-level document's origin is opaque.
      await ctx.d.navigate(`${ctx.rp.url}/sandboxed.html?csp`);
      const top = await waitFor('the sandboxed page\'s outcome', () => ctx.d.evaluate('window.__outcome'), { timeout: 15000 });
      assert.deepEqual([top.state, top.error], ['error', 'SecurityError'], top.text);
      assert.equal(await ctx.d.evaluate(`!!${OVERLAY_HOST}`), false, 'no overlay in the sandboxed page');
      assert.equal(await ctx.d.evaluate('origin'), 'null', 'the document is sandboxed');
      // <iframe sandbox="allow-scripts">: a frame with an opaque origin.
      await ctx.d.navigate(`${ctx.rp.url}/sandboxed-frame.html`);
      const framed = await waitFor('the sandboxed frame\'s outcome', () => ctx.d.evaluate('window.__outcome'), { timeout: 15000 });
      assert.deepEqual([framed.state, framed.error], ['error', 'SecurityError'], framed.text);
      assert.equal(await ctx.d.evaluate(`!!${OVERLAY_HOST}`), false, 'no overlay in the page');
      const shot = await ctx.d.screenshot();
      assert.ok(!overlayDrawn(shot), 'no overlay drawn anywhere, the frame included');
    } finally {
      await ctx.d.navigate(ctx.rp.url);
    }
  });

  it('a cross-origin iframe without publickey-credentials-get gets NotAllowedError', async () => {
    const top = ctx.rp.url.replace('localhost', '127.0.0.1');
    await ctx.d.navigate(`${top}/frames.html`);
    try {
      await waitFor('the frames', () => ctx.d.evaluate(`document.querySelectorAll('iframe').length === 2 && window.frames.length === 2`));
      // Each frame is cross-origin: the test clicks through a helper page in the frame itself
      // (postMessage), since the top page cannot script it.
      const errorName = await ctx.d.evaluate(`new Promise((resolve) => {
        const f = document.getElementById('denied');
        const t = setInterval(() => f.contentWindow.postMessage({ run: 'signin' }, '*'), 200);
        window.addEventListener('message', (e) => {
          if (e.data?.started) clearInterval(t);
          if (e.data?.outcome) resolve(e.data.outcome);
        });
      })`);
      assert.equal(errorName.error, 'NotAllowedError', errorName.text);
    } finally {
      await ctx.d.navigate(ctx.rp.url);
    }
  });

  {
    // Chromium tells the extension the frame's permissions policy; in Firefox the top
    // frame's content script reads the iframe's allow attribute (README).
    it('a cross-origin iframe with publickey-credentials-get signs in: crossOrigin and topOrigin in clientDataJSON, checked by the RP', async () => {
      const top = ctx.rp.url.replace('localhost', '127.0.0.1');
      const phone = ctx.stack.linked();
      await waitFor('phone-sim to hold its contact channel', () => /regist|listening|waiting/i.test(phone.output()), { timeout: 15000 });
      await ctx.d.navigate(`${top}/frames.html`);
      try {
        await waitFor('the frames', () => ctx.d.evaluate(`document.querySelectorAll('iframe').length === 2 && window.frames.length === 2`));
        await ctx.d.evaluate(`(window.__outcome = null, (() => {
          const f = document.getElementById('allowed');
          const t = setInterval(() => f.contentWindow.postMessage({ run: 'signin' }, '*'), 200);
          window.addEventListener('message', (e) => {
            if (e.data?.started) clearInterval(t);
            if (e.data?.outcome) window.__outcome = e.data.outcome;
          });
        })(), true)`);
        // The overlay opens inside the frame; the person picks the linked phone there.
        await pickPhoneInFrame(ctx);
        const out = await waitFor('the frame\'s outcome', () => ctx.d.evaluate('window.__outcome'), { timeout: 40000 });
        assert.equal(out.state, 'ok', `${out.text}\nphone-sim: ${phone.output()}`);
        // The RP (expectedTopOrigin) accepted a response made in a frame of this very page.
        assert.match(out.text, new RegExp(`verified as \\w+ in a frame of ${top.replace(/[.]/g, '\\.')}$`));
        assert.equal((await phone.exited).code, 0, phone.output());
      } finally {
        await ctx.d.navigate(ctx.rp.url);
      }
    });
  }
}

