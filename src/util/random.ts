/** Randomness reaches the core only through this interface (seeded PRNG in the simulator). */
import crypto from 'node:crypto';

export interface Random {
  bytes(n: number): Uint8Array;
  /** Uniform integer in [0, maxExclusive). */
  int(maxExclusive: number): number;
}

export const systemRandom: Random = {
  bytes: (n) => new Uint8Array(crypto.randomBytes(n)),
  int: (max) => crypto.randomInt(max),
};
