/**
 * JSON-RPC end-to-end tests against REAL node processes on 127.0.0.1 (HTTP and WebSocket on one port).
 *
 * One network for the whole file: validator A (RPC + P2P) and follower B (RPC + P2P, dials A), genesis funds
 * an in-process "faucet" key; a first transfer is confirmed before the tests so that blocks, history and
 * transaction lookups have real data.
 *
 *   1. JSON-RPC 2.0 spec examples (../shared/vectors/jsonrpc/jsonrpc2_spec_examples.json), their
 *      method-independent parts, over HTTP and over WebSocket; plus the spec's mixed batch with our methods;
 *   2. OpenRPC example replay: every method of schemas/openrpc.json is called with its example params (real
 *      addresses, heights, hashes, ids, node ids substituted; admin methods with the datadir token;
 *      subscribe/unsubscribe over WebSocket) and the real result is validated with ajv against the method's
 *      result schema — a documented method the node does not answer fails the test;
 *   3. subscriptions over a raw WebSocket: newHeads, transaction (pending → confirmed), account,
 *      pendingTransactions, unsubscribe, the per-connection limit, subscribe over HTTP;
 *   4. a client we did not write (npm json-rpc-2.0) over fetch;
 *   5. limits: 1 MiB body, 100-request batches, admin token, rpc.discover;
 *   6. the SDK (src/sdk/client.ts through src/index.ts): RpcClient / RpcWsClient typed calls and both error kinds.
 *
 * TEST_TIMEOUT_SCALE=N multiplies every bound on a slow machine; KEEP_TMP=1 keeps datadirs and node logs.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { JSONRPCClient, JSONRPCErrorException, type JSONRPCResponse } from 'json-rpc-2.0';
import { WebSocket } from 'ws';
import {
  encodeAddress, generateSecretKey, getPublicKey, RpcClient, RpcClientError, RpcTransportError, RpcWsClient,
  type AccountEvent, type NewHeadEvent, type TransactionStatus,
} from '../../src/index.js';
import {
  freePort, freePorts, Harness, HOST, REPO_ROOT, rpc, rpcError, scaled, signTransfer, waitFor,
  type KeyInfo, type NodeProc, type SignedTransfer,
} from '../../harness/proc.js';

const SLOT_MS = 250;
const SUPPLY = 10n ** 15n;
const MAX_SUBS = 32;
const MIB = 1024 * 1024;
const VECTORS = path.join(REPO_ROOT, '..', 'shared', 'vectors', 'jsonrpc', 'jsonrpc2_spec_examples.json');
const DOC_FILE = path.join(REPO_ROOT, 'schemas', 'openrpc.json');
const doc = JSON.parse(readFileSync(DOC_FILE, 'utf8')) as OpenRpcDoc;

interface OpenRpcExample { name: string; params: { name: string; value: unknown }[]; result?: { name: string; value: unknown } }
interface OpenRpcMethod { name: string; 'x-admin'?: boolean; params: unknown[]; result: { name: string; schema: unknown }; examples?: OpenRpcExample[] }
interface OpenRpcDoc { methods: OpenRpcMethod[]; components: { schemas: Record<string, unknown> } }

// ------------------------------------------------------------------------------------------------ schemas

/**
 * ajv over the document's components, compiled the way src/rpc/server.ts does it: component schemas go under
 * `definitions` of one schema, `#/components/schemas/X` refs point there, `x-*` annotations are dropped.
 */
class DocSchemas {
  static readonly ID = 'urn:test:openrpc:components';
  readonly #ajv = new Ajv({ strict: true, strictRequired: false, allowUnionTypes: true, allErrors: true });
  readonly #cache = new Map<string, ValidateFunction>();

  constructor(d: OpenRpcDoc) {
    const definitions: Record<string, unknown> = {};
    for (const [name, s] of Object.entries(d.components.schemas)) definitions[name] = DocSchemas.rewrite(s);
    this.#ajv.addSchema({ $id: DocSchemas.ID, definitions });
  }

  static rewrite(s: unknown): unknown {
    if (Array.isArray(s)) return s.map((x) => DocSchemas.rewrite(x));
    if (typeof s !== 'object' || s === null) return s;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(s)) {
      if (k.startsWith('x-')) continue;
      if (k === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/')) out.$ref = `${DocSchemas.ID}#/definitions/${v.slice('#/components/schemas/'.length)}`;
      else if (k === 'enum' || k === 'const' || k === 'default' || k === 'examples') out[k] = v;
      else out[k] = DocSchemas.rewrite(v);
    }
    return out;
  }

  /** Validator for a method's result schema. */
  result(method: string): ValidateFunction {
    const key = `method:${method}`;
    let v = this.#cache.get(key);
    if (!v) {
      const m = doc.methods.find((x) => x.name === method);
      assert.ok(m, `method ${method} is in the document`);
      v = this.#ajv.compile(DocSchemas.rewrite(m.result.schema) as object);
      this.#cache.set(key, v);
    }
    return v;
  }

  /** Validator for components.schemas[name]. */
  component(name: string): ValidateFunction {
    const key = `component:${name}`;
    let v = this.#cache.get(key);
    if (!v) {
      assert.ok(doc.components.schemas[name], `component schema ${name} exists`);
      v = this.#ajv.compile({ $ref: `${DocSchemas.ID}#/definitions/${name}` });
      this.#cache.set(key, v);
    }
    return v;
  }

  /** An ad-hoc schema that may reference components as `#/components/schemas/X`. */
  adHoc(schema: object): ValidateFunction {
    return this.#ajv.compile(DocSchemas.rewrite(schema) as object);
  }
}

const schemas = new DocSchemas(doc);

function assertValid(v: ValidateFunction, value: unknown, what: string): void {
  if (!v(value)) assert.fail(`${what} does not match its schema: ${JSON.stringify(v.errors)}\nvalue: ${JSON.stringify(value).slice(0, 2000)}`);
}

const ACCOUNT_EVENT = schemas.adHoc({
  type: 'object', additionalProperties: false, required: ['address', 'balance', 'nonce', 'height'],
  properties: {
    address: { $ref: '#/components/schemas/Address' }, balance: { $ref: '#/components/schemas/Amount' },
    nonce: { $ref: '#/components/schemas/Amount' }, height: { $ref: '#/components/schemas/Uint' },
  },
});
const APP_ERROR_DATA = schemas.component('ErrorData');

// ------------------------------------------------------------------------------------------------ helpers

function memKey(): KeyInfo {
  const secretKey = generateSecretKey();
  const publicKey = getPublicKey(secretKey);
  return { file: '', address: encodeAddress(publicKey), publicKey, secretKey };
}

interface Posted { status: number; text: string; json: any; headers: Headers }

