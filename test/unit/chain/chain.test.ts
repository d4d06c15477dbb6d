/**
 * Chain basics: genesis, addBlock statuses, every block rejection rule, tx index, persistence across a
 * reopen, fork choice (longest, then smaller hash, independent of arrival order), locator/forkPoint.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Chain, ChainError } from '../../../src/chain/chain.js';
import { InlineVerifier, type VerifyItem, type VerifyOptions } from '../../../src/crypto/ed25519.js';
import { makeBlock, signHeader, type Block, type BlockHeader, type UnsignedHeader } from '../../../src/ledger/block.js';
import { merkleRoot } from '../../../src/ledger/merkle.js';
import { RuleError } from '../../../src/ledger/rules.js';
import { StateLattice } from '../../../src/ledger/statehash.js';
import { EMPTY_ACCOUNT } from '../../../src/ledger/state.js';
import { slotStart } from '../../../src/ledger/schedule.js';
import { layout } from '../../../src/storage/layout.js';
import { openLevel, type KV } from '../../../src/storage/kv.js';
import { compareBytes, concatBytes, toHex } from '../../../src/encoding/bytes.js';
import { ManualClock } from '../../../src/util/clock.js';
import type { KeyPair } from '../../../src/crypto/keyfile.js';
import { decodeTx, type Tx } from '../../../src/ledger/tx.js';
import {
  GENESIS_TIME, SLOT_MS, buildBlock, extend, makeGenesis, openTestChain, testKeys, transfer, type TestChain,
} from '../../helpers/fixtures.js';

// ---- local helpers --------------------------------------------------------------------------------

const V = testKeys('chain-val', 3);
const [alice, bob, carol, dave] = testKeys('chain-user', 4) as [KeyPair, KeyPair, KeyPair, KeyPair];
const ALICE0 = 1_000_000n;
const BOB0 = 500_000n;
const genesis = makeGenesis({ validators: V, alloc: [[alice, ALICE0], [bob, BOB0]] });

const keyFor = (slot: number, vals: KeyPair[] = V): KeyPair => vals[slot % vals.length]!;

function fields(h: BlockHeader): UnsignedHeader {
  return {
    chainId: h.chainId, height: h.height, slot: h.slot, parentHash: h.parentHash, timestamp: h.timestamp,
    txRoot: h.txRoot, stateRoot: h.stateRoot, proposer: h.proposer,
  };
}

/** Re-sign `b`'s header with `changes` applied (default signer: the slot's scheduled validator). */
function resign(b: Block, changes: Partial<UnsignedHeader>, key?: KeyPair, txs: readonly Tx[] = b.txs): Block {
  const u = { ...fields(b.header), ...changes };
  return makeBlock(signHeader(u, (key ?? keyFor(u.slot)).secretKey), txs);
}

function isRule(rule: string, inner?: string): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof RuleError, `expected RuleError, got ${String(e)}`);
    assert.equal(e.rule, rule, `rule (message: ${e.message})`);
    if (inner !== undefined) assert.equal(e.inner?.rule, inner, `inner rule (message: ${e.message})`);
    return true;
  };
}

async function dump(db: KV, prefixes: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const p of prefixes) {
    for await (const [k, v] of db.iterator(layout.range(layout.prefix(p)))) out.set(toHex(k), toHex(v));
  }
  return out;
}

async function snapshot(c: Chain) {
  return {
    head: c.head.hashHex,
    height: c.head.height,
    root: toHex(c.stateRoot),
    audit: await c.auditSupply(),
    accounts: await dump(c.db, 'a'),
  };
}

/** Feed `blocks` (in order) to a fresh chain. */
async function replay(blocks: readonly Block[], g = genesis): Promise<TestChain> {
  const tc = await openTestChain(g);
  for (const b of blocks) await tc.chain.addBlock(b);
  return tc;
}

