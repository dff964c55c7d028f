// Unit tests of the extension's pure helpers (extension/lib.js) and of the manifests build.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import { allowAttributeAllows, busyText, checkRpId, clientCapabilities, errorText, firstChoice, MAX_WELL_KNOWN_BYTES, originOf, prfProblem, progressFields, relatedCandidate, relatedOrigins, secureOrigin, signalOptions } from '../extension/lib.js';
import { build, CHROMIUM_ID, CHROMIUM_KEY, classicScript, FIREFOX_ID } from '../tools/build.mjs';

test('the origin comes from the sender: sender.origin, else the origin of sender.url; opaque is refused', () => {
  assert.equal(originOf({ origin: 'https://a.example', url: 'https://evil.example/x' }), 'https://a.example');
  assert.equal(originOf({ url: 'https://a.example:8443/path?q#f' }), 'https://a.example:8443');
  assert.equal(originOf({ origin: 'null', url: 'about:blank' }), null);
  assert.equal(originOf({ url: 'data:text/html,hi' }), null);
  assert.equal(originOf({}), null);
});

test('secure contexts: https anywhere, http only on loopback', () => {
  for (const o of ['https://a.example', 'http://localhost:8080', 'http://app.localhost', 'http://127.0.0.1:1', 'http://[::1]:3']) {
    assert.equal(secureOrigin(o), true, o);
  }
  for (const o of ['http://a.example', 'http://10.0.0.1', 'ftp://a.example', 'file:///x', 'nonsense']) {
    assert.equal(secureOrigin(o), false, o);
  }
});

test('RP ID: the host or a parent domain of it, nothing else', () => {
  assert.equal(checkRpId('example.com', 'https://example.com'), null);
  assert.equal(checkRpId('example.com', 'https://login.example.com:8443'), null);
  assert.equal(checkRpId('localhost', 'http://localhost:9000'), null);
  assert.match(checkRpId('example.com', 'http://localhost:9000'), /not a registrable domain suffix/);
  assert.match(checkRpId('ample.com', 'https://example.com'), /not a registrable/);
  assert.match(checkRpId('com', 'https://example.com'), /not a registrable/);
  assert.match(checkRpId('login.example.com', 'https://example.com'), /not a registrable/);
  assert.match(checkRpId('', 'https://example.com'), /empty/);
  assert.match(checkRpId('127.0.0.1', 'http://127.0.0.1:80'), /not a valid domain/);
  assert.equal(checkRpId('Example.COM', 'https://example.com'), null);
});

test('errors read as something a person can act on', () => {
  assert.match(errorText({ code: 'bluetooth', message: 'x' }), /Bluetooth is off.*turn it on/);
  assert.match(errorText({ code: 'no_host' }), /hybrid-bridge browser install/);
  assert.equal(errorText({ code: 'something_new', message: 'the phone is on fire' }), 'The phone is on fire.');
  assert.equal(errorText({}), 'Something went wrong.');
});

test('progress events: each event\'s own fields reach the overlay, typed, and nothing else', () => {
  assert.deepEqual(progressFields({ type: 'event', id: 'r1', event: 'relay-busy', retryInMs: 1200, name: 'x' }),
    { event: 'relay-busy', retryInMs: 1200 });
  assert.deepEqual(progressFields({ event: 'relay-busy', retryInMs: '1200' }), { event: 'relay-busy' });
  assert.deepEqual(progressFields({ event: 'relay-busy', retryInMs: -1 }), { event: 'relay-busy' });
  assert.deepEqual(progressFields({ event: 'connected', channel: 'ble', svg: '<svg/>' }), { event: 'connected', channel: 'ble' });
  assert.deepEqual(progressFields({ event: 'linked', name: 'Pixel 9' }), { event: 'linked', name: 'Pixel 9' });
  assert.deepEqual(progressFields({ event: 'qr', svg: '<svg/>', name: 'x' }), { event: 'qr', svg: '<svg/>' });
  assert.deepEqual(progressFields({ event: 'qr', svg: 7 }), { event: 'qr', svg: undefined });
  assert.deepEqual(progressFields(null), { event: 'undefined' });
});

