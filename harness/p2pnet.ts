/**
 * Helpers for multi-node P2P tests on top of harness/proc.ts (which this file only uses):
 *   - keys and genesis written in-process (no CLI process per key: the machine is small and shared);
 *   - a Cluster of real node processes, each on its own loopback IP behind a NetProxy (netproxy.ts);
 *   - reading a node's peer set and sync rounds from its JSON log;
 *   - agreement checks over RPC (same hash and stateRoot at a common height);
 *   - WirePeer: a raw protocol client (ws + the Noise session + messages.ts) for hostile-peer tests.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import WebSocket from 'ws';
import { encodeAddress } from '../src/encoding/address.js';
import { fromHex } from '../src/encoding/bytes.js';
import { DEFAULT_PARAMS, genesisFromJson, type GenesisJson } from '../src/ledger/genesis.js';
import { writeGenesisFile } from '../src/node/genesisfile.js';
import { newKeyPair, writeKeyFile } from '../src/crypto/keyfile.js';
import { decodeMessage, encodeMessage, frameMaxBytes, MSG, PROTOCOL_VERSION, sizeLimits, type Message } from '../src/p2p/messages.js';
import { SEAL_BYTES, secureSession, sessionIdentity, type Hello, type SecureConn } from '../src/p2p/noise.js';
import type { Conn } from '../src/p2p/transport.js';
import { systemClock } from '../src/util/clock.js';
import { systemRandom } from '../src/util/random.js';
import { Harness, scaled, waitFor, type GenesisInfo, type KeyInfo, type NodeProc } from './proc.js';
import { NetProxy } from './netproxy.js';

// ------------------------------------------------------------------------------------------------ keys, genesis

/** A new key written as a key file (same format as `meshledger keygen`), without spawning the CLI. */
export async function writeKey(dir: string, name: string): Promise<KeyInfo> {
  const kp = newKeyPair();
  const file = path.join(dir, `${name}.json`);
  await writeKeyFile(file, kp);
  return { file, address: kp.address, publicKey: kp.publicKey, secretKey: kp.secretKey };
}

/** An unsaved key (e.g. a hostile peer's node key). */
export function memKey(): { secretKey: Uint8Array; publicKey: Uint8Array; address: string } {
  const kp = newKeyPair();
  return { secretKey: kp.secretKey, publicKey: kp.publicKey, address: encodeAddress(kp.publicKey) };
}

/** genesis.json written in-process (the same fields as `meshledger genesis` writes, default params). */
export async function writeGenesis(dir: string, o: {
  validators: KeyInfo[]; alloc?: [KeyInfo | string, bigint][]; slotMs: number; chainId?: string; genesisTime?: number; name?: string;
}): Promise<GenesisInfo> {
  const p = DEFAULT_PARAMS;
  const j: GenesisJson = {
    chainId: o.chainId ?? 'meshledger-devnet', genesisTime: o.genesisTime ?? Date.now(), slotMs: o.slotMs,
    validators: o.validators.map((v) => v.address),
    alloc: (o.alloc ?? []).map(([k, a]) => ({ address: typeof k === 'string' ? k : k.address, amount: a.toString() })),
    params: {
      minFee: p.minFee.toString(), maxBlockTxs: p.maxBlockTxs, maxBlockBytes: p.maxBlockBytes, maxMemoBytes: p.maxMemoBytes,
      maxClockDriftMs: p.maxClockDriftMs, decimals: p.decimals, symbol: p.symbol,
    },
  };
  const g = genesisFromJson(j); // the semantic checks `meshledger genesis` runs
  const file = path.join(dir, o.name ?? 'genesis.json');
  await writeGenesisFile(file, j);
  return { file, json: j, chainId: j.chainId, slotMs: j.slotMs, totalSupply: g.totalSupply };
}

// ------------------------------------------------------------------------------------------------ cluster

export interface ClusterNodeSpec {
  /** Validator key, or undefined for a follower. */
  key?: KeyInfo;
  /** Indices of the nodes whose proxy URLs are this node's bootnodes. */
  bootnodes: number[];
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Prepared datadir (e.g. a copy of a prebuilt chain). */
  datadir?: string;
  name?: string;
}

/** Node processes behind a NetProxy: node i listens on 127.0.0.(ipBase+i) and is reached via proxy i. */
export class Cluster {
  readonly nodes: (NodeProc | undefined)[];
  constructor(readonly h: Harness, readonly proxy: NetProxy, readonly genesis: GenesisInfo, readonly specs: ClusterNodeSpec[]) {
    this.nodes = specs.map(() => undefined);
  }

  static async create(h: Harness, genesis: GenesisInfo, specs: ClusterNodeSpec[], o: { ipBase?: number } = {}): Promise<Cluster> {
    const proxy = await NetProxy.create(specs.length, o);
    const c = new Cluster(h, proxy, genesis, specs);
    return c;
  }