/** Grow `n` blocks on `chain`'s head, the first at head.slot + firstGap, then consecutive slots. */
async function grow(chain: Chain, vals: KeyPair[], n: number, firstGap = 1, txsFor: (i: number) => Tx[] = () => []): Promise<Block[]> {
  const out: Block[] = [];
  for (let i = 0; i < n; i++) {
    const b = await buildBlock(chain, vals, chain.head.slot + (i === 0 ? firstGap : 1), txsFor(i));
    await chain.addBlock(b);
    out.push(b);
  }
  return out;
}

// ---- genesis ---------------------------------------------------------------------------------------

describe('genesis', { timeout: 60000 }, () => {
  test('initialises height 0 with the lattice of the allocs as state root', async () => {
    const { chain } = await openTestChain(genesis);
    assert.equal(chain.head.height, 0);
    assert.equal(chain.head.slot, 0);
    assert.equal(chain.head.hashHex, chain.genesisHash);
    assert.equal(chain.mainHashAt(0), chain.genesisHash);
    assert.equal(chain.mainHashAt(1), undefined);

    const lattice = new StateLattice();
    lattice.add(alice.publicKey, { balance: ALICE0, nonce: 0n });
    lattice.add(bob.publicKey, { balance: BOB0, nonce: 0n });
    const expectedRoot = toHex(lattice.root());
    assert.equal(toHex(chain.stateRoot), expectedRoot);

    const g = await chain.getBlockAt(0);
    assert.ok(g);
    assert.equal(g.header.height, 0);
    assert.equal(toHex(g.header.stateRoot), expectedRoot);
    assert.equal(toHex(g.header.parentHash), toHex(genesis.configHash));
    assert.equal(g.txs.length, 0);

    const audit = await chain.auditSupply();
    assert.deepEqual(audit, { supply: ALICE0 + BOB0, accounts: 2, root: expectedRoot });
    assert.equal(genesis.totalSupply, ALICE0 + BOB0);
    assert.deepEqual(await chain.getAccount(alice.publicKey), { balance: ALICE0, nonce: 0n });
    assert.deepEqual(await chain.getAccount(bob.publicKey), { balance: BOB0, nonce: 0n });
    assert.deepEqual(await chain.getAccount(carol.publicKey), EMPTY_ACCOUNT);
  });

  test('the genesis hash is a function of the genesis document only', async () => {
    const a = await openTestChain(genesis);
    const b = await openTestChain(makeGenesis({ validators: V, alloc: [[bob, BOB0], [alice, ALICE0]] }));
    const c = await openTestChain(makeGenesis({ validators: V, alloc: [[alice, ALICE0 + 1n], [bob, BOB0]] }));
    assert.equal(a.chain.genesisHash, b.chain.genesisHash, 'alloc order in JSON does not matter');
    assert.notEqual(a.chain.genesisHash, c.chain.genesisHash);
    assert.notEqual(toHex(a.chain.stateRoot), toHex(c.chain.stateRoot));
  });
});

// ---- statuses --------------------------------------------------------------------------------------

