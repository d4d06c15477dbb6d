/**
 * Time reaches the core only through this interface, so a simulator can run many nodes on virtual time.
 */
export type TimerHandle = { readonly __timer: unique symbol } | object;

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    return t as unknown as TimerHandle;
  },
  clearTimeout: (h) => clearTimeout(h as unknown as NodeJS.Timeout),
};

/**
 * A clock that only moves when told to. Timers fire in (due time, creation order) order, so a run is
 * reproducible. Used by unit tests and the deterministic simulator.
 */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  #timers = new Map<number, { due: number; seq: number; fn: () => void }>();

  constructor(startMs: number) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const seq = ++this.#seq;
    this.#timers.set(seq, { due: this.#now + Math.max(0, ms), seq, fn });
    return { seq } as unknown as TimerHandle;
  }

  clearTimeout(h: TimerHandle): void {
    this.#timers.delete((h as unknown as { seq: number }).seq);
  }

  /** Due time of the earliest pending timer, if any. */
  nextDue(): number | undefined {
    let best: number | undefined;
    for (const t of this.#timers.values()) if (best === undefined || t.due < best) best = t.due;
    return best;
  }

  /** Fire the earliest due timer (≤ `limit`), moving time to it. Returns false when none is due. */
  step(limit = Infinity): boolean {
    let next: { due: number; seq: number; fn: () => void } | undefined;
    for (const t of this.#timers.values()) if (!next || t.due < next.due || (t.due === next.due && t.seq < next.seq)) next = t;
    if (!next || next.due > limit) return false;
    this.#timers.delete(next.seq);
    if (next.due > this.#now) this.#now = next.due;
    next.fn();
    return true;
  }

  /** Move time forward by `ms` firing every timer that falls due on the way (synchronously). */
  advance(ms: number): void {
    const end = this.#now + ms;
    while (this.step(end)) { /* fire in order */ }
    this.#now = end;
  }

  set(ms: number): void {
    if (ms < this.#now) throw new Error('ManualClock cannot go backwards');
    this.advance(ms - this.#now);
  }
}
