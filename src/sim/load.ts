/**
 * The workload: a client that submits transactions to running honest nodes, as a wallet would, and the
 * bookkeeping that gives every acknowledged transaction a fate at the end.
 *
 * Each slot it sends `load` submissions from the funded accounts: a quarter are invalid (wrong chain, zero
 * fee, bad signature, unaffordable, nonce far ahead) and must be refused by the node they reach; some are
 * conflicting pairs (same sender and nonce to two nodes); the rest are plain transfers. A submission whose
 * write failed leaves the client unsure, so it retries the same bytes at some node in a later slot.
 */
import type { Chain } from '../chain/chain.js';
import { encodeCanonical } from '../encoding/canonical.js';
import { toHex } from '../encoding/bytes.js';
import { RuleError } from '../ledger/rules.js';
import { decodeTx, signTx, type Tx } from '../ledger/tx.js';
import type { Block } from '../ledger/block.js';
import type { Mempool } from '../mempool/mempool.js';
import { SimIOError, type SimNodeState } from './env.js';
import { InvariantError } from './invariants.js';
import type { SimWorld } from './world.js';

/**
 * What became of an acknowledged transaction: confirmed; a conflicting one (same sender and nonce)
 * confirmed instead; or removed, with that reason, by the node that acknowledged it.
 */
export type TxFate = 'confirmed' | 'conflict-confirmed' | 'replaced' | 'evicted' | 'stale' | 'unaffordable';

export class LoadGenerator {
  readonly #w: SimWorld;
  /** Every acknowledged transaction and the node that acknowledged it. */
  readonly acknowledged = new Map<string, { tx: Tx; node: number }>();
  readonly fates: Record<TxFate, number> = { confirmed: 0, 'conflict-confirmed': 0, replaced: 0, evicted: 0, stale: 0, unaffordable: 0 };
  readonly #nextNonce = new Map<string, bigint>();
  /** 'tx:removed' reasons per node: `${node}:${txid}` → reasons. */
  readonly #removed = new Map<string, Set<string>>();
  /** Submissions that failed with an I/O error: the client retries them (same bytes) at some node. */
  readonly #retry: Tx[] = [];
  /** Transactions that were in a block some node abandoned in a reorg (diagnostics). */
  readonly #abandoned = new Set<string>();
  /** Submissions that failed with an I/O error, by node; and those a node then acknowledged as 'duplicate'. */
  readonly #ioFailedAt = new Map<string, Set<number>>();
  readonly #ackAfterIoFail = new Set<string>();

