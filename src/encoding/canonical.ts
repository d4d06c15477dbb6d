/**
 * Canonical MessagePack: the one byte sequence for every signed or hashed object.
 *
 * The canonical form is standard MessagePack restricted to a small value set and written in the SHORTEST
 * form the MessagePack spec allows (the form Python's `msgpack`, msgpack-javascript and most libraries
 * emit by default), so a third party can reproduce our bytes with an ordinary library:
 *
 *   value                     encoding
 *   null                      nil (0xc0)
 *   boolean                   false/true (0xc2/0xc3)
 *   integer 0 ≤ v < 2^64      positive fixint | uint8 | uint16 | uint32 | uint64, whichever is shortest
 *   string (valid UTF-8)      fixstr | str8 | str16 | str32, shortest
 *   Uint8Array                bin8 | bin16 | bin32, shortest
 *   array                     fixarray | array16 | array32, shortest
 *
 * Nothing else exists in canonical data: no maps (objects are fixed-order arrays), no negative integers,
 * no floats, no extension types.
 *
 * Why not `msgpackr.pack`? It writes integers ≥ 2^32 given as numbers as float64 and every bigint as int64,
 * neither of which is the shortest form. We still DECODE with msgpackr (fast and well tested) and then
 * re-encode: any input whose bytes differ from the re-encoding (non-minimal integers or lengths, floats,
 * maps, ext types, trailing bytes, invalid UTF-8) is rejected as non-canonical.
 */
import { Unpackr } from 'msgpackr';
import { writeU32be, writeU64be } from './bytes.js';

export type CanonicalValue = null | boolean | number | bigint | string | Uint8Array | readonly CanonicalValue[];

export class EncodingError extends Error {
  /** Machine-readable rule name, e.g. `non_canonical`, `malformed`. */
  readonly rule: string;
  constructor(rule: string, message: string) {
    super(message);
    this.name = 'EncodingError';
    this.rule = rule;
  }
}

const TWO_32 = 0x1_0000_0000;
const U64_MAX = (1n << 64n) - 1n;
const utf8Encoder = new TextEncoder();

/**
 * Growable output buffer. encodeCanonical is synchronous and never re-entered, so one scratch buffer is
 * reused by every call and the result is copied out at its exact size: one allocation per encode. No
 * DataView: it would need `.buffer`, which moves small on-heap typed arrays off-heap (costly in bulk).
 */
class Writer {
  buf: Uint8Array;
  pos = 0;
  constructor(buf: Uint8Array) {
    this.buf = buf;
  }
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }
  u8(v: number): void { this.ensure(1); this.buf[this.pos++] = v; }
  u16(v: number): void { this.ensure(2); const b = this.buf, p = this.pos; b[p] = v >>> 8; b[p + 1] = v & 0xff; this.pos += 2; }
  u32(v: number): void { this.ensure(4); writeU32be(this.buf, this.pos, v); this.pos += 4; }
  u64(v: bigint): void { this.ensure(8); writeU64be(this.buf, this.pos, v); this.pos += 8; }
  bytes(b: Uint8Array): void { this.ensure(b.length); this.buf.set(b, this.pos); this.pos += b.length; }
}

const SCRATCH_BYTES = 64 * 1024;
let scratch: Uint8Array = new Uint8Array(SCRATCH_BYTES);

function writeUint(w: Writer, v: number | bigint): void {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw new EncodingError('unsupported_value', `integer ${v} is not a non-negative safe integer`);
    if (v < 0x80) w.u8(v);
    else if (v < 0x100) { w.u8(0xcc); w.u8(v); }
    else if (v < 0x10000) { w.u8(0xcd); w.u16(v); }
    else if (v < TWO_32) { w.u8(0xce); w.u32(v); }
    else { w.u8(0xcf); w.u64(BigInt(v)); }
    return;
  }
  if (v < 0n || v > U64_MAX) throw new EncodingError('unsupported_value', `integer ${v} is outside 0..2^64-1`);
  if (v < BigInt(TWO_32)) writeUint(w, Number(v));
  else { w.u8(0xcf); w.u64(v); }
}

function writeLength(w: Writer, n: number, fixBase: number, fixMax: number, c8: number | null, c16: number, c32: number): void {
  if (n < fixMax && fixBase >= 0) w.u8(fixBase | n);
  else if (c8 !== null && n < 0x100) { w.u8(c8); w.u8(n); }
  else if (n < 0x10000) { w.u8(c16); w.u16(n); }
  else { w.u8(c32); w.u32(n); }
}

function writeValue(w: Writer, v: CanonicalValue, depth: number): void {
  if (depth > 16) throw new EncodingError('unsupported_value', 'nesting deeper than 16');
  if (v === null) return w.u8(0xc0);
  switch (typeof v) {
    case 'boolean': return w.u8(v ? 0xc3 : 0xc2);
    case 'number':
    case 'bigint': return writeUint(w, v);
    case 'string': {
      if (!isWellFormedUtf16(v)) throw new EncodingError('unsupported_value', 'string is not well-formed Unicode');
      const b = utf8Encoder.encode(v);
      writeLength(w, b.length, 0xa0, 32, 0xd9, 0xda, 0xdb);
      return w.bytes(b);
    }
    case 'object': {
      if (v instanceof Uint8Array) {
        writeLength(w, v.length, -1, 0, 0xc4, 0xc5, 0xc6);
        return w.bytes(v);
      }
      if (Array.isArray(v)) {
        writeLength(w, v.length, 0x90, 16, null, 0xdc, 0xdd);
        for (const item of v as readonly CanonicalValue[]) writeValue(w, item, depth + 1);
        return;
      }
    }
  }
  throw new EncodingError('unsupported_value', `value of type ${describe(v)} has no canonical encoding`);
}

