/**
 * Node key files (validator keys): JSON with the raw secret key, written with mode 0600. A validator must
 * start unattended, so its key is not passphrase-protected; user wallets use the encrypted keystore.
 */
import { promises as fs } from 'node:fs';
import { encodeAddress } from '../encoding/address.js';
import { fromHex, isHex, toHex } from '../encoding/bytes.js';
import { generateSecretKey, getPublicKey } from './ed25519.js';
import { writeFileKeepingOld } from '../util/files.js';

export interface KeyPair {
  secretKey: Uint8Array;
  publicKey: Uint8Array;
  address: string;
}

export class KeyFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyFileError';
  }
}

export function newKeyPair(random?: (n: number) => Uint8Array): KeyPair {
  const secretKey = generateSecretKey(random);
  const publicKey = getPublicKey(secretKey);
  return { secretKey, publicKey, address: encodeAddress(publicKey) };
}

/** Write a key file (mode 0600); an existing file at `path` is kept as a .bak (see util/files.ts). */
export async function writeKeyFile(path: string, kp: KeyPair): Promise<string | undefined> {
  const body = JSON.stringify({ type: 'ed25519', address: kp.address, publicKey: toHex(kp.publicKey), secretKey: toHex(kp.secretKey) }, null, 2) + '\n';
  try {
    return await writeFileKeepingOld(path, body, 0o600);
  } catch (e) {
    throw new KeyFileError(`cannot write ${path}: ${(e as Error).message}`);
  }
}

export async function readKeyFile(path: string): Promise<KeyPair> {
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch (e) {
    throw new KeyFileError(`cannot read key file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let j: { type?: unknown; secretKey?: unknown; publicKey?: unknown };
  try {
    j = JSON.parse(text);
  } catch {
    throw new KeyFileError(`${path} is not JSON`);
  }
  if (j.type !== 'ed25519' || !isHex(j.secretKey, 32)) throw new KeyFileError(`${path} is not a meshledger key file (want {"type":"ed25519","secretKey":<64 hex>})`);
  const secretKey = fromHex(j.secretKey);
  const publicKey = getPublicKey(secretKey);
  if (j.publicKey !== undefined && j.publicKey !== toHex(publicKey)) throw new KeyFileError(`${path}: publicKey does not match secretKey`);
  return { secretKey, publicKey, address: encodeAddress(publicKey) };
}
