/**
 * Deterministic simulation of a meshledger network: the production node (MeshNode: chain, mempool,
 * producer, P2P gossip and sync) runs N times in one process on a virtual clock, a seeded PRNG, the
 * simulated network (simnet.ts) and in-memory stores. One seed gives one execution: the trace hash and the
 * final state roots are the same on every run.
 *
 * This file is the driver: it builds the run (genesis, keys, nodes), starts and crashes nodes, and moves
 * the clock slot by slot. Each slot: the faults (faults.ts), the byzantine validators' turns, the
 * workload (load.ts), then the invariants (invariants.ts). A node's clock and store are env.ts.
 * The order of those steps, and of every PRNG draw within them, is what a seed's trace hash stands for.
 */
import { encodeAddress } from '../encoding/address.js';
import { toHex, utf8 } from '../encoding/bytes.js';
import { sha256 } from '../crypto/hash.js';
import { getPublicKey } from '../crypto/ed25519.js';
import type { KeyPair } from '../crypto/keyfile.js';
import { genesisFromJson, DEFAULT_PARAMS, type Genesis } from '../ledger/genesis.js';
import type { Tx } from '../ledger/tx.js';
import { MeshNode } from '../node/node.js';
import type { KV } from '../storage/kv.js';
import { ManualClock } from '../util/clock.js';
import { silentLogger, createLogger, type Logger } from '../util/log.js';
import { ByzantineLedger, ByzantineNode } from './byzantine.js';
import { NodeClock, isInjectedIo, isUp, type SimNodeState } from './env.js';
import { FaultInjector } from './faults.js';
import { InvariantError, Invariants } from './invariants.js';
import { LoadGenerator, type TxFate } from './load.js';
import { resolveOptions, type SimOptions, type ResolvedOptions } from './options.js';
import { Prng } from './prng.js';
import { SimNet } from './simnet.js';
import { SharedVerdicts } from './verifier.js';
import { honestNodes, newStats, slotNow, Trace, type SimWorld } from './world.js';

export { FAULT_PROFILES, type FaultProfile, type SimOptions } from './options.js';
export { SimIOError } from './env.js';
export { InvariantError } from './invariants.js';
export type { TxFate } from './load.js';

export interface SimResult {
  seed: number;
  traceHash: string;
  heads: { height: number; hash: string; stateRoot: string }[];
  slots: number;
  realMs: number;
  slotsPerSecond: number;
  txs: { submitted: number; acknowledged: number; confirmed: number; rejected: number; conflicts: number; retried: number; fates: Record<TxFate, number> };
  faults: { crashes: number; partitions: number; framesDropped: number; writeFailures: number; lagAfterIoFail: number; storageCrashes: number; lateJoins: number; leaves: number; startsArmed: number; startFailures: number; startupWriteFailures: number; restartsAfterFailedStart: number };
  byzantine: { nodes: number; actions: Record<string, number>; equivocations: number; equivocationsSeenBoth: number; evidenceRecorded: number; evidenceEvents: number; invalidBlocks: number; invalidRejected: number; bans: number; released: number; frames: Record<string, number> };
  reorgs: number;
}

export class Simulation {
  readonly o: ResolvedOptions;
  readonly clock: ManualClock;
  readonly rng: Prng;
  readonly net: SimNet;
  readonly genesis: Genesis;
  readonly nodes: SimNodeState[] = [];
  readonly accounts: KeyPair[];
  readonly log: Logger;
  /** What the byzantine validators did (undefined without any). */
  readonly byz: ByzantineLedger | undefined;
  readonly #w: SimWorld;
  readonly #junkKey: KeyPair;
  /** One Ed25519 verdict memo for all nodes (verifier.ts): each distinct signature is verified once per run. */
  readonly #verdicts = new SharedVerdicts();
  readonly #load: LoadGenerator;
  readonly #faults: FaultInjector;
  readonly #invariants: Invariants;

