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
import { concatBytes, toHex, U64_MAX, utf8, writeU32be, writeU64be } from '../encoding/bytes.js';
import { LruMap } from '../util/lru.js';
import { wasmAddSub } from './lattice-wasm.js';
import { sha256, shake256 } from '../crypto/hash.js';
import { EMPTY_ACCOUNT, isEmptyAccount, type Account, type AccountKey } from './state.js';

export const LATTICE_LANES = 1024;
export const LATTICE_BYTES = LATTICE_LANES * 2;
const LEAF_PREFIX = concatBytes(utf8('meshledger:account:v1'), new Uint8Array([0]));
const ROOT_PREFIX = concatBytes(utf8('meshledger:state:v1'), new Uint8Array([0]));

// Uint16Array views use the platform byte order; the definition above is little-endian.
if (endianness() !== 'LE') throw new Error('meshledger requires a little-endian platform (state lattice lanes)');

/**
 * Recently computed leaves, by account: the last two states each account was seen in, with their leaves.
 * An account's "old" leaf is the "new" leaf computed when it last changed, and a validator's own block was
 * already computed once while assembling it (old and new state both): memoising this pure function removes
 * much of the SHAKE256 work from block application. Looked up by key, then compared by state, so a hit
 * costs no string building. Bounded: 4096 accounts × 2 leaves × 2 KiB = 16 MiB.
 */
interface CachedLeaf { readonly balance: bigint; readonly nonce: bigint; readonly leaf: Uint16Array }
const leafCache = new LruMap<AccountKey, CachedLeaf[]>(4096);

function cachedLeaf(keyHex: AccountKey, a: Account): Uint16Array | undefined {
  const slots = leafCache.get(keyHex);
  if (slots === undefined) return undefined;
  for (const s of slots) if (s.balance === a.balance && s.nonce === a.nonce) return s.leaf;
  return undefined;
}

export function accountLeaf(key: AccountKey | Uint8Array, a: Account): Uint16Array {
  const keyHex = typeof key === 'string' ? key : toHex(key);
  return cachedLeaf(keyHex, a) ?? storeLeaf(keyHex, a, shake256(leafInput(keyHex, a), LATTICE_BYTES));
}

/** Forget every memoised leaf (benchmarks: measure a peer's block, whose leaves this node never computed). */
export function clearLeafCache(): void {
  leafCache.clear();
}

/** The SHAKE256 input of an account's leaf (see the module comment). */
export function leafInput(keyHex: AccountKey, a: Account): Uint8Array {
  // LEAF_PREFIX, then canonical [key, balance, nonce] written in place: fixarray(3), bin8(32) key, and two
  // shortest-form uints (a unit test checks it against encodeCanonical, boundaries included).
  const out = new Uint8Array(LEAF_PREFIX.length + 3 + 32 + 9 + 9);
  out.set(LEAF_PREFIX, 0);
  let p = LEAF_PREFIX.length;
  out[p] = 0x93; out[p + 1] = 0xc4; out[p + 2] = 32;
  Buffer.from(out.buffer, out.byteOffset + p + 3, 32).write(keyHex, 'hex');
  p += 35;
  p = writeCanonicalUint(out, p, a.balance);
  p = writeCanonicalUint(out, p, a.nonce);
  return out.subarray(0, p);
}

/** A u64 in MessagePack's shortest form at `p`; returns the end. */
function writeCanonicalUint(out: Uint8Array, p: number, v: bigint): number {
  if (v < 0n) throw new RangeError(`${v} is not a u64`);
  if (v < 0x80n) { out[p] = Number(v); return p + 1; }
  if (v < 0x100n) { out[p] = 0xcc; out[p + 1] = Number(v); return p + 2; }
  if (v < 0x10000n) { out[p] = 0xcd; out[p + 1] = Number(v >> 8n); out[p + 2] = Number(v & 0xffn); return p + 3; }
  if (v < 0x1_0000_0000n) { out[p] = 0xce; writeU32be(out, p + 1, Number(v)); return p + 5; }
  if (v > U64_MAX) throw new RangeError(`${v} is not a u64`);
  out[p] = 0xcf; writeU64be(out, p + 1, v); return p + 9;
}

