/**
 * Signature verification for the simulated nodes: the production InlineVerifier (on the calling thread,
 * never worker threads: a worker's timing would make runs nondeterministic), behind one verdict memo shared
 * by every node of a run.
 *
 * In a real network each machine verifies a gossiped transaction once; in the simulator those N machines
 * are one process, so the same Ed25519 verification ran N times (a seventh to a fifth of a run's CPU).
 * `verify` is a pure function of (signature, message, public key), so the memo is keyed on all three,
 * byte for byte, and returns exactly the verdict the inline verifier gave for those bytes: no node sees a
 * different answer, only the repeated computation goes. Each node still calls verifyBatch exactly as in
 * production (and keeps its own SigCache). Bounded: the oldest verdicts are forgotten first.
 */
import { InlineVerifier, type SignatureVerifier, type VerifyItem, type VerifyOptions } from '../crypto/ed25519.js';

const latin1 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');

export class SharedVerdicts {
  readonly #inline = new InlineVerifier();
  readonly #memo = new Map<string, boolean>();
  hits = 0;
  misses = 0;
  constructor(private readonly capacity = 200_000) {}

  async verifyBatch(items: VerifyItem[], opts?: VerifyOptions): Promise<boolean[]> {
    const strict = opts?.strict === true;
    const out = new Array<boolean>(items.length);
    const keys = new Array<string>(items.length);
    const todo: number[] = [];
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      // Lengths first, so that no two different triples share a key.
      const k = `${strict ? 's' : 'c'}${it.signature.length}:${it.publicKey.length}:${latin1(it.signature)}${latin1(it.publicKey)}${latin1(it.message)}`;
      keys[i] = k;
      const v = this.#memo.get(k);
      if (v === undefined) todo.push(i);
      else { out[i] = v; this.hits++; }
    }
    if (todo.length) {
      this.misses += todo.length;
      const got = await this.#inline.verifyBatch(todo.map((i) => items[i]!), { strict });
      todo.forEach((i, j) => {
        out[i] = got[j] === true;
        this.#memo.set(keys[i]!, out[i]!);
      });
      while (this.#memo.size > this.capacity) this.#memo.delete(this.#memo.keys().next().value as string);
    }
    return out;
  }

  /** The verifier one node gets: closing it (a node stopping) leaves the shared memo to the others. */
  forNode(): SignatureVerifier {
    let closed = false;
    return {
      verifyBatch: (items, opts) => (closed ? Promise.reject(new Error('verifier is closed')) : this.verifyBatch(items, opts)),
      close: async () => { closed = true; },
    };
  }
}
