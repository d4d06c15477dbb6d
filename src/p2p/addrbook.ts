/**
 * Address book: peers we know how to reach, persisted in LevelDB (keyspace 'p') so that a restarted node
 * reconnects without bootnodes. An address is "verified" once we dialed it and completed a handshake; only
 * verified addresses are shared with other peers (peer exchange). Failed dials back off exponentially.
 */
import { decodeCanonical, encodeCanonical, expectArray, expectSafeUint } from '../encoding/canonical.js';
import { layout } from '../storage/layout.js';
import type { KV } from '../storage/kv.js';

export interface AddrEntry {
  url: string;
  lastSeen: number;
  lastAttempt: number;
  failures: number;
  verified: boolean;
  /** Our own address (learned when a dial reached ourselves): never dialed again. */
  self: boolean;
}

export const URL_RE = /^ws:\/\/(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
const MAX_ENTRIES = 2000;

export class AddrBook {
  readonly #db: KV;
  readonly #m = new Map<string, AddrEntry>();

  constructor(db: KV) {
    this.#db = db;
  }

  async load(): Promise<number> {
    for await (const [k, v] of this.#db.iterator(layout.range(layout.prefix('p')))) {
      try {
        const url = new TextDecoder().decode(k.subarray(1));
        const f = expectArray(decodeCanonical(v), 5, 'addr');
        this.#m.set(url, { url, lastSeen: expectSafeUint(f[0]!, 'lastSeen'), lastAttempt: 0, failures: expectSafeUint(f[1]!, 'failures'), verified: f[2] === true, self: f[3] === true });
      } catch { /* a corrupt entry is skipped; it is rewritten on next contact */ }
    }
    return this.#m.size;
  }

  get size(): number { return this.#m.size; }
  get(url: string): AddrEntry | undefined { return this.#m.get(url); }
  all(): AddrEntry[] { return [...this.#m.values()]; }

  /** Add an address heard of (bootnode, peer exchange, inbound peer's advertisement). */
  add(url: string, now: number): void {
    if (!URL_RE.test(url) || this.#m.has(url)) return;
    if (this.#m.size >= MAX_ENTRIES) this.#evictOne();
    this.#m.set(url, { url, lastSeen: 0, lastAttempt: 0, failures: 0, verified: false, self: false });
    void this.#save(url);
  }

  attempt(url: string, now: number): void {
    const e = this.#m.get(url);
    if (e) e.lastAttempt = now;
  }

  success(url: string, now: number): void {
    const e = this.#m.get(url) ?? { url, lastSeen: 0, lastAttempt: now, failures: 0, verified: false, self: false };
    e.lastSeen = now;
    e.failures = 0;
    e.verified = true;
    this.#m.set(url, e);
    void this.#save(url);
  }

  failure(url: string): void {
    const e = this.#m.get(url);
    if (!e) return;
    e.failures++;
    void this.#save(url);
  }

  markSelf(url: string): void {
    const e = this.#m.get(url);
    if (!e) return;
    e.self = true;
    void this.#save(url);
  }

  /**
   * Exponential back-off: 1 s × 2^failures, capped at `capMs` (5 minutes; the node passes a short cap while
   * it has no peer at all, since an isolated node loses nothing by retrying and everything by waiting).
   */
  dueForDial(e: AddrEntry, now: number, capMs = 300_000): boolean {
    if (e.self) return false;
    const backoff = Math.min(capMs, 1000 * 2 ** Math.min(e.failures, 12));
    return now - e.lastAttempt >= backoff;
  }

  verified(max: number): string[] {
    return [...this.#m.values()].filter((e) => e.verified && !e.self).sort((a, b) => b.lastSeen - a.lastSeen).slice(0, max).map((e) => e.url);
  }

  #evictOne(): void {
    let worst: AddrEntry | undefined;
    for (const e of this.#m.values()) if (!worst || (!e.verified && e.failures >= worst.failures)) worst = e;
    if (worst) {
      this.#m.delete(worst.url);
      void this.#db.del(layout.peer(worst.url)).catch(() => {});
    }
  }

  async #save(url: string): Promise<void> {
    const e = this.#m.get(url);
    if (!e) return;
    await this.#db.put(layout.peer(url), encodeCanonical([e.lastSeen, e.failures, e.verified, e.self, 0])).catch(() => {});
  }
}
