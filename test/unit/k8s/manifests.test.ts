/**
 * deploy/kubernetes/, offline: every document is valid against the Kubernetes API schemas (kubernetes-models 4.5,
 * which ships those of Kubernetes 1.33), the files are what scripts/k8s/manifests.ts generates, and the properties the
 * deployment relies on hold: one pod per validator key, keys from read-only Secrets, datadirs on volumes,
 * probes through the RPC port, Prometheus annotations, stable P2P names, the genesis Job and its narrow role.
 * Broken manifests are shown to be rejected, so the validation can fail.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { packageRoot } from '../../../src/util/schemas.js';
import {
  DEFAULTS, GENESIS_CONFIGMAP, GENESIS_PARAMS, P2P_PORT, P2P_SERVICE, RPC_PORT, buildManifests, doubleSigningHazards, keySecret, renderManifests, validatorUrl,
} from '../../../scripts/k8s/manifests.js';

const dir = join(packageRoot(), 'deploy', 'kubernetes');
const files = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();

/** Parsed YAML: any shape until validated. */
type Doc = any;

function parseFile(text: string, name: string): Doc[] {
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) throw new Error(`${name}: not a YAML stream`);
  for (const d of docs) if (d.errors.length > 0) throw new Error(`${name}: ${d.errors.map((e) => e.message).join('; ')}`);
  return docs.map((d) => d.toJS()).filter((d) => d !== null);
}

const byFile = new Map(files.map((f) => [f, parseFile(readFileSync(join(dir, f), 'utf8'), f)]));
const docs: Doc[] = [...byFile.entries()].filter(([f]) => f !== 'kustomization.yaml').flatMap(([, d]) => d);
const find = (kind: string, name: string): Doc => {
  const d = docs.find((x) => x.kind === kind && x.metadata?.name === name);
  assert.ok(d, `${kind}/${name} is in deploy/kubernetes`);
  return d;
};
const validators = Array.from({ length: DEFAULTS.validators }, (_, i) => find('StatefulSet', `validator-${i}`));
const observer = find('StatefulSet', 'observer');
const nodeOf = (set: Doc): Doc => set.spec.template.spec.containers.find((c: Doc) => c.name === 'node');
const flag = (args: string[], name: string): string | undefined => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args[i + 1];
};

/** Validate one document against its kind's schema: throws on a violation or an unknown apiVersion/kind. */
async function validateSchema(d: Doc): Promise<void> {
  if (typeof d?.apiVersion !== 'string' || typeof d?.kind !== 'string') throw new Error(`not a Kubernetes object: ${JSON.stringify(d).slice(0, 120)}`);
  const modPath = d.apiVersion === 'v1' ? 'kubernetes-models/v1' : `kubernetes-models/${d.apiVersion}`;
  let mod: Record<string, unknown>;
  try {
    mod = await import(modPath);
  } catch {
    throw new Error(`unknown apiVersion ${d.apiVersion}`);
  }
  const Model = mod[d.kind] as (new (x: unknown) => { validate(): void }) | undefined;
  if (typeof Model !== 'function') throw new Error(`unknown kind ${d.kind} in ${d.apiVersion}`);
  new Model(d).validate();
}

test('every manifest validates against the Kubernetes schemas', async () => {
  assert.ok(docs.length >= 10, `found ${docs.length} documents`);
  for (const d of docs) {
    await assert.doesNotReject(validateSchema(d), `${d.kind}/${d.metadata?.name}`);
    if (d.kind !== 'Namespace') assert.equal(d.metadata.namespace, DEFAULTS.namespace, `${d.kind}/${d.metadata.name} names its namespace`);
  }
});

