/**
 * Fault and adversary suite: the state transition under random transaction sequences WITH random reorgs, and the
 * mempool under random admissions, replacements and head changes.
 *
 * Ledger: two or three competing branches grow from random fork points of a random main branch. Their blocks
 * carry random transfers: valid ones, overspends, wrong nonces, replays of transactions already used on the same
 * branch or taken from another branch (so the same transaction often lands on two branches), transactions for
 * another chain id, and in-block duplicates. An honest block (the model's own assembler) holds only what
 * applies; an ADVERSARIAL block force-includes one transaction that breaks a rule, with the state root a careless
 * implementation would compute (the transfer applied as if the rule did not exist), so only the rule can stop it.
 * All blocks are fed to a real Chain on memory-level in a random order (orphans are re-submitted when their parent
 * arrives). After EVERY addBlock, from the chain's own storage:
 *   - supply (auditSupply) = genesis supply; every stored account is non-empty (balance ≥ 0 by construction of u64);
 *   - the audit root = the head block's state root;
 *   - walking the best chain: each sender's nonces are exactly 0, 1, 2, … (no used nonce is ever on it), every
 *     transaction carries this chain id, no transaction id appears twice, no adversarial block (nor a descendant)
 *     is on it; and every account's nonce = its number of transactions on the best chain.
 * What test/property/chain.property.test.ts proves (model equality, fork choice, replay equality) is not repeated.
 *
 * Mempool: random admissions (right, stale and future nonces, overspends, wrong chain, big memos), fee-bump
 * replacements (enough and too little), blocks built from the candidates plus conflicting transactions (at most
 * 2 a block, fewer than the pool holds, so blocks fill up and leave transactions pending), and
 * competing branches that reorganize the chain, with the node's wiring (chain:head → onHeadChange, serialized).
 * After every step: no two pending transactions share sender and nonce, none has a nonce below its account's
 * nonce, size / bytes / sender counts equal the sums over the held transactions and stay within the limits, the
 * persisted set equals the held set, and candidates() gives each sender's transactions in nonce order, contiguous
 * from the account nonce.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { toHex } from '../../src/encoding/bytes.js';
import { InlineVerifier } from '../../src/crypto/ed25519.js';
import type { Chain } from '../../src/chain/chain.js';
import { decodeAccount } from '../../src/chain/chain.js';
import { makeBlock, signHeader, type Block } from '../../src/ledger/block.js';
import { merkleRoot } from '../../src/ledger/merkle.js';
import { RuleError } from '../../src/ledger/rules.js';
import { slotStart } from '../../src/ledger/schedule.js';
import { applyTx, getAccount, isEmptyAccount, type Account } from '../../src/ledger/state.js';
import { StateLattice } from '../../src/ledger/statehash.js';
import type { Tx } from '../../src/ledger/tx.js';
import { Mempool } from '../../src/mempool/mempool.js';
import { blockCandidates } from '../../src/producer/producer.js';
import { layout } from '../../src/storage/layout.js';
import type { KeyPair } from '../../src/crypto/keyfile.js';
import { addBlockOutcome, buildBlock, makeGenesis, openTestChain, testKeys, transfer, feedWithOrphans } from '../helpers/fixtures.js';

const V = testKeys('fuzz-ledger-val', 3);
const USERS = testKeys('fuzz-ledger-user', 5); // 4 funded, 1 starts empty
const FUNDED = 4;
const ALLOC = USERS.slice(0, FUNDED).map((u, i) => [u, 4_000n + 1_000n * BigInt(i)] as [KeyPair, bigint]);
const genesis = makeGenesis({ validators: V, alloc: ALLOC });
const CHAIN_ID = genesis.chainId;
const OTHER_CHAIN = 'meshledger-other';
const EVERYONE = [...USERS, ...V];
const hex = (b: Uint8Array): string => toHex(b);

type State = Map<string, Account>;

function rootOf(state: State): Uint8Array {
  const l = new StateLattice();
  for (const [k, a] of state) if (!isEmptyAccount(a)) l.add(k, a);
  return l.root();
}

/** Invariants read from the chain's own storage; `isBad(hash)` says whether the model built that block as invalid. */
async function checkChainInvariants(chain: Chain, isValidBlock: (hash: string) => boolean, where: string): Promise<void> {
  const audit = await chain.auditSupply();
  assert.equal(audit.supply, genesis.totalSupply, `${where}: supply`);
  const head = await chain.getBlock(chain.head.hashHex);
  assert.equal(audit.root, hex(head!.header.stateRoot), `${where}: stored accounts do not hash to the head's state root`);
  for await (const [k, v] of chain.db.iterator(layout.range(layout.prefix('a')))) {
    const a = decodeAccount(v);
    assert.ok(!isEmptyAccount(a), `${where}: empty account stored at ${hex(k.subarray(1))}`);
    assert.ok(a.balance >= 0n && a.nonce >= 0n, `${where}: negative account`);
  }
  const sends = new Map<string, bigint>();
  const ids = new Set<string>();
  for (let h = 1; h <= chain.head.height; h++) {
    const b = await chain.getBlockAt(h);
    assert.ok(b, `${where}: best chain has no block at ${h}`);
    assert.ok(isValidBlock(b.header.hashHex), `${where}: block ${b.header.hashHex} at ${h}, built to break a rule, is on the best chain`);
    for (const tx of b.txs) {
      assert.equal(tx.chainId, CHAIN_ID, `${where}: a transaction for chain "${tx.chainId}" is on the best chain`);
      assert.ok(!ids.has(tx.idHex), `${where}: transaction ${tx.idHex} twice on the best chain`);
      ids.add(tx.idHex);
      const from = hex(tx.from);
      const n = sends.get(from) ?? 0n;
      assert.equal(tx.nonce, n, `${where}: nonce ${tx.nonce} of ${from.slice(0, 8)} at height ${h}, expected ${n} (a used or skipped nonce)`);
      sends.set(from, n + 1n);
    }
  }
  for (const k of EVERYONE) {
    const a = await chain.getAccount(k.publicKey);
    assert.equal(a.nonce, sends.get(hex(k.publicKey)) ?? 0n, `${where}: account nonce ≠ its transactions on the best chain`);
  }
}