test('a busy relay\'s wait is shown in whole seconds, rounded up', () => {
  assert.equal(busyText(1200), 'The relay is busy; trying again in 2 s…');
  assert.equal(busyText(4000), 'The relay is busy; trying again in 4 s…');
  assert.equal(busyText(125), 'The relay is busy; trying again in 1 s…');
  assert.equal(busyText(undefined), 'The relay is busy; trying again in 1 s…');
  assert.equal(busyText(Number.NaN), 'The relay is busy; trying again in 1 s…');
});

test('client capabilities: the extension adds hybridTransport, credProps, prf, relatedOrigins and signalUnknownCredential', () => {
  const phone = { 'extension:credProps': true, 'extension:prf': true, hybridTransport: true, relatedOrigins: true, signalUnknownCredential: true };
  // A browser without getClientCapabilities (or whose answer failed): only what the phone path provides.
  assert.deepEqual(clientCapabilities(undefined), phone);
  assert.deepEqual(clientCapabilities(null), phone);
  // Firefox on Linux: no hybrid, no signals; keys the phone path does not provide keep the browser's answer.
  const firefox = {
    conditionalCreate: false, conditionalGet: true, hybridTransport: false, passkeyPlatformAuthenticator: false,
    userVerifyingPlatformAuthenticator: false, 'extension:prf': false, 'extension:largeBlob': false,
    signalAllAcceptedCredentials: false, signalCurrentUserDetails: false, signalUnknownCredential: false,
  };
  const merged = clientCapabilities(firefox);
  assert.deepEqual(merged, { ...firefox, ...phone });
  assert.equal(merged['extension:largeBlob'], false, 'largeBlob does not reach the phone: never raised');
  assert.equal(merged.passkeyPlatformAuthenticator, false, 'the phone is no platform authenticator');
  assert.equal(merged.signalUnknownCredential, true, 'the extension acts on it: the linked phone that holds the passkey is noted');
  assert.equal(merged.signalAllAcceptedCredentials, false, 'the extension only checks it: never raised');
  assert.equal(merged.signalCurrentUserDetails, false, 'the extension only checks it: never raised');
  assert.deepEqual(firefox.hybridTransport, false, 'the browser\'s record is left as it was');
  assert.equal(merged.relatedOrigins, true, 'the extension fetches and checks the well-known in every browser');
  // What the browser says true stays true, including keys unknown here.
  const chromium = { hybridTransport: true, 'extension:largeBlob': true, relatedOrigins: true, somethingNew: true,
    signalAllAcceptedCredentials: true, signalCurrentUserDetails: true, signalUnknownCredential: true };
  assert.deepEqual(clientCapabilities(chromium), { ...chromium, ...phone });
  assert.equal(clientCapabilities(chromium).relatedOrigins, true);
  assert.equal(clientCapabilities(chromium).signalCurrentUserDetails, true, 'Chromium\'s own method gets the signal');
  // A plain record with its keys in ascending order, booleans only.
  const r = clientCapabilities({ zeta: true, alpha: false, odd: 'yes', hybridTransport: 0 });
  assert.equal(Object.getPrototypeOf(r), Object.prototype);
  assert.deepEqual(Object.keys(r), ['alpha', 'extension:credProps', 'extension:prf', 'hybridTransport', 'relatedOrigins', 'signalUnknownCredential', 'zeta']);
  // The MAIN-world script gets the function's own text (tools/build.mjs): it needs nothing
  // from the module around it.
  const alone = vm.runInNewContext(`(${clientCapabilities})`);
  assert.deepEqual(JSON.parse(JSON.stringify(alone(firefox))), { ...firefox, ...phone });
});

