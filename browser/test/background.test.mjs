// The background under node, with a fake extension API: what a refused request leaves behind
// (no ceremony, no timer), and the one reading of the RP ID. The content script's size limit,
// run as the browser runs it (dist/, a classic script) in a fake window.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import vm from 'node:vm';
import { build } from '../tools/build.mjs';
import { CEREMONY, DOM_EVENT, FROM_HOST, MAX_REQUEST_CHARS, PAGE, PORT, RUNTIME, TO_HOST } from '../extension/messages.js';

// Timers the background starts and has not cleared or seen fire.
const live = new Map();
const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;
globalThis.setTimeout = /** @type {any} */ ((fn, ms, ...args) => {
  const t = realSetTimeout(() => { live.delete(t); fn(...args); }, ms);
  live.set(t, ms);
  t.unref?.();
  return t;
});
globalThis.clearTimeout = /** @type {any} */ ((t) => { live.delete(t); realClearTimeout(t); });

const events = () => {
  const fns = [];
  return { addListener: (f) => fns.push(f), fire: (...a) => fns.forEach((f) => f(...a)) };
};

/** A native host that answers `phones` with none and remembers what it was sent. */
const hostPorts = [];
function fakeHost() {
  const port = {
    sent: [], onMessage: events(), onDisconnect: events(),
    postMessage(m) {
      this.sent.push(m);
      // The real host refuses a public suffix by its list; this one knows co.uk only.
      if (m.type === TO_HOST.PHONES && m.rpId === 'co.uk') {
        queueMicrotask(() => port.onMessage.fire({ type: FROM_HOST.ERROR, id: m.id, name: 'SecurityError', code: 'rp_id_mismatch', message: 'RP ID "co.uk" is a public suffix' }));
      } else if (m.type === TO_HOST.PHONES) {
        queueMicrotask(() => port.onMessage.fire({ type: FROM_HOST.PHONES, id: m.id, phones: [] }));
      }
    },
    disconnect() {},
  };
  hostPorts.push(port);
  return port;
}

/** `fetch` as the background sees it: the related origins documents of `wellKnown` (URL →
 * `[status, content type, body]`, or 'redirect' for a redirect, which `redirect: 'error'`
 * turns into a TypeError); anything else is a network error. Remembers every call. */
const wellKnown = new Map();
const fetched = [];
globalThis.fetch = /** @type {any} */ (async (url, init) => {
  fetched.push([String(url), init]);
  const doc = wellKnown.get(String(url));
  if (!doc || doc === 'redirect') throw new TypeError('Failed to fetch');
  const [status, type, body] = doc;
  return new Response(body, { status, headers: type ? { 'content-type': type } : {} });
});

const onConnect = events();
const tabMessages = []; // what the background sent with tabs.sendMessage
globalThis.chrome = /** @type {any} */ ({
  runtime: {
    id: 'ext', lastError: null,
    getURL: (p) => `chrome-extension://ext/${p}`,
    onConnect, onMessage: events(),
    connectNative: fakeHost,
  },
  tabs: { sendMessage: async (...args) => { tabMessages.push(args); } },
});
await import('../extension/background.js');

let nextTab = 1;
/** The content script's ceremony port from a top-level page at `url`. */
function pagePort(url, tabId = nextTab++) {
  const port = {
    name: PORT.CEREMONY,
    sender: { id: 'ext', tab: { id: tabId, url }, frameId: 0, origin: new URL(url).origin, url },
    sent: [], onMessage: events(), onDisconnect: events(),
    postMessage(m) { this.sent.push(m); },
    disconnect() {},
  };
  onConnect.fire(port);
  return port;
}

const settle = () => new Promise((r) => setImmediate(r));

async function begin(url, kind, options, tabId) {
  const port = pagePort(url, tabId);
  port.onMessage.fire({ type: CEREMONY.BEGIN, kind, options, crossOrigin: false });
  await settle();
  return port;
}

