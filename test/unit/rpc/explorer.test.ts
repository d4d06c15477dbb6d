/**
 * The explorer's serving route (src/rpc/explorer.ts) and its page's source:
 * - GET /explorer, /explorer/ and each file answer with the right type and the security headers (CSP, nosniff…);
 * - no request path reaches anything but those files: `..`, encoded dots and slashes, NUL, dot files,
 *   subfolders and unknown kinds of file are 404, whatever the folder holds;
 * - a node serves the page with RPC, and not with `explorer: false` (--no-explorer);
 * - the page's scripts never write markup from strings (no innerHTML & co.), and its HTML has no inline
 *   script, handler or style, which the CSP would refuse anyway.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EXPLORER_CSP, loadExplorerFiles, serveExplorer } from '../../../src/rpc/explorer.js';
import { RpcDispatcher, RpcHttpServer } from '../../../src/rpc/server.js';
import { MeshNode } from '../../../src/node/node.js';
import { openMemory } from '../../../src/storage/kv.js';
import { ManualClock } from '../../../src/util/clock.js';
import { silentLogger } from '../../../src/util/log.js';
import { packageRoot } from '../../../src/util/schemas.js';
import { GENESIS_TIME } from '../../helpers/fixtures.js';
import { genesis } from '../chain/common.js';

const EXPLORER_DIR = path.join(packageRoot(), 'explorer');

/** A raw GET: the path goes on the wire exactly as given (no URL normalisation by a client). */
function get(port: number, rawPath: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'GET', path: rawPath }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function serve(files: ReturnType<typeof loadExplorerFiles>): Promise<{ port: number; close: () => Promise<void> }> {
  const dispatcher = new RpcDispatcher({ openrpc: { openrpc: '1.2.6', info: { title: 't', version: '0' }, methods: [] }, handlers: {} });
  const srv = new RpcHttpServer(dispatcher);
  serveExplorer(srv, files);
  const { port } = await srv.listen('127.0.0.1', 0);
  return { port, close: () => srv.close() };
}

test('GET /explorer and its files: types, CSP and the other security headers', async () => {
  const files = loadExplorerFiles(EXPLORER_DIR);
  assert.ok(files.has('index.html') && files.has('app.js') && files.has('style.css'), [...files.keys()].join(','));
  const s = await serve(files);
  try {
    for (const p of ['/explorer', '/explorer/', '/explorer/index.html', '/explorer?x=1']) {
      const r = await get(s.port, p);
      assert.equal(r.status, 200, p);
      assert.equal(r.headers['content-type'], 'text/html; charset=utf-8', p);
      assert.equal(r.body, readFileSync(path.join(EXPLORER_DIR, 'index.html'), 'utf8'));
    }
    for (const [name, type] of [['app.js', 'text/javascript; charset=utf-8'], ['style.css', 'text/css; charset=utf-8'], ['favicon.svg', 'image/svg+xml']] as const) {
      const r = await get(s.port, `/explorer/${name}`);
      assert.equal(r.status, 200, name);
      assert.equal(r.headers['content-type'], type, name);
      assert.equal(r.headers['content-security-policy'], EXPLORER_CSP, name);
      assert.equal(r.headers['x-content-type-options'], 'nosniff', name);
      assert.equal(r.headers['x-frame-options'], 'DENY', name);
      assert.equal(r.headers['referrer-policy'], 'no-referrer', name);
    }
    // The policy itself: this origin only, no inline script, no framing, Trusted Types for DOM sinks.
    const csp = Object.fromEntries(EXPLORER_CSP.split('; ').map((d) => [d.split(' ')[0], d.split(' ').slice(1).join(' ')]));
    assert.equal(csp['default-src'], "'none'");
    assert.equal(csp['script-src'], "'self'");
    assert.equal(csp['style-src'], "'self'");
    assert.equal(csp['connect-src'], "'self'");
    assert.equal(csp['frame-ancestors'], "'none'");
    assert.equal(csp['require-trusted-types-for'], "'script'");
    assert.ok(!EXPLORER_CSP.includes('unsafe'), 'no unsafe-inline / unsafe-eval');
  } finally {
    await s.close();
  }
});