describe('addBlock statuses', { timeout: 60000 }, () => {
  test('connected, duplicate, orphan (with parent), side, reorganized', async () => {
    const { chain } = await openTestChain(genesis);
    const b1 = await buildBlock(chain, V, 1);
    assert.deepEqual(await chain.addBlock(b1), { status: 'connected', hash: b1.header.hashHex });
    assert.equal(chain.head.hashHex, b1.header.hashHex);
    assert.deepEqual(await chain.addBlock(b1), { status: 'duplicate', hash: b1.header.hashHex });
    assert.equal(chain.head.hashHex, b1.header.hashHex);

    // Orphan: a block two ahead, built on another node.
    const other = await replay([b1]);
    const [o2, o3] = await grow(other.chain, V, 2);
    const r = await chain.addBlock(o3!);
    assert.deepEqual(r, { status: 'orphan', hash: o3!.header.hashHex, parent: o2!.header.hashHex });
    assert.equal(chain.hasBlock(o3!.header.hashHex), false, 'an orphan is not stored');
    assert.equal(chain.head.hashHex, b1.header.hashHex);
    assert.equal((await chain.addBlock(o2!)).status, 'connected');
    assert.equal((await chain.addBlock(o3!)).status, 'connected');
    assert.equal(chain.head.height, 3);

    // Side: a competing block at height 1 while the head is at 3.
    const fresh = await openTestChain(genesis);
    const s1 = await buildBlock(fresh.chain, V, 7);
    assert.deepEqual(await chain.addBlock(s1), { status: 'side', hash: s1.header.hashHex });
    assert.equal(chain.head.hashHex, o3!.header.hashHex);
    assert.equal(chain.hasBlock(s1.header.hashHex), true);
    assert.equal(chain.isOnMain(s1.header.hashHex), false);

    // Reorganized: extend the side branch past the head.
    await fresh.chain.addBlock(s1);
    const s = await grow(fresh.chain, V, 3);
    assert.equal((await chain.addBlock(s[0]!)).status, 'side');
    assert.equal((await chain.addBlock(s[1]!)).status, chain.head.hashHex === s[1]!.header.hashHex ? 'reorganized' : 'side');
    const last = await chain.addBlock(s[2]!);
    assert.equal(chain.head.hashHex, s[2]!.header.hashHex);
    assert.ok(last.status === 'reorganized' || last.status === 'connected');
  });
});

// ---- rejections ------------------------------------------------------------------------------------

