/**
 * The state transition: pure functions over an in-memory map of the accounts a block touches.
 * Callers prefetch those accounts (see `touchedAccounts`) from storage; nothing here performs I/O.
 *
 * Per transaction, in block order:
 *   sender.nonce must equal tx.nonce; sender.balance ≥ amount + fee;
 *   sender.balance −= amount + fee; sender.nonce += 1; recipient.balance += amount.
 * After the last transaction the block's fees are credited to its proposer. Nothing is minted or burned,
 * so the total supply fixed at genesis is an invariant (asserted here, tested by property tests).
 * An account whose balance and nonce are both zero does not exist (it is deleted from the state).
 */
import { invariant } from '../util/assert.js';
import { toHex, U64_MAX } from '../encoding/bytes.js';
import { encodeCanonical } from '../encoding/canonical.js';
import { RuleError } from './rules.js';
import type { UnsignedTx } from './tx.js';

export interface Account {
  readonly balance: bigint;
  readonly nonce: bigint;
}

export const EMPTY_ACCOUNT: Account = Object.freeze({ balance: 0n, nonce: 0n });

export function isEmptyAccount(a: Account): boolean {
  return a.balance === 0n && a.nonce === 0n;
}

/** Account keys in maps are the lower-case hex of the public key. */
export type AccountKey = string;

/** Working state: accounts by key; a missing key means the empty account. */
export type AccountMap = Map<AccountKey, Account>;

export function getAccount(state: ReadonlyMap<AccountKey, Account>, key: AccountKey): Account {
  return state.get(key) ?? EMPTY_ACCOUNT;
}

/** Apply one transaction to `state` in place. Throws RuleError naming the broken rule; on throw `state` is unchanged. */
export function applyTx(state: AccountMap, tx: UnsignedTx, fromKey: AccountKey = toHex(tx.from), toKey: AccountKey = toHex(tx.to)): void {
  const sender = getAccount(state, fromKey);
  if (tx.nonce < sender.nonce) throw new RuleError('nonce_too_low', `nonce ${tx.nonce} < account nonce ${sender.nonce}`);
  if (tx.nonce > sender.nonce) throw new RuleError('nonce_too_high', `nonce ${tx.nonce} > account nonce ${sender.nonce}`);
  if (sender.nonce === U64_MAX) throw new RuleError('nonce_exhausted');
  const cost = tx.amount + tx.fee;
  if (cost > U64_MAX) throw new RuleError('amount_overflow');
  if (sender.balance < cost) throw new RuleError('insufficient_funds', `balance ${sender.balance} < amount + fee ${cost}`);
  state.set(fromKey, { balance: sender.balance - cost, nonce: sender.nonce + 1n });
  const recipient = getAccount(state, toKey); // read after the sender update: a self-transfer sees it
  state.set(toKey, { balance: recipient.balance + tx.amount, nonce: recipient.nonce });
}

/**
 * The accounts a block's transactions name, worked out once per block: each transaction's sender and
 * recipient key, and every touched key (proposer included) sorted, with its bytes (views into the
 * transactions, not copies) for store keys and encodings.
 */
export interface BlockAccounts {
  /** Every account the block reads or writes, sorted (deterministic prefetch and undo order). */
  readonly keys: AccountKey[];
  readonly bytes: ReadonlyMap<AccountKey, Uint8Array>;
  readonly from: readonly AccountKey[];
  readonly to: readonly AccountKey[];
  readonly proposer: AccountKey;
}

export function blockAccounts(txs: readonly UnsignedTx[], proposer: Uint8Array): BlockAccounts {
  const bytes = new Map<AccountKey, Uint8Array>();
  const name = (b: Uint8Array): AccountKey => {
    const k = toHex(b);
    if (!bytes.has(k)) bytes.set(k, b);
    return k;
  };
  const p = name(proposer);
  const from: AccountKey[] = new Array(txs.length);
  const to: AccountKey[] = new Array(txs.length);
  for (let i = 0; i < txs.length; i++) {
    from[i] = name(txs[i]!.from);
    to[i] = name(txs[i]!.to);
  }
  return { keys: sortedKeys(bytes), bytes, from, to, proposer: p };
}

