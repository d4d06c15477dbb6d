/**
 * Block production for a validator: at the start of each slot it owns, build on the best head from the
 * mempool's candidates, apply them to the head state (skipping any that no longer apply), sign, and hand
 * the block to the chain exactly as if it had come from a peer (so it passes the same validation).
 */
import { bytesEqual } from '../encoding/bytes.js';
import { buildBlock, type Block } from '../ledger/block.js';
import { proposerFor, slotAt, slotStart } from '../ledger/schedule.js';
import { applyCandidates, blockAccounts, type AccountMap } from '../ledger/state.js';
import { changedLeafPairs, leavesFor, StateLattice } from '../ledger/statehash.js';
import type { Genesis } from '../ledger/genesis.js';
import type { Tx } from '../ledger/tx.js';
import type { BlockEntry, Chain } from '../chain/chain.js';
import type { Mempool } from '../mempool/mempool.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { TypedEmitter } from '../util/events.js';
import type { Logger } from '../util/log.js';

export interface ProducerOptions {
  chain: Chain;
  mempool: Mempool;
  clock: Clock;
  secretKey: Uint8Array;
  publicKey: Uint8Array;
  log: Logger;
  /** Called with every block produced and accepted (gossip hooks in here). */
  onBlock?: (block: Block) => void;
  /**
   * Time (ms) this validator allows itself to build and connect a block; its blocks are sized to fit (see
   * BlockSizer). Default a third of the slot; 0 = only the consensus limits.
   */
  budgetMs?: number;
}

export interface ProducerEvents {
  /** This validator produced a block for one of its slots (the chain's verdict in `status`). */
  'block:produced': (e: { block: Block; slot: number; status: string }) => void;
  /**
   * One of this validator's slots passed without a block from it: `error` = building or adding the block
   * failed; `late` = the process woke too late in (or after) the slot (blocked event loop, suspended process).
   */
  'slot:missed': (e: { slot: number; reason: 'error' | 'late' }) => void;
}

export class Producer extends TypedEmitter<ProducerEvents> {
  readonly #o: ProducerOptions;
  #timer: TimerHandle | null = null;
  #stopped = true;
  #lastSlot = -1;
  readonly sizer: BlockSizer;
  produced = 0;
  missed = 0;

  constructor(opts: ProducerOptions) {
    super();
    this.#o = opts;
    if (!opts.chain.genesis.validators.some((v) => bytesEqual(v, opts.publicKey))) {
      throw new Error('this key is not in the genesis validator list');
    }
    const g = opts.chain.genesis;
    this.sizer = new BlockSizer(g.params.maxBlockTxs, opts.budgetMs ?? Math.floor(g.slotMs / 3));
  }

