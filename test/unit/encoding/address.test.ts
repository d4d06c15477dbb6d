/**
 * Tests for src/encoding/address.ts: bech32m (BIP-350) addresses with prefix "ml" over 32-byte public keys.
 *
 * A tiny reference bech32/bech32m checksum (straight from BIP-173/BIP-350) pins the format independently of
 * @scure/base, and builds the invalid variants (other prefix, bech32 checksum, wrong payload length).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADDRESS_PREFIX, AddressError, decodeAddress, encodeAddress, isAddress } from '../../../src/encoding/address.js';
import { testKey, testKeys } from '../../helpers/fixtures.js';

// ---- reference bech32 / bech32m (BIP-173, BIP-350) ----------------------------------------------

const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
const BECH32_CONST = 1;
const BECH32M_CONST = 0x2bc830a3;

function polymod(values: number[]): number {
  const GEN = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
  let chk = 1;
  for (const v of values) {
    const b = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((b >>> i) & 1) chk ^= GEN[i]!;
  }
  return chk >>> 0;
}

function hrpExpand(hrp: string): number[] {
  const out: number[] = [];
  for (const c of hrp) out.push(c.charCodeAt(0) >> 5);
  out.push(0);
  for (const c of hrp) out.push(c.charCodeAt(0) & 31);
  return out;
}

function refEncode(hrp: string, data: number[], constant: number): string {
  const pm = polymod([...hrpExpand(hrp), ...data, 0, 0, 0, 0, 0, 0]) ^ constant;
  const checksum = Array.from({ length: 6 }, (_, i) => (pm >>> (5 * (5 - i))) & 31);
  return hrp + '1' + [...data, ...checksum].map((d) => CHARSET[d]).join('');
}

/** 8-bit bytes → 5-bit words, zero-padded (BIP-173 convertbits). */
function toWords(bytes: Uint8Array): number[] {
  let acc = 0;
  let bits = 0;
  const out: number[] = [];
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) { bits -= 5; out.push((acc >> bits) & 31); }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out.push((acc << (5 - bits)) & 31);
  return out;
}

function assertInvalid(s: string, why: string): void {
  assert.throws(() => decodeAddress(s), (e: unknown) => {
    assert.ok(e instanceof AddressError, `${why}: expected AddressError, got ${String(e)}`);
    assert.equal(e.rule, 'invalid_address');
    assert.equal(e.name, 'AddressError');
    return true;
  }, why);
  assert.equal(isAddress(s), false, why);
}

const KEYS = testKeys('address', 4);
const PK = KEYS[0]!.publicKey;

// ---- valid -------------------------------------------------------------------------------------

test('encodeAddress equals the reference bech32m encoding with prefix "ml" (61 characters)', () => {
  for (const k of KEYS) {
    const a = encodeAddress(k.publicKey);
    assert.equal(ADDRESS_PREFIX, 'ml');
    assert.equal(a, refEncode('ml', toWords(k.publicKey), BECH32M_CONST));
    assert.equal(a.length, 61);
    assert.ok(a.startsWith('ml1'));
  }
});

test('decodeAddress(encodeAddress(pk)) returns pk for several keys, including all-zero and all-ff keys', () => {
  const pks = [...KEYS.map((k) => k.publicKey), new Uint8Array(32), new Uint8Array(32).fill(0xff)];
  for (const pk of pks) {
    assert.deepEqual(decodeAddress(encodeAddress(pk)), pk);
    assert.equal(isAddress(encodeAddress(pk)), true);
  }
});

test('encodeAddress refuses keys that are not 32 bytes', () => {
  for (const n of [0, 31, 33, 64]) {
    assert.throws(() => encodeAddress(new Uint8Array(n)), AddressError, `length ${n}`);
  }
});

// ---- invalid -----------------------------------------------------------------------------------

test('every single-character substitution of a valid address is rejected (all 61 positions × 6 characters)', () => {
  const a = testKey('address-subst').address;
  const subs = ['q', 'p', 'l', '0', '1', 'x'];
  let tried = 0;
  for (let i = 0; i < a.length; i++) {
    for (const c of subs) {
      if (a[i] === c) continue;
      const bad = a.slice(0, i) + c + a.slice(i + 1);
      assertInvalid(bad, `position ${i}: ${a[i]} → ${c}`);
      tried++;
    }
  }
  assert.ok(tried > 300);
});

test('upper-case addresses are rejected, whole and partial (only the lower-case spelling is accepted)', () => {
  const a = encodeAddress(PK);
  assertInvalid(a.toUpperCase(), 'all upper-case');
  assertInvalid('ML' + a.slice(2), 'upper-case prefix');
  assertInvalid(a.slice(0, 10) + a[10]!.toUpperCase() + a.slice(11), 'one upper-case character');
});

test('a bech32m string with another prefix is rejected', () => {
  for (const hrp of ['mx', 'bc', 'm', 'mll', 'ml1']) {
    const s = refEncode(hrp, toWords(PK), BECH32M_CONST);
    assertInvalid(s, `prefix ${hrp}`);
  }
});

test('a bech32 (BIP-173, not m) checksum over the same prefix and payload is rejected', () => {
  const s = refEncode('ml', toWords(PK), BECH32_CONST);
  assert.notEqual(s, encodeAddress(PK));
  assertInvalid(s, 'bech32 checksum');
});

test('a valid bech32m address carrying 31, 33, 20 or 0 bytes is rejected', () => {
  for (const n of [0, 20, 31, 33]) {
    const s = refEncode('ml', toWords(new Uint8Array(n).fill(7)), BECH32M_CONST);
    assertInvalid(s, `${n}-byte payload`);
  }
});

test('non-zero padding bits in the last word are rejected (one key, one address)', () => {
  const words = toWords(PK); // 52 words: 260 bits for 256, the last word's low 4 bits are padding
  assert.equal(words.length, 52);
  words[51] = words[51]! | 1;
  assertInvalid(refEncode('ml', words, BECH32M_CONST), 'non-zero padding');
});

test('truncated, extended, empty, separator-less and non-string inputs are rejected', () => {
  const a = encodeAddress(PK);
  assertInvalid(a.slice(0, -1), 'last character removed');
  assertInvalid(a + 'q', 'one character appended');
  assertInvalid('', 'empty');
  assertInvalid('ml', 'prefix only');
  assertInvalid(a.replace('1', ''), 'no separator');
  assertInvalid(' ' + a, 'leading space');
  assertInvalid(a + ' ', 'trailing space');
  assertInvalid(42 as unknown as string, 'a number');
  assertInvalid(null as unknown as string, 'null');
});

test('swapping two adjacent differing characters is rejected', () => {
  const a = encodeAddress(KEYS[1]!.publicKey);
  for (let i = 3; i < a.length - 1; i++) {
    if (a[i] === a[i + 1]) continue;
    const bad = a.slice(0, i) + a[i + 1] + a[i] + a.slice(i + 2);
    assertInvalid(bad, `swap at ${i}`);
  }
});
