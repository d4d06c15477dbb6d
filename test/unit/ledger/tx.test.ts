/**
 * Tests for src/ledger/tx.ts: signed encoding, id, signing message (and the slicing shortcut in txVerifyItem),
 * decodeTx's rejections, and checkTxStatic's context-free rules with their passing boundaries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fc from 'fast-check';
import { encodeCanonical, type CanonicalValue } from '../../../src/encoding/canonical.js';
import { U64_MAX } from '../../../src/encoding/bytes.js';
import { verify } from '../../../src/crypto/ed25519.js';
import { DEFAULT_PARAMS, type GenesisParams } from '../../../src/ledger/genesis.js';
import { RuleError } from '../../../src/ledger/rules.js';
import {
  checkTxStatic, decodeTx, encodeUnsignedTx, MAX_TX_BYTES, signTx, TX_SIGNING_PREFIX, txSigningMessage, txVerifyItem,
  type Tx, type UnsignedTx,
} from '../../../src/ledger/tx.js';
import { testKey, transfer, throwsRule } from '../../helpers/fixtures.js';

const CHAIN = 'meshledger-test';
const ALICE = testKey('tx-alice');
const BOB = testKey('tx-bob');


function unsigned(o: Partial<UnsignedTx> = {}): UnsignedTx {
  return { chainId: CHAIN, from: ALICE.publicKey, to: BOB.publicKey, amount: 1000n, fee: 10n, nonce: 0n, memo: '', ...o };
}

const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(crypto.createHash('sha256').update(b).digest());

/** A fixarray whose elements are given as already-encoded bytes (lets a test splice in a non-canonical element). */
function rawArray(parts: Uint8Array[]): Uint8Array {
  assert.ok(parts.length < 16);
  return new Uint8Array(Buffer.concat([Buffer.from([0x90 | parts.length]), ...parts]));
}

function signedFieldParts(tx: Tx): Uint8Array[] {
  const fields: CanonicalValue[] = [1, tx.chainId, tx.from, tx.to, tx.amount, tx.fee, tx.nonce, tx.memo, tx.signature];
  return fields.map((f) => encodeCanonical(f));
}

// ---- encoding, id, round trip ------------------------------------------------------------------

test('signTx → decodeTx round trip: all fields, signature, bytes and id are equal', () => {
  const tx = signTx(unsigned({ amount: (1n << 40n) + 3n, fee: 77n, nonce: 5n, memo: 'rent – März' }), ALICE.secretKey);
  const d = decodeTx(tx.bytes);
  for (const k of ['chainId', 'amount', 'fee', 'nonce', 'memo', 'idHex'] as const) assert.equal(d[k], tx[k], k);
  for (const k of ['from', 'to', 'signature', 'bytes', 'id'] as const) assert.deepEqual(new Uint8Array(d[k]), new Uint8Array(tx[k]), k);
  assert.equal(typeof d.amount, 'bigint');
  assert.equal(typeof d.nonce, 'bigint');
});

test('tx id is SHA-256 of the signed encoding (computed with node:crypto)', () => {
  const tx = transfer(ALICE, BOB, 5n, 0n);
  assert.deepEqual(tx.id, sha256(tx.bytes));
  assert.equal(tx.idHex, Buffer.from(sha256(tx.bytes)).toString('hex'));
});

test('signed encoding is the 9-element array [1, chainId, from, to, amount, fee, nonce, memo, signature]', () => {
  const tx = transfer(ALICE, BOB, 300n, 2n, { fee: 1n, memo: 'hi' });
  assert.deepEqual(tx.bytes, rawArray(signedFieldParts(tx)));
  assert.equal(tx.bytes[0], 0x99);
  assert.equal(tx.signature.length, 64);
  // and the unsigned encoding is the same without the signature, under fixarray header 0x98
  assert.deepEqual(encodeUnsignedTx(tx), rawArray(signedFieldParts(tx).slice(0, 8)));
});

