/**
 * Transactions: canonical encoding, signing message, id, and the context-free rules.
 *
 * Signed encoding (canonical MessagePack array of 9):
 *   [version=1, chainId: str, from: bin32 (sender public key), to: bin32 (recipient public key),
 *    amount: uint, fee: uint, nonce: uint, memo: str, signature: bin64]
 * Unsigned encoding: the same array without the signature (8 elements).
 * Signing message: ASCII "meshledger:tx:v1", one 0x00 byte, then the unsigned encoding.
 * Transaction id: SHA-256 of the signed encoding.
 */
import { decodeCanonical, encodeCanonical, EncodingError, expectArray, expectBytes, expectString, expectU64 } from '../encoding/canonical.js';
import { concatBytes, fromHexTrusted, toHex, U64_MAX, utf8 } from '../encoding/bytes.js';
import { sha256Hex } from '../crypto/hash.js';
import { sign as ed25519Sign, getPublicKey, type VerifyItem } from '../crypto/ed25519.js';
import { RuleError } from './rules.js';
import type { GenesisParams } from './genesis.js';

export const TX_VERSION = 1;
export const TX_SIGNING_PREFIX = concatBytes(utf8('meshledger:tx:v1'), new Uint8Array([0]));
/** Upper bound on an encoded transaction: 64-char chain id and 1 KiB memo fit with room to spare. */
export const MAX_TX_BYTES = 1536;

export interface UnsignedTx {
  chainId: string;
  from: Uint8Array;
  to: Uint8Array;
  amount: bigint;
  fee: bigint;
  nonce: bigint;
  memo: string;
}

export interface Tx extends UnsignedTx {
  readonly signature: Uint8Array;
  /** The canonical signed encoding: exactly the bytes that were received or produced. */
  readonly bytes: Uint8Array;
  /** bytes.length, without making the bytes. */
  readonly byteLength: number;
  readonly id: Uint8Array;
  readonly idHex: string;
}

function unsignedFields(u: UnsignedTx): (string | number | bigint | Uint8Array)[] {
  return [TX_VERSION, u.chainId, u.from, u.to, u.amount, u.fee, u.nonce, u.memo];
}

export function encodeUnsignedTx(u: UnsignedTx): Uint8Array {
  return encodeCanonical(unsignedFields(u));
}

export function txSigningMessage(u: UnsignedTx): Uint8Array {
  return concatBytes(TX_SIGNING_PREFIX, encodeUnsignedTx(u));
}

/** Build, sign and encode. `secretKey` must belong to `u.from`. */
export function signTx(u: UnsignedTx, secretKey: Uint8Array): Tx {
  const pub = getPublicKey(secretKey);
  if (toHex(pub) !== toHex(u.from)) throw new Error('secret key does not match the sender public key');
  const signature = ed25519Sign(txSigningMessage(u), secretKey);
  const bytes = encodeCanonical([...unsignedFields(u), signature]);
  return new SignedTx(u, bytes);
}

/**
 * A decoded transaction, kept compact because a node holds many (100k pending ones is ordinary): the
 * scalar fields, the id, and the signed bytes held as a one-byte (Latin-1) string. A string lives on the
 * V8 heap, which moves and compacts it; a Uint8Array per transaction costs an ArrayBuffer, a backing store
 * and a malloc'd block besides its 150-odd bytes (~350 B of RSS more per pending transaction, measured).
 * `bytes`, `from`, `to`, `signature` and `id` are made on access (canonical form fixes the offsets).
 * A plain object with every field materialized cost ~1.5 KB of heap per transaction.
 */
class SignedTx implements Tx {
  readonly chainId: string;
  readonly memo: string;
  // amount, fee, nonce: a number while it is a safe integer (a small one costs no allocation at all), else
  // the bigint; the getters always answer bigint.
  readonly #amount: number | bigint;
  readonly #fee: number | bigint;
  readonly #nonce: number | bigint;
  readonly #raw: string;
  readonly idHex: string;
  /** Offset of the sender key in the bytes (the recipient's follows 34 bytes later, after its bin header). */
  readonly #fromAt: number;

