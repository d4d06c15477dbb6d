/**
 * P2P wire messages. After the Noise handshake (noise.ts), each sealed frame holds one message: a
 * MessagePack array whose first item is the message type. Frames are encoded canonically (src/encoding/canonical.ts) and decoded strictly:
 * wrong shapes, unknown types and frames over their type's size limit are protocol errors (and cost the
 * sender score). Blocks and transactions travel as their canonical encodings (bytes) and are decoded by the
 * ledger's own decoders.
 *
 *  type  name        fields                                                   size limit
 *   0, 1        retired (HELLO and AUTH of protocol version 1; the Noise handshake replaced them)
 *   2    STATUS      headHeight, headHash, headSlot                                                   256 B
 *   3    TXS         [txBytes…] (≤ 1024)                                                              2 MiB
 *   4    INV_TX      [txId…] (≤ 4096)                                                               192 KiB
 *   5    GET_TX      [txId…] (≤ 4096)                                                               192 KiB
 *   6    BLOCK       blockBytes                                                     maxBlockBytes + 64 KiB
 *   7    INV_BLOCK   blockHash, height                                                                256 B
 *   8    GET_HASHES  reqId, locator [hash…] (≤ 64), max (≤ 4096)                                    4 KiB
 *   9    HASHES      reqId, forkHeight, [hash…] (≤ 4096)                                            160 KiB
 *  10    GET_BLOCKS  reqId, [hash…] (≤ 128)                                                           8 KiB
 *  11    BLOCKS      reqId, [blockBytes…]                                                       frame maximum
 *  12    GET_ADDR    —                                                                                  64 B
 *  13    ADDR        [ws://host:port …] (≤ 64)                                                      16 KiB
 *  14    EVIDENCE    headerA, headerB: two signed headers of one validator for one slot             2 KiB
 *                    (equivocation proof: verifiable without state, relayed once per slot+proposer)
 *  15    CMPCT_BLOCK reqId (0 = pushed), header, shortIds (6 bytes each), [[index, txBytes]…] prefilled
 *                                                                          maxBlockBytes + 512 KiB
 *  16    GET_CMPCT   reqId, blockHash                                                                  256 B
 *  17    GET_BLOCK_TXS reqId, blockHash, [index…] (ascending, ≤ 65535)                               256 KiB
 *  18    BLOCK_TXS   reqId, [txBytes…] (the requested indexes, in order)             maxBlockBytes + 64 KiB
 */
import { decodeCanonical, encodeCanonical, type CanonicalValue } from '../encoding/canonical.js';

export const PROTOCOL_VERSION = 2;

export const MSG = {
  STATUS: 2, TXS: 3, INV_TX: 4, GET_TX: 5, BLOCK: 6, INV_BLOCK: 7,
  GET_HASHES: 8, HASHES: 9, GET_BLOCKS: 10, BLOCKS: 11, GET_ADDR: 12, ADDR: 13, EVIDENCE: 14,
  CMPCT_BLOCK: 15, GET_CMPCT: 16, GET_BLOCK_TXS: 17, BLOCK_TXS: 18,
} as const;

export const MAX_TXS_PER_MSG = 1024;
export const MAX_INV = 4096;
export const MAX_LOCATOR = 64;
export const MAX_HASHES = 4096;
export const MAX_GET_BLOCKS = 128;
export const MAX_ADDRS = 64;
/** Transactions a compact block (or a request for its transactions) may name. */
export const MAX_COMPACT_TXS = 65_535;

export type Message =
  | { type: typeof MSG.STATUS; headHeight: number; headHash: Uint8Array; headSlot: number }
  | { type: typeof MSG.TXS; txs: Uint8Array[] }
  | { type: typeof MSG.INV_TX; ids: Uint8Array[] }
  | { type: typeof MSG.GET_TX; ids: Uint8Array[] }
  | { type: typeof MSG.BLOCK; block: Uint8Array }
  | { type: typeof MSG.INV_BLOCK; hash: Uint8Array; height: number }
  | { type: typeof MSG.GET_HASHES; reqId: number; locator: Uint8Array[]; max: number }
  | { type: typeof MSG.HASHES; reqId: number; forkHeight: number; hashes: Uint8Array[] }
  | { type: typeof MSG.GET_BLOCKS; reqId: number; hashes: Uint8Array[] }
  | { type: typeof MSG.BLOCKS; reqId: number; blocks: Uint8Array[] }
  | { type: typeof MSG.GET_ADDR }
  | { type: typeof MSG.ADDR; addrs: string[] }
  | { type: typeof MSG.EVIDENCE; headerA: Uint8Array; headerB: Uint8Array }
  | { type: typeof MSG.CMPCT_BLOCK; reqId: number; header: Uint8Array; shortIds: Uint8Array; prefilled: [number, Uint8Array][] }
  | { type: typeof MSG.GET_CMPCT; reqId: number; hash: Uint8Array }
  | { type: typeof MSG.GET_BLOCK_TXS; reqId: number; hash: Uint8Array; indexes: number[] }
  | { type: typeof MSG.BLOCK_TXS; reqId: number; txs: Uint8Array[] };

