/**
 * Tests for src/ledger/state.ts: applyTx's rules and exact boundaries, self-transfers, atomicity on throw, and
 * applyBlockTxs (fee credit, error wrapping, in-block nonce sequences and spending of in-block receipts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHex, U64_MAX } from '../../../src/encoding/bytes.js';
import type { Rule } from '../../../src/ledger/rules.js';
import {
  applyBlockTxs, applyCandidates, applyTx, blockAccounts, EMPTY_ACCOUNT, encodeAccountValue, getAccount, isEmptyAccount, touchedAccounts,
  type Account, type AccountMap,
} from '../../../src/ledger/state.js';
import type { UnsignedTx } from '../../../src/ledger/tx.js';
import { testKeys, throwsRule } from '../../helpers/fixtures.js';

const [ALICE, BOB, CAROL, PROPOSER] = testKeys('state', 4).map((k) => k.publicKey) as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
const a = toHex(ALICE);
const b = toHex(BOB);
const c = toHex(CAROL);
const p = toHex(PROPOSER);

function tx(from: Uint8Array, to: Uint8Array, amount: bigint, nonce: bigint, fee = 1n): UnsignedTx {
  return { chainId: 'meshledger-test', from, to, amount, fee, nonce, memo: '' };
}

function acct(balance: bigint, nonce = 0n): Account {
  return { balance, nonce };
}

function snapshot(m: ReadonlyMap<string, Account>): [string, string, string][] {
  return [...m].map(([k, v]): [string, string, string] => [k, v.balance.toString(), v.nonce.toString()]).sort();
}


/** Assert that applyTx throws `rule` and leaves the state exactly as it was (no entry added or changed). */
function rejectsUnchanged(state: AccountMap, t: UnsignedTx, rule: Rule): void {
  const before = snapshot(state);
  throwsRule(() => applyTx(state, t), rule);
  assert.deepEqual(snapshot(state), before, `state changed after ${rule}`);
}

// ---- applyTx -----------------------------------------------------------------------------------

test('applyTx moves amount to the recipient, debits amount + fee, bumps the sender nonce', () => {
  const s: AccountMap = new Map([[a, acct(1000n, 4n)], [b, acct(7n, 2n)]]);
  applyTx(s, tx(ALICE, BOB, 300n, 4n, 5n));
  assert.deepEqual(getAccount(s, a), acct(695n, 5n));
  assert.deepEqual(getAccount(s, b), acct(307n, 2n));
});

test('applyTx creates a missing recipient account', () => {
  const s: AccountMap = new Map([[a, acct(10n)]]);
  applyTx(s, tx(ALICE, CAROL, 4n, 0n));
  assert.deepEqual(getAccount(s, c), acct(4n, 0n));
  assert.deepEqual(getAccount(s, a), acct(5n, 1n));
});

test('applyTx: nonce_too_low when tx.nonce < account nonce (state unchanged)', () => {
  const s: AccountMap = new Map([[a, acct(1000n, 3n)]]);
  rejectsUnchanged(s, tx(ALICE, BOB, 1n, 2n), 'nonce_too_low');
  rejectsUnchanged(s, tx(ALICE, BOB, 1n, 0n), 'nonce_too_low');
});

test('applyTx: nonce_too_high when tx.nonce > account nonce (state unchanged)', () => {
  const s: AccountMap = new Map([[a, acct(1000n, 3n)]]);
  rejectsUnchanged(s, tx(ALICE, BOB, 1n, 4n), 'nonce_too_high');
  // a missing sender has nonce 0
  rejectsUnchanged(new Map(), tx(ALICE, BOB, 1n, 1n), 'nonce_too_high');
});

test('applyTx: insufficient_funds when balance = amount + fee − 1; balance = amount + fee passes leaving 0', () => {
  const s: AccountMap = new Map([[a, acct(104n)]]);
  rejectsUnchanged(s, tx(ALICE, BOB, 100n, 0n, 5n), 'insufficient_funds');
  rejectsUnchanged(new Map(), tx(ALICE, BOB, 1n, 0n, 0n), 'insufficient_funds'); // missing sender has balance 0
  const ok: AccountMap = new Map([[a, acct(105n)]]);
  applyTx(ok, tx(ALICE, BOB, 100n, 0n, 5n));
  assert.deepEqual(getAccount(ok, a), acct(0n, 1n));
  assert.deepEqual(getAccount(ok, b), acct(100n, 0n));
});

test('applyTx: nonce_exhausted when the sender nonce is 2^64-1; nonce 2^64-2 still advances to 2^64-1', () => {
  const s: AccountMap = new Map([[a, acct(1000n, U64_MAX)]]);
  rejectsUnchanged(s, tx(ALICE, BOB, 1n, U64_MAX), 'nonce_exhausted');
  const ok: AccountMap = new Map([[a, acct(1000n, U64_MAX - 1n)]]);
  applyTx(ok, tx(ALICE, BOB, 1n, U64_MAX - 1n));
  assert.equal(getAccount(ok, a).nonce, U64_MAX);
});

