/**
 * Fault and adversary suite: fuzzing of the JSON-RPC server (src/rpc/server.ts) built from the REAL
 * schemas/openrpc.json, with stub handlers that record what reaches them and answer the method's own example
 * result (results are validated against the document too).
 *
 * Request bodies are written as TEXT from a small JSON syntax tree, so they can hold what JSON.stringify cannot
 * write: numbers such as 1e400, 123456789012345678901234567890 and -0, duplicate keys, "__proto__" /
 * "constructor" keys, strings with lone surrogates, random whitespace, nesting 10 000 deep.
 *
 * Properties:
 *   - `handle` never throws; its answer is undefined or JSON that is one JSON-RPC response or an array of them,
 *     exactly the responses JSON-RPC 2.0 asks for (one per non-notification, in order, each echoing its id,
 *     unsafe numeric ids echoed with their original text);
 *   - whenever a stub handler is reached, its params satisfy the method's schemas as checked by an independent
 *     validator written here (so ajv's compiled checks cannot be bypassed), and admin methods are reached only
 *     with the admin flag;
 *   - the HTTP server answers random bodies, content types, encodings, methods, paths and raw garbage with
 *     well-formed HTTP, and keeps serving.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import fc from 'fast-check';
import { RpcDispatcher, RpcHttpServer, DEFAULT_MAX_BATCH, type MethodHandler, type RpcContext } from '../../src/rpc/server.js';
import { loadSchema } from '../../src/util/schemas.js';

// ---- the document, stubs, and an independent param validator -------------------------------------------

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
interface DocParam { name: string; required?: boolean; schema: Record<string, unknown> }
interface DocMethod { name: string; params: DocParam[]; examples?: { result?: { value: Json } }[]; 'x-admin'?: boolean }

const DOC = loadSchema('openrpc.json') as { methods: DocMethod[]; components: { schemas: Record<string, Record<string, unknown>> } };
const METHODS = new Map(DOC.methods.map((m) => [m.name, m]));
const ADMIN = new Set(DOC.methods.filter((m) => m['x-admin'] === true).map((m) => m.name));
const NAMES = [...METHODS.keys()];

/** A deliberately small JSON Schema checker for the keywords the param schemas use; written apart from ajv. */
function schemaError(schema: Record<string, unknown>, v: unknown, doc = DOC): string | null {
  if (typeof schema.$ref === 'string') {
    const name = schema.$ref.replace('#/components/schemas/', '');
    const target = doc.components.schemas[name];
    if (!target) return `unresolvable ${schema.$ref}`;
    const e = schemaError(target, v, doc);
    if (e) return e;
  }
  if (Array.isArray(schema.oneOf)) {
    const ok = (schema.oneOf as Record<string, unknown>[]).filter((s) => schemaError(s, v, doc) === null).length;
    if (ok !== 1) return `matches ${ok} of oneOf`;
  }
  if (Array.isArray(schema.enum) && !schema.enum.some((x) => x === v)) return `not in enum ${JSON.stringify(schema.enum)}`;
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string];
    const is = (t: string): boolean => {
      switch (t) {
        case 'integer': return typeof v === 'number' && Number.isFinite(v) && Number.isInteger(v);
        case 'number': return typeof v === 'number' && Number.isFinite(v);
        case 'string': return typeof v === 'string';
        case 'boolean': return typeof v === 'boolean';
        case 'null': return v === null;
        case 'array': return Array.isArray(v);
        case 'object': return typeof v === 'object' && v !== null && !Array.isArray(v);
        default: return false;
      }
    };
    if (!types.some(is)) return `${typeof v} ${String(v).slice(0, 40)} is not ${types.join('|')}`;
  }
  if (typeof v === 'string') {
    const len = [...v].length; // code points, as JSON Schema counts
    if (typeof schema.minLength === 'number' && len < schema.minLength) return 'too short';
    if (typeof schema.maxLength === 'number' && len > schema.maxLength) return 'too long';
    if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(v)) return `does not match ${schema.pattern}`;
  }
  if (typeof v === 'number') {
    if (typeof schema.minimum === 'number' && !(v >= schema.minimum)) return `below ${schema.minimum}`;
    if (typeof schema.maximum === 'number' && !(v <= schema.maximum)) return `above ${schema.maximum}`;
  }
  return null;
}

/** What every stub records; `violations` must stay empty. */
const calls: { method: string; params: Record<string, unknown>; admin: boolean }[] = [];
const violations: string[] = [];

