/**
 * A harness for tests and scripts that drive REAL meshledger processes over 127.0.0.1: free ports, the CLI
 * (keygen, genesis) in temporary folders, node processes with their output captured to log files, JSON-RPC
 * over HTTP, polling with diagnostics, signals, and cleanup that runs even when a test fails.
 *
 *   const h = new Harness(t);                              // t.after(() => h.cleanup()) is registered
 *   const v = await h.keygen('validator');
 *   const f = await h.keygen('faucet');
 *   const g = await h.genesis({ validators: [v], alloc: [[f.address, 10n ** 12n]], slotMs: 150 });
 *   const n = await h.startNode({ genesis: g.file, key: v.file });      // waits until RPC answers
 *   await h.waitFor(async () => (await rpc(n.rpcPort, 'getChainInfo')).height >= 3, 20_000, 'height 3', [n]);
 *   await h.stop(n);                                         // SIGTERM, SIGKILL after a timeout
 *
 * Every process started by any Harness is also SIGKILLed (and every temp folder removed) when the test
 * process exits or is interrupted (SIGINT/SIGTERM/SIGHUP), so no node outlives the test file. (Nothing can
 * run if the test process itself is SIGKILLed: then its nodes are orphaned.) Set KEEP_TMP=1 to keep the temp folders
 * (their paths are printed) for post-mortem reading of node logs and datadirs.
 *
 * Only loopback addresses are ever used.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeAddress } from '../src/encoding/address.js';
import { fromHex, toHex } from '../src/encoding/bytes.js';
import { getPublicKey } from '../src/crypto/ed25519.js';
import { signTx, type Tx } from '../src/ledger/tx.js';

export const HOST = '127.0.0.1';
/** dist/harness/ → the repository root is two levels up. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = path.join(REPO_ROOT, 'bin', 'meshledger.js');

/** Multiply every default timeout (e.g. TEST_TIMEOUT_SCALE=3 on a very slow machine). */
export const TIMEOUT_SCALE = Math.max(1, Number(process.env.TEST_TIMEOUT_SCALE) || 1);
export const scaled = (ms: number): number => Math.round(ms * TIMEOUT_SCALE);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** `p`, or undefined after `ms` (the timer is cleared either way, so it never keeps the process alive). */
function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]).finally(() => clearTimeout(timer));
}

// ------------------------------------------------------------------------------------------------ ports

/**
 * Ports are picked below the kernel's ephemeral range: a port from that range (bind port 0) is free when
 * read, but any outbound connection (validators dialing each other while the last one starts) may take it
 * before the node binds it (EADDRINUSE). Below the range only an explicit bind can take a port. Each is
 * checked by binding it, and none is handed out twice: not by this process (a set), nor by two test
 * processes running at once (a file per port created exclusively in a shared directory; claims older than
 * CLAIM_TTL_MS are stale).
 */
const handedOut = new Set<number>();
const CLAIMS = path.join(os.tmpdir(), 'meshledger-test-ports');
const CLAIM_TTL_MS = 30 * 60_000;
/** This process's claims, released when it exits (its nodes are gone by then). */
const claimed: string[] = [];
process.once('exit', () => { for (const f of claimed) rmSync(f, { force: true }); });

function claim(port: number): boolean {
  const file = path.join(CLAIMS, String(port));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      closeSync(openSync(file, 'wx'));
      claimed.push(file);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') { mkdirSync(CLAIMS, { recursive: true }); continue; }
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      try {
        if (Date.now() - statSync(file).mtimeMs < CLAIM_TTL_MS) return false;
        rmSync(file, { force: true });
      } catch { return false; }
    }
  }
  return false;
}

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > 12_000) return low;
  } catch { /* not Linux */ }
  return 32_768;
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, HOST, () => srv.close(() => resolve(true)));
  });
}

/** A port that is free now, below the ephemeral range, not handed out before by this process. */
export async function freePort(): Promise<number> {
  const lo = 10_000, hi = ephemeralLow();
  for (let tries = 0; tries < 1000; tries++) {
    const port = lo + Math.floor(Math.random() * (hi - lo));
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (claim(port) && await bindable(port)) return port;
  }
  throw new Error(`no free port found in ${lo}..${hi - 1}`);
}

