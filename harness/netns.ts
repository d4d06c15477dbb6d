/**
 * Network faults on one machine with Linux network namespaces (needs root and iproute2; see probeNetns).
 *
 * Topology for `n` hosts, all names unique per run (`mlns<pid>x<rand>-…`, so parallel runs never clash):
 *
 *   namespace <id>-hub     bridges br0 (the network) and br1 (the far side of a partition; br2… on demand)
 *   namespace <id>-h<i>    lo, and eth0 = one end of a veth pair whose other end, h<i>, is in the hub on br0;
 *                          eth0 has 10.77.0.(10+i)/24. Every address lives inside namespaces this file made;
 *                          the root namespace gets no interface, address or route.
 *
 * In host i run the node (`ip netns exec <ns> node …`, via proc.ts's `launcher`) and its agent
 * (nsagent.ts). The node listens for peers on 10.77.0.(10+i):30401 and advertises ws://10.77.0.(10+i):30400,
 * where the agent's fault proxy listens. Peers dial each other's fault proxies across the bridge, so
 *   - partition(groups) moves hosts' hub-side veth ends to br1 (br2…): a real L2 cut, packets are dropped and
 *     TCP connections hang or time out as on a broken network; heal() moves them back to br0;
 *   - rateLimit(i, kbit, dir) puts a `tbf` qdisc on host i's eth0 (upload), on h<i> in the hub (download), or
 *     both: a bandwidth cap, asymmetric when applied to one direction only (these kernels have no netem);
 *   - setDelay/slowHost/setLatencyAll (delay + jitter per direction), stall(i, ms) and reset(i) are applied
 *     by the userspace fault proxies (nsagent.ts), which every node-to-node connection passes exactly once.
 *
 * The test, in the root namespace, reaches node i's RPC at 127.0.0.1:<rpcPort> and its raw P2P port at
 * `wireUrl`: both are loopback listeners here that forward over a Unix socket to the agent, which connects
 * inside the namespace (the node's RPC listens on 127.0.0.1:<rpcPort> of ITS namespace: the same port
 * number, another network stack). So NodeProc.rpc, Harness.restart etc. work unchanged.
 *
 * Cleanup is always attempted: destroy() in finally/after hooks, and a synchronous sweep on process exit,
 * uncaught exceptions and SIGINT/SIGTERM/SIGHUP (kill what runs in our namespaces, delete them). A run that
 * was SIGKILLed leaves its namespaces behind; the next create() deletes those whose creating pid is gone.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { AgentConfig } from './nsagent.js';
import { scaled, type GenesisInfo, type Harness, type NodeProc } from './proc.js';
import type { ClusterNodeSpec } from './p2pnet.js';

export const NETNS_PREFIX = 'mlns';
const AGENT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'nsagent.js');
const SUBNET = '10.77.0';
const PROXY_PORT = 30400;
const NODE_PORT = 30401;
const SRC_BASE = 20;

function run(cmd: string, args: string[], o: { timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: o.timeoutMs ?? 15_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${(stderr || err.message).trim()}`));
      else resolve(stdout);
    });
  });
}
const ipc = (...args: string[]) => run('ip', args);

// ------------------------------------------------------------------------------------------------ probe

export type NetnsProbe = { ok: true } | { ok: false; why: string };

/**
 * Whether this process can build the topology: Linux, root, `ip` and `tc` present, and a throwaway namespace
 * with a veth pair and a bridge can be created (then it is deleted). `why` says what is missing.
 * MESHLEDGER_NETNS=0 makes it answer no (to exercise the fallback paths on a machine that could).
 */
