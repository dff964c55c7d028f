// The relying parties written with py_webauthn, webauthn-rs and duo-labs/webauthn (Go) as a
// site serves them: over https as login.example.test with the parent domain example.test as RP
// ID, and signed in from a cross-origin frame of another site. Each library's server keeps
// listening on http://localhost (lib/rplibs.mjs's RP_LIBS) and is told its RP ID (--rp-id),
// the one origin it accepts (--origin https://login.example.test:PORT) and the top-level origin
// whose frames it accepts (--top-origin https://frames.example.net:PORT); in front of it, a small
// https reverse proxy here, with the run's certificate, makes that origin real. The proxy
// forwards every request to the library's server, except two pages of its own: the top page of
// another site holding the RP in an iframe, and the RP's page for that iframe, which runs a
// ceremony when the top page asks. The libraries read crossOrigin and topOrigin differently
// (browser/README.md, "Relying parties"); each server checks topOrigin itself and names both in
// every verdict. These run in lib/rpid.mjs's browser, which resolves the test host names
// and accepts the certificate.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:https';
import { join } from 'node:path';
import { RP_LIBS } from './rplibs.mjs';
import { OVERLAY_HOST, pickPhoneInFrame, scanOverlayQr } from './scenarios.mjs';
import { child, waitFor } from './stack.mjs';

const RP_ID = 'example.test';
const ALLOW = 'publickey-credentials-get *; publickey-credentials-create *';

// In a page: options from the RP (no rpId in the request: the server's --rp-id names it), the
// browser's own JSON parsing, the ceremony, the RP's verdict. Resolves to {options, verdict} or
// {options, error: the DOMException's name (ServerError: the RP's 4xx), message}.
const CEREMONY = `async (kind, body) => {
  const post = (path, b) => fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) })
    .then(async (r) => { const j = await r.json(); if (!r.ok) throw Object.assign(new Error(r.status + ' ' + j.error), { name: 'ServerError' }); return j; });
  const api = kind === 'create' ? '/api/register' : '/api/auth';
  let options;
  try {
    options = await post(api + '/options', body);
    const cred = kind === 'create'
      ? await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) })
      : await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
    return { options, verdict: await post(api + '/verify', { response: cred.toJSON() }) };
  } catch (e) {
    return { options, error: e.name, message: e.message };
  }
}`;

const html = (title, script) => `<!doctype html><html><head><meta charset=utf-8><title>${title}</title></head><body>${script}</body></html>`;

/** The RP's page inside the frame: runs a sign-in when its parent asks, and posts the outcome. */
const FRAMED = html('RP in a frame', `<script>
addEventListener('message', async (e) => {
  if (e.data?.run !== 'get') return;
  parent.postMessage({ started: true }, '*');
  parent.postMessage({ outcome: await (${CEREMONY})('get', e.data.body) }, '*');
});
</script>`);

/** Another site's top page holding `src` in an iframe with `allow`. */
const topPage = (src, allow) => html('a site framing the RP',
  `<iframe id="rp" src="${src.replace(/[&"<>]/g, (c) => `&#${c.charCodeAt(0)};`)}" allow="${allow}" width="400" height="200"></iframe>`);

/** An https reverse proxy on 127.0.0.1 in front of the library's server on the port set as
 * `upstream` once that server listens; the frame pages are its own. */
function startProxy(tls) {
  const proxy = { upstream: 0 };
  const server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const url = new URL(req.url, 'https://proxy');
    if (req.method === 'GET' && url.pathname === '/top.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(topPage(url.searchParams.get('src') ?? '', ALLOW));
      return;
    }
    if (req.method === 'GET' && url.pathname === '/framed.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(FRAMED);
      return;
    }
    const up = httpRequest({ host: '127.0.0.1', port: proxy.upstream, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', (e) => {
      if (res.headersSent) res.destroy();
      else res.writeHead(502, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `the RP is unreachable: ${e.message}` }));
    });
    req.on('error', () => up.destroy());
    req.pipe(up);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(Object.assign(proxy, {
      port: server.address().port,
      close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
    })));
  });
}

/** The scenarios against each library's server behind https, in lib/rpid.mjs's browser (`ctx`:
 * {d, stack, tls, hosts}). */
