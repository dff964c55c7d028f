// RP IDs, frames and capabilities as real sites use them, in each browser: the test RP served
// over https under test host names (`login.example.test`, `login.example.co.uk`, …) that the
// browser itself resolves to 127.0.0.1 (Chromium's --host-resolver-rules, Firefox's
// network.dns.localDomains: no /etc/hosts), with a certificate made for the run that the
// browser is told to accept (Chromium: its key's SPKI hash; Firefox: the BiDi session's
// acceptInsecureCerts). The same extension, native host, relay and phone-sim as
// scenarios.mjs, in a browser of their own. related.mjs opens its own browser the same way
// (startOnTestHosts).
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startRp } from '../../rp/server.mjs';
import { launchChromium, launchFirefox } from './drivers.mjs';
import { closeAfter, OVERLAY_HOST, overlayDrawn, pageControls, pickPhoneInFrame, scanOverlayQr } from './scenarios.mjs';
import { BROWSER_DIR, startStack, waitFor } from './stack.mjs';

/** The page's own host, a host under a two-label public suffix, and another site for frames. */
const HOSTS = ['login.example.test', 'login.example.co.uk', 'frames.example.net'];

// Notes in the page whether the overlay's host element was ever added (it may come and go
// between two looks).
export const WATCH_OVERLAY = `(window.__overlaySeen = false, new MutationObserver((list) => {
  if (list.some((m) => [...m.addedNodes].some((n) => n.style?.zIndex === '2147483647'))) window.__overlaySeen = true;
}).observe(document.body, { childList: true }), true)`;

/** A key and a self-signed certificate for every one of `hosts`, made with openssl for this
 * run, and the base64 SHA-256 of its public key (what Chromium's SPKI allow list takes). */
