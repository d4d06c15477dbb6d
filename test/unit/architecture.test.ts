/**
 * The architecture, checked from the import statements of every .ts file in src/, harness/, scripts/ and
 * test/ (static imports and re-exports, type-only ones included, and dynamic import()s), so it stays true:
 *
 *   - no import cycle between files: each module can be read, tested and replaced from the bottom up;
 *   - in src/, a room (a top folder) imports only from rooms on LOWER layers of LAYERS: a lower layer never
 *     depends on a higher one, and rooms on one layer do not depend on each other;
 *   - the consensus rules (src/ledger) import only encoding, crypto and util, and no I/O module: every node
 *     must reach the same verdict from the same bytes;
 *   - src/ imports nothing from test/, harness/ or scripts/; harness/ nothing from test/ or scripts/; scripts/
 *     nothing from test/: shipped code never needs the test tree, and scripts share harness/ with the tests;
 *   - a file in src/ over 500 lines says why in its header (a line "Longer than 500 lines because …").
 *
 * The checks are pure functions over an import graph; the first tests show each one catching its violation
 * on a small synthetic graph, the last one runs them all on the real tree.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import path from 'node:path';
import ts from 'typescript';
import { packageRoot } from '../../src/util/schemas.js';

/** Rooms of src/ by layer, bottom first. `index.ts` is the package's public face (src/index.ts). */
export const LAYERS: readonly (readonly string[])[] = [
  ['util', 'encoding'],
  ['crypto', 'storage'],
  ['ledger'],
  ['chain', 'mempool'],
  ['p2p', 'producer'],
  ['rpc', 'metrics', 'sdk'],
  ['wallet'],
  ['node', 'index.ts'],
  ['sim'],
];

/** What the consensus rules may import besides themselves. */
const LEDGER_MAY_IMPORT = ['ledger', 'encoding', 'crypto', 'util'];
/** Modules that do I/O; none may be imported by the consensus rules. */
const IO_MODULE = /^(node:(fs|fs\/promises|net|http|https|http2|tls|dgram|dns|child_process|worker_threads|cluster|readline)|npm:(level|classic-level|memory-level|ws)(\/.*)?)$/;
/** Top folders each top folder must not import from. */
const TREE_RULES: Record<string, readonly string[]> = { src: ['test', 'harness', 'scripts'], harness: ['test', 'scripts'], scripts: ['test'] };

export const MAX_LINES = 500;
export const LONG_FILE_MARKER = /Longer than 500 lines because \S/;
/**
 * TEMPORARY: files other branches of issue #16 are splitting right now (the chain and p2p rooms). Remove
 * this list when those splits are merged; the check fails once a listed file is short or gone.
 */
export const TEMPORARY_LONG_FILES: readonly string[] = [];

/**
 * file → what it imports: repo-relative paths of project files ('src/chain/chain.ts'), `node:<builtin>`
 * for Node's modules and `npm:<name>` for packages.
 */
export type ImportGraph = ReadonlyMap<string, readonly string[]>;

const isModule = (target: string) => target.startsWith('node:') || target.startsWith('npm:');
const topOf = (file: string) => file.split('/')[0]!;
/** The room of a file in src/: its top folder there, or its own name for a file directly in src/. */
const roomOf = (file: string) => file.split('/')[1]!;

/** Every import cycle, each as a path that returns to its first file, e.g. [a, b, a]. */
export function findCycles(graph: ImportGraph): string[][] {
  // Tarjan's strongly connected components; a component of two or more files (or a file importing itself)
  // holds a cycle, and one is printed per component.
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const edges = (f: string) => (graph.get(f) ?? []).filter((t) => graph.has(t));
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges(v)) {
      if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const c: string[] = [];
      let w: string;
      do { w = stack.pop()!; onStack.delete(w); c.push(w); } while (w !== v);
      if (c.length > 1 || edges(v).includes(v)) components.push(c);
    }
  };
  for (const f of [...graph.keys()].sort()) if (!index.has(f)) visit(f);
  return components.map((c) => {
    // The shortest way back to the component's first file (sorted), within the component.
    const inside = new Set(c);
    const start = [...c].sort()[0]!;
    const from = new Map<string, string>();
    const queue = [start];
    for (let i = 0; i < queue.length; i++) {
      const v = queue[i]!;
      for (const w of edges(v).filter((x) => inside.has(x)).sort()) {
        if (w === start) {
          const cycle = [start];
          for (let u: string | undefined = v; u !== undefined && u !== start; u = from.get(u)) cycle.splice(1, 0, u);
          return [...cycle, start];
        }
        if (!from.has(w)) { from.set(w, v); queue.push(w); }
      }
    }
    return [start, start];
  });
}

