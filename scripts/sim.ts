/**
 * Deterministic simulator runner.
 *   npm run sim -- --seed S [--nodes N] [--slots K] [--faults none|lossy|partition|crash|chaos|byzantine|storage|churn]
 *                  [--byzantine K] [--fail-writes P] [--startup-faults P] [--late-joiners N] [--leavers N] [--load L] [--log]
 *   npm run sim -- --swarm COUNT [--nodes N] [--slots K] [--faults P]     many seeds; a failure prints its replay command
 * Every run prints its trace hash: the same seed must print the same hash on every machine.
 */
import { parseArgs } from 'node:util';
import { randomInt } from 'node:crypto';
import { FAULT_PROFILES, Simulation, type FaultProfile, type SimResult } from '../src/sim/simulation.js';

const USAGE = `usage: npm run sim -- --seed S [--nodes N] [--slots K] [--faults ${FAULT_PROFILES.join('|')}]
                      [--byzantine K] [--fail-writes P] [--startup-faults P] [--late-joiners N] [--leavers N] [--load L] [--log] [--json]
       npm run sim -- --swarm COUNT [--nodes N] [--slots K] [--faults P]`;
if (process.argv.includes('--help') || process.argv.includes('-h')) { console.log(USAGE); process.exit(0); }

const { values } = (() => { try { return parseArgs({
  options: {
    seed: { type: 'string' }, nodes: { type: 'string' }, slots: { type: 'string' }, faults: { type: 'string' },
    swarm: { type: 'string' }, seeds: { type: 'string' }, log: { type: 'boolean' }, json: { type: 'boolean' },
    byzantine: { type: 'string' }, 'fail-writes': { type: 'string' }, 'startup-faults': { type: 'string' }, 'late-joiners': { type: 'string' }, leavers: { type: 'string' }, load: { type: 'string' },
  },
  strict: true,
}); } catch (e) { console.error(`${(e as Error).message}\n${USAGE}`); process.exit(2); } })();

const int = (v: string | undefined, d: number, what: string): number => {
  if (v === undefined) return d;
  if (!/^\d+$/.test(v)) { console.error(`--${what} must be a non-negative integer`); process.exit(2); }
  return Number(v);
};
const nodes = int(values.nodes, 5, 'nodes');
const slots = int(values.slots, 200, 'slots');
const faults = (values.faults ?? 'chaos') as FaultProfile;
const opt = (v: string | undefined, what: string): number | undefined => (v === undefined ? undefined : int(v, 0, what));
const byzantine = opt(values.byzantine, 'byzantine');
const lateJoiners = opt(values['late-joiners'], 'late-joiners');
const leavers = opt(values.leavers, 'leavers');
const load = opt(values.load, 'load');
const failWrites = values['fail-writes'] === undefined ? undefined : Number(values['fail-writes']);
if (failWrites !== undefined && !(failWrites >= 0 && failWrites < 1)) { console.error('--fail-writes must be a probability in [0, 1)'); process.exit(2); }
const startupFaults = values['startup-faults'] === undefined ? undefined : Number(values['startup-faults']);
if (startupFaults !== undefined && !(startupFaults >= 0 && startupFaults <= 1)) { console.error('--startup-faults must be a probability in [0, 1]'); process.exit(2); }
const extra = [
  byzantine !== undefined ? `--byzantine ${byzantine}` : '', failWrites !== undefined ? `--fail-writes ${failWrites}` : '', startupFaults !== undefined ? `--startup-faults ${startupFaults}` : '',
  lateJoiners !== undefined ? `--late-joiners ${lateJoiners}` : '', leavers !== undefined ? `--leavers ${leavers}` : '', load !== undefined ? `--load ${load}` : '',
].filter(Boolean).join(' ');
if (!FAULT_PROFILES.includes(faults)) { console.error(`--faults must be one of ${FAULT_PROFILES.join(', ')}`); process.exit(2); }

function line(r: SimResult): string {
  const f = r.txs.fates;
  const b = r.byzantine;
  const byz = b.nodes ? ` | byz ${b.nodes}: ${Object.entries(b.actions).map(([k, v]) => `${k} ${v}`).join(', ')}, released late ${b.released}; equivocations ${b.equivocations}, seen-both ${b.equivocationsSeenBoth} evidence ${b.evidenceRecorded} (events ${b.evidenceEvents}); invalid rejected ${b.invalidRejected}; bans ${b.bans}; frames sent ${Object.values(b.frames).reduce((x, y) => x + y, 0)}` : '';
  const fl = r.faults;
  const io = fl.writeFailures || fl.startsArmed ? ` | write failures ${fl.writeFailures} (at start-up ${fl.startupWriteFailures}; storage crashes ${fl.storageCrashes}, lag tolerated ${fl.lagAfterIoFail}), starts armed ${fl.startsArmed}, failed starts ${fl.startFailures} (recovered ${fl.restartsAfterFailedStart}), retried ${r.txs.retried}` : '';
  const churn = r.faults.lateJoins || r.faults.leaves ? ` | late joins ${r.faults.lateJoins} leaves ${r.faults.leaves}` : '';
  return `seed ${r.seed}: ${r.slots} slots in ${(r.realMs / 1000).toFixed(2)} s = ${r.slotsPerSecond.toFixed(0)} slots/s | height ${r.heads[0]!.height} | txs ack ${r.txs.acknowledged}: confirmed ${f.confirmed}, conflict-confirmed ${f['conflict-confirmed']}, replaced ${f.replaced}, evicted ${f.evicted}, stale ${f.stale}, unaffordable ${f.unaffordable}; rejected ${r.txs.rejected} | crashes ${r.faults.crashes} partitions ${r.faults.partitions} dropped ${r.faults.framesDropped} reorgs ${r.reorgs}${byz}${io}${churn} | trace ${r.traceHash.slice(0, 16)}`;
}

const replay = (seed: number) => `npm run sim -- --seed ${seed} --nodes ${nodes} --slots ${slots} --faults ${faults}${extra ? ' ' + extra : ''}`;

async function one(seed: number): Promise<boolean> {
  try {
    const r = await new Simulation({ seed, nodes, slots, faults, log: values.log ?? false, byzantine, failWrites, startupFaults, lateJoiners, leavers, load }).run();
    console.log(values.json ? JSON.stringify(r) : line(r));
    return true;
  } catch (e) {
    console.log(`seed ${seed}: FAILED — ${(e as Error).message}\n  replay: ${replay(seed)}`);
    return false;
  }
}

if (values.swarm !== undefined) {
  const count = int(values.swarm, 10, 'swarm');
  const fixed = (values.seeds ?? '1,2,3,42,1337').split(',').filter(Boolean).map(Number);
  const fresh = Array.from({ length: Math.max(0, count - fixed.length) }, () => randomInt(1, 2 ** 31));
  console.log(`swarm: ${fixed.length} fixed seeds + ${fresh.length} fresh (${fresh.join(', ')}), ${nodes} nodes, ${slots} slots, faults ${faults}`);
  let failed = 0;
  const t0 = performance.now();
  for (const s of [...fixed, ...fresh]) if (!(await one(s))) failed++;
  console.log(`swarm: ${fixed.length + fresh.length - failed} passed, ${failed} failed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  process.exitCode = failed ? 1 : 0;
} else {
  process.exitCode = (await one(int(values.seed, 1, 'seed'))) ? 0 : 1;
}
