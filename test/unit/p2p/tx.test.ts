/**
 * Transaction gossip (src/p2p/tx-reactor.ts) on an in-process network (test/helpers/memnet.ts), with the
 * origin that travels with the mempool's tx:accepted (wired by src/node/node.ts wireNetwork):
 *   - a transaction relayed from a peer is announced (txPushFanout 0) to the others and not sent back; the
 *     node's own transaction is pushed to every peer;
 *   - an announcement of a transaction whose body is being admitted is not fetched; others are.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHex } from '../../../src/encoding/bytes.js';
import { MSG, type Message } from '../../../src/p2p/messages.js';
import { makeGenesis, testKey, testKeys, transfer } from '../../helpers/fixtures.js';
import { MemNet, RawPeer, startMemNode, until } from '../../helpers/memnet.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const validators = testKeys('p2p-tx-validator', 2);
const senders = testKeys('p2p-tx-sender', 3);
const genesis = makeGenesis({ validators, alloc: senders.map((s) => [s, 10n ** 12n]) });
const pay = (i: number) => transfer(senders[i]!, testKey('p2p-tx-recipient'), 1000n, 0n);

/** The transaction ids (hex) a peer was sent, by body (TXS) and by announcement (INV_TX). */
function sent(p: RawPeer): { bodies: string[]; ids: string[] } {
  const ofType = <T extends Message['type']>(t: T) => p.received.filter((m): m is Extract<Message, { type: T }> => m.type === t);
  return {
    bodies: ofType(MSG.TXS).flatMap((m) => m.txs.map((b) => toHex(b))),
    ids: ofType(MSG.INV_TX).flatMap((m) => m.ids.map((b) => toHex(b))),
  };
}

test('a peer\'s transaction is announced to the other peers and not sent back; our own is pushed to every peer', async () => {
  const net = new MemNet();
  const node = await startMemNode(net, genesis, testKey('p2p-tx-node'));
  try {
    const a = await RawPeer.join(net, node.url, testKey('p2p-tx-a'), node.chain);
    const b = await RawPeer.join(net, node.url, testKey('p2p-tx-b'), node.chain);
    const relayed = pay(0);
    a.send({ type: MSG.TXS, txs: [relayed.bytes] });
    await until(() => sent(b).ids.includes(relayed.idHex), 5000, 'the relayed transaction announced to b');
    assert.deepEqual(sent(b).bodies, [], 'announced only (txPushFanout 0)');
    const own = pay(1);
    await node.mempool.add(own);
    await until(() => sent(a).bodies.length > 0 && sent(b).bodies.length > 0, 5000, 'our own transaction pushed');
    await sleep(50);
    assert.deepEqual(sent(a), { bodies: [toHex(own.bytes)], ids: [] }, 'a: our transaction\'s body, nothing of its own');
    assert.deepEqual(sent(b), { bodies: [toHex(own.bytes)], ids: [relayed.idHex] });
  } finally {
    await node.stop();
  }
});

test('an announcement of a transaction whose body is being admitted is not fetched', async () => {
  const net = new MemNet();
  const node = await startMemNode(net, genesis, testKey('p2p-tx-node-2'));
  const addMany = node.mempool.addMany.bind(node.mempool);
  let admitting = 0;
  node.mempool.addMany = async (txs, opts) => { admitting++; await sleep(300); return addMany(txs, opts); };
  try {
    const a = await RawPeer.join(net, node.url, testKey('p2p-tx-c'), node.chain);
    const b = await RawPeer.join(net, node.url, testKey('p2p-tx-d'), node.chain);
    const tx = pay(0);
    a.send({ type: MSG.TXS, txs: [tx.bytes] });
    await until(() => admitting === 1, 5000, 'admission started');
    const other = pay(2);
    b.send({ type: MSG.INV_TX, ids: [tx.id, other.id] });
    const get = await b.next(MSG.GET_TX);
    assert.deepEqual(get.ids.map((x) => toHex(x)), [other.idHex], 'only the transaction not being admitted is fetched');
    await until(() => node.mempool.has(tx.idHex), 5000, 'admitted');
    await sleep(50);
    assert.equal(b.count(MSG.GET_TX), 1);
  } finally {
    await node.stop();
  }
});
