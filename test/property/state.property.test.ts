/**
 * Property tests for src/ledger/state.ts and src/ledger/statehash.ts.
 *
 * Random sequences of transfers among 6 accounts (amounts often above the balance, nonces often wrong, random
 * fees, self-transfers) are applied one by one with applyTx. A plain model predicts each outcome (success or the
 * exact rule). Invariants checked after every step:
 *   - balances + fees collected so far = initial supply (applyTx removes the fee; the block credits it later),
 *   - no balance is negative,
 *   - each account's nonce = its number of successful sends,
 *   - the lattice updated incrementally (StateLattice.update per changed account) equals one rebuilt from
 *     scratch over the current non-empty accounts.
 * At the end: the lattice does not depend on the order accounts are added, and applyBlockTxs over the
 * successful transactions gives the same post-state (plus the fee credit) with supply exactly conserved, also
 * through the block path's precomputed keys (blockAccounts), and the batched lattice update (leavesFor +
 * replaceLeaves) reaches the same root.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { toHex, U64_MAX } from '../../src/encoding/bytes.js';
import { RuleError, type Rule } from '../../src/ledger/rules.js';
import { applyBlockTxs, applyTx, blockAccounts, getAccount, isEmptyAccount, type Account, type AccountMap } from '../../src/ledger/state.js';
import { clearLeafCache, leavesFor, StateLattice } from '../../src/ledger/statehash.js';
import type { UnsignedTx } from '../../src/ledger/tx.js';
import { testKeys } from '../helpers/fixtures.js';

const N = 6;
const PKS = testKeys('state-property', N + 1).map((k) => k.publicKey);
const KEYS = PKS.map(toHex);
const PROPOSER = PKS[N]!; // outside the 6 transacting accounts
const PROPOSER_KEY = KEYS[N]!;

interface Op {
  from: number;
  to: number;
  amount: bigint;
  fee: bigint;
  /** 'right' uses the sender's current nonce; a number is added to it (may be negative: too low). */
  nonce: 'right' | number;
}

const opArb: fc.Arbitrary<Op> = fc.record({
  from: fc.nat({ max: N - 1 }),
  to: fc.nat({ max: N - 1 }),
  amount: fc.oneof(
    { weight: 6, arbitrary: fc.bigInt({ min: 0n, max: 100n }) },
    { weight: 2, arbitrary: fc.bigInt({ min: 0n, max: 3000n }) },
    { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 1n << 20n }) },
    { weight: 1, arbitrary: fc.constantFrom(U64_MAX, U64_MAX - 1n) },
  ),
  fee: fc.oneof({ weight: 3, arbitrary: fc.bigInt({ min: 0n, max: 5n }) }, { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 500n }) }),
  nonce: fc.oneof({ weight: 4, arbitrary: fc.constant('right' as const) }, { weight: 1, arbitrary: fc.integer({ min: -2, max: 2 }) }),
});

/** Initial balances; some accounts start empty. */
const allocArb = fc.array(fc.oneof({ weight: 1, arbitrary: fc.constant(0n) }, { weight: 4, arbitrary: fc.bigInt({ min: 1n, max: 3000n }) }), { minLength: N, maxLength: N });

function sumBalances(m: ReadonlyMap<string, Account>): bigint {
  let s = 0n;
  for (const a of m.values()) s += a.balance;
  return s;
}

function latticeFrom(entries: [string, Account][]): StateLattice {
  const l = new StateLattice();
  for (const [k, a] of entries) l.add(k, a);
  return l;
}

