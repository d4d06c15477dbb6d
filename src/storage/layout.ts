/**
 * THE on-disk format. One LevelDB database per network, at <datadir>/chains/<chainId>-<genesis hash prefix>/
 * (src/node/node.ts chainDbPath). Every key this program writes has its one-byte prefix listed here; a new
 * keyspace is not added anywhere else. Keys and values are raw bytes; values are canonical MessagePack
 * unless noted. Heights and slots in keys are big-endian u64 so that they sort numerically.
 *
 *  prefix  key                                   value
 *  'V'     V                                     database format version: canonical uint
 *  'G'     G                                     genesis block hash (32 bytes, raw) — a datadir never changes network
 *  'T'     T                                     best-chain head block hash (32 bytes, raw)
 *  'L'     L                                     state lattice of the head (2048 bytes, raw; see ledger/statehash)
 *  'b'     b | blockHash                         block bytes (canonical block encoding), any branch
 *  'e'     e | blockHash                         block index entry: [height, slot, parentHash]
 *  'i'     i | blockHash                         block found invalid after it was stored: rule name (utf-8)
 *  'n'     n | height                            best-chain block hash at this height (32 bytes, raw)
 *  'a'     a | publicKey                         account: [balance, nonce]; absent = empty account
 *  'u'     u | blockHash                         undo data of a best-chain block: [[publicKey, balance, nonce], …]
 *                                                (pre-block values of every touched account, sorted by key)
 *  't'     t | txId                              best-chain transaction location (raw, 44 bytes):
 *                                                blockHash(32) | height(u64) | index(u32)
 *  'x'     x | publicKey | height                account history: the transfers of the best-chain block at
 *                                                `height` that name this account, as raw 5-byte entries
 *                                                index(u32) | dir(u8) (0 = sent, 1 = received), ascending;
 *                                                one record per account per block, not one per transfer
 *  'm'     m | txId                              pending (mempool) transaction: signed tx bytes (raw) — local, not consensus
 *  'q'     q | slot | proposer | blockHash       equivocation evidence: the signed header bytes (raw)
 *  'p'     p | address (utf-8)                   peer address book entry (written by src/p2p/addrbook.ts)
 *  'B'     B | nodeId                            peer ban: [untilMs, reason] (written by src/p2p/scoring.ts)
 *
 * Connecting or disconnecting blocks writes accounts, 'n', 't', 'x', 'u', 'L' and 'T' in ONE batch, so a
 * crash leaves either the old head with its state or the new head with its state, never a mix.
 *
 * Writers: the chain writes V G T L b e i n a u t x q (encoded and read in src/chain/store.ts); the mempool
 * writes 'm'; P2P writes 'p' (address book) and 'B' (bans).
 */
import { concatBytes, writeU64be } from '../encoding/bytes.js';

const P = (c: string): Uint8Array => new Uint8Array([c.charCodeAt(0)]);
const one = (c: string) => { const p = P(c); return () => p; };
// Keys are built in one allocation each (block application builds ~4 per transaction).
const keyed = (c: string) => {
  const p = c.charCodeAt(0);
  return (k: Uint8Array) => { const out = new Uint8Array(1 + k.length); out[0] = p; out.set(k, 1); return out; };
};
const X = 'x'.charCodeAt(0);
const N = 'n'.charCodeAt(0);

export const layout = {
  version: one('V'),
  genesis: one('G'),
  tip: one('T'),
  lattice: one('L'),
  block: keyed('b'),
  entry: keyed('e'),
  invalid: keyed('i'),
  height: (h: number) => { const out = new Uint8Array(9); out[0] = N; writeU64be(out, 1, h); return out; },
  account: keyed('a'),
  undo: keyed('u'),
  tx: keyed('t'),
  history: (pk: Uint8Array, height: number) => {
    const out = new Uint8Array(1 + pk.length + 8);
    out[0] = X;
    out.set(pk, 1);
    writeU64be(out, 1 + pk.length, height);
    return out;
  },
  historyPrefix: keyed('x'),
  mempool: keyed('m'),
  evidence: (slot: number, proposer: Uint8Array, hash: Uint8Array) => { const s8 = new Uint8Array(8); writeU64be(s8, 0, slot); return concatBytes(P('q'), s8, proposer, hash); },
  peer: (addr: string) => concatBytes(P('p'), new TextEncoder().encode(addr)),
  ban: keyed('B'),
  /** The range [prefix, prefix+1) for iterating one keyspace. */
  range(prefix: Uint8Array): { gte: Uint8Array; lt: Uint8Array } {
    const lt = new Uint8Array(prefix);
    let i = lt.length - 1;
    while (i >= 0 && lt[i] === 0xff) lt[i--] = 0;
    if (i < 0) throw new Error('prefix has no upper bound');
    lt[i]!++;
    return { gte: prefix, lt };
  },
  prefix: P,
} as const;

/**
 * The format written by this version. 2: 't' values raw, 'x' one record per account per block (format 1
 * had canonical 't' values and one 'x' key per transfer). Older datadirs are refused with a clear error.
 */
export const DB_VERSION = 2;
