/**
 * The switch: owns the peer set. It accepts and dials connections within the limits, runs the session
 * (handshake.ts) on each until the peer is authenticated and admitted, then hands every message to the
 * reactor that registered its type (reactor.ts), directly or through the peer's inbound queue (inbound.ts).
 * A type nobody registered is refused (`unknown_type`), a frame over its type's declared limit too
 * (`oversized`); both cost the sender score (scoring.ts). The switch also dials more peers when it has too
 * few outbound ones, and runs the reactors' periodic work.
 */
import type { Logger } from '../util/log.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Random } from '../util/random.js';
import type { AddrBook } from './addrbook.js';
import type { NetEmit } from './events.js';
import { Handshake } from './handshake.js';
import { InboundQueues } from './inbound.js';
import type { NetLimits } from './limits.js';
import { decodeMessage, ProtocolError, type Message } from './messages.js';
import { Peer } from './peer.js';
import type { Lane, MaintenanceRound, Reactor, ReactorHost } from './reactor.js';
import type { Scoring } from './scoring.js';
import { CLOSE, type Conn, type Transport } from './transport.js';

/** The longest a node with no peer waits before dialing a known address again, whatever its failures. */
const ISOLATED_RETRY_CAP_MS = 8_000;

export interface SwitchOptions {
  transport: Transport;
  clock: Clock;
  random: Random;
  log: Logger;
  emit: NetEmit;
  nodeIdHex: string;
  limits: NetLimits;
  addrBook: AddrBook;
  scoring: Scoring;
  /** The session; it learns the URL we listen on through `listenUrl`. */
  handshake: Handshake;
}

interface Route { reactor: Reactor; lane: Lane | undefined }

export class Switch implements ReactorHost {
  readonly #o: SwitchOptions;
  readonly #log: Logger;
  readonly #peers = new Set<Peer>();
  readonly #byId = new Map<string, Peer>();
  readonly #dialing = new Set<string>();
  readonly #handshakeTimers = new Map<Peer, TimerHandle>();
  readonly #inbound: InboundQueues;
  readonly #reactors: Reactor[] = [];
  readonly #routes = new Map<number, Route>();
  /** Frame limits by type: the session's and every registered reactor's (decodeMessage refuses other types). */
  readonly #frameLimits: Record<number, number> = {};
  readonly #tickers: ((now: number, round: MaintenanceRound) => void)[] = [];
  #maintTimer: TimerHandle | undefined;
  #stopped = false;
  listenUrl = '';

  constructor(o: SwitchOptions) {
    this.#o = o;
    this.#log = o.log;
    this.#inbound = new InboundQueues(o.limits.inbound, o.log);
    for (const s of Handshake.messages) this.#frameLimits[s.type] = s.maxBytes;
  }

