/**
 * The chain: adds blocks, runs fork choice over them, and switches the head; the node wires its events to
 * the mempool, the network and RPC. Its parts, each in its own module:
 *   blockcheck.ts  what a block must pass before it is stored;
 *   forkchoice.ts  the fork-choice rule (pure): best tip, branch and fork point, locators;
 *   blockindex.ts  the in-memory block index: entries, children, tips, invalid marks, best chain;
 *   store.ts       the keyspaces it writes and the reads RPC uses (accounts, blocks, indexes, undo);
 *   headswitch.ts  one head switch's state and the invariants it must keep;
 *   evidence.ts    equivocation: found among stored blocks, or taken from peers;
 *   warmup.ts      leaf warm-up for blocks expected next.
 *
 * Switching heads (a plain extension is the 1-block case of a reorg):
 *   1. find the fork point between the current head and the target;
 *   2. in an in-memory overlay, undo the abandoned blocks (per-block undo data) and apply the new ones,
 *      validating every transaction and every state root on the way;
 *   3. if any new block fails, mark it and its descendants invalid, commit nothing, and choose again;
 *   4. otherwise assert the switch's invariants, then write accounts, indexes, undo data, state lattice and
 *      head in ONE atomic batch.
 * So no chain containing an invalid block is ever adopted, however long, and a crash at any moment leaves
 * the database at a valid head with a matching state root. An invariant that fails inside a mutating operation halts the chain before anything of it is written:
 * that operation and every later one reject with the same InvariantViolation, and 'chain:halted' tells the
 * node to stop. A block that breaks a rule (RuleError) is bad input, not a violation: it is rejected.
 *
 * Concurrency: mutating public methods take the mutex (#mutate); private # methods assume it is held.
 *
 * Longer than 500 lines because block addition, the head switch and their failure paths (most of the file)
 * share the class's private state with the queries; the queries are one-line delegations to the index and
 * the store, the part that could move out (as src/rpc/views.ts builds explorers' views on them).
 */
import { bytesEqual, toHex } from '../encoding/bytes.js';
import { InlineVerifier, type SignatureVerifier } from '../crypto/ed25519.js';
import { SigCache } from '../crypto/sigcache.js';
import { genesisBlock, type Block, type BlockHeader } from '../ledger/block.js';
import type { Genesis } from '../ledger/genesis.js';
import { RuleError } from '../ledger/rules.js';
import { applyBlockTxs, blockAccounts, EMPTY_ACCOUNT, type Account, type AccountKey } from '../ledger/state.js';
import { changedLeafPairs, leavesFor, StateLattice, type LeafHasher } from '../ledger/statehash.js';
import type { Tx } from '../ledger/tx.js';
import type { BatchOp, KV } from '../storage/kv.js';
import { defined, InvariantViolation } from '../util/assert.js';
import { systemClock, type Clock } from '../util/clock.js';
import { TypedEmitter } from '../util/events.js';
import { LruMap, LruSet } from '../util/lru.js';
import { Mutex } from '../util/mutex.js';
import { silentLogger, type Logger } from '../util/log.js';
import { checkHeaderAlone, checkOnParent, checkOrphan, checkStateless, type Verdict } from './blockcheck.js';
import { BlockIndex } from './blockindex.js';
import { checkEvidence, equivocationEvent, equivocationWith } from './evidence.js';
import { bestTip, branchTo, locator, locatorForkPoint } from './forkchoice.js';
import { SwitchState } from './headswitch.js';
import { blockOps, ChainStore, evidenceOps, headOps, heightOp, indexTxOps, invalidOp, undoOp, unlinkOps } from './store.js';
import { ChainError, type AddResult, type BlockEntry, type ChainEvents, type HistoryEntry, type HistoryPosition, type TxLocation } from './types.js';
import { LeafWarmup } from './warmup.js';

export { betterHead } from './forkchoice.js';
export { decodeAccount } from './store.js';
export { ChainError } from './types.js';
export type { AddResult, AddStatus, BlockEntry, ChainEvents, HistoryEntry, HistoryPosition, ReorgEvent, TxLocation } from './types.js';

export interface ChainOptions {
  db: KV;
  genesis: Genesis;
  clock?: Clock;
  verifier?: SignatureVerifier;
  sigCache?: SigCache;
  /** Where state-lattice leaves missing from the cache are computed in bulk (a worker pool); default inline. */
  leafHasher?: LeafHasher;
  log?: Logger;
}

