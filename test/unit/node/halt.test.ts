/**
 * A node whose chain halts on a failed invariant stops itself: MeshNode.halted settles with the violation,
 * the error says what happened and that the database is at its last good head, and the database is left
 * as it was. (The chain's own halting is tested in test/unit/chain/invariants.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeCanonical, encodeCanonical, type CanonicalValue } from '../../../src/encoding/canonical.js';
import { MeshNode } from '../../../src/node/node.js';
import { layout } from '../../../src/storage/layout.js';
import { openMemory } from '../../../src/storage/kv.js';
import { InvariantViolation } from '../../../src/util/assert.js';
import { ManualClock } from '../../../src/util/clock.js';
import type { Logger } from '../../../src/util/log.js';
import { GENESIS_TIME, openTestChain, transfer } from '../../helpers/fixtures.js';
import { V, alice, bob, carol, genesis, grow } from '../chain/common.js';

test('a halted chain stops the node: halted settles, the error is logged, nothing more is written', async () => {
  const store = await openMemory();
  const errors: string[] = [];
  const log: Logger = { debug() {}, info() {}, warn() {}, error: (m) => { errors.push(m); }, child: () => log };
  const node = await MeshNode.start({ datadir: '/nonexistent/never-touched', genesis, metrics: false }, {
    log, clock: new ManualClock(GENESIS_TIME + 1_000_000_000), openStore: async () => store,
  });
  const A = await grow(node.chain, V, 3, 1, (i) => [transfer(alice, carol, 100n + BigInt(i), BigInt(i))]);
  const other = await openTestChain(genesis);
  const B = await grow(other.chain, V, 4, 40, (i) => [transfer(bob, carol, 7n + BigInt(i), BigInt(i))]);
  // Corrupt the undo data of A's tip: switching to the longer branch B would write a wrong state.
  const key = layout.undo(A[2]!.header.hash);
  const records = decodeCanonical((await store.get(key))!) as CanonicalValue[][];
  await store.put(key, encodeCanonical(records.map((r) => [r[0]!, BigInt(r[1] as number | bigint) + 1n, r[2]!])));
  const head = node.chain.head.hashHex;
  let failure: unknown;
  for (const b of B) {
    try {
      await node.chain.addBlock(b);
    } catch (e) {
      failure = e;
      break;
    }
  }
  assert.ok(failure instanceof InvariantViolation, String(failure));
  const halted = await node.halted;
  assert.equal(halted, failure);
  assert.ok(errors.some((m) => /the chain halted on a failed invariant/.test(m) && /last good head/.test(m)), errors.join('\n'));
  assert.equal(node.chain.head.hashHex, head);
  // The node stopped itself: its store is closed (a second stop is a no-op).
  await node.stop();
  await assert.rejects(store.get(layout.tip()), /closed|not open/i);
});
