// The fork view: the block tree of the last heights as SVG. One column per height, the best chain on the
// top lane, each side branch on a lane of its own below it (continuing its parent's lane where it can),
// invalid blocks in red, edges from parent to child, and the reorgs this node went through marked where the
// branches part. Built with createElementNS; the only text is heights and labels (textContent).
import { h, s, fill, section, table, short, time, blockLink, heightLink } from './dom.js';

/** @typedef {import('./app.js').Ctx} Ctx */

/**
 * Lanes: 0 for the best chain; a side block continues its parent's lane if that lane is free at its height,
 * else takes the lowest lane that has been free for a column (so branches do not touch).
 * @param {any[]} blocks lowest height first
 * @returns {Map<string, number>}
 */
export function assignLanes(blocks) {
  /** @type {Map<string, number>} */
  const lane = new Map();
  /** @type {number[]} last height used per lane */
  const last = [Infinity];
  /** @type {Set<string>} lane:height */
  const taken = new Set();
  for (const b of blocks) {
    if (b.status === 'best') { lane.set(b.hash, 0); taken.add(`0:${b.height}`); continue; }
    const p = lane.get(b.parentHash);
    let l = p !== undefined && p > 0 && !taken.has(`${p}:${b.height}`) ? p : -1;
    if (l < 0) {
      l = last.findIndex((h, i) => i > 0 && h < b.height - 1);
      if (l < 0) { l = last.length; last.push(-Infinity); }
    }
    lane.set(b.hash, l);
    taken.add(`${l}:${b.height}`);
    last[l] = Math.max(last[l] ?? -Infinity, b.height);
  }
  return lane;
}

/**
 * The tree as an SVG element (in a scrollable box the caller places).
 * @param {any} tree getBlockTree's answer @param {{compact?: boolean}} [o]
 */
