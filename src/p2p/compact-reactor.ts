/**
 * Compact block relay (CMPCT_BLOCK, GET_CMPCT, GET_BLOCK_TXS, BLOCK_TXS): a block travels as its signed
 * header, a short id per transaction (compact.ts) and the transactions the sender expects the receiver to
 * lack; the receiver rebuilds the block from its mempool and the transactions that recently left it, asks the
 * sender for the rest by index, and falls back to the full block when a rebuild does not match the header.
 *
 * Order of work, so that a bogus compact block costs little: the header first (its own rules, the clock, the
 * signature of its slot's validator: Chain.checkHeader), then the short ids against what this node holds (an
 * index built once per block), then the missing transactions, then the transactions root against the header,
 * and only then the chain. Blame follows the bytes: a header that fails its checks, a BLOCK_TXS whose
 * transactions are not the ones asked for, or a block whose own rules fail once its body matches its header,
 * is the sender's; a rebuild whose root does not match is not (it may be our collision), so the full block is
 * fetched from the sender, and that body's failures are the sender's.
 */
import { bytesEqual, toHex } from '../encoding/bytes.js';
import type { Chain } from '../chain/chain.js';
import { decodeHeader, makeBlock, type Block, type BlockHeader } from '../ledger/block.js';
import { merkleRoot } from '../ledger/merkle.js';
import { RuleError } from '../ledger/rules.js';
import { decodeTx, type Tx } from '../ledger/tx.js';
import type { Mempool } from '../mempool/mempool.js';
import { LruMap } from '../util/lru.js';
import { compactKey, indexByShortId, packShortIds, readShortId, rebuild, shortId, type ShortIdIndex } from './compact.js';
import { MSG, type Message } from './messages.js';
import type { Peer } from './peer.js';
import type { MessageSpec, Reactor, ReactorHost } from './reactor.js';
import type { AcceptResult } from './sync.js';

/** How long a compact block's missing transactions (or a requested compact block) may take. */
const FETCH_TIMEOUT_MS = 5000;
/** Transactions that left the mempool recently, kept to rebuild blocks that include them (a reorg, a late block). */
const RECENT_TXS = 16_384;
/** Prefilled transactions per compact block at most (the rest are asked for). */
const MAX_PREFILL_BYTES = 1024 * 1024;

export interface CompactReactorOptions {
  host: ReactorHost;
  chain: Chain;
  mempool: Mempool;
  wire: Record<number, number>;
  /** A block we know (relayed, or stored), to serve as compact or by index. */
  blockFor(hex: string): Promise<Block | undefined>;
  /** Hand a rebuilt block on (BlockReactor.accept, as gossip). */
  accept(block: Block, from: Peer): Promise<AcceptResult>;
  /** Fetch the full block from `peer` (a rebuild did not match its header). */
  fetchFull(peer: Peer, hash: Uint8Array): void;
  /** Count bytes of block relay received (BlockReactor.stats.blockBytesIn). */
  countBytes(n: number): void;
}

export class CompactReactor implements Reactor {
  readonly name = 'compact-blocks';
  readonly messages: readonly MessageSpec[];
  readonly #o: CompactReactorOptions;
  readonly #host: ReactorHost;
  readonly #recent = new LruMap<string, Tx>(RECENT_TXS);
  /** The short-id index of what we hold, per block being rebuilt (one key per block). */
  readonly #indexes = new LruMap<string, ShortIdIndex>(2);
  /** Blocks being assembled now (one compact block at a time per hash). */
  readonly #assembling = new Set<string>();
  /** Per relayed block: the indexes of transactions we had to ask for (peers likely lack them too: prefilled). */
  readonly #lacked = new LruMap<string, Set<number>>(16);
  readonly stats = { compactBlocksIn: 0, blockTxsRequested: 0, rebuildFallbacks: 0 };

  constructor(o: CompactReactorOptions) {
    this.#o = o;
    this.#host = o.host;
    this.messages = [
      { type: MSG.CMPCT_BLOCK, maxBytes: o.wire[MSG.CMPCT_BLOCK]!, lane: 'blocks' },
      { type: MSG.GET_CMPCT, maxBytes: o.wire[MSG.GET_CMPCT]! },
      { type: MSG.GET_BLOCK_TXS, maxBytes: o.wire[MSG.GET_BLOCK_TXS]! },
      { type: MSG.BLOCK_TXS, maxBytes: o.wire[MSG.BLOCK_TXS]! },
    ];
  }

