// A small JSON-RPC 2.0 client for this page: calls go over the node's WebSocket (the same port the page
// came from) while it is open, over HTTP POST otherwise; subscriptions live on the WebSocket and are made
// again after a reconnect. Nothing here is specific to this page: it is the public API, as any tool sees it.

/** A JSON-RPC error answer. */
export class RpcError extends Error {
  /** @param {{code: number, message: string, data?: any}} e @param {string} method */
  constructor(e, method) {
    super(`${method}: ${e.message}${e.data?.rule ? ` (${e.data.rule})` : ''}`);
    this.code = e.code;
    this.data = e.data;
  }
}

export class Rpc {
  /** @param {string} httpUrl e.g. http://127.0.0.1:8645/ */
  constructor(httpUrl) {
    this.httpUrl = httpUrl;
    this.wsUrl = httpUrl.replace(/^http/, 'ws');
    /** @type {WebSocket | null} */
    this.ws = null;
    this.nextId = 1;
    /** @type {Map<number, {resolve: (v: any) => void, reject: (e: any) => void, method: string}>} */
    this.pending = new Map();
    /** Our handles → {topic, params, cb, serverId}. @type {Map<number, {topic: string, params: object, cb: (r: any) => void, serverId: string | null}>} */
    this.subs = new Map();
    this.nextSub = 1;
    /** @type {((up: boolean) => void)[]} */
    this.statusListeners = [];
    this.closed = false;
    this.connect();
  }

  get connected() { return this.ws !== null && this.ws.readyState === WebSocket.OPEN; }

  /** @param {(up: boolean) => void} fn */
  onStatus(fn) { this.statusListeners.push(fn); }

  connect() {
    if (this.closed) return;
    const ws = new WebSocket(this.wsUrl);
    this.ws = ws;
    ws.addEventListener('open', () => {
      for (const f of this.statusListeners) f(true);
      for (const [handle, sub] of this.subs) void this.#resubscribe(handle, sub);
    });
    ws.addEventListener('message', (ev) => this.#onMessage(String(ev.data)));
    ws.addEventListener('close', () => {
      for (const [id, p] of this.pending) { p.reject(new Error(`${p.method}: connection closed`)); this.pending.delete(id); }
      for (const sub of this.subs.values()) sub.serverId = null;
      for (const f of this.statusListeners) f(false);
      if (!this.closed) setTimeout(() => this.connect(), 1500);
    });
  }

  /** @param {string} text */
  #onMessage(text) {
    let msg;
    try { msg = JSON.parse(text); } catch { return; }
    for (const m of Array.isArray(msg) ? msg : [msg]) {
      if (m.method === 'subscription' && m.params) {
        for (const sub of this.subs.values()) if (sub.serverId === m.params.subscription) sub.cb(m.params.result);
        continue;
      }
      const p = this.pending.get(m.id);
      if (!p) continue;
      this.pending.delete(m.id);
      if (m.error) p.reject(new RpcError(m.error, p.method));
      else p.resolve(m.result);
    }
  }

  /**
   * Call a method (named params).
   * @param {string} method @param {object} [params]
   * @returns {Promise<any>}
   */
  call(method, params = {}) {
    if (this.connected) {
      const id = this.nextId++;
      return new Promise((resolve, reject) => {
        this.pending.set(id, { resolve, reject, method });
        /** @type {WebSocket} */ (this.ws).send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
      });
    }
    return this.#http(method, params);
  }

  /** @param {string} method @param {object} params */
  async #http(method, params) {
    const r = await fetch(this.httpUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) });
    const body = await r.json();
    if (body.error) throw new RpcError(body.error, method);
    return body.result;
  }

  /**
   * Subscribe to a topic; `cb` gets every notification. Survives reconnects. Returns a handle for unsubscribe.
   * @param {string} topic @param {object} params @param {(r: any) => void} cb
   */
  subscribe(topic, params, cb) {
    const handle = this.nextSub++;
    const sub = { topic, params, cb, serverId: /** @type {string | null} */ (null) };
    this.subs.set(handle, sub);
    if (this.connected) void this.#resubscribe(handle, sub);
    return handle;
  }

  /** @param {number} handle @param {{topic: string, params: object, serverId: string | null}} sub */
  async #resubscribe(handle, sub) {
    try {
      const id = await this.call('subscribe', { topic: sub.topic, ...sub.params });
      if (this.subs.get(handle) === sub) sub.serverId = id;
      else await this.call('unsubscribe', { subscription: id }).catch(() => {});
    } catch { /* retried on the next reconnect */ }
  }

  /** @param {number} handle */
  unsubscribe(handle) {
    const sub = this.subs.get(handle);
    this.subs.delete(handle);
    if (sub?.serverId && this.connected) void this.call('unsubscribe', { subscription: sub.serverId }).catch(() => {});
  }
}