  start(): void {
    this.#stopped = false;
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) this.#o.clock.clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** Sleep until the start of the next slot this validator owns. */
  #schedule(): void {
    if (this.#stopped) return;
    const g = this.#o.chain.genesis;
    const now = this.#o.clock.now();
    const cur = slotAt(g, now);
    let slot = Math.max(cur, this.#lastSlot + 1, 1);
    // Own slots that passed while this process was busy or suspended (not before its first slot: those
    // belong to the time it was not running).
    if (this.#lastSlot >= 0) {
      for (let s = this.#lastSlot + 1, n = 0; s < cur && n < 10_000; s++, n++) if (this.#owns(s)) this.emit('slot:missed', { slot: s, reason: 'late' });
    }
    // Joining late in a slot: leave it (a block built now would reach peers too late to be useful).
    if (slot === cur && now - slotStart(g, cur) > g.slotMs / 2) {
      if (this.#lastSlot >= 0 && this.#owns(cur)) this.emit('slot:missed', { slot: cur, reason: 'late' });
      slot++;
    }
    while (!this.#owns(slot)) slot++;
    const delay = Math.max(0, slotStart(g, slot) - now);
    this.#timer = this.#o.clock.setTimeout(() => { void this.#tick(slot); }, delay);
  }

  #owns(slot: number): boolean {
    return bytesEqual(proposerFor(this.#o.chain.genesis, slot), this.#o.publicKey);
  }

  async #tick(slot: number): Promise<void> {
    this.#timer = null;
    if (this.#stopped) return;
    // Every slot we were woken for is done with, produced or not: otherwise a slot our head already covers
    // (e.g. after a restart inside a slot we filled before the crash) is picked again at once, forever.
    this.#lastSlot = Math.max(this.#lastSlot, slot);
    try {
      if (slot > this.#o.chain.head.slot) {
        const clock = this.#o.clock;
        const t0 = clock.now();
        const phases: AssemblyPhases = {};
        const block = await this.build(slot, phases);
        if (this.#stopped) return;
        const t1 = clock.now();
        const res = await this.#o.chain.addBlock(block);
        this.produced++;
        // Our own work on it (not the wait for the chain lock, which another block's validation held).
        this.sizer.record(block.txs.length, clock.now() - t0 - (phases.lockMs ?? 0));
        // When it started after the slot's start, and how long building and connecting took (operators: a block
        // that leaves late in its slot reaches the next proposer too late and is orphaned).
        const timing = { startMs: t0 - slotStart(this.#o.chain.genesis, slot), buildMs: t1 - t0, connectMs: clock.now() - t1, build: phases };
        this.#o.log.info('produced block', { height: block.header.height, slot, txs: block.txs.length, hash: block.header.hashHex, status: res.status, ...timing, nextMaxTxs: this.sizer.limit });
        this.emit('block:produced', { block, slot, status: res.status });
        this.#o.onBlock?.(block);
      }
    } catch (e) {
      this.missed++;
      this.#o.log.error('block production failed', { slot, error: e instanceof Error ? e.message : String(e) });
      this.emit('slot:missed', { slot, reason: 'error' });
    } finally {
      this.#schedule();
    }
  }

  /** Build and sign a block for `slot` on the current head from the mempool's best candidates. */
  build(slot: number, phases?: AssemblyPhases): Promise<Block> {
    const { chain, mempool, secretKey, publicKey } = this.#o;
    return assembleBlock(chain, secretKey, publicKey, slot, blockCandidates(mempool, chain.genesis.params, this.sizer.limit), phases);
  }
}

/** What a producer offers its next block: the mempool's best candidates within the block limits (less the header's room). */
export function blockCandidates(mempool: Mempool, p: Genesis['params'], maxTxs = p.maxBlockTxs): Tx[] {
  return mempool.candidates(Math.min(maxTxs, p.maxBlockTxs), p.maxBlockBytes - 4096);
}

/**
 * Sizes this validator's blocks so that building and connecting one takes at most `budgetMs`, the rest of
 * the slot being for the block to reach and be validated by the next proposer. A block that took longer than
 * its slot is not on the next proposer's head when that slot starts: it builds on the parent, the two blocks
 * fork, and the work of one is thrown away. Under a backlog (a validator restarting with a full mempool, or
 * cold state caches making every transaction cost more) each block then carried more than the last, and 4
 * validators on 2 cores produced 4 blocks in 11 slots. Sized blocks leave the backlog in the mempool, where
 * its back-pressure applies, and the chain keeps one block per slot.
 *
 * The cost per transaction is measured on this machine as it is loaded now, from this validator's last block
 * of at least SAMPLE_MIN_TXS (so fixed per-block costs do not dominate). It changes fast: cold state caches
 * made the first blocks of a burst cost 25× what the same blocks cost a few slots later, and a smoothed
 * estimate kept blocks small long after that (measured: 191 instead of 1,027 tx/s confirmed in a 12 s burst
 * of 2,000 tx/s). So the last measurement decides, and the limit grows at most GROWTH× per block, since a
 * cheap block says little about a 10× bigger one. It starts at the consensus limit (nothing changes until a
 * block overruns its budget) and never goes below FLOOR_TXS (a stalled process must not starve the chain).
 * This is local policy, not a consensus rule: peers accept any block within the genesis limits. Time here
 * is the node's clock, so in the simulator (virtual time, which computation does not advance) the limit
 * stays at the consensus limit and runs stay replayable.
 */
export class BlockSizer {
  static readonly GROWTH = 4;
  static readonly FLOOR_TXS = 128;
  static readonly SAMPLE_MIN_TXS = 64;
  #msPerTx: number | undefined;
  #cap: number;

  constructor(readonly maxTxs: number, readonly budgetMs: number) {
    this.#cap = maxTxs;
  }

  /** The most transactions the next block may carry. */
  get limit(): number { return this.#cap; }

  /** Estimated cost of one transaction (ms), once measured. */
  get msPerTx(): number | undefined { return this.#msPerTx; }

  /** A block of `txs` transactions took `ms` to build and connect. */
  record(txs: number, ms: number): void {
    if (this.budgetMs <= 0 || txs < BlockSizer.SAMPLE_MIN_TXS) return;
    this.#msPerTx = Math.max(0, ms) / txs;
    const fits = this.#msPerTx > 0 ? Math.floor(this.budgetMs / this.#msPerTx) : Infinity;
    this.#cap = Math.max(BlockSizer.FLOOR_TXS, Math.min(this.maxTxs, BlockSizer.GROWTH * Math.max(this.#cap, txs), fits));
  }
}

/**
 * Build and sign a block for `slot` on the chain's head: apply `candidates` in order to the head state,
 * skipping any that no longer apply (and the sender's later ones), credit fees, compute both roots.
 * Runs under the chain's lock so head, lattice and accounts form one consistent snapshot.
 */
export function assembleBlock(chain: Chain, secretKey: Uint8Array, publicKey: Uint8Array, slot: number, candidates: readonly Tx[], phases?: AssemblyPhases): Promise<Block> {
  const lap = stopwatch(chain.clock);
  return chain.withHead(async (head: BlockEntry, lattice: StateLattice) => {
    const g = chain.genesis;
    const lockMs = lap();
    const accounts = blockAccounts(candidates, publicKey);
    const state: AccountMap = await chain.getAccounts(accounts.keys, accounts.bytes);
    const readMs = lap();
    const pre = new Map(state);
    const { chosen } = applyCandidates(state, candidates, accounts);
    const applyMs = lap();
    const leaves = await leavesFor(chain.leafHasher, changedLeafPairs(accounts.keys, pre, state));
    lattice.replaceLeaves(leaves);
    const leavesMs = lap();
    const block = buildBlock({
      chainId: g.chainId, height: head.height + 1, slot, parentHash: head.hash, timestamp: slotStart(g, slot),
      stateRoot: lattice.root(), proposer: publicKey,
    }, chosen, secretKey);
    if (phases) Object.assign(phases, { lockMs, readMs, applyMs, leavesMs, sealMs: lap() });
    return block;
  });
}

/** Where a block's assembly spent its time (ms; logged with each produced block). */
export interface AssemblyPhases { lockMs?: number; readMs?: number; applyMs?: number; leavesMs?: number; sealMs?: number }

function stopwatch(clock: Clock): () => number {
  let t = clock.now();
  return () => { const n = clock.now(); const d = n - t; t = n; return d; };
}
