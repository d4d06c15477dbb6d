/**
 * Per-peer inbound queues (src/p2p/inbound.ts) on in-process networks (test/helpers/memnet.ts: real Network,
 * Chain (memory-level) and Mempool objects over in-memory pipes that honour pause/resume like TCP): a node
 * that processes a peer's valid traffic slower than it arrives pauses that peer instead of penalising it;
 * invalid traffic is still penalised; memory stays bounded without flow control.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHex } from '../../../src/encoding/bytes.js';
import type { Tx } from '../../../src/ledger/tx.js';
import { MSG } from '../../../src/p2p/messages.js';
import type { NetLimits } from '../../../src/p2p/network.js';
import { encodeCanonical } from '../../../src/encoding/canonical.js';
import { makeGenesis, testKey, testKeys, transfer } from '../../helpers/fixtures.js';
import { MemNet, RawPeer, startMemNode, until, type MemNode } from '../../helpers/memnet.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const validators = testKeys('p2p-validator', 2);
const senders = testKeys('p2p-sender', 20);
const genesis = makeGenesis({ validators, alloc: senders.map((s) => [s, 10n ** 12n]) });

/** `n` valid transfers: up to 30 nonces per sender (within the mempool's per-sender limit). */
function validTxs(n: number): Tx[] {
  return Array.from({ length: n }, (_, i) => transfer(senders[i % senders.length]!, testKey('p2p-recipient', i % 7), 1000n, BigInt(Math.floor(i / senders.length))));
}

/**
 * A node whose mempool admission is slow: each TXS message takes ≥ `ms` to process (an overloaded node).
 * The tx reactor admits a message's transactions with one Mempool.addMany call, so that is what waits.
 */
async function slowNode(net: MemNet, ms: number, limits?: Partial<NetLimits>): Promise<MemNode> {
  const n = await startMemNode(net, genesis, testKey('p2p-node', 0), { limits });
  const addMany = n.mempool.addMany.bind(n.mempool);
  n.mempool.addMany = async (txs, opts) => { await sleep(ms); return addMany(txs, opts); };
  return n;
}

test('overload: a peer flooding valid transactions faster than we process them is paused, not penalised or banned', async () => {
  const net = new MemNet();
  const node = await slowNode(net, 3);
  try {
    const penalties: { rule: string; score: number }[] = [];
    node.network.on('peer:penalized', (p) => { penalties.push(p); });
    const bans: unknown[] = [];
    node.network.on('peer:banned', (b) => bans.push(b));
    const key = testKey('p2p-flooder');
    const peer = await RawPeer.join(net, node.url, key, node.chain);
    const txs = validTxs(600);
    // 600 TXS messages at once, one transaction each: far more than a 256-message queue would hold, and each
    // takes ≥ 3 ms here, so the node is ~2 s behind the sender.
    for (const tx of txs) peer.send({ type: MSG.TXS, txs: [tx.bytes] });
    let maxQueued = 0;
    await until(() => {
      const p = node.network.readyPeers()[0];
      if (p) maxQueued = Math.max(maxQueued, node.network.inboundBacklog(p).queued);
      return penalties.length > 0 || txs.every((t) => node.mempool.has(t.idHex));
    }, 60_000, 'every flooded transaction admitted (or a penalty)');
    const rules = () => penalties.map((p) => p.rule);
    assert.deepEqual(rules(), [], 'no penalty for valid traffic we were too slow to process');
    assert.deepEqual(bans, []);
    assert.ok(node.network.isConnected(toHex(key.publicKey)), 'the flooding peer is still connected');
    const server = peer.conn.other;
    assert.ok(server.pauses >= 1, 'the node paused the peer (back-pressure)');
    assert.ok(!server.paused, 'and resumed it once the backlog drained');
    const lim = node.network.limits.inbound;
    assert.ok(maxQueued <= lim.pauseMsgs + 32, `backlog stayed near the pause mark: max ${maxQueued}`);
    assert.equal(node.network.stats.inboundDropped, 0, 'nothing dropped: flow control held the sender');

    // Real protections stay: an invalid transaction (bad signature) is still penalised.
    const bad = transfer(senders[0]!, testKey('p2p-recipient', 1), 5n, 999n);
    const sig = new Uint8Array(bad.signature);
    sig[0]! ^= 0xff;
    const badBytes = encodeCanonical([1, bad.chainId, bad.from, bad.to, bad.amount, bad.fee, bad.nonce, bad.memo, sig]);
    peer.send({ type: MSG.TXS, txs: [badBytes] });
    await until(() => penalties.length > 0, 10_000, 'penalty for an invalid transaction');
    assert.deepEqual(rules(), ['invalid_tx']);
  } finally {
    await node.stop();
  }
});

test('overload without flow control: the queue stays bounded, excess is dropped unpenalised', async () => {
  const net = new MemNet();
  const node = await slowNode(net, 2, { inbound: { pauseMsgs: 8, pauseBytes: 1 << 20, resumeMsgs: 2, resumeBytes: 1 << 18, maxMsgs: 40, maxBytes: 1 << 22 } });
  try {
    const penalties: unknown[] = [];
    node.network.on('peer:penalized', (p) => penalties.push(p));
    const peer = await RawPeer.join(net, node.url, testKey('p2p-flooder-2'), node.chain);
    peer.conn.other.ignorePause = true; // the node's pause has no effect on this connection
    const txs = validTxs(300);
    let maxQueued = 0;
    for (const tx of txs) peer.send({ type: MSG.TXS, txs: [tx.bytes] });
    await until(() => {
      const p = node.network.readyPeers()[0];
      if (p) maxQueued = Math.max(maxQueued, node.network.inboundBacklog(p).queued);
      return peer.conn.other.inbox.length === 0 && p && node.network.inboundBacklog(p).queued === 0;
    }, 30_000, 'all frames read and the queue drained');
    assert.ok(maxQueued <= 40, `queue bounded by maxMsgs: ${maxQueued}`);
    assert.ok(node.network.stats.inboundDropped > 0, 'the excess was dropped');
    assert.deepEqual(penalties, [], 'without penalty');
  } finally {
    await node.stop();
  }
});
