/** Address book (src/p2p/addrbook.ts): dial back-off. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AddrBook } from '../../../src/p2p/addrbook.js';
import { openMemory } from '../../../src/storage/kv.js';

test('address book back-off: 1 s × 2^failures up to 5 minutes, or up to the short cap an isolated node passes', async () => {
  const book = new AddrBook(await openMemory());
  const url = 'ws://127.0.0.1:30999';
  book.add(url, 0);
  book.attempt(url, 0);
  for (let i = 0; i < 10; i++) book.failure(url); // 2^10 s > 5 min
  const e = book.get(url)!;
  assert.equal(book.dueForDial(e, 299_999), false);
  assert.equal(book.dueForDial(e, 300_000), true, 'capped at 5 minutes');
  assert.equal(book.dueForDial(e, 7_999, 8_000), false);
  assert.equal(book.dueForDial(e, 8_000, 8_000), true, 'an isolated node retries after the short cap');
  book.failure(url); book.failure(url); book.failure(url); // 2^13 would pass the cap in the exponent too
  assert.equal(book.dueForDial(e, 8_000, 8_000), true);
  book.markSelf(url);
  assert.equal(book.dueForDial(e, 10_000_000, 8_000), false, 'never our own address');
});
