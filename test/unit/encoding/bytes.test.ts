/**
 * Byte helpers that build store keys: big-endian integers written without DataView must equal DataView's
 * encoding (the reference), refuse values outside their width, and keep numeric order as byte order.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compareBytes, fromHex, readU64be, toHex, u32be, u64be, writeU64be } from '../../../src/encoding/bytes.js';
import { layout } from '../../../src/storage/layout.js';

const refU64 = (n: bigint): string => { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, n); return toHex(b); };
const refU32 = (n: number): string => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n); return toHex(b); };

test('u64be / u32be equal the DataView encoding for every width-edge and random value', () => {
  for (const n of [0n, 1n, 255n, 256n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n]) {
    assert.equal(toHex(u64be(n)), refU64(n), `bigint ${n}`);
    if (n <= BigInt(Number.MAX_SAFE_INTEGER)) assert.equal(toHex(u64be(Number(n))), refU64(n), `number ${n}`);
    assert.equal(readU64be(u64be(n)), n);
  }
  fc.assert(fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (n) => toHex(u64be(n)) === refU64(n)));
  fc.assert(fc.property(fc.maxSafeNat(), (n) => toHex(u64be(n)) === refU64(BigInt(n))));
  fc.assert(fc.property(fc.nat({ max: 0xffff_ffff }), (n) => toHex(u32be(n)) === refU32(n)));
  // Numeric order is byte order (LevelDB iterates heights and slots in this order).
  fc.assert(fc.property(fc.maxSafeNat(), fc.maxSafeNat(), (a, b) => Math.sign(compareBytes(u64be(a), u64be(b))) === Math.sign(a - b)));
});

test('out-of-range integers are refused, not wrapped', () => {
  for (const bad of [-1, -1n, 2n ** 64n, 1.5]) assert.throws(() => u64be(bad as number | bigint), RangeError, String(bad));
  for (const bad of [-1, 2 ** 32, 0.5]) assert.throws(() => u32be(bad), RangeError, String(bad));
  const out = new Uint8Array(10);
  writeU64be(out, 2, 0x0102030405060708n);
  assert.equal(toHex(out), '00000102030405060708');
});

test('layout keys: exact bytes for height, history and keyed prefixes', () => {
  const pk = fromHex('11'.repeat(32));
  assert.equal(toHex(layout.height(258)), '6e' + '0000000000000102');
  assert.equal(toHex(layout.history(pk, 7)), '78' + '11'.repeat(32) + '0000000000000007');
  assert.equal(toHex(layout.account(pk)), '61' + '11'.repeat(32));
  assert.equal(toHex(layout.evidence(5, pk, fromHex('22'.repeat(32)))), '71' + '0000000000000005' + '11'.repeat(32) + '22'.repeat(32));
});
