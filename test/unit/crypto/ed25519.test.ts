/**
 * Tests for src/crypto/ed25519.ts. The central claim is that `verify` (OpenSSL pre-screen + noble
 * fallback) gives exactly the consensus rule's verdict (`verifyNoble`), which holds iff OpenSSL never
 * accepts what noble rejects. Every case below asserts both `verify === verifyNoble` and
 * `verifyFast ⇒ verifyNoble`, and counts how often the noble fallback was needed.
 *
 * Published vectors are read in place from ../shared/vectors (next to the repo); absent → skipped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ed from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import {
  PUBLIC_KEY_BYTES, SECRET_KEY_BYTES, SIGNATURE_BYTES,
  generateSecretKey, getPublicKey, sign, verify, verifyFast, verifyNoble, InlineVerifier,
  type VerifyItem,
} from '../../../src/crypto/ed25519.js';

ed.hashes.sha512 = sha512; // also set by the module under test; harmless to repeat

// ---- paths --------------------------------------------------------------------------------------

// dist/test/unit/crypto/ → repo root is 4 levels up.
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const VECTORS = path.resolve(repoRoot, '..', 'shared', 'vectors');

function vectorFile(rel: string): { file: string; skip: string | false } {
  const file = path.join(VECTORS, rel);
  return { file, skip: fs.existsSync(file) ? false : `vector file ${file} is absent (shared vectors are not checked out next to the repo)` };
}

function readJson(file: string): any {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

// ---- helpers ------------------------------------------------------------------------------------

function hex(s: string): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(s)) throw new Error(`bad hex in vector: ${s.slice(0, 20)}…`);
  return new Uint8Array(Buffer.from(s, 'hex'));
}
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const utf8 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));

function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

const P = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

function le32(n: bigint): Uint8Array {
  const b = new Uint8Array(32);
  for (let i = 0; i < 32; i++) { b[i] = Number(n & 0xffn); n >>= 8n; }
  return b;
}
function fromLe(b: Uint8Array): bigint {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]!);
  return n;
}
/** k = SHA-512(R || A || M) mod L, over the bytes exactly as given. */
const challenge = (R: Uint8Array, A: Uint8Array, M: Uint8Array): bigint => ed.etc.mod(fromLe(sha512(cat(R, A, M))), L);
const sig = (R: Uint8Array, S: bigint): Uint8Array => cat(R, le32(S));
const flipBit = (b: Uint8Array, bit: number): Uint8Array => { const c = Uint8Array.from(b); c[bit >> 3] = c[bit >> 3]! ^ (1 << (bit & 7)); return c; };
const seedFrom = (label: string): Uint8Array => sha512(utf8(label)).slice(0, 32);

type Stats = { cases: number; fastAccept: number; nobleAccept: number; fallbackAccept: number; bothReject: number };
const newStats = (): Stats => ({ cases: 0, fastAccept: 0, nobleAccept: 0, fallbackAccept: 0, bothReject: 0 });

/** The core assertions, for any input: combined == noble, fast ⇒ noble. Returns noble's verdict. */
function check(s: Uint8Array, m: Uint8Array, pk: Uint8Array, st: Stats, label: string): boolean {
  const noble = verifyNoble(s, m, pk);
  const fast = verifyFast(s, m, pk);
  const combined = verify(s, m, pk);
  assert.equal(typeof noble, 'boolean');
  assert.equal(combined, noble, `${label}: verify (${combined}) != verifyNoble (${noble})`);
  if (fast) assert.ok(noble, `${label}: OpenSSL accepted but noble rejected — the pre-screen would be unsound`);
  st.cases++;
  if (fast) st.fastAccept++;
  if (noble) st.nobleAccept++;
  if (noble && !fast) st.fallbackAccept++;
  if (!noble && !fast) st.bothReject++;
  return noble;
}
const fmt = (st: Stats): string =>
  `${st.cases} cases: OpenSSL accepted ${st.fastAccept}, noble accepted ${st.nobleAccept}, ` +
  `noble-only accepts (fallback decided true) ${st.fallbackAccept}, both rejected ${st.bothReject}, OpenSSL-only accepts 0`;

// A point of order 8 (speccheck's small-order key); its multiples are the full 8-torsion subgroup.
const T8 = ed.Point.fromHex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a');
const TORSION: ed.Point[] = Array.from({ length: 8 }, (_, i) => T8.multiply(BigInt(i), false));
const B = ed.Point.BASE;

