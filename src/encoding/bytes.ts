/** Byte helpers shared by every subsystem. Pure functions, no I/O. */

export type Bytes = Uint8Array;

const HEX_RE = /^(?:[0-9a-f]{2})*$/;

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** Strict lower-case hex (an optional 0x prefix is not accepted: one spelling per value). */
export function fromHex(s: string): Uint8Array {
  if (typeof s !== 'string' || !HEX_RE.test(s)) throw new TypeError('expected lower-case hex with an even number of digits');
  return new Uint8Array(Buffer.from(s, 'hex'));
}

/**
 * Hex → bytes for strings this process produced itself with toHex (map keys, ids): no validation. Input
 * from outside goes through fromHex. (The validating regex was a visible share of block application.)
 */
export function fromHexTrusted(s: string): Uint8Array {
  const b = Buffer.from(s, 'hex');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export function isHex(s: unknown, byteLength?: number): s is string {
  return typeof s === 'string' && HEX_RE.test(s) && (byteLength === undefined || s.length === byteLength * 2);
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

/** Lexicographic byte order: -1, 0, 1. Used wherever consensus needs an order (never Map iteration). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

export function utf8(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'utf8'));
}

/** Big-endian u64 (8 bytes); sorts numerically as bytes, which LevelDB keys rely on. */
export function u64be(n: bigint | number): Uint8Array {
  const out = new Uint8Array(8);
  writeU64be(out, 0, n);
  return out;
}

/**
 * Write a big-endian u64 at `o` without a DataView: a DataView needs `.buffer`, which forces V8 to move a
 * small on-heap typed array off-heap (a measurable share of block application was spent doing that).
 */
export function writeU64be(out: Uint8Array, o: number, n: bigint | number): void {
  let hi: number, lo: number;
  if (typeof n === 'number' && Number.isSafeInteger(n) && n >= 0) {
    hi = Math.floor(n / 0x1_0000_0000);
    lo = n >>> 0;
  } else {
    const b = BigInt(n);
    if (b < 0n || b > 0xffff_ffff_ffff_ffffn) throw new RangeError(`${n} is not a u64`);
    hi = Number(b >> 32n);
    lo = Number(b & 0xffff_ffffn);
  }
  writeU32be(out, o, hi);
  writeU32be(out, o + 4, lo);
}

export function writeU32be(out: Uint8Array, o: number, n: number): void {
  out[o] = n >>> 24;
  out[o + 1] = (n >>> 16) & 0xff;
  out[o + 2] = (n >>> 8) & 0xff;
  out[o + 3] = n & 0xff;
}

export function readU64be(b: Uint8Array, offset = 0): bigint {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(offset);
}

export function readU32be(b: Uint8Array, offset = 0): number {
  return ((b[offset]! << 24) >>> 0) + (b[offset + 1]! << 16) + (b[offset + 2]! << 8) + b[offset + 3]!;
}

/** A big-endian u64 that must be a safe integer (heights, indexes in keys this program wrote). */
export function readSafeU64be(b: Uint8Array, offset = 0): number {
  const n = readU32be(b, offset) * 0x1_0000_0000 + readU32be(b, offset + 4);
  if (!Number.isSafeInteger(n)) throw new RangeError('u64 above the safe integer range');
  return n;
}

export function u32be(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) throw new RangeError(`${n} is not a u32`);
  const out = new Uint8Array(4);
  writeU32be(out, 0, n);
  return out;
}

export const U64_MAX = (1n << 64n) - 1n;
