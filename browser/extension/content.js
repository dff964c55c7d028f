// @ts-check
// hybrid-bridge, isolated content script: relays the MAIN-world script's requests to the
// background over one runtime port per ceremony, and shows the overlay — an extension page in
// an iframe inside a closed shadow root, which the page can neither read nor script. It
// reports what only this frame can know (is an ancestor cross-origin? does the permissions
// policy allow publickey-credentials-get/create here?); the origin itself the background takes
// from the browser. Browsers load it as a classic script: tools/build.mjs writes the import
// below as constants.
import { CEREMONY, DOM_EVENT, KIND, MAX_REQUEST_CHARS, PAGE, PORT, RUNTIME } from './messages.js';

(() => {
  'use strict';
  /** @type {typeof chrome} */
  const api = /** @type {any} */ (globalThis).browser ?? globalThis.chrome;
  /** @type {{id: string, port: chrome.runtime.Port} | null} */
  let current = null;
  /** @type {{host: HTMLElement, frame: HTMLIFrameElement, restoreFocus: HTMLElement | null, onKey: (e: KeyboardEvent) => void} | null} */
  let overlay = null;

  /** @param {object} msg */
  const toPage = (msg) => window.dispatchEvent(new CustomEvent(DOM_EVENT.TO_PAGE, { detail: JSON.stringify(msg) }));

  function crossOriginAncestor() {
    try {
      for (let w = /** @type {Window} */ (window); w !== w.parent; w = w.parent) {
        if (w.parent.location.origin !== location.origin) return true;
      }
      return false;
    } catch {
      return true; // an ancestor we cannot read is cross-origin
    }
  }

  // true / false when the browser tells us (Chromium), null when it cannot (Firefox).
  function policyAllows(kind) {
    // Chromium only; not in the DOM typings.
    const fp = /** @type {any} */ (document).featurePolicy;
    if (!fp || typeof fp.allowsFeature !== 'function') return null;
    const feature = kind === KIND.CREATE ? 'publickey-credentials-create' : 'publickey-credentials-get';
    if (!fp.features().includes(feature)) return null;
    return fp.allowsFeature(feature);
  }

  function removeOverlay() {
    if (!overlay) return;
    const { host, restoreFocus, onKey } = overlay;
    overlay = null;
    window.removeEventListener('keydown', onKey, true);
    host.remove();
    if (restoreFocus && typeof restoreFocus.focus === 'function' && restoreFocus.isConnected) {
      try { restoreFocus.focus(); } catch { /* the page's element */ }
    }
  }

  function showOverlay(token, onCancel) {
    removeOverlay();
    const host = document.createElement('div');
    host.setAttribute('style', 'all: initial; position: fixed; inset: 0; z-index: 2147483647; display: block;');
    const root = host.attachShadow({ mode: 'closed' });
    const frame = document.createElement('iframe');
    frame.src = `${api.runtime.getURL('overlay.html')}#${token}`;
    frame.title = 'Sign in with a passkey (hybrid-bridge)';
    frame.setAttribute('style', 'all: initial; position: fixed; inset: 0; width: 100vw; height: 100vh; border: 0; margin: 0; padding: 0; background: transparent; color-scheme: normal;');
    frame.setAttribute('allowtransparency', 'true');
    root.append(frame);
    const onKey = (e) => {
      // Focus left the overlay (it is in the page): Escape still cancels.
      if (e.key === 'Escape') { e.stopImmediatePropagation(); e.preventDefault(); onCancel(); }
    };
    overlay = { host, frame, restoreFocus: /** @type {HTMLElement | null} */ (document.activeElement), onKey };
    window.addEventListener('keydown', onKey, true);
    frame.addEventListener('load', () => { try { frame.focus(); } catch { /* ignore */ } });
    (document.body ?? document.documentElement).append(host);
  }

  function finish(id) {
    if (current?.id !== id) return;
    const { port } = current;
    current = null;
    try { port.disconnect(); } catch { /* already gone */ }
  }

  function begin(msg) {
    if (current) {
      toPage({ id: msg.id, type: PAGE.ERROR, name: 'NotAllowedError', message: 'Another passkey request is already running on this page.' });
      return;
    }
    let port;
    try {
      port = api.runtime.connect({ name: PORT.CEREMONY });
    } catch {
      toPage({ id: msg.id, type: PAGE.FALLTHROUGH }); // the extension was reloaded: the browser's own
      return;
    }
    const id = msg.id;
    current = { id, port };
    port.onMessage.addListener((m) => {
      switch (m.type) {
        case CEREMONY.OVERLAY:
          showOverlay(m.token, () => {
            if (current?.port === port) port.postMessage({ type: CEREMONY.CANCEL });
            else removeOverlay();
          });
          break;
        case CEREMONY.CLOSE_OVERLAY:
          removeOverlay();
          break;
        case CEREMONY.ANNOUNCE:
          // The background asks the top frame which iframe element this frame is (Firefox
          // cannot say); the nonce, posted to the parent, lets it find the element.
          if (typeof m.nonce === 'string') window.parent.postMessage({ hybridBridgeFrame: m.nonce }, '*');
          break;
        case CEREMONY.RESULT:
        case CEREMONY.ERROR:
        case CEREMONY.FALLTHROUGH:
          if (m.type !== CEREMONY.ERROR || !m.keepOverlay) removeOverlay();
          toPage({ ...m, id });
          finish(id);
          break;
      }
    });
    port.onDisconnect.addListener(() => {
      if (current?.id !== id) return;
      current = null;
      removeOverlay();
      toPage({ id, type: PAGE.ERROR, name: 'NotAllowedError', message: 'The passkey request ended unexpectedly.' });
    });
    port.postMessage({
      type: CEREMONY.BEGIN,
      kind: msg.kind === KIND.CREATE ? KIND.CREATE : KIND.GET,
      options: msg.options,
      crossOrigin: crossOriginAncestor(),
      policyAllows: policyAllows(msg.kind),
      // Transient activation (a click moments ago), which create() in a cross-origin frame
      // needs; null where the browser cannot say.
      activated: navigator.userActivation ? navigator.userActivation.isActive : null,
    });
  }

  window.addEventListener(DOM_EVENT.TO_EXT, (e) => {
    const detail = /** @type {CustomEvent} */ (e).detail;
    if (typeof detail !== 'string') return;
    if (detail.length > MAX_REQUEST_CHARS) {
      // Refused before it is parsed or reaches the background (messages.js says why).
      const id = /^\{"type":"begin","id":"([^"]{1,64})"/.exec(detail)?.[1];
      if (id) toPage({ id, type: PAGE.ERROR, name: 'NotAllowedError', message: `The passkey request's options are too large (over ${MAX_REQUEST_CHARS / 1024} KiB).` });
      return;
    }
    let msg;
    try { msg = JSON.parse(detail); } catch { return; }
    if (!msg || typeof msg.id !== 'string') return;
    if (msg.type === PAGE.BEGIN) begin(msg);
    else if (msg.type === PAGE.UNKNOWN_CREDENTIAL && typeof msg.rpId === 'string' && typeof msg.credentialId === 'string') {
      api.runtime.sendMessage({ type: RUNTIME.UNKNOWN_CREDENTIAL, rpId: msg.rpId, credentialId: msg.credentialId }).catch(() => {});
    }
    else if (msg.type === PAGE.ABORT && current?.id === msg.id) {
      current.port.postMessage({ type: CEREMONY.ABORT });
      removeOverlay();
      finish(msg.id);
    }
  });

  // In every frame: a child frame announcing itself (see CEREMONY.ANNOUNCE) is matched to its
  // iframe element, whose allow attribute the background reads to decide the child's
  // permissions policy.
  const NONCE = /^[0-9a-f]{32}$/;
  window.addEventListener('message', (e) => {
    const nonce = e.data?.hybridBridgeFrame;
    if (typeof nonce !== 'string' || !NONCE.test(nonce)) return;
    const el = [.../** @type {NodeListOf<HTMLIFrameElement>} */ (document.querySelectorAll('iframe, frame'))].find((f) => f.contentWindow === e.source);
    if (!el) return;
    api.runtime.sendMessage({ type: RUNTIME.FRAME_POLICY, nonce, allow: el.getAttribute('allow'), src: el.src }).catch(() => {});
  });

  api.runtime.onMessage.addListener((m, sender) => {
    if (sender.id !== api.runtime.id) return;
    // An error the overlay keeps on screen is closed from the overlay (via the background).
    if (m?.type === RUNTIME.CLOSE_OVERLAY) removeOverlay();
    // The background walks up the frames: this frame announces itself to its parent.
    if (m?.type === RUNTIME.ANNOUNCE && typeof m.nonce === 'string' && NONCE.test(m.nonce) && window.parent !== window) {
      window.parent.postMessage({ hybridBridgeFrame: m.nonce }, '*');
    }
  });
})();
