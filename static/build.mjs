// Bundles the BPMN designer and viewer, the figure charts and the oversight pages (ECharts),
// the case comparison and migration pages; copies htmx
// into dist/ (ignored by git).
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });

await build({
  absWorkingDir: here,
  entryPoints: { designer: 'src/designer.js', viewer: 'src/viewer.js', charts: 'src/charts.js', page: 'src/page.js', compare: 'src/compare.js', migration: 'src/migration.js', oversight: 'src/oversight.js' },
  outdir: dist,
  bundle: true,
  format: 'esm',
  target: ['es2020'],
  minify: true,
  // No source maps: production serves only the minified bundles.
  sourcemap: false,
  legalComments: 'linked',
  // bpmn-font and the panel's CSS reference font files; they land in dist/assets/.
  loader: { '.woff': 'file', '.woff2': 'file', '.ttf': 'file', '.eot': 'file', '.svg': 'file' },
  assetNames: 'assets/[name]-[hash]',
  logLevel: 'warning',
});

await copyFile(join(here, 'node_modules/htmx.org/dist/htmx.min.js'), join(dist, 'htmx.min.js'));
console.log('static/dist built');
