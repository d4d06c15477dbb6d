/**
 * Tests for src/ledger/block.ts: header/block encodings and hash, checkBlockStatic's rules, checkBlockContext's
 * rules (with the clock-drift boundary) and header signatures.
 *
 * A valid block is built with the production assembler on a memory-level chain (test/helpers/fixtures.ts).
 * Each invalid block re-signs a mutated copy of its unsigned header with the key of the validator it names,
 * so every case breaks exactly one rule and still carries a good signature.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { encodeCanonical } from '../../../src/encoding/canonical.js';
import { bytesEqual } from '../../../src/encoding/bytes.js';
import { verify } from '../../../src/crypto/ed25519.js';
import {
  BLOCK_SIGNING_PREFIX, checkBlockContext, checkBlockStatic, decodeBlock, decodeHeader, genesisBlock, headerSigningMessage,
  headerVerifyItem, makeBlock, makeHeader, signHeader, ZERO_HASH, type Block, type UnsignedHeader,
  buildBlock as buildOwnBlock,
} from '../../../src/ledger/block.js';
import type { Genesis } from '../../../src/ledger/genesis.js';
import { merkleRoot } from '../../../src/ledger/merkle.js';
import type { Rule } from '../../../src/ledger/rules.js';
import { slotStart } from '../../../src/ledger/schedule.js';
import { StateLattice } from '../../../src/ledger/statehash.js';
import type { Tx } from '../../../src/ledger/tx.js';
import { buildBlock, makeGenesis, openTestChain, testKey, testKeys, transfer, type TestChain, throwsRule } from '../../helpers/fixtures.js';
import type { KeyPair } from '../../../src/crypto/keyfile.js';

const VALIDATORS = testKeys('block-validator', 3);
const ALICE = testKey('block-alice');
const BOB = testKey('block-bob');

let genesis: Genesis;
let tc: TestChain;
/** Height 1, slot 1 (validator #1), two transfers with 250-byte memos (so the block is > 1 KiB). */
let block: Block;
let txs: Tx[];

before(async () => {
  genesis = makeGenesis({ validators: VALIDATORS, alloc: [[ALICE, 1_000_000n]] });
  tc = await openTestChain(genesis);
  txs = [
    transfer(ALICE, BOB, 100n, 0n, { memo: 'a'.repeat(250) }),
    transfer(ALICE, BOB, 200n, 1n, { memo: 'b'.repeat(250), fee: 3n }),
  ];
  block = await buildBlock(tc.chain, VALIDATORS, 1, txs);
  assert.equal(block.txs.length, 2, 'the assembler kept both transfers');
});

after(async () => {
  await tc.chain.close();
  await tc.db.close();
});

const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(crypto.createHash('sha256').update(b).digest());

function unsignedOf(b: Block): UnsignedHeader {
  const h = b.header;
  return { chainId: h.chainId, height: h.height, slot: h.slot, parentHash: h.parentHash, timestamp: h.timestamp, txRoot: h.txRoot, stateRoot: h.stateRoot, proposer: h.proposer };
}

function keyOf(publicKey: Uint8Array): KeyPair {
  const k = VALIDATORS.find((v) => bytesEqual(v.publicKey, publicKey));
  assert.ok(k, 'proposer is one of the test validators');
  return k;
}

/** Re-sign a mutated copy of the valid block's header (with the key of the proposer it names), with `newTxs`. */
function variant(mutate: Partial<UnsignedHeader>, newTxs: readonly Tx[] = block.txs): Block {
  const u = { ...unsignedOf(block), ...mutate };
  return makeBlock(signHeader(u, keyOf(u.proposer).secretKey), newTxs);
}

/** A variant whose txRoot matches its (changed) transaction list, so only the list itself is wrong. */
function withTxs(newTxs: readonly Tx[]): Block {
  return variant({ txRoot: merkleRoot(newTxs.map((t) => t.id)) }, newTxs);
}


// ---- the valid block ---------------------------------------------------------------------------

test('sanity: the assembled block passes checkBlockStatic and the chain accepts it', async () => {
  const items = checkBlockStatic(block, genesis);
  assert.equal(items.length, 3);
  for (const it of items) assert.equal(verify(it.signature, it.message, it.publicKey), true);
  assert.deepEqual(block.header.proposer, VALIDATORS[1]!.publicKey);
  assert.equal(block.header.height, 1);
  assert.equal(block.header.slot, 1);
  const res = await tc.chain.addBlock(block);
  assert.equal(res.status, 'connected');
});

test('block hash is SHA-256 of the signed header bytes (node:crypto)', () => {
  assert.deepEqual(block.header.hash, sha256(block.header.bytes));
  assert.equal(block.header.hashHex, Buffer.from(sha256(block.header.bytes)).toString('hex'));
});

