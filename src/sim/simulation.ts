/**
 * Deterministic simulation of a meshledger network: the production node (MeshNode: chain, mempool,
 * producer, P2P gossip and sync) runs N times in one process on a virtual clock, a seeded PRNG, the
 * simulated network (simnet.ts) and in-memory stores. One seed gives one execution: the trace hash and the
 * final state roots are the same on every run.
 *
 * A crash kills a node's clock (its timers never fire again), freezes its store (writes not yet issued are
 * lost; issued batches are atomic, as in LevelDB) and cuts its connections; a restart opens a new node on
 * the same store. Invariants are checked during and after the run; a violation names the seed to replay.
 */
import { Chain } from '../chain/chain.js';
import { encodeAddress } from '../encoding/address.js';
import { encodeCanonical } from '../encoding/canonical.js';
import { toHex, utf8 } from '../encoding/bytes.js';
import { sha256 } from '../crypto/hash.js';
import { getPublicKey } from '../crypto/ed25519.js';
import { genesisFromJson, DEFAULT_PARAMS, type Genesis } from '../ledger/genesis.js';
import { RuleError } from '../ledger/rules.js';
import { decodeTx, signTx, type Tx } from '../ledger/tx.js';
import { proposerFor } from '../ledger/schedule.js';
import { layout } from '../storage/layout.js';
import { bytesEqual } from '../encoding/bytes.js';
import { MeshNode } from '../node/node.js';
import type { KeyPair } from '../crypto/keyfile.js';
import type { BatchOp, KV } from '../storage/kv.js';
import { ManualClock, type Clock, type TimerHandle } from '../util/clock.js';
import { SharedVerdicts } from './verifier.js';
import { silentLogger, createLogger, type Logger } from '../util/log.js';
import { Prng } from './prng.js';
import { SimNet } from './simnet.js';
import { ByzantineLedger, ByzantineNode } from './byzantine.js';
import { createHandlers } from '../rpc/methods.js';

export type FaultProfile = 'none' | 'lossy' | 'partition' | 'crash' | 'chaos' | 'byzantine' | 'storage' | 'churn';
export const FAULT_PROFILES: FaultProfile[] = ['none', 'lossy', 'partition', 'crash', 'chaos', 'byzantine', 'storage', 'churn'];

export interface SimOptions {
  seed: number;
  nodes: number;
  slots: number;
  faults: FaultProfile;
  slotMs?: number;
  /** Transactions submitted per slot (light load ≈ 2). */
  load?: number;
  /** Slots at the end with faults cleared and no new load, for convergence. */
  drainSlots?: number;
  log?: boolean;
  /** Byzantine validators (the last K nodes). Default 0; profile 'byzantine' makes it 1. */
  byzantine?: number;
  /** Probability that a store write (put/del/batch) fails with an I/O error. Profile 'storage': 0.02. */
  failWrites?: number;
  /** Probability that a node whose write failed crashes at the next slot (and restarts from its store). */
  crashOnWriteFailure?: number;
  /**
   * While storage faults are on: probability that a node's start-up (MeshNode.start: Chain.open, mempool
   * load, fork choice over the stored tips, P2P start) has one of its first three writes fail, on top of
   * `failWrites`. A start that fails must fail cleanly (reject with the I/O error) and a later start must
   * succeed. Default 0.5 when `failWrites` > 0.
   */
  startupFaults?: number;
  /** Honest nodes (never node 0) that start only at `lateJoinSlot`, with an empty store. Profile 'churn': 1. */
  lateJoiners?: number;
  lateJoinSlot?: number;
  /** Honest nodes that leave at a third of the run and stay away until the drain. Profile 'churn': 1. */
  leavers?: number;
}

/** The error a failing simulated disk gives. */
export class SimIOError extends Error {
  constructor(op: string) {
    super(`sim: injected I/O error (${op})`);
    this.name = 'SimIOError';
  }
}

export type TxFate = 'confirmed' | 'conflict-confirmed' | 'replaced' | 'evicted' | 'stale' | 'unaffordable';

export class InvariantError extends Error {
  constructor(readonly seed: number, message: string) {
    super(`invariant violated (seed ${seed}): ${message}`);
    this.name = 'InvariantError';
  }
}

