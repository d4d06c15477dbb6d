/**
 * The block index: tips (valid blocks without a valid child) through adds, invalid marks and forgetting a
 * block; invalid marks loaded at start-up give the same tips; links are asserted; the best chain links up.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockIndex } from '../../../src/chain/blockindex.js';
import { ChainError, type BlockEntry } from '../../../src/chain/types.js';
import { toHex } from '../../../src/encoding/bytes.js';
import { InvariantViolation } from '../../../src/util/assert.js';

function ent(tag: number, height: number, slot: number, parent?: BlockEntry): BlockEntry {
  const hash = new Uint8Array(32).fill(tag);
  return { hash, hashHex: toHex(hash), height, slot, parentHex: parent ? parent.hashHex : '00'.repeat(32) };
}

const tipsOf = (ix: BlockIndex): string[] => [...ix.tips()].map((e) => e.hashHex).sort();
const hex = (...es: BlockEntry[]): string[] => es.map((e) => e.hashHex).sort();

/** g ─ a1 ─ a2 ─ a3, with b2 (slot 5, like a3) and c2 on a1. */
function build() {
  const g = ent(1, 0, 0);
  const a1 = ent(2, 1, 1, g), a2 = ent(3, 2, 2, a1), a3 = ent(4, 3, 5, a2);
  const b2 = ent(5, 2, 5, a1), c2 = ent(6, 2, 6, a1);
  return { g, a1, a2, a3, b2, c2, all: [g, a1, a2, a3, b2, c2] };
}

test('tips: leaves only; marking invalid removes the block and its descendants and restores a parent left without a valid child', () => {
  const { g, a1, a2, a3, b2, c2, all } = build();
  const ix = new BlockIndex();
  for (const e of all) ix.add(e);
  assert.deepEqual(tipsOf(ix), hex(a3, b2, c2));
  assert.deepEqual(ix.othersAtSlot(5, a3.hashHex), [b2.hashHex]);
  assert.deepEqual(ix.othersAtSlot(6, c2.hashHex), []);

  // a2 invalid: a2 and a3 go (a3 as invalid_parent); a1 keeps valid children, so is no tip.
  assert.deepEqual(ix.markInvalid(a2, 'bad_state_root'), [[a2.hashHex, 'bad_state_root'], [a3.hashHex, 'invalid_parent']]);
  ix.settleParentTip(a2);
  assert.deepEqual(tipsOf(ix), hex(b2, c2));
  assert.equal(ix.invalidRule(a3.hashHex), 'invalid_parent');
  // b2 and c2 invalid too: a1 is a tip again.
  ix.markInvalid(b2, 'bad_tx');
  ix.settleParentTip(b2);
  assert.deepEqual(tipsOf(ix), hex(c2));
  ix.markInvalid(c2, 'bad_tx');
  ix.settleParentTip(c2);
  assert.deepEqual(tipsOf(ix), hex(a1));

  // The same marks loaded at start-up, entries in any order, give the same tips.
  const loaded = new BlockIndex();
  loaded.load([a3, c2, a1, b2, g, a2], new Map([[a2.hashHex, 'bad_state_root'], [a3.hashHex, 'invalid_parent'], [b2.hashHex, 'bad_tx'], [c2.hashHex, 'bad_tx']]));
  assert.deepEqual(tipsOf(loaded), hex(a1));
  const partial = new BlockIndex();
  partial.load([...all].reverse(), new Map([[a2.hashHex, 'bad_state_root'], [a3.hashHex, 'invalid_parent']]));
  assert.deepEqual(tipsOf(partial), hex(b2, c2));
});

test('remove: forgetting the newest block makes its parent a tip again unless a valid child remains', () => {
  const { g, a1, a2, b2, c2 } = build();
  const ix = new BlockIndex();
  for (const e of [g, a1, a2, b2]) ix.add(e);
  ix.remove(b2);
  assert.equal(ix.has(b2.hashHex), false);
  assert.deepEqual(tipsOf(ix), hex(a2));
  assert.deepEqual(ix.othersAtSlot(5, 'x'), []);
  ix.markInvalid(a2, 'bad_tx');
  ix.settleParentTip(a2);
  ix.add(c2);
  assert.deepEqual(tipsOf(ix), hex(c2));
  ix.remove(c2);
  assert.deepEqual(tipsOf(ix), hex(a1), 'the only other child is invalid');
  assert.throws(() => ix.remove(a1), InvariantViolation, 'a block with children is never forgotten');
});

test('parent links: add asserts parent indexed and height = parent + 1; load refuses a broken store', () => {
  const { g, a1, a2 } = build();
  const ix = new BlockIndex();
  ix.add(g);
  assert.throws(() => ix.add(a2), (e: unknown) => e instanceof InvariantViolation && e.message.startsWith('parent link: parent'));
  assert.throws(() => ix.add({ ...a2, parentHex: g.hashHex }), (e: unknown) => e instanceof InvariantViolation && /^parent link: block .* at height 2 on a parent at height 0/.test(e.message));
  ix.add(a1);
  ix.add(a2);
  assert.throws(() => new BlockIndex().load([g, a2], new Map()), (e: unknown) => e instanceof ChainError && /database corrupted/.test(e.message));
});

test('best chain: set from the head down to genesis, switched only onto a branch that links up', () => {
  const { g, a1, a2, a3, b2, c2, all } = build();
  const ix = new BlockIndex();
  for (const e of all) ix.add(e);
  ix.setBest(a3, g.hashHex);
  assert.deepEqual(ix.best, [g, a1, a2, a3].map((e) => e.hashHex));
  assert.equal(ix.isOnBest(a2.hashHex), true);
  assert.equal(ix.isOnBest(b2.hashHex), false);
  assert.throws(() => ix.setBest(a3, 'ff'.repeat(32)), ChainError);
  assert.throws(() => ix.switchBest(a1, [c2, a3]), (e: unknown) => e instanceof InvariantViolation && e.message.startsWith('best chain link:'));
  assert.throws(() => ix.switchBest(b2, []), (e: unknown) => e instanceof InvariantViolation && /fork point .* is not on the best chain/.test(e.message));
  assert.deepEqual(ix.best, [g, a1, a2, a3].map((e) => e.hashHex), 'unchanged by refused switches');
  ix.switchBest(a1, [b2]);
  assert.deepEqual(ix.best, [g, a1, b2].map((e) => e.hashHex));
  assert.equal(ix.bestAt(3), undefined);
});

test('atHeight: every branch\'s blocks at a height, through adds, start-up loading and forgetting', () => {
  const { g, a1, a2, a3, b2, c2, all } = build();
  const ix = new BlockIndex();
  for (const e of all) ix.add(e);
  assert.deepEqual(ix.atHeight(0), [g]);
  assert.deepEqual(ix.atHeight(2).map((e) => e.hashHex), [a2, b2, c2].map((e) => e.hashHex));
  assert.deepEqual(ix.atHeight(3), [a3]);
  assert.deepEqual(ix.atHeight(4), []);
  ix.remove(c2);
  assert.deepEqual(ix.atHeight(2).map((e) => e.hashHex), [a2, b2].map((e) => e.hashHex));
  ix.remove(a3);
  assert.deepEqual(ix.atHeight(3), []);
  const loaded = new BlockIndex();
  loaded.load([...all].reverse(), new Map([[b2.hashHex, 'bad_state_root']]));
  assert.deepEqual(loaded.atHeight(2).map((e) => e.hashHex).sort(), hex(a2, b2, c2), 'invalid blocks are listed too');
  assert.deepEqual(loaded.atHeight(1), [a1]);
});
