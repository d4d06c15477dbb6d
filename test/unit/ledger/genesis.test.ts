/**
 * Tests for src/ledger/genesis.ts: genesisFromJson's semantic checks (one rejection per case, each next to
 * the boundary that passes) and the config hash (independent of alloc order in the JSON, sensitive to every field).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { encodeCanonical } from '../../../src/encoding/canonical.js';
import { U64_MAX } from '../../../src/encoding/bytes.js';
import { encodeGenesisConfig, GENESIS_TAG, GenesisError, genesisFromJson, genesisToJson, parseAmount, type GenesisJson } from '../../../src/ledger/genesis.js';
import { testKeys } from '../../helpers/fixtures.js';

const V = testKeys('genesis-validator', 3);
const A = testKeys('genesis-account', 4);

function base(): GenesisJson {
  return {
    chainId: 'meshledger-test',
    genesisTime: 1_700_000_000_000,
    slotMs: 1000,
    validators: V.map((k) => k.address),
    alloc: [
      { address: A[0]!.address, amount: '1000' },
      { address: A[1]!.address, amount: '2000' },
      { address: A[2]!.address, amount: '3' },
    ],
    params: { minFee: '1', maxBlockTxs: 10_000, maxBlockBytes: 4 * 1024 * 1024, maxMemoBytes: 256, maxClockDriftMs: 500, decimals: 6, symbol: 'MESH' },
  };
}

/** base() with `edit` applied to a deep copy. */
function edited(edit: (j: GenesisJson) => void): GenesisJson {
  const j = structuredClone(base());
  edit(j);
  return j;
}

function rejects(edit: (j: GenesisJson) => void, pattern: RegExp, what: string): void {
  assert.throws(() => genesisFromJson(edited(edit)), (e: unknown) => {
    assert.ok(e instanceof GenesisError, `${what}: expected GenesisError, got ${String(e)}`);
    assert.match(e.message, pattern, what);
    return true;
  }, what);
}

function accepts(edit: (j: GenesisJson) => void, what: string): void {
  assert.doesNotThrow(() => genesisFromJson(edited(edit)), what);
}

const hashHex = (j: GenesisJson): string => Buffer.from(genesisFromJson(j).configHash).toString('hex');

// ---- the valid base ----------------------------------------------------------------------------

test('the base genesis parses: validators in order, alloc sorted by key, total supply summed', () => {
  const g = genesisFromJson(base());
  assert.deepEqual(g.validators, V.map((k) => k.publicKey));
  assert.equal(g.totalSupply, 3003n);
  const keys = g.alloc.map((a) => Buffer.from(a.publicKey).toString('hex'));
  assert.deepEqual(keys, [...keys].sort());
  assert.equal(g.params.minFee, 1n);
});

test('configHash is SHA-256 of the canonical [tag, chainId, time, slotMs, validators, sorted alloc, params] array', () => {
  const g = genesisFromJson(base());
  const expected = encodeCanonical([
    'meshledger:genesis:v1', g.chainId, g.genesisTime, g.slotMs, g.validators,
    g.alloc.map((a) => [a.publicKey, a.amount]),
    [g.params.minFee, g.params.maxBlockTxs, g.params.maxBlockBytes, g.params.maxMemoBytes, g.params.maxClockDriftMs, g.params.decimals, g.params.symbol],
  ]);
  assert.equal(GENESIS_TAG, 'meshledger:genesis:v1');
  assert.deepEqual(encodeGenesisConfig(g), expected);
  assert.deepEqual(g.configHash, new Uint8Array(crypto.createHash('sha256').update(expected).digest()));
});

test('genesisToJson → genesisFromJson reproduces the same config hash', () => {
  const g = genesisFromJson(base());
  assert.deepEqual(genesisFromJson(genesisToJson(g)).configHash, g.configHash);
});

// ---- rejections --------------------------------------------------------------------------------

