/**
 * Signature verification off the main thread: a small pool of worker threads running the same `verify`
 * (consensus rule = noble ZIP-215; OpenSSL is only an accept-only pre-screen, see ed25519.ts). The verdicts
 * are exactly InlineVerifier's; only where the work runs changes.
 *
 * A batch is packed into one transferable buffer per worker (no structured clone of many small arrays).
 * Small batches go whole to the least busy worker; large ones are split across all workers. If a worker
 * dies, its outstanding jobs are verified on the calling thread and the worker is replaced (at most a few
 * times; after that the pool keeps verifying inline), so a crash there never turns into a wrong verdict or
 * a lost request.
 */
import { Worker } from 'node:worker_threads';
import { verify, type SignatureVerifier, type VerifyItem } from './ed25519.js';

/** Below this many items per worker, splitting a batch costs more in messaging than it saves. */
const MIN_SPLIT = 32;
const MAX_RESPAWNS = 5;

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

interface Job {
  items: readonly VerifyItem[];
  resolve: (v: boolean[]) => void;
}

interface Slot {
  worker: Worker;
  jobs: Map<number, Job>;
  /** Items outstanding on this worker. */
  load: number;
}

export class WorkerVerifier implements SignatureVerifier {
  readonly threads: number;
  readonly #slots: Slot[] = [];
  #nextId = 1;
  #closed = false;
  #respawns = 0;
  /** Items handed to workers and not yet answered (the "verify queue depth" operators watch). */
  #pending = 0;

  readonly #onWorkerLost: (why: string) => void;

  constructor(threads: number, opts: { onWorkerLost?: (why: string) => void } = {}) {
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`WorkerVerifier needs ≥ 1 thread, got ${threads}`);
    this.threads = threads;
    this.#onWorkerLost = opts.onWorkerLost ?? (() => {});
    for (let i = 0; i < threads; i++) this.#slots.push(this.#spawn());
  }

  get pending(): number { return this.#pending; }

  #spawn(): Slot {
    const worker = new Worker(new URL('./verify-worker.js', import.meta.url));
    worker.unref(); // never keeps a process alive on its own
    const slot: Slot = { worker, jobs: new Map(), load: 0 };
    worker.on('message', (m: { id: number; verdicts: Uint8Array }) => {
      const job = slot.jobs.get(m.id);
      if (!job) return;
      slot.jobs.delete(m.id);
      slot.load -= job.items.length;
      this.#pending -= job.items.length;
      job.resolve(Array.from(m.verdicts, (v) => v === 1));
    });
    const lost = (why: string) => {
      const i = this.#slots.indexOf(slot);
      if (i < 0) return; // already replaced
      this.#slots.splice(i, 1);
      // Its outstanding jobs are answered here, on this thread: same rule, same verdicts.
      for (const job of slot.jobs.values()) {
        this.#pending -= job.items.length;
        job.resolve(job.items.map((it) => verify(it.signature, it.message, it.publicKey)));
      }
      slot.jobs.clear();
      if (!this.#closed && this.#respawns < MAX_RESPAWNS) {
        this.#respawns++;
        try { this.#slots.push(this.#spawn()); } catch { /* keep verifying inline */ }
      }
      this.#onWorkerLost(why);
    };
    worker.on('error', (e) => lost(e.message));
    worker.on('exit', (code) => lost(`exit ${code}`));
    return slot;
  }

  async verifyBatch(items: VerifyItem[]): Promise<boolean[]> {
    if (this.#closed) throw new Error('WorkerVerifier is closed');
    if (items.length === 0) return [];
    if (this.#slots.length === 0) return items.map((it) => verify(it.signature, it.message, it.publicKey));
    const parts = Math.min(this.#slots.length, Math.max(1, Math.floor(items.length / MIN_SPLIT)));
    if (parts === 1) {
      const slot = this.#slots.reduce((a, b) => (b.load < a.load ? b : a));
      return this.#send(slot, items);
    }
    const per = Math.ceil(items.length / parts);
    const slots = [...this.#slots].sort((a, b) => a.load - b.load).slice(0, parts);
    const results = await Promise.all(slots.map((s, k) => this.#send(s, items.slice(k * per, (k + 1) * per))));
    return results.flat();
  }

  #send(slot: Slot, items: readonly VerifyItem[]): Promise<boolean[]> {
    if (items.length === 0) return Promise.resolve([]);
    return new Promise<boolean[]>((resolve) => {
      const id = this.#nextId++;
      slot.jobs.set(id, { items, resolve });
      slot.load += items.length;
      this.#pending += items.length;
      const buf = packItems(items);
      slot.worker.postMessage({ id, buf }, [buf]);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const slots = this.#slots.splice(0);
    // Outstanding work is still answered (inline) so no caller hangs on a closing node.
    for (const s of slots) {
      for (const job of s.jobs.values()) job.resolve(job.items.map((it) => verify(it.signature, it.message, it.publicKey)));
      s.jobs.clear();
    }
    this.#pending = 0;
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
