// Related origins (WebAuthn L3 §5.11) in each browser: a shop on https://shop.example.net:PORT
// uses the RP ID example.test, whose https://example.test/.well-known/webauthn (the test RP,
// reached on the default port by the browser's own rules: see rpid.mjs startOnTestHosts)
// lists the shop's origin. The extension fetches that document, the native host counts its
// sites with the Public Suffix List, and the RP verifies origin and RP ID; every document
// that does not vouch for the shop is SecurityError before any overlay.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { closeAfter, OVERLAY_HOST, pageControls, scanOverlayQr } from './scenarios.mjs';
import { WATCH_OVERLAY, startOnTestHosts } from './rpid.mjs';
import { waitFor } from './stack.mjs';

const SHOP = 'shop.example.net';
const RP_ID = 'example.test';

export function relatedSuite(name) {
  describe(`${name}: related origins through /.well-known/webauthn`, () => suite(name));
}

function suite(name) {
  const ctx = {};
  const { click, outcome } = pageControls(ctx);
  const shop = () => `https://${SHOP}:${ctx.rp.port}`;
  const json = (doc) => ({ status: 200, type: 'application/json', body: JSON.stringify(doc) });

  before(async () => {
    Object.assign(ctx, await startOnTestHosts(name, 'related', [SHOP, RP_ID], { defaultPortHost: RP_ID }));
    await ctx.d.navigate(`${shop()}/?rpid=${RP_ID}`);
  });

  closeAfter(ctx);

  it('a shop on another site registers and signs in with the RP ID its well-known lists it for, verified by the RP', async () => {
    ctx.rp.setWellKnown(json({ origins: [`https://${RP_ID}`, shop()] }));
    let seq = await click('register');
    let phone = await scanOverlayQr(ctx, `${name}-related-register.png`);
    let out = await outcome(seq);
    assert.equal(out.state, 'ok', `${out.text}\nphone-sim: ${phone.output()}`);
    assert.equal(out.user, 'alice');
    assert.equal((await phone.exited).code, 0, phone.output());
    assert.equal(ctx.rp.users.get('alice').credentials.length, 1);
    await waitFor('the overlay to close', async () => !(await ctx.d.evaluate(`!!${OVERLAY_HOST}`)), { timeout: 10000 });
    seq = await click('signin');
    phone = await scanOverlayQr(ctx, `${name}-related-signin.png`);
    out = await outcome(seq);
    assert.equal(out.state, 'ok', `${out.text}\nphone-sim: ${phone.output()}`);
    assert.equal(out.user, 'alice');
  });

  it('well-knowns that do not vouch for the shop: SecurityError for create and get, with no overlay', async () => {
    const me = shop();
    const cases = {
      'the origin not listed': json({ origins: [`https://${RP_ID}`, `https://${SHOP}`] }),
      'no well-known (404)': null,
      'a redirect': { status: 302, location: `https://${RP_ID}/other`, type: 'text/plain', body: '' },
      'not JSON': { status: 200, type: 'application/json', body: '<html></html>' },
      'origins not an array': json({ origins: me }),
      'five sites before the shop': json({ origins: ['https://a.com', 'https://b.com', 'https://c.co.uk', 'https://d.org', 'https://e.com', me] }),
    };
    const seen = {};
    for (const [label, doc] of Object.entries(cases)) {
      ctx.rp.setWellKnown(doc);
      for (const kind of ['get', 'create']) {
        await ctx.d.navigate(`${me}/`);
        await ctx.d.evaluate(WATCH_OVERLAY);
        const publicKey = kind === 'get'
          ? `{ challenge: new Uint8Array(32), rpId: '${RP_ID}' }`
          : `{ challenge: new Uint8Array(32), rp: { id: '${RP_ID}', name: 'RP' }, user: { id: new Uint8Array(8), name: 'a', displayName: 'A' },
              pubKeyCredParams: [{ type: 'public-key', alg: -7 }] }`;
        const got = await ctx.d.evaluate(`Promise.race([navigator.credentials.${kind}({ publicKey: ${publicKey} }).then(() => 'resolved', (e) => e.name),
          new Promise((r) => setTimeout(() => r('still pending after 15 s'), 15000))])`);
        seen[`${kind}: ${label}`] = [got, await ctx.d.evaluate('window.__overlaySeen')];
      }
    }
    const expected = {};
    for (const label of Object.keys(cases)) for (const kind of ['get', 'create']) expected[`${kind}: ${label}`] = ['SecurityError', false];
    assert.deepEqual(seen, expected);
  });
}
