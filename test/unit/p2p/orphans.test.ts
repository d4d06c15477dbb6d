/**
 * Orphan blocks (issue #17, item 3): the pool is bounded in count and bytes, in total and per peer, before a
 * block is kept; a flooding peer displaces only its own orphans; and only blocks signed by their slot's
 * validator get there at all (an unsigned orphan costs its sender and is not kept), on an in-process network.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHex } from '../../../src/encoding/bytes.js';
import { makeBlock, signHeader, type Block } from '../../../src/ledger/block.js';
import { merkleRoot } from '../../../src/ledger/merkle.js';
import { slotStart } from '../../../src/ledger/schedule.js';
import { MSG } from '../../../src/p2p/messages.js';
import { OrphanPool } from '../../../src/p2p/orphans.js';
import type { Peer } from '../../../src/p2p/peer.js';
import { makeGenesis, testKey, testKeys, transfer } from '../../helpers/fixtures.js';
import { MemNet, RawPeer, startMemNode, until } from '../../helpers/memnet.js';

const validators = testKeys('orphan-validator', 2);
const payer = testKey('orphan-payer');
const genesis = makeGenesis({ validators, alloc: [[payer, 10n ** 12n]] });

/** A block of height `height` in `slot` on an unknown parent, with `txs` transfers (to vary its size), signed by `signer`. */
function orphanBlock(slot: number, txs: number, signer = validators[slot % validators.length]!, parentByte = 0x99): Block {
  const list = Array.from({ length: txs }, (_, i) => transfer(payer, validators[0]!, 1n + BigInt(i), BigInt(i)));
  const header = signHeader({
    chainId: genesis.chainId, height: 5, slot, parentHash: new Uint8Array(32).fill(parentByte), timestamp: slotStart(genesis, slot),
    txRoot: merkleRoot(list.map((t) => t.id)), stateRoot: new Uint8Array(32), proposer: validators[slot % validators.length]!.publicKey,
  }, signer.secretKey);
  return makeBlock(header, list);
}

const peer = (name: string) => ({ label: name }) as unknown as Peer;

test('the pool: per-peer count and bytes, total count and bytes; the heaviest peer pays for room', () => {
  const a = peer('a'), b = peer('b'), c = peer('c');
  const small = orphanBlock(10, 0);
  const size = small.bytes.length;
  const pool = new OrphanPool({ orphanLimit: 6, orphanBytes: 100 * size, orphanPerPeer: 3, orphanBytesPerPeer: 100 * size });
  const blocks = Array.from({ length: 12 }, (_, i) => orphanBlock(10 + i, 0));
  // a's fourth orphan evicts a's oldest, never someone else's.
  for (let i = 0; i < 4; i++) assert.ok(pool.add({ block: blocks[i]!, from: a, via: 'gossip' }));
  assert.deepEqual(pool.heldFor(a), { count: 3, bytes: 3 * size });
  assert.equal(pool.takeChildrenOf(toHex(blocks[0]!.header.parentHash)).length, 3, 'three kept (blocks 1-3), block 0 evicted');
  for (let i = 0; i < 3; i++) pool.add({ block: blocks[i]!, from: a, via: 'gossip' });
  for (let i = 3; i < 5; i++) pool.add({ block: blocks[i]!, from: b, via: 'gossip' });
  // Total 6: c's first orphan makes room by evicting from the peer holding the most bytes (a).
  pool.add({ block: blocks[5]!, from: c, via: 'gossip' });
  assert.equal(pool.size, 6);
  pool.add({ block: blocks[6]!, from: c, via: 'gossip' });
  assert.equal(pool.size, 6);
  assert.deepEqual([pool.heldFor(a).count, pool.heldFor(b).count, pool.heldFor(c).count], [2, 2, 2]);
  assert.equal(pool.evicted, 2);
  pool.dropPeer(c);
  assert.deepEqual(pool.heldFor(c), { count: 0, bytes: 0 });
  assert.equal(pool.size, 4);
});

test('the pool: byte budgets bind before counts; a block larger than a peer\'s share is not kept', () => {
  const a = peer('a'), b = peer('b');
  const big = orphanBlock(20, 8);
  const small = orphanBlock(21, 0);
  const pool = new OrphanPool({ orphanLimit: 100, orphanBytes: 3 * big.bytes.length, orphanPerPeer: 100, orphanBytesPerPeer: 2 * big.bytes.length });
  const huge = orphanBlock(22, 30);
  assert.ok(huge.bytes.length > 2 * big.bytes.length);
  assert.equal(pool.add({ block: huge, from: a, via: 'gossip' }), false, 'larger than a peer\'s whole share: not kept');
  assert.equal(pool.size, 0);
  for (let s = 30; s < 34; s++) pool.add({ block: orphanBlock(s, 8), from: a, via: 'gossip' });
  assert.ok(pool.heldFor(a).bytes <= 2 * big.bytes.length, 'a stays within its byte share');
  for (let s = 40; s < 44; s++) pool.add({ block: orphanBlock(s, 8), from: b, via: 'gossip' });
  assert.ok(pool.bytes <= 3 * big.bytes.length, `total within budget: ${pool.bytes}`);
  assert.ok(pool.heldFor(b).count >= 1);
  assert.ok(pool.add({ block: small, from: b, via: 'gossip' }));
});

test('an orphan not signed by its slot\'s validator is refused and charged; a signed one waits and connects after its parent', async () => {
  const net = new MemNet();
  const node = await startMemNode(net, genesis, testKey('orphan-node'));
  try {
    const attackerKey = testKey('orphan-attacker');
    const attacker = await RawPeer.join(net, node.url, attackerKey, node.chain);
    const forged = orphanBlock(30, 2, attackerKey);
    attacker.send({ type: MSG.BLOCK, block: forged.bytes });
    await until(() => node.logs.some((e) => e.msg === 'peer penalized' && e.peer === toHex(attackerKey.publicKey).slice(0, 12) && /bad_signature/.test(String(e.detail))), 5000, 'the unsigned orphan is charged');
    assert.equal(node.chain.isInvalid(forged.header.hashHex), 'known_invalid', 'a forged header is remembered under its own hash');

    // Honest parent and child; the child arrives first.
    const { openTestChain, buildBlock } = await import('../../helpers/fixtures.js');
    const builder = await openTestChain(genesis);
    const parent = await buildBlock(builder.chain, validators, 1);
    await builder.chain.addBlock(parent);
    const child = await buildBlock(builder.chain, validators, 2);
    const honest = await RawPeer.join(net, node.url, testKey('orphan-honest'), node.chain);
    honest.send({ type: MSG.BLOCK, block: child.bytes });
    await until(() => node.network.orphanCount() === 1, 5000, 'the signed orphan is kept');
    honest.send({ type: MSG.BLOCK, block: parent.bytes });
    await until(() => node.chain.head.hashHex === child.header.hashHex, 5000, 'the orphan connects after its parent');
    assert.equal(node.network.orphanCount(), 0);
    await builder.chain.close();
  } finally {
    await node.stop();
  }
});
