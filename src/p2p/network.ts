/**
 * The P2P network: every node listens and dials. This module owns the peer set (handshake, limits, bans,
 * scoring, discovery) and gossip; sync.ts owns catching up. It talks to the chain and mempool only through
 * their public methods and events.
 *
 * Gossip: transactions and blocks are relayed only after they validated here. Each peer has a bounded
 * "known" set; nothing is sent to a peer that has it. Bodies are pushed to `*PushFanout` peers and
 * announced by hash to the rest, which fetch what they lack (inv/getdata). A node's own transactions (from
 * RPC) are pushed to all peers for a fast first hop; relayed transactions are only announced by default
 * (txPushFanout 0: on a 20-node mesh a relay push of 1 gave 2.2 body copies per node per tx, announce-only
 * 1.1, and faster delivery; see scripts/bench/gossip.ts).
 *
 * Scoring: protocol violations cost points (PENALTY); at BAN_THRESHOLD the peer is disconnected and its
 * node id banned for `banMs` (persisted in keyspace 'B').
 *
 * Overload is not misbehaviour. Messages that need async work (TXS, BLOCK, GET_BLOCKS, EVIDENCE) wait in a
 * per-peer ordered queue; when it passes `limits.inbound` pause marks the peer's connection is paused (we
 * stop reading it, so TCP flow control slows the sender) and resumed once the backlog drained. A peer is never
 * penalised for our backlog (it used to be: 2 points per message beyond 256 queued, which got honest
 * validators banned by an overloaded node). Likewise a response arriving after its request timed out is
 * dropped without penalty, and a peer that reads too slowly is disconnected (4009) but not penalised or
 * banned. Invalid content and the per-peer token buckets (Peer.admit) are still penalised.
 *
 * Relay of blocks: a block that connected to our best chain is relayed when it came by gossip; one that
 * came by sync only when it is within 2 blocks of the best head any peer reports, so a catching-up node
 * does not re-broadcast the history it downloads.
 */
import { fromHex, toHex } from '../encoding/bytes.js';
import { decodeCanonical, encodeCanonical, expectArray, expectSafeUint, expectString } from '../encoding/canonical.js';
import type { Chain } from '../chain/chain.js';
import { decodeBlock, decodeHeader, type Block } from '../ledger/block.js';
import { isProvablyInvalid, RuleError } from '../ledger/rules.js';
import { decodeTx, type Tx } from '../ledger/tx.js';
import type { Mempool } from '../mempool/mempool.js';
import { layout } from '../storage/layout.js';
import type { KV } from '../storage/kv.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { TypedEmitter } from '../util/events.js';
import { LruMap, LruSet } from '../util/lru.js';
import type { Logger } from '../util/log.js';
import type { Random } from '../util/random.js';
import { AddrBook, URL_RE } from './addrbook.js';
import { decodeMessage, frameMaxBytes, MAX_ADDRS, MAX_INV, MAX_TXS_PER_MSG, MSG, PROTOCOL_VERSION, ProtocolError, sizeLimits, type Message } from './messages.js';
import { DEFAULT_PEER_LIMITS, Peer, signAuth, verifyAuth, type PeerLimits } from './peer.js';
import { Syncer, type AcceptResult } from './sync.js';
import { CLOSE, type Conn, type Transport } from './transport.js';

export interface NetLimits {
  maxInbound: number;
  maxOutbound: number;
  targetOutbound: number;
  /** Connections from one IP that have not finished the handshake. */
  maxPendingPerIp: number;
  handshakeTimeoutMs: number;
  banThreshold: number;
  banMs: number;
  /** Peers that get a relayed transaction's body (the rest get its id); 0 = announce only. */
  txPushFanout: number;
  /** Peers that get a new block's body (the rest get its hash). */
  blockPushFanout: number;
  announceIntervalMs: number;
  maintenanceMs: number;
  orphanLimit: number;
  peer: PeerLimits;
  /** Back-pressure on each peer's queue of messages waiting for processing (see Network#enqueue). */
  inbound: InboundQueueLimits;
}

/**
 * Per-peer inbound queue (TXS, BLOCK, GET_BLOCKS, EVIDENCE wait here to be processed in order). Above the
 * pause mark the peer's connection is paused (we stop reading it; TCP flow control slows the sender), below
 * the resume mark it is read again. A backlog is OUR overload, so it costs the peer nothing. The max marks
 * bound memory whatever happens: a paused connection can still deliver what the transport had already read
 * (one read chunk), so they sit well above the pause marks; beyond them messages are dropped, unpenalised.
 */
export interface InboundQueueLimits {
  pauseMsgs: number;
  pauseBytes: number;
  resumeMsgs: number;
  resumeBytes: number;
  maxMsgs: number;
  maxBytes: number;
}

export const DEFAULT_INBOUND_QUEUE: InboundQueueLimits = {
  pauseMsgs: 64, pauseBytes: 8 * 1024 * 1024, resumeMsgs: 16, resumeBytes: 2 * 1024 * 1024,
  maxMsgs: 1024, maxBytes: 64 * 1024 * 1024,
};

/** The longest a node with no peer waits before dialing a known address again, whatever its failures. */
const ISOLATED_RETRY_CAP_MS = 8_000;

export const DEFAULT_NET_LIMITS: NetLimits = {
  maxInbound: 32, maxOutbound: 16, targetOutbound: 8, maxPendingPerIp: 8, handshakeTimeoutMs: 5000,
  banThreshold: -100, banMs: 10 * 60_000, txPushFanout: 0, blockPushFanout: 4, announceIntervalMs: 20,
  maintenanceMs: 1000, orphanLimit: 512, peer: DEFAULT_PEER_LIMITS, inbound: DEFAULT_INBOUND_QUEUE,
};

/**
 * Points lost per offence. Honest peers never commit these (races like stale nonces cost nothing), and
 * neither does an honest peer that is merely slow or that sends faster than we process: a backlog pauses its
 * connection (no penalty), a late answer to a request of ours that timed out is dropped (no penalty), a
 * peer that does not read what we send is disconnected (4009, `slow`: 0 points, no ban). `rate_limited`
 * is only the token buckets (Peer.admit), far above honest traffic.
 */
