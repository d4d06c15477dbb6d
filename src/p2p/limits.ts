/** The P2P layer's limits, all configurable (NodeConfig.net); each part takes the fields it applies. */
import { DEFAULT_INBOUND_QUEUE, type InboundQueueLimits } from './inbound.js';
import { DEFAULT_PEER_LIMITS, type PeerLimits } from './peer.js';

export interface NetLimits {
  maxInbound: number;
  maxOutbound: number;
  targetOutbound: number;
  /** Connections from one IP that have not finished the handshake. */
  maxPendingPerIp: number;
  /**
   * New inbound sessions per second from one IP, and from all (bursts of twice that): each costs a handshake
   * and a fresh identity's first unverified batch, so this bounds what free identities can make a node spend.
   */
  newSessionsPerIpPerSec: number;
  newSessionsPerSec: number;
  handshakeTimeoutMs: number;
  banThreshold: number;
  banMs: number;
  /** Peers that get a relayed transaction's body (the rest get its id); 0 = announce only. */
  txPushFanout: number;
  /** Peers that get a new block's body (the rest get its hash). */
  blockPushFanout: number;
  announceIntervalMs: number;
  maintenanceMs: number;
  /** Orphan blocks (parent unknown) kept: count and bytes in total and per peer (orphans.ts). */
  orphanLimit: number;
  orphanBytes: number;
  orphanPerPeer: number;
  orphanBytesPerPeer: number;
  peer: PeerLimits;
  /** Back-pressure on each peer's queue of messages waiting for processing (inbound.ts). */
  inbound: InboundQueueLimits;
}

export const DEFAULT_NET_LIMITS: NetLimits = {
  maxInbound: 32, maxOutbound: 16, targetOutbound: 8, maxPendingPerIp: 8, newSessionsPerIpPerSec: 10, newSessionsPerSec: 50, handshakeTimeoutMs: 5000,
  banThreshold: -100, banMs: 10 * 60_000, txPushFanout: 0, blockPushFanout: 4, announceIntervalMs: 20,
  maintenanceMs: 1000, orphanLimit: 512, orphanBytes: 32 * 1024 * 1024, orphanPerPeer: 64, orphanBytesPerPeer: 8 * 1024 * 1024,
  peer: DEFAULT_PEER_LIMITS, inbound: DEFAULT_INBOUND_QUEUE,
};

/** Defaults overridden field by field (the nested peer and inbound limits too). */
export function resolveLimits(o: Partial<NetLimits> | undefined): NetLimits {
  return {
    ...DEFAULT_NET_LIMITS, ...o, peer: { ...DEFAULT_PEER_LIMITS, ...o?.peer }, inbound: { ...DEFAULT_INBOUND_QUEUE, ...o?.inbound },
  };
}
