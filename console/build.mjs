// Bundles the console into OUT_DIR (index.html, assets/console.js, assets/console.css,
// assets/favicon.svg): `node build.mjs OUT_DIR`, run by the build (CMakeLists.txt, target
// `console`) after `npm ci`. The sources are type-checked first (tsc; a type error fails the
// build). Chart.js is bundled in; the page loads nothing from elsewhere.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) {
  console.error('usage: node build.mjs OUT_DIR');
  process.exit(2);
}
const tsc = path.join(here, 'node_modules', 'typescript', 'bin', 'tsc');
const checked = spawnSync(process.execPath, [tsc, '-p', path.join(here, 'tsconfig.json')], {
  stdio: 'inherit',
});
if (checked.status !== 0) {
  console.error('console: type check failed');
  process.exit(1);
}

rmSync(out, { recursive: true, force: true });
mkdirSync(path.join(out, 'assets'), { recursive: true });

await esbuild.build({
  entryPoints: {
    console: path.join(here, 'src', 'main.ts'),
  },
  outdir: path.join(out, 'assets'),
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020'],
  legalComments: 'linked',
  logLevel: 'warning',
});
await esbuild.build({
  entryPoints: [path.join(here, 'src', 'console.css')],
  outdir: path.join(out, 'assets'),
  bundle: true,
  minify: true,
  logLevel: 'warning',
});
copyFileSync(path.join(here, 'src', 'index.html'), path.join(out, 'index.html'));
copyFileSync(path.join(here, 'src', 'favicon.svg'), path.join(out, 'assets', 'favicon.svg'));
