/**
 * Mempools take only strict (standard) signatures (issue #17, item 4): an invalid signature then costs one
 * cheap OpenSSL check, never the consensus rule's slow fallback, and a node relays only what every mempool
 * takes. A signature valid only under the consensus rule is `non_standard_signature` to a client, and is
 * refused from a peer without the consensus check; a block may still include it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InlineVerifier, verify, verifyFast, type VerifyItem, type VerifyOptions } from '../../../src/crypto/ed25519.js';
import { SigCache } from '../../../src/crypto/sigcache.js';
import { txVerifyItem, decodeTx } from '../../../src/ledger/tx.js';
import { RuleError } from '../../../src/ledger/rules.js';
import { Mempool } from '../../../src/mempool/mempool.js';
import { buildBlock, makeGenesis, nonStandardTransfer, openTestChain, testKeys, transfer } from '../../helpers/fixtures.js';

const validators = testKeys('standard-validator', 1);
const [alice, bob] = testKeys('standard-user', 2) as [ReturnType<typeof testKeys>[0], ReturnType<typeof testKeys>[0]];
const genesis = makeGenesis({ validators, alloc: [[alice, 10n ** 9n], [bob, 10n ** 9n]] });

function recording() {
  const calls: string[] = [];
  const inner = new InlineVerifier();
  return {
    calls,
    verifier: {
      verifyBatch: (items: VerifyItem[], opts?: VerifyOptions) => { calls.push(`${items.length}${opts?.strict ? ' strict' : ''}`); return inner.verifyBatch(items, opts); },
      close: () => inner.close(),
    },
  };
}

test('the constructed signature is consensus-valid and not standard', async () => {
  const tx = await nonStandardTransfer(alice, bob, 5n, 0n);
  const it = txVerifyItem(tx);
  assert.equal(verify(it.signature, it.message, it.publicKey), true);
  assert.equal(verifyFast(it.signature, it.message, it.publicKey), false);
});

test('a client is told non_standard_signature or bad_signature; a peer\'s is refused after the strict check alone', async () => {
  const { chain, db } = await openTestChain(genesis);
  const r = recording();
  const mp = new Mempool({ db, genesis, accounts: chain, verifier: r.verifier, sigCache: new SigCache() });
  const nonStd = await nonStandardTransfer(alice, bob, 5n, 0n);
  const good = transfer(bob, alice, 7n, 0n);
  const forged = decodeTx(Uint8Array.from(good.bytes, (b, i) => (i === good.bytes.length - 1 ? b ^ 1 : b)));
  const local = await mp.addMany([nonStd, forged]);
  assert.deepEqual(local.map((x) => (x instanceof RuleError ? x.rule : 'ok')), ['non_standard_signature', 'bad_signature']);
  assert.deepEqual(r.calls, ['2 strict', '2'], 'the strict batch, then the consensus check that names each rule');
  r.calls.length = 0;
  const fromPeer = await mp.addMany([nonStd, forged], { origin: 'ab'.repeat(32) });
  assert.deepEqual(fromPeer.map((x) => (x instanceof RuleError ? x.rule : 'ok')), ['non_standard_signature', 'non_standard_signature']);
  assert.deepEqual(r.calls, ['2 strict'], 'nothing but the cheap check is spent on a peer\'s');
  assert.equal(mp.size, 0);
  await chain.close();
});

test('a block may include a non-standard signature (consensus), and that verdict never admits it to a mempool', async () => {
  const { chain, db } = await openTestChain(genesis);
  const nonStd = await nonStandardTransfer(alice, bob, 5n, 0n);
  const block = await buildBlock(chain, validators, 1, [nonStd]);
  assert.equal((await chain.addBlock(block)).status, 'connected', 'valid under the consensus rule');
  assert.ok(chain.sigCache.has(nonStd.idHex), 'the block\'s check is cached');
  assert.equal(chain.sigCache.has(nonStd.idHex, true), false, 'as a consensus verdict only');
  const r = recording();
  const mp = new Mempool({ db, genesis, accounts: chain, verifier: r.verifier, sigCache: chain.sigCache });
  // As when a reorg returns the block's transactions to the mempool: the cached consensus verdict does not
  // stand in for the strict check.
  const [res] = await mp.addMany([nonStd]);
  assert.ok(res instanceof RuleError && res.rule === 'non_standard_signature', String(res));
  assert.deepEqual(r.calls, ['1 strict'], 'the strict check ran; the consensus verdict came from the cache');
  await chain.close();
});
