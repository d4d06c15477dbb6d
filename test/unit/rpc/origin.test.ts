/**
 * Browsers send an Origin with every cross-site request and WebSocket upgrade; a page must not use a local
 * node's JSON-RPC unless the operator allowed its origin (--rpc-cors). Non-browser clients send no Origin
 * and are unaffected. Checked on a real HTTP server on 127.0.0.1 with real WebSocket upgrades.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { originAllowed, RpcDispatcher, RpcHttpServer } from '../../../src/rpc/server.js';
import { attachWebSocket } from '../../../src/rpc/ws.js';
import type { Subscriptions } from '../../../src/rpc/subscriptions.js';

test('originAllowed: no Origin, the configured origin, or a same-origin page on an IP or localhost host', () => {
  const cases: [string | undefined, string | undefined, string | undefined, boolean][] = [
    [undefined, '127.0.0.1:8645', undefined, true], // CLI, SDK, curl
    ['http://127.0.0.1:8645', '127.0.0.1:8645', undefined, true], // a page this node serves
    ['http://localhost:8645', 'localhost:8645', undefined, true],
    ['http://[::1]:8645', '[::1]:8645', undefined, true],
    ['http://evil.example', '127.0.0.1:8645', undefined, false], // any other site
    ['http://127.0.0.1:9999', '127.0.0.1:8645', undefined, false], // another port is another origin
    ['http://evil.example:8645', 'evil.example:8645', undefined, false], // DNS rebinding: same-origin, but by name
    ['null', '127.0.0.1:8645', undefined, false], // sandboxed frames, file: pages
    ['https://wallet.example', '127.0.0.1:8645', 'https://wallet.example', true],
    ['https://wallet.example.evil', '127.0.0.1:8645', 'https://wallet.example', false],
    ['https://anything.example', '127.0.0.1:8645', '*', true],
    ['chrome-extension://abc', 'chrome-extension', undefined, false],
  ];
  for (const [origin, host, cors, want] of cases) assert.equal(originAllowed(origin, host, cors), want, `${origin} → ${host} (cors ${cors})`);
});

const DOC = { openrpc: '1.2.6', info: { title: 't', version: '0' }, methods: [{ name: 'ping', params: [], result: { name: 'r', schema: { type: 'string' } } }] };

async function serve(cors?: string): Promise<{ port: number; close: () => Promise<void> }> {
  const dispatcher = new RpcDispatcher({ openrpc: DOC, handlers: { ping: () => 'pong' } });
  const http = new RpcHttpServer(dispatcher, { cors });
  const subs = { newSession: () => ({}), endSession: () => {} } as unknown as Subscriptions;
  const wss = attachWebSocket(http, dispatcher, subs, { maxMessageBytes: 1 << 20, log: () => {} });
  const { port } = await http.listen('127.0.0.1', 0);
  return { port, close: async () => { wss.close(); await http.close(); } };
}

/** Open a WebSocket with the given Origin/Host headers; resolves with the ping answer or the refusal status. */
function wsPing(port: number, headers: Record<string, string>): Promise<string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { headers });
    ws.on('unexpected-response', (_req, res) => { resolve(`refused ${res.statusCode}`); ws.terminate(); });
    ws.on('error', (e) => resolve(`error ${e.message}`));
    ws.on('open', () => ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' })));
    ws.on('message', (d) => { resolve(JSON.parse(String(d)).result); ws.close(); });
  });
}

async function httpPing(port: number, headers: Record<string, string>): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' });
  await r.text();
  return r.status;
}

test('the WebSocket upgrade and HTTP POST refuse a foreign page (403) and serve everyone else', async () => {
  const s = await serve();
  try {
    assert.equal(await wsPing(s.port, {}), 'pong');
    assert.equal(await wsPing(s.port, { Origin: `http://127.0.0.1:${s.port}` }), 'pong');
    assert.equal(await wsPing(s.port, { Origin: 'http://evil.example' }), 'refused 403');
    assert.equal(await wsPing(s.port, { Origin: `http://evil.example:${s.port}`, Host: `evil.example:${s.port}` }), 'refused 403');
    assert.equal(await httpPing(s.port, {}), 200);
    assert.equal(await httpPing(s.port, { Origin: 'http://evil.example' }), 403);
  } finally {
    await s.close();
  }
});

test('with --rpc-cors set, that origin is served over both transports, and others still are not', async () => {
  const s = await serve('https://wallet.example');
  try {
    assert.equal(await wsPing(s.port, { Origin: 'https://wallet.example' }), 'pong');
    assert.equal(await httpPing(s.port, { Origin: 'https://wallet.example' }), 200);
    assert.equal(await wsPing(s.port, { Origin: 'http://evil.example' }), 'refused 403');
  } finally {
    await s.close();
  }
});
