/**
 * Transaction gossip (TXS, INV_TX, GET_TX). Transactions are relayed only after our mempool admitted them.
 * Each peer has a bounded "known" set; nothing is sent to a peer that has it. A node's own transactions
 * (from RPC) are pushed to all peers for a fast first hop; relayed transactions go to `txPushFanout` peers
 * (default 0: on a 20-node mesh a relay push of 1 gave 2.2 body copies per node per tx, announce-only 1.1,
 * and faster delivery; see scripts/bench/gossip.ts) and are announced by id to the rest, which fetch what
 * they lack. Announcements are batched every `announceIntervalMs`. A fetch that is not answered within 3 s
 * is asked of another peer that announced the same id.
 */
import { fromHex, toHex } from '../encoding/bytes.js';
import type { Block } from '../ledger/block.js';
import { isProvablyInvalid, RuleError } from '../ledger/rules.js';
import { decodeTx, type Tx } from '../ledger/tx.js';
import type { Mempool } from '../mempool/mempool.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { LruSet } from '../util/lru.js';
import type { Random } from '../util/random.js';
import type { NetLimits } from './limits.js';
import { MAX_INV, MAX_TXS_PER_MSG, MSG, type Message } from './messages.js';
import type { Peer } from './peer.js';
import { shuffleFront, type MessageSpec, type Reactor, type ReactorHost } from './reactor.js';

/**
 * Unverified work a peer may cause before its verdicts are in: a new peer's transactions are admitted in
 * batches of FIRST_ALLOWANCE, and each batch without a provably invalid transaction doubles the next, up
 * to a whole message. A batch with one resets it. A peer sending invalid signatures thus costs at most
 * FIRST_ALLOWANCE strict checks before its penalties (20 points each) have it banned.
 */
const FIRST_ALLOWANCE = 16;

/** A fetch unanswered for this long is asked of the next peer that announced the transaction. */
const REFETCH_MS = 3000;
/** Peers remembered per fetch as alternates, and fetches in flight at most. */
const MAX_ALTERNATES = 4;
const MAX_INFLIGHT = 100_000;

export interface TxReactorOptions {
  host: ReactorHost;
  mempool: Mempool;
  clock: Clock;
  random: Random;
  log: Logger;
  limits: Pick<NetLimits, 'txPushFanout' | 'announceIntervalMs'>;
  /** The codec's frame limits by type (messages.ts sizeLimits). */
  wire: Record<number, number>;
}

export class TxReactor implements Reactor {
  readonly name = 'tx-gossip';
  readonly messages: readonly MessageSpec[];
  readonly #o: TxReactorOptions;
  readonly #host: ReactorHost;
  readonly #rejected = new LruSet<string>(50_000);
  /** Transactions seen valid (admitted or confirmed): announcements of them are not fetched again. */
  readonly #seen = new LruSet<string>(200_000);
  /**
   * Transactions whose body arrived and is being admitted (verify, persist), with the number of copies in
   * admission: fetching another copy from an announcer meanwhile would only be a duplicate.
   */
  readonly #beingAdmitted = new Map<string, number>();
  readonly #inflight = new Map<string, { peer: Peer; at: number; alternates: Peer[] }>();
  /** Admitted transactions waiting for the next announcement round, with the node id of the peer they came from. */
  readonly #queue: { tx: Tx; origin: string | undefined }[] = [];
  /** Per peer: the admission of its last TXS message, while it runs (see #onTxs). */
  readonly #admission = new WeakMap<Peer, Promise<void>>();
  /** Per peer: how many of its transactions are admitted at once (see FIRST_ALLOWANCE). */
  readonly #allowance = new WeakMap<Peer, number>();
  #announceTimer: TimerHandle | undefined;
  readonly stats = { txBodiesIn: 0, txAnnouncementsIn: 0, duplicateTxBodies: 0 };

  constructor(o: TxReactorOptions) {
    this.#o = o;
    this.#host = o.host;
    this.messages = [
      { type: MSG.TXS, maxBytes: o.wire[MSG.TXS]!, lane: 'chain' },
      { type: MSG.INV_TX, maxBytes: o.wire[MSG.INV_TX]! },
      { type: MSG.GET_TX, maxBytes: o.wire[MSG.GET_TX]! },
    ];
  }

  /** Start the announcement rounds. */
  start(): void {
    this.#scheduleAnnounce();
  }

