// @ts-check
// hybrid-bridge: small pure helpers shared by the background and the overlay (and unit-tested
// under node): the page's origin from the browser's sender information, the secure-context
// and RP ID checks made before any UI appears, and the words a person sees for an error.

/** The sender's origin as the browser reported it: `sender.origin` (Chromium) or the origin
 * of `sender.url` (Firefox). `null` when it is opaque or missing. */
export function originOf(sender) {
  let origin = typeof sender?.origin === 'string' ? sender.origin : null;
  if (!origin && typeof sender?.url === 'string') {
    try { origin = new URL(sender.url).origin; } catch { origin = null; }
  }
  return origin && origin !== 'null' ? origin : null;
}

const isLoopbackHost = (h) => h === 'localhost' || h.endsWith('.localhost') || /^127(\.\d{1,3}){3}$/.test(h) || h === '[::1]';

/** https:, or http: on a loopback host (the "potentially trustworthy" origins WebAuthn runs on). */
export function secureOrigin(origin) {
  let u;
  try { u = new URL(origin); } catch { return false; }
  return u.protocol === 'https:' || (u.protocol === 'http:' && isLoopbackHost(u.hostname));
}

const isIp = (h) => /^\d{1,3}(\.\d{1,3}){3}$/.test(h) || h.startsWith('[');

/** Why `rpId` may not be used by `origin` (a SecurityError's message), or null when it may:
 * it must be the origin's host or a parent domain of it. A parent with no dot (`com`) is
 * refused here; the host also refuses other public suffixes with its public suffix list.
 * @param {unknown} rpId @param {string} origin @returns {string | null} */
export function checkRpId(rpId, origin) {
  const host = new URL(origin).hostname;
  if (typeof rpId !== 'string' || rpId === '') return 'The relying party ID is empty.';
  const id = rpId.toLowerCase();
  if (isIp(host)) return `This page's address (${host}) is not a valid domain for passkeys.`;
  if (id === host) return null;
  if (host.endsWith(`.${id}`) && id.includes('.')) return null;
  return `The relying party ID "${rpId}" is not a registrable domain suffix of, nor equal to, the current domain (${host}).`;
}

/** Whether `rpId`, refused by {@link checkRpId} for a page of `origin`, may still be a related
 * origin RP ID (WebAuthn L3 §5.11) whose `https://<rpId>/.well-known/webauthn` the background
 * fetches: a domain name of two labels or more, on a page whose host is a domain name. The
 * native host refuses a public suffix with its public suffix list.
 * @param {unknown} rpId @param {string} origin @returns {boolean} */
export function relatedCandidate(rpId, origin) {
  if (typeof rpId !== 'string' || !rpId.includes('.') || rpId.startsWith('.') || rpId.endsWith('.')) return false;
  if (isIp(new URL(origin).hostname) || isIp(rpId) || /^[\d.]+$/.test(rpId)) return false;
  try {
    return new URL(`https://${rpId}/`).hostname === rpId.toLowerCase();
  } catch {
    return false;
  }
}

/** The largest `/.well-known/webauthn` read, in bytes; a longer one is refused. */
export const MAX_WELL_KNOWN_BYTES = 64 * 1024;

/** The SecurityError's message for a related-origin RP ID whose well-known does not vouch for
 * a page of `origin`: {@link checkRpId}'s, with `why` the well-known fails.
 * @param {string} rpId @param {string} origin @param {string} why @returns {string} */
export function relatedRefusal(rpId, origin, why) {
  const host = new URL(origin).hostname;
  return `The relying party ID "${rpId}" is not a registrable domain suffix of, nor equal to, the current domain (${host}), and https://${rpId}/.well-known/webauthn ${why}.`;
}

