/**
 * A byzantine validator for the simulator. It runs the production node (chain, mempool, gossip, sync) with
 * the production Producer stopped; at each slot it owns, the simulator calls `act`, which chooses by the
 * seeded PRNG to
 *   - behave: build a block like the Producer does, add it to its own chain, relay it;
 *   - withhold: produce nothing;
 *   - equivocate: build two different valid blocks for the slot (different tx sets), add both to its own
 *     chain, and relay one: the simulated network (SimNet.intercept) swaps it for the other on the way to
 *     a seeded subset of the honest peers, so each half of the network first sees a different block;
 *   - invalid: build a valid block and corrupt it (a wrong state root, or a validly signed transaction that
 *     cannot apply), re-sign it, and push it to its peers without adding it to its own chain.
 * No production code is changed: it uses assembleBlock/signHeader, the chain's public addBlock and the
 * network's public relayBlock.
 */
import { sha256 } from '../crypto/hash.js';
import { toHex, utf8 } from '../encoding/bytes.js';
import { makeBlock, signHeader, type Block, type UnsignedHeader } from '../ledger/block.js';
import { merkleRoot } from '../ledger/merkle.js';
import { proposerFor } from '../ledger/schedule.js';
import { signTx } from '../ledger/tx.js';
import { assembleBlock } from '../node/producer.js';
import type { MeshNode } from '../node/node.js';
import type { KeyPair } from '../node/keyfile.js';
import { decodeMessage, encodeMessage, MSG, sizeLimits } from '../p2p/messages.js';
import { bytesEqual } from '../encoding/bytes.js';
import type { Prng } from './prng.js';

export type ByzAction = 'behave' | 'withhold' | 'equivocate' | 'invalid-root' | 'invalid-tx';

export interface Equivocation { slot: number; proposer: string; hashes: [string, string]; to: string[] }

/** One pending swap: frames carrying `a` from `from` to a recipient in `to` carry `b` instead. */
interface Swap { from: string; a: Block; b: Block; to: Set<string>; untilSlot: number }

export class ByzantineBehaviour {
  readonly equivocations: Equivocation[] = [];
  /** Hashes of blocks a byzantine node knowingly corrupted: none may ever be on an honest best chain. */
  readonly corrupted = new Map<string, { slot: number; kind: ByzAction }>();
  readonly counts: Record<ByzAction, number> = { behave: 0, withhold: 0, equivocate: 0, 'invalid-root': 0, 'invalid-tx': 0 };
  readonly #swaps: Swap[] = [];
  readonly #limits: Record<number, number>;

  constructor(readonly rng: Prng, maxBlockBytes: number, readonly junkKey: KeyPair) {
    this.#limits = sizeLimits(maxBlockBytes);
  }

  /** SimNet.intercept: rewrite frames of pending equivocations for their chosen recipients. */
  intercept = (from: string, to: string, frame: Uint8Array): Uint8Array => {
    if (this.#swaps.length === 0) return frame;
    const swaps = this.#swaps.filter((s) => s.from === from && s.to.has(to));
    if (!swaps.length) return frame;
    // Only BLOCK (6) and INV_BLOCK (7) frames are rewritten; the type is the frame's second byte (array header first).
    const m = decodeMessage(frame, this.#limits);
    for (const s of swaps) {
      if (m.type === MSG.BLOCK && bytesEqual(m.block, s.a.bytes)) return encodeMessage({ type: MSG.BLOCK, block: s.b.bytes });
      if (m.type === MSG.INV_BLOCK && bytesEqual(m.hash, s.a.header.hash)) return encodeMessage({ type: MSG.INV_BLOCK, hash: s.b.header.hash, height: s.b.header.height });
    }
    return frame;
  };

  /** Forget swaps whose blocks are old news. */
  expire(slot: number): void {
    for (let i = this.#swaps.length - 1; i >= 0; i--) if (this.#swaps[i]!.untilSlot < slot) this.#swaps.splice(i, 1);
  }

  /**
   * The byzantine node `node` (address `addr`, validator key `key`) owns `slot`: misbehave or not.
   * `honestPeers` are the addresses an equivocation may be split across. Returns the action taken.
   */
  async act(node: MeshNode, addr: string, key: KeyPair, slot: number, honestPeers: string[]): Promise<ByzAction> {
    const chain = node.chain;
    if (!bytesEqual(proposerFor(chain.genesis, slot), key.publicKey)) throw new Error(`byzantine: slot ${slot} is not ours`);
    if (slot <= chain.head.slot) return 'withhold';
    const r = this.rng.int(100);
    let action: ByzAction = r < 30 ? 'behave' : r < 65 ? 'equivocate' : r < 80 ? 'withhold' : r < 90 ? 'invalid-root' : 'invalid-tx';
    const p = chain.genesis.params;
    const candidates = node.mempool.candidates(p.maxBlockTxs, p.maxBlockBytes - 4096);
    // Two different valid blocks need at least one transaction to leave out of one of them.
    if (action === 'equivocate' && candidates.length === 0) action = 'behave';
    this.counts[action]++;
    if (action === 'withhold') return action;
    const a = await assembleBlock(chain, key.secretKey, key.publicKey, slot, candidates);
    if (action === 'behave') {
      await chain.addBlock(a);
      node.network?.relayBlock(a);
      return action;
    }
    if (action === 'equivocate') {
      const b = await assembleBlock(chain, key.secretKey, key.publicKey, slot, candidates.slice(0, -1));
      if (b.header.hashHex === a.header.hashHex) throw new Error('byzantine: equivocation produced one block');
      await chain.addBlock(a);
      await chain.addBlock(b).catch(() => {});
      // Split the honest peers: each gets `b` with probability 1/2, and both halves are non-empty when possible.
      const to = honestPeers.filter(() => this.rng.chance(0.5));
      if (honestPeers.length >= 2 && to.length === 0) to.push(honestPeers[0]!);
      if (honestPeers.length >= 2 && to.length === honestPeers.length) to.pop();
      this.#swaps.push({ from: addr, a, b, to: new Set(to), untilSlot: slot + 2 });
      this.equivocations.push({ slot, proposer: toHex(key.publicKey), hashes: [a.header.hashHex, b.header.hashHex], to });
      node.network?.relayBlock(a);
      return action;
    }
    // Invalid: corrupt a valid block and re-sign it, so it passes every static check and fails on state.
    const h = a.header;
    const base: UnsignedHeader = { chainId: h.chainId, height: h.height, slot: h.slot, parentHash: h.parentHash, timestamp: h.timestamp, txRoot: h.txRoot, stateRoot: h.stateRoot, proposer: h.proposer };
    let bad: Block;
    if (action === 'invalid-root') {
      bad = makeBlock(signHeader({ ...base, stateRoot: sha256(utf8(`sim-bad-root:${slot}`)) }, key.secretKey), a.txs);
    } else {
      // A correctly signed transaction whose nonce is far ahead: it decodes and verifies, and cannot apply.
      const junk = signTx({ chainId: h.chainId, from: this.junkKey.publicKey, to: key.publicKey, amount: 1n, fee: 1n, nonce: 1_000_000n + BigInt(slot), memo: '' }, this.junkKey.secretKey);
      const txs = [...a.txs, junk];
      bad = makeBlock(signHeader({ ...base, txRoot: merkleRoot(txs.map((t) => t.id)) }, key.secretKey), txs);
    }
    this.corrupted.set(bad.header.hashHex, { slot, kind: action });
    node.network?.relayBlock(bad);
    return action;
  }
}
