/**
 * The simulator's invariants. A violation throws InvariantError naming the seed, so the run can be replayed.
 *
 *   every slot        fork choice, restated here independently of the chain's code;
 *   every 10 slots    supply and state root on every running node; the byzantine checks;
 *   at the end        the above, then convergence, liveness, a replay of the final chain from genesis,
 *                     sequential nonces, and a fate for every acknowledged transaction.
 */
import { Chain } from '../chain/chain.js';
import { toHex } from '../encoding/bytes.js';
import type { MeshNode } from '../node/node.js';
import { createHandlers } from '../rpc/methods.js';
import { layout } from '../storage/layout.js';
import { ManualClock } from '../util/clock.js';
import type { SimNodeState } from './env.js';
import { honestNodes, slotNow, type SimWorld } from './world.js';

export class InvariantError extends Error {
  constructor(readonly seed: number, message: string) {
    super(`invariant violated (seed ${seed}): ${message}`);
    this.name = 'InvariantError';
  }
}

/** Gives every acknowledged transaction its fate; returns a description of each that has none. */
export interface FateKeeper {
  assignFates(ref: Chain, confirmedBySenderNonce: Set<string>, honest: SimNodeState[]): Promise<string[]>;
}

export class Invariants {
  readonly #w: SimWorld;
  /** `chain:equivocation` events per honest node, over all its incarnations: `${node}|${slot}|${proposer}` → hashes. */
  readonly #evidenceEvents = new Map<string, Set<string>>();
  #evidenceEventCount = 0;

