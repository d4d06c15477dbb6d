/**
 * The chain's part of the database: what its keyspaces hold and how (src/storage/layout.ts lists every
 * keyspace), and every read the chain and RPC make of them. The chain composes batches from the operations
 * built here; a head switch writes all of its operations in ONE batch, so the store always holds one
 * head with exactly that head's state and indexes.
 *
 * Reads return undefined for what is not stored. A pruned store (snapshot sync) will lack old block bodies,
 * undo data and history below its snapshot height; readers must then be told that the data was pruned,
 * not that it never existed (readUndo already refuses with the block it lacks).
 */
import { bytesEqual, fromHex, fromHexTrusted, readSafeU64be, readU32be, toHex, writeU32be, writeU64be } from '../encoding/bytes.js';
import { decodeCanonical, encodeCanonical, expectArray, expectBytes, expectList, expectSafeUint, expectU64 } from '../encoding/canonical.js';
import { decodeBlock, type Block, type BlockHeader } from '../ledger/block.js';
import type { Genesis } from '../ledger/genesis.js';
import { EMPTY_ACCOUNT, isEmptyAccount, type Account, type AccountKey, type BlockAccounts } from '../ledger/state.js';
import { StateLattice } from '../ledger/statehash.js';
import { layout, DB_VERSION } from '../storage/layout.js';
import type { BatchOp, KV } from '../storage/kv.js';
import { InvariantViolation } from '../util/assert.js';
import { LruMap } from '../util/lru.js';
import type { Logger } from '../util/log.js';
import { ChainError, type BlockEntry, type HistoryEntry, type HistoryPosition, type TxLocation } from './types.js';

/** Head-state accounts kept in memory (about 200 B each). */
const ACCOUNT_CACHE = 16_384;

/** A best-chain block's undo record of one account: its key, its value before the block, the key's bytes. */
export type UndoRecord = [key: AccountKey, before: Account, keyBytes: Uint8Array];

/** What start-up reads: every block-index entry, the invalid marks, the head and its state lattice. */
export interface StoredChain {
  entries: BlockEntry[];
  invalid: Map<string, string>;
  tip: Uint8Array;
  lattice: StateLattice;
}

export class ChainStore {
  readonly db: KV;
  readonly #genesis: Block;
  readonly #blockCache = new LruMap<string, Block>(256);
  /**
   * The head state's recently read or written accounts (EMPTY_ACCOUNT for absent ones): the accounts a block
   * touches were mostly just read by mempool admission or by the block's own assembly. Coherent with the
   * store: a head switch writes its accounts here right after its batch commits (`committed`), and a read
   * that was in flight across a switch (#stateGen moved) is not cached, since it may hold the old head's
   * values.
   */
  readonly #accounts = new LruMap<AccountKey, Account>(ACCOUNT_CACHE);
  #stateGen = 0;

  constructor(db: KV, genesisBlock: Block) {
    this.db = db;
    this.#genesis = genesisBlock;
  }