export class ProtocolError extends Error {
  readonly rule: 'malformed_frame' | 'unknown_type' | 'oversized';
  constructor(rule: ProtocolError['rule'], message: string) {
    super(message);
    this.name = 'ProtocolError';
    this.rule = rule;
  }
}

/** Per-type frame size limits; BLOCK and BLOCKS depend on the genesis block size limit. */
export function sizeLimits(maxBlockBytes: number): Record<number, number> {
  const frameMax = frameMaxBytes(maxBlockBytes);
  return {
    [MSG.STATUS]: 256, [MSG.TXS]: 2 * 1024 * 1024,
    [MSG.INV_TX]: 192 * 1024, [MSG.GET_TX]: 192 * 1024, [MSG.BLOCK]: maxBlockBytes + 64 * 1024, [MSG.INV_BLOCK]: 256,
    [MSG.GET_HASHES]: 4096, [MSG.HASHES]: 160 * 1024, [MSG.GET_BLOCKS]: 8192, [MSG.BLOCKS]: frameMax,
    [MSG.GET_ADDR]: 64, [MSG.ADDR]: 16 * 1024, [MSG.EVIDENCE]: 2048,
    [MSG.CMPCT_BLOCK]: maxBlockBytes + 512 * 1024, [MSG.GET_CMPCT]: 256, [MSG.GET_BLOCK_TXS]: 256 * 1024, [MSG.BLOCK_TXS]: maxBlockBytes + 64 * 1024,
  };
}

/** The transport's hard frame limit: room for one maximal block response plus a margin. */
export function frameMaxBytes(maxBlockBytes: number): number {
  return Math.max(16 * 1024 * 1024, 2 * maxBlockBytes + 1024 * 1024);
}

export function encodeMessage(m: Message): Uint8Array {
  let v: CanonicalValue[];
  switch (m.type) {
    case MSG.STATUS: v = [m.type, m.headHeight, m.headHash, m.headSlot]; break;
    case MSG.TXS: v = [m.type, m.txs]; break;
    case MSG.INV_TX: case MSG.GET_TX: v = [m.type, m.ids]; break;
    case MSG.BLOCK: v = [m.type, m.block]; break;
    case MSG.INV_BLOCK: v = [m.type, m.hash, m.height]; break;
    case MSG.GET_HASHES: v = [m.type, m.reqId, m.locator, m.max]; break;
    case MSG.HASHES: v = [m.type, m.reqId, m.forkHeight, m.hashes]; break;
    case MSG.GET_BLOCKS: v = [m.type, m.reqId, m.hashes]; break;
    case MSG.BLOCKS: v = [m.type, m.reqId, m.blocks]; break;
    case MSG.GET_ADDR: v = [m.type]; break;
    case MSG.ADDR: v = [m.type, m.addrs]; break;
    case MSG.EVIDENCE: v = [m.type, m.headerA, m.headerB]; break;
    case MSG.CMPCT_BLOCK: v = [m.type, m.reqId, m.header, m.shortIds, m.prefilled]; break;
    case MSG.GET_CMPCT: v = [m.type, m.reqId, m.hash]; break;
    case MSG.GET_BLOCK_TXS: v = [m.type, m.reqId, m.hash, m.indexes]; break;
    case MSG.BLOCK_TXS: v = [m.type, m.reqId, m.txs]; break;
  }
  return encodeCanonical(v, 64);
}

// ---- strict field readers ----
const bad = (msg: string): never => { throw new ProtocolError('malformed_frame', msg); };
// Canonical decoding gives integers from 2^32 up as bigint (they are written as uint64).
const uint = (v: unknown, what: string, max = Number.MAX_SAFE_INTEGER): number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= max ? v
    : typeof v === 'bigint' && v >= 0n && v <= BigInt(max) ? Number(v) : bad(`${what}: expected an integer in 0..${max}`);
