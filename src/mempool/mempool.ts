/**
 * The mempool: validated pending transactions, persisted so that a restart (or kill -9) loses none that was
 * acknowledged, re-checked after every new head and reorg, and ordered for block production.
 *
 * Admission (in order; the first failure names the rule):
 *   size → chain id, amount, fee ≥ minimum, memo (static rules) → signature (consensus rule, cached by id)
 *   → nonce ≥ account nonce and < account nonce + maxPerSender → replacement fee bump
 *   → sender balance covers amount + fee of ALL its pending transactions → capacity (evict or refuse).
 * Replacement: a transaction with the same sender and nonce replaces the pending one only if its fee is at
 * least `replaceBumpPercent` % higher (and at least 1 unit higher).
 * Capacity: bounded by count and bytes. When full, the cheapest "tail" transaction (highest nonce of its
 * sender, so no gap is created) is evicted if the newcomer pays strictly more; otherwise `mempool_full`.
 * Duplicates (same id) are accepted idempotently.
 *
 * Longer than 500 lines because admission, replacement, eviction, persistence and the re-check after a head
 * change all keep the same per-sender queues and count/byte totals consistent, in one class's private state.
 */
import { toHex } from '../encoding/bytes.js';
import type { SignatureVerifier, VerifyOptions } from '../crypto/ed25519.js';
import { SigCache, verifyEachWithCache } from '../crypto/sigcache.js';
import type { Block } from '../ledger/block.js';
import type { Genesis } from '../ledger/genesis.js';
import { RuleError } from '../ledger/rules.js';
import type { Account, AccountKey } from '../ledger/state.js';
import { checkTxStatic, decodeTx, MAX_TX_BYTES, txVerifyItem, type Tx } from '../ledger/tx.js';
import { layout } from '../storage/layout.js';
import type { BatchOp, KV } from '../storage/kv.js';
import { TypedEmitter } from '../util/events.js';
import { Mutex } from '../util/mutex.js';
import { silentLogger, type Logger } from '../util/log.js';
import { Heap } from '../util/heap.js';
import { systemClock, type Clock } from '../util/clock.js';

export interface MempoolLimits {
  maxCount: number;
  maxBytes: number;
  /** How many nonces past the account nonce one sender may queue. */
  maxPerSender: number;
  replaceBumpPercent: number;
  /**
   * Client submissions (AddOptions.shed: RPC) are refused with `mempool_busy` while this many transactions
   * already wait for admission (signature check, then state), from any source. Offered more than the
   * machine verifies, that backlog would grow without bound, in memory and in every client's wait; refused,
   * a client learns at once that it should retry. Peers' transactions are not shed: each node verifies
   * every transaction once, at admission or, if it missed it there, on the block's critical path; peers are
   * slowed instead (paused connections).
   */
  maxAdmitting: number;
}

export const DEFAULT_MEMPOOL_LIMITS: MempoolLimits = {
  maxCount: 200_000,
  maxBytes: 128 * 1024 * 1024,
  maxPerSender: 64,
  replaceBumpPercent: 10,
  maxAdmitting: 8192,
};

/** What the mempool needs from the chain: account reads. */
export interface AccountSource {
  getAccounts(keys: AccountKey[]): Promise<Map<AccountKey, Account>>;
}

export type RemovalReason = 'included' | 'replaced' | 'evicted' | 'stale' | 'unaffordable';

export interface MempoolEvents {
  /**
   * Admitted. `origin` is the node id of the peer that sent it (AddOptions.origin); undefined for a client's
   * transaction, one loaded from disk or one returned from an abandoned block.
   */
  'tx:accepted': (tx: Tx, origin?: string) => void;
  'tx:removed': (e: { tx: Tx; reason: RemovalReason }) => void;
  /** A transaction refused by a rule (metrics, logs); not emitted for I/O failures. */
  'tx:rejected': (e: { id: string; rule: string }) => void;
}

export interface AddResult {
  id: string;
  status: 'accepted' | 'duplicate' | 'replaced';
}

interface Entry {
  tx: Tx;
  /** Its sender's queue (holds the sender key: one string per sender, not one per transaction). */
  q: SenderQueue;
  seq: number;
}