test('broken manifests are rejected: wrong types, missing fields, unknown kinds, bad YAML', async () => {
  const broken: [string, (d: Doc) => void, Doc, RegExp][] = [
    ['replicas as a string', (d) => { d.spec.replicas = '1'; }, validators[0], /replicas must be integer/],
    ['a StatefulSet without its pod template', (d) => { delete d.spec.template; }, validators[0], /must have required property template/],
    ['a container without a name', (d) => { delete nodeOf(d).name; }, observer, /must have required property name/],
    ['a probe port that is an object', (d) => { nodeOf(d).livenessProbe.httpGet.port = { name: 'rpc' }; }, observer, /port must be/],
    ['a Service port number out of type', (d) => { d.spec.ports[0].port = 'p2p'; }, find('Service', P2P_SERVICE), /port must be integer/],
    ['a Job without containers', (d) => { delete d.spec.template.spec.containers; }, find('Job', 'genesis'), /must have required property containers/],
    ['a PVC access mode that does not exist', (d) => { d.spec.volumeClaimTemplates[0].spec.accessModes = 'ReadWriteOnce'; }, validators[1], /accessModes must be array/],
    ['an unknown kind', (d) => { d.kind = 'StatefulSets'; }, validators[0], /unknown kind StatefulSets/],
    ['an unknown apiVersion', (d) => { d.apiVersion = 'apps/v9'; }, validators[0], /unknown apiVersion apps\/v9/],
  ];
  for (const [what, mutate, original, expected] of broken) {
    const d = structuredClone(original);
    mutate(d);
    await assert.rejects(validateSchema(d), expected, `${what} must be rejected`);
  }
  assert.throws(() => parseFile('kind: Service\n  metadata: [\n', 'bad.yaml'), /bad\.yaml/, 'malformed YAML is rejected');
});

test('the committed files are exactly what scripts/k8s/manifests.ts generates, and kustomization lists them all', () => {
  const rendered = renderManifests(DEFAULTS);
  assert.deepEqual(files, [...rendered.keys()].sort(), 'the same set of files');
  for (const [f, text] of rendered) {
    assert.equal(readFileSync(join(dir, f), 'utf8'), text, `${f} is stale: run \`npm run build && node dist/scripts/k8s/manifests.js\``);
  }
  const k = byFile.get('kustomization.yaml')![0];
  assert.equal(k.kind, 'Kustomization');
  assert.deepEqual([...k.resources].sort(), files.filter((f) => f !== 'kustomization.yaml'));
});

test('one pod per validator key: each key Secret is read by exactly one StatefulSet of replicas 1', () => {
  assert.deepEqual(doubleSigningHazards(docs), []);
  validators.forEach((v, i) => {
    assert.equal(v.spec.replicas, 1);
    assert.equal(v.spec.updateStrategy.type, 'RollingUpdate', 'delete the old pod before creating the new one');
    assert.ok(['Parallel', 'OrderedReady'].includes(v.spec.podManagementPolicy), 'podManagementPolicy is stated');
    const keyVol = v.spec.template.spec.volumes.find((x: Doc) => x.secret);
    assert.equal(keyVol.secret.secretName, keySecret(i), `validator-${i} reads its own key`);
    const mount = nodeOf(v).volumeMounts.find((m: Doc) => m.name === keyVol.name);
    assert.equal(mount.readOnly, true, 'the key is mounted read-only');
    assert.equal(keyVol.secret.defaultMode & ~0o440, 0, 'the key file is read-only for its owner and the pod\'s group, closed to others');
    assert.ok(flag(nodeOf(v).args, '--key')!.startsWith(`${mount.mountPath}/`), '--key points into the Secret');
  });
  const reads = (d: Doc) => JSON.stringify(d.spec?.template?.spec ?? {}).includes('-key"');
  assert.equal(reads(observer), false, 'the observer holds no key');
  assert.equal(reads(find('Job', 'genesis')), false, 'the genesis Job holds no key');
  const spread = validators[0].spec.template.spec.affinity.podAntiAffinity;
  assert.ok(spread.preferredDuringSchedulingIgnoredDuringExecution ?? spread.requiredDuringSchedulingIgnoredDuringExecution, 'validators are spread by anti-affinity');
  const pdb = find('PodDisruptionBudget', 'validators');
  assert.equal(pdb.spec.maxUnavailable, 1);
});