test('rejects a bad chainId (upper case, leading dash, empty, 64 chars, space, underscore); 63 chars passes', () => {
  for (const id of ['Meshledger', '-mesh', '', 'a'.repeat(64), 'mesh ledger', 'mesh_ledger', 'mesh.ledger']) {
    rejects((j) => { j.chainId = id; }, /chainId/, `chainId ${JSON.stringify(id)}`);
  }
  accepts((j) => { j.chainId = 'a'.repeat(63); }, '63-char chainId');
  accepts((j) => { j.chainId = '0-a'; }, 'digit first');
});

test('rejects slotMs < 10 (9, 0) and non-integer slotMs; slotMs 10 passes', () => {
  rejects((j) => { j.slotMs = 9; }, /slotMs/, 'slotMs 9');
  rejects((j) => { j.slotMs = 0; }, /slotMs/, 'slotMs 0');
  rejects((j) => { j.slotMs = 10.5; }, /slotMs/, 'slotMs 10.5');
  accepts((j) => { j.slotMs = 10; }, 'slotMs 10');
});

test('rejects a negative or fractional genesisTime', () => {
  rejects((j) => { j.genesisTime = -1; }, /genesisTime/, 'negative');
  rejects((j) => { j.genesisTime = 1.5; }, /genesisTime/, 'fractional');
});

test('rejects an empty validator list', () => {
  rejects((j) => { j.validators = []; }, /validator/, 'no validators');
});

test('rejects a validator listed twice (also non-adjacent)', () => {
  rejects((j) => { j.validators = [V[0]!.address, V[0]!.address]; }, /validators\[1\].*twice/, 'adjacent');
  rejects((j) => { j.validators = [V[0]!.address, V[1]!.address, V[0]!.address]; }, /validators\[2\].*twice/, 'non-adjacent');
});

test('rejects an invalid validator address', () => {
  rejects((j) => { j.validators = [V[0]!.address.toUpperCase()]; }, /validators\[0\]/, 'upper-case');
  rejects((j) => { j.validators = [V[0]!.address.slice(0, -1) + 'q']; }, /validators\[0\]/, 'bad checksum');
});

test('rejects an address allocated twice', () => {
  rejects((j) => { j.alloc.push({ address: A[0]!.address, amount: '5' }); }, /alloc\[3\].*twice/, 'duplicate alloc');
});

test('rejects a zero allocation', () => {
  rejects((j) => { j.alloc[1]!.amount = '0'; }, /alloc\[1\]\.amount must be positive/, 'zero alloc');
});

test('rejects malformed amount strings ("01", "-1", "1.5", "", " 1", "1e3", "0x10", 2^64) and a number', () => {
  for (const s of ['01', '-1', '1.5', '', ' 1', '1e3', '0x10', '+1', '18446744073709551616', '99999999999999999999', '100000000000000000000']) {
    rejects((j) => { j.alloc[0]!.amount = s; }, /alloc\[0\]\.amount/, `amount ${JSON.stringify(s)}`);
  }
  rejects((j) => { (j.alloc[0] as { amount: unknown }).amount = 5; }, /alloc\[0\]\.amount/, 'a JSON number');
  assert.throws(() => parseAmount('18446744073709551616', 'x'), /exceeds 2\^64-1/);
});

test('accepts an allocation of exactly 2^64-1', () => {
  const g = genesisFromJson(edited((j) => { j.alloc = [{ address: A[0]!.address, amount: U64_MAX.toString() }]; }));
  assert.equal(g.totalSupply, U64_MAX);
});

test('rejects total supply above 2^64-1 (two allocs of 2^63); 2^63 + (2^63 − 1) passes', () => {
  rejects((j) => {
    j.alloc = [{ address: A[0]!.address, amount: (1n << 63n).toString() }, { address: A[1]!.address, amount: (1n << 63n).toString() }];
  }, /total supply/, 'two × 2^63');
  const g = genesisFromJson(edited((j) => {
    j.alloc = [{ address: A[0]!.address, amount: (1n << 63n).toString() }, { address: A[1]!.address, amount: ((1n << 63n) - 1n).toString() }];
  }));
  assert.equal(g.totalSupply, U64_MAX);
});

