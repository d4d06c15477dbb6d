/**
 * A userspace TCP proxy that a test controls, for partition and latency experiments with REAL node
 * processes on loopback (127.0.0.0/8 only).
 *
 * Layout for `n` nodes (i = 0 … n-1):
 *   - node i listens for peers on its own loopback IP 127.0.0.(ipBase+i) at a real port  (`--p2p`, see p2pArg)
 *     and, because a node bound to a specific IPv4 also DIALS FROM it, every connection it opens carries
 *     that source address;
 *   - the proxy for node i listens on 127.0.0.1:<proxyPort_i>; node i advertises it (`--advertise`,
 *     see url) and bootnodes point at proxy URLs, so every peer reaches node i only through its proxy;
 *   - the proxy identifies the CONNECTING node by the source IP of the incoming TCP connection and
 *     forwards to node i, dialing from that same source IP (so node i's logs show who it really is).
 *
 * partition([[0,1,2],[3,4]]) refuses (accept + reset) every new connection between nodes of different
 * groups and cuts (destroys both sockets of) every existing one; heal() lifts it. A node left out of
 * every group is isolated from all the others. Connections from sources that are not nodes (e.g. a test
 * client on 127.0.0.1) are always forwarded.
 *
 * setDelay(a, b, ms) delays every chunk travelling between nodes a and b (both directions) by `ms`,
 * preserving order (latency injection); setDelay(a, b, 0) removes it.
 */
import net from 'node:net';
import { resetSocket } from './sockreset.js';

export interface ProxiedNode {
  index: number;
  /** The node's own loopback IP (listen and dial source). */
  ip: string;
  /** The node's real P2P port on `ip`. */
  port: number;
  /** `--p2p` value for the node: "IP:PORT". */
  p2pArg: string;
  /** Where its proxy listens (127.0.0.1). */
  proxyPort: number;
  /** ws:// URL of the node's proxy: what it advertises and what bootnodes should list. */
  url: string;
}

export interface LinkStats {
  accepted: number;
  refused: number;
  cut: number;
  bytes: number;
}

interface Link {
  from: number; // -1: not a node
  to: number;
  client: net.Socket;
  upstream: net.Socket;
}

const PROXY_HOST = '127.0.0.1';

