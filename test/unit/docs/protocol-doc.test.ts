/** docs/protocol.md is a contract: its worked example and rule table must match the implementation. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../../src/util/schemas.js';
import { fromHex, toHex, concatBytes } from '../../../src/encoding/bytes.js';
import { decodeAddress, encodeAddress } from '../../../src/encoding/address.js';
import { getPublicKey, verify } from '../../../src/crypto/ed25519.js';
import { sha256 } from '../../../src/crypto/hash.js';
import { decodeTx, encodeUnsignedTx, signTx, TX_SIGNING_PREFIX, txSigningMessage } from '../../../src/ledger/tx.js';
import { RULES } from '../../../src/ledger/rules.js';

const doc = readFileSync(join(packageRoot(), 'docs', 'protocol.md'), 'utf8');

function field(name: string): string {
  const m = new RegExp(`^${name}\\s+(\\S+)`, 'm').exec(doc);
  assert.ok(m, `docs/protocol.md lacks the "${name}" line of the worked example`);
  return m[1]!;
}

test('worked example: keys, address, encodings, signature and id are reproduced by the code', () => {
  const seed = /secret seed `([0-9a-f]{64})`/.exec(doc)?.[1];
  assert.ok(seed, 'example secret seed missing');
  const sk = fromHex(seed);
  const pk = getPublicKey(sk);
  assert.equal(toHex(pk), /sender public key\s+([0-9a-f]{64})/.exec(doc)![1]);
  assert.equal(encodeAddress(pk), /sender address\s+(ml1\S+)/.exec(doc)![1]);
  const toAddr = /recipient address\s+(ml1\S+)/.exec(doc)![1]!;
  const to = decodeAddress(toAddr);
  assert.equal(toHex(to), /recipient key\s+([0-9a-f]{64})/.exec(doc)![1]);
  const u = { chainId: 'meshledger-devnet', from: pk, to, amount: 12345000n, fee: 1000n, nonce: 7n, memo: 'invoice 42' };
  assert.equal(toHex(encodeUnsignedTx(u)), field('unsigned'));
  assert.equal(toHex(TX_SIGNING_PREFIX), '6d6573686c65646765723a74783a763100');
  assert.deepEqual(txSigningMessage(u), concatBytes(TX_SIGNING_PREFIX, fromHex(field('unsigned'))));
  const tx = signTx(u, sk);
  assert.equal(toHex(tx.signature), field('signature'));
  assert.equal(toHex(tx.bytes), field('signed'));
  assert.equal(tx.idHex, field('id'));
  assert.equal(toHex(sha256(fromHex(field('signed')))), field('id'));
  const decoded = decodeTx(fromHex(field('signed')));
  assert.equal(decoded.amount, 12345000n);
  assert.ok(verify(decoded.signature, txSigningMessage(decoded), decoded.from));
});

test('rule table lists exactly the rules the code can raise', () => {
  const documented = new Set([...doc.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]));
  for (const r of Object.keys(RULES)) assert.ok(documented.has(r), `rule ${r} is not documented in docs/protocol.md §8`);
  for (const r of documented) assert.ok(r! in RULES, `docs/protocol.md documents rule ${r}, which the code does not have`);
});
