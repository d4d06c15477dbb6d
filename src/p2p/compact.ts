/**
 * Compact blocks: a block travels as its signed header, a 6-byte short id per transaction and the few
 * transactions the sender expects the receiver to lack; the receiver rebuilds it from what it holds.
 *
 *   key          = SHA-256("meshledger:cmpct:v1" ‖ 0x00 ‖ block hash)
 *   shortId(tx)  = the first 6 bytes of SHA-256(key ‖ tx id), big-endian, as a 48-bit number
 *
 * The key depends on the block hash, which nobody knows before the block is signed, so no one can prepare
 * transactions whose short ids collide in it, except its proposer, who can only slow its own block that way
 * (a collision makes the receiver ask for those transactions by index, or for the full block). With n
 * transactions in a block and m held by the receiver, the chance that any of them collide by accident is at
 * most n·m / 2^48 (10^4 × 10^5 → 3.6 × 10^-6 per block), and every collision is caught: a short id that
 * names two held transactions is asked for, and a rebuilt block whose transactions root does not match its
 * header is fetched in full instead.
 */
import { concatBytes, utf8 } from '../encoding/bytes.js';
import { sha256 } from '../crypto/hash.js';
import type { Tx } from '../ledger/tx.js';

export const SHORT_ID_BYTES = 6;
const KEY_DOMAIN = concatBytes(utf8('meshledger:cmpct:v1'), new Uint8Array([0]));

export function compactKey(blockHash: Uint8Array): Uint8Array {
  return sha256(concatBytes(KEY_DOMAIN, blockHash));
}

/** The short id of a transaction id under `key` (a 48-bit number). */
export function shortId(key: Uint8Array, txId: Uint8Array, scratch = new Uint8Array(64)): number {
  scratch.set(key, 0);
  scratch.set(txId, 32);
  const h = sha256(scratch);
  return h[0]! * 2 ** 40 + h[1]! * 2 ** 32 + ((h[2]! << 24) >>> 0) + (h[3]! << 16) + (h[4]! << 8) + h[5]!;
}

/** The short ids of a block's transactions, packed 6 bytes each. */
export function packShortIds(key: Uint8Array, txs: readonly Tx[]): Uint8Array {
  const out = new Uint8Array(txs.length * SHORT_ID_BYTES);
  const scratch = new Uint8Array(64);
  txs.forEach((tx, i) => writeShortId(out, i * SHORT_ID_BYTES, shortId(key, tx.id, scratch)));
  return out;
}

export function readShortId(packed: Uint8Array, i: number): number {
  const o = i * SHORT_ID_BYTES;
  return packed[o]! * 2 ** 40 + packed[o + 1]! * 2 ** 32 + ((packed[o + 2]! << 24) >>> 0) + (packed[o + 3]! << 16) + (packed[o + 4]! << 8) + packed[o + 5]!;
}

function writeShortId(out: Uint8Array, o: number, v: number): void {
  const hi = Math.floor(v / 2 ** 32);
  const lo = v >>> 0;
  out[o] = (hi >>> 8) & 0xff;
  out[o + 1] = hi & 0xff;
  out[o + 2] = lo >>> 24;
  out[o + 3] = (lo >>> 16) & 0xff;
  out[o + 4] = (lo >>> 8) & 0xff;
  out[o + 5] = lo & 0xff;
}

/** What a receiver holds, by short id under one key: a transaction, or COLLISION when two share the id. */
export type ShortIdIndex = Map<number, Tx | typeof COLLISION>;
export const COLLISION = Symbol('collision');

/** Index `txs` by short id under `key`. */
export function indexByShortId(key: Uint8Array, txs: Iterable<Tx>): ShortIdIndex {
  const index: ShortIdIndex = new Map();
  const scratch = new Uint8Array(64);
  for (const tx of txs) {
    const id = shortId(key, tx.id, scratch);
    const had = index.get(id);
    if (had === undefined) index.set(id, tx);
    else if (had !== COLLISION && had.idHex !== tx.idHex) index.set(id, COLLISION);
  }
  return index;
}

/**
 * Fill what can be filled: the prefilled transactions, then every short id that names exactly one held
 * transaction. `missing` lists the indexes to ask the sender for (unknown or ambiguous short ids), ascending.
 */
export function rebuild(count: number, packed: Uint8Array, prefilled: readonly (readonly [number, Tx])[], index: ShortIdIndex): { txs: (Tx | undefined)[]; missing: number[] } {
  const txs = new Array<Tx | undefined>(count);
  for (const [i, tx] of prefilled) txs[i] = tx;
  const missing: number[] = [];
  for (let i = 0; i < count; i++) {
    if (txs[i]) continue;
    const t = index.get(readShortId(packed, i));
    if (t === undefined || t === COLLISION) missing.push(i);
    else txs[i] = t;
  }
  return { txs, missing };
}
