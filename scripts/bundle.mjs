// Bundle the CLI into one CommonJS file (and the bulk worker into another):
// Node resolves and compiles one module instead of hundreds, and loading
// CommonJS skips the ESM loader's work, which keeps `ckpt` start-up short.
// Native modules (koffi, @node-rs/crc32) stay outside.
import { build } from 'esbuild';
const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: ['koffi', '@node-rs/crc32'],
  sourcemap: 'linked',
  logLevel: 'warning',
  define: { 'import.meta.url': '__ckptModuleUrl' },
  banner: { js: "const __ckptModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
};
await build({ ...common, entryPoints: ['src/cli.ts'], outfile: 'dist/ckpt.cjs' });
await build({ ...common, entryPoints: ['src/bulk/worker.ts'], outfile: 'dist/bulk-worker.cjs' });
