/**
 * Invariants asserted where the state is produced, and the chain halting on a violation: nothing of the
 * operation is written, 'chain:halted' is emitted once, an error is logged, and every later mutation
 * rejects with the same InvariantViolation. Bad input (RuleError) never halts. The switch invariants that
 * a corrupted store cannot reach through the chain are provoked on SwitchState directly.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Chain } from '../../../src/chain/chain.js';
import { SwitchState } from '../../../src/chain/headswitch.js';
import type { Block } from '../../../src/ledger/block.js';
import { RuleError } from '../../../src/ledger/rules.js';
import { applyBlockTxs, blockAccounts, EMPTY_ACCOUNT, type Account, type AccountKey } from '../../../src/ledger/state.js';
import { StateLattice } from '../../../src/ledger/statehash.js';
import { decodeCanonical, encodeCanonical, type CanonicalValue } from '../../../src/encoding/canonical.js';
import { layout } from '../../../src/storage/layout.js';
import { openMemory, type KV } from '../../../src/storage/kv.js';
import { compareBytes, toHex } from '../../../src/encoding/bytes.js';
import { InvariantViolation } from '../../../src/util/assert.js';
import { ManualClock } from '../../../src/util/clock.js';
import type { Logger } from '../../../src/util/log.js';
import { GENESIS_TIME, buildBlock, openTestChain, transfer } from '../../helpers/fixtures.js';
import { V, alice, bob, carol, dump, genesis, grow, resign } from './common.js';

const EVERY_KEYSPACE = 'VGTLbeinautxq';

interface Logged { level: string; msg: string; fields?: Record<string, unknown> }
function recorder(out: Logged[]): Logger {
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => { out.push({ level, msg, fields }); };
  const log: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log };
  return log;
}

async function open(db: KV, logs: Logged[] = []): Promise<Chain> {
  return Chain.open({ db, genesis, clock: new ManualClock(GENESIS_TIME + 1_000_000_000), log: recorder(logs) });
}

/** A chain on A (3 blocks moving alice's money to carol) and a longer branch B (bob's money to carol). */
async function twoBranches(db: KV): Promise<{ chain: Chain; A: Block[]; B: Block[] }> {
  const chain = await open(db);
  const A = await grow(chain, V, 3, 1, (i) => [transfer(alice, carol, 100n + BigInt(i), BigInt(i))]);
  const builder = await openTestChain(genesis);
  const B = await grow(builder.chain, V, 4, 40, (i) => [transfer(bob, carol, 7n + BigInt(i), BigInt(i))]);
  return { chain, A, B };
}

/** Rewrite the undo record of `block` in the store with `edit` applied to its decoded list. */
async function editUndo(db: KV, block: Block, edit: (records: CanonicalValue[][]) => CanonicalValue[][]): Promise<void> {
  const key = layout.undo(block.header.hash);
  const records = decodeCanonical((await db.get(key))!) as CanonicalValue[][];
  await db.put(key, encodeCanonical(edit(records.map((r) => [...r]))));
}

/**
 * Feed B to `chain`, which must halt at the block that makes it switch to B: returns that block's index,
 * the violation, and checks that the call wrote nothing and the halt was announced and logged once.
 */
async function feedUntilHalt(chain: Chain, db: KV, B: Block[], logs: Logged[]): Promise<{ at: number; error: InvariantViolation }> {
  const halts: InvariantViolation[] = [];
  chain.on('chain:halted', (e) => halts.push(e.error));
  const head = chain.head;
  const root = toHex(chain.stateRoot);
  for (let i = 0; i < B.length; i++) {
    const before = await dump(db, EVERY_KEYSPACE);
    let error: unknown;
    try {
      assert.equal((await chain.addBlock(B[i]!)).status, 'side', 'no switch before the halt');
      continue;
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof InvariantViolation, `expected InvariantViolation, got ${String(error)}`);
    assert.deepEqual(await dump(db, EVERY_KEYSPACE), before, 'nothing of the halted operation was written, not even the block');
    assert.equal(chain.hasBlock(B[i]!.header.hashHex), false);
    assert.equal(chain.head, head);
    assert.equal(toHex(chain.stateRoot), root);
    assert.deepEqual(halts, [error], 'chain:halted once, with the error');
    assert.equal(chain.halted, error);
    const errors = logs.filter((l) => l.level === 'error');
    assert.equal(errors.length, 1);
    assert.match(errors[0]!.msg, /halted/);
    assert.equal(errors[0]!.fields?.error, error.message);
    return { at: i, error };
  }
  assert.fail('the chain never switched to B');
}

