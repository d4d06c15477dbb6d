// The explorer: a header with the live head, finality and the slot clock, a search box, and one view per
// route (#/…). Everything comes from this node's public JSON-RPC and WebSocket API (rpc.js); views/*.js
// render with dom.js, which only ever creates text nodes from data.
import { Rpc } from './rpc.js';
import { h, fill, short, errorBox, amount } from './dom.js';
import { overview, blockView, txView, accountView } from './chainviews.js';
import { forksView } from './forks.js';
import { validatorsView, mempoolView, peersView, nodeView } from './netviews.js';

const rpc = new Rpc(`${location.protocol}//${location.host}/`);

/** @type {Record<string, (root: HTMLElement, ctx: Ctx, arg: string) => Promise<void>>} */
const ROUTES = {
  '': overview, block: blockView, tx: txView, account: accountView, forks: forksView,
  validators: validatorsView, mempool: mempoolView, peers: peersView, node: nodeView,
};

const NAV = [['', 'Overview'], ['forks', 'Forks'], ['validators', 'Validators'], ['mempool', 'Mempool'], ['peers', 'Peers'], ['node', 'Node']];

/**
 * What a view gets: the client, the chain's constants, and ways to follow the chain that end by themselves
 * when the view is left.
 * @typedef {{ rpc: Rpc, chain: any, gone: boolean, onHead: (fn: (head: any) => void) => void,
 *   sub: (topic: string, params: object, fn: (r: any) => void) => void, every: (ms: number, fn: () => void) => void,
 *   amount: (minor: string) => string }} Ctx
 */

/** @type {((head: any) => void)[]} */
let headListeners = [];
/** @type {(() => void)[]} */
let cleanups = [];
/** @type {Ctx | null} */
let current = null;
let chain = /** @type {any} */ (null);

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

function leaveView() {
  if (current) current.gone = true;
  for (const f of cleanups.splice(0)) { try { f(); } catch { /* ignore */ } }
  headListeners = [];
}

async function route() {
  leaveView();
  fill($('search-msg'));
  const [name = '', ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  const arg = decodeURIComponent(rest.join('/'));
  const view = ROUTES[name];
  for (const a of document.querySelectorAll('nav.main a')) a.classList.toggle('active', a.getAttribute('data-route') === (view ? name : ''));
  const root = h('div', { class: 'view', 'data-view': view ? name || 'overview' : 'unknown' });
  fill($('view'), root);
  /** @type {Ctx} */
  const ctx = {
    rpc, chain, gone: false,
    onHead(fn) { if (!ctx.gone) headListeners.push(fn); },
    sub(topic, params, fn) {
      if (ctx.gone) return;
      const handle = rpc.subscribe(topic, params, (r) => { if (!ctx.gone) fn(r); });
      cleanups.push(() => rpc.unsubscribe(handle));
    },
    every(ms, fn) {
      if (ctx.gone) return;
      const t = setInterval(() => { if (!ctx.gone) fn(); }, ms);
      cleanups.push(() => clearInterval(t));
    },
    amount: (minor) => amount(minor, chain.decimals, chain.symbol),
  };
  current = ctx;
  if (!view) { fill(root, h('h1', null, 'Not found'), h('p', null, 'No such page: ', location.hash)); return; }
  try {
    await view(root, ctx, arg);
  } catch (e) {
    if (!ctx.gone) root.appendChild(errorBox(e));
  }
}


// ---------------------------------------------------------------- header: live head, slot clock, search

/** @param {any} head */
function showHead(head) {
  fill($('head-height'), String(head.height));
  $('head-height').setAttribute('title', head.hash);
  fill($('head-slot'), String(head.slot));
}

function tickClock() {
  if (!chain) return;
  const now = Date.now();
  const slot = Math.max(0, Math.floor((now - chain.genesisTime) / chain.slotMs));
  const into = (now - chain.genesisTime) % chain.slotMs;
  fill($('clock-slot'), String(slot));
  /** @type {HTMLProgressElement} */ ($('clock-bar')).value = into / chain.slotMs;
  const n = chain.validators.length;
  fill($('clock-next'), short(chain.validators[(slot + 1) % n], 8));
  $('clock-next').setAttribute('title', `validator ${(slot + 1) % n}: ${chain.validators[(slot + 1) % n]}`);
}

/** Where a search box entry leads: a height, a block hash, a transaction id or an address. @param {string} q */
export async function searchTarget(q) {
  const v = q.trim();
  if (/^\d{1,15}$/.test(v)) return `#/block/${v}`;
  if (/^ml1[02-9ac-hj-np-z]{20,}$/i.test(v)) return `#/account/${encodeURIComponent(v.toLowerCase())}`;
  const hex = v.toLowerCase().replace(/^0x/, '');
  if (/^[0-9a-f]{64}$/.test(hex)) {
    const block = await rpc.call('getBlockHeader', { hash: hex }).catch(() => null);
    if (block) return `#/block/${hex}`;
    const tx = await rpc.call('getTransaction', { id: hex }).catch(() => null);
    if (tx && tx.status !== 'unknown') return `#/tx/${hex}`;
    return null;
  }
  return null;
}

async function onSearch(/** @type {SubmitEvent} */ ev) {
  ev.preventDefault();
  const input = /** @type {HTMLInputElement} */ ($('search-input'));
  const msg = $('search-msg');
  fill(msg);
  const target = await searchTarget(input.value);
  if (target) { location.hash = target; input.value = ''; }
  else fill(msg, 'Nothing found: give a height, a block hash, a transaction id or an address (ml1…).');
}

async function start() {
  fill($('nav'), NAV.map(([r, label]) => h('a', { href: `#/${r}`, 'data-route': r }, label)));
  $('search').addEventListener('submit', (ev) => void onSearch(/** @type {SubmitEvent} */ (ev)));
  rpc.onStatus((up) => {
    fill($('conn'), up ? 'live' : 'reconnecting…');
    $('conn').className = up ? 'badge ok' : 'badge warn';
  });
  for (let attempt = 0; !chain; attempt++) {
    try {
      chain = await rpc.call('getChainInfo');
    } catch (e) {
      fill($('view'), errorBox(`Cannot reach the node: ${e instanceof Error ? e.message : e}. Retrying…`));
      await new Promise((r) => setTimeout(r, Math.min(5000, 500 * (attempt + 1))));
    }
  }
  fill($('chain-id'), chain.chainId);
  showHead({ height: chain.height, hash: chain.headHash, slot: chain.headSlot });
  // Finality is not part of the protocol yet: the field is there for when it is (getBlock "finalized").
  fill($('finalized'), 'n/a');
  $('finalized').setAttribute('title', 'This chain has no finality yet: blocks are final only by depth.');
  setInterval(tickClock, 100);
  tickClock();
  rpc.subscribe('newHeads', {}, (head) => {
    showHead(head);
    if (head.reorgDepth > 0) toast(`Reorg: ${head.reorgDepth} block(s) abandoned; new head ${head.height} ${short(head.hash)}`);
    for (const f of headListeners) { try { f(head); } catch (e) { console.error(e); } }
  });
  window.addEventListener('hashchange', () => void route());
  await route();
  document.body.setAttribute('data-ready', 'true');
}

/** @param {string} text */
function toast(text) {
  const t = h('div', { class: 'toast', role: 'status' }, text);
  $('toasts').appendChild(t);
  setTimeout(() => t.remove(), 8000);
}

void start();
