/**
 * JSON-RPC 2.0 server core.
 *
 * - `RpcDispatcher` turns raw request text into raw response text (`undefined` = nothing to send). It is
 *   transport-free, so HTTP (here) and WebSocket (ws.ts) share one `handle`.
 * - Parameter and result validation is compiled with ajv from the OpenRPC document at construction; the
 *   constructor throws when the document and the handler table disagree, so they cannot drift.
 * - `RpcHttpServer` serves POST `/` (JSON content type), GET `/health`, and any routes added with `addRoute`.
 *
 * OpenRPC interpretation:
 * - `paramStructure` defaults to "by-position" as the OpenRPC spec says; methods that accept named params
 *   declare "by-name" or "either".
 * - Empty params (`[]` or `{}`) are accepted whatever the structure.
 * - Positional params map to the declared names in order; more positional values than declared params is
 *   -32602. Named params not declared are -32602. Omitted optional params are absent from the handler's object.
 * - Extension `"x-variadic": true` on the LAST param (whose schema is an array schema): by position, every
 *   remaining value is collected into that param as an array; by name it is passed as given.
 * - Schema `$ref`s of the form `#/components/schemas/X...` are rewritten to point into one ajv schema that
 *   holds `components.schemas` under `definitions`. Other OpenRPC `$ref`s (content descriptors, errors) are
 *   resolved as local JSON pointers. `x-*` annotation keys inside schemas are dropped before compiling.
 * - Numeric ids are echoed with their original text when they are not safe integers, so ids such as
 *   12345678901234567890 come back exactly as sent.
 *
 * Longer than 500 lines because the dispatcher (OpenRPC compilation, batches, raw ids: ≈480 lines) and its
 * HTTP front (RpcHttpServer, ≈230) live together; the HTTP front is the part that could move to its own file.
 */
import http from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { RpcError, type RpcErrorObject } from './errors.js';

export type RpcTransport = 'http' | 'ws';

export interface RpcContext {
  transport: RpcTransport;
  remote: string;
  /** True when the caller presented the node's admin token: admin methods exist only for such callers. */
  admin?: boolean;
  /** Per-connection state of a WebSocket client (subscriptions); absent over HTTP. */
  session?: unknown;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type RpcLog = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

export interface MethodHandler {
  (params: Record<string, unknown>, ctx: RpcContext): unknown | Promise<unknown>;
}

export interface RpcDispatcherOptions {
  /** The parsed OpenRPC document (schemas/openrpc.json). */
  openrpc: object;
  handlers: Record<string, MethodHandler>;
  /** Validate every handler result against the method's result schema (failure → -32603, logged). */
  validateResults?: boolean;
  limits?: { maxBatch?: number };
  log?: RpcLog;
  /**
   * Per-client rate limit: called with the number of requests in a message (a batch counts each entry);
   * returning false answers the whole message with -32004 rate_limited.
   */
  admit?: (ctx: RpcContext, requests: number) => boolean;
}

export const DEFAULT_MAX_BATCH = 100;
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
export const DISCOVER_METHOD = 'rpc.discover';

type ParamStructure = 'by-position' | 'by-name' | 'either';

interface CompiledParam {
  name: string;
  required: boolean;
  variadic: boolean;
}

interface CompiledMethod {
  name: string;
  structure: ParamStructure;
  params: CompiledParam[];
  paramNames: Set<string>;
  validateParams: ValidateFunction;
  validateResult?: ValidateFunction;
  handler: MethodHandler;
}

const COMPONENTS_ID = 'urn:meshledger:openrpc:components';
const SCHEMA_REF_PREFIX = '#/components/schemas/';
/** Keys whose values are data, not subschemas: never rewrite `$ref` inside them. */
const DATA_KEYWORDS = new Set(['enum', 'const', 'default', 'examples', 'example']);

const noLog: RpcLog = () => {};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Resolve a local JSON pointer reference (`#/a/b`) in `doc`. */
export function resolveLocalRef(doc: unknown, ref: string): unknown {
  if (ref === '#') return doc;
  if (!ref.startsWith('#/')) throw new Error(`unsupported $ref "${ref}" (only local "#/..." references are allowed)`);
  let cur: unknown = doc;
  for (const raw of ref.slice(2).split('/')) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (typeof cur !== 'object' || cur === null || !Object.hasOwn(cur, key)) throw new Error(`$ref "${ref}" does not resolve`);
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

/** Follow OpenRPC-level `{ $ref }` objects (content descriptors, errors) to their target. */
function deref(doc: unknown, v: unknown, what: string): Record<string, unknown> {
  let cur = v;
  for (let hops = 0; isObject(cur) && typeof cur.$ref === 'string'; hops++) {
    if (hops > 16) throw new Error(`${what}: $ref chain too long`);
    cur = resolveLocalRef(doc, cur.$ref);
  }
  if (!isObject(cur)) throw new Error(`${what}: expected an object`);
  return cur;
}

/** Keywords whose value maps names to subschemas: the names are data, the values are schemas. */
const SCHEMA_MAP_KEYWORDS = new Set(['properties', 'patternProperties', 'definitions', '$defs', 'dependencies', 'dependentSchemas']);

/** Copy a schema, pointing component refs into the ajv components schema and dropping `x-*` annotations. */
function rewriteSchema(schema: unknown, where: string): unknown {
  if (Array.isArray(schema)) return schema.map((s, i) => rewriteSchema(s, `${where}/${i}`));
  if (!isObject(schema)) return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k.startsWith('x-')) continue;
    if (k === '$ref') {
      if (typeof v !== 'string') throw new Error(`${where}: $ref must be a string`);
      if (!v.startsWith(SCHEMA_REF_PREFIX)) throw new Error(`${where}: unsupported schema $ref "${v}" (use "${SCHEMA_REF_PREFIX}Name")`);
      out.$ref = `${COMPONENTS_ID}#/definitions/${v.slice(SCHEMA_REF_PREFIX.length)}`;
    } else if (DATA_KEYWORDS.has(k)) {
      out[k] = v;
    } else if (SCHEMA_MAP_KEYWORDS.has(k) && isObject(v)) {
      out[k] = Object.fromEntries(Object.entries(v).map(([name, sub]) => [name, rewriteSchema(sub, `${where}/${k}/${name}`)]));
    } else {
      out[k] = rewriteSchema(v, `${where}/${k}`);
    }
  }
  return out;
}

