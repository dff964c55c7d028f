// `web-ext lint` (npm web-ext, from the lockfile) passes on the extension as browsers load it
// (dist/firefox, the content scripts with their constants written in) with no errors and no
// warnings.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { build } from '../tools/build.mjs';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..');

test('web-ext lint: no errors, no warnings', () => {
  const bin = join(root, 'node_modules', '.bin', 'web-ext');
  const r = spawnSync(bin, ['lint', '--source-dir', build().firefox, '--output', 'json'], { encoding: 'utf8' });
  const report = JSON.parse(r.stdout);
  assert.deepEqual({ errors: report.errors, warnings: report.warnings }, { errors: [], warnings: [] }, r.stdout);
  assert.equal(report.summary.errors, 0);
});
