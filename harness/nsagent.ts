/**
 * The per-host agent of the network-namespace topology (harness/netns.ts). netns.ts runs one per host
 * namespace as `ip netns exec <ns> node nsagent.js --agent '<config json>'`; it does nothing without `--agent`
 * (so `node --test dist/test/` may load it harmlessly).
 *
 * Inside its namespace it runs:
 *   - the FAULT PROXY in front of the host's node: it listens on the host's namespace address at the port the
 *     node advertises, and forwards each connection to the node's real P2P port. Every TCP connection between
 *     two nodes passes exactly one such proxy (the acceptor's), which knows both ends: the connecting host by
 *     the source address, itself as the target. It dials the node from 127.0.0.(srcBase + from), so the node's
 *     logs and per-IP limits still tell the peers apart. Per direction (from → to) it applies a delay plus a
 *     uniform jitter (order preserved, as TCP would), stalls (forwarding of every link touching a host held for
 *     N ms, then released in order), and resets (RST on both sockets of every link touching a host).
 *   - BRIDGES from Unix sockets (paths in the file system, so visible from the root namespace) to TCP addresses
 *     inside the namespace: how the test reaches the node's RPC and raw P2P port without any address outside
 *     127.0.0.0/8 in the root namespace.
 *
 * Control: JSON lines on stdin, each `{ id, op, … }`, answered by a JSON line `{ id, ok, … }` on stdout:
 *   delays { table: [from, to, ms, jitterMs][] }   replace the delay table (per direction)
 *   stall  { host, ms }                           hold every link touching `host` (−1: all links) for `ms`
 *   reset  { host }                               RST every link touching `host` (−1: all links)
 *   stats  {}                                     counters
 * The agent exits when its stdin closes (its parent is gone).
 */
import net from 'node:net';
import { rmSync } from 'node:fs';
import readline from 'node:readline';
import { resetSocket } from './sockreset.js';

export interface AgentConfig {
  index: number;
  /** Namespace address of every host, by host index. */
  hosts: string[];
  /** Where the fault proxy listens (this host's address and advertised port). */
  listen: { host: string; port: number };
  /** The node's real P2P address. */
  target: { host: string; port: number };
  /** Upstream connections from host `from` are dialed from 127.0.0.(srcBase + from). */
  srcBase: number;
  /** Unix socket path → TCP address inside the namespace. */
  bridges: { path: string; host: string; port: number }[];
}

interface Link { from: number; to: number; client: net.Socket; upstream: net.Socket; kick: (() => void)[] }

