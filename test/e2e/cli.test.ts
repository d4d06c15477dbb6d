/**
 * The CLI contract, end to end: real `meshledger` processes, real files, real HTTP on 127.0.0.1.
 *
 *   exit codes   0 success · 1 the command failed · 2 usage error
 *   keygen       key file mode 0600, prints a valid ml1… address, never destroys an existing key file
 *   genesis      validates --alloc addresses (bech32m checksum), never destroys an existing genesis file
 *                (since 6801ce1 an existing --out file is moved to FILE.<time>.bak instead of exit 1)
 *   node         refuses a missing genesis and a datadir in use, keeps networks apart in one datadir; a validator
 *                produces blocks, a follower (no P2P yet) stays at genesis; JSON-RPC transaction flow and
 *                error codes; SIGTERM exits 0 and a restart resumes the same chain.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { decodeAddress } from '../../src/encoding/address.js';
import { toHex } from '../../src/encoding/bytes.js';
import {
  Harness, REPO_ROOT, describeCli, rpc, rpcError, runCli, scaled, signTransfer,
  type GenesisInfo, type KeyInfo, type NodeProc,
} from '../../harness/proc.js';

const COMMANDS = ['keygen', 'genesis', 'node', 'devnet'] as const;
const HEX64 = /^[0-9a-f]{64}$/;
const SUPPLY = 10n ** 15n;

/** The FILE.<time>.bak copies of `file` in its folder. */
function backupsOf(file: string): string[] {
  const base = path.basename(file);
  return readdirSync(path.dirname(file)).filter((n) => n.startsWith(base + '.') && n.endsWith('.bak')).map((n) => path.join(path.dirname(file), n));
}

/** Change one character of an address's data part to another bech32 character (checksum must then fail). */
function typo(address: string, at = 12): string {
  const c = address[at]!;
  const repl = c === 'q' ? 'p' : 'q';
  return address.slice(0, at) + repl + address.slice(at + 1);
}

// ================================================================================================ usage

