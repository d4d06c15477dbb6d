/**
 * Property: a random tree of blocks (random transfers among funded accounts, random fork points and
 * branch lengths) fed to one chain in a random order — either parents first, or fully shuffled with orphans
 * re-submitted once their parent has been processed.
 *
 * About one block in four breaks one rule, drawn from every block rule and named by where the chain finds it:
 *   static   (refused whatever the parent): wrong chain id, wrong proposer, bad timestamp, more than
 *            maxBlockTxs transactions, more than maxBlockBytes bytes, bad transactions root, a duplicate
 *            transaction, a transaction for another chain, of zero amount, below the minimum fee, or with
 *            a memo over the limit;
 *   context  (refused once the parent is known): bad height, slot not after the parent's, slot from the
 *            future, bad header signature, bad transaction signature;
 *   apply    (stored, found invalid when the chain switches to it): bad state root, nonce too low or too
 *            high, insufficient funds;
 *   unlinked (an unknown parent: an orphan for ever).
 * The genesis has small limits (4 transactions, 1024 bytes), and valid blocks are also built at exactly
 * those limits.
 *
 * A model predicts every addBlock exactly: the status, or the rule (with the nested rule and the index of a
 * transaction's fault). After every addBlock that is not an orphan: supply is conserved, the stored accounts
 * hash to the head block's state root, the accounts equal the model's, and the head is the best (height,
 * then smaller hash) block among the valid blocks stored so far. At the end: what the chain remembers of each
 * block (stored, invalid mark, refused) is the model's, a refused or invalid block offered again is
 * known_invalid (but a mutated body, bad_tx_root, is never remembered and is judged on its bytes again), and the chain's consensus keyspaces are byte-identical to a fresh chain fed only the winning
 * branch. Totals over all runs show that every fault was reached and judged on its own rule.
 *
 * A second test (TODO: it fails on a producer bug, see there) holds the blocks the producer assembles from a
 * full pool to the same limits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Chain } from '../../src/chain/chain.js';
import { makeBlock, makeHeader, signHeader, type Block, type UnsignedHeader } from '../../src/ledger/block.js';
import { merkleRoot } from '../../src/ledger/merkle.js';
import { RuleError } from '../../src/ledger/rules.js';
import { slotStart } from '../../src/ledger/schedule.js';
import { StateLattice } from '../../src/ledger/statehash.js';
import { decodeTx, type Tx } from '../../src/ledger/tx.js';
import { layout } from '../../src/storage/layout.js';
import type { KV } from '../../src/storage/kv.js';
import { toHex } from '../../src/encoding/bytes.js';
import type { KeyPair } from '../../src/crypto/keyfile.js';
import { InlineVerifier } from '../../src/crypto/ed25519.js';
import { Mempool } from '../../src/mempool/mempool.js';
import { assembleBlock, blockCandidates } from '../../src/producer/producer.js';
import { GENESIS_TIME, makeGenesis, openTestChain, testKey, testKeys, transfer, feedWithOrphans } from '../helpers/fixtures.js';

const V = testKeys('prop-val', 3);
const USERS = testKeys('prop-user', 6); // 5 funded, 1 that starts empty
const FUNDED = 5;
/** Small limits, so that blocks at and over them are cheap: 4 plain transfers (~875 bytes) fit. */
const LIMITS = { maxBlockTxs: 4, maxBlockBytes: 1024, maxMemoBytes: 512 };
const genesis = makeGenesis({ validators: V, alloc: USERS.slice(0, FUNDED).map((u, i) => [u, 10_000n + BigInt(i)] as [KeyPair, bigint]), params: LIMITS });
const EVERYONE = [...USERS, ...V];
const OTHER_CHAIN = 'meshledger-other';
/** openTestChain's clock stands at slot 10^6: a block this many slots after its parent is from the future. */
const FUTURE = 2_000_000;
/** Whether a block in `slot` is further ahead of openTestChain's clock than the drift allows. */
const fromTheFuture = (slot: number): boolean => slotStart(genesis, slot) - (GENESIS_TIME + 1_000_000_000) > genesis.params.maxClockDriftMs;

