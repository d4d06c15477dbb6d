/**
 * Writes one standalone JSON Schema per protocol object (schemas/objects/<Name>.schema.json) from the
 * components of schemas/openrpc.json, which stay the single source. `npm run schemas` regenerates them;
 * test/unit/rpc/schemas.test.ts fails when the files are out of date.
 *   node dist/scripts/gen-schemas.js [--check]
 */
import { readFileSync, writeFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/util/schemas.js';

const OBJECTS = ['Transaction', 'Error', 'BlockHeader', 'Block', 'Account', 'Balance', 'TransactionStatus', 'ChainInfo', 'ErrorData', 'Hash', 'Address', 'Amount', 'Signature', 'Uint'];

export function generateObjectSchemas(): Map<string, string> {
  const doc = JSON.parse(readFileSync(join(packageRoot(), 'schemas', 'openrpc.json'), 'utf8')) as { components: { schemas: Record<string, unknown> } };
  const comps = doc.components.schemas;
  const out = new Map<string, string>();
  for (const name of OBJECTS) {
    const schema = comps[name];
    if (!schema) throw new Error(`openrpc.json has no component schema ${name}`);
    const rewritten = JSON.parse(JSON.stringify(schema), (_k, v) =>
      typeof v === 'string' && v.startsWith('#/components/schemas/') ? `${v.slice('#/components/schemas/'.length)}.schema.json` : v);
    const body = { $schema: 'http://json-schema.org/draft-07/schema#', $id: `https://meshledger.dev/schemas/objects/${name}.schema.json`, 'x-generated-from': 'schemas/openrpc.json#/components/schemas/' + name, ...rewritten };
    out.set(`${name}.schema.json`, JSON.stringify(body, null, 2) + '\n');
  }
  return out;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/dist\//, 'dist/'))) {
  const dir = join(packageRoot(), 'schemas', 'objects');
  const files = generateObjectSchemas();
  if (process.argv.includes('--check')) {
    const stale = [...files].filter(([f, body]) => { try { return readFileSync(join(dir, f), 'utf8') !== body; } catch { return true; } });
    if (stale.length) { console.error(`out of date: ${stale.map(([f]) => f).join(', ')} (run npm run schemas)`); process.exit(1); }
  } else {
    mkdirSync(dir, { recursive: true });
    for (const f of readdirSync(dir)) if (!files.has(f)) console.warn(`note: ${f} is not generated any more`);
    for (const [f, body] of files) writeFileSync(join(dir, f), body);
    console.log(`wrote ${files.size} schemas to ${dir}`);
  }
}
