// Views of the chain itself: the overview (live head, recent blocks, missed slots, a small fork view),
// and block, transaction and account pages.
import { h, fill, section, table, dl, time, bytes, memo, badge, link, blockLink, heightLink, txLink, accountLink, errorBox } from './dom.js';
import { renderTree } from './forks.js';

/** @typedef {import('./app.js').Ctx} Ctx */

/** @param {HTMLElement} root @param {Ctx} ctx */
export async function overview(root, ctx) {
  const headBox = h('div', { id: 'overview-head' });
  const blocksBox = h('div', { id: 'recent-blocks' });
  const slotsBox = h('div', { id: 'overview-slots' });
  const treeBox = h('div', { id: 'overview-tree', class: 'tree-box' });
  fill(root,
    h('h1', null, 'Overview'),
    h('div', { class: 'grid2' }, section('Head', headBox), section('Validators: last 200 slots', slotsBox, h('p', null, link(['validators'], 'All validators, schedule and evidence →')))),
    section('Fork view: last 24 heights', treeBox, h('p', null, link(['forks'], 'Larger fork view and reorgs →'))),
    section('Recent blocks', blocksBox));

  const refreshBlocks = async () => {
    const blocks = await ctx.rpc.call('getBlockSummaries', { toHeight: 'latest', count: 20 });
    fill(blocksBox, table(['Height', 'Hash', 'Slot', 'Proposer', 'Txs', 'Size', 'Time'], blocks.map((/** @type {any} */ b) => [
      heightLink(b.height), blockLink(b.hash), String(b.slot), accountLink(b.proposer), String(b.txCount), bytes(b.size), time(b.timestamp),
    ]), { class: 'blocks' }));
  };
  const refreshHead = async () => {
    const [health, sync] = await Promise.all([ctx.rpc.call('getHealth'), ctx.rpc.call('getSyncStatus')]);
    const info = await ctx.rpc.call('getChainInfo');
    fill(headBox, dl([
      ['Height', h('strong', { id: 'overview-height' }, String(info.height))],
      ['Hash', blockLink(info.headHash, info.headHash)],
      ['Slot', String(info.headSlot)],
      ['Finalized', h('span', { class: 'muted', title: 'No finality in the protocol yet' }, 'n/a (no finality yet)')],
      ['Head age', `${(health.headAgeMs / 1000).toFixed(1)} s`],
      ['Node', [badge(health.status, health.status === 'ok' ? 'ok' : 'warn'), ` ${health.peers} peer(s)`, sync.syncing ? ` · syncing to ${sync.target}` : '']],
      ['Validators', `${info.validators.length}, one slot each in turn, ${info.slotMs} ms per slot`],
    ]));
  };
  const refreshSlots = async () => {
    const st = await ctx.rpc.call('getValidatorStats', { slots: 200 });
    fill(slotsBox, table(['#', 'Validator', 'Produced', 'Missed'], st.validators.map((/** @type {any} */ v) => [
      String(v.index), accountLink(v.address), String(v.produced), v.missed > 0 ? h('span', { class: 'bad' }, String(v.missed)) : '0',
    ]), { class: 'validators-mini' }));
  };
  const refreshTree = async () => {
    const tree = await ctx.rpc.call('getBlockTree', { depth: 24 });
    fill(treeBox, renderTree(tree, { compact: true }));
    treeBox.scrollLeft = treeBox.scrollWidth;
  };
  await Promise.all([refreshHead(), refreshBlocks(), refreshSlots(), refreshTree()]);
  let busy = false;
  ctx.onHead(async () => {
    if (busy) return; // one refresh at a time; the next head catches up
    busy = true;
    try { await Promise.all([refreshHead(), refreshBlocks(), refreshSlots(), refreshTree()]); } catch { /* next head */ } finally { busy = false; }
  });
}

/** @param {HTMLElement} root @param {Ctx} ctx @param {string} arg height or hash */
export async function blockView(root, ctx, arg) {
  const sel = /^\d+$/.test(arg) ? { height: Number(arg) } : arg === 'latest' ? { height: 'latest' } : { hash: arg.toLowerCase() };
  const b = await ctx.rpc.call('getBlock', { ...sel, transactions: true });
  const onBest = await ctx.rpc.call('getBlockHeader', { height: b.height }).then((x) => x.hash === b.hash, () => false);
  const conf = h('span', { id: 'block-confirmations' });
  const showConf = (/** @type {number} */ headHeight) => fill(conf, onBest ? String(headHeight - b.height + 1) : 'not on the best chain');
  showConf((await ctx.rpc.call('getChainInfo')).height);
  const txs = b.transactions.slice(0, 500);
  fill(root,
    h('h1', null, `Block ${b.height}`, ' ', onBest ? badge('best chain', 'ok') : badge('side branch', 'warn')),
    h('p', { class: 'pager' }, b.height > 0 ? link(['block', b.parentHash], '← parent') : null, ' ', onBest ? link(['block', String(b.height + 1)], 'next →') : null),
    section('Header', dl([
      ['Hash', h('code', { id: 'block-hash' }, b.hash)],
      ['Height', String(b.height)],
      ['Slot', String(b.slot)],
      ['Time', [new Date(b.timestamp).toISOString(), ' (', time(b.timestamp), ')']],
      ['Proposer', b.height === 0 ? 'genesis' : accountLink(b.proposer, b.proposer)],
      ['Parent', b.height === 0 ? '—' : blockLink(b.parentHash, b.parentHash)],
      ['Transactions', String(b.txCount)],
      ['Size', bytes(b.size)],
      ['Confirmations', conf],
      ['State root', h('code', null, b.stateRoot)],
      ['Tx root', h('code', null, b.txRoot)],
      ['Signature', h('code', { class: 'wrap' }, b.signature)],
    ])),
    section(`Transactions (${b.txCount})`,
      txs.length === 0 ? h('p', { class: 'muted' }, 'No transactions.') :
        table(['#', 'Id', 'From', 'To', 'Amount', 'Fee', 'Memo'], txs.map((/** @type {any} */ t, /** @type {number} */ i) => [
          String(i), txLink(t.id), accountLink(t.from), accountLink(t.to), ctx.amount(t.amount), ctx.amount(t.fee), memo(t.memo),
        ]), { class: 'txs' }),
      b.transactions.length > txs.length ? h('p', { class: 'muted' }, `First ${txs.length} of ${b.transactions.length} shown.`) : null));
  ctx.onHead((head) => showConf(head.height));
}

