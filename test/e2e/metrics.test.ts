/**
 * Metrics end to end: real node processes, GET /metrics over real HTTP on the RPC port.
 *   - a validator: the key series exist, the height and head-slot gauges lie between getChainInfo read just
 *     before and just after the scrape, height and blocks produced move, a transaction sent by JSON-RPC
 *     moves the accepted counter, one refused moves rejected{reason}, the store write histogram fills;
 *   - a follower joining late syncs (sync counters, "sync progress"/"sync finished" log lines with rates)
 *     and its gossip and peer series move;
 *   - `--no-metrics` turns the endpoint off (404) and leaves JSON-RPC alone (it serves the genesis state).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, freePorts, scaled, signTransfer, type NodeProc } from '../../harness/proc.js';

/** Scrape a node: the content type and name{labels} → value. */
async function scrape(n: NodeProc): Promise<{ contentType: string; values: Map<string, number>; text: string }> {
  const res = await fetch(`http://127.0.0.1:${n.rpcPort}/metrics`, { signal: AbortSignal.timeout(scaled(10_000)) });
  assert.equal(res.status, 200);
  const text = await res.text();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    values.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return { contentType: res.headers.get('content-type') ?? '', values, text };
}

const get = (v: Map<string, number>, k: string): number => {
  const x = v.get(k);
  assert.ok(x !== undefined, `series ${k} missing`);
  return x;
};

