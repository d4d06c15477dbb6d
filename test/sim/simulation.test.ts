/**
 * The deterministic simulator runs the production node code (chain, mempool, producer, gossip, sync) for
 * several nodes in this process on a virtual clock. These tests prove one seed → one execution, and run a
 * small swarm in CI: fixed seeds plus fresh ones (printed, with the command that replays a failure).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { Simulation, type FaultProfile } from '../../src/sim/simulation.js';

const replay = (seed: number, nodes: number, slots: number, faults: FaultProfile, extra = '') =>
  `npm run sim -- --seed ${seed} --nodes ${nodes} --slots ${slots} --faults ${faults}${extra}`;

test('one seed gives one execution: same trace hash, same heads and state roots, twice', async (t) => {
  // Chaos (loss, partitions, crashes) plus a byzantine validator and a failing disk: all of it seeded.
  const opts = { seed: 20261125, nodes: 4, slots: 80, faults: 'chaos' as const, byzantine: 1, failWrites: 0.02 };
  const a = await new Simulation(opts).run();
  const b = await new Simulation(opts).run();
  t.diagnostic(`trace ${a.traceHash.slice(0, 16)}: ${a.txs.acknowledged} txs confirmed, ${a.faults.crashes} crashes, ${a.faults.partitions} partitions, ${a.reorgs} reorgs, ${a.slotsPerSecond.toFixed(0)} slots/s`);
  assert.equal(a.traceHash, b.traceHash);
  assert.deepEqual(a.heads, b.heads);
  assert.deepEqual(a.txs, b.txs);
  assert.deepEqual(a.byzantine, b.byzantine);
  assert.deepEqual({ ...a.faults }, { ...b.faults });
  assert.ok(a.faults.writeFailures > 0, 'the determinism run includes storage faults');
  assert.ok(Object.values(a.byzantine.actions).some((v) => v > 0), 'the determinism run includes a byzantine validator');
  // The trace really depends on the seed (it is not a constant).
  const c = await new Simulation({ ...opts, seed: opts.seed + 1 }).run();
  assert.notEqual(c.traceHash, a.traceHash);
});

test('swarm: fixed seeds and fresh ones across fault profiles keep every invariant', { timeout: 240_000 }, async (t) => {
  const fixed: [number, FaultProfile][] = [[1, 'none'], [2, 'lossy'], [3, 'partition'], [4, 'crash'], [5, 'chaos'], [42, 'chaos'], [7, 'byzantine'], [8, 'storage'], [9, 'churn']];
  const fresh: [number, FaultProfile][] = [randomInt(1, 2 ** 31), randomInt(1, 2 ** 31)].map((s) => [s, 'chaos']);
  t.diagnostic(`fresh seeds this run: ${fresh.map(([s]) => s).join(', ')}`);
  const nodes = 5;
  const slots = 120;
  for (const [seed, faults] of [...fixed, ...fresh]) {
    try {
      const r = await new Simulation({ seed, nodes, slots, faults }).run();
      t.diagnostic(`seed ${seed} ${faults}: height ${r.heads[0]!.height}, ${r.txs.confirmed}/${r.txs.acknowledged} confirmed (${JSON.stringify(r.txs.fates)}), crashes ${r.faults.crashes}, partitions ${r.faults.partitions}, reorgs ${r.reorgs}, write failures ${r.faults.writeFailures}, byzantine ${JSON.stringify(r.byzantine.actions)} evidence ${r.byzantine.evidenceRecorded}, ${r.slotsPerSecond.toFixed(0)} slots/s`);
      // Every acknowledged transaction has a fate (the simulation throws on a silent loss); the fates add up.
      assert.equal(Object.values(r.txs.fates).reduce((x, y) => x + y, 0), r.txs.acknowledged, 'every acknowledged transaction has a fate');
      if (faults === 'byzantine') {
        assert.ok(r.byzantine.equivocationsSeenBoth > 0 && r.byzantine.evidenceRecorded === r.byzantine.equivocationsSeenBoth, 'equivocations were delivered and detected');
        assert.ok(r.byzantine.invalidRejected > 0, 'invalid blocks were proposed and rejected');
      }
      if (faults === 'storage') assert.ok(r.faults.writeFailures > 0, 'writes failed');
      if (faults === 'churn') assert.ok(r.faults.lateJoins > 0 && r.faults.leaves > 0, 'a node joined late and one left');
      assert.ok(r.txs.rejected > 0, 'the workload includes invalid transactions, and they were rejected');
    } catch (e) {
      assert.fail(`${(e as Error).message}\n  replay: ${replay(seed, nodes, slots, faults)}`);
    }
  }
});