/** @param {HTMLElement} root @param {Ctx} ctx @param {string} id */
export async function txView(root, ctx, id) {
  const render = (/** @type {any} */ st, /** @type {number} */ headHeight) => {
    if (st.status === 'unknown') {
      fill(root, h('h1', null, 'Transaction'), h('p', null, 'This node does not know transaction ', h('code', null, id), st.reason ? ` (dropped: ${st.reason})` : '', '.'));
      return;
    }
    const t = st.transaction;
    fill(root,
      h('h1', null, 'Transaction ', st.status === 'confirmed' ? badge('confirmed', 'ok') : badge('pending', 'warn')),
      section('Transfer', dl([
        ['Id', h('code', { id: 'tx-id' }, t.id)],
        ['Status', st.status === 'confirmed' ? ['in block ', heightLink(st.blockHeight), ' (', blockLink(st.blockHash), '), index ', String(st.index), ', ', h('span', { id: 'tx-confirmations' }, String(headHeight - st.blockHeight + 1)), ' confirmation(s)'] : 'in the mempool, waiting for a block'],
        ['From', accountLink(t.from, t.from)],
        ['To', accountLink(t.to, t.to)],
        ['Amount', ctx.amount(t.amount)],
        ['Fee', ctx.amount(t.fee)],
        ['Nonce', t.nonce],
        ['Memo', h('span', { id: 'tx-memo', class: 'memo-full' }, t.memo)],
        ['Signature', h('code', { class: 'wrap' }, t.signature)],
      ])));
  };
  let st = await ctx.rpc.call('getTransaction', { id });
  let headHeight = (await ctx.rpc.call('getChainInfo')).height;
  render(st, headHeight);
  ctx.sub('transaction', { id }, (next) => { st = next; render(st, headHeight); });
  ctx.onHead((head) => { headHeight = head.height; if (st.status === 'confirmed') render(st, headHeight); });
}

/** @param {HTMLElement} root @param {Ctx} ctx @param {string} address */
export async function accountView(root, ctx, address) {
  const summary = h('div', { id: 'account-summary' });
  const history = h('div', { id: 'account-history' });
  const more = h('div');
  fill(root, h('h1', null, 'Account'), h('p', null, h('code', { class: 'wrap', id: 'account-address' }, address)), section('Balance', summary), section('History', history, more));

  const showSummary = async () => {
    const a = await ctx.rpc.call('getAccount', { address });
    fill(summary, dl([
      ['Balance', h('strong', { id: 'account-balance' }, ctx.amount(a.balance))],
      ['Nonce', a.nonce],
      ['Pending here', `${a.pending} (next nonce ${a.nextNonce})`],
    ]));
  };
  /** @type {HTMLElement} */
  let tbody;
  const showPage = async (/** @type {string | undefined} */ cursor) => {
    const page = await ctx.rpc.call('getAccountTransactions', { address, limit: 20, ...(cursor ? { cursor } : {}) });
    const rows = page.transactions.map((/** @type {any} */ e) => {
      const t = e.transaction;
      const sent = e.direction === 'sent';
      return h('tr', null,
        h('td', null, heightLink(e.height)), h('td', null, time(e.timestamp)), h('td', null, txLink(e.id)),
        h('td', null, sent ? badge('out', 'out') : badge('in', 'in')), h('td', null, accountLink(sent ? t.to : t.from)),
        h('td', { class: 'num' }, (sent ? '−' : '+') + ctx.amount(t.amount)), h('td', { class: 'num' }, sent ? ctx.amount(t.fee) : ''), h('td', null, memo(t.memo)));
    });
    if (!cursor) {
      tbody = h('tbody', null, rows);
      fill(history, page.transactions.length === 0 ? h('p', { class: 'muted' }, 'No confirmed transfers.') :
        h('table', { class: 'history' }, h('thead', null, h('tr', null, ['Block', 'Time', 'Id', '', 'Counterparty', 'Amount', 'Fee', 'Memo'].map((x) => h('th', null, x)))), tbody));
    } else {
      for (const r of rows) tbody.appendChild(r);
    }
    fill(more, page.next ? h('button', { type: 'button', id: 'account-older', onclick: () => void showPage(page.next).catch((e) => more.appendChild(errorBox(e))) }, 'Older transfers') : null);
  };
  await Promise.all([showSummary(), showPage(undefined)]);
  ctx.sub('account', { address }, () => { void showSummary(); void showPage(undefined); });
}

