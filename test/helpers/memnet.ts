/**
 * In-process P2P for unit tests of src/p2p: a Transport whose connections are pairs of in-memory pipes
 * (frames delivered on later event-loop turns, in order, honouring pause/resume like a TCP window: frames sent
 * to a paused end wait in its inbox and count in the sender's bufferedAmount), Network instances on
 * memory-level chains with real mempools, and RawPeer: a wire-protocol client on such a pipe (the in-process
 * counterpart of WirePeer in p2pnet.ts) for sending exactly the frames a test wants.
 */
import { Chain } from '../../src/chain/chain.js';
import { fromHex } from '../../src/encoding/bytes.js';
import type { Genesis } from '../../src/ledger/genesis.js';
import { Mempool } from '../../src/mempool/mempool.js';
import type { KeyPair } from '../../src/crypto/keyfile.js';
import { decodeMessage, encodeMessage, MSG, PROTOCOL_VERSION, sizeLimits, type Message } from '../../src/p2p/messages.js';
import { Network, type NetLimits } from '../../src/p2p/network.js';
import { wireNetwork } from '../../src/node/wiring.js';
import { secureSession, sessionIdentity, type SecureConn } from '../../src/p2p/noise.js';
import type { Conn, Transport } from '../../src/p2p/transport.js';
import { openMemory, type KV } from '../../src/storage/kv.js';
import { ManualClock, systemClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';
import { systemRandom } from '../../src/util/random.js';
import { GENESIS_TIME } from './fixtures.js';

export class MemConn implements Conn {
  other!: MemConn;
  readonly inbox: Uint8Array[] = [];
  inboxBytes = 0;
  paused = false;
  pauses = 0;
  /** Set to make pause() a no-op (a transport without flow control). */
  ignorePause = false;
  closed = false;
  delivered = 0;
  #onMessage: ((f: Uint8Array) => void) | undefined;
  #onClose: ((code: number, reason: string) => void) | undefined;
  #closedWith: [number, string] | undefined;
  #scheduled = false;

  constructor(readonly remote: string, readonly inbound: boolean) {}

  /** What this end sent and the other end has not consumed yet (as ws reports unsent bytes). */
  get bufferedAmount(): number { return this.other.inboxBytes; }

  send(frame: Uint8Array): void {
    if (this.closed || this.other.closed) return;
    this.other.inbox.push(frame.slice());
    this.other.inboxBytes += frame.length;
    this.other.#pump();
  }

  pause(): void {
    if (this.ignorePause) return;
    if (!this.paused) this.pauses++;
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.#pump();
  }

  #pump(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      // Like a socket read: a bounded chunk of frames per turn, stopping as soon as the end is paused.
      for (let n = 0; n < 32 && this.inbox.length && !this.paused && !this.closed && this.#onMessage; n++) {
        const f = this.inbox.shift()!;
        this.inboxBytes -= f.length;
        this.delivered++;
        this.#onMessage(f);
      }
      if (this.inbox.length && !this.paused && !this.closed && this.#onMessage) this.#pump();
    });
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.#closedWith = [code, reason];
    setImmediate(() => this.other.#peerClosed(code, reason));
    this.#onClose?.(code, reason);
  }

  #peerClosed(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.#closedWith = [code, reason];
    this.#onClose?.(code, reason);
  }

  onMessage(fn: (f: Uint8Array) => void): void {
    this.#onMessage = fn;
    this.#pump();
  }

  onClose(fn: (code: number, reason: string) => void): void {
    this.#onClose = fn;
    if (this.#closedWith) fn(...this.#closedWith);
  }
}

export class MemNet {
  readonly #listeners = new Map<string, (c: Conn) => void>();
  #ports = 1;