test('signing message is "meshledger:tx:v1" || 0x00 || unsigned encoding, and the signature verifies over it', () => {
  assert.equal(Buffer.from(TX_SIGNING_PREFIX).toString('hex'), Buffer.from('meshledger:tx:v1\0', 'latin1').toString('hex'));
  const u = unsigned({ memo: 'x' });
  const tx = signTx(u, ALICE.secretKey);
  const msg = new Uint8Array(Buffer.concat([Buffer.from('meshledger:tx:v1\0'), encodeUnsignedTx(u)]));
  assert.deepEqual(txSigningMessage(u), msg);
  assert.equal(verify(tx.signature, msg, ALICE.publicKey), true);
});

test('signTx refuses a secret key that does not belong to `from`', () => {
  assert.throws(() => signTx(unsigned(), BOB.secretKey), /does not match/);
});

const MEMOS: [string, string][] = [
  ['0 bytes', ''],
  ['31 bytes (largest fixstr)', 'm'.repeat(31)],
  ['32 bytes (smallest str8)', 'm'.repeat(32)],
  ['255 bytes (largest str8)', 'm'.repeat(255)],
  ['256 bytes (smallest str16)', 'm'.repeat(256)],
  ['32 bytes of 2-byte UTF-8 (16 × é)', 'é'.repeat(16)],
  ['256 bytes of 4-byte UTF-8 (64 × 😀)', '😀'.repeat(64)],
  ['mixed 1/2/3/4-byte UTF-8', 'aé€😀'.repeat(20)],
];
for (const [name, memo] of MEMOS) {
  test(`txVerifyItem's sliced message equals prefix || fresh unsigned encoding, memo of ${name}`, () => {
    const u = unsigned({ memo, amount: 70000n, fee: 300n, nonce: 1n << 33n });
    const tx = decodeTx(signTx(u, ALICE.secretKey).bytes);
    const item = txVerifyItem(tx);
    assert.deepEqual(item.message, new Uint8Array(Buffer.concat([TX_SIGNING_PREFIX, encodeUnsignedTx(u)])));
    assert.deepEqual(item.publicKey, ALICE.publicKey);
    assert.deepEqual(item.signature, tx.signature);
    assert.equal(verify(item.signature, item.message, item.publicKey), true);
  });
}

// ---- decodeTx rejections -----------------------------------------------------------------------

test('decodeTx rejects the 8-field unsigned encoding as malformed', () => {
  throwsRule(() => decodeTx(encodeUnsignedTx(unsigned())), 'malformed');
});

test('decodeTx rejects a 10-field array as malformed', () => {
  const tx = transfer(ALICE, BOB, 1n, 0n);
  throwsRule(() => decodeTx(rawArray([...signedFieldParts(tx), encodeCanonical(0)])), 'malformed');
});

test('decodeTx rejects version 2 and version 0 as bad_version', () => {
  const tx = transfer(ALICE, BOB, 1n, 0n);
  for (const v of [0, 2]) {
    const parts = signedFieldParts(tx);
    parts[0] = encodeCanonical(v);
    throwsRule(() => decodeTx(rawArray(parts)), 'bad_version', `version ${v}`);
  }
});

test('decodeTx rejects a 31-byte from, a 33-byte to and a 63-byte signature as malformed', () => {
  const tx = transfer(ALICE, BOB, 1n, 0n);
  const cases: [number, Uint8Array][] = [[2, new Uint8Array(31)], [3, new Uint8Array(33)], [8, new Uint8Array(63)]];
  for (const [i, v] of cases) {
    const parts = signedFieldParts(tx);
    parts[i] = encodeCanonical(v);
    throwsRule(() => decodeTx(rawArray(parts)), 'malformed', `field ${i} of ${v.length} bytes`);
  }
});

test('decodeTx rejects wrongly typed fields as malformed (amount as string, memo as bytes, chainId as int)', () => {
  const tx = transfer(ALICE, BOB, 1n, 0n);
  const cases: [number, CanonicalValue][] = [[4, '1'], [7, new Uint8Array(1)], [1, 7], [5, null], [6, true]];
  for (const [i, v] of cases) {
    const parts = signedFieldParts(tx);
    parts[i] = encodeCanonical(v);
    throwsRule(() => decodeTx(rawArray(parts)), 'malformed', `field ${i}`);
  }
});

