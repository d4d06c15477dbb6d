/**
 * Tests for src/rpc/server.ts and src/rpc/errors.ts.
 *
 * 1. The JSON-RPC 2.0 specification's §7 examples (../shared/vectors/jsonrpc, next to the repo; absent →
 *    skipped) replayed against a dispatcher built from a TEST-ONLY OpenRPC document with the spec's methods.
 *    Responses are compared semantically: batches as multisets, errors by code and id (message text may differ).
 * 2. The HTTP transport on 127.0.0.1, port 0.
 * 3. The real schemas/openrpc.json: compiles, every $ref resolves, the error table matches errors.ts, and each
 *    example's params and result validate (replayed through a dispatcher with result validation on).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RpcDispatcher, RpcHttpServer, DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES, resolveLocalRef, type MethodHandler, type RpcContext, type RpcLog } from '../../../src/rpc/server.js';
import { APP_ERRORS, RpcError, INVALID_PARAMS, INTERNAL_ERROR, METHOD_NOT_FOUND, INVALID_REQUEST, PARSE_ERROR, appErrorByCode } from '../../../src/rpc/errors.js';

// ---- paths --------------------------------------------------------------------------------------

// dist/test/unit/rpc/ → repo root is 4 levels up.
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const SPEC_EXAMPLES = path.resolve(repoRoot, '..', 'shared', 'vectors', 'jsonrpc', 'jsonrpc2_spec_examples.json');
const OPENRPC_FILE = path.join(repoRoot, 'schemas', 'openrpc.json');

function readJson(file: string): any {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

const CTX: RpcContext = { transport: 'http', remote: 'test' };

// ---- the test-only document: the spec's methods -------------------------------------------------

const int = { type: 'integer' };

function specDoc(): any {
  return {
    openrpc: '1.2.6',
    info: { title: 'JSON-RPC 2.0 spec examples (test only)', version: '0.0.0' },
    methods: [
      {
        name: 'subtract',
        paramStructure: 'either',
        params: [
          { name: 'minuend', required: true, schema: int },
          { name: 'subtrahend', required: true, schema: int },
        ],
        result: { name: 'difference', schema: int },
      },
      {
        name: 'sum',
        params: [{ name: 'numbers', required: false, 'x-variadic': true, schema: { type: 'array', items: int } }],
        result: { name: 'total', schema: int },
      },
      {
        name: 'update',
        params: [{ name: 'values', 'x-variadic': true, schema: { type: 'array', items: int } }],
        result: { name: 'nothing', schema: { type: 'null' } },
      },
      {
        name: 'notify_hello',
        params: [{ name: 'n', required: true, schema: int }],
        result: { name: 'nothing', schema: { type: 'null' } },
      },
      {
        name: 'get_data',
        params: [],
        result: { name: 'data', schema: { type: 'array', items: [{ type: 'string' }, int], minItems: 2, additionalItems: false } },
      },
      {
        name: 'echo',
        paramStructure: 'by-name',
        params: [
          { $ref: '#/components/contentDescriptors/Word' },
          { name: 'times', required: false, schema: { $ref: '#/components/schemas/Small' } },
          { name: 'hash', required: false, schema: { $ref: '#/components/schemas/Hash' } },
        ],
        result: { name: 'echoed', schema: { type: 'string' } },
      },
      {
        name: 'fail',
        paramStructure: 'either',
        params: [{ name: 'how', required: true, schema: { enum: ['plain', 'rpc', 'app', 'bad_result', 'bigint'] } }],
        result: { name: 'never', schema: { type: 'string' } },
      },
    ],
    components: {
      schemas: {
        Small: { type: 'integer', minimum: 1, maximum: 3 },
        Hash: { type: 'string', pattern: '^[0-9a-f]{64}$' },
        Word: { type: 'string', minLength: 1, maxLength: 20 },
      },
      contentDescriptors: {
        Word: { name: 'word', required: true, schema: { $ref: '#/components/schemas/Word' } },
      },
    },
  };
}

interface Calls {
  update: unknown[];
  notify_hello: unknown[];
}

function specHandlers(calls: Calls): Record<string, MethodHandler> {
  return {
    subtract: (p) => (p.minuend as number) - (p.subtrahend as number),
    sum: (p) => ((p.numbers as number[] | undefined) ?? []).reduce((a, b) => a + b, 0),
    update: (p) => {
      calls.update.push(p.values);
      return null;
    },
    notify_hello: (p) => {
      calls.notify_hello.push(p.n);
      return null;
    },
    get_data: () => ['hello', 5],
    echo: async (p) => {
      await new Promise((r) => setImmediate(r));
      return String(p.word).repeat((p.times as number | undefined) ?? 1);
    },
    fail: (p) => {
      switch (p.how) {
        case 'plain':
          throw new Error('secret internal detail');
        case 'rpc':
          throw RpcError.invalidParams('"how" is not liked today', { param: 'how' });
        case 'app':
          throw RpcError.app('invalid_transaction', { rule: 'bad_nonce', data: { expected: 4 } });
        case 'bad_result':
          return 42; // result schema says string
        default:
          return { big: 1n }; // not JSON-serializable
      }
    },
  };
}

interface LogEntry {
  level: string;
  msg: string;
  fields?: Record<string, unknown>;
}

function makeDispatcher(opts: { maxBatch?: number; validateResults?: boolean } = {}): { d: RpcDispatcher; calls: Calls; logs: LogEntry[] } {
  const calls: Calls = { update: [], notify_hello: [] };
  const logs: LogEntry[] = [];
  const log: RpcLog = (level, msg, fields) => logs.push(fields ? { level, msg, fields } : { level, msg });
  const limits = opts.maxBatch === undefined ? {} : { maxBatch: opts.maxBatch };
  const d = new RpcDispatcher({ openrpc: specDoc(), handlers: specHandlers(calls), validateResults: opts.validateResults ?? true, limits, log });
  return { d, calls, logs };
}

// ---- semantic comparison ------------------------------------------------------------------------

/** Canonical text of a response for comparison: errors keep only their code; keys sorted. */
function canon(r: any): string {
  assert.equal(typeof r, 'object');
  assert.ok(r !== null && !Array.isArray(r), 'a response must be an object');
  assert.equal(r.jsonrpc, '2.0');
  assert.ok('id' in r, 'a response must have an id member');
  assert.notEqual('result' in r, 'error' in r, 'exactly one of result / error');
  const keys = Object.keys(r).sort();
  assert.deepEqual(keys, 'result' in r ? ['id', 'jsonrpc', 'result'] : ['error', 'id', 'jsonrpc']);
  if ('error' in r) {
    assert.equal(typeof r.error.message, 'string');
    assert.ok(Number.isInteger(r.error.code));
    return JSON.stringify({ id: r.id, code: r.error.code });
  }
  return JSON.stringify({ id: r.id, result: r.result });
}