describe('usage and exit codes', () => {
  test('--help (and -h) on every subcommand exits 0 and prints its usage', async () => {
    const runs = await Promise.all(COMMANDS.flatMap((c) => [runCli([c, '--help']), runCli([c, '-h'])]));
    runs.forEach((r, i) => {
      const cmd = COMMANDS[i >> 1]!;
      assert.equal(r.code, 0, `${cmd} ${i & 1 ? '-h' : '--help'}: ${describeCli(r)}`);
      assert.match(r.stdout, new RegExp(`usage: meshledger ${cmd}\\b`), `${cmd} --help prints its usage line`);
      assert.match(r.stdout, /--/, `${cmd} --help lists flags`);
    });
    // --help wins over otherwise invalid flags
    const r = await runCli(['keygen', '--no-such-flag', '--help']);
    assert.equal(r.code, 0, describeCli(r));
  });

  test('top-level --help exits 0; no command at all is a usage error (2); version prints the version', async () => {
    const [help, none, ver] = await Promise.all([runCli(['--help']), runCli([]), runCli(['version'])]);
    assert.equal(help.code, 0, describeCli(help));
    for (const c of COMMANDS) assert.match(help.stdout, new RegExp(`\\b${c}\\b`), `top-level help lists ${c}`);
    assert.match(help.stdout, /exit codes/);
    assert.equal(none.code, 2, describeCli(none));
    assert.match(none.stdout + none.stderr, /usage: meshledger <command>/);
    assert.equal(ver.code, 0, describeCli(ver));
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(ver.stdout.trim(), pkg.version);
  });

  test('an unknown command exits 2 and names it', async () => {
    const r = await runCli(['frobnicate', '--out', 'x']);
    assert.equal(r.code, 2, describeCli(r));
    assert.match(r.stderr, /unknown command "frobnicate"/);
    assert.match(r.stderr, /usage:/);
  });

  test('an unknown flag exits 2 and names the flag, for every subcommand', async () => {
    const runs = await Promise.all(COMMANDS.map((c) => runCli([c, '--frobnicate-xyz', '1'])));
    runs.forEach((r, i) => {
      assert.equal(r.code, 2, `${COMMANDS[i]}: ${describeCli(r)}`);
      assert.match(r.stderr, /--frobnicate-xyz/, `${COMMANDS[i]}: the message names the flag`);
      assert.match(r.stderr, /usage:/, `${COMMANDS[i]}: usage follows the error`);
    });
  });

  test('a missing required flag exits 2 and names the flag', async (t) => {
    const h = new Harness(t);
    const dir = await h.dir();
    const cases: [string[], string][] = [
      [['keygen'], '--out'],
      [['genesis', '--out', path.join(dir, 'g.json')], '--validators'],
      [['genesis', '--validators', 'ml1xyz'], '--out'],
      [['node', '--genesis', path.join(dir, 'g.json')], '--datadir'],
      [['node', '--datadir', path.join(dir, 'd')], '--genesis'],
    ];
    const runs = await Promise.all(cases.map(([args]) => runCli(args)));
    runs.forEach((r, i) => {
      const [args, flag] = cases[i]!;
      assert.equal(r.code, 2, `${args.join(' ')}: ${describeCli(r)}`);
      assert.ok(r.stderr.includes(`${flag} is required`), `${args.join(' ')}: names ${flag}\n${r.stderr}`);
    });
    assert.ok(!existsSync(path.join(dir, 'g.json')) && !existsSync(path.join(dir, 'd')), 'a usage error writes nothing');
  });

  test('bad flag values exit 2 (slot-ms, --rpc, --bootnodes, --log-level)', async (t) => {
    const h = new Harness(t);
    const dir = await h.dir();
    const g = path.join(dir, 'none.json');
    const v = await h.keygen('v');
    const cases: [string[], RegExp][] = [
      [['genesis', '--validators', v.address, '--out', path.join(dir, 'g.json'), '--slot-ms', 'fast'], /--slot-ms/],
      [['node', '--datadir', path.join(dir, 'd'), '--genesis', g, '--rpc', 'localhost'], /--rpc/],
      [['node', '--datadir', path.join(dir, 'd'), '--genesis', g, '--bootnodes', 'http://x:1'], /--bootnodes/],
      [['node', '--datadir', path.join(dir, 'd'), '--genesis', g, '--log-level', 'loud'], /--log-level/],
    ];
    const runs = await Promise.all(cases.map(([args]) => runCli(args)));
    runs.forEach((r, i) => {
      assert.equal(r.code, 2, `${cases[i]![0].join(' ')}: ${describeCli(r)}`);
      assert.match(r.stderr, cases[i]![1]);
    });
    assert.ok(!existsSync(path.join(dir, 'g.json')) && !existsSync(path.join(dir, 'd')), 'a usage error writes nothing');
  });
});

// ================================================================================================ keygen, genesis

