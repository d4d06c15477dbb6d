/**
 * The Kubernetes init Job's program: create the network's genesis.json once and publish it as an immutable
 * ConfigMap that every validator and observer pod mounts.
 *
 *   node dist/scripts/docker/publish-genesis.js --validators ml1…,ml1… [--alloc ADDR=AMOUNT,…] [--chain-id ID]
 *        [--slot-ms N] [--configmap genesis] [--namespace NS] [--api URL] [--token-file F] [--ca-file F]
 *
 * The genesis inputs may come from the environment instead (GENESIS_VALIDATORS, GENESIS_ALLOC, GENESIS_CHAIN_ID,
 * GENESIS_SLOT_MS), as the Job passes them from the `genesis-params` ConfigMap with envFrom; a flag wins.
 *
 * Steps: GET the ConfigMap; if it exists, the network already has its genesis and nothing is done (a second
 * genesis would be a different chain, with another genesis time). Otherwise run `meshledger genesis` with the
 * given validator addresses (public addresses only: this Job never sees a private key) and POST the result. A
 * 409 on POST means another run published first, which is success too. Exit 0 on success, 1 on failure.
 *
 * Inside a pod the API address, token, CA and namespace come from the service account (the defaults); the
 * flags exist so the program can be run against a test server. Imports nothing from src/: it drives the CLI.
 */
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import http from 'node:http';
import https from 'node:https';

const SA = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface PublishOptions {
  validators: string[];
  alloc: string[];
  chainId?: string | undefined;
  slotMs?: string | undefined;
  configMap: string;
  namespace: string;
  api: string;
  token: string;
  ca?: string | undefined;
  /** The meshledger launcher (bin/meshledger.js). */
  cli: string;
  log: (line: string) => void;
}

interface ApiReply {
  status: number;
  body: string;
}

function apiRequest(o: PublishOptions, method: string, path: string, body?: unknown): Promise<ApiReply> {
  const url = new URL(path, o.api);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(url, {
      method,
      ca: o.ca,
      timeout: 15_000,
      headers: {
        authorization: `Bearer ${o.token}`,
        accept: 'application/json',
        ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
      },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url.href} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** Build genesis.json with the CLI, in a temporary folder; returns its text. */
function buildGenesis(o: PublishOptions): string {
  const dir = mkdtempSync(join(tmpdir(), 'genesis-'));
  try {
    const out = join(dir, 'genesis.json');
    const args = [o.cli, 'genesis', '--validators', o.validators.join(','), '--out', out];
    for (const a of o.alloc) args.push('--alloc', a);
    if (o.chainId) args.push('--chain-id', o.chainId);
    if (o.slotMs) args.push('--slot-ms', o.slotMs);
    try {
      o.log(execFileSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim());
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`meshledger genesis failed: ${(err.stderr || err.message).trim()}`);
    }
    return readFileSync(out, 'utf8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Publish genesis unless it is already published. Resolves to what happened; rejects on any other outcome. */
export async function publishGenesis(o: PublishOptions): Promise<'exists' | 'created' | 'lost-race'> {
  if (o.validators.length === 0) throw new Error('--validators is empty: list the validators\' ml1… addresses');
  const base = `/api/v1/namespaces/${encodeURIComponent(o.namespace)}/configmaps`;
  const got = await apiRequest(o, 'GET', `${base}/${encodeURIComponent(o.configMap)}`);
  if (got.status === 200) {
    o.log(`configmap ${o.namespace}/${o.configMap} exists: genesis is already published, nothing to do`);
    return 'exists';
  }
  if (got.status !== 404) throw new Error(`GET configmap ${o.configMap}: HTTP ${got.status} ${got.body.slice(0, 300)}`);

  const genesis = buildGenesis(o);
  const created = await apiRequest(o, 'POST', base, {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: o.configMap, labels: { 'app.kubernetes.io/name': 'meshledger', 'app.kubernetes.io/component': 'genesis' } },
    immutable: true,
    data: { 'genesis.json': genesis },
  });
  if (created.status === 201 || created.status === 200) {
    o.log(`published configmap ${o.namespace}/${o.configMap}`);
    return 'created';
  }
  if (created.status === 409) {
    o.log(`configmap ${o.namespace}/${o.configMap} was created by another run first; keeping that one`);
    return 'lost-race';
  }
  throw new Error(`POST configmap ${o.configMap}: HTTP ${created.status} ${created.body.slice(0, 300)}`);
}

/** Split a comma list, dropping empty items (an unset env var expands to ""). */
function list(v: string | undefined): string[] {
  return (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export function parseArgs(argv: string[], env: NodeJS.ProcessEnv): PublishOptions {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--') || i + 1 >= argv.length) throw new Error(`unexpected argument ${a}`);
    flags.set(a.slice(2), argv[++i]!);
  }
  const known = ['validators', 'alloc', 'chain-id', 'slot-ms', 'configmap', 'namespace', 'api', 'token-file', 'ca-file', 'cli'];
  for (const k of flags.keys()) if (!known.includes(k)) throw new Error(`unknown flag --${k}`);
  const host = env.KUBERNETES_SERVICE_HOST;
  const api = flags.get('api') ?? (host ? `https://${host.includes(':') ? `[${host}]` : host}:${env.KUBERNETES_SERVICE_PORT ?? '443'}` : undefined);
  if (!api) throw new Error('no --api and no KUBERNETES_SERVICE_HOST: not running in a pod?');
  const namespace = flags.get('namespace') ?? readIfExists(`${SA}/namespace`)?.trim();
  if (!namespace) throw new Error(`no --namespace and no ${SA}/namespace`);
  const token = readIfExists(flags.get('token-file') ?? `${SA}/token`)?.trim();
  if (!token) throw new Error('no service account token (mount one, or give --token-file)');
  const here = dirname(fileURLToPath(import.meta.url)); // dist/scripts/docker
  return {
    validators: list(flags.get('validators') ?? env.GENESIS_VALIDATORS),
    alloc: list(flags.get('alloc') ?? env.GENESIS_ALLOC),
    chainId: (flags.get('chain-id') ?? env.GENESIS_CHAIN_ID) || undefined,
    slotMs: (flags.get('slot-ms') ?? env.GENESIS_SLOT_MS) || undefined,
    configMap: flags.get('configmap') ?? 'genesis',
    namespace, api, token,
    ca: readIfExists(flags.get('ca-file') ?? `${SA}/ca.crt`),
    cli: flags.get('cli') ?? join(here, '..', '..', '..', 'bin', 'meshledger.js'),
    log: (line) => console.log(`publish-genesis: ${line}`),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  (async () => {
    try {
      await publishGenesis(parseArgs(process.argv.slice(2), process.env));
    } catch (e) {
      console.error(`publish-genesis: ${(e as Error).message}`);
      process.exitCode = 1;
    }
  })();
}
