/**
 * Property tests for src/encoding/canonical.ts.
 *
 *  1. encodeCanonical agrees with an independent reference encoder written here from the MessagePack spec.
 *  2. decode(encode(v)) deep-equals v, with integers below 2^32 returned as number and from 2^32 as bigint;
 *     encode(decode(b)) = b.
 *  3. Arbitrary bytes (random, and mutations of valid encodings) either throw EncodingError or decode to a
 *     value whose re-encoding is byte-identical: the decoder never accepts a second spelling of a value.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeCanonical, encodeCanonical, EncodingError, type CanonicalValue } from '../../src/encoding/canonical.js';

const U64_MAX = (1n << 64n) - 1n;
const TWO_32 = 1n << 32n;

// ---- reference encoder (MessagePack spec, shortest forms) --------------------------------------

function be(n: bigint, bytes: number): number[] {
  const out: number[] = [];
  for (let i = bytes - 1; i >= 0; i--) out.push(Number((n >> BigInt(8 * i)) & 0xffn));
  return out;
}

function refLen(n: number, fix: [number, number] | null, c8: number | null, c16: number, c32: number): number[] {
  if (fix && n < fix[1]) return [fix[0] | n];
  if (c8 !== null && n < 0x100) return [c8, n];
  if (n < 0x10000) return [c16, ...be(BigInt(n), 2)];
  return [c32, ...be(BigInt(n), 4)];
}

function refEncode(v: CanonicalValue): number[] {
  if (v === null) return [0xc0];
  if (v === true) return [0xc3];
  if (v === false) return [0xc2];
  if (typeof v === 'number' || typeof v === 'bigint') {
    const n = BigInt(v);
    if (n < 0x80n) return [Number(n)];
    if (n < 0x100n) return [0xcc, Number(n)];
    if (n < 0x10000n) return [0xcd, ...be(n, 2)];
    if (n < TWO_32) return [0xce, ...be(n, 4)];
    return [0xcf, ...be(n, 8)];
  }
  if (typeof v === 'string') {
    const b = [...Buffer.from(v, 'utf8')];
    return [...refLen(b.length, [0xa0, 32], 0xd9, 0xda, 0xdb), ...b];
  }
  if (v instanceof Uint8Array) return [...refLen(v.length, null, 0xc4, 0xc5, 0xc6), ...v];
  const arr = v as readonly CanonicalValue[];
  return [...refLen(arr.length, [0x90, 16], null, 0xdc, 0xdd), ...arr.flatMap(refEncode)];
}

// ---- generators ---------------------------------------------------------------------------------

const BOUNDARY_INTS = [0n, 1n, 127n, 128n, 255n, 256n, 65535n, 65536n, TWO_32 - 1n, TWO_32, (1n << 53n) - 1n, 1n << 53n, U64_MAX - 1n, U64_MAX];

const uintArb = fc.oneof(
  fc.constantFrom(...BOUNDARY_INTS),
  fc.bigInt({ min: 0n, max: 300n }),
  fc.bigInt({ min: 0n, max: TWO_32 + 10n }),
  fc.bigInt({ min: 0n, max: U64_MAX }),
);

const stringArb = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom('', 'x'.repeat(31), 'x'.repeat(32), 'é'.repeat(15) + 'x', 'é'.repeat(16), 'x'.repeat(255), 'x'.repeat(256)),
).filter((s) => Buffer.from(s, 'utf8').toString('utf8') === s); // well-formed UTF-16 only

const bytesArb = fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.constantFrom(255, 256).map((n) => new Uint8Array(n).fill(n & 0xff)));

/** Values in the canonical set; every integer is a bigint (the input side). Depth ≤ 5 < 16. */
const { value: valueArb } = fc.letrec<{ value: CanonicalValue }>((tie) => ({
  value: fc.oneof(
    { maxDepth: 4, depthIdentifier: 'canon' },
    fc.constant(null),
    fc.boolean(),
    uintArb,
    stringArb,
    bytesArb,
    fc.array(tie('value'), { maxLength: 18, depthIdentifier: 'canon' }),
  ),
}));