test('header encoding is the 10-array [1, chainId, height, slot, parentHash, timestamp, txRoot, stateRoot, proposer, signature]', () => {
  const h = block.header;
  const expected = encodeCanonical([1, h.chainId, h.height, h.slot, h.parentHash, h.timestamp, h.txRoot, h.stateRoot, h.proposer, h.signature]);
  assert.deepEqual(h.bytes, expected);
  assert.equal(h.bytes[0], 0x9a);
});

test('block encoding is [header bytes as bin, [tx bytes as bin, …]]', () => {
  assert.deepEqual(block.bytes, encodeCanonical([block.header.bytes, block.txs.map((t) => t.bytes)]));
});

test('makeBlock → decodeBlock round trip: header fields, hash and every transaction id', () => {
  const d = decodeBlock(block.bytes, genesis.params.maxBlockBytes);
  const h = block.header;
  assert.equal(d.header.hashHex, h.hashHex);
  for (const k of ['chainId', 'height', 'slot', 'timestamp', 'version'] as const) assert.equal(d.header[k], h[k], k);
  for (const k of ['parentHash', 'txRoot', 'stateRoot', 'proposer', 'signature'] as const) assert.deepEqual(new Uint8Array(d.header[k]), new Uint8Array(h[k]), k);
  assert.deepEqual(d.txs.map((t) => t.idHex), block.txs.map((t) => t.idHex));
  assert.deepEqual(d.bytes, block.bytes);
  assert.doesNotThrow(() => checkBlockStatic(d, genesis));
});

test('decodeHeader(header.bytes) reproduces the header and its hash', () => {
  const d = decodeHeader(block.header.bytes);
  assert.equal(d.hashHex, block.header.hashHex);
  assert.deepEqual(new Uint8Array(d.txRoot), new Uint8Array(block.header.txRoot));
});

test('decodeBlock reports an undecodable transaction as bad_tx with its index and inner rule', () => {
  const parts = [block.header.bytes, [block.txs[0]!.bytes, new Uint8Array([...block.txs[1]!.bytes, 0])]];
  const e = throwsRule(() => decodeBlock(encodeCanonical(parts), genesis.params.maxBlockBytes), 'bad_tx');
  assert.equal(e.index, 1);
  assert.equal(e.inner?.rule, 'non_canonical', 'a trailing byte after a complete transaction');
  const truncated = [block.header.bytes, [block.txs[0]!.bytes, block.txs[1]!.bytes.subarray(0, 20)]];
  const e2 = throwsRule(() => decodeBlock(encodeCanonical(truncated), genesis.params.maxBlockBytes), 'bad_tx');
  assert.equal(e2.index, 1);
  assert.equal(e2.inner?.rule, 'malformed', 'a truncated transaction');
});

test('decodeBlock rejects trailing bytes (non_canonical) and a 3-element block (malformed)', () => {
  throwsRule(() => decodeBlock(new Uint8Array([...block.bytes, 0xc0]), genesis.params.maxBlockBytes), 'non_canonical');
  throwsRule(() => decodeBlock(encodeCanonical([block.header.bytes, [], []]), genesis.params.maxBlockBytes), 'malformed');
});

// ---- checkBlockStatic: one rule per case -------------------------------------------------------

test('checkBlockStatic: wrong_chain for a header with another chain id', () => {
  throwsRule(() => checkBlockStatic(variant({ chainId: 'other-chain' }), genesis), 'wrong_chain');
});

test('checkBlockStatic: bad_height for height 0 (only genesis has height 0)', () => {
  throwsRule(() => checkBlockStatic(variant({ height: 0 }), genesis), 'bad_height');
});

test('checkBlockStatic: wrong_proposer when another validator signs slot 1 (validator #1\'s slot)', () => {
  for (const other of [VALIDATORS[0]!, VALIDATORS[2]!]) {
    throwsRule(() => checkBlockStatic(variant({ proposer: other.publicKey }), genesis), 'wrong_proposer');
  }
  // the same validator in its own slot (4 = 1 mod 3, timestamp moved along) passes
  assert.doesNotThrow(() => checkBlockStatic(variant({ slot: 4, timestamp: slotStart(genesis, 4) }), genesis));
});

test('checkBlockStatic: wrong_proposer for a non-validator proposer', () => {
  const outsider = testKey('block-outsider');
  const u = { ...unsignedOf(block), proposer: outsider.publicKey };
  throwsRule(() => checkBlockStatic(makeBlock(signHeader(u, outsider.secretKey), block.txs), genesis), 'wrong_proposer');
});

test('checkBlockStatic: bad_timestamp when the timestamp is not exactly the slot start (±1 ms, next slot)', () => {
  const t = block.header.timestamp;
  assert.equal(t, slotStart(genesis, 1));
  for (const ts of [t + 1, t - 1, slotStart(genesis, 2)]) {
    throwsRule(() => checkBlockStatic(variant({ timestamp: ts }), genesis), 'bad_timestamp', `timestamp ${ts}`);
  }
});

