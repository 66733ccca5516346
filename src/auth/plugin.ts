import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config/spec.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';
import { continueUnlessDeferred } from '../http/expect-continue.ts';
import { assertRulesDeclared, type Who } from '../http/route-rules.ts';
import type { Access } from './access.ts';
import { AuthChangeListener } from './auth-change-listener.ts';
import { CallerCache, tokenKey } from './caller-cache.ts';
import { fhirInteraction } from './fhir-interaction.ts';
import { externalIssuer, parseExternalIssuers } from './issuers.ts';
import { resolveAccess } from './resolve-caller.ts';
import { authUrls } from './server/discovery.ts';
import { authServerRoutes } from './server/routes.ts';
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

/** A bearer token in the query string: refused, because URLs end up in logs (RFC 6750 §2.3 is not offered). */
export class TokenInQueryError extends EhrError {
  override readonly code: ErrorCode = 'EHR_AUTH_TOKEN_IN_QUERY';
  override name = 'TokenInQueryError';
  constructor() {
    super('Tokens in the query string are not accepted: use the Authorization header');
  }
}

/** Does a route that declares `who` let this request through without a token? */
function passesWithoutToken(who: Who, method: string, headers: FastifyRequest['headers']): boolean {
  if (who === 'anyone') return true;
  // A CORS preflight carries no credentials by design (https://fetch.spec.whatwg.org/#cors-preflight-fetch) and
  // returns no data: the scope's CORS handler answers it, for allowed origins only.
  return who === 'cors-preflight' && method === 'OPTIONS' && headers['access-control-request-method'] !== undefined;
}

/** Why a viewer token is refused on a route that does not accept it. */
export const VIEWER_ELSEWHERE = 'a viewer token is valid only for DICOMweb reads of its study';

/** Does the URL's query carry an `access_token` parameter (RFC 6750 §2.3, which the DICOMweb side refuses)? */
function tokenInQuery(url: string): boolean {
  const q = url.indexOf('?');
  return q >= 0 && /(^|&)access_token=/.test(url.slice(q + 1));
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
  extra: Record<string, unknown> = {},
): FastifyReply {
  req.log.info({ auth: { decision: 'deny', status, error, reason: description, ...extra } }, 'access denied');
  reply.header('www-authenticate', `Bearer error="${error}", error_description="${quoted(description)}"`);
  if (req.routeOptions.config.rules?.dialect === 'fhir') {
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
 * The resource server, in the app's one root onRequest hook: it reads the matched route's rules
 * (src/http/route-rules.ts). Every route that does not declare `who: 'anyone'` needs a valid bearer token; the request
 * gets `req.access` (the caller's {@link Access}, answered by the pure policy). FHIR routes that declare
 * `fhirScope: 'path'` are refused with 403 `insufficient_scope` here when no scope/role grants their interaction and
 * type at all; the per-request FHIR repository applies the patient constraint. A viewer token passes only on routes
 * that declare `who: 'token-or-viewer'`. Also registers the built-in authorization server (`/auth/...`) when enabled.
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
    // The one root onRequest hook of the app (the gate): every route's rules (src/http/route-rules.ts) are read here.
    app.addHook('onRequest', async (req, reply) => {
      reply.header('x-request-id', req.id);
      const rules = req.routeOptions.config.rules;
      continueUnlessDeferred(req, reply.raw, rules);
      // No route matched: there is nothing to protect, so the not-found handler answers 404 with or without a token
      // (a 401 would only hint that something lives there).
      if (req.routeOptions.url === undefined) return;
      if (!rules) {
        // Deny by default (start-up refuses such routes already: assertRulesDeclared).
        req.log.error({ route: req.routeOptions.url }, 'route without access rules refused');
        return reply.code(403).send({ error: 'access_denied', error_description: 'route without access rules' });
      }
      if (passesWithoutToken(rules.who, req.method, req.headers)) return;
      let access: Access;
      try {
        access = await authenticate(req);
      } catch (err) {
        if (err instanceof TokenError) return refuse(req, reply, 401, 'invalid_token', err.message);
        throw err;
      }
      req.access = access;
      const path = req.url.split('?')[0] ?? '';
      const wanted = rules.fhirScope === 'path' ? fhirInteraction(req.method, path) : undefined;
      if (wanted && !access.allows(wanted.interaction, wanted.resourceType)) {
        return refuse(
          req,
          reply,
          403,
          'insufficient_scope',
          `no scope or role permits ${wanted.interaction} on ${wanted.resourceType}`,
        );
      }
      // A viewer token is a credential only where the route accepts it (DICOMweb reads); its study scope does the rest.
      if (access.kind === 'viewer' && rules.who !== 'token-or-viewer') {
        return refuse(req, reply, 401, 'invalid_token', VIEWER_ELSEWHERE, { kind: 'viewer' });
      }
      // DICOMweb: the bearer token is taken from the Authorization header only; one in the query string is refused.
      if (rules.dialect === 'dicom' && tokenInQuery(req.url)) {
        throw new TokenInQueryError();
      }
      req.log.info(
        { auth: { decision: 'allow', kind: access.kind, who: access.agent.who, client: access.agent.clientId } },
        'authenticated',
      );
    });
    // Deny by default: the app does not start with a route that declares no rules.
    app.addHook('onReady', async () => assertRulesDeclared(app.registeredRoutes));

    if (config.authBuiltinServer) {
      await keys.signingKey();
      await app.register(authServerRoutes, { config, keys, urls, authenticate });
    }
  },
  { name: 'access', dependencies: ['database'] },
);
