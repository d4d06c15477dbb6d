/**
 * Memory: RSS of a real node process (node-main.js: production node, rate limit raised, no producer so
 * nothing leaves the mempool) holding 100k pending transfers from 2000 senders (50 each; maxPerSender is
 * 64), filled by batched sendTransaction over HTTP (batches of 100, 8 clients). VmRSS from /proc/<pid>/status
 * after the fill and a 2 s settle; also the idle RSS before the fill and the peak (VmHWM).
 * The launcher answers SIGUSR2 with process.memoryUsage() before and after a full GC (--expose-gc; the
 * RSS figure itself is read BEFORE that signal, so the forced GC does not flatter it).
 * Target: 300 MB = 286.1 MiB (RSS is reported in MiB; the target is the decimal megabytes).
 * Options: --verify-threads N (the node's signature workers; default: the node's default), --node-args '…'.
 * Run: node dist/scripts/bench/memory.js [--smoke]    Writes scripts/bench/results/memory.json.
 */
import fs from 'node:fs';
import path from 'node:path';
import { rpc } from '../../harness/proc.js';
import type { Tx } from '../../src/ledger/tx.js';
import { SMOKE, printRows, row, sleep, writeResult } from './common.js';
import { makeAccounts, makeGenesis, rmDir, tmpDir, transfer, writeGenesisJson } from './fixtures.js';
import { rssMiB, sendAll, startBenchNode } from './nodeproc.js';

const SENDERS = SMOKE ? 100 : 2000;
const PER_SENDER = SMOKE ? 10 : 50;
const TARGET_MIB = Number((300e6 / 1048576).toFixed(1)); // 300 MB

const dir = tmpDir('memory');
const [validator] = makeAccounts('validator', 1);
const accts = makeAccounts('memory', SENDERS);
const genesisFile = path.join(dir, 'genesis.json');
writeGenesisJson(genesisFile, makeGenesis([validator!], accts, 10n ** 12n));
// --node-args '<flags>' runs the node with extra Node/V8 flags (e.g. to study heap sizing).
const nodeArgsAt = process.argv.indexOf('--node-args');
// --verify-threads N: the node's signature worker threads (default: the node's own default).
const vtAt = process.argv.indexOf('--verify-threads');
const node = await startBenchNode({
  dir, genesisFile, nodeArgs: nodeArgsAt > 0 ? process.argv[nodeArgsAt + 1]!.split(' ').filter(Boolean) : [],
  ...(vtAt > 0 ? { verifyThreads: Number(process.argv[vtAt + 1]) } : {}),
});
let usage: Record<string, number> | undefined;
let idle, filled, size = 0, bytes = 0, fillPerSec = 0;
try {
  await sleep(1000);
  idle = rssMiB(node.pid);
  // Sign and send in chunks of 10k so the client does not hold everything at once.
  let sentMs = 0, sent = 0;
  for (let k = 0; k < PER_SENDER; k += 5) {
    const txs: Tx[] = [];
    for (let n = k; n < Math.min(k + 5, PER_SENDER); n++) for (let i = 0; i < SENDERS; i++) txs.push(transfer(accts[i]!, accts[(i + 1) % SENDERS]!.pk, 1000n));
    const r = await sendAll(node.rpcPort, txs, { batch: 100, clients: 8 });
    if (r.errors) throw new Error(`sendTransaction errors: ${r.errors}, first ${r.firstError}`);
    sentMs += r.ms;
    sent += r.accepted;
    if (!SMOKE) process.stdout.write(`\r  filled ${sent} (${(r.accepted / (r.ms / 1000)).toFixed(0)} tx/s, RSS ${rssMiB(node.pid).rss.toFixed(0)} MiB)   `);
  }
  if (!SMOKE) process.stdout.write('\n');
  fillPerSec = sent / (sentMs / 1000);
  await sleep(2000);
  filled = rssMiB(node.pid);
  node.child.kill('SIGUSR2');
  for (let i = 0; i < 100 && !usage; i++) { // a full GC of a few hundred MiB takes a while
    await sleep(100);
    const lines = fs.readFileSync(node.logFile, 'utf8').split('\n').filter((l) => l.includes('"memoryUsage"'));
    usage = lines.length ? JSON.parse(lines[lines.length - 1]!) : undefined;
  }
  const info = await rpc(node.rpcPort, 'getMempoolInfo');
  size = info.size;
  bytes = info.bytes;
  if (size !== SENDERS * PER_SENDER) throw new Error(`mempool holds ${size} of ${SENDERS * PER_SENDER}`);
} finally {
  await node.stop();
  rmDir(dir);
}
const perTxBytes = ((filled.rss - idle.rss) * 1024 * 1024) / size;
console.log(`node RSS: idle ${idle.rss.toFixed(1)} MiB, with ${size} pending txs (${(bytes / 1e6).toFixed(1)} MB of tx bytes) ${filled.rss.toFixed(1)} MiB, peak ${filled.hwm.toFixed(1)} MiB`);
console.log(`  process.memoryUsage() in the node (MiB): ${JSON.stringify(usage)}`);
console.log(`  ≈ ${perTxBytes.toFixed(0)} bytes of RSS per pending tx; fill rate ${fillPerSec.toFixed(0)} tx/s`);
const summary = [
  row(`node RSS with ${size} mempool txs`, filled.rss, 'MiB', { name: 'target 300 MB', value: TARGET_MIB, unit: 'MiB' }, '≤ 300 MB'),
  row(`node peak RSS (VmHWM) during the fill`, filled.hwm, 'MiB', { name: 'target 300 MB', value: TARGET_MIB, unit: 'MiB' }, '≤ 300 MB'),
];
printRows(summary);
writeResult('memory', {
  mempoolTxs: size, mempoolTxBytes: bytes, senders: SENDERS,
  rssMiB: { idle: Number(idle.rss.toFixed(1)), filled: Number(filled.rss.toFixed(1)), peak: Number(filled.hwm.toFixed(1)) },
  nodeMemoryUsageMiB: usage ?? null, rssBytesPerPendingTx: Math.round(perTxBytes), fillTxPerSec: Math.round(fillPerSec), targetMiB: TARGET_MIB,
  summary,
});
