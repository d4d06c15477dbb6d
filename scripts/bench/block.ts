/**
 * Block application: transfers/s connected to LevelDB (real `level` in a temp dir) by Chain.addBlock, with
 * the transactions' signatures already verified (their ids pre-filled in the chain's SigCache, as after
 * mempool admission; only the header signature is checked). Blocks of 2000 transfers among 10k accounts,
 * built with the production assembler (not timed). As in the node, state-lattice leaves missing from the
 * cache are expanded on the 2-thread worker pool (WorkerVerifier as the chain's LeafHasher); `--inline-leaves`
 * computes them on the main thread instead.
 *
 * Limit: raw LevelDB batched puts (1000 per batch, 32 B keys, 150 B values), measured in this run
 * (before and after; mean), divided by the store writes per transaction.
 * Three cases, in turn block by block:
 *   - a peer's block, cold: decoded from its bytes, and no leaf of it computed here (the leaf cache is
 *     cleared first): the case of sync, and the worst case of validating another validator's block;
 *   - a peer's block after the node's leaf warm-up: the same, but its transactions were our mempool's
 *     candidates, so after the previous head change the node computed the leaves a block of them by the
 *     next proposer needs (chain.warmLeaves, as Node does; not timed): the steady state of a validator
 *     whose mempool holds what the proposer's does;
 *   - the validator's own block (the object its assembly built: every leaf and the transactions root were
 *     computed by that assembly).
 * Where the time of a cold peer's block goes, by timing components on the same inputs:
 *   - LevelDB: every store call made during addBlock, timed by a wrapper around the KV (benchmark only);
 *   - lattice: leaf expansion (pool or inline) + update() per touched account + root(), re-run on a copy of
 *     the head's lattice with the same pre/post accounts and an empty leaf cache;
 *   - state apply: applyBlockTxs on the same pre-state;
 *   - other = total − LevelDB − lattice − state apply (static checks, merkle root, encoding, indexes, …).
 * Run: node dist/scripts/bench/block.js [--smoke]    Writes scripts/bench/results/block.json.
 */
import { Chain, decodeAccount } from '../../src/chain/chain.js';
import { layout } from '../../src/storage/layout.js';
import { SigCache } from '../../src/crypto/sigcache.js';
import { WorkerVerifier } from '../../src/crypto/verifypool.js';
import { fromHex, toHex } from '../../src/encoding/bytes.js';
import { applyBlockTxs, EMPTY_ACCOUNT, touchedAccounts, type Account as LedgerAccount } from '../../src/ledger/state.js';
import { accountLeaf, clearLeafCache, leavesFor } from '../../src/ledger/statehash.js';
import { shake256 } from '../../src/crypto/hash.js';
import { assembleBlock } from '../../src/producer/producer.js';
import { decodeBlock } from '../../src/ledger/block.js';
import { openLevel } from '../../src/storage/kv.js';
import { ManualClock } from '../../src/util/clock.js';
import type { Tx } from '../../src/ledger/tx.js';
import { SMOKE, nowMs, printRows, row, writeResult } from './common.js';
import { GENESIS_TIME, makeAccounts, makeGenesis, rawLevelPutRate, rmDir, TimedKV, tmpDir, transfer } from './fixtures.js';

const ACCOUNTS = SMOKE ? 300 : 10_000;
const TXS_PER_BLOCK = SMOKE ? 100 : 2000;
const BLOCKS = SMOKE ? 3 : 12;
const RAW_BATCHES = SMOKE ? 5 : 100;

const rawBefore = await rawLevelPutRate(RAW_BATCHES);