export async function probeNetns(): Promise<NetnsProbe> {
  if (process.env.MESHLEDGER_NETNS === '0') return { ok: false, why: 'disabled by MESHLEDGER_NETNS=0' };
  if (process.platform !== 'linux') return { ok: false, why: `network namespaces need Linux (this is ${process.platform})` };
  const uid = process.getuid?.();
  if (uid !== 0) return { ok: false, why: `not root (uid ${uid}): creating network namespaces needs CAP_SYS_ADMIN` };
  for (const [cmd, args] of [['ip', ['-V']], ['tc', ['-V']]] as const) {
    try { await run(cmd, [...args]); } catch (e) {
      return { ok: false, why: `\`${cmd}\` (iproute2) is not usable: ${(e as Error).message.split('\n')[0]}` };
    }
  }
  const ns = `${NETNS_PREFIX}${process.pid}x${randomBytes(3).toString('hex')}-probe`;
  try {
    await ipc('netns', 'add', ns);
  } catch (e) {
    return { ok: false, why: `cannot create a network namespace: ${(e as Error).message}` };
  }
  try {
    await ipc('-n', ns, 'link', 'add', 'a0', 'type', 'veth', 'peer', 'name', 'b0');
    await ipc('-n', ns, 'link', 'add', 'br0', 'type', 'bridge');
    await ipc('-n', ns, 'link', 'set', 'b0', 'master', 'br0');
    return { ok: true };
  } catch (e) {
    return { ok: false, why: `network namespaces work but veth pairs or bridges do not: ${(e as Error).message}` };
  } finally {
    await ipc('netns', 'del', ns).catch(() => {});
  }
}

// ------------------------------------------------------------------------------------------------ cleanup registry

const live = new Set<NetnsTopology>();
let hooks = false;

function pidsIn(ns: string): number[] {
  try {
    return execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Kill everything running in `namespaces` and delete them (synchronous: usable in exit and signal handlers). */
function destroySync(namespaces: string[]): void {
  for (const ns of namespaces) for (const pid of pidsIn(ns)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  for (const ns of namespaces) {
    try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }); } catch { /* already gone */ }
  }
}

function installHooks(): void {
  if (hooks) return;
  hooks = true;
  const sweep = () => { for (const t of live) t.destroySync(); };
  process.once('exit', sweep);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      sweep();
      process.kill(process.pid, sig); // the default action, now that our handler is gone
    });
  }
}

/** Our namespaces (by name) left behind by runs whose process is gone (e.g. SIGKILLed): kill their processes, delete them. */
export function sweepStaleNamespaces(): string[] {
  let names: string[];
  try {
    names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
  } catch {
    return [];
  }
  const stale = names.filter((n) => {
    const m = new RegExp(`^${NETNS_PREFIX}(\\d+)x[0-9a-f]+-`).exec(n);
    if (!m) return false;
    try {
      process.kill(Number(m[1]), 0);
      return false; // its creator is alive
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'ESRCH';
    }
  });
  destroySync(stale);
  return stale;
}

// ------------------------------------------------------------------------------------------------ topology

export interface NsHost {
  index: number;
  /** The host's namespace. */
  ns: string;
  /** Its address inside the topology (eth0). */
  ip: string;
  /** `--p2p` for the node: the real listen address. */
  p2pArg: string;
  /** ws:// URL of the host's fault proxy: what the node advertises and what bootnodes list. */
  url: string;
  /** RPC port: 127.0.0.1 in the root namespace (a bridge) and 127.0.0.1 in the host's namespace (the node). */
  rpcPort: number;
  /** ws:// URL in the root namespace that reaches the node's real P2P port (no fault proxy): for raw wire clients. */
  wireUrl: string;
}

interface Agent { child: ChildProcess; pending: Map<number, (m: any) => void>; exited: Promise<void> }

export type Direction = 'up' | 'down' | 'both';

export class NetnsTopology {
  readonly id: string;
  readonly hub: string;
  readonly hosts: NsHost[] = [];
  readonly #agents: Agent[] = [];
  readonly #bridges: net.Server[] = [];
  readonly #rootConns = new Set<net.Socket>();
  readonly #delays = new Map<string, { ms: number; jitter: number }>();
  readonly #extraBridges = new Set<string>();
  readonly #rated = new Map<number, Direction>();
  readonly #namespaces: string[] = [];
  #seq = 0;
  #destroyed = false;

