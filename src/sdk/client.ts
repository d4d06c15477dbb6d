/**
 * Typed JSON-RPC client for meshledger nodes (the API third-party tools and the wallet CLI build on).
 *
 *   const c = new RpcClient('http://127.0.0.1:8645/');
 *   const info = await c.getChainInfo();
 *   const id = await c.sendTransaction(signTx(unsigned, secretKey).bytes);
 *
 *   const ws = await RpcWsClient.connect('ws://127.0.0.1:8645/');
 *   const sub = await ws.subscribe('newHeads', {}, (head) => console.log(head.height));
 *   await sub.unsubscribe(); await ws.close();
 *
 * Failures come in two kinds:
 *   RpcClientError     the node answered with a JSON-RPC error: `code`, `data.rule` (schemas/openrpc.json)
 *   RpcTransportError  no usable answer: unreachable, timeout, HTTP failure, a body that is not JSON-RPC;
 *                      the message names the URL.
 * Result types mirror the result schemas of schemas/openrpc.json: amounts and nonces are decimal strings of
 * minor units; hashes, ids and signatures are lower-case hex; addresses are bech32m "ml1…" strings.
 * Typed wrappers send named params (an object); `call` sends whatever it is given.
 * Admin methods need `headers: { Authorization: 'Bearer <datadir/admin.token>' }`.
 *
 * Longer than 500 lines because it declares the result type of every RPC method (the SDK's public face)
 * beside the typed calls that the HTTP and WebSocket clients share.
 */
import { WebSocket } from 'ws';
import type { HeaderJson, TxJson } from '../ledger/json.js';

export type { HeaderJson, TxJson } from '../ledger/json.js';

// ---------------------------------------------------------------------------------------------- result types

/** getHealth (schema Health). */
export interface Health {
  status: 'ok' | 'syncing' | 'no_peers';
  height: number;
  peers: number;
  syncing: boolean;
  /** How long ago the head block's slot started. */
  headAgeMs: number;
}

/** getVersion (schema Version). */
export interface VersionInfo {
  version: string;
  protocolVersion: number;
  runtime: string;
}

/** getNodeInfo (schema NodeInfo). */
export interface NodeInfo {
  /** P2P node id (hex public key); null when P2P is off. */
  nodeId: string | null;
  listen: string | null;
  chainId: string;
  genesisHash: string;
  /** The validator address this node produces blocks for, or null for a follower. */
  validator: string | null;
  height: number;
  headHash: string;
  peers: number;
  mempoolSize: number;
  uptimeMs: number;
}

/** getChainInfo (schema ChainInfo). */
export interface ChainInfo {
  chainId: string;
  genesisHash: string;
  height: number;
  headHash: string;
  headSlot: number;
  /** Validator addresses in schedule order. */
  validators: string[];
  genesisTime: number;
  slotMs: number;
  minFee: string;
  decimals: number;
  symbol: string;
  totalSupply: string;
}

/** A transaction as JSON (schema Transaction). */
export type TransactionJson = TxJson;

/** getBlock (schema Block): the header plus transaction ids, or full transactions with `transactions: true`. */
export type BlockJson<T extends string | TxJson = string | TxJson> = HeaderJson & { transactions: T[]; /** Encoded size in bytes. */ size: number };

/** getTransaction and `transaction` subscription events (schema TransactionStatus). */
export type TransactionStatus =
  | { id: string; status: 'pending'; transaction: TxJson; reason?: string }
  | {
      id: string; status: 'confirmed'; blockHeight: number; blockHash: string; index: number;
      confirmations: number; transaction: TxJson; reason?: string;
    }
  /** Never seen, dropped (`reason` says why, in subscription events) or abandoned by a reorg. */
  | { id: string; status: 'unknown'; reason?: string };

/** getAccount (schema Account). */
export interface AccountInfo {
  address: string;
  /** Confirmed balance at the head, minor units. */
  balance: string;
  /** Confirmed nonce: what the next transaction must carry, ignoring pending ones. */
  nonce: string;
  /** Nonce for a new transaction counting this node's contiguous pending ones. */
  nextNonce: string;
  /** Pending transactions from this account in the node's mempool. */
  pending: number;
}