const t0 = nowMs();
const [validator] = makeAccounts('validator', 1);
const accounts = makeAccounts('acct', ACCOUNTS);
const genesis = makeGenesis([validator!], accounts, 10n ** 12n);
// Deterministic pseudo-random recipients.
let seed = 12345;
const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n; };
const blocksTxs: Tx[][] = [];
for (let b = 0; b < BLOCKS; b++) {
  const txs: Tx[] = [];
  for (let j = 0; j < TXS_PER_BLOCK; j++) {
    const from = accounts[(b * TXS_PER_BLOCK + j) % ACCOUNTS]!;
    txs.push(transfer(from, accounts[rnd(ACCOUNTS)]!.pk, 1000n + BigInt(j)));
  }
  blocksTxs.push(txs);
}
const setupMs = nowMs() - t0;

const dir = tmpDir('block');
const kv = new TimedKV(await openLevel(dir));
const sigCache = new SigCache();
const INLINE_LEAVES = process.argv.includes('--inline-leaves');
const pool = INLINE_LEAVES ? undefined : new WorkerVerifier(2);
const chain = await Chain.open({ db: kv, genesis, clock: new ManualClock(GENESIS_TIME + 1_000_000_000), sigCache, leafHasher: pool });

// Even blocks: the validator's own block (its assembly computed every leaf it needs). Odd blocks: a peer's
// block (no leaf of it computed here before: every one is computed). The time breakdown is over peer blocks.
const own = { ms: 0, txs: 0 }, peer = { ms: 0, txs: 0 }, warm = { ms: 0, txs: 0 };
let dbMs = 0, latticeMs = 0, applyMs = 0, puts = 0, dels = 0, touched = 0, reads = 0, opsTxs = 0;
// The same components for the validator's own block, whose leaves are all cached: the lattice part is then
// the lanes update and the root only.
let ownDbMs = 0, ownLatticeMs = 0, ownApplyMs = 0;
try {
  for (let b = 0; b < BLOCKS; b++) {
    const txs = blocksTxs[b]!;
    for (const tx of txs) sigCache.add(tx.idHex);
    const block = await assembleBlock(chain, validator!.sk, validator!.pk, chain.head.slot + 1, txs);
    if (block.txs.length !== txs.length) throw new Error(`assembler took ${block.txs.length} of ${txs.length}`);
    // 0: the validator's own block; 1: a peer's block, cold; 2: a peer's block after the node's leaf warm-up.
    const kind = b % 3;
    const peerBlock = kind !== 0;

    // Components, on the same inputs, outside the timed addBlock.
    const keys = touchedAccounts(block.txs, block.header.proposer);
    // Read from the store itself, not through the chain (whose account cache this must not warm).
    const vals = await kv.inner.getMany(keys.map((k) => layout.account(fromHex(k))));
    const pre = new Map<string, LedgerAccount>(keys.map((k, i) => [k, vals[i] ? decodeAccount(vals[i]!) : EMPTY_ACCOUNT]));
    let t = nowMs();
    const { post } = applyBlockTxs(pre, block.txs, block.header.proposer);
    const applyOne = nowMs() - t;
    const lattice = await chain.withHead(async (_h, l) => l);
    clearLeafCache();
    t = nowMs();
    const changed = keys.filter((k) => { const a = pre.get(k)!, z = post.get(k)!; return a.balance !== z.balance || a.nonce !== z.nonce; });
    const pairs = changed.flatMap((k) => [[k, pre.get(k)!], [k, post.get(k)!]] as const);
    const leaves = await leavesFor(pool, pairs);
    lattice.replaceLeaves(leaves);
    const root = lattice.root();
    const latticeOne = nowMs() - t;
    if (toHex(root) !== toHex(block.header.stateRoot)) throw new Error('lattice re-run does not match the block state root');
    let latticeCachedOne = 0;
    if (kind === 0) {
      const again = await chain.withHead(async (_h, l) => l);
      t = nowMs();
      again.replaceLeaves(await leavesFor(pool, pairs)); // every leaf cached by the run above
      if (toHex(again.root()) !== toHex(root)) throw new Error('cached-leaf lattice re-run differs');
      latticeCachedOne = nowMs() - t;
    }

    if (peerBlock) clearLeafCache();
    else for (const k of keys) { accountLeaf(k, pre.get(k)!); accountLeaf(k, post.get(k)!); }
    // The warm case: its transactions were this node's mempool candidates, and after the previous head
    // change the node warmed the leaves a block of them by the next proposer needs (Node:
    // chain.warmLeaves(candidates, next proposer)); not timed.
    if (kind === 2) await chain.warmLeaves(txs, block.header.proposer);
    // A peer's block arrives as bytes: decoded here (outside the timing; P2P does it on receipt), so that
    // nothing this process computed while building it (the transactions root) is known for it.
    const added = peerBlock ? decodeBlock(block.bytes, genesis.params.maxBlockBytes) : block;
    kv.reset();
    t = nowMs();
    const r = await chain.addBlock(added);
    const ms = nowMs() - t;
    if (r.status !== 'connected') throw new Error(`block ${b} ${r.status}`);
    const acc = kind === 1 ? peer : kind === 2 ? warm : own;
    acc.ms += ms;
    acc.txs += block.txs.length;
    puts += kv.puts;
    dels += kv.dels;
    reads += kv.reads;
    touched += keys.length;
    opsTxs += block.txs.length;
    if (kind === 1) { dbMs += kv.ms; latticeMs += latticeOne; applyMs += applyOne; }
    if (kind === 0) { ownDbMs += kv.ms; ownLatticeMs += latticeCachedOne; ownApplyMs += applyOne; }
  }
} finally {
  await chain.close();
  await pool?.close();
  await kv.close();
  rmDir(dir);
}

