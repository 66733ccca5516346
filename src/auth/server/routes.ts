/**
 * The built-in authorization server, an encapsulated Fastify scope: SMART discovery, the OAuth endpoints under
 * `/auth/...` and the JWKS. Its errors are OAuth JSON errors (RFC 6749 §5.2), never stack traces.
 */
import { declareRules, OAUTH_RULES, publicRoute } from '../../http/route-rules.ts';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Config } from '../../config/spec.ts';
import { renderOAuth, sendRendered } from '../../errors/render.ts';
import type { Access } from '../access.ts';
import type { KeyStore } from '../signing-keys.ts';
import { authorizeRoutes } from './authorize.ts';
import type { ServerContext } from './context.ts';
import { type AuthUrls, openidConfiguration, smartConfiguration } from './discovery.ts';
import { OAuthError } from './errors.ts';
import { introspectionRoutes } from './introspect.ts';
import { tokenRoutes } from './token-endpoint.ts';

export interface AuthServerOptions {
  config: Config;
  keys: KeyStore;
  urls: AuthUrls;
  authenticate: (req: FastifyRequest) => Promise<Access>;
}

export async function authServerRoutes(app: FastifyInstance, opts: AuthServerOptions): Promise<void> {
  const { config, keys, urls } = opts;
  const ctx: ServerContext = {
    db: app.db,
    config,
    keys,
    urls,
    mint: { keys, urls, accessTokenTtlS: config.authAccessTokenTtlS },
    invalidateCallers: () => app.authCallerCache.clear(),
  };

  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: 65_536 },
    (_req, body, done) => done(null, body),
  );

  app.setErrorHandler((err: Error, req, reply) => {
    const r = renderOAuth(err);
    if (err instanceof OAuthError) {
      req.log.info({ auth: { error: err.error, reason: err.message, url: req.url } }, 'oauth request refused');
    } else if (r.statusCode === 500) req.log.error({ err }, 'authorization server error');
    return sendRendered(reply, r);
  });

  declareRules(app, OAUTH_RULES);
  const discovery = { config: { rules: publicRoute('public discovery document', 'oauth') } };
  app.get('/fhir/.well-known/smart-configuration', discovery, async (_req, reply) =>
    reply.header('cache-control', 'public, max-age=300').send(smartConfiguration(urls, config.authSigningAlg)),
  );
  app.get('/auth/.well-known/openid-configuration', discovery, async (_req, reply) =>
    reply.header('cache-control', 'public, max-age=300').send(openidConfiguration(urls, config.authSigningAlg)),
  );
  app.get('/auth/jwks', { config: { rules: publicRoute('public signing keys', 'oauth') } }, async (_req, reply) =>
    reply
      .header('cache-control', 'public, max-age=60')
      .type('application/jwk-set+json')
      .send(await keys.jwks()),
  );
  await app.register(authorizeRoutes, { ctx });
  await app.register(tokenRoutes, { ctx });
  await app.register(introspectionRoutes, { ctx, authenticate: opts.authenticate });
}
