/**
 * `meshledger wallet …`: encrypted keys (src/wallet/keystore.ts), balances, transfers and their status,
 * over a node's JSON-RPC (src/sdk/client.ts). Exit codes as for every meshledger command:
 *   0 success · 1 the command failed (wrong passphrase, node unreachable, rejected, timeout) · 2 usage error.
 *
 * Amounts on the command line and in text output are display units ("12.345"), converted exactly with the
 * chain's `decimals` from getChainInfo (src/wallet/amount.ts); `--json` output carries minor units as
 * decimal strings. Secret keys are never printed; passphrases come from --passphrase-file, the
 * MESHLEDGER_PASSPHRASE variable, or a prompt without echo when stdin is a terminal.
 *
 * MESHLEDGER_WALLET_SCRYPT_N (a power of two, 2^10 … 2^20) lowers the scrypt cost of NEW wallet files; it
 * exists for tests and weak machines, and a warning is printed when it is below the default 2^17.
 *
 * Longer than 500 lines because it is the table of every wallet subcommand (usage, flags, run) with the flag
 * parsers, passphrase input and confirmation wait those subcommands share.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeAddress } from '../encoding/address.js';
import { isHex, U64_MAX } from '../encoding/bytes.js';
import { signTx } from '../ledger/tx.js';
import { KeyFileError, readKeyFile } from '../crypto/keyfile.js';
import { RpcClient, RpcClientError, RpcTransportError, type ChainInfo, type TransactionStatus } from '../sdk/client.js';
import { AmountError, formatAmount, parseAmount } from './amount.js';
import {
  DEFAULT_SCRYPT_N, WalletError, addressOf, createKey, importKey, isWalletName, listKeys, loadKey, type CreateOptions,
} from './keystore.js';

export const DEFAULT_RPC_URL = 'http://127.0.0.1:8645';
export const WALLET_SUMMARY = 'encrypted wallet keys: create/import, balance, send, status, history';

const RPC_TIMEOUT_MS = 15_000;

// ------------------------------------------------------------------------------------------------ errors

/** Bad flags or arguments: exit 2 with the subcommand's usage. */
class WalletUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WalletUsageError';
  }
}

/** The command failed: exit 1 with this message. */
class WalletCommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WalletCommandError';
  }
}

/** Ctrl-C / Ctrl-D at the passphrase prompt. */
class Interrupted extends Error {}

// ------------------------------------------------------------------------------------------------ usage

const COMMON = `  --wallet-dir DIR   wallet folder (default: $MESHLEDGER_WALLET_DIR, else ~/.meshledger/wallet)
  --json             machine-readable output (one JSON document on stdout; amounts in minor units)`;
const RPC = `  --rpc URL          the node's JSON-RPC endpoint (default ${DEFAULT_RPC_URL})`;
const PASS = `  --passphrase-file FILE
                     read the passphrase from FILE (one trailing newline is ignored); otherwise
                     $MESHLEDGER_PASSPHRASE; otherwise a prompt without echo when stdin is a terminal`;

interface Ctx {
  name: string;
  v: Record<string, unknown>;
  positionals: string[];
  dir: string;
  json: boolean;
}

interface Sub {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** How many positionals the subcommand takes (default 0). */
  positionals?: number;
  run(ctx: Ctx): Promise<number>;
}

const commonOpts = { 'wallet-dir': { type: 'string' }, json: { type: 'boolean' } } as const;
const rpcOpts = { rpc: { type: 'string' } } as const;
const passOpts = { 'passphrase-file': { type: 'string' } } as const;