// ---- faults -------------------------------------------------------------------------------------------

/** Each fault and where the chain finds it (see the header). */
const FAULTS = {
  wrong_chain: 'static', wrong_proposer: 'static', bad_timestamp: 'static', too_many_txs: 'static', block_too_large: 'static',
  bad_tx_root: 'static', duplicate_tx: 'static', tx_wrong_chain: 'static', zero_amount: 'static', fee_too_low: 'static',
  memo_too_long: 'static',
  bad_height: 'context', bad_slot: 'context', future_slot: 'context', bad_signature: 'context', tx_bad_signature: 'context',
  bad_state_root: 'apply', nonce_too_low: 'apply', nonce_too_high: 'apply', insufficient_funds: 'apply',
  unknown_parent: 'unlinked',
} as const;
type Fault = keyof typeof FAULTS;
const FAULT_NAMES = Object.keys(FAULTS) as Fault[];
/** Faults that add one transaction to the block (the honest ones leave room for it). */
const ADDS_TX = new Set<Fault>(['duplicate_tx', 'tx_wrong_chain', 'zero_amount', 'fee_too_low', 'nonce_too_low', 'nonce_too_high', 'insufficient_funds']);

/** What addBlock did: a status, or the rule it threw (and for a transaction's fault, the nested rule and index). */
interface Verdict { status?: string; rule?: string; inner?: string; index?: number }

function verdict(rule: string, inner?: string, index?: number): Verdict {
  const v: Verdict = { rule };
  if (inner !== undefined) v.inner = inner;
  if (index !== undefined) v.index = index;
  return v;
}

async function outcome(chain: Chain, block: Block): Promise<Verdict> {
  try {
    return { status: (await chain.addBlock(block)).status };
  } catch (e) {
    if (!(e instanceof RuleError)) throw e;
    return verdict(e.rule, e.inner?.rule, e.index);
  }
}

// ---- independent model ------------------------------------------------------------------------------

type Acct = { balance: bigint; nonce: bigint };
type State = Map<string, Acct>; // hex public key → non-empty account

/** `amount: ALL` spends the whole balance (amount + fee = balance). */
interface TxSpec { from: number; to: number; amount: number; fee: number }
const ALL = -1;
type Size = 'natural' | 'full_txs' | 'full_bytes';
interface BlockSpec { back: number; gap: number; txs: TxSpec[]; fault: Fault | null; size: Size; onUnlinked: boolean; pick: number }

interface Node {
  block: Block | null; // null = genesis
  hash: string;
  hashBytes: Uint8Array;
  height: number;
  slot: number;
  parent: number; // index, -1 for genesis
  state: State;
  /** No fault here or above. */
  valid: boolean;
  /** No static, context or unlinked fault here or above: the chain can store it once its parent is stored. */
  linked: boolean;
  fault: Fault | null;
  /** What the chain says of this block's own fault. */
  verdict?: Verdict;
}

function rootOf(state: State): string {
  const l = new StateLattice();
  for (const [k, a] of state) l.add(k, a);
  return toHex(l.root());
}

/** A transfer before signing (memos are padded after the state walk: they change bytes, not state). */
interface Pay { from: KeyPair; to: KeyPair; amount: bigint; fee: bigint; nonce: bigint; memo: string; chainId?: string }

const sign = (p: Pay): Tx => transfer(p.from, p.to, p.amount, p.nonce, { fee: p.fee, memo: p.memo, ...(p.chainId ? { chainId: p.chainId } : {}) });

/**
 * The model's block builder: apply what applies, skip the rest, credit fees, compute the root from scratch;
 * then break the rule `spec.fault` names, if it can (else the block is built without a fault).
 */
