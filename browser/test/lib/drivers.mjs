// Two small browser drivers with one interface (navigate, evaluate, screenshot, key): Debian's
// Chromium over the DevTools protocol, and Firefox ESR over WebDriver BiDi, which it speaks
// itself. Both load the unpacked extension (or, with no extensionDir, only what the system has
// installed: the Debian package's test) and get everything from temp folders: no browser
// download, no network beyond 127.0.0.1.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { child, freePort, sleep, waitFor } from './stack.mjs';

class Rpc {
  constructor(url) {
    this.ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 256 << 20 });
    this.next = 1;
    this.calls = new Map();
    this.listeners = new Set();
    this.ws.on('message', (data) => {
      const m = JSON.parse(data);
      if (m.id !== undefined && this.calls.has(m.id)) {
        const { resolve, reject, method } = this.calls.get(m.id);
        this.calls.delete(m.id);
        if (m.error) reject(new Error(`${method}: ${typeof m.error === 'string' ? `${m.error}: ${m.message}` : m.error.message}`));
        else resolve(m.result);
      } else {
        for (const l of this.listeners) l(m);
      }
    });
    this.ws.on('close', () => {
      for (const { reject, method } of this.calls.values()) reject(new Error(`${method}: connection closed`));
      this.calls.clear();
    });
    this.open = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
    });
  }

  /** One command; a browser that does not answer within `timeout` ms fails it (no hang). */
  send(method, params = {}, { timeout = 60000, sessionId } = {}) {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.calls.delete(id);
        reject(new Error(`${method}: no answer in ${timeout / 1000} s`));
      }, timeout);
      const done = (f) => (v) => { clearTimeout(t); f(v); };
      this.calls.set(id, { resolve: done(resolve), reject: done(reject), method });
      this.ws.send(JSON.stringify(sessionId ? { id, method, params, sessionId } : { id, method, params }));
    });
  }

  close() { this.ws.close(); }
}

const CHROMIUM_KEYS = {
  Enter: { code: 'Enter', windowsVirtualKeyCode: 13, text: '\r' },
  Tab: { code: 'Tab', windowsVirtualKeyCode: 9 },
  Escape: { code: 'Escape', windowsVirtualKeyCode: 27 },
};

/** Debian's Chromium, headless, driven through the DevTools protocol. Without `extensionDir`,
 * only the extensions the system installed; `env` goes to the browser and the hosts it starts;
 * `args` are added to its command line. */
