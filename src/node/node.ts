/**
 * The node: creates the subsystems, wires them (src/node/wiring.ts is the one place where they are subscribed
 * to each other's events), starts and stops them in order, and keeps the datadir's files (database, node key,
 * admin token).
 */
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Chain, genesisHashOf } from '../chain/chain.js';
import { InlineVerifier, type SignatureVerifier } from '../crypto/ed25519.js';
import { SigCache } from '../crypto/sigcache.js';
import { WorkerVerifier } from '../crypto/verifypool.js';
import { availableParallelism } from 'node:os';
import type { Genesis } from '../ledger/genesis.js';
import { Mempool, type MempoolLimits } from '../mempool/mempool.js';
import { RpcDispatcher, RpcHttpServer } from '../rpc/server.js';
import { createHandlers } from '../rpc/methods.js';
import { Subscriptions } from '../rpc/subscriptions.js';
import { attachWebSocket } from '../rpc/ws.js';
import { loadExplorerFiles, serveExplorer } from '../rpc/explorer.js';
import { ReorgLog } from '../rpc/views.js';
import { LruMap } from '../util/lru.js';
import { TokenBucket } from '../util/ratelimit.js';
import { readFile, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { openLevel, type KV } from '../storage/kv.js';
import { systemClock, type Clock } from '../util/clock.js';
import { loadSchema, packageRoot } from '../util/schemas.js';
import type { Logger } from '../util/log.js';
import { newKeyPair, readKeyFile, writeKeyFile, type KeyPair } from '../crypto/keyfile.js';
import { Network, type NetLimits } from '../p2p/network.js';
import { WsTransport } from '../p2p/transport.js';
import type { Transport } from '../p2p/transport.js';
import { systemRandom, type Random } from '../util/random.js';
import { existsSync, readFileSync } from 'node:fs';
import { blockCandidates, Producer } from '../producer/producer.js';
import { NodeMetrics } from '../metrics/metrics.js';
import type { InvariantViolation } from '../util/assert.js';
import { wireMetrics, wireNetwork, wireReorgLog, wireSubscriptions } from './wiring.js';
import { proposerFor, slotAt } from '../ledger/schedule.js';

export interface HostPort { host: string; port: number }

export interface NodeConfig {
  datadir: string;
  genesis: Genesis;
  key?: KeyPair;
  rpc?: HostPort;
  p2p?: HostPort;
  bootnodes?: string[];
  /** URL advertised to peers instead of ws://<p2p host>:<port> (NAT, proxies). */
  advertise?: string;
  mempool?: Partial<MempoolLimits>;
  net?: Partial<NetLimits>;
  rpcLimits?: Partial<RpcLimits>;
  /**
   * Signature verification threads: ≥ 1 runs a worker pool (the main thread stays free for I/O and
   * consensus), 0 or unset verifies on the main thread. The CLI defaults to defaultVerifyThreads().
   */
  verifyThreads?: number;
  /**
   * How much lower than the main thread the signature workers run (Linux thread niceness, 0..19; default
   * DEFAULT_WORKER_NICE, 0). Blocks are built and connected on the main thread, and everything waits on them.
   */
  verifyNice?: number;
  /**
   * Metrics (a per-node Prometheus registry, README "Metrics"): on unless false. With RPC they are served at
   * GET /metrics on the RPC port (`--no-metrics` turns both off).
   */
  metrics?: boolean;
  /** Also collect process metrics (CPU, RSS, GC, event-loop lag): for a real node process, not the simulator. */
  processMetrics?: boolean;
  /**
   * The block explorer page (README "Explorer"): with RPC, served at GET /explorer on the RPC port unless
   * false (`--no-explorer`). It uses only the public JSON-RPC and WebSocket API.
   */
  explorer?: boolean;
}

/** One verification worker per CPU, at most 4 (a verifier is rarely the bottleneck beyond that). */
export function defaultVerifyThreads(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

/** JSON-RPC limits (all configurable; documented in README "JSON-RPC"). */
export interface RpcLimits {
  maxBodyBytes: number;
  maxBatch: number;
  maxSubscriptionsPerConnection: number;
  /** Requests per second per client IP (a batch counts each entry), and the burst allowed. */
  ratePerSec: number;
  rateBurst: number;
  /** Origin allowed by CORS; unset = CORS off. */
  cors?: string;
}

export const DEFAULT_RPC_LIMITS: RpcLimits = {
  maxBodyBytes: 1024 * 1024, maxBatch: 100, maxSubscriptionsPerConnection: 32, ratePerSec: 2000, rateBurst: 4000,
};

export interface NodeDeps {
  log: Logger;
  clock?: Clock;
  /** Store factory; production opens LevelDB under the datadir, the simulator passes memory-level. */
  openStore?: (dir: string) => Promise<KV>;
  verifier?: SignatureVerifier;
  random?: Random;
  /** Peer transport; production uses WebSockets. */
  transport?: Transport;
  /** P2P identity; production keeps one in <datadir>/nodekey.json. */
  nodeKey?: KeyPair;
}

export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupError';
  }
}

