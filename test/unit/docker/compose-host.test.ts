/**
 * test/helpers/docker.ts hostNetworkCompose, offline: the e2e test's copy of docker-compose.yml keeps every
 * user setting but moves each node onto host networking and its own 127.0.0.1 ports, and nothing else.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { packageRoot } from '../../../src/util/schemas.js';
import { hostNetworkCompose, setFlags, type NodePorts } from '../../helpers/docker.js';

const user = readFileSync(join(packageRoot(), 'docker-compose.yml'), 'utf8');
const nodes = new Map<string, NodePorts>(['validator-0', 'validator-1', 'validator-2', 'validator-3', 'observer'].map((n, i) => [n, { p2p: 41000 + i, rpc: 42000 + i }]));

test('every node gets host networking, its own loopback ports and the bootnode; init gets no network', () => {
  const out = hostNetworkCompose(user, { image: 'meshledger:t', nodes, bootnode: 'validator-0', cpuShares: 256 }) as { services: Record<string, any>; volumes: Record<string, unknown> };
  const original = parse(user, { merge: true }) as { services: Record<string, any> };
  assert.deepEqual(Object.keys(out.services).sort(), Object.keys(original.services).sort());
  for (const [name, svc] of Object.entries(out.services)) {
    assert.equal(svc.image, 'meshledger:t');
    assert.equal(svc.build, undefined, 'the test builds the image itself');
    assert.equal(svc.ports, undefined, 'no published ports: they conflict with host networking');
    assert.equal(svc.cpu_shares, 256);
    const ports = nodes.get(name);
    if (!ports) {
      assert.equal(svc.network_mode, 'none', `${name} needs no network`);
      continue;
    }
    assert.equal(svc.network_mode, 'host');
    const cmd: string[] = svc.command;
    const at = (f: string) => cmd[cmd.indexOf(f) + 1];
    assert.equal(at('--p2p'), `127.0.0.1:${ports.p2p}`);
    assert.equal(at('--rpc'), `127.0.0.1:${ports.rpc}`);
    assert.equal(at('--advertise'), `ws://127.0.0.1:${ports.p2p}`);
    assert.equal(at('--bootnodes'), 'ws://127.0.0.1:41000');
    for (const f of ['--datadir', '--genesis', '--log-format']) assert.equal(at(f), original.services[name].command[original.services[name].command.indexOf(f) + 1], `${f} is the user's`);
    for (const k of ['healthcheck', 'volumes', 'depends_on', 'restart']) assert.deepEqual(svc[k], original.services[name][k], `${name}.${k} is the user's`);
  }
  assert.ok(out.volumes.shared !== undefined, 'named volumes are kept');
  assert.equal(Object.keys(out).some((k) => k.startsWith('x-')), false, 'extension fields are dropped after merging');
});

test('a command without the flag to replace, or an unknown bootnode, is an error rather than a silent miss', () => {
  assert.deepEqual(setFlags(['node', '--rpc', 'a:1'], { '--rpc': 'b:2' }), ['node', '--rpc', 'b:2']);
  assert.throws(() => setFlags(['node', '--rpc'], { '--rpc': 'b:2' }), /no --rpc/);
  assert.throws(() => setFlags(['node'], { '--p2p': 'b:2' }), /no --p2p/);
  assert.throws(() => hostNetworkCompose(user, { image: 'i', nodes, bootnode: 'validator-9' }), /bootnode validator-9/);
  assert.throws(() => hostNetworkCompose(user, { image: 'i', nodes: new Map([['nope', { p2p: 1, rpc: 2 }]]), bootnode: 'nope' }), /no service nope/);
});
