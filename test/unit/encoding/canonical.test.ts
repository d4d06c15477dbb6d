/**
 * Tests for src/encoding/canonical.ts: the one canonical MessagePack byte sequence per value.
 *
 * Expected bytes are written by hand from the MessagePack specification's shortest forms
 * (https://github.com/msgpack/msgpack/blob/master/spec.md), never produced by the code under test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeCanonical, encodeCanonical, EncodingError, type CanonicalValue } from '../../../src/encoding/canonical.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h.replace(/\s+/g, ''), 'hex'));

/** Assert that `fn` throws an EncodingError with exactly `rule`. */
function throwsRule(fn: () => unknown, rule: string, msg?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof EncodingError, `expected EncodingError, got ${String(e)}`);
    assert.equal(e.rule, rule, msg ?? `rule of: ${e.message}`);
    return true;
  });
}

// ---- integers ---------------------------------------------------------------------------------

const INT_CASES: [string, number | bigint, string][] = [
  ['0', 0, '00'],
  ['127 (largest positive fixint)', 127, '7f'],
  ['128 (smallest uint8)', 128, 'cc80'],
  ['255 (largest uint8)', 255, 'ccff'],
  ['256 (smallest uint16)', 256, 'cd0100'],
  ['65535 (largest uint16)', 65535, 'cdffff'],
  ['65536 (smallest uint32)', 65536, 'ce00010000'],
  ['2^32-1 (largest uint32)', 2 ** 32 - 1, 'ceffffffff'],
  ['2^32 (smallest uint64)', 2 ** 32, 'cf0000000100000000'],
  ['2^53-1', Number.MAX_SAFE_INTEGER, 'cf001fffffffffffff'],
  ['2^64-1 as bigint', (1n << 64n) - 1n, 'cfffffffffffffffff'],
];

for (const [name, v, want] of INT_CASES) {
  test(`encode integer ${name} → ${want}`, () => {
    assert.equal(hex(encodeCanonical(v)), want);
  });
  test(`encode integer ${name} given as bigint → same bytes as the number`, () => {
    assert.equal(hex(encodeCanonical(BigInt(v))), want);
  });
  test(`decode ${want} → ${name}, as number below 2^32 and bigint from 2^32`, () => {
    const got = decodeCanonical(unhex(want));
    if (BigInt(v) < 1n << 32n) assert.equal(got, Number(v));
    else assert.equal(got, BigInt(v));
  });
}

test('null, false and true encode as c0, c2, c3 and decode back', () => {
  assert.equal(hex(encodeCanonical(null)), 'c0');
  assert.equal(hex(encodeCanonical(false)), 'c2');
  assert.equal(hex(encodeCanonical(true)), 'c3');
  assert.equal(decodeCanonical(unhex('c0')), null);
  assert.equal(decodeCanonical(unhex('c2')), false);
  assert.equal(decodeCanonical(unhex('c3')), true);
});

// ---- strings, binaries, arrays at length boundaries -------------------------------------------

const STR_CASES: [number, string][] = [
  [0, 'a0'], [31, 'bf'], [32, 'd920'], [255, 'd9ff'], [256, 'da0100'], [65535, 'daffff'], [65536, 'db00010000'],
];
for (const [n, header] of STR_CASES) {
  test(`string of ${n} bytes uses header ${header} and round-trips`, () => {
    const s = 'x'.repeat(n);
    const b = encodeCanonical(s);
    assert.equal(b.length, header.length / 2 + n);
    assert.equal(hex(b.subarray(0, header.length / 2)), header);
    assert.equal(Buffer.from(b.subarray(header.length / 2)).toString('utf8'), s);
    assert.equal(decodeCanonical(b), s);
  });
}

test('string length counts UTF-8 bytes, not UTF-16 units: 16 × "é" is 32 bytes → str8', () => {
  assert.equal(hex(encodeCanonical('é')), 'a2c3a9');
  const b = encodeCanonical('é'.repeat(16));
  assert.equal(hex(b.subarray(0, 2)), 'd920');
  assert.equal(decodeCanonical(b), 'é'.repeat(16));
  // 4-byte UTF-8 (a surrogate pair in JS): U+1F600 → f0 9f 98 80
  assert.equal(hex(encodeCanonical('\u{1F600}')), 'a4f09f9880');
});

