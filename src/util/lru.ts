/** Bounded insertion-order caches (least recently inserted/touched entries leave first). */
export class LruMap<K, V> {
  readonly #m = new Map<K, V>();
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
    if (this.#m.size > this.capacity) this.#m.delete(this.#m.keys().next().value as K);
  }
  delete(k: K): boolean { return this.#m.delete(k); }
  clear(): void { this.#m.clear(); }
}

export class LruSet<K> {
  readonly #m: LruMap<K, true>;
  constructor(capacity: number) { this.#m = new LruMap(capacity); }
  get size(): number { return this.#m.size; }
  has(k: K): boolean { return this.#m.has(k); }
  add(k: K): void { this.#m.set(k, true); }
  delete(k: K): boolean { return this.#m.delete(k); }
}
