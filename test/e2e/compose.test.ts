/**
 * docker-compose.yml, the Dockerfile and the Kubernetes pod specs, for real.
 *
 * 1. Offline: `docker-compose config -q` accepts the file, and it describes the init job, 4 validators and an
 *    observer with volumes and JSON-RPC healthchecks.
 * 2. With an engine (each test skipped with the reason where none can run), once: build the base images
 *    (reused when their inputs are unchanged) and the image. Then:
 *    - the image holds no tests, sources, compiler, npm or dev dependencies, and runs as uid 10001;
 *    - the Kubernetes genesis Job's container, run as deploy/kubernetes says, publishes genesis to a stand-in
 *      API server on 127.0.0.1; validator-0's container, with its args, read-only root and mounts from the
 *      manifests, starts on that genesis, and its probes answer as the manifests expect (live, not ready
 *      without peers; metrics served);
 *    - the compose services run on host networking, each node on its own 127.0.0.1 ports: all 5 nodes agree
 *      on a growing chain over JSON-RPC; a validator is `docker kill`ed, the others keep producing without it;
 *      it is started again, catches up, agrees and proposes again; Docker's healthchecks report healthy.
 *    Containers, volumes and the images built here are removed afterwards, on failure too; the base images
 *    stay, as the cache the next run reuses.
 */
import { after, before, describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { packageRoot } from '../../src/util/schemas.js';
import { freePorts, isTransportError, rpc } from '../../harness/proc.js';
import { writeKey } from '../../harness/p2pnet.js';
import { hostNetworkCompose, openEngine, run, runAsync, sweepStale, tryRun, type Engine, type NodePorts } from '../helpers/docker.js';

const root = packageRoot();
const composeFile = join(root, 'docker-compose.yml');
const haveCompose = spawnSync('docker-compose', ['version'], { encoding: 'utf8' }).status === 0;
const NO_COMPOSE = 'docker-compose is not installed (.ci/run installs Debian\'s docker-compose)';
const VALIDATORS = ['validator-0', 'validator-1', 'validator-2', 'validator-3'];
const NODES = [...VALIDATORS, 'observer'];
const VICTIM = 'validator-2';
/** CPU weight of the nodes this file runs (Docker's default is 1024): they need little and yield to other tests. */
const CPU_SHARES = 256;
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

test('docker-compose.yml is valid and describes 4 validators, 1 observer and the init job', { skip: haveCompose ? false : NO_COMPOSE }, () => {
  execFileSync('docker-compose', ['-f', composeFile, 'config', '-q'], { cwd: root });
  const cfg = execFileSync('docker-compose', ['-f', composeFile, 'config'], { cwd: root, encoding: 'utf8' });
  const services = [...cfg.matchAll(/^ {2}([a-z0-9-]+):$/gm)].map((m) => m[1]);
  for (const s of ['init', ...NODES]) assert.ok(services.includes(s), `service ${s} missing`);
  assert.equal((cfg.match(/--key/g) ?? []).length, 4, 'exactly the 4 validators carry --key');
  assert.equal((cfg.match(/healthcheck\.js/g) ?? []).length, 5, 'every node has the JSON-RPC healthcheck');
  for (const v of ['data-validator-0', 'data-observer', 'shared']) assert.match(cfg, new RegExp(`^ {2}${v}:`, 'm'));
});

// ------------------------------------------------------------------------------------------------ helpers

interface Head { height: number; hash: string }

/**
 * One JSON-RPC call to a node that should be up, retried a few times on transport errors: under load an idle
 * keep-alive socket can be closed by the server just as the client reuses it, which is not what is tested.
 */
async function call(port: number, method: string, params?: unknown): Promise<any> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await rpc(port, method, params, { timeoutMs: 5000 });
    } catch (e) {
      if (attempt >= 5 || !isTransportError(e)) throw e;
      await sleep(300);
    }
  }
}

async function head(port: number): Promise<Head> {
  const i = await call(port, 'getChainInfo');
  return { height: i.height as number, hash: i.headHash as string };
}

