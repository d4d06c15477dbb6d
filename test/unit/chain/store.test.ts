/**
 * Crash safety at the storage level: every head switch is ONE batch (accounts, undo, heights, tx index,
 * lattice, tip), and a failed switch write leaves the chain exactly as it was, still able to continue.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Chain, decodeAccount } from '../../../src/chain/chain.js';
import type { Block, UnsignedHeader } from '../../../src/ledger/block.js';
import { RuleError } from '../../../src/ledger/rules.js';
import { layout } from '../../../src/storage/layout.js';
import { openLevel, openMemory, type BatchOp, type KV } from '../../../src/storage/kv.js';
import { compareBytes, toHex } from '../../../src/encoding/bytes.js';
import { ManualClock } from '../../../src/util/clock.js';
import type { KeyPair } from '../../../src/crypto/keyfile.js';
import type { Tx } from '../../../src/ledger/tx.js';
import { GENESIS_TIME, buildBlock, makeGenesis, openTestChain, testKeys, transfer, type TestChain, resignBlock } from '../../helpers/fixtures.js';

const V = testKeys('store-val', 3);
const [alice, bob, carol] = testKeys('store-user', 3) as [KeyPair, KeyPair, KeyPair];
const genesis = makeGenesis({ validators: V, alloc: [[alice, 1_000_000n], [bob, 500_000n]] });
const CONSENSUS = 'anTtxuL';
const FAR = GENESIS_TIME + 1_000_000_000;

class InjectedFailure extends Error {}

/** A KV proxy that records every write and can be told to fail batches. */
class SpyKV implements KV {
  readonly batches: BatchOp[][] = [];
  singleWrites = 0;
  failIf: ((ops: BatchOp[]) => boolean) | null = null;
  constructor(readonly inner: KV) {}
  get(key: Uint8Array) { return this.inner.get(key); }
  getMany(keys: Uint8Array[]) { return this.inner.getMany(keys); }
  put(key: Uint8Array, value: Uint8Array) { this.singleWrites++; return this.inner.put(key, value); }
  del(key: Uint8Array) { this.singleWrites++; return this.inner.del(key); }
  async batch(ops: BatchOp[]): Promise<void> {
    this.batches.push(ops);
    if (this.failIf?.(ops)) throw new InjectedFailure('injected write failure');
    return this.inner.batch(ops);
  }
  iterator(opts: Parameters<KV['iterator']>[0]) { return this.inner.iterator(opts); }
  close() { return this.inner.close(); }
}

const has = (ops: readonly BatchOp[], p: string, type?: 'put' | 'del'): boolean =>
  ops.some((o) => o.key[0] === p.charCodeAt(0) && (!type || o.type === type));
const isSwitch = (ops: readonly BatchOp[]): boolean => has(ops, 'T');

async function dump(db: KV, prefixes: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const p of prefixes) {
    for await (const [k, v] of db.iterator(layout.range(layout.prefix(p)))) out.set(toHex(k), toHex(v));
  }
  return out;
}

async function openSpied(): Promise<{ chain: Chain; spy: SpyKV }> {
  const spy = new SpyKV(await openMemory());
  const chain = await Chain.open({ db: spy, genesis, clock: new ManualClock(FAR) });
  return { chain, spy };
}

async function replay(blocks: readonly Block[]): Promise<TestChain> {
  const tc = await openTestChain(genesis);
  for (const b of blocks) await tc.chain.addBlock(b);
  return tc;
}

async function grow(chain: Chain, n: number, firstSlot: number, txsFor: (i: number) => Tx[] = () => []): Promise<Block[]> {
  const out: Block[] = [];
  for (let i = 0; i < n; i++) {
    const b = await buildBlock(chain, V, i === 0 ? firstSlot : chain.head.slot + 1, txsFor(i));
    await chain.addBlock(b);
    out.push(b);
  }
  return out;
}

async function state(c: Chain) {
  const heights = [];
  for (let h = 0; h <= c.head.height + 1; h++) heights.push((await c.getBlockAt(h))?.header.hashHex);
  return { head: c.head.hashHex, root: toHex(c.stateRoot), audit: await c.auditSupply(), heights, db: await dump(c.db, CONSENSUS) };
}

