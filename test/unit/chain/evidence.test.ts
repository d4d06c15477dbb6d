/** Equivocation evidence: two headers of the slot's validator for one slot, verified without state. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeHeader, signHeader, type BlockHeader } from '../../../src/ledger/block.js';
import { RuleError } from '../../../src/ledger/rules.js';
import { makeGenesis, openTestChain, testKeys, transfer, buildBlock } from '../../helpers/fixtures.js';

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
