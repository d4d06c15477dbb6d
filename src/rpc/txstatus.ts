/** A transaction's status as getTransaction and the `transaction` subscription report it. */
import { txToJson } from '../ledger/json.js';
import type { Chain } from '../chain/chain.js';
import type { Mempool } from '../mempool/mempool.js';

export type TxStatus =
  | { id: string; status: 'pending'; transaction: ReturnType<typeof txToJson> }
  | { id: string; status: 'confirmed'; blockHeight: number; blockHash: string; index: number; confirmations: number; transaction: ReturnType<typeof txToJson> }
  | { id: string; status: 'unknown' };

/** Status of a transaction id on this node: confirmed on the best chain, pending in the mempool, or unknown. */
export async function transactionStatus(chain: Chain, mempool: Mempool, id: string): Promise<TxStatus> {
  const loc = await chain.getTxLocation(id);
  if (loc) {
    const block = await chain.getBlock(loc.blockHash);
    const tx = block?.txs[loc.index];
    if (tx) {
      return { id, status: 'confirmed', blockHeight: loc.height, blockHash: loc.blockHash, index: loc.index, confirmations: chain.head.height - loc.height + 1, transaction: txToJson(tx) };
    }
  }
  const p = mempool.get(id);
  if (p) return { id, status: 'pending', transaction: txToJson(p) };
  return { id, status: 'unknown' };
}