test('no path outside the listed files is served: traversal, encodings, dot files, subfolders, other kinds', async () => {
  // A folder holding what must never be served next to what may be.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'explorer-test-'));
  const secret = 'SECRET-CONTENT-' + Math.random().toString(36).slice(2);
  try {
    writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>ok</title>');
    writeFileSync(path.join(dir, 'app.js'), 'export {};');
    writeFileSync(path.join(dir, '.env'), secret);
    writeFileSync(path.join(dir, 'notes.txt'), secret);
    writeFileSync(path.join(dir, 'App.JS'), secret);
    mkdirSync(path.join(dir, 'sub'));
    writeFileSync(path.join(dir, 'sub', 'x.js'), secret);
    mkdirSync(path.join(dir, 'dir.js'));
    writeFileSync(path.join(path.dirname(dir), `outside-${path.basename(dir)}.js`), secret);
    symlinkSync(path.join(dir, 'sub'), path.join(dir, 'link.js'));
    const files = loadExplorerFiles(dir);
    assert.deepEqual([...files.keys()].sort(), ['app.js', 'index.html']);
    const s = await serve(files);
    try {
      const probes = [
        '/explorer/../package.json', '/explorer/..%2fpackage.json', '/explorer/%2e%2e/package.json', '/explorer/%2E%2E%2Fpackage.json',
        '/explorer/..\\package.json', '/explorer//etc/passwd', '/explorer/app.js/..', '/explorer/./app.js', '/explorer/app.js%00',
        '/explorer/app.js/', '/explorer/.env', '/explorer/notes.txt', '/explorer/App.JS', '/explorer/sub/x.js', '/explorer/sub%2fx.js',
        '/explorer/dir.js', '/explorer/link.js', `/explorer/../outside-${path.basename(dir)}.js`, '/explorer/%61pp.js', '/Explorer', '/explorer.',
        '/explorer/index.html/../../package.json', '//explorer/app.js',
      ];
      for (const p of probes) {
        const r = await get(s.port, p);
        // 404 (not routed), or 400 where Node's HTTP parser refuses the request line itself.
        assert.ok(r.status === 404 || r.status === 400, `${p} → ${r.status}`);
        assert.ok(!r.body.includes(secret) && !r.body.includes('"name": "meshledger"'), p);
      }
      assert.equal((await get(s.port, '/explorer/app.js')).status, 200);
    } finally {
      await s.close();
    }
    rmSync(path.join(dir, 'index.html'));
    assert.throws(() => loadExplorerFiles(dir), /index\.html/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(path.join(path.dirname(dir), `outside-${path.basename(dir)}.js`), { force: true });
  }
});

test('a node serves the explorer with RPC, and not with explorer: false (--no-explorer)', async () => {
  const datadir = mkdtempSync(path.join(os.tmpdir(), 'explorer-node-'));
  try {
    for (const explorer of [undefined, false]) {
      const store = await openMemory();
      const node = await MeshNode.start({ datadir, genesis, metrics: false, rpc: { host: '127.0.0.1', port: 0 }, ...(explorer === false ? { explorer } : {}) }, {
        log: silentLogger, clock: new ManualClock(GENESIS_TIME + 1_000_000_000), openStore: async () => store,
      });
      try {
        const port = node.rpcAddress!.port;
        const page = await get(port, '/explorer');
        const js = await get(port, '/explorer/app.js');
        if (explorer === false) {
          assert.equal(page.status, 404);
          assert.equal(js.status, 404);
        } else {
          assert.equal(page.status, 200);
          assert.equal(js.status, 200);
          assert.equal(page.headers['content-security-policy'], EXPLORER_CSP);
        }
        assert.equal((await get(port, '/health')).status, 200, 'the rest of RPC is there either way');
      } finally {
        await node.stop();
      }
    }
  } finally {
    rmSync(datadir, { recursive: true, force: true });
  }
});

test('the page writes no markup from strings and has no inline script, handler or style', () => {
  const names = readdirSync(EXPLORER_DIR);
  const scripts = names.filter((n) => n.endsWith('.js'));
  assert.ok(scripts.length >= 4, scripts.join(','));
  for (const n of scripts) {
    const src = readFileSync(path.join(EXPLORER_DIR, n), 'utf8')
      .replace(/\/\/.*$/gm, '') // comments may name what they avoid
      .replace(/\/\*[\s\S]*?\*\//g, '');
    for (const sink of ['innerHTML', 'outerHTML', 'insertAdjacentHTML', 'document.write', 'eval(', 'new Function', 'setAttribute(\'on', 'srcdoc', 'createContextualFragment', 'DOMParser']) {
      assert.ok(!src.includes(sink), `${n} uses ${sink}`);
    }
    assert.ok(!/https?:\/\//.test(src), `${n} loads nothing from elsewhere`);
  }
  for (const n of names.filter((x) => x.endsWith('.html'))) {
    const html = readFileSync(path.join(EXPLORER_DIR, n), 'utf8');
    for (const m of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)) {
      assert.match(m[1]!, /\bsrc="\/explorer\/[a-z0-9.-]+\.js"/, `${n}: every script is a file of the explorer`);
      assert.equal(m[2]!.trim(), '', `${n}: no inline script`);
    }
    assert.ok(!/\son[a-z]+=/i.test(html), `${n}: no inline event handlers`);
    assert.ok(!/\sstyle=/i.test(html) && !/<style/i.test(html), `${n}: no inline styles`);
    assert.ok(!/(src|href)="(https?:)?\/\//i.test(html), `${n}: nothing from another origin`);
  }
  const css = readFileSync(path.join(EXPLORER_DIR, 'style.css'), 'utf8');
  assert.ok(!/url\(|@import/i.test(css), 'the stylesheet loads nothing');
});
