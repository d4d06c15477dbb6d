/**
 * Ed25519 for meshledger: key generation, signing, and THE consensus signature rule.
 *
 * CONSENSUS RULE (must never change): a signature is valid iff `@noble/ed25519` v3
 * `verify(sig, msg, pub)` with its DEFAULT options (ZIP-215) accepts it. `verifyNoble` is that rule.
 *
 * Noble is slow (~0.8k verifies/s per core), OpenSSL via `node:crypto` is ~10x faster, so `verify`
 * uses OpenSSL as a PRE-SCREEN: an OpenSSL ACCEPT is final, anything else (reject or exception) is
 * decided by noble. This is sound because OpenSSL-accept implies noble-accept:
 *
 *  - OpenSSL (RFC 8032 cofactorless verifier) accepts only if S < L and the 32 R bytes equal the
 *    CANONICAL encoding of [S]B - [k]A, where A is the group element decoded from the key bytes and
 *    k = SHA-512(R_bytes || A_bytes || M) mod L. So R is canonically encoded and R = [S]B - [k]A.
 *  - Noble/ZIP-215 hashes the same bytes as given (same k), decodes R (canonical, so no choice) and A
 *    to the same group elements (both reduce y mod p, both pick x by the sign bit; an undecodable A
 *    is rejected by both), requires S < L, and checks the COFACTORED equation
 *    [8]([S]B - R - [k]A) = 0.
 *  - cofactorless ⇒ cofactored: if [S]B - R - [k]A = 0 then 8 times it is 0 as well. ZIP-215 accepts
 *    everything the cofactored equation accepts with S < L (it additionally accepts non-canonical
 *    encodings and small-order points, which is where OpenSSL rejects and noble decides).
 *
 * The converse does NOT hold (e.g. mixed-order keys, small-order or non-canonical R: noble accepts,
 * OpenSSL rejects), hence the fallback. The argument above rests on OpenSSL's documented behaviour;
 * what proves it in practice are the tests in test/unit/crypto/ed25519.test.ts: every RFC 8032,
 * Wycheproof and speccheck vector, constructed small-order / mixed-order / non-canonical / S >= L
 * cases, and fast-check properties, each asserting `verify` == `verifyNoble` and
 * `verifyFast` ⇒ `verifyNoble`.
 *
 * Signing uses OpenSSL too (Ed25519 is deterministic, so its signatures are byte-identical to
 * noble's `sign`; the tests check this on RFC 8032 vectors and random keys).
 */
import crypto from 'node:crypto';
import * as ed from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';
import { LruMap } from '../util/lru.js';

// noble v3's synchronous API throws until a SHA-512 implementation is installed.
ed.hashes.sha512 = sha512;

export const PUBLIC_KEY_BYTES = 32;
export const SECRET_KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;

function toB64url(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

function checkLength(b: Uint8Array, n: number, what: string): void {
  if (!(b instanceof Uint8Array) || b.length !== n) throw new TypeError(`${what} must be a ${n}-byte Uint8Array`);
}

// ---- keys and signing -------------------------------------------------------------------------

/** PKCS#8 DER prefix for an Ed25519 private key; the 32-byte seed follows (RFC 8410). */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
/** Private KeyObjects keyed by seed; small, since a node signs with few keys. */
const privateKeys = new LruMap<string, crypto.KeyObject>(256);

function privateKeyObject(secretKey: Uint8Array): crypto.KeyObject {
  checkLength(secretKey, SECRET_KEY_BYTES, 'secret key');
  const id = toB64url(secretKey);
  let key = privateKeys.get(id);
  if (key === undefined) {
    key = crypto.createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, secretKey]), format: 'der', type: 'pkcs8' });
    privateKeys.set(id, key);
  }
  return key;
}

/** A fresh 32-byte seed. `randomBytes` is injectable for the deterministic simulator. */
export function generateSecretKey(randomBytes: (n: number) => Uint8Array = (n) => crypto.randomBytes(n)): Uint8Array {
  const seed = randomBytes(SECRET_KEY_BYTES);
  checkLength(seed, SECRET_KEY_BYTES, 'random source output');
  return new Uint8Array(seed); // own copy, plain Uint8Array
}

