/**
 * Genesis: the network's founding document. Its canonical encoding is hashed into the genesis block, whose
 * hash identifies the network (peers with another genesis hash are a different network).
 */
import { decodeAddress, encodeAddress } from '../encoding/address.js';
import { compareBytes, toHex, U64_MAX } from '../encoding/bytes.js';
import { encodeCanonical } from '../encoding/canonical.js';
import { sha256 } from '../crypto/hash.js';

export interface GenesisParams {
  /** Minimum fee per transaction, in minor units. */
  minFee: bigint;
  maxBlockTxs: number;
  maxBlockBytes: number;
  maxMemoBytes: number;
  /** How far a block's slot start may lie ahead of the local clock and still be accepted. */
  maxClockDriftMs: number;
  /** Number of decimal places of the display unit (wallets convert "12.345" exactly with it). */
  decimals: number;
  symbol: string;
}

export interface Genesis {
  chainId: string;
  /** Start of slot 0, milliseconds since the Unix epoch. */
  genesisTime: number;
  slotMs: number;
  /** Ordered validator public keys: the proposer of slot s is validators[s mod n]. */
  validators: Uint8Array[];
  /** Initial balances, sorted by public key (the JSON order does not matter). */
  alloc: { publicKey: Uint8Array; amount: bigint }[];
  params: GenesisParams;
  /** SHA-256 of the canonical encoding of everything above. */
  configHash: Uint8Array;
  totalSupply: bigint;
}

/** The JSON form (genesis.json). Amounts are decimal strings. */
export interface GenesisJson {
  chainId: string;
  genesisTime: number;
  slotMs: number;
  validators: string[];
  alloc: { address: string; amount: string }[];
  params: {
    minFee: string; maxBlockTxs: number; maxBlockBytes: number; maxMemoBytes: number;
    maxClockDriftMs: number; decimals: number; symbol: string;
  };
}

export const DEFAULT_PARAMS: GenesisParams = {
  minFee: 1n,
  maxBlockTxs: 10_000,
  maxBlockBytes: 4 * 1024 * 1024,
  maxMemoBytes: 256,
  maxClockDriftMs: 500,
  decimals: 6,
  symbol: 'MESH',
};

export const CHAIN_ID_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const GENESIS_TAG = 'meshledger:genesis:v1';

export class GenesisError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GenesisError';
  }
}

const DECIMAL_RE = /^(0|[1-9][0-9]{0,19})$/;

export function parseAmount(s: unknown, what: string): bigint {
  if (typeof s !== 'string' || !DECIMAL_RE.test(s)) throw new GenesisError(`${what}: expected a decimal string of minor units, got ${JSON.stringify(s)}`);
  const v = BigInt(s);
  if (v > U64_MAX) throw new GenesisError(`${what}: ${s} exceeds 2^64-1`);
  return v;
}

