/**
 * The store interface the core needs: the part of abstract-level that we use, with byte keys and values.
 * Production passes `level` (LevelDB on disk); the simulator and unit tests pass `memory-level`.
 */
export type BatchOp = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array };

export interface KV {
  get(key: Uint8Array): Promise<Uint8Array | undefined>;
  getMany(keys: Uint8Array[]): Promise<(Uint8Array | undefined)[]>;
  put(key: Uint8Array, value: Uint8Array): Promise<void>;
  del(key: Uint8Array): Promise<void>;
  batch(ops: BatchOp[]): Promise<void>;
  iterator(opts: { gte?: Uint8Array; gt?: Uint8Array; lt?: Uint8Array; lte?: Uint8Array; reverse?: boolean; limit?: number }): AsyncIterable<[Uint8Array, Uint8Array]>;
  close(): Promise<void>;
}

const BYTES = { keyEncoding: 'view', valueEncoding: 'view' } as const;

/** Open LevelDB at `dir` with byte keys and values. */
export async function openLevel(dir: string): Promise<KV> {
  const { Level } = await import('level');
  const db = new Level<Uint8Array, Uint8Array>(dir, BYTES);
  await db.open();
  const kv = db as unknown as KV;
  return {
    get: (k) => kv.get(k),
    getMany: (ks) => kv.getMany(ks),
    put: (k, v) => kv.put(k, v),
    del: (k) => kv.del(k),
    // The chained form: an array batch spends noticeably more main-thread time per operation turning
    // operation objects into LevelDB's batch (a block is thousands of operations).
    batch: (ops) => {
      const b = db.batch();
      for (const op of ops) {
        if (op.type === 'put') b.put(op.key, op.value);
        else b.del(op.key);
      }
      return b.write();
    },
    iterator: (o) => kv.iterator(o),
    close: () => kv.close(),
  };
}

/** An in-memory store with the same interface (tests, simulator). */
export async function openMemory(): Promise<KV> {
  const { MemoryLevel } = await import('memory-level');
  const db = new MemoryLevel<Uint8Array, Uint8Array>(BYTES);
  await db.open();
  return db as unknown as KV;
}
