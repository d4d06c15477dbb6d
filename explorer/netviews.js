// Views of the network around the chain: validators (production, missed slots, schedule, equivocation
// evidence), the mempool (size, fee distribution, best-paid transactions), peers and bans, and node health.
import { h, s, fill, section, table, dl, short, time, bytes, memo, badge, blockLink, heightLink, txLink, accountLink } from './dom.js';

/** @typedef {import('./app.js').Ctx} Ctx */

/** @param {HTMLElement} root @param {Ctx} ctx */
export async function validatorsView(root, ctx) {
  const statsBox = h('div', { id: 'validators-table' });
  const slotsBox = h('div', { id: 'validators-slots' });
  const nextBox = h('div', { id: 'validators-next' });
  const evidenceBox = h('div', { id: 'validators-evidence' });
  fill(root,
    h('h1', null, 'Validators'),
    h('p', { class: 'muted' }, `Slot s belongs to validator s mod ${ctx.chain.validators.length}. A slot is missed when the best chain has no block for it.`),
    section('Last 1,000 slots', statsBox),
    section('Recent slots', h('p', { class: 'legend' }, h('span', { class: 'key best' }, 'block on the best chain'), h('span', { class: 'key missed' }, 'missed')), slotsBox),
    section('Next slots', nextBox),
    section('Equivocation evidence', evidenceBox));

  const refresh = async () => {
    const [st, ev] = await Promise.all([ctx.rpc.call('getValidatorStats', { slots: 1000 }), ctx.rpc.call('getEquivocations')]);
    fill(statsBox,
      h('p', { class: 'muted' }, `Slots ${st.fromSlot}–${st.toSlot} (clock: slot ${st.clockSlot}, head: slot ${st.headSlot}).`),
      table(['#', 'Address', 'Scheduled', 'Produced', 'Missed', 'Missed %', 'Last block', 'Equivocations'], st.validators.map((/** @type {any} */ v) => [
        String(v.index), accountLink(v.address, v.address), String(v.scheduled), String(v.produced),
        v.missed ? h('span', { class: 'bad' }, String(v.missed)) : '0',
        v.scheduled ? `${((100 * v.missed) / v.scheduled).toFixed(1)} %` : '—',
        v.lastProducedHeight === null ? '—' : [heightLink(v.lastProducedHeight), ` (slot ${v.lastProducedSlot})`],
        v.equivocations ? h('span', { class: 'bad' }, String(v.equivocations)) : '0',
      ]), { class: 'validators' }));
    // One cell per slot, oldest left; the validator's index in the cell.
    const cells = [...st.recentSlots].reverse();
    const W = 22, G = 3;
    fill(slotsBox, s('svg', { class: 'slots-svg', width: cells.length * (W + G), height: W + 16, role: 'img', 'aria-label': 'recent slots' },
      cells.map((/** @type {any} */ c, /** @type {number} */ i) => s('g', { class: `slot ${c.hash ? 'produced' : 'missed'}` },
        s('title', null, `slot ${c.slot}: validator ${c.validator} ${c.hash ? `produced block ${c.height} ${c.hash}` : 'missed'}`),
        s('rect', { x: i * (W + G), y: 0, width: W, height: W, rx: 3 }),
        s('text', { x: i * (W + G) + W / 2, y: W / 2 + 4, 'text-anchor': 'middle' }, String(c.validator))))));
    fill(evidenceBox, ev.length === 0 ? h('p', { class: 'muted' }, 'No validator has signed two blocks for one slot.') :
      table(['Slot', 'Validator', 'Block', 'Signed header'], ev.map((/** @type {any} */ e) => [
        String(e.slot), accountLink(e.proposer), blockLink(e.blockHash), h('code', { class: 'wrap' }, short(e.header, 24)),
      ]), { class: 'evidence' }));
  };
  const showNext = () => {
    const n = ctx.chain.validators.length;
    const now = Date.now();
    const slot = Math.floor((now - ctx.chain.genesisTime) / ctx.chain.slotMs);
    const rows = [];
    for (let i = 0; i <= 8; i++) {
      const sl = slot + i;
      const at = ctx.chain.genesisTime + sl * ctx.chain.slotMs;
      rows.push([String(sl), i === 0 ? badge('now', 'ok') : `in ${((at - now) / 1000).toFixed(1)} s`, `#${sl % n}`, accountLink(ctx.chain.validators[sl % n])]);
    }
    fill(nextBox, table(['Slot', 'Starts', 'Validator', 'Address'], rows, { class: 'schedule' }));
  };
  await refresh();
  showNext();
  ctx.every(1000, showNext);
  let busy = false;
  ctx.onHead(async () => { if (busy) return; busy = true; try { await refresh(); } catch { /* next head */ } finally { busy = false; } });
}