describe('block rejections', { timeout: 60000 }, () => {
  test('bad_signature: right proposer field, signed with another validator key', async () => {
    const { chain } = await openTestChain(genesis);
    const b = await buildBlock(chain, V, 1);
    const forged = resign(b, {}, V[2]!);
    assert.equal(toHex(forged.header.proposer), toHex(V[1]!.publicKey));
    await assert.rejects(chain.addBlock(forged), isRule('bad_signature'));
    assert.equal(chain.head.height, 0);
    assert.equal(chain.hasBlock(forged.header.hashHex), false);
    assert.equal(chain.isInvalid(forged.header.hashHex), 'known_invalid');
    await assert.rejects(chain.addBlock(forged), isRule('known_invalid'));
    // The genuine block is unaffected.
    assert.equal((await chain.addBlock(b)).status, 'connected');
  });

  test('bad_tx(bad_signature) for a transaction whose signature byte is flipped', async () => {
    const { chain } = await openTestChain(genesis);
    const tx = transfer(alice, bob, 10n, 0n);
    const b = await buildBlock(chain, V, 1, [tx]);
    assert.equal(b.txs.length, 1);
    const bytes = new Uint8Array(tx.bytes);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0x01;
    const bad = decodeTx(bytes);
    const forged = resign(b, { txRoot: merkleRoot([bad.id]) }, undefined, [bad]);
    await assert.rejects(chain.addBlock(forged), isRule('bad_tx', 'bad_signature'));
    assert.equal(chain.head.height, 0);
  });

  test('wrong_proposer: a validator signs (as itself) a slot it does not own', async () => {
    const { chain } = await openTestChain(genesis);
    const b = await buildBlock(chain, V, 1); // slot 1 → V[1]
    const forged = resign(b, { proposer: V[2]!.publicKey }, V[2]!);
    await assert.rejects(chain.addBlock(forged), isRule('wrong_proposer'));
    assert.equal(chain.head.height, 0);
  });

  test('bad_slot: slot not greater than the parent slot', async () => {
    const { chain } = await openTestChain(genesis);
    await grow(chain, V, 1, 5); // head at slot 5
    const same = await buildBlock(chain, V, 5);
    await assert.rejects(chain.addBlock(same), isRule('bad_slot'));
    const earlier = await buildBlock(chain, V, 4);
    await assert.rejects(chain.addBlock(earlier), isRule('bad_slot'));
    assert.equal(chain.head.height, 1);
    assert.equal((await chain.addBlock(await buildBlock(chain, V, 6))).status, 'connected');
  });

  test('bad_height: height not parent + 1 (and height 0)', async () => {
    const { chain } = await openTestChain(genesis);
    const b = await buildBlock(chain, V, 1);
    await assert.rejects(chain.addBlock(resign(b, { height: 2 })), isRule('bad_height'));
    await assert.rejects(chain.addBlock(resign(b, { height: 0 })), isRule('bad_height'));
    assert.equal(chain.head.height, 0);
  });

  test('static rules: wrong_chain, bad_timestamp, bad_tx_root', async () => {
    const { chain } = await openTestChain(genesis);
    const b = await buildBlock(chain, V, 1, [transfer(alice, bob, 5n, 0n)]);
    await assert.rejects(chain.addBlock(resign(b, { chainId: 'other-chain' })), isRule('wrong_chain'));
    await assert.rejects(chain.addBlock(resign(b, { timestamp: b.header.timestamp + 1 })), isRule('bad_timestamp'));
    await assert.rejects(chain.addBlock(resign(b, { txRoot: merkleRoot([]) })), isRule('bad_tx_root'));
    assert.equal(chain.head.height, 0);
    assert.equal((await chain.addBlock(b)).status, 'connected');
  });

  test('future_slot is relative to the clock, and a future block is not remembered as invalid', async () => {
    const clock = new ManualClock(GENESIS_TIME + 10 * SLOT_MS); // start of slot 10
    const { chain } = await openTestChain(genesis, clock);
    const drift = genesis.params.maxClockDriftMs;
    assert.ok(drift < SLOT_MS);
    // Slot 10 has started: fine. Slot 11 starts SLOT_MS ahead (> drift).
    const b10 = await buildBlock(chain, V, 10);
    const early = await buildBlock(chain, V, 11);
    await assert.rejects(chain.addBlock(early), isRule('future_slot'));
    assert.equal(chain.isInvalid(early.header.hashHex), undefined);
    assert.equal(chain.hasBlock(early.header.hashHex), false);
    // Exactly at the drift limit: still too early by 1 ms.
    clock.set(slotStart(genesis, 11) - drift - 1);
    await assert.rejects(chain.addBlock(early), isRule('future_slot'));
    clock.set(slotStart(genesis, 11) - drift);
    assert.equal((await chain.addBlock(early)).status, 'connected');
    assert.equal(chain.head.hashHex, early.header.hashHex);
    // b10 (same height, earlier slot) is judged by hash only.
    const r = await chain.addBlock(b10);
    const b10Wins = compareBytes(b10.header.hash, early.header.hash) < 0;
    assert.equal(r.status, b10Wins ? 'reorganized' : 'side');
  });

  test('bad_state_root: rejected, head and accounts unchanged, marked invalid, child → invalid_parent', async () => {
    const { chain, db } = await openTestChain(genesis);
    await grow(chain, V, 1, 1, () => [transfer(alice, bob, 100n, 0n)]);
    const before = await snapshot(chain);
    const beforeDb = await dump(db, 'anTtxuL');
    const events: { hash: string; rule: string }[] = [];
    chain.on('block:invalid', (e) => events.push(e));

    const good = await buildBlock(chain, V, 2, [transfer(alice, carol, 1000n, 1n)]);
    const bad = resign(good, { stateRoot: new Uint8Array(32).fill(7) });
    await assert.rejects(chain.addBlock(bad), isRule('bad_state_root'));
    assert.deepEqual(await snapshot(chain), before);
    assert.deepEqual(await dump(db, 'anTtxuL'), beforeDb, 'no consensus key changed');
    assert.deepEqual(await chain.getAccount(carol.publicKey), EMPTY_ACCOUNT);
    assert.equal(chain.isInvalid(bad.header.hashHex), 'bad_state_root');
    assert.deepEqual(events.map((e) => [e.hash, e.rule]), [[bad.header.hashHex, 'bad_state_root']]);
    await assert.rejects(chain.addBlock(bad), isRule('known_invalid'));

    // A child of the invalid block (built on the honest twin's state, re-parented).
    const twin = await replay([(await chain.getBlockAt(1))!, good]);
    const [child] = await grow(twin.chain, V, 1);
    const orphaned = resign(child!, { parentHash: bad.header.hash });
    await assert.rejects(chain.addBlock(orphaned), isRule('invalid_parent'));
    assert.ok(chain.isInvalid(orphaned.header.hashHex));
    assert.deepEqual(await snapshot(chain), before);

    // The honest block is still accepted.
    assert.equal((await chain.addBlock(good)).status, 'connected');
    assert.deepEqual(await chain.getAccount(carol.publicKey), { balance: 1000n, nonce: 0n });
  });

  test('bad_tx with inner insufficient_funds (hand-assembled block, correct txRoot)', async () => {
    const { chain } = await openTestChain(genesis);
    const tx = transfer(bob, carol, BOB0, 0n); // amount + fee > balance
    const ref = await buildBlock(chain, V, 1); // a valid empty block to copy the header from
    const u = { ...fields(ref.header), txRoot: merkleRoot([tx.id]) };
    const blk = makeBlock(signHeader(u, V[1]!.secretKey), [tx]);
    const events: { rule: string; message: string }[] = [];
    chain.on('block:invalid', (e) => events.push(e));
    await assert.rejects(chain.addBlock(blk), (e: unknown) => isRule('bad_tx', 'insufficient_funds')(e) && (e as RuleError).index === 0);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.rule, 'bad_tx');
    assert.match(events[0]!.message, /insufficient_funds/);
    assert.equal(chain.head.height, 0);
    assert.equal(chain.isInvalid(blk.header.hashHex), 'bad_tx');
    assert.deepEqual(await chain.getAccount(bob.publicKey), { balance: BOB0, nonce: 0n });
  });

  test('bad_tx with inner nonce_too_high (hand-assembled block, correct txRoot)', async () => {
    const { chain } = await openTestChain(genesis);
    const tx = transfer(alice, carol, 10n, 1n); // account nonce is 0
    const ref = await buildBlock(chain, V, 1);
    const u = { ...fields(ref.header), txRoot: merkleRoot([tx.id]) };
    const blk = makeBlock(signHeader(u, V[1]!.secretKey), [tx]);
    await assert.rejects(chain.addBlock(blk), isRule('bad_tx', 'nonce_too_high'));
    assert.equal(chain.head.height, 0);
    assert.equal(chain.isInvalid(blk.header.hashHex), 'bad_tx');
  });

  test('bad_tx: a replayed transaction (nonce_too_low) in a later block', async () => {
    const { chain } = await openTestChain(genesis);
    const tx = transfer(alice, carol, 10n, 0n);
    await grow(chain, V, 1, 1, () => [tx]);
    const ref = await buildBlock(chain, V, 2);
    const blk = makeBlock(signHeader({ ...fields(ref.header), txRoot: merkleRoot([tx.id]) }, V[2]!.secretKey), [tx]);
    await assert.rejects(chain.addBlock(blk), isRule('bad_tx', 'nonce_too_low'));
    assert.equal(chain.head.height, 1);
  });
});