function describeAjvError(e: ErrorObject): { param: string; path: string; message: string } {
  const segs = e.instancePath.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  let param = segs[0] ?? '';
  const rest = segs.slice(1);
  if (e.keyword === 'required' && !param) param = String((e.params as { missingProperty?: unknown }).missingProperty ?? '');
  if (e.keyword === 'additionalProperties' && !param) param = String((e.params as { additionalProperty?: unknown }).additionalProperty ?? '');
  const path = rest.length ? `${param}/${rest.join('/')}` : param;
  let message = e.message ?? 'is invalid';
  if (e.keyword === 'enum') message += ` (${JSON.stringify((e.params as { allowedValues?: unknown }).allowedValues)})`;
  return { param, path, message };
}

function errorMessageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

// ---------------------------------------------------------------------------------------------------------
// Raw id text: JSON.parse rounds numbers beyond 2^53; when such an id appears, find its exact text.
// ---------------------------------------------------------------------------------------------------------

class RawIdScanner {
  private i = 0;
  constructor(private readonly s: string) {}

  /** For a top-level object: its raw `id` text; for a top-level array: the raw `id` text of each element. */
  scan(): string | undefined | (string | undefined)[] {
    this.ws();
    if (this.s[this.i] === '[') {
      const ids: (string | undefined)[] = [];
      this.i++;
      this.ws();
      if (this.s[this.i] === ']') return ids;
      for (;;) {
        this.ws();
        ids.push(this.s[this.i] === '{' ? this.objectId() : (this.skipValue(), undefined));
        this.ws();
        if (this.s[this.i] === ',') this.i++;
        else return ids;
      }
    }
    return this.s[this.i] === '{' ? this.objectId() : undefined;
  }

  private ws(): void {
    const s = this.s;
    while (this.i < s.length && (s[this.i] === ' ' || s[this.i] === '\t' || s[this.i] === '\n' || s[this.i] === '\r')) this.i++;
  }

  private skipString(): void {
    const s = this.s;
    this.i++; // opening quote
    while (this.i < s.length) {
      const c = s[this.i];
      if (c === '\\') this.i += 2;
      else if (c === '"') {
        this.i++;
        return;
      } else this.i++;
    }
  }

  private skipValue(): void {
    const s = this.s;
    const c = s[this.i];
    if (c === '"') return this.skipString();
    if (c === '{' || c === '[') {
      // Iterative: the text is valid JSON (JSON.parse accepted it), so counting brackets outside strings finds
      // the end, at any nesting depth (recursion here overflowed the stack on deeply nested params).
      let depth = 0;
      while (this.i < s.length) {
        const ch = s[this.i];
        if (ch === '"') {
          this.skipString();
          continue;
        }
        this.i++;
        if (ch === '{' || ch === '[') depth++;
        else if ((ch === '}' || ch === ']') && --depth === 0) return;
      }
      return;
    }
    while (this.i < s.length && !',]} \t\n\r'.includes(s[this.i]!)) this.i++;
  }