/** getBalance (schema Balance). */
export interface Balance {
  address: string;
  balance: string;
}

/** One entry of getAccountTransactions (schema HistoryEntry). */
export interface HistoryEntry {
  id: string;
  height: number;
  index: number;
  direction: 'sent' | 'received';
  blockHash: string;
  /** The block's timestamp, ms since the Unix epoch. */
  timestamp: number;
  transaction: TxJson;
}

/** getAccountTransactions (schema AccountTransactions): newest first. */
export interface AccountTransactions {
  address: string;
  transactions: HistoryEntry[];
  /** Pass as `cursor` for the next (older) page; null at the end. */
  next: string | null;
}

/** getMempoolInfo (schema MempoolInfo). */
export interface MempoolInfo {
  size: number;
  bytes: number;
  senders: number;
  maxCount: number;
  maxBytes: number;
  maxPerSender: number;
  replaceBumpPercent: number;
  minFee: string;
}

/** getPeers entries (schema Peer). */
export interface PeerInfo {
  nodeId: string;
  address: string;
  direction: 'inbound' | 'outbound';
  headHeight: number;
  headHash: string;
  score: number;
  connectedAt: number;
  bytesIn: number;
  bytesOut: number;
}

/** getEquivocations entries (schema Equivocation). */
export interface Equivocation {
  slot: number;
  proposer: string;
  blockHash: string;
  /** The signed header bytes (hex). */
  header: string;
}

/** adminListBans entries (schema Ban). */
export interface BanInfo {
  nodeId: string;
  until: number;
  reason: string;
}

/** `newHeads` subscription events: the new head's header and how many blocks a reorg abandoned (0 normally). */
export type NewHeadEvent = HeaderJson & { reorgDepth: number };

/** `account` subscription events: the account after a head change that touched it. */
export interface AccountEvent {
  address: string;
  balance: string;
  nonce: string;
  height: number;
}

export type SubscriptionTopic = 'newHeads' | 'pendingTransactions' | 'transaction' | 'account';

/** A block by height (`'latest'`: the head), or by hash. */
export type BlockSelector = { height: number | 'latest' } | { hash: string };

// ---------------------------------------------------------------------------------------------- errors

/** The node answered with a JSON-RPC error response. */
export class RpcClientError extends Error {
  readonly code: number;
  readonly data?: { rule?: string; [k: string]: unknown };
  /** The method called, when known. */
  readonly method: string | undefined;
  /** HTTP status of the answer (200 normally; 413 / 415 for refused bodies), when it came over HTTP. */
  readonly httpStatus: number | undefined;

  constructor(err: { code: number; message: string; data?: unknown }, method?: string, httpStatus?: number) {
    super(err.message);
    this.name = 'RpcClientError';
    this.code = err.code;
    if (err.data !== undefined) {
      this.data = typeof err.data === 'object' && err.data !== null && !Array.isArray(err.data)
        ? (err.data as { rule?: string; [k: string]: unknown })
        : { value: err.data };
    }
    this.method = method;
    this.httpStatus = httpStatus;
  }

  /** `data.rule`: which rule failed (e.g. "bad_nonce", "unknown_block"). */
  get rule(): string | undefined {
    return typeof this.data?.rule === 'string' ? this.data.rule : undefined;
  }
}

/** No usable answer: the node is unreachable, timed out, failed at the HTTP level, or did not speak JSON-RPC. */
export class RpcTransportError extends Error {
  readonly url: string;
  /** HTTP status, when an HTTP answer came but was not usable. */
  readonly status: number | undefined;