// ---- tx index ----------------------------------------------------------------------------------------

describe('transaction index', { timeout: 60000 }, () => {
  test('getTxLocation and history keys exist for confirmed transactions only', async () => {
    const { chain, db } = await openTestChain(genesis);
    const t1 = transfer(alice, carol, 100n, 0n);
    const t2 = transfer(bob, alice, 50n, 0n, { fee: 3n });
    const pending = transfer(alice, dave, 1n, 1n);
    await grow(chain, V, 1);
    const [b2] = await grow(chain, V, 1, 1, () => [t1, t2]);
    assert.equal(b2!.txs.length, 2);
    const h = b2!.header;
    assert.deepEqual(await chain.getTxLocation(t1.idHex), { blockHash: h.hashHex, height: 2, index: 0 });
    assert.deepEqual(await chain.getTxLocation(t2.idHex), { blockHash: h.hashHex, height: 2, index: 1 });
    assert.equal(await chain.getTxLocation(pending.idHex), undefined);

    // The raw location record: block hash | height u64 | index u32.
    assert.equal(toHex((await db.get(layout.tx(t2.id)))!), h.hashHex + '0000000000000002' + '00000001');
    // One history record per account per block: 5-byte entries index u32 | dir (0 sent, 1 received).
    const hist = await dump(db, 'x');
    const expected = new Map<string, string>([
      [toHex(layout.history(alice.publicKey, 2)), '00000000' + '00' + '00000001' + '01'],
      [toHex(layout.history(carol.publicKey, 2)), '00000000' + '01'],
      [toHex(layout.history(bob.publicKey, 2)), '00000001' + '00'],
    ]);
    assert.deepEqual(hist, expected);
    // Keys of one account are contiguous under x|publicKey.
    let n = 0;
    for await (const [k] of db.iterator(layout.range(layout.historyPrefix(alice.publicKey)))) {
      assert.equal(toHex(k.subarray(0, 33)), toHex(concatBytes(layout.prefix('x'), alice.publicKey)));
      n++;
    }
    assert.equal(n, 1);
    // Proposer got the fees; sender/recipient balances moved.
    assert.deepEqual(await chain.getAccount(V[2]!.publicKey), { balance: 4n, nonce: 0n });
    assert.deepEqual(await chain.getAccount(alice.publicKey), { balance: ALICE0 - 101n + 50n, nonce: 1n });
    const audit = await chain.auditSupply();
    assert.equal(audit.supply, genesis.totalSupply);
    assert.equal(audit.root, toHex(chain.stateRoot));
    assert.equal(audit.root, toHex(h.stateRoot));
  });
});

