/**
 * Read-only views for explorers and dashboards (the page at GET /explorer is built on them, and on nothing
 * else than the public JSON-RPC API): recent block summaries, the block tree of recent heights across
 * branches with the reorgs this node saw, per-validator production and missed slots, and the mempool's top
 * transactions with their fee distribution. Each view bounds its work by its parameters (the schemas cap
 * them) and reads the chain's in-memory index where it can; block bodies only where a view shows them.
 */
import { encodeAddress } from '../encoding/address.js';
import { toHex } from '../encoding/bytes.js';
import { txToJson } from '../ledger/json.js';
import { proposerFor, proposerIndex, slotAt } from '../ledger/schedule.js';
import type { BlockEntry, Chain, ReorgEvent } from '../chain/chain.js';
import type { Mempool } from '../mempool/mempool.js';

/** The reorgs this node went through, newest last, at most `max` (kept in memory since start). */
export class ReorgLog {
  readonly #entries: ReorgRecord[] = [];
  constructor(readonly max = 32) {}

  record(e: ReorgEvent, time: number): void {
    this.#entries.push({
      time, forkHeight: e.forkHeight, depth: e.disconnected.length,
      oldHead: e.oldHead.hashHex, oldHeight: e.oldHead.height, newHead: e.newHead.hashHex, newHeight: e.newHead.height,
    });
    if (this.#entries.length > this.max) this.#entries.shift();
  }

  list(): ReorgRecord[] { return [...this.#entries]; }
}

export interface ReorgRecord {
  time: number; forkHeight: number; depth: number; oldHead: string; oldHeight: number; newHead: string; newHeight: number;
}

/** Height `h` or the head's for 'latest'. */
export function heightOf(chain: Chain, h: number | 'latest'): number {
  return h === 'latest' ? chain.head.height : h;
}

/** Summaries of the best chain's blocks from `toHeight` down, newest first (reads `count` blocks). */
export async function blockSummaries(chain: Chain, toHeight: number, count: number) {
  const top = Math.min(toHeight, chain.head.height);
  const out = [];
  for (let height = top; height >= 0 && out.length < count; height--) {
    const b = await chain.getBlockAt(height);
    if (!b) break; // the head moved below `height` meanwhile (a reorg to a shorter chain cannot happen; pruning later)
    const h = b.header;
    out.push({
      height: h.height, hash: h.hashHex, slot: h.slot, timestamp: h.timestamp, proposer: encodeAddress(h.proposer),
      txCount: b.txs.length, size: b.bytes.length,
    });
  }
  return out;
}

/** Most blocks one getBlockTree answer lists (a byzantine validator can sign many blocks for its slot). */
export const TREE_MAX_BLOCKS = 2048;

/**
 * The block tree between two heights (inclusive), every branch: each indexed block, whether it is on the
 * best chain, and the rule it broke if it was found invalid; lowest height first, at most `limit` blocks
 * (`truncated` when more were there). From the chain's in-memory index only.
 */
export function treeBlocks(chain: Chain, fromHeight: number, toHeight: number, limit: number) {
  const blocks: { entry: BlockEntry; best: boolean; invalid: string | undefined }[] = [];
  for (let height = Math.max(0, fromHeight); height <= toHeight; height++) {
    for (const entry of chain.blocksAt(height)) {
      if (blocks.length === limit) return { blocks, truncated: true };
      blocks.push({ entry, best: chain.mainHashAt(height) === entry.hashHex, invalid: chain.isInvalid(entry.hashHex) });
    }
  }
  return { blocks, truncated: false };
}

/** The best chain's blocks whose slot is ≥ `minSlot`, newest first, at most `limit` (from memory). */
export function bestSince(chain: Chain, minSlot: number, limit: number): BlockEntry[] {
  const out: BlockEntry[] = [];
  for (let height = chain.head.height; height > 0 && out.length < limit; height--) {
    const hash = chain.mainHashAt(height);
    const e = hash === undefined ? undefined : chain.entry(hash);
    if (!e || e.slot < minSlot) break;
    out.push(e);
  }
  return out;
}

/** The block tree of the last `depth` heights (every branch) and the reorgs this node saw. */
export function blockTree(chain: Chain, depth: number, reorgs: ReorgLog | undefined) {
  const head = chain.head;
  // Side branches can be longer than the best chain only while invalid; show a few heights above the head.
  const toHeight = head.height + 8;
  const fromHeight = Math.max(0, head.height - depth + 1);
  const { blocks, truncated } = treeBlocks(chain, fromHeight, toHeight, TREE_MAX_BLOCKS);
  const g = chain.genesis;
  return {
    headHeight: head.height, headHash: head.hashHex, fromHeight,
    blocks: blocks.map(({ entry, best, invalid }) => ({
      hash: entry.hashHex, parentHash: entry.parentHex, height: entry.height, slot: entry.slot,
      // A stored block's proposer is its slot's validator (a rule checked before anything is stored).
      proposer: entry.height === 0 ? null : encodeAddress(proposerFor(g, entry.slot)),
      status: invalid ? 'invalid' : best ? 'best' : 'side',
      rule: invalid ?? null,
    })),
    truncated,
    reorgs: (reorgs?.list() ?? []).filter((r) => r.newHeight >= fromHeight || r.oldHeight >= fromHeight),
  };
}

/**
 * Production per validator over the last `slots` slots, up to the current one: slots each was scheduled
 * (src/ledger/schedule.ts), blocks of those slots on the best chain, and the difference (missed), plus the
 * most recent slots one by one and the equivocations on record. The current slot counts once its block
 * is there (otherwise it is still open); from memory except for the evidence keyspace.
 */
export async function validatorStats(chain: Chain, now: number, slots: number) {
  const g = chain.genesis;
  const n = g.validators.length;
  const head = chain.head;
  const clockSlot = slotAt(g, now);
  const toSlot = Math.max(head.slot, clockSlot - 1, 1);
  const fromSlot = Math.max(1, toSlot - slots + 1);
  const best = bestSince(chain, fromSlot, toSlot - fromSlot + 1);
  const bySlot = new Map(best.map((e) => [e.slot, e]));
  const stats = g.validators.map((pk, index) => ({
    address: encodeAddress(pk), index, scheduled: scheduledIn(fromSlot, toSlot, index, n), produced: 0, missed: 0,
    lastProducedSlot: null as number | null, lastProducedHeight: null as number | null, equivocations: 0,
  }));
  for (const e of best) {
    const s = stats[proposerIndex(g, e.slot)]!;
    s.produced++;
    if (s.lastProducedSlot === null) { s.lastProducedSlot = e.slot; s.lastProducedHeight = e.height; }
  }
  for (const s of stats) s.missed = s.scheduled - s.produced;
  // Equivocations: distinct slots with evidence, per validator (the evidence keyspace, bounded read).
  const seen = new Set<string>();
  for (const ev of await chain.equivocationHeaders(1000)) {
    const key = `${ev.slot}:${toHex(ev.proposer)}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const i = g.validators.findIndex((v) => toHex(v) === toHex(ev.proposer));
    if (i >= 0) stats[i]!.equivocations++;
  }
  const recentSlots = [];
  for (let slot = toSlot; slot >= fromSlot && recentSlots.length < 64; slot--) {
    const e = bySlot.get(slot);
    recentSlots.push({ slot, validator: proposerIndex(g, slot), height: e?.height ?? null, hash: e?.hashHex ?? null });
  }
  return { fromSlot, toSlot, clockSlot, headSlot: head.slot, validators: stats, recentSlots };
}

/** How many slots in [from, to] belong to validator `index` of `n` (slot s is validators[s mod n]'s). */
export function scheduledIn(from: number, to: number, index: number, n: number): number {
  if (to < from) return 0;
  const upTo = (s: number) => (s < index ? 0 : Math.floor((s - index) / n) + 1); // slots ≤ s that are index's
  return upTo(to) - upTo(from - 1);
}

/** Most transactions the fee distribution looks at: the executable ones best paid first (Mempool.candidates). */
export const MEMPOOL_SAMPLE = 5000;

/**
 * The mempool's best-paid executable transactions (`limit` of them) and the fee distribution of the first
 * MEMPOOL_SAMPLE as blocks would take them, in power-of-two fee buckets.
 */
export function mempoolContent(mempool: Mempool, limit: number) {
  const top = mempool.candidates(MEMPOOL_SAMPLE, Number.MAX_SAFE_INTEGER);
  const buckets = new Map<number, { count: number; bytes: number }>();
  for (const tx of top) {
    const k = tx.fee === 0n ? -1 : tx.fee.toString(2).length - 1;
    const b = buckets.get(k) ?? { count: 0, bytes: 0 };
    b.count++;
    b.bytes += tx.byteLength;
    buckets.set(k, b);
  }
  const feeHistogram = [...buckets].sort((a, b) => a[0] - b[0]).map(([k, b]) => ({
    minFee: k < 0 ? '0' : (1n << BigInt(k)).toString(), maxFee: k < 0 ? '0' : ((1n << BigInt(k + 1)) - 1n).toString(), count: b.count, bytes: b.bytes,
  }));
  return {
    size: mempool.size, bytes: mempool.bytes, sampled: top.length, feeHistogram,
    transactions: top.slice(0, limit).map((tx) => ({ ...txToJson(tx), size: tx.byteLength })),
  };
}