const rawAfter = await rawLevelPutRate(RAW_BATCHES);
const raw = (rawBefore + rawAfter) / 2;

// Lattice micro-figures: accountLeaf() alone and raw SHAKE256 of the same output size.
const N_LEAF = SMOKE ? 500 : 20_000;
let t = nowMs();
for (let i = 0; i < N_LEAF; i++) accountLeaf(accounts[i % ACCOUNTS]!.pk, { balance: BigInt(i) + 1n, nonce: 1n });
const leafPerSec = N_LEAF / ((nowMs() - t) / 1000);
const input = new Uint8Array(100);
t = nowMs();
for (let i = 0; i < N_LEAF; i++) { input[0] = i; shake256(input, 2048); }
const shakePerSec = N_LEAF / ((nowMs() - t) / 1000);

const peerTxPerSec = peer.txs / (peer.ms / 1000);
const ownTxPerSec = own.txs / (own.ms / 1000);
const putsPerTx = (puts + dels) / opsTxs;
const peerBlocks = BLOCKS / 3;
const warmTxPerSec = warm.txs / (warm.ms / 1000);
const otherMs = peer.ms - dbMs - latticeMs - applyMs;
const ownOtherMs = own.ms - ownDbMs - ownLatticeMs - ownApplyMs;
const pct = (x: number) => Number(((100 * x) / peer.ms).toFixed(1));
const ownPct = (x: number) => Number(((100 * x) / own.ms).toFixed(1));
const per = (x: number) => Number((x / peerBlocks).toFixed(2));
const leaves = pool ? '2 pool threads' : 'main thread';

