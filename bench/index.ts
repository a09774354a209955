import { runAuditWebhookBench } from './audit-webhook.js';
import { runCisBench } from './cis.js';
import { runFlowBatchBench } from './flow-batch.js';
import { runRescanBench } from './rescan.js';

/** `npm run bench`: every figure, each printed with its ratio and goal. */
runCisBench();
await runRescanBench();
await runFlowBatchBench();
await runAuditWebhookBench();