test('hints: the first one the overlay knows decides which choice comes first', () => {
  assert.equal(firstChoice(undefined), 'phone');
  assert.equal(firstChoice([]), 'phone');
  assert.equal(firstChoice(['hybrid']), 'phone');
  assert.equal(firstChoice(['hybrid', 'security-key']), 'phone');
  assert.equal(firstChoice(['security-key']), 'local');
  assert.equal(firstChoice(['client-device', 'hybrid']), 'local');
  assert.equal(firstChoice(['something-new', 'security-key', 'hybrid']), 'local', 'unknown hints are skipped');
  assert.equal(firstChoice(['something-new']), 'phone');
  assert.equal(firstChoice('security-key'), 'phone', 'not a list: ignored');
});

test('prf: evalByCredential is checked as WebAuthn L3 §10.1.4 says, before any UI', () => {
  const allow = [{ type: 'public-key', id: 'AAECAw' }, { type: 'public-key', id: 'BAUGBw' }];
  const get = (byCred, allowCredentials = allow) => prfProblem('get', { challenge: 'AA', allowCredentials, extensions: { prf: { eval: { first: 'AA' }, evalByCredential: byCred } } });
  const name = (p) => p?.name ?? null;
  assert.equal(prfProblem('get', { challenge: 'AA' }), null);
  assert.equal(prfProblem('get', { challenge: 'AA', extensions: { prf: { eval: { first: 'AA' } } } }), null);
  assert.equal(get({ AAECAw: { first: 'AA' }, BAUGBw: { first: 'AQ' } }), null);
  assert.equal(get({}, null), null, 'an empty evalByCredential needs no allow list');
  assert.equal(name(get({ AAECAw: { first: 'AA' } }, null)), 'NotSupportedError');
  assert.equal(name(get({ AAECAw: { first: 'AA' } }, [])), 'NotSupportedError');
  assert.equal(name(get({ CAkKCw: { first: 'AA' } })), 'SyntaxError', 'no such allowed credential');
  assert.equal(name(get({ 'AAECAw==': { first: 'AA' } })), 'SyntaxError', 'padded');
  assert.equal(name(get({ 'AA+/': { first: 'AA' } })), 'SyntaxError', 'base64, not base64url');
  assert.equal(name(get({ AAECAx: { first: 'AA' } })), 'SyntaxError', 'trailing bits set');
  assert.equal(name(get({ '': { first: 'AA' } })), 'SyntaxError', 'empty');
  assert.equal(name(get({ AAECAw: { first: 'AA' }, A: { first: 'AA' } })), 'SyntaxError', 'every key is checked');
  assert.equal(name(prfProblem('create', { extensions: { prf: { evalByCredential: { AAECAw: { first: 'AA' } } } } })), 'NotSupportedError');
  assert.equal(prfProblem('create', { extensions: { prf: { eval: { first: 'AA' } } } }), null);
  assert.match(get({ CAkKCw: { first: 'AA' } }).message, /key "CAkKCw" is not the base64url ID of a credential in allowCredentials/);
});

test('the two manifests: one source, the pinned Chromium ID, the Firefox ID', () => {
  const dirs = build();
  const chromium = JSON.parse(readFileSync(join(dirs.chromium, 'manifest.json'), 'utf8'));
  const firefox = JSON.parse(readFileSync(join(dirs.firefox, 'manifest.json'), 'utf8'));
  const digest = createHash('sha256').update(Buffer.from(chromium.key, 'base64')).digest('hex').slice(0, 32);
  const id = [...digest].map((c) => String.fromCharCode(97 + parseInt(c, 16))).join('');
  assert.equal(chromium.key, CHROMIUM_KEY);
  assert.equal(id, CHROMIUM_ID);
  assert.equal(chromium.background.service_worker, 'background.js');
  assert.equal(chromium.browser_specific_settings, undefined);
  assert.equal(firefox.browser_specific_settings.gecko.id, FIREFOX_ID);
  assert.deepEqual(firefox.background.scripts, ['background.js']);
  assert.equal(firefox.key, undefined);
  // The host's allow-list names this same ID.
  const host = readFileSync(join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'bridge', 'src', 'native_host', 'mod.rs'), 'utf8');
  assert.ok(host.includes(`"${CHROMIUM_ID}"`), 'CHROMIUM_EXTENSION_ID in the host matches');
  assert.ok(host.includes(`"${FIREFOX_ID}"`), 'FIREFOX_EXTENSION_ID in the host matches');
  for (const m of [chromium, firefox]) {
    assert.deepEqual(m.permissions, ['nativeMessaging']);
    assert.equal(m.content_scripts.find((c) => c.world === 'MAIN').js[0], 'page.js');
  }
});