/** Semantic checks beyond the JSON Schema (which the caller applies first): keys, duplicates, supply. */
export function genesisFromJson(j: GenesisJson): Genesis {
  if (!CHAIN_ID_RE.test(j.chainId)) throw new GenesisError(`chainId must match ${CHAIN_ID_RE}`);
  for (const [k, v] of [['genesisTime', j.genesisTime], ['slotMs', j.slotMs]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new GenesisError(`${k} must be a non-negative integer`);
  }
  if (j.slotMs < 10) throw new GenesisError('slotMs must be at least 10');
  if (!Array.isArray(j.validators) || j.validators.length === 0) throw new GenesisError('at least one validator is required');
  const seen = new Set<string>();
  const validators = j.validators.map((a, i) => {
    const pk = decodeAddressOr(a, `validators[${i}]`);
    const h = toHex(pk);
    if (seen.has(h)) throw new GenesisError(`validators[${i}] is listed twice`);
    seen.add(h);
    return pk;
  });
  const allocSeen = new Set<string>();
  let totalSupply = 0n;
  const alloc = (j.alloc ?? []).map((e, i) => {
    const publicKey = decodeAddressOr(e.address, `alloc[${i}].address`);
    const h = toHex(publicKey);
    if (allocSeen.has(h)) throw new GenesisError(`alloc[${i}]: address is allocated twice`);
    allocSeen.add(h);
    const amount = parseAmount(e.amount, `alloc[${i}].amount`);
    if (amount === 0n) throw new GenesisError(`alloc[${i}].amount must be positive`);
    totalSupply += amount;
    return { publicKey, amount };
  }).sort((a, b) => compareBytes(a.publicKey, b.publicKey));
  // Supply is conserved, so bounding it by 2^64-1 here means no balance can ever overflow.
  if (totalSupply > U64_MAX) throw new GenesisError('total supply exceeds 2^64-1');
  const p = j.params;
  const params: GenesisParams = {
    minFee: parseAmount(p.minFee, 'params.minFee'),
    maxBlockTxs: p.maxBlockTxs, maxBlockBytes: p.maxBlockBytes, maxMemoBytes: p.maxMemoBytes,
    maxClockDriftMs: p.maxClockDriftMs, decimals: p.decimals, symbol: p.symbol,
  };
  for (const k of ['maxBlockTxs', 'maxBlockBytes', 'maxMemoBytes', 'maxClockDriftMs', 'decimals'] as const) {
    if (!Number.isSafeInteger(params[k]) || params[k] < 0) throw new GenesisError(`params.${k} must be a non-negative integer`);
  }
  if (params.maxBlockTxs < 1 || params.maxBlockBytes < 1024) throw new GenesisError('params.maxBlockTxs must be ≥ 1 and params.maxBlockBytes ≥ 1024');
  if (params.decimals > 18) throw new GenesisError('params.decimals must be ≤ 18');
  if (params.maxMemoBytes > 1024) throw new GenesisError('params.maxMemoBytes must be ≤ 1024');
  if (!/^[A-Z][A-Z0-9]{0,11}$/.test(params.symbol)) throw new GenesisError('params.symbol must be 1-12 upper-case letters/digits');
  const g: Omit<Genesis, 'configHash'> = { chainId: j.chainId, genesisTime: j.genesisTime, slotMs: j.slotMs, validators, alloc, params, totalSupply };
  return { ...g, configHash: sha256(encodeGenesisConfig(g)) };
}

function decodeAddressOr(a: unknown, what: string): Uint8Array {
  try {
    return decodeAddress(a as string);
  } catch (e) {
    throw new GenesisError(`${what}: ${(e as Error).message}`);
  }
}

/** Canonical encoding hashed into the genesis block (see docs/protocol.md, "Genesis"). */
export function encodeGenesisConfig(g: Omit<Genesis, 'configHash'>): Uint8Array {
  const p = g.params;
  return encodeCanonical([
    GENESIS_TAG, g.chainId, g.genesisTime, g.slotMs,
    g.validators,
    g.alloc.map((a) => [a.publicKey, a.amount]),
    [p.minFee, p.maxBlockTxs, p.maxBlockBytes, p.maxMemoBytes, p.maxClockDriftMs, p.decimals, p.symbol],
  ]);
}

export function genesisToJson(g: Genesis): GenesisJson {
  const p = g.params;
  return {
    chainId: g.chainId, genesisTime: g.genesisTime, slotMs: g.slotMs,
    validators: g.validators.map(encodeAddress),
    alloc: g.alloc.map((a) => ({ address: encodeAddress(a.publicKey), amount: a.amount.toString() })),
    params: {
      minFee: p.minFee.toString(), maxBlockTxs: p.maxBlockTxs, maxBlockBytes: p.maxBlockBytes, maxMemoBytes: p.maxMemoBytes,
      maxClockDriftMs: p.maxClockDriftMs, decimals: p.decimals, symbol: p.symbol,
    },
  };
}
