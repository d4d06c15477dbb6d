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
import { encodeAddress } from '../encoding/address.js';
import { toHex, utf8 } from '../encoding/bytes.js';
import { sha256 } from '../crypto/hash.js';
import { getPublicKey } from '../crypto/ed25519.js';
import { genesisFromJson, DEFAULT_PARAMS, type Genesis } from '../ledger/genesis.js';
import { RuleError } from '../ledger/rules.js';
import { signTx, type Tx } from '../ledger/tx.js';
import { MeshNode } from '../node/node.js';
import type { KeyPair } from '../node/keyfile.js';
import type { BatchOp, KV } from '../storage/kv.js';
import { ManualClock, type Clock, type TimerHandle } from '../util/clock.js';
import { silentLogger, createLogger, type Logger } from '../util/log.js';
import { Prng } from './prng.js';
import { SimNet } from './simnet.js';

export type FaultProfile = 'none' | 'lossy' | 'partition' | 'crash' | 'chaos';
export const FAULT_PROFILES: FaultProfile[] = ['none', 'lossy', 'partition', 'crash', 'chaos'];

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
}

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
  constructor(private readonly db: KV) {}
  kill(): void { this.#alive = false; }
  #gate<T>(op: () => Promise<T>): Promise<T> { return this.#alive ? op() : new Promise<T>(() => {}); }
  get(k: Uint8Array) { return this.#gate(() => this.db.get(k)); }
  getMany(k: Uint8Array[]) { return this.#gate(() => this.db.getMany(k)); }
  put(k: Uint8Array, v: Uint8Array) { return this.#gate(() => this.db.put(k, v)); }
  del(k: Uint8Array) { return this.#gate(() => this.db.del(k)); }
  batch(ops: BatchOp[]) { return this.#gate(() => this.db.batch(ops)); }
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
}

export interface SimResult {
  seed: number;
  traceHash: string;
  heads: { height: number; hash: string; stateRoot: string }[];
  slots: number;
  realMs: number;
  slotsPerSecond: number;
  txs: { submitted: number; acknowledged: number; confirmed: number; rejected: number };
  faults: { crashes: number; partitions: number; framesDropped: number };
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
  #trace: Uint8Array = new Uint8Array(32);
  #nextNonce = new Map<string, bigint>();
  readonly acknowledged = new Map<string, Tx>();
  #stats = { submitted: 0, rejected: 0, crashes: 0, partitions: 0, reorgs: 0 };

  constructor(opts: SimOptions) {
    this.o = { slotMs: 1000, load: 2, drainSlots: 30, log: false, ...opts };
    this.rng = new Prng(opts.seed);
    const genesisTime = 1_800_000_000_000;
    this.clock = new ManualClock(genesisTime - 500);
    this.net = new SimNet(this.clock, this.rng.fork());
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
      this.nodes.push({ index: i, addr: `ws://node${i}.sim:30400`, key: validators[i]!, nodeKey: key('node', i), db: undefined as unknown as KV, node: undefined, clock: undefined, store: undefined, crashes: 0 });
    }
  }

  #traceEvent(s: string): void {
    this.#trace = sha256(new Uint8Array([...this.#trace, ...utf8(s)]));
  }

  async #start(n: SimNodeState): Promise<void> {
    if (!n.db) {
      const { openMemory } = await import('../storage/kv.js');
      n.db = await openMemory();
    }
    n.clock = new NodeClock(this.clock);
    n.store = new NodeStore(n.db);
    const store = n.store;
    n.node = await MeshNode.start(
      { datadir: `/sim/${n.index}`, genesis: this.genesis, key: n.key, p2p: { host: 'sim', port: 30400 }, advertise: n.addr, bootnodes: n.index === 0 ? [] : [this.nodes[0]!.addr] },
      { log: this.log.child({ node: n.index }), clock: n.clock, random: this.rng.fork(), openStore: async () => store, transport: this.net.transport(n.addr), nodeKey: n.nodeKey },
    );
    const node = n.node;
    node.chain.on('chain:head', ({ head, disconnected }) => {
      if (disconnected.length) this.#stats.reorgs++;
      this.#traceEvent(`${this.clock.now()}|${n.index}|${head.height}|${head.hashHex}`);
    });
  }

  async #crash(n: SimNodeState): Promise<void> {
    if (!n.node) return;
    this.log.info('crash', { node: n.index });
    this.#traceEvent(`${this.clock.now()}|crash|${n.index}`);
    n.clock!.kill();
    n.store!.kill();
    n.node.producer?.stop();
    await this.net.transport(n.addr).close();
    n.node = undefined;
    n.crashes++;
    this.#stats.crashes++;
  }

  /** Let every promise and immediate that the last timer set off run (deterministically). */
  async #settle(): Promise<void> {
    for (let i = 0; i < 6; i++) await new Promise<void>((r) => setImmediate(r));
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

  async #submit(): Promise<void> {
    const up = this.nodes.filter((n) => n.node);
    if (!up.length) return;
    const from = this.rng.pick(this.accounts);
    const to = this.rng.pick(this.accounts);
    const k = from.address;
    const nonce = this.#nextNonce.get(k) ?? 0n;
    const kind = this.rng.int(20);
    // Mostly valid transfers; some invalid ones that must be rejected and never confirmed.
    const chainId = kind === 0 ? 'another-chain' : this.genesis.chainId;
    const fee = kind === 1 ? 0n : 1n + BigInt(this.rng.int(5));
    const tx = signTx({ chainId, from: from.publicKey, to: to.publicKey, amount: 1n + BigInt(this.rng.int(1000)), fee, nonce, memo: '' }, from.secretKey);
    const target = this.rng.pick(up);
    this.#stats.submitted++;
    try {
      await target.node!.mempool.add(tx);
      if (kind <= 1) throw new InvariantError(this.o.seed, `node ${target.index} acknowledged an invalid transaction (${kind === 0 ? 'wrong chain' : 'zero fee'})`);
      this.acknowledged.set(tx.idHex, tx);
      this.#nextNonce.set(k, nonce + 1n);
    } catch (e) {
      if (e instanceof InvariantError) throw e;
      if (!(e instanceof RuleError)) throw e;
      this.#stats.rejected++;
    }
  }

  async #injectFaults(slot: number, faultEnd: number): Promise<void> {
    const prof = this.o.faults;
    if (prof === 'none' || slot >= faultEnd) return;
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
      if (n.node) await this.#crash(n);
    }
    if (prof === 'crash' || chaos) {
      for (const n of this.nodes) if (!n.node && this.rng.chance(0.3)) await this.#start(n);
    }
  }

  /** Run the whole scenario and check the invariants. Throws InvariantError on a violation. */
  async run(): Promise<SimResult> {
    const started = performance.now();
    for (const n of this.nodes) await this.#start(n);
    const g = this.genesis;
    const faultEnd = Math.max(0, this.o.slots - this.o.drainSlots);
    const loadEnd = Math.max(0, this.o.slots - Math.floor(this.o.drainSlots / 2));
    await this.#runUntil(g.genesisTime + this.o.slots * this.o.slotMs, async (slot) => {
      if (slot === faultEnd) {
        this.net.heal();
        this.net.clearLinkFaults();
        for (const n of this.nodes) if (!n.node) await this.#start(n);
      }
      await this.#injectFaults(slot, faultEnd);
      if (slot < loadEnd) for (let i = 0; i < this.o.load; i++) await this.#submit();
      await this.#checkForkChoice();
      if (slot % 10 === 0) await this.#checkRunning();
    });
    await this.#checkFinal();
    const realMs = performance.now() - started;
    const heads = await Promise.all(this.nodes.map(async (n) => ({ height: n.node!.chain.head.height, hash: n.node!.chain.head.hashHex, stateRoot: toHex(n.node!.chain.stateRoot) })));
    const confirmed = await this.#confirmedCount();
    const result: SimResult = {
      seed: this.o.seed, traceHash: toHex(this.#trace), heads, slots: this.o.slots, realMs, slotsPerSecond: this.o.slots / (realMs / 1000),
      txs: { submitted: this.#stats.submitted, acknowledged: this.acknowledged.size, confirmed, rejected: this.#stats.rejected },
      faults: { crashes: this.#stats.crashes, partitions: this.#stats.partitions, framesDropped: this.net.framesDropped }, reorgs: this.#stats.reorgs,
    };
    for (const n of this.nodes) { n.clock?.kill(); n.node?.producer?.stop(); }
    return result;
  }

  /** Invariants that hold at every moment on every running node. */
  async #checkRunning(): Promise<void> {
    for (const n of this.nodes) {
      if (!n.node) continue;
      const c = n.node.chain;
      const audit = await c.auditSupply();
      if (audit.supply !== this.genesis.totalSupply) throw new InvariantError(this.o.seed, `node ${n.index}: supply ${audit.supply} ≠ genesis supply ${this.genesis.totalSupply} at height ${c.head.height}`);
      if (audit.root !== toHex(c.stateRoot)) throw new InvariantError(this.o.seed, `node ${n.index}: stored accounts do not match the state root at height ${c.head.height}`);
    }
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
          if (better) throw new InvariantError(this.o.seed, `node ${n.index}: head ${head.hashHex.slice(0, 12)} at ${head.height} while tip ${t.hashHex.slice(0, 12)} at ${t.height} is better by the fork-choice rule`);
        }
      });
    }
  }

  /** After the drain: one chain, equal roots, every acknowledged transaction confirmed, nothing invalid on chain. */
  async #checkFinal(): Promise<void> {
    await this.#checkRunning();
    const heads = this.nodes.map((n) => n.node!.chain.head);
    const minH = Math.min(...heads.map((h) => h.height));
    const at = Math.max(0, minH - 1);
    const hashes = new Set(this.nodes.map((n) => n.node!.chain.mainHashAt(at)));
    if (hashes.size !== 1) throw new InvariantError(this.o.seed, `nodes did not converge: ${hashes.size} different blocks at height ${at} (heads ${heads.map((h) => h.height).join(',')})`);
    const ref = this.nodes[0]!.node!.chain;
    const minProgress = Math.floor(this.o.slots / 4);
    if (minH < minProgress) throw new InvariantError(this.o.seed, `chain not live: min height ${minH} after ${this.o.slots} slots`);
    const lost: string[] = [];
    for (const [id] of this.acknowledged) if (!(await ref.getTxLocation(id))) lost.push(id);
    if (lost.length) throw new InvariantError(this.o.seed, `${lost.length} acknowledged transaction(s) never confirmed, e.g. ${lost[0]}`);
    // Nonces on the final chain are sequential per sender: every confirmed tx nonce equals its position.
    const seen = new Map<string, bigint>();
    for (let h = 1; h <= ref.head.height; h++) {
      const b = (await ref.getBlockAt(h))!;
      for (const tx of b.txs) {
        if (tx.chainId !== this.genesis.chainId) throw new InvariantError(this.o.seed, `foreign-chain tx ${tx.idHex} at height ${h}`);
        const k = toHex(tx.from);
        const want = seen.get(k) ?? 0n;
        if (tx.nonce !== want) throw new InvariantError(this.o.seed, `nonce ${tx.nonce} of ${k.slice(0, 8)} at height ${h}, expected ${want}`);
        seen.set(k, want + 1n);
      }
    }
  }

  async #confirmedCount(): Promise<number> {
    const ref = this.nodes[0]!.node!.chain;
    let n = 0;
    for (const [id] of this.acknowledged) if (await ref.getTxLocation(id)) n++;
    return n;
  }
}
