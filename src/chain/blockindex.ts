/**
 * The in-memory block index: every stored block's entry (any branch), who its children are, the branch
 * tips that fork choice may pick, the invalid marks, the blocks of each slot (equivocation) and the best
 * chain as an array of hashes by height. It mirrors keyspaces 'e', 'i' and 'n' of the store (layout.ts),
 * which the chain writes; nothing here does I/O.
 *
 * Tips: a block is a candidate tip when it is valid and has no valid child. So marking a block invalid
 * removes it and its descendants from the tips, and makes its parent a tip again if no valid child is left;
 * forgetting a block (its storing failed) does the same.
 */
import { defined, invariant } from '../util/assert.js';
import { ChainError, type BlockEntry } from './types.js';

export class BlockIndex {
  readonly #entries = new Map<string, BlockEntry>();
  readonly #children = new Map<string, Set<string>>();
  readonly #tips = new Set<string>();
  /** Stored blocks found invalid → the rule they broke ('invalid_parent' for their descendants). */
  readonly #invalid = new Map<string, string>();
  readonly #bySlot = new Map<number, string[]>();
  /** Every indexed block by height, any branch (read by explorers: the block tree of recent heights). */
  readonly #byHeight = new Map<number, string[]>();
  /** Best-chain hashes by height, genesis to head. */
  #best: string[] = [];

