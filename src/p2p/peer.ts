/**
 * One connected peer: handshake state, score, rate limits, bounded send buffer, what it is known to have,
 * and request/response matching. The network (network.ts) decides what to do with its messages.
 *
 * Handshake (both sides at once): each sends HELLO with a fresh 32-byte challenge; each answers the other's
 * HELLO with AUTH = Ed25519 signature by its node key over
 *   "meshledger:p2p:auth:v1" ‖ 00 ‖ genesisHash ‖ peerChallenge ‖ ownNodeId
 * A peer is ready once its HELLO checked out and its AUTH verified against the node id it claimed.
 */
import { concatBytes, toHex, utf8 } from '../encoding/bytes.js';
import { sign, verify } from '../crypto/ed25519.js';
import { LruSet } from '../util/lru.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { TokenBucket } from '../util/ratelimit.js';
import type { Conn } from './transport.js';
import { encodeMessage, MSG, type Message } from './messages.js';

const AUTH_PREFIX = concatBytes(utf8('meshledger:p2p:auth:v1'), new Uint8Array([0]));

export function authMessage(genesisHash: Uint8Array, challenge: Uint8Array, nodeId: Uint8Array): Uint8Array {
  return concatBytes(AUTH_PREFIX, genesisHash, challenge, nodeId);
}

export function signAuth(secretKey: Uint8Array, genesisHash: Uint8Array, peerChallenge: Uint8Array, ownNodeId: Uint8Array): Uint8Array {
  return sign(authMessage(genesisHash, peerChallenge, ownNodeId), secretKey);
}

export function verifyAuth(sig: Uint8Array, genesisHash: Uint8Array, ourChallenge: Uint8Array, peerNodeId: Uint8Array): boolean {
  return verify(sig, authMessage(genesisHash, ourChallenge, peerNodeId), peerNodeId);
}

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
  readonly challenge: Uint8Array;
  /** The challenge the peer sent in its HELLO (both ends know both: used for deterministic tie-breaks). */
  theirChallenge: Uint8Array = new Uint8Array(32);
  /** Set once HELLO arrived. */
  nodeId: Uint8Array | undefined;
  nodeIdHex = '';
  listen = '';
  /** The URL we dialed (outbound only). */
  readonly dialedUrl: string | undefined;
  helloOk = false;
  authOk = false;
  ready = false;
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

  constructor(conn: Conn, challenge: Uint8Array, clock: Clock, limits: PeerLimits, dialedUrl?: string) {
    this.conn = conn;
    this.challenge = challenge;
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

export { MSG };
