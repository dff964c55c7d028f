// @ts-check
// hybrid-bridge: every message kind the extension's parts exchange, named once. PROTOCOL.md
// ("Messages inside the extension", "Extension → host", "Host → extension") documents each
// one. The background and the overlay import this module; the two content scripts, which
// browsers load as classic scripts, get the constants they import written into them by
// tools/build.mjs.

/** The DOM events between the page script (page.js, MAIN world) and the content script. */
export const DOM_EVENT = Object.freeze({
  /** page.js → content.js; `detail` is a JSON string of a {@link PAGE} message. */
  TO_EXT: 'hybrid-bridge:to-ext',
  /** content.js → page.js; `detail` is a JSON string of a {@link PAGE} message. */
  TO_PAGE: 'hybrid-bridge:to-page',
});

/** The longest {@link DOM_EVENT}.TO_EXT message the content script reads, in UTF-16 code
 * units (`detail.length`); a longer one is refused with `NotAllowedError` before it is
 * parsed or reaches the background. 256 Ki units are at most 768 KiB of UTF-8, so a request
 * that passes, with the origin and the rest of the envelope, still fits the native host's
 * 1 MiB message limit (PROTOCOL.md "Transport"), which a longer one could not; real options
 * take a few KiB (even 100 excluded credentials with 1 KiB IDs stay under 150 KiB). */
export const MAX_REQUEST_CHARS = 256 * 1024;

/** Messages between page.js and content.js (`type`, each with the request's `id`). */
export const PAGE = Object.freeze({
  /** page → content: start a ceremony (`kind`, `options` as W3C JSON). */
  BEGIN: 'begin',
  /** page → content: the page's AbortSignal fired. */
  ABORT: 'abort',
  /** content → page: the credential (W3C response JSON). */
  RESULT: 'result',
  /** content → page: a DOMException's `name` and `message`. */
  ERROR: 'error',
  /** content → page: hand the request to the browser's own implementation. */
  FALLTHROUGH: 'fallthrough',
  /** page → content: a valid `signalUnknownCredential` call (`rpId`, `credentialId`); no
   * answer comes back. */
  UNKNOWN_CREDENTIAL: 'unknown-credential',
});

/** The names of the two runtime ports into the background. */
export const PORT = Object.freeze({
  /** content.js ↔ background, one port per ceremony. */
  CEREMONY: 'ceremony',
  /** overlay.js ↔ background, one port per overlay. */
  OVERLAY: 'overlay',
});

/** Messages on the `ceremony` port (`type`). */
export const CEREMONY = Object.freeze({
  /** content → background: a {@link PAGE}.BEGIN with what only the frame knows. */
  BEGIN: 'begin',
  /** content → background: the page aborted. */
  ABORT: 'abort',
  /** content → background: the person pressed Escape outside the overlay. */
  CANCEL: 'cancel',
  /** background → content: show the overlay with this `token`. */
  OVERLAY: 'overlay',
  /** background → content: remove the overlay. */
  CLOSE_OVERLAY: 'close-overlay',
  /** background → content: post `nonce` to the parent frame (Firefox frame policy). */
  ANNOUNCE: 'announce',
  /** background → content: the credential; ends the ceremony. */
  RESULT: 'result',
  /** background → content: a DOMException (`name`, `message`, `keepOverlay`); ends it. */
  ERROR: 'error',
  /** background → content: the browser's own implementation takes over; ends it. */
  FALLTHROUGH: 'fallthrough',
});

/** One-off runtime messages (`type`), outside the ports. */
export const RUNTIME = Object.freeze({
  /** a parent frame's content script → background: the `allow` attribute of a frame's element. */
  FRAME_POLICY: 'hybrid-bridge:frame-policy',
  /** background → a frame's content script (`frameId`): post `nonce` to your parent, so its
   * content script reports the iframe element that holds you (a frame walk up in Firefox). */
  ANNOUNCE: 'hybrid-bridge:announce',
  /** background → the requesting frame's content script: the overlay asked to close. */
  CLOSE_OVERLAY: 'hybrid-bridge:close-overlay',
  /** content script → background: the page signalled a credential unknown (`rpId`,
   * `credentialId`); the origin is the browser's. */
  UNKNOWN_CREDENTIAL: 'hybrid-bridge:unknown-credential',
});

/** Messages on the `overlay` port (`type`). */
export const OVERLAY = Object.freeze({
  /** overlay → background: the token from the overlay's URL. */
  HELLO: 'hello',
  /** background → overlay: what to show (`kind`, `rpId`, `origin`, `userName`, `phones`,
   * `first`); each phone is `id`, `name` and `reportedUnknown` (this RP ID reported one of its
   * passkeys unknown). */
  INIT: 'init',
  /** overlay → background: the person's choice (`choice`: a {@link CHOICE}, `phone`). */
  CHOOSE: 'choose',
  /** overlay → background: Cancel or Escape while the ceremony runs. */
  CANCEL: 'cancel',
  /** overlay → background: close the overlay that shows an error. */
  CLOSE: 'close',
  /** background → overlay: the linked phones (`phones`). */
  PHONES: 'phones',
  /** background → overlay: the native host is missing or stopped (`message`). */
  HOST_PROBLEM: 'host-problem',
  /** background → overlay: the host started (`phone`: the linked phone's name or null). */
  STARTED: 'started',
  /** background → overlay: a progress event from the host (`event`, `svg`, `name`). */
  EVENT: 'event',
  /** background → overlay: the ceremony failed (`message` for the person). */
  ERROR: 'error',
});

/** What the person chose in the overlay. */
export const CHOICE = Object.freeze({
  QR: 'qr',
  PHONE: 'phone',
  LOCAL: 'local',
});

/** Requests the background sends the native host (`type`; PROTOCOL.md "Extension → host"). */
export const TO_HOST = Object.freeze({
  CREATE: 'create',
  GET: 'get',
  CANCEL: 'cancel',
  PHONES: 'phones',
  UNKNOWN_CREDENTIAL: 'unknown-credential',
});

/** Messages from the native host (`type`; PROTOCOL.md "Host → extension"). */
export const FROM_HOST = Object.freeze({
  EVENT: 'event',
  PHONES: 'phones',
  RESULT: 'result',
  ERROR: 'error',
  UNKNOWN_CREDENTIAL: 'unknown-credential',
});

/** The host's progress events (`event` of a {@link FROM_HOST}.EVENT). */
export const HOST_EVENT = Object.freeze({
  QR: 'qr',
  CONTACTING: 'contacting',
  ADVERT: 'advert',
  CONNECTING: 'connecting',
  CONNECTED: 'connected',
  WAITING: 'waiting',
  LINKED: 'linked',
  RELAY_BUSY: 'relay-busy',
});

/** The ceremony kinds (`kind` of a begin, `type` of the host request). */
export const KIND = Object.freeze({
  CREATE: 'create',
  GET: 'get',
});
