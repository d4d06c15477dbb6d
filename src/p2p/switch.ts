/**
 * The switch: owns the peer set. It accepts and dials connections within the limits, runs the session
 * (noise.ts under the policy of handshake.ts) on each, makes a peer of each authenticated session it admits,
 * then hands every message to the reactor that registered its type (reactor.ts), directly or through the
 * peer's inbound queue (inbound.ts).
 * A type nobody registered is refused (`unknown_type`), a frame over its type's declared limit too
 * (`oversized`); both cost the sender score (scoring.ts). The switch also dials more peers when it has too
 * few outbound ones, and runs the reactors' periodic work.
 */
import type { Logger } from '../util/log.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Random } from '../util/random.js';
import type { AddrBook } from './addrbook.js';
import type { NetEmit } from './events.js';
import type { SessionPolicy } from './handshake.js';
import { InboundQueues } from './inbound.js';
import type { NetLimits } from './limits.js';
import { decodeMessage, ProtocolError, type Message } from './messages.js';
import { SessionError, type Session } from './noise.js';
import { Peer } from './peer.js';
import type { Lane, MaintenanceRound, Reactor, ReactorHost } from './reactor.js';
import type { Scoring } from './scoring.js';
import { CLOSE, type Conn, type Transport } from './transport.js';
import { URL_RE } from './addrbook.js';
import { toHex } from '../encoding/bytes.js';
import { LruMap } from '../util/lru.js';
import { TokenBucket } from '../util/ratelimit.js';

const ipOf = (remote: string): string => remote.replace(/:\d+$/, '');

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
  /** The session policy; it learns the URL we listen on through `listenUrl`. */
  sessions: SessionPolicy;
}

/** A connection whose session is still being set up (not a peer yet). */
interface Pending { readonly conn: Conn; readonly ip: string; readonly dialedUrl: string | undefined }

interface Route { reactor: Reactor; lane: Lane | undefined }

export class Switch implements ReactorHost {
  readonly #o: SwitchOptions;
  readonly #log: Logger;
  readonly #peers = new Set<Peer>();
  readonly #byId = new Map<string, Peer>();
  readonly #dialing = new Set<string>();
  readonly #pending = new Set<Pending>();
  readonly #inbound: InboundQueues;
  readonly #reactors: Reactor[] = [];
  readonly #routes = new Map<number, Route>();
  /** Frame limits by type: the session's and every registered reactor's (decodeMessage refuses other types). */
  readonly #frameLimits: Record<number, number> = {};
  readonly #tickers: ((now: number, round: MaintenanceRound) => void)[] = [];
  #maintTimer: TimerHandle | undefined;
  #stopped = false;
  listenUrl = '';
  /** Sessions ended because a sealed frame failed authentication (someone on the path altered the stream). */
  tampered = 0;
  /** Inbound connections refused by the new-session rate limits. */
  sessionsThrottled = 0;
  /** New inbound sessions allowed, per IP (bounded: the oldest IPs are forgotten) and in total. */
  readonly #newSessions = new LruMap<string, TokenBucket>(10_000);
  #allNewSessions: TokenBucket | undefined;

