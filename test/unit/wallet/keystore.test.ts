/**
 * src/wallet/keystore.ts: encrypted wallet files. Round trip, wrong passphrase, tampering (ciphertext,
 * nonce, salt, address, KDF params) → error, mode 0600, refusal to overwrite, recorded scrypt params, and
 * that the plaintext secret key (hex or raw bytes) never appears in the file; no two wallets share a salt or a
 * nonce; listing skips broken files and reports exactly the well-formed ones.
 *
 * Most tests use N = 2^10 (MIN_SCRYPT_N) to stay fast; one test creates a wallet with the default N = 2^17.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeAddress } from '../../../src/encoding/address.js';
import { toHex } from '../../../src/encoding/bytes.js';
import { getPublicKey } from '../../../src/crypto/ed25519.js';
import { newKeyPair } from '../../../src/crypto/keyfile.js';
import {
  DEFAULT_SCRYPT_N, MIN_SCRYPT_N, WalletError, addressOf, createKey, importKey, listKeys, loadKey, walletPath,
} from '../../../src/wallet/keystore.js';

const FAST = { scryptN: MIN_SCRYPT_N };
const root = mkdtempSync(path.join(os.tmpdir(), 'meshledger-keystore-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
let seq = 0;
const newDir = () => path.join(root, `w${++seq}`);

function isWrongPassphrase(e: unknown): boolean {
  return e instanceof WalletError && e.message === 'wrong passphrase' && e.kind === 'wrong_passphrase';
}

/** Rewrite one field of a wallet file (JSON) in place. */
function tamper(dir: string, name: string, edit: (j: any) => void): void {
  const f = walletPath(dir, name);
  const j = JSON.parse(readFileSync(f, 'utf8'));
  edit(j);
  writeFileSync(f, JSON.stringify(j));
}

function flipHex(h: string, at = 0): string {
  const c = h[at]!;
  return h.slice(0, at) + (c === '0' ? '1' : '0') + h.slice(at + 1);
}

