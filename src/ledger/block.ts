/**
 * Blocks: header and body encodings, the header signature, and the rules that need no state.
 *
 * Header, signed encoding (canonical MessagePack array of 10):
 *   [version=1, chainId: str, height: uint, slot: uint, parentHash: bin32, timestamp: uint (ms),
 *    txRoot: bin32, stateRoot: bin32, proposer: bin32 (public key), signature: bin64]
 * Unsigned header: the first 9 fields. Signing message: ASCII "meshledger:block:v1", 0x00, unsigned header.
 * Block hash: SHA-256 of the signed header encoding.
 * Block: canonical array [header: bin (signed header encoding), txs: array of bin (signed tx encodings)].
 */
import { type CanonicalValue, decodeCanonical, encodeCanonical, EncodingError, expectArray, expectBytes, expectList, expectSafeUint, expectString, expectU64 } from '../encoding/canonical.js';
import { bytesEqual, concatBytes, toHex, utf8 } from '../encoding/bytes.js';
import { sha256 } from '../crypto/hash.js';
import { sign as ed25519Sign, type VerifyItem } from '../crypto/ed25519.js';
import { RuleError } from './rules.js';
import { asRuleError, checkTxStatic, decodeTx, txVerifyItem, type Tx } from './tx.js';
import { merkleRoot } from './merkle.js';
import { proposerFor, slotStart } from './schedule.js';
import type { Genesis } from './genesis.js';

export const BLOCK_VERSION = 1;
export const BLOCK_SIGNING_PREFIX = concatBytes(utf8('meshledger:block:v1'), new Uint8Array([0]));
export const ZERO_HASH = new Uint8Array(32);
export const ZERO_SIGNATURE = new Uint8Array(64);

export interface UnsignedHeader {
  chainId: string;
  height: number;
  slot: number;
  parentHash: Uint8Array;
  timestamp: number;
  txRoot: Uint8Array;
  stateRoot: Uint8Array;
  proposer: Uint8Array;
}

export interface BlockHeader extends UnsignedHeader {
  readonly version: number;
  readonly signature: Uint8Array;
  readonly bytes: Uint8Array;
  readonly hash: Uint8Array;
  readonly hashHex: string;
}

export interface Block {
  readonly header: BlockHeader;
  readonly txs: readonly Tx[];
  readonly bytes: Uint8Array;
}

function unsignedHeaderFields(h: UnsignedHeader): (string | number | Uint8Array)[] {
  return [BLOCK_VERSION, h.chainId, h.height, h.slot, h.parentHash, h.timestamp, h.txRoot, h.stateRoot, h.proposer];
}

export function headerSigningMessage(h: UnsignedHeader): Uint8Array {
  return concatBytes(BLOCK_SIGNING_PREFIX, encodeCanonical(unsignedHeaderFields(h)));
}

export function makeHeader(h: UnsignedHeader, signature: Uint8Array): BlockHeader {
  const bytes = encodeCanonical([...unsignedHeaderFields(h), signature]);
  const hash = sha256(bytes);
  return { ...h, version: BLOCK_VERSION, signature, bytes, hash, hashHex: toHex(hash) };
}

export function signHeader(h: UnsignedHeader, secretKey: Uint8Array): BlockHeader {
  return makeHeader(h, ed25519Sign(headerSigningMessage(h), secretKey));
}

/** Bytes a transaction takes in a block beyond its own: its bin8/bin16 header (MAX_TX_BYTES < 65536). */
export const TX_FRAMING_BYTES = 3;

/**
 * Bytes a block of chain `chainId` takes beyond its transactions (with their framing) at most: the block's
 * array header, the header's bin header and its longest encoding, and the transaction list's array header.
 * A block producer budgets maxBlockBytes minus this, and TX_FRAMING_BYTES per transaction.
 */
export function blockFramingBytes(chainId: string): number {
  const MAX = Number.MAX_SAFE_INTEGER;
  const z = (n: number) => new Uint8Array(n);
  const longestHeader = encodeCanonical([BLOCK_VERSION, chainId, MAX, MAX, z(32), MAX, z(32), z(32), z(32), z(64)]).length;
  return 1 + 3 + longestHeader + 5;
}