  constructor(o: SwitchOptions) {
    this.#o = o;
    this.#log = o.log;
    this.#inbound = new InboundQueues(o.limits.inbound, o.log);
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
  /** Every peer (an authenticated session), admitted or on its way out. */
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
    for (const p of this.#pending) p.conn.close(CLOSE.goingAway, 'node shutting down');
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
    const ip = ipOf(conn.remote);
    let inbound = 0;
    for (const p of this.#peers) if (p.conn.inbound) inbound++;
    let fromIp = 0;
    for (const p of this.#pending) {
      if (!p.conn.inbound) continue;
      inbound++;
      if (p.ip === ip) fromIp++;
    }
    if (inbound >= l.maxInbound) return conn.close(CLOSE.tooManyPeers, `too many inbound peers (${l.maxInbound})`);
    if (fromIp >= l.maxPendingPerIp) return conn.close(CLOSE.tooManyPeers, `too many unauthenticated connections from ${ip}`);
    const now = this.#o.clock.now();
    let perIp = this.#newSessions.get(ip);
    if (!perIp) this.#newSessions.set(ip, (perIp = new TokenBucket(l.newSessionsPerIpPerSec, 2 * l.newSessionsPerIpPerSec, now)));
    this.#allNewSessions ??= new TokenBucket(l.newSessionsPerSec, 2 * l.newSessionsPerSec, now);
    if (!perIp.take(1, now) || !this.#allNewSessions.take(1, now)) {
      this.sessionsThrottled++;
      return conn.close(CLOSE.tooManyPeers, 'too many new connections; retry later');
    }
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

  /**
   * Run the session on a new connection; an authenticated one becomes a peer (#admit). A failed or refused
   * handshake costs nobody anything: no identity was proven, and anyone on the path can make one fail.
   */
  #attach(conn: Conn, dialedUrl: string | undefined): void {
    const pending: Pending = { conn, ip: ipOf(conn.remote), dialedUrl };
    this.#pending.add(pending);
    this.#o.sessions.open(conn).then(
      (session) => {
        this.#pending.delete(pending);
        if (this.#stopped) return session.conn.close(CLOSE.goingAway, 'shutting down');
        this.#admit(session, dialedUrl);
      },
      (e: unknown) => {
        this.#pending.delete(pending);
        const remote = dialedUrl ?? conn.remote;
        if (!(e instanceof SessionError)) {
          conn.close(CLOSE.protocol, 'handshake failed');
          return this.#log.error('session setup failed', { remote, error: e });
        }
        if (dialedUrl) {
          if (e.rule === 'self') this.#o.addrBook.markSelf(dialedUrl);
          else this.#o.addrBook.failure(dialedUrl);
        }
        // Refusals by either side are worth an operator's attention; connections that merely died are not.
        if (e.rule === 'closed' && (e.code < 4000 || e.code >= 5000)) this.#log.debug('connection closed before the handshake finished', { remote, reason: e.message });
        else this.#log.warn('handshake refused or failed', { remote, rule: e.rule, reason: e.message });
      },
    );
  }

  #admit(session: Session, dialedUrl: string | undefined): void {
    const peer = new Peer(session.conn, this.#o.clock, this.#o.limits.peer, dialedUrl);
    peer.nodeIdHex = toHex(session.nodeId);
    peer.sessionId = toHex(session.handshakeHash);
    peer.authenticated = true;
    peer.listen = URL_RE.test(session.remote.listen) ? session.remote.listen : '';
    peer.headHeight = session.remote.headHeight;
    peer.headHash = session.remote.headHash;
    session.conn.onTampered = () => {
      this.tampered++;
      this.#log.warn('session ended: a frame failed authentication (altered on the way); nobody is blamed', { peer: peer.label, remote: peer.conn.remote });
    };
    this.#peers.add(peer);
    this.#inbound.attach(peer);
    peer.conn.onClose((code, reason) => this.#onClose(peer, code, reason));
    this.#onReady(peer);
    // Handlers last: frames that arrived meanwhile were kept by the connection and are replayed now.
    if (!peer.closed) peer.conn.onMessage((frame) => this.#onFrame(peer, frame));
  }

  #onClose(peer: Peer, code: number, reason: string): void {
    // Runs once per connection: disconnect() calls it at once, and the transport's close event comes later.
    if (peer.closed) return;
    const wasReady = peer.ready;
    peer.markClosed();
    this.#peers.delete(peer);
    if (this.#byId.get(peer.nodeIdHex) === peer) this.#byId.delete(peer.nodeIdHex);
    // A frame over the transport's limit (1009) is refused before it can be opened, so nothing proves who sent
    // it (anyone on the path can forge the frame header): the connection ends, nobody is penalised.
    if (wasReady) {
      this.#log.info('peer disconnected', { peer: peer.label, code, reason });
      this.#o.emit('peer:disconnected', { nodeId: peer.nodeIdHex, code, reason });
      for (const r of this.#reactors) r.onPeerGone?.(peer);
    } else {
      this.#log.debug('connection closed before it was admitted', { peer: peer.label, code, reason });
    }
  }

  #maintenance(): void {
    if (this.#stopped) return;
    const now = this.#o.clock.now();
    const l = this.#o.limits;
    const book = this.#o.addrBook;
    let outbound = this.#dialing.size;
    for (const p of this.#peers) if (p.outbound) outbound++;
    for (const p of this.#pending) if (p.dialedUrl) outbound++;
    if (outbound < l.targetOutbound) {
      const connected = new Set([...this.#peers].map((p) => p.dialedUrl ?? p.listen));
      for (const p of this.#pending) if (p.dialedUrl) connected.add(p.dialedUrl);
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
    if (peer.closed || !peer.ready) return;
    if (!peer.admit(frame.length)) return this.penalize(peer, 'rate_limited', 'message or byte rate above the limit');
    let m: Message;
    try {
      m = decodeMessage(frame, this.#frameLimits);
    } catch (e) {
      if (e instanceof ProtocolError) return this.penalize(peer, e.rule, e.message);
      throw e;
    }
    const { reactor, lane } = this.#routes.get(m.type)!; // decodeMessage accepts only registered types
    if (lane) this.#inbound.enqueue(peer, frame.length, () => reactor.onMessage(peer, m, frame.length), lane);
    else void reactor.onMessage(peer, m, frame.length);
  }

  #onReady(peer: Peer): void {
    const now = this.#o.clock.now();
    // The dialed address reached an authenticated node: it is verified, whatever happens to this connection.
    if (peer.dialedUrl) this.#o.addrBook.success(peer.dialedUrl, now);
    const existing = this.#byId.get(peer.nodeIdHex);
    if (existing && !existing.closed) {
      // Keep the connection dialed by the node with the smaller id; if one node dialed both (two addresses
      // of the same peer), keep the session with the smaller handshake hash. Both ends compute the same
      // answer, from authenticated ids and a hash only the two of them determine.
      const dialer = (p: Peer) => (p.outbound ? this.#o.nodeIdHex : p.nodeIdHex);
      const keepNew = dialer(peer) !== dialer(existing) ? dialer(peer) < dialer(existing) : peer.sessionId < existing.sessionId;
      const drop = keepNew ? existing : peer;
      this.disconnect(drop, CLOSE.duplicate, 'duplicate connection');
      if (!keepNew) return;
    }
    const outbound = this.readyPeers().filter((p) => p.outbound).length;
    if (peer.outbound && outbound >= this.#o.limits.maxOutbound) return this.disconnect(peer, CLOSE.tooManyPeers, 'outbound peer limit reached');
    peer.ready = true;
    this.#byId.set(peer.nodeIdHex, peer);
    const address = peer.listen || peer.conn.remote;
    const direction = peer.outbound ? 'outbound' : 'inbound';
    this.#log.info('peer connected', { peer: peer.label, direction, address, headHeight: peer.headHeight });
    this.#o.emit('peer:connected', { nodeId: peer.nodeIdHex, address, direction });
    for (const r of this.#reactors) r.onPeerReady?.(peer);
  }
}
