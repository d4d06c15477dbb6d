/**
 * Equivocation: a validator that signs two different blocks for one slot. Either header pair is the proof,
 * checkable by anyone without state: both headers name the same slot and proposer, the slot belongs to that
 * proposer, and both signatures verify. The chain finds it when a second block for a slot is stored (any
 * height, any branch), and takes it from peers as evidence; it stores the headers under 'q' and announces
 * them ('chain:equivocation'). Equivocating does not make either block invalid: fork choice is unaffected.
 */
import { bytesEqual, toHex } from '../encoding/bytes.js';
import type { SignatureVerifier } from '../crypto/ed25519.js';
import { headerVerifyItem, type Block, type BlockHeader } from '../ledger/block.js';
import type { Genesis } from '../ledger/genesis.js';
import { proposerFor } from '../ledger/schedule.js';
import { RuleError } from '../ledger/rules.js';
import { URGENT, type ChainEvents } from './types.js';

/**
 * The headers proving an equivocation if `block` is not the only stored block for its slot (`others`: the
 * other blocks indexed at that slot), else [].
 */
export async function equivocationWith(block: Block, others: readonly string[], getBlock: (hashHex: string) => Promise<Block | undefined>): Promise<BlockHeader[]> {
  if (others.length === 0) return [];
  const headers: BlockHeader[] = [block.header];
  for (const other of others) {
    const b = await getBlock(other);
    if (b) headers.push(b.header);
  }
  return headers.length > 1 ? headers : [];
}

/**
 * Check evidence from a peer: two different headers of one proposer for one slot of this chain, that
 * slot's proposer, both signatures valid. Throws RuleError naming what is wrong.
 */
export async function checkEvidence(a: BlockHeader, b: BlockHeader, genesis: Genesis, verifier: SignatureVerifier): Promise<void> {
  if (a.hashHex === b.hashHex || a.slot !== b.slot || !bytesEqual(a.proposer, b.proposer)) {
    throw new RuleError('malformed', 'evidence must be two different headers of one proposer for one slot');
  }
  for (const x of [a, b]) {
    if (x.chainId !== genesis.chainId) throw new RuleError('wrong_chain', `evidence header for chain "${x.chainId}"`);
    if (!bytesEqual(x.proposer, proposerFor(genesis, x.slot))) throw new RuleError('wrong_proposer', `slot ${x.slot} does not belong to this proposer`);
  }
  const ok = await verifier.verifyBatch([headerVerifyItem(a), headerVerifyItem(b)], URGENT);
  if (!ok[0] || !ok[1]) throw new RuleError('bad_signature', 'evidence header signature');
}

/** The 'chain:equivocation' announcement of stored evidence (`headers`: two or more, one slot, one proposer). */
export function equivocationEvent(headers: readonly [BlockHeader, ...BlockHeader[]]): Parameters<ChainEvents['chain:equivocation']>[0] {
  const h = headers[0];
  return { slot: h.slot, proposer: toHex(h.proposer), hashes: headers.map((x) => x.hashHex), headers: headers.map((x) => x.bytes) };
}
