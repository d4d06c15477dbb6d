/**
 * Short forms of the long-running scripts, so CI proves they still work (figures are not asserted:
 * benchmarks assert nothing about time; the fault suite asserts its invariants itself).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
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
});
