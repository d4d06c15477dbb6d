/**
 * Signature verification throughput, single-threaded: raw noble (the consensus rule), raw OpenSSL
 * fast path (node:crypto), and the combined `verify` (pre-screen + fallback). All on valid
 * signatures, so the combined path is OpenSSL plus overhead; `combined / fast` is the ceiling the
 * pre-screen can reach. Run: node dist/scripts/bench/verify.js  (~10 s)
 * Writes scripts/bench/results/verify.json.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSecretKey, getPublicKey, sign, verify, verifyFast, verifyNoble } from '../../src/crypto/ed25519.js';

const N_ITEMS = 3000; // distinct keys/messages (fits the 4096-entry public-key cache)
const SECONDS = 2; // per measured function
const WARMUP_MS = 200;

type Item = { sig: Uint8Array; msg: Uint8Array; pub: Uint8Array };
type Fn = (sig: Uint8Array, msg: Uint8Array, pub: Uint8Array) => boolean;

function makeItems(n: number): Item[] {
  const items: Item[] = [];
  for (let i = 0; i < n; i++) {
    const sk = generateSecretKey();
    const msg = new Uint8Array(200).fill(i & 0xff); // ~ a transfer-sized payload
    msg[0] = i >> 8;
    items.push({ sig: sign(msg, sk), msg, pub: getPublicKey(sk) });
  }
  return items;
}

/** Runs fn over the items round-robin for `ms`; returns verifications per second. */
function measure(fn: Fn, items: Item[], ms: number): { perSec: number; count: number; seconds: number } {
  let count = 0;
  let i = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(ms) * 1_000_000n;
  let now = start;
  while (now < deadline) {
    for (let k = 0; k < 16; k++) {
      const it = items[i]!;
      if (!fn(it.sig, it.msg, it.pub)) throw new Error('bench item failed to verify');
      i = (i + 1) % items.length;
      count++;
    }
    now = process.hrtime.bigint();
  }
  const seconds = Number(now - start) / 1e9;
  return { perSec: count / seconds, count, seconds };
}

const items = makeItems(N_ITEMS);
const fns: Array<[string, Fn]> = [
  ['noble (consensus rule)', verifyNoble],
  ['fast (node:crypto/OpenSSL)', verifyFast],
  ['combined verify', verify],
];
const results: Record<string, { perSec: number; count: number; seconds: number }> = {};
for (const [name, fn] of fns) {
  measure(fn, items, WARMUP_MS); // JIT warm-up; also fills the public-key cache
  results[name] = measure(fn, items, SECONDS * 1000);
}
const noble = results[fns[0]![0]]!.perSec, fast = results[fns[1]![0]]!.perSec, combined = results[fns[2]![0]]!.perSec;

const pad = (s: string, n: number) => s.padEnd(n);
console.log(`ed25519 verify, single thread, ${N_ITEMS} valid signatures (200-byte messages), ${SECONDS} s each`);
console.log(`${pad('path', 30)}${'verifies/s'.padStart(12)}${'count'.padStart(10)}`);
for (const [name] of fns) {
  const r = results[name]!;
  console.log(`${pad(name, 30)}${r.perSec.toFixed(0).padStart(12)}${String(r.count).padStart(10)}`);
}
console.log(`combined / fast = ${(combined / fast).toFixed(3)}   combined / noble = ${(combined / noble).toFixed(1)}x`);

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..'); // dist/scripts/bench → root
const outDir = path.join(repoRoot, 'scripts', 'bench', 'results');
fs.mkdirSync(outDir, { recursive: true });
const out = {
  bench: 'ed25519-verify',
  date: new Date().toISOString(),
  node: process.version,
  openssl: process.versions.openssl,
  cpu: os.cpus()[0]?.model ?? 'unknown',
  cores: os.cpus().length,
  items: N_ITEMS,
  messageBytes: 200,
  secondsPerPath: SECONDS,
  verifiesPerSec: { noble: Math.round(noble), fast: Math.round(fast), combined: Math.round(combined) },
  ratioCombinedOverFast: Number((combined / fast).toFixed(4)),
  speedupCombinedOverNoble: Number((combined / noble).toFixed(2)),
};
fs.writeFileSync(path.join(outDir, 'verify.json'), JSON.stringify(out, null, 2) + '\n');
console.log(`wrote ${path.relative(repoRoot, path.join(outDir, 'verify.json'))}`);