test('GET /metrics on a real node: series exist and move; a late follower syncs; --no-metrics', { timeout: scaled(120_000) }, async (t) => {
  const h = new Harness(t);
  const v = await h.keygen('validator');
  const f = await h.keygen('faucet');
  const bob = await h.keygen('bob');
  const g = await h.genesis({ validators: [v], alloc: [[f.address, 10n ** 12n]], slotMs: 100 });
  const [p2pA] = await freePorts(1);
  const A = await h.startNode({ name: 'validator', genesis: g.file, key: v.file, p2pPort: p2pA });
  await h.waitForHeight(A, 2);

  // The chain gauges are the chain's own: between what getChainInfo says just before and just after the scrape.
  const ci1a = await A.rpc('getChainInfo');
  const s1 = await scrape(A);
  const ci1b = await A.rpc('getChainInfo');
  assert.match(s1.contentType, /^text\/plain; version=0\.0\.4/);
  for (const k of [
    'meshledger_chain_height', 'meshledger_chain_head_slot', 'meshledger_chain_clock_slot', 'meshledger_blocks_produced_total',
    'meshledger_mempool_transactions', 'meshledger_mempool_bytes', 'meshledger_mempool_accepted_total', 'meshledger_peers{direction="inbound"}',
    'meshledger_gossip_tx_bodies_received_total', 'meshledger_sync_active', 'meshledger_verify_queue_depth', 'meshledger_db_write_seconds_count{op="batch"}',
    'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds',
  ]) get(s1.values, k);
  assert.match(s1.text, /meshledger_node_info\{version="[^"]+",chain_id="meshledger-devnet",validator="true"\} 1/);
  const tracks = (ci: [any, any], s: { values: Map<string, number> }, where: string): void => {
    const [a, b] = ci;
    const height = get(s.values, 'meshledger_chain_height');
    const slot = get(s.values, 'meshledger_chain_head_slot');
    assert.ok(a.height <= height && height <= b.height, `${where}: height gauge ${height}, getChainInfo ${a.height} … ${b.height}`);
    assert.ok(a.headSlot <= slot && slot <= b.headSlot, `${where}: head slot gauge ${slot}, getChainInfo ${a.headSlot} … ${b.headSlot}`);
  };
  tracks([ci1a, ci1b], s1, 'first scrape');
  const h1 = get(s1.values, 'meshledger_chain_height');
  assert.ok(h1 >= 2);
  assert.ok(get(s1.values, 'meshledger_db_write_seconds_count{op="batch"}') > 0, 'block writes were timed');

  // A transfer by JSON-RPC: accepted counter +1, then confirmed.
  const tx = signTransfer({ from: f, to: bob.address, amount: 5, nonce: 0 });
  assert.equal(await A.rpc('sendTransaction', { tx: tx.hex }), tx.id);
  const s2 = await scrape(A);
  assert.equal(get(s2.values, 'meshledger_mempool_accepted_total') - get(s1.values, 'meshledger_mempool_accepted_total'), 1);
  // A refused one (fee below the minimum): rejected{reason} +1.
  const cheap = signTransfer({ from: f, to: bob.address, amount: 5, nonce: 1, fee: 0 });
  await assert.rejects(A.rpc('sendTransaction', { tx: cheap.hex }));
  await h.waitFor(async () => (await A.rpc('getTransaction', { id: tx.id })).status === 'confirmed', scaled(10_000), 'transfer confirmed', [A]);
  const ci3a = await A.rpc('getChainInfo');
  const s3 = await scrape(A);
  const ci3b = await A.rpc('getChainInfo');
  assert.equal(get(s3.values, 'meshledger_mempool_rejected_total{reason="fee_too_low"}'), 1);
  assert.ok(get(s3.values, 'meshledger_chain_height') > h1, 'height moves');
  tracks([ci3a, ci3b], s3, 'after the transfer');
  // The blocks written since the first scrape were timed.
  assert.ok(get(s3.values, 'meshledger_db_write_seconds_count{op="batch"}') > get(s1.values, 'meshledger_db_write_seconds_count{op="batch"}'), 'block writes are timed as they happen');
  assert.ok(get(s3.values, 'meshledger_db_write_seconds_sum{op="batch"}') > get(s1.values, 'meshledger_db_write_seconds_sum{op="batch"}'));
  assert.ok(get(s3.values, 'meshledger_blocks_produced_total') > get(s1.values, 'meshledger_blocks_produced_total'));
  assert.ok(get(s3.values, 'meshledger_chain_txs_confirmed_total') >= 1);
  assert.ok(get(s3.values, 'meshledger_mempool_removed_total{reason="included"}') >= 1);

  // A follower joining ~40 blocks late syncs them; its sync and peer series move, and it logs progress.
  await h.waitForHeight(A, get(s3.values, 'meshledger_chain_height') + 40, scaled(30_000));
  const B = await h.startNode({ name: 'follower', genesis: g.file, bootnodes: [`ws://127.0.0.1:${p2pA}`] });
  const target = (await A.rpc('getChainInfo')).height;
  await h.waitForHeight(B, target, scaled(30_000));
  const sb = await scrape(B);
  assert.ok(get(sb.values, 'meshledger_sync_blocks_total') >= 16, `synced ${sb.values.get('meshledger_sync_blocks_total')} blocks`);
  assert.equal(get(sb.values, 'meshledger_peers{direction="outbound"}'), 1);
  assert.ok(get(sb.values, 'meshledger_sync_target_height') >= target);
  assert.match(sb.text, /meshledger_node_info\{[^}]*validator="false"\} 1/);
  await h.waitFor(async () => get((await scrape(B)).values, 'meshledger_gossip_block_bodies_received_total') > 0, scaled(10_000), 'follower receives gossiped blocks', [B]);
  const done = await h.waitFor(() => B.logEntries().find((e) => e.msg === 'sync finished'), scaled(10_000), '"sync finished" log line', [B]);
  for (const k of ['height', 'target', 'blocks', 'txs', 'blocksPerSec', 'txPerSec', 'seconds']) assert.ok(k in done, `sync finished has ${k}`);
  t.diagnostic(`follower: ${JSON.stringify(done)}`);

  // --no-metrics: no endpoint, JSON-RPC unchanged.
  const C = await h.startNode({ name: 'no-metrics', genesis: g.file, extraArgs: ['--no-metrics'] });
  const res = await fetch(`http://127.0.0.1:${C.rpcPort}/metrics`);
  assert.equal(res.status, 404);
  await res.body?.cancel();
  // It serves this network's genesis state: no key and no peers, so no block beyond genesis.
  const ci = await C.rpc('getChainInfo');
  assert.equal(ci.chainId, ci1a.chainId);
  assert.equal(ci.genesisHash, ci1a.genesisHash);
  assert.equal(ci.height, 0);
  assert.equal(BigInt((await C.rpc('getBalance', { address: f.address })).balance), 10n ** 12n);
});