test('decodeTx rejects a non-canonical amount (5 as uint16 cd0005) as non_canonical', () => {
  const tx = transfer(ALICE, BOB, 5n, 0n);
  const parts = signedFieldParts(tx);
  assert.equal(Buffer.from(parts[4]!).toString('hex'), '05');
  parts[4] = new Uint8Array([0xcd, 0x00, 0x05]);
  throwsRule(() => decodeTx(rawArray(parts)), 'non_canonical');
});

test('decodeTx rejects a trailing byte after a valid transaction as non_canonical', () => {
  const tx = transfer(ALICE, BOB, 5n, 0n);
  throwsRule(() => decodeTx(new Uint8Array([...tx.bytes, 0x00])), 'non_canonical');
});

test('decodeTx accepts exactly MAX_TX_BYTES and rejects MAX_TX_BYTES + 1 as tx_too_large', () => {
  const base = unsigned({ memo: 'z'.repeat(256) }); // str16 header from here on: length grows 1:1 with the memo
  const baseLen = encodeUnsignedTx(base).length + 66;
  const memoFor = (total: number): string => 'z'.repeat(256 + total - baseLen);
  const atMax = signTx(unsigned({ memo: memoFor(MAX_TX_BYTES) }), ALICE.secretKey);
  assert.equal(atMax.bytes.length, MAX_TX_BYTES);
  assert.equal(decodeTx(atMax.bytes).idHex, atMax.idHex);
  const over = signTx(unsigned({ memo: memoFor(MAX_TX_BYTES + 1) }), ALICE.secretKey);
  assert.equal(over.bytes.length, MAX_TX_BYTES + 1);
  throwsRule(() => decodeTx(over.bytes), 'tx_too_large');
});

test('decodeTx rejects empty and truncated input as malformed', () => {
  const tx = transfer(ALICE, BOB, 5n, 0n);
  throwsRule(() => decodeTx(new Uint8Array(0)), 'malformed');
  throwsRule(() => decodeTx(tx.bytes.subarray(0, tx.bytes.length - 1)), 'malformed');
});

// ---- no mutated transaction verifies -----------------------------------------------------------

/** True iff `bytes` decodes to a transaction whose signature verifies. */
function decodesAndVerifies(bytes: Uint8Array): boolean {
  let d: Tx;
  try {
    d = decodeTx(bytes);
  } catch (e) {
    assert.ok(e instanceof RuleError, `decodeTx threw a non-RuleError: ${String(e)}`);
    return false;
  }
  const it = txVerifyItem(d);
  return verify(it.signature, it.message, it.publicKey);
}

const MUTATION_BASE = signTx(unsigned({ amount: 123456n, fee: 17n, nonce: 3n, memo: 'mutation target é' }), ALICE.secretKey);

test('sanity: the unmutated base transaction decodes and verifies', () => {
  assert.equal(decodesAndVerifies(MUTATION_BASE.bytes), true);
});

test('every byte position mutated by xor 0x01, 0x80 or 0xff yields no verifying transaction', () => {
  const b = MUTATION_BASE.bytes;
  for (let i = 0; i < b.length; i++) {
    for (const x of [0x01, 0x80, 0xff]) {
      const m = new Uint8Array(b);
      m[i] = m[i]! ^ x;
      assert.equal(decodesAndVerifies(m), false, `byte ${i} xor ${x.toString(16)}`);
    }
  }
});

test('property: any single-byte change of a valid signed tx never verifies', () => {
  const b = MUTATION_BASE.bytes;
  fc.assert(fc.property(fc.nat({ max: b.length - 1 }), fc.integer({ min: 1, max: 255 }), (pos, delta) => {
    const m = new Uint8Array(b);
    m[pos] = (m[pos]! + delta) & 0xff;
    return !decodesAndVerifies(m);
  }), { numRuns: 1500 });
});

