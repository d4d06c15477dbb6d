/** JSON views of protocol objects (RPC, CLI, SDK). Amounts are decimal strings; bytes are lower-case hex. */
import { encodeAddress } from '../encoding/address.js';
import { toHex } from '../encoding/bytes.js';
import type { BlockHeader } from './block.js';
import type { Tx } from './tx.js';

export interface HeaderJson {
  version: number; chainId: string; height: number; slot: number; parentHash: string; timestamp: number;
  txRoot: string; stateRoot: string; proposer: string; signature: string; hash: string; txCount: number;
}

export function headerToJson(h: BlockHeader, txCount: number): HeaderJson {
  return {
    version: h.version, chainId: h.chainId, height: h.height, slot: h.slot, parentHash: toHex(h.parentHash),
    timestamp: h.timestamp, txRoot: toHex(h.txRoot), stateRoot: toHex(h.stateRoot),
    // The genesis block has no proposer (32 zero bytes), which still encodes as an address.
    proposer: encodeAddress(h.proposer), signature: toHex(h.signature), hash: h.hashHex, txCount,
  };
}

export interface TxJson {
  id: string; chainId: string; from: string; to: string; amount: string; fee: string; nonce: string; memo: string; signature: string;
}

export function txToJson(tx: Tx): TxJson {
  return {
    id: tx.idHex, chainId: tx.chainId, from: encodeAddress(tx.from), to: encodeAddress(tx.to), amount: tx.amount.toString(),
    fee: tx.fee.toString(), nonce: tx.nonce.toString(), memo: tx.memo, signature: toHex(tx.signature),
  };
}
