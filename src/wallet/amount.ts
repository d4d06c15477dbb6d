/**
 * Exact conversion between display amounts ("12.345") and minor units (12345000n with 6 decimals).
 * Strings and bigints only: no floating point anywhere.
 *
 * Accepted syntax (deliberately strict, one spelling per value as far as is reasonable):
 *
 *   amount   = integer [ "." fraction ]
 *   integer  = "0" | nonzero-digit *digit       (no leading zeros: "007" is refused, "0.5" is fine)
 *   fraction = 1*digit                          (at most `decimals` digits; "1." and ".5" are refused)
 *
 * Refused, each with an AmountError naming the rule: empty text (`empty`), any whitespace (`whitespace`),
 * a sign "+"/"-" (`sign`), an exponent "1e6" (`exponent`), a digit-group separator "1,000" / "1_000"
 * (`separator`), "1." / ".5" (`incomplete`), leading zeros (`leading_zero`), more fraction digits than
 * the unit has decimals — even trailing zeros, so "1.50" with 1 decimal is refused (`too_many_decimals`),
 * anything else that is not plain ASCII digits and one dot (`syntax`), and values above 2^64−1 minor
 * units (`too_large`). Zero ("0", "0.000") is accepted: whether zero is allowed is the caller's rule.
 */

import { U64_MAX } from '../encoding/bytes.js';

/** Decimals beyond this are refused (genesis allows at most 18). */
export const MAX_DECIMALS = 18;
/** 2^64−1 has 20 digits; with 18 decimals a valid text is at most 40 characters. Longer is refused early. */
const MAX_TEXT_LENGTH = 64;

export type AmountRule =
  | 'empty' | 'whitespace' | 'sign' | 'exponent' | 'separator' | 'incomplete' | 'leading_zero'
  | 'too_many_decimals' | 'syntax' | 'too_large' | 'bad_decimals' | 'negative';

export class AmountError extends Error {
  readonly rule: AmountRule;
  constructor(rule: AmountRule, message: string) {
    super(`${message} [${rule}]`);
    this.name = 'AmountError';
    this.rule = rule;
  }
}

function checkDecimals(decimals: number): void {
  if (!Number.isInteger(decimals) || decimals < 0 || decimals > MAX_DECIMALS) {
    throw new AmountError('bad_decimals', `decimals must be an integer from 0 to ${MAX_DECIMALS}, got ${decimals}`);
  }
}

const STRICT = /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/;

/** Parse a display amount into minor units, exactly. Throws AmountError (see the module comment). */
export function parseAmount(text: string, decimals: number): bigint {
  checkDecimals(decimals);
  if (typeof text !== 'string' || text.length === 0) throw new AmountError('empty', 'amount is empty');
  const shown = text.length > MAX_TEXT_LENGTH ? `${text.slice(0, MAX_TEXT_LENGTH)}…` : text;
  if (/\s/.test(text)) throw new AmountError('whitespace', `amount "${shown}" contains whitespace`);
  if (/^[+-]/.test(text)) throw new AmountError('sign', `amount "${shown}" has a sign; write the plain number`);
  if (/[eE]/.test(text)) throw new AmountError('exponent', `amount "${shown}" uses an exponent; write all digits`);
  if (/[,_']/.test(text)) throw new AmountError('separator', `amount "${shown}" contains a digit separator; write the digits only`);
  if (text.length > MAX_TEXT_LENGTH) throw new AmountError('too_large', `amount "${shown}" is too long`);
  const m = STRICT.exec(text);
  if (!m) {
    if (/^[0-9]+\.$/.test(text) || /^\.[0-9]+$/.test(text)) {
      throw new AmountError('incomplete', `amount "${text}" needs digits on both sides of the "." (e.g. "1.0" or "0.5")`);
    }
    if (/^0[0-9]+(?:\.[0-9]+)?$/.test(text)) throw new AmountError('leading_zero', `amount "${text}" has leading zeros`);
    throw new AmountError('syntax', `amount "${text}" is not a decimal number (digits with at most one ".")`);
  }
  const whole = m[1]!;
  const frac = m[2] ?? '';
  if (frac.length > decimals) {
    throw new AmountError('too_many_decimals', decimals === 0
      ? `amount "${text}" has a fraction, but the unit has no decimals`
      : `amount "${text}" has ${frac.length} decimals, the unit allows at most ${decimals}`);
  }
  const units = BigInt(whole + frac.padEnd(decimals, '0'));
  if (units > U64_MAX) throw new AmountError('too_large', `amount "${text}" is above the maximum ${formatAmount(U64_MAX, decimals)}`);
  return units;
}

/** Format minor units for display: "12.345", "1", "0.000001", "0". Trailing fraction zeros are trimmed. */
export function formatAmount(units: bigint, decimals: number): string {
  checkDecimals(decimals);
  if (typeof units !== 'bigint') throw new TypeError('formatAmount expects a bigint');
  if (units < 0n) throw new AmountError('negative', `amount ${units} is negative`);
  const digits = units.toString();
  if (decimals === 0) return digits;
  const padded = digits.padStart(decimals + 1, '0');
  const whole = padded.slice(0, padded.length - decimals);
  const frac = padded.slice(padded.length - decimals).replace(/0+$/, '');
  return frac ? `${whole}.${frac}` : whole;
}
