/**
 * The wallet keystore: one passphrase-encrypted file per key, `<dir>/<name>.json`, mode 0600.
 *
 *   {
 *     "version": 1,
 *     "name": "alice",
 *     "address": "ml1…",
 *     "kdf":    { "name": "scrypt", "N": 131072, "r": 8, "p": 1, "salt": "<32 bytes hex>" },
 *     "cipher": { "name": "xchacha20-poly1305", "nonce": "<24 bytes hex>" },
 *     "ciphertext": "<48 bytes hex: the 32-byte ed25519 secret key + 16-byte Poly1305 tag>"
 *   }
 *
 * key = scrypt(UTF-8 passphrase, salt, N, r, p, dkLen 32); ciphertext = XChaCha20-Poly1305(key, nonce,
 * plaintext = secret key, associated data = "meshledger:keystore:v1" ‖ 0x00 ‖ address). Binding the address
 * means a file whose address was swapped for another one fails to decrypt instead of signing for an
 * account the user did not expect; after decryption the secret key's address is checked again.
 *
 * The AEAD cannot tell a wrong passphrase from a modified file: both are `WalletError('wrong passphrase')`.
 * Defaults: N = 2^17 (128 MiB, about half a second), r = 8, p = 1. A lower N can be asked for (tests do, to
 * be fast); the parameters are recorded in the file, so reading always uses the file's own.
 *
 * Files are written to a temporary file in the same folder (mode 0600, fsynced) and then hard-linked to
 * their final name, which fails if the name exists: an existing wallet is never overwritten, even by a
 * concurrent writer. Nothing here logs; secret keys never leave this module except as `loadKey`'s result.
 */
import { promises as fs, constants as fsc } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { scryptAsync } from '@noble/hashes/scrypt.js';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { decodeAddress, encodeAddress } from '../encoding/address.js';
import { concatBytes, fromHex, isHex, toHex, utf8 } from '../encoding/bytes.js';
import { getPublicKey } from '../crypto/ed25519.js';
import { newKeyPair } from '../crypto/keyfile.js';

export const KEYSTORE_VERSION = 1;
export const DEFAULT_SCRYPT_N = 2 ** 17;
export const SCRYPT_R = 8;
export const SCRYPT_P = 1;
/** Smallest N `createKey` accepts (tests only; real wallets use the default). */
export const MIN_SCRYPT_N = 2 ** 10;
/** Largest N accepted when writing or reading (2^20 with r = 8 is 1 GiB, noble's memory limit). */
export const MAX_SCRYPT_N = 2 ** 20;
const SALT_BYTES = 32;
const NONCE_BYTES = 24;
const KEY_BYTES = 32;
const TAG_BYTES = 16;
const AD_PREFIX = concatBytes(utf8('meshledger:keystore:v1'), new Uint8Array([0]));
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export type WalletErrorKind = 'wrong_passphrase' | 'exists' | 'not_found' | 'invalid_name' | 'invalid_file' | 'invalid_input' | 'io';

export class WalletError extends Error {
  readonly kind: WalletErrorKind;
  constructor(message: string, kind: WalletErrorKind = message === 'wrong passphrase' ? 'wrong_passphrase' : 'invalid_input') {
    super(message);
    this.name = 'WalletError';
    this.kind = kind;
  }
}

export interface KeystoreFile {
  version: 1;
  name: string;
  address: string;
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
  cipher: { name: 'xchacha20-poly1305'; nonce: string };
  ciphertext: string;
}

export interface CreateOptions {
  /** scrypt N (a power of two, 2^10 … 2^20); default 2^17. */
  scryptN?: number;
  /** Randomness source for salt, nonce and (createKey) the secret key; default node:crypto. */
  random?: (n: number) => Uint8Array;
}

export interface LoadedKey {
  secretKey: Uint8Array;
  publicKey: Uint8Array;
  address: string;
}

/** Is `name` usable as a wallet name (letters, digits, ".", "_", "-"; starts with a letter or digit; ≤ 64)? */
export function isWalletName(name: unknown): name is string {
  return typeof name === 'string' && NAME_RE.test(name);
}

function checkName(name: string): void {
  if (!isWalletName(name)) {
    throw new WalletError(`invalid wallet name "${name}": use 1–64 letters, digits, ".", "_" or "-", starting with a letter or digit`, 'invalid_name');
  }
}

export function walletPath(dir: string, name: string): string {
  checkName(name);
  return path.join(dir, `${name}.json`);
}

function checkPassphrase(passphrase: string): void {
  if (typeof passphrase !== 'string' || passphrase.length === 0) throw new WalletError('the passphrase must not be empty', 'invalid_input');
}

function checkN(N: number): void {
  if (!Number.isInteger(N) || N < MIN_SCRYPT_N || N > MAX_SCRYPT_N || (N & (N - 1)) !== 0) {
    throw new WalletError(`scrypt N must be a power of two from 2^10 to 2^20, got ${N}`, 'invalid_input');
  }
}

