// @ts-check
// hybrid-bridge, background: one ceremony at a time per tab. It takes the page's origin from
// the browser's sender information (never from the page), checks the RP ID against it, asks
// the native host (runtime.connectNative, one port per ceremony) which phones are linked, and
// drives the overlay: the person's choice goes to the host as a create/get request, the host's
// progress events (the QR code among them) go only to the overlay, and the result or error
// goes back to the page. Every request is checked (origin, options, RP ID, prf inputs,
// permissions policy) before a ceremony or its timer exists, so refused requests leave nothing behind.
// An RP ID that is not the page's host nor a parent of it is allowed when the RP's
// `https://<rpId>/.well-known/webauthn` lists the page's origin (related origins): the
// background fetches that document for the one request and sends its list to the host, whose
// public suffix list makes the final check.
// A page's signalUnknownCredential goes to the host, one at a time, which notes it on the
// linked phone that holds that passkey; the overlay then says so for that site.
// See PROTOCOL.md for the messages (named in messages.js).
import { MAX_WELL_KNOWN_BYTES, allowAttributeAllows, checkRpId, errorText, firstChoice, optionsProblem, originOf, prfProblem, progressFields, relatedCandidate, relatedOrigins, relatedRefusal, rpIdOf, secureOrigin } from './lib.js';
import { CEREMONY, CHOICE, FROM_HOST, KIND, OVERLAY, PORT, RUNTIME, TO_HOST } from './messages.js';

const api = globalThis.browser ?? globalThis.chrome;
const HOST = 'org.hybridbridge.host';
const OVERLAY_URL = api.runtime.getURL('overlay.html');
const byTab = new Map(); // tabId -> Ceremony
const byToken = new Map(); // overlay token -> Ceremony

/** A linked phone as the overlay shows it for a request to `rpId`. */
const phoneView = (p, rpId) => ({
  id: p.id,
  name: String(p.name ?? p.id),
  reportedUnknown: Array.isArray(p.reportedUnknown) && p.reportedUnknown.some((r) => r?.rpId === rpId),
});

const randomToken = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');

class Ceremony {
  /** A checked request; its timer starts with {@link Ceremony#start}. */
  constructor(port, msg, origin, rpId, topOrigin = null, related = null) {
    this.page = port; // the content script's port
    this.tabId = port.sender.tab.id;
    this.frameId = port.sender.frameId ?? 0;
    this.kind = msg.kind;
    this.options = msg.options;
    this.origin = origin;
    this.rpId = rpId;
    this.topOrigin = topOrigin; // set only for a cross-origin frame
    this.related = related; // the well-known's origins, for a related-origin RP ID
    this.id = randomToken();
    this.host = null;
    this.overlay = null;
    this.phones = [];
    this.hostProblem = null;
    this.done = false;
    this.running = false;
    this.timer = null;
  }

  toOverlay(msg) {
    try { this.overlay?.postMessage(msg); } catch { /* the overlay went away */ }
  }

  toPage(msg) {
    try { this.page.postMessage(msg); } catch { /* the page went away */ }
  }

  async start() {
    const t = Number(this.options.timeout);
    const ms = Number.isFinite(t) && t > 0 ? Math.min(Math.max(t, 30000), 600000) : 300000;
    this.timer = setTimeout(() => this.fail({ name: 'NotAllowedError', code: 'timeout', message: 'the request timed out' }, true), ms);
    byTab.set(this.tabId, this);
    this.connectHost();
    if (this.host) {
      // The host checks the RP ID with its public suffix list first (`co.uk` from
      // login.example.co.uk): a refusal ends the request before the overlay opens.
      const phones = { type: TO_HOST.PHONES, id: this.id, origin: this.origin, rpId: this.rpId };
      if (this.related) phones.relatedOrigins = this.related;
      this.host.postMessage(phones);
      await new Promise((resolve) => {
        const wait = setTimeout(resolve, 3000);
        this.onPhones = () => { clearTimeout(wait); resolve(undefined); };
      });
    }
    if (this.done) return;
    const token = randomToken();
    byToken.set(token, this);
    this.token = token;
    this.toPage({ type: CEREMONY.OVERLAY, token });
  }

