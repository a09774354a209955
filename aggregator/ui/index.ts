import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { FastifyReply } from 'fastify';
import Type from 'typebox';
import { packageRoot } from '../../common/package-root.js';
import type { App } from '../http/deps.js';
import { ErrorReplies } from '../http/schemas.js';

/**
 * The compliance dashboard (issue 17): static pages under /ui/, and / sends a browser there. The pages hold no data:
 * they are plain ES modules that read the JSON API with the reader's own bearer token (or none, on loopback), so the
 * API's access control decides what each reader sees and the pages themselves are public, like /docs.
 */

/** Where the pages are: beside this file in the source tree, found from the package root (they are not compiled). */
export const UI_DIR = join(packageRoot(), 'aggregator', 'ui', 'static');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/**
 * Only the pages' own scripts and styles, and the API on this origin: no CDN, no inline script, no framing. Inline
 * SVG built through the DOM needs nothing more.
 */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** Every file of the dashboard (all text), read once at start: a few tens of KiB, served from memory. */
function loadFiles(dir: string): Map<string, { type: string; body: string }> {
  const files = new Map<string, { type: string; body: string }>();
  // An install without the pages (an image built without them) still runs the API; /ui/ then says what is missing.
  if (!existsSync(dir)) return files;
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (type) files.set(name, { type, body: readFileSync(join(dir, name), 'utf8') });
  }
  return files;
}

export function registerUiRoutes(app: App, dir = UI_DIR): void {
  const files = loadFiles(dir);
  const send = (name: string, reply: FastifyReply) => {
    const f = files.get(name);
    if (!f)
      return reply.status(404).send({
        error: 'VERDICT_NOT_FOUND',
        message:
          files.size === 0
            ? `the dashboard's files are not installed (${dir}); the API under /api/v1/ works without them`
            : `the dashboard has no file "${name}"; open /ui/`,
      });
    return reply
      .type(f.type)
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .header('content-security-policy', CSP)
      .header('referrer-policy', 'no-referrer')
      .send(f.body);
  };
  const page = {
    config: { access: 'public' },
    schema: { hide: true, response: { 200: Type.String(), ...ErrorReplies } },
  } as const;
  const toUi = async (_req: unknown, reply: FastifyReply) => reply.redirect('/ui/', 302);
  app.get('/', { config: { access: 'public' }, schema: { hide: true } }, toUi);
  app.get('/ui', { config: { access: 'public' }, schema: { hide: true } }, toUi);
  app.get('/ui/', page, async (_req, reply) => send('index.html', reply));
  app.get(
    '/ui/:file',
    {
      ...page,
      schema: { ...page.schema, params: Type.Object({ file: Type.String({ pattern: '^[a-z0-9-]+\\.[a-z]+$' }) }) },
    },
    async (req, reply) => send(req.params.file, reply),
  );
}