function main(cfg: AgentConfig): void {
  const links = new Set<Link>();
  const delays = new Map<string, { ms: number; jitter: number }>();
  const stallUntil = new Map<number, number>(); // host (−1 = all) → ms timestamp
  const stats = { accepted: 0, reset: 0, stalls: 0, bytes: 0, delayedChunks: 0 };
  const servers: net.Server[] = [];

  const hold = (a: number, b: number): number => Math.max(stallUntil.get(-1) ?? 0, stallUntil.get(a) ?? 0, stallUntil.get(b) ?? 0);
  const destroy = (l: Link): void => {
    links.delete(l);
    for (const s of [l.client, l.upstream]) resetSocket(s);
  };

  /** Copy src → dst for direction from → to with delay, jitter and stalls; back-pressure by pausing src. */
  const pump = (l: Link, src: net.Socket, dst: net.Socket, from: number, to: number): void => {
    const queue: { at: number; chunk: Buffer | null }[] = [];
    let timer: NodeJS.Timeout | undefined;
    let lastAt = 0;
    const write = (chunk: Buffer | null) => {
      if (dst.destroyed) return;
      if (chunk === null) { dst.end(); return; }
      stats.bytes += chunk.length;
      if (!dst.write(chunk)) { src.pause(); dst.once('drain', () => src.resume()); }
    };
    const flush = () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      const now = Date.now();
      const h = hold(from, to);
      if (h <= now) while (queue.length && queue[0]!.at <= now) write(queue.shift()!.chunk);
      if (queue.length) timer = setTimeout(flush, Math.max(1, Math.max(h, queue[0]!.at) - now));
    };
    l.kick.push(flush);
    src.on('data', (c: Buffer) => push(c));
    src.on('end', () => push(null));
    src.once('close', () => { if (timer) clearTimeout(timer); });
    function push(chunk: Buffer | null): void {
      const d = from >= 0 && to >= 0 ? delays.get(`${from}>${to}`) : undefined;
      const now = Date.now();
      if (!d && !queue.length && hold(from, to) <= now) return write(chunk);
      // Jitter never reorders: a chunk leaves no earlier than the one before it.
      const at = Math.max(lastAt, now + (d ? d.ms + Math.random() * d.jitter : 0));
      lastAt = at;
      if (d) stats.delayedChunks++;
      queue.push({ at, chunk });
      if (!timer) flush();
    }
  };

  const proxy = net.createServer({ noDelay: true }, (client) => {
    client.on('error', () => {});
    const ip = (client.remoteAddress ?? '').replace(/^::ffff:/, '');
    const from = cfg.hosts.indexOf(ip);
    const upstream = net.connect({
      host: cfg.target.host, port: cfg.target.port, noDelay: true,
      ...(from >= 0 ? { localAddress: `127.0.0.${cfg.srcBase + from}` } : {}),
    });
    upstream.on('error', () => {});
    const l: Link = { from, to: cfg.index, client, upstream, kick: [] };
    links.add(l);
    stats.accepted++;
    client.pause();
    upstream.once('connect', () => client.resume());
    pump(l, client, upstream, from, cfg.index);
    pump(l, upstream, client, cfg.index, from);
    const done = () => { if (links.has(l)) destroy(l); };
    client.once('close', done);
    upstream.once('close', done);
  });
  servers.push(proxy);

  for (const b of cfg.bridges) {
    try { rmSync(b.path, { force: true }); } catch { /* fresh path */ }
    const srv = net.createServer((c) => {
      const u = net.connect({ host: b.host, port: b.port });
      c.on('error', () => u.destroy());
      u.on('error', () => c.destroy());
      c.pipe(u);
      u.pipe(c);
    });
    servers.push(srv);
  }

  const reply = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');
  const listen = (srv: net.Server, where: string, ...args: unknown[]) => new Promise<void>((resolve) => {
    srv.once('error', (e) => { reply({ fatal: `listen ${where}: ${e.message}` }); process.exit(2); });
    (srv.listen as (...a: unknown[]) => void)(...args, () => resolve());
  });
  void Promise.all([
    listen(proxy, `${cfg.listen.host}:${cfg.listen.port}`, cfg.listen.port, cfg.listen.host),
    ...cfg.bridges.map((b, i) => listen(servers[i + 1]!, b.path, b.path)),
  ]).then(() => reply({ ready: true, pid: process.pid }));

  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    let m: { id?: number; op?: string; table?: [number, number, number, number][]; host?: number; ms?: number };
    try { m = JSON.parse(line); } catch { return; }
    try {
      switch (m.op) {
        case 'delays':
          delays.clear();
          for (const [a, b, ms, jitter] of m.table ?? []) if (ms > 0 || jitter > 0) delays.set(`${a}>${b}`, { ms, jitter });
          break;
        case 'stall': {
          const host = m.host ?? -1;
          stallUntil.set(host, Date.now() + (m.ms ?? 0));
          stats.stalls++;
          // Release in order when the stall ends: every pump re-checks then.
          setTimeout(() => { for (const l of links) for (const k of l.kick) k(); }, (m.ms ?? 0) + 1);
          break;
        }
        case 'reset': {
          const host = m.host ?? -1;
          for (const l of [...links]) if (host === -1 || l.from === host || l.to === host) { destroy(l); stats.reset++; }
          break;
        }
        case 'stats': break;
        default: throw new Error(`unknown op ${m.op}`);
      }
      reply({ id: m.id, ok: true, stats: { ...stats, open: links.size } });
    } catch (e) {
      reply({ id: m.id, ok: false, error: (e as Error).message });
    }
  });
  const quit = () => {
    for (const l of [...links]) destroy(l);
    for (const b of cfg.bridges) { try { rmSync(b.path, { force: true }); } catch { /* gone */ } }
    process.exit(0);
  };
  rl.on('close', quit);
  process.on('SIGTERM', quit);
}

if (process.argv[2] === '--agent') main(JSON.parse(process.argv[3]!) as AgentConfig);
