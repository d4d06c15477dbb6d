/**
 * Sync, both halves. Serving: head announcements (STATUS, sent on every head change) and answers to the
 * hash and block requests of peers catching up (GET_HASHES, GET_BLOCKS). Fetching: the Syncer (sync.ts),
 * started whenever a peer shows a better head; its requests' answers (HASHES, BLOCKS) are matched to them
 * here. Blocks reach the chain through the block reactor, which decides relay and orphans.
 */
import { fromHex, toHex } from '../encoding/bytes.js';
import type { Chain } from '../chain/chain.js';
import type { Block } from '../ledger/block.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { MSG, type Message } from './messages.js';
import type { Peer } from './peer.js';
import type { MessageSpec, Reactor, ReactorHost } from './reactor.js';
import { Syncer, type AcceptResult } from './sync.js';

export interface SyncReactorOptions {
  host: ReactorHost;
  chain: Chain;
  clock: Clock;
  log: Logger;
  wire: Record<number, number>;
  /** The block reactor's: decode a peer's block (penalising a malformed one) and hand it to the chain. */
  decode(bytes: Uint8Array, from: Peer): Block | undefined;
  accept(block: Block, from: Peer): Promise<AcceptResult>;
  /** Bytes of a block relayed before our chain stored it. */
  relayedBytes(hex: string): Uint8Array | undefined;
}

export class SyncReactor implements Reactor {
  readonly name = 'sync';
  readonly messages: readonly MessageSpec[];
  readonly syncer: Syncer;
  readonly #o: SyncReactorOptions;
  readonly #host: ReactorHost;
  /** Room left in a BLOCKS answer for its framing. */
  readonly #blocksBudget: number;
  /** Answers that arrived after their request timed out (dropped without penalty). */
  lateResponses = 0;

  constructor(o: SyncReactorOptions) {
    this.#o = o;
    this.#host = o.host;
    this.#blocksBudget = o.wire[MSG.BLOCKS]! - 64 * 1024;
    this.messages = [
      { type: MSG.STATUS, maxBytes: o.wire[MSG.STATUS]! },
      { type: MSG.GET_HASHES, maxBytes: o.wire[MSG.GET_HASHES]! },
      { type: MSG.HASHES, maxBytes: o.wire[MSG.HASHES]! },
      { type: MSG.GET_BLOCKS, maxBytes: o.wire[MSG.GET_BLOCKS]!, lane: 'chain' },
      { type: MSG.BLOCKS, maxBytes: o.wire[MSG.BLOCKS]! },
    ];
    this.syncer = new Syncer({
      chain: o.chain, clock: o.clock, log: o.log.child({ mod: 'sync' }),
      readyPeers: () => o.host.readyPeers(),
      decode: o.decode,
      accept: o.accept,
      penalize: (peer, rule, detail) => o.host.penalize(peer, rule, detail),
    });
  }

  stop(): void {
    this.syncer.stop();
  }

  /** Our head changed: tell every peer. */
  onHead(head: { height: number; hash: Uint8Array; slot: number }): void {
    for (const p of this.#host.readyPeers()) this.#host.send(p, { type: MSG.STATUS, headHeight: head.height, headHash: head.hash, headSlot: head.slot }, true);
  }

  onPeerReady(): void {
    this.syncer.trigger();
  }

  onMessage(peer: Peer, m: Message): void | Promise<void> {
    switch (m.type) {
      case MSG.STATUS:
        peer.headHeight = m.headHeight; peer.headHash = m.headHash; peer.headSlot = m.headSlot;
        peer.knownBlocks.add(toHex(m.headHash));
        return this.#syncSoon(peer);
      case MSG.GET_HASHES: return this.#onGetHashes(peer, m.reqId, m.locator, m.max);
      case MSG.GET_BLOCKS: return this.#onGetBlocks(peer, m.reqId, m.hashes);
      case MSG.HASHES: case MSG.BLOCKS: {
        const r = peer.resolve(m.reqId, m);
        if (r === 'unrequested') this.#host.penalize(peer, 'unrequested', `response ${m.reqId} to nothing we asked`);
        else if (r === 'late') { this.lateResponses++; this.#o.log.debug('late response dropped', { peer: peer.label, reqId: m.reqId }); }
        return;
      }
    }
  }

  /**
   * A peer one block ahead is usually just a gossip hop ahead: give the pushed or announced block a moment
   * to arrive before asking for hashes. Further behind, sync at once.
   */
  #syncSoon(peer: Peer): void {
    const chain = this.#o.chain;
    if (peer.headHeight > chain.head.height + 1) return this.syncer.trigger();
    const wait = Math.min(500, Math.floor(chain.genesis.slotMs / 2));
    this.#o.clock.setTimeout(() => { if (this.#host.running) this.syncer.trigger(); }, wait);
  }

  #onGetHashes(peer: Peer, reqId: number, locator: Uint8Array[], max: number): void {
    const chain = this.#o.chain;
    const fork = chain.forkPoint(locator.map(toHex));
    const hashes: Uint8Array[] = [];
    for (let h = fork.height + 1; h <= chain.head.height && hashes.length < max; h++) hashes.push(fromHex(chain.mainHashAt(h)!));
    this.#host.send(peer, { type: MSG.HASHES, reqId, forkHeight: fork.height, hashes });
  }

  async #onGetBlocks(peer: Peer, reqId: number, hashes: Uint8Array[]): Promise<void> {
    const blocks: Uint8Array[] = [];
    let bytes = 0;
    // The stored bytes are what we send: read in one go, without decoding blocks only to re-send them.
    const hex = hashes.map(toHex);
    const raw = await this.#o.chain.getBlockBytes(hex);
    for (let i = 0; i < hashes.length; i++) {
      // A block we found invalid is one we do not have, as far as peers are concerned.
      const b = this.#o.chain.isInvalid(hex[i]!) ? undefined : raw[i] ?? this.#o.relayedBytes(hex[i]!);
      if (!b || bytes + b.length > this.#blocksBudget) break;
      blocks.push(b);
      bytes += b.length;
    }
    this.#host.send(peer, { type: MSG.BLOCKS, reqId, blocks });
  }
}
