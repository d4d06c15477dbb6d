/**
 * Signature verification (and state-lattice leaf expansion) off the main thread: a small pool of worker
 * threads running the same `verify`
 * (consensus rule = noble ZIP-215; OpenSSL is only an accept-only pre-screen, see ed25519.ts). The verdicts
 * are exactly InlineVerifier's; only where the work runs changes.
 *
 * A batch is packed into one transferable buffer per worker (no structured clone of many small arrays).
 * Small batches go whole to the least busy worker; large ones are split across all workers. If a worker
 * dies, its outstanding jobs are verified on the calling thread and the worker is replaced (at most a few
 * times; after that the pool keeps verifying inline), so a crash there never turns into a wrong verdict or
 * a lost request. The same holds for leaf expansions (`expandLeaves`, the chain's LeafHasher).
 */
import { Worker } from 'node:worker_threads';
import { verify, verifyFast, type SignatureVerifier, type VerifyItem, type VerifyOptions } from './ed25519.js';
import { shake256 } from './hash.js';

/** Output size of one leaf expansion (state lattice: 1024 lanes of 16 bits). */
export const LEAF_OUTPUT_BYTES = 2048;

/** Young-generation size of each worker's V8 heap (see #spawn). */
const WORKER_YOUNG_GEN_MB = 4;

/** Layout: u32 count, then per chunk u32 length and the bytes. */
export function packChunks(chunks: readonly Uint8Array[]): ArrayBuffer {
  let size = 4;
  for (const c of chunks) size += 4 + c.length;
  const buf = new ArrayBuffer(size);
  const dv = new DataView(buf);
  const u8 = new Uint8Array(buf);
  dv.setUint32(0, chunks.length);
  let o = 4;
  for (const c of chunks) { dv.setUint32(o, c.length); u8.set(c, o + 4); o += 4 + c.length; }
  return buf;
}

export function unpackChunks(buf: ArrayBuffer): Uint8Array[] {
  const dv = new DataView(buf);
  const out: Uint8Array[] = [];
  let o = 4;
  for (let i = dv.getUint32(0); i > 0; i--) { const n = dv.getUint32(o); out.push(new Uint8Array(buf, o + 4, n)); o += 4 + n; }
  return out;
}

const expandInline = (inputs: readonly Uint8Array[]): Uint8Array[] => inputs.map((x) => shake256(x, LEAF_OUTPUT_BYTES));

/** Below this many items per worker, splitting a batch costs more in messaging than it saves. */
const MIN_SPLIT = 32;
/**
 * Signature checks go to the workers in parts of at most this many, at most VERIFY_PARTS_IN_FLIGHT per
 * worker; the rest wait here, in order. So a leaf expansion (a block being built or validated, which
 * everything else waits for) queues behind at most that much signature work instead of behind a whole
 * backlog of mempool admission: under load, a validator's leaves waited 100-900 ms there (measured on the
 * devnet), and its blocks left late enough to fork. A part of 128 is ~10 ms of work; its round trip ~0.1 ms.
 */
const VERIFY_PART = 128;
const VERIFY_PARTS_IN_FLIGHT = 2;
const MAX_RESPAWNS = 5;
/** Default worker niceness relative to the main thread (see the WorkerVerifier constructor). */
export const DEFAULT_WORKER_NICE = 0;

/** Layout: u32 count, then per item u32 sigLen, u32 pubLen, u32 msgLen, sig, pub, msg. */
export function packItems(items: readonly VerifyItem[]): ArrayBuffer {
  let size = 4;
  for (const it of items) size += 12 + it.signature.length + it.publicKey.length + it.message.length;
  const buf = new ArrayBuffer(size);
  const dv = new DataView(buf);
  const u8 = new Uint8Array(buf);
  dv.setUint32(0, items.length);
  let o = 4;
  for (const it of items) {
    dv.setUint32(o, it.signature.length); dv.setUint32(o + 4, it.publicKey.length); dv.setUint32(o + 8, it.message.length);
    o += 12;
    u8.set(it.signature, o); o += it.signature.length;
    u8.set(it.publicKey, o); o += it.publicKey.length;
    u8.set(it.message, o); o += it.message.length;
  }
  return buf;
}

