/**
 * The peer session: a Noise XX handshake (Noise_XX_25519_ChaChaPoly_BLAKE2b, from the `noise-handshake`
 * library), after which every frame is sealed with ChaCha20-Poly1305 under the session's keys. See
 * docs/protocol.md §7 for the byte-level description another implementation needs.
 *
 *   dialer (initiator)                         listener (responder)
 *   -> e                                       (32 bytes)
 *   <- e, ee, s, es, payload(listener)         the listener's static key, encrypted, and its payload
 *   -> s, se, payload(dialer)                  the dialer's static key, encrypted, and its payload
 *
 * Identities: each node holds a fresh X25519 static key per run; its payload carries its Ed25519 node id and
 * a signature by the node key over that static key (as libp2p-noise does). The Noise transcript binds both
 * static keys and both ephemeral keys into the session keys, so:
 *   - a relayed handshake fails: a relay that forwards a node's messages cannot derive the session keys
 *     (it lacks that node's static and ephemeral secrets), and it cannot substitute its own static key
 *     without a signature by the node key over it;
 *   - a replayed handshake fails: the other side's ephemeral key is fresh, so old messages do not decrypt;
 *   - after the handshake, an injected, altered, reordered, replayed or dropped frame fails authentication
 *     (the nonce is a counter both sides keep) and ends the session. Nothing is charged to the peer's
 *     identity then: anyone on the path can cause it.
 * The handshake hash, to which both sides contributed fresh secrets, names the session: a tie-break between
 * two sessions of the same pair of nodes compares it, and nobody else can choose it.
 */
import crypto from 'node:crypto';
import NoiseState, { type Curve, type KeyPair } from 'noise-handshake';
import defaultCurve from 'noise-handshake/dh.js';
import { concatBytes, toHex, utf8 } from '../encoding/bytes.js';
import { decodeCanonical, encodeCanonical, expectArray, expectBytes, expectSafeUint, expectString, EncodingError } from '../encoding/canonical.js';
import { sign, verifyFast } from '../crypto/ed25519.js';
import type { Random } from '../util/random.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { CLOSE, type Conn } from './transport.js';

/** Bound into the handshake transcript: a different framing or suite can never complete a handshake with this one. */
export const NOISE_PROLOGUE = utf8('meshledger/noise-xx/1');
const STATIC_KEY_DOMAIN = concatBytes(utf8('meshledger:p2p:noise-static:v1'), new Uint8Array([0]));
/** A handshake message is at most this long (the payload is a few hundred bytes). */
export const MAX_HANDSHAKE_FRAME = 2048;
/** What sealing adds to a message: the Poly1305 tag. */
export const SEAL_BYTES = 16;
const TAG_BYTES = SEAL_BYTES;

/** What each side states in its handshake payload. */
export interface Hello {
  version: number;
  chainId: string;
  genesisHash: Uint8Array;
  listen: string;
  headHeight: number;
  headHash: Uint8Array;
}

/** A node's long-term identity and the X25519 static key it uses in this run, signed by that identity. */
export interface SessionIdentity {
  nodeId: Uint8Array;
  staticKey: KeyPair;
  staticSignature: Uint8Array;
}

/** Make this run's session identity: a fresh X25519 static key, signed by the Ed25519 node key. */
export function sessionIdentity(nodeKey: { secretKey: Uint8Array; publicKey: Uint8Array }, random: Random): SessionIdentity {
  const staticKey = defaultCurve.generateKeyPair(Buffer.from(random.bytes(32)));
  return { nodeId: nodeKey.publicKey, staticKey, staticSignature: sign(concatBytes(STATIC_KEY_DOMAIN, staticKey.publicKey), nodeKey.secretKey) };
}

/** Why a handshake ended; `code` is the WebSocket close code sent, `rule` the machine-readable reason. */
export class SessionError extends Error {
  constructor(readonly rule: 'handshake_failed' | 'bad_identity' | 'wrong_network' | 'version' | 'self' | 'banned' | 'timeout' | 'closed', message: string, readonly code: number) {
    super(message);
    this.name = 'SessionError';
  }
}

export interface SessionOptions {
  initiator: boolean;
  identity: SessionIdentity;
  /** Our payload, built when it is sent (head height and hash are current then). */
  hello: () => Hello;
  /** Checks the remote payload (network, version); throw a SessionError to refuse. Runs before any frame is sealed. */
  accept: (remote: Hello, nodeId: Uint8Array) => void;
  random: Random;
  clock: Clock;
  timeoutMs: number;
}

