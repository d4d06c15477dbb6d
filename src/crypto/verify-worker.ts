/**
 * Worker thread body for WorkerVerifier (verifypool.ts). It runs the same `verify` as the main thread
 * (the consensus rule with its OpenSSL pre-screen), on jobs packed by `packItems`, and answers one byte per
 * item (1 = valid).
 */
import { parentPort } from 'node:worker_threads';
import { verify } from './ed25519.js';
import { unpackItems } from './verifypool.js';

if (!parentPort) throw new Error('verify-worker must run as a worker thread');
const port = parentPort;

port.on('message', (job: { id: number; buf: ArrayBuffer }) => {
  const out = new Uint8Array(unpackCount(job.buf));
  let i = 0;
  for (const it of unpackItems(job.buf)) out[i++] = verify(it.signature, it.message, it.publicKey) ? 1 : 0;
  port.postMessage({ id: job.id, verdicts: out }, [out.buffer]);
});

function unpackCount(buf: ArrayBuffer): number {
  return new DataView(buf).getUint32(0);
}