  private objectId(): string | undefined {
    let raw: string | undefined;
    this.i++; // '{'
    this.ws();
    if (this.s[this.i] === '}') {
      this.i++;
      return undefined;
    }
    for (;;) {
      this.ws();
      const k0 = this.i;
      this.skipString();
      const key = JSON.parse(this.s.slice(k0, this.i)) as string;
      this.ws();
      this.i++; // ':'
      this.ws();
      const v0 = this.i;
      this.skipValue();
      if (key === 'id') raw = this.s.slice(v0, this.i); // last one wins, as in JSON.parse
      this.ws();
      if (this.s[this.i] === ',') this.i++;
      else {
        this.i++;
        return raw;
      }
    }
  }
}

function needsRawId(v: unknown): boolean {
  return isObject(v) && typeof v.id === 'number' && !Number.isSafeInteger(v.id);
}

// ---------------------------------------------------------------------------------------------------------
// Dispatcher
// ---------------------------------------------------------------------------------------------------------

const NULL_ID = 'null';

/** Marker: the result of `rpc.discover` is the cached document text. */
const DISCOVER_RESULT: unique symbol = Symbol('rpc.discover');

function errorResponse(idText: string, err: RpcErrorObject): string {
  let errText: string;
  try {
    errText = JSON.stringify(err);
  } catch {
    errText = JSON.stringify({ code: err.code, message: err.message });
  }
  return `{"jsonrpc":"2.0","error":${errText},"id":${idText}}`;
}

export class RpcDispatcher {
  private readonly methods = new Map<string, CompiledMethod>();
  private readonly doc: Record<string, unknown>;
  private readonly docText: string;
  /** The document without admin methods: what unauthenticated callers can discover. */
  private readonly publicDocText: string;
  private readonly adminMethods = new Set<string>();
  /** Methods marked `x-batch-concurrent` in the OpenRPC document (see handle()). */
  private readonly batchConcurrent = new Set<string>();
  private readonly admit: RpcDispatcherOptions['admit'];
  private readonly log: RpcLog;
  readonly maxBatch: number;
  readonly validateResults: boolean;

  constructor(opts: RpcDispatcherOptions) {
    if (!isObject(opts.openrpc)) throw new Error('openrpc document must be an object');
    this.doc = opts.openrpc;
    this.docText = JSON.stringify(this.doc);
    for (const m of Array.isArray(this.doc.methods) ? this.doc.methods : []) {
      if (isObject(m) && m['x-admin'] === true && typeof m.name === 'string') this.adminMethods.add(m.name);
      if (isObject(m) && m['x-batch-concurrent'] === true && typeof m.name === 'string') this.batchConcurrent.add(m.name);
    }
    this.publicDocText = JSON.stringify({ ...this.doc, methods: (this.doc.methods as { name: string }[]).filter((m) => !this.adminMethods.has(m.name)) });
    this.admit = opts.admit;
    this.log = opts.log ?? noLog;
    this.validateResults = opts.validateResults ?? false;
    this.maxBatch = opts.limits?.maxBatch ?? DEFAULT_MAX_BATCH;
    if (!Number.isSafeInteger(this.maxBatch) || this.maxBatch < 1) throw new Error(`limits.maxBatch must be a positive integer, got ${this.maxBatch}`);

    const docMethods = this.doc.methods;
    if (!Array.isArray(docMethods)) throw new Error('openrpc document: "methods" must be an array');

    const ajv = new Ajv({ strict: true, strictRequired: false, allowUnionTypes: true, allErrors: false });
    const components = isObject(this.doc.components) && isObject(this.doc.components.schemas) ? this.doc.components.schemas : {};
    const definitions: Record<string, unknown> = {};
    for (const [name, schema] of Object.entries(components)) definitions[name] = rewriteSchema(schema, `components.schemas.${name}`);
    ajv.addSchema({ $id: COMPONENTS_ID, definitions });
    for (const name of Object.keys(definitions)) {
      try {
        ajv.compile({ $ref: `${COMPONENTS_ID}#/definitions/${encodeURIComponent(name.replace(/~/g, '~0').replace(/\//g, '~1'))}` });
      } catch (e) {
        throw new Error(`openrpc components.schemas.${name}: ${errorMessageOf(e)}`);
      }
    }

    const handlerNames = new Set(Object.keys(opts.handlers));
    const missingHandlers: string[] = [];
    for (const [idx, m0] of docMethods.entries()) {
      const m = deref(this.doc, m0, `methods[${idx}]`);
      const name = m.name;
      if (typeof name !== 'string' || name === '') throw new Error(`openrpc methods[${idx}]: "name" must be a non-empty string`);
      const where = `openrpc method "${name}"`;
      if (this.methods.has(name)) throw new Error(`${where}: duplicate method name`);
      if (name === DISCOVER_METHOD) continue; // built in; documenting it is allowed
      if (name.startsWith('rpc.')) throw new Error(`${where}: names beginning with "rpc." are reserved`);
      const handler = Object.hasOwn(opts.handlers, name) ? opts.handlers[name] : undefined;
      if (handler === undefined) {
        missingHandlers.push(name);
        continue;
      }
      if (typeof handler !== 'function') throw new Error(`handler for "${name}" is not a function`);
      this.methods.set(name, this.compileMethod(ajv, m, name, handler));
    }
    if (handlerNames.has(DISCOVER_METHOD)) throw new Error(`"${DISCOVER_METHOD}" is built in; remove its handler`);
    const undocumented = [...handlerNames].filter((h) => !this.methods.has(h) && !missingHandlers.includes(h));
    if (missingHandlers.length || undocumented.length) {
      const parts: string[] = [];
      if (missingHandlers.length) parts.push(`documented methods without a handler: ${missingHandlers.join(', ')}`);
      if (undocumented.length) parts.push(`handlers missing from the OpenRPC document: ${undocumented.join(', ')}`);
      throw new Error(`RPC handlers and OpenRPC document disagree: ${parts.join('; ')}`);
    }
  }

