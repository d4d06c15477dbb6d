/**
 * The cost of the peer session (src/p2p/noise.ts), each figure against the raw primitives it is built from,
 * measured in the same run:
 *   - handshakes/s: complete Noise XX handshakes (both sides, in-process pipe) against the bound that its
 *     public-key operations alone allow: per handshake 2 X25519 key generations, 6 X25519 agreements and 2
 *     Ed25519 verifications (the node-key signatures over the session keys; each side signs once per run);
 *   - sealing MB/s: SecureConn send + open of a frame, against raw ChaCha20-Poly1305 (node:crypto) encrypt +
 *     decrypt of the same sizes, for a small frame (200 B, a transaction announcement) and a large one
 *     (256 KiB, a TXS batch).
 */
import crypto from 'node:crypto';
import dh from 'noise-handshake/dh.js';
import { getPublicKey, sign, verifyFast } from '../../src/crypto/ed25519.js';
import { secureSession, sessionIdentity, type SecureConn } from '../../src/p2p/noise.js';
import type { Conn } from '../../src/p2p/transport.js';
import { systemClock } from '../../src/util/clock.js';
import { systemRandom } from '../../src/util/random.js';
import { nowMs, printRows, row, SMOKE, writeResult, type SummaryRow } from './common.js';

const DURATION_MS = SMOKE ? 300 : 3000;

/** Run `fn` repeatedly for `ms`; returns operations per second. */
function rate(fn: () => void, ms: number): number {
  let n = 0;
  const t0 = nowMs();
  let t = t0;
  while (t - t0 < ms) {
    for (let i = 0; i < 16; i++) fn();
    n += 16;
    t = nowMs();
  }
  return (n * 1000) / (t - t0);
}

async function rateAsync(fn: () => Promise<void>, ms: number): Promise<number> {
  let n = 0;
  const t0 = nowMs();
  while (nowMs() - t0 < ms) {
    await fn();
    n++;
  }
  return (n * 1000) / (nowMs() - t0);
}

/** A synchronous in-process pipe pair (frames delivered on the next microtask). */
function pipe(): [Conn, Conn] {
  const make = (inbound: boolean) => {
    let handler: ((f: Uint8Array) => void) | undefined;
    const queue: Uint8Array[] = [];
    const end = {
      other: undefined as unknown as { deliver(f: Uint8Array): void },
      deliver(f: Uint8Array) { if (handler) queueMicrotask(() => handler!(f)); else queue.push(f); },
      conn: {
        remote: 'bench', inbound, bufferedAmount: 0,
        send(f: Uint8Array) { end.other.deliver(f); },
        close() {}, onClose() {}, pause() {}, resume() {},
        onMessage(fn: (f: Uint8Array) => void) { handler = fn; for (const f of queue.splice(0)) fn(f); },
      } as Conn,
    };
    return end;
  };
  const a = make(false), b = make(true);
  a.other = b;
  b.other = a;
  return [a.conn, b.conn];
}

const nodeKey = () => { const sk = new Uint8Array(crypto.randomBytes(32)); return { secretKey: sk, publicKey: getPublicKey(sk) }; };
const gh = new Uint8Array(32);
const hello = () => ({ version: 2, chainId: 'bench', genesisHash: gh, listen: '', headHeight: 0, headHash: gh });

async function handshake(a: ReturnType<typeof sessionIdentity>, b: ReturnType<typeof sessionIdentity>): Promise<[SecureConn, SecureConn]> {
  const [x, y] = pipe();
  const common = { random: systemRandom, clock: systemClock, timeoutMs: 10_000, hello, accept: () => {} };
  const [s, t] = await Promise.all([secureSession(x, { ...common, initiator: true, identity: a }), secureSession(y, { ...common, initiator: false, identity: b })]);
  return [s.conn, t.conn];
}

const idA = sessionIdentity(nodeKey(), systemRandom);
const idB = sessionIdentity(nodeKey(), systemRandom);

// ---- raw public-key operations
const peerPub = dh.generateKeyPair().publicKey;
const keyPair = dh.generateKeyPair();
const keygen = rate(() => { dh.generateKeyPair(Buffer.from(crypto.randomBytes(32))); }, DURATION_MS);
const agree = rate(() => { dh.dh(peerPub, keyPair); }, DURATION_MS);
const vk = nodeKey();
const vmsg = new Uint8Array(62);
const vsig = sign(vmsg, vk.secretKey);
const verifies = rate(() => { verifyFast(vsig, vmsg, vk.publicKey); }, DURATION_MS);
const rawHandshakeBound = 1 / (2 / keygen + 6 / agree + 2 / verifies);

// ---- handshakes
const handshakes = await rateAsync(async () => { await handshake(idA, idB); }, DURATION_MS);

// ---- sealing
const [tx, rx] = await handshake(idA, idB);
let received = 0;
rx.onMessage(() => { received++; });
/** Sealed round trips (send → open) of `size`-byte frames per second, in MB/s of plaintext. */
async function sealRate(size: number): Promise<number> {
  const frame = new Uint8Array(crypto.randomBytes(size));
  const batch = Math.max(1, Math.floor((4 << 20) / size));
  const t0 = nowMs();
  let sent = 0;
  received = 0;
  while (nowMs() - t0 < DURATION_MS) {
    for (let i = 0; i < batch; i++) tx.send(frame);
    sent += batch;
    await new Promise<void>((r) => setImmediate(r));
  }
  while (received < sent) await new Promise<void>((r) => setImmediate(r));
  return (sent * size) / 1e6 / ((nowMs() - t0) / 1000);
}
function rawSealRate(size: number): number {
  const key = crypto.randomBytes(32);
  const nonce = Buffer.alloc(12);
  const frame = crypto.randomBytes(size);
  const r = rate(() => {
    const c = crypto.createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    const ct = c.update(frame);
    c.final();
    const tag = c.getAuthTag();
    const d = crypto.createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    d.setAuthTag(tag);
    d.update(ct);
    d.final();
  }, DURATION_MS);
  return (r * size) / 1e6;
}

const rows: SummaryRow[] = [
  row('session handshakes (Noise XX, both sides, one thread)', handshakes, 'handshakes/s',
    { name: 'public-key operations alone (2 X25519 keygen + 6 X25519 + 2 Ed25519 verify)', value: rawHandshakeBound, unit: 'handshakes/s' }),
];
for (const size of [200, 256 * 1024]) {
  const sealed = await sealRate(size);
  const raw = rawSealRate(size);
  rows.push(row(`sealed frames of ${size} B (send + open)`, sealed, 'MB/s', { name: 'raw ChaCha20-Poly1305 encrypt + decrypt, node:crypto', value: raw, unit: 'MB/s' }));
}
printRows(rows);
writeResult('session', {
  primitives: { x25519KeygenPerSec: Math.round(keygen), x25519AgreePerSec: Math.round(agree), ed25519VerifyPerSec: Math.round(verifies) },
  summary: rows,
});
process.exit(0);