  constructor(u: UnsignedTx, bytes: Uint8Array, compact?: { amount: number | bigint; fee: number | bigint; nonce: number | bigint }) {
    const chain = internChainId(u.chainId);
    this.chainId = chain.id;
    this.#amount = compact ? compact.amount : compactU64(u.amount);
    this.#fee = compact ? compact.fee : compactU64(u.fee);
    this.#nonce = compact ? compact.nonce : compactU64(u.nonce);
    this.memo = u.memo;
    this.#raw = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
    this.idHex = sha256Hex(bytes);
    // [0x99, version, chainId (str header + utf-8), 0xc4 0x20, from(32), 0xc4 0x20, to(32), …, 0xc4 0x40, sig(64)]
    this.#fromAt = chain.fromAt;
    const f = this.#fromAt;
    if (bytes[f - 2] !== 0xc4 || bytes[f - 1] !== 32 || bytes[f + 32] !== 0xc4 || bytes[f + 33] !== 32 || bytes[bytes.length - 66] !== 0xc4 || bytes[bytes.length - 65] !== 64) {
      throw new Error('internal: transaction bytes do not have the canonical layout'); // unreachable after canonical decode
    }
  }

  /** From the strict decoder's fields (amounts already compact: a number when safe, else the bigint). */
  static fromFields(chainId: string, memo: string, amount: number | bigint, fee: number | bigint, nonce: number | bigint, bytes: Uint8Array, fromAt: number): SignedTx {
    // The constructor reads only chainId and memo from `u` when the compact amounts are given.
    return new SignedTx({ chainId, memo } as UnsignedTx, bytes, { amount: compactU64(amount), fee: compactU64(fee), nonce: compactU64(nonce) });
  }