// ---- the ledger fuzz ---------------------------------------------------------------------------------------

type ActionKind = 'transfer' | 'replay' | 'wrongChain' | 'badNonce' | 'overspend' | 'dupInBlock';
interface Action { kind: ActionKind; from: number; to: number; amount: number; fee: number; pick: number; delta: number }
interface BlockSpec { gap: number; adversarial: boolean; actions: Action[] }
interface BranchSpec { fork: number; blocks: BlockSpec[] }

interface Node {
  block: Block | null;
  hash: string;
  height: number;
  slot: number;
  parent: number;
  state: State;
  valid: boolean;
  /** The rule the forced transaction breaks (adversarial blocks only). */
  broken?: string;
}

const actionArb: fc.Arbitrary<Action> = fc.record({
  kind: fc.oneof(
    { weight: 6, arbitrary: fc.constant<ActionKind>('transfer') },
    { weight: 4, arbitrary: fc.constant<ActionKind>('replay') },
    { weight: 3, arbitrary: fc.constantFrom<ActionKind>('wrongChain', 'badNonce', 'overspend', 'dupInBlock') },
  ),
  from: fc.nat({ max: USERS.length - 1 }),
  to: fc.nat({ max: USERS.length - 1 }),
  amount: fc.oneof(fc.integer({ min: 1, max: 500 }), fc.integer({ min: 1, max: 8_000 })),
  fee: fc.integer({ min: 1, max: 4 }),
  pick: fc.nat(),
  delta: fc.constantFrom(-2, -1, 1, 2),
});
const blockSpecArb: fc.Arbitrary<BlockSpec> = fc.record({
  gap: fc.integer({ min: 1, max: 3 }),
  adversarial: fc.integer({ min: 0, max: 4 }).map((x) => x === 0),
  actions: fc.array(actionArb, { maxLength: 5 }),
});
const treeArb = fc.record({
  main: fc.array(blockSpecArb, { minLength: 2, maxLength: 9 }),
  others: fc.array(fc.record({ fork: fc.nat(), blocks: fc.array(blockSpecArb, { minLength: 1, maxLength: 8 }) }), { minLength: 1, maxLength: 2 }),
  prio: fc.array(fc.nat(), { minLength: 32, maxLength: 32 }),
});

