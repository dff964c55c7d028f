// The non-browser half of the end-to-end tests: the project's binaries (built with cargo when
// missing or stale), a tunnel-server on 127.0.0.1, the native host installed for a browser
// profile with `hybrid-bridge browser install`, phone-sim runs, and reading the QR code out of
// a screenshot (to know when it is on screen; phone-sim decodes the PNG itself).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import jsQR from 'jsqr';
import { PNG } from 'pngjs';

export const BROWSER_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const REPO = join(BROWSER_DIR, '..');
const TARGET = process.env.CARGO_TARGET_DIR || join(REPO, 'target');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The three binaries, built first (cargo is quick when nothing changed). */
export function binaries() {
  if (!process.env.HYBRID_BRIDGE_SKIP_BUILD) {
    const r = spawnSync('cargo', ['build', '-q', '-p', 'bridge', '-p', 'phone-sim', '-p', 'tunnel-server', '-j2'], {
      cwd: REPO, stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, CARGO_TARGET_DIR: TARGET },
    });
    if (r.status !== 0) throw new Error('cargo build of bridge, phone-sim and tunnel-server failed');
  }
  const bin = (n) => join(TARGET, 'debug', n);
  const bridge = existsSync(bin('hybrid-bridge')) ? bin('hybrid-bridge') : bin('bridge');
  for (const b of [bridge, bin('phone-sim'), bin('tunnel-server')]) {
    if (!existsSync(b)) throw new Error(`${b} is missing: run cargo build -p bridge -p phone-sim -p tunnel-server`);
  }
  return { bridge, phoneSim: bin('phone-sim'), tunnelServer: bin('tunnel-server') };
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Spawns a child whose output goes to a log file; `kill()` ends it (by its own pid). */
export function child(cmd, args, { env, log, cwd } = {}) {
  const p = spawn(cmd, args, { env: { ...process.env, ...env }, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const onData = (d) => {
    out += d;
    if (out.length > 1 << 20) out = out.slice(-(1 << 19));
    if (log) writeFileSync(log, out);
  };
  p.stdout.on('data', onData);
  p.stderr.on('data', onData);
  const exited = new Promise((resolve) => p.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    proc: p,
    exited,
    output: () => out,
    kill: async () => {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
      const t = setTimeout(() => p.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}

export async function waitFor(what, fn, { timeout = 20000, interval = 100 } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(interval);
  }
}

/** A tunnel-server on 127.0.0.1, the phone's advert file and a temp folder for everything. */
export async function startStack(name) {
  const bins = binaries();
  const dir = mkdtempSync(join(tmpdir(), `hb-${name}-`));
  const port = await freePort();
  const relay = child(bins.tunnelServer, ['--listen', `127.0.0.1:${port}`], { log: join(dir, 'relay.log') });
  const tunnel = `ws://127.0.0.1:${port}`;
  await waitFor('the relay', () => new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => { s.end(); resolve(true); });
    s.on('error', () => resolve(false));
  }));
  const adverts = join(dir, 'adverts');
  writeFileSync(adverts, '');
  const stack = {
    bins, dir, tunnel, adverts,
    links: join(dir, 'links.json'),
    phoneStore: join(dir, 'phone.json'),
    hostLog: join(dir, 'host.log'),
    children: [relay],
    /** The host's flags, as PROTOCOL.md's "How tests start the host" gives them. */
    hostFlags() {
      return ['--links-file', this.links, '--tunnel-override', tunnel, '--advert-file', adverts, '--linger', '1'];
    },
    /** `hybrid-bridge browser install` for a Chromium --user-data-dir, or Firefox under HOME. */
    install(opts) {
      const args = ['browser', 'install'];
      const env = { ...process.env };
      if (opts.chromiumUserDataDir) args.push('--chromium-user-data-dir', opts.chromiumUserDataDir, '--only-user-data-dir');
      if (opts.firefoxHome) { args.push('--browser', 'firefox'); env.HOME = opts.firefoxHome; }
      args.push('--log-file', this.hostLog, '--', ...this.hostFlags());
      const r = spawnSync(bins.bridge, args, { env, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`browser install failed: ${r.stderr}`);
      return r.stdout;
    },
    /** `hybrid-bridge browser uninstall`, same locations as install. */
    uninstall(opts) {
      const args = ['browser', 'uninstall'];
      const env = { ...process.env };
      if (opts.chromiumUserDataDir) args.push('--chromium-user-data-dir', opts.chromiumUserDataDir, '--only-user-data-dir');
      if (opts.firefoxHome) { args.push('--browser', 'firefox'); env.HOME = opts.firefoxHome; }
      const r = spawnSync(bins.bridge, args, { env, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`browser uninstall failed: ${r.stderr}`);
    },
    /** Process ids of this stack's running native hosts (the browser starts them). */
    hostPids() {
      const pids = [];
      for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
        let cmd;
        try { cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'); } catch { continue; }
        if (cmd.includes('native-host') && cmd.includes(this.links)) pids.push(Number(pid));
      }
      return pids;
    },
    /** phone-sim scan of a screenshot PNG. */
    scan(png, extra = []) {
      const c = child(bins.phoneSim, ['scan', '--qr-image', png, '--tunnel', tunnel, '--medium-file', adverts,
        '--store', this.phoneStore, '--name', 'Pixel', '--timeout', '30', ...extra], { log: `${png}.phone.log` });
      this.children.push(c);
      return c;
    },
    /** phone-sim serving one linked session. */
    linked() {
      const c = child(bins.phoneSim, ['linked', '--tunnel', tunnel, '--medium-file', adverts,
        '--store', this.phoneStore, '--sessions', '1', '--log', 'debug'], { log: join(dir, 'linked.log') });
      this.children.push(c);
      return c;
    },
    /** Ends every child; removes the temp folder unless the tests failed or HB_KEEP_TMP is set. */
    async stop({ keep = false } = {}) {
      for (const c of this.children) await c.kill();
      if (keep || process.env.HB_KEEP_TMP) console.error(`kept ${dir} (logs: host.log, browser.log, *.phone.log)`);
      else rmSync(dir, { recursive: true, force: true });
    },
  };
  return stack;
}

/** The launcher the hybrid-bridge Debian package installs: while it is there, every browser on
 * the machine also runs the packaged extension, beside the one a test loads. */
export const PACKAGE_LAUNCHER = '/usr/lib/hybrid-bridge/native-host';

/** The FIDO:/ text of the QR code in a PNG screenshot, or null. */
export function qrText(pngBuffer) {
  const png = PNG.sync.read(pngBuffer);
  const code = jsQR(new Uint8ClampedArray(png.data.buffer, png.data.byteOffset, png.data.length), png.width, png.height);
  return code?.data?.startsWith('FIDO:/') ? code.data : null;
}

export const readJson = (p) => JSON.parse(readFileSync(p, 'utf8'));