  private constructor(id: string) {
    this.id = id;
    this.hub = `${id}-hub`;
  }

  get namespaces(): string[] { return [...this.#namespaces]; }

  /** Build the topology and start one agent per host. `dir` holds the Unix sockets (keep its path short). */
  static async create(n: number, o: { dir: string }): Promise<NetnsTopology> {
    if (n < 1 || n > 200) throw new Error(`NetnsTopology: ${n} hosts`);
    sweepStaleNamespaces();
    installHooks();
    const t = new NetnsTopology(`${NETNS_PREFIX}${process.pid}x${randomBytes(2).toString('hex')}`);
    live.add(t);
    try {
      await t.#addNs(t.hub);
      for (const br of ['br0', 'br1']) await t.#bridge(br);
      for (let i = 0; i < n; i++) {
        const ns = `${t.id}-h${i}`;
        const ip = `${SUBNET}.${10 + i}`;
        await t.#addNs(ns);
        await ipc('-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `h${i}`, 'netns', t.hub);
        await ipc('-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0');
        await ipc('-n', ns, 'link', 'set', 'eth0', 'up');
        await ipc('-n', t.hub, 'link', 'set', `h${i}`, 'master', 'br0');
        await ipc('-n', t.hub, 'link', 'set', `h${i}`, 'up');
        const rpcSock = path.join(o.dir, `${t.id}-h${i}-rpc.sock`);
        const wireSock = path.join(o.dir, `${t.id}-h${i}-p2p.sock`);
        const rpcPort = await t.#rootBridge(rpcSock);
        const wirePort = await t.#rootBridge(wireSock);
        t.hosts.push({ index: i, ns, ip, p2pArg: `${ip}:${NODE_PORT}`, url: `ws://${ip}:${PROXY_PORT}`, rpcPort, wireUrl: `ws://127.0.0.1:${wirePort}` });
        t.#pendingBridges.push({ rpcSock, wireSock });
      }
      await Promise.all(t.hosts.map((h) => t.#startAgent(h)));
      return t;
    } catch (e) {
      await t.destroy();
      throw e;
    }
  }

  readonly #pendingBridges: { rpcSock: string; wireSock: string }[] = [];

  async #addNs(ns: string): Promise<void> {
    await ipc('netns', 'add', ns);
    this.#namespaces.push(ns);
    await ipc('-n', ns, 'link', 'set', 'lo', 'up');
  }

  async #bridge(name: string): Promise<void> {
    await ipc('-n', this.hub, 'link', 'add', name, 'type', 'bridge');
    await ipc('-n', this.hub, 'link', 'set', name, 'up');
  }

  /** A listener on 127.0.0.1 (root namespace) that forwards each connection to the Unix socket `sock`. */
  async #rootBridge(sock: string): Promise<number> {
    const srv = net.createServer((c) => {
      this.#rootConns.add(c);
      c.once('close', () => this.#rootConns.delete(c));
      const u = net.connect(sock);
      c.on('error', () => u.destroy());
      u.on('error', () => c.destroy());
      c.pipe(u);
      u.pipe(c);
    });
    this.#bridges.push(srv);
    return new Promise((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => resolve((srv.address() as net.AddressInfo).port));
    });
  }

  async #startAgent(h: NsHost): Promise<void> {
    const socks = this.#pendingBridges[h.index]!;
    const cfg: AgentConfig = {
      index: h.index, hosts: this.hosts.map((x) => x.ip), listen: { host: h.ip, port: PROXY_PORT },
      target: { host: h.ip, port: NODE_PORT }, srcBase: SRC_BASE,
      bridges: [{ path: socks.rpcSock, host: '127.0.0.1', port: h.rpcPort }, { path: socks.wireSock, host: h.ip, port: NODE_PORT }],
    };
    const child = spawn('ip', ['netns', 'exec', h.ns, process.execPath, AGENT, '--agent', JSON.stringify(cfg)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const agent: Agent = { child, pending: new Map(), exited: new Promise((r) => child.once('exit', () => r())) };
    this.#agents[h.index] = agent;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`agent of ${h.ns} not ready within 15 s`)), scaled(15_000));
      child.once('error', (e) => { clearTimeout(timer); reject(e); });
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`agent of ${h.ns} exited (${code})`)); });
      readline.createInterface({ input: child.stdout! }).on('line', (line) => {
        let m: any;
        try { m = JSON.parse(line); } catch { return; }
        if (m.ready) { clearTimeout(timer); resolve(); return; }
        if (m.fatal) { clearTimeout(timer); reject(new Error(`agent of ${h.ns}: ${m.fatal}`)); return; }
        const cb = agent.pending.get(m.id);
        if (cb) { agent.pending.delete(m.id); cb(m); }
      });
    });
    child.stdin!.on('error', () => {});
  }

  #call(i: number, op: Record<string, unknown>): Promise<any> {
    const a = this.#agents[i];
    if (!a || a.child.exitCode !== null || a.child.signalCode !== null) return Promise.reject(new Error(`agent ${i} is not running`));
    const id = ++this.#seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { a.pending.delete(id); reject(new Error(`agent ${i}: no answer to ${op.op}`)); }, scaled(10_000));
      a.pending.set(id, (m) => { clearTimeout(timer); if (m.ok) resolve(m); else reject(new Error(`agent ${i}: ${m.error}`)); });
      a.child.stdin!.write(JSON.stringify({ id, ...op }) + '\n');
    });
  }

  #broadcast(op: Record<string, unknown>): Promise<any[]> {
    return Promise.all(this.hosts.map((h) => this.#call(h.index, op)));
  }

  /** `ip netns exec <ns>`: the launcher for node i (StartNodeOptions.launcher). */
  launcher(i: number): string[] { return ['ip', 'netns', 'exec', this.hosts[i]!.ns]; }

  /** Fault-proxy URLs of the given hosts (default: all). */
  urls(indices: number[] = this.hosts.map((h) => h.index)): string[] { return indices.map((i) => this.hosts[i]!.url); }

  // ---------------------------------------------------------------- partitions (bridge moves)

  /** Group g's hosts go on bridge br<g> (group 0 stays on br0); hosts in no group are detached from every bridge. */
  async partition(groups: number[][]): Promise<void> {
    const where = new Map<number, number>();
    groups.forEach((g, gi) => {
      for (const i of g) {
        if (!this.hosts[i]) throw new Error(`partition: no host ${i}`);
        if (where.has(i)) throw new Error(`partition: host ${i} is in two groups`);
        where.set(i, gi);
      }
    });
    for (let gi = 2; gi < groups.length; gi++) {
      if (!this.#extraBridges.has(`br${gi}`)) { await this.#bridge(`br${gi}`); this.#extraBridges.add(`br${gi}`); }
    }
    await Promise.all(this.hosts.map((h) => {
      const g = where.get(h.index);
      return g === undefined ? ipc('-n', this.hub, 'link', 'set', `h${h.index}`, 'nomaster') : ipc('-n', this.hub, 'link', 'set', `h${h.index}`, 'master', `br${g}`);
    }));
  }

  /** Every host back on br0. */
  async heal(): Promise<void> {
    await Promise.all(this.hosts.map((h) => ipc('-n', this.hub, 'link', 'set', `h${h.index}`, 'master', 'br0')));
  }

  // ---------------------------------------------------------------- bandwidth (tbf)

  /**
   * Cap host i's bandwidth with a token bucket: 'up' = what it sends (qdisc on its eth0), 'down' = what it
   * receives (qdisc on h<i> in the hub), 'both'. Replaces an earlier cap of the same host.
   */
  async rateLimit(i: number, kbit: number, dir: Direction = 'both', o: { burstBytes?: number; latencyMs?: number } = {}): Promise<void> {
    await this.clearRate(i);
    const burst = String(o.burstBytes ?? Math.max(4096, Math.round((kbit * 1000) / 8 / 20)));
    const tbf = ['root', 'tbf', 'rate', `${kbit}kbit`, 'burst', burst, 'latency', `${o.latencyMs ?? 300}ms`];
    if (dir !== 'down') await run('tc', ['-n', this.hosts[i]!.ns, 'qdisc', 'replace', 'dev', 'eth0', ...tbf]);
    if (dir !== 'up') await run('tc', ['-n', this.hub, 'qdisc', 'replace', 'dev', `h${i}`, ...tbf]);
    this.#rated.set(i, dir);
  }

  /** Remove host i's caps (all hosts without an argument). */
  async clearRate(i?: number): Promise<void> {
    for (const h of i === undefined ? [...this.#rated.keys()] : [i]) {
      const dir = this.#rated.get(h);
      if (!dir) continue;
      if (dir !== 'down') await run('tc', ['-n', this.hosts[h]!.ns, 'qdisc', 'del', 'dev', 'eth0', 'root']).catch(() => {});
      if (dir !== 'up') await run('tc', ['-n', this.hub, 'qdisc', 'del', 'dev', `h${h}`, 'root']).catch(() => {});
      this.#rated.delete(h);
    }
  }

  /** Packet counters of the tbf qdisc(s) on host i ("sent … dropped …"), for reports. */
  async rateStats(i: number): Promise<string> {
    const out: string[] = [];
    const dir = this.#rated.get(i);
    if (dir && dir !== 'down') out.push('up: ' + /Sent [^\n]*/.exec(await run('tc', ['-s', '-n', this.hosts[i]!.ns, 'qdisc', 'show', 'dev', 'eth0']))?.[0]);
    if (dir && dir !== 'up') out.push('down: ' + /Sent [^\n]*/.exec(await run('tc', ['-s', '-n', this.hub, 'qdisc', 'show', 'dev', `h${i}`]))?.[0]);
    return out.join('; ');
  }

  // ---------------------------------------------------------------- userspace faults (agents)

  /** Delay data travelling from host `from` to host `to` by `ms` + uniform[0, jitterMs) (0, 0 removes it). */
  async setDelay(from: number, to: number, ms: number, jitterMs = 0): Promise<void> {
    if (ms > 0 || jitterMs > 0) this.#delays.set(`${from}>${to}`, { ms, jitter: jitterMs });
    else this.#delays.delete(`${from}>${to}`);
    await this.#pushDelays();
  }

  /** The same delay and jitter on every direction of every pair (0, 0 clears all delays). */
  async setLatencyAll(ms: number, jitterMs = 0): Promise<void> {
    this.#delays.clear();
    if (ms > 0 || jitterMs > 0) for (const a of this.hosts) for (const b of this.hosts) if (a !== b) this.#delays.set(`${a.index}>${b.index}`, { ms, jitter: jitterMs });
    await this.#pushDelays();
  }

  /** Asymmetric slowness: delay what host i sends ('up'), receives ('down') or both, leaving other pairs alone. */
  async slowHost(i: number, ms: number, jitterMs = 0, dir: Direction = 'up'): Promise<void> {
    for (const h of this.hosts) {
      if (h.index === i) continue;
      if (dir !== 'down') this.#delays.set(`${i}>${h.index}`, { ms, jitter: jitterMs });
      if (dir !== 'up') this.#delays.set(`${h.index}>${i}`, { ms, jitter: jitterMs });
    }
    await this.#pushDelays();
  }

  async clearDelays(): Promise<void> { this.#delays.clear(); await this.#pushDelays(); }

  async #pushDelays(): Promise<void> {
    const table = [...this.#delays].map(([k, v]) => { const [a, b] = k.split('>').map(Number); return [a, b, v.ms, v.jitter]; });
    await this.#broadcast({ op: 'delays', table });
  }

  /** Hold all traffic of every connection touching host i (−1: every connection) for `ms`, then release it in order. */
  async stall(i: number, ms: number): Promise<void> { await this.#broadcast({ op: 'stall', host: i, ms }); }

  /** Reset (RST both ends of) every connection touching host i (−1: all). Returns how many were reset. */
  async reset(i: number): Promise<number> {
    const before = await this.#broadcast({ op: 'stats' });
    const after = await this.#broadcast({ op: 'reset', host: i });
    return after.reduce((s, m, k) => s + m.stats.reset - before[k].stats.reset, 0);
  }

  /** Per-agent counters (accepted, reset, stalls, bytes, delayedChunks, open). */
  async stats(): Promise<Record<string, number>[]> { return (await this.#broadcast({ op: 'stats' })).map((m) => m.stats); }

  /** Lift every fault: heal, no caps, no delays. */
  async clearFaults(): Promise<void> {
    await this.heal();
    await this.clearRate();
    await this.clearDelays();
  }

  // ---------------------------------------------------------------- teardown

  /** Stop the agents, kill whatever still runs in our namespaces, delete them, close the bridges. Idempotent. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const a of this.#agents) a?.child.stdin?.end();
    await Promise.race([Promise.all(this.#agents.map((a) => a?.exited)), new Promise((r) => setTimeout(r, 2000).unref())]);
    for (const a of this.#agents) if (a && a.child.exitCode === null && a.child.signalCode === null) a.child.kill('SIGKILL');
    for (const ns of this.#namespaces) for (const pid of pidsIn(ns)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    for (const ns of [...this.#namespaces].reverse()) await ipc('netns', 'del', ns).catch(() => {});
    for (const c of this.#rootConns) c.destroy(); // e.g. idle keep-alive RPC connections
    await Promise.all(this.#bridges.map((s) => new Promise<void>((r) => (s.listening ? s.close(() => r()) : r()))));
    live.delete(this);
  }

  /** Synchronous last-resort cleanup (exit and signal handlers). */
  destroySync(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const a of this.#agents) { try { a?.child.kill('SIGKILL'); } catch { /* gone */ } }
    destroySync(this.#namespaces);
    live.delete(this);
  }
}

// ------------------------------------------------------------------------------------------------ cluster

/** Node processes in a NetnsTopology: node i runs in host i's namespace (the same surface as p2pnet's Cluster). */
export class NsCluster {
  readonly nodes: (NodeProc | undefined)[];
  constructor(readonly h: Harness, readonly topo: NetnsTopology, readonly genesis: GenesisInfo, readonly specs: ClusterNodeSpec[]) {
    if (specs.length > topo.hosts.length) throw new Error(`${specs.length} nodes for ${topo.hosts.length} hosts`);
    this.nodes = specs.map(() => undefined);
  }

  node(i: number): NodeProc {
    const n = this.nodes[i];
    if (!n) throw new Error(`node ${i} is not started`);
    return n;
  }

  async start(i: number): Promise<NodeProc> {
    const s = this.specs[i]!;
    const host = this.topo.hosts[i]!;
    const name = s.name ?? `n${i}`;
    const n = await this.h.startNode({
      name, genesis: this.genesis.file, key: s.key?.file, datadir: s.datadir ?? path.join(await this.h.dir(), `data-${name}`),
      logLevel: s.logLevel ?? 'info', bootnodes: this.topo.urls(s.bootnodes), rpcPort: host.rpcPort,
      extraArgs: ['--p2p', host.p2pArg, '--advertise', host.url], launcher: this.topo.launcher(i),
      readyTimeoutMs: scaled(60_000),
    });
    this.nodes[i] = n;
    return n;
  }

  startAll(indices: number[] = this.specs.map((_, i) => i)): Promise<NodeProc[]> {
    return Promise.all(indices.map((i) => this.start(i)));
  }
}
