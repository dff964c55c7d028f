// Packs the extension for installing without a developer: `hybrid-bridge-<version>.xpi` for
// Firefox (a zip of dist/firefox) and `hybrid-bridge-<version>.crx` for Chromium (CRX3: a zip
// of dist/chromium behind a header signed with an RSA key, whose public key gives the ID).
//
// Both are byte-for-byte reproducible from the same sources, key and SOURCE_DATE_EPOCH: files
// in sorted order, every entry stamped with that time and mode 0644, deflated by node's zlib,
// and an RSA PKCS#1 v1.5 signature (deterministic). What can still differ is listed in
// docs/RELEASE.md.
//
//   node tools/pack.mjs --key KEY.pem --out DIR   # writes both, prints what it wrote as JSON
//   node tools/pack.mjs keygen KEY.pem            # a new RSA-2048 key (CI's throwaway one)
//
// The key that gives the published ID (kbehonokcoobakmaiaaeeiedfmmjlope) is never in the
// repository; with another key the packed extension gets another ID, and everything built
// from this output (the host manifests, Chromium's external-extension file) follows it.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateRawSync } from 'node:zlib';
import { build } from './build.mjs';

/** The Chromium extension ID of a DER SubjectPublicKeyInfo: the first 16 bytes of its SHA-256,
 * each hex digit 0-f written as a letter a-p. */
export function chromiumId(spkiDer) {
  const hex = createHash('sha256').update(spkiDer).digest('hex').slice(0, 32);
  return [...hex].map((c) => String.fromCharCode(97 + parseInt(c, 16))).join('');
}

/** The DER SubjectPublicKeyInfo of a PEM private key. */
export function publicKeyDer(privatePem) {
  return createPublicKey(createPrivateKey(privatePem)).export({ type: 'spki', format: 'der' });
}

