// The ckpt command: run the CLI and exit with its status as soon as it is done.
import { main } from './cli.js';

main(process.argv.slice(2)).then((c) => process.exit(c), (e) => { process.stderr.write(String(e) + '\n'); process.exit(1); });