function assertSameResponse(actualText: string | undefined, expected: unknown, what: string): void {
  if (expected === null) {
    assert.equal(actualText, undefined, `${what}: expected no response`);
    return;
  }
  assert.equal(typeof actualText, 'string', `${what}: expected a response`);
  const actual = JSON.parse(actualText as string);
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${what}: expected an array`);
    assert.deepEqual(actual.map(canon).sort(), expected.map(canon).sort(), what);
  } else {
    assert.ok(!Array.isArray(actual), `${what}: expected a single response object, not an array`);
    assert.equal(canon(actual), canon(expected), what);
  }
}

// ---- 1. the specification's examples ------------------------------------------------------------

const specSkip = fs.existsSync(SPEC_EXAMPLES) ? false : `vector file ${SPEC_EXAMPLES} is absent (shared vectors are not checked out next to the repo)`;

test('JSON-RPC 2.0 spec §7 examples replay against the dispatcher', { skip: specSkip }, async (t) => {
  const examples = readJson(SPEC_EXAMPLES) as { name: string; request: string; expected: unknown }[];
  assert.ok(Array.isArray(examples) && examples.length >= 15, 'the vector file lists the spec examples');
  const { d, calls } = makeDispatcher();
  for (const ex of examples) {
    await t.test(ex.name, async () => {
      assertSameResponse(await d.handle(ex.request, CTX), ex.expected, ex.name);
    });
  }
  // Notifications still run their handler (the spec only forbids replying).
  assert.deepEqual(calls.update, [[1, 2, 3, 4, 5]]);
  assert.deepEqual(calls.notify_hello, [7, 7]);
});

test('spec examples also replay over HTTP (empty body + 204 where no response is due)', { skip: specSkip }, async () => {
  const examples = readJson(SPEC_EXAMPLES) as { name: string; request: string; expected: unknown }[];
  const { d } = makeDispatcher();
  await withServer(d, {}, async (base) => {
    for (const ex of examples) {
      const r = await post(base, ex.request);
      if (ex.expected === null) {
        assert.equal(r.status, 204, ex.name);
        assert.equal(r.body, '', ex.name);
      } else {
        assert.equal(r.status, 200, ex.name);
        assert.match(r.headers['content-type'] ?? '', /^application\/json/);
        assertSameResponse(r.body, ex.expected, ex.name);
      }
    }
  });
});

// ---- dispatcher details -------------------------------------------------------------------------

async function call(d: RpcDispatcher, req: unknown, ctx: RpcContext = CTX): Promise<any> {
  const out = await d.handle(typeof req === 'string' ? req : JSON.stringify(req), ctx);
  return out === undefined ? undefined : JSON.parse(out);
}

test('ids are echoed exactly, with their type', async () => {
  const { d } = makeDispatcher();
  for (const id of ['1', 1, 0, -7, 1.5, null, '', 'é\u2028"x"']) {
    const r = await call(d, { jsonrpc: '2.0', method: 'get_data', id });
    assert.deepEqual(r, { jsonrpc: '2.0', result: ['hello', 5], id });
  }
  // Beyond 2^53 the text is echoed verbatim, not rounded.
  const big = await d.handle('{"jsonrpc":"2.0","method":"get_data","id":12345678901234567890}', CTX);
  assert.match(big!, /"id":12345678901234567890}$/);
  const bigBatch = await d.handle('[{"id":1e400,"jsonrpc":"2.0","method":"get_data"}, {"jsonrpc":"2.0","method":"subtract","params":[2,1],"id":9007199254740993}]', CTX);
  assert.match(bigBatch!, /"id":1e400}/);
  assert.match(bigBatch!, /"result":1,"id":9007199254740993}/);
  // An id of a wrong type makes the request invalid; the id cannot be echoed.
  for (const id of [{}, [1], true]) {
    const r = await call(d, { jsonrpc: '2.0', method: 'get_data', id });
    assert.equal(r.error.code, INVALID_REQUEST);
    assert.equal(r.id, null);
  }
  // id null is a call, not a notification.
  assert.deepEqual(await call(d, { jsonrpc: '2.0', method: 'subtract', params: [5, 2], id: null }), { jsonrpc: '2.0', result: 3, id: null });
});

test('invalid requests: -32600, echoing the id when it is well formed', async () => {
  const { d } = makeDispatcher();
  const cases: [unknown, unknown][] = [
    [{ jsonrpc: '1.0', method: 'get_data', id: 4 }, 4],
    [{ method: 'get_data', id: 'a' }, 'a'],
    [{ jsonrpc: 2, method: 'get_data', id: 5 }, 5],
    [{ jsonrpc: '2.0', method: ['x'], id: 6 }, 6],
    [{ jsonrpc: '2.0', method: 'subtract', params: null, id: 7 }, 7],
    [{ jsonrpc: '2.0', method: 'subtract', params: 3, id: 8 }, 8],
    [{ jsonrpc: '2.0', method: 'subtract', params: 'x' }, null], // invalid, so answered though it has no id
    ['"just a string"', null],
    ['42', null],
    ['null', null],
  ];
  for (const [req, id] of cases) {
    const r = await call(d, req);
    assert.equal(r.error.code, INVALID_REQUEST, JSON.stringify(req));
    assert.equal(r.id, id, JSON.stringify(req));
    assert.equal('result' in r, false);
  }
  for (const body of ['', '   ', '{', '{"jsonrpc":"2.0",}', '\u0000']) {
    const r = await call(d, body);
    assert.deepEqual([r.error.code, r.id], [PARSE_ERROR, null], JSON.stringify(body));
  }
});

test('named and positional params, variadic, structure rules', async () => {
  const { d } = makeDispatcher();
  const ok = async (method: string, params: unknown, result: unknown): Promise<void> => {
    const r = await call(d, { jsonrpc: '2.0', method, params, id: 1 });
    assert.deepEqual(r, { jsonrpc: '2.0', result, id: 1 }, `${method} ${JSON.stringify(params)}`);
  };
  await ok('subtract', [42, 23], 19);
  await ok('subtract', { subtrahend: 23, minuend: 42 }, 19);
  await ok('sum', [], 0);
  await ok('sum', [1, 2, 3, 4, 5, 6], 21);
  await ok('echo', { word: 'ab', times: 3 }, 'ababab');
  await ok('echo', { word: 'ab' }, 'ab'); // optional params may be left out
  // params may be omitted when none are required
  assert.deepEqual(await call(d, { jsonrpc: '2.0', method: 'get_data', id: 2 }), { jsonrpc: '2.0', result: ['hello', 5], id: 2 });
  // empty params are fine whatever the declared structure
  assert.deepEqual(await call(d, { jsonrpc: '2.0', method: 'get_data', params: {}, id: 3 }), { jsonrpc: '2.0', result: ['hello', 5], id: 3 });
  assert.deepEqual(await call(d, { jsonrpc: '2.0', method: 'echo', params: [], id: 4 }).then((r) => r.error.message), 'Invalid params: missing required param "word"');

  const bad = async (method: string, params: unknown, mention: RegExp): Promise<any> => {
    const r = await call(d, { jsonrpc: '2.0', method, params, id: 'p' });
    assert.equal(r.error?.code, INVALID_PARAMS, `${method} ${JSON.stringify(params)}: ${JSON.stringify(r)}`);
    assert.equal(r.id, 'p');
    assert.match(r.error.message, mention);
    return r.error;
  };
  let e = await bad('subtract', [1, 'x'], /"subtrahend" must be integer/);
  assert.equal(e.data.param, 'subtrahend');
  e = await bad('subtract', { minuend: 1.5, subtrahend: 1 }, /"minuend" must be integer/);
  assert.equal(e.data.param, 'minuend');
  await bad('subtract', [1, 2, 3], /too many params/);
  await bad('subtract', [1], /missing required param "subtrahend"/);
  await bad('subtract', {}, /missing required param "minuend"/);
  await bad('subtract', { minuend: 1, subtrahend: 2, extra: 0 }, /unknown param "extra"/);
  await bad('subtract', JSON.parse('{"minuend":1,"subtrahend":2,"__proto__":{"x":1}}'), /unknown param "__proto__"/);
  await bad('sum', [1, 'two'], /"numbers\/1" must be integer/);
  await bad('sum', { numbers: [1] }, /by position/); // paramStructure by-position (the OpenRPC default)
  await bad('echo', ['ab'], /by name/);
  await bad('echo', { word: '' }, /"word" must NOT have fewer than 1 characters/);
  await bad('echo', { word: 'x', times: 4 }, /"times" must be <= 3/);
  await bad('echo', { word: 'x', hash: 'ABC' }, /"hash" must match pattern/);
  await bad('get_data', [1], /too many params/);
  await bad('get_data', { a: 1 }, /by position|unknown param/);
  await bad('fail', ['nope'], /"how" must be equal to one of the allowed values/);
});

test('handler errors: RpcError passes through, anything else is -32603 and logged', async () => {
  const { d, logs } = makeDispatcher();
  let r = await call(d, { jsonrpc: '2.0', method: 'fail', params: ['plain'], id: 1 });
  assert.deepEqual(r, { jsonrpc: '2.0', error: { code: INTERNAL_ERROR, message: 'Internal error' }, id: 1 });
  assert.ok(!JSON.stringify(r).includes('secret'), 'internal details never reach the caller');
  assert.ok(logs.some((l) => l.level === 'error' && String(l.fields?.err).includes('secret internal detail')), 'the failure is logged');

  r = await call(d, { jsonrpc: '2.0', method: 'fail', params: ['rpc'], id: 2 });
  assert.equal(r.error.code, INVALID_PARAMS);
  assert.equal(r.error.data.param, 'how');

  r = await call(d, { jsonrpc: '2.0', method: 'fail', params: ['app'], id: 3 });
  assert.deepEqual(r.error, { code: -32002, message: 'Invalid transaction', data: { expected: 4, rule: 'bad_nonce' } });

  r = await call(d, { jsonrpc: '2.0', method: 'fail', params: ['bad_result'], id: 4 });
  assert.equal(r.error.code, INTERNAL_ERROR, 'a result that breaks the result schema is a server bug');
  assert.ok(logs.some((l) => /result schema/.test(l.msg)));

  r = await call(d, { jsonrpc: '2.0', method: 'fail', params: ['bigint'], id: 5 });
  assert.equal(r.error.code, INTERNAL_ERROR);

  // A failing notification produces no response at all.
  const before = logs.length;
  assert.equal(await d.handle('{"jsonrpc":"2.0","method":"fail","params":["plain"]}', CTX), undefined);
  assert.ok(logs.length > before);

  // ... and the dispatcher keeps answering.
  assert.deepEqual(await call(d, { jsonrpc: '2.0', method: 'subtract', params: [1, 1], id: 6 }), { jsonrpc: '2.0', result: 0, id: 6 });

  // Without result validation the bad result goes out unchecked.
  const loose = makeDispatcher({ validateResults: false }).d;
  assert.deepEqual(await call(loose, { jsonrpc: '2.0', method: 'fail', params: ['bad_result'], id: 7 }), { jsonrpc: '2.0', result: 42, id: 7 });
});

test('batches: order, limits, mixed content', async () => {
  const { d } = makeDispatcher({ maxBatch: 3 });
  assert.equal(d.maxBatch, 3);
  const batch = [
    { jsonrpc: '2.0', method: 'subtract', params: [3, 1], id: 'a' },
    { jsonrpc: '2.0', method: 'echo', params: { word: 'w' }, id: 'b' },
    { jsonrpc: '2.0', method: 'nope', id: 'c' },
  ];
  const r = await call(d, batch);
  assert.deepEqual(r.map((x: any) => x.id), ['a', 'b', 'c'], 'responses follow request order');
  assert.deepEqual(r[0].result, 2);
  assert.deepEqual(r[1].result, 'w');
  assert.equal(r[2].error.code, METHOD_NOT_FOUND);

  const tooMany = await call(d, [...batch, batch[0]]);
  assert.ok(!Array.isArray(tooMany));
  assert.deepEqual([tooMany.error.code, tooMany.id], [INVALID_REQUEST, null]);
  assert.match(tooMany.error.message, /limit of 3/);

  // A batch of one is still a batch: the answer is an array.
  assert.deepEqual(await call(d, [{ jsonrpc: '2.0', method: 'get_data', id: 1 }]), [{ jsonrpc: '2.0', result: ['hello', 5], id: 1 }]);
  // Nested arrays are invalid entries.
  const nested = await call(d, [[{ jsonrpc: '2.0', method: 'get_data', id: 1 }]]);
  assert.deepEqual(nested.map((x: any) => [x.error.code, x.id]), [[INVALID_REQUEST, null]]);
  assert.equal(makeDispatcher().d.maxBatch, DEFAULT_MAX_BATCH);
});

test('rpc.discover returns the document; reserved names are refused', async () => {
  const { d } = makeDispatcher();
  const r = await call(d, { jsonrpc: '2.0', method: 'rpc.discover', id: 1 });
  assert.deepEqual(r.result, specDoc());
  assert.equal((await call(d, { jsonrpc: '2.0', method: 'rpc.discover', params: [1], id: 2 })).error.code, INVALID_PARAMS);
  assert.equal((await call(d, { jsonrpc: '2.0', method: 'rpc.other', id: 3 })).error.code, METHOD_NOT_FOUND);
  // Prototype names are not methods.
  for (const m of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    assert.equal((await call(d, { jsonrpc: '2.0', method: m, id: 4 })).error.code, METHOD_NOT_FOUND, m);
  }
  assert.deepEqual(d.methodNames.sort(), ['echo', 'fail', 'get_data', 'notify_hello', 'subtract', 'sum', 'update']);
});

test('construction throws when the document and the handlers drift, or the document is broken', async () => {
  const calls: Calls = { update: [], notify_hello: [] };
  const h = specHandlers(calls);
  const { subtract: _s, ...withoutSubtract } = h;
  assert.throws(() => new RpcDispatcher({ openrpc: specDoc(), handlers: withoutSubtract }), /documented methods without a handler: subtract/);
  assert.throws(() => new RpcDispatcher({ openrpc: specDoc(), handlers: { ...h, multiply: () => 0 } }), /handlers missing from the OpenRPC document: multiply/);
  assert.throws(() => new RpcDispatcher({ openrpc: specDoc(), handlers: { ...h, 'rpc.discover': () => 0 } }), /built in/);

  const mutate = (f: (doc: any) => void): any => {
    const doc = specDoc();
    f(doc);
    return doc;
  };
  const cases: [string, any, RegExp][] = [
    ['unresolvable schema ref', mutate((x) => (x.methods[0].params[0].schema = { $ref: '#/components/schemas/Nope' })), /can't resolve reference|does not compile/],
    ['unresolvable descriptor ref', mutate((x) => (x.methods[5].params[0] = { $ref: '#/components/contentDescriptors/Nope' })), /does not resolve/],
    ['unknown keyword (strict)', mutate((x) => (x.methods[0].params[0].schema = { type: 'integer', minimun: 0 })), /unknown keyword/],
    ['duplicate method', mutate((x) => x.methods.push(x.methods[0])), /duplicate method/],
    ['duplicate param', mutate((x) => x.methods[0].params.push(x.methods[0].params[0])), /duplicate param/],
    ['required after optional', mutate((x) => (x.methods[5].params[1].required = false, x.methods[5].params.push({ name: 'z', required: true, schema: int }))), /follows an optional/],
    ['variadic not last', mutate((x) => x.methods[1].params.push({ name: 'z', schema: int })), /only the last param/],
    ['bad paramStructure', mutate((x) => (x.methods[0].paramStructure = 'named')), /bad paramStructure/],
    ['missing result', mutate((x) => delete x.methods[0].result), /missing "result"/],
    ['reserved name', mutate((x) => (x.methods[0].name = 'rpc.subtract')), /reserved/],
  ];
  for (const [what, doc, re] of cases) {
    assert.throws(() => new RpcDispatcher({ openrpc: doc, handlers: { ...h, 'rpc.subtract': h.subtract! } }), re, what);
  }
  assert.throws(() => new RpcDispatcher({ openrpc: specDoc(), handlers: h, limits: { maxBatch: 0 } }), /maxBatch/);
  // `x-*` annotations in schemas are dropped before strict compilation; a PROPERTY named x-… is kept.
  const tagged = mutate((x) =>
    x.methods.push({
      name: 'tagged',
      paramStructure: 'by-name',
      params: [{ name: 'o', required: true, schema: { type: 'object', 'x-note': 'annotation', properties: { 'x-tag': { type: 'string' } }, additionalProperties: false } }],
      result: { name: 'r', schema: { type: 'null' } },
    }),
  );
  const td = new RpcDispatcher({ openrpc: tagged, handlers: { ...h, tagged: () => null } });
  assert.equal((await call(td, { jsonrpc: '2.0', method: 'tagged', params: { o: { 'x-tag': 'a' } }, id: 1 })).result, null);
  assert.match((await call(td, { jsonrpc: '2.0', method: 'tagged', params: { o: { 'x-tag': 5 } }, id: 2 })).error.message, /"o\/x-tag" must be string/);
  // Documenting rpc.discover is allowed and needs no handler.
  assert.doesNotThrow(() => new RpcDispatcher({ openrpc: mutate((x) => x.methods.push({ name: 'rpc.discover', params: [], result: { name: 'doc', schema: { type: 'object' } } })), handlers: h }));
});

test('errors.ts: named constructors', () => {
  const e = RpcError.app('unknown_block');
  assert.ok(e instanceof Error);
  assert.deepEqual(e.toErrorObject(), { code: -32000, message: 'Unknown block', data: { rule: 'unknown_block' } });
  assert.deepEqual(RpcError.app('mempool_rejected', { rule: 'fee_too_low', message: 'fee too low' }).toErrorObject(), { code: -32003, message: 'fee too low', data: { rule: 'fee_too_low' } });
  assert.deepEqual(appErrorByCode(-32006), { name: 'not_ready', code: -32006, message: 'Node not ready' });
  assert.equal(appErrorByCode(-32099), undefined);
  const codes = Object.values(APP_ERRORS).map((x) => x.code);
  assert.equal(new Set(codes).size, codes.length, 'application codes are unique');
  for (const c of codes) assert.ok(c <= -32000 && c >= -32099, `code ${c} is in the server-error range`);
  assert.deepEqual([RpcError.parseError().code, RpcError.invalidRequest().code, RpcError.methodNotFound('x').code, RpcError.invalidParams('x').code, RpcError.internal().code], [-32700, -32600, -32601, -32602, -32603]);
  assert.throws(() => new RpcError(1.5, 'x'), TypeError);
});

// ---- 2. HTTP ------------------------------------------------------------------------------------

interface HttpReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(base: string, method: string, urlPath: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${urlPath}`, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function post(base: string, body: string | Buffer, contentType = 'application/json'): Promise<HttpReply> {
  return request(base, 'POST', '/', body, { 'content-type': contentType });
}

async function withServer(d: RpcDispatcher, opts: ConstructorParameters<typeof RpcHttpServer>[1], fn: (base: string, s: RpcHttpServer) => Promise<void>): Promise<void> {
  const s = new RpcHttpServer(d, opts);
  const { host, port } = await s.listen('127.0.0.1', 0);
  assert.equal(host, '127.0.0.1');
  assert.ok(port > 0, 'an ephemeral port was assigned');
  try {
    await fn(`http://${host}:${port}`, s);
  } finally {
    await s.close();
  }
}

test('HTTP: RPC over POST /, health, 404/405, content type, 204', async () => {
  const { d } = makeDispatcher();
  await withServer(d, {}, async (base, s) => {
    assert.ok(s.server instanceof http.Server);
    let r = await post(base, '{"jsonrpc":"2.0","method":"subtract","params":{"minuend":10,"subtrahend":4},"id":"n"}');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'] ?? '', /^application\/json/);
    assert.deepEqual(JSON.parse(r.body), { jsonrpc: '2.0', result: 6, id: 'n' });
    assert.equal(r.headers['access-control-allow-origin'], undefined, 'no CORS unless configured');

    r = await post(base, '[{"jsonrpc":"2.0","method":"subtract","params":[10,4],"id":1},{"jsonrpc":"2.0","method":"sum","params":[1,2]}]', 'application/json; charset=utf-8');
    assert.deepEqual(JSON.parse(r.body), [{ jsonrpc: '2.0', result: 6, id: 1 }]);

    r = await post(base, '[{"jsonrpc":"2.0","method":"sum","params":[1]},{"jsonrpc":"2.0","method":"update","params":[1]}]');
    assert.deepEqual([r.status, r.body], [204, '']);
    r = await post(base, '{"jsonrpc":"2.0","method":"no_such_notification"}');
    assert.deepEqual([r.status, r.body], [204, '']);

    r = await post(base, '{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]');
    assert.equal(r.status, 200);
    assert.deepEqual([JSON.parse(r.body).error.code, JSON.parse(r.body).id], [PARSE_ERROR, null]);
    r = await post(base, Buffer.from([0x7b, 0xff, 0x7d]));
    assert.equal(JSON.parse(r.body).error.code, PARSE_ERROR, 'invalid UTF-8 is a parse error');

    r = await post(base, '{"jsonrpc":"2.0","method":"get_data","id":1}', 'text/plain');
    assert.equal(r.status, 415);
    assert.equal(JSON.parse(r.body).error.code, INVALID_REQUEST);

    r = await request(base, 'GET', '/health');
    assert.deepEqual([r.status, JSON.parse(r.body)], [200, { ok: true }]);
    r = await request(base, 'GET', '/health?verbose=1');
    assert.equal(r.status, 200);
    r = await request(base, 'GET', '/nope');
    assert.equal(r.status, 404);
    r = await request(base, 'POST', '/rpc', '{}', { 'content-type': 'application/json' });
    assert.equal(r.status, 404);
    r = await request(base, 'GET', '/');
    assert.equal(r.status, 405);
    assert.match(r.headers.allow ?? '', /POST/);
    r = await request(base, 'PUT', '/', '{}', { 'content-type': 'application/json' });
    assert.equal(r.status, 405);
    r = await request(base, 'DELETE', '/health');
    assert.equal(r.status, 405);
    r = await request(base, 'OPTIONS', '/');
    assert.equal(r.status, 405, 'no preflight answers unless CORS is configured');
  });
});

test('HTTP: body limit → 413 with a JSON-RPC error; server keeps serving', async () => {
  const { d } = makeDispatcher();
  await withServer(d, { maxBodyBytes: 1024 }, async (base, s) => {
    assert.equal(s.maxBodyBytes, 1024);
    const big = JSON.stringify({ jsonrpc: '2.0', method: 'echo', params: { word: 'x'.repeat(2000) }, id: 1 });
    let r = await post(base, big);
    assert.equal(r.status, 413);
    const e = JSON.parse(r.body);
    assert.deepEqual([e.error.code, e.id], [INVALID_REQUEST, null]);
    assert.match(e.error.message, /1024 bytes/);

    // Same, streamed without a Content-Length (chunked): the limit is counted as it arrives.
    r = await new Promise<HttpReply>((resolve, reject) => {
      const u = new URL(base);
      const req = http.request({ host: u.hostname, port: u.port, method: 'POST', path: '/', agent: false, headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      });
      req.on('error', reject);
      for (let i = 0; i < 4; i++) req.write(big.slice(i * 600, (i + 1) * 600));
      req.end();
    });
    assert.equal(r.status, 413);
    assert.equal(JSON.parse(r.body).error.code, INVALID_REQUEST);

    // Exactly at the limit is accepted.
    const pad = (n: number): string => {
      const base0 = '{"jsonrpc":"2.0","method":"get_data","id":1}';
      return base0.slice(0, -1) + ',"pad":"' + 'p'.repeat(n - base0.length - 9) + '"}';
    };
    const exact = pad(1024);
    assert.equal(Buffer.byteLength(exact), 1024);
    r = await post(base, exact);
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body).result, ['hello', 5]);
  });
  assert.equal(DEFAULT_MAX_BODY_BYTES, 1024 * 1024);
});

