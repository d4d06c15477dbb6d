/**
 * Inbound socket limits of the WebSocket transport, applied before any HTTP is parsed: half-open and stalled
 * connections are bounded per IP, in total and while upgrading, and time out; a well-behaved dial still
 * gets through during a flood from elsewhere. Real sockets on 127.0.0.0/8 (several loopback source addresses).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { WsTransport, type Conn } from '../../../src/p2p/transport.js';

/** A raw TCP connection that never speaks; resolves once connected, with a promise of its close. */
function silent(port: number, from: string): Promise<{ socket: net.Socket; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const socket = net.connect({ host: '127.0.0.1', port, localAddress: from });
    const closed = new Promise<number>((r) => socket.on('close', () => r(Date.now() - t0)));
    socket.on('error', () => {});
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}

/** Wait until `cond` holds (checked every 10 ms), failing after 2 s. */
async function until(cond: () => boolean): Promise<void> {
  for (const t0 = Date.now(); !cond(); await new Promise((r) => setTimeout(r, 10))) if (Date.now() - t0 > 2000) assert.fail('condition not reached in 2 s');
}

const isOpen = (s: net.Socket) => new Promise<boolean>((r) => setTimeout(() => r(!s.destroyed && s.readyState === 'open'), 100));

async function listen(sockets: ConstructorParameters<typeof WsTransport>[0]['sockets']) {
  const t = new WsTransport({ maxPayload: 1 << 20, keepaliveMs: 60_000, sockets });
  const conns: Conn[] = [];
  const { port } = await t.listen('127.0.0.1', 0, (c) => conns.push(c));
  return { t, port, conns };
}

test('per IP: sockets beyond the limit from one address are closed at once; another address is served', async () => {
  const { t, port } = await listen({ maxPerIp: 3, maxTotal: 100, maxUpgrading: 100, upgradeTimeoutMs: 10_000 });
  try {
    const held = await Promise.all([1, 2, 3].map(() => silent(port, '127.0.0.2')));
    for (const h of held) assert.ok(await isOpen(h.socket));
    const extra = await silent(port, '127.0.0.2');
    assert.ok((await extra.closed) < 1000, 'the 4th socket from one IP is closed at accept');
    assert.ok(await isOpen((await silent(port, '127.0.0.3')).socket), 'another IP is still accepted');
    assert.equal(t.refused.perIp, 1);
  } finally {
    await t.close();
  }
});

test('upgrading: stalled upgrades are bounded in total and time out; a real dial gets through meanwhile', async () => {
  const { t, port, conns } = await listen({ maxPerIp: 100, maxTotal: 100, maxUpgrading: 4, upgradeTimeoutMs: 400 });
  const dialer = new WsTransport({ maxPayload: 1 << 20, keepaliveMs: 60_000 });
  try {
    const stalled = await Promise.all([1, 2, 3, 4].map((i) => silent(port, `127.0.0.${10 + i}`)));
    const fifth = await silent(port, '127.0.0.20');
    assert.ok((await fifth.closed) < 300, 'a 5th socket still upgrading is refused at accept');
    const times = await Promise.all(stalled.map((s) => s.closed));
    assert.ok(times.every((ms) => ms >= 350 && ms < 3000), `stalled sockets time out after the upgrade timeout: ${times}`);
    assert.equal(t.refused.timeout, 4);
    await until(() => t.inboundSockets.open === 0);
    assert.deepEqual(t.inboundSockets, { open: 0, upgrading: 0 });
    // Upgraded connections no longer count as upgrading: more than 4 real peers connect.
    const peers = await Promise.all([1, 2, 3, 4, 5, 6].map(() => dialer.dial(`ws://127.0.0.1:${port}`, 2000)));
    await until(() => conns.length === 6);
    assert.deepEqual(t.inboundSockets, { open: 6, upgrading: 0 });
    for (const p of peers) p.close(1000, 'done');
  } finally {
    await dialer.close();
    await t.close();
  }
});

test('total: beyond the total, new sockets are closed whatever their address', async () => {
  const { t, port } = await listen({ maxPerIp: 100, maxTotal: 5, maxUpgrading: 100, upgradeTimeoutMs: 10_000 });
  try {
    await Promise.all([1, 2, 3, 4, 5].map((i) => silent(port, `127.0.0.${30 + i}`)));
    const extra = await silent(port, '127.0.0.40');
    assert.ok((await extra.closed) < 1000);
    assert.equal(t.refused.total, 1);
  } finally {
    await t.close();
  }
});
