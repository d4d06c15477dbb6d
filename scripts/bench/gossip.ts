/**
 * Gossip efficiency on a local mesh of real node processes (node-main.js: production MeshNode, LevelDB,
 * WebSocket P2P on 127.0.0.1): 20 nodes (4 validators + 16 followers; --smoke: 6 nodes, 2 validators).
 * Node i is given node 0 and node i−1 as bootnodes and discovery does the rest (default peer limits).
 *
 * Load: TXS signed transfers (10 nonces each from TXS/10 senders) sent by JSON-RPC to ONE follower at
 * RATE tx/s (small batches every 50 ms). Every node is subscribed over WebSocket to `pendingTransactions`,
 * so the benchmark sees, with its own clock, when each transaction enters each node's mempool. A node that
 * never sees one pending (it came in a block first) is checked with getTransaction.
 *
 * Figures from every node's /metrics, as the difference between a scrape before the load and one after all
 * transactions reached all nodes (plus a 2 s settle for late duplicates):
 *   - tx body copies per receiving node per tx = Σ gossip_tx_bodies_received / ((N − 1) · TXS): the
 *     source node needs no copy, every other node needs exactly one, so 1.0 is the floor (target ≤ 1.5;
 *     gossipsub is about 6 per delivery);
 *   - duplicate share = Σ duplicate bodies / Σ bodies;
 *   - tx announcements (INV ids) received per node per tx = Σ announcements / (N · TXS), against the
 *     mean peer count (the most a node can get if every peer announces every tx);
 *   - block body copies per receiving node per block = Σ gossip_block_bodies_received / ((N − 1) · blocks)
 *     for the blocks produced in the window (sync-fetched blocks are not counted), and block announcements
 *     per node per block;
 *   - time for a tx to reach 100 % of nodes: max over nodes of (pending notification − send time), p50/p99
 *     over all transactions, against the slot time.
 * Run: node dist/scripts/bench/gossip.js [--smoke]    Writes scripts/bench/results/gossip.json.
 */
import path from 'node:path';
import WebSocket from 'ws';
import { toHex } from '../../src/encoding/bytes.js';
import type { Tx } from '../../src/ledger/tx.js';
import { writeKeyFile } from '../../src/crypto/keyfile.js';
import { freePorts, rpc } from '../../harness/proc.js';
import { SMOKE, nowMs, printRows, row, sleep, writeResult } from './common.js';
import { makeAccounts, makeGenesis, rmDir, tmpDir, transfer, writeGenesisJson, type Account } from './fixtures.js';
import { startBenchNode, type BenchNode } from './nodeproc.js';

const N = SMOKE ? 6 : 20;
const VALIDATORS = SMOKE ? 2 : 4;
const TXS = SMOKE ? 200 : 1000;
const PER_SENDER = 10;
const RATE = 100; // tx/s
const TICK_MS = 50;
const SLOT_MS = 1000;
/** Block phase: transfers at BLOCK_RATE tx/s for BLOCK_SECS, into one follower (warm mempools: gossip runs ahead of blocks). */
const BLOCK_RATE = SMOKE ? 200 : 1000;
const BLOCK_SECS = SMOKE ? 3 : 8;

const url = (p2pPort: number) => `ws://127.0.0.1:${p2pPort}`;