test('HTTP: a throwing handler is -32603 and the server keeps answering; batch limit; named/positional', async () => {
  const { d, logs } = makeDispatcher({ maxBatch: 2 });
  await withServer(d, { log: () => {} }, async (base) => {
    let r = await post(base, '{"jsonrpc":"2.0","method":"fail","params":{"how":"plain"},"id":1}');
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { jsonrpc: '2.0', error: { code: INTERNAL_ERROR, message: 'Internal error' }, id: 1 });
    assert.ok(logs.some((l) => l.level === 'error'));
    for (const params of ['[7,2]', '{"subtrahend":2,"minuend":7}']) {
      r = await post(base, `{"jsonrpc":"2.0","method":"subtract","params":${params},"id":2}`);
      assert.deepEqual(JSON.parse(r.body), { jsonrpc: '2.0', result: 5, id: 2 });
    }
    r = await post(base, '{"jsonrpc":"2.0","method":"subtract","params":{"minuend":7,"subtrahend":"2"},"id":3}');
    const e = JSON.parse(r.body).error;
    assert.equal(e.code, INVALID_PARAMS);
    assert.match(e.message, /"subtrahend"/);
    assert.match(e.message, /must be integer/);

    r = await post(base, JSON.stringify([1, 2, 3].map((id) => ({ jsonrpc: '2.0', method: 'get_data', id }))));
    const b = JSON.parse(r.body);
    assert.ok(!Array.isArray(b));
    assert.deepEqual([b.error.code, b.id], [INVALID_REQUEST, null]);

    // Concurrent requests on separate connections all get their own answers.
    const many = await Promise.all(Array.from({ length: 20 }, (_, i) => post(base, `{"jsonrpc":"2.0","method":"subtract","params":[${i},1],"id":${i}}`)));
    many.forEach((x, i) => assert.deepEqual(JSON.parse(x.body), { jsonrpc: '2.0', result: i - 1, id: i }));
  });
});

