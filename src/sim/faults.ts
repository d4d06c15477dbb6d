/**
 * Fault injection, all of it drawn from the run's seeded streams: lossy links, partitions, crashes and
 * restarts, failing disks (at any write, and at start-up), churn (a late joiner and a leaver), and the
 * byzantine validators' turns. Faults stop `drainSlots` before the end so the network can converge.
 *
 * Disk faults draw from a stream of their own (`ioRng`), so a failed write does not shift the workload's
 * or the other faults' draws.
 */
import { bytesEqual } from '../encoding/bytes.js';
import { RuleError } from '../ledger/rules.js';
import { proposerFor } from '../ledger/schedule.js';
import { layout } from '../storage/layout.js';
import { NodeStore, isUp, type SimNodeState } from './env.js';
import type { Prng } from './prng.js';
import { honestNodes, slotNow, type SimWorld } from './world.js';

const EVIDENCE_PREFIX = layout.prefix('q')[0]!;

/** How the injector starts and crashes nodes (the driver owns node lifecycles). */
export interface NodeLifecycle {
  /** Start a new incarnation; false if its start-up failed (the node stays down). */
  start(n: SimNodeState): Promise<boolean>;
  crash(n: SimNodeState): Promise<void>;
}

export class FaultInjector {
  readonly #w: SimWorld;
  readonly #nodes: NodeLifecycle;
  readonly #ioRng: Prng;
  /** Disk faults are on (from the start when failWrites > 0, until the drain). */
  #ioFaults: boolean;

  constructor(w: SimWorld, nodes: NodeLifecycle, ioRng: Prng) {
    this.#w = w;
    this.#nodes = nodes;
    this.#ioRng = ioRng;
    this.#ioFaults = w.o.failWrites > 0;
  }

  /**
   * The store view of a new incarnation of honest node `n`. A failed write is counted and traced, and may
   * make the node crash at the next slot (like a process exiting on an I/O error). Disk faults reach the
   * start-up too: the general write-failure rate, and now and then one of the first three writes of the
   * incarnation (Chain.open's genesis batch on an empty store, the head switch of reconsider(), the
   * mempool load's clean-up, …) fails outright.
   */
  storeFor(n: SimNodeState): NodeStore {
    const w = this.#w;
    const store = new NodeStore(n.db, this.#ioRng, (op, ops) => {
      w.stats.writeFailures++;
      if (ops?.some((o) => o.key[0] === EVIDENCE_PREFIX)) n.evidenceWriteFailures++;
      if (!n.node) w.stats.startupWriteFailures++;
      n.lastIoFailSlot = slotNow(w);
      n.ioLag = true;
      w.trace.event(`${w.clock.now()}|iofail|${n.index}|${op}${n.node ? '' : '|startup'}`);
      if (this.#ioRng.chance(w.o.crashOnWriteFailure)) n.crashPending = true;
    });
    store.failRate = this.#ioFaults ? w.o.failWrites : 0;
    if (this.#ioFaults && this.#ioRng.chance(w.o.startupFaults)) {
      store.failNth = this.#ioRng.int(3);
      w.stats.startsArmed++;
    }
    return store;
  }

  /** The drain begins: links heal, disks become healthy, and every node that is down starts again. */
  async end(): Promise<void> {
    const w = this.#w;
    w.net.heal();
    w.net.clearLinkFaults();
    this.#ioFaults = false;
    for (const n of w.nodes) { n.crashPending = false; if (n.store) n.store.failRate = 0; }
    for (const n of w.nodes) if (!isUp(n)) await this.#nodes.start(n);
  }

  /** The faults of one slot (late joins and storage crashes also during the drain's first slot). */
  async atSlot(slot: number, faultEnd: number): Promise<void> {
    const w = this.#w;
    // Storage faults: nodes whose write failed crash now, and come back from their store a little later.
    for (const n of w.nodes) {
      if (n.crashPending && n.node) {
        n.crashPending = false;
        await this.#nodes.crash(n);
        n.downUntil = slot + 1 + w.rng.int(3);
        w.stats.storageCrashes++;
      }
      n.crashPending = false;
    }
    // Late joiners start on their slot, with an empty store: they must sync the whole chain.
    for (const n of w.nodes) {
      if (!n.node && n.downUntil === slot && n.crashes === 0 && !n.db && slot < faultEnd) {
        await this.#nodes.start(n); // a failed first start is retried like any restart (below)
        w.stats.lateJoins++;
        w.trace.event(`${w.clock.now()}|join|${n.index}`);
      }
    }
    const prof = w.o.faults;
    if (slot >= faultEnd) return;
    // Leavers: honest nodes after the late joiners go away at a third of the run and return at the drain.
    if (w.o.leavers > 0 && slot === Math.floor(faultEnd / 3)) {
      for (let i = 0; i < w.o.leavers; i++) {
        const n = w.nodes[1 + w.o.lateJoiners + i]!;
        if (n.node) await this.#nodes.crash(n);
        n.downUntil = faultEnd;
        w.stats.leaves++;
      }
    }
    const chaos = prof === 'chaos';
    if ((prof === 'lossy' || chaos) && slot === 5) {
      for (const a of w.nodes) for (const b of w.nodes) if (a !== b && w.rng.chance(0.5)) w.net.setLink(a.addr, b.addr, { loss: 0.1, dup: 0.05, jitterMs: 40 });
    }
    if ((prof === 'partition' || chaos) && slot % 40 === 10 && w.nodes.length >= 2) {
      const shuffled = w.nodes.map((n) => n.addr);
      for (let i = shuffled.length - 1; i > 0; i--) { const j = w.rng.int(i + 1); [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!]; }
      const cut = 1 + w.rng.int(shuffled.length - 1);
      w.net.partition([shuffled.slice(0, cut), shuffled.slice(cut)]);
      w.stats.partitions++;
      w.trace.event(`${w.clock.now()}|partition|${cut}`);
    }
    if ((prof === 'partition' || chaos) && slot % 40 === 30) w.net.heal();
    if ((prof === 'crash' || chaos) && slot > 5 && w.rng.chance(0.08)) {
      const n = w.rng.pick(w.nodes);
      if (isUp(n)) { await this.#nodes.crash(n); n.downUntil = slot + 1; }
    }
    // Crashed nodes come back at random (never before their downUntil: leavers stay away, joiners wait).
    for (const n of w.nodes) {
      if (!isUp(n) && n.db && slot >= n.downUntil && w.rng.chance(0.3)) await this.#nodes.start(n);
    }
  }

  /** Every slot: byzantine nodes release late blocks and redial; those that own `slot` misbehave (or not). */
  async byzantineSlot(slot: number): Promise<void> {
    const w = this.#w;
    if (!w.byz) return;
    const owner = proposerFor(w.genesis, slot);
    const honest = honestNodes(w).map((h) => h.addr);
    for (const n of w.nodes) {
      if (n.honest || !n.byz?.running) continue;
      const note = n.byz.tick(honest);
      if (note) w.trace.event(`${w.clock.now()}|byz|${n.index}|${note}`);
      if (!bytesEqual(owner, n.key.publicKey)) continue;
      let action: string;
      try {
        action = await n.byz.act(slot);
      } catch (e) {
        if (!(e instanceof RuleError)) throw e;
        action = `failed:${e.message}`;
      }
      w.trace.event(`${w.clock.now()}|byz|${n.index}|${slot}|${action}`);
    }
  }
}
