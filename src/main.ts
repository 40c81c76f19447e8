// The ckpt command: run the CLI and exit with its status as soon as it is done.
// A dump, restore or check runs in an engine thread: start it first, so that
// it loads while the command line is parsed.
import { prewarmEngine } from './engine/host.js';

const argv = process.argv.slice(2);
if (argv.some((a) => a === 'dump' || a === 'restore' || a === 'check')) prewarmEngine();
import('./cli.js').then(({ main }) => main(argv)).then((c) => process.exit(c), (e) => { process.stderr.write(String(e) + '\n'); process.exit(1); });
