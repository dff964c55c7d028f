// @ts-check
// hybrid-bridge, MAIN world: wraps navigator.credentials.create/get for `publicKey` requests.
// Options become W3C JSON (as PublicKeyCredential*Options toJSON / parse*OptionsFromJSON
// define), travel as a string through a DOM event to the isolated content script, and come
// back as W3C response JSON, turned here into an object that behaves like a
// PublicKeyCredential. Nothing secret passes through this script: the page can see all of it,
// and the origin is never taken from here (the background reads it from the browser).
// It also answers PublicKeyCredential.getClientCapabilities() with what the phone path adds
// (lib.js clientCapabilities), and the WebAuthn L3 signals (signalUnknownCredential,
// signalAllAcceptedCredentials, signalCurrentUserDetails): checked as the spec says (lib.js
// signalOptions), then the browser's own method where it has one, else resolved; a valid
// signalUnknownCredential also goes to the extension, for the linked phone that holds it. Browsers load it as a classic script: tools/build.mjs writes the
// imports below as constants and the function's text.
import { clientCapabilities, signalOptions } from './lib.js';
import { DOM_EVENT, KIND, PAGE } from './messages.js';

(() => {
  'use strict';
  const container = globalThis.CredentialsContainer?.prototype;
  if (!container || typeof container.create !== 'function' || !globalThis.isSecureContext) return;
  const origCreate = container.create;
  const origGet = container.get;
  const pending = new Map(); // id -> {resolve, reject, fallthrough}

  const b64u = (buf) => {
    const bytes = buf instanceof ArrayBuffer ? new Uint8Array(buf)
      : new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) {
      s += String.fromCharCode.apply(null, /** @type {any} */ (bytes.subarray(i, i + 0x8000)));
    }
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  };
  const unb64u = (s) => {
    if (typeof s !== 'string') throw new TypeError('expected a base64url string');
    const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  };
  const isBuf = (v) => v instanceof ArrayBuffer || ArrayBuffer.isView(v);
  const needBuf = (v, what) => {
    if (!isBuf(v)) throw new TypeError(`${what} must be an ArrayBuffer or a view of one`);
    return b64u(v);
  };
  // Extension inputs: every BufferSource becomes base64url, recursively (prf, largeBlob …).
  const extJSON = (v) => {
    if (isBuf(v)) return b64u(v);
    if (Array.isArray(v)) return v.map(extJSON);
    if (v && typeof v === 'object') {
      const o = {};
      for (const [k, x] of Object.entries(v)) if (x !== undefined) o[k] = extJSON(x);
      return o;
    }
    return v;
  };
  const descriptors = (list, what) => {
    if (list === undefined) return undefined;
    return Array.from(list, (d) => {
      const o = { type: d.type, id: needBuf(d.id, `${what}[].id`) };
      if (d.transports !== undefined) o.transports = Array.from(d.transports);
      return o;
    });
  };
  const clean = (o) => {
    for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
    return o;
  };

  function creationJSON(pk) {
    if (!pk.rp || !pk.user) throw new TypeError('publicKey.rp and publicKey.user are required');
    return clean({
      rp: clean({ id: pk.rp.id, name: pk.rp.name }),
      user: { id: needBuf(pk.user.id, 'user.id'), name: pk.user.name, displayName: pk.user.displayName },
      challenge: needBuf(pk.challenge, 'challenge'),
      pubKeyCredParams: Array.from(pk.pubKeyCredParams ?? [], (p) => ({ type: p.type, alg: p.alg })),
      timeout: pk.timeout,
      excludeCredentials: descriptors(pk.excludeCredentials, 'excludeCredentials'),
      authenticatorSelection: pk.authenticatorSelection && clean({ ...pk.authenticatorSelection }),
      hints: pk.hints && Array.from(pk.hints),
      attestation: pk.attestation,
      attestationFormats: pk.attestationFormats && Array.from(pk.attestationFormats),
      extensions: pk.extensions && extJSON(pk.extensions),
    });
  }

  function requestJSON(pk) {
    return clean({
      challenge: needBuf(pk.challenge, 'challenge'),
      timeout: pk.timeout,
      rpId: pk.rpId,
      allowCredentials: descriptors(pk.allowCredentials, 'allowCredentials'),
      userVerification: pk.userVerification,
      hints: pk.hints && Array.from(pk.hints),
      extensions: pk.extensions && extJSON(pk.extensions),
    });
  }

  // Client extension outputs back from JSON: the binary ones as ArrayBuffers.
  function extResults(json) {
    const r = structuredClone(json ?? {});
    const prf = r.prf?.results;
    if (prf) for (const k of ['first', 'second']) if (typeof prf[k] === 'string') prf[k] = unb64u(prf[k]);
    if (typeof r.largeBlob?.blob === 'string') r.largeBlob.blob = unb64u(r.largeBlob.blob);
    return r;
  }

  const ro = (obj, props) => {
    for (const [k, v] of Object.entries(props)) {
      Object.defineProperty(obj, k, { value: v, enumerable: typeof v !== 'function', configurable: true });
    }
    return obj;
  };

  function credential(kind, json) {
    const r = json.response ?? {};
    const protoOf = (name) => globalThis[name]?.prototype ?? Object.prototype;
    const response = Object.create(protoOf(kind === KIND.CREATE
      ? 'AuthenticatorAttestationResponse' : 'AuthenticatorAssertionResponse'));
    ro(response, { clientDataJSON: unb64u(r.clientDataJSON) });
    if (kind === KIND.CREATE) {
      const authData = unb64u(r.authenticatorData);
      const publicKey = typeof r.publicKey === 'string' ? unb64u(r.publicKey) : null;
      const transports = Array.from(r.transports ?? []);
      ro(response, {
        attestationObject: unb64u(r.attestationObject),
        getTransports: () => transports.slice(),
        getAuthenticatorData: () => authData.slice(0),
        getPublicKey: () => (publicKey ? publicKey.slice(0) : null),
        getPublicKeyAlgorithm: () => r.publicKeyAlgorithm,
      });
    } else {
      ro(response, {
        authenticatorData: unb64u(r.authenticatorData),
        signature: unb64u(r.signature),
        userHandle: typeof r.userHandle === 'string' ? unb64u(r.userHandle) : null,
      });
    }
    const cred = Object.create(protoOf('PublicKeyCredential'));
    const snapshot = JSON.stringify(json);
    ro(cred, {
      id: json.id,
      rawId: unb64u(json.rawId ?? json.id),
      type: 'public-key',
      response,
      authenticatorAttachment: json.authenticatorAttachment ?? null,
      getClientExtensionResults: () => extResults(json.clientExtensionResults),
      toJSON: () => {
        const j = JSON.parse(snapshot);
        j.clientExtensionResults ??= {};
        return j;
      },
    });
    return cred;
  }

  function domError(name, message) {
    if (name === 'TypeError') return new TypeError(message);
    return new DOMException(message || 'The operation either timed out or was not allowed.', name || 'NotAllowedError');
  }

  window.addEventListener(DOM_EVENT.TO_PAGE, (e) => {
    const detail = /** @type {CustomEvent} */ (e).detail;
    if (typeof detail !== 'string') return;
    let msg;
    try { msg = JSON.parse(detail); } catch { return; }
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    p.cleanup();
    if (msg.type === PAGE.RESULT) {
      try { p.resolve(credential(p.kind, msg.credential)); } catch (err) {
        p.reject(domError('UnknownError', `the credential could not be read: ${err.message}`));
      }
    } else if (msg.type === PAGE.FALLTHROUGH) {
      p.fallthrough();
    } else {
      p.reject(domError(msg.name, msg.message));
    }
  });

  const send = (msg) => window.dispatchEvent(new CustomEvent(DOM_EVENT.TO_EXT, { detail: JSON.stringify(msg) }));

  function wrap(kind, original) {
    /** @this {CredentialsContainer} @param {any} options */
    return function (options) {
      const pk = options?.publicKey;
      // Only publicKey requests, and never conditional mediation (autofill UI): those are the
      // browser's own.
      if (!pk || options.mediation === 'conditional' || this !== navigator.credentials) {
        return original.apply(this, arguments);
      }
      const signal = options.signal;
      if (signal?.aborted) return Promise.reject(signal.reason);
      let json;
      try {
        json = kind === KIND.CREATE ? creationJSON(pk) : requestJSON(pk);
      } catch (err) {
        return Promise.reject(err);
      }
      const id = crypto.randomUUID();
      return new Promise((resolve, reject) => {
        const onAbort = () => {
          if (!pending.has(id)) return;
          pending.delete(id);
          send({ type: PAGE.ABORT, id });
          reject(signal.reason);
        };
        pending.set(id, {
          kind,
          resolve,
          reject,
          fallthrough: () => original.call(navigator.credentials, options).then(resolve, reject),
          cleanup: () => signal?.removeEventListener('abort', onAbort),
        });
        signal?.addEventListener('abort', onAbort);
        send({ type: PAGE.BEGIN, id, kind, options: json });
      });
    };
  }

  const define = (name, fn) => {
    Object.defineProperty(fn, 'name', { value: name });
    Object.defineProperty(container, name, { value: fn, writable: true, configurable: true, enumerable: true });
  };
  define('create', wrap(KIND.CREATE, origCreate));
  define('get', wrap(KIND.GET, origGet));

  // WebAuthn L3 capabilities: the browser's own answer where it has the method, with
  // hybridTransport and the extensions the phone path carries set true (never lowered).
  // isUserVerifyingPlatformAuthenticatorAvailable and isConditionalMediationAvailable stay
  // the browser's: the phone is no platform authenticator, and conditional mediation goes to
  // the browser untouched (README "What the page gets").
  const PKC = globalThis.PublicKeyCredential;
  if (typeof PKC === 'function') {
    const origCaps = typeof PKC.getClientCapabilities === 'function' ? PKC.getClientCapabilities : null;
    const getClientCapabilities = function () {
      const browsers = origCaps ? Promise.resolve().then(() => origCaps.call(PKC)).catch(() => null) : Promise.resolve(null);
      return browsers.then(clientCapabilities);
    };
    Object.defineProperty(getClientCapabilities, 'name', { value: 'getClientCapabilities' });
    Object.defineProperty(PKC, 'getClientCapabilities', { value: getClientCapabilities, writable: true, configurable: true, enumerable: false });

    // WebAuthn L3 signals: the options are checked here as the spec says (TypeError,
    // SecurityError) whether or not the browser has the method, so a page gets the same
    // answer everywhere; then the browser's own method gets the checked dictionary, and
    // where the browser has none the promise resolves, as the spec's does once the RP ID is
    // valid (a signal is a hint with no answer).
    for (const method of ['signalUnknownCredential', 'signalAllAcceptedCredentials', 'signalCurrentUserDetails']) {
      const own = typeof PKC[method] === 'function' ? PKC[method] : null;
      const signal = function (options) {
        const checked = signalOptions(method, options, globalThis.location.origin);
        if (checked.error) return Promise.reject(domError(checked.error.name, checked.error.message));
        if (method === 'signalUnknownCredential') {
          // The linked phone that holds it, if any, is noted by the host; the page learns
          // nothing of it.
          send({ type: PAGE.UNKNOWN_CREDENTIAL, id: crypto.randomUUID(), rpId: checked.options.rpId, credentialId: checked.options.credentialId });
        }
        return own ? Promise.resolve().then(() => own.call(PKC, checked.options)) : Promise.resolve(undefined);
      };
      Object.defineProperty(signal, 'name', { value: method });
      Object.defineProperty(PKC, method, { value: signal, writable: true, configurable: true, enumerable: false });
    }
  }
})();
