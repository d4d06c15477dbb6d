/** Types for the parts of `noise-handshake` (Holepunch, Apache-2.0) that src/p2p/noise.ts uses. */
declare module 'noise-handshake' {
  export interface KeyPair { publicKey: Uint8Array; secretKey: Uint8Array }
  export interface Curve {
    DHLEN: number;
    PKLEN: number;
    SKLEN: number;
    ALG: string;
    generateKeyPair(secretKey?: Uint8Array): KeyPair;
    dh(publicKey: Uint8Array, keyPair: { secretKey: Uint8Array }): Uint8Array;
  }
  /** Noise_<pattern>_25519_ChaChaPoly_BLAKE2b handshake state. */
  export default class NoiseState {
    constructor(pattern: 'XX' | 'NN' | 'IK', initiator: boolean, staticKeyPair?: KeyPair, opts?: { curve?: Curve });
    readonly s: KeyPair;
    /** The remote static public key, once a message carrying it was read. */
    rs: Uint8Array | null;
    complete: boolean;
    /** Sending and receiving keys after the last handshake message (initiator's tx = responder's rx). */
    tx: Uint8Array | null;
    rx: Uint8Array | null;
    /** The handshake hash h once complete (64 bytes). */
    hash: Uint8Array | null;
    initialise(prologue: Uint8Array, remoteStatic?: Uint8Array): void;
    send(payload?: Uint8Array): Uint8Array;
    recv(message: Uint8Array): Uint8Array;
  }
}

declare module 'noise-handshake/dh.js' {
  import type { Curve } from 'noise-handshake';
  const curve: Curve;
  export = curve;
}
