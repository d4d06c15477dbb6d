/**
 * JSON-RPC method handlers. Each handler only does the work: parameter shapes are validated beforehand by
 * validators compiled from schemas/openrpc.json, and results are checked against it in tests.
 */
import { decodeAddress, encodeAddress } from '../encoding/address.js';
import { fromHex } from '../encoding/bytes.js';
import { RuleError, isProvablyInvalid } from '../ledger/rules.js';
import { decodeTx } from '../ledger/tx.js';
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
  const { chain, mempool } = node;
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

    sendTransaction: async (p) => {
      let tx;
      try {
        tx = decodeTx(parseTxBytes(p.tx as string));
        const res = await mempool.add(tx);
        return res.id;
      } catch (e) {
        if (e instanceof RuleError) throw ruleToRpc(e);
        throw e;
      }
    },

    getAccount: async (p) => {
      const address = p.address as string;
      const pk = decodeAddress(address);
      const a = await chain.getAccount(pk);
      return {
        address, balance: a.balance.toString(), nonce: a.nonce.toString(),
        nextNonce: mempool.nextNonce(pk, a.nonce).toString(), pending: mempool.pendingOf(pk).length,
      };
    },
  };
}

/** Hex (optionally 0x-prefixed) or base64; the schema already restricted the alphabet. */
function parseTxBytes(s: string): Uint8Array {
  const hex = s.startsWith('0x') ? s.slice(2) : s;
  if (/^([0-9a-fA-F]{2})+$/.test(hex)) return fromHex(hex.toLowerCase());
  const b = Buffer.from(s, 'base64');
  if (b.toString('base64') !== s) throw RpcError.invalidParams('"tx" is neither hex nor canonical base64', { param: 'tx' });
  return new Uint8Array(b);
}

/** Consensus-rule failures are invalid_transaction; stateful or policy refusals are mempool_rejected. */
function ruleToRpc(e: RuleError): RpcError {
  const name = isProvablyInvalid(e.rule) ? 'invalid_transaction' : 'mempool_rejected';
  return RpcError.app(name, { message: e.message, rule: e.rule });
}