  connectHost() {
    let host;
    try {
      host = api.runtime.connectNative(HOST);
    } catch (e) {
      this.hostProblem = `${e.message ?? e}`;
      return;
    }
    this.host = host;
    host.onMessage.addListener((m) => this.fromHost(m));
    host.onDisconnect.addListener(() => {
      const why = api.runtime.lastError?.message ?? host.error?.message ?? 'the helper stopped';
      this.host = null;
      if (this.done) return;
      if (!this.running) {
        this.hostProblem = why;
        this.onPhones?.();
        this.toOverlay({ type: OVERLAY.HOST_PROBLEM, message: errorText({ code: 'no_host', message: why }) });
        return;
      }
      this.fail({ name: 'NotAllowedError', code: 'host_gone', message: why }, true);
    });
  }

  fromHost(m) {
    if (this.done || !m || typeof m !== 'object') return;
    if (m.type === FROM_HOST.PHONES) {
      this.phones = Array.isArray(m.phones) ? m.phones.filter((p) => p && typeof p.id === 'string') : [];
      this.onPhones?.();
      this.toOverlay({ type: OVERLAY.PHONES, phones: this.phones.map((p) => phoneView(p, this.rpId)) });
      return;
    }
    if (m.id !== this.id) return;
    if (m.type === FROM_HOST.EVENT) {
      this.toOverlay({ type: OVERLAY.EVENT, ...progressFields(m) });
    } else if (m.type === FROM_HOST.RESULT) {
      this.succeed(m.credential);
    } else if (m.type === FROM_HOST.ERROR) {
      this.fail({ name: m.name, code: m.code, message: m.message }, m.code !== 'cancelled');
    }
  }

  choose(choice) {
    if (this.done || this.running) return;
    if (choice.choice === CHOICE.LOCAL) {
      this.end();
      this.toPage({ type: CEREMONY.FALLTHROUGH });
      return;
    }
    if (!this.host) {
      this.toOverlay({ type: OVERLAY.HOST_PROBLEM, message: errorText({ code: 'no_host', message: this.hostProblem }) });
      return;
    }
    const phone = choice.choice === CHOICE.PHONE && this.phones.some((p) => p.id === choice.phone) ? choice.phone : null;
    this.running = true;
    const request = { type: this.kind, id: this.id, origin: this.origin, options: this.options, phone };
    if (this.topOrigin) request.topOrigin = this.topOrigin;
    if (this.related) request.relatedOrigins = this.related;
    this.host.postMessage(request);
    this.toOverlay({ type: OVERLAY.STARTED, phone: phone && this.phones.find((p) => p.id === phone).name });
  }

  succeed(credential) {
    this.end();
    this.toPage({ type: CEREMONY.RESULT, credential });
  }

  // keepOverlay: show the error to the person until they close it.
  fail(err, keepOverlay) {
    if (this.done) return;
    this.onPhones?.(); // not waiting for the phones any longer
    if (this.host && this.running) {
      try { this.host.postMessage({ type: TO_HOST.CANCEL, id: this.id }); } catch { /* gone */ }
    }
    const show = keepOverlay && !!this.overlay;
    this.end(show);
    if (show) this.toOverlay({ type: OVERLAY.ERROR, message: errorText(err) });
    this.toPage({ type: CEREMONY.ERROR, name: err.name || 'NotAllowedError', message: err.message || '', keepOverlay: show });
  }

  cancel() {
    this.fail({ name: 'NotAllowedError', code: 'cancelled', message: 'the request was cancelled' }, false);
  }

  // Ends the ceremony: the host port closes (which cancels anything still running there).
  end(keepOverlay = false) {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    if (byTab.get(this.tabId) === this) byTab.delete(this.tabId);
    if (this.token) byToken.delete(this.token);
    const host = this.host;
    this.host = null;
    try { host?.disconnect(); } catch { /* gone */ }
    if (!keepOverlay) {
      const overlay = this.overlay;
      this.overlay = null;
      try { overlay?.disconnect(); } catch { /* gone */ }
      this.toPage({ type: CEREMONY.CLOSE_OVERLAY });
    }
  }
}

