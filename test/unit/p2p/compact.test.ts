/**
 * Compact block relay (src/p2p/compact.ts, compact-reactor.ts):
 *   - property: a rebuild from any overlap between a block and what the receiver holds fills exactly the held
 *     transactions (and the prefilled ones), in place, and asks for exactly the rest; a short id that names
 *     two held transactions is asked for, never guessed;
 *   - on in-process networks: a block whose transactions the receiver holds crosses as a compact block, with no
 *     full body and nothing asked for; one it partly lacks costs exactly the missing transactions; a rebuild
 *     that does not match its header (short ids naming other transactions) falls back to the full block;
 *   - hostile cases: a compact block with a forged header, transactions that do not match their short ids, a
 *     request for indexes a block does not have: each charged to its sender, with bounded work.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { toHex } from '../../../src/encoding/bytes.js';
import type { Block } from '../../../src/ledger/block.js';
import type { Tx } from '../../../src/ledger/tx.js';
import { COLLISION, compactKey, indexByShortId, packShortIds, readShortId, rebuild, shortId, type ShortIdIndex } from '../../../src/p2p/compact.js';
import { MSG } from '../../../src/p2p/messages.js';
import { buildBlock, makeGenesis, openTestChain, resignBlock, testKey, testKeys, transfer } from '../../helpers/fixtures.js';
import { MemNet, RawPeer, startMemNode, until, type MemNode } from '../../helpers/memnet.js';

const validators = testKeys('compact-validator', 1);
const payers = testKeys('compact-payer', 30);
const genesis = makeGenesis({ validators, alloc: payers.map((p) => [p, 10n ** 12n]) });
/** A pool of distinct signed transfers to draw blocks and mempools from. */
const POOL: Tx[] = Array.from({ length: 60 }, (_, i) => transfer(payers[i % payers.length]!, validators[0]!, 1n + BigInt(i), BigInt(Math.floor(i / payers.length))));

test('property: a rebuild fills exactly what is held or prefilled, in place, and asks for the rest', () => {
  const key = compactKey(new Uint8Array(32).fill(7));
  fc.assert(fc.property(
    fc.shuffledSubarray(POOL, { minLength: 0, maxLength: 40 }),
    fc.array(fc.boolean(), { minLength: 60, maxLength: 60 }),
    fc.array(fc.boolean(), { minLength: 60, maxLength: 60 }),
    (blockTxs, held, prefill) => {
      const index = indexByShortId(key, POOL.filter((_, i) => held[i]));
      const packed = packShortIds(key, blockTxs);
      const prefilled = blockTxs.map((t, i) => [i, t] as const).filter(([, t]) => prefill[POOL.indexOf(t)]);
      const r = rebuild(blockTxs.length, packed, prefilled, index);
      const expectMissing: number[] = [];
      blockTxs.forEach((t, i) => {
        const k = POOL.indexOf(t);
        if (prefill[k] || held[k]) assert.equal(r.txs[i]!.idHex, t.idHex);
        else { assert.equal(r.txs[i], undefined); expectMissing.push(i); }
      });
      assert.deepEqual(r.missing, expectMissing);
    },
  ), { numRuns: 500 });
});

test('a short id that names two held transactions is asked for, never guessed', () => {
  const key = compactKey(new Uint8Array(32).fill(9));
  const [a, b, c] = POOL as [Tx, Tx, Tx];
  // Hand-made index: the block's second short id collides among what we hold.
  const index: ShortIdIndex = new Map<number, Tx | typeof COLLISION>([[shortId(key, a.id), a], [shortId(key, b.id), COLLISION], [shortId(key, c.id), c]]);
  const r = rebuild(3, packShortIds(key, [a, b, c]), [], index);
  assert.deepEqual(r.missing, [1]);
  assert.equal(r.txs[0], a);
  assert.equal(r.txs[2], c);
  // indexByShortId marks a collision only between different transactions (the same one twice is not one).
  const twice = indexByShortId(key, [a, a]);
  assert.equal(twice.get(shortId(key, a.id)), a);
  assert.equal(readShortId(packShortIds(key, [a]), 0), shortId(key, a.id));
});

/** Two connected nodes; `hold(n, txs)` puts transactions in a node's mempool. */
async function pair(): Promise<{ net: MemNet; a: MemNode; b: MemNode; stop(): Promise<void> }> {
  const net = new MemNet();
  const a = await startMemNode(net, genesis, testKey('compact-a'));
  const b = await startMemNode(net, genesis, testKey('compact-b'));
  a.network.connect(b.url);
  await until(() => a.network.readyPeers().length === 1 && b.network.readyPeers().length === 1, 5000, 'connected');
  return { net, a, b, stop: async () => { await a.stop(); await b.stop(); } };
}

async function hold(n: MemNode, txs: Tx[]): Promise<void> {
  const r = await n.mempool.addMany(txs);
  assert.ok(r.every((x) => !(x instanceof Error)), String(r.find((x) => x instanceof Error)));
}

test('a block the receiver holds crosses as a compact block: no full body, nothing asked for', async () => {
  const { a, b, stop } = await pair();
  try {
    const txs = POOL.slice(0, 20);
    await hold(a, txs);
    await hold(b, txs);
    const block = await buildBlock(a.chain, validators, 1, txs);
    await a.chain.addBlock(block);
    a.network.relayBlock(block);
    await until(() => b.chain.head.hashHex === block.header.hashHex, 5000, 'b connects the block');
    const s = b.network.stats;
    assert.equal(s.compactBlocksIn, 1);
    assert.equal(s.blockTxsRequested, 0);
    assert.equal(s.blockBodiesIn, 0, 'no full body');
    assert.ok(s.blockBytesIn < block.bytes.length * 0.15, `relay bytes ${s.blockBytesIn} of a ${block.bytes.length}-byte block`);
  } finally {
    await stop();
  }
});

