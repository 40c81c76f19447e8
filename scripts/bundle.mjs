// Bundle the CLI into one file: Node resolves and compiles one module instead
// of hundreds, which keeps `ckpt` start-up short.
import { build } from 'esbuild';
await build({
  entryPoints: ['src/cli.ts'],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['koffi'],
  outfile: 'dist/ckpt.mjs',
  sourcemap: 'linked',
  logLevel: 'warning',
  banner: { js: "import { createRequire as __ckptRequire } from 'node:module'; const require = __ckptRequire(import.meta.url);" },
});