/** How long the background waits for a `/.well-known/webauthn`. */
const WELL_KNOWN_TIMEOUT_MS = 10000;

/** Fetches `https://<rpId>/.well-known/webauthn` as WebAuthn L3 §5.11 says (no credentials,
 * no referrer, no redirect, nothing cached) and checks it for a page of `origin`:
 * what {@link relatedOrigins} returns. Any network failure is an `{ error }`. */
async function fetchRelatedOrigins(rpId, origin) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), WELL_KNOWN_TIMEOUT_MS);
  try {
    const r = await fetch(`https://${rpId}/.well-known/webauthn`, { credentials: 'omit', referrerPolicy: 'no-referrer', redirect: 'error', cache: 'no-store', signal: ctl.signal });
    let body = '';
    if (r.body) {
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let bytes = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        bytes += value.byteLength;
        if (bytes > MAX_WELL_KNOWN_BYTES) {
          ctl.abort();
          body = 'x'.repeat(MAX_WELL_KNOWN_BYTES + 1);
          break;
        }
        body += decoder.decode(value, { stream: true });
      }
      if (bytes <= MAX_WELL_KNOWN_BYTES) body += decoder.decode();
    }
    return relatedOrigins({ status: r.status, redirected: r.redirected, contentType: r.headers.get('content-type'), body }, origin, rpId);
  } catch (e) {
    return { error: relatedRefusal(rpId, origin, `could not be fetched (${e?.name === 'AbortError' ? 'no answer in time' : 'a network error or a redirect'})`) };
  } finally {
    clearTimeout(timer);
  }
}

function reject(port, name, message) {
  try { port.postMessage({ type: CEREMONY.ERROR, name, message }); } catch { /* gone */ }
}

const POLICY_DENIED = (kind) => `The 'publickey-credentials-${kind}' feature is not enabled in this document. Permissions Policy may be used to delegate Web Authentication capabilities to cross-origin child frames.`;
const framePolicies = new Map(); // nonce -> {tabId, resolve}

/** How many frames up {@link askParents} walks before it gives up (then the browser's own
 * implementation decides). */
const MAX_FRAME_DEPTH = 8;

/** Asks the content script of a frame's parent, which `announce(nonce)` makes the frame post
 * the nonce to, which iframe element holds that frame and what its `allow` attribute says:
 * `{allow, src, parentOrigin, frameId}` (the parent's origin and frame ID from the browser),
 * or null when no answer comes within 2 s. */
function askParent(tabId, announce) {
  const nonce = randomToken();
  return new Promise((resolve) => {
    const done = (v) => { framePolicies.delete(nonce); clearTimeout(timer); resolve(v); };
    const timer = setTimeout(() => done(null), 2000);
    framePolicies.set(nonce, { tabId, resolve: done });
    try { announce(nonce); } catch { done(null); }
  });
}

/** Where the browser cannot report a frame's permissions policy (Firefox): walks up from the
 * requesting frame to the top-level page, asking at each step the parent's content script for
 * the `allow` attribute of the iframe element that holds the frame below (the frame announces
 * itself to its parent with a nonce), and applies the Permissions Policy rules: the feature is
 * enabled in the frame only if every container on the way delegates it to the document it
 * holds. true / false, or null when a step has no answer or the frames go deeper than
 * {@link MAX_FRAME_DEPTH} (then the browser's own implementation decides). */
async function askParents(port, s, kind, origin) {
  const feature = `publickey-credentials-${kind}`;
  let childOrigin = origin;
  let announce = (nonce) => port.postMessage({ type: CEREMONY.ANNOUNCE, nonce });
  for (let depth = 0; depth < MAX_FRAME_DEPTH; depth++) {
    const answer = await askParent(s.tab.id, announce);
    if (!answer) return null;
    const srcOrigin = originOf({ url: answer.src });
    if (!allowAttributeAllows(answer.allow, feature, { childOrigin, srcOrigin, parentOrigin: answer.parentOrigin })) return false;
    if (answer.frameId === 0) return true;
    // The parent is a frame itself: its own container must delegate the feature to it.
    const { frameId } = answer;
    childOrigin = answer.parentOrigin;
    announce = (nonce) => {
      Promise.resolve(api.tabs.sendMessage(s.tab.id, { type: RUNTIME.ANNOUNCE, nonce }, { frameId })).catch(() => {});
    };
  }
  return null;
}

