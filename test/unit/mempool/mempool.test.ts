/**
 * Mempool: admission rules, replacement, capacity and eviction, candidate order, head changes and
 * reorgs, persistence across a restart.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { Chain } from '../../../src/chain/chain.js';
import { InlineVerifier } from '../../../src/crypto/ed25519.js';
import { SigCache } from '../../../src/crypto/sigcache.js';
import { Mempool, type AccountSource, type MempoolLimits, type RemovalReason } from '../../../src/mempool/mempool.js';
import { RuleError } from '../../../src/ledger/rules.js';
import type { Account, AccountKey } from '../../../src/ledger/state.js';
import { decodeTx, type Tx } from '../../../src/ledger/tx.js';
import { layout } from '../../../src/storage/layout.js';
import { openLevel, openMemory, type BatchOp, type KV } from '../../../src/storage/kv.js';
import { toHex } from '../../../src/encoding/bytes.js';
import { ManualClock } from '../../../src/util/clock.js';
import type { KeyPair } from '../../../src/crypto/keyfile.js';
import { GENESIS_TIME, buildBlock, makeGenesis, openTestChain, testKeys, transfer } from '../../helpers/fixtures.js';

const V = testKeys('mp-val', 3);
const USERS = testKeys('mp-user', 6);
const [alice, bob, carol, dave, erin] = USERS as [KeyPair, KeyPair, KeyPair, KeyPair, KeyPair];
const MIN_FEE = 2n;
const genesis = makeGenesis({
  validators: V,
  alloc: [[alice, 1_000_000n], [bob, 1_000_000n], [carol, 1_000_000n], [erin, 1_000_000n]],
  params: { minFee: MIN_FEE },
});
const tx = (from: KeyPair, nonce: bigint, fee: bigint, o: { amount?: bigint; to?: KeyPair; memo?: string; chainId?: string } = {}): Tx =>
  transfer(from, o.to ?? dave, o.amount ?? 10n, nonce, { fee, memo: o.memo ?? '', chainId: o.chainId ?? genesis.chainId });

// ---- helpers -----------------------------------------------------------------------------------

class FakeAccounts implements AccountSource {
  readonly m = new Map<AccountKey, Account>();
  set(k: KeyPair, balance: bigint, nonce = 0n): this { this.m.set(toHex(k.publicKey), { balance, nonce }); return this; }
  async getAccounts(keys: AccountKey[]): Promise<Map<AccountKey, Account>> {
    const out = new Map<AccountKey, Account>();
    for (const k of keys) { const a = this.m.get(k); if (a) out.set(k, a); }
    return out;
  }
}

function rich(): FakeAccounts {
  const f = new FakeAccounts();
  for (const u of USERS) f.set(u, 1_000_000n);
  return f;
}

async function makePool(o: { accounts?: AccountSource; limits?: Partial<MempoolLimits>; db?: KV } = {}) {
  const db = o.db ?? await openMemory();
  const mp = new Mempool({ db, genesis, accounts: o.accounts ?? rich(), verifier: new InlineVerifier(), sigCache: new SigCache(), limits: o.limits ?? {} });
  const removed: { id: string; reason: RemovalReason }[] = [];
  const accepted: string[] = [];
  mp.on('tx:removed', (e) => removed.push({ id: e.tx.idHex, reason: e.reason }));
  mp.on('tx:accepted', (t) => accepted.push(t.idHex));
  return { mp, db, removed, accepted };
}

function isRule(rule: string): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof RuleError, `expected RuleError, got ${String(e)}`);
    assert.equal(e.rule, rule, e.message);
    return true;
  };
}

async function mKeys(db: KV): Promise<Set<string>> {
  const out = new Set<string>();
  for await (const [k] of db.iterator(layout.range(layout.prefix('m')))) out.add(toHex(k.subarray(1)));
  return out;
}

const ids = (txs: readonly Tx[]): string[] => txs.map((t) => t.idHex);
const sorted = (a: Iterable<string>): string[] => [...a].sort();

// ---- admission ---------------------------------------------------------------------------------

describe('admission', { timeout: 60000 }, () => {
  test('accepted → candidate, persisted; duplicate id → duplicate', async () => {
    const { mp, db, accepted } = await makePool();
    const t = tx(alice, 0n, 5n);
    assert.deepEqual(await mp.add(t), { id: t.idHex, status: 'accepted' });
    assert.equal(mp.size, 1);
    assert.equal(mp.bytes, t.bytes.length);
    assert.ok(mp.has(t.idHex));
    assert.equal(mp.get(t.idHex), t);
    assert.deepEqual(ids(mp.candidates(10, 1 << 20)), [t.idHex]);
    assert.deepEqual(accepted, [t.idHex]);
    assert.deepEqual(await mKeys(db), new Set([t.idHex]), 'persisted once add resolves');
    assert.deepEqual(await mp.add(t), { id: t.idHex, status: 'duplicate' });
    assert.equal(mp.size, 1);
    assert.deepEqual(accepted, [t.idHex]);
    // A fresh object with the same bytes is the same transaction.
    assert.equal((await mp.add(decodeTx(t.bytes))).status, 'duplicate');
  });

  test('bad_signature: one flipped signature byte', async () => {
    const { mp } = await makePool();
    const t = tx(alice, 0n, 5n);
    for (const at of [t.bytes.length - 1, t.bytes.length - 64]) {
      const b = new Uint8Array(t.bytes);
      b[at] = b[at]! ^ 0x80;
      const forged = decodeTx(b);
      await assert.rejects(mp.add(forged), isRule('bad_signature'));
    }
    assert.equal(mp.size, 0);
    assert.equal((await mp.add(t)).status, 'accepted', 'the genuine one is fine (no negative caching)');
  });

  test('static rules: wrong_chain, fee_too_low, zero_amount', async () => {
    const { mp } = await makePool();
    await assert.rejects(mp.add(tx(alice, 0n, 5n, { chainId: 'other-net' })), isRule('wrong_chain'));
    await assert.rejects(mp.add(tx(alice, 0n, MIN_FEE - 1n)), isRule('fee_too_low'));
    await assert.rejects(mp.add(tx(alice, 0n, 0n)), isRule('fee_too_low'));
    await assert.rejects(mp.add(tx(alice, 0n, 5n, { amount: 0n })), isRule('zero_amount'));
    assert.equal(mp.size, 0);
    assert.equal((await mp.add(tx(alice, 0n, MIN_FEE))).status, 'accepted');
  });

  test('nonce_too_low and too_many_pending (nonce ≥ account nonce + maxPerSender)', async () => {
    const accounts = rich().set(alice, 1_000_000n, 3n);
    const { mp } = await makePool({ accounts, limits: { maxPerSender: 4 } });
    await assert.rejects(mp.add(tx(alice, 2n, 5n)), isRule('nonce_too_low'));
    await assert.rejects(mp.add(tx(alice, 0n, 5n)), isRule('nonce_too_low'));
    assert.equal((await mp.add(tx(alice, 6n, 5n))).status, 'accepted', 'account nonce + 3 is within the queue');
    await assert.rejects(mp.add(tx(alice, 7n, 5n)), isRule('too_many_pending'));
    await assert.rejects(mp.add(tx(alice, 100n, 5n)), isRule('too_many_pending'));
    assert.equal((await mp.add(tx(alice, 3n, 5n))).status, 'accepted');
    // A gap: only nonce 3 is a candidate.
    assert.deepEqual(mp.candidates(10, 1 << 20).map((t) => t.nonce), [3n]);
    assert.equal(mp.nextNonce(alice.publicKey, 3n), 4n);
  });

  test('insufficient_funds counts every pending transaction of the sender', async () => {
    const accounts = new FakeAccounts().set(alice, 100n).set(bob, 100n);
    const { mp } = await makePool({ accounts });
    await mp.add(tx(alice, 0n, 2n, { amount: 50n }));
    await mp.add(tx(alice, 1n, 2n, { amount: 40n })); // 94 committed
    await assert.rejects(mp.add(tx(alice, 2n, 2n, { amount: 5n })), isRule('insufficient_funds')); // 101
    assert.equal((await mp.add(tx(alice, 2n, 2n, { amount: 4n }))).status, 'accepted'); // exactly 100
    await assert.rejects(mp.add(tx(alice, 3n, 2n, { amount: 1n })), isRule('insufficient_funds'));
    // Other senders are not affected; an unknown (empty) sender cannot pay anything.
    assert.equal((await mp.add(tx(bob, 0n, 2n, { amount: 98n }))).status, 'accepted');
    await assert.rejects(mp.add(tx(dave, 0n, 2n, { amount: 1n })), isRule('insufficient_funds'));
  });

  test('replacement: underpriced below the bump, replaced at or above it', async () => {
    const { mp, db, removed, accepted } = await makePool({ accounts: rich().set(bob, 200n), limits: { replaceBumpPercent: 10 } });
    const a0 = tx(alice, 0n, 100n);
    await mp.add(a0);
    await assert.rejects(mp.add(tx(alice, 0n, 100n, { amount: 11n })), isRule('replacement_underpriced'));
    await assert.rejects(mp.add(tx(alice, 0n, 109n)), isRule('replacement_underpriced'));
    const a0b = tx(alice, 0n, 110n);
    assert.deepEqual(await mp.add(a0b), { id: a0b.idHex, status: 'replaced' });
    assert.equal(mp.has(a0.idHex), false);
    assert.equal(mp.has(a0b.idHex), true);
    assert.equal(mp.size, 1);
    assert.equal(mp.bytes, a0b.bytes.length);
    assert.deepEqual(removed, [{ id: a0.idHex, reason: 'replaced' }]);
    assert.deepEqual(accepted, [a0.idHex, a0b.idHex]);
    await mp.flush();
    assert.deepEqual(await mKeys(db), new Set([a0b.idHex]), 'the replaced tx is deleted from disk');
    assert.deepEqual(ids(mp.candidates(10, 1 << 20)), [a0b.idHex]);

    // Small fees: the bump is at least 1 unit.
    const c0 = tx(carol, 0n, 2n);
    await mp.add(c0);
    await assert.rejects(mp.add(tx(carol, 0n, 2n, { amount: 1n })), isRule('replacement_underpriced'));
    assert.equal((await mp.add(tx(carol, 0n, 3n))).status, 'replaced');

    // The replaced transaction's cost is released: bob can replace 150+5 by 180+20 with balance 200.
    await mp.add(tx(bob, 0n, 5n, { amount: 150n }));
    assert.equal((await mp.add(tx(bob, 0n, 20n, { amount: 180n }))).status, 'replaced');
    await assert.rejects(mp.add(tx(bob, 0n, 30n, { amount: 180n })), isRule('insufficient_funds'));
  });
});

// ---- capacity ------------------------------------------------------------------------------------

describe('capacity', { timeout: 60000 }, () => {
  test('mempool_full: evicts the cheapest tail only when the newcomer pays strictly more', async () => {
    const { mp, removed } = await makePool({ limits: { maxCount: 3 } });
    const a = tx(alice, 0n, 5n);
    const b = tx(bob, 0n, 2n);
    const c = tx(carol, 0n, 3n);
    for (const t of [a, b, c]) await mp.add(t);
    const d = tx(erin, 0n, 4n);
    assert.equal((await mp.add(d)).status, 'accepted');
    assert.deepEqual(removed, [{ id: b.idHex, reason: 'evicted' }]);
    assert.deepEqual(sorted(mp.ids()), sorted(ids([a, c, d])));
    await assert.rejects(mp.add(tx(bob, 0n, 3n)), isRule('mempool_full')); // equal to the cheapest (c: 3)
    await assert.rejects(mp.add(tx(bob, 0n, 2n)), isRule('mempool_full'));
    assert.equal(mp.size, 3);
    assert.deepEqual(sorted(mp.ids()), sorted(ids([a, c, d])));
  });

  test('eviction takes a tail (highest nonce of its sender), never opening a nonce gap', async () => {
    const { mp, removed } = await makePool({ limits: { maxCount: 3 } });
    const a0 = tx(alice, 0n, 2n); // cheapest overall, but not a tail
    const a1 = tx(alice, 1n, 10n);
    const b0 = tx(bob, 0n, 5n);
    for (const t of [a0, a1, b0]) await mp.add(t);
    await mp.add(tx(carol, 0n, 6n));
    assert.deepEqual(removed.map((r) => r.id), [b0.idHex]);
    assert.ok(mp.has(a0.idHex) && mp.has(a1.idHex));
    // Next: tails are a1 (10) and c0 (6); fee 7 evicts c0, fee 6 does not.
    await assert.rejects(mp.add(tx(erin, 0n, 6n)), isRule('mempool_full'));
    // A sender never evicts its own transactions.
    const { mp: mp2 } = await makePool({ limits: { maxCount: 2 } });
    await mp2.add(tx(alice, 0n, 2n));
    await mp2.add(tx(alice, 1n, 2n));
    await assert.rejects(mp2.add(tx(alice, 2n, 1000n)), isRule('mempool_full'));
  });

  test('maxBytes bound', async () => {
    const sample = tx(alice, 0n, 5n);
    const L = sample.bytes.length;
    const { mp, removed } = await makePool({ limits: { maxBytes: 3 * L + 10 } });
    const txs = [tx(alice, 0n, 5n), tx(bob, 0n, 3n), tx(carol, 0n, 4n)];
    for (const t of txs) { assert.equal(t.bytes.length, L); await mp.add(t); }
    assert.equal(mp.bytes, 3 * L);
    await assert.rejects(mp.add(tx(erin, 0n, 3n)), isRule('mempool_full'));
    await mp.add(tx(erin, 0n, 9n));
    assert.deepEqual(removed.map((r) => r.id), [txs[1]!.idHex]);
    assert.ok(mp.bytes <= 3 * L + 10);
    // A bigger transaction needs two evictions: it pays more than both cheapest tails.
    const big = tx(dave, 0n, 8n, { memo: 'x'.repeat(L) });
    const { mp: mp2 } = await makePool({ accounts: rich(), limits: { maxBytes: 3 * L + 10 } });
    for (const t of txs) await mp2.add(t);
    await mp2.add(big);
    assert.ok(mp2.bytes <= 3 * L + 10, `${mp2.bytes} ≤ ${3 * L + 10}`);
    assert.ok(mp2.has(big.idHex));
    assert.ok(mp2.has(txs[0]!.idHex), 'the most expensive survives');
    // Larger than the whole pool: refused.
    const { mp: mp3 } = await makePool({ limits: { maxBytes: L + 10 } });
    await assert.rejects(mp3.add(big), isRule('mempool_full'));
    assert.equal(mp3.bytes, 0);
  });
});

// ---- candidates ----------------------------------------------------------------------------------

describe('candidates', { timeout: 60000 }, () => {
  test('fee order across senders, nonce order within a sender', async () => {
    const { mp } = await makePool();
    const a0 = tx(alice, 0n, 2n);
    const a1 = tx(alice, 1n, 100n);
    const b0 = tx(bob, 0n, 50n);
    const c0 = tx(carol, 0n, 60n);
    for (const t of [a1, b0, a0, c0]) await mp.add(t);
    assert.deepEqual(ids(mp.candidates(10, 1 << 20)), ids([c0, b0, a0, a1]));
    assert.deepEqual(ids(mp.candidates(2, 1 << 20)), ids([c0, b0]));
    assert.deepEqual(ids(mp.candidates(10, 2 * a0.bytes.length)), ids([c0, b0]));
  });

  test('property: candidates are exactly the greedy best-ready order within the count and byte budgets', async (ctx) => {
    const senders = [alice, bob, carol, erin];
    const bound = { bytes: 0, exact: 0, count: 0, none: 0 }; // runs where each budget cut the list short, or none did
    const RUNS = 500;
    /**
     * Model: repeatedly take the highest-fee head of any sender queue (ties: earlier arrival). A head that does
     * not fit in the bytes left is passed over, and its sender's later transactions with it (they need it
     * first); smaller ones of other senders may still fit.
     */
    const greedy = (queues: Tx[][], arrival: Map<string, number>, maxTxs: number, maxBytes: number): { want: Tx[]; cutByBytes: boolean } => {
      const heads = queues.map(() => 0);
      const want: Tx[] = [];
      let bytes = 0;
      let cutByBytes = false;
      while (want.length < maxTxs) {
        let best = -1;
        for (let s = 0; s < queues.length; s++) {
          const t = queues[s]![heads[s]!];
          if (!t) continue;
          const cur = best === -1 ? undefined : queues[best]![heads[best]!]!;
          if (!cur || t.fee > cur.fee || (t.fee === cur.fee && arrival.get(t.idHex)! < arrival.get(cur.idHex)!)) best = s;
        }
        if (best === -1) break;
        const t = queues[best]![heads[best]!]!;
        if (bytes + t.bytes.length > maxBytes) {
          cutByBytes = true;
          heads[best] = queues[best]!.length;
          continue;
        }
        want.push(t);
        bytes += t.bytes.length;
        heads[best]!++;
      }
      return { want, cutByBytes };
    };
    await fc.assert(fc.asyncProperty(
      fc.array(fc.array(fc.record({ fee: fc.integer({ min: 2, max: 40 }), memo: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 200 })) }),
        { minLength: 0, maxLength: 4 }), { minLength: 4, maxLength: 4 }),
      fc.integer({ min: 1, max: 20 }),
      // A byte budget: any from nothing to more than all 16 transactions (≤ 16 × ~360 bytes); exactly the bytes of
      // the first k transactions of the unbounded order (the boundary); or none to speak of.
      fc.oneof(
        { weight: 2, arbitrary: fc.record({ any: fc.integer({ min: 0, max: 3000 }) }) },
        { weight: 2, arbitrary: fc.record({ firstK: fc.nat({ max: 16 }) }) },
        { weight: 1, arbitrary: fc.constant({ any: 1 << 20 }) },
      ),
      async (specsBySender, maxTxs, budget) => {
        const { mp } = await makePool();
        const queues: Tx[][] = [];
        for (let s = 0; s < senders.length; s++) {
          const q = specsBySender[s]!.map((x, n) => tx(senders[s]!, BigInt(n), BigInt(x.fee), { memo: 'm'.repeat(x.memo) }));
          queues.push(q);
          for (const t of [...q].reverse()) await mp.add(t); // arrival order must not matter
        }
        const arrival = new Map<string, number>();
        let seq = 0;
        for (const q of queues) for (const t of [...q].reverse()) arrival.set(t.idHex, seq++);
        const maxBytes = 'any' in budget ? budget.any
          : greedy(queues, arrival, Infinity, Infinity).want.slice(0, budget.firstK).reduce((n, t) => n + t.bytes.length, 0);
        const got = mp.candidates(maxTxs, maxBytes);
        const { want, cutByBytes } = greedy(queues, arrival, maxTxs, maxBytes);
        assert.deepEqual(ids(got), ids(want));
        const bytes = got.reduce((n, t) => n + t.bytes.length, 0);
        assert.ok(got.length <= maxTxs && bytes <= maxBytes);
        const total = queues.reduce((n, q) => n + q.length, 0);
        if (cutByBytes) bound.bytes++;
        else if (want.length === maxTxs && total > maxTxs) bound.count++;
        else bound.none++;
        if (bytes === maxBytes && want.length < total) bound.exact++;
      },
    ), { numRuns: RUNS });
    ctx.diagnostic(JSON.stringify(bound));
    // The generators reach both budgets and the byte budget's boundary (a property whose budgets never bind passes too).
    assert.ok(bound.bytes >= RUNS / 5 && bound.exact >= RUNS / 20 && bound.count >= RUNS / 20 && bound.none >= RUNS / 20, JSON.stringify(bound));
  });
});

