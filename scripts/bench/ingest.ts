/**
 * Single-node ingest: signed transfers/s accepted into the mempool (persisted), signatures NOT pre-verified.
 *  (a) in-process: Mempool.add on LevelDB, fed like TxReactor#onTxs (src/p2p/tx-reactor.ts) feeds it (messages of 1024 transactions,
 *      each message's adds made together, messages one after another), with the signature check on the
 *      main thread (InlineVerifier) and on a pool of 2 worker threads (WorkerVerifier, the node's default
 *      on this machine);
 *  (b) the P2P path of a real node process: a raw wire client does the handshake and sends TXS frames of
 *      1024 transactions over a real WebSocket; timed until getMempoolInfo counts them all;
 *  (c) JSON-RPC sendTransaction over HTTP against a real node process, batches of 100, 1 and 8 clients.
 * The load generators run on the same machine (bodies prebuilt; sending still costs CPU the node would
 * otherwise have). Node processes run the production MeshNode (node-main.js) with 2 verify threads.
 * Limit: raw node:crypto verify, single thread and 2 worker threads, measured in this run.
 * Run: node dist/scripts/bench/ingest.js [--smoke]    Writes scripts/bench/results/ingest.json.
 */
import os from 'node:os';
import path from 'node:path';
import { Chain } from '../../src/chain/chain.js';
import { InlineVerifier, type SignatureVerifier } from '../../src/crypto/ed25519.js';
import { WorkerVerifier } from '../../src/crypto/verifypool.js';
import { MSG } from '../../src/p2p/messages.js';
import { newKeyPair } from '../../src/crypto/keyfile.js';
import { WirePeer } from '../../harness/p2pnet.js';
import { SigCache } from '../../src/crypto/sigcache.js';
import { Mempool } from '../../src/mempool/mempool.js';
import { openLevel } from '../../src/storage/kv.js';
import type { Tx } from '../../src/ledger/tx.js';
import { SMOKE, makeRawItems, nowMs, printRows, rawVerifyRate, rawVerifyRateWorkers, row, sleep, writeResult } from './common.js';
import { makeAccounts, makeGenesis, rmDir, tmpDir, transfer, writeGenesisJson, type Account } from './fixtures.js';
import { sendAll, startBenchNode, threadCpuSeconds } from './nodeproc.js';
import { freePort, rpc } from '../../harness/proc.js';

const SENDERS = SMOKE ? 100 : 2000;
const PER_SENDER = SMOKE ? 4 : 10; // < maxPerSender (64)
const VERIFY_MS = SMOKE ? 200 : 2000;
const BATCH = 100;

/**
 * Where the CPU went during a timed ingest, in µs per transaction: the node's main thread, its signature
 * workers, its other threads (GC helpers, LevelDB, libuv), and this process (the load generator), which
 * shares the machine. `ceiling` is what the 2 cores could ingest at that much CPU per transaction.
 */
interface CpuPerTx { main: number; verify: number; other: number; generator: number; total: number; ceiling: number; busyPct: number }
function cpuMeter(pid: number): (txs: number, secs: number) => CpuPerTx {
  const t0 = threadCpuSeconds(pid);
  const g0 = process.cpuUsage();
  return (txs, secs) => {
    const t1 = threadCpuSeconds(pid);
    const g1 = process.cpuUsage(g0);
    const us = (x: number) => Number(((x * 1e6) / txs).toFixed(1));
    const main = us(t1.main - t0.main), verify = us(t1.verify - t0.verify), other = us(t1.other - t0.other);
    const generator = us((g1.user + g1.system) / 1e6);
    const total = Number((main + verify + other + generator).toFixed(1));
    const busyPct = Math.round((100 * total * txs) / 1e6 / secs / CORES);
    return { main, verify, other, generator, total, ceiling: Math.round((CORES * 1e6) / total), busyPct };
  };
}
const CORES = os.cpus().length;
const cpuLine = (c: CpuPerTx) => `CPU per tx: node main ${c.main} µs, signature workers ${c.verify} µs, other node threads ${c.other} µs, load generator ${c.generator} µs = ${c.total} µs → ${CORES} cores allow ${c.ceiling} tx/s at that cost; machine ${c.busyPct} % busy`;

