/**
 * Chain sync and fork reconciliation, the fetching half (sync-reactor.ts serves peers' requests, matches the
 * answers to ours, and hands the blocks fetched here to the block reactor).
 *
 * Whenever a peer shows a head better than ours (fork choice order), one sync round runs:
 *   1. ask that peer for the hashes of its best chain after our fork point, given our block locator
 *      (exponentially spaced hashes of our best chain, so the fork point is found in one round trip);
 *   2. split the hashes we lack into small ranges (RANGE blocks) and download them from SEVERAL peers in
 *      parallel (class Download): every ready peer whose head is high enough pulls ranges as it has capacity
 *      (PER_PEER requests in flight), including peers that finish their handshake during the round, so fast
 *      peers serve more; a failed or partial range goes back to the queue for another peer; a range that is
 *      in flight for much longer than usual is also asked of an idle peer (first answer wins), so one slow
 *      peer does not hold up the end; downloading stays within a window (blocks and bytes) past the block
 *      being applied;
 *   3. hand the blocks to the chain strictly in order, each as soon as it is there. While block N is applied
 *      (main thread), the signatures of the next downloaded blocks, headers included, are verified on the
 *      verifier (the worker pool) into the chain's signature cache, so Chain.addBlock finds them verified.
 *      Only positive verdicts are cached: a bad signature is still found and rejected by addBlock. The chain
 *      validates everything and switches heads only to a better valid chain.
 * Rounds repeat until no peer shows a better head. Progress (height/target, blocks/s, tx/s, time left) is
 * logged at most every 2 s while catching up, and once at the end; `status` exposes it (metrics).
 */
import { bytesEqual, fromHex, toHex } from '../encoding/bytes.js';
import { betterHead, type Chain } from '../chain/chain.js';
import { blockVerifyItem, type Block } from '../ledger/block.js';
import { headerCheckId, verifyWithCache } from '../crypto/sigcache.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { MSG, type Message } from './messages.js';
import type { Peer } from './peer.js';

/**
 * What became of a block handed to the chain. 'invalid': the block itself is invalid (remembered by its hash);
 * 'refused': this copy was bad (a mutated body) and its sender was charged, but the block the hash names may
 * still be valid and can be fetched from someone else.
 */
export type AcceptResult = 'accepted' | 'known' | 'orphan' | 'invalid' | 'refused' | 'later';

export interface SyncDeps {
  chain: Chain;
  clock: Clock;
  log: Logger;
  readyPeers(): Peer[];
  decode(bytes: Uint8Array, from: Peer): Block | undefined;
  accept(block: Block, from: Peer): Promise<AcceptResult>;
  penalize(peer: Peer, rule: string, detail: string): void;
}

/** Blocks per GET_BLOCKS request (≤ MAX_GET_BLOCKS): small, so that a chain of a few hundred blocks spreads over every peer. */
export const RANGE = 16;
/** Range requests in flight per peer (hides one round trip per range). */
const PER_PEER = 2;
/** Download window past the block being applied: in blocks, and in bytes (downloaded and unapplied, plus requests in flight). */
const WINDOW_BLOCKS = 128;
const WINDOW_BYTES = 32 * 1024 * 1024;
/** Signature read-ahead past the block being applied: at most this many blocks and transactions. */
const PREVERIFY_BLOCKS = 8;
const PREVERIFY_TXS = 8192;
/** A range in flight longer than max(STEAL_MIN_MS, 3 × the mean fetch time) is also asked of an idle peer. */
const STEAL_MIN_MS = 1000;
/** Each range may be re-requested after failures this many times over before the round gives up. */
const MAX_RANGE_TRIES = 3;
/** While downloading, new ready peers and stuck ranges are looked at this often. */
const TICK_MS = 200;
const HASHES_PER_ROUND = 2048;

export class Syncer {
  readonly #d: SyncDeps;
  #running = false;
  #again = false;
  #lastLog = 0;
  #stopped = false;
  /** Heads we already tried and failed to reach, so a stale or lying status does not loop us. */
  readonly #futile = new Set<string>();
  blocksSynced = 0;
  /** Transactions in the blocks counted by blocksSynced. */
  txsSynced = 0;
  /** The current catch-up (several rounds, one per HASHES_PER_ROUND hashes), for progress and status. */
  #session: { started: number; blocks: number; txs: number; target: number } | undefined;
  /** Blocks delivered per peer (node id prefix) in the current round: evidence of parallel download. */
  #sources = new Map<string, number>();
  /** The current round's download, while one runs. */
  #download: Download | undefined;