const BIN_CASES: [number, string][] = [
  [0, 'c400'], [1, 'c401'], [255, 'c4ff'], [256, 'c50100'], [65535, 'c5ffff'], [65536, 'c600010000'],
];
for (const [n, header] of BIN_CASES) {
  test(`binary of ${n} bytes uses header ${header} and round-trips as a plain Uint8Array`, () => {
    const v = new Uint8Array(n).map((_, i) => (i * 31 + 7) & 0xff);
    const b = encodeCanonical(v);
    assert.equal(b.length, header.length / 2 + n);
    assert.equal(hex(b.subarray(0, header.length / 2)), header);
    assert.deepEqual(b.subarray(header.length / 2), v);
    const d = decodeCanonical(b);
    assert.ok(d instanceof Uint8Array);
    assert.ok(!Buffer.isBuffer(d), 'decoded binaries are exposed as Uint8Array, not Buffer');
    assert.deepEqual(d, v);
  });
}

const ARR_CASES: [number, string][] = [
  [0, '90'], [15, '9f'], [16, 'dc0010'], [65535, 'dcffff'], [65536, 'dd00010000'],
];
for (const [n, header] of ARR_CASES) {
  test(`array of ${n} elements uses header ${header} and round-trips`, () => {
    const v: CanonicalValue[] = Array.from({ length: n }, (_, i) => i % 100);
    const b = encodeCanonical(v);
    assert.equal(hex(b.subarray(0, header.length / 2)), header);
    assert.deepEqual(decodeCanonical(b), v);
  });
}

test('nested array [1, "a", [true, null], bin(ff)] has the exact spec bytes', () => {
  const v: CanonicalValue = [1, 'a', [true, null], new Uint8Array([0xff])];
  assert.equal(hex(encodeCanonical(v)), '94 01 a161 92c3c0 c401ff'.replace(/ /g, ''));
});

test('decoding a view with a non-zero byteOffset works', () => {
  const big = unhex('ffff 92c4020102cd0100 ffff');
  const v = decodeCanonical(big.subarray(2, big.length - 2));
  assert.deepEqual(v, [new Uint8Array([1, 2]), 256]);
});

// ---- decode rejects non-canonical MessagePack -------------------------------------------------

const NON_CANONICAL: [string, string][] = [
  ['5 as uint8', 'cc05'],
  ['5 as uint16', 'cd0005'],
  ['5 as uint32', 'ce00000005'],
  ['5 as uint64', 'cf0000000000000005'],
  ['127 as uint8', 'cc7f'],
  ['255 as uint16', 'cd00ff'],
  ['65535 as uint32', 'ce0000ffff'],
  ['2^32-1 as uint64', 'cf00000000ffffffff'],
  ['5 as int8', 'd005'],
  ['0 as int8', 'd000'],
  ['5 as int64', 'd30000000000000005'],
  ['float32 1.0', 'ca3f800000'],
  ['float64 1.0', 'cb3ff0000000000000'],
  ['float64 5.0 (an integral float)', 'cb4014000000000000'],
  ['float64 0.0', 'cb0000000000000000'],
  ['str8 for a 3-char string', 'd903616263'],
  ['str16 for a 1-char string', 'da000161'],
  ['str32 for a 1-char string', 'db0000000161'],
  ['bin16 for 1 byte', 'c5000101'],
  ['bin32 for 1 byte', 'c600000001 01'],
  ['array16 for 2 elements', 'dc00020101'],
  ['array32 for 2 elements', 'dd000000020101'],
  ['empty map', '80'],
  ['map {"a": nil}', '81a161c0'],
  ['map16 {}', 'de0000'],
  ['map inside an array', '9180'],
  ['negative fixint -1', 'ff'],
  ['negative fixint -32', 'e0'],
  ['int8 -1', 'd0ff'],
  ['int64 -1', 'd3ffffffffffffffff'],
  ['the never-used byte c1', 'c1'],
  ['timestamp ext (-1), 32-bit', 'd6ff00000000'],
  ['non-minimal integer nested in an array', '92 01 cc05'],
];
for (const [name, h] of NON_CANONICAL) {
  test(`decode rejects ${name} (${h.replace(/ /g, '')}) as non_canonical`, () => {
    throwsRule(() => decodeCanonical(unhex(h)), 'non_canonical');
  });
}

test('decode rejects invalid UTF-8 in a str (lone continuation, bad lead, overlong, surrogate, > U+10FFFF)', () => {
  for (const h of ['a180', 'a1ff', 'a2c328', 'a2c080', 'a3eda080', 'a4f4908080', 'a2e282']) {
    assert.throws(() => decodeCanonical(unhex(h)), EncodingError, h);
  }
  // The code reports these as non_canonical (the decoder substitutes U+FFFD, which re-encodes differently).
  throwsRule(() => decodeCanonical(unhex('a1ff')), 'non_canonical');
});