test('requests refused for their RP ID leave no ceremony and no timer behind', async () => {
  const big = 'x'.repeat(1 << 20);
  for (let i = 0; i < 20; i++) {
    const port = await begin('https://a.example/', 'get', {
      challenge: 'AAECAwQFBgcICQoLDA0ODw', rpId: 'other.example', timeout: 600000, extensions: { big },
    }, 7);
    assert.equal(port.sent.length, 1);
    assert.deepEqual([port.sent[0].type, port.sent[0].name], [CEREMONY.ERROR, 'SecurityError']);
  }
  assert.deepEqual([...live.values()], [], 'timers left by refused requests');
  // The tab is free: its next, valid request gets the overlay.
  const ok = await begin('https://a.example/', 'get', { challenge: 'AAECAwQFBgcICQoLDA0ODw', timeout: 600000 }, 7);
  await settle();
  assert.deepEqual(ok.sent.map((m) => m.type), [CEREMONY.OVERLAY]);
  assert.deepEqual([...live.values()], [600000], 'the running ceremony has its one timer');
  ok.onMessage.fire({ type: CEREMONY.ABORT });
  assert.deepEqual([...live.values()], [], 'an ended ceremony leaves no timer');
});

test('options wrapped in publicKey are refused: the RP ID shown is the one signed', async () => {
  const hosts = hostPorts.length;
  for (const options of [
    { rpId: 'a.example', challenge: 'AAECAwQFBgcICQoLDA0ODw', publicKey: { rpId: 'b.a.example', challenge: 'AAECAwQFBgcICQoLDA0ODw' } },
    { publicKey: { rpId: 'a.example', challenge: 'AAECAwQFBgcICQoLDA0ODw' } },
  ]) {
    const port = await begin('https://b.a.example/', 'get', options);
    assert.deepEqual(port.sent.map((m) => [m.type, m.name]), [[CEREMONY.ERROR, 'TypeError']]);
    assert.match(port.sent[0].message, /publicKey/);
  }
  assert.equal(hostPorts.length, hosts, 'no native host was started');
  assert.deepEqual([...live.values()], []);
});

test('the RP ID of a create is rp.id (an rpId beside it is not read)', async () => {
  const port = await begin('https://login.a.example/', 'create', {
    rp: { id: 'a.example', name: 'A' }, user: { id: 'dXNlcg', name: 'alice' }, challenge: 'AAECAwQFBgcICQoLDA0ODw',
  });
  await settle();
  assert.deepEqual(port.sent.map((m) => m.type), [CEREMONY.OVERLAY]);
  port.onMessage.fire({ type: CEREMONY.CANCEL });
  const refused = await begin('https://a.example/', 'create', {
    rp: { id: 'login.a.example', name: 'A' }, rpId: 'a.example', user: { id: 'dXNlcg', name: 'alice' }, challenge: 'AAECAwQFBgcICQoLDA0ODw',
  });
  assert.deepEqual(refused.sent.map((m) => [m.type, m.name]), [[CEREMONY.ERROR, 'SecurityError']]);
  assert.deepEqual([...live.values()], []);
});

test('a related-origin RP ID: the well-known is fetched once, without credentials or referrer; its list goes to the host', async () => {
  const shop = 'https://shop.b.example:8443';
  wellKnown.set('https://a.example/.well-known/webauthn',
    [200, 'application/json; charset=utf-8', JSON.stringify({ origins: ['https://a.example', shop, 'https://later.example'] })]);
  fetched.length = 0;
  const hosts = hostPorts.length;
  const port = await begin(`${shop}/`, 'get', { challenge: 'AAECAwQFBgcICQoLDA0ODw', rpId: 'A.example', timeout: 600000 });
  await settle();
  assert.deepEqual(port.sent.map((m) => m.type), [CEREMONY.OVERLAY]);
  assert.deepEqual(fetched.map(([url, init]) => [url, init.credentials, init.referrerPolicy, init.redirect, init.cache]),
    [['https://a.example/.well-known/webauthn', 'omit', 'no-referrer', 'error', 'no-store']]);
  const phones = hostPorts[hosts].sent[0];
  assert.deepEqual([phones.type, phones.origin, phones.rpId, phones.relatedOrigins],
    [TO_HOST.PHONES, shop, 'A.example', ['https://a.example', shop]]);
  port.onMessage.fire({ type: CEREMONY.ABORT });
  assert.deepEqual([...live.values()], []);
  wellKnown.clear();
});