/**
 * Leaves are carved out of small shared slabs: one ArrayBuffer per leaf (2 KiB, off the V8 heap) cost
 * ~3 µs to allocate and track, more than a third of the SHAKE256 that fills it. A slab is freed by the GC
 * once none of its leaves is referenced; it is never reused, so a leaf's bytes never change. The price is
 * retention: one live leaf keeps its slab's 32 KiB. Leaves are stored in the order a block needs them and
 * the cache turns over within a few busy blocks, so slabs die together; the bound, every cached leaf in a
 * slab of its own, is 16 × the cache's 16 MiB.
 */
const SLAB_LEAVES = 16;
let slab: ArrayBuffer | undefined;
let slabUsed = SLAB_LEAVES;

function newLeaf(): Uint16Array {
  if (slabUsed === SLAB_LEAVES) { slab = new ArrayBuffer(SLAB_LEAVES * LATTICE_BYTES); slabUsed = 0; }
  return new Uint16Array(slab!, LATTICE_BYTES * slabUsed++, LATTICE_LANES);
}

function storeLeaf(keyHex: AccountKey, a: Account, bytes: Uint8Array): Uint16Array {
  // Own, 4-byte aligned storage: the lattice reads leaves two lanes at a time (see addSub).
  const leaf = newLeaf();
  new Uint8Array(leaf.buffer, leaf.byteOffset, LATTICE_BYTES).set(bytes.subarray(0, LATTICE_BYTES));
  // Callers only read leaves (add/remove copy into the lattice). The newest state goes last; two are kept.
  const entry: CachedLeaf = { balance: a.balance, nonce: a.nonce, leaf };
  const slots = leafCache.peek(keyHex);
  leafCache.set(keyHex, slots === undefined ? [entry] : [slots[slots.length - 1]!, entry]);
  return leaf;
}

/**
 * Computes many SHAKE256 → 2048-byte expansions elsewhere (a worker pool); returns them in order. The
 * expansion is the same pure function, so where it runs cannot change a root.
 */
export interface LeafHasher {
  expandLeaves(inputs: Uint8Array[]): Promise<Uint8Array[]>;
}

/**
 * The leaves of these (account, state) pairs, in order (undefined for an empty account, which has none):
 * cache hits as they are; the misses computed in one batch through `hasher` when there are at least
 * `minBatch` of them (a round trip to a worker pool costs more than a few leaves), else on this thread.
 * `stats.computed` is increased by the number of leaves computed (the distinct misses).
 */
export async function leavesFor(hasher: LeafHasher | undefined, pairs: readonly (readonly [AccountKey, Account])[], minBatch = 64, stats?: { computed: number }): Promise<(Uint16Array | undefined)[]> {
  const out: (Uint16Array | undefined)[] = new Array(pairs.length);
  const missIds: string[] = [];
  const missAt: number[][] = [];
  const missIndex = new Map<string, number>();
  for (let i = 0; i < pairs.length; i++) {
    const [k, a] = pairs[i]!;
    if (isEmptyAccount(a)) continue;
    const hit = cachedLeaf(k, a);
    if (hit) { out[i] = hit; continue; }
    const id = `${k}:${a.balance}:${a.nonce}`;
    const j = missIndex.get(id);
    if (j !== undefined) { missAt[j]!.push(i); continue; }
    missIndex.set(id, missIds.length);
    missIds.push(id);
    missAt.push([i]);
  }
  if (stats) stats.computed += missIds.length;
  if (missIds.length === 0) return out;
  const inputs = missAt.map((at) => { const [k, a] = pairs[at[0]!]!; return leafInput(k, a); });
  const expanded = hasher && missIds.length >= minBatch ? await hasher.expandLeaves(inputs) : inputs.map((x) => shake256(x, LATTICE_BYTES));
  missAt.forEach((at, j) => {
    const [k, a] = pairs[at[0]!]!;
    const leaf = storeLeaf(k, a, expanded[j]!);
    for (const i of missAt[j]!) out[i] = leaf;
  });
  return out;
}

