/**
 * What every part of a simulation run shares: the options, the virtual clock, the seeded PRNG, the
 * simulated network, the genesis, the nodes, the counters and the trace.
 *
 * The trace is the run's fingerprint: every event that shows the execution's course (head changes, crashes,
 * start failures, partitions, failed writes, byzantine actions, equivocation reports) is folded into one
 * hash, so two runs of one seed must end with the same hash.
 */
import type { KeyPair } from '../crypto/keyfile.js';
import { sha256 } from '../crypto/hash.js';
import { toHex, utf8 } from '../encoding/bytes.js';
import type { Genesis } from '../ledger/genesis.js';
import type { ManualClock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { ByzantineLedger } from './byzantine.js';
import type { SimNodeState } from './env.js';
import type { ResolvedOptions } from './options.js';
import type { Prng } from './prng.js';
import type { SimNet } from './simnet.js';

/** Counters of a run, reported in SimResult. */
export interface SimStats {
  submitted: number; rejected: number; conflicts: number; retried: number;
  crashes: number; partitions: number; reorgs: number; storageCrashes: number; lateJoins: number; leaves: number;
  writeFailures: number; lagAfterIoFail: number;
  startsArmed: number; startFailures: number; startupWriteFailures: number; restartsAfterFailedStart: number;
  invalidRejected: number; bans: number;
}

export function newStats(): SimStats {
  return {
    submitted: 0, rejected: 0, conflicts: 0, retried: 0,
    crashes: 0, partitions: 0, reorgs: 0, storageCrashes: 0, lateJoins: 0, leaves: 0,
    writeFailures: 0, lagAfterIoFail: 0,
    startsArmed: 0, startFailures: 0, startupWriteFailures: 0, restartsAfterFailedStart: 0,
    invalidRejected: 0, bans: 0,
  };
}

/** The running trace hash: h ← sha256(h ‖ utf8(event)), from 32 zero bytes. */
export class Trace {
  #hash: Uint8Array = new Uint8Array(32);
  event(s: string): void {
    this.#hash = sha256(new Uint8Array([...this.#hash, ...utf8(s)]));
  }
  hex(): string { return toHex(this.#hash); }
}

export interface SimWorld {
  readonly o: ResolvedOptions;
  readonly clock: ManualClock;
  /** The run's main stream: workload, fault choices, and every node's own `Random` (forked per start). */
  readonly rng: Prng;
  readonly net: SimNet;
  readonly genesis: Genesis;
  readonly nodes: SimNodeState[];
  /** The funded accounts the workload sends from and to. */
  readonly accounts: KeyPair[];
  readonly log: Logger;
  /** What the byzantine validators did (undefined without any). */
  readonly byz: ByzantineLedger | undefined;
  readonly stats: SimStats;
  readonly trace: Trace;
}

export function slotNow(w: SimWorld): number { return Math.floor((w.clock.now() - w.genesis.genesisTime) / w.o.slotMs); }

export function honestNodes(w: SimWorld): SimNodeState[] { return w.nodes.filter((n) => n.honest); }