/** Totals over all runs, to show the generators reach every case (a vacuous fuzz would pass too). */
const seen = { blocks: 0, adversarial: 0, rejected: new Map<string, number>(), reorgs: 0, sameTxTwoBranches: 0, replaysIncluded: 0, forced: new Map<string, number>() };
const bump = (m: Map<string, number>, k: string): void => { m.set(k, (m.get(k) ?? 0) + 1); };

function buildTree(spec: { main: BlockSpec[]; others: BranchSpec[] }, genesisHash: Uint8Array): Node[] {
  const g: Node = {
    block: null, hash: '', height: 0, slot: 0, parent: -1, valid: true,
    state: new Map(genesis.alloc.map((a) => [hex(a.publicKey), { balance: a.amount, nonce: 0n }])),
  };
  const nodes: Node[] = [g];
  const pool: Tx[] = []; // every transaction created so far, any branch
  const hashes = new Set<string>();
  const txBranches = new Map<string, Set<number>>();

  const grow = (from: number, blocks: BlockSpec[], branch: number): void => {
    let parentIdx = from;
    for (const s of blocks) {
      const parent = nodes[parentIdx]!;
      const slot = parent.slot + s.gap;
      const proposer = V[slot % V.length]!;
      const state: State = new Map(parent.state);
      const chosen: Tx[] = [];
      const inBlock = new Set<string>();
      let broken: string | undefined;
      for (const a of s.actions) {
        const sender = USERS[a.from]!;
        const acct = getAccount(state, hex(sender.publicKey));
        let tx: Tx | undefined;
        switch (a.kind) {
          case 'transfer': tx = transfer(sender, USERS[a.to]!, BigInt(a.amount), acct.nonce, { fee: BigInt(a.fee) }); break;
          case 'wrongChain': tx = transfer(sender, USERS[a.to]!, BigInt(a.amount), acct.nonce, { fee: BigInt(a.fee), chainId: OTHER_CHAIN }); break;
          case 'badNonce': if (acct.nonce + BigInt(a.delta) >= 0n) tx = transfer(sender, USERS[a.to]!, BigInt(a.amount), acct.nonce + BigInt(a.delta), { fee: BigInt(a.fee) }); break;
          case 'overspend': tx = transfer(sender, USERS[a.to]!, acct.balance + BigInt(a.amount), acct.nonce, { fee: BigInt(a.fee) }); break;
          case 'replay': tx = pool.length ? pool[a.pick % pool.length] : undefined; break;
          case 'dupInBlock': tx = chosen.at(-1); break;
        }
        if (!tx) continue;
        if (a.kind !== 'replay' && a.kind !== 'dupInBlock') pool.push(tx);
        // What breaks, if anything: chain id, in-block duplicate, then the state rules (the real applyTx).
        let rule: string | undefined;
        if (tx.chainId !== CHAIN_ID) rule = 'wrong_chain';
        else if (inBlock.has(tx.idHex)) rule = 'duplicate_tx';
        else {
          const trial: State = new Map(state);
          try {
            applyTx(trial, tx);
          } catch (e) {
            if (!(e instanceof RuleError)) throw e;
            rule = e.rule;
          }
        }
        if (rule === undefined) {
          applyTx(state, tx);
          chosen.push(tx);
          inBlock.add(tx.idHex);
          if (a.kind === 'replay') seen.replaysIncluded++;
          continue;
        }
        // An adversarial block force-includes the first breaking transaction it can, applied as if the rule did not
        // exist (an overspend cannot be: balances are unsigned).
        if (!s.adversarial || broken !== undefined || rule === 'insufficient_funds' || rule === 'amount_overflow') continue;
        const fk = hex(tx.from);
        const f = getAccount(state, fk);
        const cost = tx.amount + tx.fee;
        if (f.balance < cost) continue;
        state.set(fk, { balance: f.balance - cost, nonce: f.nonce + 1n });
        const tk = hex(tx.to);
        const t = getAccount(state, tk);
        state.set(tk, { balance: t.balance + tx.amount, nonce: t.nonce });
        chosen.push(tx);
        inBlock.add(tx.idHex);
        broken = rule;
      }
      const fees = chosen.reduce((n, t) => n + t.fee, 0n);
      const pk = hex(proposer.publicKey);
      const p = getAccount(state, pk);
      state.set(pk, { balance: p.balance + fees, nonce: p.nonce });
      for (const [k, acc] of state) if (isEmptyAccount(acc)) state.delete(k);
      const header = signHeader({
        chainId: CHAIN_ID, height: parent.height + 1, slot, parentHash: parent.block?.header.hash ?? genesisHash, timestamp: slotStart(genesis, slot),
        txRoot: merkleRoot(chosen.map((t) => t.id)), stateRoot: rootOf(state), proposer: proposer.publicKey,
      }, proposer.secretKey);
      const block = makeBlock(header, chosen);
      if (hashes.has(header.hashHex)) { parentIdx = nodes.findIndex((n) => n.hash === header.hashHex); continue; }
      hashes.add(header.hashHex);
      const node: Node = { block, hash: header.hashHex, height: header.height, slot, parent: parentIdx, state, valid: parent.valid && broken === undefined };
      if (broken) { node.broken = broken; bump(seen.forced, broken); }
      nodes.push(node);
      if (node.valid) for (const t of chosen) { const b = txBranches.get(t.idHex) ?? new Set(); b.add(branch); txBranches.set(t.idHex, b); }
      parentIdx = nodes.length - 1;
    }
  };

  grow(0, spec.main, 0);
  spec.others.forEach((b, i) => grow(b.fork % nodes.length, b.blocks, i + 1));
  for (const b of txBranches.values()) if (b.size > 1) seen.sameTxTwoBranches++;
  return nodes;
}

