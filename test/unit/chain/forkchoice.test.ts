/**
 * Fork choice: the pure rule (betterHead, bestTip with its candidate filter, branchTo, locator and a
 * locator's fork point), then the chain applying it: longest first, then the smaller hash, whatever the
 * arrival order, and split halves converging.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { bestTip, betterHead, branchTo, locator, locatorForkPoint, type ForkEntry } from '../../../src/chain/forkchoice.js';
import type { Block } from '../../../src/ledger/block.js';
import { EMPTY_ACCOUNT } from '../../../src/ledger/state.js';
import { compareBytes, toHex } from '../../../src/encoding/bytes.js';
import { InvariantViolation } from '../../../src/util/assert.js';
import { buildBlock, makeGenesis, openTestChain, testKeys, transfer } from '../../helpers/fixtures.js';
import { ALICE0, BOB0, V, alice, bob, carol, dave, dump, genesis, grow, replay } from './common.js';

// ---- the rule, pure ------------------------------------------------------------------------------------

/** A synthetic entry whose hash bytes are all `tag`, so the tie-break order is visible. */
function ent(tag: number, height: number, parent?: ForkEntry): ForkEntry {
  const hash = new Uint8Array(32).fill(tag);
  return { hash, hashHex: toHex(hash), height, parentHex: parent ? parent.hashHex : '00'.repeat(32) };
}

/** A tree of synthetic entries: genesis g; main chain g-a1-a2-a3; a branch b2-b3-b4 off a1; c3 off a2. */
function tree() {
  const g = ent(0x10, 0);
  const a1 = ent(0x21, 1, g), a2 = ent(0x22, 2, a1), a3 = ent(0x23, 3, a2);
  const b2 = ent(0x32, 2, a1), b3 = ent(0x33, 3, b2), b4 = ent(0x34, 4, b3);
  const c3 = ent(0x13, 3, a2);
  const all = [g, a1, a2, a3, b2, b3, b4, c3];
  const byHex = new Map(all.map((e) => [e.hashHex, e]));
  return { g, a1, a2, a3, b2, b3, b4, c3, entry: (h: string) => byHex.get(h), best: [g, a1, a2, a3].map((e) => e.hashHex) };
}

describe('fork-choice rule (pure)', () => {
  test('betterHead: greater height wins; at equal height the smaller hash in byte order', () => {
    const lo = ent(0x01, 5), hi = ent(0xf0, 5), taller = ent(0xff, 6);
    assert.equal(betterHead(taller, lo), true);
    assert.equal(betterHead(lo, taller), false);
    assert.equal(betterHead(lo, hi), true);
    assert.equal(betterHead(hi, lo), false);
    assert.equal(betterHead(lo, lo), false, 'a block is not better than itself');
    // Byte order, not numeric or string order of a prefix: differs only in the last byte.
    const x = new Uint8Array(32).fill(7), y = new Uint8Array(32).fill(7);
    y[31] = 8;
    assert.equal(betterHead({ height: 1, hash: x }, { height: 1, hash: y }), true);
  });

  test('bestTip: the best candidate whatever the order; the head stays unless beaten; the filter narrows', () => {
    const { a3, b4, c3 } = tree();
    const tips = [a3, b4, c3];
    for (const order of [tips, [...tips].reverse(), [c3, a3, b4]]) assert.equal(bestTip(a3, order), b4);
    assert.equal(bestTip(a3, [c3]), c3, 'same height, smaller hash (0x13 < 0x23)');
    assert.equal(bestTip(c3, [a3]), c3, 'the head is kept against a worse tip');
    assert.equal(bestTip(a3, []), a3);
    // A candidate filter (finality's "contains the final block") refuses a longer chain.
    assert.equal(bestTip(a3, tips, (e) => e !== b4), c3);
    assert.equal(bestTip(a3, tips, () => false), a3);
  });

  test('branchTo: fork point and blocks to connect, oldest first; a best-chain target connects nothing', () => {
    const { g, a1, a2, a3, b2, b3, b4, c3, entry, best } = tree();
    const viaB = branchTo(b4, best, entry);
    assert.equal(viaB.fork, a1);
    assert.deepEqual(viaB.connect, [b2, b3, b4]);
    const viaC = branchTo(c3, best, entry);
    assert.equal(viaC.fork, a2);
    assert.deepEqual(viaC.connect, [c3]);
    assert.deepEqual(branchTo(a3, best, entry), { fork: a3, connect: [] });
    // An extension of the head: the head is the fork point.
    const a4 = ent(0x24, 4, a3);
    assert.deepEqual(branchTo(a4, best, (h) => (h === a4.hashHex ? a4 : entry(h))), { fork: a3, connect: [a4] });
    assert.equal(branchTo(g, best, entry).fork, g);
  });

  test('branchTo: a parent missing from the index, or a parent not one height below, is an invariant violation', () => {
    const { a1, b2, b3, entry, best } = tree();
    const orphan = ent(0x44, 3, ent(0x43, 2));
    assert.throws(() => branchTo(orphan, best, entry), (e: unknown) => e instanceof InvariantViolation && /^branch walk: parent/.test(e.message));
    const skip = { ...ent(0x45, 4), parentHex: a1.hashHex }; // height 4 on a parent at height 1
    assert.throws(() => branchTo(skip, best, entry), (e: unknown) => e instanceof InvariantViolation && /^parent link:/.test(e.message));
    const otherGenesis = ent(0x46, 0);
    assert.throws(() => branchTo(otherGenesis, best, entry), (e: unknown) => e instanceof InvariantViolation && /^branch walk:/.test(e.message));
    assert.doesNotThrow(() => branchTo(b3, best, entry));
    assert.equal(branchTo(b3, best, entry).connect[0], b2);
  });

  test('locator: the head and the 9 below it, then doubling steps, ending at genesis', () => {
    const hashes = (n: number) => Array.from({ length: n + 1 }, (_, h) => `h${h}`);
    const heights = (n: number) => locator(hashes(n)).map((x) => Number(x.slice(1)));
    assert.deepEqual(heights(0), [0]);
    assert.deepEqual(heights(1), [1, 0]);
    assert.deepEqual(heights(10), [10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    assert.deepEqual(heights(30), [30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 19, 15, 7, 0]);
    const long = heights(100_000);
    assert.equal(long.at(-1), 0);
    assert.ok(long.length < 30, `O(log height) entries (${long.length})`);
    for (let i = 10; i + 1 < long.length - 1; i++) assert.equal(long[i]! - long[i + 1]!, 2 ** (i - 8), `step doubles at ${i}`);
  });

  test('locatorForkPoint: the first locator entry on our best chain, else genesis', () => {
    const { g, a1, a2, b3, b4, c3, entry, best } = tree();
    const heightOf = (h: string) => entry(h)?.height;
    assert.equal(locatorForkPoint([b4.hashHex, b3.hashHex, a1.hashHex, g.hashHex], best, heightOf), a1.hashHex);
    assert.equal(locatorForkPoint([c3.hashHex, a2.hashHex, a1.hashHex], best, heightOf), a2.hashHex);
    assert.equal(locatorForkPoint(['ff'.repeat(32)], best, heightOf), g.hashHex, 'unknown hashes: genesis');
    assert.equal(locatorForkPoint([], best, heightOf), g.hashHex);
  });
});

// ---- the chain applying it ------------------------------------------------------------------------------

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