test('the double-signing check catches every way to run a key twice', () => {
  const v0 = validators[0];
  const cases: [string, Doc[], RegExp][] = [
    ['replicas 2', [{ ...structuredClone(v0), spec: { ...structuredClone(v0.spec), replicas: 2 } }], /replicas 2: it must say 1/],
    ['replicas left to the default', [(() => { const d = structuredClone(v0); delete d.spec.replicas; return d; })()], /replicas undefined/],
    ['a Deployment with a key', [{ ...structuredClone(v0), kind: 'Deployment', apiVersion: 'apps/v1' }], /Deployment\/validator-0 reads validator key validator-0-key: only a StatefulSet/],
    ['two StatefulSets with one key', [v0, { ...structuredClone(v0), metadata: { name: 'validator-0-copy' } }], /validator-0-key is read by StatefulSet\/validator-0 and StatefulSet\/validator-0-copy/],
    ['one pod with two keys', [(() => { const d = structuredClone(v0); d.spec.template.spec.volumes.push({ name: 'k2', secret: { secretName: keySecret(1) } }); return d; })()], /reads 2 validator keys/],
    ['a key in an env var of a Job', [{ apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'j' }, spec: { template: { spec: { containers: [{ name: 'c', env: [{ name: 'K', valueFrom: { secretKeyRef: { name: keySecret(3), key: 'key.json' } } }] }] } } } }], /Job\/j reads validator key validator-3-key/],
    ['an autoscaler on a validator', [v0, { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: { name: 'h' }, spec: { scaleTargetRef: { kind: 'StatefulSet', name: 'validator-0' } } }], /HorizontalPodAutoscaler\/h scales StatefulSet\/validator-0/],
  ];
  for (const [what, set, expected] of cases) {
    const problems = doubleSigningHazards(set);
    assert.ok(problems.some((p) => expected.test(p)), `${what}: got ${JSON.stringify(problems)}`);
  }
});

test('datadirs live on PersistentVolumeClaims; genesis comes from the ConfigMap the Job publishes', () => {
  for (const set of [...validators, observer]) {
    const claim = set.spec.volumeClaimTemplates.find((c: Doc) => c.metadata.name === 'data');
    assert.ok(claim, `${set.metadata.name} claims a volume`);
    assert.deepEqual(claim.spec.accessModes, ['ReadWriteOnce']);
    assert.ok(claim.spec.resources.requests.storage);
    const node = nodeOf(set);
    assert.equal(node.volumeMounts.find((m: Doc) => m.name === 'data').mountPath, flag(node.args, '--datadir'));
    const g = set.spec.template.spec.volumes.find((x: Doc) => x.configMap);
    assert.equal(g.configMap.name, GENESIS_CONFIGMAP);
    assert.equal(flag(node.args, '--genesis'), `${node.volumeMounts.find((m: Doc) => m.name === g.name).mountPath}/genesis.json`);
    assert.equal(set.spec.persistentVolumeClaimRetentionPolicy?.whenDeleted ?? 'Retain', 'Retain', 'chain data outlives the StatefulSet');
  }
  const job = find('Job', 'genesis');
  const c = job.spec.template.spec.containers[0];
  assert.deepEqual(c.command, ['node', '/app/dist/scripts/docker/publish-genesis.js']);
  assert.equal(c.envFrom[0].configMapRef.name, GENESIS_PARAMS);
  assert.equal(flag(c.args, '--configmap'), GENESIS_CONFIGMAP);
  const role = find('Role', job.spec.template.spec.serviceAccountName);
  const verbs = role.rules.flatMap((r: Doc) => r.verbs).sort();
  assert.deepEqual(verbs, ['create', 'get'], 'the Job may read and create ConfigMaps, never change or delete one');
  assert.deepEqual(role.rules.flatMap((r: Doc) => r.resources), ['configmaps', 'configmaps']);
  assert.equal(find('RoleBinding', role.metadata.name).roleRef.name, role.metadata.name);
});