test('ledger: random transfers, replays, wrong chain ids and reorgs across competing branches keep every invariant', { timeout: 120_000 }, async (t) => {
  let runs = 0;
  await fc.assert(fc.asyncProperty(treeArb, async (spec) => {
    runs++;
    const { chain } = await openTestChain(genesis);
    const nodes = buildTree(spec, Buffer.from(chain.genesisHash, 'hex'));
    nodes[0]!.hash = chain.genesisHash;
    const valid = new Set(nodes.filter((n) => n.valid).map((n) => n.hash));
    const byHash = new Map(nodes.map((n, i) => [n.hash, i]));
    const stored = new Set<number>([0]);
    const key = (i: number): number => spec.prio[i % spec.prio.length]! * 64 + i;
    const order = nodes.map((_, i) => i).slice(1).sort((a, b) => key(a) - key(b));

    const submit = async (i: number): Promise<'orphan' | 'done'> => {
      const n = nodes[i]!;
      seen.blocks++;
      if (!n.valid) seen.adversarial++;
      const { status, rule } = await addBlockOutcome(chain, n.block!);
      const where = `block ${i} (height ${n.height}, parent ${n.parent}${n.broken ? `, breaks ${n.broken}` : ''}${n.valid ? '' : ', invalid'})`;
      if (n.valid) assert.equal(rule, undefined, `${where}: a valid block was rejected with ${rule}`);
      else if (rule !== undefined) {
        assert.ok(['bad_tx', 'duplicate_tx', 'invalid_parent', 'known_invalid'].includes(rule), `${where}: rejected with ${rule}`);
        bump(seen.rejected, rule);
      }
      if (status === 'orphan') return 'orphan';
      if (status === 'reorganized') seen.reorgs++;
      if (rule === undefined) stored.add(i);
      await checkChainInvariants(chain, (h) => valid.has(h) || h === chain.genesisHash, where);
      return 'done';
    };

    const orphans = await feedWithOrphans(order, (i) => nodes[i]!.parent, submit);
    // Every valid block got in; only (descendants of) refused blocks stayed orphans.
    for (const i of orphans) assert.equal(nodes[i]!.valid, false, `valid block ${i} stayed an orphan`);
    for (let i = 1; i < nodes.length; i++) if (nodes[i]!.valid) assert.ok(stored.has(i) && byHash.has(nodes[i]!.hash));
    await chain.close();
  }), { numRuns: 300, includeErrorInReport: true });
  const summary = { runs, ...seen, rejected: Object.fromEntries(seen.rejected), forced: Object.fromEntries(seen.forced) };
  t.diagnostic(JSON.stringify(summary));
  assert.ok(seen.reorgs > 60, `too few reorgs: ${JSON.stringify(summary)}`);
  assert.ok(seen.sameTxTwoBranches > 40, `the same transaction rarely landed on two branches: ${JSON.stringify(summary)}`);
  for (const r of ['wrong_chain', 'nonce_too_low', 'nonce_too_high', 'duplicate_tx']) assert.ok((seen.forced.get(r) ?? 0) > 15, `too few adversarial ${r}: ${JSON.stringify(summary)}`);
  assert.ok((seen.rejected.get('bad_tx') ?? 0) > 50, `adversarial blocks were rarely refused: ${JSON.stringify(summary)}`);
});