/** A clock view for one node: killing it cancels the node's timers and ignores new ones. */
class NodeClock implements Clock {
  #alive = true;
  readonly #timers = new Set<TimerHandle>();
  constructor(private readonly base: ManualClock) {}
  now(): number { return this.base.now(); }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    if (!this.#alive) return {} as TimerHandle;
    const h: TimerHandle = this.base.setTimeout(() => {
      this.#timers.delete(h);
      if (this.#alive) fn();
    }, ms);
    this.#timers.add(h);
    return h;
  }
  clearTimeout(h: TimerHandle): void {
    this.#timers.delete(h);
    this.base.clearTimeout(h);
  }
  kill(): void {
    this.#alive = false;
    for (const h of this.#timers) this.base.clearTimeout(h);
    this.#timers.clear();
  }
}

/** A store view for one node incarnation: after kill(), operations never complete (the process is gone). */
class NodeStore implements KV {
  #alive = true;
  /** Write-failure probability (0 = a healthy disk); a failed write changes nothing (LevelDB batches are atomic). */
  failRate = 0;
  failures = 0;
  /** Start-up fault: the write with this index (0 = the first write of this incarnation) fails. */
  failNth: number | undefined;
  writes = 0;
  constructor(private readonly db: KV, private readonly rng?: Prng, private readonly onFail?: (op: string, ops?: BatchOp[]) => void) {}
  kill(): void { this.#alive = false; }
  #gate<T>(op: () => Promise<T>): Promise<T> { return this.#alive ? op() : new Promise<T>(() => {}); }
  #write(name: string, op: () => Promise<void>, ops?: BatchOp[]): Promise<void> {
    if (!this.#alive) return new Promise<void>(() => {});
    const nth = this.writes++;
    if (nth === this.failNth || (this.failRate > 0 && this.rng!.chance(this.failRate))) {
      this.failures++;
      this.onFail?.(name, ops);
      return Promise.reject(new SimIOError(name));
    }
    return op();
  }
  get(k: Uint8Array) { return this.#gate(() => this.db.get(k)); }
  getMany(k: Uint8Array[]) { return this.#gate(() => this.db.getMany(k)); }
  put(k: Uint8Array, v: Uint8Array) { return this.#write('put', () => this.db.put(k, v)); }
  del(k: Uint8Array) { return this.#write('del', () => this.db.del(k)); }
  batch(ops: BatchOp[]) { return this.#write('batch', () => this.db.batch(ops), ops); }
  iterator(o: Parameters<KV['iterator']>[0]) { return this.db.iterator(o); }
  async close(): Promise<void> { /* the underlying store outlives incarnations */ }
}

interface SimNodeState {
  index: number;
  addr: string;
  key: KeyPair;
  nodeKey: KeyPair;
  db: KV;
  node: MeshNode | undefined;
  clock: NodeClock | undefined;
  store: NodeStore | undefined;
  crashes: number;
  honest: boolean;
  /** First slot at which a down node may start again (late joiners: their join slot). */
  downUntil: number;
  /** Set when a write failed and the node is to crash (like a process exiting on an I/O error). */
  crashPending: boolean;
  /** Slot of this node's last failed write (-inf if none). */
  lastIoFailSlot: number;
  /** A write failed and the chain has not switched head since: its head may trail a stored better tip. */
  ioLag: boolean;
  /** A byzantine validator: the simulator's own wire-level node (byzantine.ts), not a MeshNode. */
  byz: ByzantineNode | undefined;
  /** Start-up attempts that failed (with an injected I/O error) since the last successful start. */
  failedStarts: number;
  /** Failed batches that carried equivocation evidence (keyspace 'q'): for the diagnosis of a missing one. */
  evidenceWriteFailures: number;
}

const EVIDENCE_PREFIX = layout.prefix('q')[0]!;

/** Up (running) now: an honest node's MeshNode exists, or a byzantine node is on the network. */
function up(n: SimNodeState): boolean { return n.node !== undefined || (n.byz?.running ?? false); }

/** An injected disk error, possibly wrapped by the node (StartupError quotes the cause's message). */
function isInjectedIo(e: unknown): boolean {
  return e instanceof SimIOError || (e instanceof Error && e.message.includes('sim: injected I/O error'));
}

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
  readonly o: Required<SimOptions>;
  readonly clock: ManualClock;
  readonly rng: Prng;
  readonly net: SimNet;
  readonly genesis: Genesis;
  readonly nodes: SimNodeState[] = [];
  readonly accounts: KeyPair[];
  readonly log: Logger;
  /** What the byzantine validators did (undefined without any). */
  readonly byz: ByzantineLedger | undefined;
  readonly #junkKey: KeyPair;
  /** `chain:equivocation` events per honest node, over all its incarnations: `${node}|${slot}|${proposer}` → hashes. */
  readonly #evidenceEvents = new Map<string, Set<string>>();
  #evidenceEventCount = 0;
  /** Draws for injected write failures: a stream of its own, so disk faults do not shift the workload. */
  readonly #ioRng: Prng;
  /** One Ed25519 verdict memo for all nodes (verifier.ts): each distinct signature is verified once per run. */
  readonly #verdicts = new SharedVerdicts();
  #trace: Uint8Array = new Uint8Array(32);
  #nextNonce = new Map<string, bigint>();
  /** Every acknowledged transaction and the node that acknowledged it. */
  readonly acknowledged = new Map<string, { tx: Tx; node: number }>();
  /** 'tx:removed' reasons per node: `${node}:${txid}` → reasons. */
  readonly #removed = new Map<string, Set<string>>();
  /** Submissions that failed with an I/O error: the client retries them (same bytes) at some node. */
  #retry: Tx[] = [];
  /** Transactions that were in a block some node abandoned in a reorg (diagnostics). */
  readonly #abandoned = new Set<string>();
  /** Submissions that failed with an I/O error, by node; and those a node then acknowledged as 'duplicate'. */
  readonly #ioFailedAt = new Map<string, Set<number>>();
  readonly #ackAfterIoFail = new Set<string>();
  #ioFaults = false;
  #stats = { submitted: 0, rejected: 0, crashes: 0, partitions: 0, reorgs: 0, conflicts: 0, retried: 0, storageCrashes: 0, writeFailures: 0, lagAfterIoFail: 0, lateJoins: 0, leaves: 0, invalidRejected: 0, bans: 0, startsArmed: 0, startFailures: 0, startupWriteFailures: 0, restartsAfterFailedStart: 0 };
  #fates: Record<TxFate, number> = { confirmed: 0, 'conflict-confirmed': 0, replaced: 0, evicted: 0, stale: 0, unaffordable: 0 };

  constructor(opts: SimOptions) {
    const prof = opts.faults;
    this.o = {
      slotMs: 1000, load: 2, drainSlots: 30, log: false,
      byzantine: prof === 'byzantine' ? 1 : 0,
      failWrites: prof === 'storage' ? 0.02 : prof === 'chaos' ? 0.01 : 0,
      crashOnWriteFailure: 0.5,
      startupFaults: (opts.failWrites ?? (prof === 'storage' ? 0.02 : prof === 'chaos' ? 0.01 : 0)) > 0 ? 0.5 : 0,
      lateJoiners: prof === 'churn' ? 1 : 0,
      lateJoinSlot: Math.max(1, Math.floor(opts.slots / 5)),
      leavers: prof === 'churn' ? 1 : 0,
      ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)),
    } as Required<SimOptions>;
    if (this.o.byzantine >= opts.nodes) throw new Error('at least one validator must be honest (byzantine < nodes)');
    if (this.o.lateJoiners + this.o.leavers > Math.max(0, opts.nodes - 1 - this.o.byzantine)) throw new Error('not enough honest nodes besides node 0 for the late joiners and leavers');
    this.rng = new Prng(opts.seed);
    const genesisTime = 1_800_000_000_000;
    this.clock = new ManualClock(genesisTime - 500);
    this.net = new SimNet(this.clock, this.rng.fork());
    this.#ioRng = this.rng.fork();
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
  }

  #slotNow(): number { return Math.floor((this.clock.now() - this.genesis.genesisTime) / this.o.slotMs); }

  get honestNodes(): SimNodeState[] { return this.nodes.filter((n) => n.honest); }

  #traceEvent(s: string): void {
    this.#trace = sha256(new Uint8Array([...this.#trace, ...utf8(s)]));
  }

  /**
   * Start node `n` (a new incarnation on its store). With storage faults on, writes may fail during the
   * start-up itself; a start that fails must reject with the injected I/O error (anything else is a
   * violation) and leaves the node down: it is started again at a later slot, like a supervisor restarting
   * a process that exited. Returns whether the node is up.
   */
  async #start(n: SimNodeState): Promise<boolean> {
    if (!n.db) {
      const { openMemory } = await import('../storage/kv.js');
      n.db = await openMemory();
    }
    n.clock = new NodeClock(this.clock);
    if (!n.honest) return this.#startByzantine(n);
    n.store = new NodeStore(n.db, this.#ioRng, (op, ops) => {
      this.#stats.writeFailures++;
      if (ops?.some((o) => o.key[0] === EVIDENCE_PREFIX)) n.evidenceWriteFailures++;
      if (!n.node) this.#stats.startupWriteFailures++;
      n.lastIoFailSlot = this.#slotNow();
      n.ioLag = true;
      this.#traceEvent(`${this.clock.now()}|iofail|${n.index}|${op}${n.node ? '' : '|startup'}`);
      if (this.#ioRng.chance(this.o.crashOnWriteFailure)) n.crashPending = true;
    });
    const store = n.store;
    // Disk faults reach the start-up too: the general write-failure rate, and now and then one of the first
    // three writes of the incarnation (Chain.open's genesis batch on an empty store, the head switch of
    // reconsider(), the mempool load's clean-up, …) fails outright.
    store.failRate = this.#ioFaults ? this.o.failWrites : 0;
    if (this.#ioFaults && this.#ioRng.chance(this.o.startupFaults)) {
      store.failNth = this.#ioRng.int(3);
      this.#stats.startsArmed++;
    }
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
      this.#stats.startFailures++;
      n.downUntil = this.#slotNow() + 1;
      this.#traceEvent(`${this.clock.now()}|startfail|${n.index}|${(e as Error).message}`);
      return false;
    }
    store.failNth = undefined;
    if (n.failedStarts > 0) { this.#stats.restartsAfterFailedStart++; n.failedStarts = 0; }
    // Chain.open keeps the stored head even when a better stored tip exists (a head switch that a failed
    // write or the crash cut off); MeshNode.start's reconsider() moves it there, unless a write failed
    // during this start-up: only then may the head trail a better stored tip (until the next head change).
    n.ioLag = store.failures > 0;
    const node = n.node;
    node.chain.on('chain:head', ({ head, disconnected }) => {
      if (disconnected.length) this.#stats.reorgs++;
      n.ioLag = false;
      for (const blk of disconnected) for (const t of blk.txs) this.#abandoned.add(t.idHex);
      this.#traceEvent(`${this.clock.now()}|${n.index}|${head.height}|${head.hashHex}`);
    });
    node.mempool.on('tx:removed', ({ tx, reason }) => {
      if (reason === 'included') return;
      const k = `${n.index}:${tx.idHex}`;
      const set = this.#removed.get(k) ?? new Set<string>();
      set.add(reason);
      this.#removed.set(k, set);
    });
    if (this.byz) {
      node.chain.on('block:invalid', ({ hash }) => { if (this.byz!.corrupted.has(hash)) this.#stats.invalidRejected++; });
      node.network?.on('peer:banned', () => { this.#stats.bans++; });
      node.chain.on('chain:equivocation', ({ slot, proposer, hashes }) => {
        this.#evidenceEventCount++;
        const k = `${n.index}|${slot}|${proposer}`;
        const set = this.#evidenceEvents.get(k) ?? new Set<string>();
        for (const h of hashes) set.add(h);
        this.#evidenceEvents.set(k, set);
        this.#traceEvent(`${this.clock.now()}|evidence|${n.index}|${slot}|${hashes.join(',')}`);
      });
    }
    return true;
  }

  /** A byzantine validator comes up: its own wire-level node (created once; its chain survives crashes). */
  async #startByzantine(n: SimNodeState): Promise<boolean> {
    n.byz ??= await ByzantineNode.open({
      addr: n.addr, key: n.key, nodeKey: n.nodeKey, genesis: this.genesis, db: n.db, clock: this.clock, rng: this.rng.fork(),
      verifier: this.#verdicts.forNode(), ledger: this.byz!, junkKey: this.#junkKey,
    });
    await n.byz.start(this.net.transport(n.addr), n.clock!, this.honestNodes.map((h) => h.addr));
    this.#traceEvent(`${this.clock.now()}|byzstart|${n.index}`);
    return true;
  }

  async #crash(n: SimNodeState): Promise<void> {
    if (!up(n)) return;
    this.log.info('crash', { node: n.index });
    this.#traceEvent(`${this.clock.now()}|crash|${n.index}`);
    n.clock!.kill();
    n.crashes++;
    this.#stats.crashes++;
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
   * commit uses setImmediate). A fixed six turns per timer spent a fifth of a run's time idling in the event
   * loop; settling stops as soon as nothing is pending, which also means a long chain of immediates is no
   * longer cut short and left to run during the next timer.
   */
  async #settle(): Promise<void> {
    for (let i = 0; i < 256; i++) {
      await new Promise<void>((r) => setImmediate(r));
      if (!process.getActiveResourcesInfo().includes('Immediate')) return;
    }
  }

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

  /** Submit one transaction to one node: true if acknowledged. I/O errors go to the client's retry queue. */
  async #send(target: SimNodeState, tx: Tx, mustReject: string | undefined): Promise<boolean> {
    try {
      const res = await target.node!.mempool.add(tx);
      if (res.status === 'duplicate' && this.#ioFailedAt.get(tx.idHex)?.has(target.index)) this.#ackAfterIoFail.add(tx.idHex);
      if (mustReject) throw new InvariantError(this.o.seed, `node ${target.index} acknowledged an invalid transaction (${mustReject})`);
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
      this.#stats.rejected++;
      return false;
    }
  }

  async #submit(): Promise<void> {
    const up = this.nodes.filter((n) => n.node && n.honest);
    if (!up.length) return;
    const from = this.rng.pick(this.accounts);
    const to = this.rng.pick(this.accounts);
    const k = from.address;
    const nonce = this.#nextNonce.get(k) ?? 0n;
    const kind = this.rng.int(20);
    const g = this.genesis;
    const amount = 1n + BigInt(this.rng.int(1000));
    const fee = 1n + BigInt(this.rng.int(5));
    const base = { chainId: g.chainId, from: from.publicKey, to: to.publicKey, amount, fee, nonce, memo: '' };
    const target = this.rng.pick(up);
    this.#stats.submitted++;
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
      else { tx = signTx({ ...base, nonce: nonce + 64n + BigInt(this.rng.int(100)) }, from.secretKey); why = 'nonce too far ahead'; }
      await this.#send(target, tx, why);
      return;
    }
    if (kind <= 6 && up.length >= 1) {
      // Conflicting pair: same sender and nonce, different recipients and fees, sent to different nodes.
      this.#stats.conflicts++;
      const other = this.rng.pick(up.length > 1 ? up.filter((n) => n !== target) : up);
      const to2 = this.rng.pick(this.accounts.filter((a) => a !== to));
      const t1 = signTx(base, from.secretKey);
      const t2 = signTx({ ...base, to: to2.publicKey, fee: 1n + BigInt(this.rng.int(5)) }, from.secretKey);
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

  async #retrySubmissions(): Promise<void> {
    const up = this.nodes.filter((n) => n.node && n.honest);
    if (!up.length || !this.#retry.length) return;
    const list = this.#retry.splice(0);
    for (const tx of list) {
      this.#stats.retried++;
      await this.#send(this.rng.pick(up), tx, undefined);
    }
  }

  async #injectFaults(slot: number, faultEnd: number): Promise<void> {
    // Storage faults: nodes whose write failed crash now, and come back from their store a little later.
    for (const n of this.nodes) {
      if (n.crashPending && n.node) {
        n.crashPending = false;
        await this.#crash(n);
        n.downUntil = slot + 1 + this.rng.int(3);
        this.#stats.storageCrashes++;
      }
      n.crashPending = false;
    }
    // Late joiners start on their slot, with an empty store: they must sync the whole chain.
    for (const n of this.nodes) {
      if (!n.node && n.downUntil === slot && n.crashes === 0 && !n.db && slot < faultEnd) {
        await this.#start(n); // a failed first start is retried like any restart (below)
        this.#stats.lateJoins++;
        this.#traceEvent(`${this.clock.now()}|join|${n.index}`);
      }
    }
    const prof = this.o.faults;
    if (slot >= faultEnd) return;
    // Leavers: honest nodes after the late joiners go away at a third of the run and return at the drain.
    if (this.o.leavers > 0 && slot === Math.floor(faultEnd / 3)) {
      for (let i = 0; i < this.o.leavers; i++) {
        const n = this.nodes[1 + this.o.lateJoiners + i]!;
        if (n.node) await this.#crash(n);
        n.downUntil = faultEnd;
        this.#stats.leaves++;
      }
    }
    const chaos = prof === 'chaos';
    if ((prof === 'lossy' || chaos) && slot === 5) {
      for (const a of this.nodes) for (const b of this.nodes) if (a !== b && this.rng.chance(0.5)) this.net.setLink(a.addr, b.addr, { loss: 0.1, dup: 0.05, jitterMs: 40 });
    }
    if ((prof === 'partition' || chaos) && slot % 40 === 10 && this.nodes.length >= 2) {
      const shuffled = this.nodes.map((n) => n.addr);
      for (let i = shuffled.length - 1; i > 0; i--) { const j = this.rng.int(i + 1); [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!]; }
      const cut = 1 + this.rng.int(shuffled.length - 1);
      this.net.partition([shuffled.slice(0, cut), shuffled.slice(cut)]);
      this.#stats.partitions++;
      this.#traceEvent(`${this.clock.now()}|partition|${cut}`);
    }
    if ((prof === 'partition' || chaos) && slot % 40 === 30) this.net.heal();
    if ((prof === 'crash' || chaos) && slot > 5 && this.rng.chance(0.08)) {
      const n = this.rng.pick(this.nodes);
      if (up(n)) { await this.#crash(n); n.downUntil = slot + 1; }
    }
    // Crashed nodes come back at random (never before their downUntil: leavers stay away, joiners wait).
    for (const n of this.nodes) {
      if (!up(n) && n.db && slot >= n.downUntil && this.rng.chance(0.3)) await this.#start(n);
    }
  }

  /** Every slot: byzantine nodes release late blocks and redial; those that own `slot` misbehave (or not). */
  async #byzantineSlot(slot: number): Promise<void> {
    if (!this.byz) return;
    const owner = proposerFor(this.genesis, slot);
    const honest = this.honestNodes.map((h) => h.addr);
    for (const n of this.nodes) {
      if (n.honest || !n.byz?.running) continue;
      const note = n.byz.tick(honest);
      if (note) this.#traceEvent(`${this.clock.now()}|byz|${n.index}|${note}`);
      if (!bytesEqual(owner, n.key.publicKey)) continue;
      let action: string;
      try {
        action = await n.byz.act(slot);
      } catch (e) {
        if (!(e instanceof RuleError)) throw e;
        action = `failed:${e.message}`;
      }
      this.#traceEvent(`${this.clock.now()}|byz|${n.index}|${slot}|${action}`);
    }
  }

  /** Run the whole scenario and check the invariants. Throws InvariantError on a violation. */
  async run(): Promise<SimResult> {
    const started = performance.now();
    this.#ioFaults = this.o.failWrites > 0;
    for (const n of this.nodes) if (n.downUntil === 0) await this.#start(n);
    const g = this.genesis;
    const faultEnd = Math.max(0, this.o.slots - this.o.drainSlots);
    const loadEnd = Math.max(0, this.o.slots - Math.floor(this.o.drainSlots / 2));
    await this.#runUntil(g.genesisTime + this.o.slots * this.o.slotMs, async (slot) => {
      if (slot === faultEnd) {
        this.net.heal();
        this.net.clearLinkFaults();
        this.#ioFaults = false;
        for (const n of this.nodes) { n.crashPending = false; if (n.store) n.store.failRate = 0; }
        for (const n of this.nodes) if (!up(n)) await this.#start(n);
      }
      await this.#injectFaults(slot, faultEnd);
      await this.#byzantineSlot(slot);
      if (slot < loadEnd) {
        await this.#retrySubmissions();
        for (let i = 0; i < this.o.load; i++) await this.#submit();
      }
      await this.#checkForkChoice();
      if (slot % 10 === 0) { await this.#checkRunning(); await this.#checkByzantine(false); }
    });
    await this.#checkFinal();
    const realMs = performance.now() - started;
    const honest = this.honestNodes;
    const heads = await Promise.all(honest.map(async (n) => ({ height: n.node!.chain.head.height, hash: n.node!.chain.head.hashHex, stateRoot: toHex(n.node!.chain.stateRoot) })));
    const byzStats = this.byz ? await this.#checkByzantine(true) : { seenBoth: 0, evidence: 0 };
    const st = this.#stats;
    const result: SimResult = {
      seed: this.o.seed, traceHash: toHex(this.#trace), heads, slots: this.o.slots, realMs, slotsPerSecond: this.o.slots / (realMs / 1000),
      txs: { submitted: this.#stats.submitted, acknowledged: this.acknowledged.size, confirmed: this.#fates.confirmed, rejected: this.#stats.rejected, conflicts: this.#stats.conflicts, retried: this.#stats.retried, fates: { ...this.#fates } },
      faults: {
        crashes: this.#stats.crashes, partitions: this.#stats.partitions, framesDropped: this.net.framesDropped,
        writeFailures: st.writeFailures, lagAfterIoFail: st.lagAfterIoFail, storageCrashes: st.storageCrashes, lateJoins: st.lateJoins, leaves: st.leaves,
        startsArmed: st.startsArmed, startFailures: st.startFailures, startupWriteFailures: st.startupWriteFailures, restartsAfterFailedStart: st.restartsAfterFailedStart,
      },
      byzantine: {
        nodes: this.o.byzantine, actions: { ...(this.byz?.counts ?? {}) }, equivocations: this.byz?.equivocations.length ?? 0,
        equivocationsSeenBoth: byzStats.seenBoth, evidenceRecorded: byzStats.evidence, evidenceEvents: this.#evidenceEventCount, invalidBlocks: this.byz?.corrupted.size ?? 0,
        invalidRejected: st.invalidRejected, bans: st.bans, released: this.byz?.released ?? 0, frames: { ...(this.byz?.frames ?? {}) },
      },
      reorgs: this.#stats.reorgs,
    };
    for (const n of this.nodes) { n.clock?.kill(); n.node?.producer?.stop(); await n.byz?.stop(); }
    return result;
  }

  /** Invariants that hold at every moment on every running node. */
  async #checkRunning(): Promise<void> {
    for (const n of this.nodes) {
      if (!n.node) continue;
      const c = n.node.chain;
      // Under the chain lock: a head switch in flight must not be observed half-written.
      await c.withHead(async () => {
        const audit = await c.auditSupply();
        if (audit.supply !== this.genesis.totalSupply) throw new InvariantError(this.o.seed, `node ${n.index}: supply ${audit.supply} ≠ genesis supply ${this.genesis.totalSupply} at height ${c.head.height}`);
        if (audit.root !== toHex(c.stateRoot)) throw new InvariantError(this.o.seed, `node ${n.index}: stored accounts do not match the state root at height ${c.head.height}`);
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
  async #checkByzantine(final: boolean): Promise<{ seenBoth: number; evidence: number }> {
    let seenBoth = 0;
    let evidence = 0;
    const byz = this.byz;
    if (!byz) return { seenBoth, evidence };
    const committed = new Map(byz.equivocations.map((e) => [`${e.slot}|${e.proposer}`, e]));
    for (const [k, hashes] of this.#evidenceEvents) {
      const [node, slot, proposer] = k.split('|');
      const e = committed.get(`${slot}|${proposer}`);
      if (!e || [...hashes].some((h) => !e.hashes.includes(h))) {
        const who = this.nodes.find((x) => toHex(x.key.publicKey) === proposer);
        throw new InvariantError(this.o.seed, `honest node ${node} reported an equivocation that did not happen: slot ${slot}, proposer node ${who?.index ?? proposer.slice(0, 12)} (${who?.honest ? 'honest' : 'byzantine'}), blocks ${[...hashes].map((h) => h.slice(0, 12)).join(', ')}`);
      }
    }
    for (const n of this.honestNodes) {
      if (!n.node) continue;
      const c = n.node.chain;
      const rpc = final ? createHandlers({ chain: c, mempool: n.node.mempool, version: 'sim', startedAt: 0, now: () => this.clock.now() }) : undefined;
      await c.withHead(async () => {
        for (const [hash, what] of byz.corrupted) {
          if (c.isOnMain(hash)) throw new InvariantError(this.o.seed, `honest node ${n.index} adopted the invalid block ${hash.slice(0, 12)} (${what.kind}, slot ${what.slot}) on its best chain`);
        }
        const listed = rpc ? new Set(((await rpc.getEquivocations!({}, {} as never)) as { blockHash: string }[]).map((x) => x.blockHash)) : undefined;
        for (const e of byz.equivocations) {
          if (!e.hashes.every((h) => c.hasBlock(h))) continue;
          seenBoth++;
          const what = `the equivocation in slot ${e.slot} (${e.hashes.map((x) => x.slice(0, 12)).join(', ')})`;
          const events = this.#evidenceEvents.get(`${n.index}|${e.slot}|${e.proposer}`);
          for (const h of e.hashes) {
            const io = `last failed write in slot ${n.lastIoFailSlot}; ${n.evidenceWriteFailures} failed evidence batch(es) on this node`;
            if (!events?.has(h)) throw new InvariantError(this.o.seed, `honest node ${n.index} stored both blocks of ${what} but never emitted chain:equivocation naming ${h.slice(0, 12)} (${io})`);
            const v = await n.db.get(layout.evidence(e.slot, fromHexKey(e.proposer), fromHexKey(h)));
            if (!v) throw new InvariantError(this.o.seed, `honest node ${n.index} stored both blocks of ${what} but has no evidence for ${h.slice(0, 12)} (${io})`);
            if (listed && !listed.has(h)) throw new InvariantError(this.o.seed, `honest node ${n.index}: getEquivocations does not list ${h.slice(0, 12)} of ${what}`);
          }
          evidence++;
        }
      });
    }
    if (final && byz.equivocations.length > 0 && seenBoth === 0 && this.o.faults === 'byzantine') {
      // Not an invariant of the chain (a banned byzantine node cannot deliver anything), only a note.
      this.log.warn('no honest node saw both blocks of any equivocation');
    }
    return { seenBoth, evidence };
  }

  /**
   * Fork choice, restated independently of the chain's code (greatest height, then smaller hash): with each
   * chain's lock held, no known candidate tip may beat its head. Runs every slot; catches a broken
   * tie-break even where the next block would hide it.
   */
  async #checkForkChoice(): Promise<void> {
    for (const n of this.nodes) {
      if (!n.node) continue;
      const c = n.node.chain;
      await c.withHead(async (head) => {
        for (const t of c.tips()) {
          const better = t.height > head.height || (t.height === head.height && Buffer.compare(Buffer.from(t.hash), Buffer.from(head.hash)) < 0);
          // A head switch whose write failed leaves the block stored and the head behind until the next block
          // arrives (Chain._addBlock retries then; Chain.open on restart): tolerated until the next head change.
          if (better && n.ioLag) { this.#stats.lagAfterIoFail++; continue; }
          if (better) throw new InvariantError(this.o.seed, `node ${n.index}: head ${head.hashHex.slice(0, 12)} at ${head.height} while tip ${t.hashHex.slice(0, 12)} at ${t.height} is better by the fork-choice rule (slot ${this.#slotNow()}, last failed write in slot ${n.lastIoFailSlot})`);
        }
      });
    }
  }

  /**
   * After the drain: the honest nodes on one chain with equal roots; the chain replays validly from genesis
   * on a fresh Chain; every acknowledged transaction has a stated fate; nonces sequential; nothing invalid.
   */
  async #checkFinal(): Promise<void> {
    await this.#checkRunning();
    await this.#checkByzantine(true);
    const honest = this.honestNodes;
    const heads = honest.map((n) => n.node!.chain.head);
    const minH = Math.min(...heads.map((h) => h.height));
    const at = Math.max(0, minH - 1);
    const hashes = new Set(honest.map((n) => n.node!.chain.mainHashAt(at)));
    if (hashes.size !== 1) throw new InvariantError(this.o.seed, `honest nodes did not converge: ${hashes.size} different blocks at height ${at} (heads ${heads.map((h) => h.height).join(',')})`);
    const ref = this.nodes[0]!.node!.chain;
    const minProgress = Math.floor(this.o.slots / 4);
    if (minH < minProgress) throw new InvariantError(this.o.seed, `chain not live: min height ${minH} after ${this.o.slots} slots`);

    // Independent replay: a fresh chain fed the reference best chain block by block must accept every block
    // as a plain extension and end at the same head and state root.
    const { openMemory } = await import('../storage/kv.js');
    const fresh = await Chain.open({ db: await openMemory(), genesis: this.genesis, clock: new ManualClock(this.clock.now()) });
    const seen = new Map<string, bigint>();
    const confirmedBySenderNonce = new Set<string>();
    for (let h = 1; h <= ref.head.height; h++) {
      const b = (await ref.getBlockAt(h))!;
      let st: string;
      try {
        st = (await fresh.addBlock(b)).status;
      } catch (e) {
        throw new InvariantError(this.o.seed, `node 0's best chain does not replay: block ${b.header.hashHex.slice(0, 12)} at height ${h}: ${(e as Error).message}`);
      }
      if (st !== 'connected') throw new InvariantError(this.o.seed, `node 0's best chain does not replay: block at height ${h} was '${st}'`);
      for (const tx of b.txs) {
        if (tx.chainId !== this.genesis.chainId) throw new InvariantError(this.o.seed, `foreign-chain tx ${tx.idHex} at height ${h}`);
        const k = toHex(tx.from);
        const want = seen.get(k) ?? 0n;
        // Nonces on the final chain are sequential per sender: every confirmed tx nonce equals its position.
        if (tx.nonce !== want) throw new InvariantError(this.o.seed, `nonce ${tx.nonce} of ${k.slice(0, 8)} at height ${h}, expected ${want}`);
        seen.set(k, want + 1n);
        confirmedBySenderNonce.add(`${k}:${tx.nonce}`);
      }
    }
    if (fresh.head.hashHex !== ref.head.hashHex || toHex(fresh.stateRoot) !== toHex(ref.stateRoot)) throw new InvariantError(this.o.seed, 'replaying node 0\'s best chain gives another head or state root');

    // Every acknowledged transaction has a fate: confirmed, a conflicting one (same sender and nonce)
    // confirmed instead, or removed with a stated reason on the node that acknowledged it.
    const lost: string[] = [];
    for (const [id, { tx, node }] of this.acknowledged) {
      let fate: TxFate | undefined;
      if (await ref.getTxLocation(id)) fate = 'confirmed';
      else if (confirmedBySenderNonce.has(`${toHex(tx.from)}:${tx.nonce}`)) fate = 'conflict-confirmed';
      else {
        const reasons = this.#removed.get(`${node}:${id}`);
        fate = (['replaced', 'evicted', 'unaffordable', 'stale'] as const).find((r) => reasons?.has(r));
      }
      if (fate) this.#fates[fate]++;
      else {
        const pendingOn = honest.filter((x) => x.node!.mempool.has(id)).map((x) => x.index);
        const removedOn = this.nodes.map((x) => [...(this.#removed.get(`${x.index}:${id}`) ?? [])].map((r) => `${x.index}:${r}`)).flat();
        lost.push(`${id} (${toHex(tx.from).slice(0, 8)} nonce ${tx.nonce}, acknowledged by node ${node}; pending on [${pendingOn.join(',')}]; removed on [${removedOn.join(',')}]; ${this.#abandoned.has(id) ? 'was in an abandoned block' : 'never in an abandoned block'}${this.#ackAfterIoFail.has(id) ? `; acknowledged as a duplicate by node ${node} after its own write of it had failed there` : ''})`);
      }
    }
    if (lost.length) throw new InvariantError(this.o.seed, `${lost.length} acknowledged transaction(s) silently lost (not confirmed, no conflict confirmed, no removal reason), e.g. ${lost[0]}`);
  }
}

function fromHexKey(h: string): Uint8Array { return Uint8Array.from(Buffer.from(h, 'hex')); }