/** Every later mutation rejects with the very same error; reads still answer. */
async function assertStaysHalted(chain: Chain, error: InvariantViolation, next: Block): Promise<void> {
  const same = (e: unknown) => e === error;
  await assert.rejects(chain.addBlock(next), same);
  await assert.rejects(chain.reconsider(), same);
  const x = (await buildBlock(chain, V, 90)).header;
  const y = (await buildBlock(chain, V, 90, [transfer(alice, bob, 1n, 3n)])).header;
  await assert.rejects(chain.addEvidence(x, y), same);
  assert.equal((await chain.auditSupply()).root, toHex(chain.stateRoot), 'the store still holds the head state');
}

describe('a corrupted store halts the chain before a wrong state is written', { timeout: 60000 }, () => {
  test('undo record with a wrong balance: restoring it does not give the parent\'s state root', async () => {
    const db = await openMemory();
    const logs: Logged[] = [];
    const { A, B } = await twoBranches(db);
    const tipUndo = (await db.get(layout.undo(A[2]!.header.hash)))!;
    await editUndo(db, A[2]!, (rs) => rs.map((r) => [r[0]!, BigInt(r[1] as number | bigint) + 1n, r[2]!]));
    const chain = await open(db, logs);
    const { at, error } = await feedUntilHalt(chain, db, B, logs);
    assert.match(error.message, /^undo state root: undoing block [0-9a-f]{64} gives state root/);
    assert.ok(error.message.includes(A[2]!.header.hashHex));
    assert.equal(at, compareBytes(B[2]!.header.hash, A[2]!.header.hash) < 0 ? 2 : 3, 'halted at the first switch to B');
    const extension = await buildBlock(chain, V, chain.head.slot + 1);
    await assertStaysHalted(chain, error, extension);

    // Mended store: a new process adopts B normally.
    await db.put(layout.undo(A[2]!.header.hash), tipUndo);
    const again = await open(db);
    for (const b of B) await again.addBlock(b);
    assert.equal(again.head.hashHex, B[3]!.header.hashHex);
    assert.equal(again.halted, undefined);
  });

  test('undo record missing an account the block touched: coverage fails first', async () => {
    const db = await openMemory();
    const logs: Logged[] = [];
    const { A, B } = await twoBranches(db);
    await editUndo(db, A[2]!, (rs) => rs.slice(1));
    const chain = await open(db, logs);
    const { error } = await feedUntilHalt(chain, db, B, logs);
    assert.match(error.message, /^undo coverage: the undo records of block [0-9a-f]{64} name/);
  });

  test('a stored account that differs from the state the lattice commits to is caught by the undo root', async () => {
    const db = await openMemory();
    const logs: Logged[] = [];
    const { B } = await twoBranches(db);
    const carolKey = layout.account(carol.publicKey);
    const [balance, nonce] = (decodeCanonical((await db.get(carolKey))!) as (number | bigint)[]).map((x) => BigInt(x)) as [bigint, bigint];
    await db.put(carolKey, encodeCanonical([balance + 1000n, nonce]));
    const chain = await open(db, logs); // open checks the lattice against the head, not every account
    const { error } = await feedUntilHalt(chain, db, B, logs);
    assert.match(error.message, /^undo state root:/);
  });
});

test('bad input is rejected, never a halt', async () => {
  const db = await openMemory();
  const chain = await open(db);
  const halts: unknown[] = [];
  chain.on('chain:halted', (e) => halts.push(e));
  const good = await buildBlock(chain, V, 1, [transfer(alice, bob, 5n, 0n)]);
  await assert.rejects(chain.addBlock(resign(good, { stateRoot: new Uint8Array(32).fill(3) })), (e: unknown) => e instanceof RuleError && e.rule === 'bad_state_root');
  await assert.rejects(chain.addBlock(resign(good, { height: 5 })), (e: unknown) => e instanceof RuleError && e.rule === 'bad_height');
  assert.equal(chain.halted, undefined);
  assert.deepEqual(halts, []);
  assert.equal((await chain.addBlock(good)).status, 'connected');
});

// ---- the switch invariants on SwitchState directly -------------------------------------------------

