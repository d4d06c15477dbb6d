/** schemas/objects/*.schema.json are generated from openrpc.json: they must be current and compile. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { packageRoot } from '../../../src/util/schemas.js';
import { generateObjectSchemas } from '../../../scripts/gen-schemas.js';
import { txToJson, headerToJson } from '../../../src/ledger/json.js';
import { testKeys, makeGenesis, transfer, openTestChain, buildBlock } from '../../helpers/fixtures.js';

const dir = join(packageRoot(), 'schemas', 'objects');

test('every generated object schema is up to date (npm run schemas regenerates them)', () => {
  for (const [file, body] of generateObjectSchemas()) {
    assert.equal(readFileSync(join(dir, file), 'utf8'), body, `${file} is stale: run npm run schemas`);
  }
});

test('object schemas compile together and accept real objects, reject broken ones', async () => {
  const ajv = new Ajv({ strict: false });
  const files = generateObjectSchemas();
  for (const [, body] of files) {
    const s = JSON.parse(body);
    ajv.addSchema(s, s.$id.split('/').pop());
  }
  const [v, a, b] = testKeys('schemas', 3);
  const g = makeGenesis({ validators: [v!], alloc: [[a!, 1_000_000n]] });
  const { chain } = await openTestChain(g);
  const tx = transfer(a!, b!, 500n, 0n, { memo: 'schema' });
  const block = await buildBlock(chain, [v!], 1, [tx]);
  const txOk = ajv.getSchema('Transaction.schema.json')!;
  assert.ok(txOk(txToJson(tx)), JSON.stringify(txOk.errors));
  assert.ok(!txOk({ ...txToJson(tx), amount: 500 }), 'amounts are decimal strings, not numbers');
  assert.ok(!txOk({ ...txToJson(tx), to: txToJson(tx).to.toUpperCase() }), 'addresses are lower-case bech32m');
  const hOk = ajv.getSchema('BlockHeader.schema.json')!;
  assert.ok(hOk(headerToJson(block.header, 1)), JSON.stringify(hOk.errors));
  assert.ok(!hOk({ ...headerToJson(block.header, 1), height: -1 }));
});
