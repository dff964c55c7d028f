// A local relying party for the browser tests (and for trying the extension by hand):
// @simplewebauthn/server makes the options and VERIFIES every response; the page uses
// @simplewebauthn/browser, served as-is from node_modules (no bundler). Listens on 127.0.0.1
// only; the page is opened as http://localhost:<port> (a secure context), or, given a TLS key
// and certificate, as https://<name>:<port> for each of `names` (test host names a browser
// resolves to 127.0.0.1 by its own rules). In-memory state. `/.well-known/webauthn` (WebAuthn
// related origins) answers what `setWellKnown` last set, else 404.
//
//   node rp/server.mjs [--port N]     prints "rp listening on http://localhost:N"
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { readFile } from 'node:fs/promises';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';

const here = dirname(fileURLToPath(import.meta.url));
const LIB = join(here, '..', 'node_modules', '@simplewebauthn', 'browser', 'esm');
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css' };

/** @param {{port?: number, tls?: {key: string, cert: string}, names?: string[]}} [opts] */
export function startRp({ port = 0, tls, names = ['localhost', '127.0.0.1'] } = {}) {
  const users = new Map(); // name -> {id, credentials: [{id, publicKey, counter, transports}]}
  const challenges = new Map(); // challenge -> {kind, rpID, user}
  let origins = [];
  /** @type {{status: number, type?: string, body?: string, location?: string} | null} */
  let wellKnown = null;

  async function api(path, body) {
    const rpID = typeof body.rpId === 'string' && body.rpId ? body.rpId : names[0];
    if (path === '/api/register/options') {
      const name = String(body.username || 'alice');
      let user = users.get(name);
      if (!user) users.set(name, (user = { id: undefined, credentials: [] }));
      const options = await generateRegistrationOptions({
        rpName: 'hybrid-bridge test RP',
        rpID,
        userName: name,
        userDisplayName: name,
        userID: user.id,
        attestationType: 'none',
        excludeCredentials: body.exclude ? user.credentials.map((c) => ({ id: c.id, transports: c.transports })) : [],
        authenticatorSelection: { residentKey: 'required', userVerification: 'preferred' },
        timeout: body.timeout,
      });
      user.id ??= Buffer.from(options.user.id, 'base64url');
      challenges.set(options.challenge, { kind: 'create', rpID, name });
      return options;
    }
    if (path === '/api/register/verify') {
      const clientData = JSON.parse(Buffer.from(body.response.response.clientDataJSON, 'base64url'));
      const pending = challenges.get(clientData.challenge);
      if (!pending || pending.kind !== 'create') throw new Error('unknown challenge');
      challenges.delete(clientData.challenge);
      const v = await verifyRegistrationResponse({
        response: body.response,
        expectedChallenge: clientData.challenge,
        expectedOrigin: origins,
        expectedRPID: pending.rpID,
        requireUserVerification: false,
      });
      if (!v.verified) throw new Error('registration not verified');
      const c = v.registrationInfo.credential;
      users.get(pending.name).credentials.push({ id: c.id, publicKey: c.publicKey, counter: c.counter, transports: c.transports });
      return { verified: true, credentialId: c.id, user: pending.name };
    }
    if (path === '/api/auth/options') {
      const user = body.username ? users.get(String(body.username)) : null;
      if (body.username && !user) throw new Error(`no user ${body.username}`);
      const options = await generateAuthenticationOptions({
        rpID,
        userVerification: 'preferred',
        allowCredentials: user ? user.credentials.map((c) => ({ id: c.id, transports: c.transports })) : [],
        timeout: body.timeout,
      });
      challenges.set(options.challenge, { kind: 'get', rpID });
      return options;
    }
    if (path === '/api/auth/verify') {
      const clientData = JSON.parse(Buffer.from(body.response.response.clientDataJSON, 'base64url'));
      const pending = challenges.get(clientData.challenge);
      if (!pending || pending.kind !== 'get') throw new Error('unknown challenge');
      challenges.delete(clientData.challenge);
      let found = null;
      for (const [name, u] of users) {
        const c = u.credentials.find((x) => x.id === body.response.id);
        if (c) found = { name, c };
      }
      if (!found) throw new Error('unknown credential');
      const v = await verifyAuthenticationResponse({
        response: body.response,
        expectedChallenge: clientData.challenge,
        expectedOrigin: origins,
        // A cross-origin frame's response names the top-level page; it must be ours.
        expectedTopOrigin: origins,
        expectedRPID: pending.rpID,
        credential: { id: found.c.id, publicKey: found.c.publicKey, counter: found.c.counter, transports: found.c.transports },
        requireUserVerification: false,
      });
      if (!v.verified) throw new Error('authentication not verified');
      found.c.counter = v.authenticationInfo.newCounter;
      const handle = body.response.response.userHandle;
      return { verified: true, user: found.name, userHandle: handle ?? null, topOrigin: clientData.crossOrigin ? clientData.topOrigin : null };
    }
    return null;
  }

  const handler = async (req, res) => {
    const url = new URL(req.url, 'http://localhost');
    try {
      if (req.method === 'POST' && url.pathname.startsWith('/api/')) {
        let raw = '';
        for await (const chunk of req) {
          raw += chunk;
          if (raw.length > 1 << 20) throw new Error('body too large');
        }
        const out = await api(url.pathname, JSON.parse(raw || '{}'));
        if (!out) { res.writeHead(404).end(); return; }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out));
        return;
      }
      if (url.pathname === '/.well-known/webauthn') {
        const w = wellKnown ?? { status: 404, type: 'application/json', body: '{}' };
        const headers = {};
        if (w.type) headers['content-type'] = w.type;
        if (w.location) headers.location = w.location;
        res.writeHead(w.status, headers).end(w.body ?? '');
        return;
      }
      let file;
      if (url.pathname.startsWith('/lib/')) file = normalize(join(LIB, url.pathname.slice(5)));
      else file = normalize(join(here, 'public', url.pathname === '/' ? 'index.html' : url.pathname));
      if (!file.startsWith(LIB) && !file.startsWith(join(here, 'public'))) { res.writeHead(403).end(); return; }
      const body = await readFile(file);
      const headers = { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' };
      // A top-level sandboxed document (opaque origin), unless it is framed by a page that
      // sandboxes it itself.
      if (url.pathname === '/sandboxed.html' && url.searchParams.has('csp')) headers['content-security-policy'] = 'sandbox allow-scripts';
      // The page's own Permissions-Policy header, as a site would send it.
      if (url.searchParams.has('permissions-policy')) headers['permissions-policy'] = url.searchParams.get('permissions-policy');
      res.writeHead(200, headers).end(body);
    } catch (e) {
      const status = e.code === 'ENOENT' ? 404 : 400;
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: e.message }));
    }
  };
  const server = tls ? createTlsServer({ key: tls.key, cert: tls.cert }, handler) : createServer(handler);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const p = server.address().port;
      const scheme = tls ? 'https' : 'http';
      origins = names.map((n) => `${scheme}://${n}:${p}`);
      resolve({
        port: p, url: origins[0], users, close: () => new Promise((r) => server.close(r)),
        /** What `/.well-known/webauthn` answers from now on (null: 404). */
        setWellKnown: (w) => { wellKnown = w; },
      });
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--port');
  const rp = await startRp({ port: i > 0 ? Number(process.argv[i + 1]) : 8765 });
  console.log(`rp listening on ${rp.url}`);
}
