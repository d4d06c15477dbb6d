/**
 * src/wallet/amount.ts: exact display amount ⇄ minor units. Boundaries, every refusal rule, and
 * fast-check round trips (parse(format(u)) = u for any u64 and decimals; format(parse(s)) = canonical s).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AmountError, MAX_DECIMALS, formatAmount, parseAmount, type AmountRule } from '../../../src/wallet/amount.js';

const U64_MAX = (1n << 64n) - 1n;

function rejects(text: string, decimals: number, rule: AmountRule): void {
  assert.throws(() => parseAmount(text, decimals), (e: unknown) => {
    assert.ok(e instanceof AmountError, `${JSON.stringify(text)}: AmountError expected, got ${String(e)}`);
    assert.equal(e.rule, rule, `${JSON.stringify(text)} with ${decimals} decimals: ${e.message}`);
    assert.ok(e.message.includes(rule), 'the message names the rule');
    return true;
  });
}

describe('parseAmount', () => {
  test('exact conversions', () => {
    assert.equal(parseAmount('12.345', 6), 12_345_000n);
    assert.equal(parseAmount('0', 6), 0n);
    assert.equal(parseAmount('0.000', 6), 0n);
    assert.equal(parseAmount('1', 6), 1_000_000n);
    assert.equal(parseAmount('0.000001', 6), 1n);
    assert.equal(parseAmount('1.500000', 6), 1_500_000n);
    assert.equal(parseAmount('42', 0), 42n);
    assert.equal(parseAmount('0.1', 1), 1n);
    assert.equal(parseAmount('0.000000000000000001', 18), 1n);
    // 0.1 + 0.2 style float traps do not exist here
    assert.equal(parseAmount('0.3', 6), parseAmount('0.1', 6) + parseAmount('0.2', 6));
    assert.equal(parseAmount('9007199254740993', 0), 9007199254740993n); // above 2^53
  });

  test('the u64 boundary', () => {
    assert.equal(parseAmount('18446744073709551615', 0), U64_MAX);
    assert.equal(parseAmount('18446744073709.551615', 6), U64_MAX);
    assert.equal(parseAmount('18.446744073709551615', 18), U64_MAX);
    rejects('18446744073709551616', 0, 'too_large');
    rejects('18446744073709.551616', 6, 'too_large');
    rejects('18446744073710', 6, 'too_large');
    rejects('99999999999999999999999999999999', 6, 'too_large');
    rejects('1'.repeat(100), 6, 'too_large');
  });

  test('decimals: at most the unit allows, even trailing zeros', () => {
    rejects('12.3456789', 6, 'too_many_decimals');
    rejects('0.0000001', 6, 'too_many_decimals');
    rejects('1.50', 1, 'too_many_decimals');
    rejects('1.0', 0, 'too_many_decimals');
    assert.match(String(catchErr(() => parseAmount('1.2345678', 6))), /7 decimals.*at most 6/);
  });

  test('refusals name their rule', () => {
    rejects('', 6, 'empty');
    rejects(' 1', 6, 'whitespace');
    rejects('1 ', 6, 'whitespace');
    rejects('1\n', 6, 'whitespace');
    rejects('1 000', 6, 'whitespace');
    rejects('-1', 6, 'sign');
    rejects('+1', 6, 'sign');
    rejects('-0', 6, 'sign');
    rejects('1e6', 6, 'exponent');
    rejects('1E-3', 6, 'exponent');
    rejects('1,000', 6, 'separator');
    rejects('1_000', 6, 'separator');
    rejects('1.', 6, 'incomplete');
    rejects('.5', 6, 'incomplete');
    rejects('007', 6, 'leading_zero');
    rejects('00.5', 6, 'leading_zero');
    rejects('.', 6, 'syntax');
    rejects('1.2.3', 6, 'syntax');
    rejects('0x10', 6, 'syntax');
    rejects('abc', 6, 'syntax');
    rejects('NaN', 6, 'syntax');
    rejects('Infinity', 6, 'syntax');
    rejects('١٢', 6, 'syntax'); // Arabic-Indic digits
    rejects('１', 6, 'syntax'); // full-width digit
    rejects('1', -1, 'bad_decimals');
    rejects('1', 19, 'bad_decimals');
    rejects('1', 1.5, 'bad_decimals');
  });
});

describe('formatAmount', () => {
  test('trims trailing zeros, "0" for zero', () => {
    assert.equal(formatAmount(12_345_000n, 6), '12.345');
    assert.equal(formatAmount(0n, 6), '0');
    assert.equal(formatAmount(0n, 0), '0');
    assert.equal(formatAmount(1n, 6), '0.000001');
    assert.equal(formatAmount(1_000_000n, 6), '1');
    assert.equal(formatAmount(10n, 1), '1');
    assert.equal(formatAmount(123n, 0), '123');
    assert.equal(formatAmount(U64_MAX, 6), '18446744073709.551615');
    assert.equal(formatAmount(U64_MAX, 18), '18.446744073709551615');
    assert.equal(formatAmount(1n, 18), '0.000000000000000001');
  });

  test('refuses negative amounts and bad decimals', () => {
    assert.throws(() => formatAmount(-1n, 6), AmountError);
    assert.throws(() => formatAmount(1n, 19), AmountError);
  });
});

describe('properties', () => {
  const decimals = fc.integer({ min: 0, max: MAX_DECIMALS });
  const units = fc.bigInt({ min: 0n, max: U64_MAX });

  test('parse(format(u, d), d) = u for every u64 and decimals 0..18', () => {
    fc.assert(fc.property(units, decimals, (u, d) => parseAmount(formatAmount(u, d), d) === u), { numRuns: 2000 });
  });

  test('format output is canonical: no trailing fraction zeros, no leading zeros, no lone "."', () => {
    fc.assert(fc.property(units, decimals, (u, d) => /^(0|[1-9][0-9]*)(\.[0-9]*[1-9])?$/.test(formatAmount(u, d))), { numRuns: 2000 });
  });

  test('format(parse(s)) = s with trailing fraction zeros trimmed, for any well-formed s', () => {
    const text = decimals.chain((d) => fc.tuple(
      fc.constant(d),
      fc.bigInt({ min: 0n, max: U64_MAX / 10n ** BigInt(d) - 1n }), // any fraction still fits in u64
      fc.integer({ min: 0, max: d }).chain((n) => fc.array(fc.integer({ min: 0, max: 9 }), { minLength: n, maxLength: n })),
    ));
    fc.assert(fc.property(text, ([d, whole, fracDigits]) => {
      const s = fracDigits.length ? `${whole}.${fracDigits.join('')}` : `${whole}`;
      const expected = s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s;
      assert.equal(formatAmount(parseAmount(s, d), d), expected);
    }), { numRuns: 2000 });
  });

  test('arbitrary strings either throw AmountError or parse to a u64 whose formatting parses back the same', () => {
    fc.assert(fc.property(fc.string({ unit: fc.constantFrom(...'0123456789.-+eE ,_x'), maxLength: 30 }), decimals, (s, d) => {
      let u: bigint;
      try {
        u = parseAmount(s, d);
      } catch (e) {
        return e instanceof AmountError;
      }
      return u >= 0n && u <= U64_MAX && parseAmount(formatAmount(u, d), d) === u;
    }), { numRuns: 3000 });
  });
});

function catchErr(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}