const SUBS: Record<string, Sub> = {
  create: {
    summary: 'create a new key, encrypted with a passphrase, and print its address',
    usage: `meshledger wallet create --name NAME [--passphrase-file FILE] [--wallet-dir DIR] [--json]

  --name NAME        wallet name (letters, digits, ".", "_", "-"); an existing name is never overwritten
${PASS}
${COMMON}`,
    options: { name: { type: 'string' }, ...passOpts, ...commonOpts },
    async run({ v, dir, json }) {
      const name = walletName(v);
      const opts = kdfOptions();
      const pass = await passphrase(v, { confirm: true });
      const r = await createKey(dir, name, pass, opts);
      if (json) out({ name: r.name, address: r.address, file: r.file });
      else {
        console.log(r.address);
        console.error(`created wallet "${r.name}" (${r.file})`);
      }
      return 0;
    },
  },

  import: {
    summary: 'encrypt an existing secret key (a `meshledger keygen` key file, or a file holding 64 hex)',
    usage: `meshledger wallet import --name NAME --secret-key-file FILE [--passphrase-file FILE] [--wallet-dir DIR] [--json]

  --name NAME              wallet name; an existing name is never overwritten
  --secret-key-file FILE   a key file written by \`meshledger keygen\`, or a file holding the 64-hex secret key
${PASS}
${COMMON}`,
    options: { name: { type: 'string' }, 'secret-key-file': { type: 'string' }, ...passOpts, ...commonOpts },
    async run({ v, dir, json }) {
      const name = walletName(v);
      const file = required(v, 'secret-key-file');
      const opts = kdfOptions();
      const secretHex = await readSecretKeyFile(file);
      if (await addressOf(dir, name).then(() => true, () => false)) throw new WalletError(`a wallet named "${name}" already exists in ${dir}`, 'exists');
      const pass = await passphrase(v, { confirm: true });
      const r = await importKey(dir, name, secretHex, pass, opts);
      if (json) out({ name: r.name, address: r.address, file: r.file });
      else {
        console.log(r.address);
        console.error(`imported wallet "${r.name}" (${r.file}); the plain key file ${file} is still there: delete it if you no longer need it`);
      }
      return 0;
    },
  },

  list: {
    summary: 'list the wallets (name and address)',
    usage: `meshledger wallet list [--wallet-dir DIR] [--json]

${COMMON}`,
    options: { ...commonOpts },
    async run({ dir, json }) {
      const keys = await listKeys(dir);
      if (json) out(keys);
      else if (keys.length === 0) console.error(`no wallets in ${dir}`);
      else {
        const w = Math.max(...keys.map((k) => k.name.length));
        for (const k of keys) console.log(`${k.name.padEnd(w)}  ${k.address}`);
      }
      return 0;
    },
  },

  address: {
    summary: 'print the address of a wallet (no passphrase needed)',
    usage: `meshledger wallet address --name NAME [--wallet-dir DIR] [--json]

  --name NAME        the wallet
${COMMON}`,
    options: { name: { type: 'string' }, ...commonOpts },
    async run({ v, dir, json }) {
      const name = walletName(v);
      const address = await addressOf(dir, name);
      if (json) out({ name, address });
      else console.log(address);
      return 0;
    },
  },

  balance: {
    summary: 'show the confirmed balance of a wallet or address',
    usage: `meshledger wallet balance (--name NAME | --address ADDRESS) [--rpc URL] [--wallet-dir DIR] [--json]

  --name NAME        a wallet in the wallet folder
  --address ADDRESS  any address
${RPC}
${COMMON}`,
    options: { name: { type: 'string' }, address: { type: 'string' }, ...rpcOpts, ...commonOpts },
    async run({ v, dir, json }) {
      const who = await target(v, dir);
      const client = rpcClient(v);
      const [info, acct] = await Promise.all([client.getChainInfo(), client.getAccount(who.address)]);
      const balance = BigInt(acct.balance);
      if (json) {
        out({
          ...(who.name ? { name: who.name } : {}), address: who.address, balance: acct.balance, display: formatAmount(balance, info.decimals),
          symbol: info.symbol, decimals: info.decimals, nonce: acct.nonce, nextNonce: acct.nextNonce, pending: acct.pending, height: info.height,
        });
      } else {
        console.log(`${formatAmount(balance, info.decimals)} ${info.symbol}`);
        if (acct.pending > 0) console.error(`${acct.pending} pending transaction(s) from this account are not counted yet`);
      }
      return 0;
    },
  },

  send: {
    summary: 'sign a transfer locally and submit it; optionally wait for confirmations',
    usage: `meshledger wallet send --from NAME --to ADDRESS --amount AMOUNT [--fee FEE] [--memo TEXT]
                        [--wait N] [--timeout SECONDS] [--passphrase-file FILE] [--rpc URL] [--wallet-dir DIR] [--json]

  --from NAME        the sending wallet
  --to ADDRESS       the recipient (the checksum is verified before anything is signed)
  --amount AMOUNT    in display units, e.g. 12.345 (at most the chain's decimals; no signs, exponents or spaces)
  --fee FEE          in display units (default: the chain's minimum fee)
  --memo TEXT        a note stored with the transaction (UTF-8)
  --wait N           after submitting, wait until the transaction has N confirmations (progress on stderr);
                     a chain reorganisation that drops it is reported and waited out
  --timeout SECONDS  give up waiting after SECONDS (default 120): exit 1
${PASS}
${RPC}
${COMMON}

  Prints the transaction id.`,
    options: {
      from: { type: 'string' }, to: { type: 'string' }, amount: { type: 'string' }, fee: { type: 'string' }, memo: { type: 'string' },
      wait: { type: 'string' }, timeout: { type: 'string' }, ...passOpts, ...rpcOpts, ...commonOpts,
    },
    run: runSend,
  },

  status: {
    summary: 'show the status of a transaction: pending, confirmed (with confirmations) or unknown',
    usage: `meshledger wallet status TXID [--rpc URL] [--json]

  TXID               the transaction id (64 hex) printed by \`wallet send\`
${RPC}
  --json             print the node's answer (amounts in minor units)

  Exit 0 whenever the node answered, whatever the status (an unknown id is status "unknown").`,
    options: { ...rpcOpts, json: { type: 'boolean' } },
    positionals: 1,
    async run({ v, positionals, json }) {
      if (positionals.length !== 1) throw new WalletUsageError('expected one transaction id');
      const id = positionals[0]!;
      if (!/^[0-9a-fA-F]{64}$/.test(id)) throw new WalletUsageError(`"${id}" is not a transaction id (64 hex characters)`);
      const client = rpcClient(v);
      const [info, st] = await Promise.all([client.getChainInfo(), client.getTransaction(id.toLowerCase())]);
      if (json) {
        out(st);
        return 0;
      }
      const rows: [string, string][] = [['status', describeStatus(st)], ['id', st.id]];
      if (st.status !== 'unknown') {
        const t = st.transaction;
        rows.push(['from', t.from], ['to', t.to], ['amount', display(t.amount, info)], ['fee', display(t.fee, info)], ['nonce', t.nonce]);
        if (t.memo) rows.push(['memo', JSON.stringify(t.memo)]);
      }
      if (st.status === 'confirmed') rows.push(['block', `${st.blockHeight} ${st.blockHash}`]);
      for (const [k, val] of rows) console.log(`${k.padEnd(14)} ${val}`);
      return 0;
    },
  },

  history: {
    summary: 'list the confirmed transactions of a wallet or address, newest first',
    usage: `meshledger wallet history (--name NAME | --address ADDRESS) [--limit K] [--cursor C] [--direction sent|received|both]
                           [--rpc URL] [--wallet-dir DIR] [--json]

  --name NAME        a wallet in the wallet folder
  --address ADDRESS  any address
  --limit K          page size, 1 … 100 (default 20)
  --cursor C         the cursor printed after the previous page (older entries)
  --direction D      sent, received or both (default both)
${RPC}
${COMMON}`,
    options: {
      name: { type: 'string' }, address: { type: 'string' }, limit: { type: 'string' }, cursor: { type: 'string' }, direction: { type: 'string' },
      ...rpcOpts, ...commonOpts,
    },
    async run({ v, dir, json }) {
      const limit = v.limit !== undefined ? intFlag(v, 'limit', 1, 100) : undefined;
      const cursor = v.cursor as string | undefined;
      if (cursor !== undefined && !/^[0-9a-f]{26}$/.test(cursor)) throw new WalletUsageError(`--cursor must be a cursor printed by a previous page (26 hex), got "${cursor}"`);
      const direction = v.direction as string | undefined;
      if (direction !== undefined && !['sent', 'received', 'both'].includes(direction)) throw new WalletUsageError('--direction must be sent, received or both');
      const who = await target(v, dir);
      const client = rpcClient(v);
      const [info, page] = await Promise.all([
        client.getChainInfo(),
        client.getAccountTransactions(who.address, { limit, cursor, direction: direction as 'sent' | 'received' | 'both' | undefined }),
      ]);
      if (json) {
        out(page);
        return 0;
      }
      if (page.transactions.length === 0) console.error(cursor ? 'no older transactions' : `no confirmed transactions for ${who.address}`);
      for (const e of page.transactions) {
        const t = e.transaction;
        const sent = e.direction === 'sent';
        const sign = sent ? '-' : '+';
        const peer = sent ? `to   ${t.to}` : `from ${t.from}`;
        const fee = sent ? ` (fee ${display(t.fee, info)})` : '';
        console.log(`${String(e.height).padStart(8)}  ${e.direction.padEnd(8)}  ${sign}${display(t.amount, info)}${fee}  ${peer}  ${e.id}`);
      }
      if (page.next) console.error(`more: --cursor ${page.next}`);
      return 0;
    },
  },
};