  node(i: number): NodeProc {
    const n = this.nodes[i];
    if (!n) throw new Error(`node ${i} is not started`);
    return n;
  }

  get started(): NodeProc[] { return this.nodes.filter((n): n is NodeProc => !!n); }

  /** Start node i (waits for its RPC). A P2P port taken meanwhile by another process is re-picked (twice at most). */
  async start(i: number): Promise<NodeProc> {
    const s = this.specs[i]!;
    for (let attempt = 1; ; attempt++) {
      const p = this.proxy.nodes[i]!;
      const name = s.name ?? `n${i}`;
      try {
        const n = await this.h.startNode({
          name, genesis: this.genesis.file, key: s.key?.file, datadir: s.datadir ?? path.join(await this.h.dir(), `data-${name}`),
          logLevel: s.logLevel ?? 'info', bootnodes: this.proxy.urls(s.bootnodes),
          extraArgs: ['--p2p', p.p2pArg, '--advertise', p.url],
          readyTimeoutMs: scaled(60_000),
        });
        this.nodes[i] = n;
        return n;
      } catch (e) {
        const failed = this.h.nodes.filter((n) => n.name === name).at(-1);
        if (attempt < 3 && failed && !failed.running && /EADDRINUSE/.test(failed.log()) && failed.log().includes(p.p2pArg)) {
          await this.proxy.repick(i);
          continue;
        }
        throw e;
      }
    }
  }

  /** Start several nodes concurrently. */
  async startAll(indices: number[] = this.specs.map((_, i) => i)): Promise<NodeProc[]> {
    return Promise.all(indices.map((i) => this.start(i)));
  }

  async close(): Promise<void> {
    await this.proxy.close();
  }
}

// ------------------------------------------------------------------------------------------------ logs

/** The node's P2P id (from its 'p2p started' log line), or undefined if not logged yet. */
export function nodeIdOf(n: NodeProc): string | undefined {
  return n.logEntries().find((e) => e.msg === 'p2p started')?.nodeId;
}

export async function waitNodeId(n: NodeProc, timeoutMs = scaled(20_000)): Promise<string> {
  return waitFor(() => nodeIdOf(n), timeoutMs, `${n.name} logs its node id`, [n]);
}

/** Peer labels (node id prefixes, 12 hex) a node is connected to now, from its 'peer connected'/'peer disconnected' log lines. */
export function connectedPeers(n: NodeProc): Set<string> {
  const count = new Map<string, number>();
  for (const e of n.logEntries()) {
    if (typeof e.peer !== 'string') continue;
    if (e.msg === 'peer connected') count.set(e.peer, (count.get(e.peer) ?? 0) + 1);
    else if (e.msg === 'peer disconnected') count.set(e.peer, (count.get(e.peer) ?? 0) - 1);
  }
  return new Set([...count].filter(([, c]) => c > 0).map(([p]) => p));
}

export const label = (nodeIdHex: string): string => nodeIdHex.slice(0, 12);

export interface SyncRound { height: number; target: number; blocks: number; blocksPerSec: number; peers: number; sources: Record<string, number>; time: number }

export function syncRounds(n: NodeProc): SyncRound[] {
  return n.logEntries().filter((e) => e.msg === 'sync round done') as unknown as SyncRound[];
}

// ------------------------------------------------------------------------------------------------ RPC views

export interface Head { height: number; hash: string; slot: number }

export async function heads(nodes: NodeProc[]): Promise<Head[]> {
  return Promise.all(nodes.map(async (n) => {
    const i = await n.rpc('getChainInfo');
    return { height: i.height as number, hash: i.headHash as string, slot: i.headSlot as number };
  }));
}

export async function headerAt(n: NodeProc, height: number): Promise<{ hash: string; stateRoot: string; height: number; txCount: number; proposer: string } | undefined> {
  try {
    return await n.rpc('getBlockHeader', { height });
  } catch (e) {
    if ((e as { data?: unknown; message?: string }).message?.includes('unknown_block')) return undefined;
    throw e;
  }
}

/**
 * Call right after partitioning `nodes` into halves that contain nodes[a] and nodes[b]: waits until `slots`
 * slots have passed and every node produced ≥ `blocks` blocks past the highest head at the cut, asserts
 * the halves' chains differ at the lowest resulting height, and returns the heads and when the cut began.
 */
