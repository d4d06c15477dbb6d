/**
 * A byzantine validator for the simulator, with its own wire-level behaviour. It is not a MeshNode: it has
 * no production Network and no Producer. It keeps a production Chain and Mempool (so that the blocks it
 * builds are valid where it wants them valid) and speaks the P2P protocol itself over SimNet connections:
 * it listens on its own address, dials the honest nodes, runs the Noise session (src/p2p/noise.ts) with its own
 * node key, answers the requests honest peers make of any peer (hashes, blocks, transactions, addresses), follows
 * the chain from pushed blocks and its own small sync, and collects pushed transactions.
 *
 * At each slot it owns, the simulator calls `act`, which chooses by the seeded PRNG to
 *   - behave: build a block, add it to its chain, send its body to every connected peer;
 *   - withhold: build a block and keep it (served only when a peer asks for it by hash); half of the time
 *     it is released one slot late to a chosen subset of the peers;
 *   - equivocate: build two different valid blocks for the slot and send one to a chosen subset of the
 *     honest peers and the other to the rest, so each part of the network first sees a different block;
 *   - invalid-root / invalid-tx: corrupt a valid block (a wrong state root, or a validly signed
 *     transaction that cannot apply), re-sign it, and send it to a chosen subset, never adding it itself.
 * Nothing is rewritten in flight: each frame it sends is one it encoded for that recipient.
 */
import { Chain } from '../chain/chain.js';
import { sha256 } from '../crypto/hash.js';
import { SigCache } from '../crypto/sigcache.js';
import type { SignatureVerifier } from '../crypto/ed25519.js';
import { bytesEqual, fromHex, toHex, utf8 } from '../encoding/bytes.js';
import { blockFramingBytes, decodeBlock, makeBlock, signHeader, TX_FRAMING_BYTES, type Block, type UnsignedHeader } from '../ledger/block.js';
import type { Genesis } from '../ledger/genesis.js';
import { merkleRoot } from '../ledger/merkle.js';
import { RuleError } from '../ledger/rules.js';
import { proposerFor } from '../ledger/schedule.js';
import { decodeTx, signTx, type Tx } from '../ledger/tx.js';
import { Mempool } from '../mempool/mempool.js';
import { assembleBlock } from '../producer/producer.js';
import type { KeyPair } from '../crypto/keyfile.js';
import { decodeMessage, encodeMessage, MAX_GET_BLOCKS, MSG, PROTOCOL_VERSION, sizeLimits, type Message } from '../p2p/messages.js';
import { secureSession, sessionIdentity, SessionError, type SessionIdentity } from '../p2p/noise.js';
import type { Conn, Transport } from '../p2p/transport.js';
import type { KV } from '../storage/kv.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { silentLogger } from '../util/log.js';
import type { Prng } from './prng.js';

export type ByzAction = 'behave' | 'withhold' | 'equivocate' | 'invalid-root' | 'invalid-tx';

/** One equivocation: two blocks signed for one slot; `to` got `hashes[1]` first, the other peers `hashes[0]`. */
export interface Equivocation { slot: number; proposer: string; hashes: [string, string]; to: string[] }

/** What all byzantine validators of a run did (the simulator's invariants check against it). */
export class ByzantineLedger {
  readonly equivocations: Equivocation[] = [];
  /** Hashes of blocks a byzantine node knowingly corrupted: none may ever be on an honest best chain. */
  readonly corrupted = new Map<string, { slot: number; kind: ByzAction }>();
  readonly counts: Record<ByzAction, number> = { behave: 0, withhold: 0, equivocate: 0, 'invalid-root': 0, 'invalid-tx': 0 };
  /** Frames the byzantine nodes sent, by message type name (BLOCK, HASHES, …). */
  readonly frames: Record<string, number> = {};
  /** Withheld blocks released late. */
  released = 0;
}

interface WirePeer {
  /** The sealed connection once the session is up (the raw one before). */
  conn: Conn;
  nodeIdHex: string;
  /** The peer's advertised address (from its handshake): how the simulator names honest nodes. */
  listen: string;
  ready: boolean;
  closed: boolean;
  headHeight: number;
  pending: Map<number, { resolve: (m: Message) => void; reject: (e: Error) => void; timer: TimerHandle }>;
}

