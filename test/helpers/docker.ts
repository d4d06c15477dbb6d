/**
 * Docker for the container tests: find a running engine or start one, build the images, and derive from
 * docker-compose.yml a file that runs the same services on host networking.
 *
 * - openEngine(): uses the engine `docker info` reaches; otherwise, as root with Debian's `dockerd` installed,
 *   starts one with no default bridge and no iptables/forwarding changes (`--bridge=none --iptables=false
 *   --ip-forward=false --ip-masq=false`), so the engine adds no interface or address to the machine. Its
 *   stop() stops only an engine it started. Where no engine can run, it returns the reason, for a skip.
 * - hostNetworkCompose(): the user's compose file with every node on `network_mode: host` and its own
 *   127.0.0.1 ports (published ports dropped, init on `network_mode: none`), so containers touch no address
 *   outside 127.0.0.0/8; optionally with a low CPU weight, so the nodes yield to tests running beside them.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';

export interface Engine {
  /** True when this process started dockerd (and stop() will stop it). */
  started: boolean;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Run a command; throw with its output when it fails. Returns stdout. */
export function run(cmd: string, args: string[], o: { cwd?: string; timeoutMs?: number; input?: string } = {}): string {
  const r = spawnSync(cmd, args, { cwd: o.cwd, encoding: 'utf8', timeout: o.timeoutMs ?? 10 * 60_000, input: o.input, maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}\n${(r.stdout ?? '').slice(-3000)}\n${(r.stderr ?? '').slice(-3000)}`);
  return r.stdout;
}

/** run() without blocking the event loop: for commands that talk to servers in this process. */
export function runAsync(cmd: string, args: string[], o: { timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: o.timeoutMs ?? 10 * 60_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stdout.slice(-3000)}\n${stderr.slice(-3000)}`));
      else resolve(stdout);
    });
  });
}

/** Like run(), but never throws: for cleanup. */
export function tryRun(cmd: string, args: string[], o: { cwd?: string; timeoutMs?: number } = {}): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { cwd: o.cwd, encoding: 'utf8', timeout: o.timeoutMs ?? 120_000 });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

function works(cmd: string, args: string[], timeoutMs = 15_000): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: timeoutMs });
  return r.status === 0;
}

function engineAnswers(): boolean {
  return works('docker', ['info', '--format', '{{.ServerVersion}}']);
}

/** An engine to use, or why there is none. */
export async function openEngine(logFile: string): Promise<{ engine: Engine } | { reason: string }> {
  if (!works('docker', ['--version'])) return { reason: 'no docker client on PATH (.ci/run installs Debian\'s docker.io)' };
  if (!works('docker-compose', ['version'])) return { reason: 'docker-compose is not installed (.ci/run installs Debian\'s docker-compose)' };
  if (engineAnswers()) return { engine: { started: false, stop: async () => {} } };
  const dockerd = ['/usr/sbin/dockerd', '/usr/bin/dockerd'].find((p) => existsSync(p))
    ?? spawnSync('sh', ['-c', 'command -v dockerd'], { encoding: 'utf8' }).stdout.trim();
  if (!dockerd) return { reason: 'no Docker engine answers and dockerd is not installed (.ci/run installs Debian\'s docker.io)' };
  if (process.getuid?.() !== 0) return { reason: 'no Docker engine answers, and starting dockerd needs root' };

  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(dockerd, ['--bridge=none', '--iptables=false', '--ip-forward=false', '--ip-masq=false'], {
      stdio: ['ignore', fd, fd],
      detached: true, // its own process group: a ^C to the test run does not reach it before cleanup does
    });
  } finally {
    closeSync(fd);
  }
  let exited: string | undefined;
  child.once('exit', (code, signal) => { exited = `dockerd exited (code ${code}, signal ${signal})`; });
  child.once('error', (e) => { exited = `dockerd could not start: ${e.message}`; });
  const stop = async (): Promise<void> => {
    if (exited !== undefined || child.pid === undefined) return;
    child.kill('SIGTERM');
    for (let i = 0; i < 300 && exited === undefined; i++) await sleep(100);
    if (exited === undefined) child.kill('SIGKILL');
  };
  const t0 = Date.now();
  while (Date.now() - t0 < 60_000) {
    if (exited !== undefined) break;
    if (engineAnswers()) return { engine: { started: true, stop } };
    await sleep(500);
  }
  await stop();
  const tail = readFileSync(logFile, 'utf8').trim().split('\n').slice(-4).join(' | ');
  return { reason: `dockerd did not come up (${exited ?? 'no answer within 60 s'}): ${tail}` };
}