  /** Names of the methods served (not counting the built-in `rpc.discover`). */
  get methodNames(): string[] {
    return [...this.methods.keys()];
  }

  /** The OpenRPC document `rpc.discover` returns. */
  get openrpc(): object {
    return this.doc;
  }

  private compileMethod(ajv: Ajv, m: Record<string, unknown>, name: string, handler: MethodHandler): CompiledMethod {
    const where = `openrpc method "${name}"`;
    const structure = (m.paramStructure ?? 'by-position') as ParamStructure;
    if (structure !== 'by-position' && structure !== 'by-name' && structure !== 'either') throw new Error(`${where}: bad paramStructure "${String(m.paramStructure)}"`);
    if (!Array.isArray(m.params)) throw new Error(`${where}: "params" must be an array`);
    const params: CompiledParam[] = [];
    const properties: Record<string, unknown> = {};
    const required: string[] = [];
    let seenOptional = false;
    for (const [i, p0] of m.params.entries()) {
      const p = deref(this.doc, p0, `${where} params[${i}]`);
      const pname = p.name;
      if (typeof pname !== 'string' || pname === '') throw new Error(`${where} params[${i}]: "name" must be a non-empty string`);
      if (Object.hasOwn(properties, pname)) throw new Error(`${where}: duplicate param "${pname}"`);
      if (!('schema' in p)) throw new Error(`${where} param "${pname}": missing "schema"`);
      const req = p.required === true;
      if (req && seenOptional) throw new Error(`${where}: required param "${pname}" follows an optional one`);
      if (!req) seenOptional = true;
      const variadic = p['x-variadic'] === true;
      if (variadic && i !== m.params.length - 1) throw new Error(`${where}: only the last param may be x-variadic`);
      params.push({ name: pname, required: req, variadic });
      properties[pname] = rewriteSchema(p.schema, `${where} param "${pname}"`);
      if (req) required.push(pname);
    }
    let validateParams: ValidateFunction;
    try {
      validateParams = ajv.compile({ type: 'object', properties, required, additionalProperties: false });
    } catch (e) {
      throw new Error(`${where}: params schema does not compile: ${errorMessageOf(e)}`);
    }
    if (m.result === undefined) throw new Error(`${where}: missing "result"`);
    const result = deref(this.doc, m.result, `${where} result`);
    if (!('schema' in result)) throw new Error(`${where} result: missing "schema"`);
    let validateResult: ValidateFunction | undefined;
    try {
      const v = ajv.compile(rewriteSchema(result.schema, `${where} result`) as object);
      if (this.validateResults) validateResult = v;
    } catch (e) {
      throw new Error(`${where}: result schema does not compile: ${errorMessageOf(e)}`);
    }
    const compiled: CompiledMethod = { name, structure, params, paramNames: new Set(params.map((p) => p.name)), validateParams, handler };
    if (validateResult) compiled.validateResult = validateResult;
    return compiled;
  }

