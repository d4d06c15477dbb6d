/**
 * Benchmark-only node launcher: the production MeshNode.start (LevelDB datadir, JSON-RPC over HTTP on
 * 127.0.0.1), like `meshledger node --rpc-rate … --verify-threads …`, configured from one JSON argument,
 * with a SIGUSR2 memory report for the memory benchmark. The per-client RPC rate limit is raised by
 * default: the node's default (2000 requests/s per client IP, burst 4000) would otherwise be the figure an
 * ingest benchmark from one 127.0.0.1 client measures.
 *
 *   node dist/scripts/bench/node-main.js '{"datadir":…,"genesis":…,"rpcPort":…,"ratePerSec":…,"p2pPort":…,"bootnodes":[…],"key":…}'
 */
import { readGenesisFile } from '../../src/node/genesisfile.js';
import { readKeyFile } from '../../src/crypto/keyfile.js';
import { defaultVerifyThreads, MeshNode } from '../../src/node/node.js';
import { createLogger } from '../../src/util/log.js';

const cfg = JSON.parse(process.argv[2] ?? '{}') as {
  datadir: string; genesis: string; rpcPort?: number; ratePerSec?: number; p2pPort?: number; bootnodes?: string[]; key?: string; logLevel?: 'info' | 'warn'; verifyThreads?: number; verifyNice?: number;
};
const log = createLogger({ level: cfg.logLevel ?? 'warn', format: 'json' });
const genesis = await readGenesisFile(cfg.genesis);
const key = cfg.key ? await readKeyFile(cfg.key) : undefined;
const rate = cfg.ratePerSec ?? 1e9;
const node = await MeshNode.start({
  datadir: cfg.datadir, genesis, key,
  rpc: cfg.rpcPort !== undefined ? { host: '127.0.0.1', port: cfg.rpcPort } : undefined,
  p2p: cfg.p2pPort !== undefined ? { host: '127.0.0.1', port: cfg.p2pPort } : undefined,
  bootnodes: cfg.bootnodes,
  rpcLimits: { ratePerSec: rate, rateBurst: rate * 2 },
  verifyThreads: cfg.verifyThreads ?? defaultVerifyThreads(),
  // BENCH_VERIFY_NICE=<n> (A/B runs of the workers' priority); otherwise the node's default.
  verifyNice: cfg.verifyNice ?? (process.env.BENCH_VERIFY_NICE !== undefined ? Number(process.env.BENCH_VERIFY_NICE) : undefined),
}, { log });
console.log(JSON.stringify({ msg: 'bench node started', pid: process.pid, rpc: node.rpcAddress, nodeId: node.network?.nodeIdHex ?? null }));
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  node.stop().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
};
process.on('SIGTERM', stop);
// SIGUSR2: print process.memoryUsage() (MiB) to the log, for the memory benchmark's breakdown.
process.on('SIGUSR2', () => {
  const mib = (x: number) => Number((x / 1048576).toFixed(1));
  const before = process.memoryUsage();
  const gc = (globalThis as { gc?: () => void }).gc; // with --expose-gc (nodeproc.ts passes it)
  gc?.();
  const m = process.memoryUsage();
  console.log(JSON.stringify({ msg: 'memoryUsage', heapUsedBeforeGc: mib(before.heapUsed), rssBeforeGc: mib(before.rss), rss: mib(m.rss), heapTotal: mib(m.heapTotal), heapUsed: mib(m.heapUsed), external: mib(m.external), arrayBuffers: mib(m.arrayBuffers), mempool: node.mempool.size, gc: !!gc }));
});
process.on('SIGINT', stop);
