/**
 * The `meshledger` command. Exit codes scripts can trust:
 *   0 success · 1 the command failed (bad file, database error, network error) · 2 usage error (bad flags)
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeAddress } from '../encoding/address.js';
import { DEFAULT_PARAMS, GenesisError, genesisFromJson } from '../ledger/genesis.js';
import { createLogger, type Level } from '../util/log.js';
import { packageRoot } from '../util/schemas.js';
import { KeyFileError, newKeyPair, readKeyFile, writeKeyFile } from '../crypto/keyfile.js';
import { buildGenesisJson, readGenesisFile, writeGenesisFile } from './genesisfile.js';
import { defaultVerifyThreads, MeshNode, StartupError, type HostPort, type RpcLimits } from './node.js';
import { runDevnet } from './devnet.js';
import { UsageError } from './usage.js';
import { ChainError } from '../chain/chain.js';
import { WALLET_SUMMARY, WALLET_USAGE, walletMain } from '../wallet/cli.js';

interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** A command with subcommands of its own (wallet): `run` gets the remaining argv unparsed, --help included. */
  rawArgs?: boolean;
  run(values: Record<string, unknown>, argv: string[]): Promise<number>;
}

const LOG_OPTS = {
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
} as const;

export const COMMANDS: Record<string, Command> = {
  keygen: {
    summary: 'create a new ed25519 key file (mode 0600) and print its address',
    usage: `meshledger keygen --out FILE [--json]

  --out FILE   where to write the key file (an existing file is kept as FILE.<time>.bak)
  --json       print {"address","publicKey","file"} as JSON`,
    options: { out: { type: 'string' }, json: { type: 'boolean' } },
    async run(v) {
      const out = required(v, 'out');
      const kp = newKeyPair();
      const backup = await writeKeyFile(out, kp);
      if (backup) console.error(`note: ${out} existed; the old key was moved to ${backup}`);
      if (v.json) console.log(JSON.stringify({ address: kp.address, publicKey: Buffer.from(kp.publicKey).toString('hex'), file: out }));
      else console.log(kp.address);
      return 0;
    },
  },

  genesis: {
    summary: 'write a genesis file for a new network',
    usage: `meshledger genesis --validators KEYFILE[,KEYFILE…] [--alloc ADDRESS=AMOUNT …] [--chain-id ID]
                   [--slot-ms N] [--genesis-time MS] [--min-fee N] [--decimals N] [--symbol SYM] --out FILE

  --validators   comma-separated validator key files (or addresses), in schedule order
  --alloc        initial balance, ADDRESS=AMOUNT in minor units (repeatable)
  --chain-id     network name (default meshledger-devnet)
  --slot-ms      slot duration in ms (default 1000)
  --genesis-time start of slot 0, ms since the Unix epoch (default: now)
  --min-fee      minimum fee in minor units (default ${DEFAULT_PARAMS.minFee})
  --decimals     display decimals of the unit (default ${DEFAULT_PARAMS.decimals}); --symbol (default ${DEFAULT_PARAMS.symbol})
  --out FILE     where to write genesis.json (an existing file is kept as FILE.<time>.bak)`,
    options: {
      validators: { type: 'string' }, alloc: { type: 'string', multiple: true }, 'chain-id': { type: 'string' },
      'slot-ms': { type: 'string' }, 'genesis-time': { type: 'string' }, 'min-fee': { type: 'string' },
      decimals: { type: 'string' }, symbol: { type: 'string' }, out: { type: 'string' },
    },
    async run(v) {
      const out = required(v, 'out');
      const validators: string[] = [];
      for (const item of required(v, 'validators').split(',').filter(Boolean)) {
        if (item.startsWith('ml1')) validators.push(checkAddress(item, '--validators'));
        else validators.push((await readKeyFile(item)).address);
      }
      const alloc = ((v.alloc as string[] | undefined) ?? []).map((a) => {
        const m = /^([^=]+)=(\d+)$/.exec(a);
        if (!m) throw new UsageError(`--alloc expects ADDRESS=AMOUNT (minor units), got "${a}"`);
        return { address: checkAddress(m[1]!, '--alloc'), amount: m[2]! };
      });
      const j = buildGenesisJson({
        chainId: (v['chain-id'] as string | undefined) ?? 'meshledger-devnet',
        genesisTime: v['genesis-time'] !== undefined ? intFlag(v, 'genesis-time', 0) : Date.now(),
        slotMs: v['slot-ms'] !== undefined ? intFlag(v, 'slot-ms', 10) : 1000,
        validators, alloc,
        minFee: (v['min-fee'] as string | undefined) ?? DEFAULT_PARAMS.minFee.toString(),
        decimals: v.decimals !== undefined ? intFlag(v, 'decimals', 0) : DEFAULT_PARAMS.decimals,
        symbol: (v.symbol as string | undefined) ?? DEFAULT_PARAMS.symbol,
      });
      const g = genesisFromJson(j); // full semantic validation before anything is written
      const backup = await writeGenesisFile(out, j);
      if (backup) console.error(`note: ${out} existed; the old file was moved to ${backup}`);
      console.log(`wrote ${out} (chain ${g.chainId}, ${g.validators.length} validator(s), supply ${g.totalSupply})`);
      return 0;
    },
  },

  node: {
    summary: 'run a node (a validator with --key, otherwise a follower)',
    usage: `meshledger node --datadir DIR --genesis FILE [--key KEYFILE] [--p2p HOST:PORT] [--rpc HOST:PORT] [--rpc-cors ORIGIN]
                [--bootnodes URL,…] [--advertise URL] [--log-level debug|info|warn|error] [--log-format json|pretty]

  --datadir    where the LevelDB database lives (created if missing; refuses another network's genesis)
  --genesis    the network's genesis.json
  --key        validator key file: the node produces blocks in its slots
  --rpc        serve JSON-RPC 2.0 over HTTP on HOST:PORT (e.g. 127.0.0.1:8645)
  --p2p        listen for peers on HOST:PORT (ws://)
  --bootnodes  comma-separated ws://HOST:PORT peers to dial at start
  --advertise  the ws://HOST:PORT peers should use to reach this node (default: the --p2p address)
  --verify-threads  signature-verification worker threads (default: CPU count, at most 4; 0 = main thread)
  --verify-nice     how much lower than the main thread those workers run, 0..19 (default 0; Linux)
  --rpc-rate   JSON-RPC requests per second allowed per client IP, burst twice that (default 2000)
  --rpc-cors   the one web origin (e.g. https://wallet.example) whose pages may call JSON-RPC and open its
               WebSocket, or * for any; default none: only non-browser clients and pages this node serves
  --no-metrics do not serve Prometheus metrics at GET /metrics on the --rpc port (served by default)
  --no-explorer do not serve the block explorer page at GET /explorer on the --rpc port (served by default)`,
    options: {
      datadir: { type: 'string' }, genesis: { type: 'string' }, key: { type: 'string' }, p2p: { type: 'string' },
      rpc: { type: 'string' }, bootnodes: { type: 'string' }, advertise: { type: 'string' },
      'verify-threads': { type: 'string' }, 'verify-nice': { type: 'string' }, 'rpc-rate': { type: 'string' }, 'rpc-cors': { type: 'string' }, 'no-metrics': { type: 'boolean' }, 'no-explorer': { type: 'boolean' }, ...LOG_OPTS,
    },
    async run(v) {
      const datadir = required(v, 'datadir');
      const genesisPath = required(v, 'genesis');
      const rpc = v.rpc !== undefined ? hostPort(v.rpc as string, '--rpc') : undefined;
      const p2p = v.p2p !== undefined ? hostPort(v.p2p as string, '--p2p') : undefined;
      const bootnodes = v.bootnodes !== undefined ? (v.bootnodes as string).split(',').filter(Boolean).map(checkBootnode) : [];
      const advertise = v.advertise !== undefined ? checkBootnode(v.advertise as string).replace(/\/$/, '') : undefined;
      const log = makeLogger(v);
      const genesis = await readGenesisFile(genesisPath);
      const key = v.key !== undefined ? await readKeyFile(v.key as string) : undefined;
      const verifyThreads = v['verify-threads'] !== undefined ? intFlag(v, 'verify-threads', 0) : defaultVerifyThreads();
      const verifyNice = v['verify-nice'] !== undefined ? intFlag(v, 'verify-nice', 0) : undefined;
      if (verifyNice !== undefined && verifyNice > 19) throw new UsageError('--verify-nice must be 0..19');
      const rpcLimits: Partial<RpcLimits> = {};
      if (v['rpc-rate'] !== undefined) { const r = intFlag(v, 'rpc-rate', 1); rpcLimits.ratePerSec = r; rpcLimits.rateBurst = 2 * r; }
      if (v['rpc-cors'] !== undefined) rpcLimits.cors = corsOrigin(v['rpc-cors'] as string);
      const metrics = v['no-metrics'] !== true;
      const explorer = v['no-explorer'] !== true;
      const node = await MeshNode.start({ datadir, genesis, key, rpc, p2p, bootnodes, advertise, verifyThreads, verifyNice, rpcLimits, metrics, processMetrics: metrics, explorer }, { log });
      const rpcUrl = node.rpcAddress ? `http://${node.rpcAddress.host}:${node.rpcAddress.port}` : null;
      log.info('node started', {
        datadir, chainId: genesis.chainId, genesisHash: node.chain.genesisHash, height: node.chain.head.height,
        validator: key?.address ?? null, rpc: rpcUrl, explorer: rpcUrl && explorer ? `${rpcUrl}/explorer` : null,
      });
      if (node.network) log.info('p2p started', { nodeId: node.network.nodeIdHex, listen: node.network.listenUrl || null, bootnodes });
      // A chain that halts on a failed invariant stops the node itself; the process then exits with 70 (EX_SOFTWARE).
      return Promise.race([waitForSignal(() => node.stop(), log), node.halted.then(() => node.stop()).then(() => 70)]);
    },
  },

  devnet: {
    summary: 'run a local development network (keys and genesis are created on first run)',
    usage: `meshledger devnet [--datadir DIR] [--validators N] [--slot-ms N] [--rpc-port N] [--p2p-port N]
                  [--log-level …] [--log-format json|pretty]

  --datadir     devnet folder (default .devnet): genesis.json, keys/, node-*/
  --validators  number of validator processes for a new devnet (default 4)
  --slot-ms     slot duration for a new devnet (default 1000)
  --rpc-port    first RPC port (default 8645; node i uses port + i)
  --p2p-port    first P2P port (default 30400; node i uses port + i)`,
    options: {
      datadir: { type: 'string' }, validators: { type: 'string' }, 'slot-ms': { type: 'string' },
      'rpc-port': { type: 'string' }, 'p2p-port': { type: 'string' }, ...LOG_OPTS,
    },
    async run(v) {
      return runDevnet({
        dir: (v.datadir as string | undefined) ?? '.devnet',
        validators: v.validators !== undefined ? intFlag(v, 'validators', 1) : 4,
        explicitValidators: v.validators !== undefined,
        slotMs: v['slot-ms'] !== undefined ? intFlag(v, 'slot-ms', 10) : 1000,
        rpcPort: v['rpc-port'] !== undefined ? intFlag(v, 'rpc-port', 1) : 8645,
        p2pPort: v['p2p-port'] !== undefined ? intFlag(v, 'p2p-port', 1) : 30400,
        logLevel: (v['log-level'] as string | undefined) ?? 'info',
        logFormat: (v['log-format'] as string | undefined) ?? 'pretty',
      });
    },
  },

  wallet: {
    summary: WALLET_SUMMARY,
    usage: WALLET_USAGE,
    options: {},
    rawArgs: true,
    run: (_v, argv) => walletMain(argv),
  },
};