  stop(): void {
    if (this.#announceTimer) this.#o.clock.clearTimeout(this.#announceTimer);
  }

  /** The mempool admitted a transaction: `origin` is the node id of the peer that sent it (none for our own). */
  onTxAccepted(tx: Tx, origin: string | undefined): void {
    this.#seen.add(tx.idHex);
    this.#queue.push({ tx, origin });
  }

  onBlockConnected(b: Block): void {
    for (const tx of b.txs) this.#seen.add(tx.idHex);
  }

  /** A new peer learns our pending transactions by id and fetches what it lacks. */
  onPeerReady(peer: Peer): void {
    const ids = this.#o.mempool.ids();
    for (let i = 0; i < ids.length; i += MAX_INV) {
      const chunk = ids.slice(i, i + MAX_INV);
      for (const id of chunk) peer.knownTxs.add(id);
      this.#host.send(peer, { type: MSG.INV_TX, ids: chunk.map(fromHex) }, true);
    }
  }

  onMessage(peer: Peer, m: Message): void | Promise<void> {
    switch (m.type) {
      case MSG.TXS: return this.#onTxs(peer, m.txs);
      case MSG.INV_TX: return this.#onInvTx(peer, m.ids);
      case MSG.GET_TX: return this.#onGetTx(peer, m.ids);
    }
  }

  /** Ask again, of an alternate announcer, for transactions whose fetch went unanswered. */
  tick(now: number): void {
    for (const [id, f] of this.#inflight) {
      if (now - f.at < REFETCH_MS) continue;
      const next = f.alternates.find((a) => !a.closed);
      if (next) {
        this.#inflight.set(id, { peer: next, at: now, alternates: f.alternates.filter((a) => a !== next) });
        this.#host.send(next, { type: MSG.GET_TX, ids: [fromHex(id)] }, true);
      } else this.#inflight.delete(id);
    }
  }

  #scheduleAnnounce(): void {
    if (!this.#host.running) return;
    this.#announceTimer = this.#o.clock.setTimeout(() => {
      this.#flush();
      this.#scheduleAnnounce();
    }, this.#o.limits.announceIntervalMs);
  }