/** `n` distinct free ports. */
export async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < n; i++) ports.push(await freePort());
  return ports;
}

// ------------------------------------------------------------------------------------------------ JSON-RPC

export interface RpcErrorObject { code: number; message: string; data?: any }

/** A JSON-RPC error response (the server answered, with an error). */
export class RpcCallError extends Error {
  readonly code: number;
  readonly data: any;
  readonly method: string;
  constructor(method: string, err: RpcErrorObject) {
    super(`${method}: JSON-RPC error ${err.code} ${err.message}${err.data !== undefined ? ' ' + JSON.stringify(err.data) : ''}`);
    this.name = 'RpcCallError';
    this.code = err.code;
    this.data = err.data;
    this.method = method;
  }
  get rule(): string | undefined { return this.data?.rule; }
}

let rpcId = 0;

/** The raw JSON-RPC response envelope. Throws on transport failures (refused, timeout, non-JSON body). */
export async function rpcRaw(port: number, method: string, params?: unknown, o: { timeoutMs?: number } = {}): Promise<{ result?: any; error?: RpcErrorObject; id: unknown }> {
  const body: Record<string, unknown> = { jsonrpc: '2.0', id: ++rpcId, method };
  if (params !== undefined) body.params = params;
  const res = await fetch(`http://${HOST}:${port}/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(o.timeoutMs ?? scaled(10_000)),
  });
  const text = await res.text();
  let j: any;
  try {
    j = JSON.parse(text);
  } catch {
    throw new Error(`${method}: HTTP ${res.status} with a non-JSON body: ${text.slice(0, 200)}`);
  }
  if (typeof j !== 'object' || j === null || j.jsonrpc !== '2.0' || (!('result' in j) && !('error' in j))) {
    throw new Error(`${method}: not a JSON-RPC 2.0 response: ${text.slice(0, 200)}`);
  }
  return j;
}

/** Call and return the result; a JSON-RPC error throws RpcCallError, a transport failure throws as fetch does. */
export async function rpc(port: number, method: string, params?: unknown, o: { timeoutMs?: number } = {}): Promise<any> {
  const j = await rpcRaw(port, method, params, o);
  if (j.error) throw new RpcCallError(method, j.error);
  return j.result;
}

/** Call a method that must fail: returns the error object, throws if the call succeeded. */
export async function rpcError(port: number, method: string, params?: unknown, o: { timeoutMs?: number } = {}): Promise<RpcErrorObject> {
  const j = await rpcRaw(port, method, params, o);
  if (!j.error) throw new Error(`${method} was expected to fail but returned ${JSON.stringify(j.result)}`);
  return j.error;
}

/** True for errors that mean "nobody answered" (process gone, port closed, connection reset, timeout). */
export function isTransportError(e: unknown): boolean {
  if (e instanceof RpcCallError) return false;
  const err = e as { name?: string; cause?: { code?: string }; code?: string; message?: string };
  if (err?.name === 'TimeoutError' || err?.name === 'AbortError') return true;
  const code = err?.cause?.code ?? err?.code;
  return !!code && ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'ETIMEDOUT'].includes(code)
    || /fetch failed|socket|other side closed/i.test(err?.message ?? '');
}

// ------------------------------------------------------------------------------------------------ keys, txs

export interface KeyInfo {
  /** The key file written by `meshledger keygen`. */
  file: string;
  address: string;
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/** Read a key file written by `meshledger keygen` (JSON with `secretKey` hex). */
export function readKey(file: string): KeyInfo {
  const j = JSON.parse(readFileSync(file, 'utf8')) as { address: string; secretKey: string };
  const secretKey = fromHex(j.secretKey);
  return { file, address: j.address, publicKey: getPublicKey(secretKey), secretKey };
}

export interface TransferOpts {
  from: KeyInfo | string; // KeyInfo or key file path
  to: string | Uint8Array; // address or public key
  amount: bigint | number;
  nonce: bigint | number;
  fee?: bigint | number;
  chainId?: string;
  memo?: string;
}

export interface SignedTransfer {
  tx: Tx;
  /** Signed bytes as lower-case hex: the `tx` param of sendTransaction. */
  hex: string;
  /** Transaction id (what sendTransaction returns). */
  id: string;
}

/** Sign a transfer with `signTx` from a key file's secret key. */
export function signTransfer(o: TransferOpts): SignedTransfer {
  const k = typeof o.from === 'string' ? readKey(o.from) : o.from;
  const tx = signTx({
    chainId: o.chainId ?? 'meshledger-devnet',
    from: k.publicKey,
    to: typeof o.to === 'string' ? decodeAddress(o.to) : o.to,
    amount: BigInt(o.amount),
    fee: BigInt(o.fee ?? 1n),
    nonce: BigInt(o.nonce),
    memo: o.memo ?? '',
  }, k.secretKey);
  return { tx, hex: toHex(tx.bytes), id: tx.idHex };
}

// ------------------------------------------------------------------------------------------------ CLI runs

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run `meshledger ARGS…` to completion (killed after `timeoutMs`). */
export function runCli(args: string[], o: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: o.cwd, env: o.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? scaled(30_000));
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Describe a CLI result for assertion messages. */
export function describeCli(r: CliResult): string {
  return `exit ${r.code}${r.signal ? ` (signal ${r.signal})` : ''}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}

// ------------------------------------------------------------------------------------------------ nodes

export interface StartNodeOptions {
  /** Datadir; default: a new folder `node-<name>` in the harness temp dir. Reuse it to restart a node. */
  datadir?: string;
  genesis: string;
  /** Validator key file: the node produces blocks. */
  key?: string;
  /** RPC port on 127.0.0.1; default: a free port. `null`: no --rpc. */
  rpcPort?: number | null;
  /** P2P port on 127.0.0.1 (passed as --p2p). */
  p2pPort?: number;
  /** Peer URLs (ws://127.0.0.1:PORT) for --bootnodes. */
  bootnodes?: string[];
  extraArgs?: string[];
  /** Name used for the log file and in messages; default node-<n>. */
  name?: string;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Wait until the RPC answers getChainInfo (default true when there is an RPC port). */
  waitReady?: boolean;
  readyTimeoutMs?: number;
  /**
   * Command prefix the node is run under, e.g. ['ip', 'netns', 'exec', NS] (harness/netns.ts). It must
   * exec the node in place (as `ip netns exec` does), so the child's pid and signals are the node's own.
   */
  launcher?: string[];
}

export interface ExitInfo { code: number | null; signal: NodeJS.Signals | null }

export class NodeProc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly datadir: string;
  readonly logFile: string;
  readonly rpcPort: number | undefined;
  readonly p2pPort: number | undefined;
  readonly args: string[];
  readonly startedAt = Date.now();
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ExitInfo>;
  exit: ExitInfo | undefined;
  readonly opts: StartNodeOptions;

  constructor(name: string, child: ChildProcess, datadir: string, logFile: string, args: string[], opts: StartNodeOptions, rpcPort?: number, p2pPort?: number) {
    this.name = name;
    this.child = child;
    this.pid = child.pid!;
    this.datadir = datadir;
    this.logFile = logFile;
    this.args = args;
    this.opts = opts;
    this.rpcPort = rpcPort;
    this.p2pPort = p2pPort;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  get running(): boolean { return this.exit === undefined; }
  get p2pUrl(): string | undefined { return this.p2pPort === undefined ? undefined : `ws://${HOST}:${this.p2pPort}`; }

  /** Call a JSON-RPC method on this node. */
  rpc(method: string, params?: unknown, o: { timeoutMs?: number } = {}): Promise<any> {
    if (this.rpcPort === undefined) throw new Error(`${this.name} has no RPC port`);
    return rpc(this.rpcPort, method, params, o);
  }

  /** The whole log (stdout and stderr interleaved). */
  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** The last `n` lines of the log. */
  tail(n = 30): string {
    return this.log().trimEnd().split('\n').slice(-n).join('\n');
  }

  /** Log lines parsed as JSON (--log-format json); other lines are skipped. */
  logEntries(): Record<string, any>[] {
    const out: Record<string, any>[] = [];
    for (const line of this.log().split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line));
      } catch { /* a line being written */ }
    }
    return out;
  }

  describe(lines = 30): string {
    const state = this.exit ? `exited (code ${this.exit.code}, signal ${this.exit.signal})` : 'running';
    return `${this.name} pid ${this.pid} ${state}, log ${this.logFile}, last ${lines} log lines:\n${this.tail(lines)}`;
  }
}

