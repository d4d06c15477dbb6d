/**
 * Transactions root: a binary Merkle tree over transaction ids with domain-separated nodes.
 *   leaf(id)        = SHA-256(0x00 || id)
 *   node(l, r)      = SHA-256(0x01 || l || r)
 *   an odd node at the end of a level is promoted unchanged (never duplicated: duplication lets two
 *   different transaction lists share a root, Bitcoin's CVE-2012-2459).
 *   root([])        = 32 zero bytes
 */
import { sha256 } from '../crypto/hash.js';

export const EMPTY_ROOT = new Uint8Array(32);

export function merkleRoot(ids: readonly Uint8Array[]): Uint8Array {
  if (ids.length === 0) return EMPTY_ROOT;
  let level: Uint8Array[] = ids.map((id) => {
    const b = new Uint8Array(33);
    b[0] = 0x00;
    b.set(id, 1);
    return sha256(b);
  });
  const buf = new Uint8Array(65);
  buf[0] = 0x01;
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i < level.length; i += 2) {
      if (i + 1 === level.length) { next.push(level[i]!); break; }
      buf.set(level[i]!, 1);
      buf.set(level[i + 1]!, 33);
      next.push(sha256(buf));
    }
    level = next;
  }
  return level[0]!;
}
