/**
 * The block explorer in a real browser against a real devnet: Debian's Chromium, driven by playwright-core,
 * on the page that validator processes serve at GET /explorer (4 validators on their own loopback IPs
 * behind the test's TCP proxy, 400 ms slots).
 *
 *   - the page loads with no error and no Content-Security-Policy complaint; every view renders (overview,
 *     forks, validators, mempool, peers, node, block, transaction, account);
 *   - a live update arrives over the WebSocket (the head shown grows with no reload);
 *   - the search box finds a block by height and by hash, a transaction by id and an account by address;
 *   - a memo `<script>…</script><img src=x onerror=…>` is shown as exactly that text, on the transaction,
 *     account and block pages, and no script of it runs (no dialog, no global set, no such element);
 *   - the node isolated by a 3|1 partition builds its own blocks; after the heal it reorganises onto the
 *     majority chain, and its fork view (left open, updated live) shows the abandoned side branch and the reorg.
 *
 * Skips (saying why) where Chromium is missing (.ci/run installs Debian's `chromium`; CHROMIUM_PATH points
 * elsewhere) or 127.0.0.20+ cannot be bound. EXPLORER_SCREENSHOTS=DIR saves a screenshot of each view there
 * (docs/img holds the README's). TEST_TIMEOUT_SCALE=N multiplies every bound; KEEP_TMP=1 keeps node logs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { Harness, scaled, signTransfer } from '../../harness/proc.js';
import { canBindLoopbackAlias } from '../../harness/netproxy.js';
import { agreement, Cluster, headerAt, heads, waitHalvesDiverge, waitNodeId, writeGenesis, writeKey } from '../../harness/p2pnet.js';

const SLOT_MS = 400;
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = process.env.EXPLORER_SCREENSHOTS ? path.resolve(process.env.EXPLORER_SCREENSHOTS) : undefined;
const MEMO = '<script>window.__xss=1;alert(1)</script><img src=x onerror="window.__xss=2;alert(2)"> & "quotes" ü';

/** In functions that run in the page (page.evaluate, waitForFunction): the browser's globals, untyped here (no DOM lib). */
declare const window: any, document: any, location: any;

const aliasOk = await canBindLoopbackAlias();
const skip = !existsSync(CHROMIUM) ? `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)` : !aliasOk ? 'cannot bind 127.0.0.20+' : false;

/** Flags for a headless Chromium on a machine without network (its own background connections are refused). */
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-default-apps', '--disable-extensions', '--mute-audio'];