export const PENALTY: Record<string, number> = {
  malformed_frame: 25, unknown_type: 25, oversized: 50, protocol: 25, unrequested: 10, rate_limited: 2,
  invalid_tx: 20, invalid_block: 60, bad_auth: 100, slow: 0,
};

export interface NetEvents {
  'peer:connected': (p: { nodeId: string; address: string; direction: 'inbound' | 'outbound' }) => void;
  'peer:disconnected': (p: { nodeId: string; code: number; reason: string }) => void;
  'peer:banned': (p: { nodeId: string; reason: string; until: number }) => void;
  'peer:penalized': (p: { nodeId: string; rule: string; score: number }) => void;
}

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

interface WorkQueue {
  chain: Promise<void>;
  /** Blocks (pushed, fetched, adopted orphans): ordered among themselves, never behind transactions. */
  blocks: Promise<void>;
  queued: number;
  bytes: number;
  paused: boolean;
  /** The admission of this peer's last TXS message into the mempool, while it runs (see #onTxs). */
  admitting: Promise<void>;
}

export class Network extends TypedEmitter<NetEvents> {
  readonly limits: NetLimits;
  readonly nodeIdHex: string;
  readonly addrBook: AddrBook;
  readonly sync: Syncer;
  listenUrl = '';
  readonly #o: NetworkOptions;
  readonly #log: Logger;
  readonly #frameLimits: Record<number, number>;
  readonly #peers = new Set<Peer>();
  readonly #byId = new Map<string, Peer>();
  readonly #bans = new Map<string, { until: number; reason: string }>();
  readonly #dialing = new Set<string>();
  readonly #rejectedTxs = new LruSet<string>(50_000);
  /** Transactions seen valid (admitted or confirmed): announcements of them are not fetched again. */
  readonly #seenTxs = new LruSet<string>(200_000);
  /** Equivocations (slot:proposer) whose evidence we already relayed. */
  readonly #seenEvidence = new LruSet<string>(10_000);
  /**
   * The bytes of the last blocks we relayed before our chain had them, served from here too: a validator
   * relays its own block before its chain has connected (and stored) it, and a peer that got only the
   * announcement asks for it at once. Blocks relayed after connecting are served by the chain.
   */
  readonly #relayed = new LruMap<string, Uint8Array>(4);
  readonly #txInflight = new Map<string, { peer: Peer; at: number; alternates: Peer[] }>();
  readonly #blockInflight = new Set<string>();
  /** Blocks whose parent we lack, by hash (insertion order = age; bounded by limits.orphanLimit). */
  readonly #orphans = new Map<string, { block: Block; from: Peer; via: 'gossip' | 'sync' }>();
  readonly #txQueue: { tx: Tx; from: Peer | undefined }[] = [];
  readonly #txOrigin = new Map<string, Peer>();
  readonly #work = new WeakMap<Peer, WorkQueue>();
  readonly #unsubscribe: (() => void)[] = [];
  readonly #handshakeTimers = new Map<Peer, TimerHandle>();
  #announceTimer: TimerHandle | undefined;
  #lastAddrAsk = 0;
  #maintTimer: TimerHandle | undefined;
  #stopped = false;
  stats = {
    txBodiesIn: 0, txAnnouncementsIn: 0, blockBodiesIn: 0, blockAnnouncementsIn: 0, duplicateTxBodies: 0, duplicateBlockBodies: 0, bans: 0,
    /** Back-pressure: times a peer's connection was paused; messages dropped at the hard bound; late responses dropped. */
    inboundPauses: 0, inboundDropped: 0, lateResponses: 0,
  };

  constructor(o: NetworkOptions) {
    super();
    this.#o = o;
    this.limits = {
      ...DEFAULT_NET_LIMITS, ...o.limits, peer: { ...DEFAULT_PEER_LIMITS, ...o.limits?.peer }, inbound: { ...DEFAULT_INBOUND_QUEUE, ...o.limits?.inbound },
    };
    this.#log = o.log;
    this.nodeIdHex = toHex(o.nodeKey.publicKey);
    this.#frameLimits = sizeLimits(o.chain.genesis.params.maxBlockBytes);
    this.addrBook = new AddrBook(o.db);
    this.sync = new Syncer({
      chain: o.chain, clock: o.clock, log: o.log.child({ mod: 'sync' }),
      readyPeers: () => this.readyPeers(),
      decode: (bytes, from) => this.#decodeBlock(bytes, from),
      accept: (block, from) => this.#acceptBlock(block, from, 'sync'),
      penalize: (peer, rule, detail) => this.penalize(peer, rule, detail),
    });
  }

  /** The transport's frame size limit for this network (the ws maxPayload). */
  static frameMax(maxBlockBytes: number): number { return frameMaxBytes(maxBlockBytes); }

