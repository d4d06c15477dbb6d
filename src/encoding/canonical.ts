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
 * Both directions are written here rather than taken from a general MessagePack library: a general encoder
 * picks other forms (msgpackr writes every bigint as int64), and a general decoder accepts forms that are
 * not canonical and can differ between its optional native and its JavaScript code paths (msgpackr's
 * JavaScript path strips a leading byte-order mark from long strings, its native one keeps it). The decoder
 * accepts exactly what the encoder writes: decode → re-encode reproduces the input, byte for byte.
 */
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

/** Well-formed UTF-8 only (no replacement characters), and a leading BOM is kept as the character it is. */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function malformed(message: string): never { throw new EncodingError('malformed', message); }
function nonCanonical(message: string): never { throw new EncodingError('non_canonical', `not canonical: ${message}`); }

/**
 * The canonical decoder: reads exactly the value set and the shortest forms above, in one pass, and names
 * the rule an input breaks. It is the only MessagePack decoder consensus uses, written here so that a verdict
 * depends on these lines alone, never on which optional native module a library found at run time.
 * Binaries are views into the input (no copy); integers encoded as uint64 are bigint, all others number.
 */
class Reader {
  pos = 0;
  constructor(readonly b: Uint8Array) {}

  need(n: number): void {
    if (this.pos + n > this.b.length) malformed(`truncated: ${n} more bytes needed at offset ${this.pos}, ${this.b.length - this.pos} left`);
  }
  u8(): number { this.need(1); return this.b[this.pos++]!; }
  u16(): number { this.need(2); const b = this.b, p = this.pos; this.pos += 2; return (b[p]! << 8) | b[p + 1]!; }
  u32(): number {
    this.need(4);
    const b = this.b, p = this.pos;
    this.pos += 4;
    return ((b[p]! << 24) >>> 0) + (b[p + 1]! << 16) + (b[p + 2]! << 8) + b[p + 3]!;
  }

  /** A length in a long form; it must not fit the next shorter form, `min` (checked once the body is known to be there). */
  length(bytes: 1 | 2 | 4): number {
    return bytes === 1 ? this.u8() : bytes === 2 ? this.u16() : this.u32();
  }

  value(depth: number): CanonicalValue {
    if (depth > 16) nonCanonical('nesting deeper than 16');
    const c = this.u8();
    if (c < 0x80) return c;
    if (c >= 0x90 && c <= 0x9f) return this.array(c & 0x0f, depth, 0, 'fixarray');
    if (c >= 0xa0 && c <= 0xbf) return this.str(c & 0x1f, 0, 'fixstr');
    switch (c) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.bin(this.u8(), 0, 'bin8');
      case 0xc5: return this.bin(this.length(2), 0x100, 'bin16');
      case 0xc6: return this.bin(this.length(4), 0x10000, 'bin32');
      case 0xcc: { const v = this.u8(); if (v < 0x80) nonCanonical(`uint8 ${v} has a shorter form`); return v; }
      case 0xcd: { const v = this.u16(); if (v < 0x100) nonCanonical(`uint16 ${v} has a shorter form`); return v; }
      case 0xce: { const v = this.u32(); if (v < 0x10000) nonCanonical(`uint32 ${v} has a shorter form`); return v; }
      case 0xcf: {
        const hi = this.u32(), lo = this.u32();
        if (hi === 0) nonCanonical(`uint64 ${lo} has a shorter form`);
        return (BigInt(hi) << 32n) | BigInt(lo);
      }
      case 0xd9: return this.str(this.length(1), 32, 'str8');
      case 0xda: return this.str(this.length(2), 0x100, 'str16');
      case 0xdb: return this.str(this.length(4), 0x10000, 'str32');
      case 0xdc: return this.array(this.length(2), depth, 16, 'array16');
      case 0xdd: return this.array(this.length(4), depth, 0x10000, 'array32');
    }
    nonCanonical(`type byte 0x${c.toString(16)} (${outsideName(c)}) is outside the canonical set`);
  }

  array(n: number, depth: number, min: number, what: string): CanonicalValue[] {
    // Every item takes at least one byte: a count beyond the input is refused before anything is allocated.
    if (n > this.b.length - this.pos) malformed(`truncated: array of ${n} items with ${this.b.length - this.pos} bytes left`);
    if (n < min) nonCanonical(`${what} length ${n} has a shorter form`);
    const out = new Array<CanonicalValue>(n);
    for (let i = 0; i < n; i++) out[i] = this.value(depth + 1);
    return out;
  }

  bin(n: number, min: number, what: string): Uint8Array {
    this.need(n);
    if (n < min) nonCanonical(`${what} length ${n} has a shorter form`);
    const at = this.pos;
    this.pos += n;
    return this.b.subarray(at, at + n);
  }

  str(n: number, min: number, what: string): string {
    this.need(n);
    if (n < min) nonCanonical(`${what} length ${n} has a shorter form`);
    const b = this.b, at = this.pos;
    this.pos += n;
    let ascii = true;
    for (let i = at; i < at + n; i++) if (b[i]! >= 0x80) { ascii = false; break; }
    if (ascii) return Buffer.from(b.buffer, b.byteOffset + at, n).toString('latin1');
    try {
      return strictUtf8.decode(b.subarray(at, at + n));
    } catch {
      return nonCanonical('string is not well-formed UTF-8');
    }
  }
}