// ---- head changes ----------------------------------------------------------------------------------

async function chainPool() {
  const tc = await openTestChain(genesis);
  const pool = await makePool({ accounts: tc.chain, db: tc.db });
  let work = Promise.resolve();
  tc.chain.on('chain:head', (e) => { work = work.then(() => pool.mp.onHeadChange(e.connected, e.disconnected)); });
  return { ...tc, ...pool, settled: () => work };
}

describe('onHeadChange', { timeout: 60000 }, () => {
  test('included transactions leave; stale and unaffordable ones leave too', async () => {
    const { chain, mp, removed, settled } = await chainPool();
    const a0 = tx(alice, 0n, 5n);
    const a1 = tx(alice, 1n, 5n);
    const b0 = tx(bob, 0n, 5n);
    const c0 = tx(carol, 0n, 5n);
    const c1 = tx(carol, 1n, 5n, { amount: 900_000n });
    for (const t of [a0, a1, b0, c0, c1]) await mp.add(t);
    // The block holds a0 and b0, plus a competing carol nonce 0 that spends most of her money.
    const other = tx(carol, 0n, 3n, { amount: 200_000n, to: erin });
    const blk = await buildBlock(chain, V, 1, [a0, b0, other]);
    assert.equal(blk.txs.length, 3);
    await chain.addBlock(blk);
    await settled();
    const reasons = new Map(removed.map((r) => [r.id, r.reason]));
    assert.equal(reasons.get(a0.idHex), 'included');
    assert.equal(reasons.get(b0.idHex), 'included');
    assert.equal(reasons.get(c0.idHex), 'stale');
    assert.equal(reasons.get(c1.idHex), 'unaffordable');
    assert.deepEqual(mp.ids(), [a1.idHex]);
    assert.deepEqual(ids(mp.candidates(10, 1 << 20)), [a1.idHex]);
  });

  test('after a reorg, abandoned txs return unless included on the new branch or now conflicting', async () => {
    const { chain, mp, settled } = await chainPool();
    const ta = tx(alice, 0n, 5n); // only on A → returns
    const ta2 = tx(alice, 1n, 5n); // pending throughout
    const tb = tx(bob, 0n, 5n); // on A and B → stays out
    const te = tx(erin, 0n, 5n); // on A; B uses erin's nonce 0 differently → stays out
    const teB = tx(erin, 0n, 7n, { amount: 99n });
    for (const t of [ta, ta2, tb, te]) await mp.add(t);
    const A1 = await buildBlock(chain, V, 1, [ta, tb, te]);
    await chain.addBlock(A1);
    await settled();
    assert.deepEqual(mp.ids(), [ta2.idHex]);

    const builder = await openTestChain(genesis);
    const B1 = await buildBlock(builder.chain, V, 5, [tb, teB]);
    await builder.chain.addBlock(B1);
    const B2 = await buildBlock(builder.chain, V, 6);
    await builder.chain.addBlock(B2);
    let reorged = false;
    chain.on('chain:reorg', () => { reorged = true; });
    await chain.addBlock(B1);
    await chain.addBlock(B2);
    await settled();
    assert.ok(reorged);
    assert.equal(chain.head.hashHex, B2.header.hashHex);
    assert.deepEqual(sorted(mp.ids()), sorted([ta.idHex, ta2.idHex]));
    assert.equal(mp.has(te.idHex), false);
    assert.equal(mp.has(tb.idHex), false);
    assert.deepEqual(ids(mp.candidates(10, 1 << 20)), [ta.idHex, ta2.idHex]);
    // What the mempool offers applies to the new head.
    const next = await buildBlock(chain, V, 7, mp.candidates(10, 1 << 20));
    assert.equal(next.txs.length, 2);
  });
});

