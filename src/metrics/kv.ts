/**
 * A KV wrapper that times writes (batch, put, del) and reports each duration in seconds. Reads and
 * iteration pass straight through. The node wraps its store with it when metrics are on, so chain and
 * mempool code stay unaware of metrics.
 */
import type { BatchOp, KV } from '../storage/kv.js';

export type WriteOp = 'batch' | 'put' | 'del';

export function timedWrites(inner: KV, observe: (op: WriteOp, seconds: number) => void): KV {
  const timed = <T>(op: WriteOp, write: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const p = write();
    const done = () => observe(op, (performance.now() - t0) / 1000);
    p.then(done, done);
    return p;
  };
  return {
    get: (key) => inner.get(key),
    getMany: (keys) => inner.getMany(keys),
    iterator: (opts) => inner.iterator(opts),
    close: () => inner.close(),
    put: (key, value) => timed('put', () => inner.put(key, value)),
    del: (key) => timed('del', () => inner.del(key)),
    batch: (ops: BatchOp[]) => timed('batch', () => inner.batch(ops)),
  };
}
