/** docker-compose.yml describes the devnet as containers; no engine runs here, so CI validates the file. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/schemas.js';

const root = packageRoot();
const have = spawnSync('docker-compose', ['version'], { encoding: 'utf8' }).status === 0;

test('docker-compose.yml is valid and describes 4 validators, 1 observer and the init job', { skip: have ? false : 'docker-compose is not installed (.ci/run installs Debian\'s docker-compose)' }, () => {
  const file = join(root, 'docker-compose.yml');
  execFileSync('docker-compose', ['-f', file, 'config', '-q'], { cwd: root });
  const cfg = execFileSync('docker-compose', ['-f', file, 'config'], { cwd: root, encoding: 'utf8' });
  const services = [...cfg.matchAll(/^ {2}([a-z0-9-]+):$/gm)].map((m) => m[1]);
  for (const s of ['init', 'validator-0', 'validator-1', 'validator-2', 'validator-3', 'observer']) assert.ok(services.includes(s), `service ${s} missing`);
  assert.equal((cfg.match(/--key/g) ?? []).length, 4, 'exactly the 4 validators carry --key');
  assert.match(cfg, /healthcheck:/);
  for (const v of ['data-validator-0', 'data-observer', 'shared']) assert.match(cfg, new RegExp(`^ {2}${v}:`, 'm'));
});