test('HTTP: addRoute, CORS option, close() is idempotent, listen errors reject', async () => {
  const { d } = makeDispatcher();
  await withServer(d, { cors: 'https://wallet.example' }, async (base, s) => {
    s.addRoute('GET', '/metrics', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('rpc_requests 1\n');
    });
    s.addRoute('GET', '/boom', async () => {
      throw new Error('route failure');
    });
    assert.throws(() => s.addRoute('GET', '/metrics', () => {}), /already exists/);
    let r = await request(base, 'GET', '/metrics');
    assert.deepEqual([r.status, r.body], [200, 'rpc_requests 1\n']);
    r = await request(base, 'GET', '/boom');
    assert.equal(r.status, 500);
    r = await post(base, '{"jsonrpc":"2.0","method":"get_data","id":1}');
    assert.equal(r.headers['access-control-allow-origin'], 'https://wallet.example');
    r = await request(base, 'OPTIONS', '/');
    assert.equal(r.status, 204);
    assert.equal(r.headers['access-control-allow-origin'], 'https://wallet.example');
    assert.match(r.headers['access-control-allow-methods'] ?? '', /POST/);

    // A second server on the same port fails to listen, and says so.
    const port = Number(new URL(base).port);
    const other = new RpcHttpServer(d);
    await assert.rejects(other.listen('127.0.0.1', port), /EADDRINUSE/);
    await other.close();
  });
  const s = new RpcHttpServer(d);
  await s.close(); // never listened
  await s.listen('127.0.0.1', 0);
  await s.close();
  await s.close();
  assert.throws(() => new RpcHttpServer(d, { maxBodyBytes: 0 }), /maxBodyBytes/);
});

