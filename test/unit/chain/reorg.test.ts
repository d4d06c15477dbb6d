/**
 * Reorganisations: state after a reorg equals a replay of the adopted branch (byte-identical consensus
 * keyspaces), reorg back, deep reorg, longer branches hiding an invalid block.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { Chain, ReorgEvent } from '../../../src/chain/chain.js';
import type { Block, UnsignedHeader } from '../../../src/ledger/block.js';
import { RuleError } from '../../../src/ledger/rules.js';
import { EMPTY_ACCOUNT } from '../../../src/ledger/state.js';
import { layout } from '../../../src/storage/layout.js';
import type { KV } from '../../../src/storage/kv.js';
import { compareBytes, toHex } from '../../../src/encoding/bytes.js';
import type { KeyPair } from '../../../src/crypto/keyfile.js';
import type { Tx } from '../../../src/ledger/tx.js';
import { buildBlock, makeGenesis, openTestChain, testKeys, transfer, type TestChain, resignBlock } from '../../helpers/fixtures.js';

const V = testKeys('reorg-val', 3);
const USERS = testKeys('reorg-user', 6);
const [alice, bob, carol, dave, erin, frank] = USERS as [KeyPair, KeyPair, KeyPair, KeyPair, KeyPair, KeyPair];
const genesis = makeGenesis({ validators: V, alloc: [[alice, 1_000_000n], [bob, 500_000n]] });
const EVERYONE = [...USERS, ...V];

// ---- helpers -----------------------------------------------------------------------------------

const resign = (b: Block, changes: Partial<UnsignedHeader>): Block => resignBlock(b, changes, V);

/** Replace block `k` of `blocks` by a copy with a wrong state root and re-link every later block to it. */
function corruptAt(blocks: readonly Block[], k: number): Block[] {
  const out = blocks.slice(0, k);
  let prev: Block | undefined;
  for (let i = k; i < blocks.length; i++) {
    const b = blocks[i]!;
    prev = i === k ? resign(b, { stateRoot: new Uint8Array(32).fill(0xab) }) : resign(b, { parentHash: prev!.header.hash });
    out.push(prev);
  }
  return out;
}

async function dump(db: KV, prefixes: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const p of prefixes) {
    for await (const [k, v] of db.iterator(layout.range(layout.prefix(p)))) out.set(toHex(k), toHex(v));
  }
  return out;
}

/** Every consensus keyspace that must be a pure function of the best chain. */
const CONSENSUS = 'anTtxuL';

async function replay(blocks: readonly Block[]): Promise<TestChain> {
  const tc = await openTestChain(genesis);
  for (const b of blocks) await tc.chain.addBlock(b);
  assert.equal(tc.chain.head.hashHex, blocks.at(-1)?.header.hashHex ?? tc.chain.genesisHash);
  return tc;
}

async function assertSameState(actual: Chain, expected: Chain, what: string): Promise<void> {
  assert.equal(actual.head.hashHex, expected.head.hashHex, `${what}: head`);
  assert.equal(toHex(actual.stateRoot), toHex(expected.stateRoot), `${what}: state root`);
  const a = await actual.auditSupply();
  const e = await expected.auditSupply();
  assert.deepEqual(a, e, `${what}: audit`);
  assert.equal(a.supply, genesis.totalSupply);
  assert.equal(a.root, toHex(actual.stateRoot), `${what}: stored accounts match the lattice`);
  for (const k of EVERYONE) {
    assert.deepEqual(await actual.getAccount(k.publicKey), await expected.getAccount(k.publicKey), `${what}: account ${k.address}`);
  }
  assert.deepEqual(await dump(actual.db, CONSENSUS), await dump(expected.db, CONSENSUS), `${what}: consensus keyspaces`);
  for (let h = 0; h <= expected.head.height; h++) assert.equal(actual.mainHashAt(h), expected.mainHashAt(h));
  assert.equal(actual.mainHashAt(expected.head.height + 1), undefined);
}

