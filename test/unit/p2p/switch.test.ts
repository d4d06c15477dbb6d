/**
 * The switch (src/p2p/switch.ts) with test reactors over in-memory pipes (test/helpers/memnet.ts):
 *   - dispatch: a message goes to the reactor that registered its type, with its frame size; a type nobody
 *     registered is refused as unknown_type, a frame over the limit its reactor declared as oversized;
 *   - a reactor's onPeerReady and onPeerGone run once per peer, also when the switch closes the connection
 *     and the transport's close event follows;
 *   - a type can be registered once; the production Network accepts exactly the codec's types and limits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromHex, toHex } from '../../../src/encoding/bytes.js';
import { AddrBook } from '../../../src/p2p/addrbook.js';
import type { NetEvents } from '../../../src/p2p/events.js';
import { SessionPolicy } from '../../../src/p2p/handshake.js';
import { secureSession, sessionIdentity, type SecureConn } from '../../../src/p2p/noise.js';
import { resolveLimits } from '../../../src/p2p/limits.js';
import { decodeMessage, encodeMessage, MSG, PROTOCOL_VERSION, sizeLimits, type Message } from '../../../src/p2p/messages.js';
import type { Peer } from '../../../src/p2p/peer.js';
import type { MessageSpec, Reactor } from '../../../src/p2p/reactor.js';
import { Scoring } from '../../../src/p2p/scoring.js';
import { Switch } from '../../../src/p2p/switch.js';
import { openMemory } from '../../../src/storage/kv.js';
import { systemClock } from '../../../src/util/clock.js';
import { silentLogger } from '../../../src/util/log.js';
import { systemRandom } from '../../../src/util/random.js';
import { makeGenesis, testKey, testKeys } from '../../helpers/fixtures.js';
import { MemNet, startMemNode, until, type MemConn } from '../../helpers/memnet.js';

const CHAIN_ID = 'switch-test';
const GENESIS_HASH = '11'.repeat(32);
const ALL = sizeLimits(1024 * 1024);

/** A reactor that records what it is given. */
class Recorder implements Reactor {
  readonly ready: Peer[] = [];
  readonly gone: Peer[] = [];
  readonly got: { type: number; frameBytes: number; from: string }[] = [];
  constructor(readonly name: string, readonly messages: readonly MessageSpec[]) {}
  onPeerReady(peer: Peer): void { this.ready.push(peer); }
  onPeerGone(peer: Peer): void { this.gone.push(peer); }
  onMessage(peer: Peer, m: Message, frameBytes: number): void { this.got.push({ type: m.type, frameBytes, from: peer.nodeIdHex }); }
}

interface Rig {
  sw: Switch;
  net: MemNet;
  url: string;
  events: { [K in keyof NetEvents]?: Parameters<NetEvents[K]>[0][] };
  stop(): Promise<void>;
}

/** A switch listening on a memnet, with the given reactors (no others: only their types are accepted). */
async function rig(reactors: Reactor[]): Promise<Rig> {
  const net = new MemNet();
  const db = await openMemory();
  const nodeKey = testKey('switch-node');
  const nodeIdHex = toHex(nodeKey.publicKey);
  const limits = resolveLimits({});
  const events: Rig['events'] = {};
  const emit = (<K extends keyof NetEvents & string>(e: K, ...a: Parameters<NetEvents[K]>) => {
    (events[e] ??= [] as never[]).push(a[0] as never);
  });
  const scoring: Scoring = new Scoring({
    db, clock: systemClock, log: silentLogger, emit, nodeIdHex, limits,
    disconnect: (p, code, reason) => sw.disconnect(p, code, reason), peerById: (id) => sw.peerById(id),
  });
  const sessions = new SessionPolicy({
    chainId: CHAIN_ID, genesisHash: GENESIS_HASH, identity: sessionIdentity(nodeKey, systemRandom), random: systemRandom, clock: systemClock,
    timeoutMs: 5000, head: () => ({ height: 0, hash: fromHex(GENESIS_HASH) }), listenUrl: (): string => sw.listenUrl, isBanned: (id) => scoring.isBanned(id),
  });
  const sw: Switch = new Switch({
    transport: net.transport(), clock: systemClock, random: systemRandom, log: silentLogger, emit, nodeIdHex, limits,
    addrBook: new AddrBook(db), scoring, sessions,
  });
  for (const r of reactors) sw.register(r);
  const a = await sw.listen('127.0.0.1', 0);
  sw.listenUrl = `ws://${a.host}:${a.port}`;
  return { sw, net, url: sw.listenUrl, events, stop: async () => { await sw.stop(); await db.close(); } };
}

