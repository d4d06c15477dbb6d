/**
 * Short forms of the long-running scripts, so CI proves they still work (figures are not asserted:
 * benchmarks assert nothing about time; the fault suite asserts its invariants itself, and this test that
 * they were exercised: transactions submitted and confirmed, supply checked, faults injected and recovered).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { packageRoot } from '../../src/util/schemas.js';

const dist = join(packageRoot(), 'dist', 'scripts');

test('benchmarks: a smoke-size run of every benchmark completes', { timeout: 600_000 }, (t) => {
  const r = spawnSync(process.execPath, [join(dist, 'bench', 'all.js'), '--smoke'], { encoding: 'utf8', timeout: 590_000 });
  t.diagnostic((r.stdout ?? '').trim().split('\n').slice(-12).join('\n'));
  assert.equal(r.status, 0, `bench smoke failed:\n${r.stdout}\n${r.stderr}`);
  assert.doesNotMatch(r.stdout, /FAILED/);
});

test('fault suite: the short form (2 rounds) loses no transaction and keeps every invariant', { timeout: 300_000 }, (t) => {
  const out = join(mkdtempSync(join(tmpdir(), 'meshledger-fault-suite-')), 'fault-suite.json');
  const r = spawnSync(process.execPath, [join(dist, 'fault-suite.js'), '--rounds', '2'], { encoding: 'utf8', timeout: 290_000, env: { ...process.env, FAULT_SUITE_OUT: out } });
  t.diagnostic((r.stdout ?? '').trim().split('\n').slice(-24).join('\n'));
  assert.equal(r.status, 0, `fault suite failed:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /transactions lost\s+\|\s+0\b/);
  assert.match(r.stdout, /invariant failures\s+\|\s+0\b/);
  // "Lost 0" and "0 failures" hold vacuously when nothing was sent or checked: transactions were submitted
  // and every one confirmed on every node, supply was checked, and every injected fault recovered.
  const row = (name: string): string => {
    const m = r.stdout.match(new RegExp(`^ ${name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\s+\\| (.*)$`, 'm'));
    assert.ok(m, `no "${name}" row in:\n${r.stdout}`);
    return m[1]!.trim();
  };
  const submitted = Number(row('transactions submitted'));
  assert.ok(submitted > 0, `no transaction submitted:\n${r.stdout}`);
  assert.equal(Number(row('transactions confirmed')), submitted);
  const supply = row('supply checks passed').match(/^(\d+) \/ (\d+)$/);
  assert.ok(supply && Number(supply[2]) > 0 && supply[1] === supply[2], `supply checks: ${row('supply checks passed')}`);
  let injected = 0;
  for (const kind of ['SIGKILL', 'SIGSTOP/SIGCONT', 'SIGTERM restart', 'partition']) {
    const f = row(`fault: ${kind}`).match(/^(\d+) injected, (\d+) recovered/);
    assert.ok(f && f[1] === f[2], `fault ${kind}: ${row(`fault: ${kind}`)}`);
    injected += Number(f[1]);
  }
  assert.ok(injected >= 2, `only ${injected} faults injected`);
  // The figures file says the same.
  const figures = JSON.parse(readFileSync(out, 'utf8'));
  assert.deepEqual(figures.transactions, { submitted, confirmed: submitted, lost: 0, sendErrors: figures.transactions.sendErrors });
  assert.deepEqual(figures.failures, []);
});