/** The rule the model expects, or null for success. */
function modelOutcome(sender: Account, t: UnsignedTx): Rule | null {
  if (t.nonce < sender.nonce) return 'nonce_too_low';
  if (t.nonce > sender.nonce) return 'nonce_too_high';
  if (sender.nonce === U64_MAX) return 'nonce_exhausted';
  if (t.amount + t.fee > U64_MAX) return 'amount_overflow';
  if (sender.balance < t.amount + t.fee) return 'insufficient_funds';
  return null;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('property: random transfers keep supply, non-negative balances, nonce = successful sends, and the lattice consistent', async () => {
  const outcomes = new Map<string, number>();
  const count = (k: string): void => { outcomes.set(k, (outcomes.get(k) ?? 0) + 1); };
  await fc.assert(fc.asyncProperty(allocArb, fc.array(opArb, { minLength: 5, maxLength: 60 }), fc.func(fc.integer()), async (alloc, ops, orderKey) => {
    const state: AccountMap = new Map();
    alloc.forEach((bal, i) => { if (bal > 0n) state.set(KEYS[i]!, { balance: bal, nonce: 0n }); });
    const supply = sumBalances(state);
    const pre: AccountMap = new Map(state);
    const lattice = latticeFrom([...state]);
    const sends = new Array<bigint>(N).fill(0n);
    const applied: UnsignedTx[] = [];
    let fees = 0n;

    for (const op of ops) {
      const fromKey = KEYS[op.from]!;
      const toKey = KEYS[op.to]!;
      const sender = getAccount(state, fromKey);
      const nonce = op.nonce === 'right' ? sender.nonce : sender.nonce + BigInt(op.nonce);
      if (nonce < 0n) continue;
      const t: UnsignedTx = { chainId: 'meshledger-test', from: PKS[op.from]!, to: PKS[op.to]!, amount: op.amount, fee: op.fee, nonce, memo: '' };
      const expected = modelOutcome(sender, t);
      const touched = [...new Set([fromKey, toKey])];
      const before = new Map(touched.map((k) => [k, getAccount(state, k)] as const));
      const snapshot = JSON.stringify([...state].map(([k, a]) => [k, `${a.balance}`, `${a.nonce}`]));
      try {
        applyTx(state, t);
      } catch (e) {
        if (!(e instanceof RuleError)) throw e;
        assert.equal(e.rule, expected, `applyTx threw ${e.rule}, model expected ${expected ?? 'success'}`);
        count(e.rule);
        assert.equal(JSON.stringify([...state].map(([k, a]) => [k, `${a.balance}`, `${a.nonce}`])), snapshot, 'state changed on throw');
        continue;
      }
      assert.equal(expected, null, `applyTx succeeded, model expected ${expected}`);
      count(op.from === op.to ? 'self-transfer' : 'success');
      sends[op.from]! += 1n;
      fees += t.fee;
      applied.push(t);
      for (const k of touched) lattice.update(k, before.get(k)!, getAccount(state, k));

      // invariants after every successful step
      assert.equal(sumBalances(state) + fees, supply, 'balances + collected fees = initial supply');
      for (const a of state.values()) assert.ok(a.balance >= 0n, 'negative balance');
      for (let i = 0; i < N; i++) assert.equal(getAccount(state, KEYS[i]!).nonce, sends[i], `nonce of account ${i}`);
      const nonEmpty = [...state].filter(([, a]) => !isEmptyAccount(a));
      assert.equal(hex(lattice.root()), hex(latticeFrom(nonEmpty).root()), 'incremental lattice = rebuilt lattice');
    }

    // lattice over the final state: independent of insertion order
    const finalEntries = [...state].filter(([, a]) => !isEmptyAccount(a));
    const shuffled = [...finalEntries].sort((x, y) => orderKey(x[0]) - orderKey(y[0]) || (x[0] < y[0] ? -1 : 1));
    assert.deepEqual(latticeFrom(shuffled).toBytes(), latticeFrom(finalEntries).toBytes());
    assert.deepEqual(latticeFrom([...finalEntries].reverse()).toBytes(), lattice.toBytes());

    // the same successful transactions as one block: same accounts, fees credited, supply exactly conserved
    const res = applyBlockTxs(pre, applied, PROPOSER);
    assert.equal(res.fees, fees);
    assert.equal(sumBalances(res.post), supply);
    assert.deepEqual(getAccount(res.post, PROPOSER_KEY), { balance: fees, nonce: 0n });
    for (let i = 0; i < N; i++) assert.deepEqual(getAccount(res.post, KEYS[i]!), getAccount(state, KEYS[i]!), `account ${i}`);

    // the block path's precomputed keys (blockAccounts) change nothing: same keys, same post-state, and the
    // batched lattice update (leavesFor + replaceLeaves) gives the incremental lattice's root
    const accounts = blockAccounts(applied, PROPOSER);
    const want = [...new Set([PROPOSER_KEY, ...applied.flatMap((t) => [hex(t.from), hex(t.to)])])].sort();
    assert.deepEqual(accounts.keys, want);
    applied.forEach((t, i) => { assert.equal(accounts.from[i], hex(t.from)); assert.equal(accounts.to[i], hex(t.to)); });
    for (const k of accounts.keys) assert.equal(hex(accounts.bytes.get(k)!), k);
    const viaAccounts = applyBlockTxs(pre, applied, PROPOSER, accounts);
    assert.deepEqual([...viaAccounts.post].sort(), [...res.post].sort());
    const batched = latticeFrom([...pre].filter(([, a]) => !isEmptyAccount(a)));
    const pairs = accounts.keys.flatMap((k) => [[k, getAccount(pre, k)], [k, getAccount(res.post, k)]] as [string, Account][]);
    if (orderKey('clear') % 2 === 0) clearLeafCache(); // hits and misses both
    batched.replaceLeaves(await leavesFor(undefined, pairs));
    const expected = latticeFrom([...res.post].filter(([, a]) => !isEmptyAccount(a)));
    assert.equal(hex(batched.root()), hex(expected.root()));
  }), { numRuns: 300 });
  // the generators must actually exercise every outcome (guards against a vacuous property)
  for (const k of ['success', 'self-transfer', 'insufficient_funds', 'nonce_too_low', 'nonce_too_high', 'amount_overflow']) {
    assert.ok((outcomes.get(k) ?? 0) > 0, `no ${k} outcome in ${JSON.stringify([...outcomes])}`);
  }
});

test('property: the lattice of a set of accounts does not depend on the order they are added', () => {
  const acctArb = fc.record({ i: fc.nat({ max: N }), balance: fc.bigInt({ min: 0n, max: U64_MAX }), nonce: fc.bigInt({ min: 0n, max: U64_MAX }) });
  fc.assert(fc.property(fc.uniqueArray(acctArb, { selector: (a) => a.i, maxLength: N + 1 }), fc.func(fc.integer()), (accts, orderKey) => {
    const entries = accts.map((a): [string, Account] => [KEYS[a.i]!, { balance: a.balance, nonce: a.nonce }]);
    const shuffled = [...entries].sort((x, y) => orderKey(x[0]) - orderKey(y[0]));
    assert.deepEqual(latticeFrom(shuffled).toBytes(), latticeFrom(entries).toBytes());
    // and removing them in yet another order returns to zero
    const l = latticeFrom(entries);
    for (const [k, a] of [...entries].reverse()) l.remove(k, a);
    assert.ok(l.lanes.every((v) => v === 0));
  }), { numRuns: 200 });
});