describe('account history', { timeout: 60000 }, () => {
  test('newest first, self-transfers received then sent, filtered by direction, paged by cursor at every size, and it follows a reorg', async () => {
    const { chain } = await openTestChain(genesis);
    const people = [alice, bob, carol];
    const nonces = new Map<KeyPair, bigint>(people.map((k) => [k, 0n]));
    const send = (from: KeyPair, to: KeyPair, amount: bigint) => { const n = nonces.get(from)!; nonces.set(from, n + 1n); return transfer(from, to, amount, n); };
    // Block i: a mix of transfers between three accounts, self-transfers included (empty blocks between).
    const plan: [KeyPair, KeyPair][][] = [
      [[alice, bob], [alice, alice], [bob, alice]],
      [],
      [[alice, carol], [carol, alice], [alice, bob], [bob, bob]],
      [[bob, carol]],
      [[alice, alice]],
    ];
    const blocks = await grow(chain, V, plan.length, 1, (i) => plan[i]!.map(([f, t]) => send(f, t, 10n + BigInt(i))));
    for (const who of people) {
      // The model: every (height, index, direction) naming `who`, newest first; received before sent on a tie.
      const model: string[] = [];
      blocks.forEach((b) => b.txs.forEach((tx, i) => {
        if (toHex(tx.from) === toHex(who.publicKey)) model.push(`${b.header.height}:${i}:sent`);
        if (toHex(tx.to) === toHex(who.publicKey)) model.push(`${b.header.height}:${i}:received`);
      }));
      model.reverse(); // newest first: so a self-transfer reads received, then sent
      for (const direction of ['both', 'sent', 'received'] as const) {
        const want = model.filter((e) => direction === 'both' || e.endsWith(direction));
        for (const limit of [1, 2, 3, 100]) {
          const got: string[] = [];
          let cursor;
          for (let page = 0; page < 50; page++) {
            const r = await chain.accountHistory(who.publicKey, { limit, direction, cursor });
            assert.ok(r.entries.length <= limit);
            for (const e of r.entries) {
              got.push(`${e.height}:${e.index}:${e.direction}`);
              const b = blocks[e.height - 1]!;
              assert.equal(e.blockHash, b.header.hashHex);
              assert.equal(e.tx.idHex, b.txs[e.index]!.idHex);
            }
            if (!r.next) break;
            assert.equal(r.entries.length, limit, 'a page before the last one is full');
            cursor = r.next;
          }
          assert.deepEqual(got, want, `${toHex(who.publicKey).slice(0, 6)} ${direction} limit ${limit}`);
        }
      }
    }
    // A reorg onto a branch without those transfers empties the history.
    const other = await openTestChain(genesis);
    const branch = await grow(other.chain, V, plan.length + 2, 40);
    for (const b of branch) await chain.addBlock(b);
    assert.equal(chain.head.hashHex, branch.at(-1)!.header.hashHex);
    for (const who of people) assert.deepEqual((await chain.accountHistory(who.publicKey, { limit: 100 })).entries, []);
    assert.equal(await chain.getTxLocation(blocks[0]!.txs[0]!.idHex), undefined);
  });
});