function associatedData(address: string): Uint8Array {
  return concatBytes(AD_PREFIX, utf8(address));
}

async function deriveKey(passphrase: string, salt: Uint8Array, N: number, r: number, p: number): Promise<Uint8Array> {
  return scryptAsync(utf8(passphrase.normalize('NFC')), salt, { N, r, p, dkLen: KEY_BYTES });
}

const defaultRandom = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

/** Encrypt a secret key into a keystore document (no I/O). */
export async function encryptKey(name: string, secretKey: Uint8Array, passphrase: string, opts: CreateOptions = {}): Promise<KeystoreFile> {
  checkName(name);
  checkPassphrase(passphrase);
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== KEY_BYTES) throw new WalletError('a secret key is 32 bytes', 'invalid_input');
  const N = opts.scryptN ?? DEFAULT_SCRYPT_N;
  checkN(N);
  const random = opts.random ?? defaultRandom;
  const address = encodeAddress(getPublicKey(secretKey));
  const salt = random(SALT_BYTES);
  const nonce = random(NONCE_BYTES);
  const key = await deriveKey(passphrase, salt, N, SCRYPT_R, SCRYPT_P);
  try {
    const ciphertext = xchacha20poly1305(key, nonce, associatedData(address)).encrypt(secretKey);
    return {
      version: KEYSTORE_VERSION, name, address,
      kdf: { name: 'scrypt', N, r: SCRYPT_R, p: SCRYPT_P, salt: toHex(salt) },
      cipher: { name: 'xchacha20-poly1305', nonce: toHex(nonce) },
      ciphertext: toHex(ciphertext),
    };
  } finally {
    key.fill(0);
  }
}

/** Check a parsed document's shape and parameters; returns it typed. `where` names it in messages. */
export function validateKeystore(j: unknown, where: string): KeystoreFile {
  const bad = (why: string): never => { throw new WalletError(`${where} is not a meshledger wallet file: ${why}`, 'invalid_file'); };
  if (typeof j !== 'object' || j === null || Array.isArray(j)) bad('not a JSON object');
  const o = j as Record<string, any>;
  if (o.version !== KEYSTORE_VERSION) bad(`unsupported version ${JSON.stringify(o.version)} (want ${KEYSTORE_VERSION})`);
  if (!isWalletName(o.name)) bad('bad "name"');
  if (typeof o.address !== 'string') bad('bad "address"');
  try {
    decodeAddress(o.address);
  } catch (e) {
    bad(`bad "address" (${(e as Error).message})`);
  }
  const k = o.kdf;
  if (typeof k !== 'object' || k === null || k.name !== 'scrypt') bad('"kdf.name" must be "scrypt"');
  if (!Number.isInteger(k.N) || k.N < 2 || k.N > MAX_SCRYPT_N || (k.N & (k.N - 1)) !== 0) bad('"kdf.N" must be a power of two ≤ 2^20');
  if (!Number.isInteger(k.r) || k.r < 1 || k.r > 32) bad('"kdf.r" must be an integer from 1 to 32');
  if (!Number.isInteger(k.p) || k.p < 1 || k.p > 16) bad('"kdf.p" must be an integer from 1 to 16');
  if (128 * k.r * k.N > 2 ** 30) bad('"kdf" needs more than 1 GiB of memory');
  if (!isHex(k.salt) || k.salt.length < 32) bad('"kdf.salt" must be lower-case hex of at least 16 bytes');
  const c = o.cipher;
  if (typeof c !== 'object' || c === null || c.name !== 'xchacha20-poly1305') bad('"cipher.name" must be "xchacha20-poly1305"');
  if (!isHex(c.nonce, NONCE_BYTES)) bad(`"cipher.nonce" must be ${NONCE_BYTES} bytes of lower-case hex`);
  if (!isHex(o.ciphertext, KEY_BYTES + TAG_BYTES)) bad(`"ciphertext" must be ${KEY_BYTES + TAG_BYTES} bytes of lower-case hex`);
  return o as KeystoreFile;
}

/** Decrypt a keystore document (no I/O). Wrong passphrase or any modification → WalletError('wrong passphrase'). */
export async function decryptKey(file: KeystoreFile, passphrase: string): Promise<LoadedKey> {
  const key = await deriveKey(passphrase, fromHex(file.kdf.salt), file.kdf.N, file.kdf.r, file.kdf.p);
  let secretKey: Uint8Array;
  try {
    secretKey = xchacha20poly1305(key, fromHex(file.cipher.nonce), associatedData(file.address)).decrypt(fromHex(file.ciphertext));
  } catch {
    throw new WalletError('wrong passphrase', 'wrong_passphrase');
  } finally {
    key.fill(0);
  }
  const publicKey = getPublicKey(secretKey);
  const address = encodeAddress(publicKey);
  if (address !== file.address) {
    secretKey.fill(0);
    throw new WalletError(`wallet "${file.name}": the decrypted key belongs to ${address}, not ${file.address}`, 'invalid_file');
  }
  return { secretKey, publicKey, address };
}

