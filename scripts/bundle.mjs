// Bundle the CLI into one file (and the bulk worker into another): Node
// resolves and compiles one module instead of hundreds, which keeps `ckpt`
// start-up short. Native modules stay outside.
import { build } from 'esbuild';
const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['koffi', '@node-rs/crc32'],
  sourcemap: 'linked',
  logLevel: 'warning',
  banner: { js: "import { createRequire as __ckptRequire } from 'node:module'; const require = __ckptRequire(import.meta.url);" },
};
await build({ ...common, entryPoints: ['src/cli.ts'], outfile: 'dist/ckpt.mjs' });
await build({ ...common, entryPoints: ['src/bulk/worker.ts'], outfile: 'dist/bulk-worker.mjs' });