// signalUnknownCredential reports, to the host one at a time (each starts a host process), at
// most UNKNOWN_QUEUE different ones waiting; more are dropped, as a signal has no answer to
// wait for.
const UNKNOWN_QUEUE = 8;
const unknownReports = [];
let reporting = false;

function nextUnknownReport() {
  const r = unknownReports.shift();
  reporting = !!r;
  if (!r) return;
  let host;
  try {
    host = api.runtime.connectNative(HOST);
  } catch {
    unknownReports.length = 0; // no host: nothing to note them on
    reporting = false;
    return;
  }
  const id = randomToken();
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    clearTimeout(timer);
    try { host.disconnect(); } catch { /* gone */ }
    nextUnknownReport();
  };
  const timer = setTimeout(end, 10000);
  host.onMessage.addListener((m) => { if (m?.id === id) end(); });
  host.onDisconnect.addListener(end);
  host.postMessage({ type: TO_HOST.UNKNOWN_CREDENTIAL, id, origin: r.origin, rpId: r.rpId, credentialId: r.credentialId });
}

api.runtime.onMessage.addListener((m, sender) => {
  if (m?.type !== RUNTIME.UNKNOWN_CREDENTIAL || sender.id !== api.runtime.id || !sender.tab) return;
  const origin = originOf(sender);
  const { rpId, credentialId } = m;
  if (!origin || !secureOrigin(origin) || typeof rpId !== 'string' || checkRpId(rpId, origin)) return;
  // A credential ID is at most 1023 bytes (WebAuthn L3 §4), 1364 base64url characters.
  if (typeof credentialId !== 'string' || credentialId.length > 1364 || !/^[A-Za-z0-9_-]+$/.test(credentialId)) return;
  if (unknownReports.length >= UNKNOWN_QUEUE) return;
  if (unknownReports.some((r) => r.origin === origin && r.rpId === rpId && r.credentialId === credentialId)) return;
  unknownReports.push({ origin, rpId, credentialId });
  if (!reporting) nextUnknownReport();
});

api.runtime.onMessage.addListener((m, sender) => {
  if (m?.type !== RUNTIME.FRAME_POLICY || sender.id !== api.runtime.id || typeof sender.frameId !== 'number') return;
  const pending = framePolicies.get(m.nonce);
  if (!pending || pending.tabId !== sender.tab?.id) return;
  const parentOrigin = originOf(sender);
  if (!parentOrigin) return;
  pending.resolve({ allow: typeof m.allow === 'string' ? m.allow : null, src: String(m.src ?? ''), parentOrigin, frameId: sender.frameId });
});