test('a receiver that lacks some transactions asks for exactly those, by index', async () => {
  const { a, b, stop } = await pair();
  try {
    const txs = POOL.slice(0, 20);
    await hold(a, txs);
    await hold(b, txs.filter((_, i) => i % 4 !== 0)); // lacks 5 of 20
    const block = await buildBlock(a.chain, validators, 1, txs);
    await a.chain.addBlock(block);
    a.network.relayBlock(block);
    await until(() => b.chain.head.hashHex === block.header.hashHex, 5000, 'b connects the block');
    assert.equal(b.network.stats.blockTxsRequested, 5);
    assert.equal(b.network.stats.blockBodiesIn, 0);
  } finally {
    await stop();
  }
});

/** A compact block message for `block`, optionally with other short ids or prefilled transactions. */
function compactOf(block: Block, o: { shortIdsOf?: Tx[]; prefill?: [number, Uint8Array][]; reqId?: number } = {}) {
  return {
    type: MSG.CMPCT_BLOCK, reqId: o.reqId ?? 0, header: block.header.bytes,
    shortIds: packShortIds(compactKey(block.header.hash), o.shortIdsOf ?? block.txs), prefilled: o.prefill ?? [],
  } as const;
}

const penaltiesOf = (n: MemNode, key: ReturnType<typeof testKey>) => n.logs.filter((e) => e.msg === 'peer penalized' && e.peer === toHex(key.publicKey).slice(0, 12));

test('a rebuild that does not match its header falls back to the full block, without charging the sender for it', async () => {
  const net = new MemNet();
  const node = await startMemNode(net, genesis, testKey('compact-node'));
  try {
    const builder = await openTestChain(genesis);
    const txs = POOL.slice(0, 10);
    const block = await buildBlock(builder.chain, validators, 1, txs);
    const others = POOL.slice(10, 20);
    await hold(node, others);
    const senderKey = testKey('compact-sender');
    const sender = await RawPeer.join(net, node.url, senderKey, node.chain);
    // Short ids that name transactions the node holds, but not the block's: the rebuild's root cannot match.
    sender.send(compactOf(block, { shortIdsOf: others }));
    const ask = await sender.next(MSG.GET_BLOCKS);
    assert.deepEqual(ask.hashes.map(toHex), [block.header.hashHex]);
    sender.send({ type: MSG.BLOCKS, reqId: ask.reqId, blocks: [block.bytes] });
    await until(() => node.chain.head.hashHex === block.header.hashHex, 5000, 'the full block connects');
    assert.deepEqual(penaltiesOf(node, senderKey), []);
    await builder.chain.close();
  } finally {
    await node.stop();
  }
});

test('hostile compact relay: a forged header, transactions that do not match their short ids, out-of-range indexes', async () => {
  const net = new MemNet();
  const node = await startMemNode(net, genesis, testKey('compact-victim'));
  try {
    const builder = await openTestChain(genesis);
    const block = await buildBlock(builder.chain, validators, 1, POOL.slice(0, 6));
    // 1. A header not signed by its slot's validator: refused before any rebuild work, charged.
    const k1 = testKey('compact-forger');
    const p1 = await RawPeer.join(net, node.url, k1, node.chain);
    const forged = resignBlock(block, {}, [k1]);
    p1.send(compactOf(forged));
    await until(() => penaltiesOf(node, k1).length === 1, 5000, 'the forged header is charged');
    assert.match(String(penaltiesOf(node, k1)[0]!.detail), /bad_signature/);
    // 2. Asked for its missing transactions, the sender answers with others: charged.
    const k2 = testKey('compact-liar');
    const p2 = await RawPeer.join(net, node.url, k2, node.chain);
    p2.send(compactOf(block));
    const ask = await p2.next(MSG.GET_BLOCK_TXS);
    assert.deepEqual(ask.indexes, [0, 1, 2, 3, 4, 5], 'the node holds none of them');
    p2.send({ type: MSG.BLOCK_TXS, reqId: ask.reqId, txs: POOL.slice(30, 36).map((t) => t.bytes) });
    await until(() => penaltiesOf(node, k2).length === 1, 5000, 'the wrong transactions are charged');
    assert.match(String(penaltiesOf(node, k2)[0]!.detail), /does not match its short id/);
    // 3. A request for indexes the block does not have (thousands of them): charged, nothing served.
    await node.chain.addBlock(block);
    const k3 = testKey('compact-greedy');
    const p3 = await RawPeer.join(net, node.url, k3, node.chain);
    p3.send({ type: MSG.GET_BLOCK_TXS, reqId: 5, hash: block.header.hash, indexes: Array.from({ length: 5000 }, (_, i) => i) });
    await until(() => penaltiesOf(node, k3).length === 1, 5000, 'the out-of-range request is charged');
    assert.equal(p3.count(MSG.BLOCK_TXS), 0);
    // ... while a request within the block is served, in the order asked.
    p3.send({ type: MSG.GET_BLOCK_TXS, reqId: 6, hash: block.header.hash, indexes: [1, 4] });
    const served = await p3.next(MSG.BLOCK_TXS);
    assert.deepEqual(served.txs.map((t) => toHex(t)), [block.txs[1]!, block.txs[4]!].map((t) => toHex(t.bytes)));
    await builder.chain.close();
  } finally {
    await node.stop();
  }
});