// ------------------------------------------------------------------------------------------------ global registry

const liveChildren = new Set<ChildProcess>();
const liveTmpDirs = new Set<string>();
let hooksInstalled = false;

function track(child: ChildProcess): void {
  installHooks();
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
}

function killAllSync(): void {
  for (const c of liveChildren) {
    try {
      c.kill('SIGKILL');
    } catch { /* already gone */ }
  }
  if (!process.env.KEEP_TMP) {
    for (const d of liveTmpDirs) {
      try {
        rmSync(d, { recursive: true, force: true });
      } catch { /* best effort */ }
    }
  }
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.once('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAllSync();
      process.kill(process.pid, sig); // the default action, now that our handler is gone
    });
  }
}

// ------------------------------------------------------------------------------------------------ the harness

export interface GenesisOptions {
  validators: (KeyInfo | string)[]; // KeyInfo, key file path, or address
  alloc?: [string | KeyInfo, bigint | number | string][];
  slotMs?: number;
  chainId?: string;
  genesisTime?: number;
  minFee?: bigint | number;
  extraArgs?: string[];
  /** File name inside the harness temp dir (default genesis.json, genesis-2.json, …). */
  name?: string;
}

export interface GenesisInfo {
  file: string;
  json: any;
  chainId: string;
  slotMs: number;
  totalSupply: bigint;
}

