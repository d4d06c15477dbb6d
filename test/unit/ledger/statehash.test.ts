/**
 * Tests for src/ledger/statehash.ts: the LtHash state lattice. Leaves and roots are recomputed independently
 * with node:crypto (SHAKE256 / SHA-256) from the definition in the module's doc comment.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { toHex } from '../../../src/encoding/bytes.js';
import fc from 'fast-check';
import { accountLeaf, addSub, LATTICE_BYTES, LATTICE_LANES, StateLattice } from '../../../src/ledger/statehash.js';
import { testKeys } from '../../helpers/fixtures.js';

const KEYS = testKeys('statehash', 4).map((k) => k.publicKey);
const PK = KEYS[0]!;

const EMPTY_ROOT_HEX = '6f50a5b2e656ffd2a27229f3efc4f317666827091e6dc02d01f7633e3116ea07';

function refRoot(latticeBytes: Uint8Array): string {
  return crypto.createHash('sha256').update(Buffer.from('meshledger:state:v1\0')).update(latticeBytes).digest('hex');
}

/** SHAKE256("meshledger:account:v1" || 0x00 || canonical([pk, balance, nonce]), 2048) with the canonical bytes given by hand. */
function refLeafBytes(canonicalAccount: string): Uint8Array {
  return new Uint8Array(crypto.createHash('shake256', { outputLength: 2048 })
    .update(Buffer.from('meshledger:account:v1\0'))
    .update(Buffer.from(canonicalAccount, 'hex'))
    .digest());
}

/** Little-endian lanes of 2048 bytes, read without relying on platform Uint16Array order. */
function lanesLE(bytes: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i += 2) out.push(bytes[i]! | (bytes[i + 1]! << 8));
  return out;
}

test('lattice dimensions: 1024 lanes, 2048 bytes', () => {
  assert.equal(LATTICE_LANES, 1024);
  assert.equal(LATTICE_BYTES, 2048);
  assert.equal(new StateLattice().toBytes().length, 2048);
});

test('root of the empty lattice is fixed and equals SHA-256("meshledger:state:v1\\0" || 2048 zero bytes)', () => {
  const root = toHex(new StateLattice().root());
  assert.equal(root, EMPTY_ROOT_HEX);
  assert.equal(root, refRoot(new Uint8Array(2048)));
});

test('a leaf is SHAKE256-2048 of the prefixed canonical [pk, balance, nonce] (hand-encoded), read as LE u16 lanes', () => {
  const pkHex = toHex(PK);
  const cases: [bigint, bigint, string][] = [
    [1000n, 0n, `93c420${pkHex}cd03e800`],
    [1n, 5n, `93c420${pkHex}0105`],
    [1n << 32n, 300n, `93c420${pkHex}cf0000000100000000cd012c`],
    [0n, 1n, `93c420${pkHex}0001`],
  ];
  for (const [balance, nonce, canon] of cases) {
    const leaf = accountLeaf(PK, { balance, nonce });
    assert.equal(leaf.length, 1024);
    assert.deepEqual([...leaf], lanesLE(refLeafBytes(canon)), `balance ${balance} nonce ${nonce}`);
    // key given as hex gives the same leaf
    assert.deepEqual([...accountLeaf(pkHex, { balance, nonce })], [...leaf]);
  }
});

test('the lattice after adding accounts is the lane-wise sum mod 2^16 of the reference leaves, and its root matches', () => {
  const l = new StateLattice();
  l.add(KEYS[0]!, { balance: 1000n, nonce: 0n });
  l.add(KEYS[1]!, { balance: 1n, nonce: 5n });
  const x = lanesLE(refLeafBytes(`93c420${toHex(KEYS[0]!)}cd03e800`));
  const y = lanesLE(refLeafBytes(`93c420${toHex(KEYS[1]!)}0105`));
  const sum = x.map((v, i) => (v + y[i]!) & 0xffff);
  assert.deepEqual([...l.lanes], sum);
  const bytes = new Uint8Array(2048);
  sum.forEach((v, i) => { bytes[2 * i] = v & 0xff; bytes[2 * i + 1] = v >> 8; });
  assert.deepEqual(l.toBytes(), bytes);
  assert.equal(toHex(l.root()), refRoot(bytes));
});