/** @param {HTMLElement} root @param {Ctx} ctx */
export async function mempoolView(root, ctx) {
  const infoBox = h('div', { id: 'mempool-info' });
  const histBox = h('div', { id: 'mempool-fees' });
  const txBox = h('div', { id: 'mempool-txs' });
  const liveBox = h('p', { id: 'mempool-live', class: 'muted' }, 'Transactions arriving: 0 since this page opened.');
  fill(root, h('h1', null, 'Mempool'), section('Size', infoBox, liveBox), section('Fee distribution', histBox), section('Best-paid transactions (next in line)', txBox));
  let arrived = 0;
  const refresh = async () => {
    const [info, c] = await Promise.all([ctx.rpc.call('getMempoolInfo'), ctx.rpc.call('getMempoolContent', { limit: 50 })]);
    fill(infoBox, dl([
      ['Transactions', h('strong', { id: 'mempool-size' }, String(info.size))],
      ['Bytes', bytes(info.bytes)],
      ['Senders', String(info.senders)],
      ['Limits', `${info.maxCount} transactions, ${bytes(info.maxBytes)}, ${info.maxPerSender} per sender; replacement +${info.replaceBumpPercent} % fee`],
      ['Minimum fee', ctx.amount(info.minFee)],
    ]));
    const max = Math.max(1, ...c.feeHistogram.map((/** @type {any} */ b) => b.count));
    const BW = 56, HH = 120;
    fill(histBox, c.feeHistogram.length === 0 ? h('p', { class: 'muted' }, 'Empty.') : [
      s('svg', { class: 'fees-svg', width: c.feeHistogram.length * (BW + 8) + 8, height: HH + 40, role: 'img', 'aria-label': 'fee distribution' },
        c.feeHistogram.map((/** @type {any} */ b, /** @type {number} */ i) => {
          const bh = Math.max(2, Math.round((HH * b.count) / max));
          return s('g', { class: 'bar' },
            s('title', null, `fee ${b.minFee}–${b.maxFee} minor units: ${b.count} transaction(s), ${b.bytes} bytes`),
            s('rect', { x: 8 + i * (BW + 8), y: HH - bh + 14, width: BW, height: bh }),
            s('text', { x: 8 + i * (BW + 8) + BW / 2, y: HH - bh + 10, 'text-anchor': 'middle' }, String(b.count)),
            s('text', { x: 8 + i * (BW + 8) + BW / 2, y: HH + 30, 'text-anchor': 'middle' }, `≥${b.minFee}`));
        })),
      h('p', { class: 'muted' }, `Fees in minor units, power-of-two buckets; the first ${c.sampled} executable transactions in the order blocks take them.`)]);
    fill(txBox, c.transactions.length === 0 ? h('p', { class: 'muted' }, 'No pending transactions.') :
      table(['Id', 'From', 'To', 'Amount', 'Fee', 'Nonce', 'Size', 'Memo'], c.transactions.map((/** @type {any} */ t) => [
        txLink(t.id), accountLink(t.from), accountLink(t.to), ctx.amount(t.amount), ctx.amount(t.fee), t.nonce, bytes(t.size), memo(t.memo),
      ]), { class: 'txs' }));
  };
  await refresh();
  ctx.sub('pendingTransactions', {}, () => { arrived++; fill(liveBox, `Transactions arriving: ${arrived} since this page opened.`); });
  ctx.every(2000, () => void refresh().catch(() => {}));
}

