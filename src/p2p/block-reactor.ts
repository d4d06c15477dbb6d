/**
 * Block gossip (BLOCK, INV_BLOCK) and orphans. A new block travels as a compact block (compact-reactor.ts):
 * its proposer sends it to every peer at once, a relaying node to `blockPushFanout` peers, and the rest get
 * its hash (INV_BLOCK) and ask for it as a compact block if they lack it. A full body is fetched (GET_BLOCKS)
 * only when a compact block cannot be rebuilt; BLOCK (a pushed full body) is still accepted. A block whose
 * parent we lack waits in a bounded orphan pool until the parent connects, while sync fetches the missing chain.
 *
 * Relay: only what we fully validated (connected to our best chain). A block that came by gossip is relayed
 * at once; one that came by sync only when it is within 2 blocks of the best head any peer reports, so a
 * catching-up node does not re-broadcast the history it downloads.
 */
import { toHex } from '../encoding/bytes.js';
import type { Chain } from '../chain/chain.js';
import { decodeBlock, type Block } from '../ledger/block.js';
import { isIntrinsicBlockFailure, isProvablyInvalid, RuleError } from '../ledger/rules.js';
import { LruMap } from '../util/lru.js';
import type { Random } from '../util/random.js';
import type { NetLimits } from './limits.js';
import { MSG, type Message } from './messages.js';
import type { Peer } from './peer.js';
import { shuffleFront, type MessageSpec, type Reactor, type ReactorHost } from './reactor.js';
import type { AcceptResult } from './sync.js';
import { OrphanPool } from './orphans.js';
import { CompactReactor } from './compact-reactor.js';
import type { Mempool } from '../mempool/mempool.js';

/** How long an announced block's fetch may take before another announcement or sync has to bring it. */
const FETCH_TIMEOUT_MS = 5000;

export interface BlockReactorOptions {
  host: ReactorHost;
  chain: Chain;
  random: Random;
  limits: Pick<NetLimits, 'blockPushFanout' | 'orphanLimit' | 'orphanBytes' | 'orphanPerPeer' | 'orphanBytesPerPeer'>;
  wire: Record<number, number>;
  mempool: Mempool;
  /** A block's parent is missing (or a peer is ahead): catch up by sync. */
  triggerSync(): void;
}

export class BlockReactor implements Reactor {
  readonly name = 'block-gossip';
  readonly messages: readonly MessageSpec[];
  readonly #o: BlockReactorOptions;
  readonly #host: ReactorHost;
  /**
   * The last blocks we relayed, served from here too: a validator relays its own block before its chain has
   * connected (and stored) it, and peers ask for it (compact, or its transactions) at once.
   */
  readonly #relayed = new LruMap<string, Block>(8);
  readonly compact: CompactReactor;
  readonly #inflight = new Set<string>();
  /** Blocks whose parent we lack (bounded in count and bytes, in total and per peer). */
  readonly orphans: OrphanPool;
  /**
   * Full block bodies received (pushed, fetched after an announcement, or synced), announcements, bodies we
   * already had, and every byte of block relay received (bodies, announcements): what relay costs a node.
   */
  readonly stats = { blockBodiesIn: 0, blockAnnouncementsIn: 0, duplicateBlockBodies: 0, blockBytesIn: 0 };

  constructor(o: BlockReactorOptions) {
    this.#o = o;
    this.#host = o.host;
    this.orphans = new OrphanPool(o.limits);
    this.compact = new CompactReactor({
      host: o.host, chain: o.chain, mempool: o.mempool, wire: o.wire,
      blockFor: async (hex) => this.#relayed.peek(hex) ?? (await this.#o.chain.getBlock(hex)),
      accept: (block, from) => this.accept(block, from, 'gossip'),
      fetchFull: (peer, hash) => this.#fetchFull(peer, hash),
      countBytes: (n) => { this.stats.blockBytesIn += n; },
    });
    this.messages = [
      { type: MSG.BLOCK, maxBytes: o.wire[MSG.BLOCK]!, lane: 'blocks' },
      { type: MSG.INV_BLOCK, maxBytes: o.wire[MSG.INV_BLOCK]! },
    ];
  }

