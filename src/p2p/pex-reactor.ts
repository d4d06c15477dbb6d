/**
 * Peer exchange (GET_ADDR, ADDR) over the address book (addrbook.ts). Every new peer is asked for
 * addresses, and a random peer now and then: every 30 s, every 3 s while we lack outbound peers. A bogus
 * address costs a failed dial and back-off, nothing more.
 */
import type { Clock } from '../util/clock.js';
import type { Random } from '../util/random.js';
import type { AddrBook } from './addrbook.js';
import { MAX_ADDRS, MSG, type Message } from './messages.js';
import type { Peer } from './peer.js';
import type { MaintenanceRound, MessageSpec, Reactor, ReactorHost } from './reactor.js';

const ASK_EVERY_MS = 30_000;
const ASK_EVERY_LACKING_MS = 3_000;

export interface PexReactorOptions {
  host: ReactorHost;
  addrBook: AddrBook;
  clock: Clock;
  random: Random;
  wire: Record<number, number>;
  /** The URL peers should dial to reach us ('' if none). */
  listenUrl(): string;
}

export class PexReactor implements Reactor {
  readonly name = 'pex';
  readonly messages: readonly MessageSpec[];
  readonly #o: PexReactorOptions;
  readonly #host: ReactorHost;
  #lastAsk = 0;

  constructor(o: PexReactorOptions) {
    this.#o = o;
    this.#host = o.host;
    this.messages = [
      { type: MSG.GET_ADDR, maxBytes: o.wire[MSG.GET_ADDR]! },
      { type: MSG.ADDR, maxBytes: o.wire[MSG.ADDR]! },
    ];
  }

  /** An inbound peer's advertised address is worth knowing; every new peer is asked for more. */
  onPeerReady(peer: Peer): void {
    if (!peer.dialedUrl && peer.listen) this.#o.addrBook.add(peer.listen, this.#o.clock.now());
    this.#host.send(peer, { type: MSG.GET_ADDR }, true);
  }

  onMessage(peer: Peer, m: Message): void {
    switch (m.type) {
      case MSG.GET_ADDR: return this.#host.send(peer, { type: MSG.ADDR, addrs: this.#shareable(peer) }, true);
      case MSG.ADDR:
        for (const a of m.addrs) this.#o.addrBook.add(a, this.#o.clock.now());
        return;
    }
  }

  /** Ask a random peer for addresses now and then, and at once while we lack outbound peers. */
  tick(now: number, round: MaintenanceRound): void {
    const ready = this.#host.readyPeers();
    const since = now - this.#lastAsk;
    if (ready.length && (since > ASK_EVERY_MS || (round.lackingOutbound && since > ASK_EVERY_LACKING_MS))) {
      this.#lastAsk = now;
      this.#host.send(ready[this.#o.random.int(ready.length)]!, { type: MSG.GET_ADDR }, true);
    }
  }

  /**
   * Addresses we dialed successfully, the advertised addresses of peers that proved their node id to us (a
   * bootnode that only receives connections still spreads the mesh this way), and our own.
   */
  #shareable(asker: Peer): string[] {
    const out = new Set<string>(this.#o.addrBook.verified(MAX_ADDRS / 2));
    for (const p of this.#host.readyPeers()) if (p !== asker && p.listen && out.size < MAX_ADDRS - 1) out.add(p.listen);
    const self = this.#o.listenUrl();
    if (self) out.add(self);
    out.delete(asker.listen);
    return [...out].slice(0, MAX_ADDRS);
  }
}
