/**
 * scripts/docker/publish-genesis.ts, the Kubernetes init Job, against a stand-in API server on 127.0.0.1:
 * genesis is built and published once, never replaced, and every other answer is a failure with its reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, publishGenesis, type PublishOptions } from '../../../scripts/docker/publish-genesis.js';
import { memKey } from '../../../harness/p2pnet.js';

interface Seen { method: string; path: string; auth: string | undefined; body: any }

/** A stand-in API server: GET answers `get`, POST answers `post`; every request is recorded. */
async function apiServer(t: { after(f: () => unknown): void }, get: number, post = 201): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      seen.push({ method: req.method!, path: req.url!, auth: req.headers.authorization, body: body ? JSON.parse(body) : undefined });
      const status = req.method === 'GET' ? get : post;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(status < 300 ? { kind: 'ConfigMap' } : { kind: 'Status', code: status }));
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => srv.close());
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, seen };
}

function options(api: string, o: Partial<PublishOptions> = {}): PublishOptions & { lines: string[] } {
  const lines: string[] = [];
  const parsed = parseArgs(['--api', api, '--namespace', 'chain', '--token-file', tokenFile, '--validators', validators.join(',')], {});
  return { ...parsed, log: (l) => lines.push(l), lines, ...o };
}

const dir = mkdtempSync(join(tmpdir(), 'publish-genesis-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const tokenFile = join(dir, 'token');
writeFileSync(tokenFile, 'sekret-token\n');
const validators = [memKey().address, memKey().address, memKey().address];
const faucet = memKey().address;

test('with no genesis ConfigMap, genesis is built from the addresses and published immutable, once', async (t) => {
  const api = await apiServer(t, 404);
  const o = options(api.url, { alloc: [`${faucet}=1000`], chainId: 'k8s-test', slotMs: '2000' });
  assert.equal(await publishGenesis(o), 'created');
  assert.deepEqual(api.seen.map((s) => `${s.method} ${s.path}`), ['GET /api/v1/namespaces/chain/configmaps/genesis', 'POST /api/v1/namespaces/chain/configmaps']);
  for (const s of api.seen) assert.equal(s.auth, 'Bearer sekret-token', 'the service account token is sent');
  const cm = api.seen[1]!.body;
  assert.equal(cm.kind, 'ConfigMap');
  assert.equal(cm.metadata.name, 'genesis');
  assert.equal(cm.immutable, true, 'genesis can never be edited in place');
  const g = JSON.parse(cm.data['genesis.json']);
  assert.equal(g.chainId, 'k8s-test');
  assert.equal(g.slotMs, 2000);
  assert.deepEqual(g.validators, validators);
  assert.deepEqual(JSON.stringify(g.alloc).includes(faucet), true);
  assert.match(o.lines.join('\n'), /published configmap chain\/genesis/);
});

test('an existing genesis is left alone: nothing is built or sent', async (t) => {
  const api = await apiServer(t, 200);
  const o = options(api.url);
  assert.equal(await publishGenesis(o), 'exists');
  assert.deepEqual(api.seen.map((s) => s.method), ['GET']);
});

test('losing the race to another run (409 on create) is success: the first genesis stays', async (t) => {
  const api = await apiServer(t, 404, 409);
  assert.equal(await publishGenesis(options(api.url)), 'lost-race');
});

test('any other answer, a bad address or no validators fails with the reason', async (t) => {
  const forbidden = await apiServer(t, 403);
  await assert.rejects(publishGenesis(options(forbidden.url)), /GET configmap genesis: HTTP 403/);
  const refused = await apiServer(t, 404, 422);
  await assert.rejects(publishGenesis(options(refused.url)), /POST configmap genesis: HTTP 422/);
  const api = await apiServer(t, 404);
  await assert.rejects(publishGenesis(options(api.url, { validators: [] })), /--validators is empty/);
  await assert.rejects(publishGenesis(options(api.url, { validators: ['ml1notanaddress'] })), /meshledger genesis failed: .*not a valid address/);
  assert.equal(api.seen.filter((s) => s.method === 'POST').length, 0, 'nothing is published when genesis cannot be built');
});

test('in a pod the API address and genesis inputs come from the environment; unknown flags and a missing token are refused', () => {
  const o = parseArgs(['--namespace', 'n', '--token-file', tokenFile, '--validators', ' a, ,b ', '--alloc', ''], { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' });
  assert.equal(o.api, 'https://10.96.0.1:443');
  assert.deepEqual(o.validators, ['a', 'b']);
  assert.deepEqual(o.alloc, [], 'an empty --alloc (an unset variable) means no allocations');
  assert.equal(parseArgs(['--namespace', 'n', '--token-file', tokenFile], { KUBERNETES_SERVICE_HOST: 'fd00::1' }).api, 'https://[fd00::1]:443');
  const fromEnv = parseArgs(['--namespace', 'n', '--token-file', tokenFile, '--slot-ms', '500'], {
    KUBERNETES_SERVICE_HOST: 'h', GENESIS_VALIDATORS: 'v1,v2', GENESIS_ALLOC: 'a=1,b=2', GENESIS_CHAIN_ID: 'c', GENESIS_SLOT_MS: '2000',
  });
  assert.deepEqual([fromEnv.validators, fromEnv.alloc, fromEnv.chainId, fromEnv.slotMs], [['v1', 'v2'], ['a=1', 'b=2'], 'c', '500'], 'genesis inputs from the environment; a flag wins');
  assert.throws(() => parseArgs(['--namespace', 'n', '--token-file', tokenFile, '--bogus', 'x'], { KUBERNETES_SERVICE_HOST: 'h' }), /unknown flag --bogus/);
  assert.throws(() => parseArgs(['--namespace', 'n', '--token-file', join(dir, 'none')], { KUBERNETES_SERVICE_HOST: 'h' }), /no service account token/);
  assert.throws(() => parseArgs(['--namespace', 'n'], {}), /not running in a pod/);
});
