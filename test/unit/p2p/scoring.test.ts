/**
 * Scoring and bans (src/p2p/scoring.ts): penalties add up to a ban at the threshold (an authenticated
 * identity only), bans persist in keyspace 'B' and are reloaded, expire, and can be lifted; scores are
 * slowly forgiven.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHex } from '../../../src/encoding/bytes.js';
import type { NetEvents } from '../../../src/p2p/events.js';
import { DEFAULT_PEER_LIMITS, Peer } from '../../../src/p2p/peer.js';
import { PENALTY, Scoring } from '../../../src/p2p/scoring.js';
import { layout } from '../../../src/storage/layout.js';
import { openMemory, type KV } from '../../../src/storage/kv.js';
import { ManualClock } from '../../../src/util/clock.js';
import { silentLogger } from '../../../src/util/log.js';
import { testKey } from '../../helpers/fixtures.js';
import { MemConn } from '../../helpers/memnet.js';

const SELF = toHex(testKey('scoring-self').publicKey);
const LIMITS = { banThreshold: -100, banMs: 60_000 };

interface Setup {
  scoring: Scoring;
  clock: ManualClock;
  disconnected: { id: string; code: number }[];
  events: { event: string; payload: unknown }[];
  connected: Map<string, Peer>;
}

function setup(db: KV, clock = new ManualClock(1_000_000)): Setup {
  const disconnected: Setup['disconnected'] = [];
  const events: Setup['events'] = [];
  const connected = new Map<string, Peer>();
  const emit = (<K extends keyof NetEvents & string>(event: K, ...a: Parameters<NetEvents[K]>) => { events.push({ event, payload: a[0] }); });
  const scoring = new Scoring({
    db, clock, log: silentLogger, emit, nodeIdHex: SELF, limits: LIMITS,
    disconnect: (p, code) => { disconnected.push({ id: p.nodeIdHex, code }); p.markClosed(); },
    peerById: (id) => connected.get(id),
  });
  return { scoring, clock, disconnected, events, connected };
}

/** A peer as the session leaves it: claimed node id, authenticated or not. */
function peer(label: string, clock: ManualClock, authenticated = true): Peer {
  const a = new MemConn('x', true);
  const b = new MemConn('y', false);
  a.other = b;
  b.other = a;
  const p = new Peer(a, clock, DEFAULT_PEER_LIMITS);
  p.nodeIdHex = toHex(testKey(label).publicKey);
  p.authenticated = authenticated;
  return p;
}

async function storedBans(db: KV): Promise<string[]> {
  const out: string[] = [];
  for await (const [k] of db.iterator(layout.range(layout.prefix('B')))) out.push(toHex(k.subarray(1)));
  return out;
}

const settle = () => new Promise((r) => setImmediate(r));

test('penalties add up; at the threshold the peer is disconnected (4007) and its node id banned (4005 for any other connection of it)', async () => {
  const db = await openMemory();
  const s = setup(db);
  const p = peer('scoring-offender', s.clock);
  s.scoring.penalize(p, 'invalid_block', 'bad block 1');
  assert.equal(p.score, -PENALTY.invalid_block!);
  assert.deepEqual(s.disconnected, [], 'one offence: below the threshold');
  assert.ok(!s.scoring.isBanned(p.nodeIdHex));
  s.connected.set(p.nodeIdHex, peer('scoring-offender', s.clock)); // a second connection of the same node
  s.scoring.penalize(p, 'invalid_block', 'bad block 2');
  assert.equal(p.score, -120);
  assert.deepEqual(s.disconnected, [{ id: p.nodeIdHex, code: 4007 }, { id: p.nodeIdHex, code: 4005 }]);
  assert.ok(s.scoring.isBanned(p.nodeIdHex));
  assert.deepEqual(s.events.map((e) => e.event), ['peer:penalized', 'peer:penalized', 'peer:banned']);
  assert.deepEqual(s.events[2]!.payload, { nodeId: p.nodeIdHex, reason: 'invalid_block: bad block 2', until: 1_000_000 + LIMITS.banMs });
  assert.equal(s.scoring.issued, 1);
  // A verdict arriving after the disconnect still counts, without a second ban.
  s.scoring.penalize(p, 'invalid_tx', 'late verdict');
  assert.equal(p.score, -140);
  assert.equal(s.scoring.issued, 1);
  await settle();
  assert.deepEqual(await storedBans(db), [p.nodeIdHex]);
});

test('an identity the session did not authenticate is disconnected at the threshold but not banned', () => {
  const s = setup(null as unknown as KV);
  const p = peer('scoring-impostor', s.clock, false);
  s.scoring.penalize(p, 'bad_auth', 'signature does not prove the node id');
  assert.deepEqual(s.disconnected, [{ id: p.nodeIdHex, code: 4007 }]);
  assert.ok(!s.scoring.isBanned(p.nodeIdHex));
  assert.equal(s.scoring.issued, 0);
});

test('a ban persists: a new Scoring on the same store has it after load, until it expires', async () => {
  const db = await openMemory();
  const s = setup(db);
  const id = toHex(testKey('scoring-banned').publicKey);
  s.scoring.ban(id, 'banned by operator', 10_000);
  s.scoring.ban(SELF, 'never ourselves');
  await settle();
  assert.deepEqual(await storedBans(db), [id], 'our own id is never banned');

  const again = setup(db, new ManualClock(1_000_000 + 5_000));
  await again.scoring.load(again.clock.now());
  assert.deepEqual(again.scoring.bans(), [{ nodeId: id, until: 1_010_000, reason: 'banned by operator' }]);
  assert.ok(again.scoring.isBanned(id));

  // Expiry: from `until` on the ban is lifted, and its record deleted.
  again.clock.advance(5_000);
  assert.ok(!again.scoring.isBanned(id));
  assert.deepEqual(again.scoring.bans(), []);
  await settle();
  assert.deepEqual(await storedBans(db), []);

  // A store holding an expired ban: load skips it.
  s.scoring.ban(id, 'short', 1);
  await settle();
  const later = setup(db, new ManualClock(1_000_000 + 2));
  await later.scoring.load(later.clock.now());
  assert.deepEqual(later.scoring.bans(), []);
});

test('unban lifts a ban now and deletes its record', async () => {
  const db = await openMemory();
  const s = setup(db);
  const id = toHex(testKey('scoring-forgiven').publicKey);
  s.scoring.ban(id, 'mistake');
  assert.equal(s.scoring.unban(id), true);
  assert.equal(s.scoring.unban(id), false, 'nothing left to lift');
  assert.ok(!s.scoring.isBanned(id));
  await settle();
  assert.deepEqual(await storedBans(db), []);
});

test('forgiveness: a point back per round for a peer below zero, never above zero', () => {
  const s = setup(null as unknown as KV);
  const a = peer('scoring-a', s.clock);
  const b = peer('scoring-b', s.clock);
  s.scoring.penalize(a, 'rate_limited', 'burst');
  assert.equal(a.score, -2);
  s.scoring.forgive([a, b]);
  assert.deepEqual([a.score, b.score], [-1, 0]);
  s.scoring.forgive([a, b]);
  s.scoring.forgive([a, b]);
  assert.deepEqual([a.score, b.score], [0, 0]);
});