test('a related-origin RP ID whose well-known does not vouch for the page is SecurityError, with no host and no timer', async () => {
  const shop = 'https://shop.b.example';
  const url = 'https://a.example/.well-known/webauthn';
  const cases = {
    'not listed': [200, 'application/json', JSON.stringify({ origins: ['https://a.example', 'https://shop.b.example:8443'] })],
    missing: [404, 'application/json', '{}'],
    'a redirect': 'redirect',
    'not JSON': [200, 'application/json', '<html>'],
    'not application/json': [200, 'text/html', JSON.stringify({ origins: [shop] })],
    'origins not an array': [200, 'application/json', JSON.stringify({ origins: shop })],
    'too large': [200, 'application/json', JSON.stringify({ origins: [shop], pad: 'x'.repeat(70000) })],
  };
  const hosts = hostPorts.length;
  const seen = {};
  for (const [label, doc] of Object.entries(cases)) {
    wellKnown.set(url, doc);
    const port = await begin(`${shop}/`, 'create', {
      rp: { id: 'a.example', name: 'A' }, user: { id: 'dXNlcg', name: 'alice' }, challenge: 'AAECAwQFBgcICQoLDA0ODw',
    });
    await settle();
    seen[label] = port.sent.map((m) => [m.type, m.name]);
  }
  assert.deepEqual(seen, Object.fromEntries(Object.keys(cases).map((k) => [k, [[CEREMONY.ERROR, 'SecurityError']]])));
  assert.equal(hostPorts.length, hosts, 'no native host was started');
  assert.deepEqual([...live.values()], []);
  // A one-label RP ID or an IP address is refused without a fetch.
  fetched.length = 0;
  for (const rpId of ['example', '127.0.0.1']) {
    const port = await begin(`${shop}/`, 'get', { challenge: 'AAECAwQFBgcICQoLDA0ODw', rpId });
    assert.deepEqual(port.sent.map((m) => [m.type, m.name]), [[CEREMONY.ERROR, 'SecurityError']]);
  }
  assert.deepEqual(fetched, []);
  wellKnown.clear();
});

/** Runs the built content script in a fake top-level window; returns what it sends. */
function contentScript() {
  const dist = build();
  const source = readFileSync(join(dist.chromium, 'content.js'), 'utf8');
  const listeners = new Map();
  const toPage = [];
  const connects = [];
  const win = {
    addEventListener: (type, f) => listeners.set(type, f),
    removeEventListener() {},
    dispatchEvent: (e) => { toPage.push(JSON.parse(e.detail)); return true; },
    postMessage() {},
  };
  win.top = win;
  win.parent = win;
  const context = {
    window: win, location: { origin: 'https://a.example' }, navigator: {},
    document: { featurePolicy: undefined, activeElement: null },
    CustomEvent: class { constructor(type, init) { this.type = type; this.detail = init.detail; } },
    chrome: {
      runtime: {
        id: 'ext', getURL: (p) => p, onMessage: events(), sendMessage: async () => {},
        connect: (info) => {
          const port = { info, sent: [], onMessage: events(), onDisconnect: events(), postMessage(m) { this.sent.push(m); }, disconnect() {} };
          connects.push(port);
          return port;
        },
      },
    },
  };
  vm.runInNewContext(source, context);
  const send = (msg) => listeners.get(DOM_EVENT.TO_EXT)({ detail: typeof msg === 'string' ? msg : JSON.stringify(msg) });
  return { send, toPage, connects };
}

