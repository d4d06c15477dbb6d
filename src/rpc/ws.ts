/**
 * JSON-RPC over WebSocket on the same port as HTTP: each text message is one JSON-RPC message (single or
 * batch), answered on the same connection; subscription notifications are pushed on it. A client that
 * reads too slowly (more than `maxBufferedBytes` queued) is disconnected rather than buffered without bound.
 * A browser's upgrade is refused (403) unless its Origin is allowed (RpcHttpServer.allowsOrigin).
 */
import { WebSocketServer, WebSocket } from 'ws';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { RpcDispatcher, RpcHttpServer, RpcLog } from './server.js';
import type { Subscriptions } from './subscriptions.js';

export interface RpcWsOptions {
  maxMessageBytes: number;
  maxBufferedBytes?: number;
  log: RpcLog;
}

export function attachWebSocket(http: RpcHttpServer, dispatcher: RpcDispatcher, subs: Subscriptions, o: RpcWsOptions): WebSocketServer {
  const wss = new WebSocketServer({ noServer: true, maxPayload: o.maxMessageBytes, perMessageDeflate: false });
  const maxBuffered = o.maxBufferedBytes ?? 8 * 1024 * 1024;
  http.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/') {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    if (!http.allowsOrigin(req)) {
      o.log('debug', 'websocket upgrade refused: origin not allowed', { origin: req.headers.origin, remote: req.socket.remoteAddress });
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, req));
  });

  function onConnection(ws: WebSocket, req: IncomingMessage): void {
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`;
    const admin = http.isAdmin(req);
    const send = (text: string) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      if (ws.bufferedAmount > maxBuffered) {
        o.log('warn', 'websocket client too slow; disconnecting', { remote });
        ws.close(1008, 'client reads too slowly');
        return;
      }
      ws.send(text);
    };
    const session = subs.newSession(send);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const text = isBinary ? '' : data.toString('utf8');
      void dispatcher.handle(text, { transport: 'ws', remote, admin, session }).then((out) => { if (out !== undefined) send(out); });
    });
    ws.on('close', () => subs.endSession(session));
    ws.on('error', () => { /* surfaced through close */ });
  }
  return wss;
}
