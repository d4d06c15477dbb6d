/**
 * What the chain's modules share and the chain exports: block-index entries, query results, add results,
 * events and the chain's own error class. Types and constants only.
 */
import type { VerifyOptions } from '../crypto/ed25519.js';
import type { Block } from '../ledger/block.js';
import type { Tx } from '../ledger/tx.js';
import type { InvariantViolation } from '../util/assert.js';

/** What the chain keeps in memory per known block (any branch). */
export interface BlockEntry {
  readonly hash: Uint8Array;
  readonly hashHex: string;
  readonly height: number;
  readonly slot: number;
  readonly parentHex: string;
}

export interface TxLocation {
  blockHash: string;
  height: number;
  index: number;
}

/** A place in an account's history: a transfer's block height and index, and 0 = sent / 1 = received. */
export interface HistoryPosition { readonly height: number; readonly index: number; readonly dir: 0 | 1 }

export interface HistoryEntry {
  height: number;
  index: number;
  direction: 'sent' | 'received';
  blockHash: string;
  /** The block's timestamp (ms since the Unix epoch). */
  timestamp: number;
  tx: Tx;
}

export type AddStatus = 'connected' | 'reorganized' | 'side' | 'duplicate' | 'orphan';

export interface AddResult {
  status: AddStatus;
  hash: string;
  /** For 'orphan': the parent we lack. */
  parent?: string;
}

export interface ReorgEvent {
  oldHead: BlockEntry;
  newHead: BlockEntry;
  forkHeight: number;
  disconnected: Block[];
  connected: Block[];
}

export interface ChainEvents {
  'block:connected': (block: Block) => void;
  'block:disconnected': (block: Block) => void;
  /** After every head switch: the new head and the blocks that left and joined the best chain. */
  'chain:head': (e: { head: BlockEntry; connected: Block[]; disconnected: Block[] }) => void;
  'chain:reorg': (e: ReorgEvent) => void;
  'block:invalid': (e: { hash: string; rule: string; message: string }) => void;
  /** A validator signed two blocks for one slot; `headers` are the signed header bytes (the proof). */
  'chain:equivocation': (e: { slot: number; proposer: string; hashes: string[]; headers: Uint8Array[] }) => void;
  /**
   * An invariant failed inside a mutating operation: nothing of that operation was written, and every later
   * addBlock, reconsider and addEvidence rejects with this same error. The node stops on it.
   */
  'chain:halted': (e: { error: InvariantViolation }) => void;
}

/** The datadir cannot be used as it is (another network, another format, a torn or corrupted store). */
export class ChainError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChainError';
  }
}

/**
 * Header-only signature checks (a block's header, evidence) go ahead of queued mempool admission. A block's
 * transactions do not: most of them are in that queue already, on their way into the SigCache, and a block
 * jumping it can have them verified twice. On the stepping devnet's 2,000 tx/s step (one run each, same
 * code otherwise) block checks urgent confirmed 1,382 tx/s with 7 blocks in 11 slots; not urgent, 1,736
 * with 11 of 11.
 */
export const URGENT: VerifyOptions = { urgent: true };
