// The Go relying party's own tests (rp/go_webauthn/main_test.go, `go test` in GOPATH mode over
// Debian's duo-labs/webauthn): bad requests are 400s with a message, one-use challenges, this
// RP's origins only, and the x5c chain check against the CA file. Every test function in
// main_test.go must be reported as passed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { GO_DIR, GO_LIBRARY, GO_SOURCE, goEnv } from './lib/rplibs.mjs';

test('go test of the Go relying party: every test function passes', () => {
  assert.ok(existsSync(GO_LIBRARY), `${GO_LIBRARY} is missing: apt-get install golang-go golang-github-duo-labs-webauthn-dev`);
  mkdirSync(GO_DIR, { recursive: true });
  const r = spawnSync('go', ['test', '-count=1', '-v', '.'], { cwd: GO_SOURCE, encoding: 'utf8', env: goEnv(GO_DIR), timeout: 600000 });
  assert.equal(r.status, 0, `go test failed: ${r.error?.message ?? ''}\n${r.stdout}${r.stderr}`);
  const declared = [...readFileSync(join(GO_SOURCE, 'main_test.go'), 'utf8').matchAll(/^func (Test\w+)\(t \*testing\.T\)/gm)].map((m) => m[1]);
  const passed = [...r.stdout.matchAll(/^--- PASS: (Test\w+) /gm)].map((m) => m[1]);
  assert.ok(declared.length >= 4, `test functions found in main_test.go: ${declared}`);
  assert.deepEqual(passed.sort(), declared.sort(), r.stdout);
});
