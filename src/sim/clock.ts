/**
 * The simulator's virtual clock: the same contract and firing order as util/clock.ts's ManualClock (timers
 * fire in (due time, creation order) order; time moves only when told to), on a binary heap instead of a
 * linear scan of every pending timer. A 5-node run keeps a few hundred timers pending (frame deliveries,
 * request timeouts, maintenance, producers) and fires one per step, so the scans were a visible share of
 * the simulator's own time. Cancelled timers are dropped lazily when they reach the top of the heap.
 */
import type { Clock, TimerHandle } from '../util/clock.js';

interface Timer { due: number; seq: number; fn: (() => void) | undefined }

export class SimClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #heap: Timer[] = [];
  /** Pending (not cancelled, not fired) timers. */
  #live = 0;

  constructor(startMs: number) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  get pending(): number { return this.#live; }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t: Timer = { due: this.#now + Math.max(0, ms), seq: ++this.#seq, fn };
    this.#push(t);
    this.#live++;
    return t as unknown as TimerHandle;
  }

  clearTimeout(h: TimerHandle): void {
    const t = h as unknown as Timer;
    if (t && typeof t === 'object' && 'fn' in t && t.fn) {
      t.fn = undefined;
      this.#live--;
    }
  }

  /** Due time of the earliest pending timer, if any. */
  nextDue(): number | undefined {
    this.#dropCancelled();
    return this.#heap[0]?.due;
  }

  /** Fire the earliest due timer (≤ `limit`), moving time to it. Returns false when none is due. */
  step(limit = Infinity): boolean {
    this.#dropCancelled();
    const t = this.#heap[0];
    if (!t || t.due > limit) return false;
    this.#pop();
    const fn = t.fn!;
    t.fn = undefined;
    this.#live--;
    if (t.due > this.#now) this.#now = t.due;
    fn();
    return true;
  }

  /** Move time forward by `ms`, firing every timer that falls due on the way (synchronously). */
  advance(ms: number): void {
    const end = this.#now + ms;
    while (this.step(end)) { /* fire in order */ }
    this.#now = end;
  }

  set(ms: number): void {
    if (ms < this.#now) throw new Error('SimClock cannot go backwards');
    this.advance(ms - this.#now);
  }

  #dropCancelled(): void {
    while (this.#heap.length && !this.#heap[0]!.fn) this.#pop();
  }

  static #before(a: Timer, b: Timer): boolean {
    return a.due < b.due || (a.due === b.due && a.seq < b.seq);
  }

  #push(t: Timer): void {
    const a = this.#heap;
    a.push(t);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!SimClock.#before(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }

  #pop(): void {
    const a = this.#heap;
    const last = a.pop()!;
    if (a.length === 0) return;
    a[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < a.length && SimClock.#before(a[l]!, a[m]!)) m = l;
      if (r < a.length && SimClock.#before(a[r]!, a[m]!)) m = r;
      if (m === i) break;
      [a[i], a[m]] = [a[m]!, a[i]!];
      i = m;
    }
  }
}
