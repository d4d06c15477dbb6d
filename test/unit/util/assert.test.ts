/** invariant / defined: they throw InvariantViolation with the message, and build a lazy one only on failure. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defined, invariant, InvariantViolation } from '../../../src/util/assert.js';

test('invariant: passes on truthy conditions, throws InvariantViolation with the message otherwise', () => {
  invariant(true, 'unused');
  invariant(1, 'unused');
  const x: number | undefined = 3 as number | undefined;
  invariant(x !== undefined, 'x is set');
  assert.equal(x + 1, 4); // narrowed by `asserts cond`
  for (const falsy of [false, 0, '', null, undefined, 0n]) {
    assert.throws(() => invariant(falsy, 'the rule that failed'), (e: unknown) => {
      assert.ok(e instanceof InvariantViolation);
      assert.ok(e instanceof Error);
      assert.equal(e.name, 'InvariantViolation');
      assert.equal(e.message, 'the rule that failed');
      return true;
    });
  }
});

test('invariant: a message function is called only when the invariant fails', () => {
  let built = 0;
  const msg = () => { built++; return `built ${built}`; };
  for (let i = 0; i < 1000; i++) invariant(i >= 0, msg);
  assert.equal(built, 0);
  assert.throws(() => invariant(false, msg), { name: 'InvariantViolation', message: 'built 1' });
  assert.equal(built, 1);
});

test('defined: returns a present value (0, "" and false included), throws on undefined and null', () => {
  assert.equal(defined(0, 'zero'), 0);
  assert.equal(defined('', 'empty'), '');
  assert.equal(defined(false, 'false'), false);
  const m = new Map([['a', 1]]);
  assert.equal(defined(m.get('a'), 'a is mapped'), 1);
  assert.throws(() => defined(m.get('b'), () => 'b is mapped'), { name: 'InvariantViolation', message: 'b is mapped' });
  assert.throws(() => defined(null, 'not null'), InvariantViolation);
});