export interface Session {
  conn: SecureConn;
  /** The remote node id, proven by its signature over the Noise static key it used in this handshake. */
  nodeId: Uint8Array;
  remote: Hello;
  /** The Noise handshake hash (64 bytes): both sides see the same value, and only they determine it. */
  handshakeHash: Uint8Array;
}

function encodePayload(id: SessionIdentity, h: Hello): Uint8Array {
  return encodeCanonical([h.version, h.chainId, h.genesisHash, id.nodeId, id.staticSignature, h.listen, h.headHeight, h.headHash]);
}

function decodePayload(b: Uint8Array): { hello: Hello; nodeId: Uint8Array; signature: Uint8Array } {
  const f = expectArray(decodeCanonical(b, MAX_HANDSHAKE_FRAME), 8, 'session payload');
  return {
    hello: {
      version: expectSafeUint(f[0]!, 'version'), chainId: expectString(f[1]!, 'chainId'), genesisHash: expectBytes(f[2]!, 'genesisHash', 32),
      listen: expectString(f[5]!, 'listen'), headHeight: expectSafeUint(f[6]!, 'headHeight'), headHash: expectBytes(f[7]!, 'headHash', 32),
    },
    nodeId: expectBytes(f[3]!, 'nodeId', 32),
    signature: expectBytes(f[4]!, 'staticSignature', 64),
  };
}

/**
 * Run the handshake on a fresh connection. Resolves with the authenticated session, or rejects with a
 * SessionError after closing the connection with its code. Frames before completion are handshake messages
 * only; the first sealed frame may follow the last handshake message at once and is kept for the session.
 */
export function secureSession(conn: Conn, o: SessionOptions): Promise<Session> {
  return new Promise<Session>((resolve, reject) => {
    // Ephemeral keys come from the node's Random (seeded in the simulator), so runs are reproducible.
    const curve: Curve = { ...defaultCurve, generateKeyPair: (sk?: Uint8Array) => defaultCurve.generateKeyPair(sk ?? Buffer.from(o.random.bytes(32))) };
    const hs = new NoiseState('XX', o.initiator, o.identity.staticKey, { curve });
    hs.initialise(NOISE_PROLOGUE);
    let step = 0; // messages processed so far (ours and theirs)
    let done = false;
    let remote: { hello: Hello; nodeId: Uint8Array } | undefined;
    const early: Uint8Array[] = [];
    let timer: TimerHandle | undefined = o.clock.setTimeout(() => fail(new SessionError('timeout', 'handshake timed out', CLOSE.timeout)), o.timeoutMs);

    const fail = (e: SessionError): void => {
      if (done) return;
      done = true;
      if (timer) o.clock.clearTimeout(timer);
      timer = undefined;
      conn.close(e.code, e.message);
      reject(e);
    };
    const finish = (): void => {
      done = true;
      if (timer) o.clock.clearTimeout(timer);
      timer = undefined;
      const secure = new SecureConn(conn, hs.tx!, hs.rx!, early);
      resolve({ conn: secure, nodeId: remote!.nodeId, remote: remote!.hello, handshakeHash: new Uint8Array(hs.hash!) });
    };
    /** Read the remote payload: its signature must bind the node id to the static key Noise just authenticated. */
    const readPayload = (plain: Uint8Array): void => {
      let p;
      try {
        p = decodePayload(plain);
      } catch (e) {
        if (e instanceof EncodingError) throw new SessionError('handshake_failed', `malformed session payload: ${e.message}`, CLOSE.protocol);
        throw e;
      }
      if (!hs.rs || !verifyFast(p.signature, concatBytes(STATIC_KEY_DOMAIN, hs.rs), p.nodeId)) {
        throw new SessionError('bad_identity', 'the node key did not sign the session key', CLOSE.protocol);
      }
      o.accept(p.hello, p.nodeId);
      remote = { hello: p.hello, nodeId: p.nodeId };
    };

    conn.onClose((code, reason) => fail(new SessionError('closed', `closed during the handshake (${code}${reason ? `: ${reason}` : ''})`, code)));
    conn.onMessage((frame) => {
      if (done) {
        // The session's first sealed frames may arrive before the SecureConn's owner registers its handler.
        if (early.length < 64) early.push(frame);
        return;
      }
      try {
        if (frame.length > MAX_HANDSHAKE_FRAME) throw new SessionError('handshake_failed', `handshake message of ${frame.length} bytes`, CLOSE.protocol);
        if (o.initiator) {
          if (step !== 1) throw new SessionError('handshake_failed', 'unexpected handshake message', CLOSE.protocol);
          readPayload(hs.recv(frame)); // <- e, ee, s, es, payload
          conn.send(hs.send(encodePayload(o.identity, o.hello()))); // -> s, se, payload
          step = 3;
          finish();
        } else if (step === 0) {
          if (frame.length !== 32) throw new SessionError('handshake_failed', 'the first handshake message is one 32-byte key', CLOSE.protocol);
          hs.recv(frame); // -> e
          conn.send(hs.send(encodePayload(o.identity, o.hello()))); // <- e, ee, s, es, payload
          step = 2;
        } else if (step === 2) {
          readPayload(hs.recv(frame)); // -> s, se, payload
          step = 3;
          finish();
        } else {
          throw new SessionError('handshake_failed', 'unexpected handshake message', CLOSE.protocol);
        }
      } catch (e) {
        fail(e instanceof SessionError ? e : new SessionError('handshake_failed', `handshake failed: ${(e as Error).message}`, CLOSE.protocol));
      }
    });
    if (o.initiator) {
      try {
        conn.send(hs.send()); // -> e
        step = 1;
      } catch (e) {
        fail(new SessionError('handshake_failed', `handshake failed: ${(e as Error).message}`, CLOSE.protocol));
      }
    }
  });
}

