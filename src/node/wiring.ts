/**
 * Every subscription between subsystems, in one place: this file is where one reads how a transaction and a
 * block flow through a node. No subsystem subscribes to another itself; each exposes plain methods, and the
 * events carry what those need (a transaction's origin peer, a head change's connected and disconnected
 * blocks).
 *
 *   chain    ──chain:head──────────────▶ mempool (drop included, return abandoned, re-check senders; node.ts)
 *            ──chain:head──────────────▶ network (STATUS), subscriptions (newHeads, transaction, account)
 *            ──block:connected─────────▶ network (seen transactions, orphans waiting for it)
 *            ──chain:equivocation──────▶ network (evidence relay)
 *            ──chain:reorg─────────────▶ reorg log (getBlockTree lists the reorgs this node saw)
 *            ──chain:halted────────────▶ node (stops: an invariant failed, nothing was written)
 *   mempool  ──tx:accepted (+ origin)──▶ network (announce; not back to the peer it came from), subscriptions
 *            ──tx:removed──────────────▶ network (kept to rebuild compact blocks), subscriptions (dropped)
 *   producer ──block:signed────────────▶ network (relayed before this node connects it)
 *   network  ──blocks, transactions────▶ chain.addBlock, mempool.addMany (calls, not events)
 *   rpc      ──reads, submissions──────▶ chain, mempool, network (calls)
 *   every event ───────────────────────▶ metrics (counters)
 *
 * Listener order is part of behaviour (the deterministic simulator's traces depend on it): subsystems are
 * wired in the order node.ts creates them, each before it starts.
 */
import type { Chain } from '../chain/chain.js';
import type { Mempool } from '../mempool/mempool.js';
import type { ChainSource, MempoolSource, NetworkSource, NodeMetrics } from '../metrics/metrics.js';
import type { Network } from '../p2p/network.js';
import type { Producer } from '../producer/producer.js';
import type { Subscriptions } from '../rpc/subscriptions.js';
import type { ReorgLog } from '../rpc/views.js';

type Off = () => void;
const all = (offs: Off[]): Off => () => { for (const f of offs) f(); };

/** The network learns of new heads, accepted transactions, equivocations and connected blocks. */
export function wireNetwork(chain: Chain, mempool: Mempool, network: Network, producer?: Producer): Off {
  return all([
    chain.on('chain:head', ({ head }) => network.onHead(head)),
    mempool.on('tx:accepted', (tx, origin) => network.onTxAccepted(tx, origin)),
    chain.on('chain:equivocation', (e) => network.onEquivocation(e)),
    chain.on('block:connected', (b) => network.onBlockConnected(b)),
    mempool.on('tx:removed', ({ tx }) => network.onTxRemoved(tx)),
    ...(producer ? [producer.on('block:signed', (b) => network.relayBlock(b))] : []),
  ]);
}

/** JSON-RPC WebSocket subscriptions hear of heads and of transactions entering and leaving the mempool. */
export function wireSubscriptions(chain: Chain, mempool: Mempool, subs: Subscriptions): Off {
  return all([
    chain.on('chain:head', (e) => subs.onHead(e)),
    mempool.on('tx:accepted', (tx) => subs.onTxAccepted(tx)),
    mempool.on('tx:removed', (e) => subs.onTxRemoved(e)),
  ]);
}

/** The RPC's reorg log records every reorg this node goes through (for explorers' fork views). */
export function wireReorgLog(chain: Chain, reorgs: ReorgLog, now: () => number): Off {
  return chain.on('chain:reorg', (e) => reorgs.record(e, now()));
}

/** What metrics listen to and read (structural: tests pass small fakes). */
export interface MetricsSources {
  chain?: ChainSource & Pick<Chain, 'on'>;
  mempool?: MempoolSource & Pick<Mempool, 'on'>;
  producer?: Pick<Producer, 'on'>;
  network?: NetworkSource & Pick<Network, 'on'>;
}

/** Metrics count the events of whichever subsystems this node runs, and read their gauges at scrape time. */
export function wireMetrics(metrics: NodeMetrics, s: MetricsSources): Off {
  const offs: Off[] = [];
  metrics.readFrom(s);
  if (s.chain) {
    offs.push(
      s.chain.on('block:connected', (b) => metrics.blockConnected(b.txs.length)),
      s.chain.on('block:disconnected', () => metrics.blockDisconnected()),
      s.chain.on('block:invalid', (e) => metrics.blockInvalid(e.rule)),
      s.chain.on('chain:reorg', (e) => metrics.reorg(e.disconnected.length)),
      s.chain.on('chain:equivocation', () => metrics.equivocation()),
    );
  }
  if (s.mempool) {
    offs.push(
      s.mempool.on('tx:accepted', () => metrics.txAccepted()),
      s.mempool.on('tx:removed', (e) => metrics.txRemoved(e.reason)),
      s.mempool.on('tx:rejected', (e) => metrics.txRejected(e.rule)),
    );
  }
  if (s.producer) {
    offs.push(
      s.producer.on('block:produced', () => metrics.blockProduced()),
      s.producer.on('slot:missed', (e) => metrics.slotMissed(e.reason)),
    );
  }
  if (s.network) {
    offs.push(
      s.network.on('peer:connected', () => metrics.peerEvent('connected')),
      s.network.on('peer:disconnected', () => metrics.peerEvent('disconnected')),
      s.network.on('peer:banned', () => metrics.peerEvent('banned')),
      s.network.on('peer:penalized', () => metrics.peerEvent('penalized')),
    );
  }
  return all(offs);
}
