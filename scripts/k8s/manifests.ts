/**
 * The Kubernetes manifests in deploy/kubernetes/ are generated here, so that N validators do not mean N
 * hand-copied StatefulSets that drift apart. Typed with kubernetes-models: a misspelt field does not compile.
 *
 *   npm run build && node dist/scripts/k8s/manifests.js [--validators 4] [--observers 1] [--out deploy/kubernetes]
 *
 * What they describe (namespace `meshledger`, every name below inside it):
 *
 *   validator-<i>    one StatefulSet PER VALIDATOR KEY, replicas 1, pod validator-<i>-0. Its key is the Secret
 *                    validator-<i>-key (created by the operator, never by these manifests), mounted read-only
 *                    at /keys. Datadir on a PersistentVolumeClaim from volumeClaimTemplates.
 *   observer         a StatefulSet of keyless followers (scale freely), behind the `rpc` Service.
 *   p2p              headless Service: stable DNS names validator-<i>-0.p2p, observer-<k>.p2p for --bootnodes
 *                    and --advertise; publishes not-ready pods, since a node becomes ready only with peers.
 *   rpc              ClusterIP Service for JSON-RPC on the observers.
 *   genesis          Job running scripts/docker/publish-genesis.ts: builds genesis from the `genesis-params`
 *                    ConfigMap (validator ADDRESSES, created by the operator) and publishes the immutable
 *                    ConfigMap `genesis` that the nodes mount. Pods wait for it to exist.
 *   validators       PodDisruptionBudget: voluntary disruptions take at most one validator at a time.
 *
 * Why a validator key can never run in two pods (double signing): each key Secret is mounted by exactly one
 * StatefulSet, that StatefulSet has replicas 1, and a StatefulSet creates a pod's replacement only after the old
 * pod is gone from the API, on rollouts too (a Deployment would surge a second pod). What remains is for people:
 * never `kubectl delete pod --force` a validator on an unreachable node, never scale a validator above 1, never
 * reuse a key in another cluster or compose file. test/unit/k8s/manifests.test.ts checks the manifests' part.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { stringify } from 'yaml';
import type { INamespace } from 'kubernetes-models/v1/Namespace';
import type { IService } from 'kubernetes-models/v1/Service';
import type { IServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import type { IStatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import type { IJob } from 'kubernetes-models/batch/v1/Job';
import type { IRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import type { IRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';

export interface ManifestOptions {
  validators: number;
  observers: number;
  namespace: string;
}

export const DEFAULTS: ManifestOptions = { validators: 4, observers: 1, namespace: 'meshledger' };

export const IMAGE = 'meshledger:local';
export const RPC_PORT = 8645;
export const P2P_PORT = 30400;
export const APP_UID = 10001;
export const P2P_SERVICE = 'p2p';
export const GENESIS_CONFIGMAP = 'genesis';
export const GENESIS_PARAMS = 'genesis-params';
const NAME = 'meshledger';

/** The Secret holding validator i's key file (key `key.json`). */
export const keySecret = (i: number) => `validator-${i}-key`;
/** Validator i's StatefulSet; its one pod is `${name}-0`. */
export const validatorSet = (i: number) => `validator-${i}`;
/** Validator i's stable P2P URL through the headless Service (short name: resolves inside the namespace). */
export const validatorUrl = (i: number) => `ws://${validatorSet(i)}-0.${P2P_SERVICE}:${P2P_PORT}`;

type Labels = Record<string, string>;
/** Pods that take part in P2P (the headless Service selects these, not the genesis Job). */
const P2P_LABEL = { 'meshledger.io/p2p': 'true' };
const labels = (component: string, extra: Labels = {}): Labels => ({
  'app.kubernetes.io/name': NAME,
  'app.kubernetes.io/component': component,
  ...extra,
});

/** Liveness/startup: GET /health on the RPC port (the HTTP server answers). Readiness: JSON-RPC getHealth is "ok". */
const health: IProbe = { httpGet: { path: '/health', port: 'rpc' } };
const probes = (): Pick<IContainer, 'startupProbe' | 'livenessProbe' | 'readinessProbe'> => ({
  // A large datadir takes a while to open: up to 5 minutes before liveness starts counting.
  startupProbe: { ...health, periodSeconds: 5, failureThreshold: 60, timeoutSeconds: 3 },
  livenessProbe: { ...health, periodSeconds: 10, failureThreshold: 6, timeoutSeconds: 3 },
  readinessProbe: {
    exec: { command: ['node', '/app/dist/scripts/docker/healthcheck.js', '--ready'] },
    periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 5,
  },
});