  constructor(url: string, message: string, opts: { cause?: unknown; status?: number } = {}) {
    super(`${url}: ${message}`, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'RpcTransportError';
    this.url = url;
    this.status = opts.status;
  }
}

// ---------------------------------------------------------------------------------------------- shared bits

export interface RpcClientOptions {
  /** Per request (and, for RpcWsClient, for connecting). Default 30 000 ms. */
  timeoutMs?: number;
  /** Extra HTTP headers (for the WebSocket: headers of the upgrade request), e.g. Authorization. */
  headers?: Record<string, string>;
}

export const DEFAULT_TIMEOUT_MS = 30_000;

type Params = Record<string, unknown> | unknown[];

interface ResponseEnvelope {
  jsonrpc: '2.0';
  id: unknown;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isErrorObject(v: unknown): v is { code: number; message: string; data?: unknown } {
  return isObject(v) && Number.isInteger(v.code) && typeof v.message === 'string';
}

/** A single JSON-RPC 2.0 response: exactly one of result / error. */
function isResponse(v: unknown): v is ResponseEnvelope {
  if (!isObject(v) || v.jsonrpc !== '2.0' || !Object.hasOwn(v, 'id')) return false;
  const hasResult = Object.hasOwn(v, 'result');
  const hasError = Object.hasOwn(v, 'error');
  return hasResult !== hasError && (!hasError || isErrorObject(v.error));
}

/** Drop `undefined` members, so optional params are omitted rather than sent as null. */
function named(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out;
}

function selector(sel: BlockSelector): Record<string, unknown> {
  if (!isObject(sel)) throw new TypeError('block selector must be { height } or { hash }');
  const hasHeight = 'height' in sel && sel.height !== undefined;
  const hasHash = 'hash' in sel && sel.hash !== undefined;
  if (hasHeight === hasHash) throw new TypeError('block selector must have exactly one of "height" or "hash"');
  return hasHeight ? { height: (sel as { height: number }).height } : { hash: (sel as { hash: string }).hash };
}

function txParam(tx: Uint8Array | string): string {
  if (tx instanceof Uint8Array) return Buffer.from(tx.buffer, tx.byteOffset, tx.byteLength).toString('hex');
  if (typeof tx !== 'string') throw new TypeError('tx must be a Uint8Array or a hex string');
  return tx;
}

function describeCause(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const c = (e as { cause?: unknown }).cause;
  const code = (c as { code?: string } | undefined)?.code ?? (e as { code?: string }).code;
  const cm = c instanceof Error ? c.message : undefined;
  return [e.message, cm && cm !== e.message ? cm : undefined, code && !(cm ?? e.message).includes(code) ? code : undefined].filter(Boolean).join(': ');
}

function timeoutOf(opts: RpcClientOptions | undefined): number {
  const t = opts?.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!(Number.isFinite(t) && t > 0)) throw new RangeError(`timeoutMs must be a positive number, got ${t}`);
  return t;
}

/**
 * The typed methods, over any `call`. Shared by the HTTP and WebSocket clients, so both have the same typed
 * API (e.g. `ws.getChainInfo()`).
 */
abstract class TypedRpc {
  abstract call<T = unknown>(method: string, params?: Params): Promise<T>;

  getHealth(): Promise<Health> { return this.call('getHealth', {}); }
  getVersion(): Promise<VersionInfo> { return this.call('getVersion', {}); }
  getNodeInfo(): Promise<NodeInfo> { return this.call('getNodeInfo', {}); }
  getChainInfo(): Promise<ChainInfo> { return this.call('getChainInfo', {}); }

  getBlock(sel: BlockSelector, transactions: true): Promise<BlockJson<TxJson>>;
  getBlock(sel: BlockSelector, transactions?: false): Promise<BlockJson<string>>;
  getBlock(sel: BlockSelector, transactions?: boolean): Promise<BlockJson>;
  getBlock(sel: BlockSelector, transactions?: boolean): Promise<BlockJson> {
    return this.call('getBlock', named({ ...selector(sel), transactions }));
  }

  getBlockHeader(sel: BlockSelector): Promise<HeaderJson> { return this.call('getBlockHeader', selector(sel)); }
  getTransaction(id: string): Promise<TransactionStatus> { return this.call('getTransaction', { id }); }
  getAccount(address: string): Promise<AccountInfo> { return this.call('getAccount', { address }); }
  getBalance(address: string): Promise<Balance> { return this.call('getBalance', { address }); }

  getAccountTransactions(address: string, o: { limit?: number; cursor?: string; direction?: 'sent' | 'received' | 'both' } = {}): Promise<AccountTransactions> {
    return this.call('getAccountTransactions', named({ address, limit: o.limit, cursor: o.cursor, direction: o.direction }));
  }