const bytes = (v: unknown, what: string, len?: number): Uint8Array => {
  if (!(v instanceof Uint8Array)) return bad(`${what}: expected bytes`);
  if (len !== undefined && v.length !== len) return bad(`${what}: expected ${len} bytes`);
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
};
const str = (v: unknown, what: string, max: number): string =>
  typeof v === 'string' && v.length <= max ? v : bad(`${what}: expected a string of at most ${max} chars`);
const list = <T>(v: unknown, what: string, max: number, item: (x: unknown, w: string) => T): T[] => {
  if (!Array.isArray(v)) return bad(`${what}: expected an array`);
  if (v.length > max) return bad(`${what}: ${v.length} items > ${max}`);
  return v.map((x, i) => item(x, `${what}[${i}]`));
};
const hash = (x: unknown, w: string) => bytes(x, w, 32);
const anyBytes = (x: unknown, w: string) => bytes(x, w);

/** For message types carrying a list: its position in the frame's array and its item limit. */
const LIST_AT: Record<number, [index: number, max: number]> = {
  [MSG.TXS]: [1, MAX_TXS_PER_MSG], [MSG.INV_TX]: [1, MAX_INV], [MSG.GET_TX]: [1, MAX_INV], [MSG.ADDR]: [1, MAX_ADDRS],
  [MSG.GET_HASHES]: [2, MAX_LOCATOR], [MSG.HASHES]: [3, MAX_HASHES], [MSG.GET_BLOCKS]: [2, MAX_GET_BLOCKS], [MSG.BLOCKS]: [2, MAX_GET_BLOCKS],
  [MSG.CMPCT_BLOCK]: [4, MAX_COMPACT_TXS], [MSG.GET_BLOCK_TXS]: [3, MAX_COMPACT_TXS], [MSG.BLOCK_TXS]: [2, MAX_COMPACT_TXS],
};

/**
 * The item count of the array at position `index` of the frame's top-level array, read from the headers
 * alone (skipping the integers, strings and byte strings before it); undefined if the frame does not have
 * that shape (the full decode then rejects it). Lets a frame of millions of tiny items be refused before
 * MessagePack decoding spends time on them.
 */
function listCountAt(f: Uint8Array, index: number): number | undefined {
  let o = 1; // after the fixarray header of the frame
  const be = (at: number, n: number): number | undefined => {
    if (at + n > f.length) return undefined;
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 256 + f[at + i]!;
    return v;
  };
  for (let i = 0; i < index; i++) {
    const b = f[o];
    if (b === undefined) return undefined;
    let len: number | undefined;
    if (b <= 0x7f) { o += 1; continue; }
    if (b >= 0xcc && b <= 0xcf) { o += 1 + (1 << (b - 0xcc)); continue; }
    if (b >= 0xa0 && b <= 0xbf) { o += 1 + (b & 0x1f); continue; }
    if (b === 0xc4 || b === 0xd9) len = be(o + 1, 1), o += 2;
    else if (b === 0xc5 || b === 0xda) len = be(o + 1, 2), o += 3;
    else if (b === 0xc6 || b === 0xdb) len = be(o + 1, 4), o += 5;
    else return undefined;
    if (len === undefined) return undefined;
    o += len;
  }
  const h = f[o];
  if (h === undefined) return undefined;
  if (h >= 0x90 && h <= 0x9f) return h & 0x0f;
  if (h === 0xdc) return be(o + 1, 2);
  if (h === 0xdd) return be(o + 1, 4);
  return undefined;
}

/**
 * The fast path for the two bulk frames, TXS [3, [bytes…]] and BLOCKS [11, reqId, [bytes…]]: reads the one
 * canonical layout (shortest-form headers and integers, nothing after the list) directly, without
 * MessagePack decoding and the re-encode check. Accept-only, like decodeTxStrict: any other input, valid or
 * not, returns undefined and the general decoder decides, so this cannot change what is accepted or how a
 * rejection reads (property-tested against the general decoder). Transactions come back as views into the
 * frame (decodeTx keeps none of them); blocks as copies, since a block may be kept long after its frame.
 */