/** The related origins document (WebAuthn L3 §5.11) as fetched — `status`, whether the fetch
 * was `redirected`, the `contentType` header and the `body` text — checked for a page of
 * `origin`: `{ origins }`, the document's `origins` up to and including the first that is
 * this origin, or `{ error }`, the SecurityError's message. The document must be a 200
 * response with no redirect, of type `application/json`, holding a JSON object whose
 * `origins` is an array of strings; an entry that is no URL is skipped, as browsers skip it.
 * How many sites the list names before this origin (at most 5 registrable-domain labels,
 * this origin's among them) needs the Public Suffix List: the native host counts them over
 * the returned list.
 * @param {{status: number, redirected?: boolean, contentType?: string | null, body: string}} doc
 * @param {string} origin @param {string} rpId
 * @returns {{origins: string[], error?: undefined} | {error: string, origins?: undefined}} */
export function relatedOrigins(doc, origin, rpId) {
  const fail = (why) => ({ error: relatedRefusal(rpId, origin, why) });
  if (doc.redirected) return fail('redirects (it must be served directly)');
  if (doc.status !== 200) return fail(`answers HTTP ${doc.status}`);
  const type = String(doc.contentType ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') return fail(`is not application/json (${type || 'no type'})`);
  if (doc.body.length > MAX_WELL_KNOWN_BYTES) return fail(`is larger than ${MAX_WELL_KNOWN_BYTES} bytes`);
  let json;
  try { json = JSON.parse(doc.body); } catch { return fail('is not JSON'); }
  if (!json || typeof json !== 'object' || Array.isArray(json)) return fail('is not a JSON object');
  const list = json.origins;
  if (!Array.isArray(list)) return fail('has no "origins" array');
  if (!list.every((o) => typeof o === 'string')) return fail('has an "origins" entry that is not a string');
  const at = list.findIndex((o) => {
    try { return new URL(o).origin === origin; } catch { return false; }
  });
  if (at < 0) return fail(`does not list this page's origin (${origin})`);
  return { origins: list.slice(0, at + 1) };
}

/** The RP ID a request names, read in the one place the native host reads it too
 * (PROTOCOL.md): `rp.id` for create, `rpId` for get, else the origin's host. Options with
 * a `publicKey` member are refused before this is asked (see {@link optionsProblem}).
 * @param {string} kind 'create' or 'get'
 * @param {any} options the W3C options JSON
 * @param {string} origin the page's origin
 * @returns {unknown} a string, or whatever else the page put there (checkRpId refuses it) */
export function rpIdOf(kind, options, origin) {
  const named = kind === 'create' ? options.rp?.id : options.rpId;
  return named ?? new URL(origin).hostname;
}

/** Why the options of a begin message cannot be used (a TypeError's message), or null.
 * @param {unknown} options */
export function optionsProblem(options) {
  if (!options || typeof options !== 'object' || Array.isArray(options)) return 'The options are missing.';
  if (Object.hasOwn(options, 'publicKey')) {
    // The RP ID is read in one place only, so the one shown is the one the phone signs.
    return 'The options must be the W3C options JSON itself, not wrapped in publicKey.';
  }
  return null;
}

const TEXTS = {
  bluetooth: 'Bluetooth is off or missing: turn it on so this computer can hear your phone, then try again.',
  timeout: 'Your phone did not answer in time. Keep it near this computer and try again.',
  denied: 'The request was declined on the phone.',
  relay: 'Could not reach the phone through the internet: check this computer\'s connection and try again.',
  link_gone: 'That phone no longer knows this computer. Scan the QR code to link it again.',
  unknown_phone: 'That phone is no longer linked. Scan the QR code to link it again.',
  no_credentials: 'The phone has no passkey for this site. Try another phone, or a security key.',
  excluded: 'This phone already has a passkey for this account. Sign in with it instead.',
  unsupported_algorithm: 'The phone cannot make the kind of passkey this site asks for.',
  unsupported: 'The phone does not support what this site asks for.',
  phone_protocol: 'The phone answered in a way this computer did not understand. Try again.',
  phone_error: 'The phone reported an error. Try again.',
  closed: 'The connection to the phone closed early. Try again.',
  busy: 'Another passkey request is still running. Finish or cancel it first.',
  host_gone: 'The hybrid-bridge helper stopped. Try again; if it keeps happening, reinstall it with `hybrid-bridge browser install`.',
  no_host: 'The hybrid-bridge helper is not installed for this browser. Run `hybrid-bridge browser install`, then try again — or use this device or a security key.',
};

/** The sentence a person sees for a host error (`code` from PROTOCOL.md), falling back to
 * the host's own message. */
export function errorText(err) {
  const text = TEXTS[err?.code];
  if (text) return text;
  const m = typeof err?.message === 'string' && err.message ? err.message : 'Something went wrong.';
  return m.charAt(0).toUpperCase() + m.slice(1) + (/[.!?]$/.test(m) ? '' : '.');
}

/** What of a host progress event (PROTOCOL.md "Host → extension") the overlay is sent: the
 * `event`, and the fields that event carries, each only when it has its documented type
 * (`svg` of `qr`, `name` of `linked`, `channel` of `connected`, `retryInMs` of `relay-busy`).
 * @param {any} m
 * @returns {{event: string, svg?: string, name?: string, channel?: string, retryInMs?: number}} */
export function progressFields(m) {
  const out = /** @type {{event: string, svg?: string, name?: string, channel?: string, retryInMs?: number}} */ ({ event: String(m?.event) });
  const text = (v) => typeof v === 'string' ? v : undefined;
  if (m?.event === 'qr') out.svg = text(m.svg);
  if (m?.event === 'linked') out.name = text(m.name);
  if (m?.event === 'connected') out.channel = text(m.channel);
  if (m?.event === 'relay-busy' && Number.isFinite(m.retryInMs) && m.retryInMs >= 0) out.retryInMs = m.retryInMs;
  return out;
}

/** The overlay's words while the host waits for a busy or draining relay (`relay-busy`): the
 * wait in whole seconds, rounded up, at least 1. */
export function busyText(retryInMs) {
  const ms = Number.isFinite(retryInMs) && retryInMs > 0 ? retryInMs : 0;
  return `The relay is busy; trying again in ${Math.max(1, Math.ceil(ms / 1000))} s…`;
}

/** Whether an iframe's `allow` attribute delegates `feature` (e.g. publickey-credentials-get)
 * to a frame whose document has origin `childOrigin`, for a frame element whose `src`
 * resolves to `srcOrigin` in a page of origin `parentOrigin` (Permissions Policy §9.2, the
 * container policy): `feature` alone or `feature 'src'` names the src's origin, `*` any
 * origin, `'self'` the parent's, `'none'` none, else the listed origins. A feature the
 * attribute does not name keeps its default allowlist, `'self'` for WebAuthn's features. */
export function allowAttributeAllows(allow, feature, { childOrigin, srcOrigin, parentOrigin }) {
  if (typeof allow !== 'string' || !childOrigin) return false;
  for (const directive of allow.split(';')) {
    const [name, ...tokens] = directive.trim().split(/\s+/);
    if (name !== feature) continue;
    const list = tokens.length === 0 ? ["'src'"] : tokens;
    return list.some((t) => {
      if (t === '*') return true;
      if (t === "'none'") return false;
      if (t === "'self'") return childOrigin === parentOrigin;
      if (t === "'src'") return childOrigin === srcOrigin;
      try { return new URL(t).origin === childOrigin; } catch { return false; }
    });
  }
  return childOrigin === parentOrigin;
}

/** `PublicKeyCredential.getClientCapabilities()` with the extension active: the browser's own
 * answer (`browserAnswer`; null or undefined when it has none), with what the extension
 * provides end to end set true — `hybridTransport`, the extensions the native host carries to
 * the phone and back (`credProps`, `prf`), `relatedOrigins`, and `signalUnknownCredential`,
 * which the extension acts on in every browser (the linked phone that holds the passkey is noted). Every key the
 * phone path does not provide (`extension:largeBlob`, `passkeyPlatformAuthenticator`,
 * `conditionalGet`, `signalAllAcceptedCredentials`, `signalCurrentUserDetails` …) keeps the
 * browser's answer, so a key the browser says true stays true. `relatedOrigins` is true: the
 * extension fetches and checks the RP's `/.well-known/webauthn` itself in every browser (see
 * {@link relatedOrigins}). A plain record of booleans, keys in ascending order
 * as WebAuthn returns them. page.js gets this function's own text (tools/build.mjs), so it
 * uses nothing else from this module.
 * @param {unknown} browserAnswer @returns {Record<string, boolean>} */
export function clientCapabilities(browserAnswer) {
  const provided = ['hybridTransport', 'extension:credProps', 'extension:prf', 'relatedOrigins', 'signalUnknownCredential'];
  const all = {};
  if (browserAnswer && typeof browserAnswer === 'object') {
    for (const [k, v] of Object.entries(browserAnswer)) if (typeof v === 'boolean') all[k] = v;
  }
  for (const k of provided) all[k] = true;
  /** @type {Record<string, boolean>} */
  const out = {};
  for (const k of Object.keys(all).sort()) out[k] = all[k];
  return out;
}

/** Which of the overlay's choices comes first for a request's `hints` (WebAuthn L3, in order
 * of preference): the first hint the overlay knows decides. `hybrid` (and no hint) puts the
 * phone first — the QR code, then each linked phone; `security-key` and `client-device` put
 * *Use this device / a security key* (the browser's own implementation) first. Unknown hints
 * are skipped, as browsers skip them.
 * @param {unknown} hints @returns {'phone' | 'local'} */
export function firstChoice(hints) {
  if (!Array.isArray(hints)) return 'phone';
  for (const h of hints) {
    if (h === 'hybrid') return 'phone';
    if (h === 'security-key' || h === 'client-device') return 'local';
  }
  return 'phone';
}

/** The bytes of an unpadded base64url string as a binary string, or null when it is not one
 * (`=` padding, `+`, `/`, a length of 4n+1, or trailing bits that a canonical encoding leaves 0).
 * @param {unknown} s @returns {string | null} */
function base64urlBytes(s) {
  if (typeof s !== 'string' || !/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) return null;
  let bin;
  try { bin = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)); } catch { return null; }
  const again = btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  return again === s ? bin : null;
}

