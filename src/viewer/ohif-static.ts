import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { publicRoute } from '../http/route-rules.ts';
import { cacheControlFor, isReserved, SPA_ROUTES } from './routes.ts';

export interface OhifStaticOptions {
  /** The unpacked OHIF `dist/` (scripts/fetch-ohif.sh puts it in .tools/ohif/dist). */
  distDir: string;
  /** Our OHIF configuration, served as /app-config.js in place of the copy inside the build. */
  appConfigFile: string;
  /** Deployment settings the configuration reads (as `window.ehrViewerSettings`), e.g. the idle time of a session. */
  settings?: Record<string, string | number | boolean>;
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

/** Files of the build we never serve: Netlify/serve settings, and index/app-config which have their own routes. */
const SKIPPED = new Set(['index.html', 'app-config.js', '_headers', '_redirects', 'serve.json']);

/** What a viewer route answers: a file of the build, index.html, our app-config.js, or the not-installed page. */
type OhifAnswer =
  | { readonly kind: 'file'; readonly file: string }
  | { readonly kind: 'index' }
  | { readonly kind: 'config' }
  | { readonly kind: 'missing' };

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set on the viewer's public routes (see {@link ohifStatic}). */
    ohif?: OhifAnswer;
  }
}

/** Pre-compressed copies (scripts/compress-static.ts): served in place of their file, never at their own path. */
const COMPRESSED_COPY = /\.(br|gz)$/;

function buildFiles(distDir: string): string[] {
  return readdirSync(distDir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && !COMPRESSED_COPY.test(d.name))
    .map((d) => relative(distDir, join(d.parentPath, d.name)).split(sep).join('/'))
    .filter((f) => !SKIPPED.has(f))
    .sort();
}

/**
 * Serves the prebuilt OHIF viewer from the facade's own origin, so that OHIF reaches /dicom-web, /auth and /fhir
 * without CORS: every file of the build at the root path OHIF expects (one route per file, never a catch-all), our
 * app-config.js, and index.html for OHIF's client-side routes (SPA fallback over an explicit list, see routes.ts).
 * When the build is absent those routes answer 503 with a message telling how to install it; the API works.
 *
 * These files are public (a browser fetches them before anyone is signed in; they hold no patient data): their routes
 * declare `who: 'anyone'` and no audit (src/http/route-rules.ts), so the resource server lets them through.
 */
export async function ohifStatic(app: FastifyInstance, opts: OhifStaticOptions): Promise<void> {
  const installed = existsSync(join(opts.distDir, 'index.html'));
  const settingsLine = `window.ehrViewerSettings = ${JSON.stringify(opts.settings ?? {})};\n`;
  const routes = new Map<string, OhifAnswer>();
  const spa: OhifAnswer = installed ? { kind: 'index' } : { kind: 'missing' };
  for (const r of ['/', ...SPA_ROUTES.flatMap((route) => [route, `${route}/*`])]) routes.set(r, spa);

  if (installed) {
    // reply.sendFile only (serve: false): the routes are ours, one per file of the build. preCompressed: the `.br` or
    // `.gz` copy made at set-up (scripts/compress-static.ts) goes to a browser that accepts it (with `Vary`), the file
    // itself to any other client or when there is no copy.
    await app.register(fastifyStatic, {
      root: opts.distDir,
      serve: false,
      cacheControl: false,
      index: false,
      preCompressed: true,
    });
    routes.set('/app-config.js', { kind: 'config' });
    for (const file of buildFiles(opts.distDir)) {
      const path = `/${file}`;
      if (isReserved(path)) continue; // a build file may never shadow the API
      routes.set(path, { kind: 'file', file });
    }
  } else {
    app.log.warn({ distDir: opts.distDir }, 'OHIF viewer not installed: run `make up`');
  }

  const answer = async (a: OhifAnswer, reply: FastifyReply): Promise<FastifyReply> => {
    switch (a.kind) {
      case 'file':
        return reply
          .headers({ 'cache-control': cacheControlFor(a.file), 'x-content-type-options': 'nosniff' })
          .sendFile(a.file);
      case 'index':
        return reply.headers({ ...PAGE_HEADERS, 'cache-control': 'no-cache' }).sendFile('index.html');
      case 'config':
        // Read per request: a small file, and editing it must not need a restart.
        return reply
          .headers({ ...PAGE_HEADERS, 'cache-control': 'no-cache' })
          .type('text/javascript; charset=utf-8')
          .send(`${settingsLine}${readFileSync(opts.appConfigFile, 'utf8')}`);
      case 'missing':
        return reply
          .code(503)
          .headers({ ...PAGE_HEADERS, 'cache-control': 'no-store' })
          .type('text/plain; charset=utf-8')
          .send(`${NOT_INSTALLED}\n`);
    }
  };

  const rules = publicRoute('the viewer build: no patient data');
  for (const [url, a] of routes) {
    app.route({ method: 'GET', url, config: { ohif: a, rules }, handler: async (_req, reply) => answer(a, reply) });
  }
}