  onMessage(peer: Peer, m: Message, frameBytes: number): void | Promise<void> {
    switch (m.type) {
      case MSG.BLOCK: return this.#onBlockPush(peer, m.block);
      case MSG.INV_BLOCK: return this.#onInvBlock(peer, m.hash, m.height, frameBytes);
    }
  }

  /**
   * Relay a block: as a compact block to `blockPushFanout` peers drawn at random (to every peer when it is
   * our own, the first hop), by hash to the rest; never to a peer known to have it.
   */
  relay(block: Block, except?: Peer, own = false): void {
    const hex = block.header.hashHex;
    const peers = this.#host.readyPeers().filter((p) => p !== except && !p.knownBlocks.has(hex));
    this.#relayed.set(hex, block);
    const push = own ? new Set(peers) : this.#pick(peers, this.#o.limits.blockPushFanout);
    for (const p of peers) {
      p.knownBlocks.add(hex);
      if (push.has(p)) this.compact.push(p, block);
      else this.#host.send(p, { type: MSG.INV_BLOCK, hash: block.header.hash, height: block.header.height }, true);
    }
  }

  /** The bytes of a block we relayed recently (served to peers that ask for it before our chain stores it). */
  relayedBytes(hex: string): Uint8Array | undefined {
    return this.#relayed.peek(hex)?.bytes;
  }

  /** A block connected: its buffered children (if any) go to the chain now. The pool is small, so a scan. */
  onBlockConnected(b: Block): void {
    for (const o of this.orphans.takeChildrenOf(b.header.hashHex)) {
      if (!o.from.closed) this.#host.enqueue(o.from, o.block.bytes.length, async () => { await this.accept(o.block, o.from, o.via); }, 'blocks');
    }
  }

  onPeerGone(peer: Peer): void {
    this.orphans.dropPeer(peer);
  }