function testCertificate(dir, hosts) {
  const key = join(dir, 'tls-key.pem');
  const cert = join(dir, 'tls-cert.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-days', '2', '-subj', '/CN=hybrid-bridge test RP', '-addext', `subjectAltName=${hosts.map((h) => `DNS:${h}`).join(',')}`,
    '-keyout', key, '-out', cert], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl could not make the test certificate (apt-get install openssl): ${r.stderr}`);
  const tls = { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
  const spki = createHash('sha256')
    .update(new X509Certificate(tls.cert).publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
  return { tls, spki };
}

/** The stack (`stack`), the test RP over https for each of `hosts` (`rp`) and `name`'s browser
 * (`d`) resolving them to 127.0.0.1, with a certificate for them it accepts. With
 * `defaultPortHost`, https to that host on the default port (443) reaches the RP too
 * (Chromium: a host-resolver rule with a port; Firefox: network.socket.forcePort, which
 * sends every connection to 443 there). */
export async function startOnTestHosts(name, label, hosts, { defaultPortHost } = {}) {
  const ctx = {};
  ctx.stack = await startStack(`${name}-${label}`);
  try {
    await launchOnTestHosts(ctx, name, hosts, defaultPortHost);
  } catch (e) {
    await ctx.d?.close();
    await ctx.rp?.close();
    await ctx.stack.stop({ keep: true });
    throw e;
  }
  return ctx;
}

async function launchOnTestHosts(ctx, name, hosts, defaultPortHost) {
  const tmp = ctx.stack.dir;
  const { tls, spki } = testCertificate(tmp, hosts);
  ctx.tls = tls;
  ctx.rp = await startRp({ tls, names: hosts });
  if (name === 'chromium') {
    const userDataDir = mkdtempSync(join(tmp, 'ud-'));
    ctx.where = { chromiumUserDataDir: userDataDir };
    ctx.stack.install(ctx.where);
    const rules = hosts.map((h) => `MAP ${h} 127.0.0.1`);
    if (defaultPortHost) rules.unshift(`MAP ${defaultPortHost}:443 127.0.0.1:${ctx.rp.port}`);
    ctx.d = await launchChromium({ extensionDir: join(BROWSER_DIR, 'dist', 'chromium'), userDataDir, log: join(tmp, 'browser.log'),
      args: [`--host-resolver-rules=${rules.join(', ')}`, `--ignore-certificate-errors-spki-list=${spki}`] });
  } else {
    const home = mkdtempSync(join(tmp, 'home-'));
    ctx.where = { firefoxHome: home };
    ctx.stack.install(ctx.where);
    const prefs = { 'network.dns.localDomains': hosts.join(',') };
    if (defaultPortHost) prefs['network.socket.forcePort'] = `443=${ctx.rp.port}`;
    ctx.d = await launchFirefox({ extensionDir: join(BROWSER_DIR, 'dist', 'firefox'), profileDir: join(tmp, 'profile'), home,
      log: join(tmp, 'browser.log'), prefs, capabilities: { acceptInsecureCerts: true } });
  }
}

/** The scenarios in one browser; each of `more` then adds its own with the same browser,
 * stack and context ({d, stack, failed, tls, hosts}: the run's certificate and the test host
 * names the browser resolves), after these. */
export function rpidSuite(name, ...more) {
  describe(`${name}: RP IDs, frames and capabilities as sites use them`, () => {
    const ctx = {};
    suite(name, ctx);
    for (const add of more) add(ctx);
  });
}

function suite(name, ctx) {
  const { click, outcome } = pageControls(ctx);
  const url = (host, path = '/') => `https://${host}:${ctx.rp.port}${path}`;

  async function setRpId(rpId) {
    await ctx.d.evaluate(`(document.querySelector('#rpid').value = ${JSON.stringify(rpId)}, true)`);
  }

  /** The QR code, chosen in the overlay, read from a screenshot, handed to phone-sim. */
  function phoneScansQr(label) {
    return scanOverlayQr(ctx, `${name}-rpid-${label}.png`);
  }

  before(async () => {
    Object.assign(ctx, await startOnTestHosts(name, 'rpid', HOSTS));
    ctx.hosts = HOSTS;
    await ctx.d.navigate(url(HOSTS[0]));
  });

  closeAfter(ctx);

  it('a parent domain as RP ID: rp.id example.test on login.example.test registers and signs in, verified by the RP', async () => {
    assert.deepEqual(await ctx.d.evaluate('[location.origin, isSecureContext]'), [url(HOSTS[0]).slice(0, -1), true]);
    await setRpId('example.test');
    let seq = await click('register');
    let phone = await phoneScansQr('register');
    let out = await outcome(seq);
    assert.equal(out.state, 'ok', `${out.text}\nphone-sim: ${phone.output()}`);
    assert.equal(out.user, 'alice');
    assert.equal((await phone.exited).code, 0, phone.output());
    assert.equal(ctx.rp.users.get('alice').credentials.length, 1);
    await waitFor('the overlay to close', async () => !(await ctx.d.evaluate(`!!${OVERLAY_HOST}`)), { timeout: 10000 });
    seq = await click('signin');
    phone = await phoneScansQr('signin');
    out = await outcome(seq);
    assert.equal(out.state, 'ok', `${out.text}\nphone-sim: ${phone.output()}`);
    assert.equal(out.user, 'alice');
  });

  /** What a call with `rpId` gets on `host`: the error's name (or 'resolved') and whether an
   * overlay ever appeared. */
  async function refusal(host, kind, rpId) {
    await ctx.d.navigate(url(host));
    await ctx.d.evaluate(WATCH_OVERLAY);
    const publicKey = kind === 'get'
      ? `{ challenge: new Uint8Array(32), rpId: ${JSON.stringify(rpId)} }`
      : `{ challenge: new Uint8Array(32), rp: { id: ${JSON.stringify(rpId)}, name: 'RP' }, user: { id: new Uint8Array(8), name: 'a', displayName: 'A' },
          pubKeyCredParams: [{ type: 'public-key', alg: -7 }] }`;
    const got = await ctx.d.evaluate(`Promise.race([navigator.credentials.${kind}({ publicKey: ${publicKey} }).then(() => 'resolved', (e) => e.name),
      new Promise((r) => setTimeout(() => r('still pending after 10 s'), 10000))])`);
    return [got, await ctx.d.evaluate('window.__overlaySeen')];
  }

  it('RP IDs a browser refuses get SecurityError before any overlay: another domain, a one-label suffix, a public suffix (co.uk)', async () => {
    const cases = [
      [HOSTS[0], 'other.test'], [HOSTS[0], 'test'], [HOSTS[0], 'example.co.uk'],
      [HOSTS[1], 'co.uk'], [HOSTS[1], 'uk'], [HOSTS[1], 'example.test'],
    ];
    const seen = {};
    const expected = {};
    for (const [host, rpId] of cases) {
      for (const kind of ['get', 'create']) {
        seen[`${kind} ${rpId} on ${host}`] = await refusal(host, kind, rpId);
        expected[`${kind} ${rpId} on ${host}`] = ['SecurityError', false];
      }
    }
    assert.deepEqual(seen, expected);
  });

  it('a registrable parent under a two-label public suffix (example.co.uk on login.example.co.uk) opens the overlay', async () => {
    await ctx.d.navigate(url(HOSTS[1]));
    await setRpId('example.co.uk');
    const seq = await click('signin');
    await waitFor('the overlay', async () => overlayDrawn(await ctx.d.screenshot()), { timeout: 15000, interval: 150 });
    await ctx.d.key('Escape');
    assert.equal((await outcome(seq)).error, 'NotAllowedError');
  });

  it('getClientCapabilities: signals as the extension serves them in this browser, relatedOrigins true', async () => {
    const caps = JSON.parse(await ctx.d.evaluate('PublicKeyCredential.getClientCapabilities().then((c) => JSON.stringify(c))'));
    const signals = ['hybridTransport', 'relatedOrigins', 'signalAllAcceptedCredentials', 'signalCurrentUserDetails', 'signalUnknownCredential'];
    const got = Object.fromEntries(signals.map((k) => [k, caps[k]]));
    // Chromium has all three signals of its own (the extension hands them on); Firefox has
    // none: the extension acts on signalUnknownCredential only (the linked phone is noted).
    const chromium = name === 'chromium';
    assert.deepEqual(got, { hybridTransport: true, relatedOrigins: true, signalAllAcceptedCredentials: chromium,
      signalCurrentUserDetails: chromium, signalUnknownCredential: true }, JSON.stringify(caps));
  });

  /** A page on frames.example.net holding a chain of cross-origin frames, `levels` from the
   * top down (`host`, and the `allow` attribute of the iframe that holds it); the last is the
   * RP's page with RP ID example.test. `policy` is the top page's Permissions-Policy header. */
  function chain(levels, policy) {
    let next = url(levels.at(-1).host, '/?rpid=example.test');
    for (let i = levels.length - 1; i >= 0; i--) {
      const q = new URLSearchParams({ next });
      if (levels[i].allow) q.set('allow', levels[i].allow);
      if (i === 0 && policy) q.set('permissions-policy', policy);
      next = url(i === 0 ? HOSTS[2] : levels[i - 1].host, `/frame-chain.html?${q}`);
    }
    return next;
  }

  /** Opens `page` and asks its innermost frame to sign in (by postMessage, down the chain);
   * with `person`, picks the linked phone in the overlay that opens in that frame. */
  async function signInInFrame(page, person) {
    await ctx.d.navigate(page);
    await ctx.d.evaluate(`(window.__outcome = null, (() => {
      const f = document.getElementById('next');
      const t = setInterval(() => f.contentWindow.postMessage({ run: 'signin' }, '*'), 200);
      window.addEventListener('message', (e) => {
        if (e.data?.started) clearInterval(t);
        if (e.data?.outcome) window.__outcome = e.data.outcome;
      });
    })(), true)`);
    if (person) {
      await pickPhoneInFrame(ctx);
    }
    return waitFor('the frame\'s outcome', () => ctx.d.evaluate('window.__outcome'), { timeout: 40000 });
  }

  const ALLOW = 'publickey-credentials-get; publickey-credentials-create';

  /** The linked phone ready for one session. */
  async function linkedPhone() {
    const phone = ctx.stack.linked();
    await waitFor('phone-sim to hold its contact channel', () => /regist|listening|waiting/i.test(phone.output()), { timeout: 15000 });
    return phone;
  }

  async function signedInInFrame(levels, label) {
    const phone = await linkedPhone();
    const out = await signInInFrame(chain(levels), true);
    assert.equal(out.state, 'ok', `${label}: ${out.text}\nphone-sim: ${phone.output()}`);
    // The RP (expectedTopOrigin) accepted a response made in a frame of the top page.
    assert.match(out.text, new RegExp(`verified as alice in a frame of ${url(HOSTS[2]).slice(0, -1).replace(/[.]/g, '\\.')}$`));
    assert.equal((await phone.exited).code, 0, phone.output());
  }

  it('a cross-origin frame with the permission signs in with the parent-domain RP ID; the RP checks crossOrigin and topOrigin', async () => {
    await signedInInFrame([{ host: HOSTS[0], allow: ALLOW }], 'one level');
  });

  it('a frame nested two levels deep, each container delegating, signs in (Firefox: the walk up the frames)', async () => {
    await signedInInFrame([{ host: HOSTS[1], allow: ALLOW }, { host: HOSTS[0], allow: ALLOW }], 'two levels');
  });

  // Refused before any overlay: with no overlay there is no one to answer, so the page's
  // outcome comes only from the extension's (or the browser's) refusal.
  const POLICY = /NotAllowedError: The 'publickey-credentials-get' feature is not enabled in this document/;

  it('a frame nested two levels deep that some container does not delegate to gets NotAllowedError, with no overlay', async () => {
    const cases = {
      'the middle frame holds it without allow': [{ host: HOSTS[1], allow: ALLOW }, { host: HOSTS[0] }],
      'the top page holds the middle frame without allow': [{ host: HOSTS[1] }, { host: HOSTS[0], allow: ALLOW }],
      "the middle frame's allow names another origin": [{ host: HOSTS[1], allow: ALLOW }, { host: HOSTS[0], allow: `publickey-credentials-get ${url(HOSTS[2]).slice(0, -1)}` }],
    };
    const seen = {};
    for (const [label, levels] of Object.entries(cases)) {
      const out = await signInInFrame(chain(levels), false);
      seen[label] = [out.error, POLICY.test(out.text) || out.text];
    }
    assert.deepEqual(seen, Object.fromEntries(Object.keys(cases).map((k) => [k, ['NotAllowedError', true]])));
  });

  it("the top page's Permissions-Policy header publickey-credentials-get=(): as the browser reads it", async () => {
    const policy = 'publickey-credentials-get=()';
    // The page itself.
    await ctx.d.navigate(url(HOSTS[0], `/?rpid=example.test&permissions-policy=${encodeURIComponent(policy)}`));
    await ctx.d.evaluate(WATCH_OVERLAY);
    const seq = await click('signin');
    if (name === 'chromium') {
      // Chromium reports the header's policy to the extension: refused as Chromium refuses.
      const out = await outcome(seq);
      assert.deepEqual([out.error, await ctx.d.evaluate('window.__overlaySeen')], ['NotAllowedError', false], out.text);
      const framed = await signInInFrame(chain([{ host: HOSTS[0], allow: ALLOW }], policy), false);
      assert.match(framed.text, POLICY);
    } else {
      // Firefox does not read the header (only the allow attribute), and no extension can see
      // it: the request is served as Firefox itself serves it.
      await waitFor('the overlay', async () => overlayDrawn(await ctx.d.screenshot()), { timeout: 15000, interval: 150 });
      await ctx.d.key('Escape');
      assert.equal((await outcome(seq)).error, 'NotAllowedError');
    }
  });
}
