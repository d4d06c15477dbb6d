/**
 * The metrics module: events → counters, lazy gauges read at scrape, gossip counters mirrored from the
 * network's stats, mempool rejections by rule, timed store writes, one registry per node.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { register as globalRegistry } from 'prom-client';
import type { ChainEvents } from '../../../src/chain/chain.js';
import type { MempoolEvents } from '../../../src/mempool/mempool.js';
import type { NetEvents } from '../../../src/p2p/network.js';
import type { ProducerEvents } from '../../../src/producer/producer.js';
import { METRIC_NAMES, NodeMetrics, type GossipStats } from '../../../src/metrics/metrics.js';
import { wireMetrics } from '../../../src/node/wiring.js';
import { openMemory, type KV } from '../../../src/storage/kv.js';
import { TypedEmitter } from '../../../src/util/events.js';

class Fake<E extends { [K in keyof E]: (...args: never[]) => void }> extends TypedEmitter<E> {
  fire<K extends keyof E & string>(event: K, ...args: Parameters<E[K]>): void { this.emit(event, ...args); }
}

class FakeChain extends Fake<ChainEvents> { head = { height: 0, slot: 0 }; }
class FakeMempool extends Fake<MempoolEvents> {
  size = 0;
  bytes = 0;
  admitting = 0;
}
class FakeNet extends Fake<NetEvents> {
  stats: GossipStats = { txBodiesIn: 0, txAnnouncementsIn: 0, blockBodiesIn: 0, blockAnnouncementsIn: 0, duplicateTxBodies: 0, duplicateBlockBodies: 0, bans: 0 };
  peers: { outbound: boolean }[] = [];
  sync = { status: { syncing: false, height: 0, target: 0 }, blocksSynced: 0, txsSynced: 0 };
  readyPeers() { return this.peers; }
}

/** name{labels} → value from the text exposition. */
async function values(m: NodeMetrics): Promise<Map<string, number>> {
  const { body } = await m.scrape();
  const out = new Map<string, number>();
  for (const line of body.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

const block = (txs: number) => ({ txs: new Array(txs).fill({}) }) as unknown as Parameters<ChainEvents['block:connected']>[0];

test('events move the counters; gauges are read at scrape time', async () => {
  const m = new NodeMetrics({ info: { version: '9.9.9', chainId: 'c', validator: true }, clockSlot: () => 42, verifyQueueDepth: () => 7 });
  const chain = new FakeChain();
  const mempool = new FakeMempool();
  const producer = new Fake<ProducerEvents>();
  const net = new FakeNet();
  wireMetrics(m, { chain, mempool, producer, network: net });

  let v = await values(m);
  for (const name of ['meshledger_chain_height', 'meshledger_blocks_connected_total', 'meshledger_mempool_accepted_total', 'meshledger_blocks_produced_total', 'meshledger_gossip_tx_bodies_received_total']) {
    assert.equal(v.get(name), 0, name);
  }
  assert.equal(v.get('meshledger_node_info{version="9.9.9",chain_id="c",validator="true"}'), 1);

  chain.head = { height: 5, slot: 8 };
  chain.fire('block:connected', block(3));
  chain.fire('block:connected', block(0));
  chain.fire('block:disconnected', block(1));
  chain.fire('chain:reorg', { disconnected: [block(0), block(0), block(0)], connected: [], forkHeight: 2 } as unknown as Parameters<ChainEvents['chain:reorg']>[0]);
  chain.fire('block:invalid', { hash: 'h', rule: 'bad_state_root', message: '' });
  chain.fire('chain:equivocation', { slot: 1, proposer: 'p', hashes: [], headers: [] });
  mempool.size = 2;
  mempool.bytes = 321;
  mempool.admitting = 7;
  mempool.fire('tx:accepted', {} as never);
  mempool.fire('tx:accepted', {} as never);
  mempool.fire('tx:removed', { tx: {} as never, reason: 'included' });
  producer.fire('block:produced', { block: {} as never, slot: 8, status: 'connected' });
  producer.fire('slot:missed', { slot: 4, reason: 'late' });
  producer.fire('slot:missed', { slot: 6, reason: 'error' });
  producer.fire('slot:missed', { slot: 7, reason: 'error' });
  net.peers = [{ outbound: true }, { outbound: true }, { outbound: false }];
  net.fire('peer:connected', { nodeId: 'a', address: 'x', direction: 'inbound' });
  net.fire('peer:banned', { nodeId: 'a', reason: 'r', until: 0 });
  net.stats.txBodiesIn = 10;
  net.stats.duplicateTxBodies = 4;
  net.stats.txAnnouncementsIn = 30;
  net.stats.blockBodiesIn = 2;
  net.sync.status = { syncing: true, height: 5, target: 100 };
  net.sync.blocksSynced = 12;

  v = await values(m);
  const expect: Record<string, number> = {
    meshledger_chain_height: 5, meshledger_chain_head_slot: 8, meshledger_chain_clock_slot: 42, meshledger_chain_empty_slots: 3,
    meshledger_blocks_connected_total: 2, meshledger_chain_txs_confirmed_total: 3, meshledger_blocks_disconnected_total: 1,
    meshledger_reorgs_total: 1, meshledger_reorg_depth_sum: 3, meshledger_reorg_depth_count: 1, 'meshledger_reorg_depth_bucket{le="2"}': 0,
    'meshledger_reorg_depth_bucket{le="3"}': 1, 'meshledger_blocks_invalid_total{rule="bad_state_root"}': 1, meshledger_equivocations_total: 1,
    meshledger_mempool_transactions: 2, meshledger_mempool_bytes: 321, meshledger_mempool_admitting: 7, meshledger_mempool_accepted_total: 2,
    'meshledger_mempool_removed_total{reason="included"}': 1, meshledger_blocks_produced_total: 1,
    'meshledger_slots_missed_total{reason="late"}': 1, 'meshledger_slots_missed_total{reason="error"}': 2,
    'meshledger_peers{direction="outbound"}': 2, 'meshledger_peers{direction="inbound"}': 1,
    'meshledger_peer_events_total{event="connected"}': 1, 'meshledger_peer_events_total{event="banned"}': 1,
    meshledger_gossip_tx_bodies_received_total: 10, meshledger_gossip_tx_duplicate_bodies_total: 4,
    meshledger_gossip_tx_announcements_received_total: 30, meshledger_gossip_block_bodies_received_total: 2,
    meshledger_sync_active: 1, meshledger_sync_target_height: 100, meshledger_sync_blocks_total: 12, meshledger_verify_queue_depth: 7,
  };
  for (const [k, want] of Object.entries(expect)) assert.equal(v.get(k), want, k);

  // Mirrored counters follow the source and never go down; a second scrape does not double count.
  net.stats.txBodiesIn = 15;
  v = await values(m);
  assert.equal(v.get('meshledger_gossip_tx_bodies_received_total'), 15);
  v = await values(m);
  assert.equal(v.get('meshledger_gossip_tx_bodies_received_total'), 15);

  // Every documented name is present in the exposition (TYPE lines), and nothing else with our prefix.
  const { body, contentType } = await m.scrape();
  assert.match(contentType, /^text\/plain; version=0\.0\.4/);
  const typed = new Set([...body.matchAll(/^# TYPE (\S+) /gm)].map((x) => x[1]!));
  for (const name of METRIC_NAMES) assert.ok(typed.has(name), `${name} missing`);
  assert.deepEqual([...typed].filter((n) => n.startsWith('meshledger_')).sort(), [...METRIC_NAMES].sort());
  m.close();
});

test('mempool rejections are counted by rule (tx:rejected)', async () => {
  const m = new NodeMetrics();
  const mempool = new FakeMempool();
  wireMetrics(m, { mempool });
  mempool.fire('tx:rejected', { id: 'a', rule: 'nonce_too_low' });
  mempool.fire('tx:rejected', { id: 'b', rule: 'nonce_too_low' });
  mempool.fire('tx:rejected', { id: 'c', rule: 'bad_signature' });
  const v = await values(m);
  assert.equal(v.get('meshledger_mempool_rejected_total{reason="nonce_too_low"}'), 2);
  assert.equal(v.get('meshledger_mempool_rejected_total{reason="bad_signature"}'), 1);
  m.close();
});

test('store writes are timed; reads pass through', async () => {
  const m = new NodeMetrics();
  const inner = await openMemory();
  // A store whose writes take at least DELAY ms, so the recorded seconds can be held against the clock.
  const DELAY = 60;
  const sleep = () => new Promise<void>((r) => setTimeout(r, DELAY));
  let reads = 0;
  const slow: KV = {
    get: (k) => { reads++; return inner.get(k); },
    getMany: (ks) => { reads++; return inner.getMany(ks); },
    iterator: (o) => inner.iterator(o),
    close: () => inner.close(),
    put: async (k, val) => { await sleep(); await inner.put(k, val); },
    del: async (k) => { await sleep(); await inner.del(k); },
    batch: async (ops) => { await sleep(); await inner.batch(ops); },
  };
  const kv = m.timeStore(slow);
  await kv.put(Uint8Array.of(1), Uint8Array.of(2));
  await kv.batch([{ type: 'put', key: Uint8Array.of(3), value: Uint8Array.of(4) }, { type: 'del', key: Uint8Array.of(1) }]);
  await kv.del(Uint8Array.of(3));
  assert.equal(await kv.get(Uint8Array.of(1)), undefined);
  assert.deepEqual(await kv.getMany([Uint8Array.of(3)]), [undefined]);
  let v = await values(m);
  assert.equal(reads, 2, 'reads reach the store');
  for (const op of ['put', 'batch', 'del']) {
    assert.equal(v.get(`meshledger_db_write_seconds_count{op="${op}"}`), 1, op);
    // The write's own duration: at least DELAY, so above the 25 ms bucket and in +Inf.
    assert.ok(v.get(`meshledger_db_write_seconds_sum{op="${op}"}`)! >= (DELAY - 5) / 1000, `${op}: ${v.get(`meshledger_db_write_seconds_sum{op="${op}"}`)} s`);
    assert.equal(v.get(`meshledger_db_write_seconds_bucket{le="0.025",op="${op}"}`), 0, op);
    assert.equal(v.get(`meshledger_db_write_seconds_bucket{le="+Inf",op="${op}"}`), 1, op);
  }
  // Another write adds to its operation only: count and sum grow.
  const sum1 = v.get('meshledger_db_write_seconds_sum{op="batch"}')!;
  await kv.batch([{ type: 'put', key: Uint8Array.of(5), value: Uint8Array.of(6) }]);
  v = await values(m);
  assert.equal(v.get('meshledger_db_write_seconds_count{op="batch"}'), 2);
  assert.ok(v.get('meshledger_db_write_seconds_sum{op="batch"}')! >= sum1 + (DELAY - 5) / 1000);
  assert.equal(v.get('meshledger_db_write_seconds_count{op="put"}'), 1);
  assert.equal(v.get('meshledger_db_write_seconds_count{op="del"}'), 1);
  await kv.close();
  m.close();
});

test('each node has its own registry; nothing is registered globally; process metrics only on request', async () => {
  const a = new NodeMetrics();
  const b = new NodeMetrics({ processMetrics: true });
  const chainA = new FakeChain();
  const unwire = wireMetrics(a, { chain: chainA });
  chainA.fire('block:connected', block(1));
  const va = await values(a);
  const vb = await values(b);
  assert.equal(va.get('meshledger_blocks_connected_total'), 1);
  assert.equal(vb.get('meshledger_blocks_connected_total'), 0);
  assert.equal([...va.keys()].some((k) => k.startsWith('process_')), false);
  assert.equal([...vb.keys()].some((k) => k.startsWith('process_cpu')), true);
  assert.equal((await globalRegistry.metrics()).includes('meshledger_'), false);
  // Unwired and closed, events no longer reach it.
  unwire();
  assert.equal(chainA.listenerCount('block:connected'), 0);
  a.close();
  chainA.fire('block:connected', block(1));
  b.close();
});
