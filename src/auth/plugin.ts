import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config/spec.ts';
import type { Access } from './access.ts';
import { AuthChangeListener } from './auth-change-listener.ts';
import { CallerCache, tokenKey } from './caller-cache.ts';
import { fhirInteraction } from './fhir-interaction.ts';
import { externalIssuer, parseExternalIssuers } from './issuers.ts';
import { resolveAccess } from './resolve-caller.ts';
import { authUrls } from './server/discovery.ts';
import { authServerRoutes, PUBLIC_AUTH_PATHS } from './server/routes.ts';
import type { MintContext } from './server/tokens.ts';
import { KeyStore } from './signing-keys.ts';
import { bearerToken, TokenError, type TrustedIssuer, verifyAccessToken } from './verify-token.ts';

declare module 'fastify' {
  interface FastifyRequest {
    access: Access;
  }
  interface FastifyInstance {
    /** Signing keys of the built-in authorization server. */
    authKeys: KeyStore;
    /** What minting a built-in token needs (keys, URLs, lifetime): `bin/ehr token` logic and test helpers. */
    authMint: MintContext;
    /** Resolved callers per token (see caller-cache.ts); in-process writers may `clear()` it. */
    authCallerCache: CallerCache<Access>;
  }
}

/** Routes anyone may call: health, the FHIR capability statement, SMART discovery and the OAuth endpoints. */
const PUBLIC_GET = new Set(['/healthz', '/readyz', '/fhir/metadata', '/fhir/.well-known/smart-configuration']);

function isPublic(method: string, path: string, headers: FastifyRequest['headers']): boolean {
  if ((method === 'GET' || method === 'HEAD') && PUBLIC_GET.has(path)) return true;
  // A CORS preflight carries no credentials by design (https://fetch.spec.whatwg.org/#cors-preflight-fetch) and
  // returns no data: the scope's CORS handler answers it, for allowed origins only.
  if (method === 'OPTIONS' && headers['access-control-request-method'] !== undefined) return true;
  return PUBLIC_AUTH_PATHS.has(path);
}

/** RFC 6750 §3: quoted-string values may not contain `"` or `\`. */
function quoted(s: string): string {
  return s.replace(/["\\]/g, "'");
}

function refuse(
  req: FastifyRequest,
  reply: FastifyReply,
  status: 401 | 403,
  error: 'invalid_token' | 'insufficient_scope',
  description: string,
): FastifyReply {
  req.log.info({ auth: { decision: 'deny', status, error, reason: description } }, 'access denied');
  reply.header('www-authenticate', `Bearer error="${error}", error_description="${quoted(description)}"`);
  if (req.url === '/fhir' || req.url.startsWith('/fhir/') || req.url.startsWith('/fhir?')) {
    return reply
      .code(status)
      .type('application/fhir+json')
      .send({
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'error', code: status === 401 ? 'login' : 'forbidden', diagnostics: description }],
      });
  }
  return reply.code(status).send({ error, error_description: description, requestId: req.id });
}

/**
 * The resource server: every request except the public routes must carry a valid bearer token; it gets `req.access`
 * (the caller's {@link Access}, answered by the pure policy). FHIR requests whose interaction and type are in the URL
 * are refused with 403 `insufficient_scope` here when no scope/role grants them at all; the per-request FHIR repository
 * applies the patient constraint. Also registers the built-in authorization server (`/auth/...`) when enabled.
 */
export const accessPlugin = fp(
  async (app: FastifyInstance, opts: { config: Config }) => {
    const { config } = opts;
    const urls = authUrls(config.publicBaseUrl);
    const keys = new KeyStore(app.db, {
      alg: config.authSigningAlg,
      rotationDays: config.authKeyRotationDays,
      graceS: config.authAccessTokenTtlS + config.authClockToleranceS + 60,
    });
    app.decorate('authKeys', keys);
    app.decorate('authMint', { keys, urls, accessTokenTtlS: config.authAccessTokenTtlS } satisfies MintContext);
    const issuers = new Map<string, TrustedIssuer>();
    if (config.authBuiltinServer) {
      issuers.set(urls.issuer, { issuer: urls.issuer, audience: urls.fhirBase, getKey: keys.getKey, builtin: true });
    }
    for (const c of parseExternalIssuers(config.authExternalIssuers)) {
      if (issuers.has(c.issuer)) continue;
      issuers.set(c.issuer, externalIssuer(c, urls.fhirBase));
    }

    const cache = new CallerCache<Access>({
      ttlMs: config.authCallerCacheTtlMs,
      maxEntries: config.authCallerCacheMaxEntries,
    });
    app.decorate('authCallerCache', cache);
    if (config.authCallerCacheTtlMs > 0) {
      const listener = new AuthChangeListener({
        databaseUrl: config.databaseUrl,
        log: app.log,
        handlers: { onChange: () => cache.clear(), onUp: () => cache.enable(), onDown: () => cache.disable() },
      });
      await listener.start();
      app.addHook('onClose', async () => listener.stop());
    }

    /** Verifies the token and resolves its caller, or answers from the cache (successes only, same token only). */
    const authenticate = async (req: FastifyRequest): Promise<Access> => {
      const token = bearerToken(req.raw.rawHeaders);
      const key = cache.enabled ? tokenKey(token) : undefined;
      const hit = key === undefined ? undefined : cache.get(key);
      if (hit) return hit;
      const generation = cache.generation;
      const verified = await verifyAccessToken(token, issuers, config.authClockToleranceS);
      const access = await resolveAccess(app.db, verified);
      const exp = verified.claims.exp;
      if (key !== undefined && typeof exp === 'number') cache.set(key, access, exp * 1000, generation);
      return access;
    };

    app.decorateRequest('access', null as unknown as Access);
    app.addHook('onRequest', async (req, reply) => {
      const path = req.url.split('?')[0] ?? '';
      if (isPublic(req.method, path, req.headers)) return;
      // No route matched: there is nothing to protect, so the not-found handler answers 404 with or without a token
      // (a 401 would only hint that something lives there).
      if (req.routeOptions.url === undefined) return;
      // Routes that declare themselves public: the API documentation (src/openapi/plugin.ts).
      if (req.routeOptions.config.public === true) return;
      let access: Access;
      try {
        access = await authenticate(req);
      } catch (err) {
        if (err instanceof TokenError) return refuse(req, reply, 401, 'invalid_token', err.message);
        throw err;
      }
      req.access = access;
      const wanted = fhirInteraction(req.method, path);
      if (wanted && !access.allows(wanted.interaction, wanted.resourceType)) {
        return refuse(
          req,
          reply,
          403,
          'insufficient_scope',
          `no scope or role permits ${wanted.interaction} on ${wanted.resourceType}`,
        );
      }
      req.log.info(
        { auth: { decision: 'allow', kind: access.kind, who: access.agent.who, client: access.agent.clientId } },
        'authenticated',
      );
    });

    if (config.authBuiltinServer) {
      await keys.signingKey();
      await app.register(authServerRoutes, { config, keys, urls, authenticate });
    }
  },
  { name: 'access', dependencies: ['database'] },
);
