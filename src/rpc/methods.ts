/**
 * JSON-RPC method handlers. Each handler only does the work: parameter shapes are validated beforehand by
 * validators compiled from schemas/openrpc.json, and results are checked against it in tests.
 * The node's parts are reached through their public methods only (RpcNode).
 */
import { encodeAddress } from '../encoding/address.js';
import { toHex } from '../encoding/bytes.js';
import { headerToJson, txToJson } from '../ledger/json.js';
import { isProvablyInvalid, RuleError } from '../ledger/rules.js';
import { decodeTx } from '../ledger/tx.js';
import type { Chain } from '../chain/chain.js';
import type { Mempool } from '../mempool/mempool.js';
import type { Network } from '../p2p/network.js';
import { PROTOCOL_VERSION } from '../p2p/messages.js';
import { RpcError } from './errors.js';
import { addressParam, historyCursor, parseHistoryCursor, parseTxBytes } from './params.js';
import type { MethodHandler, RpcContext } from './server.js';
import type { Subscriptions } from './subscriptions.js';
import { transactionStatus } from './txstatus.js';
import { blockSummaries, blockTree, heightOf, mempoolContent, validatorStats, type ReorgLog } from './views.js';

export interface RpcNode {
  chain: Chain;
  mempool: Mempool;
  network?: Network | undefined;
  subscriptions?: Subscriptions;
  /** The reorgs this node saw (getBlockTree lists them); absent = none recorded. */
  reorgs?: ReorgLog;
  version: string;
  validator?: string | undefined;
  startedAt: number;
  now: () => number;
}