  /**
   * Initialise an empty database with the genesis block and allocations, or check that a used one belongs
   * to this genesis and format; then read what the block index and the head need.
   */
  async open(genesis: Genesis, lattice: StateLattice, log: Logger): Promise<StoredChain> {
    const g = this.#genesis.header;
    const stored = await this.db.get(layout.genesis());
    if (!stored) {
      const ops: BatchOp[] = [
        { type: 'put', key: layout.version(), value: encodeCanonical(DB_VERSION) },
        { type: 'put', key: layout.genesis(), value: g.hash },
        { type: 'put', key: layout.block(g.hash), value: this.#genesis.bytes },
        { type: 'put', key: layout.entry(g.hash), value: encodeEntry(0, 0, g.parentHash) },
        { type: 'put', key: layout.height(0), value: g.hash },
        { type: 'put', key: layout.lattice(), value: lattice.toBytes() },
        { type: 'put', key: layout.tip(), value: g.hash },
      ];
      for (const a of genesis.alloc) ops.push({ type: 'put', key: layout.account(a.publicKey), value: encodeCanonical([a.amount, 0n]) });
      await this.db.batch(ops);
      log.info('initialised new chain from genesis', { genesisHash: g.hashHex, chainId: genesis.chainId });
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

    const entries: BlockEntry[] = [];
    for await (const [k, v] of this.db.iterator(layout.range(layout.prefix('e')))) {
      const hash = k.subarray(1);
      const [height, slot, parent] = decodeEntry(v);
      entries.push({ hash: new Uint8Array(hash), hashHex: toHex(hash), height, slot, parentHex: toHex(parent) });
    }
    const invalid = new Map<string, string>();
    for await (const [k, v] of this.db.iterator(layout.range(layout.prefix('i')))) {
      invalid.set(toHex(k.subarray(1)), new TextDecoder().decode(v));
    }
    const tip = await this.db.get(layout.tip());
    const latticeBytes = await this.db.get(layout.lattice());
    if (!tip || !latticeBytes) throw new ChainError('database is missing its head or state lattice');
    return { entries, invalid, tip, lattice: StateLattice.fromBytes(latticeBytes) };
  }

  /** Write one batch (atomic). */
  write(ops: BatchOp[]): Promise<void> {
    return this.db.batch(ops);
  }

  // ---------------------------------------------------------------- blocks

  async getBlock(hashHex: string): Promise<Block | undefined> {
    const cached = this.#blockCache.get(hashHex);
    if (cached) return cached;
    if (hashHex === this.#genesis.header.hashHex) return this.#genesis;
    const bytes = await this.db.get(layout.block(fromHexTrusted(hashHex)));
    if (!bytes) return undefined;
    const b = decodeBlock(bytes, Number.MAX_SAFE_INTEGER);
    this.#blockCache.set(hashHex, b);
    return b;
  }

  /** Keep a block being added at hand (it is read back by the head switch that follows). */
  cacheBlock(block: Block): void { this.#blockCache.set(block.header.hashHex, block); }
  uncacheBlock(hashHex: string): void { this.#blockCache.delete(hashHex); }

  /**
   * The stored encodings of the blocks among `hashes` that are `indexed`, in order (undefined for the
   * others), read in one go without decoding: what a node serving sync sends.
   */
  async getBlockBytes(hashes: readonly string[], indexed: (hashHex: string) => boolean): Promise<(Uint8Array | undefined)[]> {
    const out: (Uint8Array | undefined)[] = hashes.map((h) => this.#blockCache.peek(h)?.bytes ?? (h === this.#genesis.header.hashHex ? this.#genesis.bytes : undefined));
    const missing = hashes.map((h, i) => [h, i] as const).filter(([h, i]) => out[i] === undefined && indexed(h));
    if (missing.length) {
      const raw = await this.db.getMany(missing.map(([h]) => layout.block(fromHexTrusted(h))));
      missing.forEach(([, i], j) => { out[i] = raw[j] ?? undefined; });
    }
    return out;
  }

  // ---------------------------------------------------------------- head state

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

  /** A head switch's batch was written: its accounts are the head state now. */
  committed(accounts: ReadonlyMap<AccountKey, Account>): void {
    this.#stateGen++;
    for (const [k, a] of accounts) this.#accounts.set(k, isEmptyAccount(a) ? EMPTY_ACCOUNT : a);
  }

  /** A best-chain block's undo records, sorted by key. */
  async readUndo(hash: Uint8Array): Promise<UndoRecord[]> {
    const v = await this.db.get(layout.undo(hash));
    if (!v) throw new ChainError(`undo data missing for best-chain block ${toHex(hash)}`);
    return expectList(decodeCanonical(v), 'undo').map((r) => {
      const f = expectArray(r, 3, 'undo entry');
      const key = expectBytes(f[0]!, 'key', 32);
      return [toHex(key), { balance: expectU64(f[1]!, 'balance'), nonce: expectU64(f[2]!, 'nonce') }, key];
    });
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

  // ---------------------------------------------------------------- RPC queries

  async getTxLocation(idHex: string): Promise<TxLocation | undefined> {
    const v = await this.db.get(layout.tx(fromHex(idHex)));
    if (!v) return undefined;
    if (v.length !== 44) throw new ChainError(`transaction location of ${idHex} is ${v.length} bytes, not 44 (database corrupted?)`);
    return { blockHash: toHex(v.subarray(0, 32)), height: readSafeU64be(v, 32), index: readU32be(v, 40) };
  }

  /** Are all these headers stored as equivocation evidence already? */
  async hasEvidence(headers: readonly BlockHeader[]): Promise<boolean> {
    const stored = await this.db.getMany(headers.map((x) => layout.evidence(x.slot, x.proposer, x.hash)));
    return stored.every((v) => v !== undefined);
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
   * between the index and the block) is left out. `blockAt` reads the best chain's block at a height.
   */
  async accountHistory(publicKey: Uint8Array, o: { limit: number; direction?: 'sent' | 'received' | 'both'; cursor?: HistoryPosition }, blockAt: (height: number) => Promise<Block | undefined>): Promise<{ entries: HistoryEntry[]; next: HistoryPosition | null }> {
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
        block ??= await blockAt(height);
        const tx = block?.txs[index];
        if (!block || !tx || !bytesEqual(dir === 0 ? tx.from : tx.to, publicKey)) continue;
        entries.push({ height, index, direction: dir === 0 ? 'sent' : 'received', blockHash: block.header.hashHex, timestamp: block.header.timestamp, tx });
      }
    }
    return { entries, next: more && last ? last : null };
  }
}

// ---------------------------------------------------------------- operations the chain writes

/** A statically valid block (any branch): its bytes ('b') and its index entry ('e'). */
export function blockOps(block: Block): BatchOp[] {
  const h = block.header;
  return [
    { type: 'put', key: layout.block(h.hash), value: block.bytes },
    { type: 'put', key: layout.entry(h.hash), value: encodeEntry(h.height, h.slot, h.parentHash) },
  ];
}

/** Equivocation evidence ('q'): each signed header under its slot, proposer and hash. */
export function evidenceOps(headers: readonly BlockHeader[]): BatchOp[] {
  return headers.map((x) => ({ type: 'put', key: layout.evidence(x.slot, x.proposer, x.hash), value: x.bytes }));
}

/** An invalid mark ('i'): the rule the stored block broke. */
export function invalidOp(hashHex: string, rule: string): BatchOp {
  return { type: 'put', key: layout.invalid(fromHex(hashHex)), value: new TextEncoder().encode(rule) };
}

/** A connected block's undo data ('u'): the pre-block value of each account it touches, in key order. */
export function undoOp(block: Block, accounts: BlockAccounts, before: ReadonlyMap<AccountKey, Account>): BatchOp {
  const value = encodeCanonical(accounts.keys.map((k) => {
    const a = before.get(k), key = accounts.bytes.get(k);
    if (a === undefined || key === undefined) throw new InvariantViolation(`undo: account ${k} of block ${block.header.hashHex} has no pre-block value or key bytes`);
    return [key, a.balance, a.nonce];
  }));
  return { type: 'put', key: layout.undo(block.header.hash), value };
}

/** A block joins the best chain at its height ('n'). */
export function heightOp(entry: BlockEntry): BatchOp {
  return { type: 'put', key: layout.height(entry.height), value: entry.hash };
}

/** A best-chain block at `height` leaves the best chain: its undo data ('u') and height ('n') go. */
export function unlinkOps(block: Block): BatchOp[] {
  return [{ type: 'del', key: layout.undo(block.header.hash) }, { type: 'del', key: layout.height(block.header.height) }];
}

/** The new head ('T') and its state lattice ('L'). */
export function headOps(tip: Uint8Array, lattice: StateLattice): BatchOp[] {
  return [{ type: 'put', key: layout.lattice(), value: lattice.toBytes() }, { type: 'put', key: layout.tip(), value: tip }];
}

/** An account's new value ('a'); the empty account is deleted. */
export function accountOp(keyBytes: Uint8Array, a: Account): BatchOp {
  const key = layout.account(keyBytes);
  return isEmptyAccount(a) ? { type: 'del', key } : { type: 'put', key, value: encodeCanonical([a.balance, a.nonce]) };
}

/**
 * The best-chain indexes of a block's transactions: each one's location ('t'), and one history record per
 * account its transfers name ('x'); put when the block is connected, deleted when it is disconnected.
 */
export function indexTxOps(ops: BatchOp[], block: Block, type: 'put' | 'del', accounts: BlockAccounts): void {
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
    const pk = accounts.bytes.get(k);
    if (pk === undefined) throw new InvariantViolation(`history: no key bytes for account ${k}`);
    const key = layout.history(pk, h.height);
    if (type === 'del') { ops.push({ type: 'del', key }); continue; }
    const value = new Uint8Array(list.length * 5);
    list.forEach((e, j) => { writeU32be(value, j * 5, Math.floor(e / 2)); value[j * 5 + 4] = e & 1; });
    ops.push({ type: 'put', key, value });
  }
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
