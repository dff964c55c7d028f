// The test RP's page: @simplewebauthn/browser from node_modules (served at /lib/), the
// server verifies. The outcome goes into #status: data-state (pending|ok|error),
// data-error-name (the DOMException's name as the page saw it) and data-user.
import { startAuthentication, startRegistration, WebAuthnAbortService } from '/lib/index.js';

const $ = (id) => document.getElementById(id);
let seq = 0;

async function post(path, body) {
  const r = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const j = await r.json();
  if (!r.ok) throw Object.assign(new Error(j.error ?? `HTTP ${r.status}`), { name: 'ServerError' });
  return j;
}

function report(state, text, extra = {}) {
  const s = $('status');
  s.dataset.state = state;
  s.dataset.seq = String(seq);
  s.dataset.errorName = extra.errorName ?? '';
  s.dataset.user = extra.user ?? '';
  s.textContent = text;
}

async function run(label, fn) {
  seq += 1;
  report('pending', `${label}…`);
  try {
    const out = await fn();
    report('ok', `${label}: verified${out.user ? ` as ${out.user}` : ''}${out.topOrigin ? ` in a frame of ${out.topOrigin}` : ''}`, { user: out.user });
  } catch (e) {
    // @simplewebauthn/browser wraps the browser's DOMException in a WebAuthnError whose
    // name is the DOMException's and whose cause is the DOMException itself.
    const name = e?.cause?.name ?? e?.name ?? 'Error';
    report('error', `${label} failed: ${name}: ${e?.message ?? e}`, { errorName: name });
  }
}

// ?rpid=… fills in the RP ID (a frame's, which the test cannot type into).
const params = new URLSearchParams(location.search);
if (params.has('rpid')) $('rpid').value = params.get('rpid');
const rpId = () => $('rpid').value.trim() || undefined;
const username = () => $('username').value.trim();

$('register').addEventListener('click', () => run('Register', async () => {
  const optionsJSON = await post('/api/register/options', { username: username(), rpId: rpId(), exclude: $('exclude').checked });
  const response = await startRegistration({ optionsJSON });
  return post('/api/register/verify', { response });
}));

$('signin').addEventListener('click', () => run('Sign in', async () => {
  const optionsJSON = await post('/api/auth/options', { rpId: rpId() });
  const response = await startAuthentication({ optionsJSON });
  return post('/api/auth/verify', { response });
}));

$('signin-user').addEventListener('click', () => run('Sign in as user', async () => {
  const optionsJSON = await post('/api/auth/options', { username: username(), rpId: rpId() });
  const response = await startAuthentication({ optionsJSON });
  return post('/api/auth/verify', { response });
}));

// The library's AbortSignal (the one it passed to navigator.credentials).
$('abort').addEventListener('click', () => WebAuthnAbortService.cancelCeremony());

// In a frame (the cross-origin tests): the top page asks, by postMessage, for a sign-in and
// gets the outcome back the same way (it cannot script a cross-origin frame).
if (window !== window.top) {
  let started = false;
  window.addEventListener('message', (e) => {
    if (e.source !== window.parent || e.data?.run !== 'signin') return;
    window.parent.postMessage({ started: true }, '*');
    if (started) return;
    started = true;
    $('signin').click();
    const t = setInterval(() => {
      const s = $('status');
      if (s.dataset.state === 'pending') return;
      clearInterval(t);
      window.parent.postMessage({ outcome: { state: s.dataset.state, error: s.dataset.errorName, text: s.textContent } }, '*');
    }, 100);
  });
}
