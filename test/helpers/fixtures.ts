/** Shared test fixtures: deterministic keys, genesis, signed transfers, chains on memory-level, blocks. */
import assert from 'node:assert/strict';
import { RuleError, type Rule } from '../../src/ledger/rules.js';
import { encodeAddress } from '../../src/encoding/address.js';
import { utf8 } from '../../src/encoding/bytes.js';
import { sha256 } from '../../src/crypto/hash.js';
import { getPublicKey } from '../../src/crypto/ed25519.js';
import { genesisFromJson, DEFAULT_PARAMS, type Genesis, type GenesisParams } from '../../src/ledger/genesis.js';
import { signTx, type Tx } from '../../src/ledger/tx.js';
import { Chain } from '../../src/chain/chain.js';
import { openMemory, type KV } from '../../src/storage/kv.js';
import { ManualClock } from '../../src/util/clock.js';
import { assembleBlock } from '../../src/producer/producer.js';
import { makeBlock, signHeader, type Block, type UnsignedHeader } from '../../src/ledger/block.js';
import type { KeyPair } from '../../src/crypto/keyfile.js';

export const GENESIS_TIME = 1_700_000_000_000;
export const SLOT_MS = 1000;

/** Deterministic key pair number `i` of family `label`. */
export function testKey(label: string, i = 0): KeyPair {
  const secretKey = sha256(utf8(`meshledger-test:${label}:${i}`));
  const publicKey = getPublicKey(secretKey);
  return { secretKey, publicKey, address: encodeAddress(publicKey) };
}

export function testKeys(label: string, n: number): KeyPair[] {
  return Array.from({ length: n }, (_, i) => testKey(label, i));
}

export function makeGenesis(o: {
  validators: KeyPair[];
  alloc?: [KeyPair, bigint][];
  chainId?: string;
  slotMs?: number;
  params?: Partial<GenesisParams>;
}): Genesis {
  const p = { ...DEFAULT_PARAMS, ...o.params };
  return genesisFromJson({
    chainId: o.chainId ?? 'meshledger-test',
    genesisTime: GENESIS_TIME,
    slotMs: o.slotMs ?? SLOT_MS,
    validators: o.validators.map((v) => v.address),
    alloc: (o.alloc ?? []).map(([k, a]) => ({ address: k.address, amount: a.toString() })),
    params: {
      minFee: p.minFee.toString(), maxBlockTxs: p.maxBlockTxs, maxBlockBytes: p.maxBlockBytes, maxMemoBytes: p.maxMemoBytes,
      maxClockDriftMs: p.maxClockDriftMs, decimals: p.decimals, symbol: p.symbol,
    },
  });
}

export function transfer(from: KeyPair, to: KeyPair | Uint8Array, amount: bigint, nonce: bigint, o: { fee?: bigint; chainId?: string; memo?: string } = {}): Tx {
  return signTx({
    chainId: o.chainId ?? 'meshledger-test', from: from.publicKey, to: to instanceof Uint8Array ? to : to.publicKey,
    amount, fee: o.fee ?? 1n, nonce, memo: o.memo ?? '',
  }, from.secretKey);
}

export interface TestChain {
  chain: Chain;
  db: KV;
  clock: ManualClock;
}

/** A chain on memory-level whose clock sits far in the future (no block is "from the future"). */
export async function openTestChain(genesis: Genesis, clock = new ManualClock(GENESIS_TIME + 1_000_000_000)): Promise<TestChain> {
  const db = await openMemory();
  const chain = await Chain.open({ db, genesis, clock });
  return { chain, db, clock };
}

/** Build a valid block for `slot` on `chain`'s head (using the production assembler); txs that do not apply are skipped. */
export function buildBlock(chain: Chain, validators: KeyPair[], slot: number, txs: Tx[] = []): Promise<Block> {
  const v = validators[slot % validators.length]!;
  return assembleBlock(chain, v.secretKey, v.publicKey, slot, txs);
}

/** Build and add `n` empty blocks at consecutive slots after the head's slot. */
export async function extend(chain: Chain, validators: KeyPair[], n: number, txsFor: (i: number) => Tx[] = () => []): Promise<Block[]> {
  const out: Block[] = [];
  for (let i = 0; i < n; i++) {
    const b = await buildBlock(chain, validators, chain.head.slot + 1, txsFor(i));
    await chain.addBlock(b);
    out.push(b);
  }
  return out;
}

