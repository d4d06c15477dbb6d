/**
 * WebSocket subscriptions, fed by the chain's and mempool's events (src/node/wiring.ts calls onHead,
 * onTxAccepted and onTxRemoved).
 *
 * Topics (params of `subscribe`):
 *   newHeads                      every new best head: the header, plus `reorgDepth` (blocks abandoned; 0 normally)
 *   pendingTransactions           every transaction accepted into this node's mempool
 *   transaction  {id}             status changes of one transaction: pending → confirmed, confirmed → pending
 *                                 after a reorg, or unknown (dropped) with a reason
 *   account      {address}        balance/nonce of one account after every head change that touched it
 * Notifications: {"jsonrpc":"2.0","method":"subscription","params":{"subscription":ID,"result":…}}.
 */
import { randomBytes } from 'node:crypto';
import { decodeAddress } from '../encoding/address.js';
import { toHex } from '../encoding/bytes.js';
import { headerToJson, txToJson } from '../ledger/json.js';
import type { Block } from '../ledger/block.js';
import type { Tx } from '../ledger/tx.js';
import type { Chain } from '../chain/chain.js';
import type { Mempool } from '../mempool/mempool.js';
import type { Logger } from '../util/log.js';
import { RpcError } from './errors.js';
import { addressParam } from './params.js';
import { transactionStatus } from './txstatus.js';

export const TOPICS = ['newHeads', 'pendingTransactions', 'transaction', 'account'] as const;
export type Topic = (typeof TOPICS)[number];

type Sub = { id: string; topic: Topic; txId?: string; account?: { address: string; key: string } };

export interface Session {
  send(text: string): void;
  subs: Map<string, Sub>;
}

export class Subscriptions {
  readonly #chain: Chain;
  readonly #mempool: Mempool;
  readonly #log: Logger;
  readonly #sessions = new Set<Session>();
  readonly maxPerConnection: number;

  constructor(chain: Chain, mempool: Mempool, log: Logger, maxPerConnection = 32) {
    this.#chain = chain;
    this.#mempool = mempool;
    this.#log = log;
    this.maxPerConnection = maxPerConnection;
  }

  /** A new best head (chain:head). */
  onHead(e: { head: { hashHex: string }; connected: Block[]; disconnected: Block[] }): void {
    void this.#onHead(e.head.hashHex, e.connected, e.disconnected).catch((err) => this.#log.error('subscription fan-out failed', { error: err }));
  }

  /** A transaction entered the mempool (tx:accepted). */
  onTxAccepted(tx: Tx): void {
    if (this.#sessions.size === 0) return; // the common case at high ingest: no JSON built for nobody
    let json: ReturnType<typeof txToJson> | undefined;
    this.#each((s, sub) => {
      if (sub.topic === 'pendingTransactions') this.#notify(s, sub, (json ??= txToJson(tx)));
      else if (sub.topic === 'transaction' && sub.txId === tx.idHex) this.#notify(s, sub, { id: tx.idHex, status: 'pending', transaction: (json ??= txToJson(tx)) });
    });
  }

  /** A transaction left the mempool (tx:removed); 'included' is reported by the head event as confirmed. */
  onTxRemoved({ tx, reason }: { tx: Tx; reason: string }): void {
    if (reason === 'included') return;
    this.#each((s, sub) => {
      if (sub.topic === 'transaction' && sub.txId === tx.idHex) this.#notify(s, sub, { id: tx.idHex, status: 'unknown', reason });
    });
  }

  newSession(send: (text: string) => void): Session {
    const s: Session = { send, subs: new Map() };
    this.#sessions.add(s);
    return s;
  }

  endSession(s: unknown): void {
    this.#sessions.delete(s as Session);
  }

  subscribe(session: unknown, topic: string, p: Record<string, unknown>): string {
    const s = session as Session;
    if (s.subs.size >= this.maxPerConnection) {
      throw RpcError.app('subscription_error', { message: `at most ${this.maxPerConnection} subscriptions per connection`, rule: 'too_many_subscriptions' });
    }
    const id = '0x' + randomBytes(8).toString('hex');
    const sub: Sub = { id, topic: topic as Topic };
    if (topic === 'transaction') {
      if (typeof p.id !== 'string') throw RpcError.invalidParams('topic "transaction" needs "id"', { param: 'id' });
      sub.txId = p.id;
    } else if (topic === 'account') {
      if (typeof p.address !== 'string') throw RpcError.invalidParams('topic "account" needs "address"', { param: 'address' });
      sub.account = { address: p.address, key: toHex(addressParam(p.address)) };
    }
    s.subs.set(id, sub);
    return id;
  }

  unsubscribe(session: unknown, id: string): boolean {
    return (session as Session).subs.delete(id);
  }

  close(): void {
    this.#sessions.clear();
  }

  #each(fn: (s: Session, sub: Sub) => void): void {
    for (const s of this.#sessions) for (const sub of s.subs.values()) fn(s, sub);
  }

  #notify(s: Session, sub: Sub, result: unknown): void {
    try {
      s.send(JSON.stringify({ jsonrpc: '2.0', method: 'subscription', params: { subscription: sub.id, result } }));
    } catch (e) {
      this.#log.debug('subscription send failed', { error: e });
    }
  }

  async #onHead(headHash: string, connected: Block[], disconnected: Block[]): Promise<void> {
    if (this.#sessions.size === 0) return;
    const head = connected[connected.length - 1] ?? (await this.#chain.getBlock(headHash));
    const touched = new Set<string>();
    const txIds = new Set<string>();
    for (const b of [...connected, ...disconnected]) {
      touched.add(toHex(b.header.proposer));
      for (const tx of b.txs) { touched.add(toHex(tx.from)); touched.add(toHex(tx.to)); txIds.add(tx.idHex); }
    }
    const subs: [Session, Sub][] = [];
    this.#each((s, sub) => subs.push([s, sub]));
    for (const [s, sub] of subs) {
      if (sub.topic === 'newHeads' && head) {
        this.#notify(s, sub, { ...headerToJson(head.header, head.txs.length), reorgDepth: disconnected.length });
      } else if (sub.topic === 'transaction' && sub.txId && txIds.has(sub.txId)) {
        this.#notify(s, sub, await transactionStatus(this.#chain, this.#mempool, sub.txId));
      } else if (sub.topic === 'account' && sub.account && touched.has(sub.account.key)) {
        const a = await this.#chain.getAccount(decodeAddress(sub.account.address));
        this.#notify(s, sub, { address: sub.account.address, balance: a.balance.toString(), nonce: a.nonce.toString(), height: this.#chain.head.height });
      }
    }
  }
}