export async function waitHalvesDiverge(h: Harness, nodes: NodeProc[], o: { slotMs: number; slots: number; blocks: number; timeoutMs: number; a: number; b: number }): Promise<{ heads: Head[]; since: number; cut: number }> {
  const since = Date.now();
  const cut = Math.max(...(await heads(nodes)).map((x) => x.height));
  const split = await h.waitFor(async () => {
    if (Date.now() - since < o.slots * o.slotMs) return undefined;
    const hs = await heads(nodes);
    return hs.every((x) => x.height >= cut + o.blocks) ? hs : undefined;
  }, o.timeoutMs, `both halves produce for ≥ ${o.slots} slots`, nodes, 200);
  const probe = Math.min(...split.map((x) => x.height));
  if ((await headerAt(nodes[o.a]!, probe))!.hash === (await headerAt(nodes[o.b]!, probe))!.hash) {
    throw new Error(`the halves must have diverged (same block at height ${probe})`);
  }
  return { heads: split, since, cut };
}

/**
 * If every node has the same block (hash and stateRoot) at the lowest head height among them (and that
 * height is ≥ `minHeight`), returns that height and block; otherwise undefined.
 */
export async function agreement(nodes: NodeProc[], minHeight = 0): Promise<{ height: number; hash: string; stateRoot: string } | undefined> {
  const hs = await heads(nodes);
  const h = Math.min(...hs.map((x) => x.height));
  if (h < minHeight) return undefined;
  const headers = await Promise.all(nodes.map((n) => headerAt(n, h)));
  const first = headers[0];
  if (!first) return undefined;
  for (const x of headers) if (!x || x.hash !== first.hash || x.stateRoot !== first.stateRoot) return undefined;
  return { height: h, hash: first.hash, stateRoot: first.stateRoot };
}

export async function balanceOn(n: NodeProc, address: string): Promise<bigint> {
  return BigInt((await n.rpc('getAccount', { address })).balance);
}

// ------------------------------------------------------------------------------------------------ raw wire client

export interface CloseInfo { code: number; reason: string }