export function getPublicKey(secretKey: Uint8Array): Uint8Array {
  const jwk = crypto.createPublicKey(privateKeyObject(secretKey)).export({ format: 'jwk' });
  return new Uint8Array(Buffer.from(jwk.x as string, 'base64url'));
}

/** Pure Ed25519 (RFC 8032), byte-identical to noble's `sign`. */
export function sign(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  return new Uint8Array(crypto.sign(null, message, privateKeyObject(secretKey)));
}

// ---- verification -----------------------------------------------------------------------------

function lengthsOk(sig: Uint8Array, msg: Uint8Array, pub: Uint8Array): boolean {
  return sig instanceof Uint8Array && sig.length === SIGNATURE_BYTES &&
    pub instanceof Uint8Array && pub.length === PUBLIC_KEY_BYTES && msg instanceof Uint8Array;
}

/** THE consensus rule: noble v3 `verify` with default (ZIP-215) options. Never throws. */
export function verifyNoble(sig: Uint8Array, msg: Uint8Array, pub: Uint8Array): boolean {
  if (!lengthsOk(sig, msg, pub)) return false;
  try {
    return ed.verify(sig, msg, pub) === true;
  } catch {
    return false;
  }
}

/** Public KeyObjects keyed by raw key (base64url); `null` = OpenSSL refused the key. */
const publicKeys = new LruMap<string, crypto.KeyObject | null>(4096);

function publicKeyObject(pub: Uint8Array): crypto.KeyObject | null {
  const x = toB64url(pub);
  let key = publicKeys.get(x);
  if (key === undefined) {
    try {
      key = crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
    } catch {
      key = null;
    }
    publicKeys.set(x, key);
  }
  return key;
}

/** OpenSSL only (cofactorless, strict). NOT the consensus rule: only its `true` is meaningful. Never throws. */
export function verifyFast(sig: Uint8Array, msg: Uint8Array, pub: Uint8Array): boolean {
  if (!lengthsOk(sig, msg, pub)) return false;
  try {
    const key = publicKeyObject(pub);
    return key !== null && crypto.verify(null, msg, key, sig) === true;
  } catch {
    return false;
  }
}

/** Exactly `verifyNoble`'s verdict, fast in the common case: OpenSSL accept is final, else noble decides. */
export function verify(sig: Uint8Array, msg: Uint8Array, pub: Uint8Array): boolean {
  if (!lengthsOk(sig, msg, pub)) return false;
  return verifyFast(sig, msg, pub) || verifyNoble(sig, msg, pub);
}

// ---- batch interface --------------------------------------------------------------------------

export type VerifyItem = { signature: Uint8Array; message: Uint8Array; publicKey: Uint8Array };

/**
 * `urgent`: header signatures that something waits on (a block's header not yet cached, a future block's,
 * equivocation evidence); a verifier that queues work runs them before queued non-urgent checks (mempool
 * admission, sync read-ahead). Not for a block's transactions: see URGENT in chain.ts.
 */
export interface VerifyOptions {
  urgent?: boolean;
  /**
   * The relay standard instead of the consensus rule: OpenSSL's strict RFC 8032 verification alone
   * (`verifyFast`). It accepts a subset of what the consensus rule accepts (never more, see the header), at a
   * fraction of the cost of deciding the rest: mempools admit and relay only such signatures, so that an
   * invalid one costs a node one cheap check, while blocks are still judged by the consensus rule.
   */
  strict?: boolean;
}

/**
 * Batch verification; implementations may run elsewhere (a worker pool) but must return `verify`'s verdicts
 * (`verifyFast`'s with `strict`), in order.
 */
export interface SignatureVerifier {
  verifyBatch(items: VerifyItem[], opts?: VerifyOptions): Promise<boolean[]>;
  close(): Promise<void>;
}

/** Runs `verify` on the calling thread. */
export class InlineVerifier implements SignatureVerifier {
  private closed = false;
  async verifyBatch(items: VerifyItem[], opts?: VerifyOptions): Promise<boolean[]> {
    if (this.closed) throw new Error('InlineVerifier is closed');
    const check = opts?.strict ? verifyFast : verify;
    return items.map((it) => check(it.signature, it.message, it.publicKey));
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}