/** All senders' nonce k before any nonce k+1. */
function signAll(accts: Account[], per: number): Tx[] {
  const out: Tx[] = [];
  for (let k = 0; k < per; k++) for (let i = 0; i < accts.length; i++) out.push(transfer(accts[i]!, accts[(i + 1) % accts.length]!.pk, 1000n));
  return out;
}

// ---- limits
const rawItems = makeRawItems(SMOKE ? 100 : 1000);
const raw1 = rawVerifyRate(rawItems, VERIFY_MS);
const raw2 = await rawVerifyRateWorkers(rawItems, 2, VERIFY_MS);
console.log(`limit: raw node:crypto verify ${raw1.toFixed(0)}/s (1 thread), ${raw2.toFixed(0)}/s (2 worker threads)`);

// ---- (a) in-process
const [validator] = makeAccounts('validator', 1);
const MSG_TXS = 1024;

/** Feed `txs` as TxReactor#onTxs (src/p2p/tx-reactor.ts) does: one message's transactions in one addMany call, messages in turn. Returns tx/s. */
async function feedMessages(mempool: Mempool, txs: Tx[]): Promise<number> {
  const t = nowMs();
  for (let i = 0; i < txs.length; i += MSG_TXS) {
    const refused = (await mempool.addMany(txs.slice(i, i + MSG_TXS))).find((r) => r instanceof Error);
    if (refused) throw refused;
  }
  return txs.length / ((nowMs() - t) / 1000);
}

async function inProcess(tag: string, verifier: SignatureVerifier): Promise<number> {
  const accts = makeAccounts(`ingest-${tag}`, SENDERS);
  const genesis = makeGenesis([validator!], accts, 10n ** 12n);
  const txs = signAll(accts, PER_SENDER);
  const dir = tmpDir('ingest');
  const db = await openLevel(dir);
  try {
    const sigCache = new SigCache();
    const chain = await Chain.open({ db, genesis, verifier, sigCache });
    const mempool = new Mempool({ db, genesis, accounts: chain, verifier, sigCache });
    const perSec = await feedMessages(mempool, txs);
    if (mempool.size !== txs.length) throw new Error(`mempool holds ${mempool.size} of ${txs.length}`);
    await mempool.flush();
    await chain.close(); // closes the verifier
    return perSec;
  } finally {
    await db.close();
    rmDir(dir);
  }
}
const inlinePerSec = await inProcess('inline', new InlineVerifier());
const poolPerSec = await inProcess('pool', new WorkerVerifier(2));
console.log(`(a) Mempool.add in-process, messages of ${MSG_TXS}: main-thread verify ${inlinePerSec.toFixed(0)} tx/s, 2 verify workers ${poolPerSec.toFixed(0)} tx/s (${SENDERS * PER_SENDER} txs, ${SENDERS} senders)`);

// ---- (b) P2P over a real WebSocket
const dirP = tmpDir('ingest-p2p');
const p2pAccts = makeAccounts('ingest-p2p', SENDERS);
const p2pGenesis = makeGenesis([validator!], p2pAccts, 10n ** 12n);
const p2pGenesisFile = path.join(dirP, 'genesis.json');
writeGenesisJson(p2pGenesisFile, p2pGenesis);
const p2pTxs = signAll(p2pAccts, PER_SENDER);
const p2pPort = await freePort();
const p2pNode = await startBenchNode({ dir: dirP, genesisFile: p2pGenesisFile, p2pPort });
let p2pPerSec = 0;
let p2pCpu: CpuPerTx | undefined;
try {
  const info = await rpc(p2pNode.rpcPort, 'getChainInfo') as { chainId: string; genesisHash: string };
  const peer = await WirePeer.connect(`ws://127.0.0.1:${p2pPort}`);
  const key = newKeyPair();
  await peer.handshake({ key, chainId: info.chainId, genesisHash: info.genesisHash });
  const meter = cpuMeter(p2pNode.pid);
  const t = nowMs();
  for (let i = 0; i < p2pTxs.length; i += MSG_TXS) peer.send({ type: MSG.TXS, txs: p2pTxs.slice(i, i + MSG_TXS).map((tx) => tx.bytes) });
  for (;;) {
    const m = await rpc(p2pNode.rpcPort, 'getMempoolInfo') as { size: number };
    if (m.size >= p2pTxs.length) break;
    if (peer.close) throw new Error(`the node closed the bench peer: ${peer.close.code} ${peer.close.reason}`);
    if (nowMs() - t > 120_000) throw new Error(`P2P ingest stalled at ${m.size} of ${p2pTxs.length}`);
    await sleep(5);
  }
  p2pPerSec = p2pTxs.length / ((nowMs() - t) / 1000);
  p2pCpu = meter(p2pTxs.length, (nowMs() - t) / 1000);
  peer.terminate();
} finally {
  await p2pNode.stop();
  rmDir(dirP);
}
console.log(`(b) P2P TXS frames of ${MSG_TXS} over WebSocket to a node process: ${p2pPerSec.toFixed(0)} tx/s`);
console.log(`    ${cpuLine(p2pCpu!)}`);