  /** Send queued transactions: bodies to a few peers, ids to the rest, nothing to peers that have them. */
  #flush(): void {
    if (this.#queue.length === 0) return;
    const queue = this.#queue.splice(0);
    const peers = this.#host.readyPeers();
    const bodies = new Map<Peer, Uint8Array[]>();
    const invs = new Map<Peer, Uint8Array[]>();
    const targets: Peer[] = []; // reused: this loop runs per transaction, so it allocates nothing per transaction
    for (const { tx, origin } of queue) {
      if (!this.#o.mempool.has(tx.idHex)) continue; // replaced or evicted meanwhile
      targets.length = 0;
      for (const p of peers) if (p.nodeIdHex !== origin && !p.knownTxs.has(tx.idHex)) targets.push(p);
      // Own transactions: the body to every peer. Relayed ones: to txPushFanout peers drawn at random, ids to the rest.
      const push = origin !== undefined ? shuffleFront(targets, this.#o.limits.txPushFanout, this.#o.random) : targets.length;
      for (let i = 0; i < targets.length; i++) {
        const p = targets[i]!;
        p.knownTxs.add(tx.idHex);
        const m = i < push ? bodies : invs;
        let l = m.get(p);
        if (!l) m.set(p, (l = []));
        l.push(i < push ? tx.bytes : tx.id);
      }
    }
    for (const [p, l] of bodies) for (let i = 0; i < l.length; i += MAX_TXS_PER_MSG) this.#host.send(p, { type: MSG.TXS, txs: l.slice(i, i + MAX_TXS_PER_MSG) }, true);
    for (const [p, l] of invs) for (let i = 0; i < l.length; i += MAX_INV) this.#host.send(p, { type: MSG.INV_TX, ids: l.slice(i, i + MAX_INV) }, true);
  }

  #onInvTx(peer: Peer, ids: Uint8Array[]): void {
    this.stats.txAnnouncementsIn += ids.length;
    const want: Uint8Array[] = [];
    const now = this.#o.clock.now();
    for (const id of ids) {
      const hex = toHex(id);
      peer.knownTxs.add(hex);
      if (this.#seen.has(hex) || this.#rejected.has(hex) || this.#beingAdmitted.has(hex)) continue;
      const f = this.#inflight.get(hex);
      if (f) { if (f.peer !== peer && f.alternates.length < MAX_ALTERNATES) f.alternates.push(peer); continue; }
      if (this.#inflight.size >= MAX_INFLIGHT) continue;
      this.#inflight.set(hex, { peer, at: now, alternates: [] });
      want.push(id);
    }
    if (want.length) this.#host.send(peer, { type: MSG.GET_TX, ids: want }, true);
  }

  #onGetTx(peer: Peer, ids: Uint8Array[]): void {
    const out: Uint8Array[] = [];
    let bytes = 0;
    for (const id of ids) {
      const tx = this.#o.mempool.get(toHex(id));
      if (!tx) continue;
      out.push(tx.bytes);
      bytes += tx.byteLength;
      if (out.length === MAX_TXS_PER_MSG || bytes > 1_900_000) {
        this.#host.send(peer, { type: MSG.TXS, txs: out.splice(0) }, true);
        bytes = 0;
      }
    }
    if (out.length) this.#host.send(peer, { type: MSG.TXS, txs: out }, true);
  }

  async #onTxs(peer: Peer, list: Uint8Array[]): Promise<void> {
    const fresh: Tx[] = [];
    const inMessage = new Set<string>();
    for (const bytes of list) {
      if (peer.closed) return;
      let tx: Tx;
      try {
        tx = decodeTx(bytes);
      } catch (e) {
        this.#host.penalize(peer, 'invalid_tx', e instanceof Error ? e.message : String(e));
        continue;
      }
      this.stats.txBodiesIn++;
      peer.knownTxs.add(tx.idHex);
      this.#inflight.delete(tx.idHex);
      if (this.#o.mempool.has(tx.idHex) || this.#seen.has(tx.idHex) || inMessage.has(tx.idHex)) { this.stats.duplicateTxBodies++; continue; }
      if (this.#rejected.has(tx.idHex)) continue;
      inMessage.add(tx.idHex);
      this.#beingAdmitted.set(tx.idHex, (this.#beingAdmitted.get(tx.idHex) ?? 0) + 1);
      fresh.push(tx);
    }
    // A trusted peer's message is admitted as one batch (one signature batch, one write), and its turn in
    // the peer's queue ends once its transactions are handed over AND the previous message's admission has
    // finished: two consecutive messages overlap, the second's signatures being verified on the worker pool
    // while the first is admitted and written (the mempool keeps call order). Taking turns instead left the
    // main thread and the workers each idle ~40 % of a P2P ingest. A peer not trusted that far yet has its
    // message admitted in batches of its allowance, each waiting for the previous one's verdicts.
    let at = 0;
    while (at < fresh.length) {
      const allowance = this.#allowance.get(peer) ?? FIRST_ALLOWANCE;
      const batch = at === 0 && allowance >= fresh.length ? fresh : fresh.slice(at, at + allowance);
      at += batch.length;
      const admission = this.#admit(peer, batch, allowance);
      const previous = this.#admission.get(peer);
      this.#admission.set(peer, admission);
      await previous;
      if (at < fresh.length) {
        await admission;
        if (peer.closed) {
          for (const tx of fresh.slice(at)) this.#admitted(tx.idHex);
          return;
        }
      }
    }
  }

  /** Admit one batch of a peer's transactions and judge the peer by the verdicts. */
  #admit(peer: Peer, batch: Tx[], allowance: number): Promise<void> {
    return this.#o.mempool.addMany(batch, { origin: peer.nodeIdHex }).then((results) => {
      let failure: Error | undefined;
      let invalid = 0;
      for (let i = 0; i < results.length; i++) {
        const tx = batch[i]!;
        this.#admitted(tx.idHex);
        const e = results[i];
        if (!(e instanceof Error)) continue;
        if (!(e instanceof RuleError)) { failure ??= e; continue; }
        if (isProvablyInvalid(e.rule)) {
          invalid++;
          this.#rejected.add(tx.idHex);
          this.#host.penalize(peer, 'invalid_tx', e.message);
        }
      }
      this.#allowance.set(peer, invalid ? FIRST_ALLOWANCE : Math.min(MAX_TXS_PER_MSG, allowance * 2));
      if (failure !== undefined) this.#o.log.error('peer message handler failed', { peer: peer.label, error: failure });
    });
  }

  #admitted(id: string): void {
    const n = this.#beingAdmitted.get(id) ?? 0;
    if (n <= 1) this.#beingAdmitted.delete(id);
    else this.#beingAdmitted.set(id, n - 1);
  }
}
