/**
 * `meshledger wallet …` end to end: real CLI processes against a real validator node on 127.0.0.1, with a
 * faucet key funded in genesis.
 *
 *   happy path   import the faucet's keygen file, create a new wallet, send 12.345 MESH with --wait 2,
 *                status shows confirmed, balance shows 12.345 MESH, history lists it (with direction),
 *                paging with --limit / --cursor; --json outputs parse.
 *   error paths  wrong passphrase → 1; too many decimals → 2; bad address checksum → 2 before contacting
 *                the node; insufficient funds → 1; node unreachable → 1 naming the URL; no passphrase
 *                source without a terminal → 2; existing wallet name → 1; usage → 2.
 *   scripted node a fake JSON-RPC server on 127.0.0.1 plays a reorg (confirmed → pending → unknown →
 *                confirmed elsewhere) during `send --wait`, a wait that times out, and the node's
 *                mempool refusals (nonce conflict, insufficient funds), which a real single node cannot
 *                produce on demand.
 *
 * New wallet files use scrypt N = 2^10 (MESHLEDGER_WALLET_SCRYPT_N) so the suite is fast; the default
 * N = 2^17 is covered by test/unit/wallet/keystore.test.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fromHex, toHex } from '../../src/encoding/bytes.js';
import { sha256 } from '../../src/crypto/hash.js';
import {
  Harness, describeCli, freePort, runCli, scaled, type CliResult, type KeyInfo, type NodeProc,
} from '../../harness/proc.js';

const PASS = 'correct horse battery staple';
const HEX64 = /^[0-9a-f]{64}$/;
const FAUCET_FUNDS = 10n ** 12n; // 1 000 000 MESH at 6 decimals
const MIN_FEE = 1000n; // 0.001 MESH

/** Change one character of an address's data part (the bech32m checksum must then fail). */
function typo(address: string, at = 12): string {
  const c = address[at]!;
  return address.slice(0, at) + (c === 'q' ? 'p' : 'q') + address.slice(at + 1);
}

function parseJson(r: CliResult): any {
  try {
    return JSON.parse(r.stdout);
  } catch (e) {
    throw new Error(`stdout is not JSON (${(e as Error).message}): ${describeCli(r)}`);
  }
}