test('add then remove returns to the original lanes and root', () => {
  const l = new StateLattice();
  l.add(KEYS[0]!, { balance: 77n, nonce: 1n });
  const lanes = [...l.lanes];
  const root = toHex(l.root());
  l.add(KEYS[1]!, { balance: 5n, nonce: 0n });
  assert.notEqual(toHex(l.root()), root);
  l.remove(KEYS[1]!, { balance: 5n, nonce: 0n });
  assert.deepEqual([...l.lanes], lanes);
  assert.equal(toHex(l.root()), root);
  l.remove(KEYS[0]!, { balance: 77n, nonce: 1n });
  assert.equal(toHex(l.root()), EMPTY_ROOT_HEX);
});

test('removing from the empty lattice wraps mod 2^16 and adding back restores zero', () => {
  const l = new StateLattice();
  l.remove(PK, { balance: 3n, nonce: 0n });
  assert.notEqual(toHex(l.root()), EMPTY_ROOT_HEX);
  l.add(PK, { balance: 3n, nonce: 0n });
  assert.ok(l.lanes.every((v) => v === 0));
});

test('empty accounts (balance 0, nonce 0) are never added or removed', () => {
  const l = new StateLattice();
  l.add(PK, { balance: 0n, nonce: 0n });
  assert.equal(toHex(l.root()), EMPTY_ROOT_HEX);
  l.remove(PK, { balance: 0n, nonce: 0n });
  assert.equal(toHex(l.root()), EMPTY_ROOT_HEX);
  // but balance 0 with nonce > 0 is a real account
  l.add(PK, { balance: 0n, nonce: 1n });
  assert.notEqual(toHex(l.root()), EMPTY_ROOT_HEX);
});

test('update(before, after) equals remove(before) + add(after), including to and from the empty account', () => {
  const k = toHex(PK);
  const l1 = new StateLattice();
  l1.add(k, { balance: 10n, nonce: 0n });
  l1.update(k, { balance: 10n, nonce: 0n }, { balance: 4n, nonce: 1n });
  const l2 = new StateLattice();
  l2.add(k, { balance: 4n, nonce: 1n });
  assert.deepEqual(l1.toBytes(), l2.toBytes());
  // from empty: a newly created recipient
  const l3 = new StateLattice();
  l3.update(k, { balance: 0n, nonce: 0n }, { balance: 4n, nonce: 1n });
  assert.deepEqual(l3.toBytes(), l2.toBytes());
  // unchanged account: a no-op
  l3.update(k, { balance: 4n, nonce: 1n }, { balance: 4n, nonce: 1n });
  assert.deepEqual(l3.toBytes(), l2.toBytes());
});

test('the lattice is independent of the order accounts are added', () => {
  const accts = KEYS.map((k, i) => [k, { balance: BigInt(i * 1000 + 1), nonce: BigInt(i) }] as const);
  const l1 = new StateLattice();
  for (const [k, a] of accts) l1.add(k, a);
  const l2 = new StateLattice();
  for (const [k, a] of [...accts].reverse()) l2.add(k, a);
  assert.deepEqual(l1.toBytes(), l2.toBytes());
});

test('different accounts or values give different leaves (key, balance and nonce are all committed)', () => {
  const roots = new Set<string>();
  for (const [k, a] of [[KEYS[0]!, { balance: 1n, nonce: 0n }], [KEYS[1]!, { balance: 1n, nonce: 0n }], [KEYS[0]!, { balance: 2n, nonce: 0n }], [KEYS[0]!, { balance: 1n, nonce: 1n }]] as const) {
    const l = new StateLattice();
    l.add(k, a);
    roots.add(toHex(l.root()));
  }
  assert.equal(roots.size, 4);
});