/**
 * [key, before], [key, after] for every account among `keys` whose state differs between `pre` and `post`
 * (a missing key is the empty account): the leaf pairs a block's lattice update replaces, in key order, as
 * leavesFor takes them and StateLattice.replaceLeaves consumes its result.
 */
export function changedLeafPairs(keys: readonly AccountKey[], pre: ReadonlyMap<AccountKey, Account>, post: ReadonlyMap<AccountKey, Account>): (readonly [AccountKey, Account])[] {
  const pairs: (readonly [AccountKey, Account])[] = [];
  for (const k of keys) {
    const a = pre.get(k) ?? EMPTY_ACCOUNT, b = post.get(k) ?? EMPTY_ACCOUNT;
    if (a.balance !== b.balance || a.nonce !== b.nonce) pairs.push([k, a], [k, b]);
  }
  return pairs;
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
    addSub(this.lanes, accountLeaf(key, a), undefined);
  }

  remove(key: AccountKey | Uint8Array, a: Account): void {
    if (isEmptyAccount(a)) return;
    addSub(this.lanes, undefined, accountLeaf(key, a));
  }

  /** Replace one account's leaf (undefined = an empty account) by another, in one pass over the lanes. */
  replaceLeaf(before: Uint16Array | undefined, after: Uint16Array | undefined): void {
    addSub(this.lanes, after, before);
  }

  /**
   * Replace many accounts' leaves: `leaves` holds pairs [before, after] (undefined = an empty account), as
   * leavesFor returns them for [[key, pre], [key, post], …]. WebAssembly SIMD where available.
   */
  replaceLeaves(leaves: readonly (Uint16Array | undefined)[]): void {
    if (wasmAddSub) wasmAddSub(this.lanes, leaves);
    else addSubPairs(this.lanes, leaves);
  }

  /** Replace `before` with `after` for one account (one pass over the lanes). */
  update(key: AccountKey, before: Account, after: Account): void {
    if (before.balance === after.balance && before.nonce === after.nonce) return;
    addSub(this.lanes, isEmptyAccount(after) ? undefined : accountLeaf(key, after), isEmptyAccount(before) ? undefined : accountLeaf(key, before));
  }

  root(): Uint8Array {
    return sha256(concatBytes(ROOT_PREFIX, this.toBytes()));
  }
}

/** replaceLeaves without WebAssembly: the SWAR loop once per pair. */
export function addSubPairs(lanes: Uint16Array, leaves: readonly (Uint16Array | undefined)[]): void {
  for (let i = 0; i + 1 < leaves.length; i += 2) addSub(lanes, leaves[i + 1], leaves[i]);
}

const LOW15 = 0x7fff7fff;
const HIGH = 0x80008000;

/**
 * lanes += plus − minus, lane-wise mod 2^16, two lanes per 32-bit word (SWAR): each lane's top bit is
 * taken out of the arithmetic so no carry or borrow crosses into the next lane, then put back by XOR.
 * Exactly the per-lane definition (a property test compares it with the plain loop); about 3× faster.
 * Every array here is a 2 KiB, 4-byte aligned Uint16Array (lattice lanes and cached leaves).
 */
export function addSub(lanes: Uint16Array, plus: Uint16Array | undefined, minus: Uint16Array | undefined): void {
  const l = new Uint32Array(lanes.buffer, lanes.byteOffset, LATTICE_LANES / 2);
  const p = plus && new Uint32Array(plus.buffer, plus.byteOffset, LATTICE_LANES / 2);
  const m = minus && new Uint32Array(minus.buffer, minus.byteOffset, LATTICE_LANES / 2);
  for (let i = 0; i < LATTICE_LANES / 2; i++) {
    let a = l[i]!;
    if (m) {
      const b = m[i]!;
      a = ((a | HIGH) - (b & LOW15)) ^ (~(a ^ b) & HIGH);
    }
    if (p) {
      const b = p[i]!;
      a = ((a & LOW15) + (b & LOW15)) ^ ((a ^ b) & HIGH);
    }
    l[i] = a;
  }
}