// ---- the mempool fuzz --------------------------------------------------------------------------------------

type MpOp =
  | { op: 'add'; from: number; to: number; nonceOff: number; fee: number; amount: number; memo: number; wrongChain: boolean }
  | { op: 'replace'; pick: number; feeBump: number }
  | { op: 'resubmit'; pick: number }
  | { op: 'produce'; conflict: number | null; extra: number }
  | { op: 'fork'; back: number; len: number; takePending: boolean };

const mpOpArb: fc.Arbitrary<MpOp> = fc.oneof(
  { weight: 8, arbitrary: fc.record({
    op: fc.constant('add' as const), from: fc.nat({ max: USERS.length - 1 }), to: fc.nat({ max: USERS.length - 1 }),
    nonceOff: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 3 }) }, { weight: 1, arbitrary: fc.integer({ min: -2, max: 6 }) }),
    fee: fc.integer({ min: 1, max: 30 }), amount: fc.oneof(fc.integer({ min: 1, max: 400 }), fc.integer({ min: 1, max: 9_000 })),
    memo: fc.constantFrom(0, 0, 0, 40, 200), wrongChain: fc.integer({ min: 0, max: 14 }).map((x) => x === 0),
  }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('replace' as const), pick: fc.nat(), feeBump: fc.integer({ min: 0, max: 20 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('resubmit' as const), pick: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('produce' as const), conflict: fc.option(fc.nat(), { nil: null }), extra: fc.nat({ max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('fork' as const), back: fc.integer({ min: 0, max: 3 }), len: fc.integer({ min: 1, max: 4 }), takePending: fc.boolean() }) },
);

const LIMITS = { maxCount: 5, maxBytes: 5 * 220, maxPerSender: 4, replaceBumpPercent: 10 };
/**
 * The same network with room for 2 transactions a block, fewer than the pool holds: blocks are built full and
 * leave transactions pending. (Its byte limit stays large: blockCandidates reserves 4096 bytes for the header,
 * so a smaller one would leave no room for any transaction.)
 */
const mpGenesis = makeGenesis({ validators: V, alloc: ALLOC, params: { maxBlockTxs: 2 } });

