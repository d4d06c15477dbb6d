/** Reading, writing and building genesis.json; what is read is validated by schemas/genesis.schema.json and then semantically. */
import { promises as fs } from 'node:fs';
import { DEFAULT_PARAMS, genesisFromJson, GenesisError, type Genesis, type GenesisJson } from '../ledger/genesis.js';
import { validatorFor } from '../util/schemas.js';
import { writeFileKeepingOld } from '../util/files.js';

export async function readGenesisFile(path: string): Promise<Genesis> {
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch (e) {
    throw new GenesisError(`cannot read genesis file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new GenesisError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  return parseGenesisJson(j, path);
}

export function parseGenesisJson(j: unknown, what = 'genesis'): Genesis {
  const validate = validatorFor('genesis.schema.json');
  if (!validate(j)) {
    const e = validate.errors?.[0];
    throw new GenesisError(`${what} does not match schemas/genesis.schema.json: ${e?.instancePath || '/'} ${e?.message ?? ''}`.trim());
  }
  return genesisFromJson(j as GenesisJson);
}

/** Write genesis.json; an existing file at `path` is kept as a .bak. Returns the backup's path, if any. */
export async function writeGenesisFile(path: string, j: GenesisJson): Promise<string | undefined> {
  try {
    return await writeFileKeepingOld(path, JSON.stringify(j, null, 2) + '\n', 0o644);
  } catch (e) {
    throw new GenesisError(`cannot write ${path}: ${(e as Error).message}`);
  }
}

/** A genesis document from the CLI's flags (genesis, devnet); the limits not settable there are the defaults. */
export function buildGenesisJson(o: {
  chainId: string; genesisTime: number; slotMs: number; validators: string[]; alloc: { address: string; amount: string }[];
  minFee: string; decimals: number; symbol: string;
}): GenesisJson {
  const p = DEFAULT_PARAMS;
  return {
    chainId: o.chainId, genesisTime: o.genesisTime, slotMs: o.slotMs, validators: o.validators, alloc: o.alloc,
    params: {
      minFee: o.minFee, maxBlockTxs: p.maxBlockTxs, maxBlockBytes: p.maxBlockBytes, maxMemoBytes: p.maxMemoBytes,
      maxClockDriftMs: p.maxClockDriftMs, decimals: o.decimals, symbol: o.symbol,
    },
  };
}