// ---- basics -------------------------------------------------------------------------------------

test('constants', () => {
  assert.equal(PUBLIC_KEY_BYTES, 32);
  assert.equal(SECRET_KEY_BYTES, 32);
  assert.equal(SIGNATURE_BYTES, 64);
});

test('generateSecretKey: default source, injectable deterministic source, rejects bad sources', () => {
  const a = generateSecretKey();
  const b = generateSecretKey();
  assert.equal(a.length, 32);
  assert.notDeepEqual(a, b);
  let calls = 0;
  const det = (n: number) => { calls++; return new Uint8Array(n).fill(7); };
  assert.deepEqual(generateSecretKey(det), new Uint8Array(32).fill(7));
  assert.equal(calls, 1);
  assert.throws(() => generateSecretKey(() => new Uint8Array(31)));
});

test('getPublicKey / sign reject wrong-length secret keys', () => {
  for (const n of [0, 31, 33, 64]) {
    assert.throws(() => getPublicKey(new Uint8Array(n)));
    assert.throws(() => sign(utf8('x'), new Uint8Array(n)));
  }
});

test('torsion subgroup is built correctly (8 distinct points, all of order dividing 8)', () => {
  const encs = new Set(TORSION.map((p) => p.toHex()));
  assert.equal(encs.size, 8);
  for (const p of TORSION) assert.ok(p.multiply(8n, false).is0());
  assert.ok(!T8.multiply(4n, false).is0(), 'T8 has order exactly 8');
  assert.ok(TORSION[0]!.is0());
});

// ---- RFC 8032 -----------------------------------------------------------------------------------

const rfc = vectorFile('rfc8032/rfc8032_7.1_ed25519.json');
test('RFC 8032 §7.1 vectors: getPublicKey and sign reproduce the published values; verify accepts', { skip: rfc.skip }, (t) => {
  const tests: Array<{ name: string; secret_key: string; public_key: string; message: string; signature: string }> = readJson(rfc.file).tests;
  assert.ok(tests.length >= 5, 'expected TEST 1, 2, 3, 1024, SHA(abc)');
  const st = newStats();
  for (const v of tests) {
    const sk = hex(v.secret_key), pk = hex(v.public_key), m = hex(v.message), s = hex(v.signature);
    assert.equal(toHex(getPublicKey(sk)), v.public_key, `${v.name}: public key`);
    assert.equal(toHex(ed.getPublicKey(sk)), v.public_key, `${v.name}: noble public key`);
    assert.equal(toHex(sign(m, sk)), v.signature, `${v.name}: signature`);
    assert.deepEqual(sign(m, sk), ed.sign(m, sk), `${v.name}: identical to noble sign`);
    assert.ok(check(s, m, pk, st, v.name), `${v.name}: noble accepts`);
    assert.ok(verifyFast(s, m, pk), `${v.name}: OpenSSL accepts`);
    assert.ok(verify(s, m, pk));
  }
  t.diagnostic(`rfc8032: ${fmt(st)}`);
});

// ---- Wycheproof ---------------------------------------------------------------------------------

/**
 * Where noble (ZIP-215) and Wycheproof's RFC 8032 verdict differ, each one explained:
 * - c2sp tcId 151: R = y=1 (identity) with the x sign bit set; RFC 8032 decoding rejects x=0 with
 *   sign 1, ZIP-215 accepts the encoding and hashes R as given (see shared/vectors/README.md).
 */
const WYCHEPROOF: Array<{ rel: string; oldSchema: boolean; count: number; explained: number[] }> = [
  { rel: 'wycheproof/google-wycheproof/testvectors_v1/ed25519_test.json', oldSchema: false, count: 150, explained: [] },
  { rel: 'wycheproof/google-wycheproof/testvectors/eddsa_test.json', oldSchema: true, count: 145, explained: [] },
  { rel: 'wycheproof/c2sp-wycheproof/testvectors_v1/ed25519_test.json', oldSchema: false, count: 151, explained: [151] },
];

