#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { cliFailure } from '../common/cli-failure.js';
import { AGGREGATOR_USAGE, parseAggregatorArgs } from './config.js';
import { runVerify } from './evidence/verify-cli.js';
import { startAggregator } from './main.js';

/** The flags that move the addresses a failure to listen names. */
const PORT_FLAGS = '--http or --grpc';

/** One line and an exit code for a failure, chosen by its code (common/cli-failure.ts), never by its message. */
function fail(err: unknown): never {
  const { line, exitCode } = cliFailure(err, PORT_FLAGS);
  process.stderr.write(`verdict-aggregator: ${line}\n`);
  process.exit(exitCode);
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'verify') {
    // Checks evidence and ends; the aggregator's own flags do not apply (aggregator/evidence/verify-cli.ts).
    process.exitCode = await runVerify(argv.slice(1), (text) => process.stdout.write(text));
    return;
  }
  const config = parseAggregatorArgs(argv);
  if (config === 'help') {
    process.stdout.write(AGGREGATOR_USAGE);
    return;
  }
  const running = await startAggregator(config);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`verdict-aggregator: ${signal}, shutting down\n`);
    running.close().then(() => process.exit(0), fail);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  main(process.argv.slice(2)).catch(fail);
}
