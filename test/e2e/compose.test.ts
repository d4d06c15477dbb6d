/**
 * docker-compose.yml and the Dockerfile, for real.
 *
 * 1. Offline: `docker-compose config -q` accepts the file, and it describes the init job, 4 validators and an
 *    observer with volumes and JSON-RPC healthchecks.
 * 2. With an engine (skipped with the reason where none can run): build the base images (reused when their
 *    inputs are unchanged) and the image; check the image holds no tests, compiler, npm or dev dependencies
 *    and runs as a non-root user; run the compose services on host networking, each node on its own 127.0.0.1
 *    ports; check through JSON-RPC that all 5 nodes agree on a growing chain; `docker kill` a validator, check
 *    the others keep producing without it, start it again and check it catches up, agrees and produces again;
 *    check the Docker healthchecks report healthy. Containers, volumes and the images built here are removed
 *    afterwards, on failure too; the base images stay, as the cache the next run reuses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/schemas.js';
import { freePorts, isTransportError, rpc } from '../../harness/proc.js';
import { hostNetworkCompose, openEngine, run, tryRun, type NodePorts } from '../helpers/docker.js';

const root = packageRoot();
const composeFile = join(root, 'docker-compose.yml');
const haveCompose = spawnSync('docker-compose', ['version'], { encoding: 'utf8' }).status === 0;
const VALIDATORS = ['validator-0', 'validator-1', 'validator-2', 'validator-3'];
const NODES = [...VALIDATORS, 'observer'];
const VICTIM = 'validator-2';
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

test('docker-compose.yml is valid and describes 4 validators, 1 observer and the init job', { skip: haveCompose ? false : 'docker-compose is not installed (.ci/run installs Debian\'s docker-compose)' }, () => {
  execFileSync('docker-compose', ['-f', composeFile, 'config', '-q'], { cwd: root });
  const cfg = execFileSync('docker-compose', ['-f', composeFile, 'config'], { cwd: root, encoding: 'utf8' });
  const services = [...cfg.matchAll(/^ {2}([a-z0-9-]+):$/gm)].map((m) => m[1]);
  for (const s of ['init', ...NODES]) assert.ok(services.includes(s), `service ${s} missing`);
  assert.equal((cfg.match(/--key/g) ?? []).length, 4, 'exactly the 4 validators carry --key');
  assert.equal((cfg.match(/healthcheck\.js/g) ?? []).length, 5, 'every node has the JSON-RPC healthcheck');
  for (const v of ['data-validator-0', 'data-observer', 'shared']) assert.match(cfg, new RegExp(`^ {2}${v}:`, 'm'));
});

interface Head { height: number; hash: string }

async function head(port: number): Promise<Head> {
  const i = await rpc(port, 'getChainInfo', undefined, { timeoutMs: 5000 });
  return { height: i.height as number, hash: i.headHash as string };
}

async function hashAt(port: number, height: number): Promise<string> {
  return (await rpc(port, 'getBlockHeader', { height }, { timeoutMs: 5000 })).hash as string;
}

/** The common height of `ports` when every node has the same block there (and it is ≥ min), else undefined. */
async function agreed(ports: number[], min: number): Promise<number | undefined> {
  try {
    const heads = await Promise.all(ports.map(head));
    const h = Math.min(...heads.map((x) => x.height));
    if (h < min) return undefined;
    const hashes = new Set(await Promise.all(ports.map((p) => hashAt(p, h))));
    return hashes.size === 1 ? h : undefined;
  } catch {
    return undefined; // a node still starting: try again
  }
}

