import { Heap } from './heap.js';

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
 * reproducible. Used by unit tests and the deterministic simulator. Timers sit in a binary heap (a
 * simulated network keeps hundreds pending); cancelled ones are dropped when they reach the top.
 */
interface ManualTimer { due: number; seq: number; fn: (() => void) | undefined }

export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #heap = new Heap<ManualTimer>((a, b) => a.due < b.due || (a.due === b.due && a.seq < b.seq));
  /** Pending (neither cancelled nor fired) timers. */
  #live = 0;

  constructor(startMs: number) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  get pending(): number { return this.#live; }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t: ManualTimer = { due: this.#now + Math.max(0, ms), seq: ++this.#seq, fn };
    this.#heap.push(t);
    this.#live++;
    return t as unknown as TimerHandle;
  }

  clearTimeout(h: TimerHandle): void {
    const t = h as unknown as ManualTimer;
    if (t && typeof t === 'object' && 'fn' in t && t.fn) {
      t.fn = undefined;
      this.#live--;
    }
  }

  /** Due time of the earliest pending timer, if any. */
  nextDue(): number | undefined {
    this.#dropCancelled();
    return this.#heap.peek()?.due;
  }

  /** Fire the earliest due timer (≤ `limit`), moving time to it. Returns false when none is due. */
  step(limit = Infinity): boolean {
    this.#dropCancelled();
    const t = this.#heap.peek();
    if (!t || t.due > limit) return false;
    this.#heap.pop();
    const fn = t.fn!;
    t.fn = undefined;
    this.#live--;
    if (t.due > this.#now) this.#now = t.due;
    fn();
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

  #dropCancelled(): void {
    while (this.#heap.size && !this.#heap.peek()!.fn) this.#heap.pop();
  }
}