describe('keygen', () => {
  test('writes a 0600 key file, prints its valid ml1… address; never destroys an existing key', async (t) => {
    const h = new Harness(t);
    const file = path.join(await h.dir(), 'k.json');
    const r = await runCli(['keygen', '--out', file]);
    assert.equal(r.code, 0, describeCli(r));
    const address = r.stdout.trim();
    assert.match(address, /^ml1[02-9ac-hj-np-z]{58}$/);
    const pk = decodeAddress(address); // checksum and length
    assert.equal(pk.length, 32);
    assert.equal(statSync(file).mode & 0o777, 0o600, `mode is ${(statSync(file).mode & 0o777).toString(8)}`);
    const body = readFileSync(file, 'utf8');
    const j = JSON.parse(body) as { type: string; address: string; publicKey: string; secretKey: string };
    assert.equal(j.type, 'ed25519');
    assert.equal(j.address, address);
    assert.equal(j.publicKey, toHex(pk));
    assert.match(j.secretKey, HEX64);

    // Contract since 6801ce1: the old key is kept as FILE.<time>.bak (0600, byte-identical), a note goes to stderr.
    const again = await runCli(['keygen', '--out', file]);
    assert.equal(again.code, 0, describeCli(again));
    const backups = backupsOf(file);
    assert.equal(backups.length, 1, `one backup of the old key: ${backups.join(', ')}`);
    assert.equal(readFileSync(backups[0]!, 'utf8'), body, 'the old key survives byte for byte');
    assert.equal(statSync(backups[0]!).mode & 0o777, 0o600, 'the backup is still 0600');
    assert.ok(again.stderr.includes(backups[0]!), `stderr names the backup: ${again.stderr}`);
    assert.equal(again.stdout.trim(), JSON.parse(readFileSync(file, 'utf8')).address, 'prints the NEW address');
    assert.notEqual(again.stdout.trim(), address);
    assert.equal(statSync(file).mode & 0o777, 0o600, 'the new key is 0600');
  });

  test('keygen into a missing folder exits 1 and writes nothing', async (t) => {
    const h = new Harness(t);
    const file = path.join(await h.dir(), 'no-such-dir', 'k.json');
    const r = await runCli(['keygen', '--out', file]);
    assert.equal(r.code, 1, describeCli(r));
    assert.match(r.stderr, /cannot write/);
    assert.equal(r.stdout, '', 'no address printed for a key that was not written');
  });

  test('--json prints address, publicKey and file', async (t) => {
    const h = new Harness(t);
    const file = path.join(await h.dir(), 'k.json');
    const r = await runCli(['keygen', '--out', file, '--json']);
    assert.equal(r.code, 0, describeCli(r));
    const j = JSON.parse(r.stdout) as { address: string; publicKey: string; file: string };
    assert.equal(j.file, file);
    assert.equal(toHex(decodeAddress(j.address)), j.publicKey);
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });

  test('two keygens give different keys', async (t) => {
    const h = new Harness(t);
    const [a, b] = await Promise.all([h.keygen('a'), h.keygen('b')]);
    assert.notEqual(a.address, b.address);
  });
});

describe('genesis', () => {
  test('writes a genesis file; never destroys an existing one', async (t) => {
    const h = new Harness(t);
    const [v, f] = await Promise.all([h.keygen('v'), h.keygen('f')]);
    const out = path.join(await h.dir(), 'genesis.json');
    const r = await runCli(['genesis', '--validators', v.file, '--alloc', `${f.address}=123456`, '--slot-ms', '250', '--chain-id', 'cli-test', '--out', out]);
    assert.equal(r.code, 0, describeCli(r));
    assert.match(r.stdout, /supply 123456/);
    const body = readFileSync(out, 'utf8');
    const j = JSON.parse(body);
    assert.deepEqual(j.validators, [v.address]);
    assert.deepEqual(j.alloc, [{ address: f.address, amount: '123456' }]);
    assert.equal(j.slotMs, 250);
    assert.equal(j.chainId, 'cli-test');

    // validators may also be given as addresses
    const out2 = path.join(await h.dir(), 'genesis-addr.json');
    const r2 = await runCli(['genesis', '--validators', v.address, '--out', out2, '--genesis-time', String(j.genesisTime), '--slot-ms', '250', '--chain-id', 'cli-test', '--alloc', `${f.address}=123456`]);
    assert.equal(r2.code, 0, describeCli(r2));
    assert.deepEqual(JSON.parse(readFileSync(out2, 'utf8')), j, 'key file and address give the same genesis');

    // A usage error leaves an existing file alone (no backup either) ...
    const bad = await runCli(['genesis', '--validators', v.file, '--alloc', `${typo(f.address)}=1`, '--out', out]);
    assert.equal(bad.code, 2, describeCli(bad));
    assert.equal(readFileSync(out, 'utf8'), body);
    assert.deepEqual(backupsOf(out), []);
    // ... and since 6801ce1 a successful run keeps the old file as FILE.<time>.bak.
    const again = await runCli(['genesis', '--validators', v.file, '--chain-id', 'cli-test-2', '--out', out]);
    assert.equal(again.code, 0, describeCli(again));
    const backups = backupsOf(out);
    assert.equal(backups.length, 1, backups.join(', '));
    assert.equal(readFileSync(backups[0]!, 'utf8'), body, 'the old genesis survives byte for byte');
    assert.ok(again.stderr.includes(backups[0]!), `stderr names the backup: ${again.stderr}`);
    assert.equal(JSON.parse(readFileSync(out, 'utf8')).chainId, 'cli-test-2');
  });

  test('--alloc with a bad address checksum (one character changed) exits 2 with a clear message', async (t) => {
    const h = new Harness(t);
    const [v, f] = await Promise.all([h.keygen('v'), h.keygen('f')]);
    const bad = typo(f.address);
    assert.notEqual(bad, f.address);
    const out = path.join(await h.dir(), 'genesis.json');
    const r = await runCli(['genesis', '--validators', v.file, '--alloc', `${bad}=1000`, '--out', out]);
    assert.equal(r.code, 2, describeCli(r));
    assert.match(r.stderr, /--alloc/);
    assert.match(r.stderr, /checksum|typo/i);
    assert.ok(!existsSync(out), 'nothing written');

    const r2 = await runCli(['genesis', '--validators', v.file, '--alloc', 'not-an-assignment', '--out', out]);
    assert.equal(r2.code, 2, describeCli(r2));
    assert.match(r2.stderr, /ADDRESS=AMOUNT/);

    const r3 = await runCli(['genesis', '--validators', typo(v.address), '--out', out]);
    assert.equal(r3.code, 2, describeCli(r3));
    assert.match(r3.stderr, /--validators/);
    assert.ok(!existsSync(out), 'nothing written');
  });
});