test('an iframe allow attribute delegates WebAuthn as Permissions Policy says', () => {
  const get = 'publickey-credentials-get';
  const at = { childOrigin: 'https://idp.example', srcOrigin: 'https://idp.example', parentOrigin: 'https://shop.example' };
  const yes = ['publickey-credentials-get', "publickey-credentials-get 'src'", 'publickey-credentials-get *',
    'publickey-credentials-get https://idp.example', 'camera; publickey-credentials-get',
    ' publickey-credentials-create ;  publickey-credentials-get  https://other.example  https://idp.example '];
  for (const allow of yes) assert.equal(allowAttributeAllows(allow, get, at), true, allow);
  const no = [null, '', 'camera', 'publickey-credentials-create', "publickey-credentials-get 'none'",
    "publickey-credentials-get 'self'", 'publickey-credentials-get https://other.example', 'publickey-credentials-get nonsense'];
  for (const allow of no) assert.equal(allowAttributeAllows(allow, get, at), false, String(allow));
  // The frame navigated away from its src: 'src' no longer names it.
  assert.equal(allowAttributeAllows(get, get, { ...at, srcOrigin: 'https://idp.example.net' }), false);
  // A same-origin child keeps the default 'self'.
  assert.equal(allowAttributeAllows('', get, { ...at, childOrigin: 'https://shop.example' }), true);
});

test('packing: the .xpi and .crx are byte-for-byte the same twice, and the CRX3 header proves the ID', async () => {
  const { crx3, chromiumId, publicKeyDer, zipDir } = await import('../tools/pack.mjs');
  const { generateKeyPairSync, verify } = await import('node:crypto');
  const { mkdtempSync, writeFileSync: write, mkdirSync, utimesSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'pack-'));
  mkdirSync(join(dir, 'sub'));
  write(join(dir, 'b.txt'), 'bee');
  write(join(dir, 'sub', 'a.txt'), 'a'.repeat(1000));
  write(join(dir, 'a.txt'), 'ay');
  const first = zipDir(dir, 1700000000);
  // Other mtimes on disk change nothing: every entry carries the given time.
  utimesSync(join(dir, 'a.txt'), 1, 1);
  assert.deepEqual(zipDir(dir, 1700000000), first);
  assert.notDeepEqual(zipDir(dir, 1700000002), first);
  // Entries in sorted order, stored as deflate (8), with the UTF-8 flag.
  const names = [];
  for (let off = 0; first.readUInt32LE(off) === 0x04034b50;) {
    const n = first.readUInt16LE(off + 26);
    names.push(first.subarray(off + 30, off + 30 + n).toString());
    assert.equal(first.readUInt16LE(off + 8), 8);
    off += 30 + n + first.readUInt32LE(off + 18);
  }
  assert.deepEqual(names, ['a.txt', 'b.txt', 'sub/a.txt']);

  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  const crx = crx3(first, pem);
  assert.deepEqual(crx3(first, pem), crx, 'PKCS#1 v1.5 signatures are deterministic');
  assert.equal(crx.subarray(0, 4).toString('latin1'), 'Cr24');
  assert.equal(crx.readUInt32LE(4), 3);
  const headerLen = crx.readUInt32LE(8);
  assert.deepEqual(crx.subarray(12 + headerLen), first, 'the zip follows the header unchanged');
  // The header: field 2 (the RSA proof: public key, signature) and field 10000 (signed data
  // holding the 16-byte crx_id); the signature covers the signed data and the zip.
  const header = crx.subarray(12, 12 + headerLen);
  const fields = readProto(header);
  const proof = readProto(fields.get(2));
  const spki = proof.get(1);
  assert.deepEqual(spki, publicKeyDer(pem));
  const signed = fields.get(10000);
  const crxId = readProto(signed).get(1);
  assert.equal([...crxId.toString('hex')].map((c) => String.fromCharCode(97 + parseInt(c, 16))).join(''), chromiumId(spki));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(signed.length);
  assert.ok(verify('sha256', Buffer.concat([Buffer.from('CRX3 SignedData\0', 'latin1'), len, signed, first]), privateKey, proof.get(2)));
  // The published ID is the pinned key's.
  assert.equal(chromiumId(Buffer.from(CHROMIUM_KEY, 'base64')), CHROMIUM_ID);
});