function checkParams(m: DocMethod, params: Record<string, unknown>, ctx: RpcContext, doc = DOC): void {
  const where = `${m.name}(${safeJson(params)})`;
  if (Object.getPrototypeOf(params) !== Object.prototype && Object.getPrototypeOf(params) !== null) violations.push(`${where}: params object has a foreign prototype`);
  for (const key of Object.keys(params)) {
    const p = m.params.find((x) => x.name === key);
    if (!p) { violations.push(`${where}: undeclared param "${key}" reached the handler`); continue; }
    const e = schemaError(p.schema, params[key], doc);
    if (e) violations.push(`${where}: param "${key}" ${e}`);
  }
  for (const p of m.params) if (p.required && !Object.hasOwn(params, p.name)) violations.push(`${where}: required "${p.name}" missing`);
  if (m['x-admin'] === true && !ctx.admin) violations.push(`${where}: admin method reached without the admin flag`);
}

function safeJson(v: unknown): string {
  try { return JSON.stringify(v)?.slice(0, 200) ?? String(v); } catch { return String(v); }
}

function stubHandlers(doc: { methods: DocMethod[] } = DOC, docForCheck = DOC): Record<string, MethodHandler> {
  const h: Record<string, MethodHandler> = {};
  for (const m of doc.methods) {
    const result = m.examples?.[0]?.result?.value ?? null;
    h[m.name] = (params, ctx) => {
      calls.push({ method: m.name, params, admin: ctx.admin === true });
      checkParams(m, params, ctx, docForCheck as typeof DOC);
      return structuredClone(result);
    };
  }
  return h;
}

const dispatcher = new RpcDispatcher({ openrpc: DOC, handlers: stubHandlers(), validateResults: true });

// ---- JSON written as text ---------------------------------------------------------------------------------

/** A number literal as text (1e400, -0, 123456789012345678901234567890 …). */
class Raw { constructor(readonly text: string) {} }
/** An object as an entry list: keys may repeat and may be "__proto__". */
class Obj { constructor(readonly entries: [string, J][]) {} }
type J = null | boolean | number | string | Raw | Obj | J[];

function toText(j: J, ws: string): string {
  if (j instanceof Raw) return j.text;
  if (j instanceof Obj) return `{${ws}${j.entries.map(([k, v]) => `${JSON.stringify(k)}${ws}:${ws}${toText(v, ws)}`).join(`${ws},${ws}`)}${ws}}`;
  if (Array.isArray(j)) return `[${ws}${j.map((x) => toText(x, ws)).join(`${ws},${ws}`)}${ws}]`;
  return JSON.stringify(j); // strings with lone surrogates come out as \\udXXX escapes
}

function fromJson(v: Json): J {
  if (Array.isArray(v)) return v.map(fromJson);
  if (v !== null && typeof v === 'object') return new Obj(Object.entries(v).map(([k, x]) => [k, fromJson(x)]));
  return v;
}

const RAW_NUMBERS = ['1e400', '-1e400', '123456789012345678901234567890', '-0', '-0.0', '1.0', '1e2', '1.5', '5e-324', '9007199254740993', '9007199254740992', '1152921504606846976', '0.1e1', '-1', '12345678901234567890'];
const HEX64 = 'ab'.repeat(32);
const ADDR = `ml1${'q'.repeat(58)}`;
const STRINGS = [
  '', '5', '0', '-1', '1.5', '0x5', 'true', 'null', HEX64, HEX64.toUpperCase(), HEX64.slice(1), `${HEX64}0`, `${HEX64.slice(2)}\ud800`,
  ADDR, ADDR.toUpperCase(), `${ADDR}\udc00`, 'ml1', '0x0123456789abcdef', '0x0123456789ABCDEF', 'ws://127.0.0.1:30400', 'ws://a/b:1',
  'newHeads', 'account', 'transaction', 'sent', 'both', '9c2f1a0b44d3e871aabbccddee', 'aa'.repeat(100), 'AAAA', 'x'.repeat(4097),
  '\ud800', '\udfff\ud800', 'a\u0000b', '__proto__', 'constructor', '𝄞'.repeat(3),
];
const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__'];

