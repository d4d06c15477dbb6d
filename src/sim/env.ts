/**
 * The environment a simulated node runs in: its clock, its store and what the simulator knows about it.
 *
 * A crash kills the node's clock (its timers never fire again) and its store view (operations not yet
 * issued never complete; issued batches are atomic, as in LevelDB); a restart is a new incarnation with a
 * new clock and store view on the same underlying store.
 */
import type { KeyPair } from '../crypto/keyfile.js';
import type { MeshNode } from '../node/node.js';
import type { BatchOp, KV } from '../storage/kv.js';
import type { Clock, ManualClock, TimerHandle } from '../util/clock.js';
import type { ByzantineNode } from './byzantine.js';
import type { Prng } from './prng.js';

/** The error a failing simulated disk gives. */
export class SimIOError extends Error {
  constructor(op: string) {
    super(`sim: injected I/O error (${op})`);
    this.name = 'SimIOError';
  }
}

/** An injected disk error, possibly wrapped by the node (StartupError quotes the cause's message). */
export function isInjectedIo(e: unknown): boolean {
  return e instanceof SimIOError || (e instanceof Error && e.message.includes('sim: injected I/O error'));
}

/** A clock view for one node: killing it cancels the node's timers and ignores new ones. */
export class NodeClock implements Clock {
  #alive = true;
  readonly #base: ManualClock;
  readonly #timers = new Set<TimerHandle>();
  constructor(base: ManualClock) { this.#base = base; }
  now(): number { return this.#base.now(); }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    if (!this.#alive) return {} as TimerHandle;
    const h: TimerHandle = this.#base.setTimeout(() => {
      this.#timers.delete(h);
      if (this.#alive) fn();
    }, ms);
    this.#timers.add(h);
    return h;
  }
  clearTimeout(h: TimerHandle): void {
    this.#timers.delete(h);
    this.#base.clearTimeout(h);
  }
  kill(): void {
    this.#alive = false;
    for (const h of this.#timers) this.#base.clearTimeout(h);
    this.#timers.clear();
  }
}

/** A store view for one node incarnation: after kill(), operations never complete (the process is gone). */
export class NodeStore implements KV {
  #alive = true;
  readonly #db: KV;
  readonly #rng: Prng | undefined;
  readonly #onFail: ((op: string, ops?: BatchOp[]) => void) | undefined;
  /** Write-failure probability (0 = a healthy disk); a failed write changes nothing (LevelDB batches are atomic). */
  failRate = 0;
  failures = 0;
  /** Start-up fault: the write with this index (0 = the first write of this incarnation) fails. */
  failNth: number | undefined;
  writes = 0;
  constructor(db: KV, rng?: Prng, onFail?: (op: string, ops?: BatchOp[]) => void) {
    this.#db = db;
    this.#rng = rng;
    this.#onFail = onFail;
  }
  kill(): void { this.#alive = false; }
  #gate<T>(op: () => Promise<T>): Promise<T> { return this.#alive ? op() : new Promise<T>(() => {}); }
  #write(name: string, op: () => Promise<void>, ops?: BatchOp[]): Promise<void> {
    if (!this.#alive) return new Promise<void>(() => {});
    const nth = this.writes++;
    if (nth === this.failNth || (this.failRate > 0 && this.#rng!.chance(this.failRate))) {
      this.failures++;
      this.#onFail?.(name, ops);
      return Promise.reject(new SimIOError(name));
    }
    return op();
  }
  get(k: Uint8Array) { return this.#gate(() => this.#db.get(k)); }
  getMany(k: Uint8Array[]) { return this.#gate(() => this.#db.getMany(k)); }
  put(k: Uint8Array, v: Uint8Array) { return this.#write('put', () => this.#db.put(k, v)); }
  del(k: Uint8Array) { return this.#write('del', () => this.#db.del(k)); }
  batch(ops: BatchOp[]) { return this.#write('batch', () => this.#db.batch(ops), ops); }
  iterator(o: Parameters<KV['iterator']>[0]) { return this.#db.iterator(o); }
  async close(): Promise<void> { /* the underlying store outlives incarnations */ }
}

/** One simulated validator across its incarnations. */
export interface SimNodeState {
  index: number;
  addr: string;
  key: KeyPair;
  nodeKey: KeyPair;
  db: KV;
  node: MeshNode | undefined;
  clock: NodeClock | undefined;
  store: NodeStore | undefined;
  crashes: number;
  honest: boolean;
  /** First slot at which a down node may start again (late joiners: their join slot). */
  downUntil: number;
  /** Set when a write failed and the node is to crash (like a process exiting on an I/O error). */
  crashPending: boolean;
  /** Slot of this node's last failed write (-inf if none). */
  lastIoFailSlot: number;
  /** A write failed and the chain has not switched head since: its head may trail a stored better tip. */
  ioLag: boolean;
  /** A byzantine validator: the simulator's own wire-level node (byzantine.ts), not a MeshNode. */
  byz: ByzantineNode | undefined;
  /** Start-up attempts that failed (with an injected I/O error) since the last successful start. */
  failedStarts: number;
  /** Failed batches that carried equivocation evidence (keyspace 'q'): for the diagnosis of a missing one. */
  evidenceWriteFailures: number;
}

/** Up (running) now: an honest node's MeshNode exists, or a byzantine node is on the network. */
export function isUp(n: SimNodeState): boolean { return n.node !== undefined || (n.byz?.running ?? false); }
