/**
 * Every rule a transaction or block can break, in one table. The `rule` string is stable API: it appears in
 * RPC error data, in logs, in metrics labels and in peer-penalty reasons. docs/protocol.md lists the same table.
 */
export const RULES = {
  // encoding
  malformed: 'bytes are not a well-formed object of the expected type',
  non_canonical: 'bytes are not the canonical encoding of the object they decode to',
  too_large: 'encoding exceeds the size limit',
  // transaction, context-free
  bad_version: 'unsupported object version',
  wrong_chain: 'chain id differs from this network\'s',
  bad_signature: 'signature does not verify (ZIP-215 as decided by @noble/ed25519 v3)',
  zero_amount: 'amount must be at least 1',
  fee_too_low: 'fee is below the genesis minimum fee',
  amount_overflow: 'amount + fee exceeds 2^64-1',
  memo_too_long: 'memo exceeds the genesis maximum memo bytes',
  tx_too_large: 'encoded transaction exceeds the maximum transaction size',
  // transaction, against state
  nonce_too_low: 'nonce is below the sender\'s account nonce (already used)',
  nonce_too_high: 'nonce is above the sender\'s account nonce (a gap)',
  insufficient_funds: 'sender balance is below amount + fee',
  nonce_exhausted: 'sender nonce cannot be incremented past 2^64-1',
  // block
  unknown_parent: 'parent block is not known',
  invalid_parent: 'parent block (or an ancestor) is invalid',
  bad_height: 'height is not parent height + 1',
  bad_slot: 'slot is not greater than the parent\'s slot',
  future_slot: 'slot starts further ahead of the local clock than the allowed drift',
  wrong_proposer: 'proposer is not the validator scheduled for this slot',
  bad_timestamp: 'timestamp is not the start time of the block\'s slot',
  bad_tx_root: 'transactions root does not match the transactions',
  bad_state_root: 'state root does not match the state after applying the block',
  too_many_txs: 'block holds more transactions than the genesis limit',
  block_too_large: 'block bytes exceed the genesis limit',
  duplicate_tx: 'the same transaction appears twice in the block',
  bad_tx: 'a transaction in the block breaks a rule (see the nested rule)',
  known_invalid: 'block was already found invalid',
  // mempool (local policy, not consensus)
  mempool_full: 'mempool is full and the fee does not beat the cheapest evictable transaction',
  replacement_underpriced: 'a transaction with this sender and nonce is pending and the fee bump is too small',
  too_many_pending: 'sender has too many pending transactions (future-nonce queue bound)',
  mempool_busy: 'the node has too many transactions waiting for admission (overload); retry later',
  non_standard_signature: 'the signature does not pass the strict RFC 8032 verification mempools require (a block may still include it)',
} as const;

export type Rule = keyof typeof RULES;

/** A broken consensus or policy rule. `rule` names it; `index` locates a transaction within a block. */
export class RuleError extends Error {
  readonly rule: Rule;
  readonly index: number | undefined;
  readonly inner: RuleError | undefined;
  constructor(rule: Rule, detail?: string, opts: { index?: number; inner?: RuleError } = {}) {
    super(detail ? `${rule}: ${detail}` : `${rule}: ${RULES[rule]}`);
    this.name = 'RuleError';
    this.rule = rule;
    this.index = opts.index;
    this.inner = opts.inner;
  }
}

/** Rules whose violation proves the sender (peer) sent garbage, as opposed to stale or racing data. */
export function isProvablyInvalid(rule: Rule): boolean {
  return !['unknown_parent', 'future_slot', 'nonce_too_low', 'nonce_too_high', 'insufficient_funds', 'mempool_full',
    'replacement_underpriced', 'too_many_pending', 'mempool_busy', 'known_invalid'].includes(rule);
}

/** Rules a block breaks only against the state its parent leaves (balances, nonces, the state root, an invalid ancestor). */
const STATE_RULES: readonly Rule[] = ['bad_state_root', 'invalid_parent', 'nonce_too_low', 'nonce_too_high', 'insufficient_funds', 'nonce_exhausted'];

/**
 * Whether a block fails `e` on its own bytes (and its parent's header, which its hash commits to), so that no
 * honest node would have stored it, let alone served it. A block can instead fail against state (see
 * STATE_RULES) while an honest node holds it unvalidated on a side branch: serving such a block by hash, as
 * asked, is not misbehaviour.
 */
export function isIntrinsicBlockFailure(e: RuleError): boolean {
  if (e.rule === 'bad_tx' && e.inner) return !STATE_RULES.includes(e.inner.rule);
  return isProvablyInvalid(e.rule) && !STATE_RULES.includes(e.rule);
}