function buildChild(nodes: Node[], parentIdx: number, spec: BlockSpec): Node {
  const parent = nodes[parentIdx]!;
  let fault = spec.fault;
  const slot = parent.slot + (fault === 'bad_slot' ? 0 : fault === 'future_slot' ? FUTURE : spec.gap);
  const proposer = V[slot % V.length]!;
  const other = V[(slot + 1) % V.length]!;
  const state: State = new Map(parent.state);
  const get = (k: string): Acct => state.get(k) ?? { balance: 0n, nonce: 0n };
  const put = (k: string, a: Acct): void => { if (a.balance === 0n && a.nonce === 0n) state.delete(k); else state.set(k, a); };
  const pays: Pay[] = [];
  let fees = 0n;
  /** Apply a transfer to the working state (nonce not checked: the callers decided it applies, or do not care). */
  const apply = (p: Pay): void => {
    const fk = toHex(p.from.publicKey);
    const s = get(fk);
    put(fk, { balance: s.balance - p.amount - p.fee, nonce: s.nonce + 1n });
    const tk = toHex(p.to.publicKey);
    const r = get(tk);
    put(tk, { balance: r.balance + p.amount, nonce: r.nonce });
    fees += p.fee;
  };
  /** The richest user pays itself 1 (a filler that always applies); false if nobody can. */
  const selfPay = (): boolean => {
    let best: KeyPair | undefined;
    for (const u of USERS) if (get(toHex(u.publicKey)).balance >= 2n && (!best || get(toHex(u.publicKey)).balance > get(toHex(best.publicKey)).balance)) best = u;
    if (!best) return false;
    const p = { from: best, to: best, amount: 1n, fee: 1n, nonce: get(toHex(best.publicKey)).nonce, memo: '' };
    pays.push(p);
    apply(p);
    return true;
  };

  const room = fault === 'memo_too_long' ? 0 : LIMITS.maxBlockTxs - (fault && ADDS_TX.has(fault) ? 1 : 0);
  for (const t of spec.txs) {
    if (pays.length >= room) break;
    const from = USERS[t.from]!;
    const s = get(toHex(from.publicKey));
    const amount = t.amount === ALL ? s.balance - BigInt(t.fee) : BigInt(t.amount);
    const p = { from, to: USERS[t.to]!, amount, fee: BigInt(t.fee), nonce: s.nonce, memo: '' };
    if (amount < 1n || s.balance < p.amount + p.fee) continue;
    pays.push(p);
    apply(p);
  }

  let padTo: number | undefined;
  let v: Verdict | undefined;
  const user = USERS[spec.pick % USERS.length]!;
  const acct = get(toHex(user.publicKey));
  const nextUser = USERS[(spec.pick + 1) % USERS.length]!;
  const at = spec.pick % (pays.length + 1);
  switch (fault) {
    case null:
      if (spec.size === 'full_txs') while (pays.length < LIMITS.maxBlockTxs && selfPay());
      if (spec.size === 'full_bytes') {
        while (pays.length < 2 && selfPay());
        padTo = LIMITS.maxBlockBytes;
      }
      break;
    case 'too_many_txs':
      while (pays.length <= LIMITS.maxBlockTxs && selfPay());
      if (pays.length <= LIMITS.maxBlockTxs) fault = null;
      break;
    case 'block_too_large':
      while (pays.length < 2 && selfPay());
      padTo = LIMITS.maxBlockBytes + 1;
      break;
    case 'duplicate_tx': case 'tx_bad_signature':
      if (pays.length === 0 && !selfPay()) fault = null;
      break;
    case 'tx_wrong_chain': case 'zero_amount': case 'fee_too_low': case 'memo_too_long':
      // Inserted anywhere; the block is refused before any state is read, so the model's state ignores it.
      pays.splice(at, 0, {
        from: user, to: nextUser, nonce: acct.nonce, amount: fault === 'zero_amount' ? 0n : 1n, fee: fault === 'fee_too_low' ? 0n : 1n,
        memo: fault === 'memo_too_long' ? 'm'.repeat(LIMITS.maxMemoBytes + 1) : '', ...(fault === 'tx_wrong_chain' ? { chainId: OTHER_CHAIN } : {}),
      });
      v = verdict('bad_tx', fault === 'tx_wrong_chain' ? 'wrong_chain' : fault, at);
      break;
    case 'nonce_too_low': case 'nonce_too_high': case 'insufficient_funds': {
      // Appended after the honest transfers, and applied as a careless implementation would (an overspend cannot be).
      let from = user;
      if (fault === 'nonce_too_low') {
        const used = USERS.filter((u) => get(toHex(u.publicKey)).nonce > 0n);
        if (used.length) from = used[spec.pick % used.length]!;
        else fault = 'nonce_too_high';
      }
      const a = get(toHex(from.publicKey));
      const p: Pay = {
        // An overspend by exactly 1 (or by 2 when the balance is 0: the amount must be at least 1).
        from, to: nextUser, amount: fault === 'insufficient_funds' ? (a.balance > 0n ? a.balance : 1n) : 1n, fee: 1n,
        nonce: fault === 'nonce_too_low' ? a.nonce - 1n : fault === 'nonce_too_high' ? a.nonce + 1n : a.nonce, memo: '',
      };
      pays.push(p);
      if (a.balance >= p.amount + p.fee) apply(p);
      v = verdict('bad_tx', fault, pays.length - 1);
      break;
    }
  }

  const txs = pays.map(sign);
  const headerFor = (txRoot: Uint8Array, stateRoot: Uint8Array): UnsignedHeader => ({
    chainId: fault === 'wrong_chain' ? OTHER_CHAIN : genesis.chainId,
    height: parent.height + (fault === 'bad_height' ? 2 : 1),
    slot,
    parentHash: fault === 'unknown_parent' ? new Uint8Array(32).fill(0x99) : parent.hashBytes,
    timestamp: slotStart(genesis, slot) + (fault === 'bad_timestamp' ? 1 : 0),
    txRoot, stateRoot, proposer: (fault === 'wrong_proposer' ? other : proposer).publicKey,
  });
  if (padTo !== undefined) {
    // Memo bytes until the block is exactly padTo bytes (the header's size does not depend on the roots).
    const sizer = makeHeader(headerFor(new Uint8Array(32), new Uint8Array(32)), new Uint8Array(64));
    const size = (): number => makeBlock(sizer, txs).bytes.length;
    for (let round = 0; round < 16 && size() !== padTo; round++) {
      const d = padTo - size();
      let j = pays.length - 1;
      while (j >= 0 && (d > 0 ? pays[j]!.memo.length >= LIMITS.maxMemoBytes : pays[j]!.memo.length === 0)) j--;
      if (j < 0) break;
      pays[j]!.memo = 'p'.repeat(Math.min(LIMITS.maxMemoBytes, Math.max(0, pays[j]!.memo.length + d)));
      txs[j] = sign(pays[j]!);
    }
    if (size() !== padTo) {
      // Out of reach (a length prefix grew on the way): no padding, and no fault.
      pays.forEach((p, j) => { if (p.memo) { p.memo = ''; txs[j] = sign(p); } });
      if (fault === 'block_too_large') fault = null;
    }
  }
  if (fault === 'duplicate_tx') {
    txs.push(txs[spec.pick % txs.length]!);
    v = verdict('duplicate_tx', undefined, txs.length - 1);
  }
  if (fault === 'tx_bad_signature') {
    const j = spec.pick % txs.length;
    const bytes = new Uint8Array(txs[j]!.bytes);
    bytes[bytes.length - 64]! ^= 0xff;
    txs[j] = decodeTx(bytes);
    v = verdict('bad_tx', 'bad_signature', j);
  }

  const pk = toHex(proposer.publicKey);
  const p = get(pk);
  put(pk, { balance: p.balance + fees, nonce: p.nonce });
  const root = rootOf(state);
  const header = signHeader(
    headerFor(fault === 'bad_tx_root' ? new Uint8Array(32).fill(0x77) : merkleRoot(txs.map((t) => t.id)),
      fault === 'bad_state_root' ? new Uint8Array(32).fill(0x5a) : Buffer.from(root, 'hex')),
    (fault === 'wrong_proposer' || fault === 'bad_signature' ? other : proposer).secretKey);
  const block = makeBlock(header, txs);
  if (fault && !v) v = fault === 'unknown_parent' ? { status: 'orphan' } : verdict(fault);
  if (fault === 'too_many_txs') assert.ok(txs.length > LIMITS.maxBlockTxs);
  if (fault === 'block_too_large') assert.ok(block.bytes.length > LIMITS.maxBlockBytes && txs.length <= LIMITS.maxBlockTxs);
  if (!fault) assert.ok(block.bytes.length <= LIMITS.maxBlockBytes && txs.length <= LIMITS.maxBlockTxs, 'an honest block within the limits');
  return {
    block, hash: header.hashHex, hashBytes: header.hash, height: header.height, slot, parent: parentIdx, state,
    valid: parent.valid && !fault, linked: parent.linked && (!fault || FAULTS[fault] === 'apply'), fault, ...(v ? { verdict: v } : {}),
  };
}

