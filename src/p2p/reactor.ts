/**
 * The contract between the switch (switch.ts) and the reactors around it, one per concern: each declares
 * the message types it owns with their frame limits, and gets the peers' lifecycle and those messages.
 * Adding a protocol feature is a new reactor (plus its codec entry in messages.ts), not an edit of the
 * switch.
 */
import type { Random } from '../util/random.js';
import type { Message } from './messages.js';
import type { Peer } from './peer.js';

/**
 * Messages that need async work wait in a per-peer queue, in order, and count towards its back-pressure
 * (inbound.ts). 'blocks' is a lane of its own so that a block never waits behind transaction messages.
 */
export type Lane = 'chain' | 'blocks';

export interface MessageSpec {
  type: number;
  /** The largest frame of this type accepted; a bigger one is refused as `oversized` (and penalised). */
  maxBytes: number;
  /** Queue the handler in this lane of the sender's inbound queue; without one it runs at once. */
  lane?: Lane;
}

/** What the switch saw at the start of a maintenance round, before it dialed more peers. */
export interface MaintenanceRound {
  /** Fewer outbound peers (connected or being dialed) than the target. */
  lackingOutbound: boolean;
}

export interface Reactor {
  readonly name: string;
  readonly messages: readonly MessageSpec[];
  /** The peer finished the handshake and was admitted (called once per peer, in registration order). */
  onPeerReady?(peer: Peer): void;
  /** A message of a type this reactor declared, from a ready peer. With a lane, the returned promise is its turn. */
  onMessage(peer: Peer, m: Message, frameBytes: number): void | Promise<void>;
  /** A ready peer's connection closed (called once per peer that was ready). */
  onPeerGone?(peer: Peer): void;
  /** Periodic work, every NetLimits.maintenanceMs, in registration order. */
  tick?(now: number, round: MaintenanceRound): void;
}

/** What reactors may ask of the switch. */
export interface ReactorHost {
  /** Peers that completed the handshake and are still connected. */
  readyPeers(): Peer[];
  /** Send; droppable messages are skipped while the peer's send buffer is backed up. A peer too slow to read is disconnected. */
  send(peer: Peer, m: Message, droppable?: boolean): void;
  /** Queue work for `peer` in a lane of its inbound queue (back-pressure counts `bytes`). */
  enqueue(peer: Peer, bytes: number, job: () => Promise<void>, lane: Lane): void;
  /** Charge the peer that sent the offending bytes (scoring.ts). */
  penalize(peer: Peer, rule: string, detail: string): void;
  /** False once the switch is stopping: timers of reactors check it before acting. */
  readonly running: boolean;
}

/** Move min(n, length) items drawn uniformly at random to the front of `a` (in place); returns that count. */
export function shuffleFront<T>(a: T[], n: number, random: Random): number {
  if (a.length <= n) return a.length;
  for (let i = 0; i < n; i++) {
    const j = i + random.int(a.length - i);
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return n;
}
