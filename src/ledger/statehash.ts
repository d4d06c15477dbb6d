/**
 * State root: a homomorphic lattice hash (LtHash, as in Bellare–Micciancio and Lewi et al.; Solana uses the
 * same construction for its accounts hash) over the set of non-empty accounts. It commits to the whole
 * state yet updates in O(accounts changed), never O(accounts existing):
 *
 *   leaf(pk, a)  = SHAKE256("meshledger:account:v1" || 0x00 || canonical([pk, balance, nonce]), 2048 bytes),
 *                  read as 1024 little-endian uint16 lanes
 *   lattice      = Σ leaf(pk, a) over all non-empty accounts, lane-wise mod 2^16
 *   stateRoot    = SHA-256("meshledger:state:v1" || 0x00 || lattice as 2048 little-endian bytes)
 *
 * Changing an account subtracts its old leaf and adds its new one; undoing a block does the inverse.
 */
import { endianness } from 'node:os';
import { concatBytes, fromHex, toHex, utf8 } from '../encoding/bytes.js';
import { LruMap } from '../util/lru.js';
import { encodeCanonical } from '../encoding/canonical.js';
import { sha256, shake256 } from '../crypto/hash.js';
import { isEmptyAccount, type Account, type AccountKey } from './state.js';

export const LATTICE_LANES = 1024;
export const LATTICE_BYTES = LATTICE_LANES * 2;
const LEAF_PREFIX = concatBytes(utf8('meshledger:account:v1'), new Uint8Array([0]));
const ROOT_PREFIX = concatBytes(utf8('meshledger:state:v1'), new Uint8Array([0]));

// Uint16Array views use the platform byte order; the definition above is little-endian.
if (endianness() !== 'LE') throw new Error('meshledger requires a little-endian platform (state lattice lanes)');

/**
 * Recently computed leaves. An account's "old" leaf is the "new" leaf computed when it last changed, and a
 * validator's own block was already computed once while assembling it: memoising this pure function
 * removes much of the SHAKE256 work from block application. Bounded: 8192 leaves × 2 KiB = 16 MiB.
 */
const leafCache = new LruMap<string, Uint16Array>(8192);

export function accountLeaf(key: AccountKey | Uint8Array, a: Account): Uint16Array {
  const keyHex = typeof key === 'string' ? key : toHex(key);
  const id = `${keyHex}:${a.balance}:${a.nonce}`;
  const hit = leafCache.get(id);
  if (hit) return hit;
  const pk = typeof key === 'string' ? fromHex(key) : key;
  const bytes = shake256(concatBytes(LEAF_PREFIX, encodeCanonical([pk, a.balance, a.nonce])), LATTICE_BYTES);
  const leaf = new Uint16Array(bytes.buffer, bytes.byteOffset, LATTICE_LANES);
  leafCache.set(id, leaf); // callers only read leaves (add/remove copy into the lattice)
  return leaf;
}

export class StateLattice {
  readonly lanes: Uint16Array;

  constructor(lanes?: Uint16Array) {
    this.lanes = lanes ? new Uint16Array(lanes) : new Uint16Array(LATTICE_LANES);
  }

  static fromBytes(b: Uint8Array): StateLattice {
    if (b.length !== LATTICE_BYTES) throw new Error(`state lattice must be ${LATTICE_BYTES} bytes`);
    const copy = new Uint8Array(b);
    return new StateLattice(new Uint16Array(copy.buffer, 0, LATTICE_LANES));
  }

  toBytes(): Uint8Array {
    return new Uint8Array(this.lanes.buffer.slice(this.lanes.byteOffset, this.lanes.byteOffset + LATTICE_BYTES));
  }

  clone(): StateLattice {
    return new StateLattice(this.lanes);
  }

  add(key: AccountKey | Uint8Array, a: Account): void {
    if (isEmptyAccount(a)) return;
    const leaf = accountLeaf(key, a);
    const l = this.lanes;
    for (let i = 0; i < LATTICE_LANES; i++) l[i] = (l[i]! + leaf[i]!) & 0xffff;
  }

  remove(key: AccountKey | Uint8Array, a: Account): void {
    if (isEmptyAccount(a)) return;
    const leaf = accountLeaf(key, a);
    const l = this.lanes;
    for (let i = 0; i < LATTICE_LANES; i++) l[i] = (l[i]! - leaf[i]!) & 0xffff;
  }

  /** Replace `before` with `after` for one account. */
  update(key: AccountKey, before: Account, after: Account): void {
    if (before.balance === after.balance && before.nonce === after.nonce) return;
    this.remove(key, before);
    this.add(key, after);
  }

  root(): Uint8Array {
    return sha256(concatBytes(ROOT_PREFIX, this.toBytes()));
  }
}