/** Assert that `fn` throws a RuleError naming `rule`; returns it for further checks (index, inner). */
/** Add a block and report what happened: the chain's status, or the rule it broke (other errors throw). */
export async function addBlockOutcome(chain: Chain, block: Block): Promise<{ status?: string; rule?: string }> {
  try {
    return { status: (await chain.addBlock(block)).status };
  } catch (e) {
    if (!(e instanceof RuleError)) throw e;
    return { rule: e.rule };
  }
}

export function throwsRule(fn: () => unknown, rule: Rule, msg?: string): RuleError {
  let caught: RuleError | undefined;
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof RuleError, `expected RuleError(${rule}), got ${String(e)}`);
    assert.equal(e.rule, rule, msg ?? e.message);
    caught = e;
    return true;
  }, msg);
  return caught!;
}

/** The same block with some header fields changed, re-signed by the slot's validator (for invalid-block tests). */
export function resignBlock(b: Block, changes: Partial<UnsignedHeader>, validators: KeyPair[]): Block {
  const h = b.header;
  const u: UnsignedHeader = {
    chainId: h.chainId, height: h.height, slot: h.slot, parentHash: h.parentHash, timestamp: h.timestamp,
    txRoot: h.txRoot, stateRoot: h.stateRoot, proposer: h.proposer, ...changes,
  };
  return makeBlock(signHeader(u, validators[u.slot % validators.length]!.secretKey), b.txs);
}

/**
 * Feed block `order` (indexes) through `submit`; a block reported as an orphan waits until its parent
 * (`parentOf`) has been submitted, then goes in. Returns the indexes that stayed orphans.
 */
export async function feedWithOrphans(order: number[], parentOf: (i: number) => number, submit: (i: number) => Promise<string>): Promise<number[]> {
  const waiting = new Map<number, number[]>(); // parent index → orphans
  for (const first of order) {
    const queue = [first];
    while (queue.length) {
      const i = queue.shift()!;
      if ((await submit(i)) === 'orphan') {
        const p = parentOf(i);
        waiting.set(p, [...(waiting.get(p) ?? []), i]);
        continue;
      }
      queue.push(...(waiting.get(i) ?? []));
      waiting.delete(i);
    }
  }
  return [...waiting.values()].flat();
}

/**
 * A transfer signed so that the consensus rule (ZIP-215, cofactored) accepts it and strict RFC 8032
 * verification does not: R is a point of order 8 and S = k·a, so [S]B − R − [k]A = −R, which only the
 * cofactor clears. Honest signers never produce one; a block may still include it.
 */
export async function nonStandardTransfer(from: KeyPair, to: KeyPair, amount: bigint, nonce: bigint): Promise<Tx> {
  const ed = await import('@noble/ed25519');
  const { sha512 } = await import('@noble/hashes/sha2.js');
  const { decodeTx, txSigningMessage } = await import('../../src/ledger/tx.js');
  const L = 2n ** 252n + 27742317777372353535851937790883648493n;
  const T8 = ed.Point.fromHex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a');
  const honest = transfer(from, to, amount, nonce);
  const { scalar: a, pointBytes: A } = ed.utils.getExtendedPublicKey(from.secretKey);
  const R = T8.toBytes();
  const msg = txSigningMessage({ chainId: honest.chainId, from: honest.from, to: honest.to, amount, fee: honest.fee, nonce, memo: honest.memo });
  const h = sha512(new Uint8Array([...R, ...A, ...msg]));
  let k = 0n;
  for (let i = h.length - 1; i >= 0; i--) k = (k << 8n) | BigInt(h[i]!);
  const S = ed.etc.mod(k * a, L);
  const sig = new Uint8Array(64);
  sig.set(R, 0);
  for (let i = 0, x = S; i < 32; i++, x >>= 8n) sig[32 + i] = Number(x & 0xffn);
  const bytes = honest.bytes.slice();
  bytes.set(sig, bytes.length - 64);
  return decodeTx(bytes);
}