/** 'failed' for an injected switch failure, else the status (anything else is rethrown). */
async function outcome(p: Promise<{ status: string }>): Promise<string> {
  try {
    return (await p).status;
  } catch (e) {
    if (e instanceof InjectedFailure) return 'failed';
    throw e;
  }
}

const resign = (b: Block, changes: Partial<UnsignedHeader>): Block => resignBlock(b, changes, V);

/** Keys whose value differs between two dumps (added, removed or changed). */
function changedKeys(before: Map<string, string>, afterDump: Map<string, string>): Set<string> {
  const out = new Set<string>();
  for (const [k, v] of afterDump) if (before.get(k) !== v) out.add(k);
  for (const k of before.keys()) if (!afterDump.has(k)) out.add(k);
  return out;
}

describe('one batch per head switch', { timeout: 60000 }, () => {
  test('an extension writes tip, lattice, accounts, undo, height and tx index in ONE batch', async () => {
    const { chain, spy } = await openSpied();
    await grow(chain, 1, 1, () => [transfer(alice, bob, 10n, 0n)]);
    const before = await dump(spy, CONSENSUS);
    spy.batches.length = 0;
    const t1 = transfer(alice, carol, 500n, 1n);
    const t2 = transfer(bob, carol, 7n, 0n);
    const [b] = await grow(chain, 1, 2, () => [t1, t2]);
    assert.equal(spy.singleWrites, 0, 'no writes outside batches');
    const switches = spy.batches.filter(isSwitch);
    assert.equal(switches.length, 1);
    const sw = switches[0]!;
    for (const p of 'TLanutx') assert.ok(has(sw, p, 'put'), `switch batch has a put under '${p}'`);
    assert.ok(sw.some((o) => o.type === 'put' && toHex(o.key) === toHex(layout.tip()) && toHex(o.value) === b!.header.hashHex));
    assert.ok(sw.some((o) => o.type === 'put' && toHex(o.key) === toHex(layout.undo(b!.header.hash))));
    // Every consensus key that changed was written by that one batch.
    const changed = changedKeys(before, await dump(spy, CONSENSUS));
    const written = new Set(sw.map((o) => toHex(o.key)));
    for (const k of changed) assert.ok(written.has(k), `changed key ${k.slice(0, 10)}… was written by the switch batch`);
    // The block itself (body and index entry) rides in the same batch: there is no other.
    assert.equal(spy.batches.length, 1);
    assert.ok(sw.some((o) => o.type === 'put' && toHex(o.key) === toHex(layout.block(b!.header.hash))));
    assert.ok(sw.some((o) => o.type === 'put' && toHex(o.key) === toHex(layout.entry(b!.header.hash))));
  });

  test('a side-branch block, which switches nothing, is stored in a batch of its own', async () => {
    const { chain, spy } = await openSpied();
    await grow(chain, 3, 1);
    const builder = await openTestChain(genesis);
    const [side] = await grow(builder.chain, 1, 30); // height 1: far below the head
    spy.batches.length = 0;
    assert.equal((await chain.addBlock(side!)).status, 'side');
    assert.equal(spy.batches.length, 1);
    assert.deepEqual(spy.batches[0]!.map((o) => String.fromCharCode(o.key[0]!)).sort(), ['b', 'e']);
  });

  test('a reorg (undo + redo) is also exactly one batch', async () => {
    const { chain, spy } = await openSpied();
    const A = await grow(chain, 3, 1, (i) => [transfer(alice, carol, 100n + BigInt(i), BigInt(i))]);
    const builder = await openTestChain(genesis);
    const B = await grow(builder.chain, 4, 50, (i) => [transfer(bob, carol, 1n + BigInt(i), BigInt(i))]);
    const before = await dump(spy, CONSENSUS);
    spy.batches.length = 0;
    let reorgs = 0;
    chain.on('chain:reorg', () => reorgs++);
    for (const b of B) await chain.addBlock(b);
    assert.equal(reorgs, 1);
    const switches = spy.batches.filter(isSwitch);
    // One switch for the reorg, plus one for B4 if the reorg happened at B3 (equal height, smaller hash).
    const reorgBatch = switches.find((ops) => has(ops, 'u', 'del'))!;
    assert.ok(reorgBatch, 'the reorg batch deletes undo data');
    assert.equal(switches.filter((ops) => has(ops, 'u', 'del')).length, 1);
    assert.equal(switches.length, compareBytes(B[2]!.header.hash, A[2]!.header.hash) < 0 ? 2 : 1);
    for (const a of A) {
      assert.ok(reorgBatch.some((o) => o.type === 'del' && toHex(o.key) === toHex(layout.undo(a.header.hash))));
      for (const t of a.txs) assert.ok(reorgBatch.some((o) => o.type === 'del' && toHex(o.key) === toHex(layout.tx(t.id))));
    }
    for (const p of 'TLanutx') assert.ok(has(reorgBatch, p, 'put'), p);
    const changed = changedKeys(before, await dump(spy, CONSENSUS));
    const written = new Set(switches.flatMap((ops) => ops.map((o) => toHex(o.key))));
    for (const k of changed) assert.ok(written.has(k), `changed key ${k.slice(0, 10)}… written by a switch batch`);
    assert.equal(spy.singleWrites, 0);
  });

  test('a block failing state validation issues no switch batch, only the block with its invalid mark', async () => {
    const { chain, spy } = await openSpied();
    await grow(chain, 1, 1);
    const good = await buildBlock(chain, V, 2, [transfer(alice, bob, 1n, 0n)]);
    const bad = resign(good, { stateRoot: new Uint8Array(32) });
    spy.batches.length = 0;
    await assert.rejects(chain.addBlock(bad), (e: unknown) => e instanceof RuleError && e.rule === 'bad_state_root');
    assert.equal(spy.batches.filter(isSwitch).length, 0);
    assert.equal(spy.batches.length, 1);
    const ops = spy.batches[0]!;
    assert.deepEqual(ops.map((o) => `${o.type}:${String.fromCharCode(o.key[0]!)}`).sort(), ['put:b', 'put:e', 'put:i']);
  });
});

