/**
 * Sync: a fresh node (empty datadir, real process) fully validating a prebuilt chain of 100k transfers
 * downloaded from several peers over P2P (127.0.0.1 WebSockets). Figure = transactions / seconds from the
 * moment the peers are added (adminAddPeer, so node start-up is not timed) until the fresh node's head hash
 * equals the peers' head.
 *
 * The chain: 200 blocks x 500 transfers among 10k funded accounts (1 validator, slot 1 s), built in-process
 * with the production assembler (`assembleBlock`) and `Chain.addBlock` into a LevelDB datadir laid out as a
 * node opens it, with the genesis time far enough in the past that every block's slot is over (no
 * future_slot refusal; see maxClockDriftMs in block.ts). Blocks of 500 rather than 2000 so that the chain
 * spans several 64-block sync ranges and is fetched from several peers at once (a 64 x 2000-tx range would
 * also not fit one 16 MiB BLOCKS frame). Copies of that datadir are served by SERVERS observer nodes (no
 * validator key: nobody produces meanwhile); the fresh node is an observer too, with P2P enabled.
 * Its 'sync round done' log lines give the blocks delivered per peer ('sources').
 *
 * Limits, measured in this run on this machine:
 *   - raw node:crypto ed25519 verify, 1 thread (the node verifies a synced block's signatures inline);
 *   - block application (`Chain.addBlock`, signatures pre-verified via the SigCache), timed while building
 *     the chain (warm state-lattice leaf cache, as on the producer: flatters it a little);
 *   - both in series on one thread: 1 / (1/verify + 1/apply), what a node doing them one after the other
 *     can reach at best.
 * Run: node dist/scripts/bench/sync.js [--smoke]    (smoke: 50 blocks x 100 transfers, 2 peers)
 * Writes scripts/bench/results/sync.json.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Chain } from '../../src/chain/chain.js';
import { SigCache } from '../../src/crypto/sigcache.js';
import { readGenesisFile } from '../../src/node/genesisfile.js';
import { chainDbPath } from '../../src/node/node.js';
import { assembleBlock } from '../../src/producer/producer.js';
import { openLevel } from '../../src/storage/kv.js';
import type { Tx } from '../../src/ledger/tx.js';
import { freePorts, rpc } from '../../harness/proc.js';
import { SMOKE, makeRawItems, nowMs, printRows, rawVerifyRate, row, sleep, writeResult } from './common.js';
import { makeAccounts, makeGenesis, rmDir, tmpDir, transfer, writeGenesisJson } from './fixtures.js';
import { cpuSeconds, startBenchNode, type BenchNode } from './nodeproc.js';

const TXS_PER_BLOCK = SMOKE ? 100 : 500;
const BLOCKS = SMOKE ? 50 : 200;
const ACCOUNTS = SMOKE ? 1000 : 10_000;
const SERVERS = SMOKE ? 2 : 3;
const SLOT_MS = 1000;
const VERIFY_MS = SMOKE ? 300 : 2000;
const TARGET = 8000;
const TIMEOUT_MS = SMOKE ? 60_000 : 300_000;

const t00 = nowMs();
// ---- limit 1: raw verify, 1 thread: before anything else runs, and again right after the sync (mean)
const rawItems = makeRawItems(SMOKE ? 100 : 1000);
const raw1Before = rawVerifyRate(rawItems, VERIFY_MS);
console.log(`limit: raw node:crypto verify, 1 thread: ${raw1Before.toFixed(0)} verifies/s (before)`);

// ---- build the chain
const dir = tmpDir('sync');
const servers: BenchNode[] = [];
let fresh: BenchNode | undefined;
try {
  const [validator] = makeAccounts('sync-validator', 1);
  const accts = makeAccounts('sync', ACCOUNTS);
  const genesisTime = Date.now() - (BLOCKS + 60) * SLOT_MS;
  const genesisFile = path.join(dir, 'genesis.json');
  writeGenesisJson(genesisFile, makeGenesis([validator!], accts, 10n ** 12n, { genesisTime, slotMs: SLOT_MS }));
  const genesis = await readGenesisFile(genesisFile);

  const seed = path.join(dir, 'data-seed');
  fs.mkdirSync(chainDbPath(seed, genesis), { recursive: true });
  const db = await openLevel(chainDbPath(seed, genesis));
  const sigCache = new SigCache();
  const chain = await Chain.open({ db, genesis, sigCache });
  let rs = 987654321;
  const rnd = (n: number) => { rs = (rs * 1103515245 + 12345) >>> 0; return rs % n; };
  let applyMs = 0, signMs = 0, txCount = 0;
  const tb = nowMs();
  try {
    for (let b = 0; b < BLOCKS; b++) {
      let t = nowMs();
      const txs: Tx[] = [];
      for (let j = 0; j < TXS_PER_BLOCK; j++) {
        const from = accts[(b * TXS_PER_BLOCK + j) % ACCOUNTS]!;
        txs.push(transfer(from, accts[rnd(ACCOUNTS)]!.pk, 1000n + BigInt(j)));
      }
      signMs += nowMs() - t;
      for (const tx of txs) sigCache.add(tx.idHex);
      const block = await assembleBlock(chain, validator!.sk, validator!.pk, chain.head.slot + 1, txs);
      if (block.txs.length !== txs.length) throw new Error(`assembler took ${block.txs.length} of ${txs.length}`);
      t = nowMs();
      const r = await chain.addBlock(block);
      applyMs += nowMs() - t;
      if (r.status !== 'connected') throw new Error(`block ${b + 1}: ${r.status}`);
      txCount += block.txs.length;
    }
  } finally {
    await chain.close();
    await db.close();
  }
  const applyPerSec = txCount / (applyMs / 1000);
  const built = { height: BLOCKS, txs: txCount };
  console.log(`built ${BLOCKS} blocks x ${TXS_PER_BLOCK} transfers (${txCount} txs, ${ACCOUNTS} accounts) in ${((nowMs() - tb) / 1000).toFixed(1)} s (signing ${(signMs / 1000).toFixed(1)} s); addBlock (sigs pre-verified) ${applyPerSec.toFixed(0)} tx/s`);
  for (let i = 0; i < SERVERS; i++) fs.cpSync(seed, path.join(dir, `data-s${i}`), { recursive: true });
  rmDir(seed);

  // ---- serving peers (observers) and the fresh node
  const ports = await freePorts(SERVERS + 1);
  servers.push(...(await Promise.all(Array.from({ length: SERVERS }, (_, i) => startBenchNode({ dir, genesisFile, name: `s${i}`, p2pPort: ports[i]! })))));
  const heads = await Promise.all(servers.map((s) => rpc(s.rpcPort, 'getChainInfo')));
  const target = heads[0]!;
  if (target.height !== BLOCKS || heads.some((h) => h.headHash !== target.headHash)) throw new Error(`servers' heads differ or are wrong: ${JSON.stringify(heads.map((h) => [h.height, h.headHash]))}`);
  fresh = await startBenchNode({ dir, genesisFile, name: 'fresh', p2pPort: ports[SERVERS]!, logLevel: 'info', nodeArgs: process.env.SYNC_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.SYNC_CPU_PROF}`] : [] });
  const token = fs.readFileSync(path.join(dir, 'data-fresh', 'admin.token'), 'utf8').trim();
  const admin = async (method: string, params: unknown) => {
    const res = await fetch(`http://127.0.0.1:${fresh!.rpcPort}/`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    });
    const j = (await res.json()) as { result?: unknown; error?: unknown };
    if (j.error) throw new Error(`${method}: ${JSON.stringify(j.error)}`);
    return j.result;
  };
  await sleep(500); // let the fresh node settle after start-up
  const cpu0 = cpuSeconds(fresh.pid);
  const serverCpu0 = servers.map((s) => cpuSeconds(s.pid));
  const t0 = nowMs();
  await Promise.all(servers.map((_, i) => admin('adminAddPeer', { url: `ws://127.0.0.1:${ports[i]}` })));
  let firstBlockMs = 0;
  for (;;) {
    const h = await rpc(fresh.rpcPort, 'getChainInfo');
    if (!firstBlockMs && h.height > 0) firstBlockMs = nowMs() - t0;
    if (h.headHash === target.headHash) break;
    if (nowMs() - t0 > TIMEOUT_MS) throw new Error(`sync not done after ${TIMEOUT_MS} ms: height ${h.height} of ${target.height}`);
    await sleep(100); // polling costs the node a little RPC work; 100 ms is 0.3 % of a 30 s sync
  }
  const secs = (nowMs() - t0) / 1000;
  const cpu = cpuSeconds(fresh.pid) - cpu0;
  const serverCpu = servers.reduce((n, s, i) => n + cpuSeconds(s.pid) - serverCpu0[i]!, 0);
  const syncPerSec = built.txs / secs;
  const check = await rpc(fresh.rpcPort, 'getBlockHeader', { height: target.height });
  const serverHeader = await rpc(servers[0]!.rpcPort, 'getBlockHeader', { height: target.height });
  if (check.stateRoot !== serverHeader.stateRoot) throw new Error('state roots differ after sync');

  // Sources per round, from the fresh node's log; node ids of the servers from theirs.
  await sleep(200);
  const entries = (f: string) => fs.readFileSync(f, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const rounds = entries(fresh.logFile).filter((e) => e.msg === 'sync round done');
  const serverLabels = servers.map((s) => String(entries(s.logFile).find((e) => e.msg === 'bench node started')?.nodeId ?? '').slice(0, 12));
  const sources: Record<string, number> = {};
  for (const r of rounds) for (const [k, v] of Object.entries(r.sources as Record<string, number>)) sources[k] = (sources[k] ?? 0) + v;
  const named = Object.fromEntries(Object.entries(sources).map(([k, v]) => [serverLabels.includes(k) ? `s${serverLabels.indexOf(k)}` : k, v]));

  await Promise.all([fresh, ...servers].map((n) => n.stop()));
  const raw1After = rawVerifyRate(rawItems, VERIFY_MS);
  const raw1 = (raw1Before + raw1After) / 2;
  const serial = 1 / (1 / raw1 + 1 / applyPerSec);
  console.log(`sync: ${built.txs} txs in ${BLOCKS} blocks from ${SERVERS} peers in ${secs.toFixed(2)} s = ${syncPerSec.toFixed(0)} tx/s (${(BLOCKS / secs).toFixed(1)} blocks/s; first block after ${firstBlockMs.toFixed(0)} ms; fresh node CPU ${cpu.toFixed(1)} s = ${((100 * cpu) / secs).toFixed(0)} % of one core; serving nodes together ${serverCpu.toFixed(1)} s = ${((100 * serverCpu) / secs).toFixed(0)} %)`);
  const cores = os.cpus().length;
  const cpuPerTxUs = ((cpu + serverCpu) * 1e6) / built.txs;
  const cpuCeiling = (cores * 1e6) / cpuPerTxUs;
  console.log(`  CPU per tx: fresh node ${((cpu * 1e6) / built.txs).toFixed(0)} µs + serving nodes ${((serverCpu * 1e6) / built.txs).toFixed(0)} µs = ${cpuPerTxUs.toFixed(0)} µs → ${cores} cores allow ${cpuCeiling.toFixed(0)} tx/s at that cost (this run: ${(syncPerSec / cpuCeiling).toFixed(2)} of it)`);
  const waited = (k: string) => rounds.reduce((n, r) => n + Number(r[k] ?? 0), 0);
  console.log(`  sync rounds: ${rounds.length}; blocks per source: ${JSON.stringify(named)}; the apply loop waited ${waited('waitDownloadMs')} ms for downloads and ${waited('waitVerifyMs')} ms for signature checks`);
  console.log(`  limits: raw verify 1 thread ${raw1.toFixed(0)}/s (before ${raw1Before.toFixed(0)}, after ${raw1After.toFixed(0)}), addBlock with sigs pre-verified ${applyPerSec.toFixed(0)} tx/s, both in series ${serial.toFixed(0)} tx/s`);

  const summary = [
    row('sync, fresh node validating from peers', syncPerSec, 'tx/s', { name: 'raw node:crypto verify, 1 thread', value: raw1, unit: 'verifies/s' }, `≥ ${TARGET} tx/s`),
    row('sync, fresh node validating from peers', syncPerSec, 'tx/s', { name: 'addBlock, sigs pre-verified (this chain)', value: applyPerSec, unit: 'tx/s' }, `≥ ${TARGET} tx/s`),
    row('sync, fresh node validating from peers', syncPerSec, 'tx/s', { name: 'verify 1 thread + addBlock in series', value: serial, unit: 'tx/s' }, `≥ ${TARGET} tx/s`),
  ];
  printRows(summary);
  writeResult('sync', {
    txs: built.txs, blocks: BLOCKS, txsPerBlock: TXS_PER_BLOCK, accounts: ACCOUNTS, peers: SERVERS,
    seconds: Number(secs.toFixed(3)), txPerSec: Math.round(syncPerSec), blocksPerSec: Number((BLOCKS / secs).toFixed(1)),
    firstBlockMs: Math.round(firstBlockMs), freshNodeCpuSeconds: Number(cpu.toFixed(2)), servingNodesCpuSeconds: Number(serverCpu.toFixed(2)),
    cpuPerTxMicros: Number(cpuPerTxUs.toFixed(1)), cpuCeilingTxPerSec: Math.round(cpuCeiling),
    syncRounds: rounds.length, blocksPerSource: named, applyWaitMs: { download: waited('waitDownloadMs'), verify: waited('waitVerifyMs') },
    limits: { rawVerify1ThreadPerSec: { before: Math.round(raw1Before), after: Math.round(raw1After), mean: Math.round(raw1) }, addBlockPreverifiedTxPerSec: Math.round(applyPerSec), serialTxPerSec: Math.round(serial) },
    targetTxPerSec: TARGET, totalSeconds: Number(((nowMs() - t00) / 1000).toFixed(1)),
    summary,
  });
} finally {
  await Promise.all([fresh, ...servers].map((n) => n?.stop()));
  if (process.env.KEEP_TMP) console.log(`kept ${dir}`); else rmDir(dir);
}
