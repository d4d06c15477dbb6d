/**
 * The explorer's JSON-RPC views (src/rpc/views.ts through createHandlers), on a real chain with a side
 * branch and a reorg, every answer checked against its result schema in schemas/openrpc.json:
 * getBlockTree (branches, statuses, the reorg log, bounds), getValidatorStats (scheduled / produced / missed
 * against the schedule), getBlockSummaries and getBlock "latest", history times, getMempoolContent (order
 * and fee buckets), getSyncStatus and getBans without P2P, and the params the schema refuses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHex } from '../../../src/encoding/bytes.js';
import { InlineVerifier } from '../../../src/crypto/ed25519.js';
import { SigCache } from '../../../src/crypto/sigcache.js';
import { Mempool } from '../../../src/mempool/mempool.js';
import { createHandlers } from '../../../src/rpc/methods.js';
import { RpcDispatcher } from '../../../src/rpc/server.js';
import { ReorgLog, scheduledIn, treeBlocks } from '../../../src/rpc/views.js';
import { wireReorgLog } from '../../../src/node/wiring.js';
import { loadSchema } from '../../../src/util/schemas.js';
import { ManualClock } from '../../../src/util/clock.js';
import { GENESIS_TIME, buildBlock, openTestChain, transfer } from '../../helpers/fixtures.js';
import { V, alice, bob, carol, genesis, grow, replay, resign } from '../chain/common.js';

async function setup() {
  // The clock in slot 20: blocks up to slot 20 are not from the future, and the stats window ends at 19.
  const clock = new ManualClock(GENESIS_TIME + 20 * genesis.slotMs + 500);
  const { chain, db } = await openTestChain(genesis, clock);
  const reorgs = new ReorgLog();
  wireReorgLog(chain, reorgs, () => clock.now());
  const main = await grow(chain, V, 3); // heights 1..3, slots 1..3
  // Another branch from height 1: one block (slot 10) is a shorter side branch, three make it the best.
  const other = await replay(main.slice(0, 1));
  const alt = await grow(other.chain, V, 3, 9, (i) => (i === 1 ? [transfer(alice, carol, 250n, 0n, { memo: '<b>hi</b>' })] : []));
  await chain.addBlock(alt[0]!);
  const before = { head: chain.head.hashHex, side: alt[0]!.header.hashHex };
  for (const b of alt.slice(1)) await chain.addBlock(b);
  const mempool = new Mempool({ db, genesis, accounts: chain, verifier: new InlineVerifier(), sigCache: new SigCache() });
  const d = new RpcDispatcher({
    openrpc: loadSchema('openrpc.json'), validateResults: true,
    handlers: createHandlers({ chain, mempool, reorgs, version: 'test', startedAt: clock.now(), now: () => clock.now() }),
  });
  let id = 0;
  const call = async (method: string, params: unknown = {}) => JSON.parse((await d.handle(JSON.stringify({ jsonrpc: '2.0', id: ++id, method, params }), { transport: 'http', remote: 'test' }))!);
  const result = async (method: string, params: unknown = {}) => {
    const r = await call(method, params);
    assert.equal(r.error, undefined, `${method} ${JSON.stringify(params)}: ${JSON.stringify(r.error)}`);
    return r.result;
  };
  return { chain, mempool, main, alt, before, call, result, clock };
}

test('getBlockTree: every branch of the last heights, statuses, the reorg this node went through', async () => {
  const { chain, main, alt, before, result, call } = await setup();
  assert.equal(before.head, main[2]!.header.hashHex, 'the one-block branch stayed on the side');
  assert.equal(chain.head.hashHex, alt[2]!.header.hashHex, 'the longer branch won');
  const tree = await result('getBlockTree', { depth: 10 });
  assert.equal(tree.headHeight, 4);
  assert.equal(tree.headHash, chain.head.hashHex);
  assert.equal(tree.fromHeight, 0);
  assert.equal(tree.truncated, false);
  const by = new Map(tree.blocks.map((b: any) => [b.hash, b]));
  assert.equal(tree.blocks.length, 7, 'genesis, 1, both 2s, both 3s, 4');
  assert.deepEqual(tree.blocks.map((b: any) => b.height), [0, 1, 2, 2, 3, 3, 4], 'lowest height first');
  for (const b of alt) assert.equal((by.get(b.header.hashHex) as any).status, 'best');
  for (const b of main.slice(1)) {
    const e = by.get(b.header.hashHex) as any;
    assert.equal(e.status, 'side');
    assert.equal(e.parentHash, toHex(b.header.parentHash));
    assert.equal(e.proposer, V[b.header.slot % V.length]!.address);
  }
  assert.equal((by.get(chain.genesisHash) as any).proposer, null);
  assert.equal(tree.reorgs.length, 1);
  const r = tree.reorgs[0];
  // The switch happened at height 3 or 4: alt's block 3 may already win the same-height tie on its hash.
  assert.deepEqual({ forkHeight: r.forkHeight, depth: r.depth, oldHead: r.oldHead, oldHeight: r.oldHeight },
    { forkHeight: 1, depth: 2, oldHead: main[2]!.header.hashHex, oldHeight: 3 });
  assert.ok(r.newHeight === 3 || r.newHeight === 4, String(r.newHeight));

  // A window of one height: the head only.
  const top = await result('getBlockTree', { depth: 1 });
  assert.deepEqual(top.blocks.map((b: any) => b.hash), [chain.head.hashHex]);
  assert.equal(top.fromHeight, 4);
  // The default, and the bounds the schema sets.
  assert.equal((await result('getBlockTree')).blocks.length, 7);
  for (const depth of [0, 257, 1.5, '3']) assert.equal((await call('getBlockTree', { depth })).error?.code, -32602, `depth ${depth}`);
});

test('getBlockTree lists at most its limit of blocks and says so', async () => {
  const { chain } = await setup();
  const { blocks, truncated } = treeBlocks(chain, 0, 100, 3);
  assert.equal(blocks.length, 3);
  assert.equal(truncated, true);
  assert.equal(treeBlocks(chain, 0, 100, 100).truncated, false);
  assert.equal(treeBlocks(chain, 0, 100, 7).truncated, false, 'exactly the limit is not truncated');
});

test('getValidatorStats: scheduled, produced and missed per validator over the window, and the recent slots', async () => {
  const { result, alt } = await setup();
  const st = await result('getValidatorStats', { slots: 1000 });
  assert.equal(st.clockSlot, 20);
  assert.equal(st.toSlot, 19, 'the current slot is still open (no block for it yet)');
  assert.equal(st.fromSlot, 1);
  // Best chain: slot 1 (validator 1), slots 10, 11, 12 (validators 1, 2, 0).
  const expect = [
    { scheduled: 6, produced: 1, lastProducedSlot: 12, lastProducedHeight: 4 }, // slots 3, 6, …, 18
    { scheduled: 7, produced: 2, lastProducedSlot: 10, lastProducedHeight: 2 }, // slots 1, 4, …, 19
    { scheduled: 6, produced: 1, lastProducedSlot: 11, lastProducedHeight: 3 }, // slots 2, 5, …, 17
  ];
  st.validators.forEach((v: any, i: number) => {
    assert.equal(v.address, V[i]!.address);
    assert.equal(v.index, i);
    assert.deepEqual({ scheduled: v.scheduled, produced: v.produced, lastProducedSlot: v.lastProducedSlot, lastProducedHeight: v.lastProducedHeight }, expect[i]);
    assert.equal(v.missed, v.scheduled - v.produced);
    assert.equal(v.equivocations, 0);
  });
  assert.equal(st.recentSlots.length, 19);
  assert.equal(st.recentSlots[0].slot, 19);
  const s12 = st.recentSlots.find((x: any) => x.slot === 12);
  assert.deepEqual(s12, { slot: 12, validator: 0, height: 4, hash: alt[2]!.header.hashHex });
  assert.deepEqual(st.recentSlots.find((x: any) => x.slot === 13), { slot: 13, validator: 1, height: null, hash: null });
  // A narrow window: slots 18..19, nobody produced.
  const narrow = await result('getValidatorStats', { slots: 2 });
  assert.equal(narrow.fromSlot, 18);
  assert.deepEqual(narrow.validators.map((v: any) => [v.scheduled, v.produced, v.missed]), [[1, 0, 1], [1, 0, 1], [0, 0, 0]]);
});

test('scheduledIn counts a validator\'s slots in a range', () => {
  for (const n of [1, 3, 4, 7]) {
    for (let from = 0; from < 20; from++) {
      for (let to = from - 1; to < 30; to++) {
        for (let i = 0; i < n; i++) {
          let count = 0;
          for (let s = from; s <= to; s++) if (s % n === i) count++;
          assert.equal(scheduledIn(from, to, i, n), count, `[${from},${to}] validator ${i} of ${n}`);
        }
      }
    }
  }
});

test('getBlockSummaries, getBlock "latest", history with block times', async () => {
  const { chain, result, alt } = await setup();
  const sums = await result('getBlockSummaries', { toHeight: 'latest', count: 3 });
  assert.deepEqual(sums.map((s: any) => s.height), [4, 3, 2]);
  sums.forEach((s: any, i: number) => {
    const b = alt[2 - i]!;
    assert.deepEqual(s, { height: b.header.height, hash: b.header.hashHex, slot: b.header.slot, timestamp: b.header.timestamp, proposer: V[b.header.slot % 3]!.address, txCount: b.txs.length, size: b.bytes.length });
  });
  assert.deepEqual((await result('getBlockSummaries', { toHeight: 1, count: 5 })).map((s: any) => s.height), [1, 0]);
  assert.equal((await result('getBlockSummaries', { toHeight: 99 })).length, 5, 'above the head: from the head down');
  const latest = await result('getBlock', { height: 'latest' });
  assert.equal(latest.hash, chain.head.hashHex);
  assert.equal(latest.size, alt[2]!.bytes.length);
  assert.equal((await result('getBlockHeader', ['latest'])).hash, chain.head.hashHex, 'by position too');
  assert.equal((await result('getBlock', { height: 3 })).size, alt[1]!.bytes.length);
  const hist = await result('getAccountTransactions', { address: carol.address });
  assert.equal(hist.transactions.length, 1);
  assert.equal(hist.transactions[0].timestamp, alt[1]!.header.timestamp);
  assert.equal(hist.transactions[0].transaction.memo, '<b>hi</b>');
});

test('getBlock and getBlockHeader refuse other tags and shapes of height', async () => {
  const { call } = await setup();
  for (const height of ['finalized', 'LATEST', '', -1, 'head']) {
    assert.equal((await call('getBlock', { height })).error?.code, -32602, JSON.stringify(height));
    assert.equal((await call('getBlockHeader', { height })).error?.code, -32602, JSON.stringify(height));
  }
  for (const count of [0, 101]) assert.equal((await call('getBlockSummaries', { count })).error?.code, -32602);
  for (const slots of [0, 100_001]) assert.equal((await call('getValidatorStats', { slots })).error?.code, -32602);
  for (const limit of [0, 101]) assert.equal((await call('getMempoolContent', { limit })).error?.code, -32602);
});

test('getMempoolContent: the order blocks take them, power-of-two fee buckets; sync status and bans without P2P', async () => {
  const { mempool, result, chain } = await setup();
  const empty = await result('getMempoolContent');
  assert.deepEqual(empty, { size: 0, bytes: 0, sampled: 0, feeHistogram: [], transactions: [] });
  const bob0 = transfer(bob, carol, 1n, 0n, { fee: 1000n });
  const bob1 = transfer(bob, carol, 1n, 1n, { fee: 5n, memo: '<script>alert(1)</script>' });
  const alice1 = transfer(alice, carol, 1n, 1n, { fee: 300n });
  for (const tx of [bob0, bob1, alice1]) await mempool.add(tx);
  const c = await result('getMempoolContent', { limit: 2 });
  assert.equal(c.size, 3);
  assert.equal(c.bytes, mempool.bytes);
  assert.equal(c.sampled, 3);
  assert.deepEqual(c.transactions.map((t: any) => t.id), [bob0.idHex, alice1.idHex], 'highest fee first, each sender in nonce order');
  assert.equal(c.transactions[0].size, bob0.byteLength);
  assert.deepEqual(c.feeHistogram, [
    { minFee: '4', maxFee: '7', count: 1, bytes: bob1.byteLength },
    { minFee: '256', maxFee: '511', count: 1, bytes: alice1.byteLength },
    { minFee: '512', maxFee: '1023', count: 1, bytes: bob0.byteLength },
  ]);
  assert.equal((await result('getMempoolContent', { limit: 100 })).transactions[2].memo, '<script>alert(1)</script>');
  assert.deepEqual(await result('getSyncStatus'), { syncing: false, height: chain.head.height, target: chain.head.height, peers: 0 });
  assert.deepEqual(await result('getBans'), []);
});

test('getBlockTree marks a block found invalid (and shows it above the head it failed to become)', async () => {
  const { chain, result } = await setup();
  const good = await buildBlock(chain, V, chain.head.slot + 1);
  const bad = resign(good, { stateRoot: new Uint8Array(32).fill(7) });
  await assert.rejects(chain.addBlock(bad), (e: any) => e.rule === 'bad_state_root');
  const tree = await result('getBlockTree', { depth: 3 });
  const b = tree.blocks.find((x: any) => x.hash === bad.header.hashHex);
  assert.deepEqual({ status: b.status, rule: b.rule, height: b.height }, { status: 'invalid', rule: 'bad_state_root', height: 5 });
  assert.equal(tree.headHeight, 4);
});