const scrape = { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(RPC_PORT), 'prometheus.io/path': '/metrics' };

function nodeContainer(args: string[], extraMounts: NonNullable<IContainer['volumeMounts']>): IContainer {
  return {
    name: 'node',
    image: IMAGE,
    imagePullPolicy: 'IfNotPresent',
    args: ['node', '--datadir', '/data', '--genesis', '/genesis/genesis.json', ...args,
      '--p2p', `0.0.0.0:${P2P_PORT}`, '--rpc', `0.0.0.0:${RPC_PORT}`, '--log-format', 'json'],
    env: [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
    ports: [{ name: 'p2p', containerPort: P2P_PORT }, { name: 'rpc', containerPort: RPC_PORT }],
    ...probes(),
    resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '1Gi' } },
    securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
    volumeMounts: [
      { name: 'data', mountPath: '/data' },
      { name: 'genesis', mountPath: '/genesis', readOnly: true },
      { name: 'tmp', mountPath: '/tmp' },
      ...extraMounts,
    ],
  };
}

function podSpec(container: IContainer, extra: Partial<IPodSpec> & { volumes?: NonNullable<IPodSpec['volumes']> }): IPodSpec {
  const { volumes = [], ...rest } = extra;
  return {
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    terminationGracePeriodSeconds: 30,
    securityContext: { runAsNonRoot: true, runAsUser: APP_UID, runAsGroup: APP_UID, fsGroup: APP_UID, seccompProfile: { type: 'RuntimeDefault' } },
    containers: [container],
    volumes: [
      // The nodes wait (ContainerCreating) until the genesis Job has published this ConfigMap.
      { name: 'genesis', configMap: { name: GENESIS_CONFIGMAP } },
      { name: 'tmp', emptyDir: {} },
      ...volumes,
    ],
    ...rest,
  };
}

type ClaimTemplate = NonNullable<NonNullable<IStatefulSet['spec']>['volumeClaimTemplates']>[number];
const dataClaim = (size: string): ClaimTemplate => ({
  metadata: { name: 'data' },
  spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: size } } },
});

function validator(o: ManifestOptions, i: number): IStatefulSet {
  const others = Array.from({ length: o.validators }, (_, j) => j).filter((j) => j !== i).map(validatorUrl);
  const own = labels('validator', { 'meshledger.io/validator': String(i), ...P2P_LABEL });
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: validatorSet(i), namespace: o.namespace, labels: own },
    spec: {
      // Exactly one pod per key, always: see the header. Never raise this.
      replicas: 1,
      serviceName: P2P_SERVICE,
      // One pod per set leaves nothing to order; Parallel documents that no start order is assumed.
      podManagementPolicy: 'Parallel',
      // The old pod is deleted before its replacement is created: no moment with two signers.
      updateStrategy: { type: 'RollingUpdate' },
      persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
      selector: { matchLabels: own },
      template: {
        metadata: { labels: own, annotations: scrape },
        spec: podSpec(
          nodeContainer(
            ['--key', '/keys/key.json', '--advertise', validatorUrl(i), ...(others.length > 0 ? ['--bootnodes', others.join(',')] : [])],
            [{ name: 'key', mountPath: '/keys', readOnly: true }],
          ),
          {
            volumes: [{ name: 'key', secret: { secretName: keySecret(i), defaultMode: 0o440, items: [{ key: 'key.json', path: 'key.json' }] } }],
            affinity: {
              // Spread validators over machines, so one machine's loss stops at most one of them. Preferred, not
              // required, so a small cluster still runs; make it required in production (see README).
              podAntiAffinity: {
                preferredDuringSchedulingIgnoredDuringExecution: [{
                  weight: 100,
                  podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: labels('validator') } },
                }],
              },
            },
          },
        ),
      },
      volumeClaimTemplates: [dataClaim('10Gi')],
    },
  };
}

function observer(o: ManifestOptions): IStatefulSet {
  const own = labels('observer', P2P_LABEL);
  const boot = Array.from({ length: o.validators }, (_, j) => validatorUrl(j)).join(',');
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'observer', namespace: o.namespace, labels: own },
    spec: {
      replicas: o.observers,
      serviceName: P2P_SERVICE,
      // Followers hold no key: start and scale them all at once.
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'RollingUpdate' },
      selector: { matchLabels: own },
      template: {
        metadata: { labels: own, annotations: scrape },
        spec: podSpec(nodeContainer(['--advertise', `ws://$(POD_NAME).${P2P_SERVICE}:${P2P_PORT}`, '--bootnodes', boot], []), {}),
      },
      volumeClaimTemplates: [dataClaim('10Gi')],
    },
  };
}

