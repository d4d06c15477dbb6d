/** parseTxBytes: the `tx` parameter of sendTransaction, as hex (either case, optional 0x) or canonical base64. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseTxBytes } from '../../../src/rpc/params.js';
import { RpcError } from '../../../src/rpc/errors.js';

const bytes = (s: string) => Buffer.from(parseTxBytes(s)).toString('hex');

test('hex in lower, upper or mixed case, with or without 0x, decodes to the same bytes', () => {
  for (const s of ['00ff10ab', '00FF10AB', '00fF10Ab', '0x00ff10ab', '0x00FF10AB']) assert.equal(bytes(s), '00ff10ab', s);
});

test('canonical base64 decodes; what is neither hex nor canonical base64 is invalid params', () => {
  assert.equal(bytes(Buffer.from([1, 2, 3, 250]).toString('base64')), '010203fa');
  // Not hex (a bad pair, an odd length, nothing after 0x), and not canonical base64 either. ('00zz' is base64.)
  for (const s of ['00z!', '0g', '00f', '0x', 'AQID+g=', '0x00ff1', '00ff10a!']) {
    assert.throws(() => parseTxBytes(s), (e: unknown) => e instanceof RpcError, JSON.stringify(s));
  }
});

test('property: any bytes round-trip through hex (any case, optional 0x) and through base64, unless that base64 is also hex', () => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.boolean(), fc.boolean(), (b, upper, prefix) => {
    const hex = Buffer.from(b).toString('hex');
    const s = (prefix ? '0x' : '') + (upper ? hex.toUpperCase() : hex);
    assert.equal(bytes(s), hex);
    const b64 = Buffer.from(b).toString('base64');
    // Documented precedence (schemas/openrpc.json SignedTransaction): a string that is valid hex is hex.
    const alsoHex = /^([0-9a-fA-F]{2})+$/.test(b64);
    assert.equal(bytes(b64), alsoHex ? b64.toLowerCase() : hex);
  }));
});

test('a base64 text made only of hex digits reads as hex (the documented precedence)', () => {
  const b64 = Buffer.from([1, 167, 0]).toString('base64');
  assert.equal(b64, 'AacA');
  assert.equal(bytes(b64), 'aaca');
});
