/**
 * src/p2p with in-process networks (test/helpers/memnet.ts): real Network, Chain (memory-level) and Mempool
 * objects over in-memory pipes that honour pause/resume like TCP.
 *   - back-pressure: a node that processes a peer's valid traffic slower than it arrives pauses that peer
 *     instead of penalising it; invalid traffic is still penalised; memory stays bounded without flow control;
 *   - a late answer to a timed-out request is dropped without penalty, an unrequested one is penalised;
 *   - a syncing node downloads from several peers, and does not re-broadcast the history it downloads, while
 *     a gossiped tip block is still relayed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHex } from '../../../src/encoding/bytes.js';
import type { Tx } from '../../../src/ledger/tx.js';
import { MSG, type Message } from '../../../src/p2p/messages.js';
import type { NetLimits } from '../../../src/p2p/network.js';
import { DEFAULT_PEER_LIMITS, Peer } from '../../../src/p2p/peer.js';
import { encodeCanonical } from '../../../src/encoding/canonical.js';
import { systemClock } from '../../../src/util/clock.js';
import { buildBlock, extend, makeGenesis, testKey, testKeys, transfer } from '../../helpers/fixtures.js';
import { MemConn, MemNet, RawPeer, startMemNode, until, type MemNode } from '../../helpers/memnet.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const validators = testKeys('p2p-validator', 2);
const senders = testKeys('p2p-sender', 20);
const genesis = makeGenesis({ validators, alloc: senders.map((s) => [s, 10n ** 12n]) });

/** `n` valid transfers: up to 30 nonces per sender (within the mempool's per-sender limit). */
function validTxs(n: number): Tx[] {
  return Array.from({ length: n }, (_, i) => transfer(senders[i % senders.length]!, testKey('p2p-recipient', i % 7), 1000n, BigInt(Math.floor(i / senders.length))));
}

