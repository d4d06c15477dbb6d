/**
 * The block explorer's static files, served on the RPC port: GET /explorer (the page) and GET /explorer/<file>.
 *
 * The page (explorer/ at the package root: HTML, CSS, plain ES modules, no build step) talks to this node
 * only through the public JSON-RPC and WebSocket API, like any third-party tool would. Serving it:
 * - The files are read once, at start, from that one folder (no subfolders): the routes are exact paths for
 *   exactly those names, so no request path ever reaches the filesystem (`..`, encoded slashes and the
 *   like are simply unrouted: 404).
 * - Every answer carries a strict Content-Security-Policy: scripts, styles, images and connections from this
 *   origin only, no inline script or style, no plugins, no framing, no <base>, no form posts, and Trusted
 *   Types required for DOM sinks (an `innerHTML = string` throws), so a memo or any other text from the
 *   chain can only ever be shown as text; plus nosniff, no referrer and no framing.
 * - The page is same-origin with the JSON-RPC endpoint, which admits it when the page was loaded from an IP
 *   address or localhost (RpcHttpServer.allowsOrigin).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { RpcHttpServer } from './server.js';

/** Content types by extension; files of other kinds in the folder are not served. */
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
};

/** A file name the explorer may serve: lower-case letters, digits, dot, dash, underscore; no leading dot. */
const NAME = /^[a-z0-9][a-z0-9._-]*$/;

export const EXPLORER_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "object-src 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ');

export const EXPLORER_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': EXPLORER_CSP,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Cache-Control': 'no-cache',
};

export interface ExplorerFile { body: Buffer; type: string }

/** Read the servable files of `dir` (its direct children with a known extension and a plain name). */
export function loadExplorerFiles(dir: string): Map<string, ExplorerFile> {
  const files = new Map<string, ExplorerFile>();
  for (const name of readdirSync(dir).sort()) {
    const type = TYPES[extname(name)];
    if (!type || !NAME.test(name)) continue;
    const path = join(dir, name);
    if (!statSync(path).isFile()) continue;
    files.set(name, { body: readFileSync(path), type });
  }
  if (!files.has('index.html')) throw new Error(`${dir} has no index.html`);
  return files;
}

/** Route GET /explorer, /explorer/ (the page) and /explorer/<name> for each file. Returns the paths routed. */
export function serveExplorer(http: RpcHttpServer, files: ReadonlyMap<string, ExplorerFile>): string[] {
  const paths: string[] = [];
  const route = (path: string, f: ExplorerFile) => {
    http.addRoute('GET', path, (_req, res) => {
      res.writeHead(200, { ...EXPLORER_HEADERS, 'Content-Type': f.type, 'Content-Length': String(f.body.length) });
      res.end(f.body);
    });
    paths.push(path);
  };
  const index = files.get('index.html');
  if (!index) throw new Error('the explorer has no index.html');
  route('/explorer', index);
  route('/explorer/', index);
  for (const [name, f] of files) route(`/explorer/${name}`, f);
  return paths;
}
