/**
 * Verified-signature cache, keyed by transaction id. A transaction id is the hash of the signed bytes, so
 * it commits to message, key and signature: a hit means this exact signature already passed the consensus
 * rule on this node (usually when it entered the mempool), and the block path need not verify it again.
 * Only positive verdicts are cached; a failed check is always re-run.
 */
import { LruSet } from '../util/lru.js';
import type { SignatureVerifier, VerifyItem, VerifyOptions } from './ed25519.js';

export class SigCache {
  readonly #ok: LruSet<string>;
  constructor(capacity = 200_000) {
    this.#ok = new LruSet(capacity);
  }
  has(id: string): boolean { return this.#ok.has(id); }
  add(id: string): void { this.#ok.add(id); }
}

/**
 * Verify the checks whose ids are not cached (null id = never cached, e.g. a block header) through
 * `verifier`. `itemAt(i)` builds check i only when it must actually run (building signing messages for
 * thousands of already-verified transactions was a measurable share of block application).
 * Returns every check's verdict, in order; passing ones are cached.
 */
export async function verifyEachWithCache(verifier: SignatureVerifier, cache: SigCache, ids: readonly (string | null)[], itemAt: (i: number) => VerifyItem, opts?: VerifyOptions): Promise<boolean[]> {
  const verdicts = new Array<boolean>(ids.length).fill(true);
  const todo: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id === null || id === undefined || !cache.has(id)) todo.push(i);
  }
  if (todo.length === 0) return verdicts;
  const got = await verifier.verifyBatch(todo.map(itemAt), opts);
  for (let j = 0; j < todo.length; j++) {
    const i = todo[j]!;
    verdicts[i] = got[j] === true;
    if (verdicts[i]) {
      const id = ids[i];
      if (id) cache.add(id);
    }
  }
  return verdicts;
}

/** As verifyEachWithCache; returns the index of the first failing check, or -1 when all pass. */
export async function verifyWithCache(verifier: SignatureVerifier, cache: SigCache, ids: readonly (string | null)[], itemAt: (i: number) => VerifyItem, opts?: VerifyOptions): Promise<number> {
  return (await verifyEachWithCache(verifier, cache, ids, itemAt, opts)).indexOf(false);
}