  /**
   * Handle one HTTP body / WebSocket message. Returns the response text, or `undefined` when nothing must be
   * sent (a notification, or a batch of notifications). Never throws.
   */
  async handle(body: string, ctx: RpcContext): Promise<string | undefined> {
    try {
      let parsed: unknown;
      try {
        parsed = JSON.parse(body);
      } catch (e) {
        return errorResponse(NULL_ID, RpcError.parseError(errorMessageOf(e)).toErrorObject());
      }
      if (this.admit && !this.admit(ctx, Array.isArray(parsed) ? Math.max(1, parsed.length) : 1)) {
        return errorResponse(NULL_ID, RpcError.app('rate_limited', { message: 'Rate limited: too many requests from this client; slow down' }).toErrorObject());
      }
      if (Array.isArray(parsed)) {
        if (parsed.length === 0) return errorResponse(NULL_ID, RpcError.invalidRequest('empty batch', 'empty_batch').toErrorObject());
        if (parsed.length > this.maxBatch) {
          return errorResponse(NULL_ID, RpcError.invalidRequest(`batch of ${parsed.length} requests exceeds the limit of ${this.maxBatch}`, 'batch_too_large').toErrorObject());
        }
        let raw: (string | undefined)[] | undefined;
        if (parsed.some(needsRawId)) {
          const r = new RawIdScanner(body).scan();
          if (Array.isArray(r) && r.length === parsed.length) raw = r;
        }
        // Requests in one batch take effect in the order sent (e.g. consecutive nonces). A run of consecutive
        // `x-batch-concurrent` methods (their handlers take effect synchronously, in call order) is started
        // together so the node can process it as one batch; anything else waits for what came before it.
        const results: (string | undefined)[] = [];
        let run: Promise<string | undefined>[] = [];
        for (let i = 0; i < parsed.length; i++) {
          const req = parsed[i];
          if (isObject(req) && typeof req.method === 'string' && this.batchConcurrent.has(req.method)) {
            run.push(this.one(req, raw?.[i], ctx));
            continue;
          }
          if (run.length) { results.push(...(await Promise.all(run))); run = []; }
          results.push(await this.one(req, raw?.[i], ctx));
        }
        if (run.length) results.push(...(await Promise.all(run)));
        const out = results.filter((r): r is string => r !== undefined);
        return out.length ? `[${out.join(',')}]` : undefined;
      }
      let raw: string | undefined;
      if (needsRawId(parsed)) {
        const r = new RawIdScanner(body).scan();
        if (typeof r === 'string') raw = r;
      }
      return await this.one(parsed, raw, ctx);
    } catch (e) {
      this.log('error', 'rpc dispatcher failure', { err: errorMessageOf(e), stack: e instanceof Error ? e.stack : undefined });
      return errorResponse(NULL_ID, RpcError.internal().toErrorObject());
    }
  }

  private async one(req: unknown, rawId: string | undefined, ctx: RpcContext): Promise<string | undefined> {
    if (!isObject(req)) return errorResponse(NULL_ID, RpcError.invalidRequest('a request must be an object', 'not_object').toErrorObject());
    const hasId = Object.hasOwn(req, 'id');
    const id = req.id;
    const idOk = !hasId || id === null || typeof id === 'string' || typeof id === 'number';
    const idText = hasId && idOk ? (rawId ?? JSON.stringify(id)) : NULL_ID;
    const invalid = (detail: string, rule: string): string => errorResponse(idText, RpcError.invalidRequest(detail, rule).toErrorObject());
    if (req.jsonrpc !== '2.0') return invalid('"jsonrpc" must be exactly "2.0"', 'jsonrpc_version');
    if (typeof req.method !== 'string') return invalid('"method" must be a string', 'method_type');
    if (Object.hasOwn(req, 'params') && (typeof req.params !== 'object' || req.params === null)) return invalid('"params" must be an array or an object', 'params_type');
    if (!idOk) return invalid('"id" must be a string, a number or null', 'id_type');

    const method = req.method;
    const notification = !hasId;
    const started = performance.now();
    let result: unknown;
    try {
      result = await this.call(method, req.params as unknown[] | Record<string, unknown> | undefined, ctx);
    } catch (e) {
      let err: RpcErrorObject;
      if (e instanceof RpcError) {
        err = e.toErrorObject();
        this.log('debug', 'rpc error', { method, code: e.code, message: e.message, transport: ctx.transport, remote: ctx.remote });
      } else {
        err = RpcError.internal().toErrorObject();
        this.log('error', 'rpc handler failed', { method, id: idText, transport: ctx.transport, remote: ctx.remote, err: errorMessageOf(e), stack: e instanceof Error ? e.stack : undefined });
      }
      return notification ? undefined : errorResponse(idText, err);
    }
    if (notification) return undefined;
    if (result === DISCOVER_RESULT) return `{"jsonrpc":"2.0","result":${ctx.admin ? this.docText : this.publicDocText},"id":${idText}}`;
    let resultText: string | undefined;
    try {
      resultText = JSON.stringify(result === undefined ? null : result);
    } catch (e) {
      resultText = undefined;
      this.log('error', 'rpc result is not serializable', { method, err: errorMessageOf(e) });
    }
    if (resultText === undefined) return errorResponse(idText, RpcError.internal().toErrorObject());
    this.log('debug', 'rpc call', { method, ms: Math.round((performance.now() - started) * 1000) / 1000, transport: ctx.transport });
    return `{"jsonrpc":"2.0","result":${resultText},"id":${idText}}`;
  }