export interface AddOptions {
  /** Write it to disk before answering (default); false for transactions loaded from disk. */
  persist?: boolean;
  /**
   * If its write fails, keep it in memory (retrying the write) instead of rolling the admission back: for
   * transactions of abandoned blocks, which nobody would resubmit.
   */
  keepOnWriteFailure?: boolean;
  /**
   * Refuse it with `mempool_busy` (a policy refusal: retry later) while limits.maxAdmitting transactions
   * wait for admission. For client submissions (RPC); never for the node's own re-adds.
   */
  shed?: boolean;
  /** The node id of the peer these transactions came from (P2P), handed on with `tx:accepted`. */
  origin?: string;
}

/** The transactions of one addMany call: answered together, once every one is admitted and its write has landed. */
interface AddGroup {
  results: (AddResult | Error)[];
  /** The write each admitted (or duplicate) transaction waits for, by index. */
  writes: (Promise<void> | undefined)[];
  /** Transactions still waiting for admission. */
  left: number;
  admitted: () => void;
}

const STRICT: VerifyOptions = { strict: true };

interface PendingAdd {
  tx: Tx;
  persist: boolean;
  /** Sent by a peer (AddOptions.origin), not by a client of this node or its own store. */
  relayed: boolean;
  group: AddGroup;
  index: number;
}

/** A nonce as a Map key: the number while it is a safe integer (small ones cost no allocation), else its decimal string. */
type NonceKey = number | string;
function nonceKey(n: bigint): NonceKey {
  return n <= MAX_SAFE_NONCE ? Number(n) : n.toString();
}
const MAX_SAFE_NONCE = BigInt(Number.MAX_SAFE_INTEGER);

/** Largest admission batch: bounds one lock hold and one signature batch. */
const MAX_ADMIT_BATCH = 1024;

interface SenderQueue {
  key: AccountKey;
  /** Account nonce as of the last check (the next executable nonce). */
  accountNonce: bigint;
  /** Pending transactions by nonce (see nonceKey). */
  byNonce: Map<NonceKey, Entry>;
  /** Sum of amount + fee over byNonce (kept in step with it). */
  committed: bigint;
}

export interface MempoolOptions {
  db: KV;
  genesis: Genesis;
  accounts: AccountSource;
  verifier: SignatureVerifier;
  sigCache: SigCache;
  limits?: Partial<MempoolLimits>;
  log?: Logger;
  /** Timers (write retries) go through the injected clock, so the simulator stays deterministic. */
  clock?: Clock;
}

export class Mempool extends TypedEmitter<MempoolEvents> {
  readonly limits: MempoolLimits;
  readonly #o: MempoolOptions;
  readonly #log: Logger;
  readonly #lock = new Mutex();
  readonly #byId = new Map<string, Entry>();
  readonly #senders = new Map<AccountKey, SenderQueue>();
  #bytes = 0;
  #seq = 0;
  #pendingOps: BatchOp[] = [];
  /** Ids whose #persisting entry is the pending group commit (cleared when it settles). */
  #pendingIds: string[] = [];
  /** Transactions waiting for the next admission batch (see add). */
  #queue: PendingAdd[] = [];
  /** Transactions queued or in admission (signature check, state check), not yet answered. */
  #admitting = 0;
  /** Transactions refused with mempool_busy since start (metrics). */
  shed = 0;
  /** The previous batch's admission: batches are admitted in the order they were formed. */
  #admitted: Promise<void> = Promise.resolve();
  #flushing: Promise<void> | null = null;
  /** Group-commit batches handed to the db and not yet settled (flush() waits for these too). */
  readonly #writing = new Set<Promise<void>>();
  /** Each admitted transaction's write until it is on disk. */
  readonly #persisting = new Map<string, Promise<void>>();

  constructor(opts: MempoolOptions) {
    super();
    this.#o = opts;
    this.limits = { ...DEFAULT_MEMPOOL_LIMITS, ...opts.limits };
    this.#log = opts.log ?? silentLogger;
  }

