/**
 * The state lattice's bulk update in WebAssembly SIMD (source: lattice.wat beside this file; the binary
 * below is generated from it by scripts/gen-lattice-wasm.ts, and a unit test keeps the two in step).
 * Eight 16-bit lanes per instruction: about five times the JavaScript SWAR loop, leaf copies included.
 * Integer SIMD is exact and deterministic; where WebAssembly SIMD is unavailable, `wasmAddSub` is
 * undefined and statehash.ts uses its JavaScript loop (same function, property-tested against each other).
 */
export const LATTICE_WASM_BASE64 =
  'AGFzbQEAAAABBgFgAn9/AAMCAQAFAwEAAQcTAgZtZW1vcnkCAAZhZGRzdWIAAApzAXEBA38gAEGAEGohAiACIAFBDHRqIQMCQANAIAIgA08NAUEAIQQDQCAAIARqIAAgBGr9AAQAIAIgBGr9AAQA/Y4BIAJBgBBqIARq/QAEAP2RAf0LBAAgBEEQaiEEIARBgBBJDQALIAJBgCBqIQIMAAsLCw==';

/** Leaf pairs per call: 512 × 4 KiB in the module's memory after the lanes. */
const BATCH = 512;
const LANES = 1024;

// The few WebAssembly API members used here (TypeScript's lib for Node carries no WebAssembly types).
interface WasmMemory { readonly buffer: ArrayBuffer; grow(pages: number): number }
interface Exports { memory: WasmMemory; addsub(lanes: number, n: number): void }
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
};

function instantiate(): Exports | undefined {
  try {
    const mod = new WebAssembly.Module(Buffer.from(LATTICE_WASM_BASE64, 'base64'));
    const ex = new WebAssembly.Instance(mod, {}).exports as unknown as Exports;
    const need = 2 * LANES + BATCH * 4 * LANES; // bytes
    const have = ex.memory.buffer.byteLength;
    if (have < need) ex.memory.grow(Math.ceil((need - have) / 65536));
    return ex;
  } catch {
    return undefined; // no WebAssembly SIMD here
  }
}

const ex = instantiate();

/**
 * lanes += Σ (leaves[2i+1] − leaves[2i]) lane-wise mod 2^16 (pairs of [before, after]; undefined = the
 * zero leaf of an empty account), or undefined where WebAssembly SIMD is not available.
 */
export const wasmAddSub: ((lanes: Uint16Array, leaves: readonly (Uint16Array | undefined)[]) => void) | undefined = ex && ((lanes, leaves) => {
  const mem = new Uint16Array(ex.memory.buffer);
  mem.set(lanes, 0);
  const pairs = leaves.length >> 1;
  for (let s = 0; s < pairs; s += BATCH) {
    const n = Math.min(BATCH, pairs - s);
    for (let j = 0; j < n; j++) {
      const at = LANES + j * 2 * LANES;
      const before = leaves[2 * (s + j)], after = leaves[2 * (s + j) + 1];
      if (after) mem.set(after, at); else mem.fill(0, at, at + LANES);
      if (before) mem.set(before, at + LANES); else mem.fill(0, at + LANES, at + 2 * LANES);
    }
    ex.addsub(0, n);
  }
  lanes.set(mem.subarray(0, LANES));
});
