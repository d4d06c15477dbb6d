/**
 * Property: a random tree of blocks (random transfers among funded accounts, random fork points and
 * branch lengths, a few blocks with a corrupted state root) fed to one chain in a random order — either
 * parents first, or fully shuffled with orphans re-submitted once their parent has been processed.
 *
 * After every addBlock: supply is conserved, the stored accounts hash to the head block's state root, the
 * accounts equal an independent model's, and the head is the best (height, then smaller hash) block among
 * the valid blocks stored so far. At the end the chain's consensus keyspaces are byte-identical to a fresh
 * chain fed only the winning branch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Chain } from '../../src/chain/chain.js';
import { makeBlock, signHeader, type Block } from '../../src/ledger/block.js';
import { merkleRoot } from '../../src/ledger/merkle.js';
import { slotStart } from '../../src/ledger/schedule.js';
import { StateLattice } from '../../src/ledger/statehash.js';
import type { Tx } from '../../src/ledger/tx.js';
import { layout } from '../../src/storage/layout.js';
import type { KV } from '../../src/storage/kv.js';
import { toHex } from '../../src/encoding/bytes.js';
import type { KeyPair } from '../../src/crypto/keyfile.js';
import { addBlockOutcome, makeGenesis, openTestChain, testKeys, transfer, feedWithOrphans } from '../helpers/fixtures.js';

const V = testKeys('prop-val', 3);
const USERS = testKeys('prop-user', 6); // 5 funded, 1 that starts empty
const FUNDED = 5;
const genesis = makeGenesis({ validators: V, alloc: USERS.slice(0, FUNDED).map((u, i) => [u, 10_000n + BigInt(i)] as [KeyPair, bigint]) });
const EVERYONE = [...USERS, ...V];

// ---- independent model ------------------------------------------------------------------------------

type Acct = { balance: bigint; nonce: bigint };
type State = Map<string, Acct>; // hex public key → non-empty account

interface TxSpec { from: number; to: number; amount: number; fee: number }
interface BlockSpec { back: number; gap: number; txs: TxSpec[]; corrupt: boolean }

interface Node {
  block: Block | null; // null = genesis
  hash: string;
  hashBytes: Uint8Array;
  height: number;
  slot: number;
  parent: number; // index, -1 for genesis
  state: State;
  valid: boolean;
}

function rootOf(state: State): string {
  const l = new StateLattice();
  for (const [k, a] of state) l.add(k, a);
  return toHex(l.root());
}

/** The model's block builder: apply what applies, skip the rest, credit fees, compute the root from scratch. */
function buildChild(nodes: Node[], parentIdx: number, spec: BlockSpec): Node {
  const parent = nodes[parentIdx]!;
  const slot = parent.slot + spec.gap;
  const proposer = V[slot % V.length]!;
  const state: State = new Map(parent.state);
  const get = (k: string): Acct => state.get(k) ?? { balance: 0n, nonce: 0n };
  const put = (k: string, a: Acct): void => { if (a.balance === 0n && a.nonce === 0n) state.delete(k); else state.set(k, a); };
  const chosen: Tx[] = [];
  let fees = 0n;
  for (const t of spec.txs) {
    const from = USERS[t.from]!;
    const to = USERS[t.to]!;
    const fk = toHex(from.publicKey);
    const s = get(fk);
    const amount = BigInt(t.amount);
    const fee = BigInt(t.fee);
    if (s.balance < amount + fee) continue;
    chosen.push(transfer(from, to, amount, s.nonce, { fee }));
    put(fk, { balance: s.balance - amount - fee, nonce: s.nonce + 1n });
    const tk = toHex(to.publicKey);
    const r = get(tk);
    put(tk, { balance: r.balance + amount, nonce: r.nonce });
    fees += fee;
  }
  const pk = toHex(proposer.publicKey);
  const p = get(pk);
  put(pk, { balance: p.balance + fees, nonce: p.nonce });
  const root = rootOf(state);
  const header = signHeader({
    chainId: genesis.chainId, height: parent.height + 1, slot, parentHash: parent.hashBytes, timestamp: slotStart(genesis, slot),
    txRoot: merkleRoot(chosen.map((t) => t.id)),
    stateRoot: spec.corrupt ? new Uint8Array(32).fill(0x5a) : Buffer.from(root, 'hex'),
    proposer: proposer.publicKey,
  }, proposer.secretKey);
  const block = makeBlock(header, chosen);
  return {
    block, hash: header.hashHex, hashBytes: header.hash, height: header.height, slot, parent: parentIdx, state,
    valid: parent.valid && !spec.corrupt,
  };
}