// ---- persistence -----------------------------------------------------------------------------------

describe('persistence', { timeout: 60000 }, () => {
  const dirs: string[] = [];
  after(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

  async function open(dir: string) {
    const db = await openLevel(dir);
    const chain = await Chain.open({ db, genesis, clock: new ManualClock(GENESIS_TIME + 1_000_000_000) });
    const mp = new Mempool({ db, genesis, accounts: chain, verifier: new InlineVerifier(), sigCache: new SigCache() });
    return { db, chain, mp, close: async () => { await mp.flush(); await chain.close(); await db.close(); } };
  }

  test('flush + reopen + load gives the same ids; a since-confirmed tx is dropped', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshledger-mempool-'));
    dirs.push(dir);
    const a0 = tx(alice, 0n, 5n);
    const a1 = tx(alice, 1n, 6n);
    const b0 = tx(bob, 0n, 7n);
    const c5 = tx(carol, 5n, 7n); // future nonce: kept
    let n = await open(dir);
    for (const t of [a1, b0, a0, c5]) await n.mp.add(t);
    // Replaced and evicted entries must not come back either.
    const b0old = b0;
    const b0new = tx(bob, 0n, 9n);
    await n.mp.add(b0new);
    await n.close();

    n = await open(dir);
    assert.deepEqual(await n.mp.load(), { loaded: 4, dropped: 0 });
    assert.deepEqual(sorted(n.mp.ids()), sorted(ids([a0, a1, b0new, c5])));
    assert.equal(n.mp.has(b0old.idHex), false);
    assert.deepEqual(ids(n.mp.candidates(10, 1 << 20)), ids([b0new, a0, a1]));
    // Confirm a0 on the chain but "crash" before the mempool hears of it.
    await n.chain.addBlock(await buildBlock(n.chain, V, 1, [a0]));
    await n.close();

    n = await open(dir);
    assert.deepEqual(await n.mp.load(), { loaded: 3, dropped: 1 });
    assert.deepEqual(sorted(n.mp.ids()), sorted(ids([a1, b0new, c5])));
    assert.deepEqual(await mKeys(n.db), new Set(ids([a1, b0new, c5])), 'the dropped tx is deleted from disk');
    await n.close();
  });

  test('flush() waits for a group-commit batch that is already being written', async () => {
    const inner = await openMemory();
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    let started!: () => void;
    const batchStarted = new Promise<void>((r) => { started = r; });
    const slow: KV = {
      get: (k) => inner.get(k), getMany: (k) => inner.getMany(k), put: (k, v) => inner.put(k, v), del: (k) => inner.del(k),
      iterator: (o) => inner.iterator(o), close: () => inner.close(),
      batch: async (ops: BatchOp[]) => { started(); await gate; return inner.batch(ops); },
    };
    const { mp } = await makePool({ db: slow });
    const t = tx(alice, 0n, 5n);
    const adding = mp.add(t);
    await batchStarted; // the group commit has taken the ops and is writing them
    let flushed = false;
    const flushing = mp.flush().then(() => { flushed = true; });
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    const flushedEarly = flushed;
    release();
    await flushing;
    await adding;
    assert.equal(flushedEarly, false, 'flush() resolved while the batch was still being written');
    assert.deepEqual(await mKeys(inner), new Set([t.idHex]));
  });
});