function describe(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (v instanceof Map) return 'Map';
  return typeof v === 'object' ? (v as object).constructor?.name ?? 'object' : typeof v;
}

function isWellFormedUtf16(s: string): boolean {
  // String.prototype.isWellFormed exists from Node 20; keep a fallback for older engines.
  const f = (s as unknown as { isWellFormed?: () => boolean }).isWellFormed;
  if (f) return f.call(s);
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

/** Encode a canonical value. Throws EncodingError for values outside the canonical set. */
export function encodeCanonical(v: CanonicalValue, sizeHint = 256): Uint8Array {
  const w = new Writer(sizeHint <= SCRATCH_BYTES ? scratch : new Uint8Array(sizeHint));
  writeValue(w, v, 0);
  const out = w.buf.slice(0, w.pos);
  // Keep a grown buffer for next time only up to a bound (one huge block must not pin memory for ever).
  if (w.buf !== scratch && w.buf.length <= 4 * SCRATCH_BYTES) scratch = w.buf;
  return out;
}

// int64AsType 'bigint': 64-bit wire integers come back as bigint (others as number), so the re-encode
// check sees exactly what the wire said. mapsAsObjects false: maps come back as Map, which we reject.
const unpackr = new Unpackr({ useRecords: false, int64AsType: 'bigint', mapsAsObjects: false, moreTypes: false } as ConstructorParameters<typeof Unpackr>[0]);

/**
 * Decode bytes that must be canonical. Returns the value with Uint8Array (not Buffer) for binaries.
 * Throws EncodingError('malformed') for bytes that are not MessagePack at all and
 * EncodingError('non_canonical') for MessagePack that is not in the canonical form.
 */
export function decodeCanonical(bytes: Uint8Array, maxBytes = 8 * 1024 * 1024): CanonicalValue {
  if (!(bytes instanceof Uint8Array)) throw new EncodingError('malformed', 'input is not bytes');
  if (bytes.length === 0) throw new EncodingError('malformed', 'empty input');
  if (bytes.length > maxBytes) throw new EncodingError('too_large', `input of ${bytes.length} bytes exceeds ${maxBytes}`);
  let value: unknown;
  try {
    // A throwaway view, not `bytes` itself: msgpackr caches a DataView on the object it decodes
    // (`source.dataView`), which on a transaction's retained bytes cost ~80 B of heap per pending tx.
    value = unpackr.unpack(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    // Well-formed MessagePack outside the canonical set still names the canonical rule: extension types
    // msgpackr does not know, and trailing bytes after a complete value. (Pinned by the canonical tests.)
    const msg = (e as Error).message;
    if (/extension|end of buffer not reached/i.test(msg)) throw new EncodingError('non_canonical', `not canonical: ${msg}`);
    throw new EncodingError('malformed', `not valid MessagePack: ${msg}`);
  }
  let reencoded: Uint8Array;
  try {
    reencoded = encodeCanonical(value as CanonicalValue, bytes.length + 16);
  } catch (e) {
    throw new EncodingError('non_canonical', `not canonical: ${(e as Error).message}`);
  }
  if (reencoded.length !== bytes.length || Buffer.compare(Buffer.from(reencoded), Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) !== 0) {
    throw new EncodingError('non_canonical', 'bytes differ from the canonical re-encoding (non-minimal integer or length, float, or trailing data)');
  }
  return normalizeBuffers(value) as CanonicalValue;
}

/** msgpackr returns Buffer for bin; expose plain Uint8Array views (no copy) so equality checks are uniform. */
function normalizeBuffers(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.isBuffer(v) ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : v;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = normalizeBuffers(v[i]);
  }
  return v;
}

// ---- typed readers used by object decoders: each names the field that failed ----

export function expectArray(v: CanonicalValue, len: number, what: string): readonly CanonicalValue[] {
  if (!Array.isArray(v)) throw new EncodingError('malformed', `${what}: expected an array`);
  if (v.length !== len) throw new EncodingError('malformed', `${what}: expected ${len} fields, got ${v.length}`);
  return v;
}

export function expectList(v: CanonicalValue, what: string): readonly CanonicalValue[] {
  if (!Array.isArray(v)) throw new EncodingError('malformed', `${what}: expected an array`);
  return v;
}

export function expectBytes(v: CanonicalValue, what: string, len?: number): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new EncodingError('malformed', `${what}: expected bytes`);
  if (len !== undefined && v.length !== len) throw new EncodingError('malformed', `${what}: expected ${len} bytes, got ${v.length}`);
  return v;
}

export function expectString(v: CanonicalValue, what: string): string {
  if (typeof v !== 'string') throw new EncodingError('malformed', `${what}: expected a string`);
  return v;
}

export function expectU64(v: CanonicalValue, what: string): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  throw new EncodingError('malformed', `${what}: expected an unsigned integer`);
}

/** Integers that are used as JS numbers (heights, slots, times): must be ≤ 2^53-1. */
export function expectSafeUint(v: CanonicalValue, what: string): number {
  const n = expectU64(v, what);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new EncodingError('malformed', `${what}: ${n} exceeds 2^53-1`);
  return Number(n);
}
