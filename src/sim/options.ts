/** What a simulation run is asked to do: the fault profiles and the options, with their defaults. */

export type FaultProfile = 'none' | 'lossy' | 'partition' | 'crash' | 'chaos' | 'byzantine' | 'storage' | 'churn';
export const FAULT_PROFILES: FaultProfile[] = ['none', 'lossy', 'partition', 'crash', 'chaos', 'byzantine', 'storage', 'churn'];

export interface SimOptions {
  seed: number;
  nodes: number;
  slots: number;
  faults: FaultProfile;
  slotMs?: number;
  /** Transactions submitted per slot (light load ≈ 2). */
  load?: number;
  /** Slots at the end with faults cleared and no new load, for convergence. */
  drainSlots?: number;
  log?: boolean;
  /** Byzantine validators (the last K nodes). Default 0; profile 'byzantine' makes it 1. */
  byzantine?: number;
  /** Probability that a store write (put/del/batch) fails with an I/O error. Profile 'storage': 0.02. */
  failWrites?: number;
  /** Probability that a node whose write failed crashes at the next slot (and restarts from its store). */
  crashOnWriteFailure?: number;
  /**
   * While storage faults are on: probability that a node's start-up (MeshNode.start: Chain.open, mempool
   * load, fork choice over the stored tips, P2P start) has one of its first three writes fail, on top of
   * `failWrites`. A start that fails must fail cleanly (reject with the I/O error) and a later start must
   * succeed. Default 0.5 when `failWrites` > 0.
   */
  startupFaults?: number;
  /** Honest nodes (never node 0) that start only at `lateJoinSlot`, with an empty store. Profile 'churn': 1. */
  lateJoiners?: number;
  lateJoinSlot?: number;
  /** Honest nodes that leave at a third of the run and stay away until the drain. Profile 'churn': 1. */
  leavers?: number;
}

export type ResolvedOptions = Required<SimOptions>;

/** The profile's defaults under the options given (an undefined option takes its default). */
export function resolveOptions(opts: SimOptions): ResolvedOptions {
  const prof = opts.faults;
  const o = {
    slotMs: 1000, load: 2, drainSlots: 30, log: false,
    byzantine: prof === 'byzantine' ? 1 : 0,
    failWrites: prof === 'storage' ? 0.02 : prof === 'chaos' ? 0.01 : 0,
    crashOnWriteFailure: 0.5,
    startupFaults: (opts.failWrites ?? (prof === 'storage' ? 0.02 : prof === 'chaos' ? 0.01 : 0)) > 0 ? 0.5 : 0,
    lateJoiners: prof === 'churn' ? 1 : 0,
    lateJoinSlot: Math.max(1, Math.floor(opts.slots / 5)),
    leavers: prof === 'churn' ? 1 : 0,
    ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)),
  } as ResolvedOptions;
  // Node 0 is the bootnode and always honest; late joiners and leavers are honest nodes besides it.
  if (o.byzantine >= opts.nodes) throw new Error('at least one validator must be honest (byzantine < nodes)');
  if (o.lateJoiners + o.leavers > Math.max(0, opts.nodes - 1 - o.byzantine)) throw new Error('not enough honest nodes besides node 0 for the late joiners and leavers');
  return o;
}