test('the content script refuses options over MAX_REQUEST_CHARS before they reach the background', () => {
  const cs = contentScript();
  const options = { challenge: 'AAECAwQFBgcICQoLDA0ODw', extensions: { big: 'x'.repeat(MAX_REQUEST_CHARS) } };
  cs.send({ type: PAGE.BEGIN, id: 'r1', kind: 'get', options });
  assert.equal(cs.connects.length, 0, 'no port to the background');
  assert.deepEqual(cs.toPage.map((m) => [m.id, m.type, m.name]), [['r1', PAGE.ERROR, 'NotAllowedError']]);
  assert.match(cs.toPage[0].message, /too large \(over 256 KiB\)/);
  // Just under the limit goes through.
  options.extensions.big = 'x'.repeat(MAX_REQUEST_CHARS - 200);
  cs.send({ type: PAGE.BEGIN, id: 'r2', kind: 'get', options });
  assert.equal(cs.connects.length, 1);
  assert.equal(cs.connects[0].sent[0].type, CEREMONY.BEGIN);
});

test('signalUnknownCredential reports: the sender\'s origin, the RP ID checked again, one host at a time, at most 8 waiting', async () => {
  const hosts = hostPorts.length;
  const report = (url, rpId, credentialId) => globalThis.chrome.runtime.onMessage.fire(
    { type: RUNTIME.UNKNOWN_CREDENTIAL, rpId, credentialId, origin: 'https://forged.example' },
    { id: 'ext', tab: { id: 99, url }, frameId: 0, origin: new URL(url).origin, url });
  report('https://a.example/', 'other.example', 'AAAA');
  report('http://a.example/', 'a.example', 'AAAA');
  report('https://a.example/', 'a.example', 'AA=');
  report('https://a.example/', 'a.example', 'A'.repeat(1365));
  report('https://a.example/', 'a.example', '');
  assert.equal(hostPorts.length, hosts, 'refused reports start no host');
  for (let i = 0; i < 20; i++) report('https://login.a.example/', 'a.example', `AAA${i % 10}`);
  assert.equal(hostPorts.length, hosts + 1, 'one host at a time');
  const first = hostPorts[hosts];
  assert.deepEqual(first.sent.map(({ id, ...m }) => [typeof id, m]), [['string',
    { type: TO_HOST.UNKNOWN_CREDENTIAL, origin: 'https://login.a.example', rpId: 'a.example', credentialId: 'AAA0' }]]);
  assert.equal(live.size, 1, 'the report\'s one timer');
  // Each reply ends that host and starts the next: 8 of the other 9 different IDs waited.
  for (let n = 1; n <= 9; n++) {
    const port = hostPorts[hostPorts.length - 1];
    port.onMessage.fire({ type: FROM_HOST.UNKNOWN_CREDENTIAL, id: port.sent[0].id, phone: null });
  }
  assert.deepEqual(hostPorts.slice(hosts).map((p) => p.sent[0].credentialId),
    ['AAA0', 'AAA1', 'AAA2', 'AAA3', 'AAA4', 'AAA5', 'AAA6', 'AAA7', 'AAA8']);
  assert.equal(live.size, 0, 'no timer left once every report is answered');
});

/** Runs the built page script in a fake window whose PublicKeyCredential is `pkc`. */
function pageScript(pkc) {
  const dist = build();
  const source = readFileSync(join(dist.firefox, 'page.js'), 'utf8');
  class CredentialsContainer { create() {} get() {} }
  const sent = [];
  const win = { addEventListener() {}, dispatchEvent: (e) => { sent.push(JSON.parse(e.detail)); return true; } };
  const context = {
    window: win, isSecureContext: true, CredentialsContainer, PublicKeyCredential: pkc,
    navigator: { credentials: new CredentialsContainer() }, DOMException, URL, location: { origin: 'https://login.example.com' },
    crypto, CustomEvent, sent,
  };
  vm.runInNewContext(source, context);
  return context;
}

const PHONE_CAPABILITIES = { 'extension:credProps': true, 'extension:prf': true, hybridTransport: true, relatedOrigins: true, signalUnknownCredential: true };
const plain = (r) => JSON.parse(JSON.stringify(r));

