/**
 * The P2P network, as the node sees it: every node listens and dials. Inside, a switch (switch.ts) owns the
 * peer set, the sessions (noise.ts: Noise XX, every frame sealed; handshake.ts: whom we accept) and
 * dispatch, and one reactor per concern handles its messages:
 *
 *   tx-reactor.ts        TXS, INV_TX, GET_TX        transaction gossip
 *   block-reactor.ts     BLOCK, INV_BLOCK           block gossip, orphans
 *   sync-reactor.ts      STATUS, GET_HASHES, HASHES, GET_BLOCKS, BLOCKS   serving + sync.ts fetching
 *   pex-reactor.ts       GET_ADDR, ADDR             peer exchange (addrbook.ts)
 *   evidence-reactor.ts  EVIDENCE                   equivocation proofs
 *
 * Scores and bans are scoring.ts. The P2P layer subscribes to nothing: the node (src/node/node.ts) calls
 * onHead, onTxAccepted, onEquivocation and onBlockConnected from the chain's and the mempool's events.
 *
 * Overload is not misbehaviour. A backlog of a peer's messages pauses its connection (inbound.ts), a
 * response arriving after its request timed out is dropped, and a peer that reads too slowly is
 * disconnected (4009), all without penalty. Invalid content and the per-peer token buckets (Peer.admit) are
 * penalised.
 */
import { toHex } from '../encoding/bytes.js';
import type { Chain } from '../chain/chain.js';
import type { Block } from '../ledger/block.js';
import type { Tx } from '../ledger/tx.js';
import type { Mempool } from '../mempool/mempool.js';
import type { KV } from '../storage/kv.js';
import type { Clock } from '../util/clock.js';
import { TypedEmitter } from '../util/events.js';
import type { Logger } from '../util/log.js';
import type { Random } from '../util/random.js';
import { AddrBook, URL_RE } from './addrbook.js';
import { BlockReactor } from './block-reactor.js';
import type { NetEvents } from './events.js';
import { EvidenceReactor } from './evidence-reactor.js';
import { SessionPolicy } from './handshake.js';
import { SEAL_BYTES, sessionIdentity } from './noise.js';
import { resolveLimits, type NetLimits } from './limits.js';
import { frameMaxBytes, sizeLimits } from './messages.js';
import type { Peer } from './peer.js';
import { PexReactor } from './pex-reactor.js';
import { Scoring } from './scoring.js';
import { Switch } from './switch.js';
import type { Syncer } from './sync.js';
import { SyncReactor } from './sync-reactor.js';
import type { Transport } from './transport.js';
import { CLOSE } from './transport.js';
import { TxReactor } from './tx-reactor.js';

export type { NetEvents } from './events.js';
export { DEFAULT_INBOUND_QUEUE, type InboundQueueLimits } from './inbound.js';
export { DEFAULT_NET_LIMITS, type NetLimits } from './limits.js';
export { PENALTY } from './scoring.js';

export interface NetworkOptions {
  chain: Chain;
  mempool: Mempool;
  db: KV;
  transport: Transport;
  clock: Clock;
  random: Random;
  log: Logger;
  nodeKey: { secretKey: Uint8Array; publicKey: Uint8Array };
  listen?: { host: string; port: number };
  /** The URL peers should dial to reach us (default: ws://<listen host>:<port>). */
  advertise?: string;
  bootnodes?: string[];
  limits?: Partial<NetLimits>;
}

/** Gossip and back-pressure counters (metrics mirror them). */
export interface NetStats {
  txBodiesIn: number; txAnnouncementsIn: number; blockBodiesIn: number; blockAnnouncementsIn: number; blockBytesIn: number;
  /** Compact blocks received, and transactions asked for to rebuild them. */
  compactBlocksIn: number; blockTxsRequested: number;
  duplicateTxBodies: number; duplicateBlockBodies: number; bans: number;
  /** Back-pressure: times a peer's connection was paused; messages dropped at the hard bound; late responses dropped. */
  inboundPauses: number; inboundDropped: number; lateResponses: number;
}

export class Network extends TypedEmitter<NetEvents> {
  readonly limits: NetLimits;
  readonly nodeIdHex: string;
  readonly addrBook: AddrBook;
  readonly sync: Syncer;
  readonly #o: NetworkOptions;
  readonly #log: Logger;
  readonly #switch: Switch;
  readonly #scoring: Scoring;
  readonly #tx: TxReactor;
  readonly #blocks: BlockReactor;
  readonly #syncReactor: SyncReactor;
  readonly #evidence: EvidenceReactor;
  /** Between start and stop: the chain's and mempool's news are acted on only then (there is no peer to tell otherwise). */
  #live = false;

