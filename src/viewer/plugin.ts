import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config/spec.ts';
import { ohifStatic } from './ohif-static.ts';
import { ensureOhifClient } from './oidc-client.ts';

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
 *   src/app.ts), are an `Access` of kind `viewer` limited to their study (src/auth/resolve-caller.ts): only routes
 *   declaring `who: 'token-or-viewer'` (DICOMweb reads) accept one, and the study authorization and QIDO-RS apply
 *   its study limit like any other constraint;
 * - OHIF's OAuth client at the built-in authorization server (registered on start);
 * - the OHIF build itself, on the facade's origin: public routes (`who: 'anyone'`, see ohif-static.ts).
 */
export const viewerPlugin = fp(
  async (app: FastifyInstance, opts: { config: Config }) => {
    // Logged-in use: OHIF signs users in at the built-in authorization server as a public client.
    if (opts.config.authBuiltinServer) await ensureOhifClient(app.db, opts.config.publicBaseUrl);
    await ohifStatic(app, viewerPaths(opts.config));
  },
  { name: 'viewer' },
);