test('the page gets getClientCapabilities as a static method when the browser has none', async () => {
  const pkc = function PublicKeyCredential() {};
  const page = pageScript(pkc);
  const d = Object.getOwnPropertyDescriptor(pkc, 'getClientCapabilities');
  assert.ok(d, 'defined');
  assert.deepEqual([d.enumerable, d.writable, d.configurable], [false, true, true]);
  assert.equal(d.value.name, 'getClientCapabilities');
  assert.equal(d.value.length, 0);
  const answer = pkc.getClientCapabilities();
  assert.equal(typeof answer.then, 'function', 'a Promise');
  const r = await answer;
  assert.equal(Object.getPrototypeOf(r), vm.runInNewContext('Object.prototype', page), 'a plain record');
  assert.deepEqual(plain(r), PHONE_CAPABILITIES);
});

test('the page gets the browser\'s getClientCapabilities merged with what the phone path adds', async () => {
  const browserAnswer = { conditionalGet: true, hybridTransport: false, passkeyPlatformAuthenticator: false, 'extension:largeBlob': true };
  const calls = [];
  const pkc = function PublicKeyCredential() {};
  Object.defineProperty(pkc, 'getClientCapabilities', {
    value: function getClientCapabilities() { calls.push(this); return Promise.resolve({ ...browserAnswer }); },
    writable: true, configurable: true, enumerable: false,
  });
  pageScript(pkc);
  const d = Object.getOwnPropertyDescriptor(pkc, 'getClientCapabilities');
  assert.deepEqual([d.enumerable, d.value.name, d.value.length], [false, 'getClientCapabilities', 0]);
  assert.deepEqual(plain(await pkc.getClientCapabilities()), { ...browserAnswer, ...PHONE_CAPABILITIES });
  assert.deepEqual(calls, [pkc], 'the browser\'s own method, called on PublicKeyCredential');
  // A browser whose own answer fails still gets what the phone path provides.
  const failing = function PublicKeyCredential() {};
  Object.defineProperty(failing, 'getClientCapabilities', { value: () => Promise.reject(new Error('no')), writable: true, configurable: true });
  pageScript(failing);
  assert.deepEqual(plain(await failing.getClientCapabilities()), PHONE_CAPABILITIES);
});

const SIGNALS = ['signalUnknownCredential', 'signalAllAcceptedCredentials', 'signalCurrentUserDetails'];
const SIGNAL_CALLS = {
  signalUnknownCredential: { rpId: 'example.com', credentialId: 'AAEC' },
  signalAllAcceptedCredentials: { rpId: 'example.com', userId: 'dXNlcg', allAcceptedCredentialIds: ['AAEC'] },
  signalCurrentUserDetails: { rpId: 'example.com', userId: 'dXNlcg', name: 'alice', displayName: 'Alice' },
};
const outcome = (p) => p.then((v) => ['resolved', v], (e) => [e.name, e.constructor.name]);

test('the page gets the three signals, resolved after the spec\'s checks, when the browser has none', async () => {
  const pkc = function PublicKeyCredential() {};
  pageScript(pkc);
  for (const m of SIGNALS) {
    const d = Object.getOwnPropertyDescriptor(pkc, m);
    assert.deepEqual([d.enumerable, d.writable, d.configurable, d.value.name, d.value.length], [false, true, true, m, 1], m);
    assert.deepEqual(await outcome(pkc[m](SIGNAL_CALLS[m])), ['resolved', undefined], m);
    assert.deepEqual(await outcome(pkc[m]({ ...SIGNAL_CALLS[m], rpId: 'elsewhere.example' })), ['SecurityError', 'DOMException'], m);
    assert.deepEqual(await outcome(pkc[m]({ ...SIGNAL_CALLS[m], rpId: undefined })), ['TypeError', 'TypeError'], m);
  }
  // A malformed ID never throws synchronously: the promise rejects.
  const p = pkc.signalUnknownCredential({ rpId: 'example.com', credentialId: 'AA==' });
  assert.deepEqual(await outcome(p), ['TypeError', 'TypeError']);
});

