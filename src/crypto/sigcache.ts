/**
 * Verified-signature cache, keyed by transaction id. A transaction id is the hash of the signed bytes, so
 * it commits to message, key and signature: a hit means this exact signature already passed on this node
 * (usually when it entered the mempool), and the block path need not verify it again. Each entry says which
 * check it passed: the consensus rule, or the strict relay standard (VerifyOptions.strict), which implies
 * the consensus rule. A strict lookup is answered only by a strict entry: a signature valid only under the
 * consensus rule must not enter a mempool (peers would rightly refuse it when relayed).
 * A block header's check is kept under `headerCheckId(hash)`: the block hash is likewise the hash of the
 * signed header bytes, and the prefix keeps the two kinds of check apart.
 * Only positive verdicts are cached; a failed check is re-run, except by a caller that waited for that very
 * check while it ran (see SigCache#inflight).
 */
import { LruMap } from '../util/lru.js';
import type { SignatureVerifier, VerifyItem, VerifyOptions } from './ed25519.js';

/** The SigCache id of a block header's signature check (hashHex: the block hash, over the signed header). */
export const headerCheckId = (hashHex: string): string => `h${hashHex}`;

/** A check running for some caller: its batch's verdicts, its index in them, and whether it is strict. */
interface Inflight { readonly batch: Promise<boolean[]>; readonly index: number; readonly strict: boolean }

export class SigCache {
  /** id → whether the check it passed was the strict one. */
  readonly #ok: LruMap<string, boolean>;
  /**
   * Checks queued or running, by id. A block's transactions are usually still waiting for their mempool
   * admission check when the block arrives (the pool's queue is FIFO and busy); verifying them again for the
   * block doubled the signature work at the moment a node could least afford it. The block waits for the
   * verdict already on its way instead: each signature is verified once per node.
   */
  readonly #inflight = new Map<string, Inflight>();
  constructor(capacity = 200_000) {
    this.#ok = new LruMap(capacity);
  }
  /** Whether `id` passed the consensus rule (or, with `strict`, the strict standard) here. */
  has(id: string, strict = false): boolean {
    const v = this.#ok.peek(id);
    return v !== undefined && (!strict || v);
  }
  add(id: string, strict = false): void { this.#ok.set(id, strict || this.#ok.peek(id) === true); }
  /** Checks in flight (tests, metrics). */
  get inflight(): number { return this.#inflight.size; }
  /** @internal verifyEachWithCache's bookkeeping. */
  pending(id: string): Inflight | undefined { return this.#inflight.get(id); }
  /** @internal */
  track(id: string, f: Inflight): void { this.#inflight.set(id, f); }
  /** @internal */
  untrack(id: string, batch: Promise<boolean[]>): void {
    if (this.#inflight.get(id)?.batch === batch) this.#inflight.delete(id);
  }
}

/**
 * Verify the checks whose ids are not cached (a null id is never cached) through
 * `verifier`. `itemAt(i)` builds check i only when it must actually run (building signing messages for
 * thousands of already-verified transactions was a measurable share of block application). A check with
 * the same id already running for another caller is not run again: its verdict is awaited (an id is the hash
 * of the signed bytes, so the verdict is the same; see SigCache#inflight).
 * Returns every check's verdict, in order; passing ones are cached.
 */
export async function verifyEachWithCache(verifier: SignatureVerifier, cache: SigCache, ids: readonly (string | null)[], itemAt: (i: number) => VerifyItem, opts?: VerifyOptions): Promise<boolean[]> {
  const strict = opts?.strict === true;
  const verdicts = new Array<boolean>(ids.length).fill(true);
  const todo: number[] = [];
  let waits: number[] | undefined;
  let waitOn: Inflight[] | undefined;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id === null || id === undefined) { todo.push(i); continue; }
    if (cache.has(id, strict)) continue;
    // A running check answers this one only if it is at least as strict (a strict pass implies a consensus pass).
    const f = cache.pending(id);
    if (f && (f.strict || !strict)) { (waits ??= []).push(i); (waitOn ??= []).push(f); } else todo.push(i);
  }
  if (todo.length > 0) {
    const batch = verifier.verifyBatch(todo.map(itemAt), opts);
    for (let j = 0; j < todo.length; j++) {
      const id = ids[todo[j]!];
      if (id) cache.track(id, { batch, index: j, strict });
    }
    let got: boolean[];
    try {
      got = await batch;
    } finally {
      for (const i of todo) { const id = ids[i]; if (id) cache.untrack(id, batch); }
    }
    for (let j = 0; j < todo.length; j++) {
      const i = todo[j]!;
      verdicts[i] = got[j] === true;
      if (verdicts[i]) {
        const id = ids[i];
        if (id) cache.add(id, strict);
      }
    }
  }
  if (waits) {
    // Another caller's batch failed (e.g. its verifier closed mid-way): run those checks here after all.
    let retry: number[] | undefined;
    let last: Promise<boolean[]> | undefined;
    let lastGot: boolean[] | undefined;
    for (let k = 0; k < waits.length; k++) {
      const f = waitOn![k]!;
      if (f.batch !== last) {
        last = f.batch;
        try { lastGot = await f.batch; } catch { lastGot = undefined; }
      }
      // A strict failure says nothing final to a consensus check (the signature may be valid but not
      // standard): that one is decided here.
      if (lastGot && (lastGot[f.index] === true || f.strict === strict)) verdicts[waits[k]!] = lastGot[f.index] === true;
      else (retry ??= []).push(waits[k]!);
    }
    if (retry) {
      const got = await verifier.verifyBatch(retry.map(itemAt), opts);
      retry.forEach((i, j) => { verdicts[i] = got[j] === true; if (verdicts[i]) cache.add(ids[i]!, strict); });
    }
  }
  return verdicts;
}

/** As verifyEachWithCache; returns the index of the first failing check, or -1 when all pass. */
export async function verifyWithCache(verifier: SignatureVerifier, cache: SigCache, ids: readonly (string | null)[], itemAt: (i: number) => VerifyItem, opts?: VerifyOptions): Promise<number> {
  return (await verifyEachWithCache(verifier, cache, ids, itemAt, opts)).indexOf(false);
}
