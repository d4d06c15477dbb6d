/** docs/protocol.md is a contract: its worked example and rule table must match the implementation. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../../src/util/schemas.js';
import { fromHex, toHex, concatBytes } from '../../../src/encoding/bytes.js';
import { decodeAddress, encodeAddress } from '../../../src/encoding/address.js';
import { getPublicKey, verify } from '../../../src/crypto/ed25519.js';
import { sha256 } from '../../../src/crypto/hash.js';
import { decodeTx, encodeUnsignedTx, signTx, TX_SIGNING_PREFIX, txSigningMessage } from '../../../src/ledger/tx.js';
import { RULES } from '../../../src/ledger/rules.js';

const doc = readFileSync(join(packageRoot(), 'docs', 'protocol.md'), 'utf8');

function field(name: string): string {
  const m = new RegExp(`^${name}\\s+(\\S+)`, 'm').exec(doc);
  assert.ok(m, `docs/protocol.md lacks the "${name}" line of the worked example`);
  return m[1]!;
}

test('worked example: keys, address, encodings, signature and id are reproduced by the code', () => {
  const seed = /secret seed `([0-9a-f]{64})`/.exec(doc)?.[1];
  assert.ok(seed, 'example secret seed missing');
  const sk = fromHex(seed);
  const pk = getPublicKey(sk);
  assert.equal(toHex(pk), /sender public key\s+([0-9a-f]{64})/.exec(doc)![1]);
  assert.equal(encodeAddress(pk), /sender address\s+(ml1\S+)/.exec(doc)![1]);
  const toAddr = /recipient address\s+(ml1\S+)/.exec(doc)![1]!;
  const to = decodeAddress(toAddr);
  assert.equal(toHex(to), /recipient key\s+([0-9a-f]{64})/.exec(doc)![1]);
  const u = { chainId: 'meshledger-devnet', from: pk, to, amount: 12345000n, fee: 1000n, nonce: 7n, memo: 'invoice 42' };
  assert.equal(toHex(encodeUnsignedTx(u)), field('unsigned'));
  assert.equal(toHex(TX_SIGNING_PREFIX), '6d6573686c65646765723a74783a763100');
  assert.deepEqual(txSigningMessage(u), concatBytes(TX_SIGNING_PREFIX, fromHex(field('unsigned'))));
  const tx = signTx(u, sk);
  assert.equal(toHex(tx.signature), field('signature'));
  assert.equal(toHex(tx.bytes), field('signed'));
  assert.equal(tx.idHex, field('id'));
  assert.equal(toHex(sha256(fromHex(field('signed')))), field('id'));
  const decoded = decodeTx(fromHex(field('signed')));
  assert.equal(decoded.amount, 12345000n);
  assert.ok(verify(decoded.signature, txSigningMessage(decoded), decoded.from));
});

test('rule table lists exactly the rules the code can raise', () => {
  const documented = new Set([...doc.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]));
  for (const r of Object.keys(RULES)) assert.ok(documented.has(r), `rule ${r} is not documented in docs/protocol.md §8`);
  for (const r of documented) assert.ok(r! in RULES, `docs/protocol.md documents rule ${r}, which the code does not have`);
});

// ---- §10: the session's worked example -------------------------------------------------------------

/** A value of the session example (hex, possibly wrapped over several lines). */
function sessionField(name: string): string {
  const m = new RegExp(`^${name}\\s+([0-9a-f]+(?:\\n\\s+[0-9a-f]+)*)`, 'm').exec(doc);
  assert.ok(m, `docs/protocol.md lacks the "${name}" line of the session example`);
  return m[1]!.replace(/\s+/g, '');
}

test('session worked example: static keys, signatures, the three handshake messages, the hash and the first frame', async () => {
  const { secureSession, sessionIdentity } = await import('../../../src/p2p/noise.js');
  const { encodeMessage, MSG } = await import('../../../src/p2p/messages.js');
  const { systemClock } = await import('../../../src/util/clock.js');
  const script = (...hex: string[]) => {
    const q = hex.map(fromHex);
    return { bytes: (n: number) => { const b = q.shift()!; assert.equal(b.length, n); return b; }, int: () => 0 };
  };
  const key = (who: string) => { const sk = fromHex(sessionField(`${who} node key seed`)); return { secretKey: sk, publicKey: getPublicKey(sk) }; };
  const dKey = key('dialer'), lKey = key('listener');
  assert.equal(toHex(dKey.publicKey), sessionField('dialer node id'));
  assert.equal(toHex(lKey.publicKey), sessionField('listener node id'));
  const dId = sessionIdentity(dKey, script(sessionField('dialer static secret')));
  const lId = sessionIdentity(lKey, script(sessionField('listener static secret')));
  for (const [who, id, nodeId] of [['dialer', dId, dKey.publicKey], ['listener', lId, lKey.publicKey]] as const) {
    assert.equal(toHex(id.staticKey.publicKey), sessionField(`${who} static public`));
    assert.equal(toHex(id.staticSignature), sessionField(`${who} static signature`));
    const domain = concatBytes(new TextEncoder().encode('meshledger:p2p:noise-static:v1'), new Uint8Array([0]));
    assert.ok(verify(id.staticSignature, concatBytes(domain, id.staticKey.publicKey), nodeId), `${who}: the signature is over the documented bytes`);
  }
  const sent: Record<string, Uint8Array[]> = { d: [], l: [] };
  const handlers: Record<string, ((f: Uint8Array) => void) | undefined> = {};
  const pipe = (me: 'd' | 'l', other: 'd' | 'l') => ({
    remote: other, inbound: me === 'l', bufferedAmount: 0,
    send: (f: Uint8Array) => { sent[me]!.push(new Uint8Array(f)); setImmediate(() => handlers[other]?.(f)); },
    close: () => {}, onClose: () => {}, pause: () => {}, resume: () => {},
    onMessage: (h: (f: Uint8Array) => void) => { handlers[me] = h; },
  });
  const gh = new Uint8Array(32).fill(0xab);
  const hello = (listen: string) => () => ({ version: 2, chainId: 'meshledger-devnet', genesisHash: gh, listen, headHeight: 0, headHash: gh });
  const [d] = await Promise.all([
    secureSession(pipe('d', 'l'), { initiator: true, identity: dId, random: script('33'.repeat(32)), clock: systemClock, timeoutMs: 5000, hello: hello(''), accept: () => {} }),
    secureSession(pipe('l', 'd'), { initiator: false, identity: lId, random: script('44'.repeat(32)), clock: systemClock, timeoutMs: 5000, hello: hello('ws://127.0.0.1:30400'), accept: () => {} }),
  ]);
  assert.equal(toHex(sent.d![0]!), sessionField('message 1'));
  assert.equal(toHex(sent.l![0]!), sessionField('message 2'));
  assert.equal(toHex(sent.d![1]!), sessionField('message 3'));
  assert.equal(toHex(d.handshakeHash), sessionField('handshake hash'));
  d.conn.send(encodeMessage({ type: MSG.GET_ADDR }));
  assert.equal(toHex(sent.d![2]!), sessionField('first frame'));
});
