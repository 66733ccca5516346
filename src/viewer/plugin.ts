import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config/spec.ts';
import { ohifStatic } from './ohif-static.ts';
import { ensureOhifClient } from './oidc-client.ts';
import { viewerSessionRoutes } from './session-routes.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Where the OHIF build and our app-config.js are, from the configuration (relative paths: the project folder). */
export function viewerPaths(config: Config): { distDir: string; appConfigFile: string } {
  const dist = config.ohifDistDir;
  return {
    distDir: isAbsolute(dist) ? dist : join(ROOT, dist),
    appConfigFile: join(ROOT, 'ohif-config', 'app-config.js'),
  };
}

/**
 * The OHIF viewer's part of the facade:
 *
 * - viewer tokens (src/auth/viewer-token.ts), minted by the viewer links (src/api/viewer-url.ts, registered by
 *   src/app.ts) and renewed by the viewer session routes (session-routes.ts), are an `Access` of kind `viewer`
 *   (src/auth/resolve-caller.ts): limited to their study, or to their patient context for a patient-reach link. Only
 *   routes declaring `who: 'token-or-viewer'` (DICOMweb reads, the viewer session) accept one;
 * - OHIF's OAuth client at the built-in authorization server (registered on start);
 * - the OHIF build itself, on the facade's origin: public routes (`who: 'anyone'`, see ohif-static.ts).
 */
export const viewerPlugin = fp(
  async (app: FastifyInstance, opts: { config: Config }) => {
    // Logged-in use: OHIF signs users in at the built-in authorization server as a public client.
    if (opts.config.authBuiltinServer) await ensureOhifClient(app.db, opts.config.publicBaseUrl);
    await app.register(viewerSessionRoutes, { config: opts.config });
    await ohifStatic(app, {
      ...viewerPaths(opts.config),
      settings: { idleTimeoutS: opts.config.viewerIdleTimeoutS },
    });
  },
  { name: 'viewer' },
);