/** A wire client that completes the session as `label`; frames it receives are decoded with every codec type. */
async function join(r: Rig, label: string): Promise<{ conn: SecureConn; id: string; received: Message[]; closed: () => [number, string] | undefined }> {
  const key = testKey(label);
  const raw: MemConn = await r.net.dial(r.url);
  const received: Message[] = [];
  let closed: [number, string] | undefined;
  const gh = fromHex(GENESIS_HASH);
  const s = await secureSession(raw, {
    initiator: true, identity: sessionIdentity(key, systemRandom), random: systemRandom, clock: systemClock, timeoutMs: 5000,
    hello: () => ({ version: PROTOCOL_VERSION, chainId: CHAIN_ID, genesisHash: gh, listen: '', headHeight: 0, headHash: gh }),
    accept: () => {},
  });
  s.conn.onMessage((f) => received.push(decodeMessage(f, ALL)));
  s.conn.onClose((code, reason) => { closed = [code, reason]; });
  const id = toHex(key.publicKey);
  await until(() => r.sw.readyPeers().some((p) => p.nodeIdHex === id), 5000, `${label} ready`);
  return { conn: s.conn, id, received, closed: () => closed };
}

const inv = (n: number): Message => ({ type: MSG.INV_TX, ids: Array.from({ length: n }, () => new Uint8Array(32)) });

test('dispatch: a registered type reaches its reactor with the frame size; a type nobody registered is unknown_type', async () => {
  const rec = new Recorder('inv', [{ type: MSG.INV_TX, maxBytes: ALL[MSG.INV_TX]! }]);
  const r = await rig([rec]);
  try {
    const c = await join(r, 'switch-peer-a');
    const frame = encodeMessage(inv(3));
    c.conn.send(frame);
    await until(() => rec.got.length === 1, 5000, 'INV_TX delivered');
    assert.deepEqual(rec.got, [{ type: MSG.INV_TX, frameBytes: frame.length, from: c.id }]);
    // GET_TX is a valid codec message, but no reactor here registered it.
    c.conn.send(encodeMessage({ type: MSG.GET_TX, ids: [new Uint8Array(32)] }));
    // Nor is type 99 one of the codec's.
    c.conn.send(new Uint8Array([0x91, 99]));
    await until(() => (r.events['peer:penalized'] ?? []).length === 2, 5000, 'two penalties');
    assert.deepEqual(r.events['peer:penalized']!.map((p) => p.rule), ['unknown_type', 'unknown_type']);
    assert.equal(rec.got.length, 1, 'nothing else was delivered');
  } finally {
    await r.stop();
  }
});

test('dispatch: a frame over the limit its reactor declared is refused as oversized', async () => {
  const rec = new Recorder('small-inv', [{ type: MSG.INV_TX, maxBytes: 200 }]);
  const r = await rig([rec]);
  try {
    const c = await join(r, 'switch-peer-b');
    const small = encodeMessage(inv(4)); // 3 + 4 × 34 bytes
    const big = encodeMessage(inv(6));
    assert.ok(small.length <= 200 && big.length > 200);
    c.conn.send(big);
    c.conn.send(small);
    await until(() => rec.got.length === 1, 5000, 'the small INV_TX delivered');
    assert.deepEqual(rec.got.map((g) => g.frameBytes), [small.length]);
    assert.deepEqual(r.events['peer:penalized']!.map((p) => p.rule), ['oversized']);
    assert.equal(r.sw.frameLimits()[MSG.INV_TX], 200, 'the declared limit is the one applied');
  } finally {
    await r.stop();
  }
});