  /** Add a reactor: its message types are routed to it; its lifecycle hooks and tick run in registration order. */
  register(reactor: Reactor): void {
    for (const s of reactor.messages) {
      if (s.type in this.#frameLimits) throw new Error(`message type ${s.type} of reactor ${reactor.name} is already registered`);
      this.#routes.set(s.type, { reactor, lane: s.lane });
      this.#frameLimits[s.type] = s.maxBytes;
    }
    this.#reactors.push(reactor);
    if (reactor.tick) this.#tickers.push((now, round) => reactor.tick!(now, round));
  }

  /** Periodic work of a part that is not a reactor (scoring), in order among the reactors' ticks. */
  addTicker(fn: (now: number, round: MaintenanceRound) => void): void {
    this.#tickers.push(fn);
  }

  /** The frame limit of every type this switch accepts. */
  frameLimits(): Readonly<Record<number, number>> { return this.#frameLimits; }

  get running(): boolean { return !this.#stopped; }
  get inboundPauses(): number { return this.#inbound.pauses; }
  get inboundDropped(): number { return this.#inbound.dropped; }

  readyPeers(): Peer[] { return [...this.#peers].filter((p) => p.ready && !p.closed); }
  /** Every connection, handshake finished or not. */
  peers(): Iterable<Peer> { return this.#peers; }
  peerById(nodeIdHex: string): Peer | undefined { return this.#byId.get(nodeIdHex); }
  inboundBacklog(peer: Peer): { queued: number; bytes: number; paused: boolean } { return this.#inbound.backlog(peer); }

  /** Listen (if asked to); returns the bound address. */
  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return this.#o.transport.listen(host, port, (c) => this.#onInbound(c));
  }

  /** Start dialing and the periodic work (the first round runs now). */
  run(): void {
    this.#maintenance();
  }

  /** First half of stopping: reactors' timers see `running` false from here on. */
  halt(): void {
    this.#stopped = true;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#maintTimer) this.#o.clock.clearTimeout(this.#maintTimer);
    for (const p of this.#peers) p.conn.close(CLOSE.goingAway, 'node shutting down');
    for (const p of [...this.#handshakeTimers.keys()]) this.#clearHandshakeTimer(p);
    await this.#o.transport.close();
  }

  /** Dial an address now (it is in the address book already). */
  dial(url: string): void {
    void this.#dial(url);
  }

  send(peer: Peer, m: Message, droppable = false): void {
    if (peer.send(m, droppable) === 'slow') this.disconnect(peer, CLOSE.slow, 'send buffer over its limit (peer reads too slowly)');
  }

  enqueue(peer: Peer, bytes: number, job: () => Promise<void>, lane: Lane): void {
    this.#inbound.enqueue(peer, bytes, job, lane);
  }

  penalize(peer: Peer, rule: string, detail: string): void {
    this.#o.scoring.penalize(peer, rule, detail);
  }

  disconnect(peer: Peer, code: number, reason: string): void {
    if (peer.closed) return;
    this.#log.info('disconnecting peer', { peer: peer.label, code, reason });
    peer.conn.close(code, reason);
    this.#onClose(peer, code, reason);
  }

  // ------------------------------------------------------------------ connections

  #onInbound(conn: Conn): void {
    if (this.#stopped) return conn.close(CLOSE.goingAway, 'shutting down');
    const l = this.#o.limits;
    const ip = conn.remote.replace(/:\d+$/, '');
    const inbound = [...this.#peers].filter((p) => p.conn.inbound);
    if (inbound.length >= l.maxInbound) return conn.close(CLOSE.tooManyPeers, `too many inbound peers (${l.maxInbound})`);
    const pending = inbound.filter((p) => !p.ready && p.conn.remote.replace(/:\d+$/, '') === ip).length;
    if (pending >= l.maxPendingPerIp) return conn.close(CLOSE.tooManyPeers, `too many unauthenticated connections from ${ip}`);
    this.#attach(conn, undefined);
  }

  async #dial(url: string): Promise<void> {
    if (this.#dialing.has(url) || this.#stopped) return;
    this.#dialing.add(url);
    this.#o.addrBook.attempt(url, this.#o.clock.now());
    try {
      const conn = await this.#o.transport.dial(url, this.#o.limits.handshakeTimeoutMs);
      if (this.#stopped) return conn.close(CLOSE.goingAway, 'shutting down');
      this.#attach(conn, url);
    } catch (e) {
      this.#o.addrBook.failure(url);
      this.#log.debug('dial failed', { url, error: (e as Error).message });
    } finally {
      this.#dialing.delete(url);
    }
  }

  #attach(conn: Conn, dialedUrl: string | undefined): void {
    const peer = new Peer(conn, this.#o.clock, this.#o.limits.peer, dialedUrl);
    this.#peers.add(peer);
    this.#inbound.attach(peer);
    // HELLO goes out before any handler runs: registering the handler replays frames that arrived early,
    // and our AUTH (the answer to the peer's HELLO) must never precede our own HELLO.
    this.send(peer, this.#o.handshake.begin(peer));
    conn.onMessage((frame) => this.#onFrame(peer, frame));
    conn.onClose((code, reason) => this.#onClose(peer, code, reason));
    const timer = this.#o.clock.setTimeout(() => {
      this.#handshakeTimers.delete(peer);
      if (!peer.ready && !peer.closed) this.disconnect(peer, CLOSE.timeout, 'handshake timed out');
    }, this.#o.limits.handshakeTimeoutMs);
    this.#handshakeTimers.set(peer, timer);
  }

  #clearHandshakeTimer(peer: Peer): void {
    const t = this.#handshakeTimers.get(peer);
    if (t) this.#o.clock.clearTimeout(t);
    this.#handshakeTimers.delete(peer);
  }

  #onClose(peer: Peer, code: number, reason: string): void {
    // Runs once per connection: disconnect() calls it at once, and the transport's close event comes later.
    if (peer.closed) return;
    this.#clearHandshakeTimer(peer);
    const wasReady = peer.ready;
    peer.markClosed();
    this.#peers.delete(peer);
    if (this.#byId.get(peer.nodeIdHex) === peer) this.#byId.delete(peer.nodeIdHex);
    if (code === CLOSE.tooBig && peer.nodeIdHex) this.penalize(peer, 'oversized', 'frame above the transport limit');
    if (peer.dialedUrl && !wasReady && code !== CLOSE.self) this.#o.addrBook.failure(peer.dialedUrl);
    if (wasReady) {
      this.#log.info('peer disconnected', { peer: peer.label, code, reason });
      this.#o.emit('peer:disconnected', { nodeId: peer.nodeIdHex, code, reason });
      for (const r of this.#reactors) r.onPeerGone?.(peer);
    } else if (code >= 4000 && code < 5000) {
      // The other side refused us (or we refused it): say why, at a level operators see.
      this.#log.warn('connection refused during handshake', { remote: peer.dialedUrl ?? peer.conn.remote, code, reason });
    } else {
      this.#log.debug('connection closed before handshake', { remote: peer.conn.remote, code, reason });
    }
  }

  #maintenance(): void {
    if (this.#stopped) return;
    const now = this.#o.clock.now();
    const l = this.#o.limits;
    const book = this.#o.addrBook;
    const outbound = [...this.#peers].filter((p) => p.outbound).length + this.#dialing.size;
    if (outbound < l.targetOutbound) {
      const connected = new Set([...this.#peers].map((p) => p.dialedUrl ?? p.listen));
      // With no peer at all, back-offs are capped short: an isolated node loses nothing by retrying, and one
      // whose bootnode was down at first, then partitioned, would otherwise back off past a whole run
      // (simulator seed 975699945, chaos).
      const cap = this.#peers.size === 0 ? ISOLATED_RETRY_CAP_MS : undefined;
      const due = book.all().filter((e) => !connected.has(e.url) && !this.#dialing.has(e.url) && e.url !== this.listenUrl && book.dueForDial(e, now, cap));
      due.sort((a, b) => Number(b.verified) - Number(a.verified) || a.failures - b.failures);
      for (const e of due.slice(0, l.targetOutbound - outbound)) void this.#dial(e.url);
    }
    const round: MaintenanceRound = { lackingOutbound: outbound < l.targetOutbound };
    for (const t of this.#tickers) t(now, round);
    this.#maintTimer = this.#o.clock.setTimeout(() => this.#maintenance(), l.maintenanceMs);
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
    const route = this.#routes.get(m.type);
    if (!route) return this.penalize(peer, 'protocol', 'handshake message after the handshake');
    const { reactor, lane } = route;
    if (lane) this.#inbound.enqueue(peer, frame.length, () => reactor.onMessage(peer, m, frame.length), lane);
    else void reactor.onMessage(peer, m, frame.length);
  }

  #onHandshake(peer: Peer, m: Message): void {
    const step = this.#o.handshake.receive(peer, m);
    switch (step.kind) {
      case 'reply': return this.send(peer, step.message);
      case 'penalize': return this.penalize(peer, step.rule, step.detail);
      case 'refuse':
        if (step.code === CLOSE.self && peer.dialedUrl) this.#o.addrBook.markSelf(peer.dialedUrl);
        this.#log.info('refusing peer', { remote: peer.conn.remote, reason: step.reason });
        return this.disconnect(peer, step.code, step.reason);
      case 'ready': return this.#onReady(peer);
    }
  }

  #onReady(peer: Peer): void {
    const now = this.#o.clock.now();
    // The dialed address reached an authenticated node: it is verified, whatever happens to this connection.
    if (peer.dialedUrl) this.#o.addrBook.success(peer.dialedUrl, now);
    const existing = this.#byId.get(peer.nodeIdHex);
    if (existing && !existing.closed) {
      // Keep the connection dialed by the node with the smaller id; if one node dialed both (two addresses
      // of the same peer), keep the one the session ranks first. Both ends compute the same answer.
      const dialer = (p: Peer) => (p.outbound ? this.#o.nodeIdHex : p.nodeIdHex);
      const tie = (p: Peer) => this.#o.handshake.tieBreak(p);
      const keepNew = dialer(peer) !== dialer(existing) ? dialer(peer) < dialer(existing) : tie(peer) < tie(existing);
      const drop = keepNew ? existing : peer;
      this.disconnect(drop, CLOSE.duplicate, 'duplicate connection');
      if (!keepNew) return;
    }
    const outbound = this.readyPeers().filter((p) => p.outbound).length;
    if (peer.outbound && outbound >= this.#o.limits.maxOutbound) return this.disconnect(peer, CLOSE.tooManyPeers, 'outbound peer limit reached');
    peer.ready = true;
    this.#clearHandshakeTimer(peer);
    this.#byId.set(peer.nodeIdHex, peer);
    const address = peer.listen || peer.conn.remote;
    const direction = peer.outbound ? 'outbound' : 'inbound';
    this.#log.info('peer connected', { peer: peer.label, direction, address, headHeight: peer.headHeight });
    this.#o.emit('peer:connected', { nodeId: peer.nodeIdHex, address, direction });
    for (const r of this.#reactors) r.onPeerReady?.(peer);
  }
}