export async function launchChromium({ extensionDir, userDataDir, log, env, args: extraArgs = [] }) {
  // --disable-default-apps also turns off every external extension provider but policy
  // (ExternalProviderImpl::CreateExternalProviders returns before them), so it goes only with
  // --load-extension: there it keeps a system-installed copy of the extension out of the run;
  // without it Chromium reads the system's external extension files, as a person's does.
  const args = [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-default-browser-check', '--disable-features=Translate,MediaRouter',
    `--user-data-dir=${userDataDir}`, '--remote-debugging-port=0', '--remote-allow-origins=*',
    ...(extensionDir ? ['--disable-default-apps', `--load-extension=${extensionDir}`] : []),
    '--window-size=900,760', ...extraArgs, 'about:blank',
  ];
  const proc = child('/usr/bin/chromium', args, { log, env });
  const portFile = join(userDataDir, 'DevToolsActivePort');
  const port = await waitFor('Chromium\'s DevTools port', () => existsSync(portFile) && readFileSync(portFile, 'utf8').split('\n')[0]);
  const page = await waitFor('a page target', async () => {
    const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
    return list.find((t) => t.type === 'page' && t.url === 'about:blank');
  });
  const cdp = new Rpc(page.webSocketDebuggerUrl);
  await cdp.open;
  await cdp.send('Page.enable');
  await cdp.send('Runtime.enable');
  // Headless windows are never focused; without this, key presses reach no frame.
  await cdp.send('Page.bringToFront');
  await cdp.send('Emulation.setFocusEmulationEnabled', { enabled: true });
  // The overlay's frame (an extension page, out of process) as its own session, so the test
  // can read what the person sees in it.
  const frames = new Map(); // targetId -> {sessionId, url}
  cdp.listeners.add((m) => {
    if (m.method === 'Target.attachedToTarget' && m.params.targetInfo.type === 'iframe') {
      frames.set(m.params.targetInfo.targetId, { sessionId: m.params.sessionId, url: m.params.targetInfo.url });
      // Frames inside it too (the overlay of a cross-origin frame is a frame in a frame).
      cdp.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: false, flatten: true }, { sessionId: m.params.sessionId }).catch(() => {});
    } else if (m.method === 'Target.targetInfoChanged' && frames.has(m.params.targetInfo.targetId)) {
      frames.get(m.params.targetInfo.targetId).url = m.params.targetInfo.url;
    } else if (m.method === 'Target.detachedFromTarget') {
      for (const [id, f] of frames) if (f.sessionId === m.params.sessionId) frames.delete(id);
    }
  });
  await cdp.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: false, flatten: true });
  return {
    name: 'chromium',
    /** The running extensions' IDs (their service workers' origins). */
    async extensionIds() {
      const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
      return [...new Set(list.filter((t) => t.url.startsWith('chrome-extension://')).map((t) => new URL(t.url).host))];
    },
    async navigate(url) {
      const loaded = new Promise((resolve) => {
        const l = (m) => { if (m.method === 'Page.loadEventFired') { cdp.listeners.delete(l); resolve(); } };
        cdp.listeners.add(l);
      });
      await cdp.send('Page.navigate', { url });
      await loaded;
    },
    /** Evaluates an expression in the page; its value must be JSON. */
    async evaluate(expression) {
      const r = await cdp.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true, userGesture: true });
      if (r.exceptionDetails) throw new Error(`page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
      return r.result.value;
    },
    /** Evaluates `expression` in the overlay's frame (test-only: the page cannot). */
    async overlayEval(expression) {
      const sessionId = [...frames.values()].reverse().find((f) => f.url.startsWith('chrome-extension://') && f.url.includes('/overlay.html'))?.sessionId;
      if (!sessionId) throw new Error('no overlay frame');
      const r = await cdp.send('Runtime.evaluate', { expression, returnByValue: true }, { sessionId });
      if (r.exceptionDetails) throw new Error(`overlay: ${r.exceptionDetails.text}`);
      return r.result.value;
    },
    /** A DevTools virtual authenticator (USB, resident keys, presence and UV automatic): what
     * Chromium's own WebAuthn then uses. */
    async addVirtualAuthenticator() {
      await cdp.send('WebAuthn.enable', { enableUI: false });
      const r = await cdp.send('WebAuthn.addVirtualAuthenticator', { options: { protocol: 'ctap2', transport: 'usb',
        hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true } });
      return r.authenticatorId;
    },
    async screenshot() {
      const r = await cdp.send('Page.captureScreenshot', { format: 'png' });
      return Buffer.from(r.data, 'base64');
    },
    async key(name) {
      const k = CHROMIUM_KEYS[name];
      // A key that closes the overlay removes the frame that handles it; Chromium then never
      // acknowledges that event over CDP. The key has been delivered by then: don't wait.
      const ack = (p) => Promise.race([p, sleep(3000)]);
      await ack(cdp.send('Input.dispatchKeyEvent', { type: 'keyDown', key: name, ...k }));
      await ack(cdp.send('Input.dispatchKeyEvent', { type: 'keyUp', key: name, code: k.code, windowsVirtualKeyCode: k.windowsVirtualKeyCode }));
    },
    async close() {
      try { await cdp.send('Browser.close'); } catch { /* closing */ }
      cdp.close();
      await Promise.race([proc.exited, sleep(5000)]);
      await proc.kill();
    },
  };
}

const BIDI_KEYS = { Enter: '\uE007', Tab: '\uE004', Escape: '\uE00C' };

const FIREFOX_PREFS = {
  'browser.shell.checkDefaultBrowser': false,
  'browser.startup.homepage_override.mstone': 'ignore',
  'datareporting.policy.dataSubmissionEnabled': false,
  'toolkit.telemetry.reportingpolicy.firstRun': false,
  'app.update.enabled': false,
  'app.normandy.enabled': false,
  'extensions.update.enabled': false,
  'browser.safebrowsing.update.enabled': false,
  'network.captive-portal-service.enabled': false,
  'dom.security.https_first': false,
  // Headless windows never get OS focus: let focus() and key events work as if they had.
  'focusmanager.testmode': true,
  'security.webauth.webauthn_enable_usbtoken': true,
};

/** Firefox ESR, headless, driven through WebDriver BiDi. `home` is HOME for the browser (the
 * native host manifest is read from HOME/.mozilla/native-messaging-hosts). Without
 * `extensionDir`, only what the system installs (policies); `prefs` are added to the profile;
 * `capabilities` go to the BiDi session (`acceptInsecureCerts` for a test certificate). */
export async function launchFirefox({ extensionDir, profileDir, home, log, env = {}, prefs = {}, capabilities = {} }) {
  mkdirSync(profileDir, { recursive: true });
  writeFileSync(join(profileDir, 'user.js'), Object.entries({ ...FIREFOX_PREFS, ...prefs })
    .map(([k, v]) => `user_pref(${JSON.stringify(k)}, ${JSON.stringify(v)});`).join('\n') + '\n');
  const port = await freePort();
  const proc = child('/usr/bin/firefox-esr', ['--headless', '--no-remote', '--profile', profileDir,
    '--remote-debugging-port', String(port), '--width', '900', '--height', '760', 'about:blank'],
  { env: { ...env, HOME: home, MOZ_CRASHREPORTER_DISABLE: '1' }, log });
  await waitFor('Firefox\'s WebDriver BiDi', () => /WebDriver BiDi listening/.test(proc.output()), { timeout: 40000 });
  const bidi = new Rpc(`ws://127.0.0.1:${port}/session`);
  await bidi.open;
  await bidi.send('session.new', { capabilities: { alwaysMatch: capabilities } });
  if (extensionDir) await bidi.send('webExtension.install', { extensionData: { type: 'path', path: extensionDir } });
  const tree = await bidi.send('browsingContext.getTree', {});
  const context = tree.contexts[0].context;
  await bidi.send('browsingContext.setViewport', { context, viewport: { width: 900, height: 760 } });
  return {
    name: 'firefox',
    profileDir,
    async navigate(url) {
      await bidi.send('browsingContext.navigate', { context, url, wait: 'complete' });
      // Headless windows start unfocused; without this, key presses reach no frame.
      await bidi.send('browsingContext.activate', { context });
    },
    async evaluate(expression) {
      const r = await bidi.send('script.evaluate', {
        expression: `(async () => JSON.stringify(await (${expression})))()`,
        target: { context }, awaitPromise: true, userActivation: true,
      });
      if (r.type === 'exception') throw new Error(`page: ${r.exceptionDetails.text}`);
      const v = r.result.value;
      return v === undefined ? undefined : JSON.parse(v);
    },
    async screenshot() {
      const r = await bidi.send('browsingContext.captureScreenshot', { context });
      return Buffer.from(r.data, 'base64');
    },
    /** Clicks, with the mouse, the overlay's element matching `selector`. Key presses do not
     * reach the overlay's out-of-process frame here, so the person's part is played with the
     * mouse; only the element's position is read from the overlay's frame. */
    async clickOverlay(selector) {
      const rect = await this.overlayEval(`document.querySelector(${JSON.stringify(selector)})?.getBoundingClientRect() ?? null`);
      if (!rect || !rect.width) throw new Error(`${selector} is not shown in the overlay`);
      await this.click(rect.x + rect.width / 2, rect.y + rect.height / 2);
    },
    /** Evaluates `expression` in the overlay's frame (test-only: the page cannot). */
    async overlayEval(expression) {
      const frames = await bidi.send('browsingContext.getTree', { root: context });
      // Anywhere in the tree: a cross-origin frame's overlay is a frame in a frame.
      const find = (cs) => cs?.map((c) => (c.url.startsWith('moz-extension://') && c.url.includes('/overlay.html') ? c : find(c.children))).find(Boolean);
      const frame = find(frames.contexts[0].children);
      if (!frame) throw new Error('no overlay frame');
      const r = await bidi.send('script.evaluate', {
        expression: `JSON.stringify(${expression})`, target: { context: frame.context }, awaitPromise: false,
      });
      if (r.type === 'exception') throw new Error(`overlay: ${r.exceptionDetails.text}`);
      return r.result.value === undefined ? undefined : JSON.parse(r.result.value);
    },
    async click(x, y) {
      await bidi.send('input.performActions', { context, actions: [{ type: 'pointer', id: 'mouse', parameters: { pointerType: 'mouse' }, actions: [
        { type: 'pointerMove', x: Math.round(x), y: Math.round(y) }, { type: 'pointerDown', button: 0 }, { type: 'pointerUp', button: 0 }] }] });
    },
    async key(name) {
      const value = BIDI_KEYS[name];
      await bidi.send('input.performActions', { context, actions: [{ type: 'key', id: 'keyboard', actions: [{ type: 'keyDown', value }, { type: 'keyUp', value }] }] });
    },
    async close() {
      try { await bidi.send('browser.close', {}); } catch { /* closing */ }
      bidi.close();
      await Promise.race([proc.exited, sleep(5000)]);
      await proc.kill();
    },
  };
}