for (const w of WYCHEPROOF) {
  const vf = vectorFile(w.rel);
  test(`Wycheproof ${w.rel}: verify == noble, OpenSSL ⇒ noble, valid all accepted, disagreements only ZIP-215 ones`, { skip: vf.skip }, (t) => {
    const j = readJson(vf.file);
    const st = newStats();
    const disagreements: number[] = [];
    let valid = 0;
    for (const g of j.testGroups) {
      const pkHex: string = w.oldSchema ? g.key.pk : g.publicKey.pk;
      const pk = hex(pkHex);
      for (const tc of g.tests) {
        assert.ok(tc.result === 'valid' || tc.result === 'invalid', `tcId ${tc.tcId}: unexpected result ${tc.result}`);
        const noble = check(hex(tc.sig), hex(tc.msg), pk, st, `tcId ${tc.tcId}`);
        if (tc.result === 'valid') {
          valid++;
          assert.ok(noble, `tcId ${tc.tcId} is valid and must be accepted`);
        }
        if (noble !== (tc.result === 'valid')) disagreements.push(tc.tcId);
      }
    }
    assert.equal(st.cases, w.count);
    assert.equal(st.cases, j.numberOfTests);
    assert.deepEqual(disagreements, w.explained, 'noble vs Wycheproof disagreements must be exactly the ZIP-215 ones');
    t.diagnostic(`${w.rel}: ${valid} valid; ${fmt(st)}; noble≠spec on tcIds [${disagreements.join(', ')}]; fell back to noble ${st.cases - st.fastAccept}`);
  });
}

// ---- speccheck ----------------------------------------------------------------------------------

const specCases = vectorFile('speccheck/cases.json');
const specExp = vectorFile('speccheck/expectations.json');
test('speccheck: all 12 cases match the zip215 expectations', { skip: specCases.skip || specExp.skip }, (t) => {
  const cases: Array<{ message: string; pub_key: string; signature: string }> = readJson(specCases.file);
  const exp: Array<{ index: number; zip215: boolean; condition: string }> = readJson(specExp.file).vectors;
  assert.equal(cases.length, 12);
  assert.equal(exp.length, 12);
  const st = newStats();
  cases.forEach((c, i) => {
    assert.equal(exp[i]!.index, i);
    const noble = check(hex(c.signature), hex(c.message), hex(c.pub_key), st, `speccheck ${i}`);
    assert.equal(noble, exp[i]!.zip215, `speccheck ${i} (${exp[i]!.condition})`);
  });
  assert.ok(st.fallbackAccept > 0, 'speccheck has cases only the cofactored/ZIP-215 rule accepts');
  t.diagnostic(`speccheck: ${fmt(st)}`);
});

// ---- constructed edge cases ---------------------------------------------------------------------

type Case = { name: string; sig: Uint8Array; msg: Uint8Array; pub: Uint8Array; noble?: boolean };

