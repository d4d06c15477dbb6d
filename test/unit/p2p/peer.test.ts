/** Peer (src/p2p/peer.ts): request/response matching, late and unrequested answers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MSG, type Message } from '../../../src/p2p/messages.js';
import { DEFAULT_PEER_LIMITS, Peer } from '../../../src/p2p/peer.js';
import { systemClock } from '../../../src/util/clock.js';
import { MemConn } from '../../helpers/memnet.js';

test('a late answer to a timed-out request is dropped without penalty; an unrequested one is not', async () => {
  const a = new MemConn('x', false);
  const b = new MemConn('y', true);
  a.other = b;
  b.other = a;
  const peer = new Peer(a, systemClock, DEFAULT_PEER_LIMITS);
  const req = peer.request((reqId) => ({ type: MSG.GET_BLOCKS, reqId, hashes: [] }), MSG.BLOCKS, 10);
  await assert.rejects(req, /timed out/);
  const late: Message = { type: MSG.BLOCKS, reqId: 1, blocks: [] };
  assert.equal(peer.resolve(1, late), 'late');
  assert.equal(peer.resolve(1, late), 'unrequested', 'a second answer to the same request');
  assert.equal(peer.resolve(77, { type: MSG.BLOCKS, reqId: 77, blocks: [] }), 'unrequested');
  const ok = peer.request((reqId) => ({ type: MSG.GET_BLOCKS, reqId, hashes: [] }), MSG.BLOCKS, 5000);
  assert.equal(peer.resolve(2, { type: MSG.HASHES, reqId: 2, forkHeight: 0, hashes: [] }), 'unrequested', 'wrong response type');
  assert.equal(peer.resolve(2, { type: MSG.BLOCKS, reqId: 2, blocks: [] }), 'ok');
  await ok;
  peer.markClosed();
});