  get size(): number { return this.#entries.size; }
  has(hashHex: string): boolean { return this.#entries.has(hashHex); }
  get(hashHex: string): BlockEntry | undefined { return this.#entries.get(hashHex); }

  /** Index a block whose parent is indexed (the genesis block has none). */
  add(e: BlockEntry): void {
    if (e.height > 0) {
      const parent = this.#entries.get(e.parentHex);
      invariant(parent, () => `parent link: parent ${e.parentHex} of block ${e.hashHex} is not indexed`);
      invariant(e.height === parent.height + 1, () => `parent link: block ${e.hashHex} at height ${e.height} on a parent at height ${parent.height}`);
    }
    this.#link(e);
  }

  /**
   * Index the stored entries and invalid marks at start-up. They come in key (hash) order, so parents may
   * follow their children; the links are checked once all are in.
   */
  load(entries: readonly BlockEntry[], invalid: ReadonlyMap<string, string>): void {
    for (const e of entries) this.#link(e);
    for (const e of entries) {
      if (e.height === 0) continue;
      const parent = this.#entries.get(e.parentHex);
      if (!parent || parent.height !== e.height - 1) {
        throw new ChainError(`block ${e.hashHex} at height ${e.height} is not linked to an indexed parent one below it (database corrupted?)`);
      }
    }
    for (const [h, rule] of invalid) {
      this.#invalid.set(h, rule);
      this.#tips.delete(h);
    }
    for (const h of invalid.keys()) {
      const parent = this.#entries.get(h)?.parentHex;
      if (parent === undefined || this.#invalid.has(parent) || !this.#entries.has(parent)) continue;
      if (this.#allInvalid(this.#children.get(parent))) this.#tips.add(parent);
    }
  }

  #link(e: BlockEntry): void {
    this.#entries.set(e.hashHex, e);
    const level = this.#byHeight.get(e.height);
    if (level) level.push(e.hashHex);
    else this.#byHeight.set(e.height, [e.hashHex]);
    if (e.height > 0) {
      let kids = this.#children.get(e.parentHex);
      if (!kids) this.#children.set(e.parentHex, (kids = new Set()));
      kids.add(e.hashHex);
      this.#tips.delete(e.parentHex);
      const same = this.#bySlot.get(e.slot);
      if (same) same.push(e.hashHex);
      else this.#bySlot.set(e.slot, [e.hashHex]);
    }
    if (!this.#children.get(e.hashHex)?.size) this.#tips.add(e.hashHex);
  }

  /** Forget a block whose storing failed (the newest entry: it has no children). */
  remove(e: BlockEntry): void {
    invariant(!this.#children.get(e.hashHex)?.size, () => `block ${e.hashHex} to forget has children`);
    this.#entries.delete(e.hashHex);
    this.#tips.delete(e.hashHex);
    const kids = this.#children.get(e.parentHex);
    kids?.delete(e.hashHex);
    if (kids && kids.size === 0) this.#children.delete(e.parentHex);
    if (!this.#invalid.has(e.parentHex) && this.#allInvalid(kids)) this.#tips.add(e.parentHex);
    const same = this.#bySlot.get(e.slot);
    if (same) {
      const rest = same.filter((x) => x !== e.hashHex);
      if (rest.length) this.#bySlot.set(e.slot, rest);
      else this.#bySlot.delete(e.slot);
    }
    const level = this.#byHeight.get(e.height);
    if (level) {
      const rest = level.filter((x) => x !== e.hashHex);
      if (rest.length) this.#byHeight.set(e.height, rest);
      else this.#byHeight.delete(e.height);
    }
  }

  /** The indexed blocks at `height` on every branch (valid or not), in the order they were indexed. */
  atHeight(height: number): BlockEntry[] {
    return (this.#byHeight.get(height) ?? []).map((h) => defined(this.#entries.get(h), () => `block ${h} at height ${height} is not indexed`));
  }

  #allInvalid(kids: ReadonlySet<string> | undefined): boolean {
    for (const c of kids ?? []) if (!this.#invalid.has(c)) return false;
    return true;
  }

  // ---------------------------------------------------------------- tips and invalid marks

  /** The candidate tips: blocks with no valid child that are not (descendants of) invalid blocks. */
  *tips(): IterableIterator<BlockEntry> {
    for (const h of this.#tips) yield defined(this.#entries.get(h), () => `tip ${h} is not indexed`);
  }

  invalidRule(hashHex: string): string | undefined { return this.#invalid.get(hashHex); }

  /**
   * Mark `entry` invalid for `rule` and its known descendants for 'invalid_parent', and take them out of
   * the tips. Returns every mark made, for the caller to persist. The parent's tip status is settled by
   * `settleParentTip`, once the marks are written.
   */
  markInvalid(entry: BlockEntry, rule: string): [hashHex: string, rule: string][] {
    const marks: [string, string][] = [];
    const stack = [entry.hashHex];
    let r = rule;
    while (stack.length) {
      const h = stack.pop()!;
      this.#invalid.set(h, r);
      this.#tips.delete(h);
      marks.push([h, r]);
      r = 'invalid_parent';
      for (const c of this.#children.get(h) ?? []) stack.push(c);
    }
    return marks;
  }

  /** After `entry` was marked invalid: its parent is a tip again if it is valid and no valid child is left. */
  settleParentTip(entry: BlockEntry): void {
    if (!this.#invalid.has(entry.parentHex) && this.#allInvalid(this.#children.get(entry.parentHex))) this.#tips.add(entry.parentHex);
  }

  /** The other indexed blocks of `slot` than `hashHex` (two blocks for one slot are an equivocation). */
  othersAtSlot(slot: number, hashHex: string): string[] {
    return (this.#bySlot.get(slot) ?? []).filter((x) => x !== hashHex);
  }

  // ---------------------------------------------------------------- best chain

  /** Best-chain hashes by height, genesis first, head last. */
  get best(): readonly string[] { return this.#best; }
  bestAt(height: number): string | undefined { return this.#best[height]; }
  isOnBest(hashHex: string): boolean {
    const e = this.#entries.get(hashHex);
    return !!e && this.#best[e.height] === hashHex;
  }

  /** Set the best chain to the ancestry of `head`, which must lead back to `genesisHex`. */
  setBest(head: BlockEntry, genesisHex: string): void {
    const best: string[] = new Array(head.height + 1);
    let e: BlockEntry | undefined = head;
    while (e) {
      best[e.height] = e.hashHex;
      if (e.height === 0) break;
      e = this.#entries.get(e.parentHex);
    }
    if (best[0] !== genesisHex) throw new ChainError('best chain does not lead back to genesis');
    this.#best = best;
  }

  /** Make the best chain end with `connect` (oldest first) above `fork`, a best-chain block. */
  switchBest(fork: BlockEntry, connect: readonly BlockEntry[]): void {
    invariant(this.#best[fork.height] === fork.hashHex, () => `best chain link: fork point ${fork.hashHex} is not on the best chain`);
    let parent = fork;
    for (const c of connect) {
      invariant(c.parentHex === parent.hashHex && c.height === parent.height + 1, () => `best chain link: block ${c.hashHex} at height ${c.height} does not extend ${parent.hashHex}`);
      parent = c;
    }
    this.#best.length = fork.height + 1;
    for (const c of connect) this.#best[c.height] = c.hashHex;
  }
}