async function hashAt(port: number, height: number): Promise<string> {
  return (await call(port, 'getBlockHeader', { height })).hash as string;
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

/** `docker exec` exit status and output, without throwing. */
function exec(container: string, cmd: string[]): { code: number | null; out: string } {
  const r = spawnSync('docker', ['exec', container, ...cmd], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

/** The documents of one file in deploy/kubernetes, as parsed YAML (any shape). */
function manifest(file: string): any[] {
  const docs = parseAllDocuments(readFileSync(join(root, 'deploy', 'kubernetes', file), 'utf8')) as unknown as { toJS(): unknown }[];
  return docs.map((d) => d.toJS());
}

// ------------------------------------------------------------------------------------------ with an engine

describe('with a Docker engine', { skip: haveCompose ? false : NO_COMPOSE, timeout: 20 * 60_000 }, () => {
  const id = `mle2e${process.pid}`;
  const image = `meshledger:${id}`;
  const buildImage = `meshledger-build:${id}`;
  const work = mkdtempSync(join(tmpdir(), 'ml-compose-'));
  const notes: string[] = [];
  let engine: Engine | undefined;
  let skipReason: string | undefined;
  const cleanups: (() => void)[] = [];

  before(async () => {
    const opened = await openEngine(join(work, 'dockerd.log'));
    if ('reason' in opened) {
      skipReason = opened.reason;
      return;
    }
    engine = opened.engine;
    notes.push(engine.started ? 'started dockerd (no bridge, no iptables); it is stopped afterwards' : 'using the running Docker engine');
    const swept = sweepStale('mle2e', id);
    if (swept.length > 0) notes.push(`removed what a killed earlier run left: ${swept.join(', ')}`);
    let t0 = Date.now();
    const hash = run('bash', [join(root, 'scripts/docker/build-base.sh')], { cwd: root }).trim();
    notes.push(`base images ready in ${secs(Date.now() - t0)} (inputs hash ${hash})`);
    t0 = Date.now();
    // The build stage gets its own tag so that it can be removed afterwards; the second build reuses its layers.
    // --cpu-shares 2: the build (npm ci, tsc) yields the CPU to the test files running beside this one, whose
    // timing assertions it would otherwise disturb; it takes longer only when they are busy.
    const build = ['build', '--network', 'host', '--force-rm', '--cpu-shares', '2'];
    run('docker', [...build, '--target', 'build', '-t', buildImage, '.'], { cwd: root });
    run('docker', [...build, '-t', image, '.'], { cwd: root });
    notes.push(`image built in ${secs(Date.now() - t0)}`);
  }, { timeout: 15 * 60_000 });

  after(async () => {
    // Everything this file created, whatever state it stopped in. The base images stay: they are the cache.
    if (engine) {
      for (const f of cleanups.reverse()) f();
      tryRun('docker', ['rmi', '-f', image, buildImage]);
      await engine.stop();
    }
    rmSync(work, { recursive: true, force: true });
  });

  const ready = (t: { skip(m: string): void; diagnostic(m: string): void }): boolean => {
    if (skipReason !== undefined) {
      t.skip(skipReason);
      return false;
    }
    for (const n of notes.splice(0)) t.diagnostic(n);
    return true;
  };

  it('the image is small, runs as uid 10001 and holds no tests, sources, dev dependencies or npm', (t) => {
    if (!ready(t)) return;
    const size = Number(run('docker', ['image', 'inspect', '-f', '{{.Size}}', image]).trim());
    t.diagnostic(`image size ${(size / 1e6).toFixed(0)} MB`);
    assert.ok(size < 200e6, `the image should stay small (node is most of it), got ${(size / 1e6).toFixed(0)} MB`);
    const inside = run('docker', ['run', '--rm', '--network', 'none', '--entrypoint', 'sh', image, '-c',
      'id -u; for p in /app/test /app/harness /app/src /app/scripts/k8s /app/node_modules/typescript /app/node_modules/fast-check /app/node_modules/kubernetes-models /usr/local/bin/npm; do [ -e "$p" ] && echo "present: $p"; done; node /app/bin/meshledger.js version']).trim().split('\n');
    assert.equal(inside[0], '10001', 'the image runs as uid 10001, not root');
    assert.deepEqual(inside.filter((l) => l.startsWith('present:')), [], 'no tests, sources, dev dependencies or npm in the image');
    assert.match(inside.at(-1)!, /^\d+\.\d+\.\d+/, 'the CLI runs inside the image');
  });

  it('the Kubernetes genesis Job and a validator pod run in the image as deploy/kubernetes specifies', async (t) => {
    if (!ready(t)) return;
    const keys = join(work, 'k8s-keys');
    const sa = join(work, 'k8s-sa');
    mkdirSync(keys);
    mkdirSync(sa);
    const validators = await Promise.all([0, 1, 2, 3].map((i) => writeKey(work, `k8s-v${i}`)));

    // The Job: its container's command and args from the manifest, genesis inputs from the environment (as the
    // genesis-params ConfigMap gives them), the service account's token mounted where Kubernetes puts it.
    const job = manifest('genesis-job.yaml').find((d) => d.kind === 'Job');
    const jobContainer = job.spec.template.spec.containers[0];
    writeFileSync(join(sa, 'token'), 'e2e-token');
    writeFileSync(join(sa, 'namespace'), 'meshledger');
    chmodSync(join(sa, 'token'), 0o644);
    let published: string | undefined;
    const api = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        if (req.method === 'POST') published = JSON.parse(body).data['genesis.json'];
        res.writeHead(req.method === 'GET' ? 404 : 201, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
    t.after(() => api.close());
    const apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
    const jobName = `${id}-job`;
    cleanups.push(() => tryRun('docker', ['rm', '-f', jobName]));
    const jobOut = await runAsync('docker', ['run', '--name', jobName, '--network', 'host', '--read-only', '--tmpfs', '/tmp', '--user', '10001:10001',
      '-v', `${sa}:/var/run/secrets/kubernetes.io/serviceaccount:ro`,
      '-e', `GENESIS_VALIDATORS=${validators.map((v) => v.address).join(',')}`, '-e', 'GENESIS_CHAIN_ID=k8s-e2e', '-e', 'GENESIS_SLOT_MS=500',
      '--entrypoint', jobContainer.command[0], image, ...jobContainer.command.slice(1), ...jobContainer.args, '--api', apiUrl]);
    assert.match(jobOut, /published configmap meshledger\/genesis/);
    assert.ok(published, 'the Job posted genesis.json');
    assert.equal(JSON.parse(published).chainId, 'k8s-e2e');

    // validator-0's pod: its args, read-only root, /tmp emptyDir, key and genesis mounted read-only, a data
    // volume; no network but its own loopback, so its peers' names do not resolve and it has no peers.
    const v0 = manifest('validators.yaml').find((d) => d.kind === 'StatefulSet' && d.metadata.name === 'validator-0');
    const node = v0.spec.template.spec.containers[0];
    const mountOf = (name: string) => node.volumeMounts.find((m: { name: string }) => m.name === name).mountPath as string;
    const genesisDir = join(work, 'k8s-genesis');
    mkdirSync(genesisDir);
    writeFileSync(join(genesisDir, 'genesis.json'), published);
    writeFileSync(join(keys, 'key.json'), readFileSync(validators[0]!.file));
    chmodSync(join(keys, 'key.json'), 0o644); // a Secret volume's file is readable by the pod's group (fsGroup); here, by all
    const pod = `${id}-validator-0`;
    const volume = `${id}-k8s-data`;
    cleanups.push(() => { tryRun('docker', ['rm', '-f', pod]); tryRun('docker', ['volume', 'rm', '-f', volume]); });
    run('docker', ['run', '-d', '--name', pod, '--cpu-shares', String(CPU_SHARES), '--network', 'none', '--read-only', '--tmpfs', mountOf('tmp'), '--user', '10001:10001',
      '-e', 'POD_NAME=validator-0-0',
      '-v', `${volume}:${mountOf('data')}`, '-v', `${genesisDir}:${mountOf('genesis')}:ro`, '-v', `${keys}:${mountOf('key')}:ro`,
      image, ...node.args]);
    const port = node.ports.find((p: { name: string }) => p.name === 'rpc').containerPort;
    const get = (path: string) => ['node', '-e', `fetch('http://127.0.0.1:${port}${path}').then(async (r) => { console.log(await r.text()); process.exit(r.ok ? 0 : 1); }, (e) => { console.log(e.message); process.exit(1); })`];
    const live = await until('the pod answers its liveness probe (GET /health)', 60_000, async () => exec(pod, get(node.livenessProbe.httpGet.path)).code === 0 || undefined);
    assert.ok(live);
    const readiness = exec(pod, node.readinessProbe.exec.command);
    assert.equal(readiness.code, 1, `without peers the validator is not ready: ${readiness.out}`);
    assert.match(readiness.out, /not ready: status no_peers/);
    const metrics = exec(pod, get(v0.spec.template.metadata.annotations['prometheus.io/path']));
    assert.equal(metrics.code, 0);
    assert.match(metrics.out, /^# (HELP|TYPE) /m, 'Prometheus metrics are served where the annotations point');
    const info = JSON.parse(exec(pod, ['node', '-e', `fetch('http://127.0.0.1:${port}/',{method:'POST',headers:{'content-type':'application/json'},body:'{"jsonrpc":"2.0","id":1,"method":"getNodeInfo"}'}).then(r=>r.text()).then(console.log)`]).out);
    assert.equal(info.result.validator, validators[0]!.address, 'the pod signs with the key from its Secret');
    assert.equal(info.result.chainId, 'k8s-e2e', 'on the genesis the Job published');
  });

  it('the compose network agrees on a growing chain, and a killed validator rejoins', async (t) => {
    if (!ready(t)) return;
    const compose = (...args: string[]) => ['-p', id, '--project-directory', root, '-f', join(work, 'compose.yml'), ...args];
    cleanups.push(() => {
      tryRun('docker-compose', compose('down', '-v', '--remove-orphans', '--timeout', '5'));
      for (const c of tryRun('docker', ['ps', '-aq', '--filter', `label=com.docker.compose.project=${id}`]).out.split('\n').filter(Boolean)) tryRun('docker', ['rm', '-f', '-v', c]);
      for (const v of tryRun('docker', ['volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${id}`]).out.split('\n').filter(Boolean)) tryRun('docker', ['volume', 'rm', '-f', v]);
    });
    const ports = await freePorts(2 * NODES.length);
    const nodePorts = new Map<string, NodePorts>(NODES.map((n, i) => [n, { p2p: ports[2 * i]!, rpc: ports[2 * i + 1]! }]));
    const rpcOf = (n: string) => nodePorts.get(n)!.rpc;
    writeFileSync(join(work, 'compose.yml'), JSON.stringify(hostNetworkCompose(readFileSync(composeFile, 'utf8'), { image, nodes: nodePorts, bootnode: 'validator-0', cpuShares: CPU_SHARES }), null, 2));
    // On a failure, say what the containers were doing.
    t.after(() => {
      if (passed) return;
      t.diagnostic(tryRun('docker-compose', compose('ps')).out);
      for (const n of NODES) t.diagnostic(`${n}: ${tryRun('docker-compose', compose('logs', '--no-color', '--tail', '8', n)).out.trim()}`);
    });
    let passed = false;
    let t0 = Date.now();
    run('docker-compose', compose('up', '-d', '--no-build'), { cwd: root, timeoutMs: 5 * 60_000 });
    const networks = run('docker', ['network', 'ls', '-q', '--filter', `label=com.docker.compose.project=${id}`]).trim();
    assert.equal(networks, '', 'the test network must use host networking only, no bridge network');

    const all = NODES.map(rpcOf);
    const h0 = await until('all 5 nodes agree at height ≥ 3', 120_000, () => agreed(all, 3));
    t.diagnostic(`all 5 nodes agree at height ${h0} ${secs(Date.now() - t0)} after compose up`);
    const grown = await until(`all 5 agree beyond height ${h0 + 3}`, 60_000, () => agreed(all, h0 + 3));
    t.diagnostic(`the chain grows: all agree at ${grown}`);

    // ----------------------------------------------------------------------------------- kill and rejoin
    const victimId = run('docker-compose', compose('ps', '-q', VICTIM), { cwd: root }).trim();
    assert.ok(victimId, `${VICTIM} has a container`);
    const victimAddress = (await call(rpcOf(VICTIM), 'getNodeInfo')).validator as string;
    run('docker', ['kill', victimId]);
    t0 = Date.now();
    assert.equal(run('docker', ['inspect', '-f', '{{.State.Running}}', victimId]).trim(), 'false', 'the killed container is down');
    await assert.rejects(rpc(rpcOf(VICTIM), 'getChainInfo', undefined, { timeoutMs: 3000 }), (e) => isTransportError(e), 'the killed node no longer answers');

    const others = NODES.filter((n) => n !== VICTIM).map(rpcOf);
    const atKill = Math.max(...(await Promise.all(others.map(head))).map((x) => x.height));
    const without = await until(`the other 4 agree beyond height ${atKill + 4} without ${VICTIM}`, 60_000, () => agreed(others, atKill + 4));
    assert.equal(run('docker', ['inspect', '-f', '{{.State.Running}}', victimId]).trim(), 'false', `${VICTIM} stayed down meanwhile`);
    t.diagnostic(`without ${VICTIM} the others went from ${atKill} to ${without} in ${secs(Date.now() - t0)}`);

    run('docker', ['start', victimId]);
    t0 = Date.now();
    const target = Math.max(...(await Promise.all(others.map(head))).map((x) => x.height));
    const rejoined = await until(`${VICTIM} catches up to ${target} and all 5 agree`, 90_000, () => agreed(all, target));
    t.diagnostic(`${VICTIM} rejoined: all 5 agree at ${rejoined}, ${secs(Date.now() - t0)} after docker start`);
    const produced = await until(`${VICTIM} proposes a block again`, 60_000, async () => {
      const h = (await head(rpcOf(VICTIM))).height;
      for (let x = h; x > rejoined; x--) {
        const hdr = await call(rpcOf(VICTIM), 'getBlockHeader', { height: x });
        if (hdr.proposer === victimAddress) return x;
      }
      return undefined;
    });
    t.diagnostic(`${VICTIM} proposed block ${produced} after its restart`);

    // ----------------------------------------------------------------------------------- health checks
    const health = await until('every node container reports healthy', 90_000, async () => {
      const states = NODES.map((n) => {
        const cid = run('docker-compose', compose('ps', '-q', n), { cwd: root }).trim();
        return `${n}=${run('docker', ['inspect', '-f', '{{.State.Health.Status}}', cid]).trim()}`;
      });
      return states.every((s) => s.endsWith('=healthy')) ? states : undefined;
    });
    t.diagnostic(`healthchecks: ${health.join(' ')}`);
    passed = true;
  });
});
