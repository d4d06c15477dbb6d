/**
 * resetSocket (the network proxies' cut): a socket whose shutdown is in flight is destroyed plainly, so the
 * process can still exit. Node 20's resetAndDestroy at that moment leaves the handle open for ever and the
 * process spins at exit; each case runs in a child process that must exit by itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const helper = fileURLToPath(new URL('../../../harness/sockreset.js', import.meta.url));

function run(cut: 'resetSocket' | 'resetAndDestroy', when: 'nextTick' | 'immediate' | 'open'): { status: number | null; out: string } {
  const script = `
    import net from 'node:net';
    import { resetSocket } from ${JSON.stringify(helper)};
    const srv = net.createServer((s) => { s.on('data', () => {}); s.on('error', () => {}); });
    srv.listen(0, '127.0.0.1', () => {
      const c = net.connect(srv.address().port, '127.0.0.1', () => {
        c.write('hello');
        if (${JSON.stringify(when)} !== 'open') c.end();
        const go = () => { ${cut === 'resetSocket' ? 'resetSocket(c)' : 'c.resetAndDestroy()'}; srv.close(); console.log('cut'); };
        if (${JSON.stringify(when)} === 'immediate') setImmediate(go); else process.nextTick(go);
      });
      c.on('error', () => {});
    });`;
  // A process that exits does so in well under a second; one that spins is killed after 3 s (10 s for the
  // cases that must exit, so a loaded machine cannot fail them).
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: cut === 'resetSocket' ? 10_000 : 3_000, encoding: 'utf8' });
  return { status: r.status, out: r.stdout };
}

test('resetSocket: a connection with its shutdown in flight is cut and the process exits', () => {
  for (const when of ['nextTick', 'immediate', 'open'] as const) {
    const r = run('resetSocket', when);
    assert.equal(r.status, 0, `exited by itself after a cut at ${when}`);
    assert.match(r.out, /cut/);
  }
});

test('the Node behaviour resetSocket avoids is still there (else the helper can go)', { skip: !process.version.startsWith('v20.') && 'only checked on Node 20' }, () => {
  const r = run('resetAndDestroy', 'nextTick');
  assert.equal(r.status, null, 'resetAndDestroy right after end() kept the process from exiting (killed at the timeout)');
});