test('a valid signalUnknownCredential, and only that, goes on to the extension for the linked phones', async () => {
  const pkc = function PublicKeyCredential() {};
  const page = pageScript(pkc);
  for (const m of SIGNALS) await pkc[m](SIGNAL_CALLS[m]);
  await outcome(pkc.signalUnknownCredential({ rpId: 'elsewhere.example', credentialId: 'AAAA' }));
  await outcome(pkc.signalUnknownCredential({ rpId: 'example.com', credentialId: 'AA=' }));
  assert.deepEqual(page.sent.map(({ id, ...m }) => [typeof id, m]),
    [['string', { type: PAGE.UNKNOWN_CREDENTIAL, rpId: 'example.com', credentialId: 'AAEC' }]]);
});

test('the page\'s signals go to the browser\'s own methods, with the checked dictionary, and only when valid', async () => {
  const calls = [];
  const pkc = function PublicKeyCredential() {};
  for (const m of SIGNALS) {
    Object.defineProperty(pkc, m, {
      value: function (options) { calls.push([m, this, options]); return Promise.resolve(m === 'signalCurrentUserDetails' ? 'own' : undefined); },
      writable: true, configurable: true, enumerable: false,
    });
  }
  pageScript(pkc);
  assert.deepEqual(await outcome(pkc.signalUnknownCredential({ ...SIGNAL_CALLS.signalUnknownCredential, extra: true })), ['resolved', undefined]);
  assert.deepEqual(await outcome(pkc.signalAllAcceptedCredentials({ ...SIGNAL_CALLS.signalAllAcceptedCredentials,
    allAcceptedCredentialIds: new Set(['AAEC']) })), ['resolved', undefined]);
  assert.deepEqual(await outcome(pkc.signalCurrentUserDetails(SIGNAL_CALLS.signalCurrentUserDetails)), ['resolved', 'own'],
    'what the browser\'s method resolves with');
  assert.deepEqual(calls.map(([m, self, o]) => [m, self === pkc, plain(o)]), [
    ['signalUnknownCredential', true, SIGNAL_CALLS.signalUnknownCredential],
    ['signalAllAcceptedCredentials', true, SIGNAL_CALLS.signalAllAcceptedCredentials],
    ['signalCurrentUserDetails', true, SIGNAL_CALLS.signalCurrentUserDetails],
  ]);
  calls.length = 0;
  assert.deepEqual(await outcome(pkc.signalUnknownCredential({ rpId: 'example.com', credentialId: 'A' })), ['TypeError', 'TypeError']);
  assert.deepEqual(await outcome(pkc.signalUnknownCredential({ rpId: 'example.org', credentialId: 'AAAA' })), ['SecurityError', 'DOMException']);
  assert.deepEqual(calls, [], 'a refused call does not reach the browser');
  // The browser's own rejection reaches the page as it is.
  Object.defineProperty(pkc, 'signalUnknownCredential', { value: () => Promise.reject(new DOMException('x', 'NotAllowedError')), configurable: true, writable: true });
  pageScript(pkc);
  assert.deepEqual(await outcome(pkc.signalUnknownCredential(SIGNAL_CALLS.signalUnknownCredential)), ['NotAllowedError', 'DOMException']);
});

test('an RP ID the host refuses (a public suffix by its list) ends the request before the overlay', async () => {
  const hosts = hostPorts.length;
  const port = await begin('https://login.example.co.uk/', 'get', { challenge: 'AAECAwQFBgcICQoLDA0ODw', rpId: 'co.uk', timeout: 600000 });
  await settle();
  // (A close-overlay for an overlay never opened is harmless: the content script has none.)
  assert.deepEqual(port.sent.filter((m) => m.type !== CEREMONY.CLOSE_OVERLAY).map((m) => [m.type, m.name]), [[CEREMONY.ERROR, 'SecurityError']]);
  assert.ok(!port.sent.some((m) => m.type === CEREMONY.OVERLAY), 'no overlay');
  assert.match(port.sent.at(-1).message, /public suffix/);
  const phones = hostPorts[hosts].sent.find((m) => m.type === TO_HOST.PHONES);
  assert.deepEqual([phones.origin, phones.rpId], ['https://login.example.co.uk', 'co.uk'], 'the host is asked about this origin and RP ID');
  assert.deepEqual([...live.values()], [], 'no timer left');
  // A registrable parent domain there gets the overlay.
  const ok = await begin('https://login.example.co.uk/', 'get', { challenge: 'AAECAwQFBgcICQoLDA0ODw', rpId: 'example.co.uk' });
  await settle();
  assert.deepEqual(ok.sent.map((m) => m.type), [CEREMONY.OVERLAY]);
  ok.onMessage.fire({ type: CEREMONY.CANCEL });
});