function better(a: Node, b: Node): boolean {
  if (a.height !== b.height) return a.height > b.height;
  return Buffer.compare(a.hashBytes, b.hashBytes) < 0;
}

function isAncestor(nodes: Node[], anc: number, desc: number): boolean {
  for (let i = desc; i !== -1; i = nodes[i]!.parent) if (i === anc) return true;
  return false;
}

async function dump(db: KV, prefixes: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const p of prefixes) {
    for await (const [k, v] of db.iterator(layout.range(layout.prefix(p)))) out.set(toHex(k), toHex(v));
  }
  return out;
}

// ---- arbitraries ------------------------------------------------------------------------------------

const txSpec: fc.Arbitrary<TxSpec> = fc.record({
  from: fc.nat({ max: FUNDED - 1 }),
  to: fc.nat({ max: USERS.length - 1 }),
  amount: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 3000 }) }, { weight: 4, arbitrary: fc.integer({ min: 1, max: 12_000 }) }, { weight: 1, arbitrary: fc.constant(ALL) }),
  fee: fc.integer({ min: 1, max: 3 }),
});

const blockSpec: fc.Arbitrary<BlockSpec> = fc.record({
  back: fc.oneof(fc.constant(0), fc.constant(0), fc.nat({ max: 3 }), fc.nat({ max: 40 })),
  gap: fc.integer({ min: 1, max: 3 }),
  txs: fc.array(txSpec, { maxLength: 4 }),
  fault: fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom(...FAULT_NAMES) }),
  size: fc.oneof({ weight: 8, arbitrary: fc.constant<Size>('natural') }, { weight: 1, arbitrary: fc.constantFrom<Size>('full_txs', 'full_bytes') }),
  // Most blocks are built where the chain can store them (not below a block it can never store).
  onUnlinked: fc.integer({ min: 0, max: 3 }).map((x) => x === 0),
  pick: fc.nat(),
});