// ================================================================================================ node start-up failures

describe('node start-up failures', () => {
  test('a missing genesis file exits 1 with a clear message', async (t) => {
    const h = new Harness(t);
    const dir = await h.dir();
    const missing = path.join(dir, 'no-such-genesis.json');
    const r = await runCli(['node', '--datadir', path.join(dir, 'd'), '--genesis', missing]);
    assert.equal(r.code, 1, describeCli(r));
    assert.match(r.stderr, /cannot read genesis file/);
    assert.ok(r.stderr.includes(missing), 'names the file');
    assert.match(r.stderr, /ENOENT/);
  });

  test('a datadir reused with another genesis keeps each network in its own database and says so', async (t) => {
    const h = new Harness(t);
    const v = await h.keygen('v');
    const gA = await h.genesis({ validators: [v], chainId: 'net-a', slotMs: 200 });
    const gB = await h.genesis({ validators: [v], chainId: 'net-b', slotMs: 200 });
    const a = await h.startNode({ genesis: gA.file, key: v.file, name: 'a' });
    await h.waitForHeight(a, 3, scaled(20_000));
    const hashA1 = (await a.rpc('getBlockHeader', { height: 1 })).hash;
    const stopped = await h.stop(a);
    assert.deepEqual([stopped.code, stopped.forced], [0, false], a.describe());

    // Same datadir, other genesis: it runs network B in a separate database and names network A in a warning.
    const b = await h.startNode({ genesis: gB.file, name: 'b', datadir: a.datadir });
    const info = await b.rpc('getChainInfo');
    assert.equal(info.chainId, 'net-b');
    assert.equal(info.height, 0, 'network B starts from its own genesis, not from network A\'s blocks');
    assert.match(b.log(), /other networks; they are left untouched/);
    assert.match(b.log(), /net-a-/);
    await h.stop(b);

    // Network A's data is untouched.
    const a2 = await h.restart(a);
    const again = await a2.rpc('getChainInfo');
    assert.equal(again.chainId, 'net-a');
    assert.ok(again.height >= 3);
    assert.equal((await a2.rpc('getBlockHeader', { height: 1 })).hash, hashA1);
  });
});

// ================================================================================================ a running validator