test('toBytes / fromBytes round trip (little-endian lanes) and copies rather than aliases', () => {
  const l = new StateLattice();
  l.add(KEYS[2]!, { balance: 123n, nonce: 4n });
  const b = l.toBytes();
  assert.deepEqual(lanesLE(b), [...l.lanes]);
  const r = StateLattice.fromBytes(b);
  assert.deepEqual([...r.lanes], [...l.lanes]);
  assert.equal(toHex(r.root()), toHex(l.root()));
  b[0] = b[0]! ^ 0xff; // mutating the source after fromBytes must not change r
  assert.equal(toHex(r.root()), toHex(l.root()));
  // from a view with a non-zero offset
  const big = new Uint8Array(2048 + 3);
  big.set(l.toBytes(), 3);
  assert.equal(toHex(StateLattice.fromBytes(big.subarray(3)).root()), toHex(l.root()));
});

test('fromBytes rejects lengths other than 2048', () => {
  for (const n of [0, 2047, 2049]) assert.throws(() => StateLattice.fromBytes(new Uint8Array(n)), /2048/);
});

test('clone is independent of the original', () => {
  const l = new StateLattice();
  l.add(PK, { balance: 1n, nonce: 0n });
  const c = l.clone();
  c.add(KEYS[1]!, { balance: 1n, nonce: 0n });
  assert.notEqual(toHex(c.root()), toHex(l.root()));
  const l2 = new StateLattice();
  l2.add(PK, { balance: 1n, nonce: 0n });
  assert.equal(toHex(l.root()), toHex(l2.root()));
});

test('addSub (two lanes per 32-bit word) equals the per-lane definition, including wrap-around and every top-bit case', () => {
  const lanesArb = fc.uint16Array({ minLength: LATTICE_LANES, maxLength: LATTICE_LANES });
  const reference = (l: Uint16Array, p?: Uint16Array, m?: Uint16Array) => {
    const out = new Uint16Array(l);
    for (let i = 0; i < LATTICE_LANES; i++) out[i] = (out[i]! + (p ? p[i]! : 0) - (m ? m[i]! : 0)) & 0xffff;
    return out;
  };
  const check = (l: Uint16Array, p?: Uint16Array, m?: Uint16Array) => {
    const got = new Uint16Array(l);
    addSub(got, p && new Uint16Array(p), m && new Uint16Array(m));
    assert.deepEqual(got, reference(l, p, m));
  };
  // The edges: 0, 1, 0x7fff, 0x8000, 0xffff in every combination, in both halves of a word.
  const edges = [0, 1, 0x7fff, 0x8000, 0x8001, 0xfffe, 0xffff];
  const fill = (f: (i: number) => number) => Uint16Array.from({ length: LATTICE_LANES }, (_, i) => f(i));
  for (const a of edges) for (const b of edges) for (const c of edges) {
    const l = fill((i) => (i % 2 ? a : b)), p = fill((i) => (i % 3 ? b : c)), m = fill((i) => (i % 5 ? c : a));
    check(l, p, m); check(l, p, undefined); check(l, undefined, m);
  }
  fc.assert(fc.property(lanesArb, lanesArb, lanesArb, (l, p, m) => { check(l, p, m); check(l, undefined, m); check(l, p, undefined); }), { numRuns: 200 });
});