async function until<T>(what: string, timeoutMs: number, f: () => Promise<T | undefined>): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${secs(timeoutMs)} waiting for: ${what}`);
    await sleep(500);
  }
}

test('the image builds, and the compose network agrees on a growing chain and survives a killed validator', {
  skip: haveCompose ? false : 'docker-compose is not installed (.ci/run installs Debian\'s docker-compose)',
  timeout: 20 * 60_000,
}, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'ml-compose-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const opened = await openEngine(join(work, 'dockerd.log'));
  if ('reason' in opened) {
    t.skip(opened.reason);
    return;
  }
  t.after(() => opened.engine.stop());
  t.diagnostic(opened.engine.started ? 'started dockerd (no bridge, no iptables); it is stopped afterwards' : 'using the running Docker engine');

  const id = `mle2e${process.pid}`;
  const image = `meshledger:${id}`;
  const buildImage = `meshledger-build:${id}`;
  const compose = (...args: string[]) => ['-p', id, '--project-directory', root, '-f', join(work, 'compose.yml'), ...args];
  t.after(() => {
    // Everything this test created, whatever state it stopped in. Base images stay: they are the cache.
    tryRun('docker-compose', compose('down', '-v', '--remove-orphans', '--timeout', '5'));
    for (const c of tryRun('docker', ['ps', '-aq', '--filter', `label=com.docker.compose.project=${id}`]).out.split('\n').filter(Boolean)) tryRun('docker', ['rm', '-f', '-v', c]);
    for (const v of tryRun('docker', ['volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${id}`]).out.split('\n').filter(Boolean)) tryRun('docker', ['volume', 'rm', '-f', v]);
    tryRun('docker', ['rmi', '-f', image, buildImage]);
  });

  // ---------------------------------------------------------------------------------------------- images
  let t0 = Date.now();
  const baseOut = run('bash', [join(root, 'scripts/docker/build-base.sh')], { cwd: root });
  t.diagnostic(`base images ready in ${secs(Date.now() - t0)} (inputs hash ${baseOut.trim()})`);
  t0 = Date.now();
  // The build stage gets its own tag so that it can be removed afterwards; the second build reuses its layers.
  run('docker', ['build', '--network', 'host', '--force-rm', '--target', 'build', '-t', buildImage, '.'], { cwd: root });
  run('docker', ['build', '--network', 'host', '--force-rm', '-t', image, '.'], { cwd: root });
  const size = Number(run('docker', ['image', 'inspect', '-f', '{{.Size}}', image]).trim());
  t.diagnostic(`image built in ${secs(Date.now() - t0)}, ${(size / 1e6).toFixed(0)} MB`);
  assert.ok(size < 200e6, `the image should stay small (node is most of it), got ${(size / 1e6).toFixed(0)} MB`);
  const inside = run('docker', ['run', '--rm', '--network', 'none', '--entrypoint', 'sh', image, '-c',
    'id -u; for p in /app/test /app/harness /app/src /app/node_modules/typescript /app/node_modules/fast-check /app/node_modules/kubernetes-models /usr/local/bin/npm; do [ -e "$p" ] && echo "present: $p"; done; node /app/bin/meshledger.js version']).trim().split('\n');
  assert.equal(inside[0], '10001', 'the image runs as uid 10001, not root');
  assert.deepEqual(inside.filter((l) => l.startsWith('present:')), [], 'no tests, sources, dev dependencies or npm in the image');
  assert.match(inside.at(-1)!, /^\d+\.\d+\.\d+/, 'the CLI runs inside the image');

  // --------------------------------------------------------------------------------------------- network
  const ports = await freePorts(2 * NODES.length);
  const nodePorts = new Map<string, NodePorts>(NODES.map((n, i) => [n, { p2p: ports[2 * i]!, rpc: ports[2 * i + 1]! }]));
  const rpcOf = (n: string) => nodePorts.get(n)!.rpc;
  writeFileSync(join(work, 'compose.yml'), JSON.stringify(hostNetworkCompose(readFileSync(composeFile, 'utf8'), { image, nodes: nodePorts, bootnode: 'validator-0' }), null, 2));
  t0 = Date.now();
  run('docker-compose', compose('up', '-d', '--no-build'), { cwd: root, timeoutMs: 5 * 60_000 });
  const networks = run('docker', ['network', 'ls', '-q', '--filter', `label=com.docker.compose.project=${id}`]).trim();
  assert.equal(networks, '', 'the test network must use host networking only, no bridge network');

  const all = NODES.map(rpcOf);
  const h0 = await until('all 5 nodes agree at height ≥ 3', 120_000, () => agreed(all, 3));
  t.diagnostic(`all 5 nodes agree at height ${h0} ${secs(Date.now() - t0)} after compose up`);
  const grown = await until(`all 5 agree beyond height ${h0 + 3}`, 60_000, () => agreed(all, h0 + 3));
  t.diagnostic(`the chain grows: all agree at ${grown}`);

  // ------------------------------------------------------------------------------------- kill and rejoin
  const victimId = run('docker-compose', compose('ps', '-q', VICTIM), { cwd: root }).trim();
  assert.ok(victimId, `${VICTIM} has a container`);
  const victimAddress = (await rpc(rpcOf(VICTIM), 'getNodeInfo')).validator as string;
  run('docker', ['kill', victimId]);
  const killedAt = Date.now();
  assert.equal(run('docker', ['inspect', '-f', '{{.State.Running}}', victimId]).trim(), 'false', 'the killed container is down');
  await assert.rejects(rpc(rpcOf(VICTIM), 'getChainInfo', undefined, { timeoutMs: 3000 }), (e) => isTransportError(e), 'the killed node no longer answers');

  const others = NODES.filter((n) => n !== VICTIM).map(rpcOf);
  const atKill = Math.max(...(await Promise.all(others.map(head))).map((x) => x.height));
  const without = await until(`the other 4 agree beyond height ${atKill + 4} without ${VICTIM}`, 60_000, () => agreed(others, atKill + 4));
  assert.equal(run('docker', ['inspect', '-f', '{{.State.Running}}', victimId]).trim(), 'false', `${VICTIM} stayed down meanwhile`);
  t.diagnostic(`without ${VICTIM} the others went from ${atKill} to ${without} in ${secs(Date.now() - killedAt)}`);

  run('docker', ['start', victimId]);
  const restartedAt = Date.now();
  const target = Math.max(...(await Promise.all(others.map(head))).map((x) => x.height));
  const rejoined = await until(`${VICTIM} catches up to ${target} and all 5 agree`, 90_000, () => agreed(all, target));
  t.diagnostic(`${VICTIM} rejoined: all 5 agree at ${rejoined}, ${secs(Date.now() - restartedAt)} after docker start`);
  const produced = await until(`${VICTIM} proposes a block again`, 60_000, async () => {
    const h = (await head(rpcOf(VICTIM))).height;
    for (let x = h; x > rejoined; x--) {
      const hdr = await rpc(rpcOf(VICTIM), 'getBlockHeader', { height: x });
      if (hdr.proposer === victimAddress) return x;
    }
    return undefined;
  });
  t.diagnostic(`${VICTIM} proposed block ${produced} after its restart`);

  // ------------------------------------------------------------------------------------ health checks
  const health = await until('every node container reports healthy', 90_000, async () => {
    const states = NODES.map((n) => {
      const cid = run('docker-compose', compose('ps', '-q', n), { cwd: root }).trim();
      return `${n}=${run('docker', ['inspect', '-f', '{{.State.Health.Status}}', cid]).trim()}`;
    });
    return states.every((s) => s.endsWith('=healthy')) ? states : undefined;
  });
  t.diagnostic(`healthchecks: ${health.join(' ')}`);
});
