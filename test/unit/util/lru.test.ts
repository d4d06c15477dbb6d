/** LruMap / LruSet: exact least-recently-used eviction, checked against a plain array model. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LruMap, LruSet } from '../../../src/util/lru.js';

/** The obvious LRU: an array of [key, value], oldest first. */
class ModelLru {
  readonly e: [number, number][] = [];
  constructor(readonly capacity: number) {}
  #at(k: number) { return this.e.findIndex(([x]) => x === k); }
  get(k: number) { const i = this.#at(k); if (i < 0) return undefined; const [x] = this.e.splice(i, 1); this.e.push(x!); return x![1]; }
  peek(k: number) { const i = this.#at(k); return i < 0 ? undefined : this.e[i]![1]; }
  set(k: number, v: number) { const i = this.#at(k); if (i >= 0) this.e.splice(i, 1); this.e.push([k, v]); if (this.e.length > this.capacity) this.e.shift(); }
  delete(k: number) { const i = this.#at(k); if (i >= 0) this.e.splice(i, 1); return i >= 0; }
  clear() { this.e.length = 0; }
}

const op = fc.oneof(
  fc.record({ t: fc.constant('set' as const), k: fc.integer({ min: 0, max: 40 }), v: fc.integer() }),
  fc.record({ t: fc.constant('get' as const), k: fc.integer({ min: 0, max: 40 }) }),
  fc.record({ t: fc.constant('peek' as const), k: fc.integer({ min: 0, max: 40 }) }),
  fc.record({ t: fc.constant('delete' as const), k: fc.integer({ min: 0, max: 40 }) }),
  fc.record({ t: fc.constant('clear' as const) }),
);

test('LruMap evicts exactly as a textbook LRU over any sequence of set/get/peek/delete/clear', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 12 }), fc.array(op, { maxLength: 400 }), (cap, ops) => {
    const m = new LruMap<number, number>(cap), model = new ModelLru(cap);
    for (const o of ops) {
      if (o.t === 'set') { m.set(o.k, o.v); model.set(o.k, o.v); }
      else if (o.t === 'get') assert.equal(m.get(o.k), model.get(o.k));
      else if (o.t === 'peek') assert.equal(m.peek(o.k), model.peek(o.k));
      else if (o.t === 'delete') assert.equal(m.delete(o.k), model.delete(o.k));
      else { m.clear(); model.clear(); }
      assert.deepEqual([...m.keys()], model.e.map(([k]) => k));
      assert.equal(m.size, model.e.length);
    }
  }), { numRuns: 300 });
});

test('LruSet: re-adding refreshes an entry; the least recently added leaves first; many turnovers keep the bound', () => {
  const s = new LruSet<string>(3);
  for (const k of ['a', 'b', 'c']) s.add(k);
  s.add('a');
  s.add('d');
  assert.deepEqual([...s.keys()], ['c', 'a', 'd']);
  assert.equal(s.has('b'), false);
  // Far more evictions than entries (the eviction iterator crosses many rehashes of the underlying Map).
  const big = new LruSet<number>(1000);
  for (let i = 0; i < 200_000; i++) { big.add(i); if (i % 3 === 0) big.add(i - 500); if (i % 7 === 0) big.delete(i - 10); }
  assert.equal(big.size, 1000);
  const keys = [...big.keys()];
  assert.equal(new Set(keys).size, 1000);
  assert.equal(keys.at(-1), 199_999);
  assert.ok(keys.every((k) => k > 199_999 - 2000), 'only recent keys remain');
});