describe('a validator node with --rpc', () => {
  const h = new Harness();
  after(() => h.cleanup());
  let v: KeyInfo;
  let faucet: KeyInfo;
  let g: GenesisInfo;
  let node: NodeProc;
  let bob: string;
  const AMOUNT = 1_234_567n;
  const FEE = 17n;
  let sent: ReturnType<typeof signTransfer>;

  before(async () => {
    [v, faucet] = await Promise.all([h.keygen('validator'), h.keygen('faucet')]);
    bob = (await h.keygen('bob')).address;
    g = await h.genesis({ validators: [v], alloc: [[faucet, SUPPLY]], slotMs: 200, chainId: 'cli-e2e' });
    node = await h.startNode({ genesis: g.file, key: v.file, name: 'validator' });
  });

  test('produces blocks: height grows, getChainInfo fields, getBlockHeader by height and by hash agree', async () => {
    const i0 = await node.rpc('getChainInfo');
    for (const k of ['chainId', 'genesisHash', 'height', 'headHash', 'headSlot', 'validators']) assert.ok(k in i0, `getChainInfo has ${k}`);
    assert.equal(i0.chainId, 'cli-e2e');
    assert.deepEqual(i0.validators, [v.address]);
    assert.match(i0.genesisHash, HEX64);
    assert.match(i0.headHash, HEX64);

    const i1 = await h.waitForHeight(node, i0.height + 3, scaled(30_000));
    assert.ok(i1.height >= i0.height + 3);
    assert.ok(i1.headSlot >= i1.height, 'slots advance at least as fast as heights');

    const genesisHeader = await node.rpc('getBlockHeader', { height: 0 });
    assert.equal(genesisHeader.hash, i1.genesisHash, 'header at height 0 is the genesis');

    let child: any;
    for (let hgt = i1.height; hgt >= 1; hgt--) {
      const byHeight = await node.rpc('getBlockHeader', { height: hgt });
      const byHash = await node.rpc('getBlockHeader', { hash: byHeight.hash });
      assert.deepEqual(byHash, byHeight, `height ${hgt}: by height and by hash agree`);
      assert.equal(byHeight.height, hgt);
      assert.equal(byHeight.proposer, v.address);
      assert.equal(byHeight.chainId, 'cli-e2e');
      assert.equal(byHeight.timestamp, g.json.genesisTime + byHeight.slot * g.slotMs, 'timestamp is the slot start');
      if (child) {
        assert.equal(child.parentHash, byHeight.hash, `parent link ${hgt + 1} → ${hgt}`);
        assert.ok(child.slot > byHeight.slot);
      }
      child = byHeight;
      if (i1.height - hgt >= 5) break;
    }
    const head = await node.rpc('getBlockHeader', { hash: i1.headHash });
    assert.equal(head.height, i1.height);

    const unknown = await rpcError(node.rpcPort!, 'getBlockHeader', { height: 10_000_000 });
    assert.equal(unknown.code, -32000);
    assert.equal(unknown.data?.rule, 'unknown_block');
    const both = await rpcError(node.rpcPort!, 'getBlockHeader', { height: 1, hash: i1.headHash });
    assert.equal(both.code, -32602);
  });

  test('a follower (no --key, no peers) starts on the same genesis and stays at height 0', async () => {
    const f = await h.startNode({ genesis: g.file, name: 'follower' });
    const vi = await node.rpc('getChainInfo');
    const fi = await f.rpc('getChainInfo');
    assert.equal(fi.genesisHash, vi.genesisHash);
    assert.equal(fi.height, 0);
    // Let the validator produce several more blocks while watching the follower.
    const target = vi.height + 5;
    await h.waitFor(async () => {
      const [a, b] = await Promise.all([node.rpc('getChainInfo'), f.rpc('getChainInfo')]);
      assert.equal(b.height, 0, 'follower left height 0');
      return a.height >= target;
    }, scaled(30_000), 'validator 5 blocks ahead', [node, f]);
    assert.equal((await f.rpc('getChainInfo')).height, 0);
    assert.equal((await f.rpc('getChainInfo')).headHash, vi.genesisHash);
    const st = await h.stop(f);
    assert.equal(st.code, 0, f.describe());
  });

  test('sendTransaction: a signed transfer from the faucet gets its id and is confirmed in a block', async () => {
    const before0 = await node.rpc('getAccount', { address: faucet.address });
    assert.deepEqual(before0, { address: faucet.address, balance: SUPPLY.toString(), nonce: '0', nextNonce: '0', pending: 0 });
    const v0 = BigInt((await node.rpc('getAccount', { address: v.address })).balance);
    assert.equal(v0, 0n, 'the validator starts with nothing');

    sent = signTransfer({ from: faucet, to: bob, amount: AMOUNT, fee: FEE, nonce: 0, chainId: g.chainId });
    const id = await node.rpc('sendTransaction', { tx: sent.hex });
    assert.equal(id, sent.id, 'the id is SHA-256 of the signed bytes');

    const bobAcc = await h.waitFor(async () => {
      const a = await node.rpc('getAccount', { address: bob });
      return a.balance !== '0' ? a : undefined;
    }, scaled(30_000), 'transfer confirmed', [node]);
    assert.equal(bobAcc.balance, AMOUNT.toString());
    assert.equal(bobAcc.nonce, '0');

    const fAcc = await node.rpc('getAccount', { address: faucet.address });
    assert.equal(fAcc.nonce, '1', 'sender nonce 1');
    assert.equal(fAcc.nextNonce, '1');
    assert.equal(fAcc.pending, 0);
    assert.equal(BigInt(fAcc.balance), SUPPLY - AMOUNT - FEE, 'the faucet pays amount + fee');
    const vAcc = await node.rpc('getAccount', { address: v.address });
    assert.equal(BigInt(vAcc.balance), FEE, 'the validator receives the fee');

    // The transaction is in exactly one block of the chain.
    const head = (await node.rpc('getChainInfo')).height;
    let withTx = 0;
    for (let hgt = 1; hgt <= head; hgt++) withTx += (await node.rpc('getBlockHeader', { height: hgt })).txCount;
    assert.equal(withTx, 1, 'one transaction in the whole chain');
  });

  test('re-sending a pending transaction returns the same id (follower: it stays pending)', async () => {
    // A follower never includes anything, so the transaction is certainly still pending on the re-send.
    const f = await h.startNode({ genesis: g.file, name: 'follower-2' });
    const tx = signTransfer({ from: faucet, to: bob, amount: 5, fee: 1, nonce: 0, chainId: g.chainId });
    const [a, b] = await Promise.all([f.rpc('sendTransaction', { tx: tx.hex }), f.rpc('sendTransaction', { tx: tx.hex })]);
    const c = await f.rpc('sendTransaction', { tx: '0x' + tx.hex });
    const d = await f.rpc('sendTransaction', { tx: Buffer.from(tx.tx.bytes).toString('base64') });
    assert.deepEqual([a, b, c, d], [tx.id, tx.id, tx.id, tx.id], 'same id for hex, 0x-hex and base64, concurrent or not');
    const acc = await f.rpc('getAccount', { address: faucet.address });
    assert.deepEqual([acc.nonce, acc.nextNonce, acc.pending], ['0', '1', 1], 'counted once');
    // Pending transactions are persisted: a restart keeps it.
    assert.equal((await h.stop(f)).code, 0, f.describe());
    const f2 = await h.restart(f);
    const acc2 = await f2.rpc('getAccount', { address: faucet.address });
    assert.deepEqual([acc2.nonce, acc2.nextNonce, acc2.pending], ['0', '1', 1], 'still pending after a restart');
    assert.equal(await f2.rpc('sendTransaction', { tx: tx.hex }), tx.id);
    assert.equal((await h.stop(f2)).code, 0, f2.describe());
  });

  test('re-sending a CONFIRMED transaction returns its id (openrpc.json: "Idempotent")', async () => {
    const r = await rpc(node.rpcPort!, 'sendTransaction', { tx: sent.hex });
    assert.equal(r, sent.id);
  });

  test('a transaction with a used nonce is -32003 with data.rule nonce_too_low', async () => {
    const reuse = signTransfer({ from: faucet, to: bob, amount: 999, fee: 1, nonce: 0, chainId: g.chainId });
    const e = await rpcError(node.rpcPort!, 'sendTransaction', { tx: reuse.hex });
    assert.equal(e.code, -32003, JSON.stringify(e));
    assert.equal(e.data?.rule, 'nonce_too_low');
  });

  test('a transaction with a bad signature is -32002 with data.rule bad_signature', async () => {
    const good = signTransfer({ from: faucet, to: bob, amount: 10, fee: 1, nonce: 5, chainId: g.chainId });
    for (const at of [good.tx.bytes.length - 1, good.tx.bytes.length - 40]) {
      const bytes = Uint8Array.from(good.tx.bytes);
      bytes[at]! ^= 0x01; // inside the 64-byte signature
      const e = await rpcError(node.rpcPort!, 'sendTransaction', { tx: toHex(bytes) });
      assert.equal(e.code, -32002, JSON.stringify(e));
      assert.equal(e.data?.rule, 'bad_signature');
    }
    // signed by someone else than `from`
    const mallory = await h.keygen('mallory');
    const forged = signTransfer({ from: mallory, to: bob, amount: 10, fee: 1, nonce: 0, chainId: g.chainId });
    const bytes = Uint8Array.from(forged.tx.bytes);
    bytes.set(faucet.publicKey, bytes.indexOf(0xc4) + 2); // first bin32 field = from
    const e = await rpcError(node.rpcPort!, 'sendTransaction', { tx: toHex(bytes) });
    assert.equal(e.code, -32002, JSON.stringify(e));
    assert.equal(e.data?.rule, 'bad_signature');
    assert.equal((await node.rpc('getAccount', { address: faucet.address })).pending, 0, 'nothing admitted');
  });

  test('garbage hex is -32002 with data.rule malformed; a non-hex non-base64 string is -32602', async () => {
    for (const garbage of ['deadbeef', '00', 'c0', '99' + '00'.repeat(8)]) {
      const e = await rpcError(node.rpcPort!, 'sendTransaction', { tx: garbage });
      assert.equal(e.code, -32002, `${garbage}: ${JSON.stringify(e)}`);
      assert.equal(e.data?.rule, 'malformed', garbage);
    }
    // Bytes that decode to something with bytes left over (9 zeros + trailing; -1 + trailing): invalid either way,
    // whether the encoding layer calls it malformed or non_canonical.
    for (const garbage of ['99' + '00'.repeat(20), 'ffff']) {
      const e = await rpcError(node.rpcPort!, 'sendTransaction', { tx: garbage });
      assert.equal(e.code, -32002, `${garbage}: ${JSON.stringify(e)}`);
      assert.ok(['malformed', 'non_canonical'].includes(e.data?.rule), `${garbage}: ${JSON.stringify(e)}`);
    }
    const e = await rpcError(node.rpcPort!, 'sendTransaction', { tx: 'not hex!' });
    assert.equal(e.code, -32602, JSON.stringify(e));
  });

  test('a second node on the same datadir exits 1 with a clear message (LevelDB lock)', async () => {
    assert.ok(node.running);
    const r = await runCli(['node', '--datadir', node.datadir, '--genesis', g.file, '--log-format', 'json']);
    assert.equal(r.code, 1, describeCli(r));
    assert.match(r.stderr, /cannot open the database/);
    assert.match(r.stderr, /another node using this datadir/);
    assert.ok(node.running, 'the running node is unaffected');
    await node.rpc('getChainInfo');
  });

  test('SIGTERM exits 0 within a few seconds; a restart resumes the same chain', async () => {
    const fixed = 2;
    const before1 = await h.waitForHeight(node, fixed + 1);
    const fixedHash = (await node.rpc('getBlockHeader', { height: fixed })).hash;
    const st = await h.stop(node, scaled(10_000));
    assert.equal(st.forced, false, `did not exit on SIGTERM within ${scaled(10_000)} ms\n${node.describe()}`);
    assert.equal(st.code, 0, node.describe());
    assert.equal(st.signal, null);
    assert.ok(st.ms < scaled(5_000), `took ${st.ms} ms to stop`);
    assert.match(node.log(), /SIGTERM received, stopping/);

    node = await h.restart(node);
    const after1 = await node.rpc('getChainInfo');
    assert.ok(after1.height >= before1.height, `resumed at ${after1.height} < ${before1.height}`);
    assert.equal(after1.genesisHash, before1.genesisHash);
    assert.equal((await node.rpc('getBlockHeader', { height: fixed })).hash, fixedHash, `same block at height ${fixed}`);
    assert.equal((await node.rpc('getAccount', { address: bob })).balance, AMOUNT.toString(), 'state survives');
    await h.waitForHeight(node, after1.height + 2);
  });
});