/** Imports in src/ that run sideways or up the layers, and files in a room LAYERS does not place. */
export function layerViolations(graph: ImportGraph, layers: readonly (readonly string[])[]): string[] {
  const layerOf = new Map(layers.flatMap((rooms, i) => rooms.map((r) => [r, i] as const)));
  const describe = (room: string) => `${room} (layer ${layerOf.get(room)}: ${layers[layerOf.get(room)!]!.join(', ')})`;
  const out: string[] = [];
  for (const [file, targets] of graph) {
    if (topOf(file) !== 'src') continue;
    const room = roomOf(file);
    if (!layerOf.has(room)) { out.push(`${file}: the room "${room}" has no layer; add it to LAYERS`); continue; }
    for (const t of targets) {
      if (isModule(t) || topOf(t) !== 'src') continue;
      const to = roomOf(t);
      if (to === room || !layerOf.has(to)) continue;
      if (layerOf.get(to)! >= layerOf.get(room)!) out.push(`${file} imports ${t}: ${describe(room)} may import only from lower layers, and ${describe(to)} is not lower`);
    }
  }
  return out;
}

/** Imports of the consensus rules (src/ledger) from other rooms than encoding, crypto and util, or of I/O modules. */
export function purityViolations(graph: ImportGraph): string[] {
  const out: string[] = [];
  for (const [file, targets] of graph) {
    if (!file.startsWith('src/ledger/')) continue;
    for (const t of targets) {
      if (isModule(t) ? IO_MODULE.test(t) : topOf(t) !== 'src' || !LEDGER_MAY_IMPORT.includes(roomOf(t))) {
        out.push(`${file} imports ${t}: the consensus rules may import only ${LEDGER_MAY_IMPORT.join(', ')} and no I/O module`);
      }
    }
  }
  return out;
}

/** Imports across top folders that TREE_RULES forbids (src/ → test/, scripts/ → test/, …). */
export function treeViolations(graph: ImportGraph): string[] {
  const out: string[] = [];
  for (const [file, targets] of graph) {
    const forbidden = TREE_RULES[topOf(file)] ?? [];
    for (const t of targets) if (!isModule(t) && forbidden.includes(topOf(t))) out.push(`${file} imports ${t}: ${topOf(file)}/ must not import from ${topOf(t)}/`);
  }
  return out;
}

