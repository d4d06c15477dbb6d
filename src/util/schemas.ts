/**
 * Runtime validators compiled from the JSON Schema documents in schemas/ (the documents ARE the checks,
 * so they cannot drift from behaviour).
 */
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';

let root: string | undefined;
/** The package root (the folder holding package.json and schemas/). */
export function packageRoot(): string {
  if (root) return root;
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json')) || !existsSync(join(d, 'schemas'))) {
    const up = dirname(d);
    if (up === d) throw new Error('cannot find the package root (package.json + schemas/)');
    d = up;
  }
  return (root = d);
}

export function loadSchema(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(packageRoot(), 'schemas', name), 'utf8'));
}

const ajv = new Ajv({ allErrors: false, strict: true });
const compiled = new Map<string, ValidateFunction>();

export function validatorFor(name: string): ValidateFunction {
  let v = compiled.get(name);
  if (!v) {
    v = ajv.compile(loadSchema(name));
    compiled.set(name, v);
  }
  return v;
}
