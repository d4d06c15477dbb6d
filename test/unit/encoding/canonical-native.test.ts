/**
 * The canonical decoder's verdicts must not depend on optional native code. msgpackr, a MessagePack library in
 * this dependency tree, has a native string reader that loads when its optional module is present and a
 * JavaScript one otherwise, and the two differ: the JavaScript one strips a leading byte-order mark (U+FEFF)
 * from strings of 64 bytes and more. A decoder built on it accepted such a memo on one machine and refused it
 * on another. Here the same property runs in two processes, one with msgpackr's native code disabled, and
 * both must reach identical verdicts on the same inputs, including long strings that start with a BOM.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { decodeCanonical, encodeCanonical } from '../../../src/encoding/canonical.js';

const BOM = '\ufeff';

test('a string that starts with a byte-order mark keeps it, in every length form', () => {
  for (const len of [0, 10, 31, 32, 63, 64, 200, 255, 256, 70_000]) {
    const s = BOM + 'm'.repeat(len);
    const bytes = encodeCanonical(s, s.length * 3 + 8);
    assert.equal(decodeCanonical(bytes), s, `length ${len}`);
    assert.deepEqual(encodeCanonical(decodeCanonical(bytes) as string, bytes.length + 8), bytes);
  }
});

/** Run in a child process: a seeded corpus of canonical encodings and mutants, and the digest of every verdict. */
const CHILD = `
  const { createHash } = await import('node:crypto');
  const { decodeCanonical, encodeCanonical } = await import(process.argv[1]);
  let seed = 0x5eed;
  const rnd = (n) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed % n; };
  const chars = ['\\ufeff', 'a', 'é', '€', '😀', ' ', '\\u0000', '\\uffff'];
  const str = () => { const n = [0, 5, 31, 32, 40, 63, 64, 65, 120, 300][rnd(10)]; let s = rnd(2) ? '\\ufeff' : ''; while (s.length < n) s += chars[rnd(chars.length)]; return s; };
  const val = (d) => { const k = rnd(d > 2 ? 4 : 6); return k === 0 ? str() : k === 1 ? rnd(1 << 30) : k === 2 ? new Uint8Array(rnd(40)).fill(rnd(256)) : k === 3 ? null : Array.from({ length: rnd(4) }, () => val(d + 1)); };
  const h = createHash('sha256');
  let accepted = 0, bomAccepted = 0;
  for (let i = 0; i < 4000; i++) {
    const v = [str(), val(0), str()];
    const bytes = encodeCanonical(v, 4096);
    const inputs = [bytes, ...Array.from({ length: 3 }, () => { const m = bytes.slice(); m[rnd(m.length)] ^= 1 << rnd(8); return m; })];
    for (const b of inputs) {
      let verdict;
      try { const d = decodeCanonical(b); verdict = 'ok:' + Buffer.from(encodeCanonical(d, 4096)).toString('hex'); accepted++; if (typeof d[0] === 'string' && d[0].startsWith('\\ufeff') && d[0].length > 40) bomAccepted++; }
      catch (e) { verdict = 'err:' + e.rule; }
      h.update(verdict + '\\n');
    }
  }
  const msgpackr = await import('msgpackr');
  console.log(JSON.stringify({ digest: h.digest('hex'), accepted, bomAccepted, native: msgpackr.isNativeAccelerationEnabled }));
`;

function runChild(disableNative: boolean): { digest: string; accepted: number; bomAccepted: number; native: boolean } {
  const canonical = fileURLToPath(new URL('../../../src/encoding/canonical.js', import.meta.url));
  const env = { ...process.env };
  if (disableNative) env.MSGPACKR_NATIVE_ACCELERATION_DISABLED = 'true';
  else delete env.MSGPACKR_NATIVE_ACCELERATION_DISABLED;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD, canonical], { env, encoding: 'utf8', cwd: fileURLToPath(new URL('../../../', import.meta.url)), timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

test('verdicts are identical with and without msgpackr\'s optional native code, long BOM strings included', (t) => {
  const withNative = runChild(false);
  const withoutNative = runChild(true);
  t.diagnostic(`native module loaded: ${withNative.native}; disabled run: ${withoutNative.native}; ${withNative.accepted} accepted, ${withNative.bomAccepted} long BOM strings`);
  assert.equal(withoutNative.native, false, 'the second run really ran without the native code');
  assert.equal(withNative.digest, withoutNative.digest, 'the decoder reached different verdicts with and without the native module');
  assert.ok(withNative.bomAccepted > 100, 'the corpus holds long strings that start with a BOM, and they are accepted');
});
