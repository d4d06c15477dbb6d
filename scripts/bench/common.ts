/**
 * Shared helpers for the benchmarks: `--smoke` flag, machine description, result files, the summary
 * rows every benchmark reports (figure, the limit it is measured against in the same run, their ratio,
 * the target if there is one), and the raw node:crypto verify rate (1 thread and N worker threads), which
 * is the limit of both the verify and the ingest benchmarks.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { getPublicKey, sign } from '../../src/crypto/ed25519.js';

export const SMOKE = process.argv.includes('--smoke');
/** dist/scripts/bench → repository root. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const RESULTS_DIR = path.join(REPO_ROOT, 'scripts', 'bench', 'results');

export function machine(): Record<string, unknown> {
  return {
    date: new Date().toISOString(),
    node: process.version,
    openssl: process.versions.openssl,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    loadavg1m: Number(os.loadavg()[0]!.toFixed(2)),
  };
}

/** One line of the figures table. `ratio` = value / limit.value (for memory: value / target). */
export interface SummaryRow {
  figure: string;
  value: number;
  unit: string;
  limit: { name: string; value: number; unit: string } | null;
  ratio: number | null;
  target: string;
}

export function row(figure: string, value: number, unit: string, limit: SummaryRow['limit'], target = '—'): SummaryRow {
  return { figure, value: round(value), unit, limit: limit ? { ...limit, value: round(limit.value) } : null, ratio: limit && limit.value ? Number((value / limit.value).toFixed(4)) : null, target };
}

export function round(x: number): number {
  return Math.abs(x) >= 100 ? Math.round(x) : Number(x.toFixed(2));
}

export function printRows(rows: SummaryRow[]): void {
  for (const r of rows) {
    const lim = r.limit ? `${r.limit.name} = ${r.limit.value} ${r.limit.unit}` : '—';
    console.log(`  ${r.figure}: ${r.value} ${r.unit} | limit: ${lim} | ratio ${r.ratio ?? '—'} | target ${r.target}`);
  }
}

/** Writes results/<name>.json (smoke runs go to results/smoke/ so they never replace real figures). */
export function writeResult(name: string, body: Record<string, unknown>): string {
  const dir = SMOKE ? path.join(RESULTS_DIR, 'smoke') : RESULTS_DIR;
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify({ bench: name, smoke: SMOKE, ...machine(), ...body }, null, 2) + '\n');
  console.log(`wrote ${path.relative(REPO_ROOT, file)}`);
  return file;
}

export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- raw node:crypto verify: the limit for verify and ingest ------------------------------------------

export interface RawItem { sig: Uint8Array; msg: Uint8Array; pub: Uint8Array }

/** Single thread, KeyObjects built beforehand (cached), `crypto.verify` only. */
export function rawVerifyRate(items: RawItem[], ms: number): number {
  const keys = items.map((it) => crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(it.pub).toString('base64url') }, format: 'jwk' }));
  const run = (dur: number) => {
    let n = 0;
    let i = 0;
    const t0 = nowMs();
    let t = t0;
    while (t - t0 < dur) {
      for (let k = 0; k < 16; k++) {
        if (!crypto.verify(null, items[i]!.msg, keys[i]!, items[i]!.sig)) throw new Error('raw verify failed');
        i = (i + 1) % items.length;
        n++;
      }
      t = nowMs();
    }
    return n / ((t - t0) / 1000);
  };
  run(Math.min(200, ms / 5));
  return run(ms);
}

const WORKER_SRC = `
const { parentPort, workerData } = require('node:worker_threads');
const crypto = require('node:crypto');
const { items, ms } = workerData;
const keys = items.map((it) => crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(it.pub).toString('base64url') }, format: 'jwk' }));
const run = (dur) => { let n = 0, i = 0; const t0 = performance.now(); let t = t0;
  while (t - t0 < dur) { for (let k = 0; k < 16; k++) { if (!crypto.verify(null, items[i].msg, keys[i], items[i].sig)) throw new Error('raw verify failed'); i = (i + 1) % items.length; n++; } t = performance.now(); }
  return { n, ms: t - t0 }; };
run(Math.min(200, ms / 5));
parentPort.once('message', () => parentPort.postMessage(run(ms)));
parentPort.postMessage('ready');
`;

/** `threads` worker threads verifying at once (raw node:crypto, as above); returns the summed rate. */
export async function rawVerifyRateWorkers(items: RawItem[], threads: number, ms: number): Promise<number> {
  const workers = Array.from({ length: threads }, () => new Worker(WORKER_SRC, { eval: true, workerData: { items, ms } }));
  // Every wait is bounded and a worker that exits early is an error: a full `npm run bench` once sat for
  // its 15-minute limit in this function's phase at 0 % CPU, and a hang must say where it is.
  const bounded = <T>(p: Promise<T>, what: string): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, rej) => { timer = setTimeout(() => rej(new Error(`raw verify workers: no ${what} after ${60_000 + 5 * ms} ms`)), 60_000 + 5 * ms); });
    return Promise.race([p, limit]).finally(() => clearTimeout(timer));
  };
  const next = (w: Worker) => new Promise<unknown>((res, rej) => {
    const onExit = (code: number) => rej(new Error(`raw verify worker exited (code ${code}) before answering`));
    w.once('message', (m) => { w.off('exit', onExit); res(m); });
    w.once('error', rej);
    w.once('exit', onExit);
  });
  try {
    await bounded(Promise.all(workers.map(next)), 'ready message');
    const done = workers.map((w) => next(w) as Promise<{ n: number; ms: number }>);
    for (const w of workers) w.postMessage('go');
    const r = await bounded(Promise.all(done), 'result');
    return r.reduce((s, x) => s + x.n / (x.ms / 1000), 0);
  } finally {
    // A worker exits by itself once it has answered; terminating it at that moment must not hold the run.
    await Promise.race([Promise.all(workers.map((w) => w.terminate().catch(() => {}))), new Promise((r) => setTimeout(r, 5_000).unref())]);
  }
}

/**
 * Pairs of ed25519 signatures over 200-byte messages (keys from random seeds, node:crypto signing through
 * ed25519.ts). Not crypto.generateKeyPairSync + export({ format: 'jwk' }): on Node 20 that pair can deadlock
 * the main thread (a GC inside the JWK export runs a finished key-generation job's destructor, which waits
 * for the lock the export holds); gdb showed it as the cause of full bench runs hanging at 0 % CPU here.
 */
export function makeRawItems(n: number): RawItem[] {
  const out: RawItem[] = [];
  for (let i = 0; i < n; i++) {
    const sk = new Uint8Array(crypto.randomBytes(32));
    const msg = new Uint8Array(200).fill(i & 0xff);
    msg[0] = i >> 8;
    out.push({ sig: sign(msg, sk), msg, pub: getPublicKey(sk) });
  }
  return out;
}