test('checkBlockStatic: too_many_txs when the block has more than maxBlockTxs; equal passes', () => {
  const g1 = makeGenesis({ validators: VALIDATORS, alloc: [[ALICE, 1_000_000n]], params: { maxBlockTxs: 1 } });
  throwsRule(() => checkBlockStatic(block, g1), 'too_many_txs');
  const g2 = makeGenesis({ validators: VALIDATORS, alloc: [[ALICE, 1_000_000n]], params: { maxBlockTxs: 2 } });
  assert.doesNotThrow(() => checkBlockStatic(block, g2));
});

test('checkBlockStatic: block_too_large when bytes exceed maxBlockBytes by one; equal passes', () => {
  const n = block.bytes.length;
  assert.ok(n > 1025, `block is ${n} bytes`);
  const over = makeGenesis({ validators: VALIDATORS, alloc: [[ALICE, 1_000_000n]], params: { maxBlockBytes: n - 1 } });
  throwsRule(() => checkBlockStatic(block, over), 'block_too_large');
  const exact = makeGenesis({ validators: VALIDATORS, alloc: [[ALICE, 1_000_000n]], params: { maxBlockBytes: n } });
  assert.doesNotThrow(() => checkBlockStatic(block, exact));
});

test('checkBlockStatic: bad_tx_root for a zero root, a root of reordered txs, and dropped txs', () => {
  throwsRule(() => checkBlockStatic(variant({ txRoot: ZERO_HASH }), genesis), 'bad_tx_root');
  throwsRule(() => checkBlockStatic(variant({ txRoot: merkleRoot([...block.txs].reverse().map((t) => t.id)) }), genesis), 'bad_tx_root');
  throwsRule(() => checkBlockStatic(variant({}, [block.txs[0]!]), genesis), 'bad_tx_root');
});

test('buildBlock: the root is the Merkle root of its frozen list; only that very object skips the second hashing', () => {
  // `block` was made by the producer's assembly, i.e. by buildBlock.
  assert.ok(bytesEqual(block.header.txRoot, merkleRoot(block.txs.map((t) => t.id))));
  assert.ok(Object.isFrozen(block.txs), 'the list the root was computed from cannot change afterwards');
  assert.throws(() => (block.txs as Tx[]).push(block.txs[0]!));
  assert.doesNotThrow(() => checkBlockStatic(block, genesis));
  // The same signed header over other transactions, or a copy of the block object, is checked in full.
  throwsRule(() => checkBlockStatic(makeBlock(block.header, block.txs.slice(1)), genesis), 'bad_tx_root');
  throwsRule(() => checkBlockStatic({ ...block, txs: [...block.txs].reverse() }, genesis), 'bad_tx_root');
  const own = buildOwnBlock({ ...unsignedOf(block) }, block.txs, keyOf(block.header.proposer).secretKey);
  assert.ok(bytesEqual(own.header.txRoot, block.header.txRoot));
});

test('checkBlockStatic: duplicate_tx (with its index) when a transaction repeats, even with a matching root', () => {
  const e = throwsRule(() => checkBlockStatic(withTxs([txs[0]!, txs[1]!, txs[0]!]), genesis), 'duplicate_tx');
  assert.equal(e.index, 2);
});

test('checkBlockStatic: bad_tx with index and inner rule for a transaction breaking a static rule', () => {
  const cases: [Tx, Rule][] = [
    [transfer(ALICE, BOB, 1n, 2n, { fee: 0n }), 'fee_too_low'],
    [transfer(ALICE, BOB, 0n, 2n), 'zero_amount'],
    [transfer(ALICE, BOB, 1n, 2n, { chainId: 'other-chain' }), 'wrong_chain'],
    [transfer(ALICE, BOB, 1n, 2n, { memo: 'x'.repeat(genesis.params.maxMemoBytes + 1) }), 'memo_too_long'],
  ];
  for (const [bad, inner] of cases) {
    const e = throwsRule(() => checkBlockStatic(withTxs([txs[0]!, bad]), genesis), 'bad_tx', inner);
    assert.equal(e.index, 1);
    assert.equal(e.inner?.rule, inner);
  }
});

test('checkBlockStatic returns the header check first, then one per transaction, and each verifies', () => {
  const items = checkBlockStatic(block, genesis);
  assert.deepEqual(items[0]!.message, headerSigningMessage(unsignedOf(block)));
  assert.deepEqual(items[0]!.publicKey, block.header.proposer);
  for (let i = 0; i < block.txs.length; i++) assert.deepEqual(items[i + 1]!.publicKey, block.txs[i]!.from);
});

// ---- signatures --------------------------------------------------------------------------------