const MSG_NAME = Object.fromEntries(Object.entries(MSG).map(([k, v]) => [v, k])) as Record<number, string>;

export interface ByzantineNodeOptions {
  addr: string;
  key: KeyPair;
  nodeKey: KeyPair;
  genesis: Genesis;
  db: KV;
  /** The chain and mempool clock (never killed); request timeouts use the incarnation's clock. */
  clock: Clock;
  rng: Prng;
  verifier: SignatureVerifier;
  ledger: ByzantineLedger;
  junkKey: KeyPair;
}

export class ByzantineNode {
  readonly chain: Chain;
  readonly mempool: Mempool;
  readonly #o: ByzantineNodeOptions;
  readonly #limits: Record<number, number>;
  readonly #genesisHash: Uint8Array;
  /** Its session key for this run, signed by its node key: it speaks the same Noise session as everyone. */
  readonly #identity: SessionIdentity;
  readonly #peers = new Set<WirePeer>();
  #transport: Transport | undefined;
  #clock: Clock | undefined;
  #nextReq = 1;
  #syncing = false;
  #mempoolWork: Promise<void> = Promise.resolve();
  /** A withheld block waiting to be released late (at the next slot). */
  #withheld: Block | undefined;
  /** An unexpected error in a background handler: raised at the next tick (a simulator bug, with its seed). */
  #fault: unknown;

  private constructor(o: ByzantineNodeOptions, chain: Chain, mempool: Mempool) {
    this.#o = o;
    this.chain = chain;
    this.mempool = mempool;
    this.#limits = sizeLimits(o.genesis.params.maxBlockBytes);
    this.#genesisHash = fromHex(chain.genesisHash);
    this.#identity = sessionIdentity(o.nodeKey, o.rng);
    chain.on('chain:head', ({ connected, disconnected }) => {
      this.#mempoolWork = this.#mempoolWork.then(() => this.mempool.onHeadChange(connected, disconnected)).catch(() => {});
    });
  }

  static async open(o: ByzantineNodeOptions): Promise<ByzantineNode> {
    const sigCache = new SigCache();
    const chain = await Chain.open({ db: o.db, genesis: o.genesis, clock: o.clock, verifier: o.verifier, sigCache, log: silentLogger });
    const mempool = new Mempool({ db: o.db, genesis: o.genesis, accounts: chain, verifier: o.verifier, sigCache, clock: o.clock });
    return new ByzantineNode(o, chain, mempool);
  }

