/** SigCache + verifyEachWithCache: each signature is checked once per node, also while a check is running. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SigCache, verifyEachWithCache } from '../../../src/crypto/sigcache.js';
import type { SignatureVerifier, VerifyItem } from '../../../src/crypto/ed25519.js';

/** A verifier whose batches are answered by the test: verdict = the message's first byte is 1. */
class ManualVerifier implements SignatureVerifier {
  batches: { items: VerifyItem[]; resolve: (v: boolean[]) => void; reject: (e: Error) => void }[] = [];
  verifyBatch(items: VerifyItem[]): Promise<boolean[]> {
    return new Promise((resolve, reject) => this.batches.push({ items, resolve, reject }));
  }
  answer(k: number): void { const b = this.batches[k]!; b.resolve(b.items.map((it) => it.message[0] === 1)); }
  async close(): Promise<void> {}
}

const item = (ok: boolean, tag: number): VerifyItem => ({ signature: new Uint8Array(64), publicKey: new Uint8Array(32), message: Uint8Array.of(ok ? 1 : 0, tag) });
const tick = () => new Promise<void>((r) => setImmediate(r));

test('a check already running for another caller is awaited, not run again; its verdict (pass or fail) is shared', async () => {
  const v = new ManualVerifier();
  const cache = new SigCache();
  const good = new Set(['a', 'b', 'd']);
  const at = (ids: (string | null)[]) => (i: number) => item(ids[i] === null || good.has(ids[i]!), i);
  const admission = ['a', 'b', 'c'];
  const first = verifyEachWithCache(v, cache, admission, at(admission));
  assert.equal(cache.inflight, 3);
  const blockIds = [null, 'a', 'c', 'd'];
  const block = verifyEachWithCache(v, cache, blockIds, at(blockIds));
  await tick();
  assert.equal(v.batches.length, 2);
  assert.deepEqual(v.batches[1]!.items.map((x) => x.message[1]), [0, 3], 'only the header and d are checked for the block');
  v.answer(1);
  await tick();
  v.answer(0);
  assert.deepEqual(await first, [true, true, false]);
  assert.deepEqual(await block, [true, true, false, true], 'c failed for the admission, so it fails for the block');
  assert.equal(cache.inflight, 0);
  assert.ok(cache.has('a') && cache.has('d') && !cache.has('c'));
  // Cached now: nothing to check.
  assert.deepEqual(await verifyEachWithCache(v, cache, ['a', 'b', 'd'], at(['a', 'b', 'd'])), [true, true, true]);
  assert.equal(v.batches.length, 2);
});

test('when the batch awaited fails, the waiting caller runs its checks itself', async () => {
  const v = new ManualVerifier();
  const cache = new SigCache();
  const ids = ['x', 'y'];
  const first = verifyEachWithCache(v, cache, ids, (i) => item(true, i));
  const second = verifyEachWithCache(v, cache, ids, (i) => item(i === 0, i));
  await tick();
  assert.equal(v.batches.length, 1);
  v.batches[0]!.reject(new Error('verifier closed'));
  await assert.rejects(first, /verifier closed/);
  await tick();
  assert.equal(v.batches.length, 2, 'the waiter checked them itself');
  v.answer(1);
  assert.deepEqual(await second, [true, false]);
  assert.equal(cache.inflight, 0);
  assert.ok(cache.has('x') && !cache.has('y'));
});