  constructor(o: NetworkOptions) {
    super();
    this.#o = o;
    this.limits = resolveLimits(o.limits);
    this.#log = o.log;
    this.nodeIdHex = toHex(o.nodeKey.publicKey);
    this.addrBook = new AddrBook(o.db);
    const { chain, clock, random, log } = o;
    const emit = this.emit.bind(this);
    const wire = sizeLimits(chain.genesis.params.maxBlockBytes);
    this.#scoring = new Scoring({
      db: o.db, clock, log, emit, nodeIdHex: this.nodeIdHex, limits: this.limits,
      disconnect: (peer, code, reason) => sw.disconnect(peer, code, reason),
      peerById: (id) => sw.peerById(id),
    });
    // This run's session key, signed by the node key (a fresh one per start: nothing long-lived to steal).
    const sessions = new SessionPolicy({
      chainId: chain.genesis.chainId, genesisHash: chain.genesisHash, identity: sessionIdentity(o.nodeKey, random), random, clock,
      timeoutMs: this.limits.handshakeTimeoutMs, head: () => chain.head, listenUrl: (): string => sw.listenUrl,
      isBanned: (id: string) => this.#scoring.isBanned(id),
    });
    const sw: Switch = new Switch({
      transport: o.transport, clock, random, log, emit, nodeIdHex: this.nodeIdHex, limits: this.limits,
      addrBook: this.addrBook, scoring: this.#scoring, sessions,
    });
    this.#switch = sw;
    this.#tx = new TxReactor({ host: sw, mempool: o.mempool, clock, random, log, limits: this.limits, wire });
    this.#blocks = new BlockReactor({ host: sw, chain, mempool: o.mempool, random, limits: this.limits, wire, triggerSync: () => this.sync.trigger() });
    this.#syncReactor = new SyncReactor({
      host: sw, chain, clock, log, wire,
      decode: (bytes, from) => this.#blocks.decode(bytes, from),
      accept: (block, from) => this.#blocks.accept(block, from, 'sync'),
      relayedBytes: (hex) => this.#blocks.relayedBytes(hex),
    });
    this.sync = this.#syncReactor.syncer;
    this.#evidence = new EvidenceReactor({ host: sw, chain, wire });
    // Registration order is the order of onPeerReady calls and of periodic work: a new peer is asked for
    // addresses, then told our pending transactions, then sync looks at its head; each maintenance round
    // asks for addresses, forgives scores, then re-fetches transactions.
    sw.register(new PexReactor({ host: sw, addrBook: this.addrBook, clock, random, wire, listenUrl: (): string => sw.listenUrl }));
    sw.addTicker(() => this.#scoring.forgive(sw.peers()));
    sw.register(this.#tx);
    sw.register(this.#blocks);
    sw.register(this.#blocks.compact);
    sw.register(this.#syncReactor);
    sw.register(this.#evidence);
  }

  /** The transport's frame size limit for this network (the ws maxPayload): the largest message, sealed. */
  static frameMax(maxBlockBytes: number): number { return frameMaxBytes(maxBlockBytes) + SEAL_BYTES; }

  /** The URL peers dial to reach us ('' until listening, or when listening on a wildcard address without `advertise`). */
  get listenUrl(): string { return this.#switch.listenUrl; }

  get stats(): NetStats {
    const tx = this.#tx.stats;
    const b = this.#blocks.stats;
    return {
      txBodiesIn: tx.txBodiesIn, txAnnouncementsIn: tx.txAnnouncementsIn, blockBodiesIn: b.blockBodiesIn, blockAnnouncementsIn: b.blockAnnouncementsIn, blockBytesIn: b.blockBytesIn,
      compactBlocksIn: this.#blocks.compact.stats.compactBlocksIn, blockTxsRequested: this.#blocks.compact.stats.blockTxsRequested,
      duplicateTxBodies: tx.duplicateTxBodies, duplicateBlockBodies: b.duplicateBlockBodies, bans: this.#scoring.issued,
      inboundPauses: this.#switch.inboundPauses, inboundDropped: this.#switch.inboundDropped, lateResponses: this.#syncReactor.lateResponses,
    };
  }

  readyPeers(): Peer[] { return this.#switch.readyPeers(); }
  peerInfo(): Record<string, unknown>[] { return this.readyPeers().map((p) => p.info()); }
  bans(): { nodeId: string; until: number; reason: string }[] { return this.#scoring.bans(); }

  async start(): Promise<void> {
    const now = this.#o.clock.now();
    await this.addrBook.load();
    await this.#scoring.load(now);
    for (const b of this.#o.bootnodes ?? []) this.addrBook.add(b, now);
    if (this.#o.listen) {
      const a = await this.#switch.listen(this.#o.listen.host, this.#o.listen.port);
      const host = a.host.includes(':') ? `[${a.host}]` : a.host;
      this.#switch.listenUrl = this.#o.advertise ?? (a.host === '0.0.0.0' || a.host === '::' ? '' : `ws://${host}:${a.port}`);
      this.#log.info('p2p listening', { address: `${a.host}:${a.port}`, nodeId: this.nodeIdHex });
    }
    this.#live = true;
    this.#switch.run();
    this.#tx.start();
  }

  async stop(): Promise<void> {
    this.#switch.halt();
    this.#syncReactor.stop();
    this.#live = false;
    this.#tx.stop();
    await this.#switch.stop();
  }

  // ------------------------------------------------------------------ news from the node (src/node/node.ts)

  /** Our best head changed. */
  onHead(head: { height: number; hash: Uint8Array; slot: number }): void {
    if (this.#live) this.#syncReactor.onHead(head);
  }

  /** The mempool admitted a transaction; `origin` is the node id of the peer that sent it (none for our own). */
  onTxAccepted(tx: Tx, origin: string | undefined): void {
    if (this.#live) this.#tx.onTxAccepted(tx, origin);
  }

  /** The chain holds new equivocation evidence. */
  onEquivocation(e: { slot: number; proposer: string; headers: Uint8Array[] }): void {
    if (this.#live) this.#evidence.onEquivocation(e);
  }

  /** A block joined our best chain. */
  onBlockConnected(b: Block): void {
    if (!this.#live) return;
    this.#tx.onBlockConnected(b);
    this.#blocks.onBlockConnected(b);
  }

  /** Announce a block this node produced to the network (as its first hop: to every peer). */
  relayBlock(block: Block): void {
    this.#blocks.relay(block, undefined, true);
  }

  /** A transaction left the mempool (kept a while to rebuild compact blocks that include it). */
  onTxRemoved(tx: Tx): void {
    if (this.#live) this.#blocks.compact.onTxRemoved(tx);
  }

  // ------------------------------------------------------------------ operator actions (admin JSON-RPC)

  ban(nodeIdHex: string, reason: string, ms = this.limits.banMs): void {
    this.#scoring.ban(nodeIdHex, reason, ms);
  }

  unban(nodeIdHex: string): boolean {
    return this.#scoring.unban(nodeIdHex);
  }

  /** Disconnect a connected peer (admin "remove peer"); false if it is not connected. */
  disconnectPeer(nodeIdHex: string): boolean {
    const p = this.#switch.peerById(nodeIdHex);
    if (!p || p.closed) return false;
    this.#switch.disconnect(p, CLOSE.normal, 'disconnected by operator');
    return true;
  }

  /** Dial a specific address now (admin "add peer"). */
  connect(url: string): void {
    if (!URL_RE.test(url)) throw new Error(`not a ws://HOST:PORT address: ${url}`);
    this.addrBook.add(url, this.#o.clock.now());
    this.#switch.dial(url);
  }

  // ------------------------------------------------------------------ introspection (tests, metrics)

  /** Messages of this peer waiting for processing, and whether its connection is paused. */
  inboundBacklog(peer: Peer): { queued: number; bytes: number; paused: boolean } {
    return this.#switch.inboundBacklog(peer);
  }

  /** Blocks waiting in the orphan pool for their parent. */
  orphanCount(): number { return this.#blocks.orphans.size; }

  /** Whether a node id is connected and ready. */
  isConnected(nodeIdHex: string): boolean {
    const p = this.#switch.peerById(nodeIdHex);
    return !!p && p.ready && !p.closed;
  }

  /** The frame limit of every message type this network accepts (the session's and the reactors'). */
  frameLimits(): Readonly<Record<number, number>> { return this.#switch.frameLimits(); }
}