const leafArb: fc.Arbitrary<J> = fc.oneof(
  fc.constantFrom<J>(0, 1, -1, 1.5, 2 ** 53 - 1, 2 ** 53, 2 ** 60, 1284, 525600, 525601, 100, 101, true, false, null),
  fc.constantFrom(...RAW_NUMBERS).map((t) => new Raw(t)),
  fc.constantFrom(...STRINGS),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 8 }), // lone surrogates included
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);
const valueArb: fc.Arbitrary<J> = fc.oneof(
  { weight: 6, arbitrary: leafArb },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => fromJson(v as Json)) },
  { weight: 1, arbitrary: fc.array(leafArb, { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.array(fc.tuple(fc.constantFrom('height', 'hash', ...PROTO_KEYS), leafArb), { maxLength: 2 }).map((e) => new Obj(e)) },
);

/** Values that satisfy a param schema (so that the handlers are reached often, not only refusals). */
function validValues(schema: Record<string, unknown>): J[] {
  const ref = typeof schema.$ref === 'string' ? schema.$ref.replace('#/components/schemas/', '') : undefined;
  switch (ref) {
    case 'Uint': return [0, 1, 1284, Number.MAX_SAFE_INTEGER, new Raw('-0'), new Raw('1.0'), new Raw('1e2')];
    case 'Hash': return [HEX64, '0'.repeat(64)];
    case 'Address': return [ADDR, `ml1${'02'.repeat(29)}`];
    case 'SignedTransaction': return ['0a0b', `0x${'ab'.repeat(40)}`, 'AAAA', 'q83v', 'AB=='];
    case 'Amount': return ['0', '5', '18446744073709551615'];
  }
  if (Array.isArray(schema.enum)) return schema.enum as J[];
  if (schema.type === 'boolean') return [true, false];
  if (schema.type === 'integer') return [schema.minimum as number, schema.maximum as number, Math.floor(((schema.minimum as number) + (schema.maximum as number)) / 2)];
  if (schema.pattern === '^0x[0-9a-f]{16}$') return ['0x0123456789abcdef'];
  if (schema.pattern === '^[0-9a-f]{26}$') return ['0123456789abcdef0123456789'];
  if (typeof schema.pattern === 'string' && schema.pattern.startsWith('^ws://')) return ['ws://127.0.0.1:30400', 'ws://[::1]:1'];
  if (schema.type === 'string') return ['', 'reason', 'x'.repeat(200)];
  return [];
}

function paramsArb(method: string): fc.Arbitrary<J | undefined> {
  const m = METHODS.get(method);
  const declared = m?.params.map((p) => p.name) ?? ['height', 'hash', 'x'];
  const valueFor = (name: string): fc.Arbitrary<J> => {
    const good = validValues(m?.params.find((p) => p.name === name)?.schema ?? {});
    return good.length ? fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...good) }, { weight: 2, arbitrary: valueArb }) : valueArb;
  };
  const key = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...declared, ...(declared.length ? [] : ['x'])) },
    { weight: 1, arbitrary: fc.constantFrom(...PROTO_KEYS) },
    { weight: 1, arbitrary: fc.oneof(fc.string({ maxLength: 6 }), fc.string({ unit: 'binary', maxLength: 3 })) },
  );
  const positional = fc.nat({ max: declared.length + 1 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => (i < declared.length ? valueFor(declared[i]!) : valueArb))));
  return fc.oneof(
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 4, arbitrary: positional.map((xs): J => xs) },
    { weight: 5, arbitrary: fc.array(key.chain((k) => fc.tuple(fc.constant(k), valueFor(k))), { maxLength: declared.length + 1 }).map((e) => new Obj(e)) },
    { weight: 1, arbitrary: fc.constantFrom<J>(null, 1, 'x', true, new Raw('1e400')) },
  );
}

const idArb: fc.Arbitrary<J | undefined> = fc.oneof(
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 4, arbitrary: fc.oneof(fc.integer(), fc.string({ maxLength: 8 }), fc.string({ unit: 'binary', maxLength: 4 }), fc.constant(null)) },
  { weight: 3, arbitrary: fc.constantFrom(...RAW_NUMBERS).map((t) => new Raw(t)) },
  { weight: 1, arbitrary: fc.constantFrom<J>(1.5, true, [], new Obj([]), new Obj([['id', 1]]), [1]) },
);

