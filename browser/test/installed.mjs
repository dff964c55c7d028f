// The hybrid-bridge Debian package, as a person gets it: with only the package installed (no
// --load-extension, no webExtension.install, no `hybrid-bridge browser install`), Debian's
// Chromium with a fresh profile installs the extension from the package's external-extension
// file and Firefox ESR from the package's policy, each starts the package's system host, and a
// registration and a sign-in complete with phone-sim through a local relay, verified by the
// test relying party. Screenshots of what the person sees go to test-output/ (or screenshots/
// with HB_SCREENSHOTS=1): the browser's extension page and the overlay.
//
// Run by scripts/package-test.sh inside the copy-on-write root where it installed the package
// (node --test test/installed.mjs); it needs HB_PACKAGE_CHROMIUM_ID, the ID the package ships.
// Not part of `npm test`: there the package must not be installed.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startRp } from '../rp/server.mjs';
import { launchChromium, launchFirefox } from './lib/drivers.mjs';
import { BROWSER_DIR, PACKAGE_LAUNCHER, qrText, startStack, waitFor } from './lib/stack.mjs';

const SHOTS = join(BROWSER_DIR, process.env.HB_SCREENSHOTS ? 'screenshots' : 'test-output');
const CHROMIUM_ID = process.env.HB_PACKAGE_CHROMIUM_ID;
const FIREFOX_ID = 'hybrid-bridge@hybridbridge.org';
const STATUS = `(() => { const s = document.querySelector('#status');
  return { state: s.dataset.state, seq: Number(s.dataset.seq || 0), user: s.dataset.user, text: s.textContent }; })()`;

describe('the installed package', () => {
  before(() => {
    assert.ok(CHROMIUM_ID, 'HB_PACKAGE_CHROMIUM_ID must name the Chromium extension ID the package ships');
    for (const f of [PACKAGE_LAUNCHER, `/usr/lib/chromium/extensions/${CHROMIUM_ID}.json`,
      '/etc/chromium/native-messaging-hosts/org.hybridbridge.host.json',
      '/usr/lib/mozilla/native-messaging-hosts/org.hybridbridge.host.json', '/etc/firefox/policies/policies.json']) {
      assert.ok(existsSync(f), `${f} is missing: install the hybrid-bridge package first (scripts/package-test.sh)`);
    }
    mkdirSync(SHOTS, { recursive: true });
  });

  // HB_INSTALLED_BROWSERS narrows the run to some of them (chromium, firefox).
  const browsers = (process.env.HB_INSTALLED_BROWSERS || 'chromium,firefox').split(',');
  for (const name of browsers) {
    describe(name, () => {
      const ctx = {};

      before(async () => {
        ctx.stack = await startStack(`installed-${name}`);
        ctx.rp = await startRp();
        const tmp = ctx.stack.dir;
        // The packaged launcher runs `hybrid-bridge native-host` with no flags: the host's
        // settings for this test (local relay, simulated Bluetooth) come from the environment
        // the browser passes on to it.
        const env = {
          HYBRID_TUNNEL_OVERRIDE: ctx.stack.tunnel,
          BRIDGE_ADVERT_FILE: ctx.stack.adverts,
          BRIDGE_LINKS_FILE: ctx.stack.links,
        };
        if (name === 'chromium') {
          ctx.d = await launchChromium({ userDataDir: mkdtempSync(join(tmp, 'ud-')), log: join(tmp, 'browser.log'), env });
        } else {
          // Firefox ESR honours this preference (release builds do not): the package's .xpi
          // is unsigned in a test build. A release ships the add-on signed (docs/RELEASE.md).
          ctx.d = await launchFirefox({ profileDir: join(tmp, 'profile'), home: mkdtempSync(join(tmp, 'home-')),
            log: join(tmp, 'browser.log'), env, prefs: { 'xpinstall.signatures.required': false } });
        }
      });

      after(async () => {
        await ctx.d?.close();
        await ctx.rp?.close();
        await ctx.stack?.stop({ keep: ctx.failed });
      });

      it('finds the extension the package installed, and shows it on the browser\'s extensions page', async () => {
        try {
          if (name === 'chromium') {
            const ids = await waitFor('the packaged extension to start', async () => {
              const found = await ctx.d.extensionIds();
              return found.includes(CHROMIUM_ID) ? found : null;
            }, { timeout: 30000, interval: 250 });
            assert.deepEqual(ids, [CHROMIUM_ID], 'exactly the packaged extension runs');
            await ctx.d.navigate('chrome://extensions');
          } else {
            const addon = await waitFor('the policy to install the add-on', () => {
              const f = join(ctx.d.profileDir, 'extensions.json');
              if (!existsSync(f)) return null;
              return JSON.parse(readFileSync(f, 'utf8')).addons.find((a) => a.id === FIREFOX_ID && a.active);
            }, { timeout: 30000, interval: 250 });
            assert.equal(addon.userDisabled, false);
            // WebDriver BiDi refuses to navigate to about:addons ("not allowed in this
            // context"): no screenshot of Firefox's extensions page.
            return;
          }
          await new Promise((r) => setTimeout(r, 1000));
          writeFileSync(join(SHOTS, `${name}-installed-extensions.png`), await ctx.d.screenshot());
        } catch (e) {
          ctx.failed = true;
          throw e;
        }
      });

      for (const [button, label] of [['register', 'registers'], ['signin', 'signs in']]) {
        it(`${label} through the system host and phone-sim, verified by the relying party`, async () => {
          try {
            await ctx.d.navigate(ctx.rp.url);
            const seqBefore = (await ctx.d.evaluate(STATUS)).seq;
            await ctx.d.evaluate(`(document.querySelector('#${button}').click(), true)`);
            // The overlay: choose the QR code (keyboard in Chromium, mouse in Firefox).
            await waitFor('the overlay', async () => {
              try { return await ctx.d.overlayEval(`!!document.querySelector('#use-qr')?.getBoundingClientRect().width`); } catch { return false; }
            }, { timeout: 15000, interval: 200 });
            if (name === 'chromium') await ctx.d.key('Enter');
            else await ctx.d.clickOverlay('#use-qr');
            const png = await waitFor('the QR code on screen', async () => {
              const shot = await ctx.d.screenshot();
              return qrText(shot) ? shot : null;
            }, { timeout: 15000, interval: 200 });
            if (button === 'register') writeFileSync(join(SHOTS, `${name}-installed-qr.png`), png);
            const file = join(ctx.stack.dir, `${button}.png`);
            writeFileSync(file, png);
            const phone = ctx.stack.scan(file);
            const out = await waitFor('the page\'s outcome', async () => {
              const s = await ctx.d.evaluate(STATUS);
              return s.seq === seqBefore + 1 && s.state !== 'pending' ? s : null;
            }, { timeout: 40000 });
            assert.equal(out.state, 'ok', `${out.text}\nphone-sim: ${phone.output()}`);
            assert.equal(out.user, 'alice');
            assert.equal((await phone.exited).code, 0, phone.output());
            // The host that answered can only be the package's: the fresh profile and HOME
            // hold no host manifest of their own (Chromium makes its per-user folder, empty).
            for (const d of readdirSync(ctx.stack.dir)) {
              for (const own of ['.mozilla/native-messaging-hosts', 'NativeMessagingHosts']) {
                const folder = join(ctx.stack.dir, d, own);
                assert.deepEqual(existsSync(folder) ? readdirSync(folder) : [], [], `${d}/${own}`);
              }
            }
          } catch (e) {
            ctx.failed = true;
            throw e;
          }
        });
      }
    });
  }
});