function buildEdgeCases(): Case[] {
  const cases: Case[] = [];
  const ext = ed.utils.getExtendedPublicKey(seedFrom('edge key'));
  const a = ext.scalar, A = ext.pointBytes;
  const I = TORSION[0]!;

  // A valid signature by (a, A) with a chosen R = [r]B + T, or a fully chosen R encoding.
  const signWith = (msg: Uint8Array, Rb: Uint8Array, r: bigint, pub: Uint8Array): Uint8Array =>
    sig(Rb, ed.etc.mod(r + challenge(Rb, pub, msg) * a, L));

  // 1. Small-order public keys: all 8 torsion points (incl. identity).
  TORSION.forEach((T, i) => {
    const Ab = T.toBytes();
    const m = utf8(`small-order key ${i}`);
    // R small-order, S = 0: [8]R + [8][k]A = 0 for any k → ZIP-215 accepts.
    cases.push({ name: `small-order A=T${i}, R=T${(i + 3) % 8}, S=0`, sig: sig(TORSION[(i + 3) % 8]!.toBytes(), 0n), msg: m, pub: Ab, noble: true });
    // R = [r]B, S = r: [8]([S]B - R - [k]A) = -[8k]T = 0 → accepted; cofactorless only if [k]T = 0.
    const r = 0x1234567n + BigInt(i);
    cases.push({ name: `small-order A=T${i}, R=[r]B, S=r`, sig: sig(B.multiply(r).toBytes(), r), msg: m, pub: Ab, noble: true });
    // S = 1 with R = identity: [8]B != 0 → rejected.
    cases.push({ name: `small-order A=T${i}, R=I, S=1`, sig: sig(I.toBytes(), 1n), msg: m, pub: Ab, noble: false });
  });

  // 2. Small-order R with a valid key: S = k·a makes [S]B = [k]A, so the cofactored equation holds.
  TORSION.forEach((T, j) => {
    const m = utf8(`small-order R ${j}`);
    cases.push({ name: `valid A, small-order R=T${j}`, sig: signWith(m, T.toBytes(), 0n, A), msg: m, pub: A, noble: true });
  });

  // 3. Mixed-order keys A' = aB + T: signed with a, the cofactored equation holds; cofactorless only if [k]T = 0.
  for (let i = 1; i < 8; i++) {
    const Ab = ext.point.add(TORSION[i]!).toBytes();
    for (let n = 0; n < 4; n++) {
      const m = utf8(`mixed-order key ${i}/${n}`);
      const r = ed.etc.mod(fromLe(sha512(cat(utf8('nonce'), m))), L);
      cases.push({ name: `mixed-order A=aB+T${i}, msg ${n}`, sig: signWith(m, B.multiply(r).toBytes(), r, Ab), msg: m, pub: Ab, noble: true });
    }
    // A mixed-order R ([r]B + T) with a valid key.
    const m = utf8(`mixed-order R ${i}`);
    const r = 98765n + BigInt(i);
    cases.push({ name: `valid A, mixed-order R=[r]B+T${i}`, sig: signWith(m, B.multiply(r).add(TORSION[i]!).toBytes(), r, A), msg: m, pub: A, noble: true });
  }

  // 4. Non-canonical encodings (y ≥ p; x = 0 with the sign bit set).
  const idPlusP = le32(P + 1n); // identity, y = 1 + p
  const idSign = le32(1n | (1n << 255n)); // identity, x = 0 with sign bit
  const ord2Sign = le32((P - 1n) | (1n << 255n)); // (0, -1), x = 0 with sign bit
  const ord4PlusP = le32(P); // y = 0 + p (order-4 point)
  const ord4PlusPSign = le32(P | (1n << 255n));
  for (const [nm, enc] of [['identity y=p+1', idPlusP], ['identity sign bit', idSign], ['order-2 sign bit', ord2Sign], ['order-4 y=p', ord4PlusP], ['order-4 y=p sign bit', ord4PlusPSign]] as const) {
    const m = utf8(`non-canonical ${nm}`);
    // as the public key: small order, so R = I, S = 0 is ZIP-215-valid
    cases.push({ name: `non-canonical A (${nm}), R=I, S=0`, sig: sig(I.toBytes(), 0n), msg: m, pub: enc, noble: true });
    // as R with a valid key, hashed as given
    cases.push({ name: `non-canonical R (${nm}), valid A`, sig: signWith(m, enc, 0n, A), msg: m, pub: A, noble: true });
    // as R, but S computed over the canonical re-encoding (the hash must use the bytes as given)
    const canon = ed.Point.fromBytes(enc, true).toBytes();
    cases.push({ name: `non-canonical R (${nm}), S over re-encoded R`, sig: cat(enc, le32(ed.etc.mod(challenge(canon, A, m) * a, L))), msg: m, pub: A, noble: false });
  }
  // y ≥ p encodings of the large-order points with y < 19 (the only other non-canonical y values)
  for (let y = 2n; y < 19n; y++) {
    let ok = true;
    try { ed.Point.fromBytes(le32(y)); } catch { ok = false; }
    if (!ok) continue;
    const enc = le32(y + P);
    const m = utf8(`non-canonical y=${y}+p`);
    cases.push({ name: `non-canonical A y=${y}+p, arbitrary sig`, sig: signWith(m, B.multiply(5n).toBytes(), 5n, A), msg: m, pub: enc });
    cases.push({ name: `non-canonical R y=${y}+p, valid A`, sig: signWith(m, enc, 0n, A), msg: m, pub: A });
  }

  // 5. S out of range.
  const m0 = utf8('S range');
  const good = ed.sign(m0, seedFrom('edge key'));
  const R0 = good.slice(0, 32), S0 = fromLe(good.slice(32));
  cases.push({ name: 'valid signature', sig: good, msg: m0, pub: A, noble: true });
  cases.push({ name: 'S + L', sig: sig(R0, S0 + L), msg: m0, pub: A, noble: false });
  cases.push({ name: 'S + 2L', sig: sig(R0, S0 + 2n * L), msg: m0, pub: A, noble: false });
  cases.push({ name: 'S = L', sig: sig(R0, L), msg: m0, pub: A, noble: false });
  cases.push({ name: 'S = 2^256 - 1', sig: sig(R0, 2n ** 256n - 1n), msg: m0, pub: A, noble: false });
  cases.push({ name: 'S = L with A = R = identity (S = 0 is accepted)', sig: sig(I.toBytes(), L), msg: m0, pub: I.toBytes(), noble: false });
  cases.push({ name: 'S = 0 with A = R = identity', sig: sig(I.toBytes(), 0n), msg: m0, pub: I.toBytes(), noble: true });

  // 6. Wrong lengths.
  cases.push({ name: '31-byte key', sig: good, msg: m0, pub: A.slice(0, 31), noble: false });
  cases.push({ name: '33-byte key', sig: good, msg: m0, pub: cat(A, new Uint8Array(1)), noble: false });
  cases.push({ name: '63-byte sig', sig: good.slice(0, 63), msg: m0, pub: A, noble: false });
  cases.push({ name: '65-byte sig', sig: cat(good, new Uint8Array(1)), msg: m0, pub: A, noble: false });
  cases.push({ name: 'empty sig', sig: new Uint8Array(0), msg: m0, pub: A, noble: false });
  cases.push({ name: 'empty key', sig: good, msg: m0, pub: new Uint8Array(0), noble: false });

  // 7. All-zero / all-0xff. All-zero: A = R = the order-4 point (0-encoding), S = 0 → ZIP-215 accepts.
  const z64 = new Uint8Array(64), z32 = new Uint8Array(32), f64 = new Uint8Array(64).fill(0xff), f32 = new Uint8Array(32).fill(0xff);
  cases.push({ name: 'all-zero sig, key, empty msg', sig: z64, msg: new Uint8Array(0), pub: z32, noble: true });
  cases.push({ name: 'all-zero sig, key, zero msg', sig: z64, msg: new Uint8Array(32), pub: z32, noble: true });
  cases.push({ name: 'all-0xff sig, key, msg', sig: f64, msg: new Uint8Array(32).fill(0xff), pub: f32, noble: false });
  cases.push({ name: 'all-zero sig, valid key', sig: z64, msg: m0, pub: A, noble: false });
  cases.push({ name: 'all-0xff sig, valid key', sig: f64, msg: m0, pub: A, noble: false });
  cases.push({ name: 'valid sig, all-zero key', sig: good, msg: m0, pub: z32, noble: false });
  cases.push({ name: 'valid sig, all-0xff key', sig: good, msg: m0, pub: f32, noble: false });

  return cases;
}

