/** A typed event emitter: subsystems announce through it and never reach into each other. */
import { EventEmitter } from 'node:events';

export class TypedEmitter<E extends { [K in keyof E]: (...args: never[]) => void }> {
  readonly #ee = new EventEmitter({ captureRejections: false });

  constructor() {
    this.#ee.setMaxListeners(100);
  }

  on<K extends keyof E & string>(event: K, fn: E[K]): () => void {
    this.#ee.on(event, fn as unknown as (...a: unknown[]) => void);
    return () => this.#ee.off(event, fn as unknown as (...a: unknown[]) => void);
  }

  once<K extends keyof E & string>(event: K, fn: E[K]): void {
    this.#ee.once(event, fn as unknown as (...a: unknown[]) => void);
  }

  off<K extends keyof E & string>(event: K, fn: E[K]): void {
    this.#ee.off(event, fn as unknown as (...a: unknown[]) => void);
  }

  /** Listeners of `event` now (tests check that wiring is undone). */
  listenerCount<K extends keyof E & string>(event: K): number {
    return this.#ee.listenerCount(event);
  }

  protected emit<K extends keyof E & string>(event: K, ...args: Parameters<E[K]>): void {
    this.#ee.emit(event, ...args);
  }
}