/** The length-delimited fields of a protobuf message, by number (the last of each). */
function readProto(buf) {
  const out = new Map();
  const varint = (at) => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const b = buf[at.i++];
      v += (b & 0x7f) * mul;
      if (b < 0x80) return v;
      mul *= 128;
    }
  };
  const at = { i: 0 };
  while (at.i < buf.length) {
    const tag = varint(at);
    assert.equal(tag & 7, 2, 'only length-delimited fields');
    const n = varint(at);
    out.set(Math.floor(tag / 8), buf.subarray(at.i, at.i + n));
    at.i += n;
  }
  return out;
}

test('every message constant is in PROTOCOL.md, with its value', async () => {
  const messages = await import('../extension/messages.js');
  const doc = readFileSync(join(fileURLToPath(new URL('.', import.meta.url)), '..', 'PROTOCOL.md'), 'utf8');
  const table = doc.slice(doc.indexOf('## Messages inside the extension'), doc.indexOf('## Extension identity'));
  let count = 0;
  for (const [group, value] of Object.entries(messages)) {
    if (typeof value !== 'object') continue;
    for (const [name, kind] of Object.entries(value)) {
      count++;
      assert.ok(table.includes(`${group}.${name}`), `${group}.${name} is not in PROTOCOL.md`);
      assert.ok(table.includes(`\`${kind}\``), `${group}.${name} = ${kind}: the value is not in PROTOCOL.md`);
    }
  }
  assert.ok(count >= 25, `${count} message constants`);
});

test('content scripts: the import of messages.js becomes constants inside a block; other imports are refused', () => {
  const out = classicScript("// @ts-check\n// doc\nimport { PAGE, KIND } from './messages.js';\n\n(() => { use(PAGE.BEGIN, KIND.GET); })();\n");
  assert.ok(out.startsWith('{\n  const PAGE = Object.freeze({"BEGIN":"begin"'), out);
  assert.ok(out.includes('  const KIND = Object.freeze({"CREATE":"create","GET":"get"});\n'), out);
  assert.ok(!out.includes('import') && !out.includes('@ts-check') && out.trimEnd().endsWith('}'), out);
  assert.throws(() => classicScript("import { NOPE } from './messages.js';\n"), /does not export/);
  assert.throws(() => classicScript("import x from './lib.js';\n"), /may only import/);
  assert.throws(() => classicScript("import { x } from './other.js';\n"), /may only import/);
  // Functions from lib.js are written in as their own text.
  const withLib = classicScript("import { clientCapabilities } from './lib.js';\n(() => clientCapabilities(null))();\n");
  assert.ok(withLib.startsWith('{\n  const clientCapabilities = function clientCapabilities('), withLib);
  assert.ok(!withLib.includes('import'), withLib);
  assert.deepEqual(Object.keys(vm.runInNewContext(withLib)), ['extension:credProps', 'extension:prf', 'hybridTransport', 'relatedOrigins', 'signalUnknownCredential']);
  assert.throws(() => classicScript("import { NOPE } from './lib.js';\n"), /lib.js does not export NOPE as a function/);
});