test('constructed edge cases: small/mixed order, non-canonical, S range, lengths, zero/0xff', (t) => {
  const st = newStats();
  const cases = buildEdgeCases();
  const fallbackExamples: string[] = [];
  for (const c of cases) {
    const noble = check(c.sig, c.msg, c.pub, st, c.name);
    if (c.noble !== undefined) assert.equal(noble, c.noble, `${c.name}: expected ZIP-215 verdict ${c.noble}`);
    if (noble && !verifyFast(c.sig, c.msg, c.pub)) fallbackExamples.push(c.name);
  }
  // The fallback path really runs: there are signatures noble accepts that OpenSSL rejects.
  assert.ok(st.fallbackAccept >= 1, 'expected noble-accept / OpenSSL-reject cases');
  assert.ok(fallbackExamples.some((n) => n.startsWith('mixed-order A=')), 'a mixed-order key case must need the fallback');
  assert.ok(fallbackExamples.some((n) => n.startsWith('valid A, small-order R=T')), 'a small-order R case must need the fallback');
  t.diagnostic(`edge cases: ${fmt(st)}`);
});

test('one flipped bit in R, S, message or key of a valid signature: rejected, verify == noble', (t) => {
  const seed = seedFrom('bit flip key');
  const pub = getPublicKey(seed);
  const msg = utf8('bit flips of a valid signature!!'); // 32 bytes
  const s = sign(msg, seed);
  const st = newStats();
  assert.ok(check(s, msg, pub, st, 'unflipped'));
  for (let bit = 0; bit < 512; bit++) assert.equal(check(flipBit(s, bit), msg, pub, st, `sig bit ${bit}`), false, `sig bit ${bit} (${bit < 256 ? 'R' : 'S'})`);
  for (let bit = 0; bit < msg.length * 8; bit++) assert.equal(check(s, flipBit(msg, bit), pub, st, `msg bit ${bit}`), false, `msg bit ${bit}`);
  for (let bit = 0; bit < 256; bit++) assert.equal(check(s, msg, flipBit(pub, bit), st, `key bit ${bit}`), false, `key bit ${bit}`);
  t.diagnostic(`bit flips: ${fmt(st)}`);
});