test('rejects a malformed minFee like any other amount', () => {
  rejects((j) => { j.params.minFee = '01'; }, /minFee/, 'minFee 01');
  rejects((j) => { j.params.minFee = '18446744073709551616'; }, /minFee/, 'minFee 2^64');
  accepts((j) => { j.params.minFee = '0'; }, 'minFee 0');
});

test('rejects a bad symbol (lower case, empty, 13 chars, leading digit, punctuation); 12 chars passes', () => {
  for (const s of ['mesh', '', 'ABCDEFGHIJKLM', '1MESH', 'ME-SH', 'MESH ']) {
    rejects((j) => { j.params.symbol = s; }, /symbol/, `symbol ${JSON.stringify(s)}`);
  }
  accepts((j) => { j.params.symbol = 'ABCDEFGHIJK1'; }, '12-char symbol');
  accepts((j) => { j.params.symbol = 'X'; }, '1-char symbol');
});

test('rejects decimals > 18; 18 and 0 pass', () => {
  rejects((j) => { j.params.decimals = 19; }, /decimals/, 'decimals 19');
  rejects((j) => { j.params.decimals = -1; }, /decimals/, 'decimals -1');
  accepts((j) => { j.params.decimals = 18; }, 'decimals 18');
  accepts((j) => { j.params.decimals = 0; }, 'decimals 0');
});

test('rejects maxBlockTxs < 1, maxBlockBytes < 1024, maxMemoBytes > 1024 and fractional params', () => {
  rejects((j) => { j.params.maxBlockTxs = 0; }, /maxBlockTxs/, 'maxBlockTxs 0');
  rejects((j) => { j.params.maxBlockBytes = 1023; }, /maxBlockBytes/, 'maxBlockBytes 1023');
  accepts((j) => { j.params.maxBlockBytes = 1024; }, 'maxBlockBytes 1024');
  rejects((j) => { j.params.maxMemoBytes = 1025; }, /maxMemoBytes/, 'maxMemoBytes 1025');
  accepts((j) => { j.params.maxMemoBytes = 1024; }, 'maxMemoBytes 1024');
  rejects((j) => { j.params.maxClockDriftMs = 0.5; }, /maxClockDriftMs/, 'fractional drift');
});

// ---- config hash -------------------------------------------------------------------------------

test('configHash is independent of the alloc order in the JSON (all 6 permutations)', () => {
  const ref = hashHex(base());
  const perms = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
  for (const p of perms) {
    assert.equal(hashHex(edited((j) => { const a = j.alloc; j.alloc = p.map((i) => a[i]!); })), ref, p.join(','));
  }
});

test('configHash changes when any field changes', () => {
  const ref = hashHex(base());
  const edits: [string, (j: GenesisJson) => void][] = [
    ['chainId', (j) => { j.chainId = 'meshledger-test2'; }],
    ['genesisTime', (j) => { j.genesisTime += 1; }],
    ['slotMs', (j) => { j.slotMs += 1; }],
    ['validator order', (j) => { j.validators.reverse(); }],
    ['validator set', (j) => { j.validators.pop(); }],
    ['an alloc amount', (j) => { j.alloc[2]!.amount = '4'; }],
    ['an alloc address', (j) => { j.alloc[2]!.address = A[3]!.address; }],
    ['an extra alloc', (j) => { j.alloc.push({ address: A[3]!.address, amount: '1' }); }],
    ['params.minFee', (j) => { j.params.minFee = '2'; }],
    ['params.maxBlockTxs', (j) => { j.params.maxBlockTxs += 1; }],
    ['params.maxBlockBytes', (j) => { j.params.maxBlockBytes += 1; }],
    ['params.maxMemoBytes', (j) => { j.params.maxMemoBytes += 1; }],
    ['params.maxClockDriftMs', (j) => { j.params.maxClockDriftMs += 1; }],
    ['params.decimals', (j) => { j.params.decimals += 1; }],
    ['params.symbol', (j) => { j.params.symbol = 'MESI'; }],
  ];
  const seen = new Set([ref]);
  for (const [name, edit] of edits) {
    const h = hashHex(edited(edit));
    assert.notEqual(h, ref, name);
    assert.ok(!seen.has(h), `${name} collides with another edit`);
    seen.add(h);
  }
});