export function createHandlers(node: RpcNode): Record<string, MethodHandler> {
  const { chain, mempool } = node;
  const g = chain.genesis;

  const blockBy = async (p: Record<string, unknown>) => {
    const hasHeight = p.height !== undefined;
    if (hasHeight === (p.hash !== undefined)) throw RpcError.invalidParams('give exactly one of "height" or "hash"', { param: 'height' });
    const block = hasHeight ? await chain.getBlockAt(heightOf(chain, p.height as number | 'latest')) : await chain.getBlock(p.hash as string);
    if (!block) throw RpcError.app('unknown_block', { data: hasHeight ? { height: p.height } : { hash: p.hash } });
    return block;
  };

  const sub = (ctx: RpcContext) => {
    if (!node.subscriptions || ctx.transport !== 'ws' || !ctx.session) {
      throw RpcError.app('subscription_error', { message: 'Subscriptions need a WebSocket connection to this port', rule: 'websocket_required' });
    }
    return node.subscriptions;
  };

  const net = () => {
    if (!node.network) throw RpcError.app('not_ready', { message: 'P2P is not running on this node (start it with --p2p or --bootnodes)', rule: 'p2p_disabled' });
    return node.network;
  };

  return {
    getHealth: () => {
      const peers = node.network?.readyPeers().length ?? 0;
      const syncing = node.network?.sync.running ?? false;
      const headAgeMs = Math.max(0, node.now() - (g.genesisTime + chain.head.slot * g.slotMs));
      const status = syncing ? 'syncing' : node.network && peers === 0 ? 'no_peers' : 'ok';
      return { status, height: chain.head.height, peers, syncing, headAgeMs };
    },

    getVersion: () => ({ version: node.version, protocolVersion: PROTOCOL_VERSION, runtime: `node ${process.versions.node}` }),

    getNodeInfo: () => ({
      nodeId: node.network?.nodeIdHex ?? null,
      listen: node.network?.listenUrl || null,
      chainId: g.chainId,
      genesisHash: chain.genesisHash,
      validator: node.validator ?? null,
      height: chain.head.height,
      headHash: chain.head.hashHex,
      peers: node.network?.readyPeers().length ?? 0,
      mempoolSize: mempool.size,
      uptimeMs: Math.max(0, node.now() - node.startedAt),
    }),

    getChainInfo: () => ({
      chainId: g.chainId,
      genesisHash: chain.genesisHash,
      height: chain.head.height,
      headHash: chain.head.hashHex,
      headSlot: chain.head.slot,
      validators: g.validators.map(encodeAddress),
      genesisTime: g.genesisTime,
      slotMs: g.slotMs,
      minFee: g.params.minFee.toString(),
      decimals: g.params.decimals,
      symbol: g.params.symbol,
      totalSupply: g.totalSupply.toString(),
    }),

    getBlockHeader: async (p) => {
      const block = await blockBy(p);
      return headerToJson(block.header, block.txs.length);
    },

    getBlock: async (p) => {
      const block = await blockBy(p);
      const full = p.transactions === true;
      return { ...headerToJson(block.header, block.txs.length), size: block.bytes.length, transactions: block.txs.map((t) => (full ? txToJson(t) : t.idHex)) };
    },

    getBlockSummaries: (p) => blockSummaries(chain, heightOf(chain, (p.toHeight as number | 'latest' | undefined) ?? 'latest'), (p.count as number | undefined) ?? 20),

    getBlockTree: (p) => blockTree(chain, (p.depth as number | undefined) ?? 32, node.reorgs),

    getValidatorStats: (p) => validatorStats(chain, node.now(), (p.slots as number | undefined) ?? 1000),

    getTransaction: (p) => transactionStatus(chain, mempool, p.id as string),

    sendTransaction: async (p) => {
      try {
        const tx = decodeTx(parseTxBytes(p.tx as string));
        // mempool.add is called synchronously (no await before it): a batch's transactions are admitted
        // together, in the order sent (x-batch-concurrent in the OpenRPC document).
        try {
          return (await mempool.add(tx, { shed: true })).id;
        } catch (e) {
          // Idempotent: the same bytes again return the same id, also once they are confirmed (the
          // mempool then refuses them as a used nonce).
          if (e instanceof RuleError && await chain.getTxLocation(tx.idHex)) return tx.idHex;
          throw e;
        }
      } catch (e) {
        if (e instanceof RuleError) throw ruleToRpc(e);
        throw e;
      }
    },

    getAccount: async (p) => {
      const address = p.address as string;
      const pk = addressParam(address);
      const a = await chain.getAccount(pk);
      return {
        address, balance: a.balance.toString(), nonce: a.nonce.toString(),
        nextNonce: mempool.nextNonce(pk, a.nonce).toString(), pending: mempool.pendingOf(pk).length,
      };
    },

    getBalance: async (p) => {
      const address = p.address as string;
      return { address, balance: (await chain.getAccount(addressParam(address))).balance.toString() };
    },

    getAccountTransactions: async (p) => {
      const address = p.address as string;
      const pk = addressParam(address);
      const cursor = p.cursor !== undefined ? parseHistoryCursor(p.cursor as string) : undefined;
      const { entries, next } = await chain.accountHistory(pk, { limit: (p.limit as number | undefined) ?? 20, direction: p.direction as 'sent' | 'received' | 'both' | undefined, cursor });
      return {
        address,
        transactions: entries.map((e) => ({ id: e.tx.idHex, height: e.height, index: e.index, direction: e.direction, blockHash: e.blockHash, timestamp: e.timestamp, transaction: txToJson(e.tx) })),
        next: next ? historyCursor(next) : null,
      };
    },

    getMempoolInfo: () => ({
      size: mempool.size, bytes: mempool.bytes, senders: mempool.senderCount(),
      maxCount: mempool.limits.maxCount, maxBytes: mempool.limits.maxBytes, maxPerSender: mempool.limits.maxPerSender,
      replaceBumpPercent: mempool.limits.replaceBumpPercent, minFee: g.params.minFee.toString(),
    }),

    getMempoolContent: (p) => mempoolContent(mempool, (p.limit as number | undefined) ?? 20),

    getPeers: () => (node.network?.peerInfo() ?? []),

    // Public and read-only, like getPeers: who this node refuses and why (adminListBans is its admin twin).
    getBans: () => (node.network?.bans() ?? []).slice(0, 256).map((b) => ({ nodeId: b.nodeId, until: b.until, reason: b.reason })),

    getSyncStatus: () => {
      const s = node.network?.sync.status ?? { syncing: false, height: chain.head.height, target: chain.head.height };
      return { ...s, peers: node.network?.readyPeers().length ?? 0 };
    },

    getEquivocations: async () => (await chain.equivocationHeaders(1000)).map((e) => ({
      slot: e.slot, proposer: encodeAddress(e.proposer), blockHash: e.hashHex, header: toHex(e.bytes),
    })),

    subscribe: (p, ctx) => sub(ctx).subscribe(ctx.session!, p.topic as string, p as Record<string, unknown>),
    unsubscribe: (p, ctx) => sub(ctx).unsubscribe(ctx.session!, p.subscription as string),

    adminAddPeer: (p) => { net().connect(p.url as string); return true; },
    adminRemovePeer: (p) => net().disconnectPeer(p.nodeId as string),
    adminBanPeer: (p) => { net().ban(p.nodeId as string, (p.reason as string | undefined) ?? 'banned by operator', ((p.minutes as number | undefined) ?? 60) * 60_000); return true; },
    adminUnbanPeer: (p) => net().unban(p.nodeId as string),
    adminListBans: () => net().bans().map((b) => ({ nodeId: b.nodeId, until: b.until, reason: b.reason })),
  };
}

/** Consensus-rule failures are invalid_transaction; stateful or policy refusals are mempool_rejected. */
export function ruleToRpc(e: RuleError): RpcError {
  const name = isProvablyInvalid(e.rule) ? 'invalid_transaction' : 'mempool_rejected';
  return RpcError.app(name, { message: e.message, rule: e.rule });
}