function services(o: ManifestOptions): IService[] {
  return [{
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: P2P_SERVICE, namespace: o.namespace, labels: labels('p2p') },
    spec: {
      clusterIP: 'None',
      // Readiness needs a peer, and a peer needs these DNS names: publish pods before they are ready.
      publishNotReadyAddresses: true,
      selector: { 'app.kubernetes.io/name': NAME, ...P2P_LABEL },
      ports: [{ name: 'p2p', port: P2P_PORT, targetPort: 'p2p' }],
    },
  }, {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'rpc', namespace: o.namespace, labels: labels('rpc') },
    spec: {
      type: 'ClusterIP',
      selector: labels('observer'),
      ports: [{ name: 'rpc', port: RPC_PORT, targetPort: 'rpc' }],
    },
  }];
}

function genesisJob(o: ManifestOptions): [IServiceAccount, IRole, IRoleBinding, IJob] {
  const sa = 'genesis-publisher';
  return [{
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: sa, namespace: o.namespace, labels: labels('genesis') },
  }, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: sa, namespace: o.namespace, labels: labels('genesis') },
    rules: [
      // Read and create the genesis ConfigMap; no update, patch or delete: a published genesis is final.
      { apiGroups: [''], resources: ['configmaps'], resourceNames: [GENESIS_CONFIGMAP], verbs: ['get'] },
      { apiGroups: [''], resources: ['configmaps'], verbs: ['create'] },
    ],
  }, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: sa, namespace: o.namespace, labels: labels('genesis') },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: sa },
    subjects: [{ kind: 'ServiceAccount', name: sa, namespace: o.namespace }],
  }, {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: 'genesis', namespace: o.namespace, labels: labels('genesis') },
    spec: {
      backoffLimit: 6,
      template: {
        metadata: { labels: labels('genesis') },
        spec: {
          serviceAccountName: sa,
          restartPolicy: 'OnFailure',
          enableServiceLinks: false,
          securityContext: { runAsNonRoot: true, runAsUser: APP_UID, runAsGroup: APP_UID, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [{
            name: 'publish-genesis',
            image: IMAGE,
            imagePullPolicy: 'IfNotPresent',
            command: ['node', '/app/dist/scripts/docker/publish-genesis.js'],
            args: ['--configmap', GENESIS_CONFIGMAP],
            // GENESIS_VALIDATORS (required), GENESIS_ALLOC, GENESIS_CHAIN_ID, GENESIS_SLOT_MS: see README.
            envFrom: [{ configMapRef: { name: GENESIS_PARAMS } }],
            resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } },
            securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
            volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
          }],
          volumes: [{ name: 'tmp', emptyDir: {} }],
        },
      },
    },
  }];
}

function disruptionBudget(o: ManifestOptions): IPodDisruptionBudget {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: 'validators', namespace: o.namespace, labels: labels('validator') },
    spec: { maxUnavailable: 1, selector: { matchLabels: labels('validator') } },
  };
}

function namespace(o: ManifestOptions): INamespace {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name: o.namespace, labels: { 'app.kubernetes.io/name': NAME } } };
}

export type Manifest = { apiVersion: string; kind: string; metadata?: { name?: string; namespace?: string } };

/** A validator key Secret's name. */
export const KEY_SECRET = /^validator-\d+-key$/;
const POD_OWNERS = new Set(['Pod', 'Deployment', 'ReplicaSet', 'ReplicationController', 'DaemonSet', 'StatefulSet', 'Job', 'CronJob']);

// The checks below read parsed YAML of any shape, hence `any`.
function podSpecOf(d: any): any {
  if (d.kind === 'Pod') return d.spec;
  if (d.kind === 'CronJob') return d.spec?.jobTemplate?.spec?.template?.spec;
  return d.spec?.template?.spec;
}

/** Every key Secret a pod spec can read: secret volumes, projected secrets, env and envFrom references. */
function keySecretsOf(spec: any): Set<string> {
  const names: string[] = [];
  for (const v of spec?.volumes ?? []) {
    if (v.secret?.secretName) names.push(v.secret.secretName);
    for (const src of v.projected?.sources ?? []) if (src.secret?.name) names.push(src.secret.name);
  }
  for (const c of [...(spec?.containers ?? []), ...(spec?.initContainers ?? [])]) {
    for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef?.name) names.push(e.valueFrom.secretKeyRef.name);
    for (const e of c.envFrom ?? []) if (e.secretRef?.name) names.push(e.secretRef.name);
  }
  return new Set(names.filter((n) => KEY_SECRET.test(n)));
}

