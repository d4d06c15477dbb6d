/**
 * Fault suite runner: drives a REAL 4-validator network (node processes on loopback behind the test NetProxy,
 * or with --netns in network namespaces) for longer than CI, under a steady transaction load, injecting faults round after round:
 *
 *   every round   SIGKILL one validator (random), restart it on the same datadir after 1–3 slots;
 *   round % 3     0: SIGSTOP a validator for 4–8 slots, then SIGCONT
 *                 1: SIGTERM a validator (must exit 0), restart it
 *                 2: partition the network (2|2 or 3|1) for 4–8 slots, then heal
 *   every round   one byzantine / hostile input from a raw wire client (kinds rotate)
 *   --netns only: round % 5, one network fault (see below)
 *
 * After every fault: recovery = all nodes agree again (same block and state root at a common height) and
 * the chain grew; a supply check sums every account (faucet, recipients, validators) on every node at a fixed
 * head and compares it with the genesis supply. At the end every acknowledged transaction must be confirmed
 * on every node (lost = 0) and each recipient's balance must equal what was sent to it.
 *
 *   npx tsc -p tsconfig.json && node dist/scripts/fault-suite.js [--rounds N] [--seed S] [--netns]
 *
 * `--netns` (root, iproute2) runs each validator in its own network namespace (harness/netns.ts: a veth
 * pair per host into bridge br0 of a hub namespace, 10.77.0.x addresses inside those namespaces only; each
 * node fronted by a userspace fault proxy in its namespace, nsagent.ts). Partitions then MOVE the hub-side veth
 * ends of one group to bridge br1 (a real L2 cut; connections hang rather than being reset), and each round
 * adds one network fault, rotating:
 *                 0: latency + jitter on every link (30–120 ms + 0–100 ms, order kept) for 6–10 slots
 *                 1: asymmetric slowness: one node's sent OR received data +150–250 ms for 6–10 slots
 *                 2: bandwidth cap: a `tbf` qdisc (128/256/512 kbit/s) on one node's upload, download or both
 *                 3: stall: every connection of one node held for 2–5 slots, then released in order
 *                 4: connection resets: RST every connection of one node, one slot later of another
 * These stay within the schedule's limits (one-way delay + jitter < one slot), so the chain must stay live
 * through them: over the fault window every node's height (stall, resets: the best height) must grow by
 * ≥ 1/4 of the slots, and the network must converge once the fault is lifted. The kernel has no `netem`, hence
 * the userspace proxy for delays, stalls and resets. Where namespaces cannot be created (not root, no `ip`/`tc`,
 * no veth/bridge support; MESHLEDGER_NETNS=0 forces it) the run says why and falls back to the 127.0.0.1
 * proxy variant. Raw wire clients and RPC reach the nodes through loopback listeners bridged over Unix sockets.
 *
 * Prints ONE table and writes the figures to scripts/results/fault-suite.json (--netns:
 * fault-suite-netns.json; FAULT_SUITE_OUT overrides both). Exit code 1 if anything was lost or an invariant
 * failed. In the root namespace only 127.0.0.0/8 is used; every namespace is deleted at the end, on SIGINT/SIGTERM
 * and on errors (a SIGKILLed run's namespaces are removed by the next --netns run).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fromHex, toHex } from '../src/encoding/bytes.js';
import { encodeCanonical } from '../src/encoding/canonical.js';
import { makeBlock, signHeader } from '../src/ledger/block.js';
import { genesisFromJson } from '../src/ledger/genesis.js';
import { merkleRoot } from '../src/ledger/merkle.js';
import { proposerFor, slotAt, slotStart } from '../src/ledger/schedule.js';
import { MSG } from '../src/p2p/messages.js';
import { Harness, REPO_ROOT, isTransportError, scaled, seededRandom, signTransfer, type NodeProc } from '../harness/proc.js';
import { agreement, Cluster, headerAt, heads, memKey, WirePeer, writeGenesis, writeKey } from '../harness/p2pnet.js';
import { NetnsTopology, NsCluster, probeNetns } from '../harness/netns.js';

const argv = process.argv.slice(2);
const arg = (name: string): string | undefined => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
const ROUNDS = Math.max(1, Number(arg('--rounds') ?? 20) || 20);
const SEED = arg('--seed') !== undefined ? Number(arg('--seed')) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
const SLOT_MS = 400;
const N = 4;
const SUPPLY = 10n ** 15n;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const rng = seededRandom(SEED);
const NETNS_ASKED = argv.includes('--netns');

// Network fault kinds of the namespace variant (besides partitions by bridge moves).
const NET_KINDS = ['latency+jitter', 'asymmetric slowness', 'bandwidth cap (tbf)', 'stall', 'connection reset'] as const;
type NetKind = typeof NET_KINDS[number];
const faults: Record<string, number> = {};
const recoveries: Record<string, number> = {};
const recoveryMs: Record<string, number[]> = {};
/** Liveness during slow-network faults: windows checked, windows live, and the lowest growth seen. */
const liveness: Record<string, { checks: number; live: number; worst: string }> = {};
const addKind = (k: string) => { faults[k] = 0; recoveries[k] = 0; recoveryMs[k] = []; };
const byzantine: Record<string, number> = {};
const failures: string[] = [];
let supplyChecks = 0;
let supplyChecksPassed = 0;