test('related origins: which RP IDs outside the page\'s domain are worth a fetch of their well-known', () => {
  const shop = 'https://shop.example.net:8443';
  assert.deepEqual(['example.test', 'Login.Example.co.uk', 'xn--bcher-kva.example'].map((r) => relatedCandidate(r, shop)), [true, true, true]);
  assert.deepEqual(['example', '', '.example.test', 'example.test.', '127.0.0.1', '[::1]', 'a b.test', 'a/b.test', 'a:1.test', 7, null]
    .map((r) => relatedCandidate(r, shop)), Array(11).fill(false));
  // A page on an IP address uses no RP ID at all.
  assert.equal(relatedCandidate('example.test', 'https://127.0.0.1:8443'), false);
});

test('related origins: the well-known is a 200 application/json object whose origins, strings, list the page (WebAuthn L3 §5.11)', () => {
  const shop = 'https://shop.example.net:8443';
  const doc = (body, more = {}) => ({ status: 200, contentType: 'application/json', body: typeof body === 'string' ? body : JSON.stringify(body), ...more });
  // The list up to the page's origin goes to the host, which counts its sites.
  assert.deepEqual(relatedOrigins(doc({ origins: ['https://example.test', `${shop}/`, 'https://later.example'] }), shop, 'example.test'),
    { origins: ['https://example.test', `${shop}/`] });
  // Entries that are no URL are skipped; a charset parameter is fine.
  assert.deepEqual(relatedOrigins(doc({ origins: ['not a url', shop] }, { contentType: 'Application/JSON; charset=utf-8' }), shop, 'example.test'),
    { origins: ['not a url', shop] });
  const refused = {
    'another port': doc({ origins: ['https://shop.example.net'] }),
    'another scheme': doc({ origins: ['http://shop.example.net:8443'] }),
    'empty list': doc({ origins: [] }),
    404: doc({ origins: [shop] }, { status: 404 }),
    redirected: doc({ origins: [shop] }, { redirected: true }),
    'text/html': doc({ origins: [shop] }, { contentType: 'text/html' }),
    'no type': doc({ origins: [shop] }, { contentType: null }),
    'not JSON': doc('{"origins": ['),
    'an array': doc([shop]),
    null: doc('null'),
    'origins a string': doc({ origins: shop }),
    'no origins': doc({ origin: [shop] }),
    'a number among the origins': doc({ origins: [7, shop] }),
    'too large': doc(`{"origins": ["${shop}"], "pad": "${'x'.repeat(MAX_WELL_KNOWN_BYTES)}"}`),
  };
  const seen = Object.fromEntries(Object.entries(refused).map(([k, d]) => {
    const r = relatedOrigins(d, shop, 'example.test');
    return [k, !r.origins && /^The relying party ID "example\.test" is not .* the current domain \(shop\.example\.net\), and https:\/\/example\.test\/\.well-known\/webauthn /.test(r.error ?? '')];
  }));
  assert.deepEqual(seen, Object.fromEntries(Object.keys(refused).map((k) => [k, true])));
});