function better(a: Node, b: Node): boolean {
  if (a.height !== b.height) return a.height > b.height;
  return Buffer.compare(a.hashBytes, b.hashBytes) < 0;
}

function isAncestor(nodes: Node[], anc: number, desc: number): boolean {
  for (let i = desc; i !== -1; i = nodes[i]!.parent) if (i === anc) return true;
  return false;
}

async function dump(db: KV, prefixes: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const p of prefixes) {
    for await (const [k, v] of db.iterator(layout.range(layout.prefix(p)))) out.set(toHex(k), toHex(v));
  }
  return out;
}

// ---- arbitraries ------------------------------------------------------------------------------------

const txSpec: fc.Arbitrary<TxSpec> = fc.record({
  from: fc.nat({ max: FUNDED - 1 }),
  to: fc.nat({ max: USERS.length - 1 }),
  amount: fc.oneof(fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 1, max: 12_000 })),
  fee: fc.integer({ min: 1, max: 3 }),
});

const blockSpec: fc.Arbitrary<BlockSpec> = fc.record({
  back: fc.oneof(fc.constant(0), fc.constant(0), fc.nat({ max: 3 }), fc.nat({ max: 40 })),
  gap: fc.integer({ min: 1, max: 3 }),
  txs: fc.array(txSpec, { maxLength: 4 }),
  corrupt: fc.integer({ min: 0, max: 15 }).map((x) => x === 0), // 1/16
});

const MAX_BLOCKS = 40;

// ---- the property -------------------------------------------------------------------------------------