/** Bind port 0 on `host`, read the port, release it. */
function freePortOn(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.once('error', reject);
    s.listen(0, host, () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** Whether this machine lets us bind (and dial from) 127.0.0.x for x ≠ 1 (Linux: all of 127/8 is loopback). */
export async function canBindLoopbackAlias(ip = '127.0.0.20'): Promise<boolean> {
  try {
    const port = await freePortOn(ip);
    return port > 0;
  } catch {
    return false;
  }
}

export class NetProxy {
  readonly nodes: ProxiedNode[];
  readonly ipBase: number;
  readonly #servers: net.Server[];
  readonly #links = new Set<Link>();
  #groupOf: Map<number, number> | undefined;
  readonly #delay = new Map<string, number>();
  readonly #stats = new Map<string, LinkStats>();
  #closed = false;

  private constructor(nodes: ProxiedNode[], servers: net.Server[], ipBase: number) {
    this.nodes = nodes;
    this.#servers = servers;
    this.ipBase = ipBase;
  }

  /**
   * Reserve addresses and start one proxy listener per node. The nodes are started afterwards by the
   * test with `--p2p node.p2pArg --advertise node.url` and bootnodes from `urls()`.
   */
  static async create(n: number, o: { ipBase?: number } = {}): Promise<NetProxy> {
    const ipBase = o.ipBase ?? 20;
    if (ipBase < 2 || ipBase + n > 254) throw new Error(`ipBase ${ipBase} with ${n} nodes leaves 127.0.0.2–254`);
    const nodes: ProxiedNode[] = [];
    const servers: net.Server[] = [];
    const proxy = new NetProxy(nodes, servers, ipBase);
    try {
      for (let i = 0; i < n; i++) {
        const ip = `127.0.0.${ipBase + i}`;
        const port = await freePortOn(ip);
        const srv = net.createServer({ noDelay: true }, (c) => proxy.#onConnection(i, c));
        srv.on('error', () => { /* per-connection errors are handled on sockets */ });
        servers.push(srv);
        const proxyPort = await new Promise<number>((resolve, reject) => {
          srv.once('error', reject);
          srv.listen(0, PROXY_HOST, () => {
            srv.off('error', reject);
            resolve((srv.address() as net.AddressInfo).port);
          });
        });
        nodes.push({ index: i, ip, port, p2pArg: `${ip}:${port}`, proxyPort, url: `ws://${PROXY_HOST}:${proxyPort}` });
      }
    } catch (e) {
      await proxy.close();
      throw e;
    }
    return proxy;
  }

  /**
   * Pick a new real port for node i (its proxy URL stays the same): for retrying a node start whose port
   * was taken between reservation and bind.
   */
  async repick(i: number): Promise<ProxiedNode> {
    const n = this.nodes[i]!;
    n.port = await freePortOn(n.ip);
    n.p2pArg = `${n.ip}:${n.port}`;
    return n;
  }

  /** Proxy URLs of the given nodes (default: all). */
  urls(indices: number[] = this.nodes.map((n) => n.index)): string[] {
    return indices.map((i) => this.nodes[i]!.url);
  }

  /** The node index a source IP belongs to, or -1. */
  indexOfIp(ip: string): number {
    const m = /^(?:::ffff:)?127\.0\.0\.(\d{1,3})$/.exec(ip);
    if (!m) return -1;
    const i = Number(m[1]) - this.ipBase;
    return i >= 0 && i < this.nodes.length ? i : -1;
  }

  /** Cut the network into `groups`; nodes in no group are isolated. Existing cross-group connections are destroyed. */
  partition(groups: number[][]): void {
    const g = new Map<number, number>();
    groups.forEach((grp, gi) => {
      for (const i of grp) {
        if (!Number.isInteger(i) || i < 0 || i >= this.nodes.length) throw new Error(`partition: no node ${i}`);
        if (g.has(i)) throw new Error(`partition: node ${i} is in two groups`);
        g.set(i, gi);
      }
    });
    this.#groupOf = g;
    for (const l of [...this.#links]) {
      if (!this.#allowed(l.from, l.to)) {
        this.#stat(l.from, l.to).cut++;
        this.#destroy(l);
      }
    }
  }

  heal(): void {
    this.#groupOf = undefined;
  }

  get partitioned(): boolean { return this.#groupOf !== undefined; }

  /** Delay every chunk between nodes a and b (both directions) by `ms` (0 removes the delay). */
  setDelay(a: number, b: number, ms: number): void {
    if (ms > 0) this.#delay.set(key(a, b), ms);
    else this.#delay.delete(key(a, b));
  }

  /** Delay every link between any two nodes by `ms`. */
  setDelayAll(ms: number): void {
    for (let a = 0; a < this.nodes.length; a++) for (let b = a + 1; b < this.nodes.length; b++) this.setDelay(a, b, ms);
  }

  /** Counters per unordered node pair ("a-b", a < b; "ext-b" for non-node sources). */
  stats(): Record<string, LinkStats> {
    return Object.fromEntries([...this.#stats].map(([k, v]) => [k, { ...v }]));
  }

  /** Currently open proxied connections, as [from, to] node indices (-1 = not a node). */
  openLinks(): [number, number][] {
    return [...this.#links].map((l) => [l.from, l.to]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const l of [...this.#links]) this.#destroy(l);
    await Promise.all(this.#servers.map((s) => new Promise<void>((r) => (s.listening ? s.close(() => r()) : r()))));
  }

  // ------------------------------------------------------------------ internals

  #allowed(from: number, to: number): boolean {
    if (!this.#groupOf || from < 0 || to < 0) return true;
    const a = this.#groupOf.get(from);
    const b = this.#groupOf.get(to);
    return a !== undefined && a === b;
  }

  #stat(a: number, b: number): LinkStats {
    const k = a < 0 || b < 0 ? `ext-${Math.max(a, b)}` : key(a, b);
    let s = this.#stats.get(k);
    if (!s) this.#stats.set(k, (s = { accepted: 0, refused: 0, cut: 0, bytes: 0 }));
    return s;
  }

  #destroy(l: Link): void {
    this.#links.delete(l);
    for (const s of [l.client, l.upstream]) resetSocket(s);
  }

  #onConnection(to: number, client: net.Socket): void {
    client.on('error', () => { /* reset by peer etc.: handled by close */ });
    const from = this.indexOfIp(client.remoteAddress ?? '');
    if (this.#closed || !this.#allowed(from, to)) {
      this.#stat(from, to).refused++;
      resetSocket(client);
      return;
    }
    const target = this.nodes[to]!;
    const upstream = net.connect({
      host: target.ip, port: target.port, noDelay: true,
      // Dial from the source node's own IP, so the target sees who it is (and per-IP limits stay per node).
      ...(from >= 0 ? { localAddress: this.nodes[from]!.ip } : {}),
    });
    upstream.on('error', () => { /* refused / reset: handled by close */ });
    const link: Link = { from, to, client, upstream };
    this.#links.add(link);
    this.#stat(from, to).accepted++;
    client.pause();
    upstream.once('connect', () => { client.resume(); });
    this.#pump(link, client, upstream);
    this.#pump(link, upstream, client);
    const done = () => { if (this.#links.has(link)) this.#destroy(link); };
    client.once('close', done);
    upstream.once('close', done);
  }

  /** Copy src → dst with back-pressure, delaying chunks when the link has a delay. */
  #pump(link: Link, src: net.Socket, dst: net.Socket): void {
    const queue: { at: number; chunk: Buffer | null }[] = [];
    let timer: NodeJS.Timeout | undefined;
    const stat = this.#stat(link.from, link.to);
    const write = (chunk: Buffer | null) => {
      if (dst.destroyed) return;
      if (chunk === null) { dst.end(); return; }
      stat.bytes += chunk.length;
      if (!dst.write(chunk)) {
        src.pause();
        dst.once('drain', () => src.resume());
      }
    };
    const flush = () => {
      timer = undefined;
      const now = Date.now();
      while (queue.length && queue[0]!.at <= now) write(queue.shift()!.chunk);
      if (queue.length) timer = setTimeout(flush, Math.max(1, queue[0]!.at - now));
    };
    const push = (chunk: Buffer | null) => {
      const d = link.from >= 0 ? this.#delay.get(key(link.from, link.to)) ?? 0 : 0;
      if (d <= 0 && queue.length === 0) return write(chunk);
      queue.push({ at: Date.now() + d, chunk });
      if (!timer) timer = setTimeout(flush, Math.max(1, queue[0]!.at - Date.now()));
    };
    src.on('data', (c: Buffer) => push(c));
    src.on('end', () => push(null));
    src.once('close', () => { if (timer) clearTimeout(timer); });
  }
}

function key(a: number, b: number): string {
  return a < b ? `${a}-${b}` : `${b}-${a}`;
}