test('applyTx: amount_overflow when amount + fee > 2^64-1 (state unchanged)', () => {
  const s: AccountMap = new Map([[a, acct(U64_MAX)]]);
  rejectsUnchanged(s, tx(ALICE, BOB, U64_MAX, 0n, 1n), 'amount_overflow');
});

test('applyTx: a self-transfer (from == to) charges only the fee and bumps the nonce', () => {
  const s: AccountMap = new Map([[a, acct(1000n, 7n)]]);
  applyTx(s, tx(ALICE, ALICE, 600n, 7n, 3n));
  assert.deepEqual(getAccount(s, a), acct(997n, 8n));
  assert.equal(s.size, 1);
});

test('applyTx: a self-transfer still needs balance ≥ amount + fee', () => {
  const s: AccountMap = new Map([[a, acct(100n)]]);
  rejectsUnchanged(s, tx(ALICE, ALICE, 100n, 0n, 1n), 'insufficient_funds');
});

test('applyTx checks the nonce before funds: an underfunded tx with a wrong nonce reports the nonce rule', () => {
  const s: AccountMap = new Map([[a, acct(0n, 1n)]]);
  rejectsUnchanged(s, tx(ALICE, BOB, 5n, 0n), 'nonce_too_low');
  rejectsUnchanged(s, tx(ALICE, BOB, 5n, 2n), 'nonce_too_high');
  rejectsUnchanged(s, tx(ALICE, BOB, 5n, 1n), 'insufficient_funds');
});

// ---- applyBlockTxs -----------------------------------------------------------------------------

test('applyBlockTxs credits the sum of fees to the proposer and does not touch `pre`', () => {
  const pre: AccountMap = new Map([[a, acct(1000n)], [p, acct(50n, 9n)]]);
  const preSnap = snapshot(pre);
  const res = applyBlockTxs(pre, [tx(ALICE, BOB, 10n, 0n, 3n), tx(ALICE, CAROL, 20n, 1n, 4n)], PROPOSER);
  assert.equal(res.fees, 7n);
  assert.deepEqual(getAccount(res.post, p), acct(57n, 9n));
  assert.deepEqual(getAccount(res.post, a), acct(963n, 2n));
  assert.deepEqual(getAccount(res.post, b), acct(10n));
  assert.deepEqual(getAccount(res.post, c), acct(20n));
  assert.deepEqual(snapshot(pre), preSnap);
});

test('applyBlockTxs: the proposer may also be a sender, and it receives its own fees', () => {
  const pre: AccountMap = new Map([[p, acct(100n)]]);
  const res = applyBlockTxs(pre, [tx(PROPOSER, BOB, 10n, 0n, 5n)], PROPOSER);
  assert.deepEqual(getAccount(res.post, p), acct(90n, 1n));
});

test('applyBlockTxs with no transactions credits 0 and creates the proposer entry as empty', () => {
  const res = applyBlockTxs(new Map(), [], PROPOSER);
  assert.equal(res.fees, 0n);
  assert.ok(isEmptyAccount(getAccount(res.post, p)));
});

test('applyBlockTxs wraps a failing transaction as bad_tx with its index and inner rule', () => {
  const pre: AccountMap = new Map([[a, acct(1000n)], [b, acct(5n)]]);
  const cases: [UnsignedTx[], number, Rule][] = [
    [[tx(ALICE, BOB, 10n, 0n), tx(ALICE, BOB, 10n, 0n)], 1, 'nonce_too_low'],
    [[tx(ALICE, BOB, 10n, 0n), tx(ALICE, BOB, 10n, 2n)], 1, 'nonce_too_high'],
    [[tx(ALICE, BOB, 10n, 0n), tx(BOB, CAROL, 100n, 0n)], 1, 'insufficient_funds'],
    [[tx(ALICE, BOB, 10n, 1n)], 0, 'nonce_too_high'],
    [[tx(ALICE, BOB, 1n, 0n), tx(ALICE, BOB, 1n, 1n), tx(ALICE, BOB, 10_000n, 2n)], 2, 'insufficient_funds'],
  ];
  for (const [txs, index, inner] of cases) {
    const preSnap = snapshot(pre);
    const e = throwsRule(() => applyBlockTxs(pre, txs, PROPOSER), 'bad_tx', inner);
    assert.equal(e.index, index, inner);
    assert.equal(e.inner?.rule, inner);
    assert.deepEqual(snapshot(pre), preSnap, 'pre untouched by a failed block');
  }
});