test('a datadir of an older database format is refused with what to do; a newer or missing one is refused too', async () => {
  const { chain, db } = await openTestChain(genesis);
  await chain.close();
  const { encodeCanonical } = await import('../../../src/encoding/canonical.js');
  const { DB_VERSION } = await import('../../../src/storage/layout.js');
  await db.put(layout.version(), encodeCanonical(DB_VERSION - 1));
  await assert.rejects(Chain.open({ db, genesis }), (e: unknown) => e instanceof ChainError && e.message.includes(`format ${DB_VERSION - 1}`) && e.message.includes('--datadir'));
  await db.put(layout.version(), encodeCanonical(DB_VERSION + 1));
  await assert.rejects(Chain.open({ db, genesis }), (e: unknown) => e instanceof ChainError && e.message.includes(`unsupported database format ${DB_VERSION + 1}`));
  await db.del(layout.version());
  await assert.rejects(Chain.open({ db, genesis }), (e: unknown) => e instanceof ChainError && e.message.includes('format missing'));
  await db.put(layout.version(), encodeCanonical(DB_VERSION));
  await (await Chain.open({ db, genesis })).close();
});

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

test('a block header\'s signature check is cached under its own id: a cached header is not verified again, and tx verdicts never stand in for it', async () => {
  const { headerCheckId, SigCache } = await import('../../../src/crypto/sigcache.js');
  class Counting extends InlineVerifier {
    items = 0;
    urgent = 0;
    override async verifyBatch(items: VerifyItem[], opts?: VerifyOptions): Promise<boolean[]> {
      this.items += items.length;
      if (opts?.urgent) this.urgent += items.length;
      return super.verifyBatch(items, opts);
    }
  }
  const { chain: builder } = await openTestChain(genesis);
  const [b1] = await grow(builder, V, 1, 1, () => [transfer(alice, carol, 5n, 0n)]);
  const open = async (sigCache: InstanceType<typeof SigCache>, verifier: Counting) => Chain.open({ db: (await openTestChain(genesis)).db, genesis, sigCache, verifier, clock: new ManualClock(GENESIS_TIME + 1_000_000_000) });

  // Nothing cached: the header is checked urgently, the transaction not; both verdicts are cached after.
  let cache = new SigCache();
  let v = new Counting();
  let c = await open(cache, v);
  assert.equal((await c.addBlock(b1!)).status, 'connected');
  assert.deepEqual([v.items, v.urgent], [2, 1]);
  assert.ok(cache.has(headerCheckId(b1!.header.hashHex)) && cache.has(b1!.txs[0]!.idHex));

  // Everything cached (as sync's read-ahead leaves it): no check runs at all.
  v = new Counting();
  c = await open(cache, v);
  assert.equal((await c.addBlock(b1!)).status, 'connected');
  assert.equal(v.items, 0);

  // The block hash as a tx id proves nothing about the header (another kind of check): still verified.
  cache = new SigCache();
  cache.add(b1!.header.hashHex);
  cache.add(b1!.txs[0]!.idHex);
  v = new Counting();
  c = await open(cache, v);
  assert.equal((await c.addBlock(b1!)).status, 'connected');
  assert.deepEqual([v.items, v.urgent], [1, 1]);

  // A forged header whose transactions are all cached is rejected, and its verdict is not cached.
  const forged = resign(b1!, {}, V[2]!);
  cache = new SigCache();
  cache.add(b1!.txs[0]!.idHex);
  c = await open(cache, new Counting());
  await assert.rejects(c.addBlock(forged), isRule('bad_signature'));
  assert.equal(cache.has(headerCheckId(forged.header.hashHex)), false);
});

