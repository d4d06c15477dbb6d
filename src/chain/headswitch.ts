/**
 * The state of one head switch while it is computed, before anything is written: the accounts it touches
 * (an overlay over the stored head state), the state lattice, and what the switch as a whole must preserve.
 * The chain undoes and applies blocks through it, then `verify` asserts the switch's invariants; only then
 * is the batch written, so a violation writes nothing.
 *
 * Invariants of a switch (fees move to the proposer; nothing is minted or burned):
 *   - undo records of a disconnected block name exactly the accounts that block touched, and restoring them
 *     gives back the parent's state root;
 *   - the touched accounts' total balance is the same before and after the switch;
 *   - every account's nonce moves by the transfers it sent in the connected blocks, less those it sent in
 *     the disconnected ones;
 *   - the lattice after the switch commits to the target block's state root.
 */
import { bytesEqual, toHex } from '../encoding/bytes.js';
import type { Block } from '../ledger/block.js';
import { EMPTY_ACCOUNT, type Account, type AccountKey, type AccountMap, type BlockAccounts } from '../ledger/state.js';
import type { StateLattice } from '../ledger/statehash.js';
import type { BatchOp } from '../storage/kv.js';
import { invariant, InvariantViolation } from '../util/assert.js';
import { accountOp, type UndoRecord } from './store.js';
import type { AccountReader } from './warmup.js';

export class SwitchState {
  /** The touched accounts' values as the switch goes (EMPTY_ACCOUNT for absent ones). */
  readonly overlay: AccountMap = new Map();
  readonly lattice: StateLattice;
  readonly #read: AccountReader;
  /**
   * Per touched account: its value in the stored head state, and the transfers it sent, +1 for each in a
   * connected block and −1 for each in a disconnected one.
   */
  readonly #base = new Map<AccountKey, { readonly before: Account; sent: number }>();
  /** Account keys' bytes, for store keys (the hex keys are for maps). */
  readonly #keyBytes = new Map<AccountKey, Uint8Array>();

  /** `lattice`: a copy of the head's lattice, which the switch changes. */
  constructor(lattice: StateLattice, read: AccountReader) {
    this.lattice = lattice;
    this.#read = read;
  }

  /** Bring `keys` into the overlay (from the stored head state unless the switch touched them already). */
  async load(keys: readonly AccountKey[], bytes: ReadonlyMap<AccountKey, Uint8Array>): Promise<void> {
    const missing = keys.filter((k) => !this.overlay.has(k));
    for (const k of keys) {
      if (this.#keyBytes.has(k)) continue;
      const b = bytes.get(k);
      if (b === undefined) throw new InvariantViolation(`no key bytes for account ${k}`);
      this.#keyBytes.set(k, b);
    }
    if (!missing.length) return;
    const found = await this.#read(missing, bytes);
    for (const k of missing) {
      const a = found.get(k) ?? EMPTY_ACCOUNT;
      this.overlay.set(k, a);
      this.#base.set(k, { before: a, sent: 0 });
    }
  }

  /** A loaded account's current value. */
  get(key: AccountKey): Account {
    const a = this.overlay.get(key);
    if (a === undefined) throw new InvariantViolation(`account ${key} was not loaded into the switch`);
    return a;
  }

  /**
   * Undo best-chain `block` (the newest block still applied) with its undo records; `parentRoot`: the
   * state root of its parent. Its accounts must be loaded.
   */
  disconnect(block: Block, accounts: BlockAccounts, undo: readonly UndoRecord[], parentRoot: Uint8Array): void {
    const hashHex = block.header.hashHex;
    invariant(undo.length === accounts.keys.length && undo.every((u, i) => u[0] === accounts.keys[i]),
      () => `undo coverage: the undo records of block ${hashHex} name [${undo.map((u) => u[0].slice(0, 8)).join(', ')}], the block touches [${accounts.keys.map((k) => k.slice(0, 8)).join(', ')}]`);
    for (const [key, prev] of undo) {
      this.lattice.update(key, this.get(key), prev);
      this.overlay.set(key, prev);
    }
    const root = this.lattice.root();
    invariant(bytesEqual(root, parentRoot), () => `undo state root: undoing block ${hashHex} gives state root ${toHex(root)}, its parent's is ${toHex(parentRoot)}`);
    this.#count(accounts, -1);
  }

  /** The values block application starts from: every account the block touches, as the switch holds it. */
  pre(accounts: BlockAccounts): Map<AccountKey, Account> {
    return new Map(accounts.keys.map((k) => [k, this.get(k)]));
  }

  /** Record a connected block's post-state (its leaves already replaced in the lattice). */
  connect(accounts: BlockAccounts, post: ReadonlyMap<AccountKey, Account>): void {
    for (const k of accounts.keys) {
      const a = post.get(k);
      if (a === undefined) throw new InvariantViolation(`block application left account ${k} out of its post-state`);
      this.overlay.set(k, a);
    }
    this.#count(accounts, 1);
  }

  #count(accounts: BlockAccounts, by: 1 | -1): void {
    for (const k of accounts.from) {
      const base = this.#base.get(k);
      if (base === undefined) throw new InvariantViolation(`nonce: sender ${k} is not among the switch's accounts`);
      base.sent += by;
    }
  }

  /** Assert the switch's invariants (module comment) against the target block's state root. */
  verify(target: Block): void {
    const what = `head switch to ${target.header.hashHex}`;
    let change = 0n;
    // Hot (every touched account of every block): no message is built unless an invariant fails.
    for (const [k, a] of this.overlay) {
      const base = this.#base.get(k);
      if (base === undefined) throw new InvariantViolation(`${what}: account ${k} has no stored value`);
      const b = base.before;
      if (a.balance !== b.balance) change += a.balance - b.balance;
      if (base.sent === 0 ? a.nonce !== b.nonce : a.nonce !== b.nonce + BigInt(base.sent)) {
        throw new InvariantViolation(`nonce: ${what} moves account ${k}'s nonce from ${b.nonce} to ${a.nonce}, but it sent ${base.sent} transfers net`);
      }
    }
    invariant(change === 0n, () => `supply: ${what} changes the touched accounts' total balance by ${change}`);
    const root = this.lattice.root();
    invariant(bytesEqual(root, target.header.stateRoot), () => `state root: ${what} leaves state root ${toHex(root)}, the block commits to ${toHex(target.header.stateRoot)}`);
  }

  /** The store operations writing every touched account's final value. */
  accountOps(ops: BatchOp[]): void {
    for (const [k, a] of this.overlay) {
      const b = this.#keyBytes.get(k);
      if (b === undefined) throw new InvariantViolation(`no key bytes for account ${k}`);
      ops.push(accountOp(b, a));
    }
  }
}
