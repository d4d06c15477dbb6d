/**
 * Prebuild a long, fully valid chain in-process (no waiting for real slots), to give late-joiner and sync
 * tests thousands of blocks in seconds.
 *
 *   const genesisTime = pastGenesisTime(3000, slotMs);          // slot 3000 + margin ends about now
 *   … write genesis.json with that genesisTime …
 *   const built = await buildChain({ datadir: seed, genesisFile, validators, blocks: 3000, sender: faucet, recipients });
 *   await copyDatadir(seed, node1Dir); await copyDatadir(seed, node2Dir); …
 *
 * Blocks are produced with the production assembler (`assembleBlock`) at consecutive slots 1…N, each by the
 * slot's scheduled proposer, and added with `Chain.addBlock` on LevelDB at `chainDbPath(datadir, genesis)`,
 * exactly the layout a node opens (node.ts: `<datadir>/chains/<chainId>-<hash>`; `nodekey.json` is created on the node's first
 * start, so copies of one prebuilt datadir still get distinct P2P identities). Every `txEvery`-th block
 * carries `txsPerBlock` transfers from `sender`, so blocks are not all empty and state roots change.
 *
 * The nodes started on copies keep producing at the CURRENT slot (the genesis time lies in the past, and
 * a block's slot only has to exceed its parent's), so the chain simply continues after a gap of empty slots.
 */
import { cp, mkdir } from 'node:fs/promises';
import { Chain } from '../../src/chain/chain.js';
import { bytesEqual, toHex } from '../../src/encoding/bytes.js';
import type { Genesis } from '../../src/ledger/genesis.js';
import { proposerFor } from '../../src/ledger/schedule.js';
import { signTx, type Tx } from '../../src/ledger/tx.js';
import { readGenesisFile } from '../../src/node/genesisfile.js';
import { assembleBlock } from '../../src/producer/producer.js';
import { openLevel } from '../../src/storage/kv.js';
import { chainDbPath } from '../../src/node/node.js';

export interface SigningKey { secretKey: Uint8Array; publicKey: Uint8Array }

export interface BuildChainOptions {
  /** The datadir to create. */
  datadir: string;
  /** genesis.json (or an already parsed Genesis). */
  genesis: string | Genesis;
  /** Secret keys of (at least) every validator in the genesis. */
  validators: SigningKey[];
  /** Number of blocks to build on top of the current head. */
  blocks: number;
  /** Funded account that signs the transfers; without it every block is empty. */
  sender?: SigningKey;
  /** Recipients (public keys) of the transfers, used in turn. */
  recipients?: Uint8Array[];
  /** Transfers per carrying block (default 2). */
  txsPerBlock?: number;
  /** Every how many blocks one carries transfers (default 1: every block). */
  txEvery?: number;
  /** Amount per transfer (default 1000). */
  amount?: bigint;
  /** Fee per transfer (default the genesis minimum fee). */
  fee?: bigint;
  /** Called every 500 blocks. */
  onProgress?: (height: number) => void;
}

export interface BuiltChain {
  datadir: string;
  genesis: Genesis;
  height: number;
  headHash: string;
  headSlot: number;
  stateRoot: string;
  /** Transfers included, and the sum received by each recipient (hex public key). */
  txCount: number;
  received: Map<string, bigint>;
  /** The sender's next nonce after the built chain. */
  senderNonce: bigint;
  ms: number;
}

/** A genesis time such that `blocks` consecutive slots, plus `marginSlots`, end about now. */
export function pastGenesisTime(blocks: number, slotMs: number, marginSlots = 50, now = Date.now()): number {
  return now - (blocks + marginSlots) * slotMs;
}

export async function buildChain(o: BuildChainOptions): Promise<BuiltChain> {
  const t0 = Date.now();
  const genesis = typeof o.genesis === 'string' ? await readGenesisFile(o.genesis) : o.genesis;
  const keyFor = (pk: Uint8Array): SigningKey => {
    const k = o.validators.find((v) => bytesEqual(v.publicKey, pk));
    if (!k) throw new Error(`buildChain: no secret key for validator ${toHex(pk)}`);
    return k;
  };
  for (const v of genesis.validators) keyFor(v);
  await mkdir(chainDbPath(o.datadir, genesis), { recursive: true });
  const db = await openLevel(chainDbPath(o.datadir, genesis));
  const chain = await Chain.open({ db, genesis });
  const received = new Map<string, bigint>();
  let txCount = 0;
  let nonce = 0n;
  try {
    if (o.sender) nonce = (await chain.getAccount(o.sender.publicKey)).nonce;
    const perBlock = o.txsPerBlock ?? 2;
    const every = Math.max(1, o.txEvery ?? 1);
    const amount = o.amount ?? 1000n;
    const fee = o.fee ?? genesis.params.minFee;
    const recipients = o.recipients?.length ? o.recipients : [];
    const nowSlot = Math.floor((Date.now() - genesis.genesisTime) / genesis.slotMs);
    if (chain.head.slot + o.blocks > nowSlot) {
      throw new Error(`buildChain: slot ${chain.head.slot + o.blocks} would lie in the future (current slot ${nowSlot}); use an earlier genesisTime (pastGenesisTime)`);
    }
    for (let i = 0; i < o.blocks; i++) {
      const slot = chain.head.slot + 1;
      const txs: Tx[] = [];
      if (o.sender && recipients.length && i % every === 0) {
        for (let k = 0; k < perBlock; k++) {
          const to = recipients[(txCount + k) % recipients.length]!;
          txs.push(signTx({ chainId: genesis.chainId, from: o.sender.publicKey, to, amount, fee, nonce: nonce + BigInt(k), memo: `prebuilt ${chain.head.height + 1}.${k}` }, o.sender.secretKey));
        }
      }
      const v = keyFor(proposerFor(genesis, slot));
      const block = await assembleBlock(chain, v.secretKey, v.publicKey, slot, txs);
      if (block.txs.length !== txs.length) throw new Error(`buildChain: block ${block.header.height} took ${block.txs.length} of ${txs.length} transfers (sender underfunded?)`);
      const r = await chain.addBlock(block);
      if (r.status !== 'connected') throw new Error(`buildChain: block ${block.header.height} was ${r.status}`);
      for (const tx of block.txs) {
        const k = toHex(tx.to);
        received.set(k, (received.get(k) ?? 0n) + tx.amount);
      }
      txCount += block.txs.length;
      nonce += BigInt(block.txs.length);
      if (o.onProgress && chain.head.height % 500 === 0) o.onProgress(chain.head.height);
    }
    const head = chain.head;
    return {
      datadir: o.datadir, genesis, height: head.height, headHash: head.hashHex, headSlot: head.slot,
      stateRoot: toHex(chain.stateRoot), txCount, received, senderNonce: nonce, ms: Date.now() - t0,
    };
  } finally {
    await chain.close();
    await db.close();
  }
}

/** Copy a (closed) datadir for another node: `fs.cp` recursive; the copy gets its own node key on first start. */
export async function copyDatadir(src: string, dst: string): Promise<void> {
  await cp(src, dst, { recursive: true, errorOnExist: true, force: false });
}
