import { existsSync, readdirSync } from 'node:fs';
import { isAbsolute, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config/spec.ts';
import { publicRoute } from '../http/route-rules.ts';
import { resolveWebPath, WEB_PAGE_HEADERS, webCacheControl } from './headers.ts';
import { ensureWebClient } from './web-client.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const NOT_BUILT =
  'The staff web app is not built on this server. Run `make up` (or scripts/setup.sh), which builds web/ into ' +
  'web/dist, then restart the facade.';

/** Pre-compressed copies (scripts/compress-static.ts) are served in place of their file, never at their own path. */
const COMPRESSED_COPY = /\.(br|gz)$/;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set on the web app's public routes (see {@link webAppPlugin}). */
    webApp?: true;
  }
}

function buildFiles(distDir: string): Set<string> {
  return new Set(
    readdirSync(distDir, { recursive: true, withFileTypes: true })
      .filter((d) => d.isFile() && !COMPRESSED_COPY.test(d.name))
      .map((d) => relative(distDir, join(d.parentPath, d.name)).split(sep).join('/')),
  );
}

/**
 * The staff web app (web/, a SMART on FHIR app) at `/app/` on the facade's origin: its built files, and index.html for
 * every client-side route (SPA fallback for paths without a file extension), with a strict Content Security Policy.
 * The files are public (the browser loads them before sign-in; they hold no patient data), so, like the OHIF build,
 * their routes declare `who: 'anyone'` and no audit (src/http/route-rules.ts). The app itself
 * talks only to /fhir, /dicom-web and /api/v1 with the user's own token.
 *
 * Also registers the app's public OAuth client (`ehr-web`, redirect `/app/callback`) at the built-in server.
 */
export const webAppPlugin = fp(
  async (app: FastifyInstance, opts: { config: Config }) => {
    const dist = opts.config.webDistDir;
    const distDir = isAbsolute(dist) ? dist : join(ROOT, dist);
    const built = existsSync(join(distDir, 'index.html'));
    const files = built ? buildFiles(distDir) : new Set<string>();
    if (opts.config.authBuiltinServer) await ensureWebClient(app.db, opts.config.publicBaseUrl);
    if (built && !app.hasReplyDecorator('sendFile')) {
      // One @fastify/static per instance decorates reply.sendFile; the OHIF plugin registers one when its build is
      // installed (also with preCompressed), else this one does. Either way each call names its root (distDir).
      await app.register(fastifyStatic, {
        root: distDir,
        serve: false,
        cacheControl: false,
        index: false,
        preCompressed: true,
      });
    }
    if (!built) {
      app.log.warn({ distDir }, 'staff web app not built: run `make up`');
    }

    const answer = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
      let path: string;
      try {
        path = decodeURIComponent(req.url.split('?')[0] ?? '');
      } catch {
        return reply.code(400).header('x-content-type-options', 'nosniff').type('text/plain').send('Bad Request\n');
      }
      if (!built) {
        return reply
          .code(503)
          .headers(WEB_PAGE_HEADERS)
          .header('cache-control', 'no-store')
          .type('text/plain; charset=utf-8')
          .send(`${NOT_BUILT}\n`);
      }
      if (path === '/app') return reply.redirect('/app/', 301);
      const r = resolveWebPath(path, files);
      if (r.kind === 'none') {
        return reply.code(404).header('x-content-type-options', 'nosniff').type('text/plain').send('Not Found\n');
      }
      const file = r.kind === 'index' ? 'index.html' : r.file;
      const headers =
        r.kind === 'index'
          ? WEB_PAGE_HEADERS
          : { 'cache-control': webCacheControl(file), 'x-content-type-options': 'nosniff' };
      return reply.headers(headers).sendFile(file, distDir);
    };

    const rules = publicRoute('the staff web app build: no patient data');
    for (const url of ['/app', '/app/', '/app/*']) {
      app.route({ method: 'GET', url, config: { webApp: true, rules }, handler: answer });
    }
  },
  { name: 'web-app' },
);
