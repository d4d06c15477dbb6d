/**
 * Seeded PRNG for the simulator (xoshiro128**, seeded through splitmix32): the same seed gives the same
 * stream on every machine. Implements the core's `Random` interface, so nodes draw challenges from it.
 */
import type { Random } from '../util/random.js';

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Prng implements Random {
  #s: Uint32Array;

  constructor(seed: number) {
    const sm = splitmix32(seed);
    this.#s = new Uint32Array([sm(), sm(), sm(), sm()]);
    if (this.#s.every((x) => x === 0)) this.#s[0] = 1;
  }

  /** Next uniform 32-bit unsigned integer. */
  next(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!; s[3]! ^= s[1]!; s[1]! ^= s[2]!; s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform integer in [0, max): rejection sampling, no modulo bias. */
  int(max: number): number {
    if (!Number.isInteger(max) || max < 1 || max > 2 ** 32) throw new RangeError(`int(max) needs 1 ≤ max ≤ 2^32, got ${max}`);
    const limit = 2 ** 32 - (2 ** 32 % max);
    for (;;) {
      const x = this.next();
      if (x < limit) return x % max;
    }
  }

  /** Uniform float in [0, 1) — for fault probabilities only, never for anything consensus decides. */
  float(): number {
    return this.next() / 2 ** 32;
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const x = this.next();
      for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = (x >>> (8 * j)) & 0xff;
    }
    return out;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** An independent child stream (per node, per link) derived from this one. */
  fork(): Prng {
    return new Prng(this.next());
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
