/**
 * Route rules: what each route declares about itself in its Fastify route `config.rules`, and what the app's few root
 * hooks read (`req.routeOptions.config.rules`) instead of matching URLs:
 *
 * - `who`: who may call it: anyone, a bearer token, a bearer token including a study-scoped viewer token, or anyone for
 *   a CORS pre-flight (https://fetch.spec.whatwg.org/#cors-preflight-fetch) and a token otherwise;
 * - `fhirScope`: a FHIR route whose interaction and resource type are read from its method and path
 *   (src/auth/fhir-interaction.ts) and checked against the token's scopes before the handler runs (403);
 * - `audit`: how its requests are audited (which AuditEvent shape the fallback description takes), or why not at all;
 * - `dialect`: the shape of its error bodies: FHIR OperationOutcome, DICOM (ErrorComment, Warning), OAuth
 *   (RFC 6749 §5.2 / RFC 6750 §3), or plain JSON;
 * - `body`: special body handling, e.g. an upload that answers `Expect: 100-continue` itself after its checks.
 *
 * Deny by default: a route without rules is refused at start-up ({@link assertRulesDeclared}) and, should one slip
 * through, at request time by the resource server. Pure apart from {@link declareRules}, which registers an `onRoute`
 * hook (set-up only; no request hook).
 */
import type { FastifyInstance, RouteOptions } from 'fastify';

/** Who may call a route. */
export type Who =
  /** No credentials needed: health, discovery, public files, the OAuth endpoints. */
  | 'anyone'
  /** A bearer token of any kind except a viewer token. */
  | 'token'
  /** A bearer token, a viewer token included (DICOMweb reads: the study scope limits what it sees). */
  | 'token-or-viewer'
  /** A CORS pre-flight (OPTIONS with Access-Control-Request-Method) passes without one; anything else needs a token. */
  | 'cors-preflight';

/** How a route's requests are audited (the kind of the fallback AuditEvent), or why they are not. */
export type AuditRule = 'fhir' | 'dicom' | 'api' | 'auth' | { readonly none: string };

/** The shape of a route's error bodies. */
export type Dialect = 'fhir' | 'dicom' | 'oauth' | 'plain';

export interface RouteRules {
  readonly who: Who;
  readonly fhirScope?: 'path';
  readonly audit: AuditRule;
  readonly dialect: Dialect;
  /** `deferred-continue`: the handler sends `100 Continue` itself once the request passed its checks (RFC 9110 §10.1.1). */
  readonly body?: 'deferred-continue';
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** This route's rules (see src/http/route-rules.ts); every route must declare them. */
    rules?: RouteRules;
  }
}

/** A public route that discloses nothing (health, discovery, public files): no token, no AuditEvent. */
export function publicRoute(why: string, dialect: Dialect = 'plain'): RouteRules {
  return { who: 'anyone', audit: { none: why }, dialect };
}

/** Is a route with these rules audited? */
export function isAuditedRoute(rules: RouteRules | undefined): rules is RouteRules & { audit: string } {
  return rules !== undefined && typeof rules.audit === 'string';
}

/** The rules a scope gives its routes that declare none, chosen per route (e.g. by method). */
export type RulesFor = (route: { method: string | string[]; url: string }) => RouteRules;

/**
 * Gives every route registered from now on in `app` (and its children) the rules `defaults` chooses, unless the route
 * declares its own in `config.rules`. A scope declares its surface's rules once here; its exceptions declare theirs.
 */
export function declareRules(app: FastifyInstance, defaults: RouteRules | RulesFor): void {
  app.addHook('onRoute', (route: RouteOptions) => {
    if (route.config?.rules) return;
    const rules = typeof defaults === 'function' ? defaults(route) : defaults;
    // In place: hooks of outer scopes (which ran first) may hold this config object.
    if (route.config) route.config.rules = rules;
    else route.config = { rules };
  });
}

/** Registered routes (method, url, config) without rules; empty when every route declares them. */
export function undeclaredRoutes(
  routes: readonly { method: string; url: string; config?: Record<string, unknown> | undefined }[],
): string[] {
  return routes.filter((r) => r.config?.['rules'] === undefined).map((r) => `${r.method} ${r.url}`);
}

/** Throws, naming them, when a registered route has no rules (called once the app is ready). */
export function assertRulesDeclared(
  routes: readonly { method: string; url: string; config?: Record<string, unknown> | undefined }[],
): void {
  const missing = undeclaredRoutes(routes);
  if (missing.length > 0) throw new Error(`routes without access rules (deny by default): ${missing.join(', ')}`);
}

/** FHIR REST routes: a token whose scopes grant the path's interaction on its type; FHIR-audited; OperationOutcome. */
export const FHIR_RULES: RouteRules = { who: 'token', fhirScope: 'path', audit: 'fhir', dialect: 'fhir' };
/** `/api/v1` routes: a token (the handler or scope decides per role); audited as API requests; plain JSON errors. */
export const API_RULES: RouteRules = { who: 'token', audit: 'api', dialect: 'plain' };
/** The OAuth endpoints: no token (clients authenticate in the request itself); audited; RFC 6749 error bodies. */
export const OAUTH_RULES: RouteRules = { who: 'anyone', audit: 'auth', dialect: 'oauth' };

/**
 * DICOMweb routes: reads (GET, HEAD) accept viewer tokens too, whose study limit the study authorization and QIDO-RS
 * apply; stores and every other method need an ordinary token; the CORS pre-flight route needs none. The uploads
 * (STOW-RS) declare their own rules (deferred `100 Continue`).
 */
export const dicomWebRules: RulesFor = (route) => {
  const methods = [route.method].flat().map((m) => m.toUpperCase());
  if (methods.includes('OPTIONS')) {
    return { who: 'cors-preflight', audit: { none: 'CORS pre-flight: no credentials, no data' }, dialect: 'dicom' };
  }
  const reads = methods.every((m) => m === 'GET' || m === 'HEAD');
  return { who: reads ? 'token-or-viewer' : 'token', audit: 'dicom', dialect: 'dicom' };
};

/** STOW-RS and the upload API: a token, `100 Continue` only after the request's checks. */
export const uploadRules = (audit: 'dicom' | 'api', dialect: Dialect): RouteRules => ({
  who: 'token',
  audit,
  dialect,
  body: 'deferred-continue',
});
