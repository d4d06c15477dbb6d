/**
 * Assembles src/ledger/lattice.wat with wabt and writes the binary, base64, into src/ledger/lattice-wasm.ts
 * (the text stays the source; the node needs no assembler at run time). test/unit/ledger/lattice-wasm.test.ts
 * fails when the embedded binary is not exactly what the text assembles to.
 *   node dist/scripts/gen-lattice-wasm.js [--check]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/util/schemas.js';

export async function assembleLatticeWasm(): Promise<Uint8Array> {
  const wabt = await (await import('wabt')).default();
  const file = join(packageRoot(), 'src', 'ledger', 'lattice.wat');
  const mod = wabt.parseWat('lattice.wat', readFileSync(file, 'utf8'), { simd: true });
  try {
    mod.validate();
    return new Uint8Array(mod.toBinary({}).buffer);
  } finally {
    mod.destroy();
  }
}

const TARGET = join(packageRoot(), 'src', 'ledger', 'lattice-wasm.ts');
const MARK = /export const LATTICE_WASM_BASE64 =\n  '([A-Za-z0-9+/=]*)';/;

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/dist\//, 'dist/'))) {
  const b64 = Buffer.from(await assembleLatticeWasm()).toString('base64');
  const src = readFileSync(TARGET, 'utf8');
  const m = MARK.exec(src);
  if (!m) throw new Error(`${TARGET} has no LATTICE_WASM_BASE64 constant`);
  if (process.argv.includes('--check')) {
    if (m[1] !== b64) { console.error('src/ledger/lattice-wasm.ts is out of date (run node dist/scripts/gen-lattice-wasm.js)'); process.exit(1); }
  } else {
    writeFileSync(TARGET, src.replace(MARK, `export const LATTICE_WASM_BASE64 =\n  '${b64}';`));
    console.log(`wrote ${b64.length} base64 characters to ${TARGET}`);
  }
}