/** Why a request's `prf` extension input cannot be used (WebAuthn L3 §10.1.4), checked before
 * any UI appears, as a browser checks it before it asks an authenticator: `{ name, message }`
 * for the page's DOMException, or null. A non-empty `evalByCredential` is `NotSupportedError`
 * on create and on a sign-in without `allowCredentials`; each of its keys must be the
 * base64url ID of a credential in `allowCredentials` (else `SyntaxError`). The host checks
 * the same again.
 * @param {string} kind 'create' or 'get' @param {any} options the W3C options JSON
 * @returns {{name: string, message: string} | null} */
export function prfProblem(kind, options) {
  const byCredential = options?.extensions?.prf?.evalByCredential;
  if (!byCredential || typeof byCredential !== 'object') return null;
  const keys = Object.keys(byCredential);
  if (!keys.length) return null;
  if (kind === 'create') {
    return { name: 'NotSupportedError', message: 'extensions.prf.evalByCredential is for sign-in only; a registration takes extensions.prf.eval.' };
  }
  const allowed = new Set((Array.isArray(options.allowCredentials) ? options.allowCredentials : [])
    .map((c) => base64urlBytes(c?.id)).filter((b) => b));
  if (!allowed.size) {
    return { name: 'NotSupportedError', message: 'extensions.prf.evalByCredential needs allowCredentials naming those credentials.' };
  }
  for (const key of keys) {
    const id = base64urlBytes(key);
    if (!id || !allowed.has(id)) {
      return { name: 'SyntaxError', message: `extensions.prf.evalByCredential key ${JSON.stringify(key)} is not the base64url ID of a credential in allowCredentials: key it by one of those IDs, or use extensions.prf.eval.` };
    }
  }
  return null;
}