  constructor(d: SyncDeps) {
    this.#d = d;
  }

  get running(): boolean { return this.#running; }

  /**
   * Catch-up state: `syncing` while a round downloads blocks towards `target`; otherwise `target` is the best
   * head height a ready peer shows (or ours, if higher), so target − height is how far behind this node is.
   */
  get status(): { syncing: boolean; height: number; target: number } {
    const height = this.#d.chain.head.height;
    const s = this.#session;
    if (this.#running && s && s.target > height) return { syncing: true, height, target: s.target };
    let target = height;
    for (const p of this.#d.readyPeers()) target = Math.max(target, p.headHeight);
    return { syncing: false, height, target };
  }

  stop(): void { this.#stopped = true; }

  /** Start a round if a peer shows a better head (or note that another round is wanted). */
  trigger(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      this.#download?.schedule(); // a peer that just became ready takes ranges at once
      return;
    }
    this.#running = true;
    void this.#loop().finally(() => { this.#running = false; });
  }

  #bestPeer(): Peer | undefined {
    const c = this.#d.chain;
    let best: Peer | undefined;
    for (const p of this.#d.readyPeers()) {
      const h = { height: p.headHeight, hash: p.headHash };
      const hex = toHex(p.headHash);
      if (this.#futile.has(hex) || c.hasBlock(hex) || c.isInvalid(hex)) continue;
      if (!betterHead(h, c.head)) continue;
      if (!best || betterHead(h, { height: best.headHeight, hash: best.headHash })) best = p;
    }
    return best;
  }

  async #loop(): Promise<void> {
    const now = this.#d.clock.now();
    this.#session = { started: now, blocks: this.blocksSynced, txs: this.txsSynced, target: this.#d.chain.head.height };
    this.#lastLog = now; // the first progress line after 2 s of work
    try {
      await this.#rounds();
    } finally {
      this.#finish();
    }
  }

  /** The end of a catch-up: one line with the totals (only for real catch-up work, not single blocks). */
  #finish(): void {
    const s = this.#session;
    if (!s) return;
    const blocks = this.blocksSynced - s.blocks;
    if (blocks < 16) return;
    const txs = this.txsSynced - s.txs;
    const secs = Math.max(0.001, (this.#d.clock.now() - s.started) / 1000);
    this.#d.log.info('sync finished', {
      height: this.#d.chain.head.height, target: s.target, blocks, txs, seconds: Number(secs.toFixed(2)),
      blocksPerSec: Math.round(blocks / secs), txPerSec: Math.round(txs / secs),
    });
  }

  async #rounds(): Promise<void> {
    do {
      this.#again = false;
      for (let rounds = 0; rounds < 10_000 && !this.#stopped; rounds++) {
        const peer = this.#bestPeer();
        if (!peer) break;
        const progressed = await this.#round(peer).catch((e: Error) => {
          this.#d.log.debug('sync round failed', { peer: peer.label, error: e.message });
          return false;
        });
        // A bad copy from one peer says nothing about the head: try again (its sender was charged, and is
        // banned if it persists), rather than give up on a head honest peers can deliver.
        if (progressed === 'retry') continue;
        if (!progressed) {
          this.#futile.add(toHex(peer.headHash));
          if (this.#futile.size > 1000) this.#futile.clear();
          break;
        }
      }
    } while (this.#again && !this.#stopped);
  }

