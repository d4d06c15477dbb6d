/**
 * The chain: block store, block index, fork choice and state switching.
 *
 * Fork choice: the longest valid chain (greatest height); at equal height the head whose hash is smaller
 * (byte order) wins. The tie-break depends only on the blocks, so every node that knows the same blocks
 * picks the same head: an evenly split network converges as soon as the halves see each other.
 *
 * Switching heads (a plain extension is the 1-block case of a reorg):
 *   1. find the fork point between the current head and the target;
 *   2. in an in-memory overlay, undo the abandoned blocks (per-block undo data) and apply the new ones,
 *      validating every transaction and every state root on the way;
 *   3. if any new block fails, mark it and its descendants invalid, commit nothing, and choose again;
 *   4. otherwise write accounts, indexes, undo data, state lattice and head in ONE atomic batch.
 * So no chain containing an invalid block is ever adopted, however long, and a crash at any moment leaves
 * the database at a valid head with a matching state root.
 *
 * Concurrency: public methods that mutate take the mutex (`addBlock`), private `_` methods do the work.
 */
import { bytesEqual, compareBytes, fromHex, fromHexTrusted, readSafeU64be, readU32be, toHex, writeU32be, writeU64be } from '../encoding/bytes.js';
import { decodeCanonical, encodeCanonical, expectArray, expectBytes, expectList, expectSafeUint, expectU64 } from '../encoding/canonical.js';
import { InlineVerifier, type SignatureVerifier, type VerifyOptions } from '../crypto/ed25519.js';
import { headerCheckId, SigCache, verifyWithCache } from '../crypto/sigcache.js';
import { blockVerifyItem, checkBlockContext, checkBlockRules, decodeBlock, genesisBlock, headerVerifyItem, type Block, type BlockHeader } from '../ledger/block.js';
import { proposerFor } from '../ledger/schedule.js';
import type { Genesis } from '../ledger/genesis.js';
import { RuleError } from '../ledger/rules.js';
import { applyBlockTxs, applyCandidates, blockAccounts, EMPTY_ACCOUNT, isEmptyAccount, type Account, type AccountKey, type AccountMap, type BlockAccounts } from '../ledger/state.js';
import { changedLeafPairs, leavesFor, StateLattice, type LeafHasher } from '../ledger/statehash.js';
import type { Tx } from '../ledger/tx.js';
import { layout, DB_VERSION } from '../storage/layout.js';
import type { BatchOp, KV } from '../storage/kv.js';
import { systemClock, type Clock } from '../util/clock.js';
import { TypedEmitter } from '../util/events.js';
import { LruMap, LruSet } from '../util/lru.js';
import { Mutex } from '../util/mutex.js';
import { silentLogger, type Logger } from '../util/log.js';

/** What the chain keeps in memory per known block (any branch). */
export interface BlockEntry {
  readonly hash: Uint8Array;
  readonly hashHex: string;
  readonly height: number;
  readonly slot: number;
  readonly parentHex: string;
}

export interface TxLocation {
  blockHash: string;
  height: number;
  index: number;
}

/** A place in an account's history: a transfer's block height and index, and 0 = sent / 1 = received. */
export interface HistoryPosition { readonly height: number; readonly index: number; readonly dir: 0 | 1 }

export interface HistoryEntry {
  height: number;
  index: number;
  direction: 'sent' | 'received';
  blockHash: string;
  tx: Tx;
}

export type AddStatus = 'connected' | 'reorganized' | 'side' | 'duplicate' | 'orphan';

export interface AddResult {
  status: AddStatus;
  hash: string;
  /** For 'orphan': the parent we lack. */
  parent?: string;
}

export interface ReorgEvent {
  oldHead: BlockEntry;
  newHead: BlockEntry;
  forkHeight: number;
  disconnected: Block[];
  connected: Block[];
}

export interface ChainEvents {
  'block:connected': (block: Block) => void;
  'block:disconnected': (block: Block) => void;
  /** After every head switch: the new head and the blocks that left and joined the best chain. */
  'chain:head': (e: { head: BlockEntry; connected: Block[]; disconnected: Block[] }) => void;
  'chain:reorg': (e: ReorgEvent) => void;
  'block:invalid': (e: { hash: string; rule: string; message: string }) => void;
  /** A validator signed two blocks for one slot; `headers` are the signed header bytes (the proof). */
  'chain:equivocation': (e: { slot: number; proposer: string; hashes: string[]; headers: Uint8Array[] }) => void;
}

/** Head-state accounts kept in memory (about 200 B each). */
const ACCOUNT_CACHE = 16_384;
/**
 * Header-only signature checks (a block's header, evidence) go ahead of queued mempool admission. A block's
 * transactions do not: most of them are in that queue already, on their way into the SigCache, and a block
 * jumping it can have them verified twice. On the stepping devnet's 2,000 tx/s step (one run each, same
 * code otherwise) block checks urgent confirmed 1,382 tx/s with 7 blocks in 11 slots; not urgent, 1,736
 * with 11 of 11.
 */
const URGENT: VerifyOptions = { urgent: true };

export class ChainError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChainError';
  }
}

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

