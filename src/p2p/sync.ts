/**
 * Chain sync and fork reconciliation.
 *
 * Whenever a peer shows a head better than ours (fork choice order), one sync round runs:
 *   1. ask that peer for the hashes of its best chain after our fork point, given our block locator
 *      (exponentially spaced hashes of our best chain, so the fork point is found in one round trip);
 *   2. split the hashes we lack into ranges and download them from SEVERAL peers in parallel (every ready
 *      peer whose head is high enough gets a share; a range a peer cannot serve falls back to the source);
 *   3. hand the blocks to the chain strictly in order as ranges complete; out-of-order ranges wait in a
 *      bounded window. The chain validates everything and switches heads only to a better valid chain.
 * Rounds repeat until no peer shows a better head. Progress (height/target, blocks/s, tx/s, time left) is
 * logged at most every 2 s while catching up, and once at the end; `status` exposes it (metrics).
 */
import { bytesEqual, fromHex, toHex } from '../encoding/bytes.js';
import { betterHead, type Chain } from '../chain/chain.js';
import type { Block } from '../ledger/block.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { MAX_GET_BLOCKS, MSG, type Message } from './messages.js';
import type { Peer } from './peer.js';

export type AcceptResult = 'accepted' | 'known' | 'orphan' | 'invalid' | 'later';

export interface SyncDeps {
  chain: Chain;
  clock: Clock;
  log: Logger;
  readyPeers(): Peer[];
  decode(bytes: Uint8Array, from: Peer): Block | undefined;
  accept(block: Block, from: Peer): Promise<AcceptResult>;
  penalize(peer: Peer, rule: string, detail: string): void;
}

export const RANGE = 64;
const WINDOW = 12;
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
    if (this.#running) { this.#again = true; return; }
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
        if (!progressed) {
          this.#futile.add(toHex(peer.headHash));
          if (this.#futile.size > 1000) this.#futile.clear();
          break;
        }
      }
    } while (this.#again && !this.#stopped);
  }

  /** One round against `source`. Returns true if any block was added. */
  async #round(source: Peer): Promise<boolean> {
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

    // Ranges over `need`, fetched in parallel from every peer that may hold them.
    const ranges: { hash: Uint8Array; height: number }[][] = [];
    for (let i = 0; i < need.length; i += Math.min(RANGE, MAX_GET_BLOCKS)) ranges.push(need.slice(i, i + RANGE));
    const fetches: Promise<Block[]>[] = [];
    const startFetch = (i: number) => {
      const range = ranges[i]!;
      const top = range[range.length - 1]!.height;
      const holders = this.#d.readyPeers().filter((p) => p.headHeight >= top);
      const helper = holders.length ? holders[i % holders.length]! : source;
      fetches[i] = this.#fetchRange(range, helper, source);
    };
    for (let i = 0; i < Math.min(WINDOW, ranges.length); i++) startFetch(i);
    for (let i = 0; i < ranges.length; i++) {
      const blocks = await fetches[i]!;
      if (i + WINDOW < ranges.length) startFetch(i + WINDOW);
      for (const b of blocks) {
        const r = await this.#d.accept(b, source);
        if (r === 'invalid') return this.blocksSynced > before;
        if (r === 'accepted') { this.blocksSynced++; this.txsSynced += b.txs.length; }
      }
      this.#progress(target);
      if (this.#stopped) break;
    }
    if (this.blocksSynced - before >= 16) {
      const secs = Math.max(0.001, (this.#d.clock.now() - started) / 1000);
      log.info('sync round done', {
        height: chain.head.height, target, blocks: this.blocksSynced - before, blocksPerSec: Math.round((this.blocksSynced - before) / secs),
        peers: this.#d.readyPeers().length, sources: Object.fromEntries(this.#sources),
      });
    }
    return this.blocksSynced > before || chain.hasBlock(toHex(source.headHash));
  }

  /** Fetch one range from `helper`; whatever it does not deliver is fetched from `source`. */
  async #fetchRange(range: { hash: Uint8Array }[], helper: Peer, source: Peer): Promise<Block[]> {
    const got = new Map<string, Block>();
    for (const peer of helper === source ? [source] : [helper, source]) {
      const want = range.filter((r) => !got.has(toHex(r.hash)));
      if (want.length === 0) break;
      try {
        const res = await peer.request<Extract<Message, { type: typeof MSG.BLOCKS }>>(
          (reqId) => ({ type: MSG.GET_BLOCKS, reqId, hashes: want.map((w) => w.hash) }), MSG.BLOCKS);
        const wanted = new Set(want.map((w) => toHex(w.hash)));
        for (const bytes of res.blocks) {
          const b = this.#d.decode(bytes, peer);
          if (!b) break;
          if (!wanted.has(b.header.hashHex)) { this.#d.penalize(peer, 'unrequested', 'block not asked for'); break; }
          got.set(b.header.hashHex, b);
          this.#sources.set(peer.label, (this.#sources.get(peer.label) ?? 0) + 1);
        }
      } catch (e) {
        this.#d.log.debug('range fetch failed', { peer: peer.label, error: (e as Error).message });
      }
    }
    const out: Block[] = [];
    for (const r of range) {
      const b = got.get(toHex(r.hash));
      if (!b) break; // later blocks cannot connect without this one
      out.push(b);
    }
    return out;
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