export function* unpackItems(buf: ArrayBuffer): Generator<VerifyItem> {
  const dv = new DataView(buf);
  const n = dv.getUint32(0);
  let o = 4;
  for (let i = 0; i < n; i++) {
    const sl = dv.getUint32(o), pl = dv.getUint32(o + 4), ml = dv.getUint32(o + 8);
    o += 12;
    const signature = new Uint8Array(buf, o, sl); o += sl;
    const publicKey = new Uint8Array(buf, o, pl); o += pl;
    const message = new Uint8Array(buf, o, ml); o += ml;
    yield { signature, publicKey, message };
  }
}

/** A job and how to answer it on this thread if its worker is lost. */
interface Job {
  size: number;
  resolve: (result: Uint8Array | undefined) => void;
}

interface Slot {
  worker: Worker;
  jobs: Map<number, Job>;
  /** Items outstanding on this worker. */
  load: number;
  /** Signature-check parts outstanding on this worker. */
  verifyParts: number;
}

/** Signature checks waiting for a worker (see VERIFY_PART). */
interface QueuedPart {
  items: VerifyItem[];
  strict: boolean;
  resolve: (verdicts: boolean[]) => void;
}

const verifyInline = (xs: readonly VerifyItem[], strict = false): boolean[] => {
  const check = strict ? verifyFast : verify;
  return xs.map((it) => check(it.signature, it.message, it.publicKey));
};

export class WorkerVerifier implements SignatureVerifier {
  readonly threads: number;
  readonly #slots: Slot[] = [];
  #nextId = 1;
  #closed = false;
  #respawns = 0;
  /** Items handed to workers and not yet answered. */
  #pending = 0;
  readonly #verifyQueue: QueuedPart[] = [];
  /** Urgent signature checks (blocks, headers): handed out before anything in #verifyQueue. */
  readonly #urgentQueue: QueuedPart[] = [];
  /** Items in both queues. */
  #queued = 0;

  readonly #onWorkerLost: (why: string) => void;
  readonly #nice: number;