  getMempoolInfo(): Promise<MempoolInfo> { return this.call('getMempoolInfo', {}); }
  getPeers(): Promise<PeerInfo[]> { return this.call('getPeers', {}); }
  getEquivocations(): Promise<Equivocation[]> { return this.call('getEquivocations', {}); }

  /** Submit signed transaction bytes (or their hex); resolves to the transaction id. Idempotent. */
  sendTransaction(tx: Uint8Array | string): Promise<string> { return this.call('sendTransaction', { tx: txParam(tx) }); }

  /** The OpenRPC document (without admin methods unless the admin token is sent). */
  discover(): Promise<Record<string, unknown>> { return this.call('rpc.discover'); }

  // Admin methods: only with `Authorization: Bearer <token>`; otherwise the node answers -32601.
  adminAddPeer(url: string): Promise<boolean> { return this.call('adminAddPeer', { url }); }
  adminRemovePeer(nodeId: string): Promise<boolean> { return this.call('adminRemovePeer', { nodeId }); }
  adminBanPeer(nodeId: string, o: { minutes?: number; reason?: string } = {}): Promise<boolean> {
    return this.call('adminBanPeer', named({ nodeId, minutes: o.minutes, reason: o.reason }));
  }
  adminUnbanPeer(nodeId: string): Promise<boolean> { return this.call('adminUnbanPeer', { nodeId }); }
  adminListBans(): Promise<BanInfo[]> { return this.call('adminListBans', {}); }
}

// ---------------------------------------------------------------------------------------------- HTTP

/** JSON-RPC over HTTP POST (global fetch). Stateless: safe to share and to use concurrently. */
export class RpcClient extends TypedRpc {
  readonly url: string;
  readonly #timeoutMs: number;
  readonly #headers: Record<string, string>;
  #nextId = 1;

  constructor(url: string, opts: RpcClientOptions = {}) {
    super();
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new TypeError(`not a URL: ${url}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`RpcClient needs an http:// or https:// URL, got ${url}`);
    this.url = url;
    this.#timeoutMs = timeoutOf(opts);
    this.#headers = { 'content-type': 'application/json', accept: 'application/json', ...opts.headers };
  }

  async call<T = unknown>(method: string, params?: Params): Promise<T> {
    if (typeof method !== 'string' || method === '') throw new TypeError('method must be a non-empty string');
    const id = this.#nextId++;
    const body = JSON.stringify(params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params });
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), this.#timeoutMs);
    let status: number;
    let text: string;
    try {
      const res = await fetch(this.url, { method: 'POST', headers: this.#headers, body, signal: ac.signal });
      status = res.status;
      text = await res.text();
    } catch (e) {
      if (ac.signal.aborted) throw new RpcTransportError(this.url, `${method}: no answer within ${this.#timeoutMs} ms`, { cause: e });
      throw new RpcTransportError(this.url, `${method}: ${describeCause(e)}`, { cause: e });
    } finally {
      clearTimeout(timer);
    }
    let j: unknown;
    try {
      j = JSON.parse(text);
    } catch (e) {
      const what = status >= 200 && status < 300 ? (text === '' ? 'an empty body' : 'a body that is not JSON') : `HTTP ${status}`;
      throw new RpcTransportError(this.url, `${method}: ${what}${text ? `: ${text.slice(0, 200)}` : ''}`, { cause: e, status });
    }
    if (!isResponse(j)) throw new RpcTransportError(this.url, `${method}: HTTP ${status} with a body that is not a JSON-RPC 2.0 response: ${text.slice(0, 200)}`, { status });
    // Errors refused before dispatch (body too large, bad content type) come with id null and a 4xx status.
    if (j.error) throw new RpcClientError(j.error, method, status);
    if (j.id !== id) throw new RpcTransportError(this.url, `${method}: response id ${JSON.stringify(j.id)} does not match request id ${id}`, { status });
    return j.result as T;
  }
}

// ---------------------------------------------------------------------------------------------- WebSocket

export interface Subscription {
  /** The id the node gave the subscription ("0x" + 16 hex). */
  id: string;
  /** Ask the node to stop it; resolves to the node's answer (false if it was already gone). Local delivery stops at once. */
  unsubscribe(): Promise<boolean>;
}

interface Pending {
  method: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Notifications for a subscription id not known locally are kept (up to this many) while a subscribe call is
 * in flight: several messages can be handled in one tick, so one can be seen before subscribe() resumes.
 */
const EARLY_BUFFER_MAX = 1024;

/**
 * JSON-RPC over one WebSocket: calls and subscriptions. Notifications are delivered to each subscription's
 * callback in the order the node sent them; an exception in a callback is reported with `console.error` and
 * does not stop delivery. When the connection closes, pending calls reject with RpcTransportError and
 * subscriptions end (see `closed`).
 */
export class RpcWsClient extends TypedRpc {
  readonly url: string;
  readonly #ws: WebSocket;
  readonly #timeoutMs: number;
  readonly #pending = new Map<number, Pending>();
  readonly #subs = new Map<string, (result: any) => void>();
  readonly #early = new Map<string, unknown[]>();
  #earlyCount = 0;
  #subscribing = 0;
  #nextId = 1;
  #closeInfo: { code: number; reason: string } | undefined;
  /** Resolves when the connection has closed (for any reason), with the close code and reason. */
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(url: string, ws: WebSocket, timeoutMs: number) {
    super();
    this.url = url;
    this.#ws = ws;
    this.#timeoutMs = timeoutMs;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code: number, reason: Buffer) => {
        this.#closeInfo = { code, reason: reason.toString('utf8') };
        const err = new RpcTransportError(url, `connection closed (code ${code}${this.#closeInfo.reason ? `, ${this.#closeInfo.reason}` : ''})`);
        for (const [id, p] of this.#pending) {
          clearTimeout(p.timer);
          this.#pending.delete(id);
          p.reject(err);
        }
        this.#subs.clear();
        this.#early.clear();
        resolve(this.#closeInfo);
      });
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) this.#onMessage(data.toString('utf8'));
    });
  }

