/**
 * The Noise XX session (src/p2p/noise.ts) over in-memory pipes whose wire a test can watch and alter: it
 * authenticates both node ids, binds them to fresh keys, and ends the session, blaming nobody, when a frame
 * is injected, altered, replayed or reordered. Relayed and replayed handshakes fail.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { bytesEqual } from '../../../src/encoding/bytes.js';
import { newKeyPair } from '../../../src/crypto/keyfile.js';
import { secureSession, sessionIdentity, SessionError, type Hello, type Session, type SessionIdentity } from '../../../src/p2p/noise.js';
import { CLOSE, type Conn } from '../../../src/p2p/transport.js';
import { systemClock, ManualClock } from '../../../src/util/clock.js';
import { systemRandom } from '../../../src/util/random.js';

/** One end of an in-memory pipe; `wire` sees (and may replace or drop) every frame this end sends. */
class Pipe implements Conn {
  other!: Pipe;
  closed: [number, string] | undefined;
  sent: Uint8Array[] = [];
  wire: (f: Uint8Array) => Uint8Array | null = (f) => f;
  #onMessage: ((f: Uint8Array) => void) | undefined;
  #onClose: ((c: number, r: string) => void) | undefined;
  #inbox: Uint8Array[] = [];
  constructor(readonly remote: string, readonly inbound: boolean) {}
  get bufferedAmount(): number { return 0; }
  send(frame: Uint8Array): void {
    if (this.closed) return;
    this.sent.push(frame.slice());
    const f = this.wire(frame.slice());
    if (f) this.other.deliver(f);
  }
  /** Put a frame on the wire towards the other end as if this end had sent it (an attacker on the path). */
  inject(frame: Uint8Array): void { this.other.deliver(frame); }
  deliver(f: Uint8Array): void {
    setImmediate(() => {
      if (this.closed) return;
      if (this.#onMessage) this.#onMessage(f);
      else this.#inbox.push(f);
    });
  }
  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = [code, reason];
    this.#onClose?.(code, reason);
    setImmediate(() => this.other.close(code, reason));
  }
  onMessage(fn: (f: Uint8Array) => void): void { this.#onMessage = fn; for (const f of this.#inbox.splice(0)) fn(f); }
  onClose(fn: (c: number, r: string) => void): void { this.#onClose = fn; if (this.closed) fn(...this.closed); }
  pause(): void {}
  resume(): void {}
}

function pipe(): [Pipe, Pipe] {
  const a = new Pipe('b', false), b = new Pipe('a', true);
  a.other = b;
  b.other = a;
  return [a, b];
}

const GENESIS = randomBytes(32);
const hello = (chainId = 'testnet'): Hello => ({ version: 2, chainId, genesisHash: GENESIS, listen: 'ws://127.0.0.1:1', headHeight: 7, headHash: new Uint8Array(32).fill(7) });
const node = () => { const key = newKeyPair(); return { key, id: sessionIdentity(key, systemRandom) }; };
const sameNetwork = (r: Hello) => {
  if (r.chainId !== 'testnet') throw new SessionError('wrong_network', `wrong network ${r.chainId}`, CLOSE.wrongNetwork);
};

function run(conn: Conn, initiator: boolean, id: SessionIdentity, opts: { chainId?: string; timeoutMs?: number; clock?: ManualClock } = {}): Promise<Session> {
  return secureSession(conn, { initiator, identity: id, hello: () => hello(opts.chainId), accept: sameNetwork, random: systemRandom, clock: opts.clock ?? systemClock, timeoutMs: opts.timeoutMs ?? 5000 });
}

const nextFrame = (c: Conn): Promise<Uint8Array> => new Promise((r) => c.onMessage(r));

test('both sides prove their node ids, agree on the handshake hash, and exchange sealed frames both ways', async () => {
  const [a, b] = pipe();
  const A = node(), B = node();
  const [sa, sb] = await Promise.all([run(a, true, A.id), run(b, false, B.id)]);
  assert.ok(bytesEqual(sa.nodeId, B.key.publicKey) && bytesEqual(sb.nodeId, A.key.publicKey));
  assert.ok(bytesEqual(sa.handshakeHash, sb.handshakeHash));
  assert.equal(sa.remote.headHeight, 7);
  const big = randomBytes(4 * 1024 * 1024 + 17);
  const got = nextFrame(sb.conn);
  sa.conn.send(big);
  assert.ok(bytesEqual(await got, big));
  const back = nextFrame(sa.conn);
  sb.conn.send(Uint8Array.of(1, 2, 3));
  assert.deepEqual([...await back], [1, 2, 3]);
  // What travels is not the plaintext.
  assert.ok(!a.sent.some((f) => Buffer.from(f).includes(big.subarray(0, 64))));
});

test('two sessions of the same pair have different keys and handshake hashes (fresh ephemeral keys)', async () => {
  const A = node(), B = node();
  const [a1, b1] = pipe(), [a2, b2] = pipe();
  const [s1] = await Promise.all([run(a1, true, A.id), run(b1, false, B.id)]);
  const [s2] = await Promise.all([run(a2, true, A.id), run(b2, false, B.id)]);
  assert.ok(!bytesEqual(s1.handshakeHash, s2.handshakeHash));
});

test('an altered, injected, replayed or reordered frame ends the session as tampered, blaming nobody', async () => {
  for (const attack of ['alter', 'inject', 'replay', 'reorder'] as const) {
    const [a, b] = pipe();
    const [sa, sb] = await Promise.all([run(a, true, node().id), run(b, false, node().id)]);
    let tampered = false;
    sb.conn.onTampered = () => { tampered = true; };
    const received: number[] = [];
    sb.conn.onMessage((f) => received.push(f[0]!));
    const closed = new Promise<number>((r) => sb.conn.onClose((code) => r(code)));
    sa.conn.send(Uint8Array.of(1));
    await new Promise((r) => setImmediate(r));
    if (attack === 'alter') { a.wire = (f) => { f[0]! ^= 1; return f; }; sa.conn.send(Uint8Array.of(2)); }
    if (attack === 'inject') a.inject(randomBytes(40));
    if (attack === 'replay') a.inject(a.sent[a.sent.length - 1]!);
    if (attack === 'reorder') {
      const held: Uint8Array[] = [];
      a.wire = (f) => { held.push(f); return null; };
      sa.conn.send(Uint8Array.of(2));
      sa.conn.send(Uint8Array.of(3));
      a.inject(held[1]!);
      a.inject(held[0]!);
    }
    assert.equal(await closed, CLOSE.tampered, attack);
    assert.ok(tampered, attack);
    assert.deepEqual(received, [1], `${attack}: nothing after the attack was delivered`);
  }
});

test('a relay that presents another node\'s identity with its own session key is refused (bad_identity)', async () => {
  const victim = node(), relay = node(), B = node();
  // The relay copies the victim's node id and signature, but the signature covers the victim's static key.
  const forged: SessionIdentity = { nodeId: victim.key.publicKey, staticKey: relay.id.staticKey, staticSignature: victim.id.staticSignature };
  const [a, b] = pipe();
  const results = await Promise.allSettled([run(a, true, forged), run(b, false, B.id)]);
  const r = results[1];
  assert.equal(r.status, 'rejected');
  assert.equal(((r as PromiseRejectedResult).reason as SessionError).rule, 'bad_identity');
});

test('a relay that copies the victim\'s static public key and signature cannot finish without its secret', async () => {
  const victim = node(), B = node();
  const stolen: SessionIdentity = { ...victim.id, staticKey: { publicKey: victim.id.staticKey.publicKey, secretKey: Buffer.from(randomBytes(32)) } };
  const [a, b] = pipe();
  const results = await Promise.allSettled([run(a, true, stolen), run(b, false, B.id)]);
  assert.equal(results[1].status, 'rejected');
  assert.equal(((results[1] as PromiseRejectedResult).reason as SessionError).rule, 'handshake_failed');
});

test('a recorded handshake replayed to the listener later does not complete', async () => {
  const A = node(), B = node();
  const [a1, b1] = pipe();
  await Promise.all([run(a1, true, A.id), run(b1, false, B.id)]);
  const [msg1, msg3] = a1.sent; // the dialer's two handshake messages
  const [a2, b2] = pipe();
  const outcome = run(b2, false, B.id).then(() => 'completed', (e: unknown) => e);
  a2.inject(msg1!);
  await new Promise((r) => setTimeout(r, 20));
  a2.inject(msg3!);
  const e = await outcome;
  assert.ok(e instanceof SessionError && e.rule === 'handshake_failed', String(e));
});

test('wrong network, oversized handshake messages and silence end the handshake with their reason', async () => {
  {
    const [a, b] = pipe();
    // The dialer states its network last (third message), so the listener is the one that refuses.
    const r = await Promise.allSettled([run(a, true, node().id, { chainId: 'othernet' }), run(b, false, node().id)]);
    assert.equal(((r[1] as PromiseRejectedResult).reason as SessionError).rule, 'wrong_network');
    assert.equal(b.closed?.[0], CLOSE.wrongNetwork);
  }
  {
    const [a, b] = pipe();
    const pending = run(b, false, node().id);
    a.inject(randomBytes(3000));
    await assert.rejects(pending, (e: unknown) => e instanceof SessionError && e.rule === 'handshake_failed' && /3000 bytes/.test(e.message));
  }
  {
    const clock = new ManualClock(0);
    const [, b] = pipe();
    const pending = run(b, false, node().id, { clock, timeoutMs: 5000 });
    clock.advance(5000);
    await assert.rejects(pending, (e: unknown) => e instanceof SessionError && e.rule === 'timeout');
    assert.equal(b.closed?.[0], CLOSE.timeout);
  }
});
