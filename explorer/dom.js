// DOM helpers. Everything the page shows goes through these: text becomes Text nodes (textContent), never
// markup, so a memo such as "<script>…" is displayed as those characters. Attributes are set one by one with
// setAttribute on elements created here; links are built from encodeURIComponent'd parts. No innerHTML,
// outerHTML, insertAdjacentHTML or document.write anywhere in the page (a unit test greps for them, and the
// CSP's Trusted Types rule makes such a call throw).

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * Append children to `el`: strings and numbers as text, nodes as they are, arrays flattened, null/undefined/false skipped.
 * @param {Element} el
 * @param {unknown[]} children
 */
function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/**
 * Set attributes: `class`, `id`, data-*, aria-*, and a few plain ones; `on*` keys take functions (listeners).
 * @param {Element} el
 * @param {Record<string, unknown>} attrs
 */
function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) {
      if (typeof v === 'function') el.addEventListener(k.slice(2), /** @type {EventListener} */ (v));
    } else if (k === 'href') el.setAttribute('href', safeHref(String(v)));
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

/** Only in-page routes (#/…) are linked; anything else becomes "#". @param {string} href */
export function safeHref(href) {
  return href.startsWith('#/') ? href : '#';
}

/**
 * Create an HTML element.
 * @param {string} tag
 * @param {Record<string, unknown> | null} [attrs]
 * @param {...unknown} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) setAttrs(el, attrs);
  append(el, children);
  return el;
}

/**
 * Create an SVG element (attributes are numbers and class names the page computes; text via children).
 * @param {string} tag
 * @param {Record<string, unknown> | null} [attrs]
 * @param {...unknown} children
 * @returns {SVGElement}
 */
export function s(tag, attrs, ...children) {
  const el = /** @type {SVGElement} */ (document.createElementNS(SVG_NS, tag));
  if (attrs) setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** Replace the children of `el`. @param {Element} el @param {...unknown} children */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A link to an in-page route. @param {string[]} parts route segments @param {...unknown} children */
export function link(parts, ...children) {
  return h('a', { href: '#/' + parts.map((p) => encodeURIComponent(String(p))).join('/') }, ...children);
}

/** First and last characters of a long hex string. @param {string} x @param {number} [n] */
export function short(x, n = 8) {
  return x.length > 2 * n + 1 ? `${x.slice(0, n)}…${x.slice(-n)}` : x;
}

/** @param {string} hash */
export const blockLink = (hash, text = short(hash)) => link(['block', hash], h('code', null, text));
/** @param {number} height */
export const heightLink = (height) => link(['block', String(height)], String(height));
/** @param {string} id */
export const txLink = (id, text = short(id)) => link(['tx', id], h('code', null, text));
/** @param {string} address */
export const accountLink = (address, text = short(address, 10)) => link(['account', address], h('code', null, text));

/** A table: column titles and rows of cells. @param {string[]} head @param {unknown[][]} rows @param {Record<string, unknown>} [attrs] */
export function table(head, rows, attrs = {}) {
  return h('table', attrs,
    h('thead', null, h('tr', null, head.map((t) => h('th', null, t)))),
    h('tbody', null, rows.map((r) => h('tr', null, r.map((c) => h('td', null, c))))));
}

/** Key/value rows. @param {[string, unknown][]} pairs @param {Record<string, unknown>} [attrs] */
export function dl(pairs, attrs = {}) {
  return h('dl', { class: 'kv', ...attrs }, pairs.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

/** @param {string} title @param {...unknown} children */
export function section(title, ...children) {
  return h('section', { class: 'card' }, h('h2', null, title), ...children);
}

/** "12 s ago" style. @param {number} ms epoch ms */
export function ago(ms) {
  const d = Math.max(0, Date.now() - ms);
  if (d < 1500) return 'just now';
  if (d < 90_000) return `${Math.round(d / 1000)} s ago`;
  if (d < 90 * 60_000) return `${Math.round(d / 60_000)} min ago`;
  if (d < 36 * 3600_000) return `${Math.round(d / 3600_000)} h ago`;
  return `${Math.round(d / 86400_000)} d ago`;
}

/** @param {number} ms epoch ms */
export function time(ms) {
  return h('time', { datetime: new Date(ms).toISOString(), title: new Date(ms).toISOString() }, ago(ms));
}

/** @param {number} n bytes */
export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

/**
 * Minor units as a decimal string with the chain's decimals (exact: BigInt).
 * @param {string} minor @param {number} decimals @param {string} [symbol]
 */
export function amount(minor, decimals, symbol = '') {
  const v = BigInt(minor);
  const neg = v < 0n;
  const a = neg ? -v : v;
  const base = 10n ** BigInt(decimals);
  const whole = (a / base).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const frac = decimals > 0 ? (a % base).toString().padStart(decimals, '0').replace(/0+$/, '') : '';
  return `${neg ? '-' : ''}${whole}${frac ? '.' + frac : ''}${symbol ? ' ' + symbol : ''}`;
}

/** A memo shown as text, quoted, with an empty one marked. @param {string} memo */
export function memo(memo) {
  return memo === '' ? h('span', { class: 'muted' }, '—') : h('span', { class: 'memo', title: memo }, memo);
}

/** @param {string} text @param {string} [kind] */
export function badge(text, kind = '') {
  return h('span', { class: `badge ${kind}` }, text);
}

/** @param {unknown} e */
export function errorBox(e) {
  return h('p', { class: 'error', role: 'alert' }, e instanceof Error ? e.message : String(e));
}
