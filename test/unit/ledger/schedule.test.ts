/** Tests for src/ledger/schedule.ts: slot arithmetic and proposer rotation at the boundaries. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { proposerFor, proposerIndex, slotAt, slotStart } from '../../../src/ledger/schedule.js';

const G = { genesisTime: 1_700_000_000_000, slotMs: 1000 };
const T0 = G.genesisTime;

test('slotAt: genesis time itself is slot 0', () => {
  assert.equal(slotAt(G, T0), 0);
});

test('slotAt: any time before genesis is slot 0 (1 ms before, long before, epoch 0)', () => {
  assert.equal(slotAt(G, T0 - 1), 0);
  assert.equal(slotAt(G, T0 - 1_000_000), 0);
  assert.equal(slotAt(G, 0), 0);
});

test('slotAt: the last ms of a slot stays in it; the next ms starts the next slot', () => {
  assert.equal(slotAt(G, T0 + 999), 0);
  assert.equal(slotAt(G, T0 + 1000), 1);
  assert.equal(slotAt(G, T0 + 1001), 1);
  assert.equal(slotAt(G, T0 + 1999), 1);
  assert.equal(slotAt(G, T0 + 2000), 2);
  assert.equal(slotAt(G, T0 + 123_456_789), 123_456);
});

test('slotAt with a non-round slot length (slotMs 333)', () => {
  const g = { genesisTime: 10, slotMs: 333 };
  assert.equal(slotAt(g, 10 + 332), 0);
  assert.equal(slotAt(g, 10 + 333), 1);
  assert.equal(slotAt(g, 10 + 665), 1);
  assert.equal(slotAt(g, 10 + 666), 2);
});

test('slotStart(s) = genesisTime + s × slotMs, and slotAt(slotStart(s)) = s', () => {
  assert.equal(slotStart(G, 0), T0);
  assert.equal(slotStart(G, 1), T0 + 1000);
  assert.equal(slotStart(G, 86_400), T0 + 86_400_000);
  for (const s of [0, 1, 2, 59, 1_000_000]) {
    assert.equal(slotAt(G, slotStart(G, s)), s);
    if (s > 0) assert.equal(slotAt(G, slotStart(G, s) - 1), s - 1);
  }
});

test('proposerFor(s) = validators[s mod n], wrapping at n', () => {
  const validators = [new Uint8Array([1]), new Uint8Array([2]), new Uint8Array([3])];
  const g = { validators };
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map((s) => proposerIndex(g, s)), [0, 1, 2, 0, 1, 2, 0]);
  assert.equal(proposerFor(g, 0), validators[0]);
  assert.equal(proposerFor(g, 2), validators[2]);
  assert.equal(proposerFor(g, 3), validators[0]);
  assert.equal(proposerFor(g, 3_000_001), validators[1]);
});

test('a single validator proposes every slot', () => {
  const v = new Uint8Array([9]);
  for (const s of [0, 1, 2, 1000]) assert.equal(proposerFor({ validators: [v] }, s), v);
});