/** A signal call's options checked as WebAuthn L3 §5.1.10 says, for a page of `origin`:
 * `{ options }`, the dictionary as WebIDL converts it (strings, and an array of strings for
 * `allAcceptedCredentialIds`), or `{ error }`, what the page's promise rejects with —
 * `TypeError` for options that are no such dictionary (a missing member, a member that is no
 * string) or for an ID that is not unpadded base64url (`credentialId`, `userId`, each of
 * `allAcceptedCredentialIds`), then `SecurityError` when `rpId` is neither the page's host nor
 * a parent domain of it (the asynchronous RP ID validation; related origins are not
 * fetched). A parent with no dot (`com`) is refused; other public suffixes are left to the
 * browser's own method where it has one. page.js gets this function's own text
 * (tools/build.mjs), so it uses nothing else from this module.
 * @param {string} method `signalUnknownCredential`, `signalAllAcceptedCredentials` or
 *   `signalCurrentUserDetails`
 * @param {unknown} options what the page passed
 * @param {string} origin the page's origin (`null` when opaque)
 * @returns {{options: Record<string, string | string[]>, error?: undefined} | {error: {name: string, message: string}, options?: undefined}} */
export function signalOptions(method, options, origin) {
  const members = {
    signalAllAcceptedCredentials: ['allAcceptedCredentialIds', 'rpId', 'userId'],
    signalCurrentUserDetails: ['displayName', 'name', 'rpId', 'userId'],
    signalUnknownCredential: ['credentialId', 'rpId'],
  }[method];
  const fail = (name, message) => ({ error: { name, message: `Failed to execute '${method}': ${message}` } });
  if (!members) return fail('TypeError', 'not a signal method.');
  if (options !== undefined && options !== null && typeof options !== 'object' && typeof options !== 'function') {
    return fail('TypeError', 'the options are not an object.');
  }
  const str = (v, what) => {
    if (typeof v === 'symbol') throw new TypeError(`${what} is a Symbol, not a string.`);
    return String(v);
  };
  /** @type {Record<string, string | string[]>} */
  const out = {};
  try {
    for (const k of members) {
      const v = options === undefined || options === null ? undefined : /** @type {any} */ (options)[k];
      if (v === undefined) return fail('TypeError', `required member ${k} is undefined.`);
      if (k === 'allAcceptedCredentialIds') {
        if (v === null || typeof v !== 'object' || typeof v[Symbol.iterator] !== 'function') {
          return fail('TypeError', `${k} is not a sequence of strings.`);
        }
        out[k] = Array.from(v, (x, i) => str(x, `${k}[${i}]`));
      } else {
        out[k] = str(v, k);
      }
    }
  } catch (e) {
    return fail('TypeError', e instanceof Error ? e.message : String(e));
  }
  const base64url = (s) => /^[A-Za-z0-9_-]*$/.test(s) && s.length % 4 !== 1;
  for (const k of ['userId', 'credentialId']) {
    if (typeof out[k] === 'string' && !base64url(out[k])) return fail('TypeError', `${k} is not a base64url string.`);
  }
  const ids = out.allAcceptedCredentialIds;
  if (Array.isArray(ids)) {
    const i = ids.findIndex((s) => !base64url(s));
    if (i >= 0) return fail('TypeError', `allAcceptedCredentialIds[${i}] is not a base64url string.`);
  }
  let host = null;
  try { host = origin && origin !== 'null' ? new URL(origin).hostname : null; } catch { host = null; }
  const rpId = String(out.rpId).toLowerCase();
  if (!host || /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.startsWith('[')) {
    return fail('SecurityError', `this page's address is not a valid domain for passkeys.`);
  }
  if (rpId === '' || !(rpId === host || (host.endsWith(`.${rpId}`) && rpId.includes('.')))) {
    return fail('SecurityError', `the relying party ID "${out.rpId}" is not a registrable domain suffix of, nor equal to, the current domain (${host}).`);
  }
  return { options: out };
}