/** @param {HTMLElement} root @param {Ctx} ctx */
export async function peersView(root, ctx) {
  const peersBox = h('div', { id: 'peers-table' });
  const bansBox = h('div', { id: 'peers-bans' });
  fill(root, h('h1', null, 'Peers'), section('Connected', peersBox), section('Banned', bansBox));
  const refresh = async () => {
    const [peers, bans] = await Promise.all([ctx.rpc.call('getPeers'), ctx.rpc.call('getBans')]);
    fill(peersBox, peers.length === 0 ? h('p', { class: 'muted' }, 'No peers (or P2P is off on this node).') :
      table(['Node id', 'Address', 'Direction', 'Head', 'Score', 'Connected', 'In', 'Out'], peers.map((/** @type {any} */ p) => [
        h('code', { title: p.nodeId }, short(p.nodeId, 6)), h('code', null, p.address), badge(p.direction),
        [heightLink(p.headHeight), ' ', blockLink(p.headHash, short(p.headHash, 4))], h('span', { class: p.score < 0 ? 'bad' : '' }, String(p.score)),
        time(p.connectedAt), bytes(p.bytesIn), bytes(p.bytesOut),
      ]), { class: 'peers' }));
    fill(bansBox, bans.length === 0 ? h('p', { class: 'muted' }, 'Nobody is banned.') :
      table(['Node id', 'Until', 'Reason'], bans.map((/** @type {any} */ b) => [h('code', { title: b.nodeId }, short(b.nodeId, 6)), new Date(b.until).toISOString(), b.reason]), { class: 'bans' }));
  };
  await refresh();
  ctx.every(2000, () => void refresh().catch(() => {}));
}

/** @param {HTMLElement} root @param {Ctx} ctx */
export async function nodeView(root, ctx) {
  const box = h('div', { id: 'node-info' });
  const syncBox = h('div', { id: 'node-sync' });
  fill(root, h('h1', null, 'Node'), section('Health', box), section('Sync', syncBox));
  const refresh = async () => {
    const [health, info, version, sync, chain] = await Promise.all(['getHealth', 'getNodeInfo', 'getVersion', 'getSyncStatus', 'getChainInfo'].map((m) => ctx.rpc.call(m)));
    fill(box, dl([
      ['Status', h('span', { id: 'node-status' }, badge(health.status, health.status === 'ok' ? 'ok' : 'warn'))],
      ['Head', [heightLink(info.height), ' ', blockLink(info.headHash)]],
      ['Head age', `${(health.headAgeMs / 1000).toFixed(1)} s`],
      ['Peers', String(info.peers)],
      ['Mempool', `${info.mempoolSize} transaction(s)`],
      ['Validator', info.validator ? accountLink(info.validator, info.validator) : 'no (a follower)'],
      ['Node id', info.nodeId ? h('code', { class: 'wrap' }, info.nodeId) : '— (P2P off)'],
      ['Listens', info.listen ?? '—'],
      ['Uptime', `${Math.round(info.uptimeMs / 1000)} s`],
      ['Version', `${version.version} (protocol ${version.protocolVersion}, ${version.runtime})`],
      ['Chain', [chain.chainId, ' · genesis ', blockLink(chain.genesisHash)]],
      ['Supply', ctx.amount(chain.totalSupply)],
    ]));
    const pct = sync.target > 0 ? Math.min(100, (100 * sync.height) / sync.target) : 100;
    const bar = h('progress', { max: 100, id: 'node-sync-bar' });
    /** @type {HTMLProgressElement} */ (bar).value = pct;
    fill(syncBox, dl([
      ['State', sync.syncing ? badge('syncing', 'warn') : badge('in step', 'ok')],
      ['Height / target', `${sync.height} / ${sync.target} (${pct.toFixed(1)} %)`],
      ['Progress', bar],
    ]), h('p', { class: 'muted' }, 'Target: while syncing, the head being fetched; otherwise the best head a peer shows. Prometheus metrics: ', h('code', null, '/metrics'), '.'));
  };
  await refresh();
  ctx.every(2000, () => void refresh().catch(() => {}));
}