/**
 * What in a set of manifests could let one validator key sign in two pods at once; empty when nothing can.
 * A key Secret may be read only by a StatefulSet with `replicas: 1` that reads no other key, by exactly one
 * such StatefulSet, and no autoscaler may target it. The generator refuses to write manifests that fail this,
 * and the tests run it on the committed files.
 */
export function doubleSigningHazards(docs: readonly any[]): string[] {
  const problems: string[] = [];
  const readers = new Map<string, string[]>();
  const keyed = new Set<string>();
  for (const d of docs) {
    if (!d || !POD_OWNERS.has(d.kind)) continue;
    const id = `${d.kind}/${d.metadata?.name}`;
    const keys = keySecretsOf(podSpecOf(d));
    if (keys.size === 0) continue;
    for (const k of keys) readers.set(k, [...(readers.get(k) ?? []), id]);
    if (d.kind !== 'StatefulSet') problems.push(`${id} reads validator key ${[...keys].join(', ')}: only a StatefulSet with replicas 1 may (a ${d.kind} can run two pods at once)`);
    else if (d.spec?.replicas !== 1) problems.push(`${id} reads validator key ${[...keys].join(', ')} but has replicas ${JSON.stringify(d.spec?.replicas)}: it must say 1`);
    if (keys.size > 1) problems.push(`${id} reads ${keys.size} validator keys (${[...keys].join(', ')}): one pod, one key`);
    keyed.add(id);
  }
  for (const [k, ids] of readers) if (ids.length > 1) problems.push(`validator key ${k} is read by ${ids.join(' and ')}: one key, one workload`);
  for (const d of docs) {
    if (d?.kind !== 'HorizontalPodAutoscaler') continue;
    const target = `${d.spec?.scaleTargetRef?.kind}/${d.spec?.scaleTargetRef?.name}`;
    if (keyed.has(target)) problems.push(`HorizontalPodAutoscaler/${d.metadata?.name} scales ${target}, which holds a validator key`);
  }
  return problems;
}

/** Every manifest file: name → documents. */
export function buildManifests(o: ManifestOptions = DEFAULTS): Map<string, Manifest[]> {
  if (!Number.isInteger(o.validators) || o.validators < 1) throw new Error('--validators must be a positive integer');
  if (!Number.isInteger(o.observers) || o.observers < 0) throw new Error('--observers must be a non-negative integer');
  return new Map<string, Manifest[]>([
    ['namespace.yaml', [namespace(o)]],
    ['services.yaml', services(o)],
    ['genesis-job.yaml', genesisJob(o)],
    ['validators.yaml', [...Array.from({ length: o.validators }, (_, i) => validator(o, i)), disruptionBudget(o)]],
    ['observer.yaml', [observer(o)]],
  ]);
}

const HEADER = '# Generated by scripts/k8s/manifests.ts; change that file and regenerate (see README, "Kubernetes").\n';

/** The text of each file, kustomization.yaml included. */
export function renderManifests(o: ManifestOptions = DEFAULTS): Map<string, string> {
  const out = new Map<string, string>();
  const files = buildManifests(o);
  const hazards = doubleSigningHazards([...files.values()].flat());
  if (hazards.length > 0) throw new Error(`refusing to write manifests that could double-sign:\n${hazards.join('\n')}`);
  for (const [file, docs] of files) out.set(file, HEADER + docs.map((d) => stringify(d, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n'));
  out.set('kustomization.yaml', HEADER + stringify({
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    namespace: o.namespace,
    resources: [...files.keys()],
    // Point this at the registry your cluster pulls from: kustomize edit set image meshledger=REGISTRY/meshledger:TAG
    images: [{ name: 'meshledger', newTag: 'local' }],
  }, { lineWidth: 0 }));
  return out;
}

function main(argv: string[]): number {
  const o = { ...DEFAULTS };
  let dir = 'deploy/kubernetes';
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--validators') o.validators = Number(value);
    else if (flag === '--observers') o.observers = Number(value);
    else if (flag === '--namespace') o.namespace = value;
    else if (flag === '--out') dir = value;
    else throw new Error(`unknown flag ${flag}; usage: manifests.js [--validators N] [--observers N] [--namespace NS] [--out DIR]`);
  }
  mkdirSync(dir, { recursive: true });
  for (const [file, text] of renderManifests(o)) writeFileSync(join(dir, file), text);
  console.log(`wrote ${dir}/: ${o.validators} validator(s), ${o.observers} observer(s), namespace ${o.namespace}`);
  return 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    console.error(`manifests: ${(e as Error).message}`);
    process.exitCode = 2;
  }
}