test('every extension type is rejected (fixext 1/2/4/8/16, ext8), whatever its type byte', () => {
  for (let t = 0; t < 256; t++) {
    for (const [code, len] of [[0xd4, 1], [0xd5, 2], [0xd6, 4], [0xd7, 8], [0xd8, 16], [0xc7, 3]] as const) {
      const hdr = code === 0xc7 ? [code, len, t] : [code, t];
      const b = new Uint8Array([...hdr, ...new Array<number>(len).fill(0)]);
      assert.throws(() => decodeCanonical(b), (e: unknown) => e instanceof EncodingError && (e.rule === 'non_canonical' || e.rule === 'malformed'),
        `ext type ${t} via ${code.toString(16)}`);
    }
  }
});

test('an extension type unknown to msgpackr (fixext1 type 1) is rejected as non_canonical, as the module documents', () => {
  // canonical.ts documents: "malformed" = not MessagePack at all; "non_canonical" = MessagePack not in canonical
  // form, explicitly listing ext types. d4 01 00 is well-formed MessagePack (fixext 1, type 1, one data byte).
  throwsRule(() => decodeCanonical(unhex('d40100')), 'non_canonical');
});

test('decode rejects trailing bytes after a complete value as non_canonical (as the module documents)', () => {
  throwsRule(() => decodeCanonical(unhex('01c0')), 'non_canonical');
  throwsRule(() => decodeCanonical(unhex('9101 00')), 'non_canonical');
  throwsRule(() => decodeCanonical(unhex('a161 61')), 'non_canonical');
});

test('decode rejects truncated input as malformed', () => {
  for (const h of ['cd00', 'ce0000', 'cf00000000000000', 'a36162', 'd903', 'c403 0102', '92c0', 'dc00', 'c4']) {
    throwsRule(() => decodeCanonical(unhex(h)), 'malformed', h);
  }
});

test('decode rejects empty input as malformed', () => {
  throwsRule(() => decodeCanonical(new Uint8Array(0)), 'malformed');
});

test('decode rejects non-bytes input as malformed', () => {
  throwsRule(() => decodeCanonical('c0' as unknown as Uint8Array), 'malformed');
});

test('decode rejects input above maxBytes as too_large and accepts it at exactly maxBytes', () => {
  const b = encodeCanonical('x'.repeat(30)); // 31 bytes
  assert.equal(b.length, 31);
  assert.equal(decodeCanonical(b, 31), 'x'.repeat(30));
  throwsRule(() => decodeCanonical(b, 30), 'too_large');
});

test('decode rejects nesting deeper than 16 (non_canonical) and accepts depth 16', () => {
  const nested = (k: number): Uint8Array => { const b = new Uint8Array(k + 1).fill(0x91); b[k] = 0xc0; return b; };
  assert.doesNotThrow(() => decodeCanonical(nested(16)));
  throwsRule(() => decodeCanonical(nested(17)), 'non_canonical');
  // absurdly deep input: still an EncodingError, never a crash
  assert.throws(() => decodeCanonical(nested(200_000)), EncodingError);
});

// ---- encode rejects values outside the canonical set ------------------------------------------

const UNSUPPORTED: [string, unknown][] = [
  ['negative number', -1],
  ['negative bigint', -1n],
  ['bigint 2^64', 1n << 64n],
  ['float 1.5', 1.5],
  ['NaN', NaN],
  ['Infinity', Infinity],
  ['unsafe integer 2^53 as number', 2 ** 53],
  ['undefined', undefined],
  ['plain object', { a: 1 }],
  ['Map', new Map([[1, 2]])],
  ['Date', new Date(0)],
  ['Uint16Array', new Uint16Array(2)],
  ['symbol', Symbol('s')],
  ['function', () => 1],
  ['lone high surrogate', 'a\ud800'],
  ['lone low surrogate', '\udc00b'],
  ['swapped surrogate pair', '\ude00\ud83d'],
  ['undefined inside an array', [1, undefined]],
  ['float inside an array', [[0.5]]],
];
for (const [name, v] of UNSUPPORTED) {
  test(`encode rejects ${name} with EncodingError`, () => {
    throwsRule(() => encodeCanonical(v as CanonicalValue), 'unsupported_value');
  });
}

test('encode accepts nesting to depth 16 and rejects depth 17', () => {
  const nest = (k: number): CanonicalValue => { let v: CanonicalValue = null; for (let i = 0; i < k; i++) v = [v]; return v; };
  // nest(16): the null sits at depth 16
  assert.equal(hex(encodeCanonical(nest(16))), '91'.repeat(16) + 'c0');
  throwsRule(() => encodeCanonical(nest(17)), 'unsupported_value');
});

test('a valid surrogate pair is accepted (well-formed UTF-16)', () => {
  assert.equal(decodeCanonical(encodeCanonical('😀')), '😀');
});