  /** Resolve, bind and validate params, run the handler, validate the result. Throws RpcError or anything. */
  private async call(method: string, params: unknown[] | Record<string, unknown> | undefined, ctx: RpcContext): Promise<unknown> {
    if (method === DISCOVER_METHOD) {
      const n = params === undefined ? 0 : Array.isArray(params) ? params.length : Object.keys(params).length;
      if (n !== 0) throw RpcError.invalidParams(`"${DISCOVER_METHOD}" takes no params`, { param: null });
      return DISCOVER_RESULT;
    }
    const m = this.methods.get(method);
    // Admin methods do not exist for callers without the admin token (not even as "unauthorized").
    if (!m || (this.adminMethods.has(method) && !ctx.admin)) throw RpcError.methodNotFound(method);
    const bound = this.bindParams(m, params);
    const result = await m.handler(bound, ctx);
    if (m.validateResult && !m.validateResult(result === undefined ? null : result)) {
      const e = m.validateResult.errors?.[0];
      this.log('error', 'rpc result does not match the OpenRPC result schema', {
        method,
        path: e?.instancePath,
        error: e?.message,
        schemaPath: e?.schemaPath,
      });
      throw RpcError.internal();
    }
    return result;
  }

  private bindParams(m: CompiledMethod, params: unknown[] | Record<string, unknown> | undefined): Record<string, unknown> {
    const entries: [string, unknown][] = [];
    if (Array.isArray(params)) {
      if (m.structure === 'by-name' && params.length > 0) throw RpcError.invalidParams(`"${m.name}" takes params by name (an object), not an array`, { param: null, reason: 'param_structure' });
      const last = m.params[m.params.length - 1];
      const fixed = last?.variadic ? m.params.length - 1 : m.params.length;
      if (params.length > fixed && !last?.variadic) {
        throw RpcError.invalidParams(`too many params: "${m.name}" takes at most ${m.params.length}, got ${params.length}`, { param: null, reason: 'too_many_params' });
      }
      for (let i = 0; i < Math.min(fixed, params.length); i++) entries.push([m.params[i]!.name, params[i]]);
      if (last?.variadic && params.length > fixed) entries.push([last.name, params.slice(fixed)]);
    } else if (params !== undefined) {
      if (m.structure === 'by-position' && Object.keys(params).length > 0) throw RpcError.invalidParams(`"${m.name}" takes params by position (an array), not an object`, { param: null, reason: 'param_structure' });
      for (const key of Object.keys(params)) {
        if (!m.paramNames.has(key)) throw RpcError.invalidParams(`unknown param "${key.length > 64 ? `${key.slice(0, 64)}…` : key}"`, { param: key.slice(0, 64), reason: 'unknown_param' });
      }
      for (const p of m.params) if (Object.hasOwn(params, p.name)) entries.push([p.name, params[p.name]]);
    }
    const bound = Object.fromEntries(entries) as Record<string, unknown>;
    for (const p of m.params) {
      if (p.required && !Object.hasOwn(bound, p.name)) throw RpcError.invalidParams(`missing required param "${p.name}"`, { param: p.name, reason: 'missing_param' });
    }
    if (!m.validateParams(bound)) {
      const e = m.validateParams.errors?.[0];
      const d = e ? describeAjvError(e) : { param: '', path: '', message: 'is invalid' };
      throw RpcError.invalidParams(`"${d.path}" ${d.message}`, { param: d.param, path: d.path, reason: 'schema', error: d.message });
    }
    return bound;
  }
}

// ---------------------------------------------------------------------------------------------------------
// HTTP transport
// ---------------------------------------------------------------------------------------------------------

export type RouteHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>;

export interface RpcHttpServerOptions {
  /** Largest accepted request body; larger → HTTP 413 with a -32600 body. Default 1 MiB. */
  maxBodyBytes?: number;
  log?: RpcLog;
  /** When set, CORS headers allowing this origin are sent (and OPTIONS preflights answered). Off by default. */
  cors?: string;
  /** Requests carrying `Authorization: Bearer <adminToken>` may call admin methods. */
  adminToken?: string;
  /**
   * Open client connections at most (HTTP keep-alive and WebSocket alike); beyond it new ones are closed at
   * accept, so clients cannot take all of the process's file descriptors. Default 1024.
   */
  maxConnections?: number;
}