  get size(): number { return this.#byId.size; }
  get bytes(): number { return this.#bytes; }
  /** Transactions waiting for admission (see MempoolLimits.maxAdmitting). */
  get admitting(): number { return this.#admitting; }
  has(idHex: string): boolean { return this.#byId.has(idHex); }
  get(idHex: string): Tx | undefined { return this.#byId.get(idHex)?.tx; }

  /** Next nonce for `sender` counting contiguous pending transactions, given its account nonce. */
  nextNonce(sender: Uint8Array, accountNonce: bigint): bigint {
    const q = this.#senders.get(toHex(sender));
    let n = accountNonce;
    while (q?.byNonce.has(nonceKey(n))) n++;
    return n;
  }

  pendingOf(sender: Uint8Array): Tx[] {
    const q = this.#senders.get(toHex(sender));
    return q ? [...q.byNonce.values()].sort((a, b) => (a.tx.nonce < b.tx.nonce ? -1 : 1)).map((e) => e.tx) : [];
  }

  /** Load persisted transactions (after a restart); each is re-validated against the current state. */
  async load(): Promise<{ loaded: number; dropped: number }> {
    const txs: Tx[] = [];
    const bad: Uint8Array[] = [];
    for await (const [k, v] of this.#o.db.iterator(layout.range(layout.prefix('m')))) {
      try {
        txs.push(decodeTx(v));
      } catch {
        bad.push(new Uint8Array(k));
      }
    }
    // Oldest nonces first so that each sender's chain re-enters in order.
    txs.sort((a, b) => (a.nonce < b.nonce ? -1 : a.nonce > b.nonce ? 1 : 0));
    let loaded = 0;
    // All at once: admission keeps call order, so each sender's nonces enter in order.
    const results = await this.addMany(txs, { persist: false });
    results.forEach((r, i) => {
      if (r instanceof Error) bad.push(layout.mempool(txs[i]!.id));
      else loaded++;
    });
    if (bad.length) await this.#o.db.batch(bad.map((key) => ({ type: 'del' as const, key })));
    this.#log.info('mempool loaded', { loaded, dropped: bad.length });
    return { loaded, dropped: bad.length };
  }

  /**
   * Validate and admit a transaction. Resolves only once it is persisted (so an acknowledged transaction
   * survives kill -9); a duplicate is answered only after the first copy's write, too. Throws RuleError.
   * Calls made in the same tick (an RPC batch) are admitted as one batch, in call order (see addMany).
   */
  async add(tx: Tx, opts: AddOptions = {}): Promise<AddResult> {
    const [r] = await this.addMany([tx], opts);
    if (r instanceof Error) throw r;
    return r!;
  }

  /**
   * Validate and admit transactions (a P2P message's, a restart's), answering each in order with its
   * AddResult or the Error that refused it (a RuleError naming the rule, or an I/O error); never rejects.
   * Each answer comes only once the transaction is persisted, as for add.
   *
   * Everything queued in the same tick, by any number of calls, is admitted in batches of up to
   * MAX_ADMIT_BATCH: one signature batch (parallel on a worker pool), one account read, one lock hold, one
   * disk write. Admission follows call order. Per transaction this costs no promise at all: a P2P ingest
   * of 10k tx/s spent ~15 % of the main thread in garbage collection, much of it per-transaction promises.
   */
  async addMany(txs: readonly Tx[], opts: AddOptions = {}): Promise<(AddResult | Error)[]> {
    const persist = opts.persist !== false;
    let admitted!: () => void;
    const allAdmitted = new Promise<void>((resolve) => { admitted = resolve; });
    const group: AddGroup = { results: new Array<AddResult | Error>(txs.length), writes: new Array<Promise<void> | undefined>(txs.length), left: 0, admitted };
    for (let i = 0; i < txs.length; i++) {
      const tx = txs[i]!;
      if (this.#byId.has(tx.idHex)) {
        group.results[i] = { id: tx.idHex, status: 'duplicate' };
        group.writes[i] = this.#persisting.get(tx.idHex);
        continue;
      }
      try {
        if (tx.byteLength > MAX_TX_BYTES) throw new RuleError('tx_too_large');
        checkTxStatic(tx, this.#o.genesis.chainId, this.#o.genesis.params);
        if (opts.shed && this.#admitting >= this.limits.maxAdmitting) {
          this.shed++;
          throw new RuleError('mempool_busy', `${this.#admitting} transactions are waiting for admission; retry later`);
        }
      } catch (e) {
        group.results[i] = this.#refused(tx, e);
        continue;
      }
      this.#admitting++;
      group.left++;
      this.#queue.push({ tx, persist, relayed: opts.origin !== undefined, group, index: i });
      if (this.#queue.length === 1) queueMicrotask(() => this.#drain());
    }
    if (group.left > 0) await allAdmitted;
    return this.#settleWrites(txs, group, opts);
  }

  /** Wait for the writes a group's answers depend on; roll back (or keep, see AddOptions) what failed to land. */
  async #settleWrites(txs: readonly Tx[], { results, writes }: AddGroup, opts: AddOptions): Promise<(AddResult | Error)[]> {
    // Usually one distinct write (an RPC call's single transaction; a P2P message admitted in one batch).
    const failed = new Map<Promise<void>, Error>();
    let first: Promise<void> | undefined;
    let more: Set<Promise<void>> | undefined;
    for (const w of writes) {
      if (!w || w === first) continue;
      if (!first) first = w;
      else (more ??= new Set([first])).add(w);
    }
    if (more) await Promise.all([...more].map((w) => w.catch((e: unknown) => { failed.set(w, toError(e)); })));
    else if (first) {
      try { await first; } catch (e) { failed.set(first, toError(e)); }
    }
    const rollback: Tx[] = [];
    for (let i = 0; i < txs.length; i++) {
      const r = results[i]!;
      if (r instanceof Error) continue;
      const tx = txs[i]!;
      const w = writes[i];
      const err = w && failed.get(w);
      if (err) {
        if (r.status !== 'duplicate' && opts.keepOnWriteFailure) {
          // Nobody would resubmit this one (it comes back from an abandoned block): keep it, gossip it, and
          // keep trying to write it. Dropping it would lose a transaction that existed nowhere else.
          this.#log.warn('mempool write failed; keeping the transaction in memory and retrying', { id: tx.idHex, error: err });
          this.#retryWrite(tx);
        } else {
          // Not on disk, so not acknowledged: roll the admission back, or a resubmission would be answered
          // "duplicate" for a transaction that a crash then loses. The caller sees the error and can retry.
          if (r.status !== 'duplicate') rollback.push(tx);
          results[i] = err;
          continue;
        }
      }
      if (r.status !== 'duplicate') this.emit('tx:accepted', tx, opts.origin);
    }
    if (rollback.length) {
      await this.#lock.run(async () => {
        for (const tx of rollback) {
          const entry = this.#byId.get(tx.idHex);
          if (entry && entry.tx === tx) this.#remove(entry, 'stale');
        }
      });
    }
    return results;
  }

  /** The answer for a refused transaction (a RuleError is reported as `tx:rejected`). */
  #refused(tx: Tx, e: unknown): Error {
    if (e instanceof RuleError) this.emit('tx:rejected', { id: tx.idHex, rule: e.rule });
    return toError(e);
  }

  /** Answer one queued transaction of a group. */
  #answer(p: PendingAdd, r: AddResult | Error): void {
    this.#admitting--;
    const g = p.group;
    g.results[p.index] = r;
    if (!(r instanceof Error)) g.writes[p.index] = this.#persisting.get(p.tx.idHex);
    if (--g.left === 0) g.admitted();
  }

  /**
   * Take up to MAX_ADMIT_BATCH queued transactions: verify their signatures as one batch (the expensive
   * part, outside the lock, overlapping with the previous batch's admission), then admit them in call
   * order under the lock with one account read.
   */
  #drain(): void {
    const batch = this.#queue.splice(0, MAX_ADMIT_BATCH);
    if (this.#queue.length) queueMicrotask(() => this.#drain());
    // The relay standard (strict RFC 8032, VerifyOptions.strict): an invalid signature costs one cheap check,
    // and only signatures every node's mempool accepts are relayed.
    const verdicts = verifyEachWithCache(this.#o.verifier, this.#o.sigCache, batch.map((p) => p.tx.idHex), (i) => txVerifyItem(batch[i]!.tx), STRICT);
    const admitted = this.#admitted.then(async () => {
      let ok: boolean[];
      try {
        ok = await verdicts;
      } catch (e) {
        const err = toError(e);
        for (const p of batch) this.#answer(p, err);
        return;
      }
      const todo: PendingAdd[] = [];
      const failed: PendingAdd[] = [];
      for (let i = 0; i < batch.length; i++) {
        const p = batch[i]!;
        if (ok[i]) todo.push(p);
        else if (p.relayed) this.#answer(p, this.#refused(p.tx, new RuleError('non_standard_signature')));
        else failed.push(p);
      }
      if (failed.length) await this.#explainSignatures(failed);
      if (todo.length === 0) return;
      await this.#lock.run(async () => {
        const keys = todo.map((p) => toHex(p.tx.from));
        const senders = new Set<AccountKey>();
        for (let i = 0; i < todo.length; i++) if (!this.#byId.has(todo[i]!.tx.idHex)) senders.add(keys[i]!);
        let accounts: Map<AccountKey, Account>;
        try {
          accounts = senders.size ? await this.#o.accounts.getAccounts([...senders]) : new Map();
        } catch (e) {
          const err = toError(e);
          for (const p of todo) this.#answer(p, err);
          return;
        }
        for (let i = 0; i < todo.length; i++) {
          const p = todo[i]!;
          let r: AddResult | Error;
          try {
            r = this.#admit(p.tx, keys[i]!, p.persist, accounts);
          } catch (e) {
            r = this.#refused(p.tx, e);
          }
          this.#answer(p, r);
        }
      });
    });
    this.#admitted = admitted.catch(() => {});
  }