function usageText(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`);
  return `meshledger ${version()} — a peer-to-peer proof-of-authority ledger

usage: meshledger <command> [flags]     (meshledger <command> --help for its flags)

commands:
${lines.join('\n')}
  version  print the version

exit codes: 0 success, 1 the command failed, 2 usage error`;
}

function version(): string {
  try {
    return JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')).version as string;
  } catch {
    return 'unknown';
  }
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    console.log(usageText());
    return name ? 0 : 2;
  }
  if (name === 'version' || name === '--version') {
    console.log(version());
    return 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`meshledger: unknown command "${name}"\n\n${usageText()}`);
    return 2;
  }
  if (!cmd.rawArgs && (rest.includes('--help') || rest.includes('-h'))) {
    console.log(`${cmd.summary}\n\nusage: ${cmd.usage}`);
    return 0;
  }
  try {
    if (cmd.rawArgs) return await cmd.run({}, rest);
    let values: Record<string, unknown>;
    try {
      ({ values } = parseArgs({ args: rest, options: cmd.options, strict: true, allowPositionals: false }));
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    return await cmd.run(values, rest);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`meshledger ${name}: ${e.message}\n\nusage: ${cmd.usage}`);
      return 2;
    }
    if (e instanceof GenesisError || e instanceof KeyFileError || e instanceof StartupError || e instanceof ChainError) {
      console.error(`meshledger ${name}: ${e.message}`);
      return 1;
    }
    console.error(`meshledger ${name}: ${(e as Error).stack ?? String(e)}`);
    return 1;
  }
}

// ---------------------------------------------------------------- flag helpers

function required(v: Record<string, unknown>, name: string): string {
  const x = v[name];
  if (typeof x !== 'string' || x === '') throw new UsageError(`--${name} is required`);
  return x;
}

function intFlag(v: Record<string, unknown>, name: string, min: number): number {
  const s = v[name] as string;
  if (!/^\d+$/.test(s) || !Number.isSafeInteger(Number(s)) || Number(s) < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got "${s}"`);
  return Number(s);
}