console.log(`block application: ${BLOCKS} blocks x ${TXS_PER_BLOCK} transfers, ${ACCOUNTS} accounts, LevelDB, missing leaves on the ${leaves} (setup ${setupMs.toFixed(0)} ms)`);
console.log(`  addBlock, a peer's block (no leaf cached): ${peerTxPerSec.toFixed(0)} tx/s (${(peer.ms / peerBlocks).toFixed(1)} ms per block)`);
console.log(`  addBlock, a peer's block after the leaf warm-up (its transactions were in our mempool): ${warmTxPerSec.toFixed(0)} tx/s (${(warm.ms / peerBlocks).toFixed(1)} ms per block)`);
console.log(`  addBlock, the validator's own block (leaves computed by its assembly): ${ownTxPerSec.toFixed(0)} tx/s (${(own.ms / peerBlocks).toFixed(1)} ms per block)`);
console.log(`  raw LevelDB batched puts: ${raw.toFixed(0)} puts/s (before ${rawBefore.toFixed(0)}, after ${rawAfter.toFixed(0)})`);
console.log(`  store ops per tx: ${putsPerTx.toFixed(2)} writes, ${(reads / opsTxs).toFixed(2)} reads; touched accounts per tx ${(touched / opsTxs).toFixed(2)}`);
console.log(`  LevelDB-implied ceiling: ${(raw / putsPerTx).toFixed(0)} tx/s`);
console.log(`  time per peer block: LevelDB ${per(dbMs)} ms (${pct(dbMs)} %), lattice ${per(latticeMs)} ms (${pct(latticeMs)} %), state apply ${per(applyMs)} ms (${pct(applyMs)} %), other ${per(otherMs)} ms (${pct(otherMs)} %)`);
console.log(`  time per own block: LevelDB ${per(ownDbMs)} ms (${ownPct(ownDbMs)} %), lattice with every leaf cached ${per(ownLatticeMs)} ms (${ownPct(ownLatticeMs)} %), state apply ${per(ownApplyMs)} ms (${ownPct(ownApplyMs)} %), other ${per(ownOtherMs)} ms (${ownPct(ownOtherMs)} %); the 50k target allows ${((TXS_PER_BLOCK / 50_000) * 1000).toFixed(1)} ms`);
console.log(`  accountLeaf ${leafPerSec.toFixed(0)}/s, raw SHAKE256→2048 B ${shakePerSec.toFixed(0)}/s (one thread)`);

const ceiling = { name: `raw puts/s ÷ ${putsPerTx.toFixed(2)} writes per tx`, value: raw / putsPerTx, unit: 'tx/s' };
const summary = [
  row("block application, a peer's block (addBlock, sigs pre-verified, no leaf cached)", peerTxPerSec, 'tx/s', ceiling, '≥ 50,000 tx/s'),
  row("block application, a peer's block after the node's leaf warm-up", warmTxPerSec, 'tx/s', ceiling, '≥ 50,000 tx/s'),
  row("block application, the validator's own block", ownTxPerSec, 'tx/s', ceiling, '≥ 50,000 tx/s'),
];
printRows(summary);
writeResult('block', {
  accounts: ACCOUNTS, txsPerBlock: TXS_PER_BLOCK, blocks: BLOCKS, leaves,
  peerBlockTxPerSec: Math.round(peerTxPerSec), warmPeerBlockTxPerSec: Math.round(warmTxPerSec), ownBlockTxPerSec: Math.round(ownTxPerSec),
  msPerPeerBlock: per(peer.ms), msPerWarmPeerBlock: per(warm.ms), msPerOwnBlock: per(own.ms),
  rawLevelPutsPerSec: { mean: Math.round(raw), before: Math.round(rawBefore), after: Math.round(rawAfter) },
  writesPerTx: Number(putsPerTx.toFixed(3)), readsPerTx: Number((reads / opsTxs).toFixed(3)), touchedAccountsPerTx: Number((touched / opsTxs).toFixed(3)),
  levelImpliedCeilingTxPerSec: Math.round(raw / putsPerTx),
  peerBlockTimeShares: {
    levelDbPct: pct(dbMs), latticePct: pct(latticeMs), stateApplyPct: pct(applyMs), otherPct: pct(otherMs),
    msPerBlock: { levelDb: per(dbMs), lattice: per(latticeMs), stateApply: per(applyMs), other: per(otherMs) },
  },
  ownBlockTimeShares: {
    levelDbPct: ownPct(ownDbMs), latticeCachedPct: ownPct(ownLatticeMs), stateApplyPct: ownPct(ownApplyMs), otherPct: ownPct(ownOtherMs),
    msPerBlock: { levelDb: per(ownDbMs), latticeCached: per(ownLatticeMs), stateApply: per(ownApplyMs), other: per(ownOtherMs) },
  },
  accountLeafPerSec: Math.round(leafPerSec), shake256x2048PerSec: Math.round(shakePerSec),
  summary,
});