async function checkMempool(mp: Mempool, chain: Chain, where: string): Promise<void> {
  const ids = mp.ids();
  const txs = ids.map((id) => mp.get(id)!);
  assert.equal(mp.size, ids.length, `${where}: size`);
  assert.equal(mp.bytes, txs.reduce((n, t) => n + t.bytes.length, 0), `${where}: byte accounting`);
  assert.ok(mp.size <= LIMITS.maxCount && mp.bytes <= LIMITS.maxBytes, `${where}: over the limits (${mp.size}, ${mp.bytes})`);
  const slots = new Set<string>();
  const senders = new Set<string>();
  for (const t of txs) {
    const k = `${hex(t.from)}:${t.nonce}`;
    assert.ok(!slots.has(k), `${where}: two pending transactions with sender+nonce ${k}`);
    slots.add(k);
    senders.add(hex(t.from));
    assert.equal(t.chainId, CHAIN_ID, `${where}: a wrong-chain transaction is pending`);
    const acct = await chain.getAccount(t.from);
    assert.ok(t.nonce >= acct.nonce, `${where}: pending nonce ${t.nonce} below the account nonce ${acct.nonce}`);
    // (Not asserted: nonce < account nonce + maxPerSender. Admission enforces that window, but a reorg that lowers an
    // account's nonce leaves already-held future transactions in place; onHeadChange re-checks only stale nonces and
    // balances. A policy gap, not a consensus or accounting issue.)
    assert.equal(await chain.getTxLocation(t.idHex), undefined, `${where}: a transaction on the best chain is still pending`);
  }
  assert.equal(mp.senderCount(), senders.size, `${where}: sender count`);
  for (const s of senders) {
    const p = mp.pendingOf(Buffer.from(s, 'hex'));
    for (let i = 1; i < p.length; i++) assert.ok(p[i - 1]!.nonce < p[i]!.nonce, `${where}: pendingOf not in nonce order`);
  }
  // candidates(): each sender's transactions in nonce order, contiguous from the account nonce, each at most once.
  const cands = mp.candidates(1_000, 1 << 30);
  const next = new Map<string, bigint>();
  const used = new Set<string>();
  for (const c of cands) {
    assert.ok(mp.has(c.idHex), `${where}: candidate ${c.idHex} is not pending`);
    assert.ok(!used.has(c.idHex), `${where}: candidate twice`);
    used.add(c.idHex);
    const s = hex(c.from);
    const want = next.get(s) ?? (await chain.getAccount(c.from)).nonce;
    assert.equal(c.nonce, want, `${where}: candidates out of nonce order for ${s.slice(0, 8)}`);
    next.set(s, want + 1n);
  }
  // Persistence accounting: what is on disk is exactly what is held.
  await mp.flush();
  const onDisk = new Set<string>();
  for await (const [k] of chain.db.iterator(layout.range(layout.prefix('m')))) onDisk.add(hex(k.subarray(1)));
  assert.deepEqual([...onDisk].sort(), [...ids].sort(), `${where}: persisted set ≠ held set`);
}

