// @ts-check
// Writes the two loadable copies of the one extension source tree: dist/firefox (the source
// manifest as is) and dist/chromium (the same files; the manifest gets the `key` that pins
// the Chromium ID, a service-worker background, and no Firefox-only settings). Browsers load
// content scripts as classic scripts, which cannot import: in the two content scripts the
// `import { … } from './messages.js'` line becomes those constants, and an
// `import { … } from './lib.js'` line those functions' own text (each must use nothing else
// from lib.js), inside a block so that nothing leaks into the page's global scope.
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lib from '../extension/lib.js';
import * as messages from '../extension/messages.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'extension');

/** The public key whose SHA-256 gives the Chromium ID kbehonokcoobakmaiaaeeiedfmmjlope. */
export const CHROMIUM_KEY = 'MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqgnq7LQvk5P0Xftz+qIv6p65ItCICuZB+Umbis7lvCNX2GT4wqtZbLejXYpGWSUxvt0ZOijJ1tXJ8ks/dLAayBFGdeHtaqTBIru+7vvh9sLlffXdk0Adh4OBdFVi4e/jLH1F22llNdccnqKY1ocXWgInyjn846GCIZA8DOTTJPUc19SVHyTwJ2BwJPuxzp8dPpWu3Nt4/8sn0DKrgErvdVTX/q/eNRX5Jn35Mlu8QO8xO/tCCNM2PMaIDWrEk1WR+U6d9TEQb4FEJ5JHTpZA7/DJi6T9b2NCoBxNOonEqw63YSBn0vyrZ7oEiGJyAlNewDT4zKKpWyDY4nkOQiZ9AwIDAQAB';
export const CHROMIUM_ID = 'kbehonokcoobakmaiaaeeiedfmmjlope';
export const FIREFOX_ID = 'hybrid-bridge@hybridbridge.org';

/** The content scripts (manifest `content_scripts`), written as modules in the source. */
export const CLASSIC_SCRIPTS = ['page.js', 'content.js'];

const IMPORT = /^import \{([^}]*)\} from '\.\/(messages|lib)\.js';\n/gm;

/** A content script's source as the classic script a browser loads: its import of
 * messages.js replaced by the constants and its import of lib.js by the functions' text, the
 * whole inside a block. Any other import is an error (a classic script cannot have one). */
export function classicScript(source, file = 'a content script') {
  let consts = '';
  const body = source.replace(IMPORT, (_, list, from) => {
    for (const n of list.split(',').map((x) => x.trim()).filter(Boolean)) {
      if (from === 'messages') {
        if (!Object.hasOwn(messages, n)) throw new Error(`${file} imports ${n}, which messages.js does not export`);
        consts += `  const ${n} = Object.freeze(${JSON.stringify(messages[n])});\n`;
      } else {
        if (typeof lib[n] !== 'function') throw new Error(`${file}: lib.js does not export ${n} as a function`);
        consts += `  const ${n} = ${lib[n]};\n`;
      }
    }
    return '';
  });
  if (/^\s*(import|export)\b/m.test(body)) throw new Error(`${file}: a content script may only import from ./messages.js and ./lib.js`);
  const lines = body.replace(/^\/\/ @ts-check\n/, '');
  return `{\n${consts}${lines}}\n`;
}

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
    for (const file of CLASSIC_SCRIPTS) {
      writeFileSync(join(dir, file), classicScript(readFileSync(join(src, file), 'utf8'), file));
    }
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