test('signal options: WebIDL conversion, unpadded base64url IDs, then the RP ID (WebAuthn L3 §5.1.10)', () => {
  const page = 'https://login.example.com';
  const err = (r) => r.error && [r.error.name, r.error.message];
  // Valid calls give the dictionary as WebIDL converts it.
  assert.deepEqual(signalOptions('signalUnknownCredential', { rpId: 'example.com', credentialId: 'AAEC_-9z', extra: 1 }, page),
    { options: { credentialId: 'AAEC_-9z', rpId: 'example.com' } });
  assert.deepEqual(signalOptions('signalAllAcceptedCredentials', { rpId: 'login.example.com', userId: 'dXNlcg',
    allAcceptedCredentialIds: new Set(['AAAA', 'BBB']) }, page),
  { options: { allAcceptedCredentialIds: ['AAAA', 'BBB'], rpId: 'login.example.com', userId: 'dXNlcg' } });
  assert.deepEqual(signalOptions('signalCurrentUserDetails', { rpId: 'example.com', userId: '', name: 42, displayName: 'Alice' }, page),
    { options: { displayName: 'Alice', name: '42', rpId: 'example.com', userId: '' } });
  assert.deepEqual(signalOptions('signalAllAcceptedCredentials', { rpId: 'example.com', userId: 'AA', allAcceptedCredentialIds: [] }, page).options.allAcceptedCredentialIds, []);
  // TypeError: not a dictionary, a missing member, a Symbol, a sequence that is none.
  for (const [method, options] of [
    ['signalUnknownCredential', undefined],
    ['signalUnknownCredential', null],
    ['signalUnknownCredential', 'example.com'],
    ['signalUnknownCredential', { rpId: 'example.com' }],
    ['signalUnknownCredential', { credentialId: 'AAAA' }],
    ['signalUnknownCredential', { rpId: Symbol('x'), credentialId: 'AAAA' }],
    ['signalAllAcceptedCredentials', { rpId: 'example.com', userId: 'AA', allAcceptedCredentialIds: 'AAAA' }],
    ['signalAllAcceptedCredentials', { rpId: 'example.com', userId: 'AA', allAcceptedCredentialIds: null }],
    ['signalAllAcceptedCredentials', { rpId: 'example.com', allAcceptedCredentialIds: [] }],
    ['signalCurrentUserDetails', { rpId: 'example.com', userId: 'AA', name: 'a' }],
    ['signalSomethingElse', { rpId: 'example.com' }],
  ]) {
    assert.equal(err(signalOptions(method, options, page))?.[0], 'TypeError', `${method} ${String(options?.rpId ?? options)}`);
  }
  // TypeError: an ID that is not unpadded base64url, before the RP ID is looked at.
  for (const id of ['AAAA=', 'AA+A', 'AA/A', 'A', 'AAAAA', 'AA A', 'é']) {
    assert.deepEqual(err(signalOptions('signalUnknownCredential', { rpId: 'elsewhere.example', credentialId: id }, page)),
      ['TypeError', "Failed to execute 'signalUnknownCredential': credentialId is not a base64url string."], id);
  }
  assert.match(err(signalOptions('signalCurrentUserDetails', { rpId: 'example.com', userId: 'a=', name: 'a', displayName: 'A' }, page))[1], /userId is not a base64url/);
  assert.match(err(signalOptions('signalAllAcceptedCredentials', { rpId: 'example.com', userId: 'AA', allAcceptedCredentialIds: ['AAAA', 'A*'] }, page))[1],
    /allAcceptedCredentialIds\[1\] is not a base64url/);
  // SecurityError: the RP ID is not the page's host nor a parent domain of it.
  for (const [rpId, origin] of [['other.example', page], ['ample.com', 'https://example.com'], ['com', page], ['', page],
    ['deeper.login.example.com', page], ['127.0.0.1', 'http://127.0.0.1:8080'], ['example.com', 'null']]) {
    assert.equal(err(signalOptions('signalUnknownCredential', { rpId, credentialId: 'AAAA' }, origin))?.[0], 'SecurityError', `${rpId} on ${origin}`);
  }
  assert.equal(signalOptions('signalUnknownCredential', { rpId: 'LOCALHOST', credentialId: 'AAAA' }, 'http://localhost:8765').error, undefined);
  // A getter that throws is a TypeError too, not an exception out of the check.
  const throwing = { rpId: 'example.com', get credentialId() { throw new Error('boom'); } };
  assert.deepEqual(err(signalOptions('signalUnknownCredential', throwing, page)), ['TypeError', "Failed to execute 'signalUnknownCredential': boom"]);
});
