/**
 * Chain basics: genesis, addBlock statuses, every block rejection rule, the header's signature cache,
 * persistence across a reopen and the database format check.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Chain, ChainError } from '../../../src/chain/chain.js';
import { InlineVerifier, type VerifyItem, type VerifyOptions } from '../../../src/crypto/ed25519.js';
import { makeBlock, signHeader } from '../../../src/ledger/block.js';
import { merkleRoot } from '../../../src/ledger/merkle.js';
import type { RuleError } from '../../../src/ledger/rules.js';
import { StateLattice } from '../../../src/ledger/statehash.js';
import { EMPTY_ACCOUNT } from '../../../src/ledger/state.js';
import { slotStart } from '../../../src/ledger/schedule.js';
import { layout } from '../../../src/storage/layout.js';
import { openLevel } from '../../../src/storage/kv.js';
import { compareBytes, toHex } from '../../../src/encoding/bytes.js';
import { ManualClock } from '../../../src/util/clock.js';
import { decodeTx } from '../../../src/ledger/tx.js';
import { GENESIS_TIME, SLOT_MS, buildBlock, extend, makeGenesis, openTestChain, transfer } from '../../helpers/fixtures.js';
import { ALICE0, BOB0, V, alice, bob, carol, dave, dump, fields, genesis, grow, isRule, replay, resign, snapshot } from './common.js';

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
    const reorgs: number[] = [];
    chain.on('chain:reorg', (e) => reorgs.push(e.forkHeight));
    assert.equal((await chain.addBlock(s[0]!)).status, 'side');
    // s[1] ties with the head at height 3: it takes over only with the smaller hash; s[2] is longer.
    const tieWon = compareBytes(s[1]!.header.hash, o3!.header.hash) < 0;
    const statuses = [(await chain.addBlock(s[1]!)).status];
    assert.equal(chain.head.hashHex, (tieWon ? s[1]! : o3!).header.hashHex);
    statuses.push((await chain.addBlock(s[2]!)).status);
    assert.equal(chain.head.hashHex, s[2]!.header.hashHex);
    assert.deepEqual(statuses, tieWon ? ['reorganized', 'connected'] : ['side', 'reorganized']);
    assert.deepEqual(reorgs, [0], 'one reorg, from genesis');
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