function checkAddress(a: string, flag: string): string {
  try {
    decodeAddress(a);
    return a;
  } catch (e) {
    throw new UsageError(`${flag}: ${(e as Error).message}`);
  }
}

export function hostPort(s: string, flag: string): HostPort {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new UsageError(`${flag} expects HOST:PORT (e.g. 127.0.0.1:8645), got "${s}"`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/** A web origin as browsers send it (scheme://host[:port], no path), or `*`. */
function corsOrigin(o: string): string {
  if (o === '*') return o;
  let u: URL | undefined;
  try { u = new URL(o); } catch { /* reported below */ }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || u.origin !== o) {
    throw new UsageError(`--rpc-cors expects an origin such as https://wallet.example or http://127.0.0.1:3000 (scheme, host and port only), or *; got "${o}"`);
  }
  return o;
}

function checkBootnode(u: string): string {
  if (!/^ws:\/\/[^/\s]+:\d{1,5}\/?$/.test(u)) throw new UsageError(`expected ws://HOST:PORT, got "${u}"`);
  return u.replace(/\/$/, '');
}

function makeLogger(v: Record<string, unknown>) {
  const level = (v['log-level'] as string | undefined) ?? 'info';
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new UsageError(`--log-level must be debug, info, warn or error`);
  const format = (v['log-format'] as string | undefined) ?? (process.stderr.isTTY ? 'pretty' : 'json');
  if (format !== 'json' && format !== 'pretty') throw new UsageError('--log-format must be json or pretty');
  return createLogger({ level: level as Level, format });
}

/** Run until SIGINT/SIGTERM, then stop cleanly. A second signal forces exit. */
export function waitForSignal(stop: () => Promise<void>, log: { info(m: string): void; error(m: string, f?: Record<string, unknown>): void }): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = (sig: string) => {
      if (stopping) {
        // A second Ctrl-C means "now". A repeated SIGTERM (e.g. from a supervisor that also forwards the
        // terminal's SIGINT) is ignored so that a clean shutdown is not cut short.
        if (sig !== 'SIGINT') return;
        log.error(`second ${sig}: exiting immediately`);
        process.exit(1);
      }
      stopping = true;
      log.info(`${sig} received, stopping`);
      stop().then(() => resolve(0), (e) => {
        log.error('error while stopping', { error: e });
        resolve(1);
      });
    };
    process.on('SIGINT', () => onSignal('SIGINT'));
    process.on('SIGTERM', () => onSignal('SIGTERM'));
  });
}