export class MeshNode {
  readonly chain: Chain;
  readonly mempool: Mempool;
  readonly producer: Producer | undefined;
  network: Network | undefined;
  rpcAddress: HostPort | undefined;
  /** Where the admin token lives (admin JSON-RPC methods need `Authorization: Bearer <token>`). */
  adminTokenPath: string | undefined;
  /** The node's metrics (undefined with `metrics: false`). */
  readonly metrics: NodeMetrics | undefined;
  readonly startedAt: number;
  readonly #clock: Clock;
  readonly #validator: string | undefined;
  #subs: Subscriptions | undefined;
  readonly #db: KV;
  readonly #log: Logger;
  #rpc: RpcHttpServer | undefined;
  #mempoolWork: Promise<void> = Promise.resolve();
  #stopping = false;
  #stopped: Promise<void> | undefined;
  #warming: Promise<unknown> | null = null;
  #warmAgain = false;
  readonly #unwire: (() => void)[] = [];
  #resolveHalted!: (e: InvariantViolation) => void;
  /** Settles if the chain halts on a failed invariant (the node then stops itself; the CLI exits non-zero). */
  readonly halted = new Promise<InvariantViolation>((resolve) => { this.#resolveHalted = resolve; });

  private constructor(db: KV, chain: Chain, mempool: Mempool, producer: Producer | undefined, log: Logger, clock: Clock, validator: string | undefined, metrics: NodeMetrics | undefined) {
    this.#db = db;
    this.metrics = metrics;
    this.#clock = clock;
    this.startedAt = clock.now();
    this.#validator = validator;
    this.chain = chain;
    this.mempool = mempool;
    this.producer = producer;
    this.#log = log;
  }

  static async start(cfg: NodeConfig, deps: NodeDeps): Promise<MeshNode> {
    const log = deps.log;
    const clock = deps.clock ?? systemClock;
    // With an injected store (simulator, tests) the node touches no filesystem unless RPC needs its token.
    if (!deps.openStore || cfg.rpc) await mkdir(cfg.datadir, { recursive: true });
    const dbDir = chainDbPath(cfg.datadir, cfg.genesis);
    if (!deps.openStore) {
      await noteOtherNetworks(cfg.datadir, dbDir, log);
      await mkdir(dbDir, { recursive: true });
    }
    let db: KV;
    try {
      db = await (deps.openStore ?? openLevel)(dbDir);
    } catch (e) {
      const cause = (e as { cause?: Error }).cause?.message ?? (e as Error).message;
      throw new StartupError(`cannot open the database at ${dbDir}: ${cause}${/lock/i.test(cause) ? ' (is another node using this datadir?)' : ''}`);
    }
    let verifierRef: SignatureVerifier | undefined;
    const metrics = cfg.metrics === false ? undefined : new NodeMetrics({
      processMetrics: cfg.processMetrics,
      info: { version: packageVersion(), chainId: cfg.genesis.chainId, validator: !!cfg.key },
      clockSlot: () => slotAt(cfg.genesis, clock.now()),
      // A verifier with a queue (the worker pool) exposes `pending`; the inline verifier has no queue.
      verifyQueueDepth: () => {
        const pending = (verifierRef as { pending?: unknown } | undefined)?.pending;
        return typeof pending === 'number' ? pending : undefined;
      },
    });
    // Store writes are timed below chain, mempool and network (meshledger_db_write_seconds).
    if (metrics) db = metrics.timeStore(db);
    try {
      const verifier = deps.verifier ?? (cfg.verifyThreads
        ? new WorkerVerifier(cfg.verifyThreads, { nice: cfg.verifyNice, onWorkerLost: (why) => log.warn('signature worker lost; its jobs were verified on the main thread', { why }) })
        : new InlineVerifier());
      verifierRef = verifier;
      const sigCache = new SigCache();
      const chain = await Chain.open({ db, genesis: cfg.genesis, clock, verifier, sigCache, leafHasher: verifier instanceof WorkerVerifier ? verifier : undefined, log: log.child({ mod: 'chain' }) });
      const mempool = new Mempool({ db, genesis: cfg.genesis, accounts: chain, verifier, sigCache, limits: cfg.mempool, log: log.child({ mod: 'mempool' }), clock });
      await mempool.load();
      const producer = cfg.key
        ? new Producer({ chain, mempool, clock, secretKey: cfg.key.secretKey, publicKey: cfg.key.publicKey, log: log.child({ mod: 'producer' }) })
        : undefined;
      const node = new MeshNode(db, chain, mempool, producer, log, clock, cfg.key?.address, metrics);
      node.#wire();
      if (metrics) node.#unwire.push(wireMetrics(metrics, { chain, mempool, producer }));
      // Fork choice over what is stored, now that the mempool listens (see Chain.reconsider).
      await chain.reconsider();
      if (cfg.p2p || cfg.bootnodes?.length) {
        const nodeKey = deps.nodeKey ?? (await loadNodeKey(cfg.datadir));
        node.network = new Network({
          chain, mempool, db, clock, random: deps.random ?? systemRandom, log: log.child({ mod: 'p2p' }), nodeKey,
          transport: deps.transport ?? new WsTransport({
            maxPayload: Network.frameMax(cfg.genesis.params.maxBlockBytes), keepaliveMs: 10_000,
            // A node bound to one specific address also dials from it (multi-homed hosts, test partitions).
            localAddress: cfg.p2p && !['0.0.0.0', '::', 'localhost'].includes(cfg.p2p.host) && /^[0-9.]+$/.test(cfg.p2p.host) ? cfg.p2p.host : undefined,
          }),
          listen: cfg.p2p, advertise: cfg.advertise, bootnodes: cfg.bootnodes, limits: cfg.net,
        });
        node.#unwire.push(wireNetwork(chain, mempool, node.network, producer));
        try {
          await node.network.start();
        } catch (e) {
          throw new StartupError(`cannot start P2P on ${cfg.p2p ? `${cfg.p2p.host}:${cfg.p2p.port}` : 'outbound only'}: ${(e as Error).message}`);
        }
        if (metrics) node.#unwire.push(wireMetrics(metrics, { network: node.network }));
      }
      if (cfg.rpc) await node.#startRpc(cfg.rpc, { ...DEFAULT_RPC_LIMITS, ...cfg.rpcLimits }, cfg.datadir, cfg.explorer !== false);
      producer?.start();
      return node;
    } catch (e) {
      metrics?.close();
      await db.close().catch(() => {});
      throw e;
    }
  }

  /** The node's own listeners: the mempool follows head changes (in order), and a halted chain stops the node. */
  #wire(): void {
    this.#unwire.push(
      this.chain.on('chain:head', ({ connected, disconnected }) => {
        this.#mempoolWork = this.#mempoolWork
          .then(() => this.mempool.onHeadChange(connected, disconnected))
          .catch((e) => this.#log.error('mempool update after head change failed', { error: e }))
          .then(() => this.#warmLeaves());
      }),
      this.chain.on('chain:halted', ({ error }) => {
        this.#log.error('stopping: the chain halted on a failed invariant; nothing of the failed operation was written and the database is at its last good head (restart to continue from it, and report this log)', { error: error.message });
        this.#resolveHalted(error);
        void this.stop();
      }),
    );
  }

  /**
   * After a head change, compute in the idle time before the next block arrives the state-lattice leaves
   * that block will most likely need: those of a block of our mempool's candidates by the next slot's
   * proposer (Chain.warmLeaves). Validating that block then mostly finds its leaves computed. Idle time
   * only: on the worker pool (never this thread), in small chunks, and only while the pool has nothing
   * else queued and the head has not moved. Measured: without those conditions, a loaded 4-validator
   * devnet on 2 cores confirmed 900 instead of 1,855 tx/s at 2,000 offered (the warm-up's leaves queued
   * ahead of signature checks and blocks finished late). At most one warm-up runs; a head change during it
   * starts one more when it ends.
   */
  #warmLeaves(): void {
    const pool = this.chain.leafHasher;
    if (this.#stopping || !(pool instanceof WorkerVerifier)) return;
    if (this.#warming) { this.#warmAgain = true; return; }
    this.#warmAgain = false;
    if (this.mempool.size === 0) return;
    const g = this.chain.genesis;
    const head = this.chain.head;
    const next = Math.max(head.slot, slotAt(g, this.#clock.now())) + 1;
    const idle = () => !this.#stopping && this.chain.head === head && pool.pending === 0;
    if (!idle()) return;
    const t0 = this.#clock.now();
    this.#warming = this.chain.warmLeaves(blockCandidates(this.mempool, g), proposerFor(g, next), idle)
      .then((computed) => this.#log.debug('leaf warm-up', { computed, ms: this.#clock.now() - t0 }))
      .catch((e) => this.#log.debug('leaf warm-up failed', { error: e }))
      .finally(() => {
        this.#warming = null;
        if (this.#warmAgain) this.#warmLeaves();
      });
  }

  async #startRpc(addr: HostPort, limits: RpcLimits, datadir: string, explorer: boolean): Promise<void> {
    const rpcLog = this.#log.child({ mod: 'rpc' });
    const log = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => rpcLog[level](msg, fields);
    this.adminTokenPath = join(datadir, 'admin.token');
    const adminToken = await loadAdminToken(this.adminTokenPath);
    // Per-client (IP) token buckets, bounded in number so a horde of clients cannot grow memory.
    const buckets = new LruMap<string, TokenBucket>(10_000);
    const clock = this.#clock;
    this.#subs = new Subscriptions(this.chain, this.mempool, rpcLog, limits.maxSubscriptionsPerConnection);
    this.#unwire.push(wireSubscriptions(this.chain, this.mempool, this.#subs));
    const reorgs = new ReorgLog();
    this.#unwire.push(wireReorgLog(this.chain, reorgs, () => clock.now()));
    const dispatcher = new RpcDispatcher({
      openrpc: loadSchema('openrpc.json'),
      handlers: createHandlers({
        chain: this.chain, mempool: this.mempool, network: this.network, subscriptions: this.#subs, reorgs,
        version: packageVersion(), validator: this.#validator, startedAt: this.startedAt, now: () => clock.now(),
      }),
      limits: { maxBatch: limits.maxBatch },
      admit: (ctx, n) => {
        const ip = ctx.remote.replace(/:\d+$/, '');
        let b = buckets.get(ip);
        if (!b) buckets.set(ip, (b = new TokenBucket(limits.ratePerSec, limits.rateBurst, clock.now())));
        return b.take(n, clock.now());
      },
      log,
    });
    this.#rpc = new RpcHttpServer(dispatcher, { log, maxBodyBytes: limits.maxBodyBytes, cors: limits.cors, adminToken });
    attachWebSocket(this.#rpc, dispatcher, this.#subs, { maxMessageBytes: limits.maxBodyBytes, log });
    const metrics = this.metrics;
    if (metrics) {
      // Prometheus scrape endpoint: no auth (read-only figures, no keys or addresses); off with --no-metrics.
      this.#rpc.addRoute('GET', '/metrics', async (_req, res) => {
        const { contentType, body } = await metrics.scrape();
        res.writeHead(200, { 'Content-Type': contentType, 'Content-Length': String(Buffer.byteLength(body)) });
        res.end(body);
      });
    }
    if (explorer) {
      // The block explorer's files (read once, now); a package without them serves no page, says so, runs on.
      const dir = join(packageRoot(), 'explorer');
      try {
        serveExplorer(this.#rpc, loadExplorerFiles(dir));
      } catch (e) {
        rpcLog.warn('block explorer not served: its files are missing', { dir, error: (e as Error).message });
      }
    }
    try {
      this.rpcAddress = await this.#rpc.listen(addr.host, addr.port);
    } catch (e) {
      throw new StartupError(`cannot serve JSON-RPC on ${addr.host}:${addr.port}: ${(e as Error).message}`);
    }
  }

  /** Stop producing, stop serving, flush the mempool, close the database. Idempotent: every call awaits the one stop. */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    this.#stopping = true;
    this.producer?.stop();
    await this.network?.stop().catch(() => {});
    for (const off of this.#unwire.splice(0)) off();
    this.#subs?.close();
    await this.#rpc?.close().catch(() => {});
    await this.#mempoolWork;
    await this.#warming;
    await this.mempool.flush();
    await this.chain.close();
    await this.#db.close();
    this.metrics?.close();
  }
}

/** The node's P2P identity (not a validator key): created on first start, kept in the datadir. */
async function loadNodeKey(datadir: string): Promise<KeyPair> {
  const path = join(datadir, 'nodekey.json');
  if (existsSync(path)) return readKeyFile(path);
  const kp = newKeyPair();
  await writeKeyFile(path, kp);
  return kp;
}

/** The admin token: 32 random bytes as hex in <datadir>/admin.token (mode 0600), created on first start. */
async function loadAdminToken(path: string): Promise<string> {
  try {
    const t = (await readFile(path, 'utf8')).trim();
    if (/^[0-9a-f]{64}$/.test(t)) return t;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const t = randomBytes(32).toString('hex');
  await writeFile(path, t + '\n', { mode: 0o600 });
  return t;
}

export function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/**
 * Where a network's database lives inside a datadir: <datadir>/chains/<chainId>-<genesis hash prefix>/.
 * Each network gets its own database, so a datadir reused with another genesis (a regenerated test network,
 * an operator's mistake) never opens, mixes or damages the other network's data; the chain additionally
 * refuses a database whose stored genesis differs (ChainError).
 */
export function chainDbPath(datadir: string, genesis: Genesis): string {
  return join(datadir, 'chains', `${genesis.chainId}-${genesisHashOf(genesis).slice(0, 16)}`);
}

async function noteOtherNetworks(datadir: string, dbDir: string, log: Logger): Promise<void> {
  let others: string[] = [];
  try {
    others = (await readdir(join(datadir, 'chains'))).filter((d) => join(datadir, 'chains', d) !== dbDir);
  } catch { /* no chains yet */ }
  if (others.length) log.warn('this datadir also holds other networks; they are left untouched', { datadir, others, using: dbDir });
}
