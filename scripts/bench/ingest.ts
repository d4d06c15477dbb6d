/**
 * Single-node ingest: signed transfers/s accepted into the mempool, signatures NOT pre-verified.
 *  (a) in-process, Mempool.add on LevelDB (the P2P path's core), two ways:
 *      - serial: each add awaited before the next, as Network#onTxs does for the transactions of one
 *        peer message;
 *      - concurrent: 256 adds in flight (what several peers / a batching caller could reach);
 *  (b) JSON-RPC sendTransaction over HTTP against a real node process (node-main.js: production node,
 *      rate limit raised), batches of 100, with 1 and with 8 concurrent clients. The load generator runs
 *      on the same machine (bodies prebuilt; it still costs CPU the node would otherwise have).
 * Limit: raw node:crypto verify, single thread and 2 worker threads, measured in this run.
 * Run: node dist/scripts/bench/ingest.js [--smoke]    Writes scripts/bench/results/ingest.json.
 */
import path from 'node:path';
import { Chain } from '../../src/chain/chain.js';
import { InlineVerifier } from '../../src/crypto/ed25519.js';
import { SigCache } from '../../src/crypto/sigcache.js';
import { Mempool } from '../../src/mempool/mempool.js';
import { openLevel } from '../../src/storage/kv.js';
import type { Tx } from '../../src/ledger/tx.js';
import { SMOKE, makeRawItems, nowMs, printRows, rawVerifyRate, rawVerifyRateWorkers, row, writeResult } from './common.js';
import { makeAccounts, makeGenesis, rmDir, tmpDir, transfer, writeGenesisJson, type Account } from './fixtures.js';
import { sendAll, startBenchNode } from './nodeproc.js';

const SENDERS = SMOKE ? 100 : 2000;
const PER_SENDER = SMOKE ? 4 : 10; // < maxPerSender (64)
const VERIFY_MS = SMOKE ? 200 : 2000;
const BATCH = 100;

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
const accts = makeAccounts('ingest', SENDERS);
const genesis = makeGenesis([validator!], accts, 10n ** 12n);
const txs = signAll(accts, PER_SENDER);
const half = Math.floor(txs.length / 2);
const dirA = tmpDir('ingest');
const db = await openLevel(dirA);
let serialPerSec = 0, concPerSec = 0;
try {
  const sigCache = new SigCache();
  const verifier = new InlineVerifier();
  const chain = await Chain.open({ db, genesis, verifier, sigCache });
  const mempool = new Mempool({ db, genesis, accounts: chain, verifier, sigCache });
  let t = nowMs();
  for (let i = 0; i < half; i++) await mempool.add(txs[i]!);
  serialPerSec = half / ((nowMs() - t) / 1000);
  const rest = txs.slice(half);
  let next = 0;
  t = nowMs();
  await Promise.all(Array.from({ length: 256 }, async () => { while (next < rest.length) await mempool.add(rest[next++]!); }));
  concPerSec = rest.length / ((nowMs() - t) / 1000);
  if (mempool.size !== txs.length) throw new Error(`mempool holds ${mempool.size} of ${txs.length}`);
  await mempool.flush();
  await chain.close();
} finally {
  await db.close();
  rmDir(dirA);
}
console.log(`(a) Mempool.add in-process: serial ${serialPerSec.toFixed(0)} tx/s, 256 concurrent ${concPerSec.toFixed(0)} tx/s (${txs.length} txs, ${SENDERS} senders)`);

// ---- (b) HTTP JSON-RPC against a real node process
const dirB = tmpDir('ingest-http');
const httpAccts = makeAccounts('ingest-http', SENDERS);
const genesisFile = path.join(dirB, 'genesis.json');
writeGenesisJson(genesisFile, makeGenesis([validator!], httpAccts, 10n ** 12n));
const httpTxs = signAll(httpAccts, PER_SENDER);
const httpHalf = Math.floor(httpTxs.length / 2);
const node = await startBenchNode({ dir: dirB, genesisFile });
let http1, http8;
try {
  http1 = await sendAll(node.rpcPort, httpTxs.slice(0, httpHalf), { batch: BATCH, clients: 1 });
  http8 = await sendAll(node.rpcPort, httpTxs.slice(httpHalf), { batch: BATCH, clients: 8 });
  for (const r of [http1, http8]) if (r.errors) throw new Error(`sendTransaction errors: ${r.errors}, first ${r.firstError}`);
} finally {
  await node.stop();
  rmDir(dirB);
}
console.log(`(b) sendTransaction over HTTP, batches of ${BATCH}: 1 client ${http1.perSec.toFixed(0)} tx/s, 8 clients ${http8.perSec.toFixed(0)} tx/s`);

const lim1 = { name: 'raw node:crypto verify, 1 thread', value: raw1, unit: 'verifies/s' };
const lim2 = { name: 'raw node:crypto verify, 2 worker threads', value: raw2, unit: 'verifies/s' };
const summary = [
  row('ingest in-process Mempool.add, serial (P2P per-message path)', serialPerSec, 'tx/s', lim1),
  row('ingest in-process Mempool.add, 256 concurrent', concPerSec, 'tx/s', lim1),
  row('ingest in-process Mempool.add, 256 concurrent', concPerSec, 'tx/s', lim2),
  row('ingest HTTP sendTransaction, batches of 100, 1 client', http1.perSec, 'tx/s', lim2),
  row('ingest HTTP sendTransaction, batches of 100, 8 clients', http8.perSec, 'tx/s', lim2),
];
printRows(summary);
writeResult('ingest', {
  senders: SENDERS, txs: txs.length,
  rawVerifyPerSec: { thread1: Math.round(raw1), workers2: Math.round(raw2) },
  inProcess: { serialTxPerSec: Math.round(serialPerSec), concurrent256TxPerSec: Math.round(concPerSec) },
  http: { batch: BATCH, client1TxPerSec: Math.round(http1.perSec), clients8TxPerSec: Math.round(http8.perSec), rateLimitRaisedFromDefault: '2000 req/s per IP' },
  summary,
});