export function rpLibSiteScenarios(ctx) {
  describe(`relying parties written with py_webauthn, webauthn-rs and duo-labs/webauthn (Go) with RP ID ${RP_ID} on https, in frames`, () => {
    for (const lib of Object.keys(RP_LIBS)) {
      describe(lib, () => {
        const rp = {};
        const origin = (host) => `https://${host}:${rp.proxy.port}`;

        before(async () => {
          const [login, other, frames] = ctx.hosts;
          rp.hosts = { login, other, frames };
          // The proxy first: its port is in the origins the library's server is told.
          rp.proxy = await startProxy(ctx.tls);
          const [cmd, args] = RP_LIBS[lib]();
          rp.child = child(cmd, [...args, '--port', '0', '--rp-id', RP_ID, '--origin', origin(login), '--top-origin', origin(frames)],
            { log: join(ctx.stack.dir, `rp-site-${lib}.log`) });
          ctx.stack.children.push(rp.child);
          rp.proxy.upstream = Number(await waitFor(`the ${lib} relying party`, () => rp.child.output().match(/rp listening on http:\/\/localhost:(\d+)/)?.[1]
            ?? (rp.child.proc.exitCode !== null ? Promise.reject(new Error(rp.child.output())) : null)));
        });

        after(async () => {
          await rp.child?.kill();
          await rp.proxy?.close();
        });

        /** Runs a ceremony in the page at the top level; the person picks the QR code, phone-sim scans it. */
        async function atTopLevel(kind, label) {
          await ctx.d.evaluate(`(window.__site = (${CEREMONY})(${JSON.stringify(kind)}, { username: 'alice' }), true)`);
          const phone = await scanOverlayQr(ctx, `${ctx.d.name}-site-${lib}-${label}.png`);
          const out = await ctx.d.evaluate('window.__site');
          assert.equal(out.error, undefined, `${out.error}: ${out.message}\nphone-sim: ${phone.output()}`);
          assert.equal((await phone.exited).code, 0, phone.output());
          await waitFor('the overlay to close', async () => !(await ctx.d.evaluate(`!!${OVERLAY_HOST}`)), { timeout: 10000 });
          return out;
        }

        /** A sign-in in the RP's frame on `top`'s page, answered by the linked phone (picked in
         * the overlay in the frame); the frame's outcome and phone-sim. */
        async function inFrameOf(top) {
          const phone = ctx.stack.linked();
          await waitFor('phone-sim to hold its contact channel', () => /regist|listening|waiting/i.test(phone.output()), { timeout: 15000 });
          const src = `${origin(rp.hosts.login)}/framed.html`;
          await ctx.d.navigate(`${origin(top)}/top.html?${new URLSearchParams({ src })}`);
          await ctx.d.evaluate(`(window.__outcome = null, (() => {
            const f = document.getElementById('rp');
            const t = setInterval(() => f.contentWindow.postMessage({ run: 'get', body: { username: 'alice' } }, '*'), 200);
            addEventListener('message', (e) => {
              if (e.data?.started) clearInterval(t);
              if (e.data?.outcome) window.__outcome = e.data.outcome;
            });
          })(), true)`);
          await pickPhoneInFrame(ctx);
          const out = await waitFor('the frame\'s outcome', () => ctx.d.evaluate('window.__outcome'), { timeout: 40000 });
          assert.equal((await phone.exited).code, 0, phone.output());
          return { out, phone };
        }

        it(`${lib}: rp.id ${RP_ID} on https://login.${RP_ID}: registers and signs in, verified by the library for that RP ID and origin`, async () => {
          await ctx.d.navigate(`${origin(rp.hosts.login)}/`);
          assert.deepEqual(await ctx.d.evaluate('[location.origin, isSecureContext]'), [origin(rp.hosts.login), true]);
          const reg = await atTopLevel('create', 'register');
          assert.equal(reg.options.rp.id, RP_ID);
          assert.deepEqual({ verified: reg.verdict.verified, user: reg.verdict.user, uv: reg.verdict.userVerified, crossOrigin: reg.verdict.crossOrigin, topOrigin: reg.verdict.topOrigin },
            { verified: true, user: 'alice', uv: true, crossOrigin: false, topOrigin: null });
          const signin = await atTopLevel('get', 'signin');
          assert.equal(signin.options.rpId, RP_ID);
          assert.deepEqual(signin.options.allowCredentials.map((c) => c.id), [reg.verdict.credentialId]);
          assert.deepEqual(signin.verdict, { verified: true, user: 'alice', userHandle: signin.verdict.userHandle, userVerified: true,
            foundBy: 'credentialId', crossOrigin: false, topOrigin: null });
        });

        it(`${lib}: a sign-in in a cross-origin frame of frames.example.net, delegated by allow, verified with crossOrigin and the topOrigin the RP accepts`, async () => {
          const { out, phone } = await inFrameOf(rp.hosts.frames);
          assert.equal(out.error, undefined, `${out.error}: ${out.message}\nphone-sim: ${phone.output()}`);
          assert.equal(out.options.rpId, RP_ID);
          assert.deepEqual({ ...out.verdict, userHandle: undefined }, { verified: true, user: 'alice', userHandle: undefined, userVerified: true,
            foundBy: 'credentialId', crossOrigin: true, topOrigin: origin(rp.hosts.frames) });
        });

        it(`${lib}: the same frame on a top page the RP was not told to accept (login.example.co.uk): the RP answers 400 naming that top origin`, async () => {
          const { out, phone } = await inFrameOf(rp.hosts.other);
          // The phone signed (the browser and the extension let the delegated frame through);
          // the refusal is the RP's.
          assert.equal(out.error, 'ServerError', `${out.error}: ${out.message}\nphone-sim: ${phone.output()}`);
          assert.match(out.message, new RegExp(`^400 .*a frame of "${origin(rp.hosts.other).replace(/[.]/g, '\\.')}", a top-level page this RP does not accept`));
        });
      });
    }
  });
}