/** POST a raw body to a node's RPC port. */
async function post(port: number, body: string, headers: Record<string, string> = {}): Promise<Posted> {
  const res = await fetch(`http://${HOST}:${port}/`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body, signal: AbortSignal.timeout(scaled(20_000)),
  });
  const text = await res.text();
  let json: any;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json, headers: res.headers };
}

/** A single JSON-RPC response object: jsonrpc "2.0", an id member, exactly one of result / error. */
function assertEnvelope(r: any, what: string): void {
  assert.ok(typeof r === 'object' && r !== null && !Array.isArray(r), `${what}: a response object, got ${JSON.stringify(r)}`);
  assert.equal(r.jsonrpc, '2.0', `${what}: jsonrpc "2.0"`);
  assert.ok(Object.hasOwn(r, 'id'), `${what}: has an id member`);
  assert.notEqual(Object.hasOwn(r, 'result'), Object.hasOwn(r, 'error'), `${what}: exactly one of result / error`);
  if (r.error) {
    assert.ok(Number.isInteger(r.error.code) && typeof r.error.message === 'string', `${what}: error has integer code and string message`);
    if (r.error.code <= -32000 && r.error.code >= -32099) assertValid(APP_ERROR_DATA, r.error.data, `${what}: application error data`);
  }
}

/** A raw WebSocket JSON-RPC peer: every message kept, requests matched by id, notifications by subscription. */
class WsProbe {
  readonly messages: any[] = [];
  readonly notes = new Map<string, any[]>();
  readonly #waiters = new Set<() => void>();
  #id = 0;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const m = JSON.parse(data.toString('utf8'));
      this.messages.push(m);
      if (m && m.method === 'subscription') {
        const list = this.notes.get(m.params.subscription) ?? [];
        list.push(m);
        this.notes.set(m.params.subscription, list);
      }
      for (const w of [...this.#waiters]) w();
    });
  }

  static open(port: number, headers: Record<string, string> = {}): Promise<WsProbe> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://${HOST}:${port}/`, { headers, perMessageDeflate: false });
      ws.once('open', () => resolve(new WsProbe(ws)));
      ws.once('error', reject);
    });
  }

  /** Wait until `pick` finds something among the messages (re-checked on every new message). */
  waitMessage<T>(pick: () => T | undefined, what: string, timeoutMs = scaled(15_000)): Promise<T> {
    const now = pick();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`WebSocket: timed out after ${timeoutMs} ms waiting for ${what}; last messages: ${JSON.stringify(this.messages.slice(-5)).slice(0, 1500)}`));
      }, timeoutMs);
      const check = () => {
        const v = pick();
        if (v === undefined) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(v);
      };
      this.#waiters.add(check);
    });
  }

  /** Send a request with a fresh string id; resolves to the whole response envelope. */
  async request(method: string, params?: unknown): Promise<any> {
    const id = `probe-${++this.#id}`;
    const from = this.messages.length;
    this.ws.send(JSON.stringify(params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params }));
    return this.waitMessage(() => this.messages.slice(from).find((m) => !Array.isArray(m) && m?.id === id), `the answer to ${method} (${id})`);
  }

  async result(method: string, params?: unknown): Promise<any> {
    const r = await this.request(method, params);
    if (r.error) assert.fail(`${method} over WebSocket failed: ${JSON.stringify(r.error)}`);
    return r.result;
  }

  /** The next message after index `from`. */
  messageAfter(from: number, what: string): Promise<any> {
    return this.waitMessage(() => (this.messages.length > from ? this.messages[from] : undefined), what);
  }

  /** Wait for the `n`-th notification of a subscription (1-based); returns all of them so far. */
  waitNotes(sub: string, n: number, what: string, timeoutMs = scaled(15_000)): Promise<any[]> {
    return this.waitMessage(() => ((this.notes.get(sub)?.length ?? 0) >= n ? this.notes.get(sub)! : undefined), what, timeoutMs);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) return resolve();
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}