describe('meshledger wallet', () => {
  const h = new Harness();
  after(() => h.cleanup());
  let node: NodeProc;
  let faucet: KeyInfo;
  let walletDir: string;
  let rpcUrl: string;
  let deadUrl: string;
  let env: NodeJS.ProcessEnv;
  let bob = '';
  let txid = '';

  /** `meshledger wallet ARGS…` with the suite's wallet dir, passphrase and node (extra env merged in). */
  const wallet = (args: string[], extraEnv: NodeJS.ProcessEnv = {}, timeoutMs = scaled(60_000)) =>
    runCli(['wallet', ...args], { env: { ...env, ...extraEnv }, timeoutMs });

  before(async () => {
    const v = await h.keygen('validator');
    faucet = await h.keygen('faucet');
    const g = await h.genesis({ validators: [v], alloc: [[faucet, FAUCET_FUNDS]], slotMs: 250, minFee: MIN_FEE });
    node = await h.startNode({ genesis: g.file, key: v.file, name: 'validator' });
    rpcUrl = `http://127.0.0.1:${node.rpcPort}`;
    deadUrl = `http://127.0.0.1:${await freePort()}`; // nobody listens there
    walletDir = path.join(await h.dir(), 'wallets');
    env = {
      ...process.env, MESHLEDGER_WALLET_DIR: walletDir, MESHLEDGER_PASSPHRASE: PASS, MESHLEDGER_WALLET_SCRYPT_N: '1024',
    };
    await h.waitForHeight(node, 1);
  });

  test('usage: --help, send --help, no subcommand, unknown subcommand and flag', async () => {
    const [help, sendHelp, helpSend, none, unknown, badFlag, top] = await Promise.all([
      wallet(['--help']), wallet(['send', '--help']), wallet(['help', 'send']), wallet([]), wallet(['frobnicate']),
      wallet(['list', '--frobnicate-xyz']), runCli(['--help']),
    ]);
    assert.equal(help.code, 0, describeCli(help));
    assert.match(help.stdout, /usage: meshledger wallet <subcommand>/);
    for (const s of ['create', 'import', 'list', 'address', 'balance', 'send', 'status', 'history']) assert.match(help.stdout, new RegExp(`\\b${s}\\b`));
    for (const r of [sendHelp, helpSend]) {
      assert.equal(r.code, 0, describeCli(r));
      assert.match(r.stdout, /usage: meshledger wallet send --from NAME --to ADDRESS --amount AMOUNT/);
      assert.match(r.stdout, /--wait N/);
    }
    assert.equal(none.code, 2, describeCli(none));
    assert.match(none.stderr, /usage: meshledger wallet/);
    assert.equal(unknown.code, 2, describeCli(unknown));
    assert.match(unknown.stderr, /unknown subcommand "frobnicate"/);
    assert.equal(badFlag.code, 2, describeCli(badFlag));
    assert.match(badFlag.stderr, /--frobnicate-xyz/);
    assert.match(top.stdout, /\bwallet\b/, 'top-level help lists wallet');
  });

  test('import the faucet, create a wallet, list and address', async () => {
    const imp = await wallet(['import', '--name', 'faucet', '--secret-key-file', faucet.file, '--json']);
    assert.equal(imp.code, 0, describeCli(imp));
    assert.equal(parseJson(imp).address, faucet.address);
    assert.match(imp.stderr, /MESHLEDGER_WALLET_SCRYPT_N=1024 is below the default/, 'a weak KDF is warned about');

    // a passphrase from a file works as well as the environment variable
    const passFile = path.join(await h.dir(), 'bob.pass');
    writeFileSync(passFile, `${PASS}\n`, { mode: 0o600 });
    const cr = await wallet(['create', '--name', 'bob', '--passphrase-file', passFile, '--json'], { MESHLEDGER_PASSPHRASE: 'ignored: the file wins' });
    assert.equal(cr.code, 0, describeCli(cr));
    bob = parseJson(cr).address;
    assert.match(bob, /^ml1/);

    const [list, listText, addr, addrJson] = await Promise.all([
      wallet(['list', '--json']), wallet(['list']), wallet(['address', '--name', 'bob']), wallet(['address', '--name', 'faucet', '--json']),
    ]);
    assert.equal(list.code, 0, describeCli(list));
    assert.deepEqual(parseJson(list), [{ name: 'bob', address: bob }, { name: 'faucet', address: faucet.address }]);
    assert.match(listText.stdout, new RegExp(`^bob\\s+${bob}$`, 'm'));
    assert.equal(addr.code, 0, describeCli(addr));
    assert.equal(addr.stdout.trim(), bob);
    assert.deepEqual(parseJson(addrJson), { name: 'faucet', address: faucet.address });

    // the files: mode 0600, and the faucet's plaintext secret key is nowhere in them
    const files = readdirSync(walletDir).sort();
    assert.deepEqual(files, ['bob.json', 'faucet.json']);
    for (const f of files) {
      const p = path.join(walletDir, f);
      assert.equal(statSync(p).mode & 0o777, 0o600, `${f} mode`);
      assert.ok(!readFileSync(p, 'utf8').includes(toHex(faucet.secretKey)), `${f} does not hold the plaintext key`);
    }
    // nor does any output
    assert.ok(![imp, cr, list, listText].some((r) => (r.stdout + r.stderr).includes(toHex(faucet.secretKey))));

    // an existing name is refused and left alone
    const before = readFileSync(path.join(walletDir, 'bob.json'));
    const again = await wallet(['create', '--name', 'bob']);
    assert.equal(again.code, 1, describeCli(again));
    assert.match(again.stderr, /already exists/);
    assert.deepEqual(readFileSync(path.join(walletDir, 'bob.json')), before);
  });

  test('send with --wait 2: confirmed; status, balance and history show it', async () => {
    assert.ok(bob, 'the previous test created bob');
    const send = await wallet(['send', '--from', 'faucet', '--to', bob, '--amount', '12.345', '--memo', 'e2e', '--wait', '2', '--rpc', rpcUrl, '--json'], {}, scaled(150_000));
    assert.equal(send.code, 0, describeCli(send));
    const s = parseJson(send);
    assert.match(s.id, HEX64);
    txid = s.id;
    assert.equal(s.amount, '12345000');
    assert.equal(s.fee, MIN_FEE.toString(), 'the default fee is the chain minimum');
    assert.equal(s.nonce, '0');
    assert.equal(s.status.status, 'confirmed');
    assert.ok(s.status.confirmations >= 2, JSON.stringify(s.status));
    assert.match(send.stderr, /confirmations 2\/2/, 'progress is shown on stderr');

    const [st, stJson, bal, balJson, fbal] = await Promise.all([
      wallet(['status', txid, '--rpc', rpcUrl]),
      wallet(['status', txid, '--rpc', rpcUrl, '--json']),
      wallet(['balance', '--name', 'bob', '--rpc', rpcUrl]),
      wallet(['balance', '--address', bob, '--rpc', rpcUrl, '--json']),
      wallet(['balance', '--name', 'faucet', '--rpc', rpcUrl, '--json']),
    ]);
    assert.equal(st.code, 0, describeCli(st));
    assert.match(st.stdout, /^status\s+confirmed \(\d+ confirmations?, block \d+\)$/m);
    assert.match(st.stdout, /^amount\s+12\.345 MESH$/m);
    assert.match(st.stdout, /^fee\s+0\.001 MESH$/m);
    assert.match(st.stdout, /^memo\s+"e2e"$/m);
    const sj = parseJson(stJson);
    assert.equal(sj.status, 'confirmed');
    assert.equal(sj.transaction.amount, '12345000');
    assert.equal(bal.code, 0, describeCli(bal));
    assert.equal(bal.stdout.trim(), '12.345 MESH');
    const bj = parseJson(balJson);
    assert.equal(bj.balance, '12345000');
    assert.equal(bj.display, '12.345');
    assert.equal(bj.symbol, 'MESH');
    assert.equal(bj.decimals, 6);
    assert.equal(BigInt(parseJson(fbal).balance), FAUCET_FUNDS - 12_345_000n - MIN_FEE);

    // a second transfer (nonce 1, no --wait), then history with paging
    const send2 = await wallet(['send', '--from', 'faucet', '--to', bob, '--amount', '1', '--fee', '0.002', '--rpc', rpcUrl]);
    assert.equal(send2.code, 0, describeCli(send2));
    const id2 = send2.stdout.trim();
    assert.match(id2, HEX64);
    assert.match(send2.stderr, /nonce 1/);
    await h.waitFor(async () => {
      const r = await wallet(['status', id2, '--rpc', rpcUrl, '--json']);
      return r.code === 0 && parseJson(r).status === 'confirmed';
    }, scaled(60_000), 'second transfer confirmed', [node], 300);

    const [hist, histJson, fhist] = await Promise.all([
      wallet(['history', '--name', 'bob', '--rpc', rpcUrl]),
      wallet(['history', '--name', 'bob', '--rpc', rpcUrl, '--json', '--limit', '1']),
      wallet(['history', '--address', faucet.address, '--rpc', rpcUrl, '--json']),
    ]);
    assert.equal(hist.code, 0, describeCli(hist));
    const lines = hist.stdout.trim().split('\n');
    assert.equal(lines.length, 2, hist.stdout);
    assert.match(lines[0]!, new RegExp(`received\\s+\\+1 MESH\\s+from ${faucet.address}\\s+${id2}$`), 'newest first');
    assert.match(lines[1]!, new RegExp(`received\\s+\\+12\\.345 MESH\\s+from ${faucet.address}\\s+${txid}$`));
    const page1 = parseJson(histJson);
    assert.equal(page1.transactions.length, 1);
    assert.equal(page1.transactions[0].id, id2);
    assert.equal(page1.transactions[0].direction, 'received');
    assert.match(page1.next, /^[0-9a-f]{26}$/);
    const p2 = await wallet(['history', '--name', 'bob', '--rpc', rpcUrl, '--json', '--limit', '1', '--cursor', page1.next]);
    assert.equal(p2.code, 0, describeCli(p2));
    assert.deepEqual(parseJson(p2).transactions.map((e: any) => e.id), [txid]);
    const fj = parseJson(fhist);
    assert.deepEqual(fj.transactions.map((e: any) => [e.id, e.direction]), [[id2, 'sent'], [txid, 'sent']]);
  });

  test('status of an id the node never saw is "unknown"', async () => {
    const r = await wallet(['status', 'ab'.repeat(32), '--rpc', rpcUrl, '--json']);
    assert.equal(r.code, 0, describeCli(r));
    assert.equal(parseJson(r).status, 'unknown');
    const bad = await wallet(['status', 'xyz', '--rpc', rpcUrl]);
    assert.equal(bad.code, 2, describeCli(bad));
  });

  test('wrong passphrase → exit 1 and says so; nothing is sent', async () => {
    const r = await wallet(['send', '--from', 'faucet', '--to', bob, '--amount', '1', '--rpc', rpcUrl], { MESHLEDGER_PASSPHRASE: 'not it' });
    assert.equal(r.code, 1, describeCli(r));
    assert.match(r.stderr, /wrong passphrase/);
    assert.equal(r.stdout, '');
  });

  test('too many decimals → exit 2 naming the rule', async () => {
    const r = await wallet(['send', '--from', 'faucet', '--to', bob, '--amount', '1.1234567', '--rpc', rpcUrl]);
    assert.equal(r.code, 2, describeCli(r));
    assert.match(r.stderr, /7 decimals, the unit allows at most 6/);
    assert.match(r.stderr, /too_many_decimals/);
    const syntax = await Promise.all(['1e3', '-1', '1.', '.5', '1,5', '0'].map((a) => wallet(['send', '--from', 'faucet', '--to', bob, '--amount', a, '--rpc', rpcUrl])));
    syntax.forEach((s, i) => assert.equal(s.code, 2, `amount #${i}: ${describeCli(s)}`));
  });

  test('bad address checksum → exit 2 before the node is contacted', async () => {
    // the --rpc URL is dead: had the command contacted the node, it would have failed with exit 1 instead
    const r = await wallet(['send', '--from', 'faucet', '--to', typo(bob), '--amount', '1', '--rpc', deadUrl]);
    assert.equal(r.code, 2, describeCli(r));
    assert.match(r.stderr, /--to: .*check for a typo/);
    assert.doesNotMatch(r.stderr, /cannot reach/);
    const bal = await wallet(['balance', '--address', typo(bob), '--rpc', deadUrl]);
    assert.equal(bal.code, 2, describeCli(bal));
  });

  test('insufficient funds → exit 1 naming insufficient funds', async () => {
    const r = await wallet(['send', '--from', 'bob', '--to', faucet.address, '--amount', '100', '--rpc', rpcUrl]);
    assert.equal(r.code, 1, describeCli(r));
    assert.match(r.stderr, /insufficient funds/);
    assert.match(r.stderr, /13\.345 MESH/, 'the balance is shown');
  });

  test('node unreachable → exit 1 naming the URL', async () => {
    const runs = await Promise.all([
      wallet(['balance', '--name', 'bob', '--rpc', deadUrl]),
      wallet(['send', '--from', 'faucet', '--to', bob, '--amount', '1', '--rpc', deadUrl]),
      wallet(['status', txid || 'ab'.repeat(32), '--rpc', deadUrl]),
    ]);
    for (const r of runs) {
      assert.equal(r.code, 1, describeCli(r));
      assert.ok(r.stderr.includes(`cannot reach the node at ${deadUrl}`), r.stderr);
    }
  });

  test('no passphrase and no terminal → exit 2 with what to do', async () => {
    const r = await wallet(['create', '--name', 'carol'], { MESHLEDGER_PASSPHRASE: undefined });
    assert.equal(r.code, 2, describeCli(r));
    assert.match(r.stderr, /MESHLEDGER_PASSPHRASE/);
    assert.match(r.stderr, /--passphrase-file/);
    const s = await wallet(['send', '--from', 'faucet', '--to', bob, '--amount', '1', '--rpc', rpcUrl], { MESHLEDGER_PASSPHRASE: undefined });
    assert.equal(s.code, 2, describeCli(s));
    assert.ok(!readdirSync(walletDir).includes('carol.json'));
  });
});