export interface NodePorts {
  p2p: number;
  rpc: number;
}

type ComposeService = Record<string, unknown> & { command?: unknown; ports?: unknown; build?: unknown };

/** Replace the value after each of `flags` in a command list; every flag must be present. */
export function setFlags(command: readonly string[], flags: Record<string, string>): string[] {
  const out = [...command];
  for (const [flag, value] of Object.entries(flags)) {
    const i = out.indexOf(flag);
    if (i < 0 || i + 1 >= out.length) throw new Error(`command has no ${flag} to replace: ${out.join(' ')}`);
    out[i + 1] = value;
  }
  return out;
}

/**
 * docker-compose.yml rewritten for host networking: `nodes` maps each node service to its 127.0.0.1 ports;
 * each node listens on its own ports, advertises them, and dials `bootnode` (a service name of `nodes`).
 * Every other setting (volumes, healthchecks, depends_on, restart, the init job) stays as the user has it.
 */
export function hostNetworkCompose(composeYaml: string, o: { image: string; nodes: Map<string, NodePorts>; bootnode: string; cpuShares?: number }): Record<string, unknown> {
  const doc = parse(composeYaml, { merge: true }) as { services: Record<string, ComposeService>; networks?: unknown };
  const boot = o.nodes.get(o.bootnode);
  if (!boot) throw new Error(`bootnode ${o.bootnode} is not a node`);
  const services: Record<string, ComposeService> = {};
  for (const [name, svc] of Object.entries(doc.services)) {
    const s: ComposeService = { ...svc, image: o.image, ...(o.cpuShares !== undefined ? { cpu_shares: o.cpuShares } : {}) };
    delete s.build;
    delete s.ports;
    delete s.networks;
    for (const k of Object.keys(s)) if (k.startsWith('x-')) delete s[k];
    const ports = o.nodes.get(name);
    if (ports) {
      if (!Array.isArray(s.command)) throw new Error(`service ${name} has no command list`);
      s.command = setFlags(s.command as string[], {
        '--p2p': `127.0.0.1:${ports.p2p}`,
        '--advertise': `ws://127.0.0.1:${ports.p2p}`,
        '--bootnodes': `ws://127.0.0.1:${boot.p2p}`,
        '--rpc': `127.0.0.1:${ports.rpc}`,
      });
      s.network_mode = 'host';
    } else {
      s.network_mode = 'none';
    }
    services[name] = s;
  }
  for (const name of o.nodes.keys()) if (!services[name]) throw new Error(`compose file has no service ${name}`);
  const out: Record<string, unknown> = { ...doc, services };
  delete out.networks;
  for (const k of Object.keys(out)) if (k.startsWith('x-')) delete out[k];
  return out;
}

/**
 * Remove what earlier runs of a test left behind when they were killed before their cleanup: containers and
 * volumes of compose projects, and images tagged, whose names start with `prefix`, except `keep`'s own.
 * Returns what was removed.
 */
export function sweepStale(prefix: string, keep: string): string[] {
  const removed: string[] = [];
  const lines = (args: string[]) => tryRun('docker', args).out.split('\n').map((l) => l.trim()).filter(Boolean);
  const stale = (name: string) => name.startsWith(prefix) && name !== keep;
  for (const line of lines(['ps', '-a', '--format', '{{.ID}} {{.Label "com.docker.compose.project"}} {{.Names}}'])) {
    const [cid, project, name] = line.split(' ');
    if (stale(project ?? '') || stale(name ?? '')) { tryRun('docker', ['rm', '-f', '-v', cid!]); removed.push(`container ${name}`); }
  }
  for (const line of lines(['volume', 'ls', '--format', '{{.Name}} {{.Label "com.docker.compose.project"}}'])) {
    const [name, project] = line.split(' ');
    if (stale(project ?? '') || stale(name ?? '')) { tryRun('docker', ['volume', 'rm', '-f', name!]); removed.push(`volume ${name}`); }
  }
  for (const ref of lines(['images', '--format', '{{.Repository}}:{{.Tag}}'])) {
    if (stale(ref.split(':')[1] ?? '')) { tryRun('docker', ['rmi', '-f', ref]); removed.push(`image ${ref}`); }
  }
  return removed;
}