export const WALLET_USAGE = `meshledger wallet <subcommand> [flags]     (meshledger wallet <subcommand> --help for its flags)

subcommands:
${Object.entries(SUBS).map(([n, s]) => `  ${n.padEnd(8)} ${s.summary}`).join('\n')}

Keys are stored encrypted (scrypt + XChaCha20-Poly1305), one file per wallet, in --wallet-dir
(default: $MESHLEDGER_WALLET_DIR, else ~/.meshledger/wallet). Amounts are in display units, e.g. 12.345.

environment:
  MESHLEDGER_WALLET_DIR       default wallet folder
  MESHLEDGER_PASSPHRASE       the passphrase (when --passphrase-file is not given); without either, a
                              terminal prompt, and no terminal is a usage error
  MESHLEDGER_WALLET_SCRYPT_N  scrypt N for new wallet files (default 131072 = 2^17; lower only for tests)

exit codes: 0 success, 1 the command failed, 2 usage error`;

// ------------------------------------------------------------------------------------------------ entry point

/** `meshledger wallet ARGV…`: parses its own argv (sub-subcommands, --help) and returns the exit code. */
export async function walletMain(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === 'help' || sub === '--help' || sub === '-h') {
    const topic = sub === 'help' ? rest[0] : undefined;
    if (topic !== undefined && SUBS[topic]) {
      console.log(`${SUBS[topic]!.summary}\n\nusage: ${SUBS[topic]!.usage}`);
      return 0;
    }
    if (sub === undefined) {
      console.error(`usage: ${WALLET_USAGE}`);
      return 2;
    }
    console.log(`${WALLET_SUMMARY}\n\nusage: ${WALLET_USAGE}`);
    return 0;
  }
  const cmd = SUBS[sub];
  if (!cmd) {
    console.error(`meshledger wallet: unknown subcommand "${sub}"\n\nusage: ${WALLET_USAGE}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(`${cmd.summary}\n\nusage: ${cmd.usage}`);
    return 0;
  }
  const prefix = `meshledger wallet ${sub}`;
  try {
    let values: Record<string, unknown>;
    let positionals: string[];
    try {
      ({ values, positionals } = parseArgs({ args: rest, options: cmd.options, strict: true, allowPositionals: (cmd.positionals ?? 0) > 0 }));
    } catch (e) {
      throw new WalletUsageError((e as Error).message);
    }
    if (positionals.length > (cmd.positionals ?? 0)) throw new WalletUsageError(`unexpected argument "${positionals[cmd.positionals ?? 0]}"`);
    const dir = walletDir(values);
    return await cmd.run({ name: sub, v: values, positionals, dir, json: values.json === true });
  } catch (e) {
    if (e instanceof WalletUsageError) {
      console.error(`${prefix}: ${e.message}\n\nusage: ${cmd.usage}`);
      return 2;
    }
    if (e instanceof AmountError) {
      console.error(`${prefix}: ${e.message}`);
      return 2;
    }
    if (e instanceof Interrupted) {
      console.error(`${prefix}: ${e.message || 'interrupted'}`);
      return 130;
    }
    console.error(`${prefix}: ${describeFailure(e, rpcUrlOf(rest))}`);
    return 1;
  }
}

/** The --rpc value as given (for messages), without re-parsing strictly. */
function rpcUrlOf(args: string[]): string {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--rpc' && i + 1 < args.length) return args[i + 1]!;
    if (a.startsWith('--rpc=')) return a.slice('--rpc='.length);
  }
  return DEFAULT_RPC_URL;
}

function describeFailure(e: unknown, rpcUrl: string): string {
  if (e instanceof WalletError && e.kind === 'wrong_passphrase') return 'wrong passphrase (or the wallet file was modified)';
  if (e instanceof WalletCommandError || e instanceof WalletError || e instanceof KeyFileError) return e.message;
  if (e instanceof RpcTransportError) {
    const detail = e.message.startsWith(`${e.url}: `) ? e.message.slice(e.url.length + 2) : e.message;
    return `cannot reach the node at ${e.url || rpcUrl} (${detail})`;
  }
  if (e instanceof RpcClientError) return describeRpcError(e);
  return (e as Error)?.stack ?? String(e);
}

function describeRpcError(e: RpcClientError): string {
  const rule = e.rule;
  const detail = typeof e.data?.message === 'string' ? e.data.message : e.message;
  switch (rule) {
    case 'insufficient_funds':
      return `insufficient funds: the sender's balance is below amount + fee (${detail})`;
    case 'nonce_too_low':
      return `nonce conflict (nonce_too_low): that nonce was already used — another transaction from this account was confirmed meanwhile; run the command again (${detail})`;
    case 'nonce_too_high':
      return `nonce conflict (nonce_too_high): there is a gap before this nonce (a pending transaction may have been dropped); run the command again (${detail})`;
    case 'replacement_underpriced':
      return `nonce conflict (replacement_underpriced): a pending transaction already uses this nonce; raise --fee by at least 10 % to replace it, or wait (${detail})`;
    case 'too_many_pending':
      return `too many pending transactions from this account (too_many_pending); wait for some to confirm (${detail})`;
    case 'mempool_busy':
      return `the node is overloaded and did not take the transaction (mempool_busy); nothing was sent, run the command again in a moment (${detail})`;
    default:
      if (e.code === -32002 || e.code === -32003) return `the node rejected the transaction (${rule ?? e.code}): ${detail}`;
      return `the node answered with error ${e.code}${rule ? ` (${rule})` : ''}: ${e.message}`;
  }
}