async function grow(chain: Chain, n: number, firstSlot: number, txsFor: (i: number) => Tx[] = () => []): Promise<Block[]> {
  const out: Block[] = [];
  for (let i = 0; i < n; i++) {
    const slot = i === 0 ? firstSlot : chain.head.slot + 1;
    assert.ok(slot > chain.head.slot);
    const want = txsFor(i);
    const b = await buildBlock(chain, V, slot, want);
    assert.equal(b.txs.length, want.length, 'every planned transaction applies');
    await chain.addBlock(b);
    out.push(b);
  }
  return out;
}

interface Recorder { reorgs: ReorgEvent[]; invalid: { hash: string; rule: string }[]; heads: string[] }
function record(chain: Chain): Recorder {
  const r: Recorder = { reorgs: [], invalid: [], heads: [] };
  chain.on('chain:reorg', (e) => r.reorgs.push(e));
  chain.on('block:invalid', (e) => r.invalid.push(e));
  chain.on('chain:head', (e) => r.heads.push(e.head.hashHex));
  return r;
}

const hashes = (bs: readonly Block[]): string[] => bs.map((b) => b.header.hashHex);

/** Feed blocks in order; RuleErrors are collected, anything else is rethrown. */
async function feed(chain: Chain, blocks: readonly Block[]): Promise<Map<string, string>> {
  const errors = new Map<string, string>();
  for (const b of blocks) {
    try {
      await chain.addBlock(b);
    } catch (e) {
      if (!(e instanceof RuleError)) throw e;
      errors.set(b.header.hashHex, e.rule);
    }
  }
  return errors;
}

// ---- tests ---------------------------------------------------------------------------------------