/** Noise's ChaChaPoly nonce: 32 zero bits, then the 64-bit little-endian counter. */
function nonceOf(n: bigint, out: Buffer): Buffer {
  out.writeUInt32LE(0, 0);
  out.writeBigUInt64LE(n, 4);
  return out;
}

/**
 * A connection whose frames are sealed: each WebSocket frame is ChaCha20-Poly1305(key, nonce = counter,
 * no associated data) of one message, counters starting at 0 in each direction. A frame that fails to open
 * ends the session (CLOSE.tampered) and calls `onTampered`; the peer is not blamed for it.
 */
export class SecureConn implements Conn {
  readonly #inner: Conn;
  readonly #tx: Buffer;
  readonly #rx: Buffer;
  #sendN = 0n;
  #recvN = 0n;
  readonly #nonce = Buffer.alloc(12);
  #onMessage: ((frame: Uint8Array) => void) | undefined;
  #early: Uint8Array[];
  #failed = false;
  onTampered: (() => void) | undefined;

  constructor(inner: Conn, tx: Uint8Array, rx: Uint8Array, early: Uint8Array[]) {
    this.#inner = inner;
    this.#tx = Buffer.from(tx);
    this.#rx = Buffer.from(rx);
    this.#early = early;
    inner.onMessage((frame) => {
      if (this.#onMessage) this.#deliver(frame);
      else if (this.#early.length < 64) this.#early.push(frame);
    });
  }

  get remote(): string { return this.#inner.remote; }
  get inbound(): boolean { return this.#inner.inbound; }
  get bufferedAmount(): number { return this.#inner.bufferedAmount; }

  send(frame: Uint8Array): void {
    const c = crypto.createCipheriv('chacha20-poly1305', this.#tx, nonceOf(this.#sendN++, this.#nonce), { authTagLength: TAG_BYTES });
    const body = c.update(frame);
    c.final();
    this.#inner.send(Buffer.concat([body, c.getAuthTag()], frame.length + TAG_BYTES));
  }

  #open(frame: Uint8Array): Uint8Array | undefined {
    if (frame.length < TAG_BYTES) return undefined;
    const n = frame.length - TAG_BYTES;
    const d = crypto.createDecipheriv('chacha20-poly1305', this.#rx, nonceOf(this.#recvN, this.#nonce), { authTagLength: TAG_BYTES });
    d.setAuthTag(frame.subarray(n));
    const plain = d.update(frame.subarray(0, n));
    try {
      d.final();
    } catch {
      return undefined;
    }
    this.#recvN++;
    return new Uint8Array(plain.buffer, plain.byteOffset, plain.byteLength);
  }

  #deliver(frame: Uint8Array): void {
    if (this.#failed) return;
    const plain = this.#open(frame);
    if (plain === undefined) {
      this.#failed = true;
      this.#inner.close(CLOSE.tampered, 'frame failed authentication');
      this.onTampered?.();
      return;
    }
    this.#onMessage!(plain);
  }

  close(code: number, reason: string): void { this.#inner.close(code, reason); }
  onMessage(fn: (frame: Uint8Array) => void): void {
    this.#onMessage = fn;
    const early = this.#early;
    this.#early = [];
    for (const f of early) this.#deliver(f);
  }
  onClose(fn: (code: number, reason: string) => void): void { this.#inner.onClose(fn); }
  pause(): void { this.#inner.pause(); }
  resume(): void { this.#inner.resume(); }
}

/** Hex of a handshake hash, for logs. */
export function sessionLabel(s: Session): string {
  return toHex(s.handshakeHash.subarray(0, 8));
}