  onMessage(peer: Peer, m: Message, frameBytes: number): void | Promise<void> {
    switch (m.type) {
      case MSG.CMPCT_BLOCK:
        this.#o.countBytes(frameBytes);
        if (m.reqId !== 0) return this.#response(peer, m.reqId, m);
        return this.#onCompact(peer, m);
      case MSG.GET_CMPCT: return void this.#serveCompact(peer, m.reqId, toHex(m.hash));
      case MSG.GET_BLOCK_TXS: return void this.#serveTxs(peer, m.reqId, toHex(m.hash), m.indexes);
      case MSG.BLOCK_TXS:
        this.#o.countBytes(frameBytes);
        return this.#response(peer, m.reqId, m);
    }
  }

  /** A transaction left our mempool (included, replaced, evicted): keep it a while for rebuilding blocks. */
  onTxRemoved(tx: Tx): void {
    this.#recent.set(tx.idHex, tx);
  }

  /** Send `block` to `peer` as a compact block (unsolicited, or answering `reqId`). */
  push(peer: Peer, block: Block, reqId = 0): void {
    const lacked = this.#lacked.peek(block.header.hashHex);
    const prefilled: [number, Uint8Array][] = [];
    let bytes = 0;
    if (lacked) {
      for (const i of lacked) {
        const tx = block.txs[i]!;
        if (peer.knownTxs.has(tx.idHex) || bytes + tx.byteLength > MAX_PREFILL_BYTES) continue;
        prefilled.push([i, tx.bytes]);
        bytes += tx.byteLength;
      }
    }
    const shortIds = packShortIds(compactKey(block.header.hash), block.txs);
    this.#host.send(peer, { type: MSG.CMPCT_BLOCK, reqId, header: block.header.bytes, shortIds, prefilled });
  }

  /** Ask `peer` for a block it announced, as a compact block; settles once it was handled (or failed to come). */
  fetch(peer: Peer, hash: Uint8Array): Promise<void> {
    return peer.request<Extract<Message, { type: typeof MSG.CMPCT_BLOCK }>>((reqId) => ({ type: MSG.GET_CMPCT, reqId, hash }), MSG.CMPCT_BLOCK, FETCH_TIMEOUT_MS)
      .then((m) => new Promise<void>((resolve) => {
        this.#host.enqueue(peer, m.header.length + m.shortIds.length, async () => { await this.#onCompact(peer, m, hash); resolve(); }, 'blocks');
      }));
  }