describe('admission batches', () => {
  test('adds made in one tick share one signature batch, one account read and one write, and keep call order', async () => {
    const db = await openMemory();
    const calls = { verify: [] as string[], reads: 0, batches: 0 };
    const verifier = new InlineVerifier();
    const countingVerifier = {
      verifyBatch: (items: Parameters<InlineVerifier['verifyBatch']>[0], opts?: Parameters<InlineVerifier['verifyBatch']>[1]) => {
        calls.verify.push(`${items.length}${opts?.strict ? ' strict' : ''}`);
        return verifier.verifyBatch(items, opts);
      },
      close: () => verifier.close(),
    };
    const accounts = rich();
    const countingAccounts: AccountSource = { getAccounts: (k) => { calls.reads++; return accounts.getAccounts(k); } };
    const countingDb: KV = Object.assign(Object.create(db) as KV, { batch: (ops: BatchOp[]) => { calls.batches++; return db.batch(ops); } });
    const mp = new Mempool({ db: countingDb, genesis, accounts: countingAccounts, verifier: countingVerifier, sigCache: new SigCache() });
    const cheap = tx(alice, 0n, 10n);
    const dearer = tx(alice, 0n, 20n, { memo: 'replacement' });
    const bad = tx(bob, 0n, 10n);
    const forged = decodeTx(Uint8Array.from(bad.bytes, (b, i) => (i === bad.bytes.length - 1 ? b ^ 1 : b)));
    const later = [tx(carol, 0n, 10n), tx(carol, 1n, 10n), tx(erin, 0n, 10n)];
    const results = await Promise.allSettled([mp.add(cheap), mp.add(dearer), mp.add(forged), ...later.map((t) => mp.add(t))]);
    // One strict batch for all six; then, for the one that failed it (a client's: it is told which rule), the
    // consensus check that tells bad_signature from non_standard_signature.
    assert.deepEqual(calls.verify, ['6 strict', '1'], 'one signature batch for all six, and the forged one named');
    assert.equal(calls.reads, 1, 'one account read');
    assert.equal(calls.batches, 1, 'one disk write');
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
    // Call order decides: the dearer one came second, so it replaced the first.
    assert.equal((results[1] as PromiseFulfilledResult<{ status: string }>).value.status, 'replaced');
    assert.ok(isRule('bad_signature')((results[2] as PromiseRejectedResult).reason));
    assert.deepEqual(sorted(mp.ids()), sorted(ids([dearer, ...later])));
    assert.deepEqual(await mKeys(db), new Set(ids([dearer, ...later])));
    // The reverse order: the cheaper one arriving second is an underpriced replacement.
    const { mp: mp2 } = await makePool();
    const r2 = await Promise.allSettled([mp2.add(dearer), mp2.add(cheap)]);
    assert.equal(r2[0].status, 'fulfilled');
    assert.ok(isRule('replacement_underpriced')((r2[1] as PromiseRejectedResult).reason));
  });

  test('refusals by a rule are announced as tx:rejected with the rule; I/O failures are not', async () => {
    const accounts = rich();
    let fail = false;
    const flaky: AccountSource = { getAccounts: async (k) => { if (fail) throw new Error('disk read failed'); return accounts.getAccounts(k); } };
    const { mp } = await makePool({ accounts: flaky });
    const seen: { id: string; rule: string }[] = [];
    mp.on('tx:rejected', (e) => seen.push(e));
    const low = tx(alice, 0n, MIN_FEE - 1n);
    await assert.rejects(mp.add(low), isRule('fee_too_low'));
    const ok = tx(bob, 0n, 10n);
    await mp.add(ok);
    await mp.add(ok); // a duplicate is not a refusal
    fail = true;
    await assert.rejects(mp.add(tx(carol, 0n, 10n)), /disk read failed/);
    assert.deepEqual(seen, [{ id: low.idHex, rule: 'fee_too_low' }]);
  });

  test('addMany answers every transaction in order, refusals as values; a call larger than one batch spans several', async () => {
    const { mp, db, accepted } = await makePool();
    const rejected: string[] = [];
    mp.on('tx:rejected', (e) => rejected.push(e.rule));
    const good = tx(alice, 0n, 10n);
    const bad = tx(bob, 0n, 10n);
    const forged = decodeTx(Uint8Array.from(bad.bytes, (b, i) => (i === bad.bytes.length - 1 ? b ^ 1 : b)));
    const results = await mp.addMany([good, forged, good, tx(carol, 5n, MIN_FEE - 1n), tx(carol, 0n, 10n)]);
    assert.equal(results.length, 5);
    assert.deepEqual(results[0], { id: good.idHex, status: 'accepted' });
    assert.ok(isRule('bad_signature')(results[1]));
    assert.deepEqual(results[2], { id: good.idHex, status: 'duplicate' }, 'the same transaction twice in one call');
    assert.ok(isRule('fee_too_low')(results[3]));
    assert.equal((results[4] as { status: string }).status, 'accepted');
    assert.deepEqual(rejected.sort(), ['bad_signature', 'fee_too_low']);
    assert.deepEqual(accepted, [good.idHex, (results[4] as { id: string }).id], 'tx:accepted once per admitted transaction, in order');
    assert.equal((await mKeys(db)).size, 2, 'answered only once written');
    // 1,500 transactions: more than one admission batch (1024), one answer each, in call order.
    const accounts = new FakeAccounts();
    const senders = testKeys('mp-many', 30);
    for (const k of senders) accounts.set(k, 1_000_000n);
    const { mp: big } = await makePool({ accounts });
    const many = Array.from({ length: 1500 }, (_, i) => transfer(senders[i % 30]!, dave, 1n, BigInt(Math.floor(i / 30)), { fee: 10n, chainId: genesis.chainId }));
    const r = await big.addMany(many);
    assert.deepEqual(r.map((x) => (x instanceof Error ? x.message : x.id)), ids(many));
    assert.equal(big.size, 1500);
  });

  test('tx:accepted carries the origin given to addMany (the peer it came from); none for a client\'s add or a duplicate', async () => {
    const { mp } = await makePool();
    const seen: [string, string | undefined][] = [];
    mp.on('tx:accepted', (t, origin) => seen.push([t.idHex, origin]));
    const fromPeer = [tx(alice, 0n, 10n), tx(bob, 0n, 10n)];
    const own = tx(carol, 0n, 10n);
    const peerId = 'ab'.repeat(32);
    const [r1, r2] = await Promise.all([mp.addMany(fromPeer, { origin: peerId }), mp.add(own)]);
    assert.ok(r1.every((r) => !(r instanceof Error)) && r2.status === 'accepted');
    await mp.addMany([fromPeer[0]!], { origin: 'cd'.repeat(32) }); // a duplicate: no event
    assert.deepEqual(seen, [[fromPeer[0]!.idHex, peerId], [fromPeer[1]!.idHex, peerId], [own.idHex, undefined]]);
  });

  test('a failed write: addMany answers the error and rolls the admission back; keepOnWriteFailure keeps and rewrites', async () => {
    const inner = await openMemory();
    let failures = 0;
    const flaky: KV = Object.assign(Object.create(inner) as KV, {
      batch: async (ops: BatchOp[]) => { if (failures > 0) { failures--; throw new Error('disk full'); } return inner.batch(ops); },
    });
    const clock = new ManualClock(0);
    const mp = new Mempool({ db: flaky, genesis, accounts: rich(), verifier: new InlineVerifier(), sigCache: new SigCache(), clock });
    const accepted: string[] = [];
    mp.on('tx:accepted', (t) => accepted.push(t.idHex));
    const a = tx(alice, 0n, 10n), b = tx(bob, 0n, 10n);
    failures = 1;
    const r = await mp.addMany([a, b]);
    assert.match(String(r[0]), /disk full/);
    assert.match(String(r[1]), /disk full/);
    assert.equal(mp.size, 0, 'not on disk, so not admitted');
    assert.deepEqual(accepted, []);
    assert.deepEqual((await mp.addMany([a]))[0], { id: a.idHex, status: 'accepted' }, 'a resubmission is admitted');
    // An abandoned block's transaction is kept in memory and its write retried on the clock.
    failures = 1;
    const kept = await mp.addMany([b], { keepOnWriteFailure: true });
    assert.deepEqual(kept[0], { id: b.idHex, status: 'accepted' });
    assert.ok(mp.has(b.idHex));
    assert.deepEqual(accepted, [a.idHex, b.idHex]);
    assert.equal((await mKeys(inner)).has(b.idHex), false);
    clock.advance(1_000);
    await mp.flush();
    await new Promise((res) => setImmediate(res));
    await mp.flush();
    assert.equal((await mKeys(inner)).has(b.idHex), true, 'written by the retry');
  });

  test('shedding: a client add is refused with mempool_busy while maxAdmitting wait for admission; peers\' adds are not', async () => {
    const { mp } = await makePool({ limits: { maxAdmitting: 3 } });
    const queued = mp.addMany([tx(alice, 0n, 10n), tx(alice, 1n, 10n), tx(alice, 2n, 10n)]);
    assert.equal(mp.admitting, 3);
    const busy = mp.add(tx(bob, 0n, 10n), { shed: true }); // refused in this tick, before the queue drains
    const peer = mp.add(tx(carol, 0n, 10n)); // not shed: a peer's transaction is verified once, here or in its block
    assert.equal(mp.admitting, 4);
    await assert.rejects(busy, isRule('mempool_busy'));
    assert.equal(mp.shed, 1);
    assert.ok((await queued).every((r) => !(r instanceof Error)));
    assert.equal((await peer).status, 'accepted');
    assert.equal(mp.admitting, 0, 'every queued transaction answered');
    assert.equal((await mp.add(tx(bob, 0n, 10n), { shed: true })).status, 'accepted', 'admitted once the backlog drained');
    assert.equal(mp.size, 5);
  });

  test('a failing account read rejects that batch only; the next batch is admitted', async () => {
    const accounts = rich();
    let fail = true;
    const flaky: AccountSource = { getAccounts: async (k) => { if (fail) { fail = false; throw new Error('disk read failed'); } return accounts.getAccounts(k); } };
    const { mp } = await makePool({ accounts: flaky });
    const first = await Promise.allSettled([mp.add(tx(alice, 0n, 10n)), mp.add(tx(bob, 0n, 10n))]);
    assert.deepEqual(first.map((r) => r.status), ['rejected', 'rejected']);
    assert.match(String((first[0] as PromiseRejectedResult).reason), /disk read failed/);
    assert.equal(mp.size, 0);
    assert.equal((await mp.add(tx(alice, 0n, 10n))).status, 'accepted');
  });
});
