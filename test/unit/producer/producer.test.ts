/** The block producer: one block per owned slot, on the head, and no busy loop on a slot already covered. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, type Clock, type TimerHandle } from '../../../src/util/clock.js';
import { Mempool } from '../../../src/mempool/mempool.js';
import { Producer } from '../../../src/producer/producer.js';
import { silentLogger } from '../../../src/util/log.js';
import { GENESIS_TIME, SLOT_MS, makeGenesis, openTestChain, testKeys, transfer } from '../../helpers/fixtures.js';

const settle = async () => { for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r)); };

class CountingClock implements Clock {
  timers = 0;
  constructor(readonly base: ManualClock) {}
  now() { return this.base.now(); }
  setTimeout(fn: () => void, ms: number): TimerHandle { this.timers++; return this.base.setTimeout(fn, ms); }
  clearTimeout(h: TimerHandle) { this.base.clearTimeout(h); }
}

test('producer fills its slots with mempool transactions, and a restart inside a covered slot does not spin', async () => {
  const [v, a, b] = testKeys('producer', 3);
  const g = makeGenesis({ validators: [v!], alloc: [[a!, 1_000_000n]] });
  const manual = new ManualClock(GENESIS_TIME + 5 * SLOT_MS + 1);
  const { chain, db } = await openTestChain(g, manual);
  const mempool = new Mempool({ db, genesis: g, accounts: chain, verifier: chain.verifier, sigCache: chain.sigCache });
  await mempool.add(transfer(a!, b!, 100n, 0n));
  const clock = new CountingClock(manual);
  const p1 = new Producer({ chain, mempool, clock, secretKey: v!.secretKey, publicKey: v!.publicKey, log: silentLogger });
  p1.start();
  manual.advance(0);
  await settle();
  assert.equal(chain.head.slot, 5, 'produced in the current slot (joined early in it)');
  assert.equal((await chain.getBlockAt(1))!.txs.length, 1, 'the mempool transaction is in the block');
  p1.stop();

  // "Restart" inside slot 5, which the head already covers.
  const p2 = new Producer({ chain, mempool, clock, secretKey: v!.secretKey, publicKey: v!.publicKey, log: silentLogger });
  const before = clock.timers;
  p2.start();
  for (let i = 0; i < 50; i++) { manual.advance(1); await settle(); }
  assert.ok(clock.timers - before < 5, `a covered slot must not be retried in a loop (${clock.timers - before} timers in 50 ms)`);
  manual.set(GENESIS_TIME + 6 * SLOT_MS);
  await settle();
  assert.equal(chain.head.slot, 6, 'the next slot is produced');
  assert.equal(chain.head.height, 2);
  p2.stop();
});