/** Every account a block reads or writes, sorted (deterministic prefetch and undo order). */
export function touchedAccounts(txs: readonly UnsignedTx[], proposer: Uint8Array): AccountKey[] {
  return blockAccounts(txs, proposer).keys;
}

export interface BlockStateResult {
  /** Post-state of every touched account (empty accounts included, as EMPTY_ACCOUNT). */
  post: AccountMap;
  fees: bigint;
}

/**
 * Apply a block's transactions and fee credit to `pre` (which must hold every touched account, or omit it
 * if empty). Returns the post-state of the touched accounts. Throws RuleError with the failing index.
 */
export function applyBlockTxs(pre: ReadonlyMap<AccountKey, Account>, txs: readonly UnsignedTx[], proposer: Uint8Array, accounts?: BlockAccounts): BlockStateResult {
  const post: AccountMap = new Map(pre);
  let fees = 0n;
  for (let i = 0; i < txs.length; i++) {
    const tx = txs[i]!;
    try {
      if (accounts) applyTx(post, tx, accounts.from[i], accounts.to[i]);
      else applyTx(post, tx);
    } catch (e) {
      if (e instanceof RuleError) throw new RuleError('bad_tx', `transaction ${i}: ${e.message}`, { index: i, inner: e });
      throw e;
    }
    fees += tx.fee;
  }
  const pk = accounts ? accounts.proposer : toHex(proposer);
  const p = getAccount(post, pk);
  post.set(pk, { balance: p.balance + fees, nonce: p.nonce });
  assertConserved(pre, post);
  return { post, fees };
}

/**
 * Block assembly's state walk (not a validity rule: a block's own transactions must all apply, see
 * applyBlockTxs): apply `candidates` in order to `state`, skipping any that no longer apply together with
 * that sender's later ones (their nonces cannot apply either), then credit the fees of those applied to
 * the proposer. `state` must hold every account `accounts` names (or omit it if empty); it is updated in
 * place. A producer builds its block from the result, and a node that expects a peer's block of the same
 * candidates precomputes the leaves that block will need from it.
 */
export function applyCandidates<T extends UnsignedTx>(state: AccountMap, candidates: readonly T[], accounts: BlockAccounts): { chosen: T[]; fees: bigint } {
  const chosen: T[] = [];
  const skipSender = new Set<AccountKey>();
  let fees = 0n;
  for (let i = 0; i < candidates.length; i++) {
    const tx = candidates[i]!;
    const from = accounts.from[i]!;
    if (skipSender.has(from)) continue;
    try {
      applyTx(state, tx, from, accounts.to[i]);
      chosen.push(tx);
      fees += tx.fee;
    } catch (e) {
      if (!(e instanceof RuleError)) throw e;
      skipSender.add(from);
    }
  }
  const p = getAccount(state, accounts.proposer);
  state.set(accounts.proposer, { balance: p.balance + fees, nonce: p.nonce });
  return { chosen, fees };
}

/** TigerBeetle-style assertion in production code: a block never changes the sum of touched balances. */
function assertConserved(pre: ReadonlyMap<AccountKey, Account>, post: ReadonlyMap<AccountKey, Account>): void {
  let before = 0n;
  let after = 0n;
  for (const [k, a] of post) {
    after += a.balance;
    before += getAccount(pre, k).balance;
  }
  invariant(before === after, () => `supply: a block's transfers changed total supply by ${after - before}`);
}

// ---- account encoding (storage value and state-lattice leaf) ----

export function encodeAccountValue(a: Account): Uint8Array {
  return encodeCanonical([a.balance, a.nonce]);
}

/**
 * Keys in byte order. Account keys are lower-case hex of 32 bytes: equal lengths, and '0'–'9' < 'a'–'f' in
 * code units as in nibble value, so comparing the strings IS comparing the bytes (no locale involved).
 */
export function sortedKeys(m: ReadonlyMap<AccountKey, unknown>): AccountKey[] {
  return [...m.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