export function makeBlock(header: BlockHeader, txs: readonly Tx[]): Block {
  return { header, txs, bytes: encodeCanonical([header.bytes, txs.map((t) => t.bytes)], header.bytes.length + 16 + txs.reduce((n, t) => n + t.byteLength + 3, 0)) };
}

/**
 * Blocks built here by buildBlock, whose transactions root was computed in this process from the very
 * (frozen) transaction list: checkBlockRules does not hash the tree a second time for them. Every block
 * from anywhere else is checked in full.
 */
const ownTxRoot = new WeakSet<Block>();

/** Sign and make a block over `txs`, computing its transactions root (a block producer's last step). */
export function buildBlock(h: Omit<UnsignedHeader, 'txRoot'>, txs: readonly Tx[], secretKey: Uint8Array): Block {
  const list = Object.freeze([...txs]);
  const block = makeBlock(signHeader({ ...h, txRoot: merkleRoot(list.map((t) => t.id)) }, secretKey), list);
  ownTxRoot.add(block);
  return block;
}

export function decodeHeader(bytes: Uint8Array): BlockHeader {
  try {
    const f = expectArray(decodeCanonical(bytes, 1024), 10, 'block header');
    const version = expectU64(f[0]!, 'version');
    if (version !== BigInt(BLOCK_VERSION)) throw new RuleError('bad_version', `block version ${version}`);
    const h: UnsignedHeader = {
      chainId: expectString(f[1]!, 'chainId'),
      height: expectSafeUint(f[2]!, 'height'),
      slot: expectSafeUint(f[3]!, 'slot'),
      parentHash: expectBytes(f[4]!, 'parentHash', 32),
      timestamp: expectSafeUint(f[5]!, 'timestamp'),
      txRoot: expectBytes(f[6]!, 'txRoot', 32),
      stateRoot: expectBytes(f[7]!, 'stateRoot', 32),
      proposer: expectBytes(f[8]!, 'proposer', 32),
    };
    const signature = expectBytes(f[9]!, 'signature', 64);
    const hash = sha256(bytes);
    return { ...h, version: BLOCK_VERSION, signature, bytes, hash, hashHex: toHex(hash) };
  } catch (e) {
    throw asRuleError(e);
  }
}

/** Decode a block. `maxBytes` is the genesis limit; every part must be canonical. */
export function decodeBlock(bytes: Uint8Array, maxBytes: number): Block {
  if (bytes.length > maxBytes + 64 * 1024) throw new RuleError('block_too_large', `${bytes.length} bytes`);
  let parts: readonly CanonicalValue[];
  try {
    parts = expectArray(decodeCanonical(bytes, maxBytes + 64 * 1024), 2, 'block');
  } catch (e) {
    throw asRuleError(e);
  }
  const header = decodeHeader(wrapBytes(parts[0], 'header'));
  const list = wrapList(parts[1]);
  const txs: Tx[] = [];
  for (let i = 0; i < list.length; i++) {
    try {
      txs.push(decodeTx(wrapBytes(list[i], `txs[${i}]`)));
    } catch (e) {
      const r = asRuleError(e);
      throw new RuleError('bad_tx', `transaction ${i}: ${r.message}`, { index: i, inner: r });
    }
  }
  return { header, txs, bytes };
}

function wrapBytes(v: unknown, what: string): Uint8Array {
  try {
    return expectBytes(v as Uint8Array, what);
  } catch (e) {
    throw asRuleError(e);
  }
}

function wrapList(v: unknown): readonly CanonicalValue[] {
  try {
    return expectList(v as CanonicalValue, 'txs');
  } catch (e) {
    if (e instanceof EncodingError) throw asRuleError(e);
    throw e;
  }
}

/**
 * Context-free block rules (no parent, no state, no clock): version/chain, schedule, timestamp, limits,
 * transactions root, duplicate transactions and each transaction's static rules. Returns the signature
 * checks (header first, then transactions) for the caller to run in a batch.
 */