  #response(peer: Peer, reqId: number, m: Message): void {
    const r = peer.resolve(reqId, m);
    if (r === 'unrequested') this.#host.penalize(peer, 'unrequested', `response ${reqId} to nothing we asked`);
  }

  async #onCompact(peer: Peer, m: Extract<Message, { type: typeof MSG.CMPCT_BLOCK }>, asked?: Uint8Array): Promise<void> {
    this.stats.compactBlocksIn++;
    let header: BlockHeader;
    try {
      header = decodeHeader(m.header);
    } catch (e) {
      return this.#host.penalize(peer, 'invalid_block', `compact block header: ${(e as Error).message}`);
    }
    const hex = header.hashHex;
    if (asked && toHex(asked) !== hex) return this.#host.penalize(peer, 'unrequested', 'compact block not asked for');
    peer.knownBlocks.add(hex);
    const chain = this.#o.chain;
    if (chain.hasBlock(hex) || this.#assembling.has(hex)) return;
    const count = m.shortIds.length / 6;
    if (count > chain.genesis.params.maxBlockTxs) return this.#host.penalize(peer, 'invalid_block', `compact block of ${count} transactions`);
    try {
      await chain.checkHeader(header);
    } catch (e) {
      if (!(e instanceof RuleError)) throw e;
      if (e.rule !== 'future_slot') this.#host.penalize(peer, 'invalid_block', `compact block header: ${e.message}`);
      return;
    }
    this.#assembling.add(hex);
    try {
      const block = await this.#assemble(peer, header, m, count);
      if (block) await this.#o.accept(block, peer);
    } finally {
      this.#assembling.delete(hex);
    }
  }

  /** Rebuild the block, fetching what is missing; undefined if it was fetched in full instead, or failed. */
  async #assemble(peer: Peer, header: BlockHeader, m: Extract<Message, { type: typeof MSG.CMPCT_BLOCK }>, count: number): Promise<Block | undefined> {
    const key = compactKey(header.hash);
    const prefilled: [number, Tx][] = [];
    for (const [i, bytes] of m.prefilled) {
      let tx: Tx;
      try {
        tx = decodeTx(bytes);
      } catch (e) {
        this.#host.penalize(peer, 'invalid_block', `compact block prefilled transaction: ${(e as Error).message}`);
        return undefined;
      }
      if (i >= count || shortId(key, tx.id) !== readShortId(m.shortIds, i)) {
        this.#host.penalize(peer, 'invalid_block', `compact block prefilled transaction ${i} does not match its short id`);
        return undefined;
      }
      prefilled.push([i, tx]);
    }
    const r = rebuild(count, m.shortIds, prefilled, this.#indexFor(header.hashHex, key));
    if (r.missing.length) {
      this.stats.blockTxsRequested += r.missing.length;
      let res: Extract<Message, { type: typeof MSG.BLOCK_TXS }>;
      try {
        res = await peer.request((reqId) => ({ type: MSG.GET_BLOCK_TXS, reqId, hash: header.hash, indexes: r.missing }), MSG.BLOCK_TXS, FETCH_TIMEOUT_MS);
      } catch {
        return undefined; // timeout or disconnect: another announcement or sync brings the block
      }
      if (res.txs.length !== r.missing.length) {
        this.#host.penalize(peer, 'invalid_block', `asked for ${r.missing.length} transactions, got ${res.txs.length}`);
        return undefined;
      }
      for (let j = 0; j < r.missing.length; j++) {
        const i = r.missing[j]!;
        let tx: Tx;
        try {
          tx = decodeTx(res.txs[j]!);
        } catch (e) {
          this.#host.penalize(peer, 'invalid_block', `block transaction ${i}: ${(e as Error).message}`);
          return undefined;
        }
        if (shortId(key, tx.id) !== readShortId(m.shortIds, i)) {
          this.#host.penalize(peer, 'invalid_block', `block transaction ${i} does not match its short id`);
          return undefined;
        }
        r.txs[i] = tx;
      }
      this.#lacked.set(header.hashHex, new Set(r.missing));
    }
    const txs = r.txs as Tx[];
    if (!bytesEqual(merkleRoot(txs.map((t) => t.id)), header.txRoot)) {
      // Short ids that matched other transactions than the sender's (ours collided, or its ids were bogus):
      // the full block says which, and a mismatch there is the sender's.
      this.stats.rebuildFallbacks++;
      this.#o.fetchFull(peer, header.hash);
      return undefined;
    }
    return makeBlock(header, txs);
  }

  /** What we hold, indexed by short id under `key`: the mempool and the transactions that recently left it. */
  #indexFor(hex: string, key: Uint8Array): ShortIdIndex {
    let index = this.#indexes.get(hex);
    if (!index) {
      const recent = this.#recent;
      const mempool = this.#o.mempool;
      index = indexByShortId(key, (function* () { yield* mempool.txs(); yield* recent.values(); })());
      this.#indexes.set(hex, index);
    }
    return index;
  }

  async #serveCompact(peer: Peer, reqId: number, hex: string): Promise<void> {
    const block = await this.#o.blockFor(hex);
    // A block we do not have (or found invalid) gets no answer: the asker's request times out, unpenalised.
    if (block && !this.#o.chain.isInvalid(hex)) this.push(peer, block, reqId);
  }

  async #serveTxs(peer: Peer, reqId: number, hex: string, indexes: number[]): Promise<void> {
    const block = await this.#o.blockFor(hex);
    if (!block || this.#o.chain.isInvalid(hex)) return;
    for (let k = 0; k < indexes.length; k++) {
      if (indexes[k]! >= block.txs.length || (k > 0 && indexes[k]! <= indexes[k - 1]!)) {
        return this.#host.penalize(peer, 'protocol', `GET_BLOCK_TXS index ${indexes[k]} of a ${block.txs.length}-transaction block (or not ascending)`);
      }
    }
    this.#host.send(peer, { type: MSG.BLOCK_TXS, reqId, txs: indexes.map((i) => block.txs[i]!.bytes) });
  }
}

