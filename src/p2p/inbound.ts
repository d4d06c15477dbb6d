/**
 * Per-peer inbound queues with back-pressure. Messages that need async work (a reactor declared a lane for
 * their type) wait here to be processed in order. A backlog means that WE are slower than the peer's
 * (rate-limited, otherwise valid) traffic: above the pause mark we stop reading its connection and resume
 * below the resume mark, so the sender is slowed by flow control instead of being penalised (an overloaded
 * node must not ban honest validators). Memory stays bounded by the max marks; what arrives beyond them
 * (only what the transport had already read when paused) is dropped without penalty.
 *
 * Blocks have a lane of their own ('blocks'), counted in the same backlog: in one lane a block would wait
 * for the admission of every transaction message its sender sent before it (signature checks queued behind
 * every other peer's), and a block that arrives late in its slot is built on by nobody. A block carries its
 * transactions, so it needs nothing sent before it.
 */
import type { Logger } from '../util/log.js';
import type { Peer } from './peer.js';
import type { Lane } from './reactor.js';

/**
 * Above the pause marks the peer's connection is paused (we stop reading it; TCP flow control slows the
 * sender), below the resume marks it is read again. The max marks bound memory whatever happens: a paused
 * connection can still deliver what the transport had already read (one read chunk), so they sit well
 * above the pause marks; beyond them messages are dropped, unpenalised.
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

interface Queue extends Record<Lane, Promise<void>> {
  queued: number;
  bytes: number;
  paused: boolean;
}

export class InboundQueues {
  readonly #limits: InboundQueueLimits;
  readonly #log: Logger;
  readonly #queues = new WeakMap<Peer, Queue>();
  /** Times a peer's connection was paused; messages dropped at the hard bound. */
  pauses = 0;
  dropped = 0;

  constructor(limits: InboundQueueLimits, log: Logger) {
    this.#limits = limits;
    this.#log = log;
  }

  attach(peer: Peer): void {
    this.#queues.set(peer, { chain: Promise.resolve(), blocks: Promise.resolve(), queued: 0, bytes: 0, paused: false });
  }

  enqueue(peer: Peer, bytes: number, job: () => Promise<void> | void, lane: Lane): void {
    const w = this.#queues.get(peer)!;
    const q = this.#limits;
    if (w.queued >= q.maxMsgs || w.bytes + bytes > q.maxBytes) {
      this.dropped++;
      this.#log.debug('inbound queue full, message dropped', { peer: peer.label, queued: w.queued, bytes: w.bytes });
      return;
    }
    w.queued++;
    w.bytes += bytes;
    if (!w.paused && (w.queued >= q.pauseMsgs || w.bytes >= q.pauseBytes)) {
      w.paused = true;
      this.pauses++;
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

  /** Messages of this peer waiting for processing, and whether its connection is paused. */
  backlog(peer: Peer): { queued: number; bytes: number; paused: boolean } {
    const w = this.#queues.get(peer);
    return w ? { queued: w.queued, bytes: w.bytes, paused: w.paused } : { queued: 0, bytes: 0, paused: false };
  }
}