export function decodeBinListFrame(f: Uint8Array, type: typeof MSG.TXS | typeof MSG.BLOCKS): Message | undefined {
  const n = f.length;
  const be = (at: number, k: number): number => {
    let v = 0;
    for (let i = 0; i < k; i++) v = v * 256 + f[at + i]!;
    return v;
  };
  let p: number;
  let reqId = 0;
  if (type === MSG.TXS) {
    if (n < 3 || f[0] !== 0x92 || f[1] !== MSG.TXS) return undefined;
    p = 2;
  } else {
    if (n < 4 || f[0] !== 0x93 || f[1] !== MSG.BLOCKS) return undefined;
    const c = f[2]!; // reqId: a canonical uint below 2^32
    if (c < 0x80) { reqId = c; p = 3; }
    else if (c === 0xcc && n > 4 && f[3]! >= 0x80) { reqId = f[3]!; p = 4; }
    else if (c === 0xcd && n > 5 && (reqId = be(3, 2)) >= 0x100) p = 5;
    else if (c === 0xce && n > 7 && (reqId = be(3, 4)) >= 0x10000) p = 7;
    else return undefined;
  }
  // The list header, in its shortest form.
  const h = f[p]!;
  let count: number;
  if (h >= 0x90 && h <= 0x9f) { count = h & 0x0f; p += 1; }
  else if (h === 0xdc && p + 3 <= n && (count = be(p + 1, 2)) >= 16) p += 3;
  else if (h === 0xdd && p + 5 <= n && (count = be(p + 1, 4)) >= 0x10000) p += 5;
  else return undefined;
  if (count > (type === MSG.TXS ? MAX_TXS_PER_MSG : MAX_GET_BLOCKS)) return undefined;
  const items: Uint8Array[] = new Array(count);
  for (let i = 0; i < count; i++) {
    if (p >= n) return undefined;
    const b = f[p]!;
    let len: number;
    if (b === 0xc4 && p + 2 <= n) { len = f[p + 1]!; p += 2; }
    else if (b === 0xc5 && p + 3 <= n && (len = be(p + 1, 2)) >= 0x100) p += 3;
    else if (b === 0xc6 && p + 5 <= n && (len = be(p + 1, 4)) >= 0x10000) p += 5;
    else return undefined;
    if (p + len > n) return undefined;
    // Plain Uint8Arrays, as the general decoder gives (f may be a Buffer, whose slice() would not copy).
    const view = new Uint8Array(f.buffer, f.byteOffset + p, len);
    items[i] = type === MSG.TXS ? view : new Uint8Array(view);
    p += len;
  }
  if (p !== n) return undefined;
  return type === MSG.TXS ? { type, txs: items } : { type, reqId, blocks: items };
}

/** Decode one frame. Throws ProtocolError naming what was wrong. */
export function decodeMessage(frame: Uint8Array, limits: Record<number, number>): Message {
  const t = frame.length > 1 ? frame[1] : undefined;
  if ((t === MSG.TXS || t === MSG.BLOCKS) && frame.length <= limits[t]!) {
    const fast = decodeBinListFrame(frame, t);
    if (fast) return fast;
  }
  return decodeMessageGeneric(frame, limits);
}