function log(msg: string): void { process.stderr.write(`[fault-suite ${new Date().toISOString().slice(11, 19)}] ${msg}\n`); }

async function main(): Promise<number> {
  let netns = false;
  let netnsWhy: string | undefined;
  if (NETNS_ASKED) {
    const p = await probeNetns();
    netns = p.ok;
    if (!p.ok) {
      netnsWhy = p.why;
      log(`--netns: network namespaces cannot be created here: ${p.why}`);
      log('--netns: falling back to the 127.0.0.1 source-IP proxy variant (no bridge partitions, tbf caps, jitter, stalls or resets)');
    }
  }
  const PARTITION = netns ? 'partition (bridge move)' : 'partition';
  for (const k of ['SIGKILL', 'SIGSTOP/SIGCONT', 'SIGTERM restart', PARTITION, ...(netns ? NET_KINDS : [])]) addKind(k);
  log(`rounds ${ROUNDS}, seed ${SEED}, network: ${netns ? 'network namespaces' : '127.0.0.1 proxy'}`);
  const t0 = Date.now();
  const h = new Harness();
  let cluster: Cluster | undefined;
  let topo: NetnsTopology | undefined;
  try {
    const dir = await h.dir();
    const validators = await Promise.all(Array.from({ length: N }, (_, i) => writeKey(dir, `v${i}`)));
    const faucet = await writeKey(dir, 'faucet');
    const recipients = Array.from({ length: 4 }, () => memKey().address);
    const genesis = await writeGenesis(dir, { validators, alloc: [[faucet, SUPPLY]], slotMs: SLOT_MS });
    const g = genesisFromJson(genesis.json);
    const chainId = genesis.chainId;
    const specs = validators.map((key, i) => ({
      key, bootnodes: Array.from({ length: N }, (_, j) => j).filter((j) => j !== i), logLevel: 'info' as const,
    }));
    let c: Cluster | NsCluster;
    if (netns) {
      topo = await NetnsTopology.create(N, { dir });
      log(`namespaces: ${topo.namespaces.join(' ')}`);
      c = new NsCluster(h, topo, genesis, specs);
    } else {
      c = cluster = await Cluster.create(h, genesis, specs, { ipBase: 80 });
    }
    const wireUrl = (i: number): string => (topo ? topo.hosts[i]!.wireUrl : `ws://${(c as Cluster).proxy.nodes[i]!.p2pArg}`);
    const partition = async (groups: number[][]): Promise<void> => { if (topo) await topo.partition(groups); else (c as Cluster).proxy.partition(groups); };
    const heal = async (): Promise<void> => { if (topo) await topo.heal(); else (c as Cluster).proxy.heal(); };
    await c.startAll();
    const live = (): NodeProc[] => c.nodes.filter((n): n is NodeProc => !!n && n.running);
    const all = (): NodeProc[] => c.nodes.map((n) => n!);
    const genesisHash = (await all()[0]!.rpc('getChainInfo')).genesisHash as string;

    const waitAgree = async (minHeight: number, ms = scaled(60_000)): Promise<number> => {
      const start = Date.now();
      await h.waitFor(() => agreement(all(), minHeight), ms, `all ${N} nodes agree at height ≥ ${minHeight}`, all(), 250);
      return Date.now() - start;
    };
    await waitAgree(3);
    log('network up');

    // ---------------------------------------------------------------- load
    const sent = new Map<string, { to: string; amount: bigint; nonce: bigint }>();
    let nonce = 0n;
    let stopLoad = false;
    let loadErrors = 0;
    const stopped = new Set<number>(); // SIGSTOPped node indices (not to be used for load)
    const load = (async () => {
      while (!stopLoad) {
        const to = recipients[Number(nonce % BigInt(recipients.length))]!;
        const amount = 1000n + nonce;
        const s = signTransfer({ from: faucet, to, amount, nonce, chainId });
        // The same signed bytes are re-sent (to any node) until one acknowledges them: idempotent by id.
        for (let attempt = 0; !stopLoad; attempt++) {
          const targets = c.nodes.map((n, i) => ({ n, i })).filter((x) => x.n && x.n.running && !stopped.has(x.i));
          if (!targets.length) { await sleep(100); continue; }
          const target = targets[rng.int(0, targets.length - 1)]!.n!;
          try {
            const id = await target.rpc('sendTransaction', { tx: s.hex }, { timeoutMs: 3000 });
            if (id !== s.id) failures.push(`sendTransaction returned ${id} for ${s.id}`);
            sent.set(s.id, { to, amount, nonce });
            nonce++;
            break;
          } catch (e) {
            loadErrors++;
            if (!isTransportError(e)) { log(`load: ${(e as Error).message}`); await sleep(300); }
            await sleep(50);
          }
        }
        await sleep(120);
      }
    })();

    // ---------------------------------------------------------------- invariants
    const accounts = [faucet.address, ...recipients, ...validators.map((v) => v.address)];
    const supplyCheck = async (): Promise<void> => {
      for (const n of live()) {
        supplyChecks++;
        for (let attempt = 0; attempt < 10; attempt++) {
          const before = (await n.rpc('getChainInfo')).headHash;
          let sum = 0n;
          for (const a of accounts) sum += BigInt((await n.rpc('getBalance', { address: a })).balance);
          const after = (await n.rpc('getChainInfo')).headHash;
          if (before !== after) continue; // a block landed in between: read again
          if (sum === SUPPLY) supplyChecksPassed++;
          else failures.push(`supply on ${n.name} at ${after}: ${sum} ≠ ${SUPPLY}`);
          break;
        }
      }
    };
    const maxHeight = async () => Math.max(...(await heads(live())).map((x) => x.height));
    const recovered = async (kind: string, since: number, minHeight: number) => {
      try {
        await waitAgree(minHeight);
        recoveries[kind]!++;
        recoveryMs[kind]!.push(Date.now() - since);
      } catch (e) {
        failures.push(`${kind}: no recovery: ${(e as Error).message.split('\n')[0]}`);
      }
    };

    // ---------------------------------------------------------------- network faults (namespace variant)
    // Slow-network faults stay within the schedule's limits: one-way delay + jitter ≤ 300 ms < one 400 ms slot,
    // caps ≥ 128 kbit/s (a block of this load is a few kB), stalls ≤ 5 slots. The chain must stay live through
    // them: over the fault window every node's height (stall, reset: the best height) grows by ≥ 1/4 of the slots.
    const netFault = async (t: NetnsTopology, kind: NetKind): Promise<void> => {
      const i = rng.int(0, N - 1);
      const h0 = await maxHeight();
      const before = await heads(all());
      const w0 = Date.now();
      let detail = '';
      let perNode = true;
      switch (kind) {
        case 'latency+jitter': {
          const ms = rng.int(30, 120);
          const jitter = rng.int(20, 100);
          await t.setLatencyAll(ms, jitter);
          detail = `${ms} ms + 0–${jitter} ms on every link`;
          await sleep(SLOT_MS * rng.int(6, 10));
          await t.clearDelays();
          break;
        }
        case 'asymmetric slowness': {
          const ms = rng.int(150, 250);
          const dir = rng.pick(['up', 'down'] as const);
          await t.slowHost(i, ms, rng.int(0, 50), dir);
          detail = `node ${i} ${dir === 'up' ? 'sends' : 'receives'} +${ms} ms, other direction untouched`;
          await sleep(SLOT_MS * rng.int(6, 10));
          await t.clearDelays();
          break;
        }
        case 'bandwidth cap (tbf)': {
          const kbit = rng.pick([128, 256, 512]);
          const dir = rng.pick(['up', 'down', 'both'] as const);
          await t.rateLimit(i, kbit, dir);
          await sleep(SLOT_MS * rng.int(6, 10));
          detail = `node ${i} ${kbit} kbit/s ${dir}: ${await t.rateStats(i)}`;
          await t.clearRate(i);
          break;
        }
        case 'stall': {
          const ms = SLOT_MS * rng.int(2, 5);
          await t.stall(i, ms);
          detail = `node ${i} links held ${ms} ms`;
          perNode = false;
          await sleep(ms + SLOT_MS * 2);
          break;
        }
        case 'connection reset': {
          const n = await t.reset(i);
          await sleep(SLOT_MS);
          const m = await t.reset(rng.int(0, N - 1));
          detail = `${n} + ${m} connections reset`;
          perNode = false;
          await sleep(SLOT_MS * 5);
          break;
        }
      }
      faults[kind]!++;
      const after = await heads(all());
      const slots = Math.floor((Date.now() - w0) / SLOT_MS);
      const growth = after.map((x, k) => x.height - before[k]!.height);
      const g = perNode ? Math.min(...growth) : Math.max(...after.map((x) => x.height)) - Math.max(...before.map((x) => x.height));
      const lv = (liveness[kind] ??= { checks: 0, live: 0, worst: '' });
      lv.checks++;
      const worstRatio = lv.worst ? Number(lv.worst.split('/')[0]) / Number(lv.worst.split('/')[1]) : Infinity;
      if (g / Math.max(1, slots) < worstRatio) lv.worst = `${g}/${slots}`;
      if (g >= Math.max(1, Math.floor(slots / 4))) lv.live++;
      else failures.push(`${kind} (${detail}): chain not live: growth ${growth.join(',')} over ${slots} slots`);
      log(`  ${kind}: ${detail}; growth ${growth.join(',')} over ${slots} slots`);
      await recovered(kind, Date.now(), Math.max(h0 + 1, ...after.map((x) => x.height)));
    };

    // ---------------------------------------------------------------- byzantine inputs
    const kinds = ['garbage', 'wrong_proposer', 'forged_signature', 'bad_state_root', 'invalid_tx_sig', 'oversized', 'truncated', 'future_valid'] as const;
    const byzantineInput = async (kind: typeof kinds[number], target: number): Promise<void> => {
      const n = c.node(target);
      const url = wireUrl(target);
      const key = memKey();
      const p = await WirePeer.connect(url);
      try {
        await p.handshake({ key, chainId, genesisHash });
        const ci = await n.rpc('getChainInfo');
        const head = (await headerAt(n, ci.height))!;
        const slot = Math.max(ci.headSlot + 1, slotAt(g, Date.now()));
        const block = (o: { slot: number; signer: Uint8Array; proposer?: Uint8Array; stateRoot?: string }) => makeBlock(signHeader({
          chainId, height: head.height + 1, slot: o.slot, parentHash: fromHex(head.hash), timestamp: slotStart(g, o.slot),
          txRoot: merkleRoot([]), stateRoot: fromHex(o.stateRoot ?? head.stateRoot), proposer: o.proposer ?? proposerFor(g, o.slot),
        }, o.signer), []).bytes;
        const keyFor = (s: number) => validators.find((v) => toHex(v.publicKey) === toHex(proposerFor(g, s)))!.secretKey;
        let expectClose = true;
        switch (kind) {
          case 'garbage': for (let i = 0; i < 6; i++) p.sendRaw(new Uint8Array([0xc1, ...randomBytes(16)])); break;
          case 'wrong_proposer':
            for (let i = 0; i < 2; i++) p.send({ type: MSG.BLOCK, block: block({ slot: slot + i, signer: keyFor(slot + i + 1), proposer: proposerFor(g, slot + i + 1) }) });
            break;
          case 'forged_signature': for (let i = 0; i < 2; i++) p.send({ type: MSG.BLOCK, block: block({ slot: slot + i, signer: key.secretKey }) }); break;
          case 'bad_state_root':
            // Two empty blocks in the current slot with bogus state roots (statically valid, fail on apply).
            for (let i = 0; i < 2; i++) p.send({ type: MSG.BLOCK, block: block({ slot, signer: keyFor(slot), stateRoot: toHex(randomBytes(32)) }) });
            break;
          case 'invalid_tx_sig':
            for (let i = 0; i < 6; i++) {
              const s = signTransfer({ from: faucet, to: memKey().address, amount: 1n, nonce: 10_000_000n + BigInt(i), chainId });
              const sig = new Uint8Array(s.tx.signature); sig[0]! ^= 0xff;
              p.send({ type: MSG.TXS, txs: [encodeCanonical([1, chainId, s.tx.from, s.tx.to, s.tx.amount, s.tx.fee, s.tx.nonce, s.tx.memo, sig])] });
            }
            break;
          case 'oversized': for (let i = 0; i < 2; i++) p.sendRaw(encodeCanonical([MSG.INV_BLOCK, new Uint8Array(300), i])); break;
          case 'truncated': for (let i = 0; i < 4; i++) p.sendRaw(encodeCanonical([MSG.STATUS, 1, new Uint8Array(32), 1]).subarray(0, 20)); break;
          case 'future_valid': {
            const far = slotAt(g, Date.now() + 3_600_000);
            p.send({ type: MSG.BLOCK, block: block({ slot: far, signer: keyFor(far) }) });
            expectClose = false;
            break;
          }
        }
        byzantine[kind] = (byzantine[kind] ?? 0) + 1;
        if (expectClose) {
          const cl = await p.waitClosed(scaled(15_000)).catch(() => undefined);
          if (cl?.code !== 4007) failures.push(`byzantine ${kind} on ${n.name}: expected close 4007, got ${cl ? `${cl.code} ${cl.reason}` : 'still open'}`);
        } else {
          await sleep(800);
          const score = ((await n.rpc('getPeers')) as { nodeId: string; score: number }[]).find((x) => x.nodeId === toHex(key.publicKey))?.score;
          if (p.close || score !== 0) failures.push(`byzantine ${kind} on ${n.name}: a validly signed future block was penalised (score ${score}, close ${p.close?.code})`);
        }
      } finally {
        p.terminate();
      }
    };

    // ---------------------------------------------------------------- rounds
    for (let r = 0; r < ROUNDS; r++) {
      const rt = Date.now();
      // SIGKILL + restart.
      {
        const i = rng.int(0, N - 1);
        const victim = c.node(i);
        const h0 = await maxHeight();
        await h.kill(victim, 'SIGKILL');
        faults.SIGKILL!++;
        await sleep(SLOT_MS * rng.int(1, 3));
        const since = Date.now();
        c.nodes[i] = await h.restart(victim, { readyTimeoutMs: scaled(60_000) });
        await recovered('SIGKILL', since, h0 + 1);
      }
      // One more fault kind, rotating.
      const kind = (['SIGSTOP/SIGCONT', 'SIGTERM restart', 'partition'] as const)[r % 3]!;
      const i = rng.int(0, N - 1);
      const h0 = await maxHeight();
      if (kind === 'SIGSTOP/SIGCONT') {
        const n = c.node(i);
        stopped.add(i);
        n.child.kill('SIGSTOP');
        faults[kind]!++;
        await sleep(SLOT_MS * rng.int(4, 8));
        n.child.kill('SIGCONT');
        stopped.delete(i);
        await recovered(kind, Date.now(), h0 + 1);
      } else if (kind === 'SIGTERM restart') {
        const n = c.node(i);
        const ex = await h.stop(n);
        faults[kind]!++;
        if (ex.code !== 0 || ex.forced) failures.push(`SIGTERM ${n.name}: exit ${JSON.stringify(ex)}\n${n.tail(12)}`);
        await sleep(SLOT_MS * 2);
        const since = Date.now();
        c.nodes[i] = await h.restart(n, { readyTimeoutMs: scaled(60_000) });
        await recovered(kind, since, h0 + 1);
      } else {
        const groups = rng.next() < 0.5 ? [[0, 1], [2, 3]] : [[0, 1, 2].filter((x) => x !== i).concat(i === 3 ? [] : [3]), [i]];
        await partition(groups);
        faults[PARTITION]!++;
        await sleep(SLOT_MS * rng.int(4, 8));
        await heal();
        await recovered(PARTITION, Date.now(), h0 + 1);
      }
      // Namespace variant: one network fault per round, rotating.
      if (topo) await netFault(topo, NET_KINDS[r % NET_KINDS.length]!);
      // A byzantine input against a random node.
      try {
        await byzantineInput(kinds[r % kinds.length]!, rng.int(0, N - 1));
      } catch (e) {
        failures.push(`byzantine ${kinds[r % kinds.length]}: ${(e as Error).message.split('\n')[0]}`);
      }
      await supplyCheck();
      log(`round ${r + 1}/${ROUNDS} done in ${Date.now() - rt} ms (height ${await maxHeight()}, txs acked ${sent.size}, failures ${failures.length})`);
    }

    // ---------------------------------------------------------------- drain and final checks
    stopLoad = true;
    await load;
    await waitAgree((await maxHeight()) + 1);
    const unconfirmed = async (): Promise<string[]> => {
      const out: string[] = [];
      for (const n of all()) for (const id of sent.keys()) if ((await n.rpc('getTransaction', { id })).status !== 'confirmed') out.push(`${n.name}:${id.slice(0, 12)}`);
      return out;
    };
    let left: string[] = [];
    const drainStart = Date.now();
    while (Date.now() - drainStart < scaled(90_000)) {
      left = await unconfirmed();
      if (!left.length) break;
      await sleep(1000);
    }
    const lostIds = new Set(left.map((x) => x.split(':')[1]));
    if (left.length) failures.push(`${lostIds.size} acknowledged transaction(s) not confirmed on every node: ${left.slice(0, 5).join(', ')}`);
    await waitAgree((await maxHeight()));
    const expected = new Map<string, bigint>();
    for (const s of sent.values()) expected.set(s.to, (expected.get(s.to) ?? 0n) + s.amount);
    for (const n of all()) for (const a of recipients) {
      const bal = BigInt((await n.rpc('getBalance', { address: a })).balance);
      if (bal !== (expected.get(a) ?? 0n)) failures.push(`${n.name}: recipient ${a.slice(0, 12)} has ${bal}, expected ${expected.get(a) ?? 0n} (double-applied or lost)`);
    }
    await supplyCheck();

    // Bans from every log of every process (restarts included).
    let bans = 0;
    for (const n of h.nodes) bans += n.logEntries().filter((e) => e.msg === 'peer banned').length;
    const honestIds = new Set<string>();
    for (const n of h.nodes) for (const e of n.logEntries()) if (e.msg === 'p2p started' && e.nodeId) honestIds.add(e.nodeId);
    let honestBanned = 0;
    for (const n of h.nodes) honestBanned += n.logEntries().filter((e) => e.msg === 'peer banned' && honestIds.has(e.nodeId)).length;
    if (honestBanned) failures.push(`${honestBanned} ban(s) of honest nodes`);

    const finalHeight = await maxHeight();
    const avg = (a: number[]) => (a.length ? Math.round(a.reduce((x, y) => x + y, 0) / a.length) : 0);
    const rows: [string, string][] = [
      ['rounds / seed', `${ROUNDS} / ${SEED}`],
      ...(NETNS_ASKED ? [['network', netns ? `namespaces (${N} hosts, veth → hub bridges, tbf, userspace fault proxies)` : `127.0.0.1 source-IP proxy${netnsWhy ? ` (--netns unavailable: ${netnsWhy})` : ''}`] as [string, string]] : []),
      ...Object.keys(faults).map((k) => [`fault: ${k}`, `${faults[k]} injected, ${recoveries[k]} recovered (avg ${avg(recoveryMs[k]!)} ms, max ${Math.max(0, ...recoveryMs[k]!)} ms)${liveness[k] ? `; live ${liveness[k]!.live}/${liveness[k]!.checks} (worst ${liveness[k]!.worst} blocks/slots)` : ''}`] as [string, string]),
      ...kinds.map((k) => [`byzantine: ${k}`, `${byzantine[k] ?? 0} tried`] as [string, string]),
      ['bans (all node logs)', `${bans} (honest nodes banned: ${honestBanned})`],
      ['transactions submitted', String(sent.size)],
      ['transactions confirmed', String(sent.size - lostIds.size)],
      ['transactions lost', String(lostIds.size)],
      ['load send errors (retried)', String(loadErrors)],
      ['supply checks passed', `${supplyChecksPassed} / ${supplyChecks}`],
      ['final height', String(finalHeight)],
      ['duration', `${((Date.now() - t0) / 1000).toFixed(0)} s`],
      ['invariant failures', String(failures.length)],
    ];
    const w = Math.max(...rows.map((x) => x[0].length));
    console.log(`${'-'.repeat(w + 2)}+${'-'.repeat(60)}`);
    for (const [k, v] of rows) console.log(` ${k.padEnd(w)} | ${v}`);
    console.log(`${'-'.repeat(w + 2)}+${'-'.repeat(60)}`);
    for (const f of failures) console.log(`FAILURE: ${f}`);

    // FAULT_SUITE_OUT redirects the figures (CI's short run must not overwrite the recorded full run).
    // The namespace variant records its own figures next to the loopback run's.
    const outFile = process.env.FAULT_SUITE_OUT ?? path.join(REPO_ROOT, 'scripts', 'results', netns ? 'fault-suite-netns.json' : 'fault-suite.json');
    mkdirSync(path.dirname(outFile), { recursive: true });
    writeFileSync(outFile, JSON.stringify({
      date: new Date().toISOString(), rounds: ROUNDS, seed: SEED, validators: N, slotMs: SLOT_MS, netns,
      ...(netnsWhy ? { netnsUnavailable: netnsWhy } : {}), faults, recoveries, recoveryMs, ...(netns ? { liveness } : {}), byzantine, bans, honestBanned,
      transactions: { submitted: sent.size, confirmed: sent.size - lostIds.size, lost: lostIds.size, sendErrors: loadErrors },
      supplyChecks: { passed: supplyChecksPassed, total: supplyChecks }, finalHeight, durationMs: Date.now() - t0, failures,
    }, null, 2) + '\n');
    return failures.length || lostIds.size ? 1 : 0;
  } finally {
    await cluster?.close();
    await h.cleanup();
    await topo?.destroy();
  }
}

main().then((code) => { process.exitCode = code; }, (e) => { console.error(e); process.exitCode = 1; });