/** A `ws` socket as the session's Conn (binary frames; a text frame from the node would arrive as empty). */
class WsPipe implements Conn {
  #onMessage: ((f: Uint8Array) => void) | undefined;
  #early: Uint8Array[] = [];
  #onClose: ((code: number, reason: string) => void) | undefined;
  #closed: [number, string] | undefined;
  constructor(readonly ws: WebSocket, readonly remote: string) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const u8 = isBinary ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(0);
      if (this.#onMessage) this.#onMessage(u8);
      else this.#early.push(u8);
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.#closed = [code, reason.toString()];
      this.#onClose?.(code, reason.toString());
    });
  }
  readonly inbound = false;
  get bufferedAmount(): number { return this.ws.bufferedAmount; }
  send(frame: Uint8Array): void { if (this.ws.readyState === WebSocket.OPEN) this.ws.send(frame, { binary: true }); }
  close(code: number, reason: string): void { if (this.ws.readyState === WebSocket.OPEN) this.ws.close(code, reason.slice(0, 120)); }
  onMessage(fn: (f: Uint8Array) => void): void { this.#onMessage = fn; for (const f of this.#early.splice(0)) fn(f); }
  onClose(fn: (code: number, reason: string) => void): void { this.#onClose = fn; if (this.#closed) fn(...this.#closed); }
  pause(): void { this.ws.pause(); }
  resume(): void { this.ws.resume(); }
}

/**
 * A raw P2P client for hostile-peer tests: it runs the real Noise session (src/p2p/noise.ts) as a node key of
 * the test's choosing, then sends exactly the messages (or raw plaintext frames, sealed) a test wants. It
 * records every message the node sends and exposes the close code and reason the node chose.
 */
export class WirePeer {
  readonly ws: WebSocket;
  readonly received: Message[] = [];
  readonly undecodable: Uint8Array[] = [];
  readonly closed: Promise<CloseInfo>;
  close: CloseInfo | undefined;
  readonly limits: Record<number, number>;
  readonly #pipe: WsPipe;
  /** The sealed connection once the handshake is done. */
  #secure: SecureConn | undefined;
  #waiters: (() => void)[] = [];
  readonly #hooks: ((m: Message) => void)[] = [];

  private constructor(ws: WebSocket, maxBlockBytes: number, url: string) {
    this.ws = ws;
    this.limits = sizeLimits(maxBlockBytes);
    this.#pipe = new WsPipe(ws, url.replace(/^wss?:\/\//, ''));
    this.closed = new Promise((resolve) => {
      ws.on('close', (code: number, reason: Buffer) => {
        this.close = { code, reason: reason.toString() };
        this.#wake();
        resolve(this.close);
      });
    });
    ws.on('error', () => { /* surfaced as close */ });
  }

  /** Connect (rejects if the TCP/WebSocket connection cannot be opened). */
  static connect(url: string, o: { maxBlockBytes?: number; timeoutMs?: number; localAddress?: string } = {}): Promise<WirePeer> {
    const maxBlockBytes = o.maxBlockBytes ?? DEFAULT_PARAMS.maxBlockBytes;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, {
        perMessageDeflate: false, maxPayload: frameMaxBytes(maxBlockBytes) + SEAL_BYTES, handshakeTimeout: o.timeoutMs ?? scaled(10_000),
        ...(o.localAddress ? { localAddress: o.localAddress } : {}),
      });
      const p = new WirePeer(ws, maxBlockBytes, url);
      ws.once('open', () => resolve(p));
      ws.once('error', reject);
    });
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Wait for a received message of `type` (the first one not yet consumed by index `from`). */
  async next<T extends Message['type']>(type: T, timeoutMs = scaled(10_000), from = 0): Promise<Extract<Message, { type: T }>> {
    const t0 = Date.now();
    for (;;) {
      const m = this.received.slice(from).find((x) => x.type === type);
      if (m) return m as Extract<Message, { type: T }>;
      if (this.close) throw new Error(`connection closed (${this.close.code} ${this.close.reason}) before a type ${type} message`);
      const left = timeoutMs - (Date.now() - t0);
      if (left <= 0) throw new Error(`no type ${type} message within ${timeoutMs} ms (got types ${this.received.map((x) => x.type).join(',')})`);
      await new Promise<void>((r) => {
        const timer = setTimeout(r, Math.min(left, 250));
        this.#waiters.push(() => { clearTimeout(timer); r(); });
      });
    }
  }

  /** Call `fn` with every message from the node as it arrives (register before the handshake to see them all). */
  onMessage(fn: (m: Message) => void): void { this.#hooks.push(fn); }

  send(m: Message): void { this.sendRaw(encodeMessage(m)); }

  /** Send one plaintext frame, sealed in the session (what the node's message decoder then sees). */
  sendRaw(bytes: Uint8Array): void {
    if (!this.#secure) throw new Error('handshake first');
    if (this.ws.readyState === WebSocket.OPEN) this.#secure.send(bytes);
  }

  /** Put bytes on the wire outside the session (an attacker on the path, or a broken client). */
  sendUnsealed(bytes: Uint8Array | string): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes, { binary: typeof bytes !== 'string' });
  }

  /** Wait for the node to close the connection (throws after `timeoutMs`). */
  async waitClosed(timeoutMs = scaled(10_000)): Promise<CloseInfo> {
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([this.closed, new Promise<undefined>((res) => (timer = setTimeout(() => res(undefined), timeoutMs)))]).finally(() => clearTimeout(timer));
    if (!r) throw new Error(`the node did not close the connection within ${timeoutMs} ms (received types ${this.received.map((x) => x.type).join(',')})`);
    return r;
  }

  terminate(): void { this.ws.terminate(); }

  /**
   * Run the session as node `key`: the Noise handshake with our payload (network, version, listen, head).
   * `claimNodeId` states another node's id while signing the session key with `key`; `badAuth` signs
   * garbage. Both must be refused by the node (bad_identity), so the handshake then rejects. With
   * `expectReady` it waits for the node's GET_ADDR, which the node sends once it admitted us.
   */
  async handshake(o: {
    key: { secretKey: Uint8Array; publicKey: Uint8Array };
    chainId: string; genesisHash: string;
    claimNodeId?: Uint8Array; version?: number; listen?: string; badAuth?: boolean; expectReady?: boolean; headHeight?: number;
  }): Promise<{ node: Hello; nodeId: Uint8Array }> {
    const gh = fromHex(o.genesisHash);
    let identity = sessionIdentity(o.key, systemRandom);
    if (o.claimNodeId) identity = { ...identity, nodeId: o.claimNodeId };
    if (o.badAuth) identity = { ...identity, staticSignature: new Uint8Array(randomBytes(64)) };
    const session = await secureSession(this.#pipe, {
      initiator: true, identity, random: systemRandom, clock: systemClock, timeoutMs: scaled(10_000),
      hello: () => ({ version: o.version ?? PROTOCOL_VERSION, chainId: o.chainId, genesisHash: gh, listen: o.listen ?? '', headHeight: o.headHeight ?? 0, headHash: gh }),
      accept: () => {},
    });
    this.#secure = session.conn;
    session.conn.onMessage((u8) => {
      let m: Message;
      try {
        m = decodeMessage(u8, this.limits);
      } catch {
        this.undecodable.push(u8);
        return this.#wake();
      }
      this.received.push(m);
      for (const f of this.#hooks) f(m);
      this.#wake();
    });
    if (o.expectReady !== false && !o.badAuth && !o.claimNodeId) await this.next(MSG.GET_ADDR);
    return { node: session.remote, nodeId: session.nodeId };
  }
}
