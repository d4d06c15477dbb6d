/**
 * The session: what turns a transport connection into a peer with a proven node id. The switch runs it
 * before a peer is ready and knows it only through `Handshake` (its message types, `begin`, `receive`,
 * `tieBreak`); reactors never see it, so replacing it (an authenticated, encrypted session) touches only
 * this module and the switch's calls into it.
 *
 * Both sides at once: each sends HELLO with a fresh 32-byte challenge; each answers the other's HELLO with
 * AUTH = Ed25519 signature by its node key over
 *   "meshledger:p2p:auth:v1" ‖ 00 ‖ genesisHash ‖ peerChallenge ‖ ownNodeId
 * A peer is authenticated once its HELLO checked out and its AUTH verified against the node id it claimed.
 */
import { concatBytes, fromHex, toHex, utf8 } from '../encoding/bytes.js';
import { sign, verify } from '../crypto/ed25519.js';
import type { Random } from '../util/random.js';
import { URL_RE } from './addrbook.js';
import { MSG, PROTOCOL_VERSION, type Message } from './messages.js';
import type { MessageSpec } from './reactor.js';
import { CLOSE } from './transport.js';

const AUTH_PREFIX = concatBytes(utf8('meshledger:p2p:auth:v1'), new Uint8Array([0]));

export function authMessage(genesisHash: Uint8Array, challenge: Uint8Array, nodeId: Uint8Array): Uint8Array {
  return concatBytes(AUTH_PREFIX, genesisHash, challenge, nodeId);
}

export function signAuth(secretKey: Uint8Array, genesisHash: Uint8Array, peerChallenge: Uint8Array, ownNodeId: Uint8Array): Uint8Array {
  return sign(authMessage(genesisHash, peerChallenge, ownNodeId), secretKey);
}

export function verifyAuth(sig: Uint8Array, genesisHash: Uint8Array, ourChallenge: Uint8Array, peerNodeId: Uint8Array): boolean {
  return verify(sig, authMessage(genesisHash, ourChallenge, peerNodeId), peerNodeId);
}

/** The fields of a peer the session fills in (src/p2p/peer.ts Peer has them). */
export interface SessionPeer {
  readonly outbound: boolean;
  readonly dialedUrl: string | undefined;
  nodeIdHex: string;
  listen: string;
  headHeight: number;
  headHash: Uint8Array;
  authenticated: boolean;
}

/** What the switch does with a handshake message. */
export type HandshakeStep =
  | { kind: 'reply'; message: Message }
  | { kind: 'ready' }
  | { kind: 'refuse'; code: number; reason: string }
  | { kind: 'penalize'; rule: string; detail: string };

export interface HandshakeOptions {
  chainId: string;
  genesisHash: string;
  nodeKey: { secretKey: Uint8Array; publicKey: Uint8Array };
  random: Random;
  /** Our best head, announced in HELLO. */
  head(): { height: number; hash: Uint8Array };
  /** The URL peers should dial to reach us ('' if none). */
  listenUrl(): string;
  isBanned(nodeIdHex: string): boolean;
}

interface State {
  /** Ours, sent in our HELLO; the peer signs it. */
  readonly challenge: Uint8Array;
  /** The peer's, from its HELLO (both ends know both: the duplicate-connection tie-break uses them). */
  theirChallenge: Uint8Array;
  nodeId: Uint8Array | undefined;
  helloOk: boolean;
}

export class Handshake {
  /** The session's message types and frame limits (the codec's, messages.ts). */
  static readonly messages: readonly MessageSpec[] = [{ type: MSG.HELLO, maxBytes: 1024 }, { type: MSG.AUTH, maxBytes: 256 }];

  readonly #o: HandshakeOptions;
  readonly #nodeIdHex: string;
  readonly #genesisHash: Uint8Array;
  readonly #state = new WeakMap<SessionPeer, State>();

  constructor(o: HandshakeOptions) {
    this.#o = o;
    this.#nodeIdHex = toHex(o.nodeKey.publicKey);
    this.#genesisHash = fromHex(o.genesisHash);
  }

  static owns(type: number): boolean { return type === MSG.HELLO || type === MSG.AUTH; }

  /** A new connection: our HELLO, the first thing sent on it (before any frame of the peer is handled). */
  begin(peer: SessionPeer): Message {
    const challenge = this.#o.random.bytes(32);
    this.#state.set(peer, { challenge, theirChallenge: new Uint8Array(32), nodeId: undefined, helloOk: false });
    const head = this.#o.head();
    return {
      type: MSG.HELLO, version: PROTOCOL_VERSION, chainId: this.#o.chainId, genesisHash: this.#genesisHash,
      nodeId: this.#o.nodeKey.publicKey, listen: this.#o.listenUrl(), headHeight: head.height, headHash: head.hash, challenge,
    };
  }

  /** A message from a peer that is not ready yet. */
  receive(peer: SessionPeer, m: Message): HandshakeStep {
    const s = this.#state.get(peer)!;
    if (m.type === MSG.HELLO && !s.helloOk) {
      if (m.version !== PROTOCOL_VERSION) return refuse(CLOSE.version, `incompatible protocol version ${m.version} (we speak ${PROTOCOL_VERSION})`);
      if (m.chainId !== this.#o.chainId || toHex(m.genesisHash) !== this.#o.genesisHash) {
        return refuse(CLOSE.wrongNetwork, `wrong network: chain "${m.chainId}" genesis ${toHex(m.genesisHash).slice(0, 16)}… (ours: "${this.#o.chainId}" ${this.#o.genesisHash.slice(0, 16)}…)`);
      }
      const id = toHex(m.nodeId);
      if (id === this.#nodeIdHex) return refuse(CLOSE.self, 'connected to self');
      if (this.#o.isBanned(id)) return refuse(CLOSE.banned, 'banned');
      s.nodeId = m.nodeId;
      peer.nodeIdHex = id;
      peer.listen = URL_RE.test(m.listen) ? m.listen : '';
      peer.headHeight = m.headHeight;
      peer.headHash = m.headHash;
      s.theirChallenge = m.challenge;
      s.helloOk = true;
      const signature = signAuth(this.#o.nodeKey.secretKey, this.#genesisHash, m.challenge, this.#o.nodeKey.publicKey);
      return { kind: 'reply', message: { type: MSG.AUTH, signature } };
    }
    if (m.type === MSG.AUTH && s.helloOk && !peer.authenticated) {
      if (!verifyAuth(m.signature, this.#genesisHash, s.challenge, s.nodeId!)) return { kind: 'penalize', rule: 'bad_auth', detail: 'handshake signature does not prove the node id' };
      peer.authenticated = true;
      return { kind: 'ready' };
    }
    return { kind: 'penalize', rule: 'protocol', detail: `message type ${m.type} before the handshake completed` };
  }

  /**
   * The same value at both ends of a connection (the challenge its dialer sent), so that two nodes holding
   * two connections to each other agree, without talking, on which one to keep.
   */
  tieBreak(peer: SessionPeer): string {
    const s = this.#state.get(peer)!;
    return toHex(peer.outbound ? s.challenge : s.theirChallenge);
  }
}

const refuse = (code: number, reason: string): HandshakeStep => ({ kind: 'refuse', code, reason });