  transport(): Transport {
    let addr = '';
    return {
      listen: async (host, port, onConn) => {
        const p = port || this.#ports++;
        addr = `${host}:${p}`;
        this.#listeners.set(addr, onConn);
        return { host, port: p };
      },
      dial: async (url) => this.dial(url),
      close: async () => { this.#listeners.delete(addr); },
    };
  }

  /** A connection to the node listening at `url` (ws://host:port); returns the dialer's end. */
  async dial(url: string): Promise<MemConn> {
    const target = url.replace(/^ws:\/\//, '');
    const onConn = this.#listeners.get(target);
    if (!onConn) throw new Error(`memnet: nothing listens at ${url}`);
    const out = new MemConn(target, false);
    const inn = new MemConn(`127.0.0.1:${40000 + this.#ports++}`, true);
    out.other = inn;
    inn.other = out;
    await new Promise<void>((r) => setImmediate(r));
    onConn(inn);
    return out;
  }
}

export interface LogEntry { msg: string; level: string; [k: string]: unknown }

export interface MemNode {
  chain: Chain;
  mempool: Mempool;
  db: KV;
  network: Network;
  logs: LogEntry[];
  url: string;
  stop(): Promise<void>;
}

/** A node on a memory-level chain (clock far past genesis: no block is from the future) with P2P on `net`. */
export async function startMemNode(net: MemNet, genesis: Genesis, nodeKey: KeyPair, o: { chain?: Chain; db?: KV; limits?: Partial<NetLimits> } = {}): Promise<MemNode> {
  const db = o.db ?? await openMemory();
  const chain = o.chain ?? await Chain.open({ db, genesis, clock: new ManualClock(GENESIS_TIME + 1_000_000_000) });
  const mempool = new Mempool({ db, genesis, accounts: chain, verifier: chain.verifier, sigCache: chain.sigCache });
  await mempool.load();
  chain.on('chain:head', ({ connected, disconnected }) => { void mempool.onHeadChange(connected, disconnected).catch(() => {}); });
  const logs: LogEntry[] = [];
  const log = createLogger({ level: 'debug', write: (l) => logs.push(JSON.parse(l) as LogEntry) });
  const network = new Network({
    chain, mempool, db, transport: net.transport(), clock: systemClock, random: systemRandom, log,
    nodeKey: { secretKey: nodeKey.secretKey, publicKey: nodeKey.publicKey }, listen: { host: '127.0.0.1', port: 0 }, limits: o.limits,
  });
  wireNetwork(chain, mempool, network);
  await network.start();
  return {
    chain, mempool, db, network, logs, url: network.listenUrl,
    stop: async () => {
      await network.stop();
      await chain.close();
      await db.close();
    },
  };
}

/** A raw protocol client on a memnet pipe: runs the real session, records what the node sends, sends what the test wants. */
export class RawPeer {
  readonly received: Message[] = [];
  readonly limits: Record<number, number>;
  closed: [number, string] | undefined;
  #secure: SecureConn | undefined;
  readonly #hooks: ((m: Message) => void)[] = [];

  private constructor(readonly conn: MemConn, maxBlockBytes: number) {
    this.limits = sizeLimits(maxBlockBytes);
    conn.onClose((code, reason) => { this.closed = [code, reason]; });
  }

  /** Connect to `url` and complete the session as `key` (stating `head`, default genesis); `onMessage` sees every message. */
  static async join(net: MemNet, url: string, key: KeyPair, chain: Chain, o: { head?: { height: number; hash: Uint8Array }; onMessage?: (m: Message, p: RawPeer) => void } = {}): Promise<RawPeer> {
    const p = new RawPeer(await net.dial(url), chain.genesis.params.maxBlockBytes);
    if (o.onMessage) p.#hooks.push((m) => o.onMessage!(m, p));
    const gh = fromHex(chain.genesisHash);
    const s = await secureSession(p.conn, {
      initiator: true, identity: sessionIdentity(key, systemRandom), random: systemRandom, clock: systemClock, timeoutMs: 10_000,
      hello: () => ({ version: PROTOCOL_VERSION, chainId: chain.genesis.chainId, genesisHash: gh, listen: '', headHeight: o.head?.height ?? 0, headHash: o.head?.hash ?? gh }),
      accept: () => {},
    });
    p.#secure = s.conn;
    s.conn.onMessage((f) => {
      const m = decodeMessage(f, p.limits);
      p.received.push(m);
      for (const h of p.#hooks) h(m);
    });
    s.conn.onClose((code, reason) => { p.closed = [code, reason]; });
    await p.next(MSG.GET_ADDR); // sent by the node once it admitted us
    return p;
  }

  send(m: Message): void { this.#secure!.send(encodeMessage(m)); }

  count(type: number): number { return this.received.filter((m) => m.type === type).length; }

  async next<T extends Message['type']>(type: T, timeoutMs = 10_000): Promise<Extract<Message, { type: T }>> {
    const t0 = Date.now();
    for (;;) {
      const m = this.received.find((x) => x.type === type);
      if (m) return m as Extract<Message, { type: T }>;
      if (this.closed) throw new Error(`closed (${this.closed.join(' ')}) before a type ${type} message`);
      if (Date.now() - t0 > timeoutMs) throw new Error(`no type ${type} message within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/** Poll `fn` until it returns a truthy value (or throw after `timeoutMs`). */
export async function until<T>(fn: () => T | Promise<T>, timeoutMs: number, what: string): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
