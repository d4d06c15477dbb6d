/**
 * Block application: transfers/s connected to LevelDB (real `level` in a temp dir) by Chain.addBlock, with
 * the transactions' signatures already verified (their ids pre-filled in the chain's SigCache, as after
 * mempool admission; only the header signature is checked). Blocks of 2000 transfers among 10k accounts,
 * built with the production assembler (not timed).
 *
 * Limit: raw LevelDB batched puts (1000 per batch, 32 B keys, 150 B values), measured in this run
 * (before and after; mean). Also: where the time goes, by timing components on the same inputs:
 *   - LevelDB: every store call made during addBlock, timed by a wrapper around the KV (benchmark only);
 *   - lattice: the block's accountLeaf()+update() calls (remove+add per touched account) and root(),
 *     re-run on a copy of the head's lattice with the same pre/post accounts;
 *   - state apply: applyBlockTxs on the same pre-state;
 *   - other = total − LevelDB − lattice − state apply (static checks, merkle root, encoding, indexes, …).
 * Run: node dist/scripts/bench/block.js [--smoke]    Writes scripts/bench/results/block.json.
 */
import { Chain } from '../../src/chain/chain.js';
import { SigCache } from '../../src/crypto/sigcache.js';
import { toHex } from '../../src/encoding/bytes.js';
import { applyBlockTxs, EMPTY_ACCOUNT, touchedAccounts, type Account as LedgerAccount } from '../../src/ledger/state.js';
import { accountLeaf } from '../../src/ledger/statehash.js';
import { shake256 } from '../../src/crypto/hash.js';
import { assembleBlock } from '../../src/node/producer.js';
import { openLevel } from '../../src/storage/kv.js';
import { ManualClock } from '../../src/util/clock.js';
import type { Tx } from '../../src/ledger/tx.js';
import { SMOKE, nowMs, printRows, row, writeResult } from './common.js';
import { GENESIS_TIME, makeAccounts, makeGenesis, rawLevelPutRate, rmDir, TimedKV, tmpDir, transfer } from './fixtures.js';

const ACCOUNTS = SMOKE ? 300 : 10_000;
const TXS_PER_BLOCK = SMOKE ? 100 : 2000;
const BLOCKS = SMOKE ? 2 : 10;
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
const chain = await Chain.open({ db: kv, genesis, clock: new ManualClock(GENESIS_TIME + 1_000_000_000), sigCache });

let totalMs = 0, dbMs = 0, latticeMs = 0, applyMs = 0, txCount = 0, puts = 0, dels = 0, touched = 0, reads = 0;
try {
  for (let b = 0; b < BLOCKS; b++) {
    const txs = blocksTxs[b]!;
    for (const tx of txs) sigCache.add(tx.idHex);
    const block = await assembleBlock(chain, validator!.sk, validator!.pk, chain.head.slot + 1, txs);
    if (block.txs.length !== txs.length) throw new Error(`assembler took ${block.txs.length} of ${txs.length}`);

    // Components, on the same inputs, outside the timed addBlock.
    const keys = touchedAccounts(block.txs, block.header.proposer);
    const found = await chain.getAccounts(keys);
    const pre = new Map<string, LedgerAccount>(keys.map((k) => [k, found.get(k) ?? EMPTY_ACCOUNT]));
    let t = nowMs();
    const { post } = applyBlockTxs(pre, block.txs, block.header.proposer);
    applyMs += nowMs() - t;
    const lattice = await chain.withHead(async (_h, l) => l);
    t = nowMs();
    for (const k of keys) lattice.update(k, pre.get(k)!, post.get(k)!);
    const root = lattice.root();
    latticeMs += nowMs() - t;
    if (toHex(root) !== toHex(block.header.stateRoot)) throw new Error('lattice re-run does not match the block state root');
    touched += keys.length;

    kv.reset();
    t = nowMs();
    const r = await chain.addBlock(block);
    totalMs += nowMs() - t;
    if (r.status !== 'connected') throw new Error(`block ${b} ${r.status}`);
    dbMs += kv.ms;
    puts += kv.puts;
    dels += kv.dels;
    reads += kv.reads;
    txCount += block.txs.length;
  }
} finally {
  await chain.close();
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

const txPerSec = txCount / (totalMs / 1000);
const putsPerTx = (puts + dels) / txCount;
const otherMs = totalMs - dbMs - latticeMs - applyMs;
const pct = (x: number) => Number(((100 * x) / totalMs).toFixed(1));

console.log(`block application: ${BLOCKS} blocks x ${TXS_PER_BLOCK} transfers, ${ACCOUNTS} accounts, LevelDB (setup ${setupMs.toFixed(0)} ms)`);
console.log(`  addBlock: ${txPerSec.toFixed(0)} tx/s (${(totalMs / BLOCKS).toFixed(1)} ms per block)`);
console.log(`  raw LevelDB batched puts: ${raw.toFixed(0)} puts/s (before ${rawBefore.toFixed(0)}, after ${rawAfter.toFixed(0)})`);
console.log(`  store ops per tx: ${putsPerTx.toFixed(2)} writes, ${(reads / txCount).toFixed(2)} reads; touched accounts per tx ${(touched / txCount).toFixed(2)}`);
console.log(`  LevelDB-implied ceiling: ${(raw / putsPerTx).toFixed(0)} tx/s`);
console.log(`  time per block: LevelDB ${(dbMs / BLOCKS).toFixed(1)} ms (${pct(dbMs)} %), lattice ${(latticeMs / BLOCKS).toFixed(1)} ms (${pct(latticeMs)} %), state apply ${(applyMs / BLOCKS).toFixed(1)} ms (${pct(applyMs)} %), other ${(otherMs / BLOCKS).toFixed(1)} ms (${pct(otherMs)} %)`);
console.log(`  accountLeaf ${leafPerSec.toFixed(0)}/s, raw SHAKE256→2048 B ${shakePerSec.toFixed(0)}/s`);

const summary = [
  row('block application (addBlock, sigs pre-verified)', txPerSec, 'tx/s', { name: 'raw LevelDB batched puts', value: raw, unit: 'puts/s' }),
  row('block application vs LevelDB-implied ceiling', txPerSec, 'tx/s', { name: `raw puts/s ÷ ${putsPerTx.toFixed(2)} writes per tx`, value: raw / putsPerTx, unit: 'tx/s' }),
];
printRows(summary);
writeResult('block', {
  accounts: ACCOUNTS, txsPerBlock: TXS_PER_BLOCK, blocks: BLOCKS,
  txPerSec: Math.round(txPerSec), msPerBlock: Number((totalMs / BLOCKS).toFixed(2)),
  rawLevelPutsPerSec: { mean: Math.round(raw), before: Math.round(rawBefore), after: Math.round(rawAfter) },
  writesPerTx: Number(putsPerTx.toFixed(3)), readsPerTx: Number((reads / txCount).toFixed(3)), touchedAccountsPerTx: Number((touched / txCount).toFixed(3)),
  levelImpliedCeilingTxPerSec: Math.round(raw / putsPerTx),
  timeShares: {
    levelDbPct: pct(dbMs), latticePct: pct(latticeMs), stateApplyPct: pct(applyMs), otherPct: pct(otherMs),
    msPerBlock: { levelDb: Number((dbMs / BLOCKS).toFixed(2)), lattice: Number((latticeMs / BLOCKS).toFixed(2)), stateApply: Number((applyMs / BLOCKS).toFixed(2)), other: Number((otherMs / BLOCKS).toFixed(2)) },
  },
  accountLeafPerSec: Math.round(leafPerSec), shake256x2048PerSec: Math.round(shakePerSec),
  summary,
});
