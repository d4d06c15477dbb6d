/**
 * Block production for a validator: at the start of each slot it owns, build on the best head from the
 * mempool's candidates, apply them to the head state (skipping any that no longer apply), sign, and hand
 * the block to the chain exactly as if it had come from a peer (so it passes the same validation).
 */
import { bytesEqual } from '../encoding/bytes.js';
import { blockFramingBytes, buildBlock, TX_FRAMING_BYTES, type Block } from '../ledger/block.js';
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
}

export interface ProducerEvents {
  /**
   * A block this validator built, as soon as it is signed, while the chain's head is still its parent (gossip
   * relays it from here). That is before this node connects it: the block is valid by construction and every
   * peer validates it anyway, so our own connect time (100–400 ms for a 2,000-tx block on a loaded 2-core
   * devnet) is not on its way to the next proposer, for whom a block arriving after its slot started is one
   * it builds over.
   */
  'block:signed': (block: Block) => void;
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
  produced = 0;
  missed = 0;

  constructor(opts: ProducerOptions) {
    super();
    this.#o = opts;
    if (!opts.chain.genesis.validators.some((v) => bytesEqual(v, opts.publicKey))) {
      throw new Error('this key is not in the genesis validator list');
    }
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
        if (bytesEqual(this.#o.chain.head.hash, block.header.parentHash)) this.emit('block:signed', block);
        const res = await this.#o.chain.addBlock(block);
        this.produced++;
        // When it started after the slot's start, and how long building and connecting took (operators: a block
        // that leaves late in its slot reaches the next proposer too late and is orphaned).
        const timing = { startMs: t0 - slotStart(this.#o.chain.genesis, slot), buildMs: t1 - t0, connectMs: clock.now() - t1, build: phases };
        this.#o.log.info('produced block', { height: block.header.height, slot, txs: block.txs.length, hash: block.header.hashHex, status: res.status, ...timing });
        this.emit('block:produced', { block, slot, status: res.status });
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
    return assembleBlock(chain, secretKey, publicKey, slot, blockCandidates(mempool, chain.genesis), phases);
  }
}

/**
 * What a producer offers its next block: the mempool's best candidates within the block limits, counting
 * each transaction's framing in the block and leaving room for the longest header, so the block it
 * assembles never exceeds maxBlockBytes (at any limit the genesis allows).
 */
export function blockCandidates(mempool: Mempool, genesis: Genesis): Tx[] {
  const p = genesis.params;
  return mempool.candidates(p.maxBlockTxs, p.maxBlockBytes - blockFramingBytes(genesis.chainId), TX_FRAMING_BYTES);
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