// ---- properties ---------------------------------------------------------------------------------

test('property: random seeds and messages round-trip; sign/getPublicKey identical to noble', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 300 }), (seed, msg) => {
      const pub = getPublicKey(seed);
      assert.deepEqual(pub, ed.getPublicKey(seed));
      const s = sign(msg, seed);
      assert.deepEqual(s, ed.sign(msg, seed));
      assert.ok(verifyNoble(s, msg, pub));
      assert.ok(verifyFast(s, msg, pub));
      assert.ok(verify(s, msg, pub));
    }),
    { numRuns: 150 },
  );
});

test('property: random single-bit mutations of a valid (sig, msg, pub): verify == noble, fast ⇒ noble', () => {
  const st = newStats();
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 1, maxLength: 100 }),
      fc.constantFrom('sig', 'msg', 'pub'),
      fc.nat(),
      (seed, msg, where, n) => {
        const pub = getPublicKey(seed);
        let s = sign(msg, seed), m: Uint8Array = msg, p = pub;
        if (where === 'sig') s = flipBit(s, n % 512);
        else if (where === 'msg') m = flipBit(msg, n % (msg.length * 8));
        else p = flipBit(pub, n % 256);
        assert.equal(check(s, m, p, st, `${where} bit ${n}`), false);
      },
    ),
    { numRuns: 200 },
  );
});

// ---- key cache ----------------------------------------------------------------------------------

test('many distinct keys (beyond the key caches) stay correct after eviction', () => {
  const N = 4300; // > 4096 public-key cache entries, > 256 private-key cache entries
  const items: VerifyItem[] = [];
  for (let i = 0; i < N; i++) {
    const seed = seedFrom(`cache ${i}`);
    const message = utf8(`m${i}`);
    items.push({ signature: sign(message, seed), message, publicKey: getPublicKey(seed) });
  }
  for (const i of [0, 1, 2, N - 1, 0]) {
    const it = items[i]!;
    assert.ok(verifyFast(it.signature, it.message, it.publicKey), `key ${i}`);
    assert.ok(!verifyFast(it.signature, it.message, items[(i + 1) % N]!.publicKey), `key ${i} vs other key`);
  }
  assert.deepEqual(getPublicKey(seedFrom('cache 0')), items[0]!.publicKey);
});

// ---- InlineVerifier -----------------------------------------------------------------------------

test('InlineVerifier.verifyBatch returns per-item verdicts in order', async () => {
  const seed = seedFrom('batch');
  const pub = getPublicKey(seed);
  const mk = (s: Uint8Array, m: Uint8Array, p: Uint8Array): VerifyItem => ({ signature: s, message: m, publicKey: p });
  const m1 = utf8('one'), m2 = utf8('two');
  const s1 = sign(m1, seed), s2 = sign(m2, seed);
  const mixed = buildEdgeCases().find((c) => c.name.startsWith('mixed-order A=') && !verifyFast(c.sig, c.msg, c.pub))!;
  const items = [
    mk(s1, m1, pub),
    mk(s1, m2, pub), // wrong message
    mk(s2, m2, pub),
    mk(mixed.sig, mixed.msg, mixed.pub), // accepted only via the noble fallback
    mk(s2.slice(0, 63), m2, pub), // wrong length
    mk(new Uint8Array(64), new Uint8Array(0), new Uint8Array(32)), // all-zero: ZIP-215 accepts
  ];
  const v = new InlineVerifier();
  const out = await v.verifyBatch(items);
  assert.deepEqual(out, [true, false, true, true, false, true]);
  assert.deepEqual(out, items.map((i) => verifyNoble(i.signature, i.message, i.publicKey)));
  assert.deepEqual(await v.verifyBatch([]), []);
  await v.close();
  await assert.rejects(v.verifyBatch(items));
});

