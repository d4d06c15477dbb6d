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
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}

export function readU64be(b: Uint8Array, offset = 0): bigint {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(offset);
}

export function u32be(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n);
  return out;
}

export const U64_MAX = (1n << 64n) - 1n;