export class Chain extends TypedEmitter<ChainEvents> {
  readonly genesis: Genesis;
  readonly db: KV;
  readonly clock: Clock;
  readonly verifier: SignatureVerifier;
  readonly sigCache: SigCache;
  readonly #leafHasher: LeafHasher | undefined;
  /** Where missing state-lattice leaves are computed in bulk (block producers use it too), if anywhere. */
  get leafHasher(): LeafHasher | undefined { return this.#leafHasher; }
  readonly log: Logger;

  readonly #lock = new Mutex();
  readonly #index = new BlockIndex();
  readonly #store: ChainStore;
  readonly #warmup: LeafWarmup;
  /** Never-stored blocks that failed a check, by block hash (see blockcheck.ts on what the hash covers). */
  readonly #rejected = new LruSet<string>(10_000);
  readonly #invalidCause = new LruMap<string, RuleError>(1024); // the full error behind an 'i' mark (this process)
  /** The operations storing the block being added, until a batch has carried them (#write). */
  #unstored: BatchOp[] | null = null;
  /** State-lattice leaves block application had to compute itself (not found cached or warmed up). */
  leavesComputed = 0;
  #head: BlockEntry;
  #lattice: StateLattice;
  readonly #genesisBlock: Block;
  #halted: InvariantViolation | undefined;

  private constructor(opts: ChainOptions) {
    super();
    this.genesis = opts.genesis;
    this.db = opts.db;
    this.clock = opts.clock ?? systemClock;
    this.verifier = opts.verifier ?? new InlineVerifier();
    this.sigCache = opts.sigCache ?? new SigCache();
    this.#leafHasher = opts.leafHasher;
    this.log = opts.log ?? silentLogger;
    this.#lattice = genesisLattice(this.genesis);
    this.#genesisBlock = genesisBlock(this.genesis, this.#lattice.root());
    const g = this.#genesisBlock.header;
    this.#head = { hash: g.hash, hashHex: g.hashHex, height: 0, slot: 0, parentHex: toHex(g.parentHash) };
    this.#store = new ChainStore(this.db, this.#genesisBlock);
    this.#warmup = new LeafWarmup((keys, bytes) => this.#store.getAccounts(keys, bytes), this.#leafHasher);
  }

  /** Open (or initialise) the chain in `db`. Refuses a datadir that belongs to another genesis. */
  static async open(opts: ChainOptions): Promise<Chain> {
    const c = new Chain(opts);
    await c.#init();
    return c;
  }

  get head(): BlockEntry { return this.#head; }
  get genesisHash(): string { return this.#genesisBlock.header.hashHex; }
  get stateRoot(): Uint8Array { return this.#lattice.root(); }
  /** The invariant violation that halted the chain, if one did (see 'chain:halted'). */
  get halted(): InvariantViolation | undefined { return this.#halted; }

  async #init(): Promise<void> {
    const stored = await this.#store.open(this.genesis, this.#lattice, this.log);
    this.#index.load(stored.entries, stored.invalid);
    const head = this.#index.get(toHex(stored.tip));
    if (!head) throw new ChainError('head block is not in the block index');
    this.#index.setBest(head, this.genesisHash);
    this.#head = head;
    this.#lattice = stored.lattice;
    // The stored lattice must commit to exactly the head's state root: catches any torn state.
    const headBlock = await this.getBlock(head.hashHex);
    if (!headBlock || !bytesEqual(this.#lattice.root(), headBlock.header.stateRoot)) {
      throw new ChainError('state lattice does not match the head block\'s state root (database corrupted?)');
    }
    this.log.info('chain opened', { height: head.height, head: head.hashHex, blocks: this.#index.size });
  }

  // ---------------------------------------------------------------- queries

  hasBlock(hashHex: string): boolean { return this.#index.has(hashHex); }
  /** Known branch tips that are not (descendants of) invalid blocks: the fork-choice candidates. */
  tips(): BlockEntry[] { return [...this.#index.tips()]; }
  isInvalid(hashHex: string): string | undefined { return this.#index.invalidRule(hashHex) ?? (this.#rejected.has(hashHex) ? 'known_invalid' : undefined); }
  entry(hashHex: string): BlockEntry | undefined { return this.#index.get(hashHex); }
  mainHashAt(height: number): string | undefined { return this.#index.bestAt(height); }
  isOnMain(hashHex: string): boolean { return this.#index.isOnBest(hashHex); }
  /** The indexed blocks at `height` on every branch, valid or not (an explorer's block tree). */
  blocksAt(height: number): BlockEntry[] { return this.#index.atHeight(height); }
  getBlock(hashHex: string): Promise<Block | undefined> { return this.#store.getBlock(hashHex); }

  /**
   * The stored encodings of indexed blocks, in order (undefined for unknown ones), read in one go without
   * decoding: what a node serving sync sends.
   */
  getBlockBytes(hashes: readonly string[]): Promise<(Uint8Array | undefined)[]> {
    return this.#store.getBlockBytes(hashes, (h) => this.#index.has(h));
  }

  async getBlockAt(height: number): Promise<Block | undefined> {
    const h = this.#index.bestAt(height);
    return h === undefined ? undefined : this.getBlock(h);
  }

  async getHeader(hashHex: string): Promise<BlockHeader | undefined> {
    return (await this.getBlock(hashHex))?.header;
  }

  async getAccount(publicKey: Uint8Array): Promise<Account> {
    const k = toHex(publicKey);
    return (await this.getAccounts([k], new Map([[k, publicKey]]))).get(k) ?? EMPTY_ACCOUNT;
  }

  /** The head state's accounts by key, absent ones left out; `bytes` may hold the keys' bytes already. */
  getAccounts(keys: readonly AccountKey[], bytes?: ReadonlyMap<AccountKey, Uint8Array>): Promise<Map<AccountKey, Account>> {
    return this.#store.getAccounts(keys, bytes);
  }

  getTxLocation(idHex: string): Promise<TxLocation | undefined> { return this.#store.getTxLocation(idHex); }

  /** Stored equivocation evidence, by slot: each header signed by a validator that signed two for its slot. */
  equivocationHeaders(limit: number): Promise<{ slot: number; proposer: Uint8Array; hashHex: string; bytes: Uint8Array }[]> {
    return this.#store.equivocationHeaders(limit);
  }

  /** An account's transfers on the best chain, newest first, paged by cursor (ChainStore.accountHistory). */
  accountHistory(publicKey: Uint8Array, o: { limit: number; direction?: 'sent' | 'received' | 'both'; cursor?: HistoryPosition }): Promise<{ entries: HistoryEntry[]; next: HistoryPosition | null }> {
    return this.#store.accountHistory(publicKey, o, (height) => this.getBlockAt(height));
  }

  /** Sum of all balances, by scanning the account keyspace (tests and audits; O(accounts)). */
  auditSupply(): Promise<{ supply: bigint; accounts: number; root: string }> { return this.#store.auditSupply(); }

  /** Leaves a likely next block will need, computed in idle time (LeafWarmup.warmLeaves); returns how many. */
  warmLeaves(candidates: readonly Tx[], proposer: Uint8Array, proceed: () => boolean = () => true, chunk = 256): Promise<number> {
    return this.#warmup.warmLeaves(candidates, proposer, proceed, chunk);
  }

  /** Sync's look-ahead: `block` comes right after the one being added (LeafWarmup.expectNext; memoisation only). */
  expectNext(block: Block | undefined): void {
    this.#warmup.expectNext(block);
  }

  /**
   * Run `fn` with the head, a copy of its state lattice and account reads that cannot interleave with a
   * head switch (block producers build on a consistent snapshot).
   */
  withHead<T>(fn: (head: BlockEntry, lattice: StateLattice) => Promise<T>): Promise<T> {
    return this.#lock.run(() => fn(this.#head, this.#lattice.clone()));
  }

  // ---------------------------------------------------------------- sync helpers (P2P)

  /** Block locator: best-chain hashes at heights head, head-1, head-2, head-4, … , 0 (forkchoice.locator). */
  locator(): string[] { return locator(this.#index.best); }

  /** The highest locator entry that is on our best chain (the fork point with the peer). */
  forkPoint(peerLocator: readonly string[]): BlockEntry {
    const h = locatorForkPoint(peerLocator, this.#index.best, (x) => this.#index.get(x)?.height);
    return defined(this.#index.get(h), () => `fork point ${h} is not indexed`);
  }

  // ---------------------------------------------------------------- mutations

  /** Validate and store a block, then run fork choice. Throws RuleError if the block is invalid. */
  addBlock(block: Block): Promise<AddResult> {
    return this.#mutate(() => this.#addBlock(block));
  }

  /**
   * Apply fork choice to the stored blocks now. A stored block whose head switch never completed (a failed
   * write, or a crash between storing the block and switching to it) may be a better tip than the stored
   * head; the node calls this once its subsystems listen to the chain's events (so that the mempool hears of
   * any block this abandons), instead of waiting for the next block, which for an isolated node may never
   * come. open() does not do it for that reason: nobody listens yet.
   */
  reconsider(): Promise<void> {
    return this.#mutate(() => this.#chooseHead());
  }

  /**
   * Equivocation evidence from a peer: two headers signed by the slot's validator for the same slot. Checked
   * without any state (chain, schedule, both signatures). Returns 'known' if both were on record already.
   */
  addEvidence(a: BlockHeader, b: BlockHeader): Promise<'new' | 'known'> {
    return this.#mutate(() => this.#addEvidence(a, b));
  }

  async close(): Promise<void> {
    await this.#lock.run(async () => { await this.verifier.close(); });
  }

  /** Run a mutation under the lock; a halted chain refuses it, and an invariant violation halts the chain. */
  #mutate<T>(work: () => Promise<T>): Promise<T> {
    return this.#lock.run(async () => {
      if (this.#halted) throw this.#halted;
      try {
        return await work();
      } catch (e) {
        if (e instanceof InvariantViolation) this.#halt(e);
        throw e;
      }
    });
  }

  #halt(error: InvariantViolation): void {
    this.#halted = error;
    this.log.error('chain halted: an invariant failed; nothing of the operation was written', { error: error.message, head: this.#head.hashHex, height: this.#head.height });
    this.emit('chain:halted', { error });
  }

  /** Write a batch, with the block that #addBlock has indexed but not yet stored, if any (see there). */
  async #write(ops: BatchOp[]): Promise<void> {
    const pending = this.#unstored;
    if (pending) for (const op of pending) ops.push(op);
    await this.#store.write(ops);
    if (pending && this.#unstored === pending) this.#unstored = null;
  }

  async #addBlock(block: Block): Promise<AddResult> {
    const h = block.header;
    const hashHex = h.hashHex;
    if (this.#index.has(hashHex)) {
      const bad = this.#index.invalidRule(hashHex);
      if (bad) throw new RuleError('known_invalid', `block ${hashHex} was found invalid (${bad})`);
      // A stored block whose head switch failed earlier (a failed write) gets another chance here.
      if (this.#bestTip() !== this.#head) await this.#chooseHead();
      return { status: 'duplicate', hash: hashHex };
    }
    if (this.#rejected.has(hashHex)) throw new RuleError('known_invalid', `block ${hashHex} was rejected before`);

    const stateless = checkStateless(block, this.genesis);
    if (stateless) this.#refuse(hashHex, stateless);
    const parent = this.#index.get(toHex(h.parentHash));
    if (!parent) { // kept by the network until its parent comes, so first checked as far as it can be alone
      const orphan = await checkOrphan(block, this.clock.now(), this.genesis, this.verifier, this.sigCache);
      if (orphan) this.#refuse(hashHex, orphan);
      return { status: 'orphan', hash: hashHex, parent: toHex(h.parentHash) };
    }
    const parentBad = this.#index.invalidRule(parent.hashHex);
    if (parentBad) this.#refuse(hashHex, { error: new RuleError('invalid_parent', `parent ${parent.hashHex} is invalid (${parentBad})`), remember: true });
    const verdict = await checkOnParent(block, parent, this.clock.now(), this.genesis, this.verifier, this.sigCache);
    if (verdict) this.#refuse(hashHex, verdict);

    // Statically valid: store it (any branch) and index it. The block goes into the first batch written
    // from here on (#write): when it extends the best chain, the head switch's batch, so block, state and head
    // land in one write; otherwise (a side branch) a batch of its own. A second block for a slot is an
    // equivocation: its evidence goes into the SAME batch as the block, so no crash or failed write can keep
    // the block and lose the evidence (a later copy of a stored block is only a duplicate; simulator seed
    // 69920971).
    const entry: BlockEntry = { hash: h.hash, hashHex, height: h.height, slot: h.slot, parentHex: parent.hashHex };
    const evidence = await equivocationWith(block, this.#index.othersAtSlot(h.slot, hashHex), (x) => this.getBlock(x));
    const store: BatchOp[] = [...blockOps(block), ...evidenceOps(evidence)];
    this.#store.cacheBlock(block);
    this.#index.add(entry);
    this.#unstored = store;
    const before = this.#head;
    try {
      await this.#chooseHead();
      if (this.#unstored === store) await this.#write([]);
    } catch (e) {
      if (this.#unstored === store) {
        this.#unstored = null;
        // A violation writes nothing more: the block is forgotten with the rest of the operation.
        // Otherwise the batch that was to carry the block failed: store the block alone (a head switch that
        // failed is tried again with the next block, or at the next start); if even that fails, forget the
        // block, as if it had never arrived.
        let stored = !(e instanceof InvariantViolation);
        if (stored) {
          try {
            await this.#store.write(store);
          } catch {
            stored = false;
          }
        }
        if (!stored) {
          this.#index.remove(entry);
          this.#store.uncacheBlock(hashHex);
        }
        if (stored && evidence.length) this.#announceEquivocation(evidence);
      }
      throw e;
    }
    if (evidence.length) this.#announceEquivocation(evidence);

    const bad2 = this.#index.invalidRule(hashHex);
    if (bad2) {
      const cause = this.#invalidCause.get(hashHex);
      throw new RuleError(bad2 as RuleError['rule'], `block ${hashHex} failed state validation${cause ? ` (${cause.message})` : ''}`, { index: cause?.index, inner: cause?.inner });
    }
    if (this.#head === before) return { status: 'side', hash: hashHex };
    return { status: this.#index.bestAt(before.height) === before.hashHex ? 'connected' : 'reorganized', hash: hashHex };
  }

  /**
   * Check a header before its body is assembled (a compact block): its own rules, the clock, its signature.
   * Throws the RuleError, remembering the hash unless the failure may pass later (future_slot).
   */
  async checkHeader(h: BlockHeader): Promise<void> {
    if (this.#rejected.has(h.hashHex)) throw new RuleError('known_invalid', `block ${h.hashHex} was rejected before`);
    const v = await checkHeaderAlone(h, this.clock.now(), this.genesis, this.verifier, this.sigCache);
    if (v) this.#refuse(h.hashHex, v);
  }

  /** Throw a verdict's error, remembering the block as invalid if the verdict says so. */
  #refuse(hashHex: string, v: Verdict): never {
    if (v.remember) this.#reject(hashHex, v.error);
    throw v.error;
  }

  async #addEvidence(a: BlockHeader, b: BlockHeader): Promise<'new' | 'known'> {
    await checkEvidence(a, b, this.genesis, this.verifier);
    if (await this.#store.hasEvidence([a, b])) return 'known';
    await this.#store.write(evidenceOps([a, b]));
    this.#announceEquivocation([a, b]);
    return 'new';
  }

  #reject(hashHex: string, e: RuleError): void {
    this.#rejected.add(hashHex);
    this.emit('block:invalid', { hash: hashHex, rule: e.rule, message: e.message });
  }

  /** Log and announce stored equivocation evidence (its headers, the first one the block just seen). */
  #announceEquivocation(headers: BlockHeader[]): void {
    const e = equivocationEvent(headers as [BlockHeader, ...BlockHeader[]]);
    this.log.warn('equivocation: validator signed two blocks for one slot', { slot: e.slot, proposer: e.proposer, blocks: e.hashes });
    this.emit('chain:equivocation', e);
  }

  #bestTip(): BlockEntry {
    return bestTip(this.#head, this.#index.tips());
  }

  async #chooseHead(): Promise<void> {
    for (;;) {
      const target = this.#bestTip();
      if (target === this.#head) return;
      const ok = await this.#switchTo(target);
      if (ok) return; // a successful switch reached the best tip
    }
  }

  /** Try to make `target` the head. Returns false if a block on the way was invalid (now marked). */
  async #switchTo(target: BlockEntry): Promise<boolean> {
    const oldHead = this.#head;
    const { fork, connect } = branchTo(target, this.#index.best, (h) => this.#index.get(h));
    const s = new SwitchState(this.#lattice.clone(), (keys, bytes) => this.#store.getAccounts(keys, bytes));
    const ops: BatchOp[] = [];
    const disconnected: Block[] = [];
    const connected: Block[] = [];
    const blockAt = async (hashHex: string): Promise<Block> => defined(await this.getBlock(hashHex), () => `indexed block ${hashHex} is not stored`);

    // 1. Undo best-chain blocks above the fork point, newest first.
    for (let height = oldHead.height; height > fork.height; height--) {
      const block = await blockAt(defined(this.#index.bestAt(height), () => `best chain has no block at height ${height}`));
      const accounts = blockAccounts(block.txs, block.header.proposer);
      const undo = await this.#store.readUndo(block.header.hash);
      await s.load(undo.map((u) => u[0]), new Map(undo.map((u) => [u[0], u[2]])));
      const parent = await blockAt(toHex(block.header.parentHash));
      s.disconnect(block, accounts, undo, parent.header.stateRoot);
      ops.push(...unlinkOps(block));
      indexTxOps(ops, block, 'del', accounts);
      disconnected.push(block);
    }

    // 2. Apply the new branch, oldest first, validating everything.
    for (const entry of connect) {
      const block = await blockAt(entry.hashHex);
      const accounts = blockAccounts(block.txs, block.header.proposer);
      await s.load(accounts.keys, accounts.bytes);
      try {
        const pre = s.pre(accounts);
        const { post } = applyBlockTxs(pre, block.txs, block.header.proposer, accounts);
        await this.#warmup.settle(entry.hashHex); // its leaves are this block's: do not compute them twice
        // Old and new leaf of every changed account; the missing ones (a peer's block: its new ones, and old
        // ones not warmed) in one parallel batch.
        const stats = { computed: 0 };
        const leaves = await leavesFor(this.#leafHasher, changedLeafPairs(accounts.keys, pre, post), 64, stats);
        this.leavesComputed += stats.computed;
        s.lattice.replaceLeaves(leaves);
        const root = s.lattice.root();
        if (!bytesEqual(root, block.header.stateRoot)) throw new RuleError('bad_state_root', `computed ${toHex(root)}`);
        s.connect(accounts, post);
        ops.push(undoOp(block, accounts, pre));
      } catch (err) {
        if (!(err instanceof RuleError)) throw err;
        await this.#markInvalid(entry, err);
        return false;
      }
      ops.push(heightOp(entry));
      indexTxOps(ops, block, 'put', accounts);
      connected.push(block);
    }

    // 3. Check the switch as a whole, then one atomic batch: accounts, indexes, undo, lattice, head.
    s.verify(connected.at(-1) ?? await blockAt(target.hashHex));
    s.accountOps(ops);
    ops.push(...headOps(target.hash, s.lattice));
    this.#warmup.beforeWrite(target.hash, s.overlay);
    await this.#write(ops);
    this.#store.committed(s.overlay);
    this.#index.switchBest(fork, connect);
    this.#head = target;
    this.#lattice = s.lattice;

    for (const b of disconnected) this.emit('block:disconnected', b);
    for (const b of connected) this.emit('block:connected', b);
    if (disconnected.length) {
      this.log.warn('chain reorganized', { depth: disconnected.length, forkHeight: fork.height, oldHead: oldHead.hashHex, newHead: target.hashHex });
      this.emit('chain:reorg', { oldHead, newHead: target, forkHeight: fork.height, disconnected, connected });
    }
    this.emit('chain:head', { head: target, connected, disconnected });
    return true;
  }

  /** Mark a stored block and all its known descendants invalid (persisted), and fix up the tips. */
  async #markInvalid(entry: BlockEntry, err: RuleError): Promise<void> {
    const marks = this.#index.markInvalid(entry, err.rule);
    await this.#write(marks.map(([h, rule]) => invalidOp(h, rule)));
    this.#invalidCause.set(entry.hashHex, err);
    this.#index.settleParentTip(entry);
    this.log.warn('block failed validation', { hash: entry.hashHex, height: entry.height, rule: err.rule, error: err.message });
    this.emit('block:invalid', { hash: entry.hashHex, rule: err.rule, message: err.message });
  }
}

/** The state lattice of the genesis allocations. */
export function genesisLattice(genesis: Genesis): StateLattice {
  const lattice = new StateLattice();
  for (const a of genesis.alloc) lattice.add(a.publicKey, { balance: a.amount, nonce: 0n });
  return lattice;
}

/** The network's identity: the hash of its genesis block (computable without a database). */
export function genesisHashOf(genesis: Genesis): string {
  return genesisBlock(genesis, genesisLattice(genesis).root()).header.hashHex;
}