export interface TestContextLike {
  after(fn: () => unknown): void;
  diagnostic?(msg: string): void;
}

export class Harness {
  readonly nodes: NodeProc[] = [];
  readonly #dirs: string[] = [];
  #dir: string | undefined;
  #seq = 0;
  #genesisSeq = 0;
  #cleaned = false;

  /**
   * With a test context, cleanup is registered with `t.after`. For a harness shared by a describe() suite,
   * create it in the suite body and register `after(() => h.cleanup())` there (not inside a before() hook,
   * where node:test's `after` does not attach to the suite).
   */
  constructor(t?: TestContextLike) {
    installHooks();
    t?.after(() => this.cleanup());
  }

  /** A new temp folder (removed by cleanup). */
  async mkTemp(prefix = 'meshledger-test-'): Promise<string> {
    const d = await mkdtemp(path.join(os.tmpdir(), prefix));
    this.#dirs.push(d);
    liveTmpDirs.add(d);
    if (process.env.KEEP_TMP) console.error(`# KEEP_TMP: ${d}`);
    return d;
  }

  /** The harness's main temp folder (created on first use). */
  async dir(): Promise<string> {
    this.#dir ??= await this.mkTemp();
    return this.#dir;
  }

  /** `meshledger keygen --out DIR/<name>.json` and read the key back. */
  async keygen(name: string): Promise<KeyInfo> {
    const file = path.join(await this.dir(), `${name}.json`);
    const r = await runCli(['keygen', '--out', file]);
    if (r.code !== 0) throw new Error(`keygen failed: ${describeCli(r)}`);
    const k = readKey(file);
    if (r.stdout.trim() !== k.address) throw new Error(`keygen printed ${r.stdout.trim()} but the file holds ${k.address}`);
    return k;
  }