const requestArb: fc.Arbitrary<J> = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom(...NAMES, ...NAMES, 'rpc.discover') },
  { weight: 2, arbitrary: fc.oneof(fc.constantFrom('nope', 'rpc.x', '', ...PROTO_KEYS), fc.string({ unit: 'binary', maxLength: 4 })) },
  { weight: 1, arbitrary: fc.constantFrom<J>(1, null, ['getHealth'], new Obj([])) },
).chain((method) => fc.record({
  jsonrpc: fc.oneof({ weight: 12, arbitrary: fc.constant<J | undefined>('2.0') }, { weight: 1, arbitrary: fc.constantFrom<J | undefined>(undefined, '1.0', 2, '2.00', null) }),
  params: paramsArb(typeof method === 'string' ? method : ''),
  id: idArb,
  dupId: fc.oneof({ weight: 8, arbitrary: fc.constant<J | undefined>(undefined) }, { weight: 1, arbitrary: idArb }),
  extra: fc.oneof({ weight: 6, arbitrary: fc.constant<[string, J][]>([]) }, { weight: 1, arbitrary: fc.array(fc.tuple(fc.constantFrom(...PROTO_KEYS, 'result', 'error', 'x'), leafArb), { maxLength: 2 }) }),
  order: fc.nat(),
}).map((r): J => {
  const e: [string, J][] = [];
  if (r.jsonrpc !== undefined) e.push(['jsonrpc', r.jsonrpc]);
  e.push(['method', method]);
  if (r.params !== undefined) e.push(['params', r.params]);
  if (r.id !== undefined) e.push(['id', r.id]);
  if (r.dupId !== undefined) e.push(['id', r.dupId]);
  e.push(...r.extra);
  // Rotate the members: order must not matter (with two "id" members the last one wins, as in JSON.parse).
  const k = r.order % e.length;
  return new Obj([...e.slice(k), ...e.slice(0, k)]);
}));

function deep(n: number, open: string, close: string): Raw {
  return new Raw(open.repeat(n) + close.repeat(n));
}

const bodyArb: fc.Arbitrary<string> = fc.tuple(
  fc.oneof(
    { weight: 8, arbitrary: requestArb },
    { weight: 4, arbitrary: fc.array(fc.oneof({ weight: 5, arbitrary: requestArb }, { weight: 1, arbitrary: leafArb }), { minLength: 1, maxLength: 6 }) },
    { weight: 1, arbitrary: fc.constantFrom<J>([], [[]], [1, 2], new Obj([])) },
    // Batches at the size limit and one over it.
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(DEFAULT_MAX_BATCH, DEFAULT_MAX_BATCH + 1), requestArb).map(([n, r]): J => Array.from({ length: n }, () => r)) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom('getHealth', 'getBlockHeader'), idArb, fc.constantFrom(10_000, 30_000), fc.boolean()).map(([method, id, n, asObj]): J => {
      const e: [string, J][] = [['jsonrpc', '2.0'], ['method', method], ['params', asObj ? new Raw(`{"height":${'['.repeat(n)}${']'.repeat(n)}}`) : deep(n, '[', ']')]];
      if (id !== undefined) e.push(['id', id]);
      return new Obj(e);
    }) },
  ),
  fc.constantFrom('', '', '', ' ', '\n', ' \t\r\n '),
  fc.oneof({ weight: 12, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.nat() }),
).map(([j, ws, cut]) => {
  const text = toText(j, ws);
  return cut === null ? text : text.slice(0, cut % (text.length + 1)); // sometimes truncated: a parse error
});

// ---- what a correct answer looks like --------------------------------------------------------------------

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

interface Expected { id: unknown; kind: 'any' | 'invalid_request' }

/** The response JSON-RPC 2.0 requires for one parsed request, or null for none (a valid notification). */
function expectedFor(req: unknown): Expected | null {
  if (!isPlainObject(req)) return { id: null, kind: 'invalid_request' };
  const hasId = Object.hasOwn(req, 'id');
  const idOk = !hasId || req.id === null || typeof req.id === 'string' || typeof req.id === 'number';
  const id = hasId && idOk ? req.id : null;
  const envelopeOk = req.jsonrpc === '2.0' && typeof req.method === 'string' && (!Object.hasOwn(req, 'params') || (typeof req.params === 'object' && req.params !== null)) && idOk;
  if (!envelopeOk) return { id, kind: 'invalid_request' };
  return hasId ? { id, kind: 'any' } : null;
}

function sameId(a: unknown, b: unknown): boolean {
  return a === b || (typeof a === 'number' && typeof b === 'number' && Number.isNaN(a) && Number.isNaN(b));
}

