/**
 * Fork choice, the one rule every node applies to the blocks it knows. Pure: block-index entries in, a
 * decision out; no I/O and no state, so it can be read and tested on its own.
 *
 * The head is the best candidate tip: the greatest height (the longest chain), and at equal height the
 * smaller block hash in byte order. Candidates are the known blocks with no valid child that are neither
 * invalid nor descendants of an invalid block, so no chain containing an invalid block is ever chosen,
 * however long. The tie-break depends only on the blocks, so every node that knows the same blocks picks
 * the same head: an evenly split network converges as soon as the halves see each other.
 *
 * `admissible` narrows the candidates further; finality will pass "contains the latest final block", so
 * that a conflicting chain is refused however long, without changing anything else here.
 *
 * Sync uses the same best chain to describe itself to a peer (a locator) and to find where a peer's chain
 * leaves ours (its locator's fork point).
 */
import { compareBytes } from '../encoding/bytes.js';
import { defined, invariant } from '../util/assert.js';

/** What fork choice reads of a block-index entry. */
export interface ForkEntry {
  readonly hash: Uint8Array;
  readonly hashHex: string;
  readonly height: number;
  readonly parentHex: string;
}

/** Is `a` a better head than `b`? Longest chain first, then the smaller hash. */
export function betterHead(a: { height: number; hash: Uint8Array }, b: { height: number; hash: Uint8Array }): boolean {
  if (a.height !== b.height) return a.height > b.height;
  return compareBytes(a.hash, b.hash) < 0;
}

/**
 * The head fork choice picks: `head` unless an admissible candidate tip is better. The result does not
 * depend on the order of `tips` (betterHead is a total order on distinct blocks).
 */
export function bestTip<E extends ForkEntry>(head: E, tips: Iterable<E>, admissible: (e: E) => boolean = () => true): E {
  let best = head;
  for (const t of tips) if (betterHead(t, best) && admissible(t)) best = t;
  return best;
}

/** The way from the best chain to a target: where it leaves the best chain, and what to connect after. */
export interface Branch<E> {
  /** The last best-chain block on the target's ancestry (the target itself if it is on the best chain). */
  readonly fork: E;
  /** The target's ancestors above `fork`, and the target, oldest first. */
  readonly connect: E[];
}

/**
 * The branch to `target`, walking its parents (`entry`) down to the best chain (`best`: hashes by height).
 * Every block's parent is indexed and one height below it, and genesis is on every best chain, so the walk
 * always ends there.
 */
export function branchTo<E extends ForkEntry>(target: E, best: readonly string[], entry: (hashHex: string) => E | undefined): Branch<E> {
  const connect: E[] = [];
  let e = target;
  while (best[e.height] !== e.hashHex) {
    connect.push(e);
    const child = e;
    invariant(child.height > 0, () => `branch walk: block ${child.hashHex} at height 0 is not the best chain's genesis`);
    e = defined(entry(child.parentHex), () => `branch walk: parent ${child.parentHex} of block ${child.hashHex} is not indexed`);
    invariant(e.height === child.height - 1, () => `parent link: block ${child.hashHex} at height ${child.height} has its parent at height ${e.height}`);
  }
  connect.reverse();
  return { fork: e, connect };
}

/**
 * A locator of the best chain (`best`: hashes by height, the head last): the hashes at the head's height
 * and the 9 below it, then at steps that double, ending with genesis. Any two chains' locators share an
 * entry near where they part, in O(log height) entries.
 */
export function locator(best: readonly string[]): string[] {
  const out: string[] = [];
  let step = 1;
  for (let h = best.length - 1; h > 0; h -= step) {
    out.push(defined(best[h], () => `best chain has no block at height ${h}`));
    if (out.length >= 10) step *= 2;
  }
  out.push(defined(best[0], 'best chain has a genesis block'));
  return out;
}

/**
 * Where a peer's chain leaves ours: the first (highest) entry of its locator that is on our best chain
 * (`heightOf` gives an indexed block's height), else our genesis.
 */
export function locatorForkPoint(peerLocator: readonly string[], best: readonly string[], heightOf: (hashHex: string) => number | undefined): string {
  for (const h of peerLocator) {
    const height = heightOf(h);
    if (height !== undefined && best[height] === h) return h;
  }
  return defined(best[0], 'best chain has a genesis block');
}
