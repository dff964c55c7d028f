// hybrid-bridge overlay: the extension page the person sees over the site, in an iframe the
// page cannot read. It offers the QR code, each linked phone and the browser's own
// authenticator, then shows the QR code and each stage in words (announced through an
// aria-live region), and errors a person can act on. Escape or Cancel cancels.
const api = globalThis.browser ?? globalThis.chrome;
const $ = (id) => document.getElementById(id);
const token = location.hash.slice(1);
const port = api.runtime.connect({ name: 'overlay' });
let kind = 'get';
let rpId = '';
let finished = false;

const STAGES = {
  qr: () => 'Scan this QR code with your phone or tablet\'s camera.',
  advert: () => 'Your phone was found nearby. Connecting…',
  contacting: () => 'Asking your phone… Check it for a notification.',
  connecting: () => 'Connecting to your phone…',
  connected: (m) => m.channel === 'ble'
    ? 'Connected over Bluetooth, without the internet. Follow the steps on your phone.'
    : 'Connected. Follow the steps on your phone.',
  waiting: () => kind === 'create' ? 'Confirm on your phone to create the passkey.' : 'Confirm on your phone to sign in.',
  linked: (m) => `This computer will remember ${m.name || 'your phone'} for next time.`,
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
    port.postMessage({ type: 'close' });
    return;
  }
  port.postMessage({ type: 'cancel' });
}

function choose(msg, label) {
  $('choices').hidden = true;
  $('progress').hidden = false;
  setStage(label);
  $('cancel').focus();
  port.postMessage({ type: 'choose', choice: msg.type, phone: msg.phone });
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
    b.append(icon, `${kind === 'create' ? 'Create it on' : 'Sign in with'} ${p.name}`);
    b.addEventListener('click', () => choose({ type: 'phone', phone: p.id }, `Contacting ${p.name}…`));
    box.append(b);
  }
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
    case 'init': {
      kind = m.kind;
      rpId = m.rpId;
      $('title').textContent = kind === 'create' ? 'Create a passkey' : 'Sign in with a passkey';
      $('subtitle').textContent = kind === 'create'
        ? `for ${m.userName ? `${m.userName} on ` : ''}${rpId}` : `to ${rpId}`;
      renderPhones(m.phones);
      $('choices').hidden = false;
      if (m.hostProblem) showProblem(m.hostProblem);
      document.body.hidden = false; // drawn only once it can be used
      $('use-qr').focus();
      break;
    }
    case 'phones':
      renderPhones(m.phones);
      break;
    case 'host-problem':
      showProblem(m.message);
      if (!$('progress').hidden) {
        // The choice could not start: offer the choices again.
        $('progress').hidden = true;
        $('choices').hidden = false;
        $('use-local').focus();
      }
      break;
    case 'started':
      if (m.phone) setStage(`Contacting ${m.phone}… Check your phone for a notification.`);
      break;
    case 'event': {
      if (m.event === 'qr' && typeof m.svg === 'string') showQr(m.svg);
      else if (m.event !== 'qr') $('qr').hidden = true;
      const stage = STAGES[m.event];
      if (stage) setStage(stage(m));
      break;
    }
    case 'error':
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

$('use-qr').addEventListener('click', () => choose({ type: 'qr' }, 'Preparing a QR code…'));
$('use-local').addEventListener('click', () => choose({ type: 'local' }, 'Using this device…'));
$('cancel').addEventListener('click', cancel);
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape') {
    e.preventDefault();
    cancel();
  } else if (e.key === 'Tab') {
    // Keep focus inside the dialog.
    const f = focusables();
    if (!f.length) return;
    const i = f.indexOf(document.activeElement);
    if (e.shiftKey && i <= 0) { e.preventDefault(); f[f.length - 1].focus(); }
    else if (!e.shiftKey && i === f.length - 1) { e.preventDefault(); f[0].focus(); }
  }
});
window.addEventListener('focus', () => {
  if (!$('dialog').contains(document.activeElement) || document.activeElement === document.body) {
    (focusables()[0] ?? $('dialog')).focus();
  }
});
port.postMessage({ type: 'hello', token });