async function scrape(rpcPort: number): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${rpcPort}/metrics`, { signal: AbortSignal.timeout(10_000) });
  if (res.status !== 200) throw new Error(`/metrics on ${rpcPort}: HTTP ${res.status}`);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

const SERIES = {
  txBodies: 'meshledger_gossip_tx_bodies_received_total',
  txDup: 'meshledger_gossip_tx_duplicate_bodies_total',
  txInv: 'meshledger_gossip_tx_announcements_received_total',
  blockBodies: 'meshledger_gossip_block_bodies_received_total',
  blockDup: 'meshledger_gossip_block_duplicate_bodies_total',
  blockInv: 'meshledger_gossip_block_announcements_received_total',
  synced: 'meshledger_sync_blocks_total',
} as const;
type Counts = Record<keyof typeof SERIES, number>;
const SERIES_B = {
  blockBodies: 'meshledger_gossip_block_bodies_received_total',
  blockBytes: 'meshledger_gossip_block_bytes_received_total',
  compact: 'meshledger_gossip_compact_blocks_received_total',
  requested: 'meshledger_gossip_block_txs_requested_total',
} as const;
type CountsB = Record<keyof typeof SERIES_B, number>;
const countsB = (m: Map<string, number>): CountsB =>
  Object.fromEntries(Object.entries(SERIES_B).map(([k, name]) => [k, m.get(name) ?? 0])) as CountsB;
/** A block's bytes beyond its transactions' own and their framing: the header and the list headers (≈). */
const BLOCK_OVERHEAD = 300;
const counts = (m: Map<string, number>): Counts =>
  Object.fromEntries(Object.entries(SERIES).map(([k, name]) => [k, m.get(name) ?? 0])) as Counts;

function pct(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Subscribe to pendingTransactions; `seen` gets id → first arrival time (bench clock). */
async function watchPending(rpcPort: number, seen: Map<string, number>): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${rpcPort}/`);
  await new Promise<void>((res, rej) => { ws.once('open', () => res()); ws.once('error', rej); });
  const ack = new Promise<void>((res, rej) => {
    ws.on('message', (data) => {
      const t = nowMs();
      const m = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: unknown; method?: string; params?: { result?: { id?: string } } };
      if (m.id === 1) return m.error ? rej(new Error(JSON.stringify(m.error))) : res();
      const id = m.method === 'subscription' ? m.params?.result?.id : undefined;
      if (id && !seen.has(id)) seen.set(id, t);
    });
  });
  ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'subscribe', params: { topic: 'pendingTransactions' } }));
  await ack;
  return ws;
}

