#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { cliFailure } from '../common/cli-failure.js';
import { AGGREGATOR_USAGE, parseAggregatorArgs } from './config.js';
import { startAggregator } from './main.js';

async function main(argv: string[]): Promise<void> {
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
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    const { line, exitCode } = cliFailure(err, '--http or --grpc');
    process.stderr.write(`verdict-aggregator: ${line}\n`);
    process.exit(exitCode);
  });
}