  /**
   * `nice`: how much lower than the main thread the workers run (Linux thread niceness, added to the
   * process's), for an operator whose node shares its cores: the main thread connects and produces blocks,
   * which everything else waits for. Default 0 (same priority): on the 4-validator devnet sharing 2 cores,
   * 5 made no difference that stood out of the run-to-run noise (1,500 tx/s offered from cold, two runs
   * each: 827 and 241 confirmed at 0, 299 and 1,054 at 5).
   */
  constructor(threads: number, opts: { onWorkerLost?: (why: string) => void; nice?: number } = {}) {
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`WorkerVerifier needs ≥ 1 thread, got ${threads}`);
    const nice = opts.nice ?? DEFAULT_WORKER_NICE;
    if (!Number.isInteger(nice) || nice < 0 || nice > 19) throw new RangeError(`WorkerVerifier nice must be an integer 0..19, got ${nice}`);
    this.threads = threads;
    this.#nice = nice;
    this.#onWorkerLost = opts.onWorkerLost ?? (() => {});
    for (let i = 0; i < threads; i++) this.#slots.push(this.#spawn());
  }

  /** Items handed to workers or waiting for one, not yet answered (the "verify queue depth" operators watch). */
  get pending(): number { return this.#pending + this.#queued; }

  #spawn(): Slot {
    // A small young generation: a worker's garbage is short-lived job buffers, and V8's default sizing held
    // ~8 MiB of RSS more per worker under load, with no difference in verify throughput (measured 0.98 of raw).
    const worker = new Worker(new URL('./verify-worker.js', import.meta.url), { workerData: { nice: this.#nice }, resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GEN_MB } });
    worker.unref(); // never keeps a process alive on its own
    const slot: Slot = { worker, jobs: new Map(), load: 0, verifyParts: 0 };
    worker.on('message', (m: { id: number; result: Uint8Array }) => {
      const job = slot.jobs.get(m.id);
      if (!job) return;
      this.#settle(slot, m.id, job, m.result);
    });
    const lost = (why: string) => {
      const i = this.#slots.indexOf(slot);
      if (i < 0) return; // already replaced
      this.#slots.splice(i, 1);
      // Its outstanding jobs are answered on this thread (undefined result: the caller computes inline).
      for (const [id, job] of [...slot.jobs]) this.#settle(slot, id, job, undefined);
      if (!this.#closed && this.#respawns < MAX_RESPAWNS) {
        this.#respawns++;
        try { this.#slots.push(this.#spawn()); } catch { /* keep computing inline */ }
      }
      this.#pump();
      this.#onWorkerLost(why);
    };
    worker.on('error', (e) => lost(e.message));
    worker.on('exit', (code) => lost(`exit ${code}`));
    return slot;
  }

  #settle(slot: Slot, id: number, job: Job, result: Uint8Array | undefined): void {
    slot.jobs.delete(id);
    slot.load -= job.size;
    this.#pending -= job.size;
    job.resolve(result);
  }

  /** Send one packed job; resolves with the worker's answer, or undefined if it must be done inline. */
  #send(slot: Slot, kind: 'verify' | 'strict' | 'leaves', size: number, buf: ArrayBuffer): Promise<Uint8Array | undefined> {
    return new Promise((resolve) => {
      const id = this.#nextId++;
      slot.jobs.set(id, { size, resolve });
      slot.load += size;
      this.#pending += size;
      slot.worker.postMessage({ id, kind, buf }, [buf]);
    });
  }

  /** Split `n` items into parts for the least busy workers: [slot, start, end][]. */
  #plan(n: number): [Slot, number, number][] {
    const parts = Math.min(this.#slots.length, Math.max(1, Math.floor(n / MIN_SPLIT)));
    const slots = [...this.#slots].sort((a, b) => a.load - b.load).slice(0, parts);
    const per = Math.ceil(n / parts);
    return slots.map((s, k) => [s, k * per, Math.min(n, (k + 1) * per)]);
  }

  async verifyBatch(items: VerifyItem[], opts?: VerifyOptions): Promise<boolean[]> {
    if (this.#closed) throw new Error('WorkerVerifier is closed');
    if (items.length === 0) return [];
    const strict = opts?.strict === true;
    if (this.#slots.length === 0) return verifyInline(items, strict);
    const queue = opts?.urgent ? this.#urgentQueue : this.#verifyQueue;
    const parts: Promise<boolean[]>[] = [];
    for (let a = 0; a < items.length; a += VERIFY_PART) {
      const chunk = items.slice(a, a + VERIFY_PART);
      this.#queued += chunk.length;
      parts.push(new Promise((resolve) => queue.push({ items: chunk, strict, resolve })));
    }
    this.#pump();
    return (await Promise.all(parts)).flat();
  }

  /** Hand queued signature checks to the least busy workers with room (see VERIFY_PART). */
  #pump(): void {
    while (this.#urgentQueue.length + this.#verifyQueue.length > 0) {
      if (this.#slots.length === 0) {
        // No worker left (all lost, none respawned; or closed): answer here, as for a lost job.
        for (const part of [...this.#urgentQueue.splice(0), ...this.#verifyQueue.splice(0)]) { this.#queued -= part.items.length; part.resolve(verifyInline(part.items, part.strict)); }
        return;
      }
      let slot: Slot | undefined;
      for (const s of this.#slots) if (s.verifyParts < VERIFY_PARTS_IN_FLIGHT && (!slot || s.load < slot.load)) slot = s;
      if (!slot) return;
      const part = (this.#urgentQueue.length > 0 ? this.#urgentQueue : this.#verifyQueue).shift()!;
      this.#queued -= part.items.length;
      const target = slot;
      target.verifyParts++;
      void this.#send(target, part.strict ? 'strict' : 'verify', part.items.length, packItems(part.items)).then((r) => {
        target.verifyParts--;
        part.resolve(r ? Array.from(r, (v) => v === 1) : verifyInline(part.items, part.strict));
        this.#pump();
      });
    }
  }

  /** SHAKE256 → 2048 bytes of each input (state-lattice leaves; see ledger/statehash.ts LeafHasher). */
  async expandLeaves(inputs: Uint8Array[]): Promise<Uint8Array[]> {
    if (this.#closed) throw new Error('WorkerVerifier is closed');
    if (inputs.length === 0) return [];
    if (this.#slots.length === 0) return expandInline(inputs);
    const parts = await Promise.all(this.#plan(inputs.length).map(async ([slot, a, b]) => {
      const chunk = inputs.slice(a, b);
      const r = await this.#send(slot, 'leaves', chunk.length, packChunks(chunk));
      if (!r) return expandInline(chunk);
      return chunk.map((_, i) => r.subarray(i * LEAF_OUTPUT_BYTES, (i + 1) * LEAF_OUTPUT_BYTES));
    }));
    return parts.flat();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const slots = this.#slots.splice(0);
    // Outstanding work is still answered (inline) so no caller hangs on a closing node.
    for (const s of slots) for (const [id, job] of [...s.jobs]) this.#settle(s, id, job, undefined);
    this.#pump(); // no slot left: the queued checks are answered inline
    this.#pending = 0;
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
