/**
 * Sync (src/p2p/sync.ts, sync-reactor.ts) on in-process networks (test/helpers/memnet.ts): a syncing node
 * downloads from several peers, and does not re-broadcast the history it downloads (block-reactor.ts),
 * while a gossiped tip block is still relayed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHex } from '../../../src/encoding/bytes.js';
import type { Tx } from '../../../src/ledger/tx.js';
import { MSG } from '../../../src/p2p/messages.js';
import { decodeHeader } from '../../../src/ledger/block.js';
import { buildBlock, extend, makeGenesis, testKey, testKeys, transfer } from '../../helpers/fixtures.js';
import { MemNet, RawPeer, startMemNode, until, type MemNode } from '../../helpers/memnet.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const validators = testKeys('p2p-validator', 2);
const senders = testKeys('p2p-sender', 20);
const genesis = makeGenesis({ validators, alloc: senders.map((s) => [s, 10n ** 12n]) });

/** `n` valid transfers: up to 30 nonces per sender (within the mempool's per-sender limit). */
function validTxs(n: number): Tx[] {
  return Array.from({ length: n }, (_, i) => transfer(senders[i % senders.length]!, testKey('p2p-recipient', i % 7), 1000n, BigInt(Math.floor(i / senders.length))));
}

test('sync: a fresh node downloads from several peers and does not relay the history it downloads; gossiped tips are relayed', async () => {
  const net = new MemNet();
  const servers: MemNode[] = [];
  let fresh: MemNode | undefined;
  try {
    const BLOCKS = 160;
    const first = await startMemNode(net, genesis, testKey('p2p-server', 0));
    servers.push(first);
    const txs = validTxs(200);
    const blocks = await extend(first.chain, validators, BLOCKS, (i) => (i < 40 ? txs.slice(i * 5, i * 5 + 5) : []));
    for (let s = 1; s < 3; s++) {
      const n = await startMemNode(net, genesis, testKey('p2p-server', s));
      for (const b of blocks) await n.chain.addBlock(b);
      servers.push(n);
    }
    // Serving a block takes a moment (as reading it from disk and sending it does), so the download lasts long
    // enough for the order in which peers become ready to matter.
    for (const s of servers) {
      const getBlockBytes = s.chain.getBlockBytes.bind(s.chain);
      s.chain.getBlockBytes = async (hashes) => { await sleep(2 * hashes.length); return getBlockBytes(hashes); };
    }
    fresh = await startMemNode(net, genesis, testKey('p2p-fresh'));
    // A neighbour at genesis that is connected to the fresh node only: what the fresh node relays reaches it.
    const neighbour = await RawPeer.join(net, fresh.url, testKey('p2p-neighbour'), fresh.chain);
    // The first server is ready before the others (as when peers finish their handshakes a few ms apart): the
    // round starts with one peer, and the others must still get a share of the download.
    fresh.network.connect(servers[0]!.url);
    const f = fresh;
    await until(() => f.network.readyPeers().length === 2, 10_000, 'first server connected');
    await sleep(20);
    for (const s of servers.slice(1)) fresh.network.connect(s.url);
    await until(() => f.chain.head.height === BLOCKS, 60_000, `fresh node at height ${BLOCKS}`);
    assert.equal(f.chain.head.hashHex, first.chain.head.hashHex);

    const rounds = f.logs.filter((e) => e.msg === 'sync round done');
    const sources: Record<string, number> = {};
    for (const r of rounds) for (const [k, v] of Object.entries(r.sources as Record<string, number>)) sources[k] = (sources[k] ?? 0) + v;
    assert.ok(Object.keys(sources).length >= 2, `blocks came from several peers: ${JSON.stringify(sources)}`);

    await sleep(200);
    const relayed = () => neighbour.count(MSG.INV_BLOCK) + neighbour.count(MSG.BLOCK) + neighbour.count(MSG.CMPCT_BLOCK);
    assert.ok(relayed() <= 3, `the fresh node relayed ${relayed()} of the ${BLOCKS} blocks it synced (only the tip may be)`);

    // A new block gossiped at the tip is relayed to the neighbour.
    const before = relayed();
    const tip = await buildBlock(first.chain, validators, first.chain.head.slot + 1);
    await first.chain.addBlock(tip);
    first.network.relayBlock(tip);
    await until(() => f.chain.head.hashHex === tip.header.hashHex, 10_000, 'the fresh node has the new tip');
    await until(() => relayed() > before, 10_000, 'the new tip is relayed to the neighbour');
    const got = neighbour.received.filter((m) => m.type === MSG.INV_BLOCK || m.type === MSG.BLOCK || m.type === MSG.CMPCT_BLOCK).at(-1)!;
    const hash = got.type === MSG.INV_BLOCK ? toHex(got.hash) : got.type === MSG.CMPCT_BLOCK ? decodeHeader(got.header).hashHex : undefined;
    if (hash) assert.equal(hash, tip.header.hashHex);
  } finally {
    await fresh?.stop();
    for (const s of servers) await s.stop();
  }
});
