/**
 * A real node process for the benchmarks (node-main.js, see there), its RSS, and a JSON-RPC
 * sendTransaction load generator (C concurrent HTTP clients, each sending batches in turn).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, rpc } from '../../harness/proc.js';
import { toHex } from '../../src/encoding/bytes.js';
import type { Tx } from '../../src/ledger/tx.js';
import { nowMs, sleep } from './common.js';

const MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'node-main.js');
const live = new Set<ChildProcess>();
process.once('exit', () => { for (const c of live) c.kill('SIGKILL'); });

export interface BenchNode { child: ChildProcess; pid: number; rpcPort: number; logFile: string; stop(): Promise<void> }

export async function startBenchNode(o: { dir: string; genesisFile: string; name?: string; ratePerSec?: number; p2pPort?: number; bootnodes?: string[]; key?: string; rpcPort?: number; logLevel?: 'info' | 'warn'; nodeArgs?: string[]; verifyThreads?: number }): Promise<BenchNode> {
  const rpcPort = o.rpcPort ?? (await freePort());
  const name = o.name ?? 'node';
  const logFile = path.join(o.dir, `${name}.log`);
  const fd = fs.openSync(logFile, 'a');
  const cfg = { datadir: path.join(o.dir, `data-${name}`), genesis: o.genesisFile, rpcPort, ratePerSec: o.ratePerSec, p2pPort: o.p2pPort, bootnodes: o.bootnodes, key: o.key, logLevel: o.logLevel, verifyThreads: o.verifyThreads };
  // BENCH_CPU_PROF=<dir>: a CPU profile of every bench node (studying where a figure's time goes).
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const child = spawn(process.execPath, ['--expose-gc', ...prof, ...(o.nodeArgs ?? []), MAIN, JSON.stringify(cfg)], { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  live.add(child);
  let exited = false;
  const exitP = new Promise<void>((r) => child.once('exit', () => { exited = true; live.delete(child); r(); }));
  const t0 = Date.now();
  for (;;) {
    if (exited) throw new Error(`bench node exited at start:\n${fs.readFileSync(logFile, 'utf8').slice(-2000)}`);
    try {
      await rpc(rpcPort, 'getChainInfo', undefined, { timeoutMs: 2000 });
      break;
    } catch {
      if (Date.now() - t0 > 60_000) throw new Error(`bench node RPC not ready:\n${fs.readFileSync(logFile, 'utf8').slice(-2000)}`);
      await sleep(50);
    }
  }
  return {
    child, pid: child.pid!, rpcPort, logFile,
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exitP;
      clearTimeout(t);
    },
  };
}

/** CPU seconds (user + system) used so far by process `pid` (Linux /proc/<pid>/stat, clock ticks of 1/100 s). */
export function cpuSeconds(pid: number): number {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // fields from #3 (state) on
  return (Number(f[11]) + Number(f[12])) / 100; // utime (#14), stime (#15)
}

/**
 * CPU seconds of `pid` by thread: its main thread, the signature workers (named 'ml-verify' by
 * verify-worker.ts) and the rest (V8 GC and compiler helpers, libuv's pool, inspector). Threads that exited
 * are not counted (the split of a long-lived node is what this is for).
 */
export function threadCpuSeconds(pid: number): { main: number; verify: number; other: number } {
  const out = { main: 0, verify: 0, other: 0 };
  let tids: string[] = [];
  try { tids = fs.readdirSync(`/proc/${pid}/task`); } catch { return out; }
  for (const tid of tids) {
    try {
      const s = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      const secs = (Number(f[11]) + Number(f[12])) / 100;
      const comm = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'));
      if (Number(tid) === pid) out.main += secs; else if (comm === 'ml-verify') out.verify += secs; else out.other += secs;
    } catch { /* the thread exited */ }
  }
  return out;
}

/** VmRSS and VmHWM of `pid` in MiB (Linux /proc). */
export function rssMiB(pid: number): { rss: number; hwm: number } {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

/**
 * Send `txs` as JSON-RPC batches of `batch` sendTransaction calls from `clients` concurrent HTTP clients
 * (bodies prebuilt before timing). Returns accepted/sec over the wall time and the errors seen.
 */
export async function sendAll(port: number, txs: Tx[], o: { batch: number; clients: number }): Promise<{ perSec: number; accepted: number; errors: number; firstError?: string; ms: number }> {
  const bodies: string[] = [];
  let id = 0;
  for (let i = 0; i < txs.length; i += o.batch) {
    bodies.push(JSON.stringify(txs.slice(i, i + o.batch).map((tx) => ({ jsonrpc: '2.0', id: ++id, method: 'sendTransaction', params: { tx: toHex(tx.bytes) } }))));
  }
  let next = 0, accepted = 0, errors = 0;
  let firstError: string | undefined;
  const t0 = nowMs();
  await Promise.all(Array.from({ length: o.clients }, async () => {
    while (next < bodies.length) {
      const body = bodies[next++]!;
      const res = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const j = (await res.json()) as { result?: unknown; error?: { message: string; data?: unknown } }[] | { error: { message: string } };
      if (!Array.isArray(j)) { errors += o.batch; firstError ??= JSON.stringify(j); continue; }
      for (const r of j) {
        if (r.error) { errors++; firstError ??= JSON.stringify(r.error); } else accepted++;
      }
    }
  }));
  const ms = nowMs() - t0;
  return { perSec: accepted / (ms / 1000), accepted, errors, firstError, ms };
}
