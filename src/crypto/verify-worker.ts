/**
 * Worker thread body for WorkerVerifier (verifypool.ts). Two kinds of job, both pure functions that the main
 * thread would otherwise run itself:
 *   'verify'  the same `verify` as the main thread (the consensus rule with its OpenSSL pre-screen), on
 *             items packed by `packItems`; answers one byte per item (1 = valid);
 *   'leaves'  SHAKE256 → 2048-byte expansions of inputs packed by `packChunks` (state-lattice leaves);
 *             answers the outputs back to back.
 */
import fs from 'node:fs';
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { verify } from './ed25519.js';
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

port.on('message', (job: { id: number; kind: 'verify' | 'leaves'; buf: ArrayBuffer }) => {
  if (job.kind === 'leaves') {
    const inputs = unpackChunks(job.buf);
    const out = new Uint8Array(inputs.length * LEAF_OUTPUT_BYTES);
    inputs.forEach((inp, i) => out.set(shake256(inp, LEAF_OUTPUT_BYTES), i * LEAF_OUTPUT_BYTES));
    port.postMessage({ id: job.id, result: out }, [out.buffer]);
    return;
  }
  const out = new Uint8Array(unpackCount(job.buf));
  let i = 0;
  for (const it of unpackItems(job.buf)) out[i++] = verify(it.signature, it.message, it.publicKey) ? 1 : 0;
  port.postMessage({ id: job.id, result: out }, [out.buffer]);
});

function unpackCount(buf: ArrayBuffer): number {
  return new DataView(buf).getUint32(0);
}