// ================================================================================================ scripted node

interface Scripted {
  url: string;
  calls: { method: string; params: any }[];
  close(): Promise<void>;
}

/**
 * A fake node: answers getChainInfo / getAccount itself, sendTransaction with the real id of the bytes (or
 * `sendError`), and getTransaction from `statuses` (one per call, the last one repeated).
 */
async function scriptedNode(o: { statuses?: ((id: string) => any)[]; sendError?: { code: number; message: string; data: any } }): Promise<Scripted> {
  const calls: { method: string; params: any }[] = [];
  let polls = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => {
      const j = JSON.parse(body);
      calls.push({ method: j.method, params: j.params });
      const reply = (x: object) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: j.id, ...x }));
      };
      switch (j.method) {
        case 'getChainInfo':
          return reply({ result: {
            chainId: 'meshledger-devnet', genesisHash: '00'.repeat(32), height: 10, headHash: '11'.repeat(32), headSlot: 10, validators: [],
            genesisTime: 0, slotMs: 200, minFee: '1', decimals: 6, symbol: 'MESH', totalSupply: '1000000000000',
          } });
        case 'getAccount':
          return reply({ result: { address: j.params.address, balance: '1000000000', nonce: '4', nextNonce: '5', pending: 0 } });
        case 'sendTransaction':
          if (o.sendError) return reply({ error: o.sendError });
          return reply({ result: toHex(sha256(fromHex(j.params.tx))) });
        case 'getTransaction': {
          const list = o.statuses ?? [];
          const f = list[Math.min(polls++, list.length - 1)]!;
          return reply({ result: f(j.params.id) });
        }
        default:
          return reply({ error: { code: -32601, message: 'Method not found' } });
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

describe('meshledger wallet send against a scripted node', () => {
  const h = new Harness();
  after(() => h.cleanup());
  let env: NodeJS.ProcessEnv;
  let to = '';

  before(async () => {
    const k = await h.keygen('payer');
    to = (await h.keygen('payee')).address;
    env = { ...process.env, MESHLEDGER_WALLET_DIR: path.join(await h.dir(), 'w'), MESHLEDGER_PASSPHRASE: PASS, MESHLEDGER_WALLET_SCRYPT_N: '1024' };
    const r = await runCli(['wallet', 'import', '--name', 'payer', '--secret-key-file', k.file], { env });
    assert.equal(r.code, 0, describeCli(r));
  });

  const send = (url: string, extra: string[]) =>
    runCli(['wallet', 'send', '--from', 'payer', '--to', to, '--amount', '2.5', '--rpc', url, ...extra], { env, timeoutMs: scaled(60_000) });

  test('a reorg during --wait is reported, the transaction re-offered, and the wait goes on to N confirmations', async () => {
    const pending = (id: string) => ({ id, status: 'pending', transaction: {} });
    const inBlock = (height: number, hash: string, confirmations: number) => (id: string) => ({
      id, status: 'confirmed', blockHeight: height, blockHash: hash, index: 0, confirmations,
      transaction: { id, chainId: 'meshledger-devnet', from: to, to, amount: '2500000', fee: '1', nonce: '5', memo: '', signature: '00'.repeat(64) },
    });
    const node = await scriptedNode({ statuses: [
      pending, inBlock(11, 'aa'.repeat(32), 1), pending, (id) => ({ id, status: 'unknown' }), pending,
      inBlock(12, 'bb'.repeat(32), 1), inBlock(12, 'bb'.repeat(32), 2), inBlock(12, 'bb'.repeat(32), 3),
    ] });
    try {
      const r = await send(node.url, ['--wait', '3', '--json']);
      assert.equal(r.code, 0, describeCli(r));
      const j = parseJson(r);
      assert.equal(j.nonce, '5', 'the nonce is the node\'s nextNonce');
      assert.equal(j.amount, '2500000');
      assert.equal(j.status.blockHeight, 12);
      assert.match(r.stderr, /confirmations 1\/3 \(block 11\)/);
      assert.match(r.stderr, /reorg: the transaction was in block 11 .* it is pending now — still waiting/);
      assert.match(r.stderr, /confirmations 3\/3 \(block 12\)/);
      const sends = node.calls.filter((c) => c.method === 'sendTransaction');
      assert.ok(sends.length >= 2, 'the signed bytes were offered again after the reorg made the tx unknown');
      assert.ok(sends.every((c) => c.params.tx === sends[0]!.params.tx), 'the same signed bytes (same id)');
    } finally {
      await node.close();
    }
  });

  test('--wait that never reaches N confirmations times out with exit 1', async () => {
    const node = await scriptedNode({ statuses: [(id) => ({ id, status: 'pending', transaction: {} })] });
    try {
      const t0 = Date.now();
      const r = await send(node.url, ['--wait', '1', '--timeout', '2']);
      assert.equal(r.code, 1, describeCli(r));
      assert.match(r.stdout.trim(), HEX64, 'the id was printed when it was submitted');
      assert.match(r.stderr, /timed out after 2 s waiting for 1 confirmation/);
      assert.match(r.stderr, /last status: pending/);
      assert.ok(Date.now() - t0 >= 2000);
    } finally {
      await node.close();
    }
  });

  test('mempool refusals: nonce conflict and insufficient funds → exit 1 saying so', async () => {
    const cases: [string, RegExp][] = [
      ['nonce_too_low', /nonce conflict \(nonce_too_low\)/],
      ['replacement_underpriced', /nonce conflict \(replacement_underpriced\)/],
      ['insufficient_funds', /insufficient funds/],
    ];
    for (const [rule, re] of cases) {
      const node = await scriptedNode({ sendError: { code: -32003, message: 'Transaction rejected by the mempool', data: { rule, message: `${rule}: scripted` } } });
      try {
        const r = await send(node.url, []);
        assert.equal(r.code, 1, `${rule}: ${describeCli(r)}`);
        assert.match(r.stderr, re);
        assert.equal(r.stdout, '', 'no id is printed for a refused transaction');
      } finally {
        await node.close();
      }
    }
  });
});