  readyPeers(): Peer[] { return [...this.#peers].filter((p) => p.ready && !p.closed); }
  peerInfo(): Record<string, unknown>[] { return this.readyPeers().map((p) => p.info()); }
  bans(): { nodeId: string; until: number; reason: string }[] { return [...this.#bans].map(([nodeId, b]) => ({ nodeId, ...b })); }

  async start(): Promise<void> {
    const now = this.#o.clock.now();
    await this.addrBook.load();
    for await (const [k, v] of this.#o.db.iterator(layout.range(layout.prefix('B')))) {
      try {
        const f = expectArray(decodeCanonical(v), 2, 'ban');
        const until = expectSafeUint(f[0]!, 'until');
        if (until > now) this.#bans.set(toHex(k.subarray(1)), { until, reason: expectString(f[1]!, 'reason') });
      } catch { /* skip corrupt */ }
    }
    for (const b of this.#o.bootnodes ?? []) this.addrBook.add(b, now);
    if (this.#o.listen) {
      const a = await this.#o.transport.listen(this.#o.listen.host, this.#o.listen.port, (c) => this.#onInbound(c));
      const host = a.host.includes(':') ? `[${a.host}]` : a.host;
      this.listenUrl = this.#o.advertise ?? (a.host === '0.0.0.0' || a.host === '::' ? '' : `ws://${host}:${a.port}`);
      this.#log.info('p2p listening', { address: `${a.host}:${a.port}`, nodeId: this.nodeIdHex });
    }
    const { chain, mempool } = this.#o;
    this.#unsubscribe.push(
      chain.on('chain:head', ({ head }) => this.#broadcast({ type: MSG.STATUS, headHeight: head.height, headHash: head.hash, headSlot: head.slot })),
      mempool.on('tx:accepted', (tx) => { this.#seenTxs.add(tx.idHex); this.#queueTx(tx); }),
      chain.on('chain:equivocation', (e) => this.#relayEvidence(e.slot, e.proposer, e.headers)),
      chain.on('block:connected', (b) => {
        for (const tx of b.txs) this.#seenTxs.add(tx.idHex);
        this.#adoptOrphans(b.header.hashHex);
      }),
    );
    this.#maintenance();
    this.#scheduleAnnounce();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.sync.stop();
    for (const u of this.#unsubscribe) u();
    if (this.#announceTimer) this.#o.clock.clearTimeout(this.#announceTimer);
    if (this.#maintTimer) this.#o.clock.clearTimeout(this.#maintTimer);
    for (const p of this.#peers) p.conn.close(CLOSE.goingAway, 'node shutting down');
    for (const p of [...this.#handshakeTimers.keys()]) this.#clearHandshakeTimer(p);
    await this.#o.transport.close();
  }

  /** Announce a block this node produced (or otherwise accepted) to the network. */
  relayBlock(block: Block, except?: Peer): void {
    const peers = this.readyPeers().filter((p) => p !== except && !p.knownBlocks.has(block.header.hashHex));
    if (!this.#o.chain.hasBlock(block.header.hashHex)) this.#relayed.set(block.header.hashHex, block.bytes);
    const push = this.#pick(peers, this.limits.blockPushFanout);
    for (const p of peers) {
      p.knownBlocks.add(block.header.hashHex);
      if (push.has(p)) this.#send(p, { type: MSG.BLOCK, block: block.bytes });
      else this.#send(p, { type: MSG.INV_BLOCK, hash: block.header.hash, height: block.header.height }, true);
    }
  }

  // ------------------------------------------------------------------ connections

  #onInbound(conn: Conn): void {
    if (this.#stopped) return conn.close(CLOSE.goingAway, 'shutting down');
    const ip = conn.remote.replace(/:\d+$/, '');
    const inbound = [...this.#peers].filter((p) => p.conn.inbound);
    if (inbound.length >= this.limits.maxInbound) return conn.close(CLOSE.tooManyPeers, `too many inbound peers (${this.limits.maxInbound})`);
    const pending = inbound.filter((p) => !p.ready && p.conn.remote.replace(/:\d+$/, '') === ip).length;
    if (pending >= this.limits.maxPendingPerIp) return conn.close(CLOSE.tooManyPeers, `too many unauthenticated connections from ${ip}`);
    this.#attach(conn, undefined);
  }

  async #dial(url: string): Promise<void> {
    if (this.#dialing.has(url) || this.#stopped) return;
    this.#dialing.add(url);
    this.addrBook.attempt(url, this.#o.clock.now());
    try {
      const conn = await this.#o.transport.dial(url, this.limits.handshakeTimeoutMs);
      if (this.#stopped) return conn.close(CLOSE.goingAway, 'shutting down');
      this.#attach(conn, url);
    } catch (e) {
      this.addrBook.failure(url);
      this.#log.debug('dial failed', { url, error: (e as Error).message });
    } finally {
      this.#dialing.delete(url);
    }
  }

  #attach(conn: Conn, dialedUrl: string | undefined): void {
    const peer = new Peer(conn, this.#o.random.bytes(32), this.#o.clock, this.limits.peer, dialedUrl);
    this.#peers.add(peer);
    this.#work.set(peer, { chain: Promise.resolve(), blocks: Promise.resolve(), queued: 0, bytes: 0, paused: false, admitting: Promise.resolve() });
    // HELLO goes out before any handler runs: registering the handler replays frames that arrived early,
    // and our AUTH (the answer to the peer's HELLO) must never precede our own HELLO.
    const head = this.#o.chain.head;
    this.#send(peer, {
      type: MSG.HELLO, version: PROTOCOL_VERSION, chainId: this.#o.chain.genesis.chainId, genesisHash: fromHex(this.#o.chain.genesisHash),
      nodeId: this.#o.nodeKey.publicKey, listen: this.listenUrl, headHeight: head.height, headHash: head.hash, challenge: peer.challenge,
    });
    conn.onMessage((frame) => this.#onFrame(peer, frame));
    conn.onClose((code, reason) => this.#onClose(peer, code, reason));
    const timer = this.#o.clock.setTimeout(() => {
      this.#handshakeTimers.delete(peer);
      if (!peer.ready && !peer.closed) this.#disconnect(peer, CLOSE.timeout, 'handshake timed out');
    }, this.limits.handshakeTimeoutMs);
    this.#handshakeTimers.set(peer, timer);
  }

  #clearHandshakeTimer(peer: Peer): void {
    const t = this.#handshakeTimers.get(peer);
    if (t) this.#o.clock.clearTimeout(t);
    this.#handshakeTimers.delete(peer);
  }

  #onClose(peer: Peer, code: number, reason: string): void {
    // Runs once per connection: #disconnect calls it at once, and the transport's close event comes later.
    if (peer.closed) return;
    this.#clearHandshakeTimer(peer);
    const wasReady = peer.ready;
    peer.markClosed();
    this.#peers.delete(peer);
    if (this.#byId.get(peer.nodeIdHex) === peer) this.#byId.delete(peer.nodeIdHex);
    if (code === CLOSE.tooBig && peer.nodeIdHex) this.penalize(peer, 'oversized', 'frame above the transport limit');
    if (peer.dialedUrl && !wasReady && code !== CLOSE.self) this.addrBook.failure(peer.dialedUrl);
    if (wasReady) {
      this.#log.info('peer disconnected', { peer: peer.label, code, reason });
      this.emit('peer:disconnected', { nodeId: peer.nodeIdHex, code, reason });
    } else if (code >= 4000 && code < 5000) {
      // The other side refused us (or we refused it): say why, at a level operators see.
      this.#log.warn('connection refused during handshake', { remote: peer.dialedUrl ?? peer.conn.remote, code, reason });
    } else {
      this.#log.debug('connection closed before handshake', { remote: peer.conn.remote, code, reason });
    }
  }

  #disconnect(peer: Peer, code: number, reason: string): void {
    if (peer.closed) return;
    this.#log.info('disconnecting peer', { peer: peer.label, code, reason });
    peer.conn.close(code, reason);
    this.#onClose(peer, code, reason);
  }

  #send(peer: Peer, m: Message, droppable = false): void {
    if (peer.send(m, droppable) === 'slow') this.#disconnect(peer, CLOSE.slow, 'send buffer over its limit (peer reads too slowly)');
  }

  #broadcast(m: Message): void {
    for (const p of this.readyPeers()) this.#send(p, m, true);
  }

  /**
   * Cost a peer score; at the threshold it is disconnected and banned (by node id, persisted). A verdict that
   * arrives after the connection closed still counts: admission overlaps the next messages, so a peer's
   * invalid transactions may be judged after its invalid block got it banned.
   */
  penalize(peer: Peer, rule: string, detail: string): void {
    const points = PENALTY[rule] ?? 10;
    peer.score -= points;
    this.#log.debug('peer penalized', { peer: peer.label, rule, detail, score: peer.score });
    if (peer.nodeIdHex) this.emit('peer:penalized', { nodeId: peer.nodeIdHex, rule, score: peer.score });
    if (peer.score > this.limits.banThreshold) return;
    // Disconnect first, so that the offender is told why (4007; ban() would close it with 4005). Ban only an
    // identity the peer proved (AUTH verified): a HELLO merely claims a node id, and banning on that claim
    // would let anyone get an honest node banned by impersonating it.
    this.#disconnect(peer, CLOSE.misbehaving, `misbehaving (${rule}: ${detail})`.slice(0, 120));
    if (peer.nodeIdHex && peer.authOk && !this.#isBanned(peer.nodeIdHex)) this.ban(peer.nodeIdHex, `${rule}: ${detail}`);
  }

  ban(nodeIdHex: string, reason: string, ms = this.limits.banMs): void {
    if (nodeIdHex === this.nodeIdHex) return;
    const until = this.#o.clock.now() + ms;
    this.#bans.set(nodeIdHex, { until, reason });
    this.stats.bans++;
    void this.#o.db.put(layout.ban(fromHex(nodeIdHex)), encodeCanonical([until, reason.slice(0, 200)])).catch(() => {});
    this.#log.warn('peer banned', { nodeId: nodeIdHex, reason, until: new Date(until).toISOString() });
    this.emit('peer:banned', { nodeId: nodeIdHex, reason, until });
    const p = this.#byId.get(nodeIdHex);
    if (p) this.#disconnect(p, CLOSE.banned, 'banned');
  }

  unban(nodeIdHex: string): boolean {
    void this.#o.db.del(layout.ban(fromHex(nodeIdHex))).catch(() => {});
    return this.#bans.delete(nodeIdHex);
  }

  /** Disconnect a connected peer (admin "remove peer"); false if it is not connected. */
  disconnectPeer(nodeIdHex: string): boolean {
    const p = this.#byId.get(nodeIdHex);
    if (!p || p.closed) return false;
    this.#disconnect(p, CLOSE.normal, 'disconnected by operator');
    return true;
  }

  /** Dial a specific address now (admin "add peer"). */
  connect(url: string): void {
    if (!URL_RE.test(url)) throw new Error(`not a ws://HOST:PORT address: ${url}`);
    this.addrBook.add(url, this.#o.clock.now());
    void this.#dial(url);
  }

  #isBanned(nodeIdHex: string): boolean {
    const b = this.#bans.get(nodeIdHex);
    if (!b) return false;
    if (b.until > this.#o.clock.now()) return true;
    this.unban(nodeIdHex);
    return false;
  }

  #maintenance(): void {
    if (this.#stopped) return;
    const now = this.#o.clock.now();
    const outbound = [...this.#peers].filter((p) => p.outbound).length + this.#dialing.size;
    if (outbound < this.limits.targetOutbound) {
      const connected = new Set([...this.#peers].map((p) => p.dialedUrl ?? p.listen));
      // With no peer at all, back-offs are capped short: found by the simulator (seed 975699945, chaos), where a
      // node whose bootnode was down at first, then partitioned, backed off past the whole run and never joined.
      const cap = this.#peers.size === 0 ? ISOLATED_RETRY_CAP_MS : undefined;
      const due = this.addrBook.all().filter((e) => !connected.has(e.url) && !this.#dialing.has(e.url) && e.url !== this.listenUrl && this.addrBook.dueForDial(e, now, cap));
      due.sort((a, b) => Number(b.verified) - Number(a.verified) || a.failures - b.failures);
      for (const e of due.slice(0, this.limits.targetOutbound - outbound)) void this.#dial(e.url);
    }
    // Ask a random peer for addresses now and then, and at once while we lack outbound peers.
    const ready = this.readyPeers();
    if (ready.length && (now - this.#lastAddrAsk > 30_000 || (outbound < this.limits.targetOutbound && now - this.#lastAddrAsk > 3_000))) {
      this.#lastAddrAsk = now;
      this.#send(ready[this.#o.random.int(ready.length)]!, { type: MSG.GET_ADDR }, true);
    }
    for (const p of this.#peers) if (p.score < 0) p.score = Math.min(0, p.score + 1); // slow forgiveness
    for (const [id, f] of this.#txInflight) {
      if (now - f.at < 3000) continue;
      const next = f.alternates.find((a) => !a.closed);
      if (next) {
        this.#txInflight.set(id, { peer: next, at: now, alternates: f.alternates.filter((a) => a !== next) });
        this.#send(next, { type: MSG.GET_TX, ids: [fromHex(id)] }, true);
      } else this.#txInflight.delete(id);
    }
    this.#maintTimer = this.#o.clock.setTimeout(() => this.#maintenance(), this.limits.maintenanceMs);
  }

  // ------------------------------------------------------------------ messages

  #onFrame(peer: Peer, frame: Uint8Array): void {
    if (peer.closed) return;
    if (!peer.admit(frame.length)) return this.penalize(peer, 'rate_limited', 'message or byte rate above the limit');
    let m: Message;
    try {
      m = decodeMessage(frame, this.#frameLimits);
    } catch (e) {
      if (e instanceof ProtocolError) return this.penalize(peer, e.rule, e.message);
      throw e;
    }
    if (!peer.ready) return this.#onHandshake(peer, m);
    switch (m.type) {
      case MSG.HELLO: case MSG.AUTH: return this.penalize(peer, 'protocol', 'handshake message after the handshake');
      case MSG.STATUS:
        peer.headHeight = m.headHeight; peer.headHash = m.headHash; peer.headSlot = m.headSlot;
        peer.knownBlocks.add(toHex(m.headHash));
        return this.#syncSoon(peer);
      case MSG.TXS: return this.#enqueue(peer, frame.length, () => this.#onTxs(peer, m.txs));
      case MSG.INV_TX: return this.#onInvTx(peer, m.ids);
      case MSG.GET_TX: return this.#onGetTx(peer, m.ids);
      case MSG.BLOCK: return this.#enqueue(peer, frame.length, () => this.#onBlockPush(peer, m.block), 'blocks');
      case MSG.INV_BLOCK: return this.#onInvBlock(peer, m.hash, m.height);
      case MSG.GET_HASHES: return this.#onGetHashes(peer, m.reqId, m.locator, m.max);
      case MSG.GET_BLOCKS: return this.#enqueue(peer, frame.length, () => this.#onGetBlocks(peer, m.reqId, m.hashes));
      case MSG.HASHES: case MSG.BLOCKS: {
        const r = peer.resolve(m.reqId, m);
        if (r === 'unrequested') this.penalize(peer, 'unrequested', `response ${m.reqId} to nothing we asked`);
        else if (r === 'late') { this.stats.lateResponses++; this.#log.debug('late response dropped', { peer: peer.label, reqId: m.reqId }); }
        return;
      }
      case MSG.GET_ADDR: return this.#send(peer, { type: MSG.ADDR, addrs: this.#shareableAddrs(peer) }, true);
      case MSG.ADDR:
        for (const a of m.addrs) this.addrBook.add(a, this.#o.clock.now());
        return;
      case MSG.EVIDENCE: return this.#enqueue(peer, frame.length, () => this.#onEvidence(peer, m.headerA, m.headerB));
    }
  }

  /**
   * Peer exchange answer: addresses we dialed successfully, the advertised addresses of peers that proved
   * their node id to us (a bootnode that only receives connections still spreads the mesh this way), and
   * our own. A bogus address costs a failed dial and back-off, nothing more.
   */
  #shareableAddrs(asker: Peer): string[] {
    const out = new Set<string>(this.addrBook.verified(MAX_ADDRS / 2));
    for (const p of this.readyPeers()) if (p !== asker && p.listen && out.size < MAX_ADDRS - 1) out.add(p.listen);
    if (this.listenUrl) out.add(this.listenUrl);
    out.delete(asker.listen);
    return [...out].slice(0, MAX_ADDRS);
  }

  /**
   * Per-peer ordered processing with back-pressure. A backlog means that WE are slower than the peer's
   * (rate-limited, otherwise valid) traffic: above the pause mark we stop reading its connection and resume
   * below the resume mark, so the sender is slowed by flow control instead of being penalised (which used to
   * get honest validators banned by an overloaded node). Memory stays bounded by the max marks; what arrives
   * beyond them (only what the transport had already read when paused) is dropped without penalty.
   *
   * Blocks have a lane of their own (`lane` 'blocks'), counted in the same backlog: in one lane a block
   * waits for the admission of every transaction message its sender sent before it (signature checks
   * queued behind every other peer's), and a block that arrives late in its slot is built on by nobody. A
   * block carries its transactions, so it needs nothing sent before it.
   */
  #enqueue(peer: Peer, bytes: number, job: () => Promise<void>, lane: 'chain' | 'blocks' = 'chain'): void {
    const w = this.#work.get(peer)!;
    const q = this.limits.inbound;
    if (w.queued >= q.maxMsgs || w.bytes + bytes > q.maxBytes) {
      this.stats.inboundDropped++;
      this.#log.debug('inbound queue full, message dropped', { peer: peer.label, queued: w.queued, bytes: w.bytes });
      return;
    }
    w.queued++;
    w.bytes += bytes;
    if (!w.paused && (w.queued >= q.pauseMsgs || w.bytes >= q.pauseBytes)) {
      w.paused = true;
      this.stats.inboundPauses++;
      peer.conn.pause();
      this.#log.debug('peer paused (inbound backlog)', { peer: peer.label, queued: w.queued, bytes: w.bytes });
    }
    w[lane] = w[lane].then(job).catch((e) => this.#log.error('peer message handler failed', { peer: peer.label, error: e })).finally(() => {
      w.queued--;
      w.bytes -= bytes;
      if (w.paused && w.queued <= q.resumeMsgs && w.bytes <= q.resumeBytes) {
        w.paused = false;
        if (!peer.closed) peer.conn.resume();
      }
    });
  }

  /** Messages of this peer waiting for processing, and whether its connection is paused (tests, metrics). */
  inboundBacklog(peer: Peer): { queued: number; bytes: number; paused: boolean } {
    const w = this.#work.get(peer);
    return w ? { queued: w.queued, bytes: w.bytes, paused: w.paused } : { queued: 0, bytes: 0, paused: false };
  }

  #onHandshake(peer: Peer, m: Message): void {
    const g = this.#o.chain;
    if (m.type === MSG.HELLO && !peer.helloOk) {
      if (m.version !== PROTOCOL_VERSION) return this.#refuse(peer, CLOSE.version, `incompatible protocol version ${m.version} (we speak ${PROTOCOL_VERSION})`);
      if (m.chainId !== g.genesis.chainId || toHex(m.genesisHash) !== g.genesisHash) {
        return this.#refuse(peer, CLOSE.wrongNetwork, `wrong network: chain "${m.chainId}" genesis ${toHex(m.genesisHash).slice(0, 16)}… (ours: "${g.genesis.chainId}" ${g.genesisHash.slice(0, 16)}…)`);
      }
      const id = toHex(m.nodeId);
      if (id === this.nodeIdHex) {
        if (peer.dialedUrl) this.addrBook.markSelf(peer.dialedUrl);
        return this.#refuse(peer, CLOSE.self, 'connected to self');
      }
      if (this.#isBanned(id)) return this.#refuse(peer, CLOSE.banned, 'banned');
      peer.nodeId = m.nodeId;
      peer.nodeIdHex = id;
      peer.listen = URL_RE.test(m.listen) ? m.listen : '';
      peer.headHeight = m.headHeight;
      peer.headHash = m.headHash;
      peer.theirChallenge = m.challenge;
      peer.helloOk = true;
      this.#send(peer, { type: MSG.AUTH, signature: signAuth(this.#o.nodeKey.secretKey, fromHex(g.genesisHash), m.challenge, this.#o.nodeKey.publicKey) });
      return;
    }
    if (m.type === MSG.AUTH && peer.helloOk && !peer.authOk) {
      if (!verifyAuth(m.signature, fromHex(g.genesisHash), peer.challenge, peer.nodeId!)) return this.penalize(peer, 'bad_auth', 'handshake signature does not prove the node id');
      peer.authOk = true;
      return this.#onReady(peer);
    }
    this.penalize(peer, 'protocol', `message type ${m.type} before the handshake completed`);
  }

  /**
   * A peer one block ahead is usually just a gossip hop ahead: give the pushed or announced block a moment
   * to arrive before asking for hashes. Further behind, sync at once.
   */
  #syncSoon(peer: Peer): void {
    const head = this.#o.chain.head;
    if (peer.headHeight > head.height + 1) return this.sync.trigger();
    const wait = Math.min(500, Math.floor(this.#o.chain.genesis.slotMs / 2));
    this.#o.clock.setTimeout(() => { if (!this.#stopped) this.sync.trigger(); }, wait);
  }

  #refuse(peer: Peer, code: number, reason: string): void {
    this.#log.info('refusing peer', { remote: peer.conn.remote, reason });
    this.#disconnect(peer, code, reason);
  }

  #onReady(peer: Peer): void {
    const now = this.#o.clock.now();
    // The dialed address reached an authenticated node: it is verified, whatever happens to this connection.
    if (peer.dialedUrl) this.addrBook.success(peer.dialedUrl, now);
    const existing = this.#byId.get(peer.nodeIdHex);
    if (existing && !existing.closed) {
      // Keep the connection dialed by the node with the smaller id; if one node dialed both (two addresses
      // of the same peer), keep the one whose dialer challenge is smaller. Both ends compute the same answer.
      const dialer = (p: Peer) => (p.outbound ? this.nodeIdHex : p.nodeIdHex);
      const dialerChallenge = (p: Peer) => toHex(p.outbound ? p.challenge : p.theirChallenge);
      const keepNew = dialer(peer) !== dialer(existing) ? dialer(peer) < dialer(existing) : dialerChallenge(peer) < dialerChallenge(existing);
      const drop = keepNew ? existing : peer;
      this.#disconnect(drop, CLOSE.duplicate, 'duplicate connection');
      if (!keepNew) return;
    }
    const outbound = this.readyPeers().filter((p) => p.outbound).length;
    if (peer.outbound && outbound >= this.limits.maxOutbound) return this.#disconnect(peer, CLOSE.tooManyPeers, 'outbound peer limit reached');
    peer.ready = true;
    this.#clearHandshakeTimer(peer);
    this.#byId.set(peer.nodeIdHex, peer);
    if (!peer.dialedUrl && peer.listen) this.addrBook.add(peer.listen, now);
    this.#log.info('peer connected', { peer: peer.label, direction: peer.outbound ? 'outbound' : 'inbound', address: peer.listen || peer.conn.remote, headHeight: peer.headHeight });
    this.emit('peer:connected', { nodeId: peer.nodeIdHex, address: peer.listen || peer.conn.remote, direction: peer.outbound ? 'outbound' : 'inbound' });
    this.#send(peer, { type: MSG.GET_ADDR }, true);
    // A new peer learns our pending transactions by id and fetches what it lacks.
    const ids = this.#o.mempool.ids();
    for (let i = 0; i < ids.length; i += MAX_INV) {
      const chunk = ids.slice(i, i + MAX_INV);
      for (const id of chunk) peer.knownTxs.add(id);
      this.#send(peer, { type: MSG.INV_TX, ids: chunk.map(fromHex) }, true);
    }
    this.sync.trigger();
  }

  // ------------------------------------------------------------------ transactions

  #queueTx(tx: Tx): void {
    this.#txQueue.push({ tx, from: this.#txOrigin.get(tx.idHex) });
    this.#txOrigin.delete(tx.idHex);
  }

  #scheduleAnnounce(): void {
    if (this.#stopped) return;
    this.#announceTimer = this.#o.clock.setTimeout(() => {
      this.#flushTxs();
      this.#scheduleAnnounce();
    }, this.limits.announceIntervalMs);
  }

  /** Send queued transactions: bodies to a few peers, ids to the rest, nothing to peers that have them. */
  #flushTxs(): void {
    if (this.#txQueue.length === 0) return;
    const queue = this.#txQueue.splice(0);
    const peers = this.readyPeers();
    const bodies = new Map<Peer, Uint8Array[]>();
    const invs = new Map<Peer, Uint8Array[]>();
    const targets: Peer[] = []; // reused: this loop runs per transaction, so it allocates nothing per transaction
    for (const { tx, from } of queue) {
      if (!this.#o.mempool.has(tx.idHex)) continue; // replaced or evicted meanwhile
      targets.length = 0;
      for (const p of peers) if (p !== from && !p.knownTxs.has(tx.idHex)) targets.push(p);
      // Own transactions: the body to every peer. Relayed ones: to txPushFanout peers drawn at random, ids to the rest.
      const push = from ? this.#shuffleFront(targets, this.limits.txPushFanout) : targets.length;
      for (let i = 0; i < targets.length; i++) {
        const p = targets[i]!;
        p.knownTxs.add(tx.idHex);
        const m = i < push ? bodies : invs;
        let l = m.get(p);
        if (!l) m.set(p, (l = []));
        l.push(i < push ? tx.bytes : tx.id);
      }
    }
    for (const [p, l] of bodies) for (let i = 0; i < l.length; i += MAX_TXS_PER_MSG) this.#send(p, { type: MSG.TXS, txs: l.slice(i, i + MAX_TXS_PER_MSG) }, true);
    for (const [p, l] of invs) for (let i = 0; i < l.length; i += MAX_INV) this.#send(p, { type: MSG.INV_TX, ids: l.slice(i, i + MAX_INV) }, true);
  }

  #onInvTx(peer: Peer, ids: Uint8Array[]): void {
    this.stats.txAnnouncementsIn += ids.length;
    const want: Uint8Array[] = [];
    const now = this.#o.clock.now();
    for (const id of ids) {
      const hex = toHex(id);
      peer.knownTxs.add(hex);
      // #txOrigin holds the transactions whose body arrived and is being admitted (verify, persist): fetching
      // another copy of one of those from this announcer is only a duplicate.
      if (this.#seenTxs.has(hex) || this.#rejectedTxs.has(hex) || this.#txOrigin.has(hex)) continue;
      const f = this.#txInflight.get(hex);
      if (f) { if (f.peer !== peer && f.alternates.length < 4) f.alternates.push(peer); continue; }
      if (this.#txInflight.size >= 100_000) continue;
      this.#txInflight.set(hex, { peer, at: now, alternates: [] });
      want.push(id);
    }
    if (want.length) this.#send(peer, { type: MSG.GET_TX, ids: want }, true);
  }

  #onGetTx(peer: Peer, ids: Uint8Array[]): void {
    const out: Uint8Array[] = [];
    let bytes = 0;
    for (const id of ids) {
      const tx = this.#o.mempool.get(toHex(id));
      if (!tx) continue;
      out.push(tx.bytes);
      bytes += tx.byteLength;
      if (out.length === MAX_TXS_PER_MSG || bytes > 1_900_000) {
        this.#send(peer, { type: MSG.TXS, txs: out.splice(0) }, true);
        bytes = 0;
      }
    }
    if (out.length) this.#send(peer, { type: MSG.TXS, txs: out }, true);
  }

  async #onTxs(peer: Peer, list: Uint8Array[]): Promise<void> {
    const fresh: Tx[] = [];
    const inMessage = new Set<string>();
    for (const bytes of list) {
      if (peer.closed) return;
      let tx: Tx;
      try {
        tx = decodeTx(bytes);
      } catch (e) {
        this.penalize(peer, 'invalid_tx', e instanceof Error ? e.message : String(e));
        continue;
      }
      this.stats.txBodiesIn++;
      peer.knownTxs.add(tx.idHex);
      this.#txInflight.delete(tx.idHex);
      if (this.#o.mempool.has(tx.idHex) || this.#seenTxs.has(tx.idHex) || inMessage.has(tx.idHex)) { this.stats.duplicateTxBodies++; continue; }
      if (this.#rejectedTxs.has(tx.idHex)) continue;
      inMessage.add(tx.idHex);
      this.#txOrigin.set(tx.idHex, peer);
      fresh.push(tx);
    }
    // Added together, so the mempool admits the message as one batch (one signature batch, one write).
    // The message's turn in the peer's queue ends once its transactions are handed over AND the previous
    // message's admission has finished: two consecutive messages overlap, the second's signatures being
    // verified on the worker pool while the first is admitted and written (the mempool keeps call order).
    // Without it the main thread and the workers took turns, each idle ~40 % of a P2P ingest.
    const admission = this.#o.mempool.addMany(fresh).then((results) => {
      let failure: Error | undefined;
      for (let i = 0; i < results.length; i++) {
        const e = results[i];
        if (!(e instanceof Error)) continue;
        const tx = fresh[i]!;
        this.#txOrigin.delete(tx.idHex);
        if (!(e instanceof RuleError)) { failure ??= e; continue; }
        if (isProvablyInvalid(e.rule)) {
          this.#rejectedTxs.add(tx.idHex);
          this.penalize(peer, 'invalid_tx', e.message);
        }
      }
      if (failure !== undefined) this.#log.error('peer message handler failed', { peer: peer.label, error: failure });
    });
    const w = this.#work.get(peer)!;
    const previous = w.admitting;
    w.admitting = admission;
    await previous;
  }

  // ------------------------------------------------------------------ blocks

  #decodeBlock(bytes: Uint8Array, from: Peer): Block | undefined {
    try {
      return decodeBlock(bytes, this.#o.chain.genesis.params.maxBlockBytes);
    } catch (e) {
      this.penalize(from, 'invalid_block', e instanceof Error ? e.message : String(e));
      return undefined;
    }
  }

  async #onBlockPush(peer: Peer, bytes: Uint8Array): Promise<void> {
    const b = this.#decodeBlock(bytes, peer);
    if (!b) return;
    this.stats.blockBodiesIn++;
    this.#blockInflight.delete(b.header.hashHex);
    await this.#acceptBlock(b, peer, 'gossip');
  }

  /**
   * The highest head height known: ours or one a ready peer reported (HELLO, STATUS, INV_BLOCK). Only used
   * to decide whether a block that came by SYNC is worth relaying: a peer lying about its height can at worst
   * suppress that relay, never the relay of gossiped blocks.
   */
  #networkTip(): number {
    let tip = this.#o.chain.head.height;
    for (const p of this.#peers) if (p.ready && !p.closed && p.headHeight > tip) tip = p.headHeight;
    return tip;
  }

  /** Hand a block to the chain and act on the verdict: relay, buffer as orphan, sync, or penalize. */
  async #acceptBlock(b: Block, from: Peer, via: 'gossip' | 'sync'): Promise<AcceptResult> {
    const gossip = via === 'gossip';
    const chain = this.#o.chain;
    const hex = b.header.hashHex;
    from.knownBlocks.add(hex);
    if (chain.hasBlock(hex)) {
      // Honest nodes relay only blocks they fully validated, so sending one we found invalid is misbehaviour.
      const bad = chain.isInvalid(hex);
      if (bad) { this.penalize(from, 'invalid_block', `re-sent block ${hex.slice(0, 16)} already found invalid (${bad})`); return 'invalid'; }
      if (gossip) this.stats.duplicateBlockBodies++;
      return 'known';
    }
    try {
      const r = await chain.addBlock(b);
      if (r.status === 'orphan') {
        this.#addOrphan(b, from, via);
        if (from.headHeight < b.header.height) { from.headHeight = b.header.height; from.headHash = b.header.hash; }
        this.sync.trigger();
        return 'orphan';
      }
      if (r.status === 'duplicate') return 'known';
      // Relay only what we fully validated (connected to our best chain). A side-branch block passed only the
      // stateless checks: relaying it could pass on a state-invalid block in good faith, for which peers rightly
      // penalise the sender. Peers that need a side branch fetch it by sync.
      // A gossiped block that connected is the new tip: relay it. A block downloaded by SYNC is history unless
      // it is within 2 of the best head any peer reports: a catching-up node must not re-broadcast the chain it
      // downloads (its peers have it, or get it by their own sync), but a node that was one block behind and
      // fetched the tip by sync still passes it on. (Comparing with our own head, as before, always passed:
      // the block had just become the head.)
      if (r.status !== 'side' && (gossip || b.header.height + 2 >= this.#networkTip())) this.relayBlock(b, from);
      return 'accepted';
    } catch (e) {
      if (!(e instanceof RuleError)) throw e;
      if (e.rule === 'future_slot') return 'later';
      if (isProvablyInvalid(e.rule) || e.rule === 'known_invalid') this.penalize(from, 'invalid_block', e.message);
      return 'invalid';
    }
  }

  /** Evidence travels as two signed headers, verifiable without state: relay it to every peer once. */
  #relayEvidence(slot: number, proposer: string, headers: Uint8Array[]): void {
    const key = `${slot}:${proposer}`;
    if (this.#seenEvidence.has(key) || headers.length < 2) return;
    this.#seenEvidence.add(key);
    for (const p of this.readyPeers()) this.#send(p, { type: MSG.EVIDENCE, headerA: headers[0]!, headerB: headers[1]! }, true);
  }

  async #onEvidence(peer: Peer, a: Uint8Array, b: Uint8Array): Promise<void> {
    let ha, hb;
    try {
      ha = decodeHeader(a);
      hb = decodeHeader(b);
    } catch (e) {
      return this.penalize(peer, 'protocol', `evidence: ${(e as Error).message}`);
    }
    try {
      await this.#o.chain.addEvidence(ha, hb); // 'new' is announced by the chain's event, which relays it
    } catch (e) {
      if (!(e instanceof RuleError)) throw e;
      this.penalize(peer, 'invalid_block', `forged equivocation evidence: ${e.message}`);
    }
  }

  #addOrphan(b: Block, from: Peer, via: 'gossip' | 'sync'): void {
    this.#orphans.delete(b.header.hashHex);
    this.#orphans.set(b.header.hashHex, { block: b, from, via });
    while (this.#orphans.size > this.limits.orphanLimit) this.#orphans.delete(this.#orphans.keys().next().value as string);
  }

  /** A block connected: its buffered children (if any) go to the chain now. The pool is small, so a scan. */
  #adoptOrphans(parentHex: string): void {
    for (const [hex, o] of this.#orphans) {
      if (toHex(o.block.header.parentHash) !== parentHex) continue;
      this.#orphans.delete(hex);
      if (!o.from.closed) this.#enqueue(o.from, o.block.bytes.length, async () => { await this.#acceptBlock(o.block, o.from, o.via); }, 'blocks');
    }
  }

  #onInvBlock(peer: Peer, hash: Uint8Array, height: number): void {
    this.stats.blockAnnouncementsIn++;
    const hex = toHex(hash);
    peer.knownBlocks.add(hex);
    if (height > peer.headHeight) { peer.headHeight = height; peer.headHash = hash; }
    const chain = this.#o.chain;
    if (chain.hasBlock(hex) || chain.isInvalid(hex) || this.#blockInflight.has(hex)) return;
    this.#blockInflight.add(hex);
    peer.request<Extract<Message, { type: typeof MSG.BLOCKS }>>((reqId) => ({ type: MSG.GET_BLOCKS, reqId, hashes: [hash] }), MSG.BLOCKS, 5000)
      .then((res) => this.#enqueue(peer, res.blocks.reduce((n, x) => n + x.length, 0), async () => {
        for (const bytes of res.blocks) {
          const b = this.#decodeBlock(bytes, peer);
          if (!b) return;
          if (b.header.hashHex !== hex) return this.penalize(peer, 'unrequested', 'block not asked for');
          this.stats.blockBodiesIn++;
          await this.#acceptBlock(b, peer, 'gossip');
        }
      }, 'blocks'))
      .catch(() => { /* timeout or disconnect: another announcement or sync will bring it */ })
      .finally(() => this.#blockInflight.delete(hex));
  }

  #onGetHashes(peer: Peer, reqId: number, locator: Uint8Array[], max: number): void {
    const chain = this.#o.chain;
    const fork = chain.forkPoint(locator.map(toHex));
    const hashes: Uint8Array[] = [];
    for (let h = fork.height + 1; h <= chain.head.height && hashes.length < max; h++) hashes.push(fromHex(chain.mainHashAt(h)!));
    this.#send(peer, { type: MSG.HASHES, reqId, forkHeight: fork.height, hashes });
  }

  async #onGetBlocks(peer: Peer, reqId: number, hashes: Uint8Array[]): Promise<void> {
    const blocks: Uint8Array[] = [];
    let bytes = 0;
    const budget = this.#frameLimits[MSG.BLOCKS]! - 64 * 1024;
    // The stored bytes are what we send: read them in one go, without decoding blocks only to re-send them
    // (a node serving sync used to decode every transaction, id hashes included, of every block it served).
    const hex = hashes.map(toHex);
    const raw = await this.#o.chain.getBlockBytes(hex);
    for (let i = 0; i < hashes.length; i++) {
      const b = raw[i] ?? this.#relayed.peek(hex[i]!);
      if (!b || bytes + b.length > budget) break;
      blocks.push(b);
      bytes += b.length;
    }
    this.#send(peer, { type: MSG.BLOCKS, reqId, blocks });
  }

  #pick<T>(items: T[], n: number): Set<T> {
    const a = [...items];
    return new Set(a.slice(0, this.#shuffleFront(a, n)));
  }

  /** Move min(n, length) items drawn uniformly at random to the front of `a` (in place); returns that count. */
  #shuffleFront<T>(a: T[], n: number): number {
    if (a.length <= n) return a.length;
    for (let i = 0; i < n; i++) {
      const j = i + this.#o.random.int(a.length - i);
      const t = a[i]!;
      a[i] = a[j]!;
      a[j] = t;
    }
    return n;
  }

  /** Test/introspection helper: whether a node id is connected and ready. */
  isConnected(nodeIdHex: string): boolean {
    const p = this.#byId.get(nodeIdHex);
    return !!p && p.ready && !p.closed;
  }

}