/** What decode must return: ints < 2^32 as number, ≥ 2^32 as bigint; bins as plain Uint8Array. */
function expectedDecoded(v: CanonicalValue): unknown {
  if (typeof v === 'bigint') return v < TWO_32 ? Number(v) : v;
  if (typeof v === 'number') return v < 2 ** 32 ? v : BigInt(v);
  if (Array.isArray(v)) return v.map(expectedDecoded);
  return v;
}

/** Replace every bigint ≤ 2^53-1 by the equivalent number (the same value given the other way). */
function asNumbers(v: CanonicalValue): CanonicalValue {
  if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  if (Array.isArray(v)) return v.map(asNumbers);
  return v;
}

const hex = (b: Uint8Array | number[]): string => Buffer.from(b).toString('hex');

// ---- properties ---------------------------------------------------------------------------------

test('property: encodeCanonical equals the reference shortest-form encoder', () => {
  fc.assert(fc.property(valueArb, (v) => {
    assert.equal(hex(encodeCanonical(v)), hex(refEncode(v)));
  }), { numRuns: 1500 });
});

test('property: integers given as number or bigint encode identically', () => {
  fc.assert(fc.property(valueArb, (v) => {
    assert.equal(hex(encodeCanonical(asNumbers(v))), hex(encodeCanonical(v)));
  }), { numRuns: 500 });
});

test('property: decode(encode(v)) deep-equals v (ints < 2^32 → number, ≥ 2^32 → bigint) and encode(decode(b)) = b', () => {
  fc.assert(fc.property(valueArb, (v) => {
    const b = encodeCanonical(v);
    const d = decodeCanonical(b);
    assert.deepEqual(d, expectedDecoded(v));
    assert.equal(hex(encodeCanonical(d)), hex(b));
  }), { numRuns: 1500 });
});

test('property: every integer 0..2^64-1 decodes to number below 2^32 and to bigint from 2^32', () => {
  fc.assert(fc.property(uintArb, (n) => {
    const d = decodeCanonical(encodeCanonical(n));
    if (n < TWO_32) {
      assert.equal(typeof d, 'number');
      assert.equal(d, Number(n));
    } else {
      assert.equal(typeof d, 'bigint');
      assert.equal(d, n);
    }
  }), { numRuns: 2000 });
});

/** decode either throws EncodingError or returns a value whose re-encoding is exactly `b`. */
function decodeIsStrict(b: Uint8Array): void {
  let v: CanonicalValue;
  try {
    v = decodeCanonical(b);
  } catch (e) {
    assert.ok(e instanceof EncodingError, `decode threw ${String(e)} for ${hex(b)}`);
    return;
  }
  assert.equal(hex(encodeCanonical(v)), hex(b), `decoded ${hex(b)} to a value with another encoding`);
}

test('property: random byte strings throw EncodingError or re-encode to identical bytes', () => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 24 }), (b) => { decodeIsStrict(b); }), { numRuns: 20000 });
});

test('property: random bytes behind every MessagePack type byte throw EncodingError or re-encode identically', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 16 }), (first, rest) => {
    decodeIsStrict(new Uint8Array([first, ...rest]));
  }), { numRuns: 20000 });
});

test('property: single-byte mutations, truncations and extensions of valid encodings are strict', () => {
  const mutated = fc.tuple(valueArb, fc.nat(), fc.integer({ min: 1, max: 255 }), fc.nat({ max: 3 }), fc.uint8Array({ minLength: 1, maxLength: 3 }))
    .map(([v, pos, delta, kind, extra]) => {
      const b = encodeCanonical(v);
      const i = pos % b.length;
      if (kind === 0) { const m = new Uint8Array(b); m[i] = (m[i]! + delta) & 0xff; return m; }
      if (kind === 1) return b.subarray(0, i);
      if (kind === 2) return new Uint8Array([...b, ...extra]);
      return new Uint8Array([...b.subarray(0, i), ...extra, ...b.subarray(i)]);
    });
  fc.assert(fc.property(mutated, (b) => { decodeIsStrict(b); }), { numRuns: 5000 });
});

