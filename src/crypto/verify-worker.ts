/**
 * Worker thread body for WorkerVerifier (verifypool.ts). Two kinds of job, both pure functions that the main
 * thread would otherwise run itself:
 *   'verify'  the same `verify` as the main thread (the consensus rule with its OpenSSL pre-screen), on
 *             items packed by `packItems`; answers one byte per item (1 = valid);
 *   'strict'  the same with `verifyFast` (the relay standard, VerifyOptions.strict);
 *   'leaves'  SHAKE256 → 2048-byte expansions of inputs packed by `packChunks` (state-lattice leaves);
 *             answers the outputs back to back.
 */
import fs from 'node:fs';
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { verify, verifyFast, type VerifyItem } from './ed25519.js';
import { shake256 } from './hash.js';
import { LEAF_OUTPUT_BYTES, unpackChunks, unpackItems } from './verifypool.js';

if (!parentPort) throw new Error('verify-worker must run as a worker thread');
const port = parentPort;

// Lower this thread's scheduling priority (see WorkerVerifier's `nice`). Linux schedules threads, and
// /proc/thread-self names this one; elsewhere (or if refused) the thread keeps its priority.
// The thread's name ('top -H', /proc/<pid>/task/*/comm) says what it is; best effort, as the priority.
try { fs.writeFileSync('/proc/thread-self/comm', 'ml-verify'); } catch { /* not Linux */ }
const nice = (workerData as { nice?: number } | undefined)?.nice ?? 0;
if (nice > 0) {
  try {
    const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) os.setPriority(tid, Math.min(19, nice + os.getPriority(tid)));
  } catch { /* not Linux, or not permitted: same priority as the main thread */ }
}

/**
 * Leaf expansions go ahead of signature checks. A block being applied waits for its leaves, while signature
 * checks are mostly read-ahead or mempool admission that nothing waits for this very moment. So a 'leaves'
 * job runs as soon as its message arrives, and 'verify' jobs run in slices of VERIFY_SLICE items, with the
 * event loop turning between slices (setImmediate: the poll phase in between delivers waiting messages).
 * Without this, a block's leaves queued behind up to two whole verify parts here (≈ 20-30 ms on a loaded
 * machine, per block).
 */
const VERIFY_SLICE = 16;

interface VerifyJob { id: number; items: Generator<VerifyItem>; out: Uint8Array; done: number; check: typeof verify }
const verifyJobs: VerifyJob[] = [];
let sliceScheduled = false;

port.on('message', (job: { id: number; kind: 'verify' | 'strict' | 'leaves'; buf: ArrayBuffer }) => {
  if (job.kind === 'leaves') {
    const inputs = unpackChunks(job.buf);
    const out = new Uint8Array(inputs.length * LEAF_OUTPUT_BYTES);
    inputs.forEach((inp, i) => out.set(shake256(inp, LEAF_OUTPUT_BYTES), i * LEAF_OUTPUT_BYTES));
    port.postMessage({ id: job.id, result: out }, [out.buffer]);
    return;
  }
  verifyJobs.push({ id: job.id, items: unpackItems(job.buf), out: new Uint8Array(unpackCount(job.buf)), done: 0, check: job.kind === 'strict' ? verifyFast : verify });
  scheduleSlice();
});

function scheduleSlice(): void {
  if (sliceScheduled || verifyJobs.length === 0) return;
  sliceScheduled = true;
  setImmediate(runSlice);
}

/** Verify up to VERIFY_SLICE items of the oldest jobs, answering each job as it completes. */
function runSlice(): void {
  sliceScheduled = false;
  let budget = VERIFY_SLICE;
  while (budget > 0 && verifyJobs.length > 0) {
    const job = verifyJobs[0]!;
    for (; budget > 0 && job.done < job.out.length; budget--) {
      const it = job.items.next().value as VerifyItem;
      job.out[job.done++] = job.check(it.signature, it.message, it.publicKey) ? 1 : 0;
    }
    if (job.done === job.out.length) {
      verifyJobs.shift();
      port.postMessage({ id: job.id, result: job.out }, [job.out.buffer as ArrayBuffer]);
    }
  }
  scheduleSlice();
}

function unpackCount(buf: ArrayBuffer): number {
  return new DataView(buf).getUint32(0);
}
