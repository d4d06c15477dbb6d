/** scripts/docker/healthcheck.ts: where it finds the node's RPC port, and what it calls healthy or ready. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkHealth, DEFAULT_RPC_URL, resolveRpcUrl, rpcFlag, urlForListen } from '../../../scripts/docker/healthcheck.js';

test('the --rpc flag is read in both spellings, and absent when the node serves no RPC', () => {
  assert.equal(rpcFlag(['node', '/app/bin/meshledger.js', 'node', '--rpc', '0.0.0.0:8645']), '0.0.0.0:8645');
  assert.equal(rpcFlag(['node', 'x', '--rpc=127.0.0.1:9000', '--p2p', '0.0.0.0:1']), '127.0.0.1:9000');
  assert.equal(rpcFlag(['node', 'x', '--p2p', '0.0.0.0:30400']), undefined);
});

test('listen addresses become URLs to ask: wildcards on loopback, IPv6 in brackets, nonsense refused', () => {
  assert.equal(urlForListen('0.0.0.0:8645'), 'http://127.0.0.1:8645/');
  assert.equal(urlForListen(':8645'), 'http://127.0.0.1:8645/');
  assert.equal(urlForListen('127.0.0.1:31500'), 'http://127.0.0.1:31500/');
  assert.equal(urlForListen('[::]:8645'), 'http://[::1]:8645/');
  assert.equal(urlForListen('[::1]:8645'), 'http://[::1]:8645/');
  assert.equal(urlForListen('node-0.p2p:8645'), 'http://node-0.p2p:8645/');
  assert.throws(() => urlForListen('8645'), /HOST:PORT/);
});

test('the URL comes from --url, then the environment, then the main process\'s --rpc, then the default', () => {
  const cmdline = ['node', '/app/bin/meshledger.js', 'node', '--datadir', '/data', '--rpc', '127.0.0.1:31502', ''].join('\0');
  assert.equal(resolveRpcUrl({ url: 'http://a:1/', env: 'http://b:2/', cmdline }), 'http://a:1/');
  assert.equal(resolveRpcUrl({ env: 'http://b:2/', cmdline }), 'http://b:2/');
  assert.equal(resolveRpcUrl({ cmdline }), 'http://127.0.0.1:31502/');
  assert.equal(resolveRpcUrl({ cmdline: ['sh', '/app/scripts/compose-init.sh', ''].join('\0') }), DEFAULT_RPC_URL);
  assert.equal(resolveRpcUrl({}), DEFAULT_RPC_URL);
});

/** A stub node on 127.0.0.1 answering getHealth with `status`, or with `raw` verbatim and HTTP `http`. */
async function stub(t: { after(f: () => unknown): void }, answer: { status?: string; raw?: string; http?: number }): Promise<string> {
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const j = JSON.parse(body);
      assert.equal(j.method, 'getHealth');
      res.writeHead(answer.http ?? 200, { 'content-type': 'application/json' });
      res.end(answer.raw ?? JSON.stringify({ jsonrpc: '2.0', id: j.id, result: { status: answer.status, height: 7, peers: 3, syncing: false, headAgeMs: 10 } }));
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => srv.close());
  return `http://127.0.0.1:${(srv.address() as AddressInfo).port}/`;
}

test('healthy means the node answers getHealth; ready means its status is "ok"', async (t) => {
  const ok = await stub(t, { status: 'ok' });
  assert.deepEqual(await checkHealth(ok, false, 2000), { ok: true, reason: 'status ok, height 7, peers 3' });
  assert.equal((await checkHealth(ok, true, 2000)).ok, true);

  const syncing = await stub(t, { status: 'syncing' });
  assert.equal((await checkHealth(syncing, false, 2000)).ok, true, 'a syncing node is alive');
  const notReady = await checkHealth(syncing, true, 2000);
  assert.equal(notReady.ok, false, 'but not ready');
  assert.match(notReady.reason, /not ready: status syncing/);
});

test('no answer, an HTTP error or a reply without a status is unhealthy, with the reason', async (t) => {
  const gone = await checkHealth(`http://127.0.0.1:1/`, false, 2000);
  assert.equal(gone.ok, false);
  assert.match(gone.reason, /127\.0\.0\.1:1/);
  const err = await checkHealth(await stub(t, { http: 503, raw: 'busy' }), false, 2000);
  assert.equal(err.ok, false);
  assert.match(err.reason, /HTTP 503/);
  const odd = await checkHealth(await stub(t, { raw: '{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}' }), false, 2000);
  assert.equal(odd.ok, false);
  assert.match(odd.reason, /no status/);
});
