/**
 * `meshledger devnet` (and `npm start`): a local network of validator processes on 127.0.0.1.
 * First run creates keys (validators + a funded "faucet" account) and genesis under the devnet folder;
 * later runs resume the same chain. Ctrl-C stops every process cleanly.
 *
 * Layout:  DIR/genesis.json  DIR/keys/validator-<i>.json  DIR/keys/faucet.json  DIR/node-<i>/ (datadir)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DEFAULT_PARAMS, genesisFromJson } from '../ledger/genesis.js';
import { packageRoot } from '../util/schemas.js';
import { newKeyPair, readKeyFile, writeKeyFile } from '../crypto/keyfile.js';
import { buildGenesisJson, readGenesisFile, writeGenesisFile } from './genesisfile.js';
import { UsageError } from './usage.js';

export interface DevnetOptions {
  dir: string;
  validators: number;
  /** Whether --validators was given (an existing devnet keeps its size otherwise). */
  explicitValidators: boolean;
  slotMs: number;
  rpcPort: number;
  p2pPort: number;
  logLevel: string;
  logFormat: string;
}

/** 1e9 whole units at the default 6 decimals. */
const FAUCET_AMOUNT = 1_000_000_000n * 10n ** BigInt(DEFAULT_PARAMS.decimals);

export async function runDevnet(o: DevnetOptions): Promise<number> {
  const dir = resolve(o.dir);
  const keysDir = join(dir, 'keys');
  const genesisPath = join(dir, 'genesis.json');
  await mkdir(keysDir, { recursive: true, mode: 0o700 });

  if (!existsSync(genesisPath)) {
    const addrs: string[] = [];
    for (let i = 0; i < o.validators; i++) {
      const kp = newKeyPair();
      await writeKeyFile(join(keysDir, `validator-${i}.json`), kp);
      addrs.push(kp.address);
    }
    const faucet = newKeyPair();
    await writeKeyFile(join(keysDir, 'faucet.json'), faucet);
    const j = buildGenesisJson({
      chainId: 'meshledger-devnet', genesisTime: Date.now(), slotMs: o.slotMs, validators: addrs,
      alloc: [{ address: faucet.address, amount: FAUCET_AMOUNT.toString() }],
      minFee: DEFAULT_PARAMS.minFee.toString(), decimals: DEFAULT_PARAMS.decimals, symbol: DEFAULT_PARAMS.symbol,
    });
    genesisFromJson(j);
    await writeGenesisFile(genesisPath, j);
  }
  const genesis = await readGenesisFile(genesisPath);
  const n = genesis.validators.length;
  if (o.explicitValidators && n !== o.validators) {
    throw new UsageError(`${dir} already holds a ${n}-validator devnet; remove the folder to create one with ${o.validators}`);
  }
  const faucet = await readKeyFile(join(keysDir, 'faucet.json'));

  const bin = join(packageRoot(), 'bin', 'meshledger.js');
  const children: ChildProcess[] = [];
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const rpc = `127.0.0.1:${o.rpcPort + i}`;
    const p2p = `127.0.0.1:${o.p2pPort + i}`;
    const args = [bin, 'node', '--datadir', join(dir, `node-${i}`), '--genesis', genesisPath, '--key', join(keysDir, `validator-${i}.json`),
      '--rpc', rpc, '--p2p', p2p, '--log-level', o.logLevel, '--log-format', o.logFormat];
    // Every node knows node-0; peer exchange and the persisted address book do the rest.
    if (i > 0) args.push('--bootnodes', `ws://127.0.0.1:${o.p2pPort}`);
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    children.push(child);
    lines.push(`  node-${i}: validator ${(await readKeyFile(join(keysDir, `validator-${i}.json`))).address}\n           rpc http://${rpc}  p2p ws://${p2p}  data ${join(dir, `node-${i}`)}`);
  }
  console.log(`meshledger devnet: ${n} validator(s), chain ${genesis.chainId}, slot ${genesis.slotMs} ms
  folder  ${dir}
  genesis ${genesisPath}
  keys    ${keysDir} (validator-*.json, faucet.json)
  faucet  ${faucet.address} holds ${genesis.alloc.find((a) => Buffer.from(a.publicKey).equals(Buffer.from(faucet.publicKey)))?.amount ?? 0n} minor units
${lines.join('\n')}
  explorer http://127.0.0.1:${o.rpcPort}/explorer  (open it in a browser: blocks, forks, validators, peers, live)
  try:    curl -s -d '{"jsonrpc":"2.0","id":1,"method":"getChainInfo"}' -H 'content-type: application/json' http://127.0.0.1:${o.rpcPort}/
Ctrl-C stops the devnet; run it again to resume the same chain.`);

  return new Promise<number>((resolveExit) => {
    let stopping = false;
    let exited = 0;
    let worst = 0;
    const stopAll = (sig: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      for (const c of children) if (c.exitCode === null) c.kill(sig === 'SIGINT' ? 'SIGTERM' : sig);
    };
    for (const c of children) {
      c.on('exit', (code, signal) => {
        exited++;
        if (!stopping) {
          console.error(`devnet: a node exited unexpectedly (code ${code}, signal ${signal}); stopping the others`);
          worst = 1;
          stopAll('SIGTERM');
        } else if (code) worst = Math.max(worst, 1);
        if (exited === children.length) resolveExit(worst);
      });
    }
    process.on('SIGINT', () => stopAll('SIGINT'));
    process.on('SIGTERM', () => stopAll('SIGTERM'));
  });
}
