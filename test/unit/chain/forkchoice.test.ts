/**
 * Fork choice: the pure rule (betterHead, bestTip with its candidate filter, branchTo, locator and a
 * locator's fork point), then the chain applying it: longest first, then the smaller hash, whatever the
 * arrival order, and split halves converging.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { Block } from '../../../src/ledger/block.js';
import { EMPTY_ACCOUNT } from '../../../src/ledger/state.js';
import { compareBytes, toHex } from '../../../src/encoding/bytes.js';
import { buildBlock, makeGenesis, openTestChain, testKeys, transfer } from '../../helpers/fixtures.js';
import { ALICE0, BOB0, V, alice, bob, carol, dave, dump, genesis, grow, replay } from './common.js';

// PURE

// ---- fork choice ---------------------------------------------------------------------------------------

describe('fork choice', { timeout: 60000 }, () => {
  test('the longer branch wins even when it arrives later', async () => {
    const { chain } = await openTestChain(genesis);
    const a = await grow(chain, V, 2, 1, (i) => (i === 0 ? [transfer(alice, carol, 5n, 0n)] : []));
    const other = await openTestChain(genesis);
    const b = await grow(other.chain, V, 3, 20, (i) => (i === 1 ? [transfer(bob, dave, 8n, 0n)] : []));
    for (const blk of b) await chain.addBlock(blk);
    assert.equal(chain.head.hashHex, b[2]!.header.hashHex);
    assert.equal(chain.head.height, 3);
    for (const blk of a) assert.equal(chain.isOnMain(blk.header.hashHex), false);
    assert.equal((await chain.auditSupply()).root, toHex(other.chain.stateRoot));
    assert.deepEqual(await chain.getAccount(carol.publicKey), EMPTY_ACCOUNT);
    assert.deepEqual(await chain.getAccount(dave.publicKey), { balance: 8n, nonce: 0n });
  });

  test('equal height: the smaller hash wins in both arrival orders', async () => {
    const base = await openTestChain(genesis);
    const x = await buildBlock(base.chain, V, 1, [transfer(alice, bob, 1n, 0n)]);
    const y = await buildBlock(base.chain, V, 2, [transfer(bob, alice, 2n, 0n)]);
    const winner = compareBytes(x.header.hash, y.header.hash) < 0 ? x : y;
    for (const order of [[x, y], [y, x]]) {
      const { chain } = await openTestChain(genesis);
      const statuses = [];
      for (const b of order) statuses.push((await chain.addBlock(b)).status);
      assert.equal(chain.head.hashHex, winner.header.hashHex);
      assert.equal(statuses[0], 'connected');
      assert.equal(statuses[1], order[1] === winner ? 'reorganized' : 'side');
      assert.equal(toHex(chain.stateRoot), toHex(winner.header.stateRoot));
    }
  });

  test('equal height deeper branches: same head for every arrival order of the same blocks', async () => {
    const p = await openTestChain(genesis);
    const A = await grow(p.chain, V, 3, 1, (i) => [transfer(alice, carol, BigInt(i + 1), BigInt(i))]);
    const q = await openTestChain(genesis);
    const B = await grow(q.chain, V, 3, 30, (i) => [transfer(bob, dave, BigInt(i + 1), BigInt(i))]);
    const tipA = A[2]!.header;
    const tipB = B[2]!.header;
    const winner = compareBytes(tipA.hash, tipB.hash) < 0 ? tipA : tipB;
    const orders: Block[][] = [[...A, ...B], [...B, ...A], [A[0]!, B[0]!, A[1]!, B[1]!, A[2]!, B[2]!], [B[0]!, A[0]!, B[1]!, A[1]!, B[2]!, A[2]!]];
    const roots = new Set<string>();
    for (const order of orders) {
      const { chain } = await openTestChain(genesis);
      for (const b of order) await chain.addBlock(b);
      assert.equal(chain.head.hashHex, winner.hashHex);
      const audit = await chain.auditSupply();
      assert.equal(audit.root, toHex(winner.stateRoot));
      roots.add(audit.root);
    }
    assert.equal(roots.size, 1);
  });

  test('2|2 split: halves built separately converge after exchanging blocks', async () => {
    const V4 = testKeys('split-val', 4);
    const g4 = makeGenesis({ validators: V4, alloc: [[alice, ALICE0], [bob, BOB0]] });
    for (const [lenP, lenQ] of [[5, 5], [6, 5], [4, 6]] as const) {
      // Half P owns validators 0 and 2 (even slots), half Q validators 1 and 3 (odd slots).
      const P = await openTestChain(g4);
      const Q = await openTestChain(g4);
      const pBlocks: Block[] = [];
      for (let i = 0; i < lenP; i++) {
        const slot = 2 * (i + 1);
        const b = await buildBlock(P.chain, V4, slot, [transfer(alice, carol, 10n + BigInt(i), BigInt(i))]);
        await P.chain.addBlock(b);
        pBlocks.push(b);
      }
      const qBlocks: Block[] = [];
      for (let i = 0; i < lenQ; i++) {
        const slot = 2 * i + 1;
        const b = await buildBlock(Q.chain, V4, slot, [transfer(alice, dave, 20n + BigInt(i), BigInt(i))]);
        await Q.chain.addBlock(b);
        qBlocks.push(b);
      }
      for (const b of qBlocks) await P.chain.addBlock(b);
      for (const b of pBlocks) await Q.chain.addBlock(b);
      assert.equal(P.chain.head.hashHex, Q.chain.head.hashHex, `split ${lenP}|${lenQ}`);
      const tp = pBlocks.at(-1)!.header;
      const tq = qBlocks.at(-1)!.header;
      const expected = lenP !== lenQ ? (lenP > lenQ ? tp : tq) : (compareBytes(tp.hash, tq.hash) < 0 ? tp : tq);
      assert.equal(P.chain.head.hashHex, expected.hashHex);
      assert.equal((await P.chain.auditSupply()).root, (await Q.chain.auditSupply()).root);
      assert.deepEqual(await dump(P.db, 'anTtxuL'), await dump(Q.db, 'anTtxuL'));
    }
  });
});

// ---- locator / forkPoint -----------------------------------------------------------------------------

describe('locator and forkPoint', { timeout: 60000 }, () => {
  test('locator heights are dense then exponential, ending at genesis; forkPoint finds the shared block', async () => {
    const a = await openTestChain(genesis);
    const common = await grow(a.chain, V, 20);
    await grow(a.chain, V, 10);
    const b = await replay(common);
    await grow(b.chain, V, 12, 100);
    const loc = a.chain.locator();
    const heights = loc.map((h) => a.chain.entry(h)!.height);
    assert.deepEqual(heights, [30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 19, 15, 7, 0]);
    for (const h of loc) assert.ok(a.chain.isOnMain(h));
    // b's best chain shares heights 0..20 with a; the locator lists 19 as the highest shared entry.
    assert.equal(b.chain.forkPoint(loc).height, 19);
    assert.equal(b.chain.forkPoint(loc).hashHex, common[18]!.header.hashHex);
    assert.equal(a.chain.forkPoint(loc).hashHex, a.chain.head.hashHex);
    assert.equal(a.chain.forkPoint(['00'.repeat(32)]).hashHex, a.chain.genesisHash);
    const fresh = await openTestChain(genesis);
    assert.deepEqual(fresh.chain.locator(), [fresh.chain.genesisHash]);
  });
});