/** A ceremony port from a cross-origin frame (`frameId` 7) whose browser cannot say its
 * permissions policy (Firefox), in a tab whose top page is `top`. */
async function framePort(url, top, tabId) {
  const port = {
    name: PORT.CEREMONY,
    sender: { id: 'ext', tab: { id: tabId, url: top }, frameId: 7, url },
    sent: [], onMessage: events(), onDisconnect: events(),
    postMessage(m) { this.sent.push(m); },
    disconnect() {},
  };
  onConnect.fire(port);
  port.onMessage.fire({ type: CEREMONY.BEGIN, kind: 'get', options: { challenge: 'AAECAwQFBgcICQoLDA0ODw', rpId: 'example.test' },
    crossOrigin: true, policyAllows: null, activated: true });
  await settle();
  return port;
}

/** A parent frame's content script answering a nonce: the iframe element's allow and src. */
function parentAnswers(nonce, { tabId, frameId, origin, allow, src }) {
  globalThis.chrome.runtime.onMessage.fire({ type: RUNTIME.FRAME_POLICY, nonce, allow, src },
    { id: 'ext', tab: { id: tabId }, frameId, url: `${origin}/page`, origin });
}

test('Firefox frames: the background walks up the parents; every container must delegate', async () => {
  const leaf = 'https://login.example.test';
  const middle = 'https://login.example.co.uk';
  const top = 'https://frames.example.net';
  const ALLOW = 'publickey-credentials-get';
  for (const [label, outerAllow, innerAllow, expected] of [
    ['both delegate', ALLOW, ALLOW, [CEREMONY.OVERLAY]],
    ['the outer container does not', null, ALLOW, [CEREMONY.ERROR]],
    ['the inner container names another origin', ALLOW, `${ALLOW} ${top}`, [CEREMONY.ERROR]],
  ]) {
    tabMessages.length = 0;
    const tabId = 500 + nextTab++;
    const port = await framePort(`${leaf}/`, `${top}/`, tabId);
    // The frame is asked to announce itself to its parent; the parent (frame 3) answers.
    const first = port.sent.find((m) => m.type === CEREMONY.ANNOUNCE);
    assert.ok(first, label);
    parentAnswers(first.nonce, { tabId, frameId: 3, origin: middle, allow: innerAllow, src: `${leaf}/` });
    await settle();
    if (innerAllow === ALLOW) {
      // The parent is a frame itself: it is asked, by its frame ID, to announce itself too.
      assert.equal(tabMessages.length, 1, label);
      const [tab, msg, opts] = tabMessages[0];
      assert.deepEqual([tab, msg.type, opts], [tabId, RUNTIME.ANNOUNCE, { frameId: 3 }], label);
      assert.notEqual(msg.nonce, first.nonce, 'a fresh nonce for each step');
      // An answer from another tab is not taken.
      parentAnswers(msg.nonce, { tabId: tabId + 1, frameId: 0, origin: top, allow: ALLOW, src: `${middle}/` });
      parentAnswers(msg.nonce, { tabId, frameId: 0, origin: top, allow: outerAllow, src: `${middle}/` });
    } else {
      assert.equal(tabMessages.length, 0, 'a refusal ends the walk');
    }
    await settle();
    await settle();
    assert.deepEqual(port.sent.filter((m) => m.type !== CEREMONY.ANNOUNCE).map((m) => m.type), expected, label);
    if (expected[0] === CEREMONY.ERROR) assert.match(port.sent.at(-1).message, /publickey-credentials-get' feature is not enabled/, label);
    port.onMessage.fire({ type: CEREMONY.CANCEL });
  }
  assert.deepEqual([...live.values()], [], 'no timer left');
});