test('header signing message is "meshledger:block:v1" || 0x00 || the 9-field unsigned header', () => {
  assert.deepEqual(BLOCK_SIGNING_PREFIX, new Uint8Array(Buffer.from('meshledger:block:v1\0')));
  const u = unsignedOf(block);
  const unsignedBytes = encodeCanonical([1, u.chainId, u.height, u.slot, u.parentHash, u.timestamp, u.txRoot, u.stateRoot, u.proposer]);
  assert.deepEqual(headerSigningMessage(u), new Uint8Array(Buffer.concat([BLOCK_SIGNING_PREFIX, unsignedBytes])));
});

test('headerVerifyItem of a signed header verifies', () => {
  const it = headerVerifyItem(block.header);
  assert.equal(verify(it.signature, it.message, it.publicKey), true);
});

test('a header with a tampered signature (any one bit of 3 positions) fails verify', () => {
  for (const [i, bit] of [[0, 0x01], [31, 0x80], [63, 0x10]] as const) {
    const sig = new Uint8Array(block.header.signature);
    sig[i] = sig[i]! ^ bit;
    const it = headerVerifyItem(makeHeader(unsignedOf(block), sig));
    assert.equal(verify(it.signature, it.message, it.publicKey), false, `sig byte ${i}`);
  }
});

test('a header whose fields changed under the original signature fails verify', () => {
  for (const m of [{ height: 2 }, { stateRoot: ZERO_HASH }, { slot: 4 }] as Partial<UnsignedHeader>[]) {
    const it = headerVerifyItem(makeHeader({ ...unsignedOf(block), ...m }, block.header.signature));
    assert.equal(verify(it.signature, it.message, it.publicKey), false, JSON.stringify(Object.keys(m)));
  }
});

// ---- checkBlockContext -------------------------------------------------------------------------

const FAR_FUTURE = 2 ** 52;

test('checkBlockContext passes height = parent + 1 and slot > parent slot', () => {
  assert.doesNotThrow(() => checkBlockContext({ ...unsignedOf(block), height: 6, slot: 9 }, { height: 5, slot: 8 }, FAR_FUTURE, genesis));
  assert.doesNotThrow(() => checkBlockContext({ ...unsignedOf(block), height: 6, slot: 100 }, { height: 5, slot: 8 }, FAR_FUTURE, genesis));
});

test('checkBlockContext: bad_height when height ≠ parent height + 1', () => {
  for (const height of [5, 7, 0]) {
    throwsRule(() => checkBlockContext({ ...unsignedOf(block), height, slot: 9 }, { height: 5, slot: 8 }, FAR_FUTURE, genesis), 'bad_height', `height ${height}`);
  }
});

test('checkBlockContext: bad_slot when slot equals or precedes the parent slot', () => {
  for (const slot of [8, 7]) {
    throwsRule(() => checkBlockContext({ ...unsignedOf(block), height: 6, slot }, { height: 5, slot: 8 }, FAR_FUTURE, genesis), 'bad_slot', `slot ${slot}`);
  }
});

test('checkBlockContext: future_slot one ms beyond maxClockDriftMs; exactly at the drift passes', () => {
  const drift = genesis.params.maxClockDriftMs;
  assert.equal(drift, 500);
  const h = { ...unsignedOf(block), height: 6, slot: 9 };
  const start = slotStart(genesis, 9);
  assert.doesNotThrow(() => checkBlockContext(h, { height: 5, slot: 8 }, start - drift, genesis));
  throwsRule(() => checkBlockContext(h, { height: 5, slot: 8 }, start - drift - 1, genesis), 'future_slot');
  throwsRule(() => checkBlockContext(h, { height: 5, slot: 8 }, start - 60_000, genesis), 'future_slot');
});

// ---- genesis block -----------------------------------------------------------------------------

test('genesisBlock: height 0, slot 0, parent = config hash, empty tx root, zero proposer and signature', () => {
  const root = new Uint8Array(32).fill(9);
  const g = genesisBlock(genesis, root);
  assert.equal(g.header.height, 0);
  assert.equal(g.header.slot, 0);
  assert.equal(g.header.timestamp, genesis.genesisTime);
  assert.deepEqual(g.header.parentHash, genesis.configHash);
  assert.deepEqual(g.header.txRoot, new Uint8Array(32));
  assert.deepEqual(g.header.stateRoot, root);
  assert.deepEqual(g.header.signature, new Uint8Array(64));
  assert.equal(g.txs.length, 0);
});

test('the assembled block\'s parent is the genesis block over the alloc state root', () => {
  const lattice = new StateLattice();
  for (const a of genesis.alloc) lattice.add(a.publicKey, { balance: a.amount, nonce: 0n });
  assert.deepEqual(block.header.parentHash, genesisBlock(genesis, lattice.root()).header.hash);
});