function outsideName(c: number): string {
  if ((c >= 0x80 && c <= 0x8f) || c === 0xde || c === 0xdf) return 'map';
  if (c >= 0xe0 || (c >= 0xd0 && c <= 0xd3)) return 'signed integer';
  if (c === 0xca || c === 0xcb) return 'float';
  if ((c >= 0xc7 && c <= 0xc9) || (c >= 0xd4 && c <= 0xd8)) return 'extension';
  return 'never used';
}

/**
 * Decode bytes that must be canonical. Returns the value with Uint8Array views into `bytes` for binaries.
 * Throws EncodingError('malformed') for bytes that are not MessagePack at all (truncated, empty, not bytes),
 * EncodingError('non_canonical') for MessagePack outside the canonical set or form (maps, negative integers,
 * floats, extension types, non-minimal integers or lengths, invalid UTF-8, nesting deeper than 16, trailing
 * bytes) and EncodingError('too_large') above `maxBytes`.
 */
export function decodeCanonical(bytes: Uint8Array, maxBytes = 8 * 1024 * 1024): CanonicalValue {
  if (!(bytes instanceof Uint8Array)) throw new EncodingError('malformed', 'input is not bytes');
  if (bytes.length === 0) throw new EncodingError('malformed', 'empty input');
  if (bytes.length > maxBytes) throw new EncodingError('too_large', `input of ${bytes.length} bytes exceeds ${maxBytes}`);
  try {
    const r = new Reader(bytes);
    const value = r.value(0);
    if (r.pos !== bytes.length) nonCanonical(`${bytes.length - r.pos} trailing bytes after the value`);
    return value;
  } catch (e) {
    // Outside the canonical set, but is it MessagePack at all? An incomplete value is malformed.
    if (e instanceof EncodingError && e.rule === 'non_canonical' && incomplete(bytes)) throw new EncodingError('malformed', `truncated: ${e.message}`);
    throw e;
  }
}

/**
 * Whether the first MessagePack value in `b` (any type, canonical or not) is cut short: walks the headers
 * iteratively, counting the items still owed, so deep nesting or huge declared counts cost nothing.
 */
function incomplete(b: Uint8Array): boolean {
  let p = 0;
  let owed = 1;
  const len = (at: number, n: number): number => {
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 256 + b[at + i]!;
    return v;
  };
  while (owed > 0) {
    if (p >= b.length) return true;
    const c = b[p]!;
    owed--;
    let skip = 1; // header bytes
    let body = 0; // payload bytes
    let items = 0; // nested items
    if (c <= 0x7f || c >= 0xe0 || c === 0xc0 || c === 0xc1 || c === 0xc2 || c === 0xc3) { /* one byte */ }
    else if (c <= 0x8f) items = 2 * (c & 0x0f);
    else if (c <= 0x9f) items = c & 0x0f;
    else if (c <= 0xbf) body = c & 0x1f;
    else if (c === 0xc4 || c === 0xd9) { skip = 2; if (p + 2 > b.length) return true; body = b[p + 1]!; }
    else if (c === 0xc5 || c === 0xda) { skip = 3; if (p + 3 > b.length) return true; body = len(p + 1, 2); }
    else if (c === 0xc6 || c === 0xdb) { skip = 5; if (p + 5 > b.length) return true; body = len(p + 1, 4); }
    else if (c === 0xc7 || c === 0xc8 || c === 0xc9) {
      const n = c === 0xc7 ? 1 : c === 0xc8 ? 2 : 4;
      skip = 2 + n;
      if (p + 1 + n > b.length) return true;
      body = len(p + 1, n);
    } else if (c === 0xca) body = 4;
    else if (c === 0xcb) body = 8;
    else if (c >= 0xcc && c <= 0xd3) body = 1 << ((c - 0xcc) & 3);
    else if (c >= 0xd4 && c <= 0xd8) { skip = 2; body = 1 << (c - 0xd4); }
    else if (c === 0xdc || c === 0xde) { skip = 3; if (p + 3 > b.length) return true; items = len(p + 1, 2) * (c === 0xde ? 2 : 1); }
    else if (c === 0xdd || c === 0xdf) { skip = 5; if (p + 5 > b.length) return true; items = len(p + 1, 4) * (c === 0xdf ? 2 : 1); }
    p += skip + body;
    owed += items;
    if (owed > b.length - p) return true; // every owed item takes at least one byte
  }
  return p > b.length;
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