/** Fork choice: is `a` a better head than `b`? */
export function betterHead(a: { height: number; hash: Uint8Array }, b: { height: number; hash: Uint8Array }): boolean {
  if (a.height !== b.height) return a.height > b.height;
  return compareBytes(a.hash, b.hash) < 0;
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
  readonly #index = new Map<string, BlockEntry>();
  readonly #children = new Map<string, Set<string>>();
  readonly #tips = new Set<string>();
  readonly #invalid = new Map<string, string>(); // stored blocks found invalid → rule
  readonly #rejected = new LruSet<string>(10_000); // never-stored blocks that failed static checks
  readonly #invalidCause = new LruMap<string, RuleError>(1024); // the full error behind an 'i' mark (this process)
  readonly #bySlot = new Map<number, string[]>();
  readonly #blockCache = new LruMap<string, Block>(256);
  /**
   * The head state's recently read or written accounts (EMPTY_ACCOUNT for absent ones): the accounts a block
   * touches were mostly just read by mempool admission or by the block's own assembly. Coherent with the
   * store: a head switch writes its accounts here right after its batch commits, and a read that was in
   * flight across a switch (#stateGen moved) is not cached, since it may hold the old head's values.
   */
  readonly #accounts = new LruMap<AccountKey, Account>(ACCOUNT_CACHE);
  #stateGen = 0;
  /** The operations storing the block being added, until a batch has carried them (#write). */
  #unstored: BatchOp[] | null = null;
  /** State-lattice leaves block application had to compute itself (not found cached or warmed up). */
  leavesComputed = 0;
  /** The block sync expects to add next (expectNext), and the leaf warm-up started for it (#switchTo). */
  #nextHint: Block | undefined;
  #warming: { hashHex: string; done: Promise<void> } | undefined;
  #main: string[] = []; // best-chain hashes by height
  #head!: BlockEntry;
  #lattice!: StateLattice;
  #genesisBlock!: Block;

  private constructor(opts: ChainOptions) {
    super();
    this.genesis = opts.genesis;
    this.db = opts.db;
    this.clock = opts.clock ?? systemClock;
    this.verifier = opts.verifier ?? new InlineVerifier();
    this.sigCache = opts.sigCache ?? new SigCache();
    this.#leafHasher = opts.leafHasher;
    this.log = opts.log ?? silentLogger;
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

  // ---------------------------------------------------------------- start-up

  async #init(): Promise<void> {
    const lattice = genesisLattice(this.genesis);
    this.#genesisBlock = genesisBlock(this.genesis, lattice.root());
    const g = this.#genesisBlock.header;
    const stored = await this.db.get(layout.genesis());
    if (!stored) {
      const ops: BatchOp[] = [
        { type: 'put', key: layout.version(), value: encodeCanonical(DB_VERSION) },
        { type: 'put', key: layout.genesis(), value: g.hash },
        { type: 'put', key: layout.block(g.hash), value: this.#genesisBlock.bytes },
        { type: 'put', key: layout.entry(g.hash), value: encodeEntry(0, 0, g.parentHash) },
        { type: 'put', key: layout.height(0), value: g.hash },
        { type: 'put', key: layout.lattice(), value: lattice.toBytes() },
        { type: 'put', key: layout.tip(), value: g.hash },
      ];
      for (const a of this.genesis.alloc) ops.push({ type: 'put', key: layout.account(a.publicKey), value: encodeCanonical([a.amount, 0n]) });
      await this.db.batch(ops);
      this.log.info('initialised new chain from genesis', { genesisHash: g.hashHex, chainId: this.genesis.chainId });
    } else if (!bytesEqual(stored, g.hash)) {
      throw new ChainError(`this datadir belongs to the network with genesis ${toHex(stored)}, not ${g.hashHex}; use another --datadir or the matching genesis file`);
    } else {
      const v = await this.db.get(layout.version());
      const version = v ? Number(decodeCanonical(v)) : undefined;
      if (version !== DB_VERSION) {
        throw new ChainError(version !== undefined && version < DB_VERSION
          ? `this datadir holds database format ${version}, written by an older meshledger; this one reads format ${DB_VERSION} only: start with a new --datadir (the node syncs the chain from its peers)`
          : `unsupported database format ${version ?? 'missing'} (this meshledger reads format ${DB_VERSION})`);
      }
    }

    // Block index (all branches) and invalid marks.
    for await (const [k, v] of this.db.iterator(layout.range(layout.prefix('e')))) {
      const hash = k.subarray(1);
      const [height, slot, parent] = decodeEntry(v);
      this.#addEntry({ hash: new Uint8Array(hash), hashHex: toHex(hash), height, slot, parentHex: toHex(parent) });
    }
    for await (const [k, v] of this.db.iterator(layout.range(layout.prefix('i')))) {
      this.#invalid.set(toHex(k.subarray(1)), new TextDecoder().decode(v));
    }
    for (const h of this.#invalid.keys()) this.#tips.delete(h);
    // A valid block whose children are all invalid is a tip again (as #markInvalid arranges at run time).
    for (const h of this.#invalid.keys()) {
      const parent = this.#index.get(h)?.parentHex;
      if (!parent || this.#invalid.has(parent) || !this.#index.has(parent)) continue;
      if ([...(this.#children.get(parent) ?? [])].every((c) => this.#invalid.has(c))) this.#tips.add(parent);
    }

    const tip = await this.db.get(layout.tip());
    const latticeBytes = await this.db.get(layout.lattice());
    if (!tip || !latticeBytes) throw new ChainError('database is missing its head or state lattice');
    const head = this.#index.get(toHex(tip));
    if (!head) throw new ChainError('head block is not in the block index');
    this.#head = head;
    this.#lattice = StateLattice.fromBytes(latticeBytes);
    // Rebuild the best-chain array from the height index, checking it links up.
    const main: string[] = new Array(head.height + 1);
    let e: BlockEntry | undefined = head;
    while (e) {
      main[e.height] = e.hashHex;
      if (e.height === 0) break;
      e = this.#index.get(e.parentHex);
    }
    if (main[0] !== g.hashHex) throw new ChainError('best chain does not lead back to genesis');
    this.#main = main;
    // The stored lattice must commit to exactly the head's state root: catches any torn state.
    const headBlock = await this.getBlock(head.hashHex);
    if (!headBlock || !bytesEqual(this.#lattice.root(), headBlock.header.stateRoot)) {
      throw new ChainError('state lattice does not match the head block\'s state root (database corrupted?)');
    }
    this.log.info('chain opened', { height: head.height, head: head.hashHex, blocks: this.#index.size });
  }

  #addEntry(e: BlockEntry): void {
    this.#index.set(e.hashHex, e);
    if (e.height > 0) {
      let kids = this.#children.get(e.parentHex);
      if (!kids) this.#children.set(e.parentHex, (kids = new Set()));
      kids.add(e.hashHex);
      this.#tips.delete(e.parentHex);
      const same = this.#bySlot.get(e.slot);
      if (same) same.push(e.hashHex);
      else this.#bySlot.set(e.slot, [e.hashHex]);
    }
    if (!this.#children.get(e.hashHex)?.size) this.#tips.add(e.hashHex);
  }

  // ---------------------------------------------------------------- queries

  /** Undo #addEntry for a block whose storing failed (it was the newest entry: it has no children). */
  #removeEntry(e: BlockEntry): void {
    this.#index.delete(e.hashHex);
    this.#tips.delete(e.hashHex);
    const kids = this.#children.get(e.parentHex);
    kids?.delete(e.hashHex);
    if (kids && kids.size === 0) this.#children.delete(e.parentHex);
    // The parent is a tip again unless it is invalid or keeps a valid child (as #markInvalid arranges).
    if (!this.#invalid.has(e.parentHex) && [...(kids ?? [])].every((c) => this.#invalid.has(c))) this.#tips.add(e.parentHex);
    const same = this.#bySlot.get(e.slot);
    if (same) {
      const rest = same.filter((x) => x !== e.hashHex);
      if (rest.length) this.#bySlot.set(e.slot, rest);
      else this.#bySlot.delete(e.slot);
    }
  }

  /** Write a batch, with the block that _addBlock has indexed but not yet stored, if any (see there). */
  async #write(ops: BatchOp[]): Promise<void> {
    const pending = this.#unstored;
    if (pending) for (const op of pending) ops.push(op);
    await this.db.batch(ops);
    if (pending && this.#unstored === pending) this.#unstored = null;
  }

  hasBlock(hashHex: string): boolean { return this.#index.has(hashHex); }
  /** Known branch tips that are not (descendants of) invalid blocks: the fork-choice candidates. */
  tips(): BlockEntry[] { return [...this.#tips].map((h) => this.#index.get(h)!); }
  isInvalid(hashHex: string): string | undefined { return this.#invalid.get(hashHex) ?? (this.#rejected.has(hashHex) ? 'known_invalid' : undefined); }
  entry(hashHex: string): BlockEntry | undefined { return this.#index.get(hashHex); }
  mainHashAt(height: number): string | undefined { return this.#main[height]; }
  isOnMain(hashHex: string): boolean {
    const e = this.#index.get(hashHex);
    return !!e && this.#main[e.height] === hashHex;
  }

  async getBlock(hashHex: string): Promise<Block | undefined> {
    const cached = this.#blockCache.get(hashHex);
    if (cached) return cached;
    if (hashHex === this.#genesisBlock?.header.hashHex) return this.#genesisBlock;
    const bytes = await this.db.get(layout.block(fromHexTrusted(hashHex)));
    if (!bytes) return undefined;
    const b = decodeBlock(bytes, Number.MAX_SAFE_INTEGER);
    this.#blockCache.set(hashHex, b);
    return b;
  }

  /**
   * The stored encodings of indexed blocks, in order (undefined for unknown ones), read in one go without
   * decoding: what a node serving sync sends.
   */
  async getBlockBytes(hashes: readonly string[]): Promise<(Uint8Array | undefined)[]> {
    const out: (Uint8Array | undefined)[] = hashes.map((h) => this.#blockCache.peek(h)?.bytes ?? (h === this.#genesisBlock?.header.hashHex ? this.#genesisBlock.bytes : undefined));
    const missing = hashes.map((h, i) => [h, i] as const).filter(([h, i]) => out[i] === undefined && this.#index.has(h));
    if (missing.length) {
      const raw = await this.db.getMany(missing.map(([h]) => layout.block(fromHexTrusted(h))));
      missing.forEach(([, i], j) => { out[i] = raw[j] ?? undefined; });
    }
    return out;
  }

  async getBlockAt(height: number): Promise<Block | undefined> {
    const h = this.#main[height];
    return h === undefined ? undefined : this.getBlock(h);
  }

  async getHeader(hashHex: string): Promise<BlockHeader | undefined> {
    return (await this.getBlock(hashHex))?.header;
  }

  async getAccount(publicKey: Uint8Array): Promise<Account> {
    const k = toHex(publicKey);
    return (await this.getAccounts([k], new Map([[k, publicKey]]))).get(k) ?? EMPTY_ACCOUNT;
  }

  /**
   * The head state's accounts by key; absent accounts are left out of the map. `bytes` may hold the keys'
   * bytes already (else they are decoded from hex).
   */
  async getAccounts(keys: readonly AccountKey[], bytes?: ReadonlyMap<AccountKey, Uint8Array>): Promise<Map<AccountKey, Account>> {
    const m = new Map<AccountKey, Account>();
    const missing: AccountKey[] = [];
    for (const k of keys) {
      const a = this.#accounts.get(k);
      if (a === undefined) missing.push(k);
      else if (a !== EMPTY_ACCOUNT) m.set(k, a);
    }
    if (!missing.length) return m;
    const gen = this.#stateGen;
    const vals = await this.db.getMany(missing.map((k) => layout.account(bytes?.get(k) ?? fromHexTrusted(k))));
    const current = gen === this.#stateGen;
    missing.forEach((k, i) => {
      const v = vals[i];
      const a = v ? decodeAccount(v) : EMPTY_ACCOUNT;
      if (v) m.set(k, a);
      if (current) this.#accounts.set(k, a);
    });
    return m;
  }

  async getTxLocation(idHex: string): Promise<TxLocation | undefined> {
    const v = await this.db.get(layout.tx(fromHex(idHex)));
    if (!v) return undefined;
    if (v.length !== 44) throw new ChainError(`transaction location of ${idHex} is ${v.length} bytes, not 44 (database corrupted?)`);
    return { blockHash: toHex(v.subarray(0, 32)), height: readSafeU64be(v, 32), index: readU32be(v, 40) };
  }

  /**
   * Compute, off the critical path, the state-lattice leaves that a block of `candidates` by `proposer` on
   * the current head would need: the old and the new leaf of every account it changes, walking the
   * candidates as block assembly does (applyCandidates). The node calls this after each head change with
   * its mempool's next-block candidates and the next slot's proposer, whose mempool holds mostly the same
   * transactions: validating that proposer's block then finds its leaves computed, wholly where its
   * transactions are ours, per account where they differ. Pure memoisation of a pure function: no lock, no
   * state; a leaf of a state that changes meanwhile is merely not used. Background work: the leaves go out
   * in chunks of `chunk` pairs, and it stops before any step where `proceed()` says no (the node's answer:
   * the pool has other work, or the head moved). Returns how many leaves it computed.
   */
  async warmLeaves(candidates: readonly Tx[], proposer: Uint8Array, proceed: () => boolean = () => true, chunk = 256): Promise<number> {
    if (candidates.length === 0 || !proceed()) return 0;
    const accounts = blockAccounts(candidates, proposer);
    const pre = await this.getAccounts(accounts.keys, accounts.bytes);
    const post = new Map(pre);
    applyCandidates(post, candidates, accounts);
    const pairs = changedLeafPairs(accounts.keys, pre, post);
    const stats = { computed: 0 };
    for (let i = 0; i < pairs.length && proceed(); i += chunk) await leavesFor(this.#leafHasher, pairs.slice(i, i + chunk), 64, stats);
    return stats.computed;
  }

  /**
   * Sync's look-ahead: `block` is expected to be added right after the block being added now (or next). When
   * the head switch to its parent has computed the new state and is waiting for that state's write, the
   * leaves `block` will need are computed meanwhile (worker pool), from that not-yet-written state: the
   * write and the next block's leaves then overlap instead of following each other. Only memoisation, as
   * warmLeaves: a hint that turns out wrong costs some leaf work and changes no result.
   */
  expectNext(block: Block | undefined): void {
    this.#nextHint = block;
  }

  /** The leaves `block` needs on top of the head state changed by `overlay` (see expectNext). */
  async #warmOnto(overlay: ReadonlyMap<AccountKey, Account>, block: Block): Promise<void> {
    const accounts = blockAccounts(block.txs, block.header.proposer);
    const rest = accounts.keys.filter((k) => !overlay.has(k));
    // Keys the switch did not touch have the same state before and after its write.
    const found = rest.length ? await this.getAccounts(rest, accounts.bytes) : new Map<AccountKey, Account>();
    const pre = new Map<AccountKey, Account>(accounts.keys.map((k) => [k, overlay.get(k) ?? found.get(k) ?? EMPTY_ACCOUNT]));
    const post = new Map(pre);
    applyCandidates(post, block.txs, accounts);
    await leavesFor(this.#leafHasher, changedLeafPairs(accounts.keys, pre, post));
  }

  /** Stored equivocation evidence, by slot: each header signed by a validator that signed two for its slot. */
  async equivocationHeaders(limit: number): Promise<{ slot: number; proposer: Uint8Array; hashHex: string; bytes: Uint8Array }[]> {
    const out: { slot: number; proposer: Uint8Array; hashHex: string; bytes: Uint8Array }[] = [];
    for await (const [k, v] of this.db.iterator({ ...layout.range(layout.prefix('q')), limit })) {
      out.push({ slot: readSafeU64be(k, 1), proposer: k.subarray(9, 41), hashHex: toHex(k.subarray(41, 73)), bytes: v });
    }
    return out;
  }

  /**
   * An account's transfers on the best chain, newest first (by height, then index; a self-transfer is listed
   * received, then sent): at most `limit` of them, only those after `cursor` (a position this method
   * returned as `next`), and `next` if more remain. An entry whose block changed under the read (a reorg
   * between the index and the block) is left out.
   */
  async accountHistory(publicKey: Uint8Array, o: { limit: number; direction?: 'sent' | 'received' | 'both'; cursor?: HistoryPosition }): Promise<{ entries: HistoryEntry[]; next: HistoryPosition | null }> {
    const direction = o.direction ?? 'both';
    const c = o.cursor;
    const range = layout.range(layout.historyPrefix(publicKey));
    const lt = c ? layout.history(publicKey, c.height + 1) : range.lt;
    const entries: HistoryEntry[] = [];
    let last: HistoryPosition | undefined;
    let more = false;
    scan: for await (const [k, v] of this.db.iterator({ gte: range.gte, lt, reverse: true })) {
      const height = readSafeU64be(k, 1 + publicKey.length);
      let block: Block | undefined;
      for (let j = v.length - 5; j >= 0; j -= 5) {
        const index = readU32be(v, j);
        const dir = v[j + 4] === 0 ? 0 : 1;
        if (c && height === c.height && (index > c.index || (index === c.index && dir >= c.dir))) continue;
        const pos = { height, index, dir } as const;
        if (direction !== 'both' && (dir === 0) !== (direction === 'sent')) { last = pos; continue; }
        if (entries.length === o.limit) { more = true; break scan; }
        last = pos;
        block ??= await this.getBlockAt(height);
        const tx = block?.txs[index];
        if (!tx || !bytesEqual(dir === 0 ? tx.from : tx.to, publicKey)) continue;
        entries.push({ height, index, direction: dir === 0 ? 'sent' : 'received', blockHash: block!.header.hashHex, tx });
      }
    }
    return { entries, next: more && last ? last : null };
  }

  /** Sum of all balances, by scanning the account keyspace (tests and audits; O(accounts)). */
  async auditSupply(): Promise<{ supply: bigint; accounts: number; root: string }> {
    let supply = 0n;
    let accounts = 0;
    const lattice = new StateLattice();
    for await (const [k, v] of this.db.iterator(layout.range(layout.prefix('a')))) {
      const a = decodeAccount(v);
      if (isEmptyAccount(a)) throw new ChainError(`empty account stored at ${toHex(k.subarray(1))}`);
      supply += a.balance;
      accounts++;
      lattice.add(k.subarray(1), a);
    }
    return { supply, accounts, root: toHex(lattice.root()) };
  }

  /**
   * Apply fork choice to the stored blocks now. A stored block whose head switch never completed (a failed
   * write, or a crash between storing the block and switching to it) may be a better tip than the stored
   * head; the node calls this once its subsystems listen to the chain's events (so that the mempool hears of
   * any block this abandons), instead of waiting for the next block, which for an isolated node may never
   * come. Found by the simulator (storage faults); doing it inside open() lost the abandoned blocks'
   * transactions, because nobody was listening yet (found by the simulator too).
   */
  reconsider(): Promise<void> {
    return this.#lock.run(() => this.#chooseHead());
  }

  /**
   * Run `fn` with the head, a copy of its state lattice and account reads that cannot interleave with a
   * head switch (block producers build on a consistent snapshot).
   */
  withHead<T>(fn: (head: BlockEntry, lattice: StateLattice) => Promise<T>): Promise<T> {
    return this.#lock.run(() => fn(this.#head, this.#lattice.clone()));
  }

  // ---------------------------------------------------------------- adding blocks

  /** Validate and store a block, then run fork choice. Throws RuleError if the block is invalid. */
  addBlock(block: Block): Promise<AddResult> {
    return this.#lock.run(() => this._addBlock(block));
  }

  private async _addBlock(block: Block): Promise<AddResult> {
    const h = block.header;
    const hashHex = h.hashHex;
    if (this.#index.has(hashHex)) {
      const bad = this.#invalid.get(hashHex);
      if (bad) throw new RuleError('known_invalid', `block ${hashHex} was found invalid (${bad})`);
      // A stored block whose head switch failed earlier (a failed write) gets another chance here.
      if (this.#bestTip() !== this.#head) await this.#chooseHead();
      return { status: 'duplicate', hash: hashHex };
    }
    if (this.#rejected.has(hashHex)) throw new RuleError('known_invalid', `block ${hashHex} was rejected before`);

    try {
      checkBlockRules(block, this.genesis);
    } catch (e) {
      if (e instanceof RuleError) this.#reject(hashHex, e);
      throw e;
    }
    const parent = this.#index.get(toHex(h.parentHash));
    if (!parent) return { status: 'orphan', hash: hashHex, parent: toHex(h.parentHash) };
    const parentBad = this.#invalid.get(parent.hashHex);
    if (parentBad) {
      const e = new RuleError('invalid_parent', `parent ${parent.hashHex} is invalid (${parentBad})`);
      this.#reject(hashHex, e);
      throw e;
    }
    try {
      checkBlockContext(h, parent, this.clock.now(), this.genesis);
    } catch (e) {
      if (e instanceof RuleError && e.rule === 'future_slot') {
        // A block from the future may become valid later, so it is not remembered as invalid; but it must
        // at least be signed by its slot's validator, or anyone could send such blocks without penalty.
        if ((await this.verifier.verifyBatch([blockVerifyItem(block, 0)], URGENT))[0] !== true) {
          const bad = new RuleError('bad_signature', 'block header signature');
          this.#reject(hashHex, bad);
          throw bad;
        }
      } else if (e instanceof RuleError) this.#reject(hashHex, e);
      throw e;
    }
    // The header's check is urgent: it is one signature that no admission or read-ahead check carries for
    // this block, and queued behind them it held up every block (sync: ~30 ms a block behind its own
    // read-ahead). The transactions' checks are not urgent (see URGENT).
    const [headerBad, txBad] = await Promise.all([
      verifyWithCache(this.verifier, this.sigCache, [headerCheckId(hashHex)], () => blockVerifyItem(block, 0), URGENT),
      verifyWithCache(this.verifier, this.sigCache, block.txs.map((t) => t.idHex), (i) => blockVerifyItem(block, i + 1)),
    ]);
    const bad = headerBad !== -1 ? 0 : txBad === -1 ? -1 : txBad + 1;
    if (bad !== -1) {
      const e = bad === 0 ? new RuleError('bad_signature', 'block header signature')
        : new RuleError('bad_tx', `transaction ${bad - 1}: bad_signature`, { index: bad - 1, inner: new RuleError('bad_signature') });
      this.#reject(hashHex, e);
      throw e;
    }

    // Statically valid: store it (any branch) and index it. The block goes into the first batch written
    // from here on (#write): when it extends the best chain, the head switch's batch, so block, state and head
    // land in one write; otherwise (a side branch) a batch of its own. A second block for a slot is an
    // equivocation: its evidence goes into the SAME batch as the block, so no crash or failed write can keep
    // the block and lose the evidence (a later copy of a stored block is only a duplicate; found by the
    // simulator, seed 69920971).
    const entry: BlockEntry = { hash: h.hash, hashHex, height: h.height, slot: h.slot, parentHex: parent.hashHex };
    const evidence = await this.#equivocationWith(block);
    const store: BatchOp[] = [
      { type: 'put', key: layout.block(h.hash), value: block.bytes },
      { type: 'put', key: layout.entry(h.hash), value: encodeEntry(h.height, h.slot, h.parentHash) },
      ...evidence.map((x) => ({ type: 'put' as const, key: layout.evidence(x.slot, x.proposer, x.hash), value: x.bytes })),
    ];
    this.#blockCache.set(hashHex, block);
    this.#addEntry(entry);
    this.#unstored = store;
    const before = this.#head;
    try {
      await this.#chooseHead();
      if (this.#unstored === store) await this.#write([]);
    } catch (e) {
      if (this.#unstored === store) {
        // The batch that was to carry the block failed. Store the block alone (a head switch that failed is
        // tried again with the next block, or at the next start); if even that fails, forget the block, as
        // if it had never arrived.
        this.#unstored = null;
        let stored = true;
        try {
          await this.db.batch(store);
        } catch {
          stored = false;
          this.#removeEntry(entry);
          this.#blockCache.delete(hashHex);
        }
        if (stored && evidence.length) this.#announceEquivocation(evidence);
      }
      throw e;
    }
    if (evidence.length) this.#announceEquivocation(evidence);

    const bad2 = this.#invalid.get(hashHex);
    if (bad2) {
      const cause = this.#invalidCause.get(hashHex);
      throw new RuleError(bad2 as RuleError['rule'], `block ${hashHex} failed state validation${cause ? ` (${cause.message})` : ''}`, { index: cause?.index, inner: cause?.inner });
    }
    if (this.#head === before) return { status: 'side', hash: hashHex };
    return { status: this.#main[before.height] === before.hashHex ? 'connected' : 'reorganized', hash: hashHex };
  }

  #reject(hashHex: string, e: RuleError): void {
    this.#rejected.add(hashHex);
    this.emit('block:invalid', { hash: hashHex, rule: e.rule, message: e.message });
  }

  /** The headers proving an equivocation if `block` is not the only block stored for its slot, else []. */
  async #equivocationWith(block: Block): Promise<BlockHeader[]> {
    const others = (this.#bySlot.get(block.header.slot) ?? []).filter((x) => x !== block.header.hashHex);
    if (others.length === 0) return [];
    const headers: BlockHeader[] = [block.header];
    for (const other of others) {
      const b = await this.getBlock(other);
      if (b) headers.push(b.header);
    }
    return headers.length > 1 ? headers : [];
  }

  /** Both headers together are the evidence (persisted in keyspace 'q' by the caller), logged and announced. */
  #announceEquivocation(headers: BlockHeader[]): void {
    const h = headers[0]!;
    const hashes = headers.map((x) => x.hashHex);
    this.log.warn('equivocation: validator signed two blocks for one slot', { slot: h.slot, proposer: toHex(h.proposer), blocks: hashes });
    this.emit('chain:equivocation', { slot: h.slot, proposer: toHex(h.proposer), hashes, headers: headers.map((x) => x.bytes) });
  }

  /**
   * Equivocation evidence from a peer: two headers signed by the slot's validator for the same slot. Checked
   * without any state (chain, schedule, both signatures). Returns 'known' if both were on record already.
   */
  addEvidence(a: BlockHeader, b: BlockHeader): Promise<'new' | 'known'> {
    return this.#lock.run(async () => {
      if (a.hashHex === b.hashHex || a.slot !== b.slot || !bytesEqual(a.proposer, b.proposer)) {
        throw new RuleError('malformed', 'evidence must be two different headers of one proposer for one slot');
      }
      for (const x of [a, b]) {
        if (x.chainId !== this.genesis.chainId) throw new RuleError('wrong_chain', `evidence header for chain "${x.chainId}"`);
        if (!bytesEqual(x.proposer, proposerFor(this.genesis, x.slot))) throw new RuleError('wrong_proposer', `slot ${x.slot} does not belong to this proposer`);
      }
      const ok = await this.verifier.verifyBatch([headerVerifyItem(a), headerVerifyItem(b)], URGENT);
      if (!ok[0] || !ok[1]) throw new RuleError('bad_signature', 'evidence header signature');
      const stored = await this.db.getMany([layout.evidence(a.slot, a.proposer, a.hash), layout.evidence(b.slot, b.proposer, b.hash)]);
      if (stored[0] && stored[1]) return 'known';
      await this.db.batch([a, b].map((x) => ({ type: 'put' as const, key: layout.evidence(x.slot, x.proposer, x.hash), value: x.bytes })));
      this.#announceEquivocation([a, b]);
      return 'new';
    });
  }

  /** Best candidate head among tips that are not (descendants of) invalid blocks. */
  #bestTip(): BlockEntry {
    let best = this.#head;
    for (const t of this.#tips) {
      const e = this.#index.get(t)!;
      if (betterHead(e, best)) best = e;
    }
    return best;
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
    // Branch to connect (fork point exclusive), oldest first.
    const connect: BlockEntry[] = [];
    let e: BlockEntry = target;
    while (this.#main[e.height] !== e.hashHex) {
      connect.push(e);
      e = this.#index.get(e.parentHex)!;
    }
    connect.reverse();
    const fork = e;
    const overlay: AccountMap = new Map();
    const lattice = this.#lattice.clone();
    const ops: BatchOp[] = [];
    const disconnected: Block[] = [];
    const connected: Block[] = [];

    // Account keys' bytes, for store keys and undo records (the hex keys are for maps).
    const keyBytes = new Map<AccountKey, Uint8Array>();
    const load = async (keys: AccountKey[], bytes: ReadonlyMap<AccountKey, Uint8Array>): Promise<void> => {
      const missing = keys.filter((k) => !overlay.has(k));
      for (const k of keys) if (!keyBytes.has(k)) keyBytes.set(k, bytes.get(k)!);
      if (!missing.length) return;
      const found = await this.getAccounts(missing, bytes);
      for (const k of missing) overlay.set(k, found.get(k) ?? EMPTY_ACCOUNT);
    };

    // 1. Undo best-chain blocks above the fork point, newest first.
    for (let height = oldHead.height; height > fork.height; height--) {
      const hashHex = this.#main[height]!;
      const block = (await this.getBlock(hashHex))!;
      const undo = await this.#readUndo(block.header.hash);
      await load(undo.map((u) => u[0]), new Map(undo.map((u) => [u[0], u[2]])));
      for (const [key, prev] of undo) {
        lattice.update(key, overlay.get(key)!, prev);
        overlay.set(key, prev);
      }
      ops.push({ type: 'del', key: layout.undo(block.header.hash) }, { type: 'del', key: layout.height(height) });
      this.#indexTxOps(ops, block, 'del', blockAccounts(block.txs, block.header.proposer));
      disconnected.push(block);
    }

    // 2. Apply the new branch, oldest first, validating everything.
    for (const entry of connect) {
      const block = (await this.getBlock(entry.hashHex))!;
      const accounts = blockAccounts(block.txs, block.header.proposer);
      const keys = accounts.keys;
      await load(keys, accounts.bytes);
      try {
        const pre = new Map<AccountKey, Account>(keys.map((k) => [k, overlay.get(k)!]));
        const { post } = applyBlockTxs(pre, block.txs, block.header.proposer, accounts);
        const warming = this.#warming;
        if (warming?.hashHex === entry.hashHex) {
          this.#warming = undefined;
          await warming.done; // its leaves are this block's: do not compute them twice
        }
        // Old and new leaf of every changed account; the missing ones (a peer's block: its new ones, and old
        // ones not warmed) in one parallel batch.
        const stats = { computed: 0 };
        const leaves = await leavesFor(this.#leafHasher, changedLeafPairs(keys, pre, post), 64, stats);
        this.leavesComputed += stats.computed;
        lattice.replaceLeaves(leaves);
        const root = lattice.root();
        if (!bytesEqual(root, block.header.stateRoot)) throw new RuleError('bad_state_root', `computed ${toHex(root)}`);
        for (const k of keys) overlay.set(k, post.get(k)!);
        ops.push({ type: 'put', key: layout.undo(block.header.hash), value: encodeCanonical(keys.map((k) => { const a = pre.get(k)!; return [accounts.bytes.get(k)!, a.balance, a.nonce]; })) });
      } catch (err) {
        if (!(err instanceof RuleError)) throw err;
        await this.#markInvalid(entry, err);
        return false;
      }
      ops.push({ type: 'put', key: layout.height(entry.height), value: entry.hash });
      this.#indexTxOps(ops, block, 'put', accounts);
      connected.push(block);
    }

    // 3. One atomic batch: accounts, indexes, undo, lattice, head.
    for (const [k, a] of overlay) {
      const key = layout.account(keyBytes.get(k)!);
      ops.push(isEmptyAccount(a) ? { type: 'del', key } : { type: 'put', key, value: encodeCanonical([a.balance, a.nonce]) });
    }
    ops.push({ type: 'put', key: layout.lattice(), value: lattice.toBytes() }, { type: 'put', key: layout.tip(), value: target.hash });
    const next = this.#nextHint;
    if (next && bytesEqual(next.header.parentHash, target.hash)) {
      this.#nextHint = undefined;
      this.#warming = { hashHex: next.header.hashHex, done: this.#warmOnto(overlay, next).catch(() => {}) };
    }
    await this.#write(ops);
    this.#stateGen++;
    for (const [k, a] of overlay) this.#accounts.set(k, isEmptyAccount(a) ? EMPTY_ACCOUNT : a);
    this.#main.length = fork.height + 1;
    for (const c of connect) this.#main[c.height] = c.hashHex;
    this.#head = target;
    this.#lattice = lattice;

    for (const b of disconnected) this.emit('block:disconnected', b);
    for (const b of connected) this.emit('block:connected', b);
    if (disconnected.length) {
      this.log.warn('chain reorganized', { depth: disconnected.length, forkHeight: fork.height, oldHead: oldHead.hashHex, newHead: target.hashHex });
      this.emit('chain:reorg', { oldHead, newHead: target, forkHeight: fork.height, disconnected, connected });
    }
    this.emit('chain:head', { head: target, connected, disconnected });
    return true;
  }

  /**
   * The best-chain indexes of a block's transactions: each one's location ('t'), and one history record per
   * account its transfers name ('x'); put when the block is connected, deleted when it is disconnected.
   */
  #indexTxOps(ops: BatchOp[], block: Block, type: 'put' | 'del', accounts: BlockAccounts): void {
    const h = block.header;
    const history = new Map<AccountKey, number[]>(); // account → [index << 1 | dir, …], ascending
    const note = (k: AccountKey, entry: number) => {
      const list = history.get(k);
      if (list) list.push(entry);
      else history.set(k, [entry]);
    };
    for (let i = 0; i < block.txs.length; i++) {
      const key = layout.tx(block.txs[i]!.id);
      if (type === 'del') ops.push({ type: 'del', key });
      else {
        const loc = new Uint8Array(44);
        loc.set(h.hash, 0);
        writeU64be(loc, 32, h.height);
        writeU32be(loc, 40, i);
        ops.push({ type: 'put', key, value: loc });
      }
      note(accounts.from[i]!, i * 2);
      note(accounts.to[i]!, i * 2 + 1);
    }
    for (const [k, list] of history) {
      const key = layout.history(accounts.bytes.get(k)!, h.height);
      if (type === 'del') { ops.push({ type: 'del', key }); continue; }
      const value = new Uint8Array(list.length * 5);
      list.forEach((e, j) => { writeU32be(value, j * 5, Math.floor(e / 2)); value[j * 5 + 4] = e & 1; });
      ops.push({ type: 'put', key, value });
    }
  }

  /** A best-chain block's undo records: [key, pre-block account, key bytes]. */
  async #readUndo(hash: Uint8Array): Promise<[AccountKey, Account, Uint8Array][]> {
    const v = await this.db.get(layout.undo(hash));
    if (!v) throw new ChainError(`undo data missing for best-chain block ${toHex(hash)}`);
    return expectList(decodeCanonical(v), 'undo').map((r) => {
      const f = expectArray(r, 3, 'undo entry');
      const key = expectBytes(f[0]!, 'key', 32);
      return [toHex(key), { balance: expectU64(f[1]!, 'balance'), nonce: expectU64(f[2]!, 'nonce') }, key];
    });
  }

  /** Mark a stored block and all its known descendants invalid (persisted), and fix up the tips. */
  async #markInvalid(entry: BlockEntry, err: RuleError): Promise<void> {
    const ops: BatchOp[] = [];
    const stack = [entry.hashHex];
    let first = true;
    while (stack.length) {
      const h = stack.pop()!;
      const r = first ? err.rule : 'invalid_parent';
      first = false;
      this.#invalid.set(h, r);
      this.#tips.delete(h);
      ops.push({ type: 'put', key: layout.invalid(fromHex(h)), value: new TextEncoder().encode(r) });
      for (const c of this.#children.get(h) ?? []) stack.push(c);
    }
    await this.#write(ops);
    this.#invalidCause.set(entry.hashHex, err);
    // The parent becomes a tip again if no valid child remains.
    const parentKids = [...(this.#children.get(entry.parentHex) ?? [])].filter((c) => !this.#invalid.has(c));
    if (parentKids.length === 0 && !this.#invalid.has(entry.parentHex)) this.#tips.add(entry.parentHex);
    this.log.warn('block failed validation', { hash: entry.hashHex, height: entry.height, rule: err.rule, error: err.message });
    this.emit('block:invalid', { hash: entry.hashHex, rule: err.rule, message: err.message });
  }

  // ---------------------------------------------------------------- sync helpers (P2P)

  /** Block locator: best-chain hashes at heights head, head-1, head-2, head-4, … , 0. */
  locator(): string[] {
    const out: string[] = [];
    let step = 1;
    for (let h = this.#head.height; h > 0; h -= step) {
      out.push(this.#main[h]!);
      if (out.length >= 10) step *= 2;
    }
    out.push(this.#main[0]!);
    return out;
  }

  /** The highest locator entry that is on our best chain (the fork point with the peer). */
  forkPoint(locator: readonly string[]): BlockEntry {
    for (const h of locator) {
      if (this.isOnMain(h)) return this.#index.get(h)!;
    }
    return this.#index.get(this.#main[0]!)!;
  }

  async close(): Promise<void> {
    await this.#lock.run(async () => { await this.verifier.close(); });
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

function encodeEntry(height: number, slot: number, parent: Uint8Array): Uint8Array {
  return encodeCanonical([height, slot, parent]);
}

function decodeEntry(v: Uint8Array): [number, number, Uint8Array] {
  const f = expectArray(decodeCanonical(v), 3, 'block entry');
  return [expectSafeUint(f[0]!, 'height'), expectSafeUint(f[1]!, 'slot'), expectBytes(f[2]!, 'parent', 32)];
}

export function decodeAccount(v: Uint8Array): Account {
  const f = expectArray(decodeCanonical(v), 2, 'account');
  return { balance: expectU64(f[0]!, 'balance'), nonce: expectU64(f[1]!, 'nonce') };
}
