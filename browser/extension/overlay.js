// @ts-check
// hybrid-bridge overlay: the extension page the person sees over the site, in an iframe the
// page cannot read. It offers the QR code, each linked phone and the browser's own
// authenticator, then shows the QR code and each stage in words (announced through an
// aria-live region), and errors a person can act on. Escape or Cancel cancels. The account
// name of a create is the page's own choice and is labelled as such. The request's `hints`
// decide which choice comes first (lib.js firstChoice). Under the linked phones it says when
// this site reported one of their passkeys unknown (signalUnknownCredential).
import { busyText } from './lib.js';
import { CHOICE, HOST_EVENT, KIND, OVERLAY, PORT } from './messages.js';

/** @type {typeof chrome} */
const api = /** @type {any} */ (globalThis).browser ?? globalThis.chrome;
const $ = (id) => document.getElementById(id);
const token = location.hash.slice(1);
const port = api.runtime.connect({ name: PORT.OVERLAY });
/** @type {string} */
let kind = KIND.GET;
let rpId = '';
let finished = false;

/** @type {Record<string, (m: {name?: string, channel?: string, retryInMs?: number}) => string>} */
const STAGES = {
  [HOST_EVENT.QR]: () => 'Scan this QR code with your phone or tablet\'s camera.',
  [HOST_EVENT.ADVERT]: () => 'Your phone was found nearby. Connecting…',
  [HOST_EVENT.CONTACTING]: () => 'Asking your phone… Check it for a notification.',
  [HOST_EVENT.CONNECTING]: () => 'Connecting to your phone…',
  [HOST_EVENT.CONNECTED]: (m) => m.channel === 'ble'
    ? 'Connected over Bluetooth, without the internet. Follow the steps on your phone.'
    : 'Connected. Follow the steps on your phone.',
  [HOST_EVENT.WAITING]: () => kind === KIND.CREATE ? 'Confirm on your phone to create the passkey.' : 'Confirm on your phone to sign in.',
  [HOST_EVENT.LINKED]: (m) => `This computer will remember ${m.name || 'your phone'} for next time.`,
  [HOST_EVENT.RELAY_BUSY]: (m) => busyText(m.retryInMs),
};

function focusables() {
  return [...$('dialog').querySelectorAll('button')].filter((b) => !b.closest('[hidden]') && !b.disabled);
}

function setStage(text) {
  $('stage').textContent = text;
}

function showProblem(text) {
  $('problem').textContent = text;
  $('problem').hidden = false;
}

function cancel() {
  if (finished) {
    port.postMessage({ type: OVERLAY.CLOSE });
    return;
  }
  port.postMessage({ type: OVERLAY.CANCEL });
}

function choose(msg, label) {
  $('choices').hidden = true;
  $('progress').hidden = false;
  setStage(label);
  $('cancel').focus();
  port.postMessage({ type: OVERLAY.CHOOSE, choice: msg.type, phone: msg.phone });
}

function renderPhones(phones) {
  const box = $('phones');
  box.replaceChildren();
  for (const p of phones) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'choice phone';
    b.dataset.phone = p.id;
    const icon = document.createElement('span');
    icon.className = 'icon';
    icon.setAttribute('aria-hidden', 'true');
    icon.textContent = '☎';
    b.append(icon, `${kind === KIND.CREATE ? 'Create it on' : 'Sign in with'} ${p.name}`);
    b.addEventListener('click', () => choose({ type: CHOICE.PHONE, phone: p.id }, `Contacting ${p.name}…`));
    box.append(b);
  }
  // A site's signalUnknownCredential named a passkey one of these phones made or used here.
  const reported = phones.filter((p) => p.reportedUnknown).map((p) => p.name);
  $('notice').textContent = reported.length
    ? `${rpId} no longer accepts a passkey saved on ${reported.join(', ')}. You can delete it in the phone's passkey manager.`
    : '';
  $('notice').hidden = !reported.length;
}

function showQr(svg) {
  const img = document.createElement('img');
  img.alt = 'QR code: scan it with your phone or tablet\'s camera';
  img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
  $('qr').replaceChildren(img);
  $('qr').hidden = false;
}

port.onMessage.addListener((m) => {
  switch (m.type) {
    case OVERLAY.INIT: {
      kind = m.kind;
      rpId = m.rpId;
      $('title').textContent = kind === KIND.CREATE ? 'Create a passkey' : 'Sign in with a passkey';
      $('subtitle').textContent = kind === KIND.CREATE ? `for ${rpId}` : `to ${rpId}`;
      // The site picks the account name freely (any text): say so, apart from the RP ID,
      // which the extension and the host checked against the page's origin.
      if (kind === KIND.CREATE && m.userName) {
        $('account').textContent = `Account name chosen by the site: ${m.userName}`;
        $('account').hidden = false;
      }
      renderPhones(m.phones);
      // hints ["security-key"] or ["client-device"]: the browser's own implementation first.
      if (m.first === 'local') $('choices').prepend($('use-local'));
      $('choices').hidden = false;
      if (m.hostProblem) showProblem(m.hostProblem);
      document.body.hidden = false; // drawn only once it can be used
      focusables()[0].focus();
      break;
    }
    case OVERLAY.PHONES:
      renderPhones(m.phones);
      break;
    case OVERLAY.HOST_PROBLEM:
      showProblem(m.message);
      if (!$('progress').hidden) {
        // The choice could not start: offer the choices again.
        $('progress').hidden = true;
        $('choices').hidden = false;
        $('use-local').focus();
      }
      break;
    case OVERLAY.STARTED:
      if (m.phone) setStage(`Contacting ${m.phone}… Check your phone for a notification.`);
      break;
    case OVERLAY.EVENT: {
      if (m.event === HOST_EVENT.QR && typeof m.svg === 'string') showQr(m.svg);
      else if (m.event !== HOST_EVENT.QR) $('qr').hidden = true;
      const stage = STAGES[m.event];
      if (stage) setStage(stage(m));
      break;
    }
    case OVERLAY.ERROR:
      finished = true;
      $('choices').hidden = true;
      $('qr').hidden = true;
      $('progress').hidden = true;
      showProblem(m.message);
      $('cancel').textContent = 'Close';
      $('cancel').focus();
      break;
  }
});

$('use-qr').addEventListener('click', () => choose({ type: CHOICE.QR }, 'Preparing a QR code…'));
$('use-local').addEventListener('click', () => choose({ type: CHOICE.LOCAL }, 'Using this device…'));
$('cancel').addEventListener('click', cancel);
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape') {
    e.preventDefault();
    cancel();
  } else if (e.key === 'Tab') {
    // Keep focus inside the dialog.
    const f = focusables();
    if (!f.length) return;
    const i = f.indexOf(/** @type {HTMLButtonElement} */ (document.activeElement));
    if (e.shiftKey && i <= 0) { e.preventDefault(); f[f.length - 1].focus(); }
    else if (!e.shiftKey && i === f.length - 1) { e.preventDefault(); f[0].focus(); }
  }
});
window.addEventListener('focus', () => {
  if (!$('dialog').contains(document.activeElement) || document.activeElement === document.body) {
    (focusables()[0] ?? $('dialog')).focus();
  }
});
port.postMessage({ type: OVERLAY.HELLO, token });