test('random block trees in random orders: conservation, state root, fork choice, replay equality', { timeout: 120_000 }, async () => {
  let runs = 0;
  await fc.assert(fc.asyncProperty(
    fc.array(blockSpec, { minLength: 6, maxLength: MAX_BLOCKS, size: 'max' }),
    fc.constantFrom('parents-first', 'shuffled'),
    fc.array(fc.nat(), { minLength: MAX_BLOCKS, maxLength: MAX_BLOCKS }),
    async (specs, mode, prio) => {
      runs++;
      const { chain, db } = await openTestChain(genesis);
      const g: Node = {
        block: null, hash: chain.genesisHash, hashBytes: Buffer.from(chain.genesisHash, 'hex'), height: 0, slot: 0, parent: -1,
        state: new Map(genesis.alloc.map((a) => [toHex(a.publicKey), { balance: a.amount, nonce: 0n }])), valid: true,
      };
      assert.equal(rootOf(g.state), toHex(chain.stateRoot));
      const nodes: Node[] = [g];
      const seen = new Set([g.hash]);
      for (const s of specs) {
        const parentIdx = Math.max(0, nodes.length - 1 - s.back);
        const n = buildChild(nodes, parentIdx, s);
        if (seen.has(n.hash)) continue; // an identical block (same parent, slot and txs)
        seen.add(n.hash);
        nodes.push(n);
      }
      const children = new Map<number, number[]>();
      nodes.forEach((n, i) => { if (i > 0) children.set(n.parent, [...(children.get(n.parent) ?? []), i]); });
      const key = (i: number): number => prio[(i - 1) % MAX_BLOCKS]! * 64 + i;

      const stored = new Set<number>([0]);
      let expected = 0; // best stored valid node

      async function submit(i: number): Promise<'orphan' | 'done'> {
        const n = nodes[i]!;
        const parentStored = stored.has(n.parent);
        const before = expected;
        const { status, rule } = await addBlockOutcome(chain, n.block!);
        if (n.valid) {
          assert.equal(rule, undefined, `valid block ${n.height} rejected`);
          if (!parentStored) {
            assert.equal(status, 'orphan');
            return 'orphan';
          }
          stored.add(i);
          if (better(n, nodes[expected]!)) expected = i;
          if (expected === i) assert.equal(status, isAncestor(nodes, before, i) ? 'connected' : 'reorganized');
          else assert.equal(status, 'side');
        } else {
          if (rule !== undefined) assert.ok(['bad_state_root', 'invalid_parent', 'known_invalid'].includes(rule), rule);
          else assert.ok(status === 'side' || status === 'orphan', `invalid block got status ${status}`);
          if (status === 'orphan') return 'orphan';
          if (rule === undefined) stored.add(i);
          // An invalid block that would beat the head is always rejected on the spot.
          if (parentStored && better(n, nodes[expected]!)) assert.notEqual(rule, undefined, 'invalid better block must throw');
        }

        // Invariants after every addBlock.
        const exp = nodes[expected]!;
        assert.equal(chain.head.hashHex, exp.hash, 'head = best valid stored block');
        assert.equal(chain.head.height, exp.height);
        const audit = await chain.auditSupply();
        assert.equal(audit.supply, genesis.totalSupply, 'supply conserved');
        const headBlock = await chain.getBlock(chain.head.hashHex);
        assert.equal(audit.root, toHex(headBlock!.header.stateRoot), 'stored accounts hash to the head state root');
        assert.equal(toHex(chain.stateRoot), audit.root);
        assert.equal(audit.accounts, exp.state.size);
        for (const k of EVERYONE) {
          const want = exp.state.get(toHex(k.publicKey)) ?? { balance: 0n, nonce: 0n };
          assert.deepEqual(await chain.getAccount(k.publicKey), want);
        }
        return 'done';
      }

      if (mode === 'parents-first') {
        const ready = [...(children.get(0) ?? [])];
        while (ready.length) {
          ready.sort((a, b) => key(a) - key(b));
          const i = ready.shift()!;
          const r = await submit(i);
          // A child of a block refused before storage (invalid_parent) is an orphan forever.
          if (r === 'orphan') assert.equal(nodes[i]!.valid, false);
          ready.push(...(children.get(i) ?? []));
        }
      } else {
        const order = nodes.map((_, i) => i).slice(1).sort((a, b) => key(a) - key(b));
        const orphans = await feedWithOrphans(order, (i) => nodes[i]!.parent, submit);
        for (const i of orphans) assert.equal(nodes[i]!.valid, false, 'only invalid blocks stay orphaned');
      }

      // Every valid block was stored and none is marked invalid; the best chain is the winner's path.
      for (let i = 1; i < nodes.length; i++) {
        if (nodes[i]!.valid) {
          assert.ok(stored.has(i));
          assert.equal(chain.isInvalid(nodes[i]!.hash), undefined);
        }
      }
      const path: Block[] = [];
      for (let i = expected; i > 0; i = nodes[i]!.parent) path.unshift(nodes[i]!.block!);
      for (const b of path) assert.ok(chain.isOnMain(b.header.hashHex));

      const fresh = await openTestChain(genesis);
      for (const b of path) await fresh.chain.addBlock(b);
      assert.equal(fresh.chain.head.hashHex, chain.head.hashHex);
      assert.equal(toHex(fresh.chain.stateRoot), toHex(chain.stateRoot));
      assert.deepEqual(await dump(db, 'anTtxuL'), await dump(fresh.db, 'anTtxuL'), 'consensus keyspaces = replay of the winning branch');
      await closeAll(chain, fresh.chain);
    },
  ), { numRuns: 25, includeErrorInReport: true });
  assert.equal(runs >= 25, true);
});

async function closeAll(...chains: Chain[]): Promise<void> {
  for (const c of chains) await c.close();
}
