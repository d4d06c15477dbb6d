/**
 * The peer transport seam. The P2P layer sees only `Transport` and `Conn`: production plugs in WebSockets
 * (`ws`), the deterministic simulator plugs in an in-process network with the same interface.
 */
import { WebSocket, WebSocketServer } from 'ws';
import http, { type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

export interface Conn {
  /** Remote endpoint as seen by the socket (ip:port), for logs and per-address limits. */
  readonly remote: string;
  readonly inbound: boolean;
  /** Bytes queued but not yet handed to the OS (back-pressure signal). */
  readonly bufferedAmount: number;
  send(frame: Uint8Array): void;
  close(code: number, reason: string): void;
  onMessage(fn: (frame: Uint8Array) => void): void;
  onClose(fn: (code: number, reason: string) => void): void;
  /**
   * Back-pressure on the receiving side: stop delivering this peer's frames (and stop reading its socket,
   * so the sender's own buffers fill and the transport's flow control slows it down) until resume(). A few
   * frames already buffered may still be delivered after pause(). Both are idempotent.
   */
  pause(): void;
  resume(): void;
}

export interface Transport {
  /** Start accepting connections; resolves with the bound address. */
  listen(host: string, port: number, onConn: (c: Conn) => void): Promise<{ host: string; port: number }>;
  /** Connect to `url` (ws://host:port). Rejects on failure or after `timeoutMs`. */
  dial(url: string, timeoutMs: number): Promise<Conn>;
  close(): Promise<void>;
}

/** Close codes used in the protocol (4000–4999 are application codes in WebSocket). */
export const CLOSE = {
  normal: 1000,
  goingAway: 1001,
  tooBig: 1009,
  protocol: 4000,
  wrongNetwork: 4001,
  version: 4002,
  self: 4003,
  duplicate: 4004,
  banned: 4005,
  tooManyPeers: 4006,
  misbehaving: 4007,
  timeout: 4008,
  slow: 4009,
  /** A sealed frame failed authentication (altered, injected, replayed or reordered on the way): nobody is blamed. */
  tampered: 4010,
} as const;

/** Marks a socket that completed its upgrade (its upgrade timer and count are released then). */
const UPGRADED = Symbol('upgraded');

/**
 * Listeners are attached the moment the socket exists and events are buffered until the owner registers
 * its handlers: `ws` may emit the peer's first frame in the same tick as 'open' (it can arrive in the same
 * TCP segment as the upgrade response), and a frame emitted with no listener is lost.
 */
class WsConn implements Conn {
  readonly #ws: WebSocket;
  readonly remote: string;
  readonly inbound: boolean;
  #onMessage: ((frame: Uint8Array) => void) | undefined;
  #onClose: ((code: number, reason: string) => void) | undefined;
  #early: Uint8Array[] = [];
  #closed: [number, string] | undefined;

  constructor(ws: WebSocket, remote: string, inbound: boolean) {
    this.#ws = ws;
    this.remote = remote;
    this.inbound = inbound;
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      // Text frames are a protocol violation; an empty frame is rejected (and penalized) upstream.
      let frame: Uint8Array = new Uint8Array(0);
      if (isBinary) {
        const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
        frame = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
      }
      if (this.#onMessage) this.#onMessage(frame);
      else if (this.#early.length < 64) this.#early.push(frame);
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.#closed = [code, reason.toString()];
      this.#onClose?.(code, reason.toString());
    });
  }
  get bufferedAmount(): number { return this.#ws.bufferedAmount; }
  // ws.pause() stops reading the TCP socket (data already read is still parsed and emitted, at most one read
  // chunk); TCP flow control then holds the sender. Both are no-ops on a socket that is not open.
  pause(): void { this.#ws.pause(); }
  resume(): void { this.#ws.resume(); }
  send(frame: Uint8Array): void {
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.send(frame, { binary: true });
  }
  close(code: number, reason: string): void {
    if (this.#ws.readyState === WebSocket.OPEN || this.#ws.readyState === WebSocket.CONNECTING) {
      this.#ws.close(code, closeReason(reason));
      // A peer that never completes the closing handshake is cut after a grace period.
      setTimeout(() => this.#ws.terminate(), 2000).unref();
    }
  }
  onMessage(fn: (frame: Uint8Array) => void): void {
    this.#onMessage = fn;
    const early = this.#early;
    this.#early = [];
    for (const f of early) fn(f);
  }
  onClose(fn: (code: number, reason: string) => void): void {
    this.#onClose = fn;
    if (this.#closed) fn(...this.#closed);
  }
}

/**
 * A close reason fits in 123 bytes of UTF-8 (ws throws a RangeError beyond that, which would escape the
 * message handler and crash the process); reasons can quote peer-supplied text such as a chain id.
 */
export function closeReason(reason: string): string {
  let r = reason.slice(0, 123);
  while (Buffer.byteLength(r) > 123) r = r.slice(0, -1);
  return r.replace(/[\uD800-\uDBFF]$/, ''); // no half of a surrogate pair at the cut
}

export interface WsTransportOptions {
  /** Largest frame accepted (ws closes the connection with 1009 beyond it). */
  maxPayload: number;
  /** Ping interval; a peer that misses a whole interval is terminated. */
  keepaliveMs: number;
  /** Source address for outgoing connections (a node listening on one IP also dials from it). */
  localAddress?: string;
  /** Inbound limits enforced on the raw socket, before any HTTP or WebSocket work (DEFAULT_SOCKET_LIMITS). */
  sockets?: Partial<SocketLimits>;
}

/**
 * Inbound socket limits. They apply from the moment TCP accepts, before a byte of HTTP is parsed, so that
 * half-open connections and stalled upgrades cannot take the process's file descriptors (JSON-RPC and the
 * database need them too) or unbounded memory.
 */
export interface SocketLimits {
  /** Open inbound sockets in total, upgraded or not; beyond it a new socket is closed at once. */
  maxTotal: number;
  /** Open inbound sockets from one IP address. */
  maxPerIp: number;
  /** Sockets not yet upgraded to WebSocket, in total: a flood of slow upgrades cannot crowd out peers already connected. */
  maxUpgrading: number;
  /** Time a socket has to complete its HTTP upgrade (request headers included). */
  upgradeTimeoutMs: number;
}

export const DEFAULT_SOCKET_LIMITS: SocketLimits = { maxTotal: 128, maxPerIp: 8, maxUpgrading: 32, upgradeTimeoutMs: 5000 };

export class WsTransport implements Transport {
  readonly #o: WsTransportOptions;
  readonly #limits: SocketLimits;
  #server: WebSocketServer | undefined;
  #http: http.Server | undefined;
  /** Inbound sockets open now: all of them, per IP, and those still upgrading. */
  readonly #inbound = new Set<Socket>();
  readonly #perIp = new Map<string, number>();
  #upgrading = 0;
  /** Inbound sockets closed at accept by a limit, by limit: what an operator sees of a flood. */
  readonly refused = { total: 0, perIp: 0, upgrading: 0, timeout: 0 };
  readonly #sockets = new Set<WebSocket>();
  #pinger: NodeJS.Timeout | undefined;
  readonly #alive = new WeakMap<WebSocket, boolean>();

  constructor(o: WsTransportOptions) {
    this.#o = o;
    this.#limits = { ...DEFAULT_SOCKET_LIMITS, ...o.sockets };
  }

  /** Inbound sockets open now, and how many of them are still upgrading. */
  get inboundSockets(): { open: number; upgrading: number } { return { open: this.#inbound.size, upgrading: this.#upgrading }; }

  /**
   * Admit a new TCP socket or close it at once. An admitted socket must upgrade within upgradeTimeoutMs;
   * its counts are released when it closes, whatever happened to it.
   */
  #admit(socket: Socket): void {
    const L = this.#limits;
    const ip = socket.remoteAddress ?? '?';
    const fromIp = this.#perIp.get(ip) ?? 0;
    const refuse = this.#inbound.size >= L.maxTotal ? 'total' : fromIp >= L.maxPerIp ? 'perIp' : this.#upgrading >= L.maxUpgrading ? 'upgrading' : undefined;
    if (refuse) {
      this.refused[refuse]++;
      socket.destroy();
      return;
    }
    this.#inbound.add(socket);
    this.#perIp.set(ip, fromIp + 1);
    this.#upgrading++;
    let upgrading = true;
    const upgraded = (): void => {
      if (!upgrading) return;
      upgrading = false;
      this.#upgrading--;
      clearTimeout(timer);
    };
    const timer = setTimeout(() => {
      if (!upgrading) return;
      this.refused.timeout++;
      socket.destroy();
    }, L.upgradeTimeoutMs);
    timer.unref();
    (socket as Socket & { [UPGRADED]?: () => void })[UPGRADED] = upgraded;
    socket.once('close', () => {
      upgraded();
      this.#inbound.delete(socket);
      const n = (this.#perIp.get(ip) ?? 1) - 1;
      if (n > 0) this.#perIp.set(ip, n);
      else this.#perIp.delete(ip);
    });
  }

  #track(ws: WebSocket): void {
    this.#sockets.add(ws);
    this.#alive.set(ws, true);
    ws.on('pong', () => this.#alive.set(ws, true));
    ws.on('close', () => this.#sockets.delete(ws));
    ws.on('error', () => { /* surfaced through 'close' */ });
    if (!this.#pinger) {
      this.#pinger = setInterval(() => {
        for (const s of this.#sockets) {
          // A socket we paused (back-pressure: its messages wait for processing here) cannot have read the
          // pong yet: that is our slowness, not a dead peer. Its liveness is checked again once resumed.
          if (s.isPaused) { this.#alive.set(s, true); continue; }
          if (!this.#alive.get(s)) { s.terminate(); continue; }
          this.#alive.set(s, false);
          try { s.ping(); } catch { /* closed meanwhile */ }
        }
      }, this.#o.keepaliveMs);
      this.#pinger.unref();
    }
  }

  listen(host: string, port: number, onConn: (c: Conn) => void): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const wss = new WebSocketServer({ noServer: true, maxPayload: this.#o.maxPayload, perMessageDeflate: false });
      // Plain HTTP requests get no answer but a close; only the upgrade is served.
      const server = http.createServer((_req, res) => { res.writeHead(426, { Connection: 'close' }); res.end(); });
      server.headersTimeout = this.#limits.upgradeTimeoutMs;
      server.requestTimeout = this.#limits.upgradeTimeoutMs;
      server.maxHeadersCount = 32;
      server.on('connection', (socket: Socket) => this.#admit(socket));
      server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
        if (!this.#inbound.has(socket)) return void socket.destroy();
        wss.handleUpgrade(req, socket, head, (ws) => {
          (socket as Socket & { [UPGRADED]?: () => void })[UPGRADED]?.();
          this.#track(ws);
          onConn(new WsConn(ws, `${req.socket.remoteAddress}:${req.socket.remotePort}`, true));
        });
      });
      server.on('clientError', (_e, socket) => socket.destroy());
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        server.on('error', () => { /* per-connection errors surface on sockets */ });
        const a = server.address();
        resolve(!a || typeof a === 'string' ? { host, port } : { host: a.address, port: a.port });
      });
      this.#server = wss;
      this.#http = server;
    });
  }

  dial(url: string, timeoutMs: number): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, {
        maxPayload: this.#o.maxPayload, perMessageDeflate: false, handshakeTimeout: timeoutMs,
        ...(this.#o.localAddress ? { localAddress: this.#o.localAddress } : {}),
      });
      const fail = (e: Error) => { ws.terminate(); reject(e); };
      ws.once('error', fail);
      // The Conn (and its listeners) must exist before 'open' returns control to ws.
      const conn = new WsConn(ws, url.replace(/^wss?:\/\//, ''), false);
      ws.once('open', () => {
        ws.off('error', fail);
        this.#track(ws);
        resolve(conn);
      });
    });
  }

  async close(): Promise<void> {
    if (this.#pinger) clearInterval(this.#pinger);
    for (const s of this.#sockets) s.terminate();
    for (const s of this.#inbound) s.destroy();
    this.#server?.close();
    await new Promise<void>((r) => (this.#http ? this.#http.close(() => r()) : r()));
  }
}