/** The general decoder: canonical MessagePack, then the fields; decides every frame and names the fault. */
export function decodeMessageGeneric(frame: Uint8Array, limits: Record<number, number>): Message {
  if (frame.length === 0) bad('empty frame');
  // Cheap pre-checks of the type byte and of a list's item count, so an oversized frame, or one holding
  // far more items than its type allows, is refused before it is parsed.
  const t0 = frame[0]! >= 0x90 && frame[0]! <= 0x9f && frame.length > 1 ? frame[1]! : -1;
  if (limits[t0] !== undefined && frame.length > limits[t0]!) throw new ProtocolError('oversized', `type ${t0} frame of ${frame.length} bytes > ${limits[t0]}`);
  const listAt = LIST_AT[t0];
  if (listAt) {
    const n = listCountAt(frame, listAt[0]);
    if (n !== undefined && n > listAt[1]) bad(`type ${t0}: list of ${n} items > ${listAt[1]}`);
  }
  let v: unknown;
  try {
    // Canonical only: the one encoding encodeMessage writes (no non-minimal integers or lengths, floats, maps or
    // extension types), so every message has exactly one frame.
    v = decodeCanonical(frame, Number.MAX_SAFE_INTEGER);
  } catch (e) {
    return bad(`not canonical MessagePack: ${(e as Error).message}`);
  }
  if (!Array.isArray(v) || v.length === 0) return bad('frame is not a non-empty array');
  const type = v[0];
  if (typeof type !== 'number' || !(type in limits)) throw new ProtocolError('unknown_type', `unknown message type ${String(type)}`);
  if (frame.length > limits[type]!) throw new ProtocolError('oversized', `type ${type} frame of ${frame.length} bytes > ${limits[type]}`);
  const arity = (n: number) => { if (v.length !== n) bad(`type ${type}: expected ${n} items, got ${(v as unknown[]).length}`); };
  const f = v as unknown[];
  switch (type) {
    case MSG.STATUS: arity(4); return { type, headHeight: uint(f[1], 'headHeight'), headHash: hash(f[2], 'headHash'), headSlot: uint(f[3], 'headSlot') };
    case MSG.TXS: arity(2); return { type, txs: list(f[1], 'txs', MAX_TXS_PER_MSG, anyBytes) };
    case MSG.INV_TX: arity(2); return { type, ids: list(f[1], 'ids', MAX_INV, hash) };
    case MSG.GET_TX: arity(2); return { type, ids: list(f[1], 'ids', MAX_INV, hash) };
    case MSG.BLOCK: arity(2); return { type, block: bytes(f[1], 'block') };
    case MSG.INV_BLOCK: arity(3); return { type, hash: hash(f[1], 'hash'), height: uint(f[2], 'height') };
    case MSG.GET_HASHES: arity(4); return { type, reqId: uint(f[1], 'reqId'), locator: list(f[2], 'locator', MAX_LOCATOR, hash), max: uint(f[3], 'max', MAX_HASHES) };
    case MSG.HASHES: arity(4); return { type, reqId: uint(f[1], 'reqId'), forkHeight: uint(f[2], 'forkHeight'), hashes: list(f[3], 'hashes', MAX_HASHES, hash) };
    case MSG.GET_BLOCKS: arity(3); return { type, reqId: uint(f[1], 'reqId'), hashes: list(f[2], 'hashes', MAX_GET_BLOCKS, hash) };
    case MSG.BLOCKS: arity(3); return { type, reqId: uint(f[1], 'reqId'), blocks: list(f[2], 'blocks', MAX_GET_BLOCKS, anyBytes) };
    case MSG.GET_ADDR: arity(1); return { type };
    case MSG.ADDR: arity(2); return { type, addrs: list(f[1], 'addrs', MAX_ADDRS, (x, w) => str(x, w, 200)) };
    case MSG.EVIDENCE: arity(3); return { type, headerA: bytes(f[1], 'headerA'), headerB: bytes(f[2], 'headerB') };
    case MSG.CMPCT_BLOCK: {
      arity(5);
      const shortIds = bytes(f[3], 'shortIds');
      if (shortIds.length % 6 !== 0 || shortIds.length / 6 > MAX_COMPACT_TXS) bad(`shortIds: ${shortIds.length} bytes is not a whole number (≤ ${MAX_COMPACT_TXS}) of 6-byte ids`);
      const prefilled = list(f[4], 'prefilled', MAX_COMPACT_TXS, (x, w) => {
        if (!Array.isArray(x) || x.length !== 2) return bad(`${w}: expected [index, txBytes]`);
        return [uint(x[0], `${w}.index`, MAX_COMPACT_TXS), bytes(x[1], `${w}.tx`)] as [number, Uint8Array];
      });
      return { type, reqId: uint(f[1], 'reqId'), header: bytes(f[2], 'header'), shortIds, prefilled };
    }
    case MSG.GET_CMPCT: arity(3); return { type, reqId: uint(f[1], 'reqId'), hash: hash(f[2], 'hash') };
    case MSG.GET_BLOCK_TXS: arity(4); return { type, reqId: uint(f[1], 'reqId'), hash: hash(f[2], 'hash'), indexes: list(f[3], 'indexes', MAX_COMPACT_TXS, (x, w) => uint(x, w, MAX_COMPACT_TXS)) };
    case MSG.BLOCK_TXS: arity(3); return { type, reqId: uint(f[1], 'reqId'), txs: list(f[2], 'txs', MAX_COMPACT_TXS, anyBytes) };
  }
  throw new ProtocolError('unknown_type', `unknown message type ${String(type)}`);
}