  get running(): boolean { return this.#transport !== undefined; }
  get peers(): number { return [...this.#peers].filter((p) => p.ready && !p.closed).length; }

  /** Come up on the network: listen, and dial `dial` (the honest nodes' addresses). */
  async start(transport: Transport, clock: Clock, dial: string[]): Promise<void> {
    this.#transport = transport;
    this.#clock = clock;
    await transport.listen('sim', 30400, (c) => this.#attach(c));
    this.redial(dial);
  }

  /** Go away (a crash): every connection is cut, requests fail. The chain and mempool stay (its memory). */
  async stop(): Promise<void> {
    const t = this.#transport;
    this.#transport = undefined;
    for (const p of this.#peers) this.#closed(p);
    this.#peers.clear();
    await t?.close();
  }

  /** Dial the addresses it has no connection with (every slot: a ban or partition only pauses it). */
  redial(addrs: string[]): void {
    const t = this.#transport;
    if (!t) return;
    const have = new Set([...this.#peers].filter((p) => !p.closed).map((p) => p.listen));
    for (const a of addrs) {
      if (have.has(a)) continue;
      t.dial(a, 5000).then((c) => (this.#transport === t ? this.#attach(c, a) : c.close(1001, 'gone')), () => { /* unreachable or banned */ });
    }
  }

  // ------------------------------------------------------------------ wire

  #attach(conn: Conn, dialed?: string): void {
    const p: WirePeer = { conn, nodeIdHex: '', listen: dialed ?? '', ready: false, closed: false, headHeight: 0, pending: new Map() };
    this.#peers.add(p);
    conn.onClose(() => { this.#closed(p); this.#peers.delete(p); });
    const clock = this.#clock!;
    secureSession(conn, {
      initiator: !conn.inbound, identity: this.#identity, random: this.#o.rng, clock, timeoutMs: 5000,
      hello: () => {
        const head = this.chain.head;
        return { version: PROTOCOL_VERSION, chainId: this.#o.genesis.chainId, genesisHash: this.#genesisHash, listen: this.#o.addr, headHeight: head.height, headHash: head.hash };
      },
      accept: (r) => {
        if (r.chainId !== this.#o.genesis.chainId || !bytesEqual(r.genesisHash, this.#genesisHash)) throw new SessionError('wrong_network', 'wrong network', 4001);
      },
    }).then((s) => {
      if (p.closed) return;
      p.conn = s.conn;
      p.nodeIdHex = toHex(s.nodeId);
      p.listen = s.remote.listen || p.listen;
      p.headHeight = s.remote.headHeight;
      p.ready = true;
      s.conn.onClose(() => { this.#closed(p); this.#peers.delete(p); });
      s.conn.onMessage((f) => this.#onFrame(p, f));
      const h = this.chain.head;
      this.#send(p, { type: MSG.STATUS, headHeight: h.height, headHash: h.hash, headSlot: h.slot });
      if (p.headHeight > h.height) void this.#sync(p);
    }, () => { this.#closed(p); this.#peers.delete(p); });
  }

  #closed(p: WirePeer): void {
    if (p.closed) return;
    p.closed = true;
    for (const [, r] of p.pending) { this.#clock?.clearTimeout(r.timer); r.reject(new Error('closed')); }
    p.pending.clear();
  }

  #send(p: WirePeer, m: Message): void {
    if (p.closed) return;
    const name = MSG_NAME[m.type]!;
    this.#o.ledger.frames[name] = (this.#o.ledger.frames[name] ?? 0) + 1;
    p.conn.send(encodeMessage(m));
  }

  #request(p: WirePeer, build: (reqId: number) => Message): Promise<Message> {
    const reqId = this.#nextReq++;
    const clock = this.#clock!;
    return new Promise((resolve, reject) => {
      const timer = clock.setTimeout(() => { p.pending.delete(reqId); reject(new Error('timeout')); }, 10_000);
      p.pending.set(reqId, { resolve, reject, timer });
      this.#send(p, build(reqId));
    });
  }

  #onFrame(p: WirePeer, frame: Uint8Array): void {
    if (p.closed) return;
    let m: Message;
    try {
      m = decodeMessage(frame, this.#limits);
    } catch {
      return; // an honest peer never sends one; nothing to learn from it
    }
    if (!p.ready) return;
    switch (m.type) {
      case MSG.STATUS:
        p.headHeight = m.headHeight;
        if (m.headHeight > this.chain.head.height) void this.#sync(p);
        return;
      case MSG.TXS: {
        const txs: Tx[] = [];
        for (const b of m.txs) { try { txs.push(decodeTx(b)); } catch { /* skip */ } }
        for (const tx of txs) this.mempool.add(tx).catch(() => {});
        return;
      }
      case MSG.GET_TX: {
        const out = m.ids.map((id) => this.mempool.get(toHex(id))?.bytes).filter((b): b is Uint8Array => !!b);
        if (out.length) this.#send(p, { type: MSG.TXS, txs: out });
        return;
      }
      case MSG.BLOCK: return void this.#takeBlock(p, m.block).catch((e) => { this.#fault ??= e; });
      case MSG.INV_BLOCK:
        if (m.height > p.headHeight) p.headHeight = m.height;
        if (!this.chain.hasBlock(toHex(m.hash))) {
          this.#request(p, (reqId) => ({ type: MSG.GET_BLOCKS, reqId, hashes: [m.hash] }))
            .then(async (r) => { if (r.type === MSG.BLOCKS) for (const b of r.blocks) await this.#takeBlock(p, b).catch((e) => { this.#fault ??= e; }); })
            .catch(() => { /* timeout or disconnect */ });
        }
        return;
      case MSG.GET_HASHES: {
        const fork = this.chain.forkPoint(m.locator.map(toHex));
        const hashes: Uint8Array[] = [];
        for (let h = fork.height + 1; h <= this.chain.head.height && hashes.length < m.max; h++) hashes.push(fromHex(this.chain.mainHashAt(h)!));
        return this.#send(p, { type: MSG.HASHES, reqId: m.reqId, forkHeight: fork.height, hashes });
      }
      case MSG.GET_BLOCKS:
        void (async () => {
          const blocks: Uint8Array[] = [];
          for (const h of m.hashes) {
            const b = await this.chain.getBlock(toHex(h));
            if (!b) break;
            blocks.push(b.bytes);
          }
          this.#send(p, { type: MSG.BLOCKS, reqId: m.reqId, blocks });
        })().catch((e) => { this.#fault ??= e; });
        return;
      case MSG.HASHES: case MSG.BLOCKS: {
        const r = p.pending.get(m.reqId);
        if (!r) return;
        p.pending.delete(m.reqId);
        this.#clock?.clearTimeout(r.timer);
        r.resolve(m);
        return;
      }
      case MSG.GET_ADDR: return this.#send(p, { type: MSG.ADDR, addrs: [] });
      default: return; // INV_TX, ADDR, EVIDENCE, …: ignored
    }
  }

  async #takeBlock(p: WirePeer, bytes: Uint8Array): Promise<void> {
    let b: Block;
    try {
      b = decodeBlock(bytes, this.#o.genesis.params.maxBlockBytes);
    } catch {
      return;
    }
    try {
      const r = await this.chain.addBlock(b);
      if (r.status === 'orphan') void this.#sync(p);
    } catch (e) {
      if (!(e instanceof RuleError)) throw e;
    }
  }

  /** Catch up from `p`: hashes after our fork point, then the blocks, in order. */
  async #sync(p: WirePeer): Promise<void> {
    if (this.#syncing) return;
    this.#syncing = true;
    try {
      for (let round = 0; round < 8 && !p.closed; round++) {
        const locator = this.chain.locator().map(fromHex);
        const res = await this.#request(p, (reqId) => ({ type: MSG.GET_HASHES, reqId, locator, max: 512 }));
        if (res.type !== MSG.HASHES) return;
        const want = res.hashes.filter((h) => !this.chain.hasBlock(toHex(h)));
        if (!want.length) return;
        for (let i = 0; i < want.length; i += MAX_GET_BLOCKS) {
          const r = await this.#request(p, (reqId) => ({ type: MSG.GET_BLOCKS, reqId, hashes: want.slice(i, i + MAX_GET_BLOCKS) }));
          if (r.type !== MSG.BLOCKS || r.blocks.length === 0) return;
          for (const b of r.blocks) await this.#takeBlock(p, b).catch((e) => { this.#fault ??= e; });
        }
      }
    } catch {
      /* timeout or disconnect: the next STATUS starts again */
    } finally {
      this.#syncing = false;
    }
  }

  // ------------------------------------------------------------------ misbehaviour

  /** Ready honest peers, one per node id, in a fixed order (by address). */
  #readyPeers(): WirePeer[] {
    const byId = new Map<string, WirePeer>();
    for (const p of this.#peers) if (p.ready && !p.closed && !byId.has(p.nodeIdHex)) byId.set(p.nodeIdHex, p);
    return [...byId.values()].sort((a, b) => (a.listen < b.listen ? -1 : a.listen > b.listen ? 1 : 0));
  }

  /** A seeded non-empty subset (a proper one when there are two or more). */
  #subset(peers: WirePeer[]): WirePeer[] {
    const rng = this.#o.rng;
    const to = peers.filter(() => rng.chance(0.5));
    if (peers.length >= 1 && to.length === 0) to.push(peers[rng.int(peers.length)]!);
    if (peers.length >= 2 && to.length === peers.length) to.splice(rng.int(to.length), 1);
    return to;
  }

  /** Every slot: release a withheld block late (to some peers), and redial. */
  tick(honestAddrs: string[]): string | undefined {
    if (this.#fault !== undefined) throw this.#fault;
    const w = this.#withheld;
    this.#withheld = undefined;
    let note: string | undefined;
    if (w && this.running) {
      const to = this.#subset(this.#readyPeers());
      for (const p of to) this.#send(p, { type: MSG.BLOCK, block: w.bytes });
      this.#o.ledger.released++;
      note = `release|${w.header.hashHex.slice(0, 12)}|${to.map((p) => p.listen).join(',')}`;
    }
    this.redial(honestAddrs);
    return note;
  }

  /** This validator owns `slot`: misbehave or not. Returns the action and to whom (for the trace). */
  async act(slot: number): Promise<string> {
    const { key, rng, ledger } = this.#o;
    const chain = this.chain;
    if (!bytesEqual(proposerFor(chain.genesis, slot), key.publicKey)) throw new Error(`byzantine: slot ${slot} is not ours`);
    if (!this.running || slot <= chain.head.slot) return 'idle';
    const r = rng.int(100);
    let action: ByzAction = r < 30 ? 'behave' : r < 65 ? 'equivocate' : r < 80 ? 'withhold' : r < 90 ? 'invalid-root' : 'invalid-tx';
    const p = chain.genesis.params;
    const candidates = this.mempool.candidates(p.maxBlockTxs, p.maxBlockBytes - blockFramingBytes(this.#o.genesis.chainId), TX_FRAMING_BYTES);
    // Two different valid blocks need at least one transaction to leave out of one of them.
    if (action === 'equivocate' && candidates.length === 0) action = 'behave';
    ledger.counts[action]++;
    const peers = this.#readyPeers();
    const names = (ps: WirePeer[]) => ps.map((x) => x.listen).join(',');
    const a = await assembleBlock(chain, key.secretKey, key.publicKey, slot, candidates);
    if (action === 'behave') {
      await chain.addBlock(a);
      for (const x of peers) this.#send(x, { type: MSG.BLOCK, block: a.bytes });
      return `${action}|${a.header.hashHex.slice(0, 12)}|${names(peers)}`;
    }
    if (action === 'withhold') {
      await chain.addBlock(a);
      if (rng.chance(0.5)) this.#withheld = a;
      return `${action}|${a.header.hashHex.slice(0, 12)}`;
    }
    if (action === 'equivocate') {
      const b = await assembleBlock(chain, key.secretKey, key.publicKey, slot, candidates.slice(0, -1));
      if (b.header.hashHex === a.header.hashHex) throw new Error('byzantine: equivocation produced one block');
      await chain.addBlock(a);
      await chain.addBlock(b).catch(() => {});
      const toB = this.#subset(peers);
      for (const x of peers) this.#send(x, { type: MSG.BLOCK, block: (toB.includes(x) ? b : a).bytes });
      ledger.equivocations.push({ slot, proposer: toHex(key.publicKey), hashes: [a.header.hashHex, b.header.hashHex], to: toB.map((x) => x.listen) });
      return `${action}|${a.header.hashHex.slice(0, 12)}|${b.header.hashHex.slice(0, 12)}|${names(toB)}`;
    }
    // Invalid: corrupt a valid block and re-sign it, so it passes every static check and fails on state.
    const h = a.header;
    const base: UnsignedHeader = { chainId: h.chainId, height: h.height, slot: h.slot, parentHash: h.parentHash, timestamp: h.timestamp, txRoot: h.txRoot, stateRoot: h.stateRoot, proposer: h.proposer };
    let bad: Block;
    if (action === 'invalid-root') {
      bad = makeBlock(signHeader({ ...base, stateRoot: sha256(utf8(`sim-bad-root:${slot}`)) }, key.secretKey), a.txs);
    } else {
      // A correctly signed transaction whose nonce is far ahead: it decodes and verifies, and cannot apply.
      const junk = signTx({ chainId: h.chainId, from: this.#o.junkKey.publicKey, to: key.publicKey, amount: 1n, fee: 1n, nonce: 1_000_000n + BigInt(slot), memo: '' }, this.#o.junkKey.secretKey);
      const txs = [...a.txs, junk];
      bad = makeBlock(signHeader({ ...base, txRoot: merkleRoot(txs.map((t) => t.id)) }, key.secretKey), txs);
    }
    ledger.corrupted.set(bad.header.hashHex, { slot, kind: action });
    const to = this.#subset(peers);
    for (const x of to) this.#send(x, { type: MSG.BLOCK, block: bad.bytes });
    return `${action}|${bad.header.hashHex.slice(0, 12)}|${names(to)}`;
  }
}