  /** `meshledger genesis …` into the temp folder. */
  async genesis(o: GenesisOptions): Promise<GenesisInfo> {
    const name = o.name ?? (this.#genesisSeq++ === 0 ? 'genesis.json' : `genesis-${this.#genesisSeq}.json`);
    const file = path.join(await this.dir(), name);
    const vals = o.validators.map((v) => (typeof v === 'string' ? v : v.file)).join(',');
    const args = ['genesis', '--validators', vals, '--out', file];
    for (const [who, amount] of o.alloc ?? []) args.push('--alloc', `${typeof who === 'string' ? who : who.address}=${amount}`);
    if (o.slotMs !== undefined) args.push('--slot-ms', String(o.slotMs));
    if (o.chainId !== undefined) args.push('--chain-id', o.chainId);
    if (o.genesisTime !== undefined) args.push('--genesis-time', String(o.genesisTime));
    if (o.minFee !== undefined) args.push('--min-fee', String(o.minFee));
    args.push(...(o.extraArgs ?? []));
    const r = await runCli(args);
    if (r.code !== 0) throw new Error(`genesis failed: ${describeCli(r)}`);
    const json = JSON.parse(await readFile(file, 'utf8'));
    const totalSupply = (json.alloc as { amount: string }[]).reduce((s, a) => s + BigInt(a.amount), 0n);
    return { file, json, chainId: json.chainId, slotMs: json.slotMs, totalSupply };
  }

  /**
   * Spawn `node bin/meshledger.js node … --log-format json` with stdout and stderr appended to a log file in
   * the temp folder (one file per start). Resolves once the RPC answers (unless waitReady is false); rejects
   * with the node's log if it exits first.
   */
  async startNode(o: StartNodeOptions): Promise<NodeProc> {
    const autoPort = o.rpcPort === undefined;
    for (let attempt = 1; ; attempt++) {
      const node = await this.#spawnNode(o, autoPort ? await freePort() : o.rpcPort ?? undefined);
      const wait = o.waitReady ?? node.rpcPort !== undefined;
      if (!wait) return node;
      try {
        await this.waitReady(node, o.readyTimeoutMs);
        return node;
      } catch (e) {
        // A port grabbed by someone else between freePort() and the node's listen(): try another one.
        if (autoPort && attempt < 3 && !node.running && /EADDRINUSE/.test(node.log())) continue;
        throw e;
      }
    }
  }

  async #spawnNode(o: StartNodeOptions, rpcPort: number | undefined): Promise<NodeProc> {
    const dir = await this.dir();
    const seq = ++this.#seq;
    const name = o.name ?? `node-${seq}`;
    const datadir = o.datadir ?? path.join(dir, `data-${name}`);
    const logFile = path.join(dir, `${name}.${seq}.log`);
    const args = [BIN, 'node', '--datadir', datadir, '--genesis', o.genesis, '--log-format', 'json', '--log-level', o.logLevel ?? 'info'];
    if (o.key) args.push('--key', o.key);
    if (rpcPort !== undefined) args.push('--rpc', `${HOST}:${rpcPort}`);
    if (o.p2pPort !== undefined) args.push('--p2p', `${HOST}:${o.p2pPort}`);
    if (o.bootnodes?.length) args.push('--bootnodes', o.bootnodes.join(','));
    args.push(...(o.extraArgs ?? []));
    const fd = openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      const [cmd, ...pre] = o.launcher?.length ? [...o.launcher, process.execPath] : [process.execPath];
      child = spawn(cmd!, [...pre, ...args], { cwd: dir, stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd); // the child holds its own copy
    }
    track(child);
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    const node = new NodeProc(name, child, datadir, logFile, args, { ...o, datadir }, rpcPort, o.p2pPort);
    this.nodes.push(node);
    return node;
  }

  /** Poll getChainInfo until it answers; fail fast if the process exits. */
  async waitReady(node: NodeProc, timeoutMs = scaled(30_000)): Promise<any> {
    return this.waitFor(async () => {
      if (!node.running) throw new FatalWait(`${node.name} exited before its RPC answered`);
      return await node.rpc('getChainInfo', undefined, { timeoutMs: scaled(5_000) });
    }, timeoutMs, `${node.name} RPC ready on port ${node.rpcPort}`, [node], 50);
  }

  /**
   * Poll `predicate` until it returns a truthy value (returned) or `timeoutMs` passes. Exceptions count as
   * "not yet" (the last one is reported) unless they are FatalWait. Fails early when a node in `nodes` exits.
   * The failure message includes each node's last log lines.
   */
  async waitFor<T>(predicate: () => T | Promise<T>, timeoutMs: number, what: string, nodes: NodeProc[] = this.nodes.filter((n) => n.running), intervalMs = 100): Promise<NonNullable<T>> {
    return waitFor(predicate, timeoutMs, what, nodes, intervalMs);
  }

  /** Wait until the node's head height is ≥ `height`; returns the chain info. */
  waitForHeight(node: NodeProc, height: number, timeoutMs = scaled(30_000)): Promise<any> {
    return this.waitFor(async () => {
      const info = await node.rpc('getChainInfo');
      return info.height >= height ? info : undefined;
    }, timeoutMs, `${node.name} at height ≥ ${height}`, [node]);
  }

