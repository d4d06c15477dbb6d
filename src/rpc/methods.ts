/**
 * JSON-RPC method handlers. Each handler only does the work: parameter shapes are validated beforehand by
 * validators compiled from schemas/openrpc.json, and results are checked against it in tests.
 */
import { encodeAddress } from '../encoding/address.js';
import { headerToJson } from '../ledger/json.js';
import type { Chain } from '../chain/chain.js';
import type { Mempool } from '../mempool/mempool.js';
import { RpcError } from './errors.js';
import type { MethodHandler } from './server.js';

export interface RpcNode {
  chain: Chain;
  mempool: Mempool;
}

export function createHandlers(node: RpcNode): Record<string, MethodHandler> {
  const { chain } = node;
  return {
    getChainInfo: () => ({
      chainId: chain.genesis.chainId,
      genesisHash: chain.genesisHash,
      height: chain.head.height,
      headHash: chain.head.hashHex,
      headSlot: chain.head.slot,
      validators: chain.genesis.validators.map(encodeAddress),
    }),

    getBlockHeader: async (p) => {
      const hasHeight = p.height !== undefined;
      const hasHash = p.hash !== undefined;
      if (hasHeight === hasHash) throw RpcError.invalidParams('give exactly one of "height" or "hash"');
      const block = hasHeight ? await chain.getBlockAt(p.height as number) : await chain.getBlock(p.hash as string);
      if (!block) throw RpcError.app('unknown_block', { data: hasHeight ? { height: p.height } : { hash: p.hash } });
      return headerToJson(block.header, block.txs.length);
    },
  };
}
