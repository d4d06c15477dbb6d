/**
 * Signature verification throughput, single-threaded: raw noble (the consensus rule), raw OpenSSL
 * fast path (node:crypto), and the combined `verify` (pre-screen + fallback). All on valid
 * signatures, so the combined path is OpenSSL plus overhead; `combined / fast` is the ceiling the
 * pre-screen can reach. Also the raw node:crypto rate on 2 worker threads (the limit the ingest target refers
 * to; that pool lives inside the benchmark only), and the node's own WorkerVerifier (src/crypto/verifypool.ts:
 * the combined `verify` on 2 worker threads, batches of 1024 packed into one transfer each) against it.
 * Run: node dist/scripts/bench/verify.js [--smoke]  (~12 s; smoke < 2 s)
 * Writes scripts/bench/results/verify.json.
 */
import { SMOKE, makeRawItems, printRows, rawVerifyRateWorkers, row, writeResult } from './common.js';
import { generateSecretKey, getPublicKey, sign, verify, verifyFast, verifyNoble } from '../../src/crypto/ed25519.js';
import { WorkerVerifier } from '../../src/crypto/verifypool.js';

const N_ITEMS = SMOKE ? 100 : 3000; // distinct keys/messages (fits the 4096-entry public-key cache)
const SECONDS = SMOKE ? 0.2 : 2; // per measured function
const WARMUP_MS = SMOKE ? 20 : 200;
const WORKERS = 2;

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

const workers = await rawVerifyRateWorkers(makeRawItems(Math.min(N_ITEMS, 1000)), WORKERS, SECONDS * 1000);
console.log(`raw node:crypto on ${WORKERS} worker threads: ${workers.toFixed(0)} verifies/s (= ${(workers / fast).toFixed(2)}x single-thread fast)`);

// The node's pool: batches of 1024 (a P2P TXS message), two in flight so both workers stay busy.
const pool = new WorkerVerifier(WORKERS);
const vItems = items.map((it) => ({ signature: it.sig, message: it.msg, publicKey: it.pub }));
const batchAt = (k: number) => Array.from({ length: 1024 }, (_, j) => vItems[(k * 1024 + j) % vItems.length]!);
await pool.verifyBatch(batchAt(0)); // start-up, JIT and key caches
let poolCount = 0;
const poolStart = performance.now();
let k = 0;
const lane = async () => {
  while (performance.now() - poolStart < SECONDS * 1000) {
    const out = await pool.verifyBatch(batchAt(k++));
    if (out.includes(false)) throw new Error('bench item failed to verify in the pool');
    poolCount += out.length;
  }
};
await Promise.all([lane(), lane()]);
const poolPerSec = poolCount / ((performance.now() - poolStart) / 1000);
await pool.close();
console.log(`WorkerVerifier (combined verify) on ${WORKERS} worker threads: ${poolPerSec.toFixed(0)} verifies/s (= ${(poolPerSec / workers).toFixed(2)}x raw ${WORKERS} workers)`);

const summary = [
  row('combined verify, 1 thread', combined, 'verifies/s', { name: 'raw node:crypto 1 thread', value: fast, unit: 'verifies/s' }),
  row(`raw node:crypto, ${WORKERS} worker threads`, workers, 'verifies/s', { name: `${WORKERS} x raw 1 thread`, value: WORKERS * fast, unit: 'verifies/s' }),
  row(`WorkerVerifier (combined verify), ${WORKERS} worker threads, batches of 1024`, poolPerSec, 'verifies/s', { name: `raw node:crypto, ${WORKERS} worker threads`, value: workers, unit: 'verifies/s' }),
];
printRows(summary);
writeResult('verify', {
  items: N_ITEMS,
  messageBytes: 200,
  secondsPerPath: SECONDS,
  verifiesPerSec: { noble: Math.round(noble), fast: Math.round(fast), combined: Math.round(combined), [`fastWorkers${WORKERS}`]: Math.round(workers), [`poolWorkers${WORKERS}`]: Math.round(poolPerSec) },
  ratioCombinedOverFast: Number((combined / fast).toFixed(4)),
  speedupCombinedOverNoble: Number((combined / noble).toFixed(2)),
  ratioWorkersOverSingle: Number((workers / fast).toFixed(3)),
  summary,
});