describe('keystore', () => {
  test('create → load round trip; address, list, addressOf agree', async () => {
    const dir = newDir();
    const c = await createKey(dir, 'alice', 'correct horse', FAST);
    assert.match(c.address, /^ml1/);
    assert.equal(c.file, path.join(dir, 'alice.json'));
    const k = await loadKey(dir, 'alice', 'correct horse');
    assert.equal(k.address, c.address);
    assert.equal(encodeAddress(getPublicKey(k.secretKey)), c.address);
    assert.deepEqual(k.publicKey, getPublicKey(k.secretKey));
    assert.equal(await addressOf(dir, 'alice'), c.address);
    const b = await createKey(dir, 'bob', 'pw2', FAST);
    assert.deepEqual(await listKeys(dir), [{ name: 'alice', address: c.address }, { name: 'bob', address: b.address }]);
    assert.notEqual(b.address, c.address);
  });

  test('import → load returns the same secret key; the plaintext never appears in the file', async () => {
    const dir = newDir();
    const kp = newKeyPair();
    const hex = toHex(kp.secretKey);
    const r = await importKey(dir, 'imported', hex.toUpperCase(), 'pässwörd', FAST); // upper-case hex accepted
    assert.equal(r.address, kp.address);
    const k = await loadKey(dir, 'imported', 'pässwörd');
    assert.deepEqual(k.secretKey, kp.secretKey);
    const bytes = readFileSync(r.file);
    const text = bytes.toString('latin1').toLowerCase();
    assert.ok(!text.includes(hex), 'secret key hex is not in the file');
    assert.ok(!text.includes(Buffer.from(kp.secretKey).toString('base64').toLowerCase()), 'nor its base64');
    assert.equal(bytes.indexOf(Buffer.from(kp.secretKey)), -1, 'nor its raw bytes');
    await assert.rejects(importKey(dir, 'x', 'abcd', 'pw', FAST), WalletError);
    await assert.rejects(importKey(dir, 'x', 'zz'.repeat(32), 'pw', FAST), WalletError);
  });

  test('wrong passphrase → WalletError("wrong passphrase")', async () => {
    const dir = newDir();
    await createKey(dir, 'w', 'right', FAST);
    await assert.rejects(loadKey(dir, 'w', 'wrong'), isWrongPassphrase);
    await assert.rejects(loadKey(dir, 'w', 'Right'), isWrongPassphrase);
    await assert.rejects(loadKey(dir, 'w', ''), isWrongPassphrase);
    await loadKey(dir, 'w', 'right');
  });

  test('tampered ciphertext, tag, nonce, salt, N or address → error, never a key', async () => {
    const dir = newDir();
    const other = newKeyPair().address;
    const edits: [string, (j: any) => void, (e: unknown) => boolean][] = [
      ['ciphertext', (j) => { j.ciphertext = flipHex(j.ciphertext, 3); }, isWrongPassphrase],
      ['tag', (j) => { j.ciphertext = flipHex(j.ciphertext, j.ciphertext.length - 1); }, isWrongPassphrase],
      ['nonce', (j) => { j.cipher.nonce = flipHex(j.cipher.nonce, 10); }, isWrongPassphrase],
      ['salt', (j) => { j.kdf.salt = flipHex(j.kdf.salt, 5); }, isWrongPassphrase],
      ['N', (j) => { j.kdf.N = j.kdf.N * 2; }, isWrongPassphrase],
      ['address swapped for another valid one', (j) => { j.address = other; }, isWrongPassphrase],
      ['address with a bad checksum', (j) => { j.address = j.address.slice(0, -1) + (j.address.endsWith('q') ? 'p' : 'q'); }, (e) => e instanceof WalletError && e.kind === 'invalid_file'],
      ['cipher name', (j) => { j.cipher.name = 'aes-256-gcm'; }, (e) => e instanceof WalletError && e.kind === 'invalid_file'],
      ['version', (j) => { j.version = 2; }, (e) => e instanceof WalletError && e.kind === 'invalid_file'],
      ['name', (j) => { j.name = 'someone-else'; }, (e) => e instanceof WalletError && e.kind === 'invalid_file'],
      ['huge N', (j) => { j.kdf.N = 2 ** 24; }, (e) => e instanceof WalletError && e.kind === 'invalid_file'],
    ];
    const parse: { name: string; address: string }[] = []; // the tampered files that are still well-formed
    for (const [i, [what, edit, check]] of edits.entries()) {
      const name = `t${i}`;
      const { address } = await createKey(dir, name, 'pw', FAST);
      tamper(dir, name, edit);
      await assert.rejects(loadKey(dir, name, 'pw'), (e: unknown) => {
        assert.ok(check(e), `${what}: unexpected ${String(e)}`);
        return true;
      });
      if (check === isWrongPassphrase) parse.push({ name, address: what === 'address swapped for another valid one' ? other : address });
    }
    writeFileSync(path.join(dir, 'notjson.json'), '{');
    await assert.rejects(loadKey(dir, 'notjson', 'pw'), (e: unknown) => e instanceof WalletError && e.kind === 'invalid_file');
    // list skips broken files but still reports the ones that parse: exactly those, by name, with their addresses
    assert.deepEqual(parse.map((w) => w.name), ['t0', 't1', 't2', 't3', 't4', 't5']);
    assert.deepEqual(await listKeys(dir), parse);
  });

  test('file mode 0600, folder 0700, no temp files left behind', async () => {
    const dir = newDir();
    const old = process.umask(0o022);
    try {
      const r = await createKey(dir, 'm', 'pw', FAST);
      assert.equal(statSync(r.file).mode & 0o777, 0o600);
      assert.equal(statSync(dir).mode & 0o777, 0o700);
      await importKey(dir, 'm2', toHex(newKeyPair().secretKey), 'pw', FAST);
      assert.equal(statSync(walletPath(dir, 'm2')).mode & 0o777, 0o600);
      assert.deepEqual(readdirSync(dir).sort(), ['m.json', 'm2.json']);
    } finally {
      process.umask(old);
    }
  });

  test('an existing wallet name is never overwritten (create, import, concurrent creates)', async () => {
    const dir = newDir();
    const first = await createKey(dir, 'dup', 'pw', FAST);
    const before = readFileSync(first.file);
    const exists = (e: unknown) => e instanceof WalletError && e.kind === 'exists' && /already exists/.test(e.message);
    await assert.rejects(createKey(dir, 'dup', 'pw', FAST), exists);
    await assert.rejects(importKey(dir, 'dup', toHex(newKeyPair().secretKey), 'pw', FAST), exists);
    assert.deepEqual(readFileSync(first.file), before);
    // many racing writers to one new name: exactly one wins, the file is that one's
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => createKey(dir, 'race', 'pw', FAST)));
    const won = results.filter((r) => r.status === 'fulfilled') as PromiseFulfilledResult<{ address: string }>[];
    assert.equal(won.length, 1, JSON.stringify(results.map((r) => r.status)));
    assert.ok(results.every((r) => r.status === 'fulfilled' || exists(r.reason)));
    assert.equal(await addressOf(dir, 'race'), won[0]!.value.address);
    assert.deepEqual(readdirSync(dir).sort(), ['dup.json', 'race.json']);
  });

  test('scrypt params are recorded; the default is N = 2^17, r = 8, p = 1', async () => {
    const dir = newDir();
    const r = await createKey(dir, 'strong', 'pw'); // default parameters (memory-hard: 128 MiB)
    const j = JSON.parse(readFileSync(r.file, 'utf8'));
    assert.equal(DEFAULT_SCRYPT_N, 2 ** 17);
    assert.deepEqual(Object.keys(j).sort(), ['address', 'cipher', 'ciphertext', 'kdf', 'name', 'version']);
    assert.equal(j.version, 1);
    assert.equal(j.name, 'strong');
    assert.equal(j.address, r.address);
    assert.equal(j.kdf.name, 'scrypt');
    assert.equal(j.kdf.N, 2 ** 17);
    assert.equal(j.kdf.r, 8);
    assert.equal(j.kdf.p, 1);
    assert.match(j.kdf.salt, /^[0-9a-f]{64}$/);
    assert.equal(j.cipher.name, 'xchacha20-poly1305');
    assert.match(j.cipher.nonce, /^[0-9a-f]{48}$/);
    assert.match(j.ciphertext, /^[0-9a-f]{96}$/);
    assert.equal((await loadKey(dir, 'strong', 'pw')).address, r.address);
    // a lower N is recorded as such and read back with the file's own N
    const weak = await createKey(dir, 'weak', 'pw', { scryptN: 2 ** 11 });
    assert.equal(JSON.parse(readFileSync(weak.file, 'utf8')).kdf.N, 2 ** 11);
    assert.equal((await loadKey(dir, 'weak', 'pw')).address, weak.address);
    // wallets never share a salt or a nonce: these two and six more, created and imported, the same key
    // under two names included (each file draws its own salt and nonce)
    const kp = newKeyPair();
    for (let i = 0; i < 4; i++) await createKey(dir, `w${i}`, 'pw', FAST);
    await importKey(dir, 'same-a', toHex(kp.secretKey), 'pw', FAST);
    await importKey(dir, 'same-b', toHex(kp.secretKey), 'pw', FAST);
    const files = readdirSync(dir).map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')));
    assert.deepEqual(files.map((x) => x.name).sort(), ['same-a', 'same-b', 'strong', 'w0', 'w1', 'w2', 'w3', 'weak']);
    const salts = files.map((x) => x.kdf.salt as string);
    const nonces = files.map((x) => x.cipher.nonce as string);
    assert.ok(salts.every((x) => /^[0-9a-f]{64}$/.test(x)) && nonces.every((x) => /^[0-9a-f]{48}$/.test(x)));
    assert.equal(new Set(salts).size, files.length, 'a salt repeats');
    assert.equal(new Set(nonces).size, files.length, 'a nonce repeats');
    // nor is a nonce cut from a salt (one random draw used for both)
    assert.ok(nonces.every((n) => salts.every((x) => !x.includes(n))), 'a nonce is part of a salt');
  });

  test('bad names, empty passphrase, out-of-range N, unknown wallet', async () => {
    const dir = newDir();
    for (const name of ['', '../evil', 'a/b', '.hidden', 'x'.repeat(65), 'sp ace']) {
      await assert.rejects(createKey(dir, name, 'pw', FAST), (e: unknown) => e instanceof WalletError && e.kind === 'invalid_name', name);
    }
    await assert.rejects(createKey(dir, 'ok', '', FAST), WalletError);
    await assert.rejects(createKey(dir, 'ok', 'pw', { scryptN: 512 }), WalletError);
    await assert.rejects(createKey(dir, 'ok', 'pw', { scryptN: 3000 }), WalletError);
    await assert.rejects(loadKey(dir, 'nobody', 'pw'), (e: unknown) => e instanceof WalletError && e.kind === 'not_found');
    await assert.rejects(addressOf(dir, 'nobody'), (e: unknown) => e instanceof WalletError && e.kind === 'not_found');
    assert.deepEqual(await listKeys(path.join(dir, 'missing')), []);
  });
});
