/**
 * The WebAssembly SIMD lattice update (src/ledger/lattice-wasm.ts): it is the per-lane definition, equal to
 * the JavaScript fallback on any input (batches larger than the module's 512-pair window included), and
 * its embedded binary is exactly what src/ledger/lattice.wat assembles to.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { wasmAddSub } from '../../../src/ledger/lattice-wasm.js';
import { addSubPairs, LATTICE_LANES, StateLattice } from '../../../src/ledger/statehash.js';
import { LATTICE_WASM_BASE64 } from '../../../src/ledger/lattice-wasm.js';
import { assembleLatticeWasm } from '../../../scripts/gen-lattice-wasm.js';

const reference = (lanes: Uint16Array, leaves: readonly (Uint16Array | undefined)[]): Uint16Array => {
  const out = new Uint16Array(lanes);
  for (let j = 0; j + 1 < leaves.length; j += 2) {
    const before = leaves[j], after = leaves[j + 1];
    for (let i = 0; i < LATTICE_LANES; i++) out[i] = (out[i]! + (after ? after[i]! : 0) - (before ? before[i]! : 0)) & 0xffff;
  }
  return out;
};

test('WebAssembly SIMD is available on this platform (else the JavaScript loop is used)', () => {
  assert.equal(typeof wasmAddSub, 'function');
});

test('wasm and JavaScript updates both equal the per-lane definition, with empty leaves and wrap-around', () => {
  const lanesArb = fc.uint16Array({ minLength: LATTICE_LANES, maxLength: LATTICE_LANES });
  const leafArb = fc.option(lanesArb, { nil: undefined, freq: 4 });
  fc.assert(fc.property(lanesArb, fc.array(fc.tuple(leafArb, leafArb), { maxLength: 6 }), (lanes, pairs) => {
    const leaves = pairs.flat();
    const want = reference(lanes, leaves);
    const js = new Uint16Array(lanes);
    addSubPairs(js, leaves);
    assert.deepEqual(js, want);
    const wasm = new Uint16Array(lanes);
    wasmAddSub!(wasm, leaves);
    assert.deepEqual(wasm, want);
  }), { numRuns: 150 });
});

test('a batch of more pairs than the module holds at once (1300 > 512) is applied in full', () => {
  let x = 7;
  const rnd = () => { x = (x * 1103515245 + 12345) >>> 0; return x >>> 16; };
  const leaf = () => Uint16Array.from({ length: LATTICE_LANES }, rnd);
  const leaves = Array.from({ length: 2600 }, (_, i) => (i % 97 === 0 ? undefined : leaf()));
  const lanes = leaf();
  const wasm = new Uint16Array(lanes);
  wasmAddSub!(wasm, leaves);
  assert.deepEqual(wasm, reference(lanes, leaves));
  const l = new StateLattice(lanes);
  l.replaceLeaves(leaves);
  assert.deepEqual(l.lanes, wasm, 'StateLattice.replaceLeaves takes the same path');
});

test('the embedded binary is what lattice.wat assembles to (regenerate: node dist/scripts/gen-lattice-wasm.js)', async () => {
  assert.equal(Buffer.from(await assembleLatticeWasm()).toString('base64'), LATTICE_WASM_BASE64);
});