// ---- WorkerVerifier -----------------------------------------------------------------------------

test('WorkerVerifier gives exactly the consensus verdicts (edge cases, wrong lengths), split or whole, in order', async () => {
  const { WorkerVerifier, packItems, unpackItems } = await import('../../../src/crypto/verifypool.js');
  const seed = seedFrom('pool');
  const pub = getPublicKey(seed);
  const items: VerifyItem[] = buildEdgeCases().map((c) => ({ signature: c.sig, message: c.msg, publicKey: c.pub }));
  for (let i = 0; i < 150; i++) {
    const m = utf8(`pool ${i}`);
    const s = sign(m, seed);
    if (i % 7 === 3) s[i % 64]! ^= 1; // some corrupted
    items.push({ signature: i % 31 === 5 ? s.slice(0, 63) : s, message: m, publicKey: pub });
  }
  const expected = items.map((i) => verifyNoble(i.signature, i.message, i.publicKey));
  assert.ok(expected.includes(false) && expected.includes(true));
  // The packing is lossless.
  const back = [...unpackItems(packItems(items))];
  assert.deepEqual(back.map((b) => [Buffer.from(b.signature), Buffer.from(b.message), Buffer.from(b.publicKey)]),
    items.map((b) => [Buffer.from(b.signature), Buffer.from(b.message), Buffer.from(b.publicKey)]));
  const v = new WorkerVerifier(2);
  try {
    assert.deepEqual(await v.verifyBatch(items), expected, 'large batch, split across workers');
    assert.deepEqual(await v.verifyBatch(items.slice(0, 5)), expected.slice(0, 5), 'small batch, one worker');
    // Concurrent batches each get their own verdicts.
    const parts = await Promise.all([0, 1, 2, 3].map((k) => v.verifyBatch(items.slice(k * 40, k * 40 + 40))));
    assert.deepEqual(parts.flat(), expected.slice(0, 160));
    assert.deepEqual(await v.verifyBatch([]), []);
    assert.equal(v.pending, 0);
  } finally {
    await v.close();
  }
  await assert.rejects(v.verifyBatch(items), /closed/);
  assert.throws(() => new WorkerVerifier(0), RangeError);
});

test('WorkerVerifier: leaf expansions overtake queued signature checks; queued checks count as pending', async () => {
  const { WorkerVerifier } = await import('../../../src/crypto/verifypool.js');
  const seed = seedFrom('pool-priority');
  const m = utf8('priority');
  const item: VerifyItem = { signature: sign(m, seed), message: m, publicKey: getPublicKey(seed) };
  const v = new WorkerVerifier(2);
  try {
    const order: string[] = [];
    const checks = v.verifyBatch(Array.from({ length: 4000 }, () => item)).then((r) => { order.push('checks'); return r; });
    // Only a few parts are on the workers; the rest wait in the pool and still count as pending.
    assert.equal(v.pending, 4000);
    const leaves = v.expandLeaves([utf8('a'), utf8('b'), utf8('c')]).then((r) => { order.push('leaves'); return r; });
    const [verdicts] = await Promise.all([checks, leaves]);
    assert.deepEqual(order, ['leaves', 'checks'], 'the leaves did not wait for the whole signature backlog');
    assert.equal(verdicts.length, 4000);
    assert.ok(verdicts.every((x) => x === true));
    assert.equal(v.pending, 0);
    // Closing with checks still queued answers them (on this thread), in order.
    const late = v.verifyBatch([item, { ...item, message: utf8('other') }, item]);
    await v.close();
    assert.deepEqual(await late, [true, false, true]);
  } finally {
    await v.close();
  }
});

