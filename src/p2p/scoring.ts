/**
 * Scoring and bans. Protocol violations cost a peer points (PENALTY); at the ban threshold it is
 * disconnected and its node id banned for `banMs`. Bans survive restarts: this module alone reads and writes
 * keyspace 'B' (src/storage/layout.ts). A peer is charged only for what it sent itself.
 */
import { fromHex, toHex } from '../encoding/bytes.js';
import { decodeCanonical, encodeCanonical, expectArray, expectSafeUint, expectString } from '../encoding/canonical.js';
import { layout } from '../storage/layout.js';
import type { KV } from '../storage/kv.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { NetEmit } from './events.js';
import type { NetLimits } from './limits.js';
import type { Peer } from './peer.js';
import { CLOSE } from './transport.js';

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

export interface ScoringOptions {
  db: KV;
  clock: Clock;
  log: Logger;
  emit: NetEmit;
  /** Our own node id: never banned. */
  nodeIdHex: string;
  limits: Pick<NetLimits, 'banThreshold' | 'banMs'>;
  /** The switch's: close a connection and say why. */
  disconnect(peer: Peer, code: number, reason: string): void;
  /** The connected peer with this node id, if any. */
  peerById(nodeIdHex: string): Peer | undefined;
}

export class Scoring {
  readonly #o: ScoringOptions;
  readonly #bans = new Map<string, { until: number; reason: string }>();
  /** Bans issued since start (metrics: meshledger_peer_bans_total). */
  issued = 0;

  constructor(o: ScoringOptions) {
    this.#o = o;
  }

  /** Read the bans still in force at `now`. */
  async load(now: number): Promise<void> {
    for await (const [k, v] of this.#o.db.iterator(layout.range(layout.prefix('B')))) {
      try {
        const f = expectArray(decodeCanonical(v), 2, 'ban');
        const until = expectSafeUint(f[0]!, 'until');
        if (until > now) this.#bans.set(toHex(k.subarray(1)), { until, reason: expectString(f[1]!, 'reason') });
      } catch { /* skip corrupt */ }
    }
  }

  bans(): { nodeId: string; until: number; reason: string }[] {
    return [...this.#bans].map(([nodeId, b]) => ({ nodeId, ...b }));
  }

  /**
   * Cost a peer score; at the threshold it is disconnected and banned (by node id, persisted). A verdict that
   * arrives after the connection closed still counts: admission overlaps the next messages, so a peer's
   * invalid transactions may be judged after its invalid block got it banned.
   */
  penalize(peer: Peer, rule: string, detail: string): void {
    const points = PENALTY[rule] ?? 10;
    peer.score -= points;
    this.#o.log.debug('peer penalized', { peer: peer.label, rule, detail, score: peer.score });
    if (peer.nodeIdHex) this.#o.emit('peer:penalized', { nodeId: peer.nodeIdHex, rule, score: peer.score });
    if (peer.score > this.#o.limits.banThreshold) return;
    // Disconnect first, so that the offender is told why (4007; ban() would close it with 4005). Ban only an
    // identity the peer proved (the session authenticated it): a HELLO merely claims a node id, and banning
    // on that claim would let anyone get an honest node banned by impersonating it.
    this.#o.disconnect(peer, CLOSE.misbehaving, `misbehaving (${rule}: ${detail})`.slice(0, 120));
    if (peer.nodeIdHex && peer.authenticated && !this.isBanned(peer.nodeIdHex)) this.ban(peer.nodeIdHex, `${rule}: ${detail}`);
  }

  ban(nodeIdHex: string, reason: string, ms = this.#o.limits.banMs): void {
    if (nodeIdHex === this.#o.nodeIdHex) return;
    const until = this.#o.clock.now() + ms;
    this.#bans.set(nodeIdHex, { until, reason });
    this.issued++;
    void this.#o.db.put(layout.ban(fromHex(nodeIdHex)), encodeCanonical([until, reason.slice(0, 200)])).catch(() => {});
    this.#o.log.warn('peer banned', { nodeId: nodeIdHex, reason, until: new Date(until).toISOString() });
    this.#o.emit('peer:banned', { nodeId: nodeIdHex, reason, until });
    const p = this.#o.peerById(nodeIdHex);
    if (p) this.#o.disconnect(p, CLOSE.banned, 'banned');
  }

  unban(nodeIdHex: string): boolean {
    void this.#o.db.del(layout.ban(fromHex(nodeIdHex))).catch(() => {});
    return this.#bans.delete(nodeIdHex);
  }

  /** Whether a node id is banned now; an expired ban is lifted (and deleted from the store) here. */
  isBanned(nodeIdHex: string): boolean {
    const b = this.#bans.get(nodeIdHex);
    if (!b) return false;
    if (b.until > this.#o.clock.now()) return true;
    this.unban(nodeIdHex);
    return false;
  }

  /** Slow forgiveness, once per maintenance round: a point back for every peer below zero. */
  forgive(peers: Iterable<Peer>): void {
    for (const p of peers) if (p.score < 0) p.score = Math.min(0, p.score + 1);
  }
}