// ---- 3. the real schemas/openrpc.json -----------------------------------------------------------

function collectRefs(v: unknown, out: string[] = []): string[] {
  if (Array.isArray(v)) for (const x of v) collectRefs(x, out);
  else if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) {
      if (k === '$ref' && typeof x === 'string') out.push(x);
      else collectRefs(x, out);
    }
  }
  return out;
}

function deref(doc: any, v: any): any {
  while (v && typeof v === 'object' && typeof v.$ref === 'string') v = resolveLocalRef(doc, v.$ref);
  return v;
}

test('schemas/openrpc.json: compiles, refs resolve, error table agrees with errors.ts', () => {
  const doc = readJson(OPENRPC_FILE);
  assert.equal(doc.openrpc, '1.2.6');
  assert.equal(doc.info.title, 'meshledger JSON-RPC');
  const refs = collectRefs(doc);
  assert.ok(refs.length > 10);
  for (const ref of refs) assert.doesNotThrow(() => resolveLocalRef(doc, ref), ref);

  const names: string[] = doc.methods.map((m: any) => m.name);
  assert.deepEqual(new Set(names).size, names.length);
  for (const expected of ['getChainInfo', 'getBlockHeader']) assert.ok(names.includes(expected), expected);
  const handlers = Object.fromEntries(names.map((n) => [n, () => null]));
  assert.doesNotThrow(() => new RpcDispatcher({ openrpc: doc, handlers, validateResults: true }));

  // The application error table: same names, codes and messages on both sides.
  const docErrors = Object.fromEntries(Object.entries(doc.components.errors).map(([k, v]: [string, any]) => [k, { code: v.code, message: v.message }]));
  const tsErrors = Object.fromEntries(Object.entries(APP_ERRORS).map(([k, v]) => [k, { code: v.code, message: v.message }]));
  assert.deepEqual(docErrors, tsErrors);
  // Every error a method lists is an entry of the table.
  for (const m of doc.methods) {
    for (const e of m.errors ?? []) {
      const err = deref(doc, e);
      assert.ok(appErrorByCode(err.code), `${m.name}: error ${err.code} is in the table`);
    }
  }
});