test('the explorer in Chromium: views, live updates, search, escaping, and a partition healing in the fork view', { skip, timeout: scaled(150_000) }, async (t) => {
  const t0 = Date.now();
  const h = new Harness(t);
  const dir = await h.dir();
  const validators = await Promise.all([0, 1, 2, 3].map((i) => writeKey(dir, `v${i}`)));
  const faucet = await writeKey(dir, 'faucet');
  const genesis = await writeGenesis(dir, { validators, alloc: [[faucet, 10n ** 12n]], slotMs: SLOT_MS });
  const cluster = await Cluster.create(h, genesis, validators.map((key, i) => ({ key, bootnodes: [0, 1, 2, 3].filter((j) => j !== i) })));
  t.after(() => cluster.close());

  // The browser starts while the nodes do (both take seconds on this machine).
  const profile = mkdtempSync(path.join(os.tmpdir(), 'explorer-chromium-'));
  const launching = chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1280, height: 900 } });
  // One hook, in this order: the browser is gone before its profile is removed (it writes there until it exits).
  t.after(async () => {
    await launching.then((c) => c.close(), () => {});
    rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  });
  const [nodes, context] = await Promise.all([cluster.startAll(), launching]);
  await Promise.all(nodes.map((n) => waitNodeId(n)));
  await h.waitFor(() => agreement(nodes, 3), scaled(30_000), 'all 4 agree at height ≥ 3', nodes, 200);
  t.diagnostic(`4 validators and Chromium up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  // A transfer whose memo is markup, confirmed everywhere.
  const v3 = nodes[3]!;
  const memoTx = signTransfer({ from: faucet, to: validators[1]!.address, amount: 1_234_567n, nonce: 0n, chainId: genesis.chainId, memo: MEMO });
  assert.equal(await nodes[0]!.rpc('sendTransaction', { tx: memoTx.hex }), memoTx.id);
  const confirmed = await h.waitFor(async () => {
    const st = await Promise.all(nodes.map((n) => n.rpc('getTransaction', { id: memoTx.id })));
    return st.every((s) => s.status === 'confirmed' && s.blockHash === st[0].blockHash) ? st[0] : undefined;
  }, scaled(20_000), 'the memo transfer confirmed on every node', nodes, 200);

  const page = await context.newPage();
  const problems: string[] = [];
  page.on('dialog', (d) => { problems.push(`dialog: ${d.message()}`); void d.dismiss(); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' || /Content.Security.Policy|Trusted Type/i.test(m.text())) problems.push(`console ${m.type()}: ${m.text()}`); });
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  const base = `http://127.0.0.1:${v3.rpcPort}/explorer`;
  const shot = async (name: string) => {
    if (!SHOTS) return;
    mkdirSync(SHOTS, { recursive: true });
    await page.waitForTimeout(300);
    await page.screenshot({ path: path.join(SHOTS, `explorer-${name}.png`), fullPage: true });
  };
  const go = async (route: string, ready: string) => {
    await page.evaluate((r) => { location.hash = r; }, route);
    await page.waitForSelector(ready, { timeout: scaled(10_000) });
  };
  const text = (sel: string) => page.locator(sel).first().textContent({ timeout: scaled(10_000) }).then((x) => x ?? '');

  // ---- the overview renders, and follows the chain live
  await page.goto(base);
  await page.waitForSelector('body[data-ready="true"]', { timeout: scaled(20_000) });
  await page.waitForSelector('#recent-blocks table.blocks tbody tr');
  assert.ok(await page.locator('#recent-blocks tbody tr').count() >= 3, 'recent blocks listed');
  assert.ok(await page.locator('#overview-fork-svg g.block').count() >= 3, 'the small fork view drawn');
  assert.equal(await page.locator('.validators-mini tbody tr').count(), 4, 'a row per validator');
  const shownHead = Number(await text('#head-height'));
  assert.ok(shownHead >= 3, `head shown: ${shownHead}`);
  const tLive = Date.now();
  await page.waitForFunction((h0) => Number(document.getElementById('head-height')?.textContent) > h0 && Number(document.querySelector('#recent-blocks tbody tr td')?.textContent) > h0, shownHead, { timeout: scaled(10_000) });
  t.diagnostic(`live update: head ${shownHead} → ${await text('#head-height')} on the page ${Date.now() - tLive} ms later, no reload`);

  // ---- search: height, block hash, transaction id, address
  const search = async (q: string, hash: RegExp) => {
    await page.fill('#search-input', q);
    await page.click('#search button[type=submit]');
    await page.waitForFunction((re) => new RegExp(re).test(location.hash), hash.source, { timeout: scaled(10_000) });
  };
  const b2 = await v3.rpc('getBlockHeader', { height: 2 });
  await search('2', /^#\/block\/2$/);
  await page.waitForSelector('#block-hash');
  assert.equal(await text('#block-hash'), b2.hash, 'block by height');
  await search(b2.hash, new RegExp(`^#/block/${b2.hash}$`));
  await page.waitForFunction((x) => document.getElementById('block-hash')?.textContent === x, b2.hash);
  await search(memoTx.id, new RegExp(`^#/tx/${memoTx.id}$`));
  await page.waitForSelector('#tx-memo');
  assert.equal(await text('#tx-id'), memoTx.id, 'transaction by id');
  await search(faucet.address, new RegExp(`^#/account/${faucet.address}$`));
  await page.waitForSelector('#account-history table.history tbody tr');
  assert.equal(await text('#account-address'), faucet.address, 'account by address');
  const balance = BigInt((await v3.rpc('getAccount', { address: faucet.address })).balance);
  assert.match(await text('#account-balance'), new RegExp(`^${(balance / 1_000_000n).toLocaleString('en-US')}\\.`), 'balance in MESH with its decimals');
  await page.fill('#search-input', 'not a thing');
  await page.click('#search button[type=submit]');
  await page.waitForFunction(() => /Nothing found/.test(document.getElementById('search-msg')?.textContent ?? ''));
  await page.fill('#search-input', '');
  await shot('account');

  // ---- the memo is text, everywhere it is shown, and none of it runs
  assert.equal(await page.locator('#account-history .memo').first().textContent(), MEMO, 'account history: the memo as text');
  await go(`#/tx/${memoTx.id}`, '#tx-memo');
  assert.equal(await text('#tx-memo'), MEMO, 'transaction page: the memo, character for character');
  await shot('transaction');
  await go(`#/block/${confirmed.blockHash}`, 'table.txs tbody tr');
  assert.equal(await page.locator('table.txs .memo').first().textContent(), MEMO, 'block page: the memo as text');
  const injected = await page.evaluate(() => ({
    xss: window.__xss ?? null,
    scripts: [...document.scripts].map((s: any) => s.getAttribute('src')),
    imgs: document.querySelectorAll('img').length,
    memoChildren: document.querySelectorAll('.memo *, .memo-full *').length,
  }));
  assert.deepEqual(injected, { xss: null, scripts: ['/explorer/app.js'], imgs: 0, memoChildren: 0 }, 'nothing of the memo became markup or ran');
  await shot('block');

  // ---- the other views
  await go('#/validators', 'table.validators tbody tr');
  assert.equal(await page.locator('table.validators tbody tr').count(), 4);
  assert.ok(await page.locator('.slots-svg g.slot').count() >= 8, 'recent slots drawn');
  await shot('validators');
  // A few pending transactions with different fees, for the mempool view to show (sent to the isolated-to-be node).
  for (let i = 0; i < 6; i++) {
    const tx = signTransfer({ from: faucet, to: validators[i % 4]!.address, amount: 1000n + BigInt(i), nonce: BigInt(1 + i), fee: [1n, 3n, 40n, 700n, 9000n, 15n][i]!, chainId: genesis.chainId, memo: `pending ${i}` });
    await v3.rpc('sendTransaction', { tx: tx.hex });
  }
  await go('#/mempool', '#mempool-size');
  await page.waitForSelector('#mempool-fees svg, #mempool-fees p');
  await shot('mempool');
  await go('#/peers', 'table.peers tbody tr');
  assert.equal(await page.locator('table.peers tbody tr').count(), 3, 'three peers');
  await shot('peers');
  await go('#/node', '#node-status');
  assert.match(await text('#node-status'), /ok|syncing|no_peers/);
  await shot('node');

  // ---- a 3|1 partition heals; the isolated node's fork view, left open, shows its abandoned branch
  await go('#/forks', '#fork-svg');
  // (A side block may exist already: on a loaded machine a block built late can lose its height's tie.)
  const sideBefore = await page.locator('#fork-svg g.block.side').count();
  cluster.proxy.partition([[0, 1, 2], [3]]);
  const split = await waitHalvesDiverge(h, nodes, { slotMs: SLOT_MS, slots: 10, blocks: 1, timeoutMs: scaled(30_000), a: 0, b: 3 });
  const ownTip = split.heads[3]!;
  t.diagnostic(`partitioned ${((Date.now() - split.since) / 1000).toFixed(1)} s: heads ${split.heads.map((x) => x.height).join(',')} (cut at ${split.cut})`);
  cluster.proxy.heal();
  const tHeal = Date.now();
  await h.waitFor(async () => {
    const a = await agreement(nodes, ownTip.height);
    return a && (await headerAt(v3, ownTip.height))?.hash !== ownTip.hash ? a : undefined;
  }, scaled(40_000), 'the isolated node reorganised onto the majority chain', nodes, 200);
  const tree = await v3.rpc('getBlockTree', { depth: 64 });
  const sideHashes = new Set(tree.blocks.filter((b: any) => b.status === 'side').map((b: any) => b.hash));
  assert.ok(sideHashes.has(ownTip.hash), 'the node\'s own abandoned tip is a side block in getBlockTree');
  assert.ok(tree.reorgs.length >= 1, 'the node logged its reorg');
  await page.waitForFunction((hash) => !!document.querySelector(`#fork-svg g.block.side[data-hash="${hash}"]`) && !!document.querySelector('#fork-svg g.reorg'),
    ownTip.hash, { timeout: scaled(10_000) });
  const drawn = await page.locator('#fork-svg g.block.side').evaluateAll((els) => els.map((e: any) => e.getAttribute('data-hash') as string));
  for (const hsh of drawn) assert.ok(sideHashes.has(hsh!), `drawn side block ${hsh} is a side block of the node`);
  assert.ok(await page.locator('#forks-reorgs table.reorgs tbody tr').count() >= 1, 'the reorg is listed');
  t.diagnostic(`after the heal (${((Date.now() - tHeal) / 1000).toFixed(1)} s): ${drawn.length} side block(s) drawn (${sideBefore} before the partition), reorg depth ${tree.reorgs.at(-1).depth} marked, live on the open page`);
  await shot('forks');
  await go('#/', '#overview-fork-svg');
  await page.waitForSelector(`#overview-fork-svg g.block.side[data-hash="${ownTip.hash}"]`, { timeout: scaled(10_000) });
  await shot('overview');

  assert.deepEqual(problems, [], 'no page error, failed request, CSP complaint or dialog');
  const heights = (await heads(nodes)).map((x) => x.height);
  t.diagnostic(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s; final heads ${heights.join(',')}`);
});