const MAX_BLOCKS = 40;
const RUNS = 200;

/** Totals over all runs, to show the generators reach every case (a vacuous property passes too). */
const seen = { own: new Map<string, number>(), marked: new Map<string, number>(), atTxLimit: 0, atByteLimit: 0, reorgs: 0 };
const bump = (m: Map<string, number>, k: string): void => { m.set(k, (m.get(k) ?? 0) + 1); };

// ---- the property -------------------------------------------------------------------------------------

test('random block trees with every kind of invalid block, in random orders: exact verdicts, conservation, state root, fork choice, replay equality', { timeout: 180_000 }, async (t) => {
  let runs = 0;
  await fc.assert(fc.asyncProperty(
    fc.array(blockSpec, { minLength: 6, maxLength: MAX_BLOCKS, size: 'max' }),
    fc.constantFrom('parents-first', 'shuffled'),
    fc.array(fc.nat(), { minLength: MAX_BLOCKS, maxLength: MAX_BLOCKS }),
    async (specs, mode, prio) => {
      runs++;
      const { chain, db } = await openTestChain(genesis);
      const g: Node = {
        block: null, hash: chain.genesisHash, hashBytes: Buffer.from(chain.genesisHash, 'hex'), height: 0, slot: 0, parent: -1,
        state: new Map(genesis.alloc.map((a) => [toHex(a.publicKey), { balance: a.amount, nonce: 0n }])), valid: true, linked: true, fault: null,
      };
      assert.equal(rootOf(g.state), toHex(chain.stateRoot));
      const nodes: Node[] = [g];
      const seenHashes = new Set([g.hash]);
      for (const s of specs) {
        let parentIdx = Math.max(0, nodes.length - 1 - s.back);
        if (!s.onUnlinked) while (!nodes[parentIdx]!.linked) parentIdx = nodes[parentIdx]!.parent;
        const n = buildChild(nodes, parentIdx, s);
        if (seenHashes.has(n.hash)) continue; // an identical block (same parent, slot and txs)
        seenHashes.add(n.hash);
        nodes.push(n);
      }
      const children = new Map<number, number[]>();
      nodes.forEach((n, i) => { if (i > 0) children.set(n.parent, [...(children.get(n.parent) ?? []), i]); });
      const key = (i: number): number => prio[(i - 1) % MAX_BLOCKS]! * 64 + i;

      const stored = new Set<number>([0]); // in the chain's block index
      const marked = new Map<number, Verdict>(); // stored, then found invalid: the mark
      const refused = new Set<number>(); // refused before storage, remembered (known_invalid)
      let expected = 0; // best stored valid node

      /** The model's prediction for addBlock(nodes[i]), updating what the model says the chain holds. */
      function predict(i: number): Verdict {
        const n = nodes[i]!;
        const stage = n.fault ? FAULTS[n.fault] : undefined;
        // A body that does not match its header's transactions root is a mutated copy: refused, never
        // remembered under the header's hash (the honest block with that header may still come).
        if (stage === 'static') { if (n.fault !== 'bad_tx_root') refused.add(i); return n.verdict!; }
        if (stage === 'unlinked' || !stored.has(n.parent)) {
          // Before an orphan is kept, what needs no parent: not from the future (not remembered, it may become
          // valid), and signed by its slot's validator (remembered).
          if (fromTheFuture(n.slot)) return n.fault === 'future_slot' ? n.verdict! : verdict('future_slot');
          if (n.fault === 'bad_signature') { refused.add(i); return n.verdict!; }
          return { status: 'orphan' };
        }
        if (marked.has(n.parent)) { refused.add(i); return verdict('invalid_parent'); }
        if (stage === 'context') {
          if (n.fault !== 'future_slot') refused.add(i); // a block from the future may become valid later
          return n.verdict!;
        }
        stored.add(i);
        if (n.valid) {
          const before = expected;
          if (better(n, nodes[expected]!)) expected = i;
          if (expected !== i) return { status: 'side' };
          return { status: isAncestor(nodes, before, i) ? 'connected' : 'reorganized' };
        }
        // An invalid block that would beat the head: the chain applies its branch and stops at the oldest
        // faulty block, marks it with its rule and every stored block below it invalid_parent, keeps the head.
        if (!better(n, nodes[expected]!)) return { status: 'side' };
        let first = -1;
        for (let j = i; j > 0; j = nodes[j]!.parent) if (nodes[j]!.fault) first = j;
        assert.ok(first !== -1 && FAULTS[nodes[first]!.fault!] === 'apply' && !marked.has(first), 'model: a stored invalid block has an unmarked apply fault');
        marked.set(first, verdict(nodes[first]!.verdict!.rule!));
        bump(seen.marked, nodes[first]!.fault!);
        for (const j of stored) if (j !== first && isAncestor(nodes, first, j)) marked.set(j, verdict('invalid_parent'));
        return i === first ? n.verdict! : verdict('invalid_parent');
      }

      async function submit(i: number): Promise<'orphan' | 'done'> {
        const n = nodes[i]!;
        const got = await outcome(chain, n.block!);
        const want = predict(i);
        assert.deepEqual(got, want, `block ${i} (height ${n.height}, parent ${n.parent}, fault ${n.fault ?? 'none'}, ${n.valid ? 'valid' : 'invalid'})`);
        if (n.fault && (n.fault === 'unknown_parent' ? got.status === 'orphan' : got.rule === n.verdict!.rule)) bump(seen.own, n.fault);
        if (got.status === 'reorganized') seen.reorgs++;
        if (got.status === 'orphan') return 'orphan';
        if (n.valid && n.block!.txs.length === LIMITS.maxBlockTxs) seen.atTxLimit++;
        if (n.valid && n.block!.bytes.length === LIMITS.maxBlockBytes) seen.atByteLimit++;

        // Invariants after every addBlock.
        const exp = nodes[expected]!;
        assert.equal(chain.head.hashHex, exp.hash, 'head = best valid stored block');
        assert.equal(chain.head.height, exp.height);
        const audit = await chain.auditSupply();
        assert.equal(audit.supply, genesis.totalSupply, 'supply conserved');
        const headBlock = await chain.getBlock(chain.head.hashHex);
        assert.equal(audit.root, toHex(headBlock!.header.stateRoot), 'stored accounts hash to the head state root');
        assert.equal(toHex(chain.stateRoot), audit.root);
        assert.equal(audit.accounts, exp.state.size);
        for (const k of EVERYONE) {
          const want = exp.state.get(toHex(k.publicKey)) ?? { balance: 0n, nonce: 0n };
          assert.deepEqual(await chain.getAccount(k.publicKey), want);
        }
        return 'done';
      }

      if (mode === 'parents-first') {
        const ready = [...(children.get(0) ?? [])];
        while (ready.length) {
          ready.sort((a, b) => key(a) - key(b));
          const i = ready.shift()!;
          const r = await submit(i);
          // A child of a block refused before storage is an orphan for ever.
          if (r === 'orphan') assert.equal(nodes[i]!.valid, false);
          ready.push(...(children.get(i) ?? []));
        }
      } else {
        const order = nodes.map((_, i) => i).slice(1).sort((a, b) => key(a) - key(b));
        const orphans = await feedWithOrphans(order, (i) => nodes[i]!.parent, submit);
        for (const i of orphans) assert.equal(nodes[i]!.valid, false, 'only invalid blocks stay orphaned');
      }

      // Every valid block was stored and none is marked invalid; the best chain is the winner's path.
      for (let i = 1; i < nodes.length; i++) {
        if (nodes[i]!.valid) {
          assert.ok(stored.has(i));
          assert.equal(chain.isInvalid(nodes[i]!.hash), undefined);
        }
      }
      // What the chain remembers of every block is the model's.
      for (let i = 1; i < nodes.length; i++) {
        const n = nodes[i]!;
        assert.equal(chain.hasBlock(n.hash), stored.has(i), `block ${i} (${n.fault ?? 'none'}) stored`);
        assert.equal(chain.isInvalid(n.hash), marked.get(i)?.rule ?? (refused.has(i) ? 'known_invalid' : undefined), `block ${i} (${n.fault ?? 'none'}) mark`);
      }
      const path: Block[] = [];
      for (let i = expected; i > 0; i = nodes[i]!.parent) path.unshift(nodes[i]!.block!);
      for (const b of path) assert.ok(chain.isOnMain(b.header.hashHex));

      const fresh = await openTestChain(genesis);
      for (const b of path) await fresh.chain.addBlock(b);
      assert.equal(fresh.chain.head.hashHex, chain.head.hashHex);
      assert.equal(toHex(fresh.chain.stateRoot), toHex(chain.stateRoot));
      assert.deepEqual(await dump(db, 'anTtxuL'), await dump(fresh.db, 'anTtxuL'), 'consensus keyspaces = replay of the winning branch');

      // A block refused or found invalid is refused again, at once; a mutated copy is judged again on its bytes.
      for (const i of [...refused, ...marked.keys()]) assert.deepEqual(await outcome(chain, nodes[i]!.block!), verdict('known_invalid'), `block ${i} again`);
      for (let i = 1; i < nodes.length; i++) {
        if (nodes[i]!.fault === 'bad_tx_root') assert.deepEqual(await outcome(chain, nodes[i]!.block!), verdict('bad_tx_root'), `mutated block ${i} again`);
      }
      await closeAll(chain, fresh.chain);
    },
  ), { numRuns: RUNS, includeErrorInReport: true });
  assert.equal(runs >= RUNS, true);
  const summary = { runs, ...seen, own: Object.fromEntries(seen.own), marked: Object.fromEntries(seen.marked) };
  t.diagnostic(JSON.stringify(summary));
  for (const f of FAULT_NAMES) assert.ok((seen.own.get(f) ?? 0) >= 5, `fault ${f} rarely judged on its own rule: ${JSON.stringify(summary)}`);
  for (const f of FAULT_NAMES.filter((x) => FAULTS[x] === 'apply')) assert.ok((seen.marked.get(f) ?? 0) >= 5, `fault ${f} rarely marked: ${JSON.stringify(summary)}`);
  assert.ok(seen.atTxLimit >= 20 && seen.atByteLimit >= 20, `valid blocks at the limits rarely stored: ${JSON.stringify(summary)}`);
  assert.ok(seen.reorgs >= 50, `too few reorgs: ${JSON.stringify(summary)}`);
});

