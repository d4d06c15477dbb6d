/**
 * Blocks whose parent we lack, kept until the parent connects (while sync fetches the missing chain).
 *
 * Only blocks the chain checked first get here: header rules, transactions root, and the header signature
 * of the slot's validator (Chain.addBlock returns 'orphan' only then), so a peer cannot fill the pool with
 * blocks anyone could make. The pool is bounded in count and bytes, in total and per peer, BEFORE a block is
 * kept: a peer over its share evicts its own oldest orphan; over the total, the oldest orphan of the peer
 * holding the most bytes goes. A flood from one peer therefore displaces only that peer's orphans.
 */
import { toHex } from '../encoding/bytes.js';
import type { Block } from '../ledger/block.js';
import type { Peer } from './peer.js';

export interface OrphanLimits {
  /** Orphans in total, and their bytes. */
  orphanLimit: number;
  orphanBytes: number;
  /** Orphans from one peer, and their bytes. */
  orphanPerPeer: number;
  orphanBytesPerPeer: number;
}

export interface Orphan { block: Block; from: Peer; via: 'gossip' | 'sync' }

export class OrphanPool {
  readonly #l: OrphanLimits;
  /** By block hash; insertion order = age. */
  readonly #all = new Map<string, Orphan>();
  readonly #byPeer = new Map<Peer, { count: number; bytes: number }>();
  #bytes = 0;
  /** Orphans evicted to keep the bounds (metrics, tests). */
  evicted = 0;

  constructor(limits: OrphanLimits) {
    this.#l = limits;
  }

  get size(): number { return this.#all.size; }
  get bytes(): number { return this.#bytes; }
  /** Count and bytes held for one peer. */
  heldFor(peer: Peer): { count: number; bytes: number } { return this.#byPeer.get(peer) ?? { count: 0, bytes: 0 }; }

  /** Keep `o`, evicting as the bounds require; a block larger than a peer's whole share is not kept. */
  add(o: Orphan): boolean {
    const hex = o.block.header.hashHex;
    const size = o.block.bytes.length;
    if (size > this.#l.orphanBytesPerPeer || size > this.#l.orphanBytes) return false;
    this.#delete(hex);
    const mine = (): { count: number; bytes: number } => this.heldFor(o.from);
    while (mine().count + 1 > this.#l.orphanPerPeer || mine().bytes + size > this.#l.orphanBytesPerPeer) if (!this.#evictOldestOf(o.from)) return false;
    while (this.#all.size + 1 > this.#l.orphanLimit || this.#bytes + size > this.#l.orphanBytes) if (!this.#evictOldestOf(this.#heaviest())) return false;
    this.#all.set(hex, o);
    const p = this.heldFor(o.from);
    this.#byPeer.set(o.from, { count: p.count + 1, bytes: p.bytes + size });
    this.#bytes += size;
    return true;
  }

  /** Remove and return the orphans whose parent is `parentHex`. */
  takeChildrenOf(parentHex: string): Orphan[] {
    const out: Orphan[] = [];
    for (const [hex, o] of this.#all) {
      if (toHex(o.block.header.parentHash) !== parentHex) continue;
      this.#delete(hex);
      out.push(o);
    }
    return out;
  }

  /** A peer left: its orphans go (nobody would answer for them when they are finally checked). */
  dropPeer(peer: Peer): void {
    for (const [hex, o] of this.#all) if (o.from === peer) this.#delete(hex);
  }

  #heaviest(): Peer | undefined {
    let best: Peer | undefined;
    let most = -1;
    for (const [p, h] of this.#byPeer) if (h.bytes > most) { most = h.bytes; best = p; }
    return best;
  }

  /** Evict `peer`'s oldest orphan; false if it has none (nothing left to make room with). */
  #evictOldestOf(peer: Peer | undefined): boolean {
    for (const [hex, o] of this.#all) {
      if (o.from !== peer) continue;
      this.#delete(hex);
      this.evicted++;
      return true;
    }
    return false;
  }

  #delete(hex: string): void {
    const o = this.#all.get(hex);
    if (!o) return;
    this.#all.delete(hex);
    this.#bytes -= o.block.bytes.length;
    const p = this.heldFor(o.from);
    if (p.count <= 1) this.#byPeer.delete(o.from);
    else this.#byPeer.set(o.from, { count: p.count - 1, bytes: p.bytes - o.block.bytes.length });
  }
}