test('property: a str with arbitrary (often invalid) UTF-8 bytes decodes only when they are valid UTF-8', () => {
  const td = new TextDecoder('utf-8', { fatal: true });
  const utf8ish = fc.array(fc.oneof(fc.integer({ min: 0x80, max: 0xbf }), fc.integer({ min: 0xc0, max: 0xff }), fc.integer({ min: 0, max: 0x7f })), { maxLength: 12 });
  fc.assert(fc.property(utf8ish, (body) => {
    const b = new Uint8Array([0xa0 | body.length, ...body]);
    let valid = true;
    try { td.decode(new Uint8Array(body)); } catch { valid = false; }
    if (valid) {
      assert.equal(decodeCanonical(b), Buffer.from(body).toString('utf8'));
    } else {
      assert.throws(() => decodeCanonical(b), EncodingError, hex(b));
    }
  }), { numRuns: 20000 });
});

/**
 * The MessagePack specification's item sizes, written here independently: the end offset of the item at `p`,
 * or undefined if the input ends inside it. Recursion is fine: inputs here are short.
 */
function refItemEnd(b: Uint8Array, p: number): number | undefined {
  if (p >= b.length) return undefined;
  const c = b[p]!;
  const n = (at: number, k: number): number | undefined => (at + k > b.length ? undefined : [...b.subarray(at, at + k)].reduce((v, x) => v * 256 + x, 0));
  const items = (start: number, count: number): number | undefined => {
    let q: number | undefined = start;
    for (let i = 0; i < count && q !== undefined; i++) q = refItemEnd(b, q);
    return q;
  };
  const sized = (hdr: number, len: number | undefined): number | undefined => (len === undefined || p + hdr + len > b.length ? undefined : p + hdr + len);
  if (c <= 0x7f || c >= 0xe0 || (c >= 0xc0 && c <= 0xc3)) return p + 1;
  if (c <= 0x8f) return items(p + 1, 2 * (c & 0x0f));
  if (c <= 0x9f) return items(p + 1, c & 0x0f);
  if (c <= 0xbf) return sized(1, c & 0x1f);
  switch (c) {
    case 0xc4: case 0xd9: return sized(2, n(p + 1, 1));
    case 0xc5: case 0xda: return sized(3, n(p + 1, 2));
    case 0xc6: case 0xdb: return sized(5, n(p + 1, 4));
    case 0xc7: { const l = n(p + 1, 1); return l === undefined ? undefined : sized(3, l); }
    case 0xc8: { const l = n(p + 1, 2); return l === undefined ? undefined : sized(4, l); }
    case 0xc9: { const l = n(p + 1, 4); return l === undefined ? undefined : sized(6, l); }
    case 0xca: return sized(1, 4);
    case 0xcb: return sized(1, 8);
    case 0xcc: case 0xd0: return sized(1, 1);
    case 0xcd: case 0xd1: return sized(1, 2);
    case 0xce: case 0xd2: return sized(1, 4);
    case 0xcf: case 0xd3: return sized(1, 8);
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: return sized(2, 1 << (c - 0xd4));
    case 0xdc: { const k = n(p + 1, 2); return k === undefined ? undefined : items(p + 3, k); }
    case 0xdd: { const k = n(p + 1, 4); return k === undefined || k > b.length ? undefined : items(p + 5, k); }
    case 0xde: { const k = n(p + 1, 2); return k === undefined ? undefined : items(p + 3, 2 * k); }
    case 0xdf: { const k = n(p + 1, 4); return k === undefined || k > b.length ? undefined : items(p + 5, 2 * k); }
  }
  return undefined;
}

test('property: malformed means the first MessagePack value is incomplete; non_canonical means it is complete', () => {
  const bytes = fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 14 }),
    // Every type byte, followed by a little of anything.
    fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 10 })).map(([t, rest]) => new Uint8Array([t, ...rest])),
  );
  fc.assert(fc.property(bytes, (b) => {
    let rule = 'ok';
    try { decodeCanonical(b); } catch (e) { assert.ok(e instanceof EncodingError); rule = e.rule; }
    const end = refItemEnd(b, 0);
    if (rule === 'malformed') assert.equal(end, undefined, `malformed, but the specification's parse completes: ${hex(b)}`);
    if (rule === 'non_canonical') assert.notEqual(end, undefined, `non_canonical, but the value is cut short: ${hex(b)}`);
    if (rule === 'ok') assert.equal(end, b.length);
  }), { numRuns: 50000 });
});