test('applyBlockTxs: sequential nonces 0..4 from one sender within one block all apply', () => {
  const pre: AccountMap = new Map([[a, acct(100n)]]);
  const txs = [0n, 1n, 2n, 3n, 4n].map((n) => tx(ALICE, BOB, 10n, n, 2n));
  const res = applyBlockTxs(pre, txs, PROPOSER);
  assert.deepEqual(getAccount(res.post, a), acct(40n, 5n));
  assert.deepEqual(getAccount(res.post, b), acct(50n));
  assert.deepEqual(getAccount(res.post, p), acct(10n));
});

test('applyBlockTxs: a later tx may spend funds received earlier in the same block (chain A → B → C)', () => {
  const pre: AccountMap = new Map([[a, acct(100n)]]);
  const res = applyBlockTxs(pre, [tx(ALICE, BOB, 50n, 0n, 1n), tx(BOB, CAROL, 49n, 0n, 1n)], PROPOSER);
  assert.deepEqual(getAccount(res.post, b), acct(0n, 1n));
  assert.deepEqual(getAccount(res.post, c), acct(49n));
  // and in the other order it must fail: B has nothing yet
  const e = throwsRule(() => applyBlockTxs(pre, [tx(BOB, CAROL, 49n, 0n, 1n), tx(ALICE, BOB, 50n, 0n, 1n)], PROPOSER), 'bad_tx');
  assert.equal(e.index, 0);
  assert.equal(e.inner?.rule, 'insufficient_funds');
});

test('applyBlockTxs conserves the sum of balances of touched accounts', () => {
  const pre: AccountMap = new Map([[a, acct(1000n)], [b, acct(500n, 1n)], [p, acct(3n)]]);
  const res = applyBlockTxs(pre, [tx(ALICE, BOB, 10n, 0n, 9n), tx(BOB, ALICE, 400n, 1n, 8n), tx(ALICE, ALICE, 1n, 1n, 7n)], PROPOSER);
  const sum = (m: ReadonlyMap<string, Account>): bigint => [...m.values()].reduce((s, x) => s + x.balance, 0n);
  assert.equal(sum(res.post), sum(pre));
  assert.equal(res.fees, 24n);
});

// ---- helpers -----------------------------------------------------------------------------------

test('touchedAccounts lists proposer, senders and recipients once each, sorted', () => {
  const keys = touchedAccounts([tx(ALICE, BOB, 1n, 0n), tx(BOB, ALICE, 1n, 0n), tx(CAROL, CAROL, 1n, 0n)], PROPOSER);
  assert.deepEqual(keys, [a, b, c, p].sort());
});

test('encodeAccountValue is the canonical [balance, nonce] and EMPTY_ACCOUNT is empty', () => {
  assert.equal(Buffer.from(encodeAccountValue(acct(1000n, 1n))).toString('hex'), '92cd03e801');
  assert.equal(Buffer.from(encodeAccountValue(acct(1n << 32n, 0n))).toString('hex'), '92cf000000010000000000');
  assert.ok(isEmptyAccount(EMPTY_ACCOUNT));
  assert.ok(!isEmptyAccount(acct(0n, 1n)));
  assert.ok(!isEmptyAccount(acct(1n, 0n)));
});

// ---- applyCandidates (block assembly) ----------------------------------------------------------------

test('applyCandidates skips a candidate that does not apply and that sender\'s later ones, credits only applied fees, and its choice is a valid block', () => {
  const pre: AccountMap = new Map([[a, acct(100n)], [b, acct(5n)]]);
  const candidates = [
    tx(ALICE, BOB, 10n, 0n, 2n),
    tx(BOB, CAROL, 50n, 0n, 1n), // bob cannot pay 51 …
    tx(ALICE, CAROL, 5n, 1n, 3n),
    tx(BOB, CAROL, 1n, 1n, 1n), // … so his nonce 1 is skipped too, though bob could pay it
    tx(ALICE, ALICE, 1n, 5n, 1n), // a nonce gap: skipped, alice's later ones with it
    tx(ALICE, BOB, 1n, 2n, 1n),
  ];
  const state = new Map(pre);
  const { chosen, fees } = applyCandidates(state, candidates, blockAccounts(candidates, PROPOSER));
  assert.deepEqual(chosen, [candidates[0], candidates[2]]);
  assert.equal(fees, 5n);
  assert.deepEqual(getAccount(state, a), acct(80n, 2n));
  assert.deepEqual(getAccount(state, b), acct(15n));
  assert.deepEqual(getAccount(state, p), acct(5n));
  // The chosen list applies as a block, to the same post-state.
  assert.deepEqual(snapshot(applyBlockTxs(pre, chosen, PROPOSER).post), snapshot(state));
});