/** A node whose mempool admission is slow: each TXS message takes ≥ `ms` to process (an overloaded node). */
async function slowNode(net: MemNet, ms: number, limits?: Partial<NetLimits>): Promise<MemNode> {
  const n = await startMemNode(net, genesis, testKey('p2p-node', 0), { limits });
  const add = n.mempool.add.bind(n.mempool);
  n.mempool.add = async (tx, opts) => { await sleep(ms); return add(tx, opts); };
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
    // 600 TXS messages at once, one transaction each: far more than the old 256-message queue, and each takes
    // ≥ 3 ms here, so the node is ~2 s behind the sender.
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

test('a late answer to a timed-out request is dropped without penalty; an unrequested one is not', async () => {
  const a = new MemConn('x', false);
  const b = new MemConn('y', true);
  a.other = b;
  b.other = a;
  const peer = new Peer(a, systemClock, DEFAULT_PEER_LIMITS);
  const req = peer.request((reqId) => ({ type: MSG.GET_BLOCKS, reqId, hashes: [] }), MSG.BLOCKS, 10);
  await assert.rejects(req, /timed out/);
  const late: Message = { type: MSG.BLOCKS, reqId: 1, blocks: [] };
  assert.equal(peer.resolve(1, late), 'late');
  assert.equal(peer.resolve(1, late), 'unrequested', 'a second answer to the same request');
  assert.equal(peer.resolve(77, { type: MSG.BLOCKS, reqId: 77, blocks: [] }), 'unrequested');
  const ok = peer.request((reqId) => ({ type: MSG.GET_BLOCKS, reqId, hashes: [] }), MSG.BLOCKS, 5000);
  assert.equal(peer.resolve(2, { type: MSG.HASHES, reqId: 2, forkHeight: 0, hashes: [] }), 'unrequested', 'wrong response type');
  assert.equal(peer.resolve(2, { type: MSG.BLOCKS, reqId: 2, blocks: [] }), 'ok');
  await ok;
  peer.markClosed();
});

test('sync: a fresh node downloads from several peers and does not relay the history it downloads; gossiped tips are relayed', async () => {
  const net = new MemNet();
  const servers: MemNode[] = [];
  let fresh: MemNode | undefined;
  try {
    const BLOCKS = 160;
    const first = await startMemNode(net, genesis, testKey('p2p-server', 0));
    servers.push(first);
    const txs = validTxs(200);
    const blocks = await extend(first.chain, validators, BLOCKS, (i) => (i < 40 ? txs.slice(i * 5, i * 5 + 5) : []));
    for (let s = 1; s < 3; s++) {
      const n = await startMemNode(net, genesis, testKey('p2p-server', s));
      for (const b of blocks) await n.chain.addBlock(b);
      servers.push(n);
    }
    // Serving a block takes a moment (as reading it from disk and sending it does), so the download lasts long
    // enough for the order in which peers become ready to matter.
    for (const s of servers) {
      const getBlockBytes = s.chain.getBlockBytes.bind(s.chain);
      s.chain.getBlockBytes = async (hashes) => { await sleep(2 * hashes.length); return getBlockBytes(hashes); };
    }
    fresh = await startMemNode(net, genesis, testKey('p2p-fresh'));
    // A neighbour at genesis that is connected to the fresh node only: what the fresh node relays reaches it.
    const neighbour = await RawPeer.join(net, fresh.url, testKey('p2p-neighbour'), fresh.chain);
    // The first server is ready before the others (as when peers finish their handshakes a few ms apart): the
    // round starts with one peer, and the others must still get a share of the download.
    fresh.network.connect(servers[0]!.url);
    const f = fresh;
    await until(() => f.network.readyPeers().length === 2, 10_000, 'first server connected');
    await sleep(20);
    for (const s of servers.slice(1)) fresh.network.connect(s.url);
    await until(() => f.chain.head.height === BLOCKS, 60_000, `fresh node at height ${BLOCKS}`);
    assert.equal(f.chain.head.hashHex, first.chain.head.hashHex);

    const rounds = f.logs.filter((e) => e.msg === 'sync round done');
    const sources: Record<string, number> = {};
    for (const r of rounds) for (const [k, v] of Object.entries(r.sources as Record<string, number>)) sources[k] = (sources[k] ?? 0) + v;
    assert.ok(Object.keys(sources).length >= 2, `blocks came from several peers: ${JSON.stringify(sources)}`);

    await sleep(200);
    const relayed = () => neighbour.count(MSG.INV_BLOCK) + neighbour.count(MSG.BLOCK);
    assert.ok(relayed() <= 3, `the fresh node relayed ${relayed()} of the ${BLOCKS} blocks it synced (only the tip may be)`);

    // A new block gossiped at the tip is relayed to the neighbour.
    const before = relayed();
    const tip = await buildBlock(first.chain, validators, first.chain.head.slot + 1);
    await first.chain.addBlock(tip);
    first.network.relayBlock(tip);
    await until(() => f.chain.head.hashHex === tip.header.hashHex, 10_000, 'the fresh node has the new tip');
    await until(() => relayed() > before, 10_000, 'the new tip is relayed to the neighbour');
    const got = neighbour.received.filter((m) => m.type === MSG.INV_BLOCK || m.type === MSG.BLOCK).at(-1)!;
    const hash = got.type === MSG.INV_BLOCK ? toHex(got.hash) : undefined;
    if (hash) assert.equal(hash, tip.header.hashHex);
  } finally {
    await fresh?.stop();
    for (const s of servers) await s.stop();
  }
});

test('address book back-off: 1 s × 2^failures up to 5 minutes, or up to the short cap an isolated node passes', async () => {
  const { AddrBook } = await import('../../../src/p2p/addrbook.js');
  const { openMemory } = await import('../../../src/storage/kv.js');
  const book = new AddrBook(await openMemory());
  const url = 'ws://127.0.0.1:30999';
  book.add(url, 0);
  book.attempt(url, 0);
  for (let i = 0; i < 10; i++) book.failure(url); // 2^10 s > 5 min
  const e = book.get(url)!;
  assert.equal(book.dueForDial(e, 299_999), false);
  assert.equal(book.dueForDial(e, 300_000), true, 'capped at 5 minutes');
  assert.equal(book.dueForDial(e, 7_999, 8_000), false);
  assert.equal(book.dueForDial(e, 8_000, 8_000), true, 'an isolated node retries after the short cap');
  book.failure(url); book.failure(url); book.failure(url); // 2^13 would pass the cap in the exponent too
  assert.equal(book.dueForDial(e, 8_000, 8_000), true);
  book.markSelf(url);
  assert.equal(book.dueForDial(e, 10_000_000, 8_000), false, 'never our own address');
});