describe('account cache', () => {
  /** A store whose account reads can be held back until released. */
  class GatedKV extends SpyKV {
    gate: Promise<void> | null = null;
    override async getMany(keys: Uint8Array[]) {
      const gate = this.gate; // as at the call
      const vals = await this.inner.getMany(keys);
      if (gate && keys.some((k) => k[0] === 'a'.charCodeAt(0))) await gate;
      return vals;
    }
  }

  test('a read that was in flight across a head switch is not cached: later reads see the new head', async () => {
    const spy = new GatedKV(await openMemory());
    const chain = await Chain.open({ db: spy, genesis, clock: new ManualClock(FAR) });
    let release!: () => void;
    spy.gate = new Promise((r) => { release = r; });
    const stale = chain.getAccount(alice.publicKey); // reads the genesis state, held back
    spy.gate = null;
    await grow(chain, 1, 1, () => [transfer(alice, carol, 100n, 0n)]);
    release();
    assert.deepEqual(await stale, { balance: 1_000_000n, nonce: 0n }, 'the held read answers the state it read');
    assert.deepEqual(await chain.getAccount(alice.publicKey), { balance: 1_000_000n - 101n, nonce: 1n });
    assert.deepEqual(await chain.getAccount(carol.publicKey), { balance: 100n, nonce: 0n });
  });

  test('cached accounts follow reorgs and agree with the store after every block', async () => {
    const { chain, spy } = await openSpied();
    const who = [alice, bob, carol];
    const check = async () => {
      for (const k of who) {
        const v = await spy.inner.get(layout.account(k.publicKey));
        const stored = v ? decodeAccount(v) : { balance: 0n, nonce: 0n };
        assert.deepEqual(await chain.getAccount(k.publicKey), stored);
        assert.equal((await chain.getAccounts([toHex(k.publicKey)])).has(toHex(k.publicKey)), v !== undefined);
      }
    };
    for (const k of who) await chain.getAccount(k.publicKey); // warm the cache
    await grow(chain, 3, 1, (i) => [transfer(alice, carol, 100n + BigInt(i), BigInt(i))]);
    await check();
    const builder = await openTestChain(genesis);
    const B = await grow(builder.chain, 5, 40, (i) => [transfer(bob, carol, 3n, BigInt(i))]);
    for (const b of B) await chain.addBlock(b);
    assert.equal(chain.head.hashHex, B[4]!.header.hashHex);
    await check();
    assert.deepEqual(await chain.getAccount(alice.publicKey), { balance: 1_000_000n, nonce: 0n }, 'the reorg undid alice\'s transfers');
  });
});