// ---- the producer's blocks --------------------------------------------------------------------------

/**
 * What the producer builds from a pool holding more than a block can take (blockCandidates, then
 * assembleBlock), on networks whose byte limit binds before the count limit: the block must be valid, and
 * not empty when transactions fit. The candidates' budget counts each transaction's framing in the block and
 * leaves room for the longest header (a fixed 4096-byte reserve did neither: no transactions at limits up to
 * 4096 bytes, and a 1 MiB block 1,058,047 bytes long, refused by every node including its producer).
 */
test('blocks the producer assembles from a full pool are valid, and not empty, whatever the genesis byte limit', {
  timeout: 120_000,
}, async () => {
  const pv = testKey('prop-producer-val');
  const payers = testKeys('prop-producer-user', 80);
  const wrong: string[] = [];
  for (const maxBlockBytes of [1024, 2048, 4096, 64 * 1024, 1024 * 1024]) {
    const g = makeGenesis({ validators: [pv], alloc: payers.map((u) => [u, 10n ** 9n] as [KeyPair, bigint]), params: { maxBlockBytes, maxBlockTxs: 10_000 } });
    const { chain } = await openTestChain(g);
    const mp = new Mempool({
      db: chain.db, genesis: g, accounts: chain, verifier: new InlineVerifier(), sigCache: chain.sigCache,
      limits: { maxCount: 100_000, maxBytes: 1 << 30, maxPerSender: 100_000 },
    });
    // Plain transfers (~160 bytes each), more than the block's bytes can hold.
    const n = Math.ceil(maxBlockBytes / 150) + 20;
    const txs = Array.from({ length: n }, (_, i) => transfer(payers[i % payers.length]!, payers[(i + 1) % payers.length]!, 1n, BigInt(Math.floor(i / payers.length))));
    const added = await mp.addMany(txs);
    assert.ok(added.every((r) => !(r instanceof Error)), 'the pool takes every transfer');
    const block = await assembleBlock(chain, pv.secretKey, pv.publicKey, 1, blockCandidates(mp, g));
    const got = await outcome(chain, block);
    if (got.status !== 'connected') wrong.push(`${maxBlockBytes}: ${got.rule ?? got.status} (${block.txs.length} txs, ${block.bytes.length} bytes)`);
    else if (block.txs.length === 0) wrong.push(`${maxBlockBytes}: an empty block with ${n} transfers pending`);
    await chain.close();
  }
  assert.deepEqual(wrong, []);
});

async function closeAll(...chains: Chain[]): Promise<void> {
  for (const c of chains) await c.close();
}
