// Bundle the CLI into one CommonJS file (and the bulk worker into another):
// Node resolves and compiles one module instead of hundreds, and loading
// CommonJS skips the ESM loader's work, which keeps `ckpt` start-up short.
// Native modules (koffi, @node-rs/crc32) stay outside.
import { build } from 'esbuild';
// commander loads child_process at start-up for stand-alone executable
// subcommands, which ckpt has none of: give it a stand-in that loads the real
// module only if it is ever used.
const lazyChildProcess = {
  name: 'lazy-child-process',
  setup(b) {
    b.onResolve({ filter: /^node:child_process$/ }, (args) =>
      args.importer.includes('node_modules/commander') ? { path: 'lazy-child-process', namespace: 'ckpt-stub' } : undefined);
    b.onLoad({ filter: /.*/, namespace: 'ckpt-stub' }, () => ({
      contents: "module.exports = { spawn: (...a) => require('node:child_process').spawn(...a) };",
      loader: 'js',
    }));
  },
};
const common = {
  plugins: [lazyChildProcess],
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
await build({ ...common, entryPoints: ['src/main.ts'], outfile: 'dist/ckpt.cjs' });
await build({ ...common, entryPoints: ['src/bulk/worker.ts'], outfile: 'dist/bulk-worker.cjs' });