describe('failed switch write', { timeout: 60000 }, () => {
  test('extension: in-memory head, accounts and best chain unchanged; the next block still works', async () => {
    const { chain, spy } = await openSpied();
    const base = await grow(chain, 2, 1, (i) => [transfer(alice, bob, 10n, BigInt(i))]);
    const before = await state(chain);
    const headEvents: string[] = [];
    chain.on('chain:head', (e) => headEvents.push(e.head.hashHex));

    const tx = transfer(alice, carol, 1234n, 2n);
    const b3 = await buildBlock(chain, V, 3, [tx]);
    spy.failIf = isSwitch;
    await assert.rejects(chain.addBlock(b3), InjectedFailure);
    spy.failIf = null;
    assert.deepEqual(await state(chain), before);
    assert.equal(chain.mainHashAt(3), undefined);
    assert.equal(await chain.getTxLocation(tx.idHex), undefined);
    assert.deepEqual(await chain.getAccount(carol.publicKey), { balance: 0n, nonce: 0n });
    assert.deepEqual(headEvents, []);
    assert.equal(chain.isInvalid(b3.header.hashHex), undefined, 'a write failure is not a verdict on the block');

    // The next block (a child of the one whose switch failed) is adopted, with its parent.
    const builder = await replay([...base, b3]);
    const [b4] = await grow(builder.chain, 1, 4, () => [transfer(carol, alice, 34n, 0n)]);
    assert.equal((await chain.addBlock(b4!)).status, 'connected');
    assert.equal(chain.head.hashHex, b4!.header.hashHex);
    assert.deepEqual(await state(chain), await state(builder.chain));
  });

  test('block storage write fails: nothing is remembered and the same block is accepted later', async () => {
    const { chain, spy } = await openSpied();
    await grow(chain, 1, 1);
    const before = await state(chain);
    const b2 = await buildBlock(chain, V, 2, [transfer(bob, carol, 5n, 0n)]);
    spy.failIf = (ops) => has(ops, 'b');
    await assert.rejects(chain.addBlock(b2), InjectedFailure);
    spy.failIf = null;
    assert.equal(chain.hasBlock(b2.header.hashHex), false);
    assert.deepEqual(await state(chain), before);
    assert.equal((await chain.addBlock(b2)).status, 'connected');
    assert.equal(chain.head.hashHex, b2.header.hashHex);
  });

  test('reorg: a failed switch keeps the old branch intact; the next block completes the reorg', async () => {
    const { chain, spy } = await openSpied();
    const A = await grow(chain, 3, 1, (i) => [transfer(alice, carol, 100n, BigInt(i))]);
    const builder = await openTestChain(genesis);
    const B = await grow(builder.chain, 5, 40, (i) => [transfer(bob, carol, 3n, BigInt(i))]);
    for (const b of B.slice(0, 2)) await chain.addBlock(b);
    const before = await state(chain);
    spy.failIf = isSwitch;
    // B3 ties on height (it switches with the smaller hash), B4 is longer (must switch): every switch fails.
    const outcomes = [];
    for (const b of B.slice(2, 4)) outcomes.push(await outcome(chain.addBlock(b)));
    assert.deepEqual(outcomes, [compareBytes(B[2]!.header.hash, A[2]!.header.hash) < 0 ? 'failed' : 'side', 'failed']);
    spy.failIf = null;
    assert.deepEqual(await state(chain), before);
    await chain.addBlock(B[4]!);
    assert.deepEqual(await state(chain), await state(builder.chain));
  });

  test('after a failed switch to a valid block, a hidden invalid child makes the chain fall back to that block', async () => {
    const { chain, spy } = await openSpied();
    const A = await grow(chain, 10, 1, (i) => (i < 3 ? [transfer(alice, carol, 1000n, BigInt(i))] : []));
    const builder = await replay(A.slice(0, 2));
    const honest = await grow(builder.chain, 10, 100, (i) => [transfer(bob, carol, 2n, BigInt(i))]); // heights 3..12
    const badTip = resign(honest[9]!, { stateRoot: new Uint8Array(32).fill(1) });
    const before = await state(chain);
    spy.failIf = isSwitch;
    const outcomes = [];
    for (const b of honest.slice(0, 9)) outcomes.push(await outcome(chain.addBlock(b)));
    // Heights 3..9 are side blocks; 10 ties with A's head (switches with the smaller hash); 11 must switch.
    const tieWins = compareBytes(honest[7]!.header.hash, A[9]!.header.hash) < 0;
    assert.deepEqual(outcomes, [...Array(7).fill('side'), tieWins ? 'failed' : 'side', 'failed']);
    spy.failIf = null;
    assert.deepEqual(await state(chain), before, 'head still on A after the failed switch');
    spy.batches.length = 0;
    const invalid: string[] = [];
    chain.on('block:invalid', (e) => invalid.push(`${e.rule}:${e.hash}`));
    // Best tip is now the bad block (height 12): its switch fails on state validation, and the chain
    // falls back, in the same call, to its valid parent (height 11 > 10).
    await assert.rejects(chain.addBlock(badTip), (e: unknown) => e instanceof RuleError && e.rule === 'bad_state_root');
    assert.deepEqual(invalid, [`bad_state_root:${badTip.header.hashHex}`]);
    assert.equal(chain.head.hashHex, honest[8]!.header.hashHex);
    assert.equal(spy.batches.filter(isSwitch).length, 1);
    const prefix = await replay([...A.slice(0, 2), ...honest.slice(0, 9)]);
    assert.deepEqual(await state(chain), await state(prefix.chain));
  });
});

