/**
 * Leaf warm-up: warmLeaves computes the leaves the next proposer's block will need, and expectNext has
 * sync's next block's leaves computed while its parent's state is written. Memoisation only: no verdict
 * changes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeBlock, signHeader } from '../../../src/ledger/block.js';
import { merkleRoot } from '../../../src/ledger/merkle.js';
import { toHex } from '../../../src/encoding/bytes.js';
import { buildBlock, openTestChain, transfer } from '../../helpers/fixtures.js';
import { BOB0, V, alice, bob, carol, dave, fields, genesis, grow, isRule, keyFor } from './common.js';

test('warmLeaves computes the leaves a block of these candidates by that proposer needs, old and new, once; that block then computes none', async () => {
  const { changedLeafPairs, clearLeafCache, leavesFor } = await import('../../../src/ledger/statehash.js');
  const { applyBlockTxs, blockAccounts } = await import('../../../src/ledger/state.js');
  const { proposerFor } = await import('../../../src/ledger/schedule.js');
  const { chain } = await openTestChain(genesis);
  await grow(chain, V, 1, 1, () => [transfer(alice, carol, 5n, 0n)]);
  // The third cannot apply (dave holds only the 3 bob sends), so assembly skips it, and dave's later one too.
  const candidates = [transfer(alice, bob, 10n, 1n), transfer(bob, dave, 3n, 0n), transfer(dave, carol, 10n, 0n), transfer(dave, carol, 1n, 1n), transfer(carol, alice, 1n, 0n)];
  const slot = chain.head.slot + 1;
  const block = await buildBlock(chain, V, slot, candidates); // the proposer's block (its assembly computes leaves here too)
  assert.equal(block.txs.length, 3);
  const proposer = proposerFor(genesis, slot);
  const needed = async () => {
    const accounts = blockAccounts(block.txs, proposer);
    const pre = await chain.getAccounts(accounts.keys, accounts.bytes);
    const stats = { computed: 0 };
    await leavesFor(undefined, changedLeafPairs(accounts.keys, pre, applyBlockTxs(pre, block.txs, proposer, accounts).post), 64, stats);
    return stats.computed;
  };
  clearLeafCache();
  // Old leaves: alice, bob, carol (dave and the proposer are empty before); new: those and dave, proposer.
  assert.equal(await chain.warmLeaves(candidates, proposer), 8);
  assert.equal(await chain.warmLeaves(candidates, proposer), 0, 'all cached now');
  assert.equal(await chain.warmLeaves([], proposer), 0);
  // Background work stops where `proceed` says no: before anything, or between chunks.
  clearLeafCache();
  assert.equal(await chain.warmLeaves(candidates, proposer, () => false), 0);
  let calls = 0;
  const partial = await chain.warmLeaves(candidates, proposer, () => ++calls <= 2, 2); // the start and one chunk of 2 pairs
  assert.ok(partial >= 1 && partial <= 2, `one chunk computed ${partial}`);
  assert.equal(await chain.warmLeaves(candidates, proposer, () => true, 2), 8 - partial, 'the rest, chunk by chunk');
  assert.equal(await needed(), 0, 'every leaf the proposer\'s block needs was computed by the warm-up');
  // Another proposer: only its own leaf (the fee credit) differs.
  clearLeafCache();
  await chain.warmLeaves(candidates, proposerFor(genesis, slot + 1));
  assert.equal(await needed(), 1);
  // And the block validates and connects on warm leaves (the same pure function).
  assert.equal((await chain.addBlock(block)).status, 'connected');
  assert.equal(chain.head.hashHex, block.header.hashHex);
});

test('expectNext: the expected block\'s leaves are computed while its parent\'s state is written; it then computes none; a hint that does not apply changes no verdict', async () => {
  const { clearLeafCache } = await import('../../../src/ledger/statehash.js');
  const { chain: builder } = await openTestChain(genesis);
  const [b1, b2] = await grow(builder, V, 2, 1, (i) => (i === 0
    ? [transfer(alice, carol, 5n, 0n), transfer(bob, dave, 7n, 0n)]
    : [transfer(carol, bob, 2n, 0n), transfer(alice, dave, 1n, 1n)]));
  assert.equal(b2!.txs.length, 2);

  clearLeafCache();
  const { chain: plain } = await openTestChain(genesis);
  await plain.addBlock(b1!);
  let before = plain.leavesComputed;
  await plain.addBlock(b2!);
  assert.ok(plain.leavesComputed - before >= 4, `without the hint the block computes its new leaves (${plain.leavesComputed - before})`);

  clearLeafCache();
  const { chain: hinted } = await openTestChain(genesis);
  hinted.expectNext(b2);
  await hinted.addBlock(b1!);
  before = hinted.leavesComputed;
  assert.equal((await hinted.addBlock(b2!)).status, 'connected');
  assert.equal(hinted.leavesComputed, before, 'every leaf the expected block needed was computed during its parent\'s write');
  assert.equal(toHex(hinted.stateRoot), toHex(plain.stateRoot));
  assert.deepEqual(await hinted.auditSupply(), await plain.auditSupply());

  // The expected block is invalid (bob spends more than he has after b1): the warm-up skips what does not
  // apply, and the block is still rejected for it.
  const { chain: c3 } = await openTestChain(genesis);
  await c3.addBlock(b1!);
  const ref = await buildBlock(c3, V, b1!.header.slot + 1);
  const over = transfer(bob, carol, BOB0, 1n);
  const bad = makeBlock(signHeader({ ...fields(ref.header), txRoot: merkleRoot([over.id]) }, keyFor(ref.header.slot).secretKey), [over]);
  const { chain: c4 } = await openTestChain(genesis);
  c4.expectNext(bad);
  await c4.addBlock(b1!);
  await assert.rejects(c4.addBlock(bad), isRule('bad_tx', 'insufficient_funds'));
  assert.equal(c4.head.hashHex, b1!.header.hashHex);
  // A hint that is not the child of the block being added is not used, and clears nothing it should not.
  const { chain: c5 } = await openTestChain(genesis);
  c5.expectNext(b1);
  assert.equal((await c5.addBlock(b1!)).status, 'connected');
  assert.equal((await c5.addBlock(b2!)).status, 'connected');
  assert.equal(toHex(c5.stateRoot), toHex(plain.stateRoot));
});