function checkResponse(r: unknown, exp: Expected, where: string): void {
  assert.ok(isPlainObject(r), `${where}: response is not an object`);
  for (const k of Object.keys(r)) assert.ok(['jsonrpc', 'id', 'result', 'error'].includes(k), `${where}: unexpected member ${k}`);
  assert.equal(r.jsonrpc, '2.0', where);
  assert.ok(Object.hasOwn(r, 'id'), `${where}: no id`);
  const show = (x: unknown): string => (typeof x === 'number' ? String(x) : safeJson(x));
  assert.ok(sameId(r.id, exp.id), `${where}: id ${show(r.id)} ≠ ${show(exp.id)}`);
  assert.notEqual(Object.hasOwn(r, 'result'), Object.hasOwn(r, 'error'), `${where}: exactly one of result / error`);
  if (Object.hasOwn(r, 'error')) {
    const e = r.error;
    assert.ok(isPlainObject(e) && Number.isInteger(e.code) && typeof e.message === 'string', `${where}: malformed error ${safeJson(e)}`);
    assert.notEqual(e.code, -32603, `${where}: internal error (the stubs never fail)`);
    if (exp.kind === 'invalid_request') assert.equal(e.code, -32600, where);
  } else {
    assert.equal(exp.kind, 'any', `${where}: a result for an invalid request`);
  }
}