// ---- zip (PKZIP 2.0, deflate, no extras) ---------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** MS-DOS date and time of a UNIX time, in UTC (zip has no time zone; 1980 is its earliest). */
function dosTime(epochSeconds) {
  const d = new Date(Math.max(epochSeconds, 315532800) * 1000);
  const time = (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | (d.getUTCSeconds() >> 1);
  const date = ((d.getUTCFullYear() - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate();
  return { time, date };
}

/** Every file under `dir`, as sorted forward-slash paths relative to it. */
function files(dir) {
  const out = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.push(relative(dir, p).split(sep).join('/'));
    }
  };
  walk(dir);
  return out.sort();
}

/** A zip of every file under `dir`: sorted names, one timestamp, mode 0644, deflate level 9. */
export function zipDir(dir, epochSeconds) {
  const { time, date } = dosTime(epochSeconds);
  const locals = [];
  const central = [];
  let offset = 0;
  for (const name of files(dir)) {
    const data = readFileSync(join(dir, name));
    const packed = deflateRawSync(data, { level: 9 });
    const nameBuf = Buffer.from(name, 'utf8');
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed: 2.0 (deflate)
    local.writeUInt16LE(0x0800, 6); // names are UTF-8
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt16LE(time, 10);
    local.writeUInt16LE(date, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(packed.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBuf.length, 26);
    local.writeUInt16LE(0, 28);
    const entry = Buffer.alloc(46);
    entry.writeUInt32LE(0x02014b50, 0);
    entry.writeUInt16LE((3 << 8) | 20, 4); // made by: UNIX, 2.0 (so the mode below is read)
    entry.writeUInt16LE(20, 6);
    entry.writeUInt16LE(0x0800, 8);
    entry.writeUInt16LE(8, 10);
    entry.writeUInt16LE(time, 12);
    entry.writeUInt16LE(date, 14);
    entry.writeUInt32LE(crc, 16);
    entry.writeUInt32LE(packed.length, 20);
    entry.writeUInt32LE(data.length, 24);
    entry.writeUInt16LE(nameBuf.length, 28);
    entry.writeUInt32LE(((0o100644 << 16) >>> 0), 38); // a regular file, rw-r--r--
    entry.writeUInt32LE(offset, 42);
    locals.push(local, nameBuf, packed);
    central.push(entry, nameBuf);
    offset += local.length + nameBuf.length + packed.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(central.length / 2, 8);
  end.writeUInt16LE(central.length / 2, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

// ---- CRX3 (components/crx_file/crx3.proto) --------------------------------------------------

function varint(n) {
  const out = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** A length-delimited protobuf field. */
function field(number, bytes) {
  return Buffer.concat([varint((number << 3) | 2), varint(bytes.length), bytes]);
}

/** A CRX3 file: the zip, signed with `privatePem` (RSA, SHA-256). */
export function crx3(zip, privatePem) {
  const spki = publicKeyDer(privatePem);
  const crxId = createHash('sha256').update(spki).digest().subarray(0, 16);
  const signedData = field(1, crxId); // SignedData { crx_id = 1 }
  const len = Buffer.alloc(4);
  len.writeUInt32LE(signedData.length);
  const signature = sign('sha256', Buffer.concat([Buffer.from('CRX3 SignedData\0', 'latin1'), len, signedData, zip]),
    createPrivateKey(privatePem));
  // CrxFileHeader { sha256_with_rsa = 2 (AsymmetricKeyProof { public_key = 1, signature = 2 }),
  //                 signed_header_data = 10000 }
  const header = Buffer.concat([field(2, Buffer.concat([field(1, spki), field(2, signature)])), field(10000, signedData)]);
  const prefix = Buffer.alloc(12);
  prefix.write('Cr24', 0, 'latin1');
  prefix.writeUInt32LE(3, 4);
  prefix.writeUInt32LE(header.length, 8);
  return Buffer.concat([prefix, header, zip]);
}

/** Builds dist/packed/ (apart from the dist/chromium people load) with the public key of
 * `keyPem` as the Chromium manifest `key`, and packs both into `outDir`. */
export function pack({ keyPem, outDir, epoch }) {
  const spki = publicKeyDer(keyPem);
  const dirs = build({ chromiumKey: spki.toString('base64'), outDir: join(fileURLToPath(new URL('..', import.meta.url)), 'dist', 'packed') });
  const { version } = JSON.parse(readFileSync(join(dirs.firefox, 'manifest.json'), 'utf8'));
  mkdirSync(outDir, { recursive: true });
  const xpi = join(outDir, `hybrid-bridge-${version}.xpi`);
  const crx = join(outDir, `hybrid-bridge-${version}.crx`);
  writeFileSync(xpi, zipDir(dirs.firefox, epoch));
  writeFileSync(crx, crx3(zipDir(dirs.chromium, epoch), keyPem));
  return { version, chromium_id: chromiumId(spki), xpi, crx };
}

function sourceDateEpoch() {
  const v = process.env.SOURCE_DATE_EPOCH;
  if (v === undefined) return 315532800; // 1980-01-01, the earliest time a zip can hold
  if (!/^\d+$/.test(v)) throw new Error(`SOURCE_DATE_EPOCH must be a number of seconds, not ${JSON.stringify(v)}`);
  return Number(v);
}

function main(argv) {
  if (argv[0] === 'keygen') {
    if (!argv[1]) throw new Error('usage: node tools/pack.mjs keygen KEY.pem');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(argv[1], privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    console.log(JSON.stringify({ key: argv[1], chromium_id: chromiumId(publicKeyDer(readFileSync(argv[1]))) }));
    return;
  }
  const opt = (name) => {
    const i = argv.indexOf(name);
    if (i < 0 || !argv[i + 1]) throw new Error(`usage: node tools/pack.mjs --key KEY.pem --out DIR (missing ${name})`);
    return argv[i + 1];
  };
  const keyFile = opt('--key');
  if ((statSync(keyFile).mode & 0o077) !== 0) {
    console.error(`warning: ${keyFile} is readable by others; the signing key should be mode 0600`);
  }
  console.log(JSON.stringify(pack({ keyPem: readFileSync(keyFile), outDir: opt('--out'), epoch: sourceDateEpoch() })));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    main(process.argv.slice(2));
  } catch (e) {
    console.error(`pack: ${e.message}`);
    process.exit(1);
  }
}
