/**
 * The node: wires the subsystems together through their events. This file is where one reads how a block
 * or a transaction flows; no subsystem calls into another's internals.
 *
 *   chain  ──chain:head──▶ mempool (drop included, return abandoned, re-check senders)
 *   producer ──block──▶ chain.addBlock (same validation as a peer's block)
 *   rpc    ──reads──▶ chain, mempool
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Chain } from '../chain/chain.js';
import { InlineVerifier, type SignatureVerifier } from '../crypto/ed25519.js';
import { SigCache } from '../crypto/sigcache.js';
import type { Genesis } from '../ledger/genesis.js';
import { Mempool, type MempoolLimits } from '../mempool/mempool.js';
import { RpcDispatcher, RpcHttpServer } from '../rpc/server.js';
import { createHandlers } from '../rpc/methods.js';
import { openLevel, type KV } from '../storage/kv.js';
import { systemClock, type Clock } from '../util/clock.js';
import { loadSchema } from '../util/schemas.js';
import type { Logger } from '../util/log.js';
import { newKeyPair, readKeyFile, writeKeyFile, type KeyPair } from './keyfile.js';
import { Network, type NetLimits } from '../p2p/network.js';
import { WsTransport } from '../p2p/transport.js';
import type { Transport } from '../p2p/transport.js';
import { systemRandom, type Random } from '../util/random.js';
import { existsSync } from 'node:fs';
import { Producer } from './producer.js';

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
}

export interface NodeDeps {
  log: Logger;
  clock?: Clock;
  /** Store factory; production opens LevelDB under the datadir, the simulator passes memory-level. */
  openStore?: (dir: string) => Promise<KV>;
  verifier?: SignatureVerifier;
  random?: Random;
  /** Peer transport; production uses WebSockets. */
  transport?: Transport;
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
  readonly #db: KV;
  readonly #log: Logger;
  #rpc: RpcHttpServer | undefined;
  #mempoolWork: Promise<void> = Promise.resolve();
  #stopping = false;

  private constructor(db: KV, chain: Chain, mempool: Mempool, producer: Producer | undefined, log: Logger) {
    this.#db = db;
    this.chain = chain;
    this.mempool = mempool;
    this.producer = producer;
    this.#log = log;
  }

  static async start(cfg: NodeConfig, deps: NodeDeps): Promise<MeshNode> {
    const log = deps.log;
    const clock = deps.clock ?? systemClock;
    await mkdir(cfg.datadir, { recursive: true });
    const dbDir = join(cfg.datadir, 'chaindata');
    let db: KV;
    try {
      db = await (deps.openStore ?? openLevel)(dbDir);
    } catch (e) {
      const cause = (e as { cause?: Error }).cause?.message ?? (e as Error).message;
      throw new StartupError(`cannot open the database at ${dbDir}: ${cause}${/lock/i.test(cause) ? ' (is another node using this datadir?)' : ''}`);
    }
    try {
      const verifier = deps.verifier ?? new InlineVerifier();
      const sigCache = new SigCache();
      const chain = await Chain.open({ db, genesis: cfg.genesis, clock, verifier, sigCache, log: log.child({ mod: 'chain' }) });
      const mempool = new Mempool({ db, genesis: cfg.genesis, accounts: chain, verifier, sigCache, limits: cfg.mempool, log: log.child({ mod: 'mempool' }) });
      await mempool.load();
      let node!: MeshNode; // assigned below; the producer's relay hook only runs once the node exists
      const producer = cfg.key
        ? new Producer({
          chain, mempool, clock, secretKey: cfg.key.secretKey, publicKey: cfg.key.publicKey, log: log.child({ mod: 'producer' }),
          onBlock: (b) => node.network?.relayBlock(b),
        })
        : undefined;
      node = new MeshNode(db, chain, mempool, producer, log);
      node.#wire();
      if (cfg.p2p || cfg.bootnodes?.length) {
        const nodeKey = await loadNodeKey(cfg.datadir);
        node.network = new Network({
          chain, mempool, db, clock, random: deps.random ?? systemRandom, log: log.child({ mod: 'p2p' }), nodeKey,
          transport: deps.transport ?? new WsTransport({
            maxPayload: Network.frameMax(cfg.genesis.params.maxBlockBytes), keepaliveMs: 10_000,
            // A node bound to one specific address also dials from it (multi-homed hosts, test partitions).
            localAddress: cfg.p2p && !['0.0.0.0', '::', 'localhost'].includes(cfg.p2p.host) && /^[0-9.]+$/.test(cfg.p2p.host) ? cfg.p2p.host : undefined,
          }),
          listen: cfg.p2p, advertise: cfg.advertise, bootnodes: cfg.bootnodes, limits: cfg.net,
        });
        try {
          await node.network.start();
        } catch (e) {
          throw new StartupError(`cannot start P2P on ${cfg.p2p ? `${cfg.p2p.host}:${cfg.p2p.port}` : 'outbound only'}: ${(e as Error).message}`);
        }
      }
      if (cfg.rpc) await node.#startRpc(cfg.rpc);
      producer?.start();
      return node;
    } catch (e) {
      await db.close().catch(() => {});
      throw e;
    }
  }

  #wire(): void {
    this.chain.on('chain:head', ({ connected, disconnected }) => {
      // Serialized: each head change is applied to the mempool in order.
      this.#mempoolWork = this.#mempoolWork
        .then(() => this.mempool.onHeadChange(connected, disconnected))
        .catch((e) => this.#log.error('mempool update after head change failed', { error: e }));
    });
  }

  async #startRpc(addr: HostPort): Promise<void> {
    const rpcLog = this.#log.child({ mod: 'rpc' });
    const dispatcher = new RpcDispatcher({
      openrpc: loadSchema('openrpc.json'),
      handlers: createHandlers({ chain: this.chain, mempool: this.mempool }),
      log: (level, msg, fields) => rpcLog[level](msg, fields),
    });
    this.#rpc = new RpcHttpServer(dispatcher, { log: (level, msg, fields) => rpcLog[level](msg, fields) });
    try {
      this.rpcAddress = await this.#rpc.listen(addr.host, addr.port);
    } catch (e) {
      throw new StartupError(`cannot serve JSON-RPC on ${addr.host}:${addr.port}: ${(e as Error).message}`);
    }
  }

  /** Stop producing, stop serving, flush the mempool, close the database. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.producer?.stop();
    await this.network?.stop().catch(() => {});
    await this.#rpc?.close().catch(() => {});
    await this.#mempoolWork;
    await this.mempool.flush();
    await this.chain.close();
    await this.#db.close();
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