  constructor(w: SimWorld) { this.#w = w; }

  get evidenceEventCount(): number { return this.#evidenceEventCount; }

  /** Record what an honest node reports about byzantine validators: rejected corrupt blocks, bans, equivocations. */
  watchByzantine(n: SimNodeState, node: MeshNode): void {
    const w = this.#w;
    const byz = w.byz!;
    node.chain.on('block:invalid', ({ hash }) => { if (byz.corrupted.has(hash)) w.stats.invalidRejected++; });
    node.network?.on('peer:banned', () => { w.stats.bans++; });
    node.chain.on('chain:equivocation', ({ slot, proposer, hashes }) => {
      this.#evidenceEventCount++;
      const k = `${n.index}|${slot}|${proposer}`;
      const set = this.#evidenceEvents.get(k) ?? new Set<string>();
      for (const h of hashes) set.add(h);
      this.#evidenceEvents.set(k, set);
      w.trace.event(`${w.clock.now()}|evidence|${n.index}|${slot}|${hashes.join(',')}`);
    });
  }

  /** Invariants that hold at every moment on every running node. */
  async checkRunning(): Promise<void> {
    const w = this.#w;
    for (const n of w.nodes) {
      if (!n.node) continue;
      const c = n.node.chain;
      // Under the chain lock: a head switch in flight must not be observed half-written.
      await c.withHead(async () => {
        const audit = await c.auditSupply();
        if (audit.supply !== w.genesis.totalSupply) throw new InvariantError(w.o.seed, `node ${n.index}: supply ${audit.supply} ≠ genesis supply ${w.genesis.totalSupply} at height ${c.head.height}`);
        if (audit.root !== toHex(c.stateRoot)) throw new InvariantError(w.o.seed, `node ${n.index}: stored accounts do not match the state root at height ${c.head.height}`);
      });
    }
  }

  /**
   * Byzantine invariants on every honest running node n (checked every 10 slots and at the end):
   *  - no block a byzantine node knowingly corrupted is on n's best chain;
   *  - detection: for every equivocation E = (slot, proposer, {a, b}) a byzantine validator committed, if n's
   *    block store holds both a and b, then (1) n emitted `chain:equivocation` for (slot, proposer) naming
   *    both a and b, in this incarnation or an earlier one, and (2) n's evidence keyspace holds both signed
   *    headers; at the end (3) n's `getEquivocations` JSON-RPC answer lists both;
   *  - no false accusation: every `chain:equivocation` an honest node emitted names a byzantine proposer, a
   *    slot in which it did equivocate, and only blocks of that equivocation (honest validators never
   *    sign two blocks for one slot, not even across crashes and failed writes).
   */
  async checkByzantine(final: boolean): Promise<{ seenBoth: number; evidence: number }> {
    const w = this.#w;
    let seenBoth = 0;
    let evidence = 0;
    const byz = w.byz;
    if (!byz) return { seenBoth, evidence };
    const committed = new Map(byz.equivocations.map((e) => [`${e.slot}|${e.proposer}`, e]));
    for (const [k, hashes] of this.#evidenceEvents) {
      const [node, slot, proposer] = k.split('|');
      const e = committed.get(`${slot}|${proposer}`);
      if (!e || [...hashes].some((h) => !e.hashes.includes(h))) {
        const who = w.nodes.find((x) => toHex(x.key.publicKey) === proposer);
        throw new InvariantError(w.o.seed, `honest node ${node} reported an equivocation that did not happen: slot ${slot}, proposer node ${who?.index ?? proposer.slice(0, 12)} (${who?.honest ? 'honest' : 'byzantine'}), blocks ${[...hashes].map((h) => h.slice(0, 12)).join(', ')}`);
      }
    }
    for (const n of honestNodes(w)) {
      if (!n.node) continue;
      const c = n.node.chain;
      const rpc = final ? createHandlers({ chain: c, mempool: n.node.mempool, version: 'sim', startedAt: 0, now: () => w.clock.now() }) : undefined;
      await c.withHead(async () => {
        for (const [hash, what] of byz.corrupted) {
          if (c.isOnMain(hash)) throw new InvariantError(w.o.seed, `honest node ${n.index} adopted the invalid block ${hash.slice(0, 12)} (${what.kind}, slot ${what.slot}) on its best chain`);
        }
        const listed = rpc ? new Set(((await rpc.getEquivocations!({}, {} as never)) as { blockHash: string }[]).map((x) => x.blockHash)) : undefined;
        for (const e of byz.equivocations) {
          if (!e.hashes.every((h) => c.hasBlock(h))) continue;
          seenBoth++;
          const what = `the equivocation in slot ${e.slot} (${e.hashes.map((x) => x.slice(0, 12)).join(', ')})`;
          const events = this.#evidenceEvents.get(`${n.index}|${e.slot}|${e.proposer}`);
          for (const h of e.hashes) {
            const io = `last failed write in slot ${n.lastIoFailSlot}; ${n.evidenceWriteFailures} failed evidence batch(es) on this node`;
            if (!events?.has(h)) throw new InvariantError(w.o.seed, `honest node ${n.index} stored both blocks of ${what} but never emitted chain:equivocation naming ${h.slice(0, 12)} (${io})`);
            const v = await n.db.get(layout.evidence(e.slot, fromHexKey(e.proposer), fromHexKey(h)));
            if (!v) throw new InvariantError(w.o.seed, `honest node ${n.index} stored both blocks of ${what} but has no evidence for ${h.slice(0, 12)} (${io})`);
            if (listed && !listed.has(h)) throw new InvariantError(w.o.seed, `honest node ${n.index}: getEquivocations does not list ${h.slice(0, 12)} of ${what}`);
          }
          evidence++;
        }
      });
    }
    if (final && byz.equivocations.length > 0 && seenBoth === 0 && w.o.faults === 'byzantine') {
      // Not an invariant of the chain (a banned byzantine node cannot deliver anything), only a note.
      w.log.warn('no honest node saw both blocks of any equivocation');
    }
    return { seenBoth, evidence };
  }

  /**
   * Fork choice, restated independently of the chain's code (greatest height, then smaller hash): with each
   * chain's lock held, no known candidate tip may beat its head. Runs every slot; catches a broken
   * tie-break even where the next block would hide it.
   */
  async checkForkChoice(): Promise<void> {
    const w = this.#w;
    for (const n of w.nodes) {
      if (!n.node) continue;
      const c = n.node.chain;
      await c.withHead(async (head) => {
        for (const t of c.tips()) {
          const better = t.height > head.height || (t.height === head.height && Buffer.compare(Buffer.from(t.hash), Buffer.from(head.hash)) < 0);
          // A head switch whose write failed leaves the block stored and the head behind until the next block
          // arrives (the chain retries then, and on restart): tolerated until the next head change.
          if (better && n.ioLag) { w.stats.lagAfterIoFail++; continue; }
          if (better) throw new InvariantError(w.o.seed, `node ${n.index}: head ${head.hashHex.slice(0, 12)} at ${head.height} while tip ${t.hashHex.slice(0, 12)} at ${t.height} is better by the fork-choice rule (slot ${slotNow(w)}, last failed write in slot ${n.lastIoFailSlot})`);
        }
      });
    }
  }

  /**
   * After the drain: the honest nodes on one chain with equal roots; the chain replays validly from genesis
   * on a fresh Chain; every acknowledged transaction has a stated fate; nonces sequential; nothing invalid.
   */
  async checkFinal(fates: FateKeeper): Promise<void> {
    const w = this.#w;
    await this.checkRunning();
    await this.checkByzantine(true);
    const honest = honestNodes(w);
    const heads = honest.map((n) => n.node!.chain.head);
    const minH = Math.min(...heads.map((h) => h.height));
    const at = Math.max(0, minH - 1);
    const hashes = new Set(honest.map((n) => n.node!.chain.mainHashAt(at)));
    if (hashes.size !== 1) throw new InvariantError(w.o.seed, `honest nodes did not converge: ${hashes.size} different blocks at height ${at} (heads ${heads.map((h) => h.height).join(',')})`);
    const ref = w.nodes[0]!.node!.chain;
    const minProgress = Math.floor(w.o.slots / 4);
    if (minH < minProgress) throw new InvariantError(w.o.seed, `chain not live: min height ${minH} after ${w.o.slots} slots`);

    // Independent replay: a fresh chain fed the reference best chain block by block must accept every block
    // as a plain extension and end at the same head and state root.
    const { openMemory } = await import('../storage/kv.js');
    const fresh = await Chain.open({ db: await openMemory(), genesis: w.genesis, clock: new ManualClock(w.clock.now()) });
    const seen = new Map<string, bigint>();
    const confirmedBySenderNonce = new Set<string>();
    for (let h = 1; h <= ref.head.height; h++) {
      const b = (await ref.getBlockAt(h))!;
      let st: string;
      try {
        st = (await fresh.addBlock(b)).status;
      } catch (e) {
        throw new InvariantError(w.o.seed, `node 0's best chain does not replay: block ${b.header.hashHex.slice(0, 12)} at height ${h}: ${(e as Error).message}`);
      }
      if (st !== 'connected') throw new InvariantError(w.o.seed, `node 0's best chain does not replay: block at height ${h} was '${st}'`);
      for (const tx of b.txs) {
        if (tx.chainId !== w.genesis.chainId) throw new InvariantError(w.o.seed, `foreign-chain tx ${tx.idHex} at height ${h}`);
        const k = toHex(tx.from);
        const want = seen.get(k) ?? 0n;
        // Nonces on the final chain are sequential per sender: every confirmed tx nonce equals its position.
        if (tx.nonce !== want) throw new InvariantError(w.o.seed, `nonce ${tx.nonce} of ${k.slice(0, 8)} at height ${h}, expected ${want}`);
        seen.set(k, want + 1n);
        confirmedBySenderNonce.add(`${k}:${tx.nonce}`);
      }
    }
    if (fresh.head.hashHex !== ref.head.hashHex || toHex(fresh.stateRoot) !== toHex(ref.stateRoot)) throw new InvariantError(w.o.seed, 'replaying node 0\'s best chain gives another head or state root');

    const lost = await fates.assignFates(ref, confirmedBySenderNonce, honest);
    if (lost.length) throw new InvariantError(w.o.seed, `${lost.length} acknowledged transaction(s) silently lost (not confirmed, no conflict confirmed, no removal reason), e.g. ${lost[0]}`);
  }
}

function fromHexKey(h: string): Uint8Array { return Uint8Array.from(Buffer.from(h, 'hex')); }