export function checkBlockStatic(block: Block, genesis: Genesis): VerifyItem[] {
  checkBlockRules(block, genesis);
  return Array.from({ length: block.txs.length + 1 }, (_, i) => blockVerifyItem(block, i));
}

/** Signature check `i` of a block: 0 is the header, i ≥ 1 is transaction i − 1. Built only when needed. */
export function blockVerifyItem(block: Block, i: number): VerifyItem {
  return i === 0 ? headerVerifyItem(block.header) : txVerifyItem(block.txs[i - 1]!);
}

/** The rules a header obeys on its own (no parent, no body, no signature). */
export function checkHeaderRules(h: BlockHeader, genesis: Genesis): void {
  if (h.chainId !== genesis.chainId) throw new RuleError('wrong_chain', `block is for chain "${h.chainId}"`);
  if (h.height < 1) throw new RuleError('bad_height', 'only the genesis block has height 0');
  if (!bytesEqual(h.proposer, proposerFor(genesis, h.slot))) throw new RuleError('wrong_proposer', `slot ${h.slot} belongs to validator #${h.slot % genesis.validators.length}`);
  if (h.timestamp !== slotStart(genesis, h.slot)) throw new RuleError('bad_timestamp', `timestamp ${h.timestamp} ≠ slot start ${slotStart(genesis, h.slot)}`);
}

/** The stateless rules of checkBlockStatic, without building the signature checks. */
export function checkBlockRules(block: Block, genesis: Genesis): void {
  const h = block.header;
  const p = genesis.params;
  checkHeaderRules(h, genesis);
  // The transactions root binds the body to the header: only once it matches do the body's rules say anything
  // about the block the header names (a copy with another body is a different, mutated message).
  if (!ownTxRoot.has(block) && !bytesEqual(merkleRoot(block.txs.map((t) => t.id)), h.txRoot)) throw new RuleError('bad_tx_root');
  if (block.txs.length > p.maxBlockTxs) throw new RuleError('too_many_txs', `${block.txs.length} > ${p.maxBlockTxs}`);
  if (block.bytes.length > p.maxBlockBytes) throw new RuleError('block_too_large', `${block.bytes.length} > ${p.maxBlockBytes}`);
  const seen = new Set<string>();
  for (let i = 0; i < block.txs.length; i++) {
    const tx = block.txs[i]!;
    if (seen.has(tx.idHex)) throw new RuleError('duplicate_tx', `transaction ${i} repeats an earlier one`, { index: i });
    seen.add(tx.idHex);
    try {
      checkTxStatic(tx, genesis.chainId, p);
    } catch (e) {
      if (e instanceof RuleError) throw new RuleError('bad_tx', `transaction ${i}: ${e.message}`, { index: i, inner: e });
      throw e;
    }
  }
}

export function headerVerifyItem(h: BlockHeader): VerifyItem {
  return { signature: h.signature, message: headerSigningMessage(h), publicKey: h.proposer };
}

/** Rules against the parent and the local clock. `nowMs` comes from the injected clock. */
export function checkBlockContext(h: UnsignedHeader, parent: { height: number; slot: number }, nowMs: number, genesis: Genesis): void {
  if (h.height !== parent.height + 1) throw new RuleError('bad_height', `height ${h.height} ≠ parent height ${parent.height} + 1`);
  if (h.slot <= parent.slot) throw new RuleError('bad_slot', `slot ${h.slot} ≤ parent slot ${parent.slot}`);
  const ahead = slotStart(genesis, h.slot) - nowMs;
  if (ahead > genesis.params.maxClockDriftMs) throw new RuleError('future_slot', `slot ${h.slot} starts ${ahead} ms ahead of the local clock`);
}

/** The genesis block: height 0, slot 0, parent = genesis config hash, no transactions, no signature. */
export function genesisBlock(genesis: Genesis, stateRoot: Uint8Array): Block {
  const header = makeHeader({
    chainId: genesis.chainId, height: 0, slot: 0, parentHash: genesis.configHash, timestamp: genesis.genesisTime,
    txRoot: merkleRoot([]), stateRoot, proposer: ZERO_HASH,
  }, ZERO_SIGNATURE);
  return makeBlock(header, []);
}