  /** Send `signal` (default SIGKILL) and wait for the process to exit. */
  async kill(node: NodeProc, signal: NodeJS.Signals = 'SIGKILL', timeoutMs = scaled(15_000)): Promise<ExitInfo> {
    if (!node.running) return node.exit!;
    node.child.kill(signal);
    const r = await within(node.exited, timeoutMs);
    if (!r) {
      node.child.kill('SIGKILL');
      await node.exited;
      throw new Error(`${node.name} did not exit within ${timeoutMs} ms of ${signal}\n${node.describe()}`);
    }
    return r;
  }

  /** SIGTERM, wait up to `timeoutMs` for a clean exit, then SIGKILL. Returns how it exited. */
  async stop(node: NodeProc, timeoutMs = scaled(15_000)): Promise<ExitInfo & { forced: boolean; ms: number }> {
    const t0 = Date.now();
    if (!node.running) return { ...node.exit!, forced: false, ms: 0 };
    node.child.kill('SIGTERM');
    const r = await within(node.exited, timeoutMs);
    if (r) return { ...r, forced: false, ms: Date.now() - t0 };
    node.child.kill('SIGKILL');
    return { ...(await node.exited), forced: true, ms: Date.now() - t0 };
  }

  /** Restart a stopped node with the same options (same datadir, ports, key), waiting until its RPC answers unless `patch` says otherwise. */
  async restart(node: NodeProc, patch: Partial<StartNodeOptions> = {}): Promise<NodeProc> {
    if (node.running) throw new Error(`${node.name} is still running`);
    return this.startNode({ ...node.opts, rpcPort: node.rpcPort ?? null, name: node.name, waitReady: undefined, ...patch });
  }

  /** Kill every process this harness started and remove its temp folders. Idempotent. */
  async cleanup(): Promise<void> {
    if (this.#cleaned) return;
    this.#cleaned = true;
    await Promise.all(this.nodes.filter((n) => n.running).map(async (n) => {
      n.child.kill('SIGKILL');
      await within(n.exited, 5_000);
    }));
    if (process.env.KEEP_TMP) return;
    for (const d of this.#dirs) {
      await rm(d, { recursive: true, force: true, maxRetries: 3 }).catch(() => {});
      liveTmpDirs.delete(d);
    }
  }
}

/** Thrown from a waitFor predicate to stop waiting at once. */
export class FatalWait extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FatalWait';
  }
}

/** See Harness.waitFor. */
export async function waitFor<T>(predicate: () => T | Promise<T>, timeoutMs: number, what: string, nodes: NodeProc[] = [], intervalMs = 100): Promise<NonNullable<T>> {
  const t0 = Date.now();
  const watched = nodes.filter((n) => n.running);
  let lastErr: unknown;
  let lastValue: unknown;
  const fail = (why: string): never => {
    const err = lastErr instanceof Error ? `${lastErr.name}: ${lastErr.message}${(lastErr as { cause?: Error }).cause ? ` (${(lastErr as { cause?: Error }).cause!.message})` : ''}` : String(lastErr);
    const parts = [`waitFor "${what}": ${why} after ${Date.now() - t0} ms`];
    if (lastErr !== undefined) parts.push(`last error: ${err}`);
    else parts.push(`last value: ${JSON.stringify(lastValue, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}`);
    for (const n of nodes) parts.push(n.describe());
    throw new Error(parts.join('\n'));
  };
  for (;;) {
    try {
      const v = await predicate();
      if (v) return v as NonNullable<T>;
      lastValue = v;
      lastErr = undefined;
    } catch (e) {
      if (e instanceof FatalWait) {
        lastErr = e;
        fail(e.message);
      }
      lastErr = e;
    }
    const gone = watched.find((n) => !n.running);
    if (gone) fail(`${gone.name} exited (code ${gone.exit!.code}, signal ${gone.exit!.signal})`);
    if (Date.now() - t0 > timeoutMs) fail('timed out');
    await sleep(intervalMs);
  }
}

// ------------------------------------------------------------------------------------------------ randomness

/** A small seeded PRNG (mulberry32): reproducible random moments in tests. */
export function seededRandom(seed: number): { next(): number; int(lo: number, hi: number): number; pick<T>(a: readonly T[]): T } {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (a) => a[Math.floor(next() * a.length)]!,
  };
}
