#!/usr/bin/env node
// Thin launcher: the CLI is written in TypeScript and compiled to dist/ by `npm run build` (run by `npm ci`).
import { main } from '../dist/src/node/cli.js';
main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