/** src/ files over MAX_LINES whose header does not say why, and stale entries of the temporary allow-list. */
export function longFileViolations(files: readonly { file: string; lines: number; header: string }[], temporary: readonly string[]): string[] {
  const out: string[] = [];
  const byName = new Map(files.map((f) => [f.file, f]));
  for (const f of files) {
    if (!f.file.startsWith('src/') || f.lines <= MAX_LINES || LONG_FILE_MARKER.test(f.header) || temporary.includes(f.file)) continue;
    out.push(`${f.file} has ${f.lines} lines (over ${MAX_LINES}) and its header does not say why ("Longer than 500 lines because …")`);
  }
  for (const t of temporary) {
    const f = byName.get(t);
    if (!f || f.lines <= MAX_LINES) out.push(`${t} is ${f ? `${f.lines} lines now` : 'gone'}: remove it from TEMPORARY_LONG_FILES`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------- reading the tree

/** The leading comment of a file (its header), or '' if it has none. */
export function headerOf(text: string): string {
  const m = /^(?:#![^\n]*\n)?\s*(\/\*[\s\S]*?\*\/|(?:\/\/[^\n]*\n\s*)+)/.exec(text);
  return m ? m[1]! : '';
}

/** What one file imports, resolved as ImportGraph records it. */
export function importsOf(file: string, text: string): string[] {
  return ts.preProcessFile(text, true, true).importedFiles.map(({ fileName: spec }) => {
    if (spec.startsWith('.')) {
      const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec));
      return resolved.replace(/\.js$/, '.ts');
    }
    if (isBuiltin(spec)) return spec.startsWith('node:') ? spec : `node:${spec}`;
    return `npm:${spec}`;
  });
}

function sourceFiles(root: string, dir: string): string[] {
  if (!existsSync(path.join(root, dir))) return [];
  return readdirSync(path.join(root, dir), { recursive: true, encoding: 'utf8' })
    .map((f) => path.posix.join(dir, f.split(path.sep).join('/')))
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .sort();
}

// ---------------------------------------------------------------------------------------- the checks catch

/** "a imports b" of a violation message. */
const edgeOf = (v: string) => /^(\S+ imports \S+): /.exec(v)?.[1];

test('findCycles prints each import cycle as a path back to its start', () => {
  const g = new Map([
    ['src/node/cli.ts', ['src/node/devnet.ts', 'src/util/log.ts']],
    ['src/node/devnet.ts', ['src/node/usage.ts', 'src/node/cli.ts']],
    ['src/node/usage.ts', []],
    ['src/util/log.ts', ['node:fs']],
    ['src/a/x.ts', ['src/a/y.ts']],
    ['src/a/y.ts', ['src/a/z.ts']],
    ['src/a/z.ts', ['src/a/x.ts']],
    ['src/self.ts', ['src/self.ts']],
  ]);
  assert.deepEqual(findCycles(g).map((c) => c.join(' → ')).sort(), [
    'src/a/x.ts → src/a/y.ts → src/a/z.ts → src/a/x.ts',
    'src/node/cli.ts → src/node/devnet.ts → src/node/cli.ts',
    'src/self.ts → src/self.ts',
  ]);
  g.set('src/node/devnet.ts', ['src/node/usage.ts']);
  g.set('src/a/z.ts', []);
  g.set('src/self.ts', []);
  assert.deepEqual(findCycles(g), []);
});

test('layerViolations flags imports up or across the layers, and rooms without a layer', () => {
  const layers = [['util'], ['chain', 'mempool'], ['node']];
  const g = new Map([
    ['src/util/a.ts', ['src/chain/c.ts']], // up
    ['src/chain/c.ts', ['src/mempool/m.ts', 'src/chain/d.ts', 'src/util/a.ts', 'npm:ws']], // across; own room and down are fine
    ['src/node/n.ts', ['src/chain/c.ts', 'src/util/a.ts']], // down: fine
    ['src/extra/e.ts', []], // a room with no layer
    ['test/t.ts', ['src/node/n.ts']], // outside src/: not layered
  ]);
  const v = layerViolations(g, layers);
  assert.equal(v.length, 3, v.join('\n'));
  assert.match(v[0]!, /^src\/util\/a\.ts imports src\/chain\/c\.ts: util \(layer 0: util\) may import only from lower layers, and chain \(layer 1: chain, mempool\) is not lower$/);
  assert.match(v[1]!, /^src\/chain\/c\.ts imports src\/mempool\/m\.ts/);
  assert.match(v[2]!, /src\/extra\/e\.ts: the room "extra" has no layer/);
});

test('purityViolations keeps the consensus rules to encoding, crypto and util, without I/O', () => {
  const g = new Map([
    ['src/ledger/block.ts', ['src/ledger/tx.ts', 'src/encoding/bytes.ts', 'src/crypto/hash.ts', 'src/util/lru.ts', 'node:os', 'npm:@noble/hashes/sha2.js']],
    ['src/ledger/bad.ts', ['src/storage/kv.ts', 'node:fs/promises', 'npm:level']],
    ['src/chain/chain.ts', ['src/storage/kv.ts', 'node:fs']],
  ]);
  const v = purityViolations(g);
  assert.deepEqual(v.map(edgeOf), ['src/ledger/bad.ts imports src/storage/kv.ts', 'src/ledger/bad.ts imports node:fs/promises', 'src/ledger/bad.ts imports npm:level']);
});

test('treeViolations forbids src/ → test|harness|scripts, harness/ → test|scripts and scripts/ → test', () => {
  const g = new Map([
    ['src/a.ts', ['test/helpers/x.ts', 'harness/proc.ts', 'scripts/s.ts', 'src/b.ts']],
    ['harness/proc.ts', ['src/a.ts', 'test/helpers/x.ts']],
    ['scripts/s.ts', ['harness/proc.ts', 'src/a.ts', 'test/helpers/fixtures.ts']],
    ['test/e2e/t.ts', ['harness/proc.ts', 'scripts/s.ts', 'src/a.ts']],
  ]);
  assert.deepEqual(treeViolations(g).map(edgeOf), [
    'src/a.ts imports test/helpers/x.ts', 'src/a.ts imports harness/proc.ts', 'src/a.ts imports scripts/s.ts',
    'harness/proc.ts imports test/helpers/x.ts', 'scripts/s.ts imports test/helpers/fixtures.ts',
  ]);
});

test('longFileViolations wants a reason in the header of a src/ file over 500 lines; the temporary list must stay exact', () => {
  const files = [
    { file: 'src/a/long.ts', lines: 501, header: '/** The a room. */' },
    { file: 'src/a/why.ts', lines: 900, header: '/**\n * Longer than 500 lines because one state machine.\n */' },
    { file: 'src/a/ok.ts', lines: 500, header: '' },
    { file: 'src/b/split-elsewhere.ts', lines: 700, header: '' },
    { file: 'src/b/already-split.ts', lines: 200, header: '' },
    { file: 'test/unit/huge.test.ts', lines: 2000, header: '' },
  ];
  assert.deepEqual(longFileViolations(files, ['src/b/split-elsewhere.ts', 'src/b/already-split.ts', 'src/b/gone.ts']), [
    'src/a/long.ts has 501 lines (over 500) and its header does not say why ("Longer than 500 lines because …")',
    'src/b/already-split.ts is 200 lines now: remove it from TEMPORARY_LONG_FILES',
    'src/b/gone.ts is gone: remove it from TEMPORARY_LONG_FILES',
  ]);
  // Only the header counts: the marker further down does not.
  assert.equal(headerOf('/** A room. */\nimport x from "y";\n// Longer than 500 lines because of z\n'), '/** A room. */');
  assert.match(headerOf('#!/usr/bin/env node\n/**\n * Longer than 500 lines because z.\n */\n'), LONG_FILE_MARKER);
});

test('importsOf reads static, type-only, multi-line, re-export and dynamic imports, not comments or strings', () => {
  const text = `/** import { no } from './in-comment.js'; */
import type { A } from './a.js';
import {
  b,
} from '../b/b.js';
export * from './c.js';
export { d } from './d.js';
const s = "import z from './in-string.js'";
async function f() { return import('../storage/kv.js'); }
import { readFileSync } from 'node:fs';
import { endianness } from 'os';
import WebSocket from 'ws';
`;
  assert.deepEqual(importsOf('src/sim/x.ts', text), [
    'src/sim/a.ts', 'src/b/b.ts', 'src/sim/c.ts', 'src/sim/d.ts', 'src/storage/kv.ts', 'node:fs', 'node:os', 'npm:ws',
  ]);
});

// ---------------------------------------------------------------------------------------- the real tree

test('the tree keeps the architecture: no cycles, layers, pure ledger, src/harness/scripts/test boundaries, long files explained', () => {
  const root = packageRoot();
  const files = ['src', 'harness', 'scripts', 'test'].flatMap((d) => sourceFiles(root, d));
  assert.ok(files.length > 100 && files.includes('src/chain/chain.ts'), `read the sources under ${root}`);
  const graph = new Map<string, string[]>();
  const sizes: { file: string; lines: number; header: string }[] = [];
  for (const file of files) {
    const text = readFileSync(path.join(root, file), 'utf8');
    graph.set(file, importsOf(file, text));
    sizes.push({ file, lines: (text.match(/\n/g) ?? []).length, header: headerOf(text) });
  }
  // An import of a project file that does not exist would slip past every check below.
  const missing = [...graph].flatMap(([f, targets]) => targets.filter((t) => !isModule(t) && t.endsWith('.ts') && !graph.has(t)).map((t) => `${f} imports ${t}, which is not a source file`));
  const violations = [
    ...missing,
    ...findCycles(graph).map((c) => `import cycle: ${c.join(' → ')}`),
    ...layerViolations(graph, LAYERS),
    ...purityViolations(graph),
    ...treeViolations(graph),
    ...longFileViolations(sizes, TEMPORARY_LONG_FILES),
  ];
  assert.deepEqual(violations, [], `\n${violations.join('\n')}`);
});