describe('reorg', { timeout: 60000 }, () => {
  test('to a longer branch with different transfers, then back when the first branch grows', async () => {
    const node = await openTestChain(genesis);
    const rec = record(node.chain);
    const common = await grow(node.chain, 2, 1, (i) => (i === 0 ? [transfer(alice, bob, 1000n, 0n)] : []));
    const builderB = await replay(common);

    const bobT = transfer(bob, alice, 77n, 0n, { fee: 2n }); // in both branches, at different heights
    const aOnly = [transfer(alice, carol, 300_000n, 1n), transfer(carol, dave, 100_000n, 0n), transfer(dave, alice, 1000n, 0n)];
    // A: money that only exists on A (carol → dave → alice).
    const A = await grow(node.chain, 3, 3, (i) => (i === 0 ? [aOnly[0]!, bobT] : [aOnly[i]!]));
    assert.deepEqual(await node.chain.getAccount(dave.publicKey), { balance: 98_999n, nonce: 1n });
    const bOnly = [transfer(alice, erin, 50_000n, 1n), transfer(erin, frank, 10_000n, 0n), transfer(bob, carol, 5n, 1n)];
    const B = await grow(builderB.chain, 4, 102, (i) => [[bOnly[0]!], [bOnly[1]!, bobT], [bOnly[2]!], []][i]!);

    rec.reorgs.length = 0;
    const statuses = [];
    for (const b of B) statuses.push((await node.chain.addBlock(b)).status);
    assert.equal(node.chain.head.hashHex, B[3]!.header.hashHex);

    // The switch happens at B5 (equal height, smaller hash) or at B6 (longer).
    const atB5 = compareBytes(B[2]!.header.hash, A[2]!.header.hash) < 0;
    assert.deepEqual(statuses, atB5 ? ['side', 'side', 'reorganized', 'connected'] : ['side', 'side', 'side', 'reorganized']);
    assert.equal(rec.reorgs.length, 1);
    const ev = rec.reorgs[0]!;
    assert.equal(ev.forkHeight, 2);
    assert.equal(ev.disconnected.length, 3, 'depth');
    assert.deepEqual(hashes(ev.disconnected), hashes(A).reverse(), 'disconnected newest first');
    assert.deepEqual(hashes(ev.connected), hashes(B.slice(0, atB5 ? 3 : 4)));
    assert.equal(ev.oldHead.hashHex, A[2]!.header.hashHex);
    assert.equal(ev.newHead.hashHex, B[atB5 ? 2 : 3]!.header.hashHex);

    const onlyB = await replay([...common, ...B]);
    await assertSameState(node.chain, onlyB.chain, 'after reorg to B');
    assert.deepEqual(await node.chain.getAccount(dave.publicKey), EMPTY_ACCOUNT, 'A-only account is gone');
    assert.deepEqual(await node.chain.getAccount(carol.publicKey), { balance: 5n, nonce: 0n });
    assert.deepEqual(await node.chain.getAccount(frank.publicKey), { balance: 10_000n, nonce: 0n });
    for (const t of aOnly) assert.equal(await node.chain.getTxLocation(t.idHex), undefined);
    assert.deepEqual(await node.chain.getTxLocation(bobT.idHex), { blockHash: B[1]!.header.hashHex, height: 4, index: 1 });

    // A grows to height 7: back to A.
    const builderA = await replay([...common, ...A]);
    const A2 = await grow(builderA.chain, 2, 6);
    rec.reorgs.length = 0;
    for (const b of A2) await node.chain.addBlock(b);
    assert.equal(node.chain.head.hashHex, A2[1]!.header.hashHex);
    assert.equal(rec.reorgs.length, 1);
    assert.equal(rec.reorgs[0]!.forkHeight, 2);
    assert.deepEqual(hashes(rec.reorgs[0]!.disconnected), hashes(B).reverse());
    await assertSameState(node.chain, builderA.chain, 'after reorg back to A');
    assert.deepEqual(await node.chain.getTxLocation(bobT.idHex), { blockHash: A[0]!.header.hashHex, height: 3, index: 1 });
    for (const t of bOnly) assert.equal(await node.chain.getTxLocation(t.idHex), undefined);
    assert.deepEqual(await node.chain.getAccount(frank.publicKey), EMPTY_ACCOUNT);
    assert.deepEqual(await node.chain.getAccount(erin.publicKey), EMPTY_ACCOUNT);
  });

  test('deep reorg: 50 blocks replaced by 51 from genesis', async () => {
    const node = await openTestChain(genesis);
    const rec = record(node.chain);
    const A = await grow(node.chain, 50, 1, (i) => (i % 5 === 0 ? [transfer(alice, carol, BigInt(i + 1), BigInt(i / 5))] : []));
    const builder = await openTestChain(genesis);
    const B = await grow(builder.chain, 51, 1000, (i) => (i % 7 === 3 ? [transfer(bob, dave, BigInt(i + 1), BigInt((i - 3) / 7))] : []));
    for (const b of B) await node.chain.addBlock(b);
    assert.equal(rec.reorgs.length, 1);
    assert.equal(rec.reorgs[0]!.forkHeight, 0);
    assert.equal(rec.reorgs[0]!.disconnected.length, 50);
    assert.deepEqual(hashes(rec.reorgs[0]!.disconnected), hashes(A).reverse());
    await assertSameState(node.chain, builder.chain, 'deep reorg');
    assert.deepEqual(await node.chain.getAccount(carol.publicKey), EMPTY_ACCOUNT);
  });

  test('a longer branch hiding an invalid block is never adopted; the block and all its descendants are marked', async () => {
    const node = await openTestChain(genesis);
    const rec = record(node.chain);
    const A = await grow(node.chain, 10, 1, (i) => (i < 4 ? [transfer(alice, carol, 1000n, BigInt(i))] : []));
    const common = A.slice(0, 2);
    const builder = await replay(common);
    const honest = await grow(builder.chain, 9, 200, (i) => [transfer(bob, erin, BigInt(10 + i), BigInt(i))]); // heights 3..11
    // A second child of the block that will be corrupted (height 6 = honest[3]).
    const forkBuilder = await replay([...common, ...honest.slice(0, 4)]);
    const [alt] = await grow(forkBuilder.chain, 1, 500);

    const C = corruptAt(honest, 3); // C[3] (height 6) has a wrong state root
    const altC = resign(alt!, { parentHash: C[3]!.header.hash });
    assert.equal(C[2]!.header.hashHex, honest[2]!.header.hashHex, 'prefix unchanged');
    const errors = await feed(node.chain, [...C.slice(0, 5), altC, ...C.slice(5)]);

    assert.equal(node.chain.head.hashHex, A[9]!.header.hashHex, 'head stays on A');
    assert.equal(rec.reorgs.length, 0);
    assert.equal(node.chain.isInvalid(C[3]!.header.hashHex), 'bad_state_root');
    for (const b of [...C.slice(4), altC]) assert.ok(node.chain.isInvalid(b.header.hashHex), `descendant ${b.header.height} marked`);
    for (const b of C.slice(0, 3)) assert.equal(node.chain.isInvalid(b.header.hashHex), undefined);
    assert.deepEqual(rec.invalid.filter((e) => e.rule === 'bad_state_root').map((e) => e.hash), [C[3]!.header.hashHex]);
    // The tip that made the branch look best was rejected.
    assert.ok(errors.has(C[8]!.header.hashHex));
    for (const [, rule] of errors) assert.ok(['bad_state_root', 'invalid_parent'].includes(rule), rule);
    await assertSameState(node.chain, (await replay(A)).chain, 'after refusing C');
    // A later block on the invalid branch is refused outright.
    const more = resign((await grow(builder.chain, 1, 300))[0]!, { parentHash: C[8]!.header.hash });
    await assert.rejects(node.chain.addBlock(more), (e: unknown) => e instanceof RuleError && e.rule === 'invalid_parent');

    // The valid prefix (heights 3..5) remains usable: a valid continuation longer than A wins.
    const prefixBuilder = await replay([...common, ...honest.slice(0, 3)]);
    const P = await grow(prefixBuilder.chain, 7, 600); // heights 6..12
    rec.reorgs.length = 0;
    await feed(node.chain, P);
    assert.equal(node.chain.head.hashHex, P[6]!.header.hashHex);
    assert.equal(rec.reorgs.length, 1);
    assert.equal(rec.reorgs[0]!.forkHeight, 2);
    await assertSameState(node.chain, prefixBuilder.chain, 'after adopting the valid prefix + continuation');
  });

  test('a longer branch whose valid prefix is longer than A: head moves to the prefix only', async () => {
    const node = await openTestChain(genesis);
    const rec = record(node.chain);
    const A = await grow(node.chain, 10, 1, (i) => (i < 3 ? [transfer(alice, carol, 1000n, BigInt(i))] : []));
    const common = A.slice(0, 2);
    const builder = await replay(common);
    const honest = await grow(builder.chain, 12, 200, (i) => [transfer(bob, erin, BigInt(10 + i), BigInt(i))]); // heights 3..14
    const C = corruptAt(honest, 10); // height 13
    const errors = await feed(node.chain, C);
    assert.equal(node.chain.head.hashHex, C[9]!.header.hashHex, 'head = valid prefix tip (height 12)');
    assert.equal(node.chain.head.height, 12);
    assert.equal(rec.reorgs.length, 1);
    assert.equal(rec.reorgs[0]!.forkHeight, 2);
    assert.equal(node.chain.isInvalid(C[10]!.header.hashHex), 'bad_state_root');
    assert.ok(node.chain.isInvalid(C[11]!.header.hashHex));
    assert.deepEqual([...errors.values()], ['bad_state_root', 'invalid_parent']);
    await assertSameState(node.chain, (await replay([...common, ...honest.slice(0, 10)])).chain, 'valid prefix of C');
  });
});
