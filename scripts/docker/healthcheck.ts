/**
 * Container health check through JSON-RPC: the image's HEALTHCHECK and the Kubernetes readiness probe.
 *
 *   node dist/scripts/docker/healthcheck.js [--ready] [--url http://HOST:PORT/] [--timeout-ms N]
 *
 * It calls `getHealth` on the node's RPC port. Exit 0 when the node answers (and, with --ready, when its status
 * is "ok": not syncing and, if P2P runs, with at least one peer); exit 1 otherwise, with the reason on stderr.
 *
 * Where the RPC port is: --url, else $MESHLEDGER_RPC_URL, else the `--rpc HOST:PORT` of the container's main
 * process (/proc/1/cmdline, which is the node when the image's ENTRYPOINT runs it), else 127.0.0.1:8645. So one
 * health check serves every node of a compose file or a StatefulSet, whatever port each was given. A wildcard
 * listen address (0.0.0.0, ::) is asked on loopback.
 *
 * This file imports nothing from src/: it depends only on the node's JSON-RPC contract.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

export const DEFAULT_RPC_URL = 'http://127.0.0.1:8645/';

/** The `--rpc` value of a node command line (`--rpc H:P` or `--rpc=H:P`), or undefined. */
export function rpcFlag(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--rpc') return argv[i + 1];
    if (a.startsWith('--rpc=')) return a.slice('--rpc='.length);
  }
  return undefined;
}

/** The URL to ask for a node listening on HOST:PORT: wildcard hosts become loopback, IPv6 gets brackets. */
export function urlForListen(hostPort: string): string {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(hostPort.trim());
  if (!m) throw new Error(`cannot read an RPC address from "${hostPort}" (expected HOST:PORT)`);
  let host = m[1]!;
  if (host === '' || host === '0.0.0.0') host = '127.0.0.1';
  else if (host === '::') host = '[::1]';
  else if (host.includes(':')) host = `[${host}]`;
  return `http://${host}:${m[2]}/`;
}

/** Resolve where to ask, in the order the header describes. `cmdline` is the NUL-separated /proc/1/cmdline. */
export function resolveRpcUrl(opts: { url?: string | undefined; env?: string | undefined; cmdline?: string | undefined }): string {
  if (opts.url) return opts.url;
  if (opts.env) return opts.env;
  if (opts.cmdline) {
    const flag = rpcFlag(opts.cmdline.split('\0').filter(Boolean));
    if (flag !== undefined) return urlForListen(flag);
  }
  return DEFAULT_RPC_URL;
}

export interface HealthVerdict {
  ok: boolean;
  reason: string;
}

/** Ask `getHealth` at `url`; with `ready`, only status "ok" passes. Never throws: failures are verdicts. */
export async function checkHealth(url: string, ready: boolean, timeoutMs: number): Promise<HealthVerdict> {
  let body: unknown;
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'getHealth', params: [] }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (res.status !== 200) return { ok: false, reason: `${url} answered HTTP ${res.status}` };
    body = await res.json();
  } catch (e) {
    return { ok: false, reason: `${url}: ${(e as Error).message}` };
  }
  const result = (body as { result?: { status?: unknown; height?: unknown; peers?: unknown } } | null)?.result;
  if (!result || typeof result.status !== 'string') return { ok: false, reason: `getHealth gave no status: ${JSON.stringify(body)}` };
  const summary = `status ${result.status}, height ${String(result.height)}, peers ${String(result.peers)}`;
  if (ready && result.status !== 'ok') return { ok: false, reason: `not ready: ${summary}` };
  return { ok: true, reason: summary };
}

function readCmdline(): string | undefined {
  try {
    return readFileSync('/proc/1/cmdline', 'utf8');
  } catch {
    return undefined;
  }
}

async function main(argv: string[]): Promise<number> {
  let url: string | undefined;
  let ready = false;
  let timeoutMs = 4000;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--ready') ready = true;
    else if (a === '--url') url = argv[++i];
    else if (a === '--timeout-ms') timeoutMs = Number(argv[++i]);
    else {
      console.error(`healthcheck: unknown argument ${a}\nusage: healthcheck.js [--ready] [--url URL] [--timeout-ms N]`);
      return 2;
    }
  }
  const target = resolveRpcUrl({ url, env: process.env.MESHLEDGER_RPC_URL, cmdline: readCmdline() });
  const verdict = await checkHealth(target, ready, timeoutMs);
  (verdict.ok ? console.log : console.error)(`healthcheck: ${verdict.reason}`);
  return verdict.ok ? 0 : 1;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
}
