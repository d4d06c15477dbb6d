/**
 * Cut a TCP connection the way a broken network would: RST, so the far end sees it die at once.
 *
 * Not while a shutdown may be pending (end() was called): Node 20's resetAndDestroy then asks libuv for a
 * close-reset, which libuv refuses with EINVAL while the shutdown request is in flight, and the handle is
 * never closed. The process then spins at 100 % CPU on exit, in Environment cleanup, waiting for that
 * handle (seen as a p2p e2e test process that passed and never exited; reproduced by end() then
 * resetAndDestroy() on the next tick, see test/unit/harness/sockreset.test.ts). Such a socket is destroyed
 * plainly (FIN), which is also what it was already sending.
 */
import type net from 'node:net';

export function resetSocket(s: net.Socket): void {
  if (s.destroyed) return;
  try {
    if (s.writableEnded || s.connecting) s.destroy();
    else s.resetAndDestroy();
  } catch {
    s.destroy();
  }
}