// ---- persistence -------------------------------------------------------------------------------------

describe('persistence (LevelDB on a temp dir)', { timeout: 60000 }, () => {
  const dirs: string[] = [];
  after(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

  test('reopen gives the same head, state root and accounts; another genesis is refused', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshledger-chain-'));
    dirs.push(dir);
    const clock = new ManualClock(GENESIS_TIME + 1_000_000_000);
    let db = await openLevel(dir);
    let chain = await Chain.open({ db, genesis, clock });
    const txs = [transfer(alice, carol, 1234n, 0n), transfer(bob, dave, 99n, 0n), transfer(alice, bob, 7n, 1n)];
    await extend(chain, V, 4, (i) => (i < txs.length ? [txs[i]!] : []));
    // A side block too, so the block index holds more than the best chain.
    const side = await replay([]);
    const s1 = await buildBlock(side.chain, V, 50);
    assert.equal((await chain.addBlock(s1)).status, 'side');
    const before = await snapshot(chain);
    const blocksBefore = await Promise.all([0, 1, 2, 3, 4].map(async (h) => (await chain.getBlockAt(h))!.header.hashHex));
    const loc = await chain.getTxLocation(txs[2]!.idHex);
    await chain.close();
    await db.close();

    db = await openLevel(dir);
    chain = await Chain.open({ db, genesis, clock });
    assert.deepEqual(await snapshot(chain), before);
    assert.deepEqual(await Promise.all([0, 1, 2, 3, 4].map(async (h) => (await chain.getBlockAt(h))!.header.hashHex)), blocksBefore);
    assert.deepEqual(await chain.getTxLocation(txs[2]!.idHex), loc);
    assert.equal(chain.hasBlock(s1.header.hashHex), true);
    assert.equal(chain.isOnMain(s1.header.hashHex), false);
    assert.deepEqual(await chain.getAccount(carol.publicKey), { balance: 1234n, nonce: 0n });
    // It keeps working after the reopen.
    await extend(chain, V, 1, () => [transfer(carol, alice, 10n, 0n)]);
    assert.equal(chain.head.height, 5);
    const audit = await chain.auditSupply();
    assert.equal(audit.root, toHex(chain.stateRoot));
    assert.equal(audit.supply, genesis.totalSupply);
    await chain.close();
    await db.close();

    // Same datadir, another network.
    db = await openLevel(dir);
    const other = makeGenesis({ validators: V, alloc: [[alice, ALICE0]] });
    await assert.rejects(Chain.open({ db, genesis: other, clock }), (e: unknown) => {
      assert.ok(e instanceof ChainError, String(e));
      assert.match(e.message, /genesis/);
      return true;
    });
    // The datadir is untouched by the refusal.
    const again = await Chain.open({ db, genesis, clock });
    assert.equal(again.head.height, 5);
    await again.close();
    await db.close();
  });
});

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
