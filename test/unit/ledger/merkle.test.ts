/**
 * Tests for src/ledger/merkle.ts: the transactions root, recomputed independently with node:crypto from
 * its definition (leaf = SHA-256(0x00 || id), node = SHA-256(0x01 || l || r), odd node promoted).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { EMPTY_ROOT, merkleRoot } from '../../../src/ledger/merkle.js';

const h = (...parts: (number[] | Uint8Array)[]): Uint8Array => {
  const c = crypto.createHash('sha256');
  for (const p of parts) c.update(Uint8Array.from(p));
  return new Uint8Array(c.digest());
};
const leaf = (id: Uint8Array): Uint8Array => h([0x00], id);
const node = (l: Uint8Array, r: Uint8Array): Uint8Array => h([0x01], l, r);

/** Deterministic distinct 32-byte ids. */
const ids = Array.from({ length: 9 }, (_, i) => h([0xaa, i]));
const [a, b, c, d, e] = ids as [Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array];
const hex = (x: Uint8Array): string => Buffer.from(x).toString('hex');

test('root([]) is 32 zero bytes', () => {
  assert.deepEqual(merkleRoot([]), new Uint8Array(32));
  assert.deepEqual(EMPTY_ROOT, new Uint8Array(32));
});

test('root([a]) = SHA-256(0x00 || a) (a single id is still domain-separated, not returned raw)', () => {
  assert.equal(hex(merkleRoot([a])), hex(leaf(a)));
  assert.notEqual(hex(merkleRoot([a])), hex(a));
});

test('root([a, b]) = node(leaf a, leaf b)', () => {
  assert.equal(hex(merkleRoot([a, b])), hex(node(leaf(a), leaf(b))));
});

test('root of 3 = node(node(l0, l1), l2): the odd leaf is promoted, not duplicated', () => {
  assert.equal(hex(merkleRoot([a, b, c])), hex(node(node(leaf(a), leaf(b)), leaf(c))));
  assert.notEqual(hex(merkleRoot([a, b, c])), hex(node(node(leaf(a), leaf(b)), node(leaf(c), leaf(c)))));
});

test('root of 5 = node(node(node(l0,l1), node(l2,l3)), l4): promotion across two levels', () => {
  const want = node(node(node(leaf(a), leaf(b)), node(leaf(c), leaf(d))), leaf(e));
  assert.equal(hex(merkleRoot([a, b, c, d, e])), hex(want));
});

test('root of 6 = node(node(n01, n23), n45)', () => {
  const f = ids[5]!;
  const want = node(node(node(leaf(a), leaf(b)), node(leaf(c), leaf(d))), node(leaf(e), leaf(f)));
  assert.equal(hex(merkleRoot([a, b, c, d, e, f])), hex(want));
});

test('roots of [a,b,c] and [a,b,c,c] differ (no CVE-2012-2459 duplication collision)', () => {
  assert.notEqual(hex(merkleRoot([a, b, c])), hex(merkleRoot([a, b, c, c])));
});

test('order matters: [a,b] ≠ [b,a] and [a,b,c] ≠ [a,c,b]', () => {
  assert.notEqual(hex(merkleRoot([a, b])), hex(merkleRoot([b, a])));
  assert.notEqual(hex(merkleRoot([a, b, c])), hex(merkleRoot([a, c, b])));
});

test('merkleRoot does not mutate or alias its input, and returns fresh results per call', () => {
  const input = [a, b, c];
  const copy = input.map((x) => new Uint8Array(x));
  const r1 = merkleRoot(input);
  const r2 = merkleRoot([a, b, c, d]);
  assert.deepEqual(input, copy);
  assert.equal(hex(r1), hex(node(node(leaf(a), leaf(b)), leaf(c))), 'an earlier result is not overwritten by a later call');
  assert.notEqual(hex(r1), hex(r2));
});