test('mempool: random adds, replacements, blocks and reorgs keep the pool consistent with the chain', { timeout: 120_000 }, async (t) => {
  const outcomes = new Map<string, number>();
  let reorgs = 0;
  let fullBlocks = 0; // blocks with maxBlockTxs transactions that left some pending
  const { maxBlockTxs } = mpGenesis.params;
  await fc.assert(fc.asyncProperty(fc.array(mpOpArb, { minLength: 10, maxLength: 45 }), async (ops) => {
    const { chain } = await openTestChain(mpGenesis);
    const mp = new Mempool({ db: chain.db, genesis: mpGenesis, accounts: chain, verifier: new InlineVerifier(), sigCache: chain.sigCache, limits: LIMITS });
    mp.on('tx:removed', (e) => bump(outcomes, `removed:${e.reason}`));
    let work: Promise<void> = Promise.resolve();
    const confirmed: Tx[] = []; // every transaction that was on the best chain at some point (replay candidates)
    chain.on('chain:head', ({ connected, disconnected }) => {
      if (disconnected.length) reorgs++;
      for (const b of connected) confirmed.push(...b.txs);
      work = work.then(() => mp.onHeadChange(connected, disconnected));
    });
    const settle = async (): Promise<void> => { await work; await mp.flush(); };
    const tryAdd = async (tx: Tx): Promise<void> => {
      try {
        bump(outcomes, (await mp.add(tx)).status);
      } catch (e) {
        if (!(e instanceof RuleError)) throw e;
        bump(outcomes, e.rule);
      }
    };
    let step = 0;
    for (const o of ops) {
      step++;
      switch (o.op) {
        case 'add': {
          const sender = USERS[o.from]!;
          const acct = await chain.getAccount(sender.publicKey);
          const nonce = acct.nonce + BigInt(o.nonceOff);
          if (nonce < 0n) break;
          await tryAdd(transfer(sender, USERS[o.to]!, BigInt(o.amount), nonce, { fee: BigInt(o.fee), memo: 'm'.repeat(o.memo), chainId: o.wrongChain ? OTHER_CHAIN : CHAIN_ID }));
          break;
        }
        case 'replace': {
          const ids = mp.ids();
          if (!ids.length) break;
          const old = mp.get(ids[o.pick % ids.length]!)!;
          const sender = USERS.find((u) => hex(u.publicKey) === hex(old.from))!;
          const fee = old.fee + BigInt(o.feeBump); // a bump of 0 or 1 is usually too small
          await tryAdd(transfer(sender, USERS[(o.pick + 1) % USERS.length]!, old.amount, old.nonce, { fee, memo: 'r' }));
          break;
        }
        case 'resubmit': {
          // Replay of a transaction that is (or was, before a reorg) confirmed.
          if (confirmed.length) await tryAdd(confirmed[o.pick % confirmed.length]!);
          break;
        }
        case 'produce': {
          const txs = blockCandidates(mp, mpGenesis);
          assert.ok(txs.length <= maxBlockTxs, `step ${step}: the pool offers ${txs.length} transactions for one block`);
          // A conflicting transaction (same sender and nonce as a pending one, not in the pool) goes first.
          if (o.conflict !== null && txs.length) {
            const victim = txs[o.conflict % txs.length]!;
            const sender = USERS.find((u) => hex(u.publicKey) === hex(victim.from))!;
            // It may spend (almost) the whole balance, leaving the sender's later pending transactions unaffordable.
            const bal = (await chain.getAccount(sender.publicKey)).balance;
            const amount = o.extra > 0 && bal > 3n ? bal - 1n - BigInt(o.extra) : 1n;
            txs.unshift(transfer(sender, USERS[(o.conflict + 1) % USERS.length]!, amount, victim.nonce, { fee: 1n, memo: `conflict${step}` }));
          }
          for (let i = 0; i < o.extra; i++) {
            const s = USERS[(step + i) % FUNDED]!;
            txs.push(transfer(s, USERS[4]!, 2n, (await chain.getAccount(s.publicKey)).nonce + BigInt(i), { fee: 1n, memo: `x${step}` }));
          }
          // Within the block limit: the conflict first, then the pool's best, then the extras if there is room.
          const b = await buildBlock(chain, V, chain.head.slot + 1, txs.slice(0, maxBlockTxs));
          await chain.addBlock(b);
          await settle();
          if (b.txs.length === maxBlockTxs && mp.size > 0) fullBlocks++;
          break;
        }
        case 'fork': {
          // A competing branch from a few blocks back, built on a second chain fed the common prefix.
          const forkHeight = Math.max(0, chain.head.height - o.back);
          const { chain: builder } = await openTestChain(mpGenesis);
          for (let h = 1; h <= forkHeight; h++) await builder.addBlock((await chain.getBlockAt(h))!);
          const branch: Block[] = [];
          for (let i = 0; i < o.len; i++) {
            const pending = o.takePending ? blockCandidates(mp, mpGenesis) : [];
            const b = await buildBlock(builder, V, builder.head.slot + 1 + (i === 0 ? 1 : 0), pending);
            await builder.addBlock(b);
            branch.push(b);
          }
          for (const b of branch) {
            try {
              await chain.addBlock(b);
            } catch (e) {
              if (!(e instanceof RuleError)) throw e;
              assert.fail(`a valid branch block was refused: ${e.rule}`);
            }
          }
          await builder.close();
          break;
        }
      }
      await settle();
      await checkMempool(mp, chain, `step ${step} (${o.op})`);
    }
    await chain.close();
  }), { numRuns: 400, includeErrorInReport: true });
  t.diagnostic(JSON.stringify({ reorgs, fullBlocks, outcomes: Object.fromEntries(outcomes) }));
  for (const k of ['accepted', 'replaced', 'replacement_underpriced', 'nonce_too_low', 'too_many_pending', 'insufficient_funds', 'wrong_chain',
    'mempool_full', 'removed:included', 'removed:replaced', 'removed:stale', 'removed:evicted', 'removed:unaffordable']) {
    assert.ok((outcomes.get(k) ?? 0) > 0, `no ${k} outcome: ${JSON.stringify(Object.fromEntries(outcomes))}`);
  }
  assert.ok(reorgs > 5, `only ${reorgs} reorgs`);
  assert.ok(fullBlocks > 20, `only ${fullBlocks} full blocks left transactions pending`);
});