  get amount(): bigint { return BigInt(this.#amount); }
  get fee(): bigint { return BigInt(this.#fee); }
  get nonce(): bigint { return BigInt(this.#nonce); }
  get bytes(): Uint8Array { return latin1Bytes(this.#raw, 0, this.#raw.length); }
  get byteLength(): number { return this.#raw.length; }
  get from(): Uint8Array { return latin1Bytes(this.#raw, this.#fromAt, 32); }
  get to(): Uint8Array { return latin1Bytes(this.#raw, this.#fromAt + 34, 32); }
  get signature(): Uint8Array { return latin1Bytes(this.#raw, this.#raw.length - 64, 64); }
  get id(): Uint8Array { return fromHexTrusted(this.idHex); }

  /**
   * The signature check's input in one pooled allocation written straight from the held string:
   * [signing prefix | 0x98 | unsigned fields | signature | sender key], the three parts being views of it.
   * (Admission builds one per transaction; separate copies cost two off-heap buffers each, for the GC.)
   */
  verifyItem(): VerifyItem {
    const raw = this.#raw;
    const body = raw.length - 67; // the fields between the array header and the signature's bin header
    const prefix = TX_SIGNING_PREFIX.length;
    const msgLen = prefix + 1 + body;
    const buf = Buffer.allocUnsafe(msgLen + 96);
    buf.set(TX_SIGNING_PREFIX, 0);
    buf[prefix] = 0x98;
    buf.write(raw.slice(1, 1 + body), prefix + 1, 'latin1');
    buf.write(raw.slice(raw.length - 64), msgLen, 'latin1');
    buf.write(raw.slice(this.#fromAt, this.#fromAt + 32), msgLen + 64, 'latin1');
    const at = buf.byteOffset;
    return {
      message: new Uint8Array(buf.buffer, at, msgLen),
      signature: new Uint8Array(buf.buffer, at + msgLen, 64),
      publicKey: new Uint8Array(buf.buffer, at + msgLen + 64, 32),
    };
  }
}

/** Bytes [at, at + n) of a Latin-1 string, as a plain Uint8Array (one pooled copy). */
function latin1Bytes(s: string, at: number, n: number): Uint8Array {
  const b = Buffer.from(at === 0 && n === s.length ? s : s.slice(at, at + n), 'latin1');
  return new Uint8Array(b.buffer, b.byteOffset, n);
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
function compactU64(v: bigint | number): number | bigint {
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : BigInt(v);
  return v <= MAX_SAFE ? Number(v) : v;
}

/**
 * One string per chain id (every transaction of a chain names it; a handful of distinct ids at most), with
 * the offset of the sender key that its length implies:
 * [0x99, version, chainId (str header + utf-8), 0xc4 0x20, from(32), …].
 */
const chainIds = new Map<string, { id: string; fromAt: number }>();
function internChainId(s: string): { id: string; fromAt: number } {
  const known = chainIds.get(s);
  if (known !== undefined) return known;
  const n = memoEncoder.encode(s).length;
  const entry = { id: s, fromAt: 2 + (n < 32 ? 1 : n < 0x100 ? 2 : 3) + n + 2 };
  if (chainIds.size < 64) chainIds.set(s, entry);
  return entry;
}


/** Decode signed bytes. Throws RuleError (malformed | non_canonical | too_large | bad_version). */
export function decodeTx(bytes: Uint8Array): Tx {
  if (bytes.length > MAX_TX_BYTES) throw new RuleError('tx_too_large', `${bytes.length} bytes > ${MAX_TX_BYTES}`);
  return decodeTxStrict(bytes) ?? decodeTxGeneric(bytes);
}

/**
 * The general decoder: canonical MessagePack decode (src/encoding/canonical.ts), then the fields.
 * Decides every input, with the rule each bad one breaks.
 */
export function decodeTxGeneric(bytes: Uint8Array): Tx {
  try {
    const f = expectArray(decodeCanonical(bytes, MAX_TX_BYTES), 9, 'transaction');
    const version = expectU64(f[0]!, 'version');
    if (version !== BigInt(TX_VERSION)) throw new RuleError('bad_version', `transaction version ${version}`);
    const u: UnsignedTx = {
      chainId: expectString(f[1]!, 'chainId'),
      from: expectBytes(f[2]!, 'from', 32),
      to: expectBytes(f[3]!, 'to', 32),
      amount: expectU64(f[4]!, 'amount'),
      fee: expectU64(f[5]!, 'fee'),
      nonce: expectU64(f[6]!, 'nonce'),
      memo: expectString(f[7]!, 'memo'),
    };
    expectBytes(f[8]!, 'signature', 64);
    return new SignedTx(u, bytes);
  } catch (e) {
    throw asRuleError(e);
  }
}

/**
 * The fast path: reads the one byte layout a valid transaction can have, field by field, and accepts only
 * that, i.e. bytes the general decoder also accepts, with the same fields (property-tested against it).
 * Anything else, valid or not, is left to the general decoder (undefined), which decides and names the
 * rule; so this can only speed acceptance up, never change what is accepted or how a rejection reads.
 */
export function decodeTxStrict(b: Uint8Array): Tx | undefined {
  const n = b.length;
  if (n < 2 || b[0] !== 0x99 || b[1] !== TX_VERSION) return undefined; // fixarray(9), version as fixint
  let p = 2;
  // A canonical uint: the shortest of fixint / uint8 / uint16 / uint32 / uint64.
  const uint = (): number | bigint | undefined => {
    if (p >= n) return undefined;
    const c = b[p]!;
    if (c < 0x80) { p += 1; return c; }
    if (c === 0xcc) { if (p + 2 > n || b[p + 1]! < 0x80) return undefined; p += 2; return b[p - 1]!; }
    if (c === 0xcd) { if (p + 3 > n) return undefined; const v = (b[p + 1]! << 8) | b[p + 2]!; if (v < 0x100) return undefined; p += 3; return v; }
    if (c === 0xce) { if (p + 5 > n) return undefined; const v = readU32(b, p + 1); if (v < 0x10000) return undefined; p += 5; return v; }
    if (c === 0xcf) {
      if (p + 9 > n) return undefined;
      const hi = readU32(b, p + 1), lo = readU32(b, p + 5);
      if (hi === 0) return undefined;
      p += 9;
      return hi < 0x200000 ? hi * 0x1_0000_0000 + lo : (BigInt(hi) << 32n) | BigInt(lo);
    }
    return undefined;
  };
  // A canonical str: the shortest of fixstr / str8 / str16 / str32 header, then well-formed UTF-8.
  const str = (): string | undefined => {
    if (p >= n) return undefined;
    const c = b[p]!;
    let len: number;
    if (c >= 0xa0 && c <= 0xbf) { len = c & 0x1f; p += 1; }
    else if (c === 0xd9) { if (p + 2 > n || b[p + 1]! < 32) return undefined; len = b[p + 1]!; p += 2; }
    else if (c === 0xda) { if (p + 3 > n) return undefined; len = (b[p + 1]! << 8) | b[p + 2]!; if (len < 0x100) return undefined; p += 3; }
    else return undefined; // str32 would exceed MAX_TX_BYTES
    if (p + len > n) return undefined;
    const at = p;
    p += len;
    let ascii = true;
    for (let i = at; i < p; i++) if (b[i]! >= 0x80) { ascii = false; break; }
    if (ascii) return Buffer.from(b.buffer, b.byteOffset + at, len).toString('latin1');
    try {
      return strictUtf8.decode(b.subarray(at, p));
    } catch {
      return undefined;
    }
  };
  const bin = (len: number): number | undefined => {
    if (p + 2 + len > n || b[p] !== 0xc4 || b[p + 1] !== len) return undefined;
    p += 2 + len;
    return p - len;
  };
  const chainId = str();
  if (chainId === undefined) return undefined;
  const fromAt = bin(32);
  if (fromAt === undefined || bin(32) === undefined) return undefined;
  const amount = uint(), fee = uint(), nonce = uint();
  if (amount === undefined || fee === undefined || nonce === undefined) return undefined;
  const memo = str();
  if (memo === undefined || bin(64) === undefined || p !== n) return undefined;
  return SignedTx.fromFields(chainId, memo, amount, fee, nonce, b, fromAt);
}

function readU32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) >>> 0) + (b[o + 1]! << 16) + (b[o + 2]! << 8) + b[o + 3]!;
}

/** UTF-8 that must be well-formed (no replacement), keeping a leading BOM as the character it is. */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function asRuleError(e: unknown): RuleError {
  if (e instanceof RuleError) return e;
  if (e instanceof EncodingError) {
    const rule = e.rule === 'non_canonical' ? 'non_canonical' : e.rule === 'too_large' ? 'too_large' : 'malformed';
    return new RuleError(rule, e.message);
  }
  throw e;
}

/**
 * The signature check's input. The signed encoding is the unsigned one with the array header 0x98
 * replaced by 0x99 and `c4 40 <64 bytes>` appended, so the message is sliced out without re-encoding.
 */
export function txVerifyItem(tx: Tx): VerifyItem {
  if (tx instanceof SignedTx) return tx.verifyItem();
  const b = tx.bytes;
  const unsigned = new Uint8Array(b.length - 66);
  unsigned[0] = 0x98;
  unsigned.set(b.subarray(1, b.length - 66), 1);
  return { signature: b.subarray(b.length - 64), message: concatBytes(TX_SIGNING_PREFIX, unsigned), publicKey: tx.from };
}

const memoEncoder = new TextEncoder();

/** Rules that need no state: chain, amounts, fee, memo. (The signature is checked separately, batched.) */
export function checkTxStatic(tx: UnsignedTx, chainId: string, params: GenesisParams): void {
  if (tx.chainId !== chainId) throw new RuleError('wrong_chain', `transaction is for chain "${tx.chainId}", this is "${chainId}"`);
  if (tx.amount < 1n) throw new RuleError('zero_amount');
  if (tx.fee < params.minFee) throw new RuleError('fee_too_low', `fee ${tx.fee} < minimum ${params.minFee}`);
  if (tx.amount + tx.fee > U64_MAX) throw new RuleError('amount_overflow');
  // A UTF-16 code unit is at most 3 UTF-8 bytes: short memos (and empty ones, the common case) need no encoding.
  const memoBytes = tx.memo.length * 3 <= params.maxMemoBytes ? 0 : memoEncoder.encode(tx.memo).length;
  if (memoBytes > params.maxMemoBytes) throw new RuleError('memo_too_long', `${memoBytes} bytes > ${params.maxMemoBytes}`);
}