  constructor(w: SimWorld) { this.#w = w; }

  /** Follow a node's removals: a transaction removed for a reason other than inclusion has that fate. */
  watch(n: SimNodeState, mempool: Mempool): void {
    mempool.on('tx:removed', ({ tx, reason }) => {
      if (reason === 'included') return;
      const k = `${n.index}:${tx.idHex}`;
      const set = this.#removed.get(k) ?? new Set<string>();
      set.add(reason);
      this.#removed.set(k, set);
    });
  }

  /** Blocks a node abandoned in a reorg: their transactions are named as such if one is later lost. */
  noteAbandoned(blocks: readonly Block[]): void {
    for (const blk of blocks) for (const t of blk.txs) this.#abandoned.add(t.idHex);
  }

  /** Submit one transaction to one node: true if acknowledged. I/O errors go to the client's retry queue. */
  async #send(target: SimNodeState, tx: Tx, mustReject: string | undefined): Promise<boolean> {
    const w = this.#w;
    try {
      const res = await target.node!.mempool.add(tx);
      if (res.status === 'duplicate' && this.#ioFailedAt.get(tx.idHex)?.has(target.index)) this.#ackAfterIoFail.add(tx.idHex);
      if (mustReject) throw new InvariantError(w.o.seed, `node ${target.index} acknowledged an invalid transaction (${mustReject})`);
      if (!this.acknowledged.has(tx.idHex)) this.acknowledged.set(tx.idHex, { tx, node: target.index });
      return true;
    } catch (e) {
      if (e instanceof InvariantError) throw e;
      if (e instanceof SimIOError && !mustReject) {
        this.#retry.push(tx);
        const set = this.#ioFailedAt.get(tx.idHex) ?? new Set<number>();
        this.#ioFailedAt.set(tx.idHex, set.add(target.index));
        return false;
      }
      if (e instanceof SimIOError) return false;
      if (!(e instanceof RuleError)) throw e;
      w.stats.rejected++;
      return false;
    }
  }

  /** One submission: invalid, a conflicting pair, or a plain transfer, to a random running honest node. */
  async submit(): Promise<void> {
    const w = this.#w;
    const live = w.nodes.filter((n) => n.node && n.honest);
    if (!live.length) return;
    const from = w.rng.pick(w.accounts);
    const to = w.rng.pick(w.accounts);
    const k = from.address;
    const nonce = this.#nextNonce.get(k) ?? 0n;
    const kind = w.rng.int(20);
    const g = w.genesis;
    const amount = 1n + BigInt(w.rng.int(1000));
    const fee = 1n + BigInt(w.rng.int(5));
    const base = { chainId: g.chainId, from: from.publicKey, to: to.publicKey, amount, fee, nonce, memo: '' };
    const target = w.rng.pick(live);
    w.stats.submitted++;
    // Invalid transactions: each must be refused by the node it is sent to, and never confirmed.
    if (kind <= 4) {
      let tx: Tx;
      let why: string;
      if (kind === 0) { tx = signTx({ ...base, chainId: 'another-chain' }, from.secretKey); why = 'wrong chain'; }
      else if (kind === 1) { tx = signTx({ ...base, fee: 0n }, from.secretKey); why = 'zero fee'; }
      else if (kind === 2) {
        const good = signTx(base, from.secretKey);
        const sig = new Uint8Array(good.signature);
        sig[7]! ^= 0x40;
        tx = decodeTx(encodeCanonical([1, base.chainId, base.from, base.to, base.amount, base.fee, base.nonce, base.memo, sig]));
        why = 'bad signature';
      } else if (kind === 3) { tx = signTx({ ...base, amount: 5_000_000_000_000n }, from.secretKey); why = 'insufficient funds'; }
      else { tx = signTx({ ...base, nonce: nonce + 64n + BigInt(w.rng.int(100)) }, from.secretKey); why = 'nonce too far ahead'; }
      await this.#send(target, tx, why);
      return;
    }
    if (kind <= 6 && live.length >= 1) {
      // Conflicting pair: same sender and nonce, different recipients and fees, sent to different nodes.
      w.stats.conflicts++;
      const other = w.rng.pick(live.length > 1 ? live.filter((n) => n !== target) : live);
      const to2 = w.rng.pick(w.accounts.filter((a) => a !== to));
      const t1 = signTx(base, from.secretKey);
      const t2 = signTx({ ...base, to: to2.publicKey, fee: 1n + BigInt(w.rng.int(5)) }, from.secretKey);
      const a = await this.#send(target, t1, undefined);
      const b = await this.#send(other, t2, undefined);
      if (a || b || this.#retry.includes(t1) || this.#retry.includes(t2)) this.#nextNonce.set(k, nonce + 1n);
      return;
    }
    const tx = signTx(base, from.secretKey);
    const ok = await this.#send(target, tx, undefined);
    // A failed write leaves the client unsure: it retries the same transaction, so the nonce is used.
    if (ok || this.#retry.includes(tx)) this.#nextNonce.set(k, nonce + 1n);
  }

  /** Resubmit every submission whose write failed, each to a random running honest node. */
  async retrySubmissions(): Promise<void> {
    const w = this.#w;
    const live = w.nodes.filter((n) => n.node && n.honest);
    if (!live.length || !this.#retry.length) return;
    const list = this.#retry.splice(0);
    for (const tx of list) {
      w.stats.retried++;
      await this.#send(w.rng.pick(live), tx, undefined);
    }
  }

  /**
   * Count every acknowledged transaction's fate against the final chain `ref`: confirmed, a conflicting
   * one confirmed instead, or removed with a stated reason on the node that acknowledged it. Returns a
   * diagnosis of each that has no fate (a silent loss).
   */
  async assignFates(ref: Chain, confirmedBySenderNonce: Set<string>, honest: SimNodeState[]): Promise<string[]> {
    const lost: string[] = [];
    for (const [id, { tx, node }] of this.acknowledged) {
      let fate: TxFate | undefined;
      if (await ref.getTxLocation(id)) fate = 'confirmed';
      else if (confirmedBySenderNonce.has(`${toHex(tx.from)}:${tx.nonce}`)) fate = 'conflict-confirmed';
      else {
        const reasons = this.#removed.get(`${node}:${id}`);
        fate = (['replaced', 'evicted', 'unaffordable', 'stale'] as const).find((r) => reasons?.has(r));
      }
      if (fate) this.fates[fate]++;
      else {
        const pendingOn = honest.filter((x) => x.node!.mempool.has(id)).map((x) => x.index);
        const removedOn = this.#w.nodes.map((x) => [...(this.#removed.get(`${x.index}:${id}`) ?? [])].map((r) => `${x.index}:${r}`)).flat();
        lost.push(`${id} (${toHex(tx.from).slice(0, 8)} nonce ${tx.nonce}, acknowledged by node ${node}; pending on [${pendingOn.join(',')}]; removed on [${removedOn.join(',')}]; ${this.#abandoned.has(id) ? 'was in an abandoned block' : 'never in an abandoned block'}${this.#ackAfterIoFail.has(id) ? `; acknowledged as a duplicate by node ${node} after its own write of it had failed there` : ''})`);
      }
    }
    return lost;
  }
}
