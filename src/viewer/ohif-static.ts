import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { cacheControlFor, SPA_ROUTES } from './routes.ts';

export interface OhifStaticOptions {
  /** The unpacked OHIF `dist/` (scripts/fetch-ohif.sh puts it in .tools/ohif/dist). */
  distDir: string;
  /** Our OHIF configuration, served as /app-config.js in place of the copy inside the build. */
  appConfigFile: string;
}

/** Headers on every HTML/config answer of the viewer: no sniffing, no framing, and never a Referer. */
const PAGE_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // The viewer URL briefly carries a viewer token (see ohif-config/app-config.js): no request may repeat it.
  'referrer-policy': 'no-referrer',
};

const NOT_INSTALLED =
  'The OHIF viewer is not installed on this server. Run `make up` (or scripts/fetch-ohif.sh), which fetches the ' +
  'pinned @ohif/app build into .tools/ohif/dist, then restart the facade. (With docker compose, open the `ohif` ' +
  'service instead.)';

/**
 * Serves the prebuilt OHIF viewer from the facade's own origin, so that OHIF reaches /dicom-web, /auth and /fhir
 * without CORS: the build's files at the root paths OHIF expects, our app-config.js, and index.html for OHIF's
 * client-side routes (SPA fallback, an explicit list: never a catch-all that could answer for an API path).
 *
 * When the build is absent the viewer paths answer 503 with a message telling how to install it; the API works.
 */
export async function ohifStatic(app: FastifyInstance, opts: OhifStaticOptions): Promise<void> {
  const installed = existsSync(join(opts.distDir, 'index.html'));

  const spaPaths = ['/', ...SPA_ROUTES.flatMap((r) => [r, `${r}/*`])];

  if (!installed) {
    app.log.warn({ distDir: opts.distDir }, 'OHIF viewer not installed: run `make up`');
    for (const path of spaPaths) {
      app.get(path, async (_req, reply) =>
        reply
          .code(503)
          .headers({ ...PAGE_HEADERS, 'cache-control': 'no-store' })
          .type('text/plain; charset=utf-8')
          .send(`${NOT_INSTALLED}\n`),
      );
    }
    return;
  }

  // Every file of the build becomes its own route (wildcard: false), so nothing here is a catch-all that could
  // answer for an API path. index.html and app-config.js are served by the routes below instead.
  await app.register(fastifyStatic, {
    root: opts.distDir,
    prefix: '/',
    wildcard: false,
    index: false,
    globIgnore: ['index.html', 'app-config.js', '_headers', '_redirects', 'serve.json'],
    cacheControl: false,
    setHeaders: (reply, path) => {
      reply.header('cache-control', cacheControlFor(path));
      reply.header('x-content-type-options', 'nosniff');
    },
  });

  const sendIndex = (reply: FastifyReply) =>
    reply.headers({ ...PAGE_HEADERS, 'cache-control': 'no-cache' }).sendFile('index.html', opts.distDir);

  app.get('/app-config.js', async (_req, reply) => {
    // Read per request: a small file, and editing it must not need a restart.
    const body = readFileSync(opts.appConfigFile, 'utf8');
    return reply
      .headers({ ...PAGE_HEADERS, 'cache-control': 'no-cache' })
      .type('text/javascript; charset=utf-8')
      .send(body);
  });

  // SPA fallback: OHIF's client routes get index.html (the root `/` is the study list).
  for (const path of spaPaths) app.get(path, async (_req, reply) => sendIndex(reply));
}