function onCeremonyPort(port) {
  let ceremony = null;
  let beginning = false;
  let gone = false;
  async function begin(msg) {
    const s = port.sender;
    if (s.id !== api.runtime.id || !s.tab || typeof s.tab.id !== 'number') return reject(port, 'NotAllowedError', 'not from a tab');
    if (msg.kind !== KIND.CREATE && msg.kind !== KIND.GET) return reject(port, 'TypeError', 'unknown request');
    const problem = optionsProblem(msg.options);
    if (problem) return reject(port, 'TypeError', problem);
    const origin = originOf(s);
    if (!origin || !secureOrigin(origin)) return reject(port, 'SecurityError', 'This page is not a secure context.');
    // The browser's word on this document's permissions policy (Chromium: the page's own
    // Permissions-Policy header included), for a top-level page too.
    if (msg.policyAllows === false) return reject(port, 'NotAllowedError', POLICY_DENIED(msg.kind));
    let topOrigin = null;
    if (msg.crossOrigin) {
      let allows = msg.policyAllows;
      if (allows !== true) {
        allows = await askParents(port, s, msg.kind, origin);
        if (gone) return;
      }
      if (allows === false) return reject(port, 'NotAllowedError', POLICY_DENIED(msg.kind));
      if (allows !== true) {
        // No one can tell us the frame's permissions policy (no answer from a parent, or
        // frames too deep): the browser's own implementation, which enforces the policy, decides.
        try { port.postMessage({ type: CEREMONY.FALLTHROUGH }); } catch { /* gone */ }
        return;
      }
      // Delegated to this frame: the host writes clientDataJSON with crossOrigin: true and
      // the top-level origin, which the browser (not the page) reports.
      topOrigin = originOf({ url: s.tab.url });
      if (!topOrigin || !secureOrigin(topOrigin)) return reject(port, 'SecurityError', 'The top-level page is not a secure context.');
      if (msg.kind === KIND.CREATE && msg.activated === false) {
        return reject(port, 'NotAllowedError', 'Creating a credential in a cross-origin frame needs a user gesture in that frame.');
      }
    }
    const rpId = rpIdOf(msg.kind, msg.options, origin);
    let bad = checkRpId(rpId, origin);
    let related = null;
    if (bad && relatedCandidate(rpId, origin)) {
      const r = await fetchRelatedOrigins(/** @type {string} */ (rpId).toLowerCase(), origin);
      if (gone) return;
      if (r.origins) related = r.origins;
      bad = r.error ?? null;
    }
    if (bad) return reject(port, 'SecurityError', bad);
    const prf = prfProblem(msg.kind, msg.options);
    if (prf) return reject(port, prf.name, prf.message);
    if (gone) return;
    if (byTab.has(s.tab.id)) return reject(port, 'NotAllowedError', 'A request is already pending.');
    ceremony = new Ceremony(port, msg, origin, /** @type {string} */ (rpId), topOrigin, related);
    ceremony.start();
  }
  port.onMessage.addListener((msg) => {
    if (msg?.type === CEREMONY.BEGIN && !ceremony && !beginning) {
      beginning = true;
      begin(msg).finally(() => { beginning = false; });
    } else if (ceremony && (msg?.type === CEREMONY.ABORT || msg?.type === CEREMONY.CANCEL)) {
      ceremony.cancel();
    }
  });
  port.onDisconnect.addListener(() => {
    gone = true;
    ceremony?.cancel();
  });
}

function onOverlayPort(port) {
  let ceremony = null;
  port.onMessage.addListener((msg) => {
    if (msg?.type === OVERLAY.HELLO && !ceremony) {
      const c = byToken.get(msg.token);
      const s = port.sender;
      if (!c || !s.url?.startsWith(OVERLAY_URL) || s.tab?.id !== c.tabId || c.overlay) {
        port.disconnect();
        return;
      }
      byToken.delete(msg.token);
      ceremony = c;
      c.overlay = port;
      const rpId = c.rpId;
      port.postMessage({
        type: OVERLAY.INIT,
        kind: c.kind,
        rpId,
        origin: c.origin,
        userName: c.kind === KIND.CREATE ? String(c.options.user?.name ?? '') : '',
        phones: c.phones.map((p) => phoneView(p, rpId)),
        hostProblem: c.host ? null : errorText({ code: 'no_host', message: c.hostProblem }),
        first: firstChoice(c.options.hints),
      });
    } else if (ceremony && msg?.type === OVERLAY.CHOOSE) {
      ceremony.choose(msg);
    } else if (ceremony && msg?.type === OVERLAY.CANCEL) {
      ceremony.cancel();
    } else if (ceremony && msg?.type === OVERLAY.CLOSE) {
      api.tabs.sendMessage(ceremony.tabId, { type: RUNTIME.CLOSE_OVERLAY }, { frameId: ceremony.frameId }).catch(() => {});
    }
  });
  port.onDisconnect.addListener(() => {
    // The page removed or hid the overlay's frame: the person can no longer see the
    // ceremony, so it ends.
    if (ceremony && ceremony.overlay === port) {
      ceremony.overlay = null;
      ceremony.cancel();
    }
  });
}

api.runtime.onConnect.addListener((port) => {
  if (port.sender?.id !== api.runtime.id) return port.disconnect();
  if (port.name === PORT.CEREMONY) onCeremonyPort(port);
  else if (port.name === PORT.OVERLAY) onOverlayPort(port);
  else port.disconnect();
});
