/**
 * Operator metrics in the Prometheus text format (prom-client), one Registry per node: the simulator and
 * tests run many nodes in one process, so nothing goes to prom-client's global default registry.
 *
 * Two kinds of series:
 * - event counters, fed by the typed events the subsystems already emit (chain, mempool, producer, network),
 *   which src/node/wiring.ts routes to the methods below;
 * - values read lazily at scrape time (height, head slot, peers, mempool size and bytes, sync state, the
 *   network's gossip counters, the verify queue), so the hot paths pay nothing for them.
 *
 * Mempool rejections come from its `tx:rejected` event (every admission path: RPC, P2P, re-admission after
 * reorgs), counted by rule name.
 * Store write latency comes from `timedWrites`, a KV wrapper (see ./kv.ts) the node puts under chain,
 * mempool and network.
 *
 * Every name is listed in README "Metrics"; `METRIC_NAMES` below is the same list, checked by the tests.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { KV } from '../storage/kv.js';
import { timedWrites, type WriteOp } from './kv.js';

/** What the metrics read from each subsystem (structural, so tests can pass small fakes). */
export interface ChainSource { readonly head: { height: number; slot: number } }
export interface MempoolSource {
  readonly size: number;
  readonly bytes: number;
  /** Transactions waiting for admission (signature check, account read): the mempool's input backlog. */
  readonly admitting: number;
}
export interface GossipStats {
  txBodiesIn: number; txAnnouncementsIn: number; blockBodiesIn: number; blockAnnouncementsIn: number; blockBytesIn?: number;
  compactBlocksIn?: number; blockTxsRequested?: number;
  duplicateTxBodies: number; duplicateBlockBodies: number; bans: number;
}
export interface NetworkSource {
  readonly stats: GossipStats;
  readyPeers(): { outbound: boolean }[];
  readonly sync: { readonly status: { syncing: boolean; height: number; target: number }; readonly blocksSynced: number; readonly txsSynced: number };
}

export interface MetricsOptions {
  /** Process CPU, memory, GC, event-loop lag (prom-client's default metrics): only for a real node process. */
  processMetrics?: boolean;
  /** Labels of `meshledger_node_info`. */
  info?: { version: string; chainId: string; validator: boolean };
  /** The current slot by the wall clock (how far the head slot lags behind). */
  clockSlot?: () => number;
  /** Signatures waiting in the verifier's queue; undefined when the verifier has no queue (inline). */
  verifyQueueDepth?: () => number | undefined;
}

export const METRIC_NAMES = [
  'meshledger_node_info',
  'meshledger_chain_height', 'meshledger_chain_head_slot', 'meshledger_chain_clock_slot', 'meshledger_chain_empty_slots',
  'meshledger_blocks_connected_total', 'meshledger_blocks_disconnected_total', 'meshledger_blocks_invalid_total',
  'meshledger_chain_txs_confirmed_total', 'meshledger_reorgs_total', 'meshledger_reorg_depth', 'meshledger_equivocations_total',
  'meshledger_blocks_produced_total', 'meshledger_slots_missed_total',
  'meshledger_mempool_transactions', 'meshledger_mempool_bytes', 'meshledger_mempool_admitting', 'meshledger_mempool_accepted_total',
  'meshledger_mempool_rejected_total', 'meshledger_mempool_removed_total',
  'meshledger_peers', 'meshledger_peer_events_total', 'meshledger_peer_bans_total',
  'meshledger_gossip_tx_bodies_received_total', 'meshledger_gossip_tx_duplicate_bodies_total', 'meshledger_gossip_tx_announcements_received_total',
  'meshledger_gossip_block_bodies_received_total', 'meshledger_gossip_block_duplicate_bodies_total', 'meshledger_gossip_block_announcements_received_total',
  'meshledger_gossip_block_bytes_received_total', 'meshledger_gossip_compact_blocks_received_total', 'meshledger_gossip_block_txs_requested_total',
  'meshledger_sync_active', 'meshledger_sync_target_height', 'meshledger_sync_blocks_total', 'meshledger_sync_txs_total',
  'meshledger_verify_queue_depth', 'meshledger_db_write_seconds',
] as const;

/** A counter that mirrors a monotonic number kept elsewhere (read at scrape, never reset). */
function mirrorCounter(registry: Registry, name: string, help: string, read: () => number | undefined): Counter {
  let last = 0;
  return new Counter({
    name, help, registers: [registry],
    collect() {
      const v = read();
      if (v !== undefined && v > last) { this.inc(v - last); last = v; }
    },
  });
}

export class NodeMetrics {
  readonly registry = new Registry();
  #chain: ChainSource | undefined;
  #mempool: MempoolSource | undefined;
  #net: NetworkSource | undefined;

