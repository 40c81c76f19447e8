// Bundle the CLI into one CommonJS file (and the engine thread, the library
// entry and the bulk worker into others):
// Node resolves and compiles one module instead of hundreds, and loading
// CommonJS skips the ESM loader's work, which keeps `ckpt` start-up short.
// Native modules (koffi, @node-rs/crc32) stay outside.
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { build } from 'esbuild';
import { createRequire } from 'node:module';
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
// `import fs from 'node:fs'` in every module would copy the module's
// properties once per importer (esbuild's CommonJS interop); one shared
// ES module for each of the builtins the sources import by default saves that.
const sharedBuiltins = {
  name: 'shared-builtins',
  setup(b) {
    b.onResolve({ filter: /^node:(fs|path)$/ }, (args) =>
      args.importer.includes('/src/') ? { path: args.path, namespace: 'ckpt-builtin' } : undefined);
    b.onLoad({ filter: /.*/, namespace: 'ckpt-builtin' }, (args) => {
      // Named imports too (`import { openSync } from 'node:fs'`): every plain
      // value property, read once here; accessors (fs.promises) are left out
      // so that nothing is loaded that no one asked for.
      const real = createRequire(import.meta.url)(args.path);
      const names = Object.keys(real).filter((k) => /^[A-Za-z_$][\w$]*$/.test(k) && 'value' in Object.getOwnPropertyDescriptor(real, k));
      return {
        contents: `const m = require(${JSON.stringify(args.path)}); export default m; export const { ${names.join(', ')} } = m;`,
        loader: 'js',
      };
    });
  },
};
const common = {
  plugins: [lazyChildProcess, sharedBuiltins],
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
// The command line: its entry (dist/ckpt.cjs) only starts an engine thread
// and loads the rest (dist/cli.cjs: commander and the library's caller side),
// so that the thread starts before the bulk of the command is compiled. The
// engine (everything that traces, and zod) is loaded by the engine thread.
const cliApart = {
  name: 'cli-apart',
  setup(b) {
    b.onResolve({ filter: /^\.\/cli\.js$/ }, (args) => (args.importer.endsWith('main.ts') ? { path: './cli.cjs', external: true } : undefined));
  },
};
await build({ ...common, plugins: [...common.plugins, cliApart], entryPoints: ['src/main.ts'], outfile: 'dist/ckpt.cjs' });
await build({ ...common, entryPoints: ['src/cli.ts'], outfile: 'dist/cli.cjs' });
// The engine thread (src/engine/worker.ts), also loaded as a module for info.
await build({ ...common, entryPoints: ['src/engine/worker.ts'], outfile: 'dist/engine.cjs' });
// Its V8 code cache: an engine thread starts for every operation.
execFileSync(process.execPath, ['scripts/engine-cache.cjs', 'dist/engine.cjs'], { stdio: 'inherit' });
// (which kinds of operation have added to it since: none yet)
fs.rmSync('dist/engine.cjs.cache-ops', { force: true });
// The library (package.json "main"/"exports"); its types are dist/types/ (tsconfig.lib.json).
await build({ ...common, entryPoints: ['src/api.ts'], outfile: 'dist/index.cjs' });
// Declarations of a package whose JavaScript is CommonJS are CommonJS too.
fs.writeFileSync('dist/types/package.json', '{ "type": "commonjs" }\n');
await build({ ...common, entryPoints: ['src/bulk/worker.ts'], outfile: 'dist/bulk-worker.cjs' });
// With everything built: the engine's code cache gets the code of each kind of operation.
execFileSync(process.execPath, ['scripts/warm-engine.mjs'], { stdio: 'inherit' });