test('schemas/openrpc.json: every example validates (params by name and by position, result schema)', async () => {
  const doc = readJson(OPENRPC_FILE);
  for (const m0 of doc.methods) {
    const m = deref(doc, m0);
    assert.ok(Array.isArray(m.examples) && m.examples.length >= 1, `${m.name} has at least one example`);
    for (const ex0 of m.examples) {
      const ex = deref(doc, ex0);
      const params = (ex.params as any[]).map((p) => deref(doc, p));
      const result = deref(doc, ex.result).value;
      const named = Object.fromEntries(params.map((p) => [p.name, p.value]));
      let seen: Record<string, unknown> | undefined;
      const handlers = Object.fromEntries(doc.methods.map((x: any) => [x.name, () => null]));
      handlers[m.name] = (p: Record<string, unknown>) => {
        seen = p;
        return result;
      };
      const d = new RpcDispatcher({ openrpc: doc, handlers, validateResults: true });
      const admin = m['x-admin'] === true;
      const r = await call(d, { jsonrpc: '2.0', method: m.name, params: named, id: 1 }, { ...CTX, admin });
      assert.deepEqual(r, { jsonrpc: '2.0', result, id: 1 }, `${m.name} / ${ex.name}: ${JSON.stringify(r)}`);
      if (admin) {
        // Without the admin token the method does not exist, and discovery does not list it.
        assert.equal((await call(d, { jsonrpc: '2.0', method: m.name, params: named, id: 1 })).error.code, -32601);
        const pub = await call(d, { jsonrpc: '2.0', method: 'rpc.discover', id: 1 });
        assert.ok(!pub.result.methods.some((x: any) => x.name === m.name), `${m.name} hidden from public discovery`);
        const priv = await call(d, { jsonrpc: '2.0', method: 'rpc.discover', id: 1 }, { ...CTX, admin: true });
        assert.ok(priv.result.methods.some((x: any) => x.name === m.name), `${m.name} listed for admins`);
      }
      assert.deepEqual(seen, named);

      // A result that breaks the schema is caught: drop one required member (or add a stray one).
      if (result && typeof result === 'object' && !Array.isArray(result)) {
        const [first] = Object.keys(result);
        const broken = { ...result };
        delete broken[first!];
        handlers[m.name] = () => broken;
        const d2 = new RpcDispatcher({ openrpc: doc, handlers, validateResults: true });
        assert.equal((await call(d2, { jsonrpc: '2.0', method: m.name, params: named, id: 2 }, { ...CTX, admin })).error.code, INTERNAL_ERROR);
      }
    }
  }
});