export function renderTree(tree, o = {}) {
  const COLW = o.compact ? 46 : 64, ROWH = o.compact ? 34 : 46, BW = o.compact ? 36 : 50, BH = o.compact ? 22 : 28, PAD = 14, TOP = 22;
  const blocks = tree.blocks;
  if (blocks.length === 0) return h('p', { class: 'muted' }, 'No blocks.');
  const lanes = assignLanes(blocks);
  const from = tree.fromHeight;
  const maxHeight = Math.max(...blocks.map((/** @type {any} */ b) => b.height));
  const nLanes = Math.max(...lanes.values()) + 1;
  const width = PAD * 2 + (maxHeight - from + 1) * COLW;
  const height = TOP + PAD * 2 + nLanes * ROWH;
  const pos = (/** @type {any} */ b) => ({ x: PAD + (b.height - from) * COLW, y: TOP + PAD + (lanes.get(b.hash) ?? 0) * ROWH });
  const byHash = new Map(blocks.map((/** @type {any} */ b) => [b.hash, b]));

  const edges = s('g', { class: 'edges' });
  const nodes = s('g', { class: 'nodes' });
  const marks = s('g', { class: 'marks' });
  for (const b of blocks) {
    const p = pos(b);
    const parent = byHash.get(b.parentHash);
    if (parent) {
      const q = pos(parent);
      const x1 = q.x + BW, y1 = q.y + BH / 2, x2 = p.x, y2 = p.y + BH / 2, mx = (x1 + x2) / 2;
      edges.appendChild(s('path', { class: `edge ${b.status}`, d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` }));
    } else if (b.height > 0) {
      edges.appendChild(s('path', { class: `edge ${b.status}`, d: `M${p.x - (COLW - BW)},${p.y + BH / 2} H${p.x}` }));
    }
    const isHead = b.hash === tree.headHash;
    const title = `${b.status === 'best' ? 'best chain' : b.status === 'side' ? 'side branch' : `invalid (${b.rule})`} · height ${b.height} · slot ${b.slot}\n${b.hash}${b.proposer ? `\nproposer ${b.proposer}` : ''}`;
    nodes.appendChild(s('a', { href: `#/block/${b.hash}` },
      s('g', { class: `block ${b.status}${isHead ? ' head' : ''}`, 'data-hash': b.hash, 'data-height': b.height },
        s('title', null, title),
        s('rect', { x: p.x, y: p.y, width: BW, height: BH, rx: 4 }),
        s('text', { x: p.x + BW / 2, y: p.y + BH / 2 + 4, 'text-anchor': 'middle' }, String(b.height)))));
  }
  for (const r of tree.reorgs) {
    if (r.forkHeight < from - 1) continue;
    const x = PAD + (r.forkHeight - from + 1) * COLW - (COLW - BW) / 2;
    marks.appendChild(s('g', { class: 'reorg', 'data-depth': r.depth },
      s('title', null, `reorg at ${new Date(r.time).toISOString()}: ${r.depth} block(s) abandoned (old head ${r.oldHeight} ${r.oldHead}), new head ${r.newHeight} ${r.newHead}`),
      s('line', { x1: x, y1: TOP - 4, x2: x, y2: height - PAD / 2 }),
      s('text', { x: x + 3, y: TOP - 8 }, `reorg −${r.depth}`)));
  }
  const axis = s('g', { class: 'axis' });
  for (let ht = from; ht <= maxHeight; ht += o.compact ? 4 : 2) {
    axis.appendChild(s('text', { x: PAD + (ht - from) * COLW + BW / 2, y: height - 2, 'text-anchor': 'middle' }, String(ht)));
  }
  return s('svg', { class: 'fork-svg', id: o.compact ? 'overview-fork-svg' : 'fork-svg', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'block tree' },
    edges, marks, nodes, axis);
}

/** @param {HTMLElement} root @param {Ctx} ctx */
export async function forksView(root, ctx) {
  const box = h('div', { class: 'tree-box', id: 'forks-tree' });
  const summary = h('p', { id: 'forks-summary' });
  const reorgs = h('div', { id: 'forks-reorgs' });
  fill(root,
    h('h1', null, 'Fork view'),
    h('p', { class: 'muted' }, 'Every block this node stores for the last 64 heights, on every branch. The top lane is the best chain (longest, then smallest hash); lanes below are side branches, red ones were found invalid. Dashed lines mark reorgs this node went through since it started: where the branches part and how many blocks it abandoned.'),
    h('p', { class: 'legend' }, h('span', { class: 'key best' }, 'best chain'), h('span', { class: 'key side' }, 'side branch'), h('span', { class: 'key invalid' }, 'invalid'), h('span', { class: 'key head' }, 'head')),
    section('Block tree', summary, box),
    section('Reorgs seen by this node', reorgs));
  const refresh = async () => {
    const tree = await ctx.rpc.call('getBlockTree', { depth: 64 });
    const side = tree.blocks.filter((/** @type {any} */ b) => b.status !== 'best').length;
    fill(summary, `Heights ${tree.fromHeight}–${tree.headHeight}: ${tree.blocks.length} blocks, ${side} off the best chain${tree.truncated ? ' (truncated)' : ''}. Head `, blockLink(tree.headHash), '.');
    fill(box, renderTree(tree));
    box.scrollLeft = box.scrollWidth;
    fill(reorgs, tree.reorgs.length === 0 ? h('p', { class: 'muted' }, 'None in this window.') :
      table(['When', 'Fork height', 'Abandoned', 'Old head', 'New head'], [...tree.reorgs].reverse().map((/** @type {any} */ r) => [
        time(r.time), heightLink(r.forkHeight), `${r.depth} block(s)`, [String(r.oldHeight), ' ', blockLink(r.oldHead, short(r.oldHead))], [String(r.newHeight), ' ', blockLink(r.newHead, short(r.newHead))],
      ]), { class: 'reorgs' }));
  };
  await refresh();
  let timer = 0;
  ctx.onHead(() => {
    if (timer) return;
    timer = setTimeout(() => { timer = 0; void refresh().catch(() => {}); }, 300);
  });
}
