/**
 * Devnet end-to-end: 4 validator node processes on 127.0.0.1 (node-main.js: production MeshNode, RPC rate
 * limit raised; P2P all-to-all via bootnodes; slot 1000 ms as `meshledger devnet` uses by default), and a load
 * generator in this process submitting pre-signed transfers with `sendTransaction` JSON-RPC batches, spread
 * round-robin over the 4 nodes, at a fixed offered rate for STEP_SLOTS slots per step, stepping up
 * (250, 500, 1000, 2000, 4000, 8000 tx/s) until the confirmed rate falls clearly below the offered one
 * (< 90 %, or < 99 % of the step's transactions included by the end of the drain, or rejected submissions),
 * then one step half-way between the last good and the first bad rate.
 *
 * Per step:
 *   - senders: the next accounts of a 10k funded pool (reused round-robin; a step drains before the next),
 *     each sending ~1 tx per slot, so no nonce chain grows long; a sender with a rejected or never-included
 *     transaction (a nonce gap) is not used again;
 *   - every batch is sent at its scheduled time (bodies built before the step; the scheduling lag and this
 *     process's CPU are reported, to tell whether the generator kept up);
 *   - the step starts 50 ms into a slot s0 and lasts K slots; confirmed tx/s = transactions in the blocks of
 *     slots s0+2 … s0+K (K−1 slots, which hold K−1 slots' worth of the step's submissions at any steady
 *     latency; the first block is left out as ramp-up) / (K−1) s. Blocks are read from node 0 via getBlock;
 *   - latency of a transaction in slots = its inclusion block's slot − the slot at its batch's send time
 *     (as the issue defines it), also as ms from send to the inclusion block's slot start;
 *   - drain: wait until every node's mempool is empty (at most DRAIN_MS) before reading the blocks.
 * Then a step at 50 % of the sustained maximum, for the latency figures (p50/p99 in slots).
 *
 * Limits, measured in this run on this machine: raw node:crypto ed25519 verify on 2 worker threads divided by
 * the 4 nodes (each node verifies every transaction once: from RPC or from gossip), and the block size cap
 * maxBlockTxs per slot. Also reported per step: CPU % of each node and of this process.
 * Run: node dist/scripts/bench/devnet.js [--smoke]   (smoke: one step and the 50 % step, short, < 20 s)
 * Writes scripts/bench/results/devnet.json.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeKeyFile } from '../../src/crypto/keyfile.js';
import { slotAt, slotStart } from '../../src/ledger/schedule.js';
import { toHex } from '../../src/encoding/bytes.js';
import { freePorts, rpc } from '../../harness/proc.js';
import { SMOKE, makeRawItems, nowMs, printRows, rawVerifyRateWorkers, row, sleep, writeResult } from './common.js';
import { makeAccounts, makeGenesis, rmDir, tmpDir, transfer, writeGenesisJson, type Account } from './fixtures.js';
import { cpuSeconds, startBenchNode, threadCpuSeconds, type BenchNode } from './nodeproc.js';

const N = 4;
const SLOT_MS = 1000;
const STEP_SLOTS = SMOKE ? 4 : 12;
/** DEVNET_RATES=2000,3000 replaces the steps (ad-hoc runs; the refine step still follows a failed one). */
const RATES = process.env.DEVNET_RATES ? process.env.DEVNET_RATES.split(',').map(Number) : SMOKE ? [200] : [250, 500, 1000, 2000, 4000, 8000];
const POOL = SMOKE ? 1000 : 10_000;
const DRAIN_MS = SMOKE ? 3000 : 10_000;
const VERIFY_MS = SMOKE ? 300 : 2000;
const KEEP_UP = 0.9;
const TARGET_TPS = 2000, TARGET_P50 = 1.5, TARGET_P99 = 3;

const t00 = nowMs();
const log = (s: string) => console.log(`[${((nowMs() - t00) / 1000).toFixed(1).padStart(6)} s] ${s}`);

// ---- limit: raw verify on 2 worker threads, before the nodes start and after they stop (mean)
log('measuring the limit (raw verify on 2 worker threads) before starting the nodes');
const rawItems = makeRawItems(SMOKE ? 100 : 1000);
const raw2Before = await rawVerifyRateWorkers(rawItems, 2, VERIFY_MS);
log(`limit: raw node:crypto verify on 2 worker threads ${raw2Before.toFixed(0)}/s (before) → ÷ ${N} nodes = ${(raw2Before / N).toFixed(0)} tx/s`);