test('WorkerVerifier: a leaf expansion also overtakes the signature checks already on its worker', async () => {
  const { WorkerVerifier } = await import('../../../src/crypto/verifypool.js');
  const { shake256 } = await import('../../../src/crypto/hash.js');
  const seed = seedFrom('pool-slices');
  const m = utf8('slices');
  const item: VerifyItem = { signature: sign(m, seed), message: m, publicKey: getPublicKey(seed) };
  const v = new WorkerVerifier(1);
  try {
    const order: string[] = [];
    // 256 checks = two parts, both handed to the one worker before the leaves are asked for.
    const checks = v.verifyBatch(Array.from({ length: 256 }, (_, i) => (i === 200 ? { ...item, message: utf8('forged') } : item))).then((r) => { order.push('checks'); return r; });
    const leaves = v.expandLeaves([utf8('x')]).then((r) => { order.push('leaves'); return r; });
    const [verdicts, out] = await Promise.all([checks, leaves]);
    assert.deepEqual(order, ['leaves', 'checks'], 'the worker ran the leaves between slices of its signature checks');
    assert.deepEqual(Buffer.from(out[0]!), Buffer.from(shake256(utf8('x'), 2048)));
    assert.deepEqual(verdicts.map((x, i) => (x ? -1 : i)).filter((i) => i >= 0), [200], 'verdicts stay in order across slices');
  } finally {
    await v.close();
  }
});

test('WorkerVerifier: urgent checks (a block\'s) overtake queued ones; verdicts stay exact; nice is bounded', async () => {
  const { WorkerVerifier } = await import('../../../src/crypto/verifypool.js');
  const seed = seedFrom('pool-urgent');
  const m = utf8('urgent');
  const good: VerifyItem = { signature: sign(m, seed), message: m, publicKey: getPublicKey(seed) };
  const bad: VerifyItem = { ...good, message: utf8('forged') };
  const v = new WorkerVerifier(1, { nice: 3 });
  try {
    const order: string[] = [];
    const backlog = v.verifyBatch(Array.from({ length: 3000 }, () => good)).then((r) => { order.push('backlog'); return r; });
    const block = v.verifyBatch([good, bad, good], { urgent: true }).then((r) => { order.push('urgent'); return r; });
    const [b, u] = await Promise.all([backlog, block]);
    assert.deepEqual(order, ['urgent', 'backlog'], 'the urgent checks did not wait for the queued backlog');
    assert.deepEqual(u, [true, false, true]);
    assert.equal(b.length, 3000);
    assert.ok(b.every((x) => x === true));
  } finally {
    await v.close();
  }
  assert.throws(() => new WorkerVerifier(1, { nice: 20 }), RangeError);
  assert.throws(() => new WorkerVerifier(1, { nice: -1 }), RangeError);
});

test('WorkerVerifier.expandLeaves equals SHAKE256→2048 on this thread, and prefetched leaves give the same lattice', async () => {
  const { WorkerVerifier } = await import('../../../src/crypto/verifypool.js');
  const { shake256 } = await import('../../../src/crypto/hash.js');
  const { accountLeaf, leafInput, leavesFor, StateLattice } = await import('../../../src/ledger/statehash.js');
  const inputs = Array.from({ length: 150 }, (_, i) => new Uint8Array(crypto.randomBytes(i % 90)));
  const v = new WorkerVerifier(2);
  try {
    const out = await v.expandLeaves(inputs);
    assert.equal(out.length, inputs.length);
    out.forEach((o, i) => assert.deepEqual(Buffer.from(o), Buffer.from(shake256(inputs[i]!, 2048)), `input ${i}`));
    assert.deepEqual(await v.expandLeaves([]), []);
    // Accounts never seen before: leaves computed by the pool must be the ones computed inline.
    const accounts = Array.from({ length: 100 }, (_, i): [string, { balance: bigint; nonce: bigint }] => [crypto.randomBytes(32).toString('hex'), { balance: BigInt(1000 + i), nonce: BigInt(i) }]);
    await leavesFor(v, accounts, 1);
    const pooled = new StateLattice();
    for (const [k, a] of accounts) pooled.add(k, a);
    // The reference, computed by hand from the definition:
    const ref = new Uint16Array(1024);
    for (const [k, a] of accounts) {
      const leaf = new Uint16Array(new Uint8Array(shake256(leafInput(k, a), 2048)).buffer);
      for (let i = 0; i < 1024; i++) ref[i] = (ref[i]! + leaf[i]!) & 0xffff;
      assert.deepEqual(accountLeaf(k, a), leaf);
    }
    assert.deepEqual(pooled.lanes, ref);
  } finally {
    await v.close();
  }
  await assert.rejects(v.expandLeaves(inputs), /closed/);
});