  readonly #blocksConnected: Counter;
  readonly #blocksDisconnected: Counter;
  readonly #blocksInvalid: Counter<'rule'>;
  readonly #txsConfirmed: Counter;
  readonly #reorgs: Counter;
  readonly #reorgDepth: Histogram;
  readonly #equivocations: Counter;
  readonly #produced: Counter;
  readonly #missed: Counter<'reason'>;
  readonly #accepted: Counter;
  readonly #rejected: Counter<'reason'>;
  readonly #removed: Counter<'reason'>;
  readonly #peerEvents: Counter<'event'>;
  readonly #dbWrite: Histogram<'op'>;

  constructor(o: MetricsOptions = {}) {
    const r = this.registry;
    const reg = [r];
    if (o.processMetrics) collectDefaultMetrics({ register: r });
    if (o.info) {
      new Gauge({ name: 'meshledger_node_info', help: 'Constant 1; the labels describe the node.', labelNames: ['version', 'chain_id', 'validator'], registers: reg })
        .set({ version: o.info.version, chain_id: o.info.chainId, validator: String(o.info.validator) }, 1);
    }
    const self = this;
    const lazy = (name: string, help: string, read: () => number | undefined) =>
      new Gauge({ name, help, registers: reg, collect() { const v = read(); if (v !== undefined) this.set(v); } });

    // ---- chain
    lazy('meshledger_chain_height', 'Height of the best chain head.', () => self.#chain?.head.height);
    lazy('meshledger_chain_head_slot', 'Slot of the best chain head.', () => self.#chain?.head.slot);
    if (o.clockSlot) lazy('meshledger_chain_clock_slot', 'Current slot by this node\'s clock (head slot lag = this - head slot).', o.clockSlot);
    lazy('meshledger_chain_empty_slots', 'Slots up to the head slot without a block on the best chain (head slot - height).',
      () => (self.#chain ? self.#chain.head.slot - self.#chain.head.height : undefined));
    this.#blocksConnected = new Counter({ name: 'meshledger_blocks_connected_total', help: 'Blocks connected to the best chain (reorgs count again).', registers: reg });
    this.#blocksDisconnected = new Counter({ name: 'meshledger_blocks_disconnected_total', help: 'Blocks disconnected from the best chain by reorgs.', registers: reg });
    this.#blocksInvalid = new Counter({ name: 'meshledger_blocks_invalid_total', help: 'Blocks found invalid, by rule.', labelNames: ['rule'], registers: reg });
    this.#txsConfirmed = new Counter({ name: 'meshledger_chain_txs_confirmed_total', help: 'Transactions in blocks connected to the best chain.', registers: reg });
    this.#reorgs = new Counter({ name: 'meshledger_reorgs_total', help: 'Head switches that disconnected at least one block.', registers: reg });
    this.#reorgDepth = new Histogram({ name: 'meshledger_reorg_depth', help: 'Blocks disconnected per reorg.', buckets: [1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 128], registers: reg });
    this.#equivocations = new Counter({ name: 'meshledger_equivocations_total', help: 'Validator equivocations recorded (two blocks for one slot).', registers: reg });

    // ---- producer (validators only; the series stay at 0 on followers)
    this.#produced = new Counter({ name: 'meshledger_blocks_produced_total', help: 'Blocks this validator produced.', registers: reg });
    this.#missed = new Counter({ name: 'meshledger_slots_missed_total', help: 'Own slots without a block from this validator, by reason (error, late).', labelNames: ['reason'], registers: reg });
    for (const reason of ['error', 'late']) this.#missed.inc({ reason }, 0);

    // ---- mempool
    lazy('meshledger_mempool_transactions', 'Transactions in the mempool.', () => self.#mempool?.size);
    lazy('meshledger_mempool_bytes', 'Encoded bytes of the transactions in the mempool.', () => self.#mempool?.bytes);
    lazy('meshledger_mempool_admitting', 'Transactions waiting for admission; at the shedding mark, RPC submissions are refused with mempool_busy.', () => self.#mempool?.admitting);
    this.#accepted = new Counter({ name: 'meshledger_mempool_accepted_total', help: 'Transactions admitted to the mempool (RPC, P2P, re-admitted after reorgs).', registers: reg });
    this.#rejected = new Counter({ name: 'meshledger_mempool_rejected_total', help: 'Transactions refused by the mempool, by rule.', labelNames: ['reason'], registers: reg });
    this.#removed = new Counter({ name: 'meshledger_mempool_removed_total', help: 'Transactions removed from the mempool, by reason.', labelNames: ['reason'], registers: reg });

    // ---- peers and gossip
    new Gauge({
      name: 'meshledger_peers', help: 'Connected (handshaken) peers, by direction.', labelNames: ['direction'], registers: reg,
      collect() {
        const peers = self.#net?.readyPeers() ?? [];
        const out = peers.filter((p) => p.outbound).length;
        this.set({ direction: 'outbound' }, out);
        this.set({ direction: 'inbound' }, peers.length - out);
      },
    });
    this.#peerEvents = new Counter({ name: 'meshledger_peer_events_total', help: 'Peer events: connected, disconnected, banned, penalized.', labelNames: ['event'], registers: reg });
    const stat = (k: keyof GossipStats) => () => self.#net?.stats[k];
    mirrorCounter(r, 'meshledger_peer_bans_total', 'Peers banned by this node.', stat('bans'));
    mirrorCounter(r, 'meshledger_gossip_tx_bodies_received_total', 'Transaction bodies received by gossip (pushed or fetched after an announcement).', stat('txBodiesIn'));
    mirrorCounter(r, 'meshledger_gossip_tx_duplicate_bodies_total', 'Gossiped transaction bodies that this node already had.', stat('duplicateTxBodies'));
    mirrorCounter(r, 'meshledger_gossip_tx_announcements_received_total', 'Transaction ids announced to this node (INV_TX entries).', stat('txAnnouncementsIn'));
    mirrorCounter(r, 'meshledger_gossip_block_bodies_received_total', 'Full block bodies received (pushed, fetched after an announcement, or synced).', stat('blockBodiesIn'));
    mirrorCounter(r, 'meshledger_gossip_compact_blocks_received_total', 'Compact blocks received (pushed, or asked for after an announcement).', stat('compactBlocksIn'));
    mirrorCounter(r, 'meshledger_gossip_block_txs_requested_total', 'Transactions a node had to ask for to rebuild compact blocks.', stat('blockTxsRequested'));
    mirrorCounter(r, 'meshledger_gossip_block_bytes_received_total', 'Bytes of block relay received: bodies, announcements and compact blocks with the transactions they lacked.', stat('blockBytesIn'));
    mirrorCounter(r, 'meshledger_gossip_block_duplicate_bodies_total', 'Gossiped block bodies that this node already had.', stat('duplicateBlockBodies'));
    mirrorCounter(r, 'meshledger_gossip_block_announcements_received_total', 'Block hashes announced to this node (INV_BLOCK).', stat('blockAnnouncementsIn'));

    // ---- sync
    lazy('meshledger_sync_active', '1 while catching up (a sync round is downloading towards a higher target), else 0.', () => (self.#net ? Number(self.#net.sync.status.syncing) : undefined));
    lazy('meshledger_sync_target_height', 'Sync target: the round\'s target while syncing, else the best head height peers show (current height = meshledger_chain_height).',
      () => self.#net?.sync.status.target ?? self.#chain?.head.height);
    mirrorCounter(r, 'meshledger_sync_blocks_total', 'Blocks added by sync (not gossip).', () => self.#net?.sync.blocksSynced);
    mirrorCounter(r, 'meshledger_sync_txs_total', 'Transactions in the blocks added by sync.', () => self.#net?.sync.txsSynced);

    // ---- verification and storage
    lazy('meshledger_verify_queue_depth', 'Signature verifications waiting in the verifier\'s queue (0 with the inline verifier, which has none).',
      () => o.verifyQueueDepth?.() ?? 0);
    this.#dbWrite = new Histogram({
      name: 'meshledger_db_write_seconds', help: 'Store write latency (LevelDB batch/put/del as awaited by chain, mempool and network), by operation.',
      labelNames: ['op'], buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: reg,
    });
    for (const op of ['batch', 'put', 'del'] as const) this.#dbWrite.zero({ op });
  }

  /** The text exposition and its content type (text/plain; version=0.0.4). */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /** Wrap a store so that its writes are timed into meshledger_db_write_seconds. */
  timeStore(kv: KV): KV {
    return timedWrites(kv, (op: WriteOp, seconds: number) => this.#dbWrite.observe({ op }, seconds));
  }

  /** Where the gauges read at scrape time come from (src/node/wiring.ts sets them as subsystems start). */
  readFrom(sources: { chain?: ChainSource; mempool?: MempoolSource; network?: NetworkSource }): void {
    if (sources.chain) this.#chain = sources.chain;
    if (sources.mempool) this.#mempool = sources.mempool;
    if (sources.network) this.#net = sources.network;
  }

  // ---- event counters: src/node/wiring.ts feeds them from the subsystems' events

  blockConnected(txs: number): void {
    this.#blocksConnected.inc();
    if (txs) this.#txsConfirmed.inc(txs);
  }
  blockDisconnected(): void { this.#blocksDisconnected.inc(); }
  blockInvalid(rule: string): void { this.#blocksInvalid.inc({ rule }); }
  reorg(depth: number): void {
    this.#reorgs.inc();
    this.#reorgDepth.observe(depth);
  }
  equivocation(): void { this.#equivocations.inc(); }
  txAccepted(): void { this.#accepted.inc(); }
  txRemoved(reason: string): void { this.#removed.inc({ reason }); }
  txRejected(rule: string): void { this.#rejected.inc({ reason: rule }); }
  blockProduced(): void { this.#produced.inc(); }
  slotMissed(reason: string): void { this.#missed.inc({ reason }); }
  peerEvent(event: 'connected' | 'disconnected' | 'banned' | 'penalized'): void { this.#peerEvents.inc({ event }); }

  /** Drop every series. */
  close(): void {
    this.registry.clear();
  }
}
