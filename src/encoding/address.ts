/**
 * Addresses: bech32m (BIP-350) encoding of the 32-byte ed25519 public key with human-readable prefix `ml`.
 * Example shape: `ml1` + 58 characters. The checksum detects any typo of up to 4 characters, so a mistyped
 * address is refused before anything is signed or sent.
 */
import { bech32m } from '@scure/base';

export const ADDRESS_PREFIX = 'ml';
export const PUBLIC_KEY_BYTES = 32;

export class AddressError extends Error {
  readonly rule = 'invalid_address';
  constructor(message: string) {
    super(message);
    this.name = 'AddressError';
  }
}

export function encodeAddress(publicKey: Uint8Array): string {
  if (publicKey.length !== PUBLIC_KEY_BYTES) throw new AddressError(`public key must be ${PUBLIC_KEY_BYTES} bytes, got ${publicKey.length}`);
  return bech32m.encode(ADDRESS_PREFIX, bech32m.toWords(publicKey));
}

/** Decode an address to its public key. Only the canonical lower-case spelling is accepted. */
export function decodeAddress(address: string): Uint8Array {
  if (typeof address !== 'string') throw new AddressError('address must be a string');
  if (address !== address.toLowerCase()) throw new AddressError('address must be lower-case');
  let decoded: { prefix: string; words: number[] };
  try {
    decoded = bech32m.decode(address as `${string}1${string}`);
  } catch (e) {
    throw new AddressError(`not a valid address (${(e as Error).message}); check for a typo`);
  }
  if (decoded.prefix !== ADDRESS_PREFIX) throw new AddressError(`address prefix must be "${ADDRESS_PREFIX}", got "${decoded.prefix}"`);
  let bytes: Uint8Array;
  try {
    bytes = bech32m.fromWords(decoded.words);
  } catch (e) {
    throw new AddressError(`address payload is malformed (${(e as Error).message})`);
  }
  if (bytes.length !== PUBLIC_KEY_BYTES) throw new AddressError(`address must carry ${PUBLIC_KEY_BYTES} bytes, got ${bytes.length}`);
  return bytes;
}

export function isAddress(s: unknown): s is string {
  if (typeof s !== 'string') return false;
  try {
    decodeAddress(s);
    return true;
  } catch {
    return false;
  }
}