/** An HTTP server on 127.0.0.1 that answers every request with `fn` (for the SDK's transport errors). */
async function fakeServer(fn: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<{ url: string; close(): Promise<void> }> {
  const srv = http.createServer(fn);
  await new Promise<void>((r) => srv.listen(0, HOST, r));
  const url = `http://${HOST}:${(srv.address() as AddressInfo).port}/`;
  return { url, close: () => new Promise((r) => { srv.closeAllConnections(); srv.close(() => r()); }) };
}

// ------------------------------------------------------------------------------------------------ the network

describe('JSON-RPC over HTTP and WebSocket against real nodes', { timeout: scaled(180_000) }, () => {
  const h = new Harness();
  after(() => h.cleanup());

  let A: NodeProc;
  let B: NodeProc;
  let port: number; // A's RPC port
  let token: string;
  let chainId: string;
  let validatorAddress: string;
  const faucet = memKey();
  let faucetNonce = 0n;
  /** The transfer confirmed during setup, and where. */
  let first: SignedTransfer;
  let firstBlock: { height: number; hash: string };
  let bNodeId: string;
  let startedAt = 0;

  /** The next transfer from the faucet (consumes a nonce: send it). */
  const transfer = (to: string, amount: bigint, memo = ''): SignedTransfer =>
    signTransfer({ from: faucet, to, amount, nonce: faucetNonce++, chainId, memo });

  const waitConfirmed = (id: string, what = `transaction ${id.slice(0, 12)} confirmed`): Promise<any> =>
    waitFor(async () => {
      const s = await rpc(port, 'getTransaction', { id });
      return s.status === 'confirmed' ? s : undefined;
    }, scaled(20_000), what, [A]);

  before(async () => {
    startedAt = Date.now();
    const v = await h.keygen('validator');
    validatorAddress = v.address;
    const g = await h.genesis({ validators: [v], alloc: [[faucet.address, SUPPLY]], slotMs: SLOT_MS, chainId: 'rpc-e2e' });
    chainId = g.chainId;
    const [pA, pB] = await freePorts(2);
    A = await h.startNode({ name: 'A', genesis: g.file, key: v.file, p2pPort: pA! });
    B = await h.startNode({ name: 'B', genesis: g.file, p2pPort: pB!, bootnodes: [A.p2pUrl!] });
    port = A.rpcPort!;
    token = (await readFile(path.join(A.datadir, 'admin.token'), 'utf8')).trim();
    assert.match(token, /^[0-9a-f]{64}$/, 'admin token in the datadir');
    bNodeId = (await B.rpc('getNodeInfo')).nodeId;
    await h.waitFor(async () => (await A.rpc('getPeers')).some((p: any) => p.nodeId === bNodeId), scaled(20_000), 'B connected to A', [A, B]);
    first = transfer(memKey().address, 1_000n, 'setup');
    assert.equal(await A.rpc('sendTransaction', { tx: first.hex }), first.id);
    const st = await waitConfirmed(first.id);
    firstBlock = { height: st.blockHeight, hash: st.blockHash };
  });

  // ---------------------------------------------------------------------------------------------- 1. spec

  const vectorsSkip = existsSync(VECTORS) ? false : `vectors not found at ${VECTORS} (shared/ is not beside the repository)`;
  type SpecEntry = { name: string; request: string; expected: any; method_dependent: string; method_independent: string };
  const loadVectors = (): SpecEntry[] => {
    const entries = JSON.parse(readFileSync(VECTORS, 'utf8')) as SpecEntry[];
    assert.ok(Array.isArray(entries) && entries.length >= 10, 'the vectors file holds the spec examples');
    for (const e of entries) {
      assert.equal(typeof e.request, 'string', `${e.name}: raw request text`);
      assert.equal(typeof e.method_independent, 'string', `${e.name}: has method_independent`);
    }
    return entries;
  };

  /**
   * Check a parsed answer (undefined = no answer) against a spec example's method-independent part: the spec's
   * methods (subtract, sum, get_data, …) do not exist here, so where the spec expects a result we expect
   * -32601 with the same id; errors must have the spec's code and id; notifications get nothing.
   */
  function checkSpec(e: SpecEntry, got: any): void {
    const what = e.name;
    const expectOne = (exp: any, r: any, w: string) => {
      assertEnvelope(r, w);
      assert.deepStrictEqual(r.id, exp.id, `${w}: id echoed with its type (${JSON.stringify(exp.id)})`);
      const code = exp.error ? exp.error.code : -32601;
      assert.ok(r.error, `${w}: an error (the spec's method does not exist here), got ${JSON.stringify(r)}`);
      assert.equal(r.error.code, code, `${w}: error code ${code}, got ${JSON.stringify(r.error)}`);
    };
    if (e.expected === null) {
      assert.equal(got, undefined, `${what}: no response at all`);
    } else if (Array.isArray(e.expected)) {
      assert.ok(Array.isArray(got), `${what}: an ARRAY of responses, got ${JSON.stringify(got)}`);
      assert.equal(got.length, e.expected.length, `${what}: ${e.expected.length} responses`);
      const nullIds = got.filter((r: any) => r?.id === null);
      for (const exp of e.expected) {
        if (exp.id === null) continue;
        const matches: any[] = got.filter((r: any) => r?.id === exp.id);
        assert.equal(matches.length, 1, `${what}: id ${JSON.stringify(exp.id)} answered exactly once`);
        expectOne(exp, matches[0], `${what} id ${JSON.stringify(exp.id)}`);
      }
      const expNull = e.expected.filter((x: any) => x.id === null);
      assert.equal(nullIds.length, expNull.length, `${what}: ${expNull.length} responses with id null`);
      expNull.forEach((exp: any, i: number) => expectOne(exp, nullIds[i], `${what} null-id response ${i}`));
    } else {
      assert.ok(!Array.isArray(got), `${what}: ONE response object, not an array`);
      expectOne(e.expected, got, what);
    }
  }

  it('answers every JSON-RPC 2.0 spec example (method-independent parts) over HTTP', { skip: vectorsSkip }, async (t) => {
    const entries = loadVectors();
    const kinds = new Set<string>();
    for (const e of entries) {
      const r = await post(port, e.request);
      if (e.expected === null) {
        assert.equal(r.status, 204, `${e.name}: HTTP 204 for nothing to answer, got ${r.status} ${r.text}`);
        assert.equal(r.text, '', `${e.name}: empty body`);
      } else {
        assert.equal(r.status, 200, `${e.name}: HTTP 200`);
        assert.match(r.headers.get('content-type') ?? '', /^application\/json/, `${e.name}: JSON content type`);
      }
      checkSpec(e, r.json);
      // Which of the brief's categories this entry covers.
      const req = e.request.trim();
      if (e.expected?.error?.code === -32700) kinds.add('parse_error');
      if (!Array.isArray(e.expected) && e.expected?.error?.code === -32600 && req === '[]') kinds.add('empty_batch');
      else if (!Array.isArray(e.expected) && e.expected?.error?.code === -32600) kinds.add('invalid_request');
      if (req === '[1]') kinds.add('batch_[1]');
      if (req === '[1,2,3]') kinds.add('batch_[1,2,3]');
      if (Array.isArray(e.expected) && e.expected.some((x: any) => x.result !== undefined)) kinds.add('mixed_batch');
      if (e.expected === null && req.startsWith('[')) kinds.add('all_notification_batch');
      if (e.expected?.error?.code === -32601) kinds.add('unknown_method');
    }
    for (const k of ['parse_error', 'invalid_request', 'empty_batch', 'batch_[1]', 'batch_[1,2,3]', 'mixed_batch', 'all_notification_batch', 'unknown_method']) {
      assert.ok(kinds.has(k), `the vectors include a "${k}" example`);
    }
    t.diagnostic(`${entries.length} spec examples checked over HTTP`);
  });

  it('answers the same spec examples over WebSocket (nothing at all for notifications)', { skip: vectorsSkip }, async (t) => {
    const entries = loadVectors();
    const ws = await WsProbe.open(port);
    try {
      for (const e of entries) {
        const from = ws.messages.length;
        ws.ws.send(e.request);
        if (e.expected === null) {
          // Nothing may come back: a request sent after it is answered, and nothing else arrives meanwhile.
          const probe = await ws.request('getHealth');
          assert.equal(probe.error, undefined);
          assert.deepEqual(ws.messages.slice(from), [probe], `${e.name}: no message for a notification`);
        } else {
          checkSpec(e, await ws.messageAfter(from, `the answer to "${e.name}"`));
        }
      }
      // A last round trip: no late answer to any notification has arrived.
      const n = ws.messages.length;
      await ws.request('getHealth');
      assert.equal(ws.messages.length, n + 1, 'no stray messages');
      t.diagnostic(`${entries.length} spec examples checked over WebSocket`);
    } finally {
      await ws.close();
    }
  });

  it('answers the spec\'s mixed batch with real methods substituted (results, notification, invalid entries)', async () => {
    const batch = [
      { jsonrpc: '2.0', method: 'getChainInfo', params: [], id: '1' },
      { jsonrpc: '2.0', method: 'getHealth', params: [] }, // a notification: no answer
      { jsonrpc: '2.0', method: 'getBlockHeader', params: { height: 0 }, id: '2' },
      { foo: 'boo' },
      { jsonrpc: '2.0', method: 'foo.get', params: { name: 'myself' }, id: '5' },
      { jsonrpc: '2.0', method: 'getVersion', id: '9' },
    ];
    const r = await post(port, JSON.stringify(batch));
    assert.equal(r.status, 200);
    assert.ok(Array.isArray(r.json), 'an array');
    assert.equal(r.json.length, 5, 'six entries minus one notification');
    for (const x of r.json) assertEnvelope(x, 'batch entry');
    const byId = (id: unknown) => r.json.filter((x: any) => x.id === id);
    assertValid(schemas.result('getChainInfo'), byId('1')[0]?.result, 'getChainInfo in a batch');
    assert.equal(byId('1')[0].result.chainId, chainId);
    const genesisHeader = byId('2')[0]?.result;
    assertValid(schemas.result('getBlockHeader'), genesisHeader, 'getBlockHeader in a batch');
    assert.equal(genesisHeader.height, 0);
    assert.equal(genesisHeader.hash, (await rpc(port, 'getChainInfo')).genesisHash, 'block 0 is the genesis block');
    assert.equal(byId('5')[0]?.error?.code, -32601, 'foo.get: method not found');
    assertValid(schemas.result('getVersion'), byId('9')[0]?.result, 'getVersion in a batch');
    const invalid = byId(null);
    assert.equal(invalid.length, 1);
    assert.equal(invalid[0].error.code, -32600, '{"foo":"boo"} is an invalid request');
  });

  it('all-notification batch: HTTP 204 with an empty body, even for methods that exist', async () => {
    const r = await post(port, JSON.stringify([{ jsonrpc: '2.0', method: 'getChainInfo' }, { jsonrpc: '2.0', method: 'getHealth', params: {} }]));
    assert.equal(r.status, 204);
    assert.equal(r.text, '');
  });

  // ---------------------------------------------------------------------------------------------- 2. OpenRPC replay

  it('replays every OpenRPC example against the node and validates each real result against the method\'s schema', async (t) => {
    const ws = await WsProbe.open(port);
    const admin = { authorization: `Bearer ${token}` };
    const bInfo = await B.rpc('getNodeInfo');
    let lastSubscription: string | undefined;
    let sentTx: SignedTransfer | undefined;
    const answered = new Map<string, number>();
    try {
      // Real values for example params that need existing data, by param name.
      const real: Record<string, () => unknown> = {
        address: () => faucet.address, // funded in the genesis alloc
        height: () => firstBlock.height,
        hash: () => firstBlock.hash,
        id: () => first.id,
        tx: () => (sentTx = transfer(memKey().address, 777n, 'openrpc example')).hex,
        nodeId: () => bInfo.nodeId,
        url: () => B.p2pUrl,
        subscription: () => lastSubscription,
      };
      // Ban before listing, so adminListBans has an entry to validate; lift the ban last.
      const order = (m: OpenRpcMethod) => (m.name === 'adminUnbanPeer' ? 1 : 0);
      const methods = [...doc.methods].sort((a, b) => order(a) - order(b));
      assert.ok(methods.length >= 20, `the document lists the node's methods (${methods.length})`);
      for (const m of methods) {
        assert.ok(m.examples && m.examples.length > 0, `method ${m.name} has at least one example to replay`);
        for (const ex of m.examples!) {
          const what = `${m.name} example "${ex.name}"`;
          // The example's own result must match the schema too (documentation drift).
          if (ex.result) assertValid(schemas.result(m.name), ex.result.value, `${what}: the documented example result`);
          const params: Record<string, unknown> = {};
          for (const p of ex.params) params[p.name] = Object.hasOwn(real, p.name) ? real[p.name]!() : p.value;
          let env: any;
          if (m.name === 'subscribe' || m.name === 'unsubscribe') {
            env = await ws.request(m.name, params);
          } else {
            env = (await post(port, JSON.stringify({ jsonrpc: '2.0', id: 1, method: m.name, params }), m['x-admin'] ? admin : {})).json;
          }
          assertEnvelope(env, what);
          if (env.error) assert.fail(`${what}: the node did not answer it with a result: ${JSON.stringify(env.error)} (params ${JSON.stringify(params)})`);
          assertValid(schemas.result(m.name), env.result, `${what}: the node's result`);
          answered.set(m.name, (answered.get(m.name) ?? 0) + 1);
          const res = env.result;
          switch (m.name) {
            case 'subscribe': lastSubscription = res; break;
            case 'unsubscribe': assert.equal(res, true, 'the subscription just made is removed'); break;
            case 'sendTransaction': assert.equal(res, sentTx!.id, 'the id of the bytes sent'); break;
            case 'getTransaction': assert.equal(res.status, 'confirmed'); assert.equal(res.blockHash, firstBlock.hash); break;
            case 'getBlockHeader': case 'getBlock': assert.equal(res.hash, firstBlock.hash); break;
            case 'getAccount': case 'getBalance': assert.equal(res.address, faucet.address); break;
            case 'getAccountTransactions': assert.ok(res.transactions.length >= 1, 'the faucet has history'); break;
            case 'getPeers': assert.ok(res.some((p: any) => p.nodeId === bInfo.nodeId), 'B is a peer of A'); break;
            case 'getNodeInfo': assert.equal(res.validator, validatorAddress); break;
            case 'adminListBans': assert.ok(res.some((b: any) => b.nodeId === bInfo.nodeId), 'the ban just made is listed'); break;
            case 'adminUnbanPeer': assert.equal(res, true, 'the ban is lifted'); break;
            default: break;
          }
        }
      }
      const missing = doc.methods.map((m) => m.name).filter((n) => !answered.has(n));
      assert.deepEqual(missing, [], 'every documented method was answered');
      // The node serves exactly the documented methods (rpc.discover with the admin token).
      const served = (await post(port, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'rpc.discover' }), admin)).json.result;
      assert.deepEqual(served.methods.map((x: any) => x.name).sort(), doc.methods.map((x) => x.name).sort());
      t.diagnostic(`${[...answered.values()].reduce((a, b) => a + b, 0)} examples of ${answered.size} methods replayed and validated`);
    } finally {
      await ws.close();
    }
  });

  // ---------------------------------------------------------------------------------------------- 3. subscriptions

  it('subscriptions over a WebSocket: newHeads, transaction pending → confirmed, account, pendingTransactions, unsubscribe', async (t) => {
    const ws = await WsProbe.open(port);
    try {
      const heads = await ws.result('subscribe', { topic: 'newHeads' });
      assert.match(heads, /^0x[0-9a-f]{16}$/);
      const t0 = Date.now();
      const notes = await ws.waitNotes(heads, 4, '4 newHeads notifications');
      const headMs = (Date.now() - t0) / 4;
      for (const n of notes) {
        assert.deepEqual(Object.keys(n).sort(), ['jsonrpc', 'method', 'params']);
        assert.equal(n.jsonrpc, '2.0');
        assert.ok(!Object.hasOwn(n, 'id'), 'a notification has no id');
        assert.deepEqual(Object.keys(n.params).sort(), ['result', 'subscription']);
        const { reorgDepth, ...header } = n.params.result as NewHeadEvent;
        assert.equal(reorgDepth, 0, 'one validator: no reorgs');
        assertValid(schemas.component('BlockHeader'), header, 'newHeads result');
      }
      const hs = notes.map((n) => n.params.result.height as number);
      for (let i = 1; i < hs.length; i++) assert.equal(hs[i], hs[i - 1]! + 1, `consecutive heads: ${hs.join(',')}`);
      const last = notes[notes.length - 1].params.result;
      assert.equal((await rpc(port, 'getBlockHeader', { height: last.height })).hash, last.hash, 'the notified head is the block at that height');

      // A transfer to a new account, watched three ways.
      const to = memKey();
      const tx = transfer(to.address, 4_321n, 'watched');
      const txSub = await ws.result('subscribe', { topic: 'transaction', id: tx.id });
      const accSub = await ws.result('subscribe', { topic: 'account', address: to.address });
      const poolSub = await ws.result('subscribe', { topic: 'pendingTransactions' });
      assert.equal(new Set([heads, txSub, accSub, poolSub]).size, 4, 'distinct subscription ids');
      const sentAt = Date.now();
      assert.equal(await rpc(port, 'sendTransaction', { tx: tx.hex }), tx.id);
      const txNotes = await ws.waitNotes(txSub, 2, 'transaction: pending then confirmed', scaled(20_000));
      const confirmedMs = Date.now() - sentAt;
      const [pending, confirmed] = txNotes.map((n) => n.params.result as TransactionStatus);
      for (const s of [pending, confirmed]) assertValid(schemas.component('TransactionStatus'), s, 'transaction notification');
      assert.equal(pending!.status, 'pending');
      assert.equal(pending!.id, tx.id);
      assert.equal(confirmed!.status, 'confirmed');
      if (confirmed!.status !== 'confirmed') return;
      assert.equal(confirmed.id, tx.id);
      assert.ok(confirmed.confirmations >= 1);
      assert.equal(confirmed.transaction.amount, '4321');
      assert.equal(confirmed.transaction.memo, 'watched');
      assert.equal((await rpc(port, 'getBlock', { height: confirmed.blockHeight })).hash, confirmed.blockHash);

      const accNote = (await ws.waitNotes(accSub, 1, 'account notification'))[0].params.result as AccountEvent;
      assertValid(ACCOUNT_EVENT, accNote, 'account notification');
      assert.deepEqual({ ...accNote, height: 0 }, { address: to.address, balance: '4321', nonce: '0', height: 0 });
      assert.ok(accNote.height >= confirmed.blockHeight, 'reported at or after the including block');

      const poolNote = await ws.waitMessage(() => ws.notes.get(poolSub)?.find((n) => n.params.result.id === tx.id), 'pendingTransactions notification');
      assertValid(schemas.component('Transaction'), poolNote.params.result, 'pendingTransactions notification');
      assert.equal(poolNote.params.result.to, to.address);

      // Unsubscribe: no newHeads after the answer, even while blocks keep coming.
      assert.equal(await ws.result('unsubscribe', { subscription: heads }), true);
      const countAfter = ws.notes.get(heads)!.length;
      const h0 = (await rpc(port, 'getChainInfo')).height;
      await h.waitForHeight(A, h0 + 3);
      await ws.result('getHealth'); // anything sent before this answer has arrived
      assert.equal(ws.notes.get(heads)!.length, countAfter, 'no newHeads after unsubscribe');
      assert.equal(await ws.result('unsubscribe', { subscription: heads }), false, 'a second unsubscribe finds nothing');
      const unknown = await ws.request('unsubscribe', { subscription: '0x0000000000000000' });
      assert.equal(unknown.result, false);
      t.diagnostic(`newHeads every ~${headMs.toFixed(0)} ms (slot ${SLOT_MS} ms); send → confirmed notification ${confirmedMs} ms`);
    } finally {
      await ws.close();
    }
  });

  it(`at most ${MAX_SUBS} subscriptions per connection (-32007 too_many_subscriptions); subscribe over HTTP is -32007 websocket_required`, async () => {
    const ws = await WsProbe.open(port);
    try {
      // One batch of MAX_SUBS subscribe requests.
      const from = ws.messages.length;
      ws.ws.send(JSON.stringify(Array.from({ length: MAX_SUBS }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'subscribe', params: { topic: 'pendingTransactions' } }))));
      const answers = await ws.waitMessage(() => ws.messages.slice(from).find((m) => Array.isArray(m)), 'the batch answer');
      assert.equal(answers.length, MAX_SUBS);
      for (const a of answers) assert.match(a.result, /^0x[0-9a-f]{16}$/, `subscribe ${a.id}: ${JSON.stringify(a)}`);
      assert.equal(new Set(answers.map((a: any) => a.result)).size, MAX_SUBS, 'distinct ids');
      const over = await ws.request('subscribe', { topic: 'newHeads' });
      assertEnvelope(over, 'subscription over the limit');
      assert.equal(over.error?.code, -32007);
      assert.equal(over.error.data.rule, 'too_many_subscriptions');
      // Freeing one makes room for one.
      assert.equal(await ws.result('unsubscribe', { subscription: answers[0].result }), true);
      assert.match(await ws.result('subscribe', { topic: 'newHeads' }), /^0x/);
      assert.equal((await ws.request('subscribe', { topic: 'newHeads' })).error?.data?.rule, 'too_many_subscriptions');
    } finally {
      await ws.close();
    }
    // A new connection starts from zero.
    const ws2 = await WsProbe.open(port);
    try {
      assert.match(await ws2.result('subscribe', { topic: 'newHeads' }), /^0x/);
    } finally {
      await ws2.close();
    }
    for (const params of [{ topic: 'newHeads' }, ['newHeads']]) {
      const e = await rpcError(port, 'subscribe', params);
      assert.equal(e.code, -32007);
      assert.equal(e.data?.rule, 'websocket_required');
    }
    const e = await rpcError(port, 'unsubscribe', { subscription: '0x0000000000000000' });
    assert.equal(e.code, -32007);
    assert.equal(e.data?.rule, 'websocket_required');
  });

  // ---------------------------------------------------------------------------------------------- 4. json-rpc-2.0

  it('works with a client library we did not write (npm json-rpc-2.0 JSONRPCClient over fetch)', async () => {
    const url = `http://${HOST}:${port}/`;
    const client: JSONRPCClient = new JSONRPCClient(async (request) => {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
      if (res.status === 200) client.receive((await res.json()) as JSONRPCResponse);
      else if (request.id !== undefined) throw new Error(`HTTP ${res.status}`);
    });
    const info = await client.request('getChainInfo', {});
    assertValid(schemas.result('getChainInfo'), info, 'getChainInfo via json-rpc-2.0');
    assert.equal(info.chainId, chainId);
    assert.deepEqual(info.validators, [validatorAddress]);

    const acc = await client.request('getAccount', { address: faucet.address });
    assertValid(schemas.result('getAccount'), acc, 'getAccount via json-rpc-2.0');
    assert.equal(acc.address, faucet.address);
    assert.ok(BigInt(acc.balance) < SUPPLY && BigInt(acc.balance) > 0n, 'the faucet paid for transfers');
    assert.ok(BigInt(acc.nextNonce) >= 1n);

    const fails = async (tx: SignedTransfer, code: number, rule: string) => {
      await assert.rejects(Promise.resolve(client.request('sendTransaction', { tx: tx.hex })), (e: unknown) => {
        assert.ok(e instanceof JSONRPCErrorException, `a JSONRPCErrorException, got ${String(e)}`);
        assert.equal(e.code, code, `code ${code}: ${e.message} ${JSON.stringify(e.data)}`);
        assert.equal(e.data?.rule, rule);
        return true;
      });
    };
    // A consensus-rule failure (-32002) and a mempool refusal (-32003).
    await fails(signTransfer({ from: faucet, to: faucet.address, amount: 1n, nonce: faucetNonce, chainId: 'another-chain' }), -32002, 'wrong_chain');
    await fails(signTransfer({ from: memKey(), to: faucet.address, amount: 5n, nonce: 0n, chainId }), -32003, 'insufficient_funds');
    await fails(signTransfer({ from: faucet, to: faucet.address, amount: 99n, nonce: 0n, chainId }), -32003, 'nonce_too_low');
  });

  // ---------------------------------------------------------------------------------------------- 5. limits

  it('limits: a body over 1 MiB is HTTP 413; a batch over 100 is -32600; 100 is served', async (t) => {
    const envelope = (pad: number) => `{"jsonrpc":"2.0","id":1,"method":"getHealth","params":{"pad":"${'x'.repeat(pad)}"}}`;
    const base = envelope(0).length;
    const atLimit = envelope(MIB - base);
    assert.equal(Buffer.byteLength(atLimit), MIB);
    const ok = await post(port, atLimit);
    assert.equal(ok.status, 200, 'exactly 1 MiB is read and dispatched');
    assert.equal(ok.json.error?.code, -32602, 'unknown param "pad" (the body was parsed)');

    const big = envelope(MIB - base + 1);
    const t0 = Date.now();
    const r = await post(port, big);
    assert.equal(r.status, 413, `1 MiB + 1 byte: HTTP 413, got ${r.status}`);
    assertEnvelope(r.json, '413 body');
    assert.equal(r.json.error.code, -32600);
    assert.equal(r.json.error.data?.rule, 'body_too_large');
    assert.equal(r.json.id, null);
    t.diagnostic(`413 answered in ${Date.now() - t0} ms`);

    // Without Content-Length (chunked): the limit is enforced while reading.
    const chunked = await fetch(`http://${HOST}:${port}/`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, duplex: 'half',
      body: new ReadableStream({
        start(ctl) {
          const bytes = Buffer.from(big);
          for (let i = 0; i < bytes.length; i += 64 * 1024) ctl.enqueue(bytes.subarray(i, i + 64 * 1024));
          ctl.close();
        },
      }),
      signal: AbortSignal.timeout(scaled(20_000)),
    } as RequestInit);
    assert.equal(chunked.status, 413, 'chunked 1 MiB + 1 byte: HTTP 413');
    assert.equal(JSON.parse(await chunked.text()).error.data?.rule, 'body_too_large');

    const batch = (n: number) => JSON.stringify(Array.from({ length: n }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'getHealth' })));
    const over = await post(port, batch(101));
    assert.equal(over.status, 200);
    assert.ok(!Array.isArray(over.json), 'one error object, not an array');
    assertEnvelope(over.json, 'batch of 101');
    assert.equal(over.json.error.code, -32600);
    assert.equal(over.json.error.data?.rule, 'batch_too_large');
    assert.equal(over.json.id, null);
    const full = await post(port, batch(100));
    assert.ok(Array.isArray(full.json));
    assert.equal(full.json.length, 100);
    assert.deepEqual(full.json.map((x: any) => x.id).sort((a: number, b: number) => a - b), Array.from({ length: 100 }, (_, i) => i));
    for (const x of full.json) assertValid(schemas.result('getHealth'), x.result, 'getHealth in a batch of 100');
    // The node is still fine.
    assert.equal((await rpc(port, 'getChainInfo')).chainId, chainId);
  });

  it('an address with a bad checksum (right shape) is -32602 invalid_params, not -32603', async () => {
    // The Address schema pattern checks the shape only; the node must refuse a mistyped address as a bad param.
    const good = faucet.address;
    const bad = good.slice(0, -1) + (good.endsWith('q') ? 'p' : 'q');
    assert.match(bad, new RegExp(String((doc.components.schemas.Address as { pattern: string }).pattern)), 'the typo keeps the schema shape');
    for (const [method, params] of [['getAccount', { address: bad }], ['getBalance', { address: bad }], ['getAccountTransactions', { address: bad }]] as const) {
      const r = await post(port, JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }));
      assertEnvelope(r.json, method);
      assert.equal(r.json.error?.code, -32602, `${method} with a bad-checksum address: -32602, got ${r.text}`);
      assert.equal(r.json.error.data?.rule, 'invalid_params');
      assert.equal(r.json.error.data?.param, 'address');
    }
    const ws = await WsProbe.open(port);
    try {
      const r = await ws.request('subscribe', { topic: 'account', address: bad });
      assert.equal(r.error?.code, -32602, `subscribe account with a bad-checksum address: -32602, got ${JSON.stringify(r)}`);
      assert.equal(r.error.data?.param, 'address');
    } finally {
      await ws.close();
    }
  });

  it('admin methods exist only with the datadir token; rpc.discover returns the document (admin part only with the token)', async () => {
    const adminNames = doc.methods.filter((m) => m['x-admin']).map((m) => m.name);
    assert.ok(adminNames.length >= 5, 'the document marks admin methods');
    const call = (method: string, headers: Record<string, string> = {}, params?: unknown) =>
      post(port, JSON.stringify({ jsonrpc: '2.0', id: 7, method, ...(params === undefined ? {} : { params }) }), headers);
    const noAdmin: Record<string, string>[] = [{}, { authorization: `Bearer ${'0'.repeat(64)}` }, { authorization: token }, { authorization: `Basic ${token}` }];
    for (const headers of noAdmin) {
      for (const name of adminNames) {
        const r = await call(name, headers, name === 'adminListBans' ? {} : undefined);
        assert.equal(r.json.error?.code, -32601, `${name} with ${JSON.stringify(headers)}: method not found, got ${r.text}`);
      }
      const pub = (await call('rpc.discover', headers)).json.result;
      assert.deepEqual(pub, { ...doc, methods: doc.methods.filter((m) => !m['x-admin']) }, 'without the token: the document minus admin methods');
    }
    const admin = { authorization: `Bearer ${token}` };
    const bans = await call('adminListBans', admin, {});
    assertValid(schemas.result('adminListBans'), bans.json.result, 'adminListBans with the token');
    const full = (await call('rpc.discover', admin)).json.result;
    assert.deepEqual(full, doc, 'with the token: the whole document');
    // The same over WebSocket: the token travels in the upgrade request.
    const wsAdmin = await WsProbe.open(port, admin);
    const wsPlain = await WsProbe.open(port);
    try {
      assertValid(schemas.result('adminListBans'), await wsAdmin.result('adminListBans'), 'adminListBans over WebSocket');
      assert.equal((await wsPlain.request('adminListBans')).error?.code, -32601);
      assert.deepEqual(await wsPlain.result('rpc.discover'), { ...doc, methods: doc.methods.filter((m) => !m['x-admin']) });
    } finally {
      await wsAdmin.close();
      await wsPlain.close();
    }
  });

  // ---------------------------------------------------------------------------------------------- 6. the SDK

  it('RpcClient: typed calls against the real node', async (t) => {
    const c = new RpcClient(`http://${HOST}:${port}/`);
    const t0 = performance.now();
    const health = await c.getHealth();
    assertValid(schemas.result('getHealth'), health, 'getHealth');
    const version = await c.getVersion();
    assertValid(schemas.result('getVersion'), version, 'getVersion');
    assert.equal(version.version, JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')).version);
    const node = await c.getNodeInfo();
    assertValid(schemas.result('getNodeInfo'), node, 'getNodeInfo');
    assert.equal(node.validator, validatorAddress);
    assert.match(node.nodeId ?? '', /^[0-9a-f]{64}$/);
    const chain = await c.getChainInfo();
    assertValid(schemas.result('getChainInfo'), chain, 'getChainInfo');
    assert.equal(chain.chainId, chainId);
    assert.equal(chain.slotMs, SLOT_MS);

    const ids = await c.getBlock({ height: firstBlock.height });
    assertValid(schemas.result('getBlock'), ids, 'getBlock (ids)');
    assert.ok(ids.transactions.includes(first.id));
    const full = await c.getBlock({ hash: firstBlock.hash }, true);
    assertValid(schemas.result('getBlock'), full, 'getBlock (full)');
    assert.equal(full.height, firstBlock.height);
    const mine = full.transactions.find((x) => x.id === first.id);
    assert.equal(mine?.memo, 'setup');
    assert.equal(mine?.from, faucet.address);
    const header = await c.getBlockHeader({ height: firstBlock.height });
    assertValid(schemas.result('getBlockHeader'), header, 'getBlockHeader');
    assert.equal(header.hash, firstBlock.hash);
    assert.deepEqual(await c.getBlockHeader({ hash: firstBlock.hash }), header);
    assert.deepEqual(await c.call('getBlockHeader', [firstBlock.height]), header, 'call() with positional params');

    const st = await c.getTransaction(first.id);
    assertValid(schemas.result('getTransaction'), st, 'getTransaction');
    assert.equal(st.status, 'confirmed');
    assert.equal((await c.getTransaction('0'.repeat(64))).status, 'unknown');

    const acc = await c.getAccount(faucet.address);
    assertValid(schemas.result('getAccount'), acc, 'getAccount');
    const bal = await c.getBalance(faucet.address);
    assertValid(schemas.result('getBalance'), bal, 'getBalance');
    assert.equal(bal.balance, acc.balance);
    const empty = await c.getAccount(memKey().address);
    assert.deepEqual([empty.balance, empty.nonce, empty.nextNonce, empty.pending], ['0', '0', '0', 0]);

    const page1 = await c.getAccountTransactions(faucet.address, { limit: 1 });
    assertValid(schemas.result('getAccountTransactions'), page1, 'getAccountTransactions');
    assert.equal(page1.transactions.length, 1);
    assert.ok(page1.next, 'more than one sent transaction: a next page');
    const page2 = await c.getAccountTransactions(faucet.address, { limit: 1, cursor: page1.next! });
    assert.equal(page2.transactions.length, 1);
    assert.ok(page2.transactions[0]!.height <= page1.transactions[0]!.height, 'newest first');
    assert.notEqual(page2.transactions[0]!.id, page1.transactions[0]!.id);
    const all = await c.getAccountTransactions(faucet.address, { limit: 100, direction: 'sent' });
    assert.ok(all.transactions.some((x) => x.id === first.id));
    assert.ok(all.transactions.every((x) => x.direction === 'sent'));
    assert.deepEqual((await c.getAccountTransactions(faucet.address, { direction: 'received' })).transactions, [], 'the faucet never received a transfer');

    assertValid(schemas.result('getMempoolInfo'), await c.getMempoolInfo(), 'getMempoolInfo');
    assertValid(schemas.result('getPeers'), await c.getPeers(), 'getPeers');
    assertValid(schemas.result('getEquivocations'), await c.getEquivocations(), 'getEquivocations');

    // sendTransaction: bytes or hex, idempotent.
    const tx = transfer(memKey().address, 55n, 'sdk');
    assert.equal(await c.sendTransaction(tx.tx.bytes), tx.id);
    assert.equal(await c.sendTransaction(tx.hex), tx.id, 'the same bytes again: the same id');
    assert.equal(await c.sendTransaction('0x' + tx.hex), tx.id, '0x-prefixed hex');
    const pend = await c.getTransaction(tx.id);
    assert.ok(pend.status === 'pending' || pend.status === 'confirmed', `just sent: ${pend.status}`);
    await waitConfirmed(tx.id);
    t.diagnostic(`RpcClient: ${((performance.now() - t0) / 1000).toFixed(2)} s for the typed calls (incl. one confirmation)`);
  });

  it('RpcClient errors: RpcClientError with code and data.rule; RpcTransportError naming the URL', async () => {
    const c = new RpcClient(`http://${HOST}:${port}/`);
    const rejectsWith = async (p: Promise<unknown>, code: number, rule: string) => {
      await assert.rejects(p, (e: unknown) => {
        assert.ok(e instanceof RpcClientError, `an RpcClientError, got ${String(e)}`);
        assert.ok(!(e instanceof RpcTransportError));
        assert.equal(e.code, code, e.message);
        assert.equal(e.data?.rule, rule);
        assert.equal(e.rule, rule);
        return true;
      });
    };
    await rejectsWith(c.getBlock({ height: 1e9 }), -32000, 'unknown_block');
    await rejectsWith(c.getBlockHeader({ hash: 'ab'.repeat(32) }), -32000, 'unknown_block');
    await rejectsWith(c.sendTransaction(signTransfer({ from: faucet, to: faucet.address, amount: 1n, nonce: faucetNonce, chainId: 'x' }).tx.bytes), -32002, 'wrong_chain');
    await rejectsWith(c.sendTransaction(signTransfer({ from: faucet, to: faucet.address, amount: 3n, nonce: 0n, chainId }).hex), -32003, 'nonce_too_low');
    await rejectsWith(c.getAccount('ml1notanaddress'), -32602, 'invalid_params');
    await rejectsWith(c.call('noSuchMethod'), -32601, 'method_not_found');
    await rejectsWith(c.adminListBans(), -32601, 'method_not_found');
    // With the token in `headers`, admin wrappers work.
    const admin = new RpcClient(`http://${HOST}:${port}/`, { headers: { Authorization: `Bearer ${token}` } });
    assert.ok(Array.isArray(await admin.adminListBans()));

    const transport = async (p: Promise<unknown>, url: string, re?: RegExp) => {
      await assert.rejects(p, (e: unknown) => {
        assert.ok(e instanceof RpcTransportError, `an RpcTransportError, got ${String(e)}`);
        assert.ok(!(e instanceof RpcClientError));
        assert.ok(e.message.includes(url), `the message names ${url}: ${e.message}`);
        if (re) assert.match(e.message, re);
        return true;
      });
    };
    // Nobody listening.
    const deadUrl = `http://${HOST}:${await freePort()}/`;
    await transport(new RpcClient(deadUrl, { timeoutMs: scaled(5_000) }).getChainInfo(), deadUrl);
    // A server that never answers: the timeout.
    const silent = await fakeServer(() => { /* never answers */ });
    try {
      const t0 = Date.now();
      await transport(new RpcClient(silent.url, { timeoutMs: 300 }).getHealth(), silent.url, /300 ms/);
      assert.ok(Date.now() - t0 < scaled(5_000), 'the timeout is honoured');
    } finally {
      await silent.close();
    }
    // HTTP failures and bodies that are not JSON-RPC.
    const bodies: [number, string, string][] = [[502, 'text/html', '<html>bad gateway</html>'], [200, 'text/plain', 'hello'], [200, 'application/json', '{"ok":true}'], [200, 'application/json', '']];
    for (const [status, type, body] of bodies) {
      const srv = await fakeServer((req, res) => { req.resume(); res.writeHead(status, { 'content-type': type }); res.end(body); });
      try {
        await transport(new RpcClient(srv.url).getHealth(), srv.url);
      } finally {
        await srv.close();
      }
    }
    assert.throws(() => new RpcClient('ws://127.0.0.1:1/'), TypeError);
    assert.throws(() => c.getBlock({} as never), TypeError);
  });

  it('RpcWsClient: typed calls, subscriptions and errors over a real WebSocket', async (t) => {
    const wsUrl = `ws://${HOST}:${port}/`;
    const ws = await RpcWsClient.connect(wsUrl);
    try {
      const info = await ws.getChainInfo();
      assertValid(schemas.result('getChainInfo'), info, 'getChainInfo over WebSocket');
      assert.equal((await ws.call<any>('getBlockHeader', { height: firstBlock.height })).hash, firstBlock.hash);

      // newHeads until two arrive, then unsubscribe.
      const heads: NewHeadEvent[] = [];
      let wake: (() => void) | undefined;
      const sub = await ws.subscribe('newHeads', {}, (hd) => { heads.push(hd); wake?.(); });
      assert.match(sub.id, /^0x[0-9a-f]{16}$/);
      const until = async (cond: () => boolean, what: string) => {
        const deadline = Date.now() + scaled(15_000);
        while (!cond()) {
          if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
          await new Promise<void>((r) => { wake = r; setTimeout(r, 100); });
        }
      };
      await until(() => heads.length >= 2, 'two newHeads events');
      assert.equal(heads[1]!.height, heads[0]!.height + 1);
      assert.equal(await sub.unsubscribe(), true);
      const n = heads.length;
      const h0 = (await ws.getChainInfo()).height;
      await h.waitForHeight(A, h0 + 2);
      await ws.getHealth();
      assert.equal(heads.length, n, 'no events after unsubscribe');

      // A transaction followed from pending to confirmed, and its recipient's account.
      const to = memKey();
      const tx = transfer(to.address, 999n);
      const statuses: TransactionStatus[] = [];
      const accounts: AccountEvent[] = [];
      await ws.subscribe('transaction', { id: tx.id }, (s) => { statuses.push(s); wake?.(); });
      await ws.subscribe('account', { address: to.address }, (a) => { accounts.push(a); wake?.(); });
      assert.equal(await ws.sendTransaction(tx.tx.bytes), tx.id);
      await until(() => statuses.some((s) => s.status === 'confirmed') && accounts.length > 0, 'confirmed + account events');
      assert.deepEqual(statuses.map((s) => s.status), ['pending', 'confirmed']);
      assert.equal(accounts[0]!.balance, '999');

      // Errors over the socket are RpcClientError as well.
      await assert.rejects(ws.getBlock({ height: 1e9 }), (e: unknown) => e instanceof RpcClientError && e.code === -32000 && e.rule === 'unknown_block');
      await assert.rejects(ws.call('adminListBans'), (e: unknown) => e instanceof RpcClientError && e.code === -32601);
      await assert.rejects(ws.subscribe('transaction', {}, () => {}), (e: unknown) => e instanceof RpcClientError && e.code === -32602);

      // The per-connection limit through the SDK (2 subscriptions are live on this connection).
      const subs = [];
      for (let i = 0; i < MAX_SUBS - 2; i++) subs.push(await ws.subscribe('pendingTransactions', {}, () => {}));
      await assert.rejects(ws.subscribe('newHeads', {}, () => {}), (e: unknown) => e instanceof RpcClientError && e.code === -32007 && e.rule === 'too_many_subscriptions');
      t.diagnostic(`RpcWsClient: ${heads.length} head events, ${statuses.length} status events, ${subs.length + 2} live subscriptions at the limit`);
    } finally {
      await ws.close();
    }
    // After close: calls fail with RpcTransportError.
    await assert.rejects(ws.getHealth(), (e: unknown) => e instanceof RpcTransportError && e.message.includes(wsUrl));
    // Admin over WebSocket with the token header.
    const admin = await RpcWsClient.connect(wsUrl, { headers: { Authorization: `Bearer ${token}` } });
    try {
      assert.ok(Array.isArray(await admin.adminListBans()));
    } finally {
      await admin.close();
    }
    // Nobody listening / not a WebSocket endpoint.
    const dead = `ws://${HOST}:${await freePort()}/`;
    await assert.rejects(RpcWsClient.connect(dead, { timeoutMs: scaled(5_000) }), (e: unknown) => e instanceof RpcTransportError && e.message.includes(dead));
    const wrongPath = `ws://${HOST}:${port}/nope`;
    await assert.rejects(RpcWsClient.connect(wrongPath, { timeoutMs: scaled(5_000) }), (e: unknown) => e instanceof RpcTransportError && e.message.includes(wrongPath));
  });

  it('the node stayed healthy throughout', async (t) => {
    for (const n of [A, B]) assert.ok(n.running, `${n.name} is running\n${n.describe()}`);
    const errors = A.logEntries().filter((e) => e.level === 'error');
    assert.deepEqual(errors, [], 'no error lines in the validator log');
    const hA = (await rpc(port, 'getChainInfo')).height;
    t.diagnostic(`A at height ${hA}; whole file ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
  });
});
