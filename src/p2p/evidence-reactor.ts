/**
 * Equivocation evidence (EVIDENCE): two signed headers of one validator for one slot, verifiable without
 * state. The chain checks and stores it and announces new evidence (chain:equivocation); we relay each
 * equivocation (slot, proposer) to every peer once.
 */
import { decodeHeader } from '../ledger/block.js';
import type { Chain } from '../chain/chain.js';
import { RuleError } from '../ledger/rules.js';
import { LruSet } from '../util/lru.js';
import { MSG, type Message } from './messages.js';
import type { Peer } from './peer.js';
import type { MessageSpec, Reactor, ReactorHost } from './reactor.js';

export interface EvidenceReactorOptions {
  host: ReactorHost;
  chain: Chain;
  wire: Record<number, number>;
}

export class EvidenceReactor implements Reactor {
  readonly name = 'evidence';
  readonly messages: readonly MessageSpec[];
  readonly #o: EvidenceReactorOptions;
  /** Equivocations (slot:proposer) whose evidence we already relayed. */
  readonly #relayed = new LruSet<string>(10_000);

  constructor(o: EvidenceReactorOptions) {
    this.#o = o;
    this.messages = [{ type: MSG.EVIDENCE, maxBytes: o.wire[MSG.EVIDENCE]!, lane: 'chain' }];
  }

  /** The chain found (or was given) new evidence: relay it. */
  onEquivocation(e: { slot: number; proposer: string; headers: Uint8Array[] }): void {
    const key = `${e.slot}:${e.proposer}`;
    if (this.#relayed.has(key) || e.headers.length < 2) return;
    this.#relayed.add(key);
    const host = this.#o.host;
    for (const p of host.readyPeers()) host.send(p, { type: MSG.EVIDENCE, headerA: e.headers[0]!, headerB: e.headers[1]! }, true);
  }

  async onMessage(peer: Peer, m: Message): Promise<void> {
    if (m.type !== MSG.EVIDENCE) return;
    const host = this.#o.host;
    let ha, hb;
    try {
      ha = decodeHeader(m.headerA);
      hb = decodeHeader(m.headerB);
    } catch (e) {
      return host.penalize(peer, 'protocol', `evidence: ${(e as Error).message}`);
    }
    try {
      await this.#o.chain.addEvidence(ha, hb); // new evidence is announced by the chain's event, which relays it
    } catch (e) {
      if (!(e instanceof RuleError)) throw e;
      host.penalize(peer, 'invalid_block', `forged equivocation evidence: ${e.message}`);
    }
  }
}