  /**
   * Tell a client (or this node's own store) why its transactions failed the strict check: a signature that
   * the consensus rule accepts is non_standard_signature (a block may include it, no mempool takes it),
   * otherwise bad_signature. Peers are not told: any strict failure is theirs, at the cost of that one check.
   */
  async #explainSignatures(failed: PendingAdd[]): Promise<void> {
    let valid: boolean[];
    try {
      valid = await verifyEachWithCache(this.#o.verifier, this.#o.sigCache, failed.map((p) => p.tx.idHex), (i) => txVerifyItem(failed[i]!.tx));
    } catch (e) {
      for (const p of failed) this.#answer(p, toError(e));
      return;
    }
    failed.forEach((p, i) => this.#answer(p, this.#refused(p.tx, new RuleError(valid[i] ? 'non_standard_signature' : 'bad_signature'))));
  }

  /** Retry a failed write (with back-off) while the transaction is still held. */
  #retryWrite(tx: Tx, attempt = 1): void {
    (this.#o.clock ?? systemClock).setTimeout(() => {
      if (this.#byId.get(tx.idHex)?.tx !== tx) return;
      this.#persist({ type: 'put', key: layout.mempool(tx.id), value: tx.bytes }).catch(() => {
        if (attempt < 10) this.#retryWrite(tx, attempt + 1);
        else this.#log.error('mempool write kept failing; the transaction is held in memory only', { id: tx.idHex });
      });
    }, Math.min(30_000, 100 * 2 ** attempt));
  }

  /** Admission under the lock; `sender` is toHex(tx.from), `accounts` holds its state read in this lock hold. */
  #admit(tx: Tx, sender: AccountKey, persist: boolean, accounts: Map<AccountKey, Account>): AddResult {
    if (this.#byId.has(tx.idHex)) return { id: tx.idHex, status: 'duplicate' };
    const account = accounts.get(sender) ?? { balance: 0n, nonce: 0n };
    if (tx.nonce < account.nonce) throw new RuleError('nonce_too_low', `nonce ${tx.nonce} < account nonce ${account.nonce}`);
    if (tx.nonce >= account.nonce + BigInt(this.limits.maxPerSender)) {
      throw new RuleError('too_many_pending', `nonce ${tx.nonce} is more than ${this.limits.maxPerSender} ahead of account nonce ${account.nonce}`);
    }
    const q = this.#senders.get(sender) ?? { key: sender, accountNonce: account.nonce, byNonce: new Map<NonceKey, Entry>(), committed: 0n };
    q.accountNonce = account.nonce;
    const key = nonceKey(tx.nonce);
    const old = q.byNonce.get(key);
    if (old) {
      const bump = old.tx.fee * BigInt(this.limits.replaceBumpPercent) / 100n;
      const needed = old.tx.fee + (bump > 1n ? bump : 1n);
      if (tx.fee < needed) throw new RuleError('replacement_underpriced', `fee ${tx.fee} < ${needed} needed to replace ${old.tx.idHex}`);
    }
    const committed = q.committed + tx.amount + tx.fee - (old ? old.tx.amount + old.tx.fee : 0n);
    if (committed > account.balance) throw new RuleError('insufficient_funds', `balance ${account.balance} < ${committed} committed by pending transactions`);

    // Capacity: evict cheaper tails, or refuse.
    const freed = old ? old.tx.byteLength : 0;
    const evict: Entry[] = [];
    let count = this.#byId.size + (old ? 0 : 1);
    let bytes = this.#bytes - freed + tx.byteLength;
    if (count > this.limits.maxCount || bytes > this.limits.maxBytes) {
      const tails = this.#tailsByFee(sender);
      while (count > this.limits.maxCount || bytes > this.limits.maxBytes) {
        const victim = tails.pop();
        if (!victim || victim.tx.fee >= tx.fee) throw new RuleError('mempool_full', `fee ${tx.fee} does not beat the cheapest evictable transaction`);
        evict.push(victim);
        count--;
        bytes -= victim.tx.byteLength;
      }
    }
    for (const v of evict) this.#remove(v, 'evicted');
    if (old) this.#remove(old, 'replaced');
    const entry: Entry = { tx, q, seq: this.#seq++ };
    q.byNonce.set(key, entry);
    q.committed += tx.amount + tx.fee;
    this.#senders.set(q.key, q);
    this.#byId.set(tx.idHex, entry);
    this.#bytes += tx.byteLength;
    if (persist) {
      // Registered in the same step that makes the id known, so no duplicate can slip in between.
      this.#persisting.set(tx.idHex, this.#persist({ type: 'put', key: layout.mempool(tx.id), value: tx.bytes }, tx.idHex));
    }
    return { id: tx.idHex, status: old ? 'replaced' : 'accepted' };
  }

  /** Highest-nonce transaction of every other sender, sorted so that pop() gives the cheapest. */
  #tailsByFee(except: AccountKey): Entry[] {
    const tails: Entry[] = [];
    for (const [s, q] of this.#senders) {
      if (s === except) continue;
      let tail: Entry | undefined;
      for (const e of q.byNonce.values()) if (!tail || e.tx.nonce > tail.tx.nonce) tail = e;
      if (tail) tails.push(tail);
    }
    return tails.sort((a, b) => (a.tx.fee > b.tx.fee ? -1 : a.tx.fee < b.tx.fee ? 1 : a.seq - b.seq));
  }

  #remove(e: Entry, reason: RemovalReason): void {
    if (this.#byId.get(e.tx.idHex) !== e) return;
    this.#byId.delete(e.tx.idHex);
    this.#bytes -= e.tx.byteLength;
    const q = e.q;
    if (q.byNonce.delete(nonceKey(e.tx.nonce))) q.committed -= e.tx.amount + e.tx.fee;
    if (q.byNonce.size === 0 && this.#senders.get(q.key) === q) this.#senders.delete(q.key);
    void this.#persist({ type: 'del', key: layout.mempool(e.tx.id) }).catch((err) => this.#log.error('mempool delete failed', { error: err }));
    this.emit('tx:removed', { tx: e.tx, reason });
  }

  /**
   * Group commit: every op queued in this tick goes into one batch; callers await their batch. `id` names
   * a transaction whose #persisting entry is this batch, dropped once it settles.
   */
  #persist(op: BatchOp, id?: string): Promise<void> {
    this.#pendingOps.push(op);
    if (id !== undefined) this.#pendingIds.push(id);
    if (!this.#flushing) {
      const flushing: Promise<void> = new Promise<void>((resolve, reject) => {
        setImmediate(() => {
          const ops = this.#pendingOps;
          const ids = this.#pendingIds;
          this.#pendingOps = [];
          this.#pendingIds = [];
          this.#flushing = null;
          const w = this.#o.db.batch(ops);
          this.#writing.add(w);
          const settled = () => {
            this.#writing.delete(w);
            for (const i of ids) if (this.#persisting.get(i) === flushing) this.#persisting.delete(i);
          };
          w.then(settled, settled);
          w.then(resolve, reject);
        });
      });
      this.#flushing = flushing;
    }
    return this.#flushing;
  }

  /**
   * Block candidates: highest fee first, each sender's transactions in nonce order starting at its
   * account nonce, within the count and byte budget. The producer still applies each to state and skips
   * any that fail (the mempool's view of balances is conservative but not authoritative).
   */
  candidates(maxTxs: number, maxBytes: number, perTxBytes = 0): Tx[] {
    const heap = new Heap<Entry>((a, b) => (a.tx.fee !== b.tx.fee ? a.tx.fee > b.tx.fee : a.seq < b.seq));
    for (const q of this.#senders.values()) {
      const first = q.byNonce.get(nonceKey(q.accountNonce));
      if (first) heap.push(first);
    }
    const out: Tx[] = [];
    let bytes = 0;
    while (out.length < maxTxs && heap.size > 0) {
      const e = heap.pop()!;
      const size = e.tx.byteLength + perTxBytes;
      if (bytes + size > maxBytes) continue;
      out.push(e.tx);
      bytes += size;
      const next = e.q.byNonce.get(nonceKey(e.tx.nonce + 1n));
      if (next) heap.push(next);
    }
    return out;
  }

  /**
   * Re-check after a head change. `connected` blocks' transactions leave; `disconnected` blocks'
   * transactions come back (if still valid); every sender whose account changed is re-checked:
   * stale nonces leave, and the tail that the balance no longer covers leaves.
   */
  async onHeadChange(connected: readonly Block[], disconnected: readonly Block[]): Promise<void> {
    const included = new Set<string>();
    for (const b of connected) for (const tx of b.txs) included.add(tx.idHex);
    await this.#lock.run(async () => {
      for (const id of included) {
        const e = this.#byId.get(id);
        if (e) this.#remove(e, 'included');
      }
      const affected = new Set<AccountKey>();
      for (const b of [...connected, ...disconnected]) {
        affected.add(toHex(b.header.proposer));
        for (const tx of b.txs) { affected.add(toHex(tx.from)); affected.add(toHex(tx.to)); }
      }
      const keys = [...affected].filter((k) => this.#senders.has(k));
      const accounts = await this.#o.accounts.getAccounts(keys);
      for (const k of keys) this.#recheckSender(k, accounts.get(k) ?? { balance: 0n, nonce: 0n });
    });
    // Transactions of abandoned blocks return (oldest block first), unless the new chain holds them.
    const back = [...disconnected].reverse().flatMap((b) => b.txs).filter((tx) => !included.has(tx.idHex));
    const results = await this.addMany(back, { keepOnWriteFailure: true });
    results.forEach((e, i) => {
      // One failure (a rule, or an I/O error) must not drop the rest of the abandoned transactions.
      if (!(e instanceof Error)) return;
      if (e instanceof RuleError) this.#log.debug('transaction of an abandoned block not returned to the mempool', { id: back[i]!.idHex, rule: e.rule });
      else this.#log.warn('could not return a transaction of an abandoned block to the mempool', { id: back[i]!.idHex, error: e });
    });
  }

  #recheckSender(k: AccountKey, account: Account): void {
    const q = this.#senders.get(k);
    if (!q) return;
    q.accountNonce = account.nonce;
    const entries = [...q.byNonce.values()].sort((a, b) => (a.tx.nonce < b.tx.nonce ? -1 : 1));
    let committed = 0n;
    const window = account.nonce + BigInt(this.limits.maxPerSender);
    for (const e of entries) {
      if (e.tx.nonce < account.nonce) { this.#remove(e, 'stale'); continue; }
      // A reorg can lower the account nonce: keep the per-sender window that admission enforces.
      if (e.tx.nonce >= window) { this.#remove(e, 'stale'); continue; }
      committed += e.tx.amount + e.tx.fee;
      if (committed > account.balance) this.#remove(e, 'unaffordable');
    }
  }

  /** Wait for queued persistence writes (shutdown, tests). */
  async flush(): Promise<void> {
    while (this.#flushing || this.#writing.size) await (this.#flushing ?? Promise.all(this.#writing));
  }

  /** All pending ids (RPC, tests). */
  ids(): string[] { return [...this.#byId.keys()]; }
  /** Every pending transaction (no copy: do not add or remove while iterating). */
  *txs(): IterableIterator<Tx> { for (const e of this.#byId.values()) yield e.tx; }

  senderCount(): number { return this.#senders.size; }
}

function toError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}
