// Writes the two loadable copies of the one extension source tree: dist/firefox (the source
// manifest as is) and dist/chromium (the same files; the manifest gets the `key` that pins
// the Chromium ID, a service-worker background, and no Firefox-only settings).
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'extension');

/** The public key whose SHA-256 gives the Chromium ID kbehonokcoobakmaiaaeeiedfmmjlope. */
export const CHROMIUM_KEY = 'MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqgnq7LQvk5P0Xftz+qIv6p65ItCICuZB+Umbis7lvCNX2GT4wqtZbLejXYpGWSUxvt0ZOijJ1tXJ8ks/dLAayBFGdeHtaqTBIru+7vvh9sLlffXdk0Adh4OBdFVi4e/jLH1F22llNdccnqKY1ocXWgInyjn846GCIZA8DOTTJPUc19SVHyTwJ2BwJPuxzp8dPpWu3Nt4/8sn0DKrgErvdVTX/q/eNRX5Jn35Mlu8QO8xO/tCCNM2PMaIDWrEk1WR+U6d9TEQb4FEJ5JHTpZA7/DJi6T9b2NCoBxNOonEqw63YSBn0vyrZ7oEiGJyAlNewDT4zKKpWyDY4nkOQiZ9AwIDAQAB';
export const CHROMIUM_ID = 'kbehonokcoobakmaiaaeeiedfmmjlope';
export const FIREFOX_ID = 'hybrid-bridge@hybridbridge.org';

/** Writes dist/firefox and dist/chromium (or into `outDir`). `chromiumKey` (base64 DER public
 * key) replaces the pinned `key` when the extension is packed with another signing key
 * (tools/pack.mjs). */
export function build({ chromiumKey = CHROMIUM_KEY, outDir = join(root, 'dist') } = {}) {
  const manifest = JSON.parse(readFileSync(join(src, 'manifest.json'), 'utf8'));
  const out = {};
  for (const flavour of ['firefox', 'chromium']) {
    const dir = join(outDir, flavour);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    cpSync(src, dir, { recursive: true });
    let m = structuredClone(manifest);
    if (flavour === 'chromium') {
      delete m.browser_specific_settings;
      m = { ...m, key: chromiumKey, background: { service_worker: 'background.js', type: 'module' }, minimum_chrome_version: '111' };
      // Chromium does not draw SVG icons; it falls back to its default icon.
      delete m.icons;
    }
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m, null, 2) + '\n');
    out[flavour] = dir;
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dirs = build();
  for (const [k, v] of Object.entries(dirs)) console.log(`${k}: ${v}`);
}