  /** Open a connection (e.g. `ws://127.0.0.1:8645/`); rejects with RpcTransportError if it cannot. */
  static connect(url: string, opts: RpcClientOptions = {}): Promise<RpcWsClient> {
    const timeoutMs = timeoutOf(opts);
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return Promise.reject(new TypeError(`not a URL: ${url}`));
    }
    if (u.protocol !== 'ws:' && u.protocol !== 'wss:') return Promise.reject(new TypeError(`RpcWsClient needs a ws:// or wss:// URL, got ${url}`));
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers: opts.headers ?? {}, perMessageDeflate: false, handshakeTimeout: timeoutMs });
      let settled = false;
      const fail = (msg: string, cause?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ws.removeAllListeners('open');
        ws.terminate();
        reject(new RpcTransportError(url, msg, { cause }));
      };
      const timer = setTimeout(() => fail(`cannot connect within ${timeoutMs} ms`), timeoutMs);
      // Kept for the socket's life: aborting a handshake can emit 'error' again after we gave up.
      ws.on('error', (e) => fail(`cannot connect: ${describeCause(e)}`, e));
      ws.once('unexpected-response', (_req, res) => fail(`cannot connect: HTTP ${res.statusCode} instead of a WebSocket upgrade`));
      ws.once('open', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(new RpcWsClient(url, ws, timeoutMs)); // later errors surface through 'close'
      });
    });
  }

  /** True until the connection closes. */
  get open(): boolean {
    return this.#closeInfo === undefined && this.#ws.readyState === WebSocket.OPEN;
  }

  call<T = unknown>(method: string, params?: Params): Promise<T> {
    if (typeof method !== 'string' || method === '') return Promise.reject(new TypeError('method must be a non-empty string'));
    if (!this.open) return Promise.reject(new RpcTransportError(this.url, `${method}: connection is closed`));
    const id = this.#nextId++;
    const text = JSON.stringify(params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params });
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new RpcTransportError(this.url, `${method}: no answer within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      this.#pending.set(id, { method, resolve: resolve as (v: unknown) => void, reject, timer });
      this.#ws.send(text, (err) => {
        if (!err) return;
        const p = this.#pending.get(id);
        if (!p) return;
        clearTimeout(p.timer);
        this.#pending.delete(id);
        p.reject(new RpcTransportError(this.url, `${method}: send failed: ${describeCause(err)}`, { cause: err }));
      });
    });
  }

  /**
   * Subscribe to a topic: `transaction` needs `{ id }`, `account` needs `{ address }`. `onEvent` receives each
   * notification's `result` (NewHeadEvent, TransactionJson, TransactionStatus, AccountEvent respectively).
   */
  subscribe(topic: 'newHeads', params: { id?: string; address?: string }, onEvent: (result: NewHeadEvent) => void): Promise<Subscription>;
  subscribe(topic: 'pendingTransactions', params: { id?: string; address?: string }, onEvent: (result: TxJson) => void): Promise<Subscription>;
  subscribe(topic: 'transaction', params: { id?: string; address?: string }, onEvent: (result: TransactionStatus) => void): Promise<Subscription>;
  subscribe(topic: 'account', params: { id?: string; address?: string }, onEvent: (result: AccountEvent) => void): Promise<Subscription>;
  subscribe(topic: SubscriptionTopic, params: { id?: string; address?: string }, onEvent: (result: any) => void): Promise<Subscription>;
  async subscribe(topic: SubscriptionTopic, params: { id?: string; address?: string }, onEvent: (result: any) => void): Promise<Subscription> {
    if (typeof onEvent !== 'function') throw new TypeError('onEvent must be a function');
    let id: string;
    this.#subscribing++;
    try {
      id = await this.call<string>('subscribe', named({ topic, id: params?.id, address: params?.address }));
      if (typeof id !== 'string') throw new RpcTransportError(this.url, `subscribe: the node answered ${JSON.stringify(id)} instead of a subscription id`);
      if (!this.open) return { id, unsubscribe: async () => false };
      this.#subs.set(id, onEvent);
      const early = this.#early.get(id);
      if (early) {
        this.#early.delete(id);
        this.#earlyCount -= early.length;
        for (const r of early) this.#deliver(onEvent, r);
      }
    } finally {
      if (--this.#subscribing === 0) {
        this.#early.clear();
        this.#earlyCount = 0;
      }
    }
    return {
      id,
      unsubscribe: async () => {
        this.#subs.delete(id);
        if (!this.open) return false;
        return this.call<boolean>('unsubscribe', { subscription: id });
      },
    };
  }

  /** Close the connection (pending calls reject); resolves once it is closed. */
  async close(): Promise<void> {
    if (this.#closeInfo) return;
    if (this.#ws.readyState === WebSocket.CONNECTING || this.#ws.readyState === WebSocket.OPEN) this.#ws.close(1000, 'client closing');
    let timer: NodeJS.Timeout | undefined;
    const forced = new Promise<void>((r) => {
      timer = setTimeout(() => {
        this.#ws.terminate();
        r();
      }, Math.min(this.#timeoutMs, 5_000));
    });
    await Promise.race([this.closed.then(() => undefined), forced]);
    clearTimeout(timer);
    await this.closed;
  }

  #deliver(fn: (result: any) => void, result: unknown): void {
    try {
      fn(result);
    } catch (e) {
      console.error('RpcWsClient: subscription callback threw', e);
    }
  }

  #onMessage(text: string): void {
    let j: unknown;
    try {
      j = JSON.parse(text);
    } catch {
      return; // not JSON: nothing to match it with
    }
    for (const m of Array.isArray(j) ? j : [j]) {
      if (!isObject(m)) continue;
      if (m.method === 'subscription' && isObject(m.params) && typeof m.params.subscription === 'string') {
        const subId = m.params.subscription;
        const fn = this.#subs.get(subId);
        if (fn) this.#deliver(fn, m.params.result);
        else if (this.#subscribing > 0 && this.#earlyCount < EARLY_BUFFER_MAX) {
          // Possibly a notification that overtook our subscribe answer: keep it until subscribe() resolves.
          const list = this.#early.get(subId) ?? [];
          list.push(m.params.result);
          this.#early.set(subId, list);
          this.#earlyCount++;
        }
        continue;
      }
      if (!isResponse(m) || typeof m.id !== 'number') continue;
      const p = this.#pending.get(m.id);
      if (!p) continue;
      clearTimeout(p.timer);
      this.#pending.delete(m.id);
      if (m.error) p.reject(new RpcClientError(m.error, p.method));
      else p.resolve(m.result);
    }
  }
}
