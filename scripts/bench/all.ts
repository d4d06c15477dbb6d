/**
 * Runs every benchmark, each in its own process (no shared JIT/heap state), in order, then prints the
 * figures table (figure, limit measured in the same run, ratio, target) and writes results/summary.json.
 *   npm run bench          full sizes (several minutes)
 *   npm run bench:smoke    tiny sizes, < 60 s; fails only if a benchmark crashes (asserts nothing about times)
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RESULTS_DIR, SMOKE, machine, type SummaryRow } from './common.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BENCHES = ['verify', 'session', 'block', 'ingest', 'memory', 'sync', 'devnet', 'gossip'];

const t0 = Date.now();
const failed: string[] = [];
const rows: (SummaryRow & { bench: string })[] = [];
for (const name of BENCHES) {
  console.log(`\n=== ${name}${SMOKE ? ' (smoke)' : ''} ===`);
  const s = Date.now();
  const r = spawnSync(process.execPath, [path.join(HERE, `${name}.js`), ...(SMOKE ? ['--smoke'] : [])], { stdio: 'inherit', timeout: SMOKE ? 180_000 : 900_000 });
  if (r.status !== 0) {
    failed.push(name);
    console.log(`!!! ${name} failed (status ${r.status}, signal ${r.signal}${r.error ? `, ${r.error.message}` : ''})`);
    continue;
  }
  console.log(`(${name}: ${((Date.now() - s) / 1000).toFixed(1)} s)`);
  const file = path.join(SMOKE ? path.join(RESULTS_DIR, 'smoke') : RESULTS_DIR, `${name}.json`);
  const j = JSON.parse(fs.readFileSync(file, 'utf8')) as { summary?: SummaryRow[] };
  for (const x of j.summary ?? []) rows.push({ bench: name, ...x });
}

console.log(`\n=== figures${SMOKE ? ' (smoke sizes: not meaningful)' : ''} ===`);
console.log('| figure | value | limit (same run) | ratio | target |');
console.log('|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.figure} | ${r.value} ${r.unit} | ${r.limit ? `${r.limit.name}: ${r.limit.value} ${r.limit.unit}` : '—'} | ${r.ratio ?? '—'} | ${r.target} |`);
}
const m = machine();
console.log(`\n${m.cores} cores (${m.cpu}), node ${m.node}, ${m.date}, total ${((Date.now() - t0) / 1000).toFixed(0)} s`);
fs.mkdirSync(SMOKE ? path.join(RESULTS_DIR, 'smoke') : RESULTS_DIR, { recursive: true });
fs.writeFileSync(path.join(SMOKE ? path.join(RESULTS_DIR, 'smoke') : RESULTS_DIR, 'summary.json'), JSON.stringify({ smoke: SMOKE, ...m, failed, rows }, null, 2) + '\n');
if (failed.length) {
  console.log(`FAILED: ${failed.join(', ')}`);
  process.exit(1);
}