// ------------------------------------------------------------------------------------------------ send

async function runSend({ v, dir, json }: Ctx): Promise<number> {
  // Everything that can be checked offline is checked before the node is contacted.
  const fromName = walletName(v, 'from');
  const to = addressFlag(required(v, 'to'), '--to');
  const amountText = required(v, 'amount');
  precheckAmount(amountText, '--amount');
  const feeText = v.fee as string | undefined;
  if (feeText !== undefined) precheckAmount(feeText, '--fee');
  const memo = (v.memo as string | undefined) ?? '';
  const wait = v.wait !== undefined ? intFlag(v, 'wait', 0, 1_000_000) : 0;
  const timeoutS = v.timeout !== undefined ? intFlag(v, 'timeout', 1, 7 * 24 * 3600) : 120;
  passphraseSource(v);
  const fromAddress = await addressOf(dir, fromName);
  const client = rpcClient(v);

  const info = await client.getChainInfo();
  const amount = amountFlag(amountText, '--amount', info.decimals);
  if (amount === 0n) throw new WalletUsageError('--amount must be greater than zero');
  const minFee = BigInt(info.minFee);
  const fee = feeText !== undefined ? amountFlag(feeText, '--fee', info.decimals) : minFee;
  if (fee < minFee) throw new WalletUsageError(`--fee ${feeText} is below the chain's minimum fee ${display(minFee, info)}`);
  if (amount + fee > U64_MAX) throw new WalletUsageError('amount + fee is above the largest possible amount');

  const key = await loadKey(dir, fromName, await passphrase(v, { confirm: false }));
  try {
    if (key.address !== fromAddress) throw new WalletCommandError(`wallet "${fromName}" decrypted to ${key.address}, not ${fromAddress}`);
    const acct = await client.getAccount(fromAddress);
    const balance = BigInt(acct.balance);
    if (balance < amount + fee) {
      throw new WalletCommandError(`insufficient funds: ${fromName} (${fromAddress}) has ${display(balance, info)}, `
        + `the transfer needs ${display(amount, info)} + fee ${display(fee, info)} = ${display(amount + fee, info)}`);
    }
    const tx = signTx({ chainId: info.chainId, from: key.publicKey, to: decodeAddress(to), amount, fee, nonce: BigInt(acct.nextNonce), memo }, key.secretKey);
    const id = await client.sendTransaction(tx.bytes);
    if (id !== tx.idHex) throw new WalletCommandError(`the node returned id ${id}, but the signed transaction's id is ${tx.idHex}`);
    const summary = {
      id, from: fromAddress, to, amount: amount.toString(), fee: fee.toString(), nonce: acct.nextNonce, memo, symbol: info.symbol, decimals: info.decimals,
    };
    if (!json) {
      console.log(id);
      console.error(`submitted: ${display(amount, info)} from ${fromName} (${fromAddress}) to ${to}, fee ${display(fee, info)}, nonce ${acct.nextNonce}`);
    }
    if (wait === 0) {
      if (json) out(summary);
      return 0;
    }
    const r = await waitForConfirmations(client, tx.bytes, id, wait, timeoutS, info.slotMs);
    if (json) out({ ...summary, status: r.last });
    if (!r.ok) {
      console.error(`meshledger wallet send: timed out after ${timeoutS} s waiting for ${wait} confirmation(s) of ${id}; last status: ${r.last ? describeStatus(r.last) : 'no answer from the node'}`);
      return 1;
    }
    return 0;
  } finally {
    key.secretKey.fill(0);
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Poll getTransaction until `target` confirmations or the timeout. Progress goes to stderr, one line per
 * change. A transaction that was confirmed and then is pending or unknown again was dropped by a chain
 * reorganisation: that is reported, the same signed bytes are offered to the node again (idempotent: same
 * id), and the wait goes on.
 */
async function waitForConfirmations(client: RpcClient, bytes: Uint8Array, id: string, target: number, timeoutS: number, slotMs: number): Promise<{ ok: boolean; last?: TransactionStatus }> {
  const deadline = Date.now() + timeoutS * 1000;
  const interval = Math.min(2000, Math.max(200, Math.floor(slotMs / 2)));
  let last: TransactionStatus | undefined;
  let lastLine = '';
  let confirmedIn: { height: number; hash: string } | undefined;
  let unreachableSaid = false;
  const say = (line: string) => {
    if (line !== lastLine) console.error(line);
    lastLine = line;
  };
  for (;;) {
    let st: TransactionStatus | undefined;
    try {
      st = await client.getTransaction(id);
      unreachableSaid = false;
    } catch (e) {
      if (!(e instanceof RpcTransportError)) throw e;
      if (!unreachableSaid) console.error(`cannot reach the node at ${e.url}; still trying until the timeout`);
      unreachableSaid = true;
    }
    if (st) {
      if (st.status === 'confirmed') {
        if (confirmedIn && confirmedIn.hash !== st.blockHash) {
          say(`reorg: the transaction moved from block ${confirmedIn.height} to block ${st.blockHeight}`);
        }
        confirmedIn = { height: st.blockHeight, hash: st.blockHash };
        say(`confirmations ${Math.min(st.confirmations, target)}/${target} (block ${st.blockHeight})`);
        if (st.confirmations >= target) return { ok: true, last: st };
      } else {
        if (confirmedIn) {
          say(`reorg: the transaction was in block ${confirmedIn.height} but that block left the best chain; it is ${st.status} now — still waiting`);
          confirmedIn = undefined;
        }
        if (st.status === 'unknown' && last?.status !== 'unknown') {
          // Dropped (e.g. abandoned by a reorg and not re-admitted): offer the same signed bytes again.
          const again = await client.sendTransaction(bytes).then(() => 'offered it to the node again', (e: Error) => `offering it again failed: ${e.message}`);
          say(`the node does not know the transaction any more (unknown); ${again} — still waiting`);
        } else if (st.status === 'pending') {
          say(`pending, confirmations 0/${target}`);
        }
      }
      last = st;
    }
    if (Date.now() >= deadline) return { ok: false, last };
    await sleep(Math.min(interval, Math.max(0, deadline - Date.now())));
  }
}

// ------------------------------------------------------------------------------------------------ helpers

function out(value: unknown): void {
  console.log(JSON.stringify(value, (_k, x) => (typeof x === 'bigint' ? x.toString() : x), 2));
}

function display(units: bigint | string, info: Pick<ChainInfo, 'decimals' | 'symbol'>): string {
  return `${formatAmount(BigInt(units), info.decimals)} ${info.symbol}`;
}

function describeStatus(st: TransactionStatus): string {
  if (st.status === 'confirmed') return `confirmed (${st.confirmations} confirmation${st.confirmations === 1 ? '' : 's'}, block ${st.blockHeight})`;
  if (st.status === 'pending') return 'pending (in the mempool, not yet in a block)';
  return `unknown (never seen, dropped, or abandoned by a reorg)${st.reason ? `: ${st.reason}` : ''}`;
}

function required(v: Record<string, unknown>, name: string): string {
  const x = v[name];
  if (typeof x !== 'string' || x === '') throw new WalletUsageError(`--${name} is required`);
  return x;
}

function intFlag(v: Record<string, unknown>, name: string, min: number, max: number): number {
  const s = v[name] as string;
  if (!/^\d+$/.test(s) || Number(s) < min || Number(s) > max) throw new WalletUsageError(`--${name} must be an integer from ${min} to ${max}, got "${s}"`);
  return Number(s);
}

function walletName(v: Record<string, unknown>, flag = 'name'): string {
  const name = required(v, flag);
  if (!isWalletName(name)) throw new WalletUsageError(`--${flag}: invalid wallet name "${name}" (1–64 letters, digits, ".", "_" or "-", starting with a letter or digit)`);
  return name;
}

function addressFlag(a: string, flag: string): string {
  try {
    decodeAddress(a);
    return a;
  } catch (e) {
    throw new WalletUsageError(`${flag}: ${(e as Error).message}`);
  }
}

/** Syntax check before the chain's decimals are known (18 is the most any chain has; size is checked later). */
function precheckAmount(text: string, flag: string): void {
  try {
    parseAmount(text, 18);
  } catch (e) {
    if (e instanceof AmountError && e.rule !== 'too_large') throw new WalletUsageError(`${flag}: ${e.message}`);
    if (!(e instanceof AmountError)) throw e;
  }
}

/** A display amount flag converted exactly with the chain's decimals; a refusal is a usage error naming the flag. */
function amountFlag(text: string, flag: string, decimals: number): bigint {
  try {
    return parseAmount(text, decimals);
  } catch (e) {
    if (e instanceof AmountError) throw new WalletUsageError(`${flag}: ${e.message}`);
    throw e;
  }
}

/** Exactly one of --name (a wallet) / --address (any address). */
async function target(v: Record<string, unknown>, dir: string): Promise<{ name?: string; address: string }> {
  const hasName = v.name !== undefined;
  const hasAddress = v.address !== undefined;
  if (hasName === hasAddress) throw new WalletUsageError('give exactly one of --name or --address');
  if (hasAddress) return { address: addressFlag(v.address as string, '--address') };
  const name = walletName(v);
  return { name, address: await addressOf(dir, name) };
}

function walletDir(v: Record<string, unknown>): string {
  const d = (v['wallet-dir'] as string | undefined) ?? (process.env.MESHLEDGER_WALLET_DIR || path.join(os.homedir(), '.meshledger', 'wallet'));
  if (d === '') throw new WalletUsageError('--wallet-dir must not be empty');
  return d;
}

function rpcClient(v: Record<string, unknown>): RpcClient {
  const url = (v.rpc as string | undefined) ?? DEFAULT_RPC_URL;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new WalletUsageError(`--rpc expects an http:// URL (e.g. ${DEFAULT_RPC_URL}), got "${url}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new WalletUsageError(`--rpc expects an http:// or https:// URL, got "${url}"`);
  return new RpcClient(url, { timeoutMs: RPC_TIMEOUT_MS });
}

/** scrypt cost for new wallet files: the default, or MESHLEDGER_WALLET_SCRYPT_N (tests). */
function kdfOptions(): CreateOptions {
  const s = process.env.MESHLEDGER_WALLET_SCRYPT_N;
  if (s === undefined || s === '') return {};
  const n = Number(s);
  if (!/^\d+$/.test(s) || n < 2 ** 10 || n > 2 ** 20 || (n & (n - 1)) !== 0) {
    throw new WalletUsageError(`MESHLEDGER_WALLET_SCRYPT_N must be a power of two from 1024 to 1048576, got "${s}"`);
  }
  if (n < DEFAULT_SCRYPT_N) console.error(`warning: MESHLEDGER_WALLET_SCRYPT_N=${n} is below the default ${DEFAULT_SCRYPT_N}: this wallet file is cheaper to brute-force`);
  return { scryptN: n };
}

/** A secret key file: `meshledger keygen` JSON, or 64 hex characters (surrounding whitespace ignored). */
async function readSecretKeyFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    throw new WalletCommandError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const t = text.trim();
  if (t.startsWith('{')) {
    const kp = await readKeyFile(file);
    return Buffer.from(kp.secretKey).toString('hex');
  }
  const hex = t.toLowerCase();
  if (!isHex(hex, 32)) throw new WalletCommandError(`${file} holds neither a meshledger key file nor a 64-hex secret key`);
  return hex;
}

// ------------------------------------------------------------------------------------------------ passphrase

type PassSource = 'file' | 'env' | 'tty';

/** Where the passphrase will come from; a usage error when there is no way to get one. */
function passphraseSource(v: Record<string, unknown>): PassSource {
  if (v['passphrase-file'] !== undefined) return 'file';
  if (process.env.MESHLEDGER_PASSPHRASE !== undefined) return 'env';
  if (process.stdin.isTTY) return 'tty';
  throw new WalletUsageError('no passphrase: stdin is not a terminal, so set MESHLEDGER_PASSPHRASE or pass --passphrase-file FILE');
}

async function passphrase(v: Record<string, unknown>, o: { confirm: boolean }): Promise<string> {
  const src = passphraseSource(v);
  if (src === 'file') {
    const file = v['passphrase-file'] as string;
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (e) {
      throw new WalletCommandError(`cannot read the passphrase file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    return text.replace(/\r?\n$/, '');
  }
  if (src === 'env') return process.env.MESHLEDGER_PASSPHRASE!;
  const p = await promptHidden('passphrase: ');
  if (o.confirm) {
    if (p === '') throw new WalletUsageError('the passphrase must not be empty');
    const again = await promptHidden('repeat the passphrase: ');
    if (again !== p) throw new WalletCommandError('the passphrases do not match');
  }
  return p;
}

/**
 * Read a line from the terminal without echo: raw mode, so the typed characters are never written back.
 * Backspace and Ctrl-U edit; Enter ends; Ctrl-C (or Ctrl-D on an empty line) aborts. The prompt goes to stderr.
 */
function promptHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let buf: string[] = [];
    const wasRaw = stdin.isRaw;
    stdin.setRawMode(true);
    stdin.setEncoding('utf8');
    const finish = (err?: Error) => {
      stdin.off('data', onData);
      stdin.setRawMode(wasRaw);
      stdin.pause();
      process.stderr.write('\n');
      const s = buf.join('');
      buf = [];
      if (err) reject(err);
      else resolve(s);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return finish();
        if (ch === '\u0003') return finish(new Interrupted('interrupted'));
        if (ch === '\u0004') {
          if (buf.length === 0) return finish(new Interrupted('no passphrase given (end of input)'));
          continue;
        }
        if (ch === '\u007f' || ch === '\b') buf.pop();
        else if (ch === '\u0015') buf = [];
        else if (ch === '\u001b') return; // an escape sequence (arrow keys…): drop the rest of this chunk
        else if (ch >= ' ') buf.push(ch);
      }
    };
    stdin.on('data', onData);
    stdin.resume();
  });
}
