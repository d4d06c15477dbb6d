/**
 * The simulated network: an in-process implementation of the P2P `Transport` seam. Frames are delivered as
 * timers on the shared virtual clock, so delivery order is a pure function of the seed and the fault
 * settings. Per directed link: base delay, jitter (which also reorders), loss, duplication; partitions cut
 * links (existing connections are closed, new dials fail) until healed.
 */
import type { Conn, Transport } from '../p2p/transport.js';
import type { ManualClock } from '../util/clock.js';
import type { Prng } from './prng.js';

export interface LinkFaults {
  delayMs: number;
  jitterMs: number;
  /** Probability that a frame is dropped. A lossy link models a flaky path, not a lying peer. */
  loss: number;
  /** Probability that a frame is delivered twice. */
  dup: number;
}

export const HEALTHY: LinkFaults = { delayMs: 5, jitterMs: 3, loss: 0, dup: 0 };

class SimConn implements Conn {
  peer!: SimConn;
  readonly remote: string;
  readonly inbound: boolean;
  #onMessage: ((f: Uint8Array) => void) | undefined;
  #onClose: ((code: number, reason: string) => void) | undefined;
  #early: Uint8Array[] = [];
  #paused = false;
  #held: Uint8Array[] = [];
  closed = false;
  inFlight = 0;
  /** Last scheduled delivery time: frames on one connection stay in order (a stream), jitter delays them together. */
  lastDelivery = 0;
  constructor(readonly net: SimNet, readonly from: string, readonly to: string, inbound: boolean) {
    this.remote = to;
    this.inbound = inbound;
  }
  get bufferedAmount(): number { return this.inFlight; }
  send(frame: Uint8Array): void {
    if (this.closed) return;
    this.net.deliver(this, frame);
  }
  receive(frame: Uint8Array): void {
    if (this.closed) return;
    if (this.#paused) {
      // Held here as in a TCP receive window: it still counts in the sender's bufferedAmount.
      this.#held.push(frame);
      this.peer.inFlight += frame.length;
      return;
    }
    if (this.#onMessage) this.#onMessage(frame);
    else this.#early.push(frame);
  }
  /** Back-pressure (Conn.pause/resume): frames arriving while paused are held, in order, until resume. */
  pause(): void { this.#paused = true; }
  resume(): void {
    this.#paused = false;
    while (this.#held.length && !this.#paused && !this.closed) {
      const f = this.#held.shift()!;
      this.peer.inFlight -= f.length;
      this.receive(f);
    }
  }
  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.net.closeLater(this.peer, code, reason);
    this.#onClose?.(code, reason);
  }
  closedByPeer(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.#onClose?.(code, reason);
  }
  onMessage(fn: (f: Uint8Array) => void): void {
    this.#onMessage = fn;
    for (const f of this.#early.splice(0)) fn(f);
  }
  onClose(fn: (code: number, reason: string) => void): void {
    this.#onClose = fn;
  }
}

export class SimNet {
  readonly #listeners = new Map<string, (c: Conn) => void>();
  readonly #conns = new Set<SimConn>();
  readonly #faults = new Map<string, LinkFaults>();
  /** Per address: how many times its transport was closed (a crash). A dial started before does not connect. */
  readonly #epochs = new Map<string, number>();
  #groups: Map<string, number> | undefined;
  defaults: LinkFaults = HEALTHY;
  framesSent = 0;
  framesDropped = 0;
  bytesSent = 0;

  constructor(readonly clock: ManualClock, readonly rng: Prng) {}

  /** The transport for the node whose address is `addr` (its ws:// URL). */
  transport(addr: string): Transport {
    return {
      listen: async (_h, _p, onConn) => {
        this.#listeners.set(addr, onConn);
        return { host: '127.0.0.1', port: Number(addr.split(':').pop()) };
      },
      dial: (url) => this.#dial(addr, url),
      close: async () => {
        this.#epochs.set(addr, (this.#epochs.get(addr) ?? 0) + 1);
        this.#listeners.delete(addr);
        for (const c of [...this.#conns]) if (c.from === addr) c.close(1001, 'node stopped');
      },
    };
  }

  #reachable(a: string, b: string): boolean {
    if (!this.#groups) return true;
    return this.#groups.get(a) === this.#groups.get(b);
  }

  async #dial(from: string, url: string): Promise<Conn> {
    const epoch = this.#epochs.get(from) ?? 0;
    const onConn = this.#listeners.get(url);
    if (!onConn || !this.#reachable(from, url)) {
      // A refused or unroutable dial fails after a round trip of virtual time.
      await this.#sleep(this.linkFaults(from, url).delayMs * 2);
      throw new Error(`sim: cannot reach ${url}`);
    }
    await this.#sleep(this.linkFaults(from, url).delayMs * 2);
    // Whoever listens at `url` now (a restarted node is a new listener) takes the connection.
    const accept = this.#listeners.get(url);
    if (!accept || !this.#reachable(from, url)) throw new Error(`sim: ${url} went away`);
    // The dialing process died meanwhile (crash, failed start): its half-open dial dies with it.
    if ((this.#epochs.get(from) ?? 0) !== epoch) throw new Error(`sim: ${from} went away while dialing`);
    const out = new SimConn(this, from, url, false);
    const inn = new SimConn(this, url, from, true);
    out.peer = inn;
    inn.peer = out;
    this.#conns.add(out);
    this.#conns.add(inn);
    accept(inn);
    return out;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((r) => this.clock.setTimeout(r, ms));
  }

  linkFaults(from: string, to: string): LinkFaults {
    return this.#faults.get(`${from}>${to}`) ?? this.defaults;
  }

  setLink(from: string, to: string, f: Partial<LinkFaults>): void {
    this.#faults.set(`${from}>${to}`, { ...this.linkFaults(from, to), ...f });
  }

  clearLinkFaults(): void {
    this.#faults.clear();
  }

  deliver(c: SimConn, frame: Uint8Array): void {
    this.framesSent++;
    this.bytesSent += frame.length;
    const f = this.linkFaults(c.from, c.to);
    if (f.loss > 0 && this.rng.chance(f.loss)) { this.framesDropped++; return; }
    const copies = f.dup > 0 && this.rng.chance(f.dup) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = f.delayMs + (f.jitterMs > 0 ? this.rng.int(f.jitterMs + 1) : 0);
      const at = Math.max(this.clock.now() + delay, c.lastDelivery);
      c.lastDelivery = at;
      c.inFlight += frame.length;
      this.clock.setTimeout(() => {
        c.inFlight -= frame.length;
        if (!c.closed) c.peer.receive(frame);
      }, at - this.clock.now());
    }
  }

  closeLater(c: SimConn, code: number, reason: string): void {
    this.clock.setTimeout(() => {
      c.closedByPeer(code, reason);
      this.#conns.delete(c);
      this.#conns.delete(c.peer);
    }, this.linkFaults(c.to, c.from).delayMs);
  }

  /** Split the nodes into groups that cannot reach each other; open connections across groups are cut. */
  partition(groups: string[][]): void {
    this.#groups = new Map();
    groups.forEach((g, i) => g.forEach((a) => this.#groups!.set(a, i)));
    for (const c of [...this.#conns]) {
      if (!c.closed && !this.#reachable(c.from, c.to)) {
        c.closedByPeer(1006, 'partition');
        c.peer.closedByPeer(1006, 'partition');
        this.#conns.delete(c);
        this.#conns.delete(c.peer);
      }
    }
  }

  heal(): void {
    this.#groups = undefined;
  }
}
