/** Hash primitives. SHA-256 everywhere an id or root is taken; one implementation so bytes never diverge. */
import crypto from 'node:crypto';

const hasOneShot = typeof (crypto as { hash?: unknown }).hash === 'function';

export function sha256(data: Uint8Array): Uint8Array {
  if (hasOneShot) return new Uint8Array((crypto as unknown as { hash(a: string, d: Uint8Array, e: 'buffer'): Buffer }).hash('sha256', data, 'buffer'));
  return new Uint8Array(crypto.createHash('sha256').update(data).digest());
}

/** SHA-256 as lower-case hex (ids): one call, no intermediate bytes. */
export function sha256Hex(data: Uint8Array): string {
  if (hasOneShot) return (crypto as unknown as { hash(a: string, d: Uint8Array, e: 'hex'): string }).hash('sha256', data, 'hex');
  return crypto.createHash('sha256').update(data).digest('hex');
}

/** SHAKE256 with a chosen output length (used to expand account leaves into the state lattice). */
export function shake256(data: Uint8Array, outputLength: number): Uint8Array {
  // A view of the digest's own buffer: `new Uint8Array(buffer)` would copy it into a second allocation.
  const d = crypto.createHash('shake256', { outputLength }).update(data).digest();
  return new Uint8Array(d.buffer, d.byteOffset, d.length);
}
