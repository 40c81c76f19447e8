// The ckpt command: run the CLI and exit with its status as soon as it is done.
// A dump, restore or check runs in an engine thread: start it first, so that
// it boots while the command line (commander, the library's caller side; a
// bundle of its own, dist/cli.cjs) is loaded and parses the arguments.
import { createRequire } from 'node:module';
import { prewarmEngine } from './engine/host.js';

const argv = process.argv.slice(2);
const engine = argv.some((a) => a === 'dump' || a === 'restore' || a === 'check' || a === 'upgrade') ? prewarmEngine() : undefined;
// (bundled, the rest is dist/cli.cjs, loaded as CommonJS; from build/, cli.js)
const cli: Promise<typeof import('./cli.js')> = import.meta.url.endsWith('.cjs')
  ? Promise.resolve(createRequire(import.meta.url)('./cli.cjs')) : import('./cli.js');
cli.then(async (m) => { const c = await m.main(argv, engine); if (!m.exitThroughEngine(c)) process.exit(c); }).catch((e) => { process.stderr.write(String(e) + '\n'); process.exit(1); });