  /** One round against `source`. Returns true if any block was added, 'retry' if a bad copy ended it early. */
  async #round(source: Peer): Promise<boolean | 'retry'> {
    const { chain, log } = this.#d;
    const locator = chain.locator().map(fromHex);
    const res = await source.request<Extract<Message, { type: typeof MSG.HASHES }>>(
      (reqId) => ({ type: MSG.GET_HASHES, reqId, locator, max: HASHES_PER_ROUND }), MSG.HASHES);
    if (res.hashes.length > HASHES_PER_ROUND) { this.#d.penalize(source, 'protocol', 'too many hashes'); return false; }
    const forkEntry = chain.entry(chain.mainHashAt(res.forkHeight) ?? '');
    if (!forkEntry || !locator.some((h) => bytesEqual(h, forkEntry.hash))) {
      this.#d.penalize(source, 'protocol', `fork point ${res.forkHeight} is not in our locator`);
      return false;
    }
    const need: { hash: Uint8Array; height: number }[] = [];
    res.hashes.forEach((h, i) => {
      if (!chain.hasBlock(toHex(h))) need.push({ hash: h, height: res.forkHeight + 1 + i });
    });
    if (need.length === 0) return false;
    const target = Math.max(source.headHeight, res.forkHeight + res.hashes.length);
    if (this.#session) this.#session.target = Math.max(this.#session.target, target);
    this.#sources = new Map();
    const started = this.#d.clock.now();
    const before = this.blocksSynced;

    const dl = new Download(this.#d, source, need, (peer) => this.#sources.set(peer.label, (this.#sources.get(peer.label) ?? 0) + 1));
    this.#download = dl;
    // Time the apply loop spent waiting for a download or for a signature check (where a round loses time).
    let waitDownloadMs = 0;
    let waitVerifyMs = 0;
    try {
      dl.schedule();
      // Apply strictly in order, each block as soon as it is there (not per whole range), with the signatures
      // of the next downloaded blocks being verified on the worker pool meanwhile (read-ahead).
      for (let i = 0; i < need.length && !this.#stopped; i++) {
        let t = this.#d.clock.now();
        const b = await dl.blockAt(i);
        if (!b) break; // nobody could deliver it: end the round, the next one starts from where we are
        waitDownloadMs += this.#d.clock.now() - t;
        t = this.#d.clock.now();
        await dl.preverify(i);
        waitVerifyMs += this.#d.clock.now() - t;
        dl.readAhead(i + 1);
        chain.expectNext(dl.peek(i + 1));
        // The peer that delivered the block answers for it, not the one that listed its hash.
        const r = await this.#d.accept(b, dl.deliveredBy(i) ?? source);
        dl.applied(i);
        if (r === 'invalid') return this.blocksSynced > before;
        if (r === 'refused') return this.blocksSynced > before || 'retry';
        if (r === 'accepted') { this.blocksSynced++; this.txsSynced += b.txs.length; }
        this.#progress(target);
      }
    } finally {
      dl.close();
      chain.expectNext(undefined);
      this.#download = undefined;
    }
    if (this.blocksSynced - before >= 16) {
      const secs = Math.max(0.001, (this.#d.clock.now() - started) / 1000);
      log.info('sync round done', {
        height: chain.head.height, target, blocks: this.blocksSynced - before, blocksPerSec: Math.round((this.blocksSynced - before) / secs),
        peers: this.#d.readyPeers().length, sources: Object.fromEntries(this.#sources), stolen: dl.stolen, failedFetches: dl.failures,
        waitDownloadMs, waitVerifyMs,
      });
    }
    return this.blocksSynced > before || chain.hasBlock(toHex(source.headHash));
  }

  #progress(target: number): void {
    const now = this.#d.clock.now();
    const s = this.#session;
    // Following the head a block at a time is not "syncing": log only real catch-up work.
    if (!s || now - this.#lastLog < 2000 || target - this.#d.chain.head.height < 16) return;
    this.#lastLog = now;
    const height = this.#d.chain.head.height;
    const secs = Math.max(0.001, (now - s.started) / 1000);
    const rate = (this.blocksSynced - s.blocks) / secs;
    this.#d.log.info('sync progress', {
      height, target, percent: Number(((100 * height) / Math.max(1, target)).toFixed(1)),
      blocksPerSec: Math.round(rate), txPerSec: Math.round((this.txsSynced - s.txs) / secs), peers: this.#d.readyPeers().length,
      secondsLeft: rate > 0 ? Math.round(Math.max(0, target - height) / rate) : null,
    });
  }
}

interface Range {
  /** Index in `need` of the first block. */
  start: number;
  items: { hash: Uint8Array; height: number }[];
  /** Peers it is being requested from now, with the request start time. */
  inflight: Map<Peer, number>;
  /** Peers that failed it (timeout, disconnect, nothing delivered): not asked again unless all failed. */
  failed: Set<Peer>;
  tries: number;
}

/**
 * One round's block download: ranges pulled by every eligible peer, blocks kept until applied (bounded),
 * and the signature read-ahead. Results of requests still in flight when the round ends are discarded.
 */
class Download {
  readonly #d: SyncDeps;
  readonly #source: Peer;
  readonly #onBlock: (peer: Peer) => void;
  readonly #ranges: Range[] = [];
  readonly #blocks: (Block | undefined)[];
  /** Who delivered each downloaded block (sync's blame goes to the sender of the bytes). */
  readonly #from: (Peer | undefined)[];
  readonly #index = new Map<string, number>();
  readonly #load = new Map<Peer, number>();
  readonly #pre = new Map<number, Promise<void>>();
  /** Next block to apply; blocks before it are released. */
  #applyAt = 0;
  #bytes = 0;
  /** Range requests in flight, and the mean size of a response so far (a guess of 1 MiB before the first). */
  #inflight = 0;
  #responseBytes = 1024 * 1024;
  #fetchMs = 0;
  #fetches = 0;
  #closed = false;
  #wake: (() => void) | undefined;
  #timer: TimerHandle | undefined;
  stolen = 0;
  failures = 0;

  constructor(d: SyncDeps, source: Peer, need: { hash: Uint8Array; height: number }[], onBlock: (peer: Peer) => void) {
    this.#d = d;
    this.#source = source;
    this.#onBlock = onBlock;
    this.#blocks = new Array<Block | undefined>(need.length);
    this.#from = new Array<Peer | undefined>(need.length);
    need.forEach((n, i) => this.#index.set(toHex(n.hash), i));
    for (let i = 0; i < need.length; i += RANGE) {
      this.#ranges.push({ start: i, items: need.slice(i, i + RANGE), inflight: new Map(), failed: new Set(), tries: 0 });
    }
    this.#tick();
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) this.#d.clock.clearTimeout(this.#timer);
    this.#blocks.fill(undefined);
    this.#pre.clear();
    this.#notify();
  }

  #tick(): void {
    this.#timer = this.#d.clock.setTimeout(() => {
      if (this.#closed) return;
      this.schedule();
      this.#notify();
      this.#tick();
    }, TICK_MS);
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  #rangeDone(r: Range): boolean {
    for (let i = 0; i < r.items.length; i++) if (!this.#blocks[r.start + i] && r.start + i >= this.#applyAt) return false;
    return true;
  }

  #holds(p: Peer, r: Range): boolean {
    return p === this.#source || p.headHeight >= r.items[r.items.length - 1]!.height;
  }

