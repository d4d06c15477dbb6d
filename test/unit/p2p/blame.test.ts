/**
 * Blame only what is proven, remember only what is intrinsic (issue #17, item 1), on in-process networks:
 *   - a genuine signed header sent with another body (a mutated copy) is refused as bad_tx_root, its sender
 *     pays, and nothing is remembered under the header's hash: the honest block, pushed or announced later by
 *     an honest peer, is accepted, and that peer is charged nothing;
 *   - a syncing node charges a bad block to the peer that delivered its bytes, never to the peer that merely
 *     listed its hash, and finishes the sync from the honest peers;
 *   - a block a node found invalid is not served by it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHex } from '../../../src/encoding/bytes.js';
import { makeBlock, type Block } from '../../../src/ledger/block.js';
import { MSG } from '../../../src/p2p/messages.js';
import { compactKey, packShortIds } from '../../../src/p2p/compact.js';
import { buildBlock, extend, makeGenesis, openTestChain, testKey, testKeys, transfer } from '../../helpers/fixtures.js';
import { MemNet, RawPeer, startMemNode, until, type MemNode } from '../../helpers/memnet.js';

const validators = testKeys('blame-validator', 2);
const payers = testKeys('blame-payer', 4);
const genesis = makeGenesis({ validators, alloc: payers.map((p) => [p, 10n ** 12n]) });

/** The same header over a different body: one junk (but validly signed) transfer. */
function mutated(b: Block): Block {
  return makeBlock(b.header, [transfer(payers[3]!, payers[2]!, 1n, 99n)]);
}

const penalties = (n: MemNode, peer: string) => n.logs.filter((e) => e.msg === 'peer penalized' && e.peer === peer.slice(0, 12));

test('a mutated body does not condemn the header: its sender pays, the honest block is accepted from an honest peer', async () => {
  const net = new MemNet();
  const node = await startMemNode(net, genesis, testKey('blame-node'));
  try {
    const builder = await openTestChain(genesis);
    const genuine = await buildBlock(builder.chain, validators, 1, [transfer(payers[0]!, payers[1]!, 5n, 0n)]);
    const attackerKey = testKey('blame-attacker');
    const honestKey = testKey('blame-honest');
    const attacker = await RawPeer.join(net, node.url, attackerKey, node.chain);
    const honest = await RawPeer.join(net, node.url, honestKey, node.chain);

    attacker.send({ type: MSG.BLOCK, block: mutated(genuine).bytes });
    await until(() => penalties(node, toHex(attackerKey.publicKey)).length > 0, 5000, 'the mutated copy is charged to its sender');
    assert.match(String(penalties(node, toHex(attackerKey.publicKey))[0]!.detail), /bad_tx_root/);
    assert.equal(node.chain.isInvalid(genuine.header.hashHex), undefined, 'nothing is remembered under the header hash');

    // The honest peer announces the genuine block: it is fetched (not skipped as known invalid) and connected.
    honest.send({ type: MSG.INV_BLOCK, hash: genuine.header.hash, height: 1 });
    const ask = await honest.next(MSG.GET_CMPCT);
    honest.send({
      type: MSG.CMPCT_BLOCK, reqId: ask.reqId, header: genuine.header.bytes, shortIds: packShortIds(compactKey(genuine.header.hash), genuine.txs),
      prefilled: genuine.txs.map((t, i) => [i, t.bytes] as [number, Uint8Array]),
    });
    await until(() => node.chain.head.hashHex === genuine.header.hashHex, 5000, 'the honest block connects');
    assert.deepEqual(penalties(node, toHex(honestKey.publicKey)), [], 'the honest peer is charged nothing');

    await builder.chain.close();
  } finally {
    await node.stop();
  }
});

test('sync charges a bad block to the peer that delivered its bytes, not to the one that listed its hash', async () => {
  const net = new MemNet();
  const source = await startMemNode(net, genesis, testKey('blame-source'));
  const fresh = await startMemNode(net, genesis, testKey('blame-fresh'));
  try {
    const blocks = await extend(source.chain, validators, 40, (i) => (i < 4 ? [transfer(payers[i]!, payers[(i + 1) % 4]!, 7n, 0n)] : []));
    const tip = source.chain.head;
    // A range provider that states the same head, lists the same hashes, and serves mutated bodies.
    const byHash = new Map(blocks.map((b) => [b.header.hashHex, b]));
    let served = 0;
    const liarKey = testKey('blame-liar');
    await RawPeer.join(net, fresh.url, liarKey, fresh.chain, {
      head: { height: tip.height, hash: tip.hash },
      onMessage: (m, p) => {
        if (m.type === MSG.GET_HASHES) {
          p.send({ type: MSG.HASHES, reqId: m.reqId, forkHeight: 0, hashes: blocks.slice(0, m.max).map((b) => b.header.hash) });
        } else if (m.type === MSG.GET_BLOCKS) {
          const out = m.hashes.map((h) => byHash.get(toHex(h))).filter((b): b is Block => !!b).map((b) => mutated(b).bytes);
          served += out.length;
          p.send({ type: MSG.BLOCKS, reqId: m.reqId, blocks: out });
        }
      },
    });
    fresh.network.connect(source.url);
    await until(() => fresh.chain.head.hashHex === tip.hashHex, 30_000, 'the fresh node reaches the honest tip');
    assert.ok(served > 0, 'the liar was asked for ranges and served mutated bodies');
    const liar = penalties(fresh, toHex(liarKey.publicKey));
    assert.ok(liar.length > 0 && liar.every((e) => /bad_tx_root/.test(String(e.detail))), `the liar is charged for the bytes it sent: ${JSON.stringify(liar)}`);
    assert.deepEqual(penalties(fresh, source.network.nodeIdHex), [], 'the honest peer is charged nothing');
    for (const b of blocks) assert.equal(fresh.chain.isInvalid(b.header.hashHex), undefined, `block ${b.header.height} is not remembered as invalid`);
  } finally {
    await fresh.stop();
    await source.stop();
  }
});

test('a block the node found invalid is not served to peers', async () => {
  const net = new MemNet();
  const node = await startMemNode(net, genesis, testKey('blame-server'));
  try {
    const builder = await openTestChain(genesis);
    const good = await extend(builder.chain, validators, 2);
    for (const b of good) await node.chain.addBlock(b);
    // A block on top whose state root is wrong: stored (its signature and stateless rules pass), then marked.
    const bad = await buildBlock(node.chain, validators, node.chain.head.slot + 1, [transfer(payers[0]!, payers[1]!, 1n, 0n)]);
    const { resignBlock } = await import('../../helpers/fixtures.js');
    const forged = resignBlock(bad, { stateRoot: new Uint8Array(32).fill(9) }, validators);
    await assert.rejects(node.chain.addBlock(forged));
    assert.equal(node.chain.isInvalid(forged.header.hashHex), 'bad_state_root');
    const asker = await RawPeer.join(net, node.url, testKey('blame-asker'), node.chain);
    asker.send({ type: MSG.GET_BLOCKS, reqId: 7, hashes: [good[0]!.header.hash, forged.header.hash] });
    const res = await asker.next(MSG.BLOCKS);
    assert.equal(res.blocks.length, 1, 'the valid block is served, the invalid one is not');
    await builder.chain.close();
  } finally {
    await node.stop();
  }
});
