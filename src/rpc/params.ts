/**
 * Decoders of JSON-RPC parameters that the schemas check only in shape (address checksums, transaction
 * bytes, history cursors). A bad value is an invalid-params error (-32602) naming the parameter, never an
 * internal error. Shared by the method handlers and the WebSocket subscriptions.
 */
import { AddressError, decodeAddress } from '../encoding/address.js';
import { fromHex, readU32be, readU64be, toHex, writeU32be, writeU64be } from '../encoding/bytes.js';
import type { HistoryPosition } from '../chain/chain.js';
import { RpcError } from './errors.js';

/** Decode an address param. The schema checks only its shape, so a bad checksum is -32602 here, not -32603. */
export function addressParam(address: string, param = 'address'): Uint8Array {
  try {
    return decodeAddress(address);
  } catch (e) {
    if (e instanceof AddressError) throw RpcError.invalidParams(`"${param}" ${e.message}`, { param });
    throw e;
  }
}

/** The opaque `next` of getAccountTransactions: hex of height u64 | index u32 | dir u8. */
export function historyCursor(p: HistoryPosition): string {
  const b = new Uint8Array(13);
  writeU64be(b, 0, p.height);
  writeU32be(b, 8, p.index);
  b[12] = p.dir;
  return toHex(b);
}

export function parseHistoryCursor(cursor: string): HistoryPosition {
  const bad = () => RpcError.invalidParams('"cursor" is not a cursor returned by this method', { param: 'cursor' });
  if (!/^[0-9a-f]{26}$/.test(cursor)) throw bad();
  const b = fromHex(cursor);
  const height = Number(readU64be(b, 0));
  if (!Number.isSafeInteger(height) || b[12]! > 1) throw bad();
  return { height, index: readU32be(b, 8), dir: b[12] as 0 | 1 };
}

/** Hex (optionally 0x-prefixed; tried first) or canonical base64; the schema already restricted the alphabet. */
export function parseTxBytes(s: string): Uint8Array {
  const hex = s.startsWith('0x') ? s.slice(2) : s;
  if (hex.length > 0 && hex.length % 2 === 0) {
    // Buffer's hex decoder (either case) stops at the first pair that is not hex: all of it decoded = it is hex.
    // (Two regular expressions per submitted transaction cost ~4 % of an HTTP ingest's main thread.)
    const b = Buffer.from(hex, 'hex');
    if (b.length * 2 === hex.length) return new Uint8Array(b.buffer, b.byteOffset, b.length);
  }
  const b = Buffer.from(s, 'base64');
  if (b.toString('base64') !== s) throw RpcError.invalidParams('"tx" is neither hex nor canonical base64', { param: 'tx' });
  return new Uint8Array(b);
}