test('schemas/openrpc.json: getBlockHeader params and shared schemas reject bad shapes', async () => {
  const doc = readJson(OPENRPC_FILE);
  const handlers = Object.fromEntries(doc.methods.map((x: any) => [x.name, () => null]));
  const d = new RpcDispatcher({ openrpc: doc, handlers });
  const bad = [
    { height: -1 },
    { height: 1.5 },
    { height: '5' },
    { hash: 'AB'.repeat(32) },
    { hash: 'ab'.repeat(31) },
    { number: 5 },
  ];
  for (const params of bad) {
    const r = await call(d, { jsonrpc: '2.0', method: 'getBlockHeader', params, id: 1 });
    assert.equal(r.error?.code, INVALID_PARAMS, JSON.stringify(params));
  }
  assert.equal((await call(d, { jsonrpc: '2.0', method: 'getBlockHeader', params: { height: 0 }, id: 1 })).result, null);
  assert.equal((await call(d, { jsonrpc: '2.0', method: 'getChainInfo', params: { x: 1 }, id: 1 })).error.code, INVALID_PARAMS);

  // The Address and Amount patterns, through a throwaway method that uses them.
  const probe = structuredClone(doc);
  probe.methods.push({
    name: 'probe',
    paramStructure: 'by-name',
    params: [
      { name: 'address', schema: { $ref: '#/components/schemas/Address' } },
      { name: 'amount', schema: { $ref: '#/components/schemas/Amount' } },
    ],
    result: { name: 'r', schema: { type: 'null' } },
  });
  const pd = new RpcDispatcher({ openrpc: probe, handlers: { ...handlers, probe: () => null } });
  const valid = async (params: object): Promise<boolean> => !(await call(pd, { jsonrpc: '2.0', method: 'probe', params, id: 1 })).error;
  assert.equal(await valid({ address: 'ml1k6tt04vpp4dvex909q7993g48rhglduj56uzllpjts7nqzcxjveq0tdc02' }), true);
  assert.equal(await valid({ address: 'ml1k6tt04vpp4dvex909q7993g48rhglduj56uzllpjts7nqzcxjveq0tdc0' }), false, 'too short');
  assert.equal(await valid({ address: 'ml1b6tt04vpp4dvex909q7993g48rhglduj56uzllpjts7nqzcxjveq0tdc02' }), false, '"b" is not in the bech32 alphabet');
  assert.equal(await valid({ address: 'ML1K6TT04VPP4DVEX909Q7993G48RHGLDUJ56UZLLPJTS7NQZCXJVEQ0TDC02' }), false, 'upper case');
  for (const a of ['0', '1', '18446744073709551615', '99999999999999999999']) assert.equal(await valid({ amount: a }), true, a);
  for (const a of ['', '01', '-1', '1.0', '100000000000000000000', '1e3']) assert.equal(await valid({ amount: a }), false, a);
});