  #eligible(): Peer[] {
    const peers = this.#d.readyPeers().filter((p) => !p.closed);
    if (!this.#source.closed && !peers.includes(this.#source)) peers.push(this.#source);
    return peers;
  }

  /** Hand out ranges to every eligible peer with spare capacity: the earliest missing range first. */
  schedule(): void {
    if (this.#closed) return;
    const peers = this.#eligible().sort((a, b) => (this.#load.get(a) ?? 0) - (this.#load.get(b) ?? 0));
    const now = this.#d.clock.now();
    const stealAfter = Math.max(STEAL_MIN_MS, 3 * (this.#fetches ? this.#fetchMs / this.#fetches : 0));
    for (const p of peers) {
      while ((this.#load.get(p) ?? 0) < PER_PEER) {
        const r = this.#nextFor(p, now, stealAfter);
        if (!r) break;
        if (r.inflight.size > 0) this.stolen++;
        void this.#fetch(r, p);
      }
    }
  }

  #nextFor(p: Peer, now: number, stealAfter: number): Range | undefined {
    const first = Math.floor(this.#applyAt / RANGE);
    let steal: Range | undefined;
    for (let k = first; k < this.#ranges.length; k++) {
      const r = this.#ranges[k]!;
      // The window: the range the apply point is in is always allowed; the others only within the limits.
      // Bytes: those downloaded and not applied yet, plus the requests in flight at the mean response size.
      if (k > first && (r.start - this.#applyAt >= WINDOW_BLOCKS || this.#bytes + this.#inflight * this.#responseBytes >= WINDOW_BYTES)) break;
      if (this.#rangeDone(r) || r.inflight.has(p) || !this.#holds(p, r)) continue;
      if (r.failed.has(p)) continue;
      if (r.inflight.size === 0) return r;
      // Already asked of another peer: a candidate for a duplicate request if it takes too long, and only
      // for the ranges the apply point will need next.
      if (!steal && r.inflight.size === 1 && k < first + 4 && now - Math.min(...r.inflight.values()) > stealAfter) steal = r;
    }
    return steal;
  }

  async #fetch(r: Range, p: Peer): Promise<void> {
    const t0 = this.#d.clock.now();
    r.inflight.set(p, t0);
    this.#load.set(p, (this.#load.get(p) ?? 0) + 1);
    this.#inflight++;
    let got = 0;
    try {
      const want = r.items.filter((_, i) => !this.#blocks[r.start + i] && r.start + i >= this.#applyAt);
      if (want.length === 0) return;
      const res = await p.request<Extract<Message, { type: typeof MSG.BLOCKS }>>(
        (reqId) => ({ type: MSG.GET_BLOCKS, reqId, hashes: want.map((w) => w.hash) }), MSG.BLOCKS);
      if (this.#closed) return;
      const size = res.blocks.reduce((n, x) => n + x.length, 0);
      this.#responseBytes = this.#fetches ? (this.#responseBytes * 3 + size) / 4 : size;
      const wanted = new Set(want.map((w) => toHex(w.hash)));
      for (const bytes of res.blocks) {
        const b = this.#d.decode(bytes, p);
        if (!b) break;
        if (!wanted.has(b.header.hashHex)) { this.#d.penalize(p, 'unrequested', 'block not asked for'); break; }
        const i = this.#index.get(b.header.hashHex)!;
        got++;
        if (this.#blocks[i] || i < this.#applyAt) continue; // a duplicate request's second answer
        this.#blocks[i] = b;
        this.#from[i] = p;
        this.#bytes += b.bytes.length;
        this.#onBlock(p);
      }
      this.#fetchMs += this.#d.clock.now() - t0;
      this.#fetches++;
    } catch (e) {
      this.#d.log.debug('range fetch failed', { peer: p.label, error: (e as Error).message });
    } finally {
      r.inflight.delete(p);
      this.#load.set(p, (this.#load.get(p) ?? 1) - 1);
      this.#inflight--;
      if (got === 0 && !this.#closed && !this.#rangeDone(r)) {
        this.failures++;
        r.failed.add(p);
      }
      this.#notify();
      this.schedule();
    }
  }

  /**
   * Block `i` of the round, once downloaded; undefined when no peer can deliver it (every eligible peer
   * failed its range MAX_RANGE_TRIES times over, or none is left).
   */
  async blockAt(i: number): Promise<Block | undefined> {
    const r = this.#ranges[Math.floor(i / RANGE)]!;
    for (;;) {
      if (this.#closed) return undefined;
      const b = this.#blocks[i];
      if (b) return b;
      if (r.inflight.size === 0) {
        const peers = this.#eligible().filter((p) => this.#holds(p, r));
        if (peers.length === 0) return undefined;
        if (peers.every((p) => r.failed.has(p))) {
          if (++r.tries >= MAX_RANGE_TRIES) return undefined;
          r.failed.clear();
        }
        this.schedule();
      }
      await new Promise<void>((resolve) => { this.#wake = resolve; });
    }
  }

  /** The peer that delivered block i (while it is held). */
  deliveredBy(i: number): Peer | undefined {
    return this.#from[i];
  }

  /** Block i if it is downloaded and not yet applied. */
  peek(i: number): Block | undefined {
    return this.#blocks[i];
  }

  /** Fill the signature cache for block i's header and transactions. */
  preverify(i: number): Promise<void> {
    let p = this.#pre.get(i);
    if (!p) {
      const b = this.#blocks[i];
      if (!b) return Promise.resolve();
      const { verifier, sigCache } = this.#d.chain;
      const ids = [headerCheckId(b.header.hashHex), ...b.txs.map((t) => t.idHex)];
      p = verifyWithCache(verifier, sigCache, ids, (k) => blockVerifyItem(b, k)).then(() => {}, () => {});
      this.#pre.set(i, p);
    }
    return p;
  }

  /** Start verifying the downloaded blocks from i on (consecutive, bounded), ahead of their application. */
  readAhead(from: number): void {
    let txs = 0;
    for (let i = from; i < from + PREVERIFY_BLOCKS && i < this.#blocks.length; i++) {
      const b = this.#blocks[i];
      if (!b) break;
      txs += b.txs.length;
      if (txs > PREVERIFY_TXS && i > from) break;
      void this.preverify(i);
    }
  }

  /** Block i was handed to the chain: release it, and let the window move. */
  applied(i: number): void {
    const b = this.#blocks[i];
    if (b) this.#bytes -= b.bytes.length;
    this.#blocks[i] = undefined;
    this.#from[i] = undefined;
    this.#pre.delete(i);
    this.#applyAt = i + 1;
    if (i % RANGE === RANGE - 1 || this.#bytes < WINDOW_BYTES) this.schedule();
  }
}