describe('crash and reopen (LevelDB on a temp dir)', { timeout: 60000 }, () => {
  const dirs: string[] = [];
  after(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

  test('a switch that never reached the disk: the stored state stays at the old head, and reopening applies fork choice', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshledger-store-'));
    dirs.push(dir);
    const clock = new ManualClock(FAR);
    const spy = new SpyKV(await openLevel(dir));
    let chain = await Chain.open({ db: spy, genesis, clock });
    const base = await grow(chain, 2, 1, (i) => [transfer(alice, bob, 10n, BigInt(i))]);
    const before = await state(chain);
    const b3 = await buildBlock(chain, V, 3, [transfer(alice, carol, 99n, 2n)]);
    spy.failIf = isSwitch; // the "crash" happens at the switch write
    await assert.rejects(chain.addBlock(b3), InjectedFailure);
    assert.deepEqual(await state(chain), before, 'a failed switch leaves the old head and its state');
    await chain.close();
    await spy.close();

    const db = await openLevel(dir);
    chain = await Chain.open({ db, genesis, clock }); // verifies lattice ↔ head state root
    assert.equal(chain.hasBlock(b3.header.hashHex), true, 'the stored block survives');
    assert.deepEqual(await state(chain), before, 'open itself switches nothing (no listener would hear it)');
    const heads: string[] = [];
    chain.on('chain:head', (e) => heads.push(e.head.hashHex));
    await chain.reconsider(); // what the node does once it is wired
    assert.equal(chain.head.hashHex, b3.header.hashHex, 'the better stored tip is adopted at once (not only when a child arrives)');
    assert.deepEqual(heads, [b3.header.hashHex], 'and announced, so the mempool hears of it');
    const builder = await replay([...base, b3]);
    assert.deepEqual(await state(chain), await state(builder.chain), 'identical to a replay of the chain with b3');
    const [b4] = await grow(builder.chain, 1, 4);
    await chain.addBlock(b4!);
    assert.deepEqual(await state(chain), await state(builder.chain));
    await chain.close();
    await db.close();
  });
});
