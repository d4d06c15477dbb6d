/**
 * Equivocation: a second stored block for a slot is found (any height, any branch) and its evidence stored
 * with it; evidence from peers (two headers of the slot's validator for one slot) is verified without state.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { decodeHeader, makeHeader, signHeader, type BlockHeader } from '../../../src/ledger/block.js';
import { RuleError } from '../../../src/ledger/rules.js';
import { layout } from '../../../src/storage/layout.js';
import { toHex } from '../../../src/encoding/bytes.js';
import { makeGenesis, openTestChain, testKeys, transfer, buildBlock } from '../../helpers/fixtures.js';
import { V, alice, bob, dump, genesis, grow } from './common.js';

test('evidence: accepted once (new, then known), announced; forged or malformed evidence is refused by rule', async () => {
  const V = testKeys('evidence-v', 2);
  const [a, b] = testKeys('evidence-acct', 2);
  const g = makeGenesis({ validators: V, alloc: [[a!, 1_000_000n]] });
  const { chain } = await openTestChain(g);
  const x = (await buildBlock(chain, V, 3)).header;
  const y = (await buildBlock(chain, V, 3, [transfer(a!, b!, 5n, 0n)])).header; // same slot, other content
  assert.notEqual(x.hashHex, y.hashHex);
  const events: string[][] = [];
  chain.on('chain:equivocation', (e) => events.push(e.hashes));
  assert.equal(await chain.addEvidence(x, y), 'new');
  assert.deepEqual(events, [[x.hashHex, y.hashHex]]);
  assert.equal(await chain.addEvidence(y, x), 'known');
  assert.equal(events.length, 1, 'known evidence is not announced again');

  const rule = async (p: Promise<unknown>, r: string) => {
    await assert.rejects(p, (e: unknown) => e instanceof RuleError && e.rule === r);
  };
  await rule(chain.addEvidence(x, x), 'malformed');
  const other = (await buildBlock(chain, V, 5)).header;
  await rule(chain.addEvidence(x, other), 'malformed'); // different slots (and proposers)
  const forged: BlockHeader = makeHeader({ ...y, stateRoot: new Uint8Array(32).fill(7) }, y.signature);
  await rule(chain.addEvidence(x, forged), 'bad_signature');
  const byOther = signHeader({ ...y, stateRoot: new Uint8Array(32).fill(9) }, V[(3 + 1) % 2]!.secretKey);
  await rule(chain.addEvidence(x, byOther), 'bad_signature'); // the right proposer field, signed by someone else
  const genuine = signHeader({ ...x, slot: 7, proposer: V[1]!.publicKey }, V[1]!.secretKey);
  const genuine2 = signHeader({ ...x, slot: 7, proposer: V[1]!.publicKey, stateRoot: new Uint8Array(32).fill(1) }, V[1]!.secretKey);
  assert.equal(await chain.addEvidence(genuine, genuine2), 'new', 'slot 7 belongs to V[1] (7 mod 2): genuine evidence');
  const notOwner = signHeader({ ...x, slot: 6, proposer: V[1]!.publicKey }, V[1]!.secretKey);
  const notOwner2 = signHeader({ ...x, slot: 6, proposer: V[1]!.publicKey, stateRoot: new Uint8Array(32).fill(2) }, V[1]!.secretKey);
  await rule(chain.addEvidence(notOwner, notOwner2), 'wrong_proposer');
});

describe('equivocation', { timeout: 60000 }, () => {
  test('two valid blocks for one slot by its proposer: event and evidence under q', async () => {
    const node = await openTestChain(genesis);
    const seen: { slot: number; proposer: string; hashes: string[] }[] = [];
    node.chain.on('chain:equivocation', (e) => seen.push(e));
    const x = await buildBlock(node.chain, V, 1);
    const y = await buildBlock(node.chain, V, 1, [transfer(alice, bob, 5n, 0n)]);
    assert.notEqual(x.header.hashHex, y.header.hashHex);
    // Same proposer, other slot: not equivocation.
    const z = await buildBlock(node.chain, V, 4);
    await node.chain.addBlock(x);
    await node.chain.addBlock(z);
    assert.equal(seen.length, 0);
    assert.equal((await dump(node.db, 'q')).size, 0);
    await node.chain.addBlock(y);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.slot, 1);
    assert.equal(seen[0]!.proposer, toHex(V[1]!.publicKey));
    assert.deepEqual(new Set(seen[0]!.hashes), new Set([x.header.hashHex, y.header.hashHex]));
    const q = await dump(node.db, 'q');
    assert.deepEqual(q, new Map([
      [toHex(layout.evidence(1, V[1]!.publicKey, x.header.hash)), toHex(x.header.bytes)],
      [toHex(layout.evidence(1, V[1]!.publicKey, y.header.hash)), toHex(y.header.bytes)],
    ]));
    for (const v of q.values()) {
      const h = decodeHeader(Buffer.from(v, 'hex'));
      assert.equal(h.slot, 1);
      assert.equal(toHex(h.proposer), toHex(V[1]!.publicKey));
    }
    // Both blocks are still valid and stored; fork choice is unaffected.
    assert.equal(node.chain.isInvalid(x.header.hashHex), undefined);
    assert.equal(node.chain.isInvalid(y.header.hashHex), undefined);
  });

  test('the same slot at different heights (on different branches) is equivocation too', async () => {
    const node = await openTestChain(genesis);
    const seen: number[] = [];
    node.chain.on('chain:equivocation', (e) => seen.push(e.slot));
    const [b1] = await grow(node.chain, V, 1, 1);
    const other = await openTestChain(genesis);
    const onTop = await buildBlock(node.chain, V, 7); // height 2, slot 7
    const direct = await buildBlock(other.chain, V, 7); // height 1, slot 7
    assert.ok(b1);
    await node.chain.addBlock(onTop);
    await node.chain.addBlock(direct);
    assert.deepEqual(seen, [7]);
    assert.equal((await dump(node.db, 'q')).size, 2);
  });
});
