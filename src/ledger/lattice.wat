;; The state lattice's bulk update (see statehash.ts), in WebAssembly SIMD: 8 lanes per instruction, where
;; the JavaScript fallback does 2 (SWAR). src/ledger/lattice-wasm.ts embeds the binary of this text;
;; `node dist/scripts/gen-lattice-wasm.js` regenerates it and a unit test checks the two agree.
;;
;; Memory: the lattice's 1024 u16 lanes (2048 bytes) at $lanes, then $n pairs of leaves: pair j is
;; [plus (2048 bytes), minus (2048 bytes)] at $lanes + 2048 + j*4096.
;; Effect: lanes += plus_j − minus_j for every pair, lane-wise mod 2^16 (i16x8.add/sub wrap exactly so).
(module
  (memory (export "memory") 1)
  (func (export "addsub") (param $lanes i32) (param $n i32)
    (local $src i32) (local $end i32) (local $c i32)
    (local.set $src (i32.add (local.get $lanes) (i32.const 2048)))
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 12))))
    (block $done
      (loop $pairs
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $c (i32.const 0))
        (loop $chunks
          (v128.store (i32.add (local.get $lanes) (local.get $c))
            (i16x8.sub
              (i16x8.add
                (v128.load (i32.add (local.get $lanes) (local.get $c)))
                (v128.load (i32.add (local.get $src) (local.get $c))))
              (v128.load (i32.add (i32.add (local.get $src) (i32.const 2048)) (local.get $c)))))
          (local.set $c (i32.add (local.get $c) (i32.const 16)))
          (br_if $chunks (i32.lt_u (local.get $c) (i32.const 2048))))
        (local.set $src (i32.add (local.get $src) (i32.const 4096)))
        (br $pairs))))
)
