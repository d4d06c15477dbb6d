/**
 * Invariants asserted where they are produced (TigerBeetle's habit): a condition that must hold if the
 * code is right, never a check of outside input (bad input is a RuleError and is rejected). A violation
 * means this process is about to compute or write a wrong state, so the caller stops instead of going on.
 */

/** A broken invariant: a bug or a corrupted store, never a peer's bad input. */
export class InvariantViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvariantViolation';
  }
}

/**
 * Throw InvariantViolation unless `cond` holds. Pass the message as a function on hot paths: it is built
 * only when the invariant fails.
 */
export function invariant(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) throw new InvariantViolation(typeof message === 'function' ? message() : message);
}

/** `value`, which must be present (not undefined or null): an invariant in place of a non-null `!`. */
export function defined<T>(value: T | undefined | null, message: string | (() => string)): T {
  if (value === undefined || value === null) throw new InvariantViolation(typeof message === 'function' ? message() : message);
  return value;
}
