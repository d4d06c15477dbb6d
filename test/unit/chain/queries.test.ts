/**
 * The reads RPC and sync use: transaction locations, account history (paged, filtered, following reorgs)
 * and stored block bytes.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Chain } from '../../../src/chain/chain.js';
import type { Block } from '../../../src/ledger/block.js';
import { layout } from '../../../src/storage/layout.js';
import { openLevel } from '../../../src/storage/kv.js';
import { concatBytes, toHex } from '../../../src/encoding/bytes.js';
import { ManualClock } from '../../../src/util/clock.js';
import type { KeyPair } from '../../../src/crypto/keyfile.js';
import { GENESIS_TIME, buildBlock, openTestChain, transfer } from '../../helpers/fixtures.js';
import { ALICE0, V, alice, bob, carol, dave, dump, genesis, grow } from './common.js';

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

test('getBlockBytes: stored encodings of indexed blocks in order, from the store after a reopen; unknown → undefined', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ml-bytes-'));
  try {
    let db = await openLevel(dir);
    let chain = await Chain.open({ db, genesis, clock: new ManualClock(GENESIS_TIME + 1_000_000_000) });
    const blocks: Block[] = [];
    for (let i = 0; i < 3; i++) {
      const b = await buildBlock(chain, V, chain.head.slot + 1, i === 1 ? [transfer(alice, bob.publicKey, 5n, 0n)] : []);
      await chain.addBlock(b);
      blocks.push(b);
    }
    const genesisHash = chain.mainHashAt(0)!;
    const ask = [blocks[2]!.header.hashHex, 'ab'.repeat(32), genesisHash, blocks[0]!.header.hashHex];
    const check = async (c: Chain) => {
      const got = await c.getBlockBytes(ask);
      assert.deepEqual(Buffer.from(got[0]!), Buffer.from(blocks[2]!.bytes));
      assert.equal(got[1], undefined);
      assert.deepEqual(Buffer.from(got[2]!), Buffer.from((await c.getBlock(genesisHash))!.bytes));
      assert.deepEqual(Buffer.from(got[3]!), Buffer.from(blocks[0]!.bytes));
    };
    await check(chain); // from the block cache
    await chain.close();
    await db.close();
    db = await openLevel(dir);
    chain = await Chain.open({ db, genesis, clock: new ManualClock(GENESIS_TIME + 1_000_000_000) });
    await check(chain); // from LevelDB
    await chain.close();
    await db.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
