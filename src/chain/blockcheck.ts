/**
 * What a block must pass before it is stored, in the order the chain applies it: the stateless rules, the
 * rules against its parent and the clock, and every signature. State (balances, nonces, the state root) is
 * checked later, when a head switch applies the block.
 *
 * A verdict says whether to remember the failure (Chain's #rejected, by block hash), which is right only
 * when the block hash commits to everything the failed check read. It commits to the header, and to the
 * body through the transactions root: a body that does not match the root (bad_tx_root) is a mutated copy,
 * so it is refused without being remembered, and the honest block with that header can still arrive.
 * Every rule checked after the root matched is intrinsic to the hash. A block from the future may become
 * valid later, so it is not remembered either (only its header signature is checked, so that sending such
 * blocks is not free).
 */
import { SigCache, headerCheckId, verifyWithCache } from '../crypto/sigcache.js';
import type { SignatureVerifier } from '../crypto/ed25519.js';
import { blockVerifyItem, checkBlockContext, checkBlockRules, checkHeaderRules, headerVerifyItem, type Block, type BlockHeader } from '../ledger/block.js';
import type { Genesis } from '../ledger/genesis.js';
import { slotStart } from '../ledger/schedule.js';
import { RuleError } from '../ledger/rules.js';
import { URGENT } from './types.js';

export interface Verdict {
  readonly error: RuleError;
  /** Remember the block as invalid (false: it may be valid later). */
  readonly remember: boolean;
}

/** The rules that need nothing but the block and the genesis; undefined if it passes. */
export function checkStateless(block: Block, genesis: Genesis): Verdict | undefined {
  try {
    checkBlockRules(block, genesis);
  } catch (e) {
    if (e instanceof RuleError) return { error: e, remember: e.rule !== 'bad_tx_root' };
    throw e;
  }
  return undefined;
}

/** Check `block` against its `parent`, the clock (`nowMs`) and its signatures; undefined if it passes. */
export async function checkOnParent(block: Block, parent: { height: number; slot: number }, nowMs: number, genesis: Genesis, verifier: SignatureVerifier, sigCache: SigCache): Promise<Verdict | undefined> {
  try {
    checkBlockContext(block.header, parent, nowMs, genesis);
  } catch (e) {
    if (!(e instanceof RuleError)) throw e;
    if (e.rule !== 'future_slot') return { error: e, remember: true };
    if ((await verifier.verifyBatch([blockVerifyItem(block, 0)], URGENT))[0] !== true) {
      return { error: new RuleError('bad_signature', 'block header signature'), remember: true };
    }
    return { error: e, remember: false };
  }
  // The header's check is urgent: it is one signature that no admission or read-ahead check carries for
  // this block, and queued behind them it held up every block (sync: ~30 ms a block behind its own
  // read-ahead). The transactions' checks are not urgent (see URGENT).
  const [headerBad, txBad] = await Promise.all([
    verifyWithCache(verifier, sigCache, [headerCheckId(block.header.hashHex)], () => blockVerifyItem(block, 0), URGENT),
    verifyWithCache(verifier, sigCache, block.txs.map((t) => t.idHex), (i) => blockVerifyItem(block, i + 1)),
  ]);
  if (headerBad !== -1) return { error: new RuleError('bad_signature', 'block header signature'), remember: true };
  if (txBad !== -1) {
    return { error: new RuleError('bad_tx', `transaction ${txBad}: bad_signature`, { index: txBad, inner: new RuleError('bad_signature') }), remember: true };
  }
  return undefined;
}

/**
 * What a block whose parent is unknown must pass before anyone keeps it (the network's orphan pool): not from
 * the future, and signed by its slot's validator. Without the parent nothing else about it can be checked,
 * but these make a pool of orphans cost a validator's key to fill. Undefined if it passes.
 */
export function checkOrphan(block: Block, nowMs: number, genesis: Genesis, verifier: SignatureVerifier, sigCache: SigCache): Promise<Verdict | undefined> {
  return checkSignedHeader(block.header, nowMs, genesis, verifier, sigCache);
}

/** Not from the future, and signed by its slot's validator (the header check of an orphan or a compact block). */
async function checkSignedHeader(h: BlockHeader, nowMs: number, genesis: Genesis, verifier: SignatureVerifier, sigCache: SigCache): Promise<Verdict | undefined> {
  const ahead = slotStart(genesis, h.slot) - nowMs;
  if (ahead > genesis.params.maxClockDriftMs) return { error: new RuleError('future_slot', `slot ${h.slot} starts ${ahead} ms ahead of the local clock`), remember: false };
  const bad = await verifyWithCache(verifier, sigCache, [headerCheckId(h.hashHex)], () => headerVerifyItem(h), URGENT);
  if (bad !== -1) return { error: new RuleError('bad_signature', 'block header signature'), remember: true };
  return undefined;
}

/**
 * What a header must pass before its block's body is assembled (a compact block): its own rules, not from
 * the future, signed by its slot's validator. All of it is intrinsic to the header (remembered on failure),
 * except the clock.
 */
export async function checkHeaderAlone(h: BlockHeader, nowMs: number, genesis: Genesis, verifier: SignatureVerifier, sigCache: SigCache): Promise<Verdict | undefined> {
  try {
    checkHeaderRules(h, genesis);
  } catch (e) {
    if (e instanceof RuleError) return { error: e, remember: true };
    throw e;
  }
  return checkSignedHeader(h, nowMs, genesis, verifier, sigCache);
}