/** Subscribe to newHeads; `seen` gets block hash → first notification time (bench clock). */
async function watchHeads(rpcPort: number, seen: Map<string, number>): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${rpcPort}/`);
  await new Promise<void>((res, rej) => { ws.once('open', () => res()); ws.once('error', rej); });
  const ack = new Promise<void>((res, rej) => {
    ws.on('message', (data) => {
      const t = nowMs();
      const m = JSON.parse(String(data)) as { id?: number; error?: unknown; method?: string; params?: { result?: { hash?: string } } };
      if (m.id === 1) return m.error ? rej(new Error(JSON.stringify(m.error))) : res();
      const h = m.method === 'subscription' ? m.params?.result?.hash : undefined;
      if (h && !seen.has(h)) seen.set(h, t);
    });
  });
  ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'subscribe', params: { topic: 'newHeads' } }));
  await ack;
  return ws;
}

const dir = tmpDir('gossip');
const nodes: BenchNode[] = [];
const sockets: WebSocket[] = [];
try {
  // ---- network: genesis, keys, N processes
  const validators = makeAccounts('gossip-validator', VALIDATORS);
  const senders = makeAccounts('gossip-sender', TXS / PER_SENDER);
  const sink = makeAccounts('gossip-sink', 1)[0]!;
  const genesis = makeGenesis(validators, senders, 10n ** 12n, { genesisTime: Date.now(), slotMs: SLOT_MS });
  const genesisFile = path.join(dir, 'genesis.json');
  writeGenesisJson(genesisFile, genesis);
  const keyFiles = await Promise.all(validators.map(async (v: Account, i) => {
    const f = path.join(dir, `validator-${i}.json`);
    await writeKeyFile(f, { secretKey: v.sk, publicKey: v.pk, address: v.address });
    return f;
  }));
  const ports = await freePorts(2 * N);
  const p2p = ports.slice(0, N);
  const rpcPorts = ports.slice(N);
  const t0 = nowMs();
  nodes.push(...await Promise.all(Array.from({ length: N }, (_, i) => startBenchNode({
    dir, genesisFile, name: `n${i}`, p2pPort: p2p[i], rpcPort: rpcPorts[i], key: keyFiles[i],
    bootnodes: i === 0 ? [] : [...new Set([url(p2p[0]!), url(p2p[i - 1]!)])],
  }))));
  console.log(`${N} nodes (${VALIDATORS} validators) started in ${((nowMs() - t0) / 1000).toFixed(1)} s`);

  // ---- wait for the mesh: every node has peers and the peer counts stop changing for 3 s
  let degrees: number[] = [];
  let stableSince = nowMs();
  for (const start = nowMs(); ;) {
    const d = await Promise.all(nodes.map(async (n) => ((await rpc(n.rpcPort, 'getPeers')) as unknown[]).length));
    if (d.join() !== degrees.join()) { degrees = d; stableSince = nowMs(); }
    if (Math.min(...d) >= Math.min(4, N - 1) && nowMs() - stableSince > 3000) break;
    if (nowMs() - start > 90_000) throw new Error(`mesh did not settle: peer counts ${d.join(',')}`);
    await sleep(250);
  }
  const meanDegree = degrees.reduce((s, x) => s + x, 0) / N;
  console.log(`mesh: peers per node ${degrees.join(',')} (mean ${meanDegree.toFixed(1)}), settled after ${((nowMs() - t0) / 1000).toFixed(1)} s`);

  // ---- watchers, baseline
  const seen = nodes.map(() => new Map<string, number>());
  sockets.push(...await Promise.all(nodes.map((n, i) => watchPending(n.rpcPort, seen[i]!))));
  const h0 = (await rpc(nodes[0]!.rpcPort, 'getChainInfo')).height as number;
  const before = await Promise.all(nodes.map((n) => scrape(n.rpcPort).then(counts)));

  // ---- load: TXS transfers to the last node (a follower), RATE tx/s
  const txs: Tx[] = [];
  for (let r = 0; r < PER_SENDER; r++) for (const s of senders) txs.push(transfer(s, sink.pk, 1000n, 1n));
  const src = nodes[N - 1]!;
  const sentAt = new Map<string, number>();
  const perTick = Math.max(1, Math.round((RATE * TICK_MS) / 1000));
  let errors = 0;
  let firstError: string | undefined;
  const loadStart = nowMs();
  for (let i = 0, k = 0; i < txs.length; i += perTick, k++) {
    const wait = loadStart + k * TICK_MS - nowMs();
    if (wait > 0) await sleep(wait);
    const batch = txs.slice(i, i + perTick);
    const body = JSON.stringify(batch.map((tx, j) => ({ jsonrpc: '2.0', id: i + j, method: 'sendTransaction', params: { tx: toHex(tx.bytes) } })));
    const t = nowMs();
    for (const tx of batch) sentAt.set(tx.idHex, t);
    const res = await fetch(`http://127.0.0.1:${src.rpcPort}/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    for (const r of (await res.json()) as { error?: unknown }[]) if (r.error) { errors++; firstError ??= JSON.stringify(r.error); }
  }
  const loadSecs = (nowMs() - loadStart) / 1000;
  console.log(`sent ${txs.length} txs to n${N - 1} in ${loadSecs.toFixed(1)} s (${(txs.length / loadSecs).toFixed(0)} tx/s), ${errors} errors${firstError ? ` (first: ${firstError})` : ''}`);
  if (errors) throw new Error(`sendTransaction errors: ${errors}, first ${firstError}`);

  // ---- wait until every node has every tx (pending notification, or confirmed without one)
  const viaBlock = nodes.map(() => new Set<string>());
  const missing = () => nodes.map((_, i) => txs.filter((tx) => !seen[i]!.has(tx.idHex) && !viaBlock[i]!.has(tx.idHex)));
  for (const start = nowMs(); ;) {
    const m = missing();
    const total = m.reduce((s, x) => s + x.length, 0);
    if (total === 0) break;
    if (nowMs() - start > 3000) {
      // Not seen pending after 3 s: confirmed by a block before its body arrived? (checked one by one)
      for (let i = 0; i < N; i++) {
        for (const tx of m[i]!.slice(0, 200)) {
          const st = (await rpc(nodes[i]!.rpcPort, 'getTransaction', { id: tx.idHex }).catch(() => undefined)) as { status?: string } | undefined;
          if (st?.status === 'confirmed') viaBlock[i]!.add(tx.idHex);
        }
      }
    }
    if (nowMs() - start > 60_000) throw new Error(`after 60 s, ${total} (node, tx) pairs still missing: ${m.map((x) => x.length).join(',')}`);
    await sleep(200);
  }
  const reachedAt = nowMs();
  await sleep(2000); // late duplicates and announcements still in flight
  const after = await Promise.all(nodes.map((n) => scrape(n.rpcPort).then(counts)));
  const h1 = (await rpc(nodes[0]!.rpcPort, 'getChainInfo')).height as number;
  const blocks = h1 - h0;

  // ---- figures
  const sum = (k: keyof Counts) => after.reduce((s, a, i) => s + (a[k] - before[i]![k]), 0);
  const perNode = (k: keyof Counts) => after.map((a, i) => a[k] - before[i]![k]);
  const txBodies = sum('txBodies');
  const copiesPerNodePerTx = txBodies / ((N - 1) * TXS);
  const dupShare = txBodies ? sum('txDup') / txBodies : 0;
  const invPerNodePerTx = sum('txInv') / (N * TXS);
  const blockCopies = blocks ? sum('blockBodies') / ((N - 1) * blocks) : NaN;
  const blockDupShare = sum('blockBodies') ? sum('blockDup') / sum('blockBodies') : 0;
  const blockInvPerNode = blocks ? sum('blockInv') / (N * blocks) : NaN;
  const reach: number[] = [];
  let partial = 0;
  for (const tx of txs) {
    const sent = sentAt.get(tx.idHex)!;
    let last = 0;
    let all = true;
    for (let i = 0; i < N; i++) {
      const t = seen[i]!.get(tx.idHex);
      if (t === undefined) { all = false; break; }
      last = Math.max(last, t - sent);
    }
    if (all) reach.push(last); else partial++;
  }
  reach.sort((a, b) => a - b);
  const viaBlockPairs = viaBlock.reduce((s, x) => s + x.size, 0);
  console.log(`all ${TXS} txs on all ${N} nodes ${((reachedAt - loadStart) / 1000 - loadSecs).toFixed(1)} s after the last send; ${blocks} blocks in the window; ${viaBlockPairs} (node, tx) pairs arrived by block only`);
  console.log(`tx bodies received per node (n0…n${N - 1}): ${perNode('txBodies').join(',')}`);
  console.log(`duplicate tx bodies per node: ${perNode('txDup').join(',')}`);
  console.log(`tx announcements per node: ${perNode('txInv').join(',')}`);
  console.log(`block bodies per node: ${perNode('blockBodies').join(',')}; synced blocks: ${sum('synced')}`);
  console.log(`time to reach all ${N} nodes over ${reach.length} txs: p50 ${pct(reach, 50).toFixed(0)} ms, p99 ${pct(reach, 99).toFixed(0)} ms, max ${reach.at(-1)?.toFixed(0)} ms${partial ? ` (${partial} txs reached some node by block only: left out)` : ''}`);

  const ideal = { name: 'floor: 1 copy per receiving node', value: 1, unit: 'copies' };
  const summary = [
    row(`tx full-body copies per receiving node per tx (${N} nodes)`, copiesPerNodePerTx, 'copies', ideal, '≤ 1.5 (gossipsub ≈ 6)'),
    row('duplicate share of tx bodies received', dupShare, '', null),
    row('tx announcements received per node per tx', invPerNodePerTx, 'ids', { name: 'mean peers per node (every peer announces)', value: meanDegree, unit: 'peers' }),
    row('block full-body copies per receiving node per block', blockCopies, 'copies', ideal),
    row('duplicate share of block bodies received', blockDupShare, '', null),
    row('block announcements received per node per block', blockInvPerNode, 'hashes', { name: 'mean peers per node', value: meanDegree, unit: 'peers' }),
    row(`time for a tx to reach 100 % of ${N} nodes, p50`, pct(reach, 50), 'ms', { name: 'slot time', value: SLOT_MS, unit: 'ms' }),
    row(`time for a tx to reach 100 % of ${N} nodes, p99`, pct(reach, 99), 'ms', { name: 'slot time', value: SLOT_MS, unit: 'ms' }),
  ];

  // ---- block phase: BLOCK_RATE tx/s for BLOCK_SECS; every block's bytes of relay received per node, full
  // bodies per node, and its time to reach 100 % of nodes (newHeads on every node, bench clock)
  const heads = nodes.map(() => new Map<string, number>());
  sockets.push(...await Promise.all(nodes.map((n, i) => watchHeads(n.rpcPort, heads[i]!))));
  // The tx phase's senders go on with their next nonces.
  const bTxs: Tx[] = [];
  for (let r = 0; bTxs.length < BLOCK_RATE * BLOCK_SECS; r++) for (const s2 of senders) if (bTxs.length < BLOCK_RATE * BLOCK_SECS) bTxs.push(transfer(s2, sink.pk, 1000n, BigInt(PER_SENDER + r)));
  const txBytes = new Map(bTxs.map((t) => [t.idHex, t.bytes.length]));
  const bh0 = (await rpc(nodes[0]!.rpcPort, 'getChainInfo')).height as number;
  const bBefore = await Promise.all(nodes.map((n) => scrape(n.rpcPort).then(countsB)));
  const bPerTick = Math.max(1, Math.round((BLOCK_RATE * TICK_MS) / 1000));
  const bStart = nowMs();
  for (let i = 0, k = 0; i < bTxs.length; i += bPerTick, k++) {
    const wait = bStart + k * TICK_MS - nowMs();
    if (wait > 0) await sleep(wait);
    const batch = bTxs.slice(i, i + bPerTick);
    const body = JSON.stringify(batch.map((tx, j) => ({ jsonrpc: '2.0', id: j, method: 'sendTransaction', params: { tx: toHex(tx.bytes) } })));
    await fetch(`http://127.0.0.1:${src.rpcPort}/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  }
  // Until the load is confirmed on every node, plus the blocks in flight.
  for (const start = nowMs(); ;) {
    const pend = await Promise.all(nodes.map((n) => rpc(n.rpcPort, 'getMempoolInfo').then((x) => (x as { size: number }).size)));
    if (pend.every((c) => c === 0)) break;
    if (nowMs() - start > 60_000) throw new Error(`block phase: mempools not drained after 60 s: ${pend.join(',')}`);
    await sleep(500);
  }
  await sleep(2 * SLOT_MS);
  const bAfter = await Promise.all(nodes.map((n) => scrape(n.rpcPort).then(countsB)));
  const bh1 = Math.min(...await Promise.all(nodes.map((n) => rpc(n.rpcPort, 'getChainInfo').then((x) => (x as { height: number }).height))));
  const blockSizes: number[] = [];
  const spread: number[] = [];
  for (let h = bh0 + 1; h <= bh1; h++) {
    const b = (await rpc(nodes[0]!.rpcPort, 'getBlock', { height: h })) as { hash: string; transactions: string[] };
    blockSizes.push(BLOCK_OVERHEAD + b.transactions.reduce((n, id) => n + (txBytes.get(id) ?? 200) + 3, 0));
    const times = heads.map((m) => m.get(b.hash)).filter((t): t is number => t !== undefined);
    if (times.length === N) spread.push(Math.max(...times) - Math.min(...times));
  }
  spread.sort((a, b) => a - b);
  const bSum = (k: keyof CountsB) => bAfter.reduce((x, a, i) => x + (a[k] - bBefore[i]![k]), 0);
  const bBlocks = blockSizes.length;
  const totalBlockBytes = blockSizes.reduce((x, y) => x + y, 0);
  const bytesRatio = bBlocks ? bSum('blockBytes') / ((N - 1) * totalBlockBytes) : NaN;
  const bodiesPerNode = bBlocks ? bSum('blockBodies') / ((N - 1) * bBlocks) : NaN;
  console.log(`block phase: ${bTxs.length} txs at ${BLOCK_RATE} tx/s, ${bBlocks} blocks (${blockSizes.map((x) => Math.round(x / 1024)).join(',')} KiB); relay bytes received ${Math.round(bSum('blockBytes') / 1024)} KiB over all nodes; full bodies ${bSum('blockBodies')}; compact ${bSum('compact')}; txs requested ${bSum('requested')}`);
  console.log(`block to 100 % of ${N} nodes (newHeads spread) over ${spread.length} blocks: p50 ${pct(spread, 50).toFixed(0)} ms, p99 ${pct(spread, 99).toFixed(0)} ms`);
  summary.push(
    row(`block relay bytes received per node per block / block size (${N} nodes, warm mempools)`, bytesRatio, '', { name: 'one full copy', value: 1, unit: '' }, '≤ 0.15'),
    row('full block bodies received per node per block (warm mempools)', bodiesPerNode, 'copies', { name: 'one full copy', value: 1, unit: 'copies' }, '≤ 1.05'),
    row(`time for a block to reach 100 % of ${N} nodes, p50`, pct(spread, 50), 'ms', { name: 'slot time', value: SLOT_MS, unit: 'ms' }),
    row(`time for a block to reach 100 % of ${N} nodes, p99`, pct(spread, 99), 'ms', { name: 'slot time', value: SLOT_MS, unit: 'ms' }),
  );
  printRows(summary);
  writeResult('gossip', {
    blockPhase: { txs: bTxs.length, ratePerSec: BLOCK_RATE, blocks: bBlocks, blockBytes: blockSizes, relayBytesReceived: bSum('blockBytes'), fullBodies: bSum('blockBodies'), compactBlocks: bSum('compact'), txsRequested: bSum('requested'), spreadMs: { p50: Math.round(pct(spread, 50)), p99: Math.round(pct(spread, 99)), samples: spread.length } },
    nodes: N, validators: VALIDATORS, txs: TXS, ratePerSec: RATE, slotMs: SLOT_MS, peersPerNode: degrees, meanPeers: Number(meanDegree.toFixed(2)),
    blocksInWindow: blocks, pairsArrivedByBlockOnly: viaBlockPairs,
    perNode: { txBodies: perNode('txBodies'), txDuplicateBodies: perNode('txDup'), txAnnouncements: perNode('txInv'), blockBodies: perNode('blockBodies'), blockDuplicateBodies: perNode('blockDup'), blockAnnouncements: perNode('blockInv') },
    reachAllMs: { p50: Math.round(pct(reach, 50)), p99: Math.round(pct(reach, 99)), max: Math.round(reach.at(-1) ?? NaN), samples: reach.length },
    definitions: {
      copiesPerNodePerTx: 'Σ tx bodies received over all nodes / ((nodes − 1) × txs): the source needs none, every other node one',
      announcementsPerNodePerTx: 'Σ INV_TX ids received / (nodes × txs)',
      blockCopiesPerNodePerBlock: 'Σ block bodies received by gossip (push or fetch after INV; not sync) / ((nodes − 1) × blocks in the window)',
      reachAll: 'max over nodes of (pendingTransactions notification time − send time), bench clock',
    },
    summary,
  });
} finally {
  for (const s of sockets) s.terminate();
  await Promise.all(nodes.map((n) => n.stop()));
  rmDir(dir);
}