/** Machine-wide busy share of all cores since the last call (/proc/stat). */
function machineBusy(): () => number {
  const read = () => {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3]! + f[4]!;
    return { idle, total: f.reduce((a, b) => a + b, 0) };
  };
  const a = read();
  return () => { const b = read(); return 1 - (b.idle - a.idle) / Math.max(1, b.total - a.total); };
}

const pct = (xs: number[], p: number) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
};

interface StepResult {
  label: string; offered: number; slots: number; submitted: number; accepted: number; errors: number; firstError?: string;
  confirmedPerSec: number; windowBlocks: number; windowSlots: number; emptySlots: number; maxBlockTxs: number;
  included: number; includedFrac: number; drainMs: number; drained: boolean;
  latencySlots: { p50: number; p90: number; p99: number; max: number };
  latencyMs: { p50: number; p99: number };
  sendLagMsP99: number; generatorCpuPct: number; nodeCpuPct: number[]; nodeCpuUsPerTx: { main: number; verify: number; other: number }; machineBusyPct: number; keptUp: boolean;
}

const dir = tmpDir('devnet');
const nodes: BenchNode[] = [];
let ok = false;
try {
  // ---- accounts, genesis, keys
  const validators = makeAccounts('devnet-validator', N);
  const pool = makeAccounts('devnet', POOL);
  const genesisTime = Math.ceil(Date.now() / SLOT_MS) * SLOT_MS;
  const genesis = makeGenesis(validators, pool, 10n ** 12n, { genesisTime, slotMs: SLOT_MS });
  const genesisFile = path.join(dir, 'genesis.json');
  writeGenesisJson(genesisFile, genesis);
  const maxBlockTxs = genesis.params.maxBlockTxs;
  const blockCap = maxBlockTxs / (SLOT_MS / 1000);
  log(`${POOL} funded accounts; block cap maxBlockTxs ${maxBlockTxs} / slot ${SLOT_MS} ms = ${blockCap} tx/s (maxBlockBytes ${genesis.params.maxBlockBytes})`);
  const keyFiles = await Promise.all(validators.map(async (v, i) => {
    const f = path.join(dir, `validator-${i}.json`);
    await writeKeyFile(f, { secretKey: v.sk, publicKey: v.pk, address: v.address });
    return f;
  }));

  // ---- nodes
  const ports = await freePorts(N);
  const urls = ports.map((p) => `ws://127.0.0.1:${p}`);
  nodes.push(...(await Promise.all(validators.map((_, i) => startBenchNode({
    dir, genesisFile, name: `v${i}`, key: keyFiles[i], p2pPort: ports[i], bootnodes: urls.filter((_, j) => j !== i), logLevel: 'info',
    nodeArgs: process.env.DEVNET_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.DEVNET_CPU_PROF}`] : [],
  })))));
  for (const t = nowMs(); ;) {
    const peers = await Promise.all(nodes.map((n) => rpc(n.rpcPort, 'getPeers') as Promise<unknown[]>));
    const heads = await Promise.all(nodes.map((n) => rpc(n.rpcPort, 'getChainInfo')));
    if (peers.every((p) => p.length >= N - 1) && heads.every((h) => h.height >= 1)) break;
    if (nowMs() - t > 30_000) throw new Error(`devnet not connected: peers ${peers.map((p) => p.length)}, heights ${heads.map((h) => h.height)}`);
    await sleep(200);
  }
  log(`${N} validators up and connected (slot ${SLOT_MS} ms)`);

  let nextSender = 0;
  const poisoned = new Set<Account>();
  const takeSenders = (n: number): Account[] => {
    const out = new Set<Account>();
    for (let tries = 0; out.size < n && tries < 2 * POOL; tries++) {
      const a = pool[(nextSender++) % POOL]!;
      if (!poisoned.has(a)) out.add(a);
    }
    if (out.size < n) throw new Error(`sender pool exhausted (${poisoned.size} unusable)`);
    return [...out];
  };
  let rs = 42;
  const rnd = (n: number) => { rs = (rs * 1103515245 + 12345) >>> 0; return rs % n; };

  const mempoolSizes = () => Promise.all(nodes.map(async (n) => (await rpc(n.rpcPort, 'getMempoolInfo')).size as number));

  async function step(label: string, rate: number, slots: number): Promise<StepResult> {
    const nTx = Math.round((rate * slots * SLOT_MS) / 1000);
    const senders = takeSenders(Math.max(1, Math.ceil(nTx / slots)));
    const batch = Math.max(5, Math.min(100, Math.round(rate / 20)));
    const bodies: { node: number; body: string; ids: string[]; from: Account[] }[] = [];
    let rpcId = 0;
    for (let i = 0; i < nTx; i += batch) {
      const ids: string[] = [];
      const from: Account[] = [];
      const entries: unknown[] = [];
      for (let k = i; k < Math.min(nTx, i + batch); k++) {
        const tx = transfer(senders[k % senders.length]!, pool[rnd(POOL)]!.pk, 1000n);
        ids.push(tx.idHex);
        from.push(senders[k % senders.length]!);
        entries.push({ jsonrpc: '2.0', id: ++rpcId, method: 'sendTransaction', params: { tx: toHex(tx.bytes) } });
      }
      bodies.push({ node: bodies.length % N, body: JSON.stringify(entries), ids, from });
    }
    const startHeight = (await rpc(nodes[0]!.rpcPort, 'getChainInfo')).height as number;
    // Start 50 ms into the next slot.
    const s0 = slotAt(genesis, Date.now()) + 1;
    await sleep(slotStart(genesis, s0) + 50 - Date.now());
    const cpu0 = nodes.map((n) => cpuSeconds(n.pid));
    const thr0 = nodes.map((n) => threadCpuSeconds(n.pid));
    const busy = machineBusy();
    const pc0 = process.cpuUsage();
    const t0 = Date.now();
    const interval = (batch / rate) * 1000;
    const sendAt: number[] = new Array(bodies.length);
    const lags: number[] = [];
    let accepted = 0, errors = 0;
    let firstError: string | undefined;
    const inflight: Promise<void>[] = [];
    for (let b = 0; b < bodies.length; b++) {
      const due = t0 + b * interval;
      const wait = due - Date.now();
      if (wait > 1) await sleep(wait);
      const now = Date.now();
      sendAt[b] = now;
      lags.push(now - due);
      const { node, body } = bodies[b]!;
      inflight.push((async () => {
        try {
          const res = await fetch(`http://127.0.0.1:${nodes[node]!.rpcPort}/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
          const j = (await res.json()) as { error?: unknown }[] | { error: unknown };
          if (!Array.isArray(j)) { errors += bodies[b]!.ids.length; firstError ??= JSON.stringify(j); return; }
          for (const r of j) { if (r.error) { errors++; firstError ??= JSON.stringify(r.error); } else accepted++; }
        } catch (e) {
          errors += bodies[b]!.ids.length;
          firstError ??= (e as Error).message;
        }
      })());
    }
    const sendEnd = Date.now();
    const pc = process.cpuUsage(pc0);
    await Promise.all(inflight);
    const stepEnd = Math.max(sendEnd, t0 + slots * SLOT_MS);
    await sleep(stepEnd - Date.now());
    const stepSecs = (Date.now() - t0) / 1000;
    const nodeCpuPct = nodes.map((n, i) => (100 * (cpuSeconds(n.pid) - cpu0[i]!)) / stepSecs);
    // CPU per submitted transaction of a node (mean of the nodes), by thread: where a node's time goes.
    const thr1 = nodes.map((n) => threadCpuSeconds(n.pid));
    const perTx = (k: 'main' | 'verify' | 'other') => Math.round((1e6 * thr1.reduce((a, t, i) => a + t[k] - thr0[i]![k], 0)) / N / nTx);
    const nodeCpuUsPerTx = { main: perTx('main'), verify: perTx('verify'), other: perTx('other') };
    const machineBusyPct = 100 * busy();
    const generatorCpuPct = (100 * (pc.user + pc.system) / 1e6) / ((sendEnd - t0) / 1000);

    // Drain.
    const d0 = Date.now();
    let drained = false;
    for (;;) {
      const sizes = await mempoolSizes();
      if (sizes.every((s) => s === 0)) { drained = true; break; }
      if (Date.now() - d0 > DRAIN_MS) break;
      await sleep(250);
    }
    const drainMs = Date.now() - d0;
    await sleep(300); // the last block reaches node 0

    // Blocks.
    const sendSlotOf = new Map<string, number>();
    for (let b = 0; b < bodies.length; b++) for (const id of bodies[b]!.ids) sendSlotOf.set(id, b);
    const seen = new Set<string>();
    const head = (await rpc(nodes[0]!.rpcPort, 'getChainInfo')).height as number;
    const latSlots: number[] = [], latMs: number[] = [];
    let windowTxs = 0, windowBlocks = 0, biggest = 0;
    const windowSlotsSeen = new Set<number>();
    for (let h = startHeight + 1; h <= head; h++) {
      const blk = await rpc(nodes[0]!.rpcPort, 'getBlock', { height: h });
      const slot = blk.slot as number;
      if (slot >= s0 + 2 && slot <= s0 + slots) { windowTxs += blk.txCount ?? blk.transactions.length; windowBlocks++; windowSlotsSeen.add(slot); }
      biggest = Math.max(biggest, blk.transactions.length);
      for (const id of blk.transactions as string[]) {
        const b = sendSlotOf.get(id);
        if (b === undefined) continue;
        seen.add(id);
        latSlots.push(slot - slotAt(genesis, sendAt[b]!));
        latMs.push(slotStart(genesis, slot) - sendAt[b]!);
      }
    }
    for (const bd of bodies) bd.ids.forEach((id, k) => { if (!seen.has(id)) poisoned.add(bd.from[k]!); });
    const windowSlots = slots - 1;
    const confirmedPerSec = windowTxs / ((windowSlots * SLOT_MS) / 1000);
    const included = latSlots.length;
    const includedFrac = included / nTx;
    const keptUp = confirmedPerSec >= KEEP_UP * rate && includedFrac >= 0.99 && errors === 0;
    const r: StepResult = {
      label, offered: rate, slots, submitted: nTx, accepted, errors, firstError,
      confirmedPerSec: Math.round(confirmedPerSec), windowBlocks, windowSlots, emptySlots: windowSlots - windowSlotsSeen.size, maxBlockTxs: biggest,
      included, includedFrac: Number(includedFrac.toFixed(4)), drainMs, drained,
      latencySlots: { p50: pct(latSlots, 50), p90: pct(latSlots, 90), p99: pct(latSlots, 99), max: pct(latSlots, 100) },
      latencyMs: { p50: Math.round(pct(latMs, 50)), p99: Math.round(pct(latMs, 99)) },
      sendLagMsP99: Math.round(pct(lags, 99)), generatorCpuPct: Math.round(generatorCpuPct), nodeCpuPct: nodeCpuPct.map(Math.round), nodeCpuUsPerTx,
      machineBusyPct: Math.round(machineBusyPct), keptUp,
    };
    log(`${label} offered ${rate} tx/s (${nTx} txs, batches of ${batch}, ${senders.length} senders): confirmed ${r.confirmedPerSec} tx/s `
      + `(${windowBlocks} blocks in ${windowSlots} slots, biggest block ${biggest}); included ${(100 * includedFrac).toFixed(1)} % `
      + `${drained ? `(drained in ${drainMs} ms)` : `(NOT drained after ${drainMs} ms)`}; errors ${errors}${firstError ? ` (${firstError.slice(0, 160)})` : ''}`);
    log(`    latency slots p50 ${r.latencySlots.p50} p90 ${r.latencySlots.p90} p99 ${r.latencySlots.p99} max ${r.latencySlots.max}; ms to inclusion slot start p50 ${r.latencyMs.p50} p99 ${r.latencyMs.p99}`);
    log(`    CPU per tx of a node: main thread ${nodeCpuUsPerTx.main} µs, signature workers ${nodeCpuUsPerTx.verify} µs, other threads ${nodeCpuUsPerTx.other} µs`);
    log(`    CPU: nodes ${r.nodeCpuPct.join('/')} % of a core, generator ${r.generatorCpuPct} % (send lag p99 ${r.sendLagMsP99} ms), machine ${r.machineBusyPct} % busy of ${2} cores → ${keptUp ? 'kept up' : 'DID NOT keep up'}`);
    return r;
  }

  async function settle(): Promise<boolean> {
    for (const t = Date.now(); Date.now() - t < 60_000;) {
      if ((await mempoolSizes()).every((s) => s === 0)) return true;
      await sleep(500);
    }
    return false;
  }

  // ---- stepping up
  const steps: StepResult[] = [];
  let best: StepResult | undefined, bad: StepResult | undefined;
  for (const r of RATES) {
    const s = await step('step', r, STEP_SLOTS);
    steps.push(s);
    if (!s.keptUp) { bad = s; break; }
    best = s;
  }
  if (bad && !(await settle())) log('  (backlog not cleared after 60 s)');
  if (!SMOKE && bad && best && bad.offered > best.offered * 1.2) {
    const mid = Math.round((best.offered + bad.offered) / 2);
    const s = await step('refine', mid, STEP_SLOTS);
    steps.push(s);
    if (s.keptUp) best = s; else if (!(await settle())) log('  (backlog not cleared after 60 s)');
  }
  const sustained = best ? best.confirmedPerSec : Math.max(...steps.map((s) => s.confirmedPerSec));
  const sustainedOffered = best ? best.offered : NaN;
  log(`sustained: ${sustained} tx/s confirmed (${best ? `at offered ${sustainedOffered} tx/s` : 'no step kept up: the best step\'s confirmed rate'})${bad ? `; first step that did not keep up: offered ${bad.offered}, confirmed ${bad.confirmedPerSec}` : '; every step kept up'}`);

  // ---- 50 % step, for latency
  const half = await step('50%', Math.max(10, Math.round(sustained / 2)), STEP_SLOTS);
  steps.push(half);

  await Promise.all(nodes.splice(0).map((n) => n.stop()));
  const raw2After = await rawVerifyRateWorkers(rawItems, 2, VERIFY_MS);
  const raw2 = (raw2Before + raw2After) / 2;
  log(`limit: raw node:crypto verify on 2 worker threads ${raw2After.toFixed(0)}/s (after); mean ${raw2.toFixed(0)}/s → ÷ ${N} nodes = ${(raw2 / N).toFixed(0)} tx/s`);
  const limVerify = { name: `raw verify 2 worker threads ÷ ${N} nodes`, value: raw2 / N, unit: 'tx/s' };
  const limCap = { name: `block cap maxBlockTxs/slot`, value: blockCap, unit: 'tx/s' };
  const summary = [
    row(`devnet ${N} validators, sustained confirmed`, sustained, 'tx/s', limVerify, `≥ ${TARGET_TPS} tx/s`),
    row(`devnet ${N} validators, sustained confirmed`, sustained, 'tx/s', limCap, `≥ ${TARGET_TPS} tx/s`),
    row(`devnet latency p50 at 50 % load (${half.offered} tx/s)`, half.latencySlots.p50, 'slots', { name: 'target', value: TARGET_P50, unit: 'slots' }, `≤ ${TARGET_P50} slots`),
    row(`devnet latency p99 at 50 % load (${half.offered} tx/s)`, half.latencySlots.p99, 'slots', { name: 'target', value: TARGET_P99, unit: 'slots' }, `≤ ${TARGET_P99} slots`),
  ];
  printRows(summary);
  writeResult('devnet', {
    validators: N, slotMs: SLOT_MS, stepSlots: STEP_SLOTS, senderPool: POOL, keepUpRule: `confirmed ≥ ${KEEP_UP} × offered, ≥ 99 % included by drain end, no rejected submissions`,
    rawVerify2WorkersPerSec: { before: Math.round(raw2Before), after: Math.round(raw2After), mean: Math.round(raw2) }, limitVerifyPerNodeTxPerSec: Math.round(raw2 / N), blockCapTxPerSec: blockCap,
    sustainedConfirmedTxPerSec: sustained, sustainedAtOfferedTxPerSec: sustainedOffered,
    latencyAt50pct: { offered: half.offered, slots: half.latencySlots, ms: half.latencyMs },
    targets: { confirmedTxPerSec: TARGET_TPS, p50Slots: TARGET_P50, p99Slots: TARGET_P99 },
    steps, totalSeconds: Number(((nowMs() - t00) / 1000).toFixed(1)),
    summary,
  });
  ok = true;
} finally {
  await Promise.all(nodes.map((n) => n.stop()));
  if (!ok) for (const n of nodes) console.log(`--- ${path.basename(n.logFile)} (last lines)\n${fs.readFileSync(n.logFile, 'utf8').split('\n').slice(-8).join('\n')}`);
  if (process.env.KEEP_TMP) console.log(`kept ${dir} (node logs v*.log)`); else rmDir(dir);
}