// ---- checkTxStatic -----------------------------------------------------------------------------

const PARAMS: GenesisParams = { ...DEFAULT_PARAMS, minFee: 10n, maxMemoBytes: 256 };

test('checkTxStatic passes a plain valid transaction', () => {
  assert.doesNotThrow(() => checkTxStatic(unsigned(), CHAIN, PARAMS));
});

test('checkTxStatic: wrong_chain for another chain id (even a prefix of ours)', () => {
  throwsRule(() => checkTxStatic(unsigned({ chainId: 'other' }), CHAIN, PARAMS), 'wrong_chain');
  throwsRule(() => checkTxStatic(unsigned({ chainId: 'meshledger' }), CHAIN, PARAMS), 'wrong_chain');
});

test('checkTxStatic: zero_amount for amount 0; amount 1 passes', () => {
  throwsRule(() => checkTxStatic(unsigned({ amount: 0n }), CHAIN, PARAMS), 'zero_amount');
  assert.doesNotThrow(() => checkTxStatic(unsigned({ amount: 1n }), CHAIN, PARAMS));
});

test('checkTxStatic: fee_too_low for minFee − 1; fee == minFee passes', () => {
  throwsRule(() => checkTxStatic(unsigned({ fee: 9n }), CHAIN, PARAMS), 'fee_too_low');
  throwsRule(() => checkTxStatic(unsigned({ fee: 0n }), CHAIN, PARAMS), 'fee_too_low');
  assert.doesNotThrow(() => checkTxStatic(unsigned({ fee: 10n }), CHAIN, PARAMS));
});

test('checkTxStatic: amount_overflow when amount + fee = 2^64; amount + fee = 2^64 − 1 passes', () => {
  throwsRule(() => checkTxStatic(unsigned({ amount: U64_MAX - 9n, fee: 10n }), CHAIN, PARAMS), 'amount_overflow');
  throwsRule(() => checkTxStatic(unsigned({ amount: U64_MAX, fee: U64_MAX }), CHAIN, PARAMS), 'amount_overflow');
  assert.doesNotThrow(() => checkTxStatic(unsigned({ amount: U64_MAX - 10n, fee: 10n }), CHAIN, PARAMS));
});

test('checkTxStatic: memo_too_long counts UTF-8 bytes (128 × é = 256 bytes passes, 129 × é = 258 fails)', () => {
  assert.doesNotThrow(() => checkTxStatic(unsigned({ memo: 'é'.repeat(128) }), CHAIN, PARAMS));
  assert.doesNotThrow(() => checkTxStatic(unsigned({ memo: 'a'.repeat(256) }), CHAIN, PARAMS));
  throwsRule(() => checkTxStatic(unsigned({ memo: 'a'.repeat(257) }), CHAIN, PARAMS), 'memo_too_long');
  // 129 UTF-16 units, 258 UTF-8 bytes: a length check on the JS string would wrongly pass this
  throwsRule(() => checkTxStatic(unsigned({ memo: 'é'.repeat(129) }), CHAIN, PARAMS), 'memo_too_long');
  throwsRule(() => checkTxStatic(unsigned({ memo: 'é'.repeat(128) + 'a' }), CHAIN, PARAMS), 'memo_too_long');
  // 😀 is 2 UTF-16 units but 4 UTF-8 bytes: 64 pass, 64 + 'a' fail
  assert.doesNotThrow(() => checkTxStatic(unsigned({ memo: '😀'.repeat(64) }), CHAIN, PARAMS));
  throwsRule(() => checkTxStatic(unsigned({ memo: '😀'.repeat(64) + 'a' }), CHAIN, PARAMS), 'memo_too_long');
});

test('checkTxStatic: maxMemoBytes 0 allows only the empty memo', () => {
  const p = { ...PARAMS, maxMemoBytes: 0 };
  assert.doesNotThrow(() => checkTxStatic(unsigned({ memo: '' }), CHAIN, p));
  throwsRule(() => checkTxStatic(unsigned({ memo: 'a' }), CHAIN, p), 'memo_too_long');
});