test('leavesFor: leaves in order, none for empty accounts, one expansion per distinct miss, the hasher only from minBatch misses on', async () => {
  const { leavesFor, clearLeafCache } = await import('../../../src/ledger/statehash.js');
  clearLeafCache();
  const calls: number[] = [];
  const hasher = { expandLeaves: async (inputs: Uint8Array[]) => { calls.push(inputs.length); return inputs.map((x) => new Uint8Array(crypto.createHash('shake256', { outputLength: LATTICE_BYTES }).update(x).digest())); } };
  const k = (i: number) => toHex(KEYS[i % KEYS.length]!) ;
  const acct = (n: number) => ({ balance: BigInt(1000 + n), nonce: BigInt(n) });
  const pairs: [string, { balance: bigint; nonce: bigint }][] = [[k(0), acct(1)], [k(1), { balance: 0n, nonce: 0n }], [k(0), acct(1)], [k(2), acct(2)]];
  const few = await leavesFor(hasher, pairs, 64);
  assert.deepEqual(calls, [], 'two misses: computed inline');
  assert.equal(few[1], undefined, 'an empty account has no leaf');
  assert.equal(few[0], few[2], 'the same (key, state) twice: one leaf');
  assert.deepEqual(few[3], accountLeaf(k(2), acct(2)));
  const many = Array.from({ length: 70 }, (_, i): [string, { balance: bigint; nonce: bigint }] => [k(i), acct(100 + i)]);
  const got = await leavesFor(hasher, [...many, [k(0), acct(1)]], 64);
  assert.deepEqual(calls, [70], 'seventy distinct misses in one batch; the cached one not asked again');
  many.forEach(([key, a], i) => assert.deepEqual(got[i], accountLeaf(key, a)));
  assert.equal(got[70], few[0]);
});

test('leaf cache: the last two states of an account are kept, an older one is recomputed, and every answer is the reference leaf', async () => {
  const { clearLeafCache } = await import('../../../src/ledger/statehash.js');
  clearLeafCache();
  const key = toHex(KEYS[1]!);
  const s = [1n, 2n, 3n].map((n) => ({ balance: 1000n * n, nonce: n }));
  const first = s.map((a) => accountLeaf(key, a));
  // The newest two are the very arrays computed before; the oldest was dropped and is computed again.
  assert.equal(accountLeaf(key, s[2]!), first[2]);
  assert.equal(accountLeaf(key, s[1]!), first[1]);
  const again = accountLeaf(key, s[0]!);
  assert.notEqual(again, first[0]);
  assert.deepEqual(again, first[0]);
  // A state equal in balance but not nonce (and vice versa) is a different leaf.
  assert.notDeepEqual(accountLeaf(key, { balance: 1000n, nonce: 9n }), first[0]);
  assert.notDeepEqual(accountLeaf(key, { balance: 9n, nonce: 1n }), first[0]);
  const l = new StateLattice();
  for (const a of s) l.add(key, a);
  const ref = new StateLattice();
  clearLeafCache();
  for (const a of s) ref.add(key, a);
  assert.deepEqual(l.toBytes(), ref.toBytes());
});

test('leafInput writes exactly the prefix and canonical [key, balance, nonce], at every integer-width boundary', async () => {
  const { leafInput } = await import('../../../src/ledger/statehash.js');
  const { encodeCanonical } = await import('../../../src/encoding/canonical.js');
  const edges = [0n, 1n, 0x7fn, 0x80n, 0xffn, 0x100n, 0xffffn, 0x10000n, 0xffff_ffffn, 0x1_0000_0000n, (1n << 53n) - 1n, 1n << 53n, (1n << 64n) - 1n];
  const want = (key: string, a: { balance: bigint; nonce: bigint }) =>
    toHex(new Uint8Array([...Buffer.from('meshledger:account:v1\0'), ...encodeCanonical([Buffer.from(key, 'hex'), a.balance, a.nonce])]));
  for (const key of KEYS.map(toHex)) {
    for (const balance of edges) for (const nonce of [0n, 0x80n, (1n << 64n) - 1n]) assert.equal(toHex(leafInput(key, { balance, nonce })), want(key, { balance, nonce }));
  }
  fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (balance, nonce) => {
    assert.equal(toHex(leafInput(toHex(PK), { balance, nonce })), want(toHex(PK), { balance, nonce }));
  }), { numRuns: 500 });
  assert.throws(() => leafInput(toHex(PK), { balance: 1n << 64n, nonce: 0n }), RangeError);
  assert.throws(() => leafInput(toHex(PK), { balance: -1n, nonce: 0n }), RangeError);
});
