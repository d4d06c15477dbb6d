/**
 * Bounded insertion-order caches (least recently inserted/touched entries leave first).
 *
 * The oldest entry is found with one long-lived iterator, not a fresh `keys().next()` per eviction. A Map
 * keeps deleted entries as holes until it rehashes, and a fresh iterator walks them from the front: with
 * evictions from the front on every insert, a full 200k-entry set spent ~46 µs per add in that walk (20k
 * entries: ~14 µs), and the node's seen/known sets made it a tenth of the main thread under load. The
 * long-lived iterator is always at the oldest live entry: everything before it was evicted, and inserts and
 * touches append at the end, where it will reach them (the spec's Map iteration visits entries added after
 * it started and skips deleted ones). ~1 µs per add at either size.
 *
 * The iterator is made at the first eviction, not before: a live iterator keeps every hash table the Map
 * outgrew since the iterator's was current (V8 chains them so the iterator can follow), and a set still
 * filling towards a large capacity retained them all: +16 MiB of heap in a node holding 100k pending
 * transactions. Once full, each eviction's next() moves the iterator to the current table.
 */
export class LruMap<K, V> {
  readonly #m = new Map<K, V>();
  #oldest: Iterator<K> | undefined;
  constructor(readonly capacity: number) {
    if (capacity < 1) throw new Error('capacity must be ≥ 1');
  }
  get size(): number { return this.#m.size; }
  has(k: K): boolean { return this.#m.has(k); }
  get(k: K): V | undefined {
    const v = this.#m.get(k);
    if (v !== undefined) { this.#m.delete(k); this.#m.set(k, v); }
    return v;
  }
  peek(k: K): V | undefined { return this.#m.get(k); }
  set(k: K, v: V): void {
    this.#m.delete(k);
    this.#m.set(k, v);
    if (this.#m.size > this.capacity) this.#evictOldest();
  }
  delete(k: K): boolean { return this.#m.delete(k); }
  clear(): void { this.#m.clear(); this.#oldest = undefined; }
  /** Keys, least recently inserted/touched first. */
  keys(): IterableIterator<K> { return this.#m.keys(); }
  values(): IterableIterator<V> { return this.#m.values(); }

  #evictOldest(): void {
    let r = (this.#oldest ??= this.#m.keys()).next();
    // Cannot happen while the map is non-empty (see the class comment); a fresh iterator is always right.
    if (r.done) { this.#oldest = this.#m.keys(); r = this.#oldest.next(); }
    this.#m.delete(r.value as K);
  }
}

export class LruSet<K> {
  readonly #m: LruMap<K, true>;
  constructor(capacity: number) { this.#m = new LruMap(capacity); }
  get size(): number { return this.#m.size; }
  has(k: K): boolean { return this.#m.has(k); }
  add(k: K): void { this.#m.set(k, true); }
  delete(k: K): boolean { return this.#m.delete(k); }
  /** Keys, least recently inserted/touched first. */
  keys(): IterableIterator<K> { return this.#m.keys(); }
}
