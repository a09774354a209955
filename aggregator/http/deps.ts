import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Logger } from 'pino';
import type { EvidenceSigner } from '../evidence/signing.js';
import type { AggregatorMetrics } from '../metrics.js';
import type { NetworkAccessConfig } from '../network-access/config.js';
import type { ReportRegistry } from '../reports/registry.js';
import type { ReportScheduler } from '../reports/scheduler.js';
import type { TamperConfig } from '../reports/tamper.js';
import type { Store } from '../store/index.js';
import type { HttpAuthorizer } from './access.js';

// What every route file is given: the app to register on and the aggregator's
// parts it answers from. Apart from app.ts, which imports every route file,
// so that a route needs only this and not the app that assembles them all.

export interface HttpDeps {
  store: Store;
  metrics: AggregatorMetrics;
  log: Logger;
  authorizer: HttpAuthorizer;
  /** The report registry and scheduler (absent: report routes answer from the store only). */
  reports?: { registry: ReportRegistry; scheduler: ReportScheduler };
  tamper: TamperConfig;
  /** --signing-key: signs every evidence download (absent: nothing is signed). */
  signer?: EvidenceSigner;
  /** Network access's configuration source, --internal-cidr and findings gauge (absent: observed evidence only). */
  networkAccess?: NetworkAccessConfig;
}

/**
 * The app as buildHttpApp makes it (`.withTypeProvider<TypeBoxTypeProvider>()`): routes registered on it get their
 * params, query, body and reply types from their TypeBox schemas.
 */
export type App = FastifyInstance<Server, IncomingMessage, ServerResponse, Logger, TypeBoxTypeProvider>;