// ---- (c) HTTP JSON-RPC against a real node process
const dirB = tmpDir('ingest-http');
const httpAccts = makeAccounts('ingest-http', SENDERS);
const genesisFile = path.join(dirB, 'genesis.json');
writeGenesisJson(genesisFile, makeGenesis([validator!], httpAccts, 10n ** 12n));
const httpTxs = signAll(httpAccts, PER_SENDER);
const httpHalf = Math.floor(httpTxs.length / 2);
const node = await startBenchNode({ dir: dirB, genesisFile });
let http1, http8, http8Cpu: CpuPerTx | undefined;
try {
  http1 = await sendAll(node.rpcPort, httpTxs.slice(0, httpHalf), { batch: BATCH, clients: 1 });
  const meter = cpuMeter(node.pid);
  const t = nowMs();
  http8 = await sendAll(node.rpcPort, httpTxs.slice(httpHalf), { batch: BATCH, clients: 8 });
  http8Cpu = meter(httpTxs.length - httpHalf, (nowMs() - t) / 1000);
  for (const r of [http1, http8]) if (r.errors) throw new Error(`sendTransaction errors: ${r.errors}, first ${r.firstError}`);
} finally {
  await node.stop();
  rmDir(dirB);
}
console.log(`(c) sendTransaction over HTTP, batches of ${BATCH}: 1 client ${http1.perSec.toFixed(0)} tx/s, 8 clients ${http8.perSec.toFixed(0)} tx/s`);
console.log(`    8 clients: ${cpuLine(http8Cpu!)}`);

const lim1 = { name: 'raw node:crypto verify, 1 thread', value: raw1, unit: 'verifies/s' };
const lim2 = { name: 'raw node:crypto verify, 2 worker threads', value: raw2, unit: 'verifies/s' };
const summary = [
  row('ingest in-process Mempool.add, 1024-tx messages, main-thread verify', inlinePerSec, 'tx/s', lim1),
  row('ingest in-process Mempool.add, 1024-tx messages, 2 verify workers', poolPerSec, 'tx/s', lim2, '≥ 0.55'),
  row('ingest P2P, TXS frames over WebSocket to a node process', p2pPerSec, 'tx/s', lim2, '≥ 10,000 tx/s (≥ 0.55)'),
  row('ingest HTTP sendTransaction, batches of 100, 1 client', http1.perSec, 'tx/s', lim2),
  row('ingest HTTP sendTransaction, batches of 100, 8 clients', http8.perSec, 'tx/s', lim2, '≥ 10,000 tx/s (≥ 0.55)'),
];
printRows(summary);
writeResult('ingest', {
  senders: SENDERS, txs: SENDERS * PER_SENDER, txsPerMessage: MSG_TXS,
  rawVerifyPerSec: { thread1: Math.round(raw1), workers2: Math.round(raw2) },
  inProcess: { mainThreadVerifyTxPerSec: Math.round(inlinePerSec), workers2TxPerSec: Math.round(poolPerSec) },
  p2p: { txPerSec: Math.round(p2pPerSec), cpuPerTxMicros: p2pCpu },
  http: { batch: BATCH, client1TxPerSec: Math.round(http1.perSec), clients8TxPerSec: Math.round(http8.perSec), clients8CpuPerTxMicros: http8Cpu, rateLimitRaisedFromDefault: '2000 req/s per IP' },
  summary,
});