describe('SwitchState: the invariants of a head switch', () => {
  const proposer = V[1]!.publicKey;
  const stored = new Map<AccountKey, Account>([[toHex(alice.publicKey), { balance: 1000n, nonce: 4n }], [toHex(bob.publicKey), { balance: 50n, nonce: 0n }]]);
  const lattice = () => {
    const l = new StateLattice();
    for (const [k, a] of stored) l.add(k, a);
    return l;
  };
  const read = async (keys: readonly AccountKey[]) => new Map(keys.filter((k) => stored.has(k)).map((k) => [k, stored.get(k)!]));
  const txs = [transfer(alice, bob, 10n, 4n, { fee: 2n }), transfer(alice, carol, 5n, 5n, { fee: 1n }), transfer(bob, bob, 1n, 0n)];
  const accounts = blockAccounts(txs, proposer);
  const target = (stateRoot: Uint8Array) => ({ header: { hashHex: 'ab'.repeat(32), stateRoot } }) as unknown as Block;

  /** Connect the block with `tamper` applied to its post-state; the lattice follows the post-state. */
  async function connectTampered(tamper: (post: Map<AccountKey, Account>) => void): Promise<SwitchState> {
    const s = new SwitchState(lattice(), read);
    await s.load(accounts.keys, accounts.bytes);
    const pre = s.pre(accounts);
    const { post } = applyBlockTxs(pre, txs, proposer, accounts);
    tamper(post);
    for (const k of accounts.keys) s.lattice.update(k, pre.get(k)!, post.get(k)!);
    s.connect(accounts, post);
    return s;
  }
  const violation = (prefix: string) => (e: unknown) => e instanceof InvariantViolation && e.message.startsWith(prefix);

  test('an honest block passes: supply kept, nonces moved by transfers sent, root as committed', async () => {
    const s = await connectTampered(() => {});
    assert.doesNotThrow(() => s.verify(target(s.lattice.root())));
    assert.deepEqual(s.get(toHex(alice.publicKey)), { balance: 1000n - 12n - 6n, nonce: 6n });
    assert.deepEqual(s.get(toHex(bob.publicKey)), { balance: 50n + 10n - 1n + 1n - 1n, nonce: 1n });
  });

  test('supply: a post-state that mints (fees credited twice) is refused', async () => {
    const pk = toHex(proposer);
    const s = await connectTampered((post) => { const p = post.get(pk)!; post.set(pk, { balance: p.balance + 4n, nonce: p.nonce }); });
    assert.throws(() => s.verify(target(s.lattice.root())), violation('supply:'));
  });

  test('nonce: a sender whose nonce moved by other than its transfers is refused', async () => {
    const k = toHex(alice.publicKey);
    const s = await connectTampered((post) => { const a = post.get(k)!; post.set(k, { balance: a.balance, nonce: a.nonce + 1n }); });
    assert.throws(() => s.verify(target(s.lattice.root())), violation('nonce:'));
  });

  test('state root: a lattice that does not commit to the target\'s state root is refused', async () => {
    const s = await connectTampered(() => {});
    assert.throws(() => s.verify(target(new Uint8Array(32))), violation('state root:'));
  });

  test('undo: records must name exactly the block\'s accounts and restore the parent\'s root', async () => {
    const s = await connectTampered(() => {});
    const parentRoot = lattice().root();
    const pre = (k: AccountKey) => stored.get(k) ?? EMPTY_ACCOUNT;
    const undo = accounts.keys.map((k) => [k, pre(k), accounts.bytes.get(k)!] as [AccountKey, Account, Uint8Array]);
    const block = { header: { hashHex: 'cd'.repeat(32) }, txs } as unknown as Block;
    assert.throws(() => s.disconnect(block, accounts, undo.slice(1), parentRoot), violation('undo coverage:'));
    const wrong = undo.map(([k, a, b]) => [k, { balance: a.balance + 1n, nonce: a.nonce }, b] as [AccountKey, Account, Uint8Array]);
    assert.throws(() => s.disconnect(block, accounts, wrong, parentRoot), violation('undo state root:'));
    // Correct records restore the stored state: the switch as a whole (connect, then undo) moved nothing.
    const fresh = await connectTampered(() => {});
    fresh.disconnect(block, accounts, undo, parentRoot);
    assert.doesNotThrow(() => fresh.verify(target(parentRoot)));
  });
});