/** See RpcHttpServer.allowsOrigin. */
export function originAllowed(origin: string | undefined, host: string | undefined, cors: string | undefined): boolean {
  if (origin === undefined) return true;
  if (cors !== undefined && (cors === '*' || cors === origin)) return true;
  let o: URL;
  try {
    o = new URL(origin);
  } catch {
    return false;
  }
  if ((o.protocol !== 'http:' && o.protocol !== 'https:') || host === undefined || o.host !== host.toLowerCase()) return false;
  const name = o.hostname;
  return name === 'localhost' || isIP(name.replace(/^\[|\]$/g, '')) !== 0;
}

const JSON_MEDIA_TYPES = new Set(['application/json', 'application/json-rpc', 'application/jsonrequest']);

function send(res: http.ServerResponse, status: number, body: string | undefined, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  if (body === undefined) {
    res.writeHead(status);
    res.end();
    return;
  }
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', String(Buffer.byteLength(body)));
  res.writeHead(status);
  res.end(body);
}

export class RpcHttpServer {
  private readonly srv: http.Server;
  private readonly routes = new Map<string, Map<string, RouteHandler>>();
  private readonly log: RpcLog;
  readonly maxBodyBytes: number;
  private readonly cors: string | undefined;
  private readonly adminToken: string | undefined;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });

  constructor(
    private readonly dispatcher: RpcDispatcher,
    opts: RpcHttpServerOptions = {},
  ) {
    this.maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    if (!Number.isSafeInteger(this.maxBodyBytes) || this.maxBodyBytes < 1) throw new Error(`maxBodyBytes must be a positive integer, got ${this.maxBodyBytes}`);
    this.log = opts.log ?? noLog;
    this.cors = opts.cors;
    this.adminToken = opts.adminToken;
    this.srv = http.createServer((req, res) => this.onRequest(req, res));
    this.srv.maxConnections = opts.maxConnections ?? 1024;
    // A client must send its request headers within 10 s (Node's default is 60 s, for idle half-open sockets).
    this.srv.headersTimeout = 10_000;
    this.addRoute('POST', '/', (req, res) => this.serveRpc(req, res));
    this.addRoute('GET', '/health', (_req, res) => send(res, 200, '{"ok":true}'));
  }

  /** The underlying server, e.g. for a WebSocket server to attach to its `upgrade` event. */
  get server(): http.Server {
    return this.srv;
  }

  /** Add a route (exact path, query string ignored). Throws if that method and path are already routed. */
  addRoute(method: string, path: string, fn: RouteHandler): void {
    const m = method.toUpperCase();
    if (!path.startsWith('/')) throw new Error(`route path must start with "/": ${path}`);
    let byMethod = this.routes.get(path);
    if (!byMethod) this.routes.set(path, (byMethod = new Map()));
    if (byMethod.has(m)) throw new Error(`route ${m} ${path} already exists`);
    byMethod.set(m, fn);
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(e);
      this.srv.once('error', onError);
      this.srv.listen(port, host, () => {
        this.srv.off('error', onError);
        const a = this.srv.address() as AddressInfo;
        this.log('info', 'rpc http listening', { host: a.address, port: a.port });
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  /** Stop accepting connections; idle keep-alive connections close now, busy ones after a 1 s grace. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.srv.listening) {
        resolve();
        return;
      }
      const timer = setTimeout(() => this.srv.closeAllConnections(), 1000);
      timer.unref();
      this.srv.close(() => {
        clearTimeout(timer);
        resolve();
      });
      this.srv.closeIdleConnections();
    });
  }

  private corsHeaders(): Record<string, string> {
    return this.cors === undefined ? {} : { 'Access-Control-Allow-Origin': this.cors, Vary: 'Origin' };
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const method = (req.method ?? 'GET').toUpperCase();
    const byMethod = this.routes.get(path);
    if (!byMethod) {
      req.resume();
      send(res, 404, '{"error":"not found"}', this.corsHeaders());
      return;
    }
    const allow = [...byMethod.keys()].join(', ');
    if (method === 'OPTIONS' && this.cors !== undefined) {
      req.resume();
      send(res, 204, undefined, {
        ...this.corsHeaders(),
        'Access-Control-Allow-Methods': allow,
        'Access-Control-Allow-Headers': 'Content-Type',
        'Access-Control-Max-Age': '600',
      });
      return;
    }
    const fn = byMethod.get(method);
    if (!fn) {
      req.resume();
      send(res, 405, '{"error":"method not allowed"}', { ...this.corsHeaders(), Allow: allow });
      return;
    }
    for (const [k, v] of Object.entries(this.corsHeaders())) res.setHeader(k, v);
    let p: void | Promise<void>;
    try {
      p = fn(req, res);
    } catch (e) {
      this.routeFailed(res, method, path, e);
      return;
    }
    if (p instanceof Promise) p.catch((e: unknown) => this.routeFailed(res, method, path, e));
  }

  private routeFailed(res: http.ServerResponse, method: string, path: string, e: unknown): void {
    this.log('error', 'http route failed', { method, path, err: errorMessageOf(e), stack: e instanceof Error ? e.stack : undefined });
    send(res, 500, '{"error":"internal error"}');
  }

  private rejectRpc(req: http.IncomingMessage, res: http.ServerResponse, status: number, err: RpcError, close: boolean): void {
    // Keep draining what the client still sends so it can read the answer (the connection closes after it),
    // but drop a client that goes on sending far past the limit.
    if (close) {
      const cap = this.maxBodyBytes * 4;
      let drained = 0;
      req.on('data', (c: Buffer) => {
        drained += c.length;
        if (drained > cap) req.socket.destroy();
      });
    }
    req.resume();
    send(res, status, errorResponse(NULL_ID, err.toErrorObject()), close ? { Connection: 'close' } : {});
  }

  /**
   * Whether a request may use JSON-RPC given its `Origin` (browsers send one; other clients usually do not).
   * Without an Origin: yes. With one: only the configured CORS origin (`*` = any), or a page this node
   * serves itself (same origin), and the latter only when the Host header is an IP address or `localhost`:
   * a name could be an attacker's, rebound by DNS to this address, which the same-origin test cannot tell.
   * So a web page open in an operator's browser cannot subscribe to or submit through a local node.
   */
  allowsOrigin(req: http.IncomingMessage): boolean {
    return originAllowed(req.headers.origin, req.headers.host, this.cors);
  }

  /** Constant-time check of `Authorization: Bearer <token>`. */
  isAdmin(req: http.IncomingMessage): boolean {
    if (!this.adminToken) return false;
    const h = req.headers.authorization ?? '';
    const given = Buffer.from(h.startsWith('Bearer ') ? h.slice(7).trim() : '');
    const want = Buffer.from(this.adminToken);
    return given.length === want.length && timingSafeEqual(given, want);
  }

  private async serveRpc(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (!this.allowsOrigin(req)) {
      this.rejectRpc(req, res, 403, RpcError.invalidRequest(`origin ${req.headers.origin} is not allowed (see --rpc-cors)`, 'origin_not_allowed'), false);
      return;
    }
    const ct = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (!JSON_MEDIA_TYPES.has(ct)) {
      this.rejectRpc(req, res, 415, RpcError.invalidRequest('Content-Type must be application/json', 'content_type'), false);
      return;
    }
    const enc = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
    if (enc !== 'identity') {
      this.rejectRpc(req, res, 415, RpcError.invalidRequest('Content-Encoding is not supported', 'content_encoding'), false);
      return;
    }
    const limit = this.maxBodyBytes;
    const tooLarge = (): RpcError => RpcError.invalidRequest(`request body exceeds the limit of ${limit} bytes`, 'body_too_large');
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > limit) {
      this.rejectRpc(req, res, 413, tooLarge(), true);
      return;
    }
    const body = await new Promise<Buffer | 'too_large' | 'aborted'>((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      const finish = (v: Buffer | 'too_large' | 'aborted'): void => {
        if (done) return;
        done = true;
        chunks.length = 0;
        resolve(v);
      };
      req.on('data', (c: Buffer) => {
        if (done) return; // draining an oversized body
        size += c.length;
        if (size > limit) finish('too_large');
        else chunks.push(c);
      });
      req.on('end', () => finish(Buffer.concat(chunks, size)));
      req.on('error', () => finish('aborted'));
      req.on('close', () => finish('aborted'));
    });
    if (body === 'aborted') return;
    if (body === 'too_large') {
      this.rejectRpc(req, res, 413, tooLarge(), true);
      return;
    }
    let text: string;
    try {
      text = this.decoder.decode(body);
    } catch {
      send(res, 200, errorResponse(NULL_ID, RpcError.parseError('body is not valid UTF-8').toErrorObject()));
      return;
    }
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`;
    const out = await this.dispatcher.handle(text, { transport: 'http', remote, admin: this.isAdmin(req) });
    if (res.destroyed) return;
    if (out === undefined) send(res, 204, undefined);
    else send(res, 200, out);
  }
}