test('a reactor with a lane gets its messages through the peer\'s inbound queue, in order', async () => {
  const order: number[] = [];
  let release!: () => void;
  const gate = new Promise<void>((res) => { release = res; });
  const slow: Reactor = {
    name: 'slow', messages: [{ type: MSG.INV_TX, maxBytes: ALL[MSG.INV_TX]!, lane: 'chain' }],
    onMessage: async (_p, m) => { if (m.type === MSG.INV_TX) { await gate; order.push(m.ids.length); } },
  };
  const r = await rig([slow]);
  try {
    const c = await join(r, 'switch-peer-c');
    for (let n = 1; n <= 3; n++) c.conn.send(encodeMessage(inv(n)));
    const peer = r.sw.readyPeers()[0]!;
    await until(() => r.sw.inboundBacklog(peer).queued === 3, 5000, 'three messages queued');
    release();
    await until(() => r.sw.inboundBacklog(peer).queued === 0, 5000, 'queue drained');
    assert.deepEqual(order, [1, 2, 3]);
  } finally {
    await r.stop();
  }
});

test('onPeerReady and onPeerGone run once per peer, in registration order; a peer closed by the switch is gone once', async () => {
  const calls: string[] = [];
  const a = new Recorder('a', [{ type: MSG.INV_TX, maxBytes: ALL[MSG.INV_TX]! }]);
  const b = new Recorder('b', [{ type: MSG.GET_TX, maxBytes: ALL[MSG.GET_TX]! }]);
  for (const rec of [a, b]) {
    const ready = rec.onPeerReady.bind(rec);
    const gone = rec.onPeerGone.bind(rec);
    rec.onPeerReady = (p) => { calls.push(`${rec.name} ready`); ready(p); };
    rec.onPeerGone = (p) => { calls.push(`${rec.name} gone`); gone(p); };
  }
  const r = await rig([a, b]);
  try {
    const one = await join(r, 'switch-peer-d');
    const two = await join(r, 'switch-peer-e');
    assert.deepEqual(calls, ['a ready', 'b ready', 'a ready', 'b ready']);
    assert.deepEqual(a.ready.map((p) => p.nodeIdHex), [one.id, two.id]);
    // Misbehaviour until the ban threshold: the switch closes the connection (4007) and the transport's own
    // close event follows; the peer is gone once.
    for (let i = 0; i < 4; i++) one.conn.send(new Uint8Array([0x91, 99]));
    await until(() => one.closed(), 5000, 'the misbehaving peer disconnected');
    assert.equal(one.closed()![0], 4007);
    // The other peer leaves by itself.
    two.conn.close(1000, 'bye');
    await until(() => b.gone.length === 2, 5000, 'both gone');
    await new Promise((res) => setTimeout(res, 50));
    assert.deepEqual(calls.slice(4), ['a gone', 'b gone', 'a gone', 'b gone']);
    assert.deepEqual(a.gone.map((p) => p.nodeIdHex), [one.id, two.id]);
    assert.deepEqual(r.events['peer:banned']!.map((e) => e.nodeId), [one.id]);
  } finally {
    await r.stop();
  }
});

test('a message type can be registered by one reactor only', async () => {
  const r = await rig([new Recorder('first', [{ type: MSG.INV_TX, maxBytes: 100 }])]);
  try {
    assert.throws(() => r.sw.register(new Recorder('second', [{ type: MSG.INV_TX, maxBytes: 100 }])), /already registered/);
  } finally {
    await r.stop();
  }
});

test('the production Network accepts exactly the codec\'s message types, each with the codec\'s frame limit', async () => {
  const genesis = makeGenesis({ validators: testKeys('switch-validator', 1) });
  const node = await startMemNode(new MemNet(), genesis, testKey('switch-full-node'));
  try {
    assert.deepEqual({ ...node.network.frameLimits() }, sizeLimits(genesis.params.maxBlockBytes));
  } finally {
    await node.stop();
  }
});