  /** Decode a block body a peer sent (pushed, fetched or synced); a malformed one costs that peer. */
  decode(bytes: Uint8Array, from: Peer): Block | undefined {
    this.stats.blockBodiesIn++;
    this.stats.blockBytesIn += bytes.length;
    try {
      return decodeBlock(bytes, this.#o.chain.genesis.params.maxBlockBytes);
    } catch (e) {
      this.#host.penalize(from, 'invalid_block', e instanceof Error ? e.message : String(e));
      return undefined;
    }
  }

  /** Hand a block to the chain and act on the verdict: relay, buffer as orphan, sync, or penalize. */
  async accept(b: Block, from: Peer, via: 'gossip' | 'sync'): Promise<AcceptResult> {
    const gossip = via === 'gossip';
    const chain = this.#o.chain;
    const hex = b.header.hashHex;
    from.knownBlocks.add(hex);
    if (chain.hasBlock(hex)) {
      // Honest nodes relay only blocks they fully validated, so sending one we found invalid is misbehaviour.
      const bad = chain.isInvalid(hex);
      if (bad) {
        if (gossip) this.#host.penalize(from, 'invalid_block', `re-sent block ${hex.slice(0, 16)} already found invalid (${bad})`);
        return 'invalid';
      }
      if (gossip) this.stats.duplicateBlockBodies++;
      return 'known';
    }
    // Blame follows the bytes: a block pushed or announced by a peer is one it claims to have validated, so
    // any provable failure is its own; a block fetched by hash for sync was listed by someone else, and an
    // honest node may hold it unvalidated on a side branch, so only a failure of the bytes themselves counts.
    const blame = (e: RuleError): boolean => (gossip ? isProvablyInvalid(e.rule) || e.rule === 'known_invalid' : isIntrinsicBlockFailure(e));
    try {
      const r = await chain.addBlock(b);
      if (r.status === 'orphan') {
        this.orphans.add({ block: b, from, via });
        if (from.headHeight < b.header.height) { from.headHeight = b.header.height; from.headHash = b.header.hash; }
        this.#o.triggerSync();
        return 'orphan';
      }
      if (r.status === 'duplicate') return 'known';
      // A side-branch block passed only the stateless checks: relaying it could pass on a state-invalid block
      // in good faith, for which peers rightly penalise the sender. Peers that need a side branch fetch it by
      // sync. A gossiped block that connected is the new tip: relay it. A block downloaded by sync is history
      // unless it is within 2 of the best head any peer reports (compared with the best head a peer reports,
      // not ours: the block has just become our head): a catching-up node must not re-broadcast the chain it
      // downloads (its peers have it, or get it by their own sync), but a node that was one block behind and
      // fetched the tip by sync still passes it on.
      if (r.status !== 'side' && (gossip || b.header.height + 2 >= this.#networkTip())) this.relay(b, from);
      return 'accepted';
    } catch (e) {
      if (!(e instanceof RuleError)) throw e;
      if (e.rule === 'future_slot') return 'later';
      if (blame(e)) this.#host.penalize(from, 'invalid_block', e.message);
      // A mutated copy (its body does not match its header) is not remembered: the block may still come intact.
      return e.rule === 'bad_tx_root' ? 'refused' : 'invalid';
    }
  }

  async #onBlockPush(peer: Peer, bytes: Uint8Array): Promise<void> {
    const b = this.decode(bytes, peer);
    if (!b) return;
    this.#inflight.delete(b.header.hashHex);
    await this.accept(b, peer, 'gossip');
  }

  #onInvBlock(peer: Peer, hash: Uint8Array, height: number, frameBytes: number): void {
    this.stats.blockAnnouncementsIn++;
    this.stats.blockBytesIn += frameBytes;
    const hex = toHex(hash);
    peer.knownBlocks.add(hex);
    if (height > peer.headHeight) { peer.headHeight = height; peer.headHash = hash; }
    const chain = this.#o.chain;
    if (chain.hasBlock(hex) || chain.isInvalid(hex) || this.#inflight.has(hex)) return;
    this.#inflight.add(hex);
    this.compact.fetch(peer, hash)
      .catch(() => { /* timeout or disconnect: another announcement or sync will bring it */ })
      .finally(() => this.#inflight.delete(hex));
  }

  /** Fetch a block's full body from `peer` (a compact block could not be rebuilt to match its header). */
  #fetchFull(peer: Peer, hash: Uint8Array): void {
    const hex = toHex(hash);
    peer.request<Extract<Message, { type: typeof MSG.BLOCKS }>>((reqId) => ({ type: MSG.GET_BLOCKS, reqId, hashes: [hash] }), MSG.BLOCKS, FETCH_TIMEOUT_MS)
      .then((res) => this.#host.enqueue(peer, res.blocks.reduce((n, x) => n + x.length, 0), async () => {
        for (const bytes of res.blocks) {
          const b = this.decode(bytes, peer);
          if (!b) return;
          if (b.header.hashHex !== hex) return this.#host.penalize(peer, 'unrequested', 'block not asked for');
          await this.accept(b, peer, 'gossip');
        }
      }, 'blocks'))
      .catch(() => { /* timeout or disconnect: another announcement or sync will bring it */ });
  }

  /**
   * The highest head height known: ours or one a ready peer reported (HELLO, STATUS, INV_BLOCK). Only used
   * to decide whether a block that came by sync is worth relaying: a peer lying about its height can at worst
   * suppress that relay, never the relay of gossiped blocks.
   */
  #networkTip(): number {
    let tip = this.#o.chain.head.height;
    for (const p of this.#host.readyPeers()) if (p.headHeight > tip) tip = p.headHeight;
    return tip;
  }

  #pick<T>(items: T[], n: number): Set<T> {
    const a = [...items];
    return new Set(a.slice(0, shuffleFront(a, n, this.#o.random)));
  }
}
