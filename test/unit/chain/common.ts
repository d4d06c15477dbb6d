/**
 * What the chain's unit tests share: one genesis with three validators and two funded users, and helpers
 * to grow, replay, re-sign and inspect chains.
 */
import assert from 'node:assert/strict';
import type { Chain } from '../../../src/chain/chain.js';
import { makeBlock, signHeader, type Block, type BlockHeader, type UnsignedHeader } from '../../../src/ledger/block.js';
import { RuleError } from '../../../src/ledger/rules.js';
import { layout } from '../../../src/storage/layout.js';
import type { KV } from '../../../src/storage/kv.js';
import { toHex } from '../../../src/encoding/bytes.js';
import type { KeyPair } from '../../../src/crypto/keyfile.js';
import type { Tx } from '../../../src/ledger/tx.js';
import { buildBlock, makeGenesis, openTestChain, testKeys, type TestChain } from '../../helpers/fixtures.js';

export const V = testKeys('chain-val', 3);
export const [alice, bob, carol, dave] = testKeys('chain-user', 4) as [KeyPair, KeyPair, KeyPair, KeyPair];
export const ALICE0 = 1_000_000n;
export const BOB0 = 500_000n;
export const genesis = makeGenesis({ validators: V, alloc: [[alice, ALICE0], [bob, BOB0]] });

export const keyFor = (slot: number, vals: KeyPair[] = V): KeyPair => vals[slot % vals.length]!;

export function fields(h: BlockHeader): UnsignedHeader {
  return {
    chainId: h.chainId, height: h.height, slot: h.slot, parentHash: h.parentHash, timestamp: h.timestamp,
    txRoot: h.txRoot, stateRoot: h.stateRoot, proposer: h.proposer,
  };
}

/** Re-sign `b`'s header with `changes` applied (default signer: the slot's scheduled validator). */
export function resign(b: Block, changes: Partial<UnsignedHeader>, key?: KeyPair, txs: readonly Tx[] = b.txs): Block {
  const u = { ...fields(b.header), ...changes };
  return makeBlock(signHeader(u, (key ?? keyFor(u.slot)).secretKey), txs);
}

export function isRule(rule: string, inner?: string): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof RuleError, `expected RuleError, got ${String(e)}`);
    assert.equal(e.rule, rule, `rule (message: ${e.message})`);
    if (inner !== undefined) assert.equal(e.inner?.rule, inner, `inner rule (message: ${e.message})`);
    return true;
  };
}

export async function dump(db: KV, prefixes: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const p of prefixes) {
    for await (const [k, v] of db.iterator(layout.range(layout.prefix(p)))) out.set(toHex(k), toHex(v));
  }
  return out;
}

export async function snapshot(c: Chain) {
  return {
    head: c.head.hashHex,
    height: c.head.height,
    root: toHex(c.stateRoot),
    audit: await c.auditSupply(),
    accounts: await dump(c.db, 'a'),
  };
}

/** Feed `blocks` (in order) to a fresh chain. */
export async function replay(blocks: readonly Block[], g = genesis): Promise<TestChain> {
  const tc = await openTestChain(g);
  for (const b of blocks) await tc.chain.addBlock(b);
  return tc;
}

/** Grow `n` blocks on `chain`'s head, the first at head.slot + firstGap, then consecutive slots. */
export async function grow(chain: Chain, vals: KeyPair[], n: number, firstGap = 1, txsFor: (i: number) => Tx[] = () => []): Promise<Block[]> {
  const out: Block[] = [];
  for (let i = 0; i < n; i++) {
    const b = await buildBlock(chain, vals, chain.head.slot + (i === 0 ? firstGap : 1), txsFor(i));
    await chain.addBlock(b);
    out.push(b);
  }
  return out;
}
