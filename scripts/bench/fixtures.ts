/**
 * Benchmark fixtures: many funded accounts with cached signing keys, a genesis for them, fast transfer
 * signing (KeyObjects kept per account instead of src's 256-entry cache), a KV wrapper that times the
 * store, and temp dirs.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeAddress } from '../../src/encoding/address.js';
import { encodeCanonical } from '../../src/encoding/canonical.js';
import { genesisFromJson, genesisToJson, DEFAULT_PARAMS, type Genesis } from '../../src/ledger/genesis.js';
import { decodeTx, txSigningMessage, TX_VERSION, type Tx, type UnsignedTx } from '../../src/ledger/tx.js';
import type { BatchOp, KV } from '../../src/storage/kv.js';
import { nowMs } from './common.js';

export const GENESIS_TIME = 1_700_000_000_000;
export const CHAIN_ID = 'meshledger-bench';

export interface Account { sk: Uint8Array; pk: Uint8Array; key: crypto.KeyObject; address: string; nonce: bigint }

const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** `n` accounts with deterministic seeds (label, i). */
export function makeAccounts(label: string, n: number): Account[] {
  const out: Account[] = [];
  for (let i = 0; i < n; i++) {
    const sk = new Uint8Array(crypto.createHash('sha256').update(`meshledger-bench:${label}:${i}`).digest());
    const key = crypto.createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, sk]), format: 'der', type: 'pkcs8' });
    const pk = new Uint8Array(Buffer.from(crypto.createPublicKey(key).export({ format: 'jwk' }).x as string, 'base64url'));
    out.push({ sk, pk, key, address: encodeAddress(pk), nonce: 0n });
  }
  return out;
}

export function makeGenesis(validators: Account[], funded: Account[], amount: bigint, o: { genesisTime?: number; slotMs?: number } = {}): Genesis {
  const p = DEFAULT_PARAMS;
  return genesisFromJson({
    chainId: CHAIN_ID, genesisTime: o.genesisTime ?? GENESIS_TIME, slotMs: o.slotMs ?? 1000,
    validators: validators.map((v) => v.address),
    alloc: funded.map((a) => ({ address: a.address, amount: amount.toString() })),
    params: {
      minFee: p.minFee.toString(), maxBlockTxs: p.maxBlockTxs, maxBlockBytes: p.maxBlockBytes, maxMemoBytes: p.maxMemoBytes,
      maxClockDriftMs: p.maxClockDriftMs, decimals: p.decimals, symbol: p.symbol,
    },
  });
}

export function writeGenesisJson(file: string, g: Genesis): void {
  fs.writeFileSync(file, JSON.stringify(genesisToJson(g), null, 2) + '\n');
}

/** A signed transfer from `from` (its next nonce, which is then incremented); same bytes as signTx. */
export function transfer(from: Account, to: Uint8Array, amount = 1000n, fee = 1n, memo = ''): Tx {
  const u: UnsignedTx = { chainId: CHAIN_ID, from: from.pk, to, amount, fee, nonce: from.nonce++, memo };
  const sig = new Uint8Array(crypto.sign(null, txSigningMessage(u), from.key));
  return decodeTx(encodeCanonical([TX_VERSION, u.chainId, u.from, u.to, u.amount, u.fee, u.nonce, u.memo, sig]));
}

export function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `meshledger-bench-${prefix}-`));
}

export function rmDir(d: string): void {
  fs.rmSync(d, { recursive: true, force: true });
}

/** Time spent awaiting the store (sequential callers only: overlapping calls would double count). */
export class TimedKV implements KV {
  ms = 0;
  puts = 0;
  dels = 0;
  batches = 0;
  reads = 0;
  constructor(readonly inner: KV) {}
  reset(): void { this.ms = 0; this.puts = 0; this.dels = 0; this.batches = 0; this.reads = 0; }
  async #t<T>(p: () => Promise<T>): Promise<T> {
    const t0 = nowMs();
    try { return await p(); } finally { this.ms += nowMs() - t0; }
  }
  get(key: Uint8Array) { this.reads++; return this.#t(() => this.inner.get(key)); }
  getMany(keys: Uint8Array[]) { this.reads += keys.length; return this.#t(() => this.inner.getMany(keys)); }
  put(key: Uint8Array, value: Uint8Array) { this.puts++; return this.#t(() => this.inner.put(key, value)); }
  del(key: Uint8Array) { this.dels++; return this.#t(() => this.inner.del(key)); }
  batch(ops: BatchOp[]) {
    this.batches++;
    for (const o of ops) { if (o.type === 'put') this.puts++; else this.dels++; }
    return this.#t(() => this.inner.batch(ops));
  }
  iterator(o: Parameters<KV['iterator']>[0]) { return this.inner.iterator(o); }
  close() { return this.inner.close(); }
}

/** Raw LevelDB batched-put rate: `batches` batches of `per` puts, 32-byte random keys, 150-byte values. */
export async function rawLevelPutRate(batches: number, per = 1000): Promise<number> {
  const { openLevel } = await import('../../src/storage/kv.js');
  const dir = tmpDir('rawlevel');
  const db = await openLevel(dir);
  try {
    const value = new Uint8Array(150).fill(7);
    const all: BatchOp[][] = [];
    for (let b = 0; b < batches; b++) {
      const ops: BatchOp[] = [];
      for (let i = 0; i < per; i++) ops.push({ type: 'put', key: new Uint8Array(crypto.randomBytes(32)), value });
      all.push(ops);
    }
    await db.batch(all[0]!); // warm-up
    const t0 = nowMs();
    for (let b = 1; b < batches; b++) await db.batch(all[b]!);
    return ((batches - 1) * per) / ((nowMs() - t0) / 1000);
  } finally {
    await db.close();
    rmDir(dir);
  }
}
