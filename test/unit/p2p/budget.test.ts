/**
 * Bounded work per peer and in total (issue #17, item 4), on in-process networks:
 *   - a new peer's transactions are admitted in small batches that grow with its good record: a peer that
 *     sends a message of 1,024 invalid signatures costs the node at most the first batch of strict checks
 *     before it is banned; an honest peer ramps up to whole messages;
 *   - new inbound sessions are rate-limited per IP and in total, before any handshake work.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Chain } from '../../../src/chain/chain.js';
import { InlineVerifier, type VerifyItem, type VerifyOptions } from '../../../src/crypto/ed25519.js';
import { decodeTx, type Tx } from '../../../src/ledger/tx.js';
import { MSG } from '../../../src/p2p/messages.js';
import { openMemory } from '../../../src/storage/kv.js';
import { ManualClock } from '../../../src/util/clock.js';
import { GENESIS_TIME, makeGenesis, testKey, testKeys, transfer } from '../../helpers/fixtures.js';
import { MemNet, RawPeer, startMemNode, until } from '../../helpers/memnet.js';

const validators = testKeys('budget-validator', 1);
const senders = testKeys('budget-sender', 40);
const genesis = makeGenesis({ validators, alloc: senders.map((s) => [s, 10n ** 12n]) });

/** `n` transfers, valid or with a flipped signature bit. */
function txs(n: number, forged: boolean, nonceBase = 0): Tx[] {
  return Array.from({ length: n }, (_, i) => {
    const t = transfer(senders[i % senders.length]!, validators[0]!, 1n + BigInt(i), BigInt(nonceBase + Math.floor(i / senders.length)));
    return forged ? decodeTx(Uint8Array.from(t.bytes, (b, j) => (j === t.bytes.length - 1 ? b ^ 1 : b))) : t;
  });
}

async function countingNode(net: MemNet, name: string) {
  const checked = { strict: 0, consensus: 0 };
  const inner = new InlineVerifier();
  const verifier = {
    verifyBatch: (items: VerifyItem[], opts?: VerifyOptions) => {
      if (opts?.strict) checked.strict += items.length;
      else checked.consensus += items.length;
      return inner.verifyBatch(items, opts);
    },
    close: () => inner.close(),
  };
  const db = await openMemory();
  const chain = await Chain.open({ db, genesis, clock: new ManualClock(GENESIS_TIME + 1_000_000_000), verifier });
  const node = await startMemNode(net, genesis, testKey(name), { chain, db });
  return { node, checked };
}

test('a new peer sending 1,024 invalid signatures costs at most its first batch of strict checks, then is banned', async () => {
  const net = new MemNet();
  const { node, checked } = await countingNode(net, 'budget-node');
  try {
    const attacker = await RawPeer.join(net, node.url, testKey('budget-attacker'), node.chain);
    attacker.send({ type: MSG.TXS, txs: txs(1024, true).map((t) => t.bytes) });
    await until(() => attacker.closed !== undefined, 5000, 'the attacker is disconnected');
    assert.equal(attacker.closed![0], 4007);
    assert.ok(node.network.bans().some((b) => b.reason.includes('invalid_tx')), 'and banned');
    assert.ok(checked.strict <= 16, `strict checks spent on it: ${checked.strict}`);
    assert.equal(checked.consensus, 0, 'no consensus (slow) check for a peer\'s transactions');
    assert.equal(node.mempool.size, 0);
  } finally {
    await node.stop();
  }
});

test('an honest peer\'s batches grow with its record: all 1,200 of its transactions are admitted', async () => {
  const net = new MemNet();
  const { node } = await countingNode(net, 'budget-node-2');
  try {
    const honest = await RawPeer.join(net, node.url, testKey('budget-honest'), node.chain);
    const all = txs(1200, false);
    honest.send({ type: MSG.TXS, txs: all.slice(0, 1000).map((t) => t.bytes) });
    honest.send({ type: MSG.TXS, txs: all.slice(1000).map((t) => t.bytes) });
    await until(() => node.mempool.size === 1200, 10_000, 'every transaction admitted');
    assert.equal(honest.closed, undefined);
    assert.ok(!node.logs.some((e) => e.msg === 'peer penalized'), 'no penalty');
  } finally {
    await node.stop();
  }
});

test('new sessions are rate-limited per IP before any handshake work, with a burst of twice the rate', async () => {
  const net = new MemNet();
  const node = await startMemNode(net, genesis, testKey('budget-node-3'), { limits: { newSessionsPerIpPerSec: 2, newSessionsPerSec: 100, maxPendingPerIp: 100 } });
  try {
    // memnet dials all come from 127.0.0.1: the burst (4) is admitted, the rest refused at once (4006).
    const outcomes = await Promise.allSettled(Array.from({ length: 7 }, (_, i) => RawPeer.join(net, node.url, testKey('budget-joiner', i), node.chain)));
    const admitted = outcomes.filter((o) => o.status === 'fulfilled').length;
    assert.equal(admitted, 4, `admitted ${admitted} of 7`);
    const connected = node.logs.filter((e) => e.msg === 'peer connected').length;
    assert.equal(connected, 4, 'exactly the admitted ones became peers');
  } finally {
    await node.stop();
  }
});
