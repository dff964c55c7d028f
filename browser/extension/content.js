// hybrid-bridge, isolated content script: relays the MAIN-world script's requests to the
// background over one runtime port per ceremony, and shows the overlay — an extension page in
// an iframe inside a closed shadow root, which the page can neither read nor script. It
// reports what only this frame can know (is an ancestor cross-origin? does the permissions
// policy allow publickey-credentials-get/create here?); the origin itself the background takes
// from the browser.
(() => {
  'use strict';
  const api = globalThis.browser ?? globalThis.chrome;
  const TO_EXT = 'hybrid-bridge:to-ext';
  const TO_PAGE = 'hybrid-bridge:to-page';
  let current = null; // {id, port}
  let overlay = null; // {host, frame, restoreFocus, onKey}

  const toPage = (msg) => window.dispatchEvent(new CustomEvent(TO_PAGE, { detail: JSON.stringify(msg) }));

  function crossOriginAncestor() {
    try {
      for (let w = window; w !== w.parent; w = w.parent) {
        if (w.parent.location.origin !== location.origin) return true;
      }
      return false;
    } catch {
      return true; // an ancestor we cannot read is cross-origin
    }
  }

  // true / false when the browser tells us (Chromium), null when it cannot (Firefox).
  function policyAllows(kind) {
    const fp = document.featurePolicy;
    if (!fp || typeof fp.allowsFeature !== 'function') return null;
    const feature = kind === 'create' ? 'publickey-credentials-create' : 'publickey-credentials-get';
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
    overlay = { host, frame, restoreFocus: document.activeElement, onKey };
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
      toPage({ id: msg.id, type: 'error', name: 'NotAllowedError', message: 'Another passkey request is already running on this page.' });
      return;
    }
    let port;
    try {
      port = api.runtime.connect({ name: 'ceremony' });
    } catch {
      toPage({ id: msg.id, type: 'fallthrough' }); // the extension was reloaded: the browser's own
      return;
    }
    const id = msg.id;
    current = { id, port };
    port.onMessage.addListener((m) => {
      switch (m.type) {
        case 'overlay':
          showOverlay(m.token, () => {
            if (current?.port === port) port.postMessage({ type: 'cancel' });
            else removeOverlay();
          });
          break;
        case 'close-overlay':
          removeOverlay();
          break;
        case 'announce':
          // The background asks the top frame which iframe element this frame is (Firefox
          // cannot say); the nonce, posted to the parent, lets it find the element.
          if (typeof m.nonce === 'string') window.parent.postMessage({ hybridBridgeFrame: m.nonce }, '*');
          break;
        case 'result':
        case 'error':
        case 'fallthrough':
          if (m.type !== 'error' || !m.keepOverlay) removeOverlay();
          toPage({ ...m, id });
          finish(id);
          break;
      }
    });
    port.onDisconnect.addListener(() => {
      if (current?.id !== id) return;
      current = null;
      removeOverlay();
      toPage({ id, type: 'error', name: 'NotAllowedError', message: 'The passkey request ended unexpectedly.' });
    });
    port.postMessage({
      type: 'begin',
      kind: msg.kind === 'create' ? 'create' : 'get',
      options: msg.options,
      crossOrigin: crossOriginAncestor(),
      policyAllows: policyAllows(msg.kind),
      // Transient activation (a click moments ago), which create() in a cross-origin frame
      // needs; null where the browser cannot say.
      activated: navigator.userActivation ? navigator.userActivation.isActive : null,
      parentIsTop: (() => { try { return window.parent !== window && window.parent === window.top; } catch { return false; } })(),
    });
  }

  window.addEventListener(TO_EXT, (e) => {
    if (typeof e.detail !== 'string') return;
    let msg;
    try { msg = JSON.parse(e.detail); } catch { return; }
    if (!msg || typeof msg.id !== 'string') return;
    if (msg.type === 'begin') begin(msg);
    else if (msg.type === 'abort' && current?.id === msg.id) {
      current.port.postMessage({ type: 'abort' });
      removeOverlay();
      finish(msg.id);
    }
  });

  // In the top frame: a child frame announcing itself (see 'announce') is matched to its
  // iframe element, whose allow attribute the background reads to decide the frame's
  // permissions policy.
  if (window === window.top) {
    window.addEventListener('message', (e) => {
      const nonce = e.data?.hybridBridgeFrame;
      if (typeof nonce !== 'string' || !/^[0-9a-f]{32}$/.test(nonce)) return;
      const el = [...document.querySelectorAll('iframe, frame')].find((f) => f.contentWindow === e.source);
      if (!el) return;
      api.runtime.sendMessage({ type: 'hybrid-bridge:frame-policy', nonce, allow: el.getAttribute('allow'), src: el.src }).catch(() => {});
    });
  }

  // An error the overlay keeps on screen is closed from the overlay (via the background).
  api.runtime.onMessage.addListener((m, sender) => {
    if (sender.id === api.runtime.id && m?.type === 'hybrid-bridge:close-overlay') removeOverlay();
  });
})();
