/**
 * Leaf warm-up: computing, off the critical path, the state-lattice leaves that a block expected next will
 * need, so that validating it finds them cached. Pure memoisation of a pure function (accountLeaf): a
 * warm-up that guesses wrong costs some leaf work and changes no result.
 */
import { bytesEqual } from '../encoding/bytes.js';
import type { Block } from '../ledger/block.js';
import { applyCandidates, blockAccounts, EMPTY_ACCOUNT, type Account, type AccountKey } from '../ledger/state.js';
import { changedLeafPairs, leavesFor, type LeafHasher } from '../ledger/statehash.js';
import type { Tx } from '../ledger/tx.js';

/** Reads the head state's accounts (absent ones left out), as ChainStore.getAccounts. */
export type AccountReader = (keys: readonly AccountKey[], bytes?: ReadonlyMap<AccountKey, Uint8Array>) => Promise<Map<AccountKey, Account>>;

export class LeafWarmup {
  readonly #read: AccountReader;
  readonly #hasher: LeafHasher | undefined;
  /** The block sync expects to add next (expectNext), and the warm-up started for it (beforeWrite). */
  #nextHint: Block | undefined;
  #warming: { hashHex: string; done: Promise<void> } | undefined;

  constructor(read: AccountReader, hasher: LeafHasher | undefined) {
    this.#read = read;
    this.#hasher = hasher;
  }

  /**
   * The leaves a block of `candidates` by `proposer` on the current head would need: the old and the new
   * leaf of every account it changes, walking the candidates as block assembly does (applyCandidates).
   * No lock and no state: a leaf of a state that changes meanwhile is merely not used. Background work:
   * the leaves go out in chunks of `chunk` pairs, and it stops before any step where `proceed()` says no.
   * Returns how many leaves it computed.
   */
  async warmLeaves(candidates: readonly Tx[], proposer: Uint8Array, proceed: () => boolean, chunk: number): Promise<number> {
    if (candidates.length === 0 || !proceed()) return 0;
    const accounts = blockAccounts(candidates, proposer);
    const pre = await this.#read(accounts.keys, accounts.bytes);
    const post = new Map(pre);
    applyCandidates(post, candidates, accounts);
    const pairs = changedLeafPairs(accounts.keys, pre, post);
    const stats = { computed: 0 };
    for (let i = 0; i < pairs.length && proceed(); i += chunk) await leavesFor(this.#hasher, pairs.slice(i, i + chunk), 64, stats);
    return stats.computed;
  }

  /**
   * Sync's look-ahead: `block` is expected to be added right after the block being added now (or next). When
   * the head switch to its parent has computed the new state and is waiting for that state's write, the
   * leaves `block` will need are computed meanwhile (worker pool), from that not-yet-written state: the write
   * and the next block's leaves then overlap instead of following each other. Only memoisation, as
   * warmLeaves: a hint that turns out wrong costs some leaf work and changes no result.
   */
  expectNext(block: Block | undefined): void {
    this.#nextHint = block;
  }

  /**
   * A head switch to `target` computed its new state (`overlay` over the stored head state) and is about to
   * write it: if the expected next block is `target`'s child, compute its leaves from that state while the
   * write runs, so that the write and the next block's leaves overlap instead of following each other.
   */
  beforeWrite(target: Uint8Array, overlay: ReadonlyMap<AccountKey, Account>): void {
    const next = this.#nextHint;
    if (!next || !bytesEqual(next.header.parentHash, target)) return;
    this.#nextHint = undefined;
    this.#warming = { hashHex: next.header.hashHex, done: this.#warmOnto(overlay, next).catch(() => {}) };
  }

  /** Before applying block `hashHex`: wait for its warm-up if one runs (its leaves are this block's). */
  async settle(hashHex: string): Promise<void> {
    const warming = this.#warming;
    if (warming?.hashHex !== hashHex) return;
    this.#warming = undefined;
    await warming.done;
  }

  async #warmOnto(overlay: ReadonlyMap<AccountKey, Account>, block: Block): Promise<void> {
    const accounts = blockAccounts(block.txs, block.header.proposer);
    const rest = accounts.keys.filter((k) => !overlay.has(k));
    // Keys the switch did not touch have the same state before and after its write.
    const found = rest.length ? await this.#read(rest, accounts.bytes) : new Map<AccountKey, Account>();
    const pre = new Map<AccountKey, Account>(accounts.keys.map((k) => [k, overlay.get(k) ?? found.get(k) ?? EMPTY_ACCOUNT]));
    const post = new Map(pre);
    applyCandidates(post, block.txs, accounts);
    await leavesFor(this.#hasher, changedLeafPairs(accounts.keys, pre, post));
  }
}
