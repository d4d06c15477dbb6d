/**
 * One connected peer: its identity once the session proved it, score, rate limits, bounded send buffer,
 * what it is known to have, and request/response matching. The switch (switch.ts) owns the peer set and
 * hands each message to the reactor that registered its type; the session (handshake.ts) fills in the
 * identity.
 */
import { toHex } from '../encoding/bytes.js';
import { LruSet } from '../util/lru.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { TokenBucket } from '../util/ratelimit.js';
import type { Conn } from './transport.js';
import { encodeMessage, type Message } from './messages.js';

export interface PeerLimits {
  msgsPerSec: number;
  msgBurst: number;
  bytesPerSec: number;
  byteBurst: number;
  /** Above this many queued bytes, droppable messages (announcements, tx pushes) are dropped. */
  sendSoftLimit: number;
  /** Above this many queued bytes the peer is disconnected as too slow. */
  sendHardLimit: number;
  requestTimeoutMs: number;
}

export const DEFAULT_PEER_LIMITS: PeerLimits = {
  msgsPerSec: 2000, msgBurst: 4000,
  bytesPerSec: 32 * 1024 * 1024, byteBurst: 64 * 1024 * 1024,
  sendSoftLimit: 4 * 1024 * 1024, sendHardLimit: 64 * 1024 * 1024,
  requestTimeoutMs: 10_000,
};

/** Timed-out requests remembered per peer, so their late answers are recognised as such. */
const EXPIRED_REQUESTS = 256;

type Pending = { resolve: (m: Message) => void; reject: (e: Error) => void; timer: TimerHandle; type: number };

export class Peer {
  readonly conn: Conn;
  /** The node id the peer claims (set by the session as soon as it is told; proven once `authenticated`). */
  nodeIdHex = '';
  /** The address the peer advertises for dialing it ('' if none or not a ws:// URL). */
  listen = '';
  /** The URL we dialed (outbound only). */
  readonly dialedUrl: string | undefined;
  /** The session proved that the peer holds the key of `nodeIdHex`: only then is that id banned for misbehaviour. */
  authenticated = false;
  /** The session's handshake hash (hex): the same at both ends, determined by nobody else. */
  sessionId = '';
  /** Handshake done and the switch admitted the peer: reactors see it from here on. */
  ready = false;
  /** Misbehaviour points (≤ 0); written only by scoring.ts. */
  score = 0;
  headHeight = 0;
  headHash: Uint8Array = new Uint8Array(32);
  headSlot = 0;
  readonly connectedAt: number;
  readonly knownTxs = new LruSet<string>(20_000);
  readonly knownBlocks = new LruSet<string>(2_000);
  bytesIn = 0;
  bytesOut = 0;
  msgsIn = 0;
  readonly #limits: PeerLimits;
  readonly #clock: Clock;
  readonly #msgBucket: TokenBucket;
  readonly #byteBucket: TokenBucket;
  readonly #pending = new Map<number, Pending>();
  /** Requests that timed out, by reqId → expected response type (insertion order = age). */
  readonly #expired = new Map<number, number>();
  #nextReq = 1;
  #closed = false;

  constructor(conn: Conn, clock: Clock, limits: PeerLimits, dialedUrl?: string) {
    this.conn = conn;
    this.#clock = clock;
    this.#limits = limits;
    this.dialedUrl = dialedUrl;
    this.connectedAt = clock.now();
    this.#msgBucket = new TokenBucket(limits.msgsPerSec, limits.msgBurst, clock.now());
    this.#byteBucket = new TokenBucket(limits.bytesPerSec, limits.byteBurst, clock.now());
  }

  get outbound(): boolean { return !this.conn.inbound; }
  get closed(): boolean { return this.#closed; }
  get label(): string { return this.nodeIdHex ? this.nodeIdHex.slice(0, 12) : this.conn.remote; }

  /** Account for an incoming frame; false when the peer exceeds its rate limits. */
  admit(bytes: number): boolean {
    this.bytesIn += bytes;
    this.msgsIn++;
    const now = this.#clock.now();
    return this.#msgBucket.take(1, now) && this.#byteBucket.take(bytes, now);
  }

  /**
   * Send a message. Droppable messages are skipped when the peer's send queue is backed up; any message is
   * refused (returns 'slow') once the queue passes the hard limit, and the caller disconnects the peer.
   */
  send(m: Message, droppable = false): 'sent' | 'dropped' | 'slow' {
    if (this.#closed) return 'dropped';
    const queued = this.conn.bufferedAmount;
    if (queued > this.#limits.sendHardLimit) return 'slow';
    if (droppable && queued > this.#limits.sendSoftLimit) return 'dropped';
    const frame = encodeMessage(m);
    this.bytesOut += frame.length;
    this.conn.send(frame);
    return 'sent';
  }

  /** Send a request carrying a fresh reqId; resolves with the matching response. */
  request<T extends Message>(build: (reqId: number) => Message, responseType: number, timeoutMs = this.#limits.requestTimeoutMs): Promise<T> {
    const reqId = this.#nextReq++;
    return new Promise<T>((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => {
        this.#pending.delete(reqId);
        this.#expire(reqId, responseType);
        reject(new Error(`request ${reqId} to ${this.label} timed out`));
      }, timeoutMs);
      this.#pending.set(reqId, { resolve: resolve as (m: Message) => void, reject, timer, type: responseType });
      if (this.send(build(reqId)) !== 'sent') {
        this.#clock.clearTimeout(timer);
        this.#pending.delete(reqId);
        reject(new Error(`cannot send to ${this.label}`));
      }
    });
  }

  /**
   * Match a response: 'ok' when it answers a pending request; 'late' when it answers a request of ours that
   * already timed out (a slow or loaded peer, or our own backlog: not misbehaviour, and it is dropped);
   * 'unrequested' when nothing was asked under this id and type, or it was already answered.
   */
  resolve(reqId: number, m: Message): 'ok' | 'late' | 'unrequested' {
    const p = this.#pending.get(reqId);
    if (!p || p.type !== m.type) {
      if (this.#expired.get(reqId) !== m.type) return 'unrequested';
      this.#expired.delete(reqId); // one late answer per request
      return 'late';
    }
    this.#pending.delete(reqId);
    this.#clock.clearTimeout(p.timer);
    p.resolve(m);
    return 'ok';
  }

  /** Remember a timed-out request (bounded: the oldest are forgotten) so that its late answer is not penalised. */
  #expire(reqId: number, type: number): void {
    this.#expired.set(reqId, type);
    if (this.#expired.size > EXPIRED_REQUESTS) this.#expired.delete(this.#expired.keys().next().value as number);
  }

  get pendingRequests(): number { return this.#pending.size; }

  markClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [id, p] of this.#pending) {
      this.#clock.clearTimeout(p.timer);
      p.reject(new Error(`peer ${this.label} disconnected`));
      this.#pending.delete(id);
    }
  }

  info(): Record<string, unknown> {
    return {
      nodeId: this.nodeIdHex, address: this.listen || this.conn.remote, direction: this.outbound ? 'outbound' : 'inbound',
      headHeight: this.headHeight, headHash: toHex(this.headHash), score: this.score, connectedAt: this.connectedAt,
      bytesIn: this.bytesIn, bytesOut: this.bytesOut,
    };
  }
}