  constructor(opts: SimOptions) {
    this.o = resolveOptions(opts);
    // The order of the PRNG forks below is part of every seed's trace: the network's stream, then the disks'.
    this.rng = new Prng(opts.seed);
    const genesisTime = 1_800_000_000_000;
    this.clock = new ManualClock(genesisTime - 500);
    this.net = new SimNet(this.clock, this.rng.fork());
    const ioRng = this.rng.fork();
    this.log = this.o.log ? createLogger({ level: 'info', format: 'pretty', now: () => this.clock.now() }) : silentLogger;
    const key = (label: string, i: number): KeyPair => {
      const secretKey = sha256(utf8(`meshledger-sim:${opts.seed}:${label}:${i}`));
      const publicKey = getPublicKey(secretKey);
      return { secretKey, publicKey, address: encodeAddress(publicKey) };
    };
    const validators = Array.from({ length: opts.nodes }, (_, i) => key('validator', i));
    this.accounts = Array.from({ length: 8 }, (_, i) => key('account', i));
    const p = DEFAULT_PARAMS;
    this.genesis = genesisFromJson({
      chainId: 'meshledger-sim', genesisTime, slotMs: this.o.slotMs,
      validators: validators.map((v) => v.address),
      alloc: this.accounts.map((a) => ({ address: a.address, amount: '1000000000000' })),
      params: { minFee: p.minFee.toString(), maxBlockTxs: p.maxBlockTxs, maxBlockBytes: p.maxBlockBytes, maxMemoBytes: p.maxMemoBytes, maxClockDriftMs: p.maxClockDriftMs, decimals: p.decimals, symbol: p.symbol },
    });
    for (let i = 0; i < opts.nodes; i++) {
      const honest = i < opts.nodes - this.o.byzantine;
      this.nodes.push({ index: i, addr: `ws://node${i}.sim:30400`, key: validators[i]!, nodeKey: key('node', i), db: undefined as unknown as KV, node: undefined, clock: undefined, store: undefined, crashes: 0, honest, downUntil: 0, crashPending: false, lastIoFailSlot: -Infinity, ioLag: false, byz: undefined, failedStarts: 0, evidenceWriteFailures: 0 });
    }
    // Late joiners: the honest nodes right after node 0 (they bootstrap from node 0, like everyone).
    for (let i = 1; i <= this.o.lateJoiners; i++) this.nodes[i]!.downUntil = this.o.lateJoinSlot;
    this.#junkKey = key('junk', 0);
    if (this.o.byzantine > 0) this.byz = new ByzantineLedger();
    this.#w = {
      o: this.o, clock: this.clock, rng: this.rng, net: this.net, genesis: this.genesis, nodes: this.nodes,
      accounts: this.accounts, log: this.log, byz: this.byz, stats: newStats(), trace: new Trace(),
    };
    this.#load = new LoadGenerator(this.#w);
    this.#faults = new FaultInjector(this.#w, { start: (n) => this.#start(n), crash: (n) => this.#crash(n) }, ioRng);
    this.#invariants = new Invariants(this.#w);
  }

  get honestNodes(): SimNodeState[] { return honestNodes(this.#w); }

  /** Every acknowledged transaction and the node that acknowledged it. */
  get acknowledged(): ReadonlyMap<string, { tx: Tx; node: number }> { return this.#load.acknowledged; }

  /**
   * Start node `n` (a new incarnation on its store). With storage faults on, writes may fail during the
   * start-up itself; a start that fails must reject with the injected I/O error (anything else is a
   * violation) and leaves the node down: it is started again at a later slot, like a supervisor restarting
   * a process that exited. Returns whether the node is up.
   */
  async #start(n: SimNodeState): Promise<boolean> {
    const w = this.#w;
    if (!n.db) {
      const { openMemory } = await import('../storage/kv.js');
      n.db = await openMemory();
    }
    n.clock = new NodeClock(this.clock);
    if (!n.honest) return this.#startByzantine(n);
    n.store = this.#faults.storeFor(n);
    const store = n.store;
    const clock = n.clock;
    try {
      n.node = await MeshNode.start(
        { datadir: `/sim/${n.index}`, genesis: this.genesis, key: n.key, p2p: { host: 'sim', port: 30400 }, advertise: n.addr, bootnodes: n.index === 0 ? [] : [this.nodes[0]!.addr] },
        { log: this.log.child({ node: n.index }), clock, random: this.rng.fork(), openStore: async () => store, transport: this.net.transport(n.addr), nodeKey: n.nodeKey, verifier: this.#verdicts.forNode() },
      );
    } catch (e) {
      if (!isInjectedIo(e)) throw new InvariantError(this.o.seed, `node ${n.index}: start-up failed with something other than the injected I/O error: ${(e as Error).stack ?? e}`);
      // The process exits: its timers and store handle die with it, its listener (if any) goes.
      clock.kill();
      store.kill();
      await this.net.transport(n.addr).close();
      n.failedStarts++;
      w.stats.startFailures++;
      n.downUntil = slotNow(w) + 1;
      w.trace.event(`${this.clock.now()}|startfail|${n.index}|${(e as Error).message}`);
      return false;
    }
    store.failNth = undefined;
    if (n.failedStarts > 0) { w.stats.restartsAfterFailedStart++; n.failedStarts = 0; }
    // Chain.open keeps the stored head even when a better stored tip exists (a head switch that a failed
    // write or the crash cut off); MeshNode.start's reconsider() moves it there, unless a write failed
    // during this start-up: only then may the head trail a better stored tip (until the next head change).
    n.ioLag = store.failures > 0;
    const node = n.node;
    node.chain.on('chain:head', ({ head, disconnected }) => {
      if (disconnected.length) w.stats.reorgs++;
      n.ioLag = false;
      this.#load.noteAbandoned(disconnected);
      w.trace.event(`${this.clock.now()}|${n.index}|${head.height}|${head.hashHex}`);
    });
    this.#load.watch(n, node.mempool);
    if (this.byz) this.#invariants.watchByzantine(n, node);
    return true;
  }

  /** A byzantine validator comes up: its own wire-level node (created once; its chain survives crashes). */
  async #startByzantine(n: SimNodeState): Promise<boolean> {
    n.byz ??= await ByzantineNode.open({
      addr: n.addr, key: n.key, nodeKey: n.nodeKey, genesis: this.genesis, db: n.db, clock: this.clock, rng: this.rng.fork(),
      verifier: this.#verdicts.forNode(), ledger: this.byz!, junkKey: this.#junkKey,
    });
    await n.byz.start(this.net.transport(n.addr), n.clock!, this.honestNodes.map((h) => h.addr));
    this.#w.trace.event(`${this.clock.now()}|byzstart|${n.index}`);
    return true;
  }

  async #crash(n: SimNodeState): Promise<void> {
    if (!isUp(n)) return;
    this.log.info('crash', { node: n.index });
    this.#w.trace.event(`${this.clock.now()}|crash|${n.index}`);
    n.clock!.kill();
    n.crashes++;
    this.#w.stats.crashes++;
    if (n.byz) { await n.byz.stop(); return; }
    n.store!.kill();
    n.node!.producer?.stop();
    await this.net.transport(n.addr).close();
    n.node = undefined;
  }

  /**
   * Let every promise and immediate that the last timer set off run (deterministically). One macrotask turn
   * drains the whole microtask queue (memory-level, the mempool's admission batches and the chain all work
   * in microtasks); another turn is needed only while the nodes left an immediate behind (the mempool's group
   * commit uses setImmediate). Settling stops as soon as nothing is pending, so a long chain of immediates
   * is never cut short and left to run during the next timer.
   */
  async #settle(): Promise<void> {
    for (let i = 0; i < 256; i++) {
      await new Promise<void>((r) => setImmediate(r));
      if (!process.getActiveResourcesInfo().includes('Immediate')) return;
    }
  }

  /** Fire every timer due up to `t` in order, stopping at each slot edge on the way to run `onSlot`. */
  async #runUntil(t: number, onSlot?: (slot: number) => Promise<void>): Promise<void> {
    let slot = Math.floor((this.clock.now() - this.genesis.genesisTime) / this.o.slotMs);
    for (;;) {
      const next = this.clock.nextDue();
      const slotEdge = this.genesis.genesisTime + (slot + 1) * this.o.slotMs;
      if ((next === undefined || next > slotEdge) && slotEdge <= t) {
        this.clock.set(slotEdge);
        slot++;
        if (onSlot) await onSlot(slot);
        await this.#settle();
        continue;
      }
      if (next === undefined || next > t) break;
      this.clock.step(t);
      await this.#settle();
    }
    if (this.clock.now() < t) this.clock.set(t);
    await this.#settle();
  }

  /** Run the whole scenario and check the invariants. Throws InvariantError on a violation. */
  async run(): Promise<SimResult> {
    const started = performance.now();
    for (const n of this.nodes) if (n.downUntil === 0) await this.#start(n);
    const g = this.genesis;
    const faultEnd = Math.max(0, this.o.slots - this.o.drainSlots);
    const loadEnd = Math.max(0, this.o.slots - Math.floor(this.o.drainSlots / 2));
    await this.#runUntil(g.genesisTime + this.o.slots * this.o.slotMs, async (slot) => {
      if (slot === faultEnd) await this.#faults.end();
      await this.#faults.atSlot(slot, faultEnd);
      await this.#faults.byzantineSlot(slot);
      if (slot < loadEnd) {
        await this.#load.retrySubmissions();
        for (let i = 0; i < this.o.load; i++) await this.#load.submit();
      }
      await this.#invariants.checkForkChoice();
      if (slot % 10 === 0) { await this.#invariants.checkRunning(); await this.#invariants.checkByzantine(false); }
    });
    await this.#invariants.checkFinal(this.#load);
    const realMs = performance.now() - started;
    const result = await this.#result(realMs);
    for (const n of this.nodes) { n.clock?.kill(); n.node?.producer?.stop(); await n.byz?.stop(); }
    return result;
  }

  async #result(realMs: number): Promise<SimResult> {
    const honest = this.honestNodes;
    const heads = await Promise.all(honest.map(async (n) => ({ height: n.node!.chain.head.height, hash: n.node!.chain.head.hashHex, stateRoot: toHex(n.node!.chain.stateRoot) })));
    const byzStats = this.byz ? await this.#invariants.checkByzantine(true) : { seenBoth: 0, evidence: 0 };
    const st = this.#w.stats;
    const load = this.#load;
    return {
      seed: this.o.seed, traceHash: this.#w.trace.hex(), heads, slots: this.o.slots, realMs, slotsPerSecond: this.o.slots / (realMs / 1000),
      txs: { submitted: st.submitted, acknowledged: load.acknowledged.size, confirmed: load.fates.confirmed, rejected: st.rejected, conflicts: st.conflicts, retried: st.retried, fates: { ...load.fates } },
      faults: {
        crashes: st.crashes, partitions: st.partitions, framesDropped: this.net.framesDropped,
        writeFailures: st.writeFailures, lagAfterIoFail: st.lagAfterIoFail, storageCrashes: st.storageCrashes, lateJoins: st.lateJoins, leaves: st.leaves,
        startsArmed: st.startsArmed, startFailures: st.startFailures, startupWriteFailures: st.startupWriteFailures, restartsAfterFailedStart: st.restartsAfterFailedStart,
      },
      byzantine: {
        nodes: this.o.byzantine, actions: { ...(this.byz?.counts ?? {}) }, equivocations: this.byz?.equivocations.length ?? 0,
        equivocationsSeenBoth: byzStats.seenBoth, evidenceRecorded: byzStats.evidence, evidenceEvents: this.#invariants.evidenceEventCount, invalidBlocks: this.byz?.corrupted.size ?? 0,
        invalidRejected: st.invalidRejected, bans: st.bans, released: this.byz?.released ?? 0, frames: { ...(this.byz?.frames ?? {}) },
      },
      reorgs: st.reorgs,
    };
  }
}
