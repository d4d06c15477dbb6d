/**
 * The session policy: what this node states in its Noise handshake and what it accepts from the other side.
 * The cryptographic session itself (Noise XX, sealed frames) is noise.ts; the switch runs `open` on every new
 * connection and only an authenticated session becomes a peer. Reactors never see any of this.
 *
 * A remote side is refused, with the close code and reason it is told, when it speaks another protocol
 * version, belongs to another network (chain id or genesis hash), is this node itself, or is banned. None of
 * these is misbehaviour: nothing is charged to anyone for a refused handshake.
 */
import { bytesEqual, fromHex, toHex } from '../encoding/bytes.js';
import type { Clock } from '../util/clock.js';
import type { Random } from '../util/random.js';
import { PROTOCOL_VERSION } from './messages.js';
import { secureSession, SessionError, type Hello, type Session, type SessionIdentity } from './noise.js';
import { CLOSE, type Conn } from './transport.js';

export interface SessionPolicyOptions {
  chainId: string;
  /** Hex. */
  genesisHash: string;
  identity: SessionIdentity;
  random: Random;
  clock: Clock;
  timeoutMs: number;
  /** Our best head, stated in the handshake. */
  head(): { height: number; hash: Uint8Array };
  /** The URL peers should dial to reach us ('' if none). */
  listenUrl(): string;
  isBanned(nodeIdHex: string): boolean;
}

export class SessionPolicy {
  readonly #o: SessionPolicyOptions;
  readonly #genesisHash: Uint8Array;

  constructor(o: SessionPolicyOptions) {
    this.#o = o;
    this.#genesisHash = fromHex(o.genesisHash);
  }

  /** Run the handshake on a new connection (we are its initiator when we dialed it). */
  open(conn: Conn): Promise<Session> {
    return secureSession(conn, {
      initiator: !conn.inbound, identity: this.#o.identity, random: this.#o.random, clock: this.#o.clock, timeoutMs: this.#o.timeoutMs,
      hello: () => this.#hello(),
      accept: (remote, nodeId) => this.#accept(remote, nodeId),
    });
  }

  #hello(): Hello {
    const head = this.#o.head();
    return { version: PROTOCOL_VERSION, chainId: this.#o.chainId, genesisHash: this.#genesisHash, listen: this.#o.listenUrl(), headHeight: head.height, headHash: head.hash };
  }

  #accept(r: Hello, nodeId: Uint8Array): void {
    if (r.version !== PROTOCOL_VERSION) throw new SessionError('version', `incompatible protocol version ${r.version} (we speak ${PROTOCOL_VERSION})`, CLOSE.version);
    if (r.chainId !== this.#o.chainId || !bytesEqual(r.genesisHash, this.#genesisHash)) {
      throw new SessionError('wrong_network', `wrong network: chain "${r.chainId}" genesis ${toHex(r.genesisHash).slice(0, 16)}… (ours: "${this.#o.chainId}" ${this.#o.genesisHash.slice(0, 16)}…)`, CLOSE.wrongNetwork);
    }
    const id = toHex(nodeId);
    if (bytesEqual(nodeId, this.#o.identity.nodeId)) throw new SessionError('self', 'connected to self', CLOSE.self);
    if (this.#o.isBanned(id)) throw new SessionError('banned', 'banned', CLOSE.banned);
  }
}