async function readKeystore(dir: string, name: string): Promise<KeystoreFile> {
  const file = walletPath(dir, name);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new WalletError(`no wallet named "${name}" in ${dir}`, 'not_found');
    throw new WalletError(`cannot read ${file}: ${code ?? (e as Error).message}`, 'io');
  }
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    throw new WalletError(`${file} is not JSON`, 'invalid_file');
  }
  const ks = validateKeystore(j, file);
  if (ks.name !== name) throw new WalletError(`${file} holds wallet "${ks.name}", not "${name}" (was the file renamed?)`, 'invalid_file');
  return ks;
}

/**
 * Write `body` as `<dir>/<name>.json` (mode 0600) atomically and only if that name is free: a temp file
 * is written and fsynced, then hard-linked to the final name (link fails with EEXIST rather than replace).
 */
async function writeNew(dir: string, name: string, body: string): Promise<string> {
  const final = walletPath(dir, name);
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new WalletError(`cannot create the wallet folder ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'io');
  }
  const exists = async () => fs.access(final).then(() => true, () => false);
  if (await exists()) throw new WalletError(`a wallet named "${name}" already exists in ${dir}`, 'exists');
  const tmp = path.join(dir, `.${name}.json.${process.pid}.${toHex(defaultRandom(6))}.tmp`);
  try {
    const fh = await fs.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
    try {
      await fh.chmod(0o600); // exactly 0600, whatever the umask
      await fh.writeFile(body, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await fs.link(tmp, final);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new WalletError(`a wallet named "${name}" already exists in ${dir}`, 'exists');
      // A file system without hard links: check, then rename (a concurrent writer could still race us here).
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw e;
      if (await exists()) throw new WalletError(`a wallet named "${name}" already exists in ${dir}`, 'exists');
      await fs.rename(tmp, final);
    }
    try {
      const dh = await fs.open(dir, 'r');
      await dh.sync().finally(() => dh.close());
    } catch { /* some platforms cannot fsync a folder */ }
    return final;
  } catch (e) {
    if (e instanceof WalletError) throw e;
    throw new WalletError(`cannot write ${final}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'io');
  } finally {
    await fs.rm(tmp, { force: true }).catch(() => {});
  }
}

async function store(dir: string, name: string, secretKey: Uint8Array, passphrase: string, opts?: CreateOptions): Promise<{ name: string; address: string; file: string }> {
  checkName(name);
  checkPassphrase(passphrase);
  // Fail before the (slow) KDF when the name is taken; writeNew checks again, atomically.
  if (await fs.access(walletPath(dir, name)).then(() => true, () => false)) throw new WalletError(`a wallet named "${name}" already exists in ${dir}`, 'exists');
  const doc = await encryptKey(name, secretKey, passphrase, opts);
  const file = await writeNew(dir, name, JSON.stringify(doc, null, 2) + '\n');
  return { name, address: doc.address, file };
}

/** Generate a new key and store it encrypted as `name`. Refuses a name that exists. */
export async function createKey(dir: string, name: string, passphrase: string, opts: CreateOptions = {}): Promise<{ name: string; address: string; file: string }> {
  const kp = newKeyPair(opts.random);
  try {
    return await store(dir, name, kp.secretKey, passphrase, opts);
  } finally {
    kp.secretKey.fill(0);
  }
}

/** Store an existing secret key (64 lower- or upper-case hex characters) encrypted as `name`. */
export async function importKey(dir: string, name: string, secretKeyHex: string, passphrase: string, opts: CreateOptions = {}): Promise<{ name: string; address: string; file: string }> {
  const hex = typeof secretKeyHex === 'string' ? secretKeyHex.trim().toLowerCase() : '';
  if (!isHex(hex, KEY_BYTES)) throw new WalletError('a secret key is 64 hex characters', 'invalid_input');
  const secretKey = fromHex(hex);
  try {
    return await store(dir, name, secretKey, passphrase, opts);
  } finally {
    secretKey.fill(0);
  }
}

/** The wallets in `dir`, sorted by name (files that are not wallet files are skipped). A missing dir is empty. */
export async function listKeys(dir: string): Promise<{ name: string; address: string }[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new WalletError(`cannot read the wallet folder ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'io');
  }
  const out: { name: string; address: string }[] = [];
  for (const f of names.sort()) {
    if (!f.endsWith('.json')) continue;
    const name = f.slice(0, -'.json'.length);
    if (!isWalletName(name)) continue;
    try {
      const ks = await readKeystore(dir, name);
      out.push({ name, address: ks.address });
    } catch {
      /* not a wallet file */
    }
  }
  return out;
}

/** Decrypt wallet `name`. Wrong passphrase (or a modified file) → WalletError('wrong passphrase'). */
export async function loadKey(dir: string, name: string, passphrase: string): Promise<LoadedKey> {
  return decryptKey(await readKeystore(dir, name), passphrase);
}

/** The address of wallet `name` (no passphrase needed: the address is stored in clear). */
export async function addressOf(dir: string, name: string): Promise<string> {
  return (await readKeystore(dir, name)).address;
}