/** Check one `handle` answer against the body it was given. */
function checkAnswer(body: string, out: string | undefined): void {
  const where = `body ${body.length > 300 ? `${body.slice(0, 300)}…` : body}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    assert.equal(typeof out, 'string', `${where}: no answer to unparseable text`);
    const r = JSON.parse(out!) as Record<string, unknown>;
    checkResponse(r, { id: null, kind: 'any' }, where);
    assert.equal((r.error as { code: number }).code, -32700, where);
    return;
  }
  if (out !== undefined) assert.equal(typeof out, 'string');
  const answer: unknown = out === undefined ? undefined : JSON.parse(out);
  if (Array.isArray(parsed)) {
    if (parsed.length === 0 || parsed.length > DEFAULT_MAX_BATCH) {
      checkResponse(answer, { id: null, kind: 'invalid_request' }, where);
      return;
    }
    const exp = parsed.map(expectedFor).filter((e): e is Expected => e !== null);
    if (exp.length === 0) {
      assert.equal(out, undefined, `${where}: an all-notification batch gets no answer`);
      return;
    }
    assert.ok(Array.isArray(answer), `${where}: a batch needs an array answer, got ${out}`);
    assert.equal(answer.length, exp.length, `${where}: ${answer.length} responses for ${exp.length} requests`);
    answer.forEach((r, i) => checkResponse(r, exp[i]!, `${where} [${i}]`));
    return;
  }
  const exp = expectedFor(parsed);
  if (exp === null) {
    assert.equal(out, undefined, `${where}: a notification got an answer ${out}`);
    return;
  }
  checkResponse(answer, exp, where);
  // Unsafe numeric ids come back with their exact text (the last "id" member wins, as in JSON.parse).
  if (typeof exp.id === 'number' && !Number.isSafeInteger(exp.id)) {
    const raw = [...body.matchAll(/"id"\s*:\s*(-?[0-9][0-9.eE+-]*)/g)].at(-1)?.[1];
    if (raw !== undefined && Number(raw) === exp.id) assert.ok(out!.endsWith(`"id":${raw}}`), `${where}: id text not echoed exactly in ${out}`);
  }
}

async function handleChecked(d: RpcDispatcher, body: string, ctx: RpcContext): Promise<string | undefined> {
  let out: string | undefined;
  try {
    out = await d.handle(body, ctx);
  } catch (e) {
    assert.fail(`handle threw ${e instanceof Error ? e.stack : String(e)} for ${body.slice(0, 300)}`);
  }
  return out;
}

// ---- the properties --------------------------------------------------------------------------------------

test('dispatcher: random requests and batches never throw, answer exactly per JSON-RPC 2.0, and never bypass validation', async (t) => {
  calls.length = 0;
  violations.length = 0;
  let results = 0;
  await fc.assert(fc.asyncProperty(bodyArb, fc.boolean(), async (body, admin) => {
    const before = calls.length;
    const out = await handleChecked(dispatcher, body, { transport: 'http', remote: 'fuzz', admin });
    checkAnswer(body, out);
    assert.deepEqual(violations, [], 'a handler was reached with params its schema refuses');
    for (const c of calls.slice(before)) assert.ok(!ADMIN.has(c.method) || admin, `admin method ${c.method} reached without the admin flag`);
    if (out?.includes('"result"')) results++;
  }), { numRuns: 3000, includeErrorInReport: true });
  // Non-vacuity: plenty of requests got through validation to a handler, for most methods.
  const reached = new Set(calls.map((c) => c.method));
  assert.ok(calls.length > 300 && results > 300, `only ${calls.length} handler calls, ${results} results`);
  assert.ok(reached.size >= NAMES.length - 2, `handlers reached: ${[...reached].join(', ')}`);
  t.diagnostic(`${calls.length} handler calls over ${reached.size} methods, ${results} answers with results`);
});

test('dispatcher: invalid heights, hashes and types never reach getBlockHeader / getBlock (by name and by position)', async () => {
  const badHeights = ['1.5', '-1', '"5"', '1152921504606846976', '1e400', '-1e400', '9007199254740992', 'true', 'null', '[]', '{}', '"0x5"', '[1]', '1e16'];
  const badHashes = [`"${HEX64.toUpperCase()}"`, `"${HEX64.slice(1)}"`, `"${HEX64}\\ud800"`, '5', 'null', `"0x${HEX64.slice(2)}"`, `["${HEX64}"]`];
  let n = 0;
  for (const method of ['getBlockHeader', 'getBlock']) {
    const bodies = [
      ...badHeights.flatMap((h) => [`{"height":${h}}`, `[${h}]`, `{"height":${h},"hash":"${HEX64}"}`]),
      ...badHashes.flatMap((h) => [`{"hash":${h}}`, `[0,${h}]`, `{"height":0,"hash":${h}}`]),
      `{"height":0,"__proto__":{"height":1}}`, `{"constructor":{"height":1}}`, `[0,"${HEX64}",true,1]`, `{"transactions":"yes"}`,
    ];
    for (const p of bodies) {
      if (method === 'getBlockHeader' && p.includes('"transactions"')) continue;
      const before = calls.length;
      const body = `{"jsonrpc":"2.0","method":"${method}","params":${p},"id":7}`;
      const out = await handleChecked(dispatcher, body, { transport: 'http', remote: 'fuzz' });
      const r = JSON.parse(out!) as { error?: { code: number }; id: unknown };
      assert.equal(calls.length, before, `${body} reached the handler`);
      assert.equal(r.error?.code, -32602, `${body} → ${out}`);
      assert.equal(r.id, 7);
      n++;
    }
  }
  // And the valid forms do reach it (the refusals above are not a handler that is never called).
  for (const p of ['{"height":5}', '[5]', '[0]', '{"height":-0}', '{"height":9007199254740991}', `{"hash":"${HEX64}"}`, `[7,"${HEX64}"]`, '{}', '[]']) {
    const before = calls.length;
    const out = await handleChecked(dispatcher, `{"jsonrpc":"2.0","method":"getBlockHeader","params":${p},"id":1}`, { transport: 'http', remote: 'fuzz' });
    assert.equal(calls.length, before + 1, `${p} did not reach the handler: ${out}`);
  }
  assert.deepEqual(violations, []);
  assert.ok(n > 50);
});

test('dispatcher: Amount- and Uint-typed params (real component schemas) never arrive as numbers / non-integers', async () => {
  // The document has no method taking an Amount param today; add one to a copy so the real Amount schema is exercised.
  const doc = structuredClone(DOC) as typeof DOC;
  doc.methods.push({
    name: 'fuzzAmounts', params: [
      { name: 'amount', required: true, schema: { $ref: '#/components/schemas/Amount' } },
      { name: 'count', required: false, schema: { $ref: '#/components/schemas/Uint' } },
    ], examples: [{ result: { value: true } }],
    result: { name: 'ok', schema: { type: 'boolean' } },
  } as DocMethod & { result: unknown });
  (doc.methods.at(-1) as unknown as Record<string, unknown>).paramStructure = 'either';
  const d = new RpcDispatcher({ openrpc: doc, handlers: stubHandlers(doc, doc), validateResults: true });
  const amountArb = fc.oneof(
    fc.constantFrom('5', '1e400', '"05"', '"-1"', '"1.5"', '" 5"', '"5 "', '"0x10"', '"18446744073709551615"', '"0"', '5.0', '-0', '"１"', '"5\\u0000"', '123456789012345678901234567890'),
    fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((n) => `"${n}"`),
    fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((n) => `${n}`),
  );
  const countArb = fc.option(fc.constantFrom('0', '1', '1.5', '-1', '"1"', '9007199254740991', '9007199254740992', '1e400', '-0'), { nil: undefined });
  let reached = 0;
  await fc.assert(fc.asyncProperty(amountArb, countArb, fc.boolean(), async (amount, count, byName) => {
    const before = calls.length;
    const params = byName ? `{"amount":${amount}${count !== undefined ? `,"count":${count}` : ''}}` : `[${amount}${count !== undefined ? `,${count}` : ''}]`;
    const body = `{"jsonrpc":"2.0","method":"fuzzAmounts","params":${params},"id":"a"}`;
    const out = await handleChecked(d, body, { transport: 'ws', remote: 'fuzz' });
    checkAnswer(body, out);
    assert.deepEqual(violations, []);
    if (calls.length > before) {
      reached++;
      const p = calls.at(-1)!.params;
      assert.equal(typeof p.amount, 'string', `${body}: amount arrived as ${typeof p.amount}`);
      if (p.count !== undefined) assert.ok(Number.isSafeInteger(p.count) && (p.count as number) >= 0, `${body}: count ${String(p.count)}`);
    }
  }), { numRuns: 800, includeErrorInReport: true });
  assert.ok(reached > 50, `only ${reached} valid calls`);
});

test('dispatcher: nesting 10 000 and 100 000 deep, with unsafe numeric ids, single and batched, is answered with the id echoed', async () => {
  for (const n of [10_000, 100_000]) {
    for (const id of ['1e400', '123456789012345678901234567890', '1.5', '7', '"s"']) {
      const params = `${'['.repeat(n)}${']'.repeat(n)}`;
      const one = `{"jsonrpc":"2.0","method":"getHealth","params":${params},"id":${id}}`;
      const out = await handleChecked(dispatcher, one, { transport: 'http', remote: 'deep' });
      checkAnswer(one, out);
      assert.ok(out!.endsWith(`"id":${id}}`), `depth ${n}, id ${id}: ${out!.slice(0, 200)}`);
      assert.match(out!, /"code":-32602/);
      const batch = `[{"jsonrpc":"2.0","method":"getVersion","id":1},{"jsonrpc":"2.0","method":"getHealth","params":{"x":${params}},"id":${id}}]`;
      const outB = await handleChecked(dispatcher, batch, { transport: 'http', remote: 'deep' });
      checkAnswer(batch, outB);
      assert.ok(outB!.endsWith(`"id":${id}}]`), `batch depth ${n}, id ${id}: ${outB!.slice(0, 300)}`);
    }
  }
});

// ---- HTTP ------------------------------------------------------------------------------------------------

interface Reply { status: number; headers: http.IncomingHttpHeaders; body: Buffer }

function send(port: number, o: { method: string; path: string; headers: Record<string, string>; body: Buffer; agent: http.Agent | false }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: o.method, path: o.path, headers: o.headers, agent: o.agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Send raw bytes on a fresh connection; resolve with everything the server wrote before closing (bounded by 3 s). */
function rawExchange(port: number, data: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const done = (): void => { clearTimeout(timer); s.destroy(); resolve(Buffer.concat(chunks).toString('latin1')); };
    const timer = setTimeout(done, 3000);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', done);
    s.on('close', done);
    s.on('connect', () => { s.write(data, 'latin1'); s.end(); });
  });
}

const MAX_BODY = 16 * 1024;
const CONTENT_TYPES = ['application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'application/json-rpc', 'application/jsonrequest', ' application/json ;x=y', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', '', 'application/json;', 'application/jsonx', '*/*'];
const JSON_TYPES = new Set(['application/json', 'application/json-rpc', 'application/jsonrequest']);

test('HTTP server: random bodies, content types, encodings, methods and paths get well-formed answers; it keeps serving', async (t) => {
  const statuses = new Map<number, number>();
  const server = new RpcHttpServer(dispatcher, { maxBodyBytes: MAX_BODY });
  const { port } = await server.listen('127.0.0.1', 0);
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 2 });
  try {
    const bodyBytes = fc.oneof(
      { weight: 8, arbitrary: bodyArb.map((s) => Buffer.from(s, 'utf8')) },
      { weight: 2, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)) }, // often invalid UTF-8
      { weight: 1, arbitrary: fc.constantFrom(Buffer.alloc(0), Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]), Buffer.from('{"jsonrpc":"2.0","method":"getHealth","id":"\xff"}', 'latin1')) },
      { weight: 1, arbitrary: fc.integer({ min: MAX_BODY + 1, max: MAX_BODY * 2 }).map((n) => Buffer.alloc(n, 0x20)) },
    );
    await fc.assert(fc.asyncProperty(
      fc.oneof({ weight: 10, arbitrary: fc.constant('POST') }, { weight: 1, arbitrary: fc.constantFrom('GET', 'PUT', 'DELETE', 'OPTIONS', 'PATCH') }),
      fc.oneof({ weight: 10, arbitrary: fc.constant('/') }, { weight: 1, arbitrary: fc.constantFrom('/?a=1', '/health', '/x', '//', '/%zz', '/health?x') }),
      fc.oneof({ weight: 6, arbitrary: fc.constant('application/json') }, { weight: 3, arbitrary: fc.constantFrom(...CONTENT_TYPES) }, { weight: 1, arbitrary: fc.constant(undefined) }),
      fc.oneof({ weight: 8, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('gzip', 'identity', 'IDENTITY ', 'br, gzip', 'deflate') }),
      bodyBytes,
      fc.boolean(),
      async (method, path, ct, enc, body, reuse) => {
        // An explicit length: without it Node's client sends a GET/DELETE/OPTIONS body unframed (bad HTTP on our side).
        const headers: Record<string, string> = { 'content-length': String(body.length) };
        if (ct !== undefined) headers['content-type'] = ct;
        if (enc !== undefined) headers['content-encoding'] = enc;
        const r = await send(port, { method, path, headers, body, agent: reuse ? keepAlive : false });
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        const where = `${method} ${path} ct=${String(ct)} enc=${String(enc)} body=${body.subarray(0, 120).toString('latin1')}`;
        const route = path.split('?')[0];
        if (r.status !== 204) {
          assert.match(String(r.headers['content-type']), /^application\/json/, `${where}: status ${r.status} content type`);
          assert.equal(Number(r.headers['content-length']), r.body.length, `${where}: content length`);
          JSON.parse(r.body.toString('utf8'));
        } else assert.equal(r.body.length, 0, `${where}: 204 with a body`);
        if (route !== '/' && route !== '/health') { assert.equal(r.status, 404, where); return; }
        if (route === '/health') { assert.equal(r.status, method === 'GET' ? 200 : 405, where); return; }
        if (method !== 'POST') { assert.equal(r.status, 405, where); return; }
        const mediaType = (ct ?? '').split(';')[0]!.trim().toLowerCase();
        if (!JSON_TYPES.has(mediaType)) { assert.equal(r.status, 415, where); return; }
        if ((enc ?? 'identity').trim().toLowerCase() !== 'identity') { assert.equal(r.status, 415, where); return; }
        if (body.length > MAX_BODY) {
          assert.equal(r.status, 413, where);
          assert.equal((JSON.parse(r.body.toString('utf8')) as { error: { code: number } }).error.code, -32600);
          return;
        }
        let text: string;
        try {
          text = new TextDecoder('utf-8', { fatal: true }).decode(body);
        } catch {
          assert.equal(r.status, 200, where);
          assert.equal((JSON.parse(r.body.toString('utf8')) as { error: { code: number } }).error.code, -32700, where);
          return;
        }
        assert.ok(r.status === 200 || r.status === 204, `${where}: status ${r.status}`);
        checkAnswer(text, r.status === 204 ? undefined : r.body.toString('utf8'));
      },
    ), { numRuns: 400, includeErrorInReport: true });

    // Raw garbage on the socket: every answer that comes is an HTTP status line; none kills the server.
    const raws = [
      'GARBAGE\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n0\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n{}',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"jsonrpc"',
      `POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999999999999999\r\n\r\n`,
      `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
      `POST / HTTP/1.1\r\nHost: x\r\n${'X-A: b\r\n'.repeat(3000)}\r\n`,
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]POST / HTTP/1.1\r\n\r\n',
      '\x00\xff\xfe\r\n\r\n',
    ];
    t.diagnostic(`HTTP statuses: ${JSON.stringify(Object.fromEntries(statuses))}`);
    assert.ok((statuses.get(200) ?? 0) > 50 && (statuses.get(415) ?? 0) > 5 && (statuses.get(413) ?? 0) > 2, 'status mix too narrow');
    for (const raw of raws) {
      const got = await rawExchange(port, raw);
      t.diagnostic(`raw ${JSON.stringify(raw.slice(0, 30))} → ${JSON.stringify(got.split('\r\n')[0])}`);
      if (got.length) assert.match(got, /^HTTP\/1\.1 [1-5][0-9]{2} /, `raw ${JSON.stringify(raw.slice(0, 60))} → ${JSON.stringify(got.slice(0, 80))}`);
    }

    // Still serving.
    const ok = await send(port, { method: 'POST', path: '/', headers: { 'content-type': 'application/json' }, body: Buffer.from('{"jsonrpc":"2.0","method":"getVersion","id":1}'), agent: false });
    assert.equal(ok.status, 200);
    assert.equal((JSON.parse(ok.body.toString('utf8')) as { id: number }).id, 1);
    assert.deepEqual(violations, []);
  } finally {
    keepAlive.destroy();
    await server.close();
  }
});