test('probes and metrics go through the RPC port; pods run as non-root with a read-only root', () => {
  for (const set of [...validators, observer]) {
    const node = nodeOf(set);
    const rpcPort = node.ports.find((p: Doc) => p.name === 'rpc');
    assert.equal(rpcPort.containerPort, RPC_PORT);
    assert.equal(flag(node.args, '--rpc'), `0.0.0.0:${RPC_PORT}`);
    for (const probe of ['livenessProbe', 'startupProbe']) {
      assert.deepEqual(node[probe].httpGet, { path: '/health', port: 'rpc' }, `${probe} asks GET /health on the RPC port`);
    }
    assert.deepEqual(node.readinessProbe.exec.command, ['node', '/app/dist/scripts/docker/healthcheck.js', '--ready'], 'readiness asks JSON-RPC getHealth');
    const ann = set.spec.template.metadata.annotations;
    assert.deepEqual(ann, { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(RPC_PORT), 'prometheus.io/path': '/metrics' });
    const pod = set.spec.template.spec;
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.runAsUser, 10001);
    assert.equal(node.securityContext.readOnlyRootFilesystem, true);
    assert.equal(node.securityContext.allowPrivilegeEscalation, false);
  }
});

test('P2P runs over stable names of a headless Service that publishes pods before they are ready', () => {
  const p2p = find('Service', P2P_SERVICE);
  assert.equal(p2p.spec.clusterIP, 'None');
  assert.equal(p2p.spec.publishNotReadyAddresses, true, 'a node is ready only once it has peers, so peers must resolve first');
  const selects = (set: Doc) => Object.entries(p2p.spec.selector).every(([k, v]) => set.spec.template.metadata.labels[k] === v);
  for (const set of [...validators, observer]) {
    assert.equal(set.spec.serviceName, P2P_SERVICE);
    assert.ok(selects(set), `${set.metadata.name} pods are behind the p2p Service`);
  }
  assert.equal(selects(find('Job', 'genesis')), false, 'the genesis Job is not a P2P peer');
  validators.forEach((v, i) => {
    const args = nodeOf(v).args;
    assert.equal(flag(args, '--advertise'), validatorUrl(i));
    assert.equal(validatorUrl(i), `ws://validator-${i}-0.${P2P_SERVICE}:${P2P_PORT}`);
    const boot = flag(args, '--bootnodes')!.split(',');
    assert.deepEqual(boot.sort(), validators.map((_, j) => validatorUrl(j)).filter((u) => u !== validatorUrl(i)).sort(), 'each validator dials the others');
  });
  const obsArgs = nodeOf(observer).args;
  assert.equal(flag(obsArgs, '--advertise'), `ws://$(POD_NAME).${P2P_SERVICE}:${P2P_PORT}`);
  assert.ok(nodeOf(observer).env.some((e: Doc) => e.name === 'POD_NAME' && e.valueFrom.fieldRef.fieldPath === 'metadata.name'));
  const rpcSvc = find('Service', 'rpc');
  assert.deepEqual(rpcSvc.spec.selector, { 'app.kubernetes.io/name': 'meshledger', 'app.kubernetes.io/component': 'observer' });
});

test('the generator scales: 7 validators give 7 single-replica StatefulSets that all validate', async () => {
  const seven = [...buildManifests({ ...DEFAULTS, validators: 7, observers: 3 }).values()].flat();
  assert.deepEqual(doubleSigningHazards(seven), []);
  for (const d of seven) await validateSchema(d);
  const sets = seven.filter((d) => d.kind === 'StatefulSet' && d.metadata?.name?.startsWith('validator-')) as Doc[];
  assert.equal(sets.length, 7);
  assert.equal(flag(nodeOf(sets[6]).args, '--bootnodes')!.split(',').length, 6);
  assert.throws(() => buildManifests({ ...DEFAULTS, validators: 0 }), /positive integer/);
});
